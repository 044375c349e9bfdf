"""Rich run-result bundles (asm_nb/rendering/mime.py)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from asm_nb import config
from asm_nb.rendering.mime import RUN_MIME, run_result_mimebundle, run_summary

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def ev(type_, data=None):
    return {"type": type_, "timestamp": T0, "session_id": "ses_1", "run_id": "run_1", "data": data or {},
            "provider": "claude"}


def result(**over):
    events = [
        ev("run_started", {"model": "claude-haiku-4-5-20251001"}),
        ev("message_sent", {"role": "user", "content": "list files"}),
        ev("message_streamed", {"delta": "Let me ", "content": "Let me "}),
        ev("message_streamed", {"delta": "look.", "content": "look."}),
        ev("tool_call_started", {"tool_call_id": "c1", "tool_name": "Bash", "tool_input": {"command": "ls"}}),
        ev("tool_call_completed", {"tool_call_id": "c1", "tool_name": "Bash", "tool_output": "a.py\nb.py\n",
                                   "exit_code": 0, "duration_ms": 2500}),
        ev("message_streamed", {"delta": "Two files.", "content": "Two files."}),
        ev("message_received", {"content": "Two files.", "role": "assistant"}),
        ev("token_usage_updated", {"input_tokens": 10, "output_tokens": 20, "cache_read_tokens": 5,
                                   "cache_creation_tokens": 0}),
        ev("run_completed", {"stop_reason": "end_turn", "duration_ms": 4000}),
    ]
    r = {"run_id": "run_1", "session_id": "ses_1", "status": "completed", "output": "Two files.",
         "token_usage": {"input_tokens": 10, "output_tokens": 20, "cache_read_tokens": 5, "cache_creation_tokens": 0},
         "cost_usd": 0.0012, "error": None, "duration_ms": 4100, "provider": "claude",
         "model": "claude-haiku-4-5-20251001", "events": events}
    r.update(over)
    return r


def test_bundle_has_three_types_and_plain_text_is_studio():
    b = run_result_mimebundle(result())
    assert set(b) == {"text/plain", "text/html", RUN_MIME}
    assert b["text/plain"] == (
        "\n  ● claude-haiku-4-5-20251001 session started\n\n  Let me look.\n  ◐ Running: ls\n"
        "  ✓ Ran: ls (exit 0, 10 chars, 2.5s)\n\n  Two files.\n\n"
        "  ● Session complete (end_turn) — 10/20 tokens, 1 tool\n")
    # the HTML view reads in plain language (the text/plain stays the Studio CLI rendering)
    assert "<details" in b["text/html"] and "Ran ls · 10 B · 2.5 s" in b["text/html"]
    json.dumps(b[RUN_MIME])  # JSON-serialisable


def test_run_json_schema():
    s = run_summary(result())
    assert s["schema"] == "asm.run" and s["version"] == 1
    assert s["run"] == {"run_id": "run_1", "session_id": "ses_1", "provider": "claude",
                        "model": "claude-haiku-4-5-20251001", "status": "completed", "stop_reason": "end_turn",
                        "stop_reason_text": "finished", "duration_ms": 4100, "error": None}
    assert s["output"] == "Two files."
    assert s["transcript"] == [
        {"role": "user", "content": "list files"},
        {"role": "assistant", "content": "Let me look."},
        {"role": "tool", "tool_call_id": "c1", "tool_name": "Bash", "content": "a.py\nb.py\n", "status": "completed"},
        {"role": "assistant", "content": "Two files."},
    ]
    assert s["tool_calls"] == [{"id": "c1", "name": "Bash", "input": {"command": "ls"}, "output": "a.py\nb.py\n",
                                "status": "completed", "exit_code": 0, "duration_ms": 2500,
                                "summary": "Ran ls · 10 B · 2.5 s", "icon": "✓", "approval": None}]
    assert s["usage"] == {"input_tokens": 10, "output_tokens": 20, "cache_read_tokens": 5,
                          "cache_creation_tokens": 0, "total_tokens": 30}
    assert s["cost_usd"] == 0.0012


def test_deterministic_mode_drops_ids_and_timings():
    a = run_result_mimebundle(result(), deterministic=True)
    b = run_result_mimebundle(result(run_id="run_2", session_id="ses_2", duration_ms=9), deterministic=True)
    assert a == b
    s = a[RUN_MIME]
    assert s["run"]["run_id"] is None and s["tool_calls"][0]["id"] is None and s["run"]["duration_ms"] is None


def test_failed_run_without_events():
    b = run_result_mimebundle({"status": "failed", "error": {"code": "provider_error", "message": "no binary"},
                               "events": []})
    assert "no binary" in b["text/plain"]
    assert b[RUN_MIME]["run"]["error"] == {"code": "provider_error", "message": "no binary"}
    assert b[RUN_MIME]["run"]["status"] == "failed"


def test_accepts_objects_with_to_dict():
    class R:
        def to_dict(self):
            return result()

    assert run_result_mimebundle(R())[RUN_MIME]["output"] == "Two files."


def test_bundle_is_redacted():
    secret = "ghp_" + "a" * 36
    r = result(output=f"token {secret}")
    r["events"].append(ev("tool_call_completed", {"tool_call_id": "c2", "tool_name": "Read", "tool_output": secret}))
    with config.override(redaction_enabled=True):
        b = run_result_mimebundle(r)
    assert secret not in json.dumps(b, ensure_ascii=False)


def test_deterministic_mode_leaves_out_reported_tool_durations():
    """A shell run reports its command's duration in the event and the tool output: two runs of
    the same command must still give the same deterministic card (the committed notebooks)."""
    def shell_run(ms):
        return {"status": "completed", "provider": "shell", "events": [
            ev("run_started", {}),
            ev("tool_call_started", {"tool_call_id": "t1", "tool_name": "bash", "tool_input": {"command": "echo hi"}}),
            ev("tool_call_completed", {"tool_call_id": "t1", "tool_name": "bash", "duration_ms": ms,
                                       "tool_output": {"output": "hi\n", "exit_code": 0, "duration_ms": ms}}),
            ev("run_completed", {"stop_reason": "exit_code_0"})]}

    a, b = (run_result_mimebundle(shell_run(ms), deterministic=True) for ms in (8, 1234))
    assert a == b
    call = a[RUN_MIME]["tool_calls"][0]
    assert "ms" not in call["summary"] and " s" not in call["summary"].split("·")[-1]
    assert "duration_ms" not in call["output"] and call["output"]["exit_code"] == 0
    live = run_result_mimebundle(shell_run(1234))
    assert live[RUN_MIME]["tool_calls"][0]["summary"].endswith("1.2 s")  # shown when not deterministic
