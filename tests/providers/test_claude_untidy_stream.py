"""A complete but untidy SSE stream: the ``message_delta`` carried a stop reason and every block
closed, but the final ``message_stop`` never came (clean end of body, or the connection cut)."""

from __future__ import annotations

import pytest

import asm_nb
from asm_nb.testing.fake_anthropic import FakeAnthropicServer, SSEResponse


def _without_message_stop(anth, **kw) -> SSEResponse:
    full = SSEResponse.from_file(anth / "simple_text.sse", **kw)
    assert b"message_stop" in full.frames[-1]
    return SSEResponse(frames=full.frames[:-1], **kw)


@pytest.mark.parametrize("cut", [False, True])
def test_complete_message_without_message_stop_completes_with_a_warning(fixtures_dir, cut, caplog):
    anth = fixtures_dir / "anthropic"
    with FakeAnthropicServer() as server:
        server.enqueue(_without_message_stop(anth, cut=cut))
        r = asm_nb.run_once("What is the capital of France?", provider="claude", store="memory://",
                            options={"api_key": "test-key", "base_url": server.base_url, "max_retries": 0})
    assert r.ok, r.error
    assert r.output.startswith("The capital of France is **Paris**")
    warnings = [e for e in r.events if e.type.value == "error_occurred"]
    assert len(warnings) == 1 and warnings[0].data["recoverable"] is True
    assert "message_stop" in warnings[0].data["error_message"]
    assert r.token_usage["output_tokens"] == 31
    assert any("message_stop" in rec.getMessage() for rec in caplog.records)


def test_a_message_without_stop_reason_still_fails(fixtures_dir):
    anth = fixtures_dir / "anthropic"
    full = SSEResponse.from_file(anth / "simple_text.sse")
    frames = [f for f in full.frames if b"message_delta" not in f and b"message_stop" not in f]
    with FakeAnthropicServer() as server:
        server.enqueue(SSEResponse(frames=frames))
        r = asm_nb.run_once("hi", provider="claude", store="memory://",
                            options={"api_key": "test-key", "base_url": server.base_url, "max_retries": 0})
    assert r.status == "failed" and "message_stop" in r.error.message
