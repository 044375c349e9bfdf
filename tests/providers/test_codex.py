"""CodexAdapter against a fake ``codex`` executable replaying the recorded fixtures."""

from __future__ import annotations

import asyncio

import pytest

from asm_nb.core.errors import AsmError
from asm_nb.core.permission import PermissionMode
from asm_nb.core.run import Run
from asm_nb.core.session import Session
from asm_nb.providers import create_adapter
from asm_nb.providers.codex import CodexAdapter
from asm_nb.testing.fake_cli import fake_cli_calls, install_fake_cli

from ._cli_support import (FIXTURES, arun, cancel_when_a_tool_runs, check_generic, fixture, group_gone_within,
                           install_fixture_cli, manifest, of_type, run_adapter, tool_outcomes, usage_sum)

CODEX = manifest("codex")


def make(tmp_path, name=None, *, script=None, **kw):
    if script is not None:
        exe = install_fake_cli(tmp_path / "bin", "codex", script=script)
    else:
        exe = install_fixture_cli(tmp_path, "codex", "codex", name, kw)
    adapter = CodexAdapter(working_directory=str(tmp_path), executable=str(exe), **kw)
    return adapter, exe


# -- every fixture, checked against its manifest ----------------------------------------------------

@pytest.mark.parametrize("name", sorted(CODEX))
def test_fixture_matches_manifest(tmp_path, name):
    m = CODEX[name]
    exp = m["expect"]
    session = None
    if exp.get("resumed"):
        session = Session.new("agent-1", metadata={"provider_sessions": {"codex": {
            "provider_session_id": exp["thread_id"]}}})
    adapter, exe = make(tmp_path, name, model="gpt-5-codex")
    result, err, events, run, session = arun(run_adapter(adapter, "Fix the failing test", session=session))
    check_generic(events, run, session, "codex")
    types = [e["type"] for e in events]
    expected_terminal = exp.get("terminal", "run_completed").split(" ")[0]
    assert types[-1] == expected_terminal

    if expected_terminal == "run_completed":
        assert err is None and result is not None
        assert result.events == events  # RunResult.events equals the callback stream
        assert result.token_usage == {k: v for k, v in usage_sum(events).items()} | (
            {"reasoning_output_tokens": result.token_usage["reasoning_output_tokens"]}
            if "reasoning_output_tokens" in result.token_usage else {})
    elif expected_terminal == "run_failed":
        assert err is not None and err.code == "provider_error"
        assert err.provider_error["provider"] == "codex"
    else:
        assert err is not None and err.code == "cancelled"

    if "thread_id" in exp:
        started = of_type(events, "run_started")[0]["data"]
        assert started["thread_id"] == started["provider_session_id"] == exp["thread_id"]
        assert started["confirmation_source"] == "codex_cli.thread_started"
        assert types[1] == "message_sent" and events[1]["data"] == {"role": "user", "content": "Fix the failing test"}
    if "final_text" in exp:
        assert result.output["content"] == exp["final_text"]
        assert of_type(events, "message_received")[-1]["data"]["content"] == exp["final_text"]
    if isinstance(exp.get("tool_calls"), list):
        outcomes = tool_outcomes(events)
        for tc in exp["tool_calls"]:
            want = "failed" if tc["outcome"].startswith(("failed", "declined")) else "completed"
            assert outcomes[tc["item"]] == want, tc
            if tc.get("started_event") is False:  # synthesized right before its end
                i = next(i for i, e in enumerate(events) if e["type"] in ("tool_call_completed", "tool_call_failed")
                         and e["data"]["tool_call_id"] == tc["item"])
                assert events[i - 1]["type"] == "tool_call_started"
                assert events[i - 1]["data"]["tool_call_id"] == tc["item"]
            if "exit_code" in tc:
                end = next(e for e in events if e["type"] in ("tool_call_completed", "tool_call_failed")
                           and e["data"]["tool_call_id"] == tc["item"])
                assert end["data"]["tool_output"]["exit_code"] == tc["exit_code"]
        assert [t["id"] for t in result.output["tool_calls"]] == [tc["item"] for tc in exp["tool_calls"]]
    elif exp.get("tool_calls") == 0:
        assert result.output["tool_calls"] == []
    if exp.get("usage"):
        u = exp["usage"]
        tu = result.token_usage
        assert tu["input_tokens"] == u["input_tokens"] - u["cached_input_tokens"]  # cached is part of input
        assert tu["cache_read_tokens"] == u["cached_input_tokens"]
        assert tu["output_tokens"] == u["output_tokens"]
        assert tu["cache_creation_tokens"] == u.get("cache_write_input_tokens", 0)
        if "reasoning_output_tokens" in u:
            assert tu["reasoning_output_tokens"] == u["reasoning_output_tokens"]
        raw = of_type(events, "token_usage_updated")[0]["data"]["raw_usage"]
        assert raw == u
    if "uncached_input_tokens" in exp:
        assert result.token_usage["input_tokens"] == exp["uncached_input_tokens"]
    if exp.get("usage", "absent") is None:
        assert not of_type(events, "token_usage_updated")
    if "error_occurred" in exp:
        assert len(of_type(events, "error_occurred")) == exp["error_occurred"]
    if "failure_message_startswith" in exp:
        assert err.message.startswith(exp["failure_message_startswith"])
        assert events[-1]["data"]["error_message"] == err.message
    if exp.get("error_message_from") == "stderr":
        assert err.message == m["stderr"].strip().splitlines()[0]
        assert err.provider_error["kind"] == "process_error"
        assert err.provider_error["exit_code"] == m["exit_code"]
        assert err.provider_error["stderr"] == m["stderr"]
        assert "run_started" not in types
    if "bad_lines" in exp:
        parse_errors = [e["data"] for e in of_type(events, "error_occurred")
                        if e["data"]["provider_error"]["kind"] == "parse_error"]
        assert [d["details"]["line_no"] for d in parse_errors] == exp["bad_lines"]
        lines = fixture("codex", name).read_text().splitlines()
        for d in parse_errors:
            assert d["recoverable"] is True
            assert d["details"]["line"] == lines[d["details"]["line_no"] - 1][:200]
    if "open_tool_calls" in exp:
        reason = "cancelled" if expected_terminal == "run_cancelled" else "stream_incomplete"
        closed = [e["data"] for e in of_type(events, "tool_call_failed") if e["data"].get("reason") == reason]
        assert [d["tool_call_id"] for d in closed] == exp["open_tool_calls"]
    if name == "truncated.jsonl":
        assert err.provider_error["kind"] == "transport_exit"
        torn = [e for e in of_type(events, "error_occurred") if e["data"].get("details", {}).get("reason") == "torn"]
        assert len(torn) == 1 and torn[0]["data"]["details"]["line"]  # the cut raw line is kept
    if exp.get("todo_list_item"):
        assert result.output["todo_list"] and all(i["completed"] for i in result.output["todo_list"])
    if exp.get("resumed"):
        argv = fake_cli_calls(exe)[0]["argv"]
        assert argv[-3:] == ["resume", exp["thread_id"], "-"]
        assert of_type(events, "run_started")[0]["data"]["resumed"] is True


@pytest.mark.parametrize("name", sorted(CODEX))
def test_argv_matches_manifest(name):
    """The manifests' example argv is what the adapter builds for the equivalent options."""
    argv = CODEX[name]["argv"]
    wd = argv[argv.index("-C") + 1]
    sdk = {}
    if "--sandbox" in argv:
        sdk["sandbox"] = argv[argv.index("--sandbox") + 1]
    if "--skip-git-repo-check" in argv:
        sdk["skip_git_repo_check"] = True
    model = argv[argv.index("--model") + 1] if "--model" in argv else None
    adapter = CodexAdapter(working_directory=wd, model=model, sdk_opts=sdk)
    resume = argv[argv.index("resume") + 1] if "resume" in argv else None
    assert adapter.build_argv(resume_id=resume) == argv


def test_prompt_goes_to_stdin_with_transcript_replay(tmp_path):
    from types import SimpleNamespace
    adapter, exe = make(tmp_path, "simple_text.jsonl")
    transcript = SimpleNamespace(messages=[
        SimpleNamespace(role="user", content="Earlier question", tool_name=None, tool_call_id=None),
        SimpleNamespace(role="assistant", content="Earlier assistant reply", tool_name=None, tool_call_id=None),
        SimpleNamespace(role="assistant", content=None, tool_name="bash", tool_call_id="c1",
                        tool_input={"command": "ls"}),
        SimpleNamespace(role="tool", content=None, tool_name="bash", tool_call_id="c1", tool_output={"output": "a"}),
    ])
    session = Session.new("agent-1", context={"transcript": transcript},
                          metadata={"provider_sessions": {"codex": {"provider_session_id": "old-thread"}}})
    result, err, events, run, session = arun(run_adapter(adapter, {"prompt": "Current question"}, session=session))
    assert err is None
    call = fake_cli_calls(exe)[0]
    assert call["stdin"] == ("user: Earlier question\nassistant: Earlier assistant reply\n"
                             'assistant_tool_call(c1): bash {"command":"ls"}\n'
                             'tool_result(c1): bash {"output":"a"}\n\nCurrent question')
    assert "resume" not in call["argv"]  # a replayed transcript wins over native resume
    assert call["argv"][-1] == "-"


def test_resume_option_and_opt_out(tmp_path):
    adapter, exe = make(tmp_path, "resume.jsonl", resume="019ab4a9-8582-7a50-99a2-0d7089c768c8")
    arun(run_adapter(adapter))
    assert fake_cli_calls(exe)[0]["argv"][-3:] == ["resume", "019ab4a9-8582-7a50-99a2-0d7089c768c8", "-"]
    session = Session.new("a", metadata={"provider_sessions": {"codex": {"provider_session_id": "t-1"}}})
    arun(run_adapter(adapter, session=session, resume=False))
    assert "resume" not in fake_cli_calls(exe)[1]["argv"]


def test_script_first_run_then_native_resume(tmp_path):
    """Two runs of one session: the second resumes the thread the first one started."""
    script = [{"fixture": str(fixture("codex", "multi_tool.jsonl"))}, {"fixture": str(fixture("codex", "resume.jsonl"))}]
    adapter, exe = make(tmp_path, script=script)
    r1, err, events, run, session = arun(run_adapter(adapter, "fix it"))
    thread = of_type(events, "run_started")[0]["data"]["provider_session_id"]
    session = session.replace(metadata={"provider_sessions": {"codex": {"provider_session_id": thread}}})
    r2, err2, events2, _, _ = arun(run_adapter(adapter, "was that the only change?", session=session))
    assert err2 is None
    calls = fake_cli_calls(exe)
    assert "resume" not in calls[0]["argv"] and calls[1]["argv"][-3:] == ["resume", thread, "-"]
    assert calls[1]["stdin"] == "was that the only change?"
    assert r2.output["content"].startswith("Yes")


# -- options, permission modes, validation ----------------------------------------------------------

def test_permission_modes_map_to_flags():
    def argv(mode, **sdk):
        return CodexAdapter(working_directory="/w", permission_mode=mode, sdk_opts=sdk).build_argv()
    assert argv(None) == ["codex", "exec", "--json", "-C", "/w", "-"]
    assert argv("default") == argv(None) == argv(PermissionMode.ACCEPT_EDITS) == argv("plan")
    assert argv("full_auto")[3:5] == ["--sandbox", "workspace-write"]
    assert argv("full_auto", sandbox="read-only")[3:5] == ["--sandbox", "read-only"]
    dang = argv("dangerously_skip_permissions", sandbox="read-only")
    assert "--dangerously-bypass-approvals-and-sandbox" in dang and "--sandbox" not in dang
    ro = CodexAdapter(working_directory="/w", permission_mode="full_auto", sdk_opts={"full_auto": False}).run_options()
    assert ro["full_auto"] is True and ro["dangerously_bypass_approvals_and_sandbox"] is False
    assert CodexAdapter(working_directory="/w").run_options()["full_auto"] is False


def test_sdk_opts_and_system_prompt_flags():
    a = CodexAdapter(working_directory="/w", system_prompt="Be brief", model="m",
                     sdk_opts={"reasoning_effort": "high", "additional_directories": ["/x"], "config": {"a.b": 1},
                               "unknown_key": 1}, extra_args=["--oss"])
    argv = a.build_argv()
    assert argv[:3] == ["codex", "exec", "--json"] and argv[-1] == "-"
    assert ["--add-dir", "/x"] == argv[argv.index("--add-dir"):argv.index("--add-dir") + 2]
    cs = [argv[i + 1] for i, x in enumerate(argv) if x == "-c"]
    assert cs == ['model_reasoning_effort="high"', 'base_instructions="Be brief"', "a.b=1"]
    assert "--oss" in argv
    assert CodexAdapter(working_directory="/w").run_options().get("max_turns") is None
    assert CodexAdapter(working_directory="/w", max_turns=25).run_options()["max_turns"] == 25


@pytest.mark.parametrize("opts,message", [
    ({}, "working_directory is required"),
    ({"working_directory": ""}, "working_directory cannot be empty"),
    ({"working_directory": 5}, "working_directory must be a non-empty string"),
    ({"working_directory": "/w", "permission_mode": "yolo"}, "invalid permission mode"),
    ({"working_directory": "/w", "max_turns": 0}, "max_turns must be a positive integer"),
    ({"working_directory": "/w", "modle": "x"}, "Unknown codex option(s): modle"),
    ({"working_directory": "/w", "extra_args": "--x"}, "extra_args must be a list of strings"),
])
def test_construction_errors(opts, message):
    with pytest.raises(AsmError) as ei:
        CodexAdapter(**opts)
    assert ei.value.code == "validation_error"
    assert message in ei.value.message


def test_validate_config_and_capabilities():
    a = CodexAdapter(cwd="/w")
    assert a.working_directory == "/w"
    a.validate_config({"working_directory": "/x", "model": "m"})
    for cfg, msg in (({}, "working_directory is required"), ({"working_directory": ""}, "cannot be empty")):
        with pytest.raises(AsmError, match=msg):
            a.validate_config(cfg)
    with pytest.raises(AsmError):
        a.validate_config(["not", "a", "mapping"])
    caps = arun(a.capabilities())
    assert [c.name for c in caps] == ["streaming", "tool_use", "interrupt", "mcp", "file_operations", "bash"]
    assert all(c.enabled for c in caps)
    assert caps is not arun(a.capabilities())
    assert create_adapter("codex", working_directory="/w").name == "codex"


def test_cli_not_found_names_binary_and_install_hint(tmp_path):
    adapter = CodexAdapter(working_directory=str(tmp_path), executable=str(tmp_path / "nope" / "codex"))
    result, err, events, run, session = arun(run_adapter(adapter))
    assert err.code == "provider_error"
    assert err.provider_error["kind"] == "cli_not_found" and err.provider_error["provider"] == "codex"
    assert "codex CLI not found" in err.message and "npm install -g @openai/codex" in err.message
    assert [e["type"] for e in events] == ["error_occurred", "run_failed"]
    check_generic(events, run, session, "codex")


def test_empty_prompt_is_rejected_without_events(tmp_path):
    adapter, exe = make(tmp_path, "simple_text.jsonl")
    result, err, events, *_ = arun(run_adapter(adapter, "   "))
    assert err.code == "validation_error" and events == []
    assert fake_cli_calls(exe) == []


# -- SDK-style extension lines (reference mock scenarios) --------------------------------------------

MOCK_SIMPLE = "\n".join([
    '{"type":"thread.started","thread_id":"test-thread-id"}',
    '{"type":"turn.started","thread_id":"test-thread-id","turn_id":"turn-1"}',
    '{"type":"item.agent_message.delta","thread_id":"test-thread-id","turn_id":"turn-1",'
    '"item":{"id":"item-1","type":"agentMessage","text":"Test response"}}',
    '{"type":"thread.token_usage.updated","usage":{"input_tokens":10,"output_tokens":20}}',
    '{"type":"turn.completed","status":"completed","usage":{"input_tokens":10,"output_tokens":20}}',
]) + "\n"

MOCK_TOOL = "\n".join([
    '{"type":"thread.started","thread_id":"t"}',
    '{"type":"tool_call.requested","call_id":"call-1","tool_name":"test_tool","arguments":{"arg1":"value1"},'
    '"requires_approval":false}',
    '{"type":"tool_call.completed","call_id":"call-1","tool_name":"test_tool","output":{"result":"success"}}',
    '{"type":"item.agent_message.delta","item":{"id":"m","type":"agentMessage","content":[{"type":"text","text":"ok"}]}}',
    '{"type":"turn.completed","usage":{"input_tokens":30,"output_tokens":50}}',
]) + "\n"

MOCK_ERROR = "\n".join([
    '{"type":"thread.started","thread_id":"t"}',
    '{"type":"error","message":"Connection failed"}',
    '{"type":"turn.failed","error":{"message":"Connection failed","code":"test_error"}}',
]) + "\n"

MOCK_ABORT = ('{"type":"thread.started","thread_id":"t"}\n{"type":"turn.started"}\n'
              '{"type":"turn.aborted","turn_id":"x","reason":"cancelled"}\n')


def test_mock_simple_response_does_not_double_count_usage(tmp_path):
    adapter, _ = make(tmp_path, stdout=MOCK_SIMPLE)
    result, err, events, run, session = arun(run_adapter(adapter))
    check_generic(events, run, session, "codex")
    assert "Test response" in result.output["content"]
    streamed = of_type(events, "message_streamed")
    assert streamed[0]["data"]["delta"] == "Test response" and streamed[0]["data"]["turn_id"] == "turn-1"
    assert of_type(events, "message_received")[0]["data"]["content"] == "Test response"
    assert len(of_type(events, "token_usage_updated")) == 1
    assert result.token_usage["input_tokens"] == 10 and result.token_usage["output_tokens"] == 20
    assert events[-1]["data"]["stop_reason"] == "completed"


def test_mock_tool_call_extension_lines(tmp_path):
    adapter, _ = make(tmp_path, stdout=MOCK_TOOL)
    result, err, events, run, session = arun(run_adapter(adapter))
    check_generic(events, run, session, "codex")
    started = of_type(events, "tool_call_started")[0]["data"]
    assert started["tool_input"] == {"arg1": "value1"} and started["tool_name"] == "test_tool"
    done = of_type(events, "tool_call_completed")[0]["data"]
    assert done["tool_output"]["result"] == "success" and done["tool_input"] == {"arg1": "value1"}
    assert result.output["tool_calls"][0]["id"] == "call-1" and result.output["content"] == "ok"


def test_mock_error_kind_is_vocabulary_normalized(tmp_path):
    adapter, _ = make(tmp_path, stdout=MOCK_ERROR)
    result, err, events, run, session = arun(run_adapter(adapter))
    check_generic(events, run, session, "codex")
    assert err.provider_error == {"provider": "codex", "kind": "unknown", "message": "Connection failed",
                                  "exit_code": None, "stderr": None, "truncated": None}
    assert len(of_type(events, "error_occurred")) == 1  # turn.failed repeats the same message


def test_mock_turn_aborted_is_cancellation(tmp_path):
    adapter, _ = make(tmp_path, stdout=MOCK_ABORT)
    result, err, events, run, session = arun(run_adapter(adapter))
    assert err.code == "cancelled" and [e["type"] for e in events][-1] == "run_cancelled"
    assert len(of_type(events, "run_cancelled")) == 1


def test_metadata_confirmation(tmp_path):
    line = ('{"type":"thread.started","thread_id":"t","metadata":{"model":"gpt-5.3-codex",'
            '"config":{"model_reasoning_effort":"xhigh"}}}\n{"type":"turn.completed","usage":{}}\n')
    adapter, _ = make(tmp_path, stdout=line, model="gpt-5.3-codex")
    result, err, events, *_ = arun(run_adapter(adapter))
    d = events[0]["data"]
    assert d["configured_model"] == d["confirmed_model"] == d["model"] == "gpt-5.3-codex"
    assert d["confirmed_reasoning_effort"] == "xhigh"


def test_web_search_item_regression(tmp_path):
    lines = ('{"type":"thread.started","thread_id":"t"}\n'
             '{"type":"item.completed","item":{"id":"search_1","type":"webSearch","query":""}}\n'
             '{"type":"turn.completed","usage":{"input_tokens":1,"output_tokens":1}}\n')
    adapter, _ = make(tmp_path, stdout=lines)
    result, err, events, *_ = arun(run_adapter(adapter))
    assert err is None
    assert result.output["tool_calls"][0]["id"] == "search_1"
    assert result.output["tool_calls"][0]["name"] == "web_search"


# -- cancellation, timeouts, concurrency, isolation --------------------------------------------------

def test_cancel_stubborn_cli_ends_fast_and_kills_the_group(tmp_path):
    adapter, exe = make(tmp_path, "cancelled_sigint.jsonl", hang=True, ignore_signals=["SIGINT"], spawn_child=True)

    err, events, elapsed, run, _, cancelled = cancel_when_a_tool_runs(adapter, "bench")
    assert cancelled == run.id
    assert err.code == "cancelled"
    assert elapsed < 2.0
    types = [e["type"] for e in events]
    assert types[-1] == "run_cancelled" and types.count("run_cancelled") == 1
    failed = of_type(events, "tool_call_failed")
    assert [d["data"]["reason"] for d in failed] == ["cancelled"]
    call = fake_cli_calls(exe)[0]
    # leader and grandchild are gone, within the same 2 s of the cancel
    assert group_gone_within(call["pgid"], 2.0 - elapsed) == []
    with pytest.raises(AsmError) as ei:
        arun(adapter.cancel(run.id))  # finished run
    assert ei.value.code == "run_not_found"


def test_cancel_from_inside_the_callback(tmp_path):
    adapter, exe = make(tmp_path, "cancelled_sigint.jsonl", hang=True)

    async def scenario():
        session = Session.new("a")
        run = Run.new(session.id, input="x")
        events: list = []

        async def cb(ev):
            events.append(ev)
            if ev["type"] == "tool_call_started":
                await adapter.cancel(run.id)  # policy enforcement does exactly this

        with pytest.raises(AsmError) as ei:
            await adapter.execute(run, session, event_callback=cb)
        return ei.value, events

    err, events = arun(scenario())
    assert err.code == "cancelled" and events[-1]["type"] == "run_cancelled"


def test_cancel_unknown_run():
    a = CodexAdapter(working_directory="/w")
    with pytest.raises(AsmError) as ei:
        arun(a.cancel("non-existent-run-id"))
    assert ei.value.code == "run_not_found" and "non-existent-run-id" in ei.value.message


def test_three_concurrent_executes(tmp_path):
    adapter, exe = make(tmp_path, "simple_text.jsonl")

    async def scenario():
        return await asyncio.gather(*(run_adapter(adapter, f"q{i}") for i in range(3)))

    outs = arun(scenario())
    run_ids = set()
    for result, err, events, run, _session in outs:
        assert err is None and result.output["content"] == "The capital of France is Paris."
        assert {e["run_id"] for e in events} == {run.id}
        run_ids.add(run.id)
    assert len(run_ids) == 3
    assert sorted(c["stdin"] for c in fake_cli_calls(exe)) == ["q0", "q1", "q2"]


def test_timeout_stops_the_cli(tmp_path):
    adapter, exe = make(tmp_path, "cancelled_sigint.jsonl", hang=True)
    # the CLI hangs after its output: the deadline must outlast the fake CLI's own start (a Python
    # process; 300 ms was not always enough on a loaded CI box, and the call was never recorded)
    result, err, events, run, session = arun(run_adapter(adapter, timeout=2000))
    assert err.code == "provider_timeout" and err.provider_error["kind"] == "timeout"
    assert events[-1]["type"] == "run_failed"
    check_generic(events, run, session, "codex")
    calls = fake_cli_calls(exe)
    assert len(calls) == 1, calls
    assert group_gone_within(calls[0]["pgid"], 2.0) == []


def test_worker_failure_isolation(tmp_path):
    adapter, exe = make(tmp_path, "simple_text.jsonl")

    def bad(ev):
        if ev["type"] == "message_sent":
            raise RuntimeError("callback bug")

    result, err, events, *_ = arun(run_adapter(adapter, callback=bad))
    assert err.code == "internal_error" and "callback bug" in err.message
    assert events[-1]["type"] == "run_failed"
    assert arun(adapter.capabilities())
    result, err, *_ = arun(run_adapter(adapter))
    assert err is None and result.output["content"]


def test_fixtures_dir_is_the_repositorys_own(fixtures_dir):
    assert fixtures_dir.resolve() == FIXTURES.resolve()
