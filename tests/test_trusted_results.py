"""Results you can trust, end to end through ``run_once`` with fake CLIs and the Claude API fake:
permission denials and unfinished tool calls become tool-call records, stopped runs keep their
partial output and say why, and ``RunResult``, the stored events, ``frames`` and the views agree."""

from __future__ import annotations

import re

import pytest

import asm_nb
from asm_nb.analytics import frames
from asm_nb.rendering.mime import RUN_MIME, run_result_mimebundle
from asm_nb.runtime.oneshot import arun_tracked
from asm_nb.testing.fake_anthropic import FakeAnthropicServer, StreamBuilder
from asm_nb.testing.fake_cli import install_fake_cli

from .providers import _trust_streams as streams
from .providers._cli_support import install_fixture_cli

pytest.importorskip("anthropic")  # imported up front: its first import would eat the duration budget


def _claude_code(tmp_path, stdout: str, **kw):
    exe = install_fake_cli(tmp_path / "bin", "claude", None, stdout=stdout, exit_code=0, **kw)
    return {"provider": "claude_code", "cwd": str(tmp_path), "options": {"cli_path": str(exe)}}


def _stored_tool_ends(store, r):
    return [e for e in store.get_events(r.session_id, run_id=r.run_id) if e.type.value in ("tool_call_completed",
                                                                                 "tool_call_failed")]


def _frame_rows(store, run_id):
    df = frames.tool_calls(store, run_id=run_id, backend="polars")
    return {r["tool_call_id"]: r for r in df.iter_rows(named=True)}


# ---------------------------------------------------------------------------- denials


def test_permission_denials_are_failed_tool_calls_everywhere(tmp_path):
    store = asm_nb.open_store(f"{tmp_path}/store")
    r = asm_nb.run_once("write notes", store=store, **_claude_code(tmp_path, streams.claude_code_denied()))
    assert r.ok, r.error  # the run itself succeeded: the agent answered asking for access
    calls = {c["id"]: c for c in r.tool_calls}
    assert set(calls) == {"toolu_write1", "toolu_bash9"}
    for tid, name in (("toolu_write1", "Write"), ("toolu_bash9", "Bash")):
        assert calls[tid]["status"] == "failed" and calls[tid]["reason"] == "permission_denied"
        assert calls[tid]["name"] == name
    assert calls["toolu_write1"]["input"] == streams.WRITE_INPUT
    assert calls["toolu_bash9"]["input"] == {"command": "rm -rf build"}
    # stored events say the same
    denied = [e for e in _stored_tool_ends(store, r) if e.data.get("reason") == "permission_denied"]
    assert {e.data["tool_call_id"] for e in denied} == {"toolu_write1", "toolu_bash9"}
    # frames agree with the events
    rows = _frame_rows(store, r.run_id)
    assert {k: (v["status"], v["reason"], str(v["tool_name"])) for k, v in rows.items()} == {
        "toolu_write1": ("failed", "permission_denied", "Write"), "toolu_bash9": ("failed", "permission_denied", "Bash")}
    # the text view says so
    bundle = run_result_mimebundle(r)
    assert bundle["text/plain"].count("[permission denied]") == 2
    assert bundle["text/html"].count("Not allowed: ") == 2
    assert [c["status"] for c in bundle[RUN_MIME]["tool_calls"]] == ["failed", "failed"]


# ---------------------------------------------------------------------------- unfinished


def test_tool_calls_without_a_result_are_closed_as_unfinished(tmp_path):
    store = asm_nb.open_store(f"{tmp_path}/store")
    r = asm_nb.run_once("start it", store=store, **_claude_code(tmp_path, streams.claude_code_unfinished()))
    assert r.ok, r.error
    (call,) = r.tool_calls
    assert call["id"] == "toolu_bash1" and call["status"] == "unfinished"
    events = store.get_events(r.session_id, run_id=r.run_id)
    types = [e.type.value for e in events]
    closing = [e for e in events if e.type.value == "tool_call_failed"]
    assert len(closing) == 1 and closing[0].data["status"] == "unfinished"
    assert types.index("tool_call_failed") < types.index("run_completed")  # closed before the run ended
    assert _frame_rows(store, r.run_id)["toolu_bash1"]["status"] == "unfinished"
    assert frames.tool_calls(store, status="unfinished", backend="polars").height == 1
    bundle = run_result_mimebundle(r)
    assert "[unfinished: no result]" in bundle["text/plain"] and "Unfinished (no result): Bash" in bundle["text/html"]
    assert "◐" not in bundle["text/html"]


def test_an_adapter_ending_with_an_open_tool_is_closed_by_the_manager():
    from asm_nb.providers._base import BaseAdapter

    class Leaky(BaseAdapter):  # a plugin adapter that forgets its tool result
        name = "leaky"

        async def _execute(self, active, **opts):
            await active.emit("run_started", {})
            await active.emit("tool_call_started", {"tool_call_id": "t1", "tool_name": "bash",
                                                    "tool_input": {"command": "sleep 9"}})
            return {"output": {"content": "done"}, "token_usage": {}}

    r = asm_nb.run_once("go", provider=Leaky(), store="memory://")
    assert r.ok and [c["status"] for c in r.tool_calls] == ["unfinished"]
    types = [e.type.value for e in r.events]
    assert types[-2:] == ["tool_call_failed", "run_completed"]


# ---------------------------------------------------------------------------- partial output, stops


def test_policy_stop_keeps_partial_output_and_says_why():
    with FakeAnthropicServer() as server:
        server.enqueue(StreamBuilder().text("warm up").end().build())
        server.enqueue(StreamBuilder(delay=0.3).text(["Paris ", "is ", "the ", "capital ", "of ", "France."])
                       .end("end_turn").build())
        common = dict(provider="claude", store="memory://",
                      options={"api_key": "k", "base_url": server.base_url, "max_retries": 0})
        assert asm_nb.run_once("warm up the client", **common).ok  # the first client creation is slow
        r = asm_nb.run_once("capital?", policy={"name": "quick", "limits": [["max_duration_ms", 2500]]}, **common)
    assert r.status == "failed" and r.error.code == "policy_violation"
    streamed = "".join(e.data["delta"] for e in r.events if e.type.value == "message_streamed")
    assert r.partial and r.output == streamed and r.output.startswith("Paris ")
    assert r.stop_reason == "policy_violation"
    assert re.search(r"max_duration_ms 2500 exceeded at \d+ ms", r.error.message), r.error.message


def test_cancel_keeps_partial_output():
    import asyncio

    from asm_nb.runtime import loop, manager

    with FakeAnthropicServer() as server:
        server.enqueue(StreamBuilder(delay=0.5).text(["one ", "two ", "three"]).end("end_turn").build())
        state: dict = {}
        seen: list = []

        async def go():
            task = asyncio.ensure_future(arun_tracked(
                "count", "claude", state, store="memory://", api_key="k", base_url=server.base_url,
                max_retries=0, on_event=seen.append))
            while not any(e["type"] == "message_streamed" for e in seen):
                await asyncio.sleep(0.05)
            await manager.acancel_run(state["store"], state["adapter"], state["run_id"])
            return await task

        r = loop.run_sync(go())
    assert r.status == "cancelled" and r.stop_reason == "cancelled"
    assert r.partial and r.output.startswith("one ")


@pytest.mark.parametrize("stop", ["cancel", "task_cancel", "policy"])
def test_a_stopped_claude_api_run_counts_the_usage_its_request_was_billed(tmp_path, stop):
    """A request cut after ``message_start`` was billed for its input (and cache reads): the run's
    usage, its cost, the stored events and ``frames.costs`` count it, whatever stopped the run:
    ``cancel``, a cancelled task (Ctrl-C in a kernel, the execute deadline) or a policy stop."""
    import asyncio

    from asm_nb.runtime import loop, manager

    store = asm_nb.open_store(f"{tmp_path}/store")
    with FakeAnthropicServer() as server:
        server.enqueue(StreamBuilder().text("warm up").end().build())
        server.enqueue(StreamBuilder(delay=0.4, input_tokens=1200, cache_read_tokens=3000, output_tokens=1)
                       .text(["one ", "two ", "three ", "four ", "five ", "six ", "seven"]).end("end_turn").build())
        opts = {"api_key": "k", "base_url": server.base_url, "max_retries": 0}
        assert asm_nb.run_once("warm up the client", provider="claude", store="memory://", options=opts).ok
        state: dict = {}
        seen: list = []
        policy = {"limits": [["max_duration_ms", 1500]]} if stop == "policy" else None

        async def go():
            task = asyncio.ensure_future(arun_tracked("count", "claude", state, store=store, policy=policy,
                                                      on_event=seen.append, **opts))
            if stop == "policy":
                return await task
            while not any(e["type"] == "message_streamed" for e in seen):
                await asyncio.sleep(0.05)
            if stop == "cancel":
                await manager.acancel_run(state["store"], state["adapter"], state["run_id"])
                return await task
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        loop.run_sync(go())
    run = store.get_run(state["run_id"])
    assert run.status.value == ("failed" if stop == "policy" else "cancelled")
    if stop == "policy":
        assert run.error["code"] == "policy_violation"
    assert (run.token_usage["input_tokens"], run.token_usage["cache_read_tokens"]) == (1200, 3000)
    assert run.cost_usd is not None and run.cost_usd > 0
    usage_events = [e.data for e in store.get_events(run.session_id, run_id=run.id)
                    if e.type.value == "token_usage_updated"]
    assert [d.get("partial") for d in usage_events] == [True]
    assert sum(d["input_tokens"] for d in usage_events) == run.token_usage["input_tokens"]
    costs = frames.costs(store, backend="polars").filter(frames.costs(store, backend="polars")["run_id"] == run.id)
    assert costs["cost_usd"][0] == pytest.approx(run.cost_usd)


def test_refusal_is_visible():
    with FakeAnthropicServer() as server:
        server.enqueue(StreamBuilder().text(["I can't help with that."]).end("refusal").build())
        r = asm_nb.run_once("bad", provider="claude", store="memory://",
                            options={"api_key": "k", "base_url": server.base_url, "max_retries": 0})
    assert r.stop_reason == "refusal" and r.refused
    assert "refused" in repr(r)
    bundle = run_result_mimebundle(r)
    assert "refused" in bundle["text/plain"] and "refused" in bundle["text/html"]


def test_a_denied_tool_stop_names_the_tool_and_the_views_close_its_row(tmp_path):
    exe = install_fixture_cli(tmp_path, "claude", "claude_code", "multi_tool.jsonl", {"line_delay_ms": 30})
    store = asm_nb.open_store(f"{tmp_path}/store")
    seen: list = []
    r = asm_nb.run_once("fix the tests", provider="claude_code", store=store, cwd=str(tmp_path),
                        policy={"name": "options", "tool_rules": [["deny", ["Bash"]]]}, on_event=seen.append,
                        options={"cli_path": str(exe)})
    assert r.status == "failed" and r.error.code == "policy_violation"
    assert "tool Bash denied by the deny list (--deny-tools)" in r.error.message
    # the row is closed, not left running
    assert [(c["status"], c["reason"]) for c in r.tool_calls] == [("failed", "policy_denied")]
    bundle = run_result_mimebundle(r)
    text, html = bundle["text/plain"], bundle["text/html"]
    assert "◐" not in html and "Blocked by policy: Bash" in html
    assert text.count("tool Bash denied") == 1, text
    assert "[blocked by policy]" in text and "(exit 1)" not in text  # no invented exit code
    # the live callback saw the closing record too
    assert any(e["type"] == "tool_call_failed" and e["data"].get("reason") == "policy_denied" for e in seen)
    rows = _frame_rows(store, r.run_id)
    assert [(v["status"], v["reason"]) for v in rows.values()] == [("failed", "policy_denied")]


# ---------------------------------------------------------------------------- per-model usage


def test_claude_code_tokens_count_every_model(tmp_path):
    exe = install_fixture_cli(tmp_path, "claude", "claude_code", "large_usage.jsonl", {})
    store = asm_nb.open_store(f"{tmp_path}/store")
    r = asm_nb.run_once("review", provider="claude_code", store=store, cwd=str(tmp_path),
                        options={"cli_path": str(exe)})
    assert r.ok, r.error
    # sonnet main loop + the haiku subagent (result.usage alone has 1750 output tokens)
    assert r.token_usage["output_tokens"] == 1750 + 495 and r.token_usage["input_tokens"] == 6 + 1751
    assert r.token_usage["cache_read_tokens"] == 523318 + 26600
    run = store.get_run(r.run_id)
    per_model = run.metadata["model_usage"]
    assert set(per_model) == {"claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001"}
    assert per_model["claude-haiku-4-5-20251001"]["output_tokens"] == 495
    assert r.cost_usd == pytest.approx(0.3281594)  # the CLI's own total (all models)
    # the computed figure prices each model at its own rates
    assert run.metadata["price_key"] == "claude/claude-sonnet-4-5+claude/claude-haiku-4-5"
    df = frames.runs(store, backend="polars")
    assert df["output_tokens"].to_list() == [2245]


def test_token_budgets_use_the_all_model_total(tmp_path):
    exe = install_fixture_cli(tmp_path, "claude", "claude_code", "large_usage.jsonl", {})
    r = asm_nb.run_once("review", provider="claude_code", store="memory://", cwd=str(tmp_path),
                        policy={"name": "tokens", "limits": [["max_total_tokens", 3000]]},
                        options={"cli_path": str(exe)})
    # main loop alone: 6 + 1750 = 1756 tokens (under the limit); all models: 4002
    assert r.error is not None and r.error.code == "policy_violation"
    assert "max_total_tokens 3000 exceeded at 4002" in r.error.message


# ---------------------------------------------------------------------------- agreement


def _expected_tool_statuses(events):
    """What the stored events say about each tool call: the last outcome wins."""
    out = {}
    for e in events:
        t, d = e.type.value, e.data
        if t == "tool_call_started":
            out.setdefault(d["tool_call_id"], ("running", None))
        elif t in ("tool_call_completed", "tool_call_failed"):
            status = ("completed" if t == "tool_call_completed"
                      else "unfinished" if d.get("status") == "unfinished" else "failed")
            out[d["tool_call_id"]] = (status, d.get("reason"))
    return out


def test_frames_and_widget_agree_with_the_stored_events(tmp_path, monkeypatch):
    """Runs with denials, an unfinished tool, partial output and an unknown model, in one store:
    frames.tool_calls, frames.costs and the widget's run card say what the stored events and runs say."""
    import asyncio

    from asm_nb.rendering.mime import run_summary
    from asm_nb.runtime import loop, manager

    store = asm_nb.open_store(f"{tmp_path}/store")
    results = [
        asm_nb.run_once("write notes", store=store, **_claude_code(tmp_path / "a", streams.claude_code_denied())),
        asm_nb.run_once("start it", store=store, **_claude_code(tmp_path / "b", streams.claude_code_unfinished())),
    ]
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "empty-codex-home"))
    codex = install_fixture_cli(tmp_path / "c", "codex", "codex", "simple_text.jsonl", {})
    from asm_nb.cost.calculator import UnpricedModelWarning

    with pytest.warns(UnpricedModelWarning):
        results.append(asm_nb.run_once("capital?", provider="codex", store=store, cwd=str(tmp_path),
                                       options={"cli_path": str(codex)}))
    with FakeAnthropicServer() as server:  # a cancelled run with partial output
        server.enqueue(StreamBuilder(delay=0.4).text(["one ", "two ", "three"]).end("end_turn").build())
        state: dict = {}
        seen: list = []

        async def go():
            task = asyncio.ensure_future(arun_tracked(
                "count", "claude", state, store=store, api_key="k", base_url=server.base_url,
                max_retries=0, on_event=seen.append))
            while not any(e["type"] == "message_streamed" for e in seen):
                await asyncio.sleep(0.05)
            await manager.acancel_run(state["store"], state["adapter"], state["run_id"])
            return await task

        results.append(loop.run_sync(go()))
    assert [r.status for r in results] == ["completed", "completed", "completed", "cancelled"]

    tool_frame = frames.tool_calls(store, backend="polars")
    cost_frame = {row["run_id"]: row for row in frames.costs(store, backend="polars").iter_rows(named=True)}
    for r in results:
        run = store.get_run(r.run_id)
        events = store.get_events(r.session_id, run_id=r.run_id)
        expected = _expected_tool_statuses(events)
        assert "running" not in {s for s, _ in expected.values()}  # nothing left open in an ended run
        rows = {row["tool_call_id"]: (row["status"], row["reason"])
                for row in tool_frame.filter(tool_frame["run_id"] == r.run_id).iter_rows(named=True)}
        assert rows == expected
        assert {c["id"]: (c["status"], c["reason"]) for c in r.tool_calls} == expected
        card = run_summary(r)
        assert sorted(c["status"] for c in card["tool_calls"]) == sorted(s for s, _ in expected.values())
        assert card["output"] == (run.output or {}).get("content", "")
        assert card["cost_usd"] == run.cost_usd
        assert cost_frame[r.run_id]["cost_usd"] == (pytest.approx(run.cost_usd) if run.cost_usd is not None
                                                    else None)
        assert cost_frame[r.run_id]["unpriced"] is (run.cost_usd is None)
    denied, _, unknown, cancelled = results
    assert {s for s, _ in _expected_tool_statuses(store.get_events(denied.session_id, run_id=denied.run_id))
            .values()} == {"failed"}
    assert unknown.cost_usd is None and cost_frame[unknown.run_id]["unpriced"] is True
    assert cancelled.partial and cancelled.output.startswith("one ")


def test_cli_run_shows_a_refusal(tmp_path):
    import os
    import subprocess
    import sys

    with FakeAnthropicServer() as server:
        server.enqueue(StreamBuilder().text(["I can't help with that."]).end("refusal").build())
        p = subprocess.run([sys.executable, "-m", "asm_nb.cli", "run", "-p", "claude", "bad", "-o", "api_key=\"k\"",
                            "-o", f"base_url=\"{server.base_url}\"", "-o", "max_retries=0"],
                           capture_output=True, text=True, cwd=tmp_path, timeout=120,
                           env={**os.environ, "ASM_HOME": str(tmp_path / "home")})
    assert p.returncode == 0, p.stderr
    assert "status completed (refused)" in p.stderr and "Session refused" in p.stdout
