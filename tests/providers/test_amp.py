"""AmpAdapter against a fake ``amp`` executable replaying the recorded fixtures."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from asm_nb.core.errors import AsmError
from asm_nb.providers import create_adapter
from asm_nb.providers.amp import AmpAdapter
from asm_nb.testing.fake_cli import fake_cli_calls

from ._cli_support import (arun, cancel_when_a_tool_runs, check_generic, group_gone_within, install_fixture_cli, manifest,
                           of_type, run_adapter, tool_outcomes, usage_sum)

AMP = manifest("amp")


def make(tmp_path, name=None, **kw):
    exe = install_fixture_cli(tmp_path, "amp", "amp", name, kw)
    return AmpAdapter(cwd=str(tmp_path), executable=str(exe), **kw), exe


def _inclusive(u):
    """Amp's input_tokens includes cache reads and writes: the normalized (uncached) value."""
    return max(u["input_tokens"] - u["cache_read_input_tokens"] - u["cache_creation_input_tokens"], 0)


@pytest.mark.parametrize("name", sorted(AMP))
def test_fixture_matches_manifest(tmp_path, name):
    m = AMP[name]
    exp = m["expect"]
    adapter, exe = make(tmp_path, name, permission_mode="full_auto")
    result, err, events, run, session = arun(run_adapter(adapter, "Run the tests and fix the failing one."))
    check_generic(events, run, session, "amp")
    types = [e["type"] for e in events]
    expected_terminal = exp.get("terminal", "run_completed").split(" ")[0]
    assert types[-1] == expected_terminal

    call = fake_cli_calls(exe)[0]
    assert call["stdin"] == "Run the tests and fix the failing one."  # prompt on stdin, not in argv
    assert call["argv"] == ["amp"] + m["argv"][1:] or name == "thinking.jsonl"
    if expected_terminal == "run_completed":
        assert err is None and result.events == events
        assert result.token_usage == usage_sum(events)
        done = events[-1]["data"]
        assert done["stop_reason"] == "end_turn" and done["token_usage"] == result.token_usage
    else:
        assert err is not None and err.code == "provider_error" and err.provider_error["provider"] == "amp"
        assert err.provider_error["exit_code"] == m["exit_code"] or m["exit_code"] is None

    if "session_id" in exp:
        d = of_type(events, "run_started")[0]["data"]
        assert d["session_id"] == d["provider_session_id"] == exp["session_id"]
        assert isinstance(d["tools"], list) and d["cwd"] == "/home/dev/projects/weather-app"
        assert types[1] == "message_sent"
    if "final_text" in exp:
        assert result.output["content"] == exp["final_text"]
    if "usage_from_assistant" in exp:  # no usage on the result: sum of the assistant messages
        u = exp["usage_from_assistant"]
        assert result.token_usage == {"input_tokens": _inclusive(u), "output_tokens": u["output_tokens"],
                                      "cache_read_tokens": u["cache_read_input_tokens"],
                                      "cache_creation_tokens": u["cache_creation_input_tokens"]}
    if "usage_total" in exp:  # the result's usage is the run total: nothing added on top
        u = exp["usage_total"]
        assert result.token_usage == {"input_tokens": _inclusive(u), "output_tokens": u["output_tokens"],
                                      "cache_read_tokens": u["cache_read_input_tokens"],
                                      "cache_creation_tokens": u["cache_creation_input_tokens"]}
        assert len(of_type(events, "token_usage_updated")) == 1
    if "tool_calls" in exp:
        outcomes = tool_outcomes(events)
        assert [(t["id"], outcomes[t["id"]]) for t in exp["tool_calls"]] == \
            [(t["id"], t["outcome"]) for t in exp["tool_calls"]]
        assert [{"id": t["id"], "name": t["name"]} for t in exp["tool_calls"]] == \
            [{"id": t["id"], "name": t["name"]} for t in result.output["tool_calls"]]
        assert set(result.output["tool_calls"][0]) == {"id", "name", "input"}
        failed = of_type(events, "tool_call_failed")[0]["data"]
        assert failed["is_error"] is True and failed["tool_input"]["path"].endswith("utils.py")
    if "num_turns" in exp:
        assert events[-1]["data"]["num_turns"] == exp["num_turns"]
    if "error" in exp:
        assert err.message == exp["error"]
        assert err.provider_error["stderr"] == m["stderr"]
    if exp.get("subtype") == "error_max_turns":
        assert err.provider_error["kind"] == "max_turns" and err.details["subtype"] == "error_max_turns"
    if exp.get("error_message_from") == "stderr":
        assert err.message == m["stderr"].strip().splitlines()[0]
        assert err.provider_error["kind"] == "process_error"
        assert "run_started" not in types
    if "thinking_blocks" in exp:
        reasoning = [e for e in of_type(events, "message_streamed") if e["data"]["kind"] == "reasoning"]
        assert len(reasoning) == exp["thinking_blocks"]
    if "bad_lines" in exp:
        bad = [e["data"]["details"]["line_no"] for e in of_type(events, "error_occurred")
               if e["data"]["provider_error"]["kind"] == "parse_error"]
        assert bad == exp["bad_lines"]
    if "open_tool_calls" in exp:
        closed = [e["data"]["tool_call_id"] for e in of_type(events, "tool_call_failed")
                  if e["data"].get("reason") == "stream_incomplete"]
        assert closed == exp["open_tool_calls"]
    if name == "truncated.jsonl":  # SIGTERM we did not send: a failure, not a cancel
        assert err.provider_error["kind"] == "transport_exit" and "SIGTERM" in err.message


def test_text_is_streamed_then_received_once_per_line(tmp_path):
    adapter, _ = make(tmp_path, "multi_tool.jsonl")
    result, err, events, *_ = arun(run_adapter(adapter))
    types = [e["type"] for e in events]
    i = types.index("message_streamed")
    assert types[i:i + 3] == ["message_streamed", "message_received", "tool_call_started"]
    assert events[i]["data"]["content"] == events[i + 1]["data"]["content"] == "I'll run the test suite first."
    assert [e["data"]["content"] for e in of_type(events, "message_received")] == [
        "I'll run the test suite first.", result.output["content"]]


def test_streaming_chunks_mock(tmp_path):
    sid = '"session_id":"T-1"'
    lines = [
        '{"type":"system","subtype":"init","cwd":"/w","session_id":"T-1","tools":["Read","Write","Bash"],'
        '"mcp_servers":[]}',
        '{"type":"assistant","message":{"type":"message","role":"assistant","content":[{"type":"text",'
        '"text":"Part 1"}],"stop_reason":null,"usage":{"input_tokens":10,"output_tokens":20}},'
        '"parent_tool_use_id":null,' + sid + '}',
        '{"type":"assistant","message":{"type":"message","role":"assistant","content":[{"type":"text",'
        '"text":" Part 2"}],"stop_reason":"end_turn","usage":{"input_tokens":10,"output_tokens":20}},'
        '"parent_tool_use_id":null,' + sid + '}',
        '{"type":"result","subtype":"success","is_error":false,"result":"Part 1 Part 2","duration_ms":5,'
        '"num_turns":1,' + sid + '}',
    ]
    adapter, _ = make(tmp_path, stdout="\n".join(lines) + "\n", model="amp-test-model")
    result, err, events, run, session = arun(run_adapter(adapter))
    check_generic(events, run, session, "amp")
    assert [e["data"]["delta"] for e in of_type(events, "message_streamed")] == ["Part 1", " Part 2"]
    assert result.output["content"] == "Part 1 Part 2"
    assert events[0]["data"]["model"] == "amp-test-model" and events[0]["data"]["session_id"] == "T-1"
    # two distinct messages without usage on the result: summed
    assert result.token_usage["input_tokens"] == 20 and result.token_usage["output_tokens"] == 40


def test_error_result_carries_permission_denials_and_process_facts(tmp_path):
    lines = [
        '{"type":"system","subtype":"init","cwd":"/w","session_id":"T-2","tools":[],"mcp_servers":[]}',
        '{"type":"result","subtype":"error_during_execution","is_error":true,"error":"Connection failed",'
        '"duration_ms":1,"num_turns":0,"session_id":"T-2","permission_denials":["file_write","bash_exec"]}',
    ]
    adapter, _ = make(tmp_path, stdout="\n".join(lines) + "\n", exit_code=2,
                      stderr="AUTH_TOKEN=super-secret\npermission denied\n")
    result, err, events, run, session = arun(run_adapter(adapter))
    check_generic(events, run, session, "amp")
    occurred = of_type(events, "error_occurred")
    assert len(occurred) == 1 and occurred[0]["data"]["permission_denials"] == ["file_write", "bash_exec"]
    assert "permission_denials" not in events[-1]["data"]
    assert err.provider_error["message"] == "Connection failed" and err.provider_error["exit_code"] == 2
    assert "permission denied" in err.provider_error["stderr"]


def test_tool_error_variant_and_settings_file(tmp_path):
    lines = [
        '{"type":"system","subtype":"init","cwd":"/w","session_id":"T-3","tools":[],"mcp_servers":[]}',
        '{"type":"assistant","message":{"type":"message","role":"assistant","content":[{"type":"tool_use",'
        '"id":"tool-use-1","name":"test_tool","input":{"arg1":"value1"}}],"stop_reason":"tool_use"},'
        '"parent_tool_use_id":null,"session_id":"T-3"}',
        '{"type":"user","message":{"role":"user","content":[{"type":"tool_result","tool_use_id":"tool-use-1",'
        '"content":"boom","is_error":true}]},"parent_tool_use_id":null,"session_id":"T-3"}',
        '{"type":"result","subtype":"success","is_error":false,"result":"done","duration_ms":1,"num_turns":2,'
        '"session_id":"T-3"}',
    ]
    perms = [{"tool": "Bash", "action": "allow", "matches": {"cmd": "git *"}}]
    adapter, exe = make(tmp_path, stdout="\n".join(lines) + "\n", permissions=perms,
                        mcp_config={"linear": {"command": "npx", "args": ["linear-mcp"]}})
    result, err, events, *_ = arun(run_adapter(adapter))
    failed = of_type(events, "tool_call_failed")[0]["data"]
    assert failed == {"tool_call_id": "tool-use-1", "tool_name": "test_tool", "tool_input": {"arg1": "value1"},
                      "tool_output": "boom", "is_error": True}
    argv = fake_cli_calls(exe)[0]["argv"]
    settings = argv[argv.index("--settings-file") + 1]
    assert not os.path.exists(settings)  # removed after the run
    path = adapter._settings_file(adapter.build_options())
    try:
        with open(path) as f:
            assert json.load(f) == {"amp.permissions": perms,
                                    "amp.mcpServers": {"linear": {"command": "npx", "args": ["linear-mcp"]}}}
    finally:
        os.unlink(path)


def test_build_options_precedence_and_timeouts():
    a = AmpAdapter(cwd="/w", sdk_opts={"visibility": "private", "stream_timeout_ms": 600_000, "bogus": 1},
                   max_turns=3, system_prompt="s")
    bo = a.build_options()
    assert bo["visibility"] == "private" and bo["stream_timeout_ms"] == 600_000
    assert "max_turns" not in bo and "system_prompt" not in bo and "bogus" not in bo
    assert a.max_turns == 3 and a.system_prompt == "s"
    assert AmpAdapter(cwd="/w", permission_mode="full_auto",
                      sdk_opts={"dangerously_allow_all": False}).build_options()["dangerously_allow_all"] is True
    assert AmpAdapter(cwd="/w").build_options()["dangerously_allow_all"] is False
    assert AmpAdapter(cwd="/w", permission_mode="accept_edits").build_options()["dangerously_allow_all"] is False
    assert AmpAdapter(cwd="/w", permission_mode="dangerously_skip_permissions").build_options()["dangerously_allow_all"]
    assert a.build_options(timeout=123_000)["stream_timeout_ms"] == 123_000
    assert a.build_options(timeout="unbounded")["stream_timeout_ms"] == 604_800_000
    assert AmpAdapter(cwd="/w").build_options()["stream_timeout_ms"] == 600_000
    assert AmpAdapter(cwd="/w", mode=None).build_options()["mode"] == "smart"


def test_argv():
    assert AmpAdapter(cwd="/w").build_argv() == ["amp", "--execute", "--stream-json", "--mode", "smart"]
    assert AmpAdapter(cwd="/w", permission_mode="full_auto", mode="rush", thinking=True,
                      sdk_opts={"labels": ["a"]}, extra_args=["--x"]).build_argv() == [
        "amp", "--execute", "--stream-json-thinking", "--dangerously-allow-all", "--mode", "rush", "--label", "a", "--x"]


@pytest.mark.parametrize("opts,message", [
    ({}, "cwd is required"),
    ({"cwd": ""}, "cwd cannot be empty"),
    ({"cwd": 3}, "cwd must be a non-empty string"),
    ({"cwd": "/w", "permissions": [{"tool": "Bash", "action": "maybe"}]}, "permissions[0].action"),
    ({"cwd": "/w", "thinking": "yes"}, "thinking must be True or False"),
    ({"cwd": "/w", "permission_mode": 42}, "invalid permission mode"),
    ({"cwd": "/w", "working_directory": "/w"}, "Unknown amp option(s): working_directory"),
])
def test_construction_errors(opts, message):
    with pytest.raises(AsmError) as ei:
        AmpAdapter(**opts)
    assert ei.value.code == "validation_error" and message in ei.value.message


def test_validate_config_capabilities_registry():
    a = create_adapter("amp", cwd="/w")
    assert a.name == "amp"
    a.validate_config({"cwd": "/x", "anything": 1})
    with pytest.raises(AsmError, match="cwd is required"):
        a.validate_config({})
    with pytest.raises(AsmError, match="cwd cannot be empty"):
        a.validate_config({"cwd": ""})
    caps = arun(a.capabilities())
    assert [(c.name, c.type.value) for c in caps] == [
        ("streaming", "sampling"), ("tool_use", "tool"), ("interrupt", "sampling"), ("mcp", "tool"),
        ("file_operations", "tool"), ("bash", "tool")]


def test_cli_not_found(tmp_path):
    a = AmpAdapter(cwd=str(tmp_path), cli_path="amp-definitely-not-installed-xyz")
    result, err, events, run, session = arun(run_adapter(a))
    assert err.provider_error["kind"] == "cli_not_found" and "amp-definitely-not-installed-xyz" in err.message
    assert "@sourcegraph/amp" in err.message
    check_generic(events, run, session, "amp")


def test_cancel_kills_group_and_closes_open_call(tmp_path):
    adapter, exe = make(tmp_path, "truncated.jsonl", hang=True, ignore_signals=["SIGINT"], spawn_child=True)

    err, events, elapsed, run, session, _ = cancel_when_a_tool_runs(adapter, "run the suite")
    assert err.code == "cancelled" and elapsed < 2.0
    check_generic(events, run, session, "amp")
    assert events[-1]["type"] == "run_cancelled"
    assert [e["data"]["reason"] for e in of_type(events, "tool_call_failed")] == ["cancelled"]
    assert group_gone_within(fake_cli_calls(exe)[0]["pgid"], 2.0) == []


def test_concurrency_and_unknown_cancel(tmp_path):
    adapter, exe = make(tmp_path, "simple_text.jsonl")

    async def scenario():
        return await asyncio.gather(*(run_adapter(adapter, f"p{i}") for i in range(3)))

    for result, err, events, run, session in arun(scenario()):
        assert err is None and result.output["content"] == "The capital of France is Paris."
        check_generic(events, run, session, "amp")
    with pytest.raises(AsmError) as ei:
        arun(adapter.cancel("non-existent-run-id"))
    assert ei.value.code == "run_not_found"


def test_idle_timeout(tmp_path):
    adapter, exe = make(tmp_path, "truncated.jsonl", hang=True)
    result, err, events, run, session = arun(run_adapter(adapter, timeout=300))
    assert err.code == "provider_timeout" and err.provider_error["kind"] == "timeout"
    check_generic(events, run, session, "amp")
