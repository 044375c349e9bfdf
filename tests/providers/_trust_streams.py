"""Small Claude Code / Codex streams (in the recorded fixtures' format) for the cases the recorded
fixtures do not cover: permission denials, tool calls left without a result, a run without model."""

from __future__ import annotations

import json

SID = "5b0d7a51-3f3c-4b8e-9a0e-0d5a1f3f2c11"


def _line(obj: dict) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _assistant(mid: str, block: dict) -> str:
    return _line({"type": "assistant", "message": {
        "model": "claude-sonnet-4-5-20250929", "id": mid, "type": "message", "role": "assistant",
        "content": [block], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 3, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                  "output_tokens": 2}}, "parent_tool_use_id": None, "session_id": SID})


def _init() -> str:
    return _line({"type": "system", "subtype": "init", "cwd": "/w", "session_id": SID,
                  "tools": ["Bash", "Read", "Write"], "mcp_servers": [], "model": "claude-sonnet-4-5-20250929",
                  "permissionMode": "default", "claude_code_version": "2.0.76"})


def _result(text: str, denials: list, **extra) -> str:
    return _line({"type": "result", "subtype": "success", "is_error": False, "duration_ms": 5120,
                  "duration_api_ms": 4800, "num_turns": 2, "result": text, "stop_reason": "end_turn",
                  "session_id": SID, "total_cost_usd": 0.0123,
                  "usage": {"input_tokens": 12, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 900,
                            "output_tokens": 80},
                  "permission_denials": denials, **extra})


WRITE_INPUT = {"file_path": "/w/notes.txt", "content": "hello"}


def claude_code_denied() -> str:
    """The agent tries Write, is refused (headless, no permission), answers asking for access; the
    result is a success carrying ``permission_denials`` (one for the shown call, one never shown)."""
    lines = [
        _init(),
        _assistant("msg_1", {"type": "tool_use", "id": "toolu_write1", "name": "Write", "input": WRITE_INPUT}),
        _line({"type": "user", "message": {"role": "user", "content": [{
            "type": "tool_result", "tool_use_id": "toolu_write1", "is_error": True,
            "content": "Claude requested permissions to write to /w/notes.txt, but you haven't granted it yet."}]},
            "parent_tool_use_id": None, "session_id": SID,
            "tool_use_result": "Error: Claude requested permissions to write to /w/notes.txt, but you haven't granted it yet."}),
        _assistant("msg_2", {"type": "text", "text": "I need permission to write /w/notes.txt. Please allow Write."}),
        _result("I need permission to write /w/notes.txt. Please allow Write.", [
            {"tool_name": "Write", "tool_use_id": "toolu_write1", "tool_input": WRITE_INPUT},
            {"tool_name": "Bash", "tool_use_id": "toolu_bash9", "tool_input": {"command": "rm -rf build"}}]),
    ]
    return "\n".join(lines) + "\n"


def claude_code_unfinished() -> str:
    """A successful result although a Bash call never got its tool_result (e.g. a killed subshell)."""
    lines = [
        _init(),
        _assistant("msg_1", {"type": "tool_use", "id": "toolu_bash1", "name": "Bash",
                             "input": {"command": "sleep 1000"}}),
        _assistant("msg_2", {"type": "text", "text": "Started the job."}),
        _result("Started the job.", []),
    ]
    return "\n".join(lines) + "\n"
