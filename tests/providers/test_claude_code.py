"""ClaudeCodeAdapter (the Claude provider's CLI backend) against a fake ``claude`` executable."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from asm_nb.core.errors import AsmError
from asm_nb.core.permission import PermissionMode
from asm_nb.core.session import Session
from asm_nb.providers import create_adapter
from asm_nb.providers.claude_code import ClaudeCodeAdapter
from asm_nb.testing.fake_cli import fake_cli_calls

from ._cli_support import (arun, cancel_when_a_tool_runs, check_generic, group_gone_within, install_fixture_cli, manifest,
                           of_type, run_adapter, tool_outcomes, usage_sum)

CC = manifest("claude_code")


def make(tmp_path, name=None, **kw):
    exe = install_fixture_cli(tmp_path, "claude", "claude_code", name, kw)
    kw.setdefault("model", "sonnet")
    return ClaudeCodeAdapter(cwd=str(tmp_path), executable=str(exe), **kw), exe


def _norm_model(u):
    return {"input_tokens": u["inputTokens"], "output_tokens": u["outputTokens"],
            "cache_read_tokens": u["cacheReadInputTokens"], "cache_creation_tokens": u["cacheCreationInputTokens"]}


def _norm(u):
    return {"input_tokens": u["input_tokens"], "output_tokens": u["output_tokens"],
            "cache_read_tokens": u["cache_read_input_tokens"], "cache_creation_tokens": u["cache_creation_input_tokens"]}


@pytest.mark.parametrize("name", sorted(n for n in CC if n != "cancelled_sigterm.jsonl"))
def test_fixture_matches_manifest(tmp_path, name):
    m = CC[name]
    exp = m["expect"]
    adapter, exe = make(tmp_path, name, permission_mode="accept_edits")
    result, err, events, run, session = arun(run_adapter(adapter, "What is the capital of France?"))
    check_generic(events, run, session, "claude")
    types = [e["type"] for e in events]
    expected_terminal = exp.get("terminal", "run_completed").split(" ")[0]
    assert types[-1] == expected_terminal

    argv = fake_cli_calls(exe)[0]["argv"]
    assert argv[:5] == ["claude", "-p", "--output-format", "stream-json", "--verbose"]
    assert argv[-1] == "What is the capital of France?"
    assert argv[argv.index("--permission-mode") + 1] == "acceptEdits"

    d = of_type(events, "run_started")[0]["data"]
    assert d["session_id"] == d["provider_session_id"] == exp["session_id"]
    assert d["backend"] == "claude_code" and d["model"] == "claude-sonnet-4-5-20250929"
    assert types[1] == "message_sent"

    if expected_terminal == "run_completed":
        assert err is None and result.events == events
        assert result.token_usage == usage_sum(events)
        done = events[-1]["data"]
        assert done["session_id"] == exp["session_id"] and done["token_usage"] == result.token_usage
        assert types[-2] == "turn_completed"
    if "final_text" in exp:
        assert result.output["content"] == exp["final_text"]
    if "usage" in exp:  # the result line is authoritative: every model's usage (modelUsage) when given
        usage_events = of_type(events, "token_usage_updated")
        assert len(usage_events) == 1
        want = _norm(exp["usage"])
        if exp.get("modelUsage"):
            want = {k: sum(_norm_model(u)[k] for u in exp["modelUsage"].values()) for k in want}
            assert usage_events[0]["data"]["main_usage"] == _norm(exp["usage"])
        got = {k: usage_events[0]["data"][k] for k in want}
        assert got == want
        if result is not None:
            assert result.token_usage == want
    if exp.get("total_cost_usd"):
        assert usage_events[0]["data"]["total_cost_usd"] == exp["total_cost_usd"]
        if result is not None:
            assert events[-1]["data"]["total_cost_usd"] == exp["total_cost_usd"]
            assert result.output["total_cost_usd"] == exp["total_cost_usd"]
    if "tool_calls" in exp:
        outcomes = tool_outcomes(events)
        assert [(t["id"], t["name"], outcomes[t["id"]]) for t in exp["tool_calls"]] == \
            [(t["id"], t["name"], t["outcome"]) for t in exp["tool_calls"]]
        main_ids = [t["id"] for t in result.output["tool_calls"]]
        assert main_ids == [t["id"] for t in exp["tool_calls"]]
        done = of_type(events, "tool_call_completed")
        assert all("tool_use_result" in e["data"].get("details", {}) for e in done[1:])
    if "text_deltas" in exp:  # streamed once via stream_event, received once: no double counting
        streamed = [e for e in of_type(events, "message_streamed") if e["data"]["kind"] == "text"]
        assert len(streamed) == exp["text_deltas"]
        received = [e["data"]["content"] for e in of_type(events, "message_received")]
        assert "".join(e["data"]["delta"] for e in streamed) == "".join(received)
    if "subagent_lines" in exp:
        received = [e["data"]["content"] for e in of_type(events, "message_received")]
        assert not any("ingest/feeds.py downloads CSVs" in c for c in received)  # subagent text stays out
        assert "toolu_01NWC69sVqx2wMHsu7xt0m86" in tool_outcomes(events)  # its tool calls are reported
    if exp.get("subtype") == "error_max_turns":
        assert err.code == "provider_error" and err.provider_error["kind"] == "max_turns"
        assert err.provider_error["exit_code"] == 1
    if exp.get("api_error_status") == 529:
        assert err.code == "provider_unavailable" and err.provider_error["kind"] == "overloaded"
        assert err.message.startswith("API Error: 529")
        assert len(of_type(events, "error_occurred")) == exp["error_occurred"]
        assert not of_type(events, "message_received")  # the synthetic error text is not an answer
    if "bad_lines" in exp:
        bad = [e["data"] for e in of_type(events, "error_occurred")
               if e["data"]["provider_error"]["kind"] == "parse_error"]
        assert [b["details"]["line_no"] for b in bad] == exp["bad_lines"]
        assert bad[0]["details"]["line"].startswith("[SandboxDebug]")
    if "open_tool_calls" in exp:
        closed = [e["data"]["tool_call_id"] for e in of_type(events, "tool_call_failed")
                  if e["data"].get("reason") == "stream_incomplete"]
        assert closed == exp["open_tool_calls"]
        assert err.provider_error["kind"] == "transport_exit"


def test_cancelled_sigterm_fixture_via_cancel(tmp_path):
    exp = CC["cancelled_sigterm.jsonl"]["expect"]
    adapter, exe = make(tmp_path, "cancelled_sigterm.jsonl", hang=True, spawn_child=True)

    err, events, elapsed, run, session, _ = cancel_when_a_tool_runs(adapter, "run the benchmark")
    assert err.code == "cancelled" and elapsed < 2.0
    check_generic(events, run, session, "claude")
    assert events[-1]["type"] == exp["terminal"]
    assert [e["data"]["tool_call_id"] for e in of_type(events, "tool_call_failed")] == exp["open_tool_calls"]
    assert group_gone_within(fake_cli_calls(exe)[0]["pgid"], 2.0) == []


def test_signal_we_did_not_send_is_a_failure(tmp_path):
    adapter, _ = make(tmp_path, "cancelled_sigterm.jsonl")  # the fixture kills itself with SIGTERM
    result, err, events, run, session = arun(run_adapter(adapter))
    assert err.code == "provider_error" and err.provider_error["kind"] == "transport_exit"
    assert events[-1]["type"] == "run_failed"


def test_simple_response_sequence(tmp_path):
    adapter, _ = make(tmp_path, "simple_text.jsonl")
    result, err, events, *_ = arun(run_adapter(adapter))
    assert [e["type"] for e in events] == ["run_started", "message_sent", "message_streamed", "message_received",
                                          "token_usage_updated", "turn_completed", "run_completed"]
    assert events[-1]["data"]["stop_reason"] == "end_turn" and events[-1]["data"]["num_turns"] == 1
    assert result.output["stop_reason"] == "end_turn" and result.output["num_turns"] == 1


def test_native_resume_from_session_metadata(tmp_path):
    adapter, exe = make(tmp_path, "simple_text.jsonl")
    session = Session.new("a", metadata={"provider_sessions": {"claude": {"provider_session_id": "sess-1"}}})
    arun(run_adapter(adapter, "again", session=session))
    argv = fake_cli_calls(exe)[0]["argv"]
    assert argv[-3:] == ["--resume", "sess-1", "again"]
    # an explicit option wins; resume=False opts out; a replayed transcript disables native resume
    arun(run_adapter(adapter, "again", session=session, resume="sess-2"))
    assert fake_cli_calls(exe)[1]["argv"][-3:] == ["--resume", "sess-2", "again"]
    arun(run_adapter(adapter, "again", session=session, resume=False))
    assert "--resume" not in fake_cli_calls(exe)[2]["argv"]
    transcript = SimpleNamespace(messages=[SimpleNamespace(role="assistant", content="Earlier assistant reply",
                                                           tool_name=None)])
    s2 = session.replace(context={"transcript": transcript})
    arun(run_adapter(adapter, "Hello", session=s2))
    call = fake_cli_calls(exe)[3]
    assert "--resume" not in call["argv"]
    assert call["argv"][-1] == "assistant: Earlier assistant reply\nuser: Hello"


def test_prompt_starting_with_dash_goes_to_stdin(tmp_path):
    adapter, exe = make(tmp_path, "simple_text.jsonl")
    arun(run_adapter(adapter, "-rf is a flag?"))
    call = fake_cli_calls(exe)[0]
    assert call["stdin"] == "-rf is a flag?" and "-rf is a flag?" not in call["argv"]


def test_permission_modes_map_to_cli_flags():
    def flags(mode):
        argv = ClaudeCodeAdapter(permission_mode=mode, include_partial_messages=False, model="m").build_argv()
        return argv[5:argv.index("--model")]
    assert flags(None) == [] and flags("default") == []
    assert flags(PermissionMode.ACCEPT_EDITS) == ["--permission-mode", "acceptEdits"]
    assert flags("plan") == ["--permission-mode", "plan"]
    assert flags("full_auto") == ["--permission-mode", "bypassPermissions"]
    assert flags("dangerously_skip_permissions") == ["--dangerously-skip-permissions"]


def test_option_precedence():
    a = ClaudeCodeAdapter(sdk_opts={"max_turns": 99, "verbose": True, "max_budget_usd": 1.0, "nonsense": 1},
                          max_turns=5)
    bo = a.build_options()
    assert bo["max_turns"] == 5 and bo["verbose"] is True and bo["max_budget_usd"] == 1.0
    assert "nonsense" not in bo
    assert ClaudeCodeAdapter(sdk_opts={"max_turns": 99}).build_options()["max_turns"] is None
    assert bo["model"] is None and "--model" not in a.build_argv()  # the CLI keeps the user's own model
    assert bo["cwd"] is None and bo["permission_mode"] is None
    assert a.build_options(timeout=123_000)["timeout_ms"] == 123_000
    assert a.build_options(timeout="unbounded")["timeout_ms"] == 604_800_000
    b = ClaudeCodeAdapter(system_prompt="Be terse", cwd="/w", tools=["Read", {"name": "Bash"}],
                          disallowed_tools=["Write"], max_turns=3, model="opus",
                          sdk_opts={"add_dirs": ["/a", "/b"], "mcp_config": {"mcpServers": {}},
                                    "setting_sources": ["user", "project"]})
    argv = b.build_argv(prompt="hi")
    assert argv[argv.index("--model") + 1] == "opus" and argv[argv.index("--max-turns") + 1] == "3"
    assert argv[argv.index("--system-prompt") + 1] == "Be terse"
    assert argv[argv.index("--allowedTools") + 1] == "Read,Bash"
    assert argv[argv.index("--disallowedTools") + 1] == "Write"
    assert [argv[i + 1] for i, x in enumerate(argv) if x == "--add-dir"] == ["/a", "/b"]
    assert argv[argv.index("--mcp-config") + 1] == '{"mcpServers": {}}'
    assert argv[argv.index("--setting-sources") + 1] == "user,project"
    assert "--include-partial-messages" in argv and argv[-1] == "hi"
    assert b.build_options()["cwd"] == "/w"


def test_validation_capabilities_registry():
    a = create_adapter("claude_code")
    assert a.name == "claude" and a.permission_mode is None and a.max_turns is None and a.sdk_opts == {}
    for cfg in ({}, {"api_key": ""}, {"model": "x"}):
        a.validate_config(cfg)
    with pytest.raises(AsmError):
        a.validate_config("nope")
    caps = arun(a.capabilities())
    assert [(c.name, c.type.value) for c in caps] == [
        ("streaming", "sampling"), ("tool_use", "tool"), ("vision", "resource"), ("system_prompts", "prompt"),
        ("interrupt", "sampling")]
    for opts, msg in (({"permission_mode": "bypass_permissions"}, "invalid permission mode"),
                      ({"backend": "api"}, "only runs the 'claude_code' backend"),
                      ({"max_turns": -1}, "max_turns must be a positive integer"),
                      ({"tools": [3]}, "tools entries"),
                      ({"temperature": 1}, "Unknown claude_code option(s): temperature")):
        with pytest.raises(AsmError) as ei:
            ClaudeCodeAdapter(**opts)
        assert ei.value.code == "validation_error" and msg in ei.value.message


def test_cli_not_found(tmp_path):
    a = ClaudeCodeAdapter(executable=str(tmp_path / "missing" / "claude"))
    result, err, events, run, session = arun(run_adapter(a))
    assert err.provider_error == {**err.provider_error, "provider": "claude", "kind": "cli_not_found"}
    assert "claude CLI not found" in err.message and "@anthropic-ai/claude-code" in err.message
    check_generic(events, run, session, "claude")


def test_concurrency_and_unknown_cancel(tmp_path):
    adapter, exe = make(tmp_path, "multi_tool.jsonl")

    async def scenario():
        return await asyncio.gather(*(run_adapter(adapter, f"p{i}") for i in range(3)))

    for result, err, events, run, session in arun(scenario()):
        assert err is None and len(result.output["tool_calls"]) == 4
        check_generic(events, run, session, "claude")
    with pytest.raises(AsmError) as ei:
        arun(adapter.cancel("non-existent-run-id"))
    assert ei.value.code == "run_not_found"


def test_error_result_with_process_stderr(tmp_path):
    lines = ('{"type":"system","subtype":"init","session_id":"s","model":"m","tools":[],"cwd":"/w"}\n'
             '{"type":"result","subtype":"error_during_execution","is_error":true,"error":"CLI failed",'
             '"session_id":"s","usage":{"input_tokens":1,"output_tokens":2,"cache_read_input_tokens":800,'
             '"cache_creation_input_tokens":200}}\n')
    adapter, _ = make(tmp_path, stdout=lines, exit_code=2, stderr="warming up\npermission denied\n")
    result, err, events, run, session = arun(run_adapter(adapter))
    check_generic(events, run, session, "claude")
    assert err.code == "provider_error" and err.provider_error["exit_code"] == 2
    assert "permission denied" in err.provider_error["stderr"]
    u = of_type(events, "token_usage_updated")[0]["data"]
    assert (u["cache_read_tokens"], u["cache_creation_tokens"]) == (800, 200)
