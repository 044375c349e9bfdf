"""Fixed event lists shared by the rendering and notebook tests."""

from __future__ import annotations

from datetime import datetime, timezone

SID, RID = "ses_test_123", "run_test_456"
T0 = datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)


def ev(type_: str, data: dict | None = None, **extra) -> dict:
    """An adapter-style event envelope (docs/providers.md, event envelope) with a fixed timestamp."""
    out = {"type": type_, "timestamp": T0, "session_id": SID, "run_id": RID, "data": data or {},
           "provider": "claude"}
    out.update(extra)
    return out


def spec_events() -> list[dict]:
    """The compact-renderer example: run_started, two chunks, message_received, usage, run_completed."""
    return [
        ev("run_started", {"model": "claude-sonnet-4-5-20250929"}),
        ev("message_streamed", {"delta": "Hello", "content": "Hello"}),
        ev("message_streamed", {"delta": " world", "content": " world"}),
        ev("message_received", {"content": "Hello world", "role": "assistant"}),
        ev("token_usage_updated", {"input_tokens": 100, "output_tokens": 20}),
        ev("run_completed", {"stop_reason": "end_turn", "token_usage": {"input_tokens": 100, "output_tokens": 50}}),
    ]


def scenario_events() -> list[dict]:
    """A richer run: text, a Read, a failing Bash, a dict-output tool, usage with cost, more text,
    an unknown event, an error and completion."""
    return [
        ev("run_started", {"model": "claude-sonnet-4-5-20250929"}),
        ev("message_sent", {"role": "user", "content": "Fix the tests"}),
        ev("message_streamed", {"delta": "I'll read the sink first.", "content": "I'll read the sink first."}),
        ev("tool_call_started", {"tool_call_id": "toolu_1", "tool_name": "Read",
                                 "tool_input": {"file_path": "lib/rendering/sink.ex"}}),
        ev("tool_call_completed", {"tool_call_id": "toolu_1", "tool_name": "Read",
                                   "tool_output": "defmodule Sink do\n  @callback write(term) :: :ok\n\nend\n"}),
        ev("tool_call_started", {"tool_call_id": "toolu_2", "tool_name": "Bash",
                                 "tool_input": {"command": "mix compile"}}),
        ev("tool_call_completed", {"tool_call_id": "toolu_2", "tool_name": "Bash", "exit_code": 1,
                                   "status": "failed", "duration_ms": 3200,
                                   "tool_output": "== Compilation error ==\nlib/a.ex:3: undefined\n"}),
        ev("tool_call_started", {"tool_call_id": "toolu_3", "tool_name": "custom_tool", "tool_input": {}}),
        ev("tool_call_completed", {"tool_call_id": "toolu_3", "tool_name": "custom_tool",
                                   "tool_output": {"result": "success", "n": 2}}),
        ev("token_usage_updated", {"input_tokens": 847, "output_tokens": 312, "cost_usd": 0.01234}),
        ev("message_streamed", {"delta": "Second ", "content": "Second "}),
        ev("message_streamed", {"delta": "block", "content": "block"}),
        ev("message_received", {"content": "Second block", "role": "assistant"}),
        ev("turn_completed", {"turn": 1, "stop_reason": "tool_use"}),
        ev("error_occurred", {"error_code": "provider_error", "error_message": "transient glitch"}),
        ev("run_completed", {"stop_reason": "end_turn", "cost_usd": 0.11111,
                             "token_usage": {"input_tokens": 847, "output_tokens": 312}}),
    ]
