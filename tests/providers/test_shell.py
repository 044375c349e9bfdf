"""ShellAdapter (docs/providers.md, shell) and the adapter contract."""

from __future__ import annotations

import asyncio
import os
import re
import sys

import pytest

from asm_nb.core.errors import AsmError
from asm_nb.core.run import Run
from asm_nb.core.session import Session
from asm_nb.providers import create_adapter
from asm_nb.providers.shell import ShellAdapter

from ._cli_support import group_members


def arun(coro, timeout=20):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def new_run(inp):
    s = Session.new("test-agent")
    return Run.new(s.id, input=inp), s


async def execute(adapter, inp, **kw):
    run, session = new_run(inp)
    seen = []
    result = await adapter.execute(run, session, event_callback=seen.append, **kw)
    return run, session, result, seen


def types(events):
    return [e["type"] for e in events]


async def start_until_streamed(adapter, inp):
    """Start a run of ``inp`` in the background; ``(task, run, seen events)`` once it streamed output."""
    run, session = new_run(inp)
    seen = []
    streamed = asyncio.Event()

    def cb(ev):
        seen.append(ev)
        if ev["type"] == "message_streamed":
            streamed.set()

    task = asyncio.ensure_future(adapter.execute(run, session, event_callback=cb))
    await asyncio.wait_for(streamed.wait(), 5)
    return task, run, seen


def test_registry_and_capabilities():
    a = create_adapter("shell")
    assert isinstance(a, ShellAdapter) and a.name == "shell"
    caps = arun(a.capabilities())
    assert [(c.name, c.type.value) for c in caps] == [("command_execution", "code_execution"),
                                                      ("streaming", "sampling")]


def test_echo_string_input_streams_and_completes(tmp_path):
    a = ShellAdapter(cwd=str(tmp_path))
    run, session, result, seen = arun(execute(a, "echo hello"))
    assert types(seen) == ["run_started", "message_sent", "tool_call_started", "message_streamed",
                           "tool_call_completed", "message_received", "run_completed"]
    assert result.events == seen
    for e in seen:
        assert e["provider"] == "shell" and e["session_id"] == session.id and e["run_id"] == run.id
        assert e["timestamp"].tzinfo is not None
    assert seen[0]["data"] == {"cwd": str(tmp_path), "command": "echo hello"}
    assert seen[1]["data"] == {"role": "user", "content": "echo hello"}
    started = seen[2]["data"]
    assert re.fullmatch(r"tc_[0-9a-f]{16}", started["tool_call_id"]) and started["tool_name"] == "bash"
    assert started["tool_input"] == {"command": "/bin/sh", "args": ["-c", "echo hello"], "cwd": str(tmp_path)}
    assert seen[3]["data"] == {"content": "hello\n", "delta": "hello\n"}
    done = seen[4]["data"]
    assert done["tool_call_id"] == started["tool_call_id"]
    assert done["tool_output"]["output"] == "hello\n" and done["tool_output"]["exit_code"] == 0
    assert seen[5]["data"] == {"content": "hello\n", "role": "tool"}
    assert seen[6]["data"]["stop_reason"] == "exit_code_0" and seen[6]["data"]["exit_code"] == 0
    assert result.output["content"] == "hello\n" and result.output["exit_code"] == 0
    assert result.output["stderr"] == "" and result.output["timed_out"] is False
    assert result.output["tool_calls"] == []
    assert result.token_usage == {"input_tokens": 0, "output_tokens": 0, "cache_read_tokens": 0,
                                  "cache_creation_tokens": 0}


def test_default_cwd_is_current_directory():
    run, session, result, seen = arun(execute(ShellAdapter(), "pwd"))
    assert seen[0]["data"]["cwd"] == os.getcwd()
    assert result.output["content"].strip() == os.getcwd()


def test_false_returns_result_with_run_failed():
    run, session, result, seen = arun(execute(ShellAdapter(), "false"))
    assert types(seen)[-3:] == ["tool_call_failed", "error_occurred", "run_failed"]
    assert seen[-2]["data"]["error_code"] == "command_failed"
    assert seen[-2]["data"]["error_message"] == "Command exited with code 1"
    assert seen[-1]["data"]["error_code"] == "command_failed" and seen[-1]["data"]["exit_code"] == 1
    assert result.output["exit_code"] == 1 and result.events == seen


def test_success_exit_codes():
    run, session, result, seen = arun(execute(ShellAdapter(success_exit_codes=[0, 1]), "exit 1"))
    assert "run_failed" not in types(seen) and seen[-1]["type"] == "run_completed"
    assert seen[-1]["data"]["stop_reason"] == "exit_code_1"


def test_timeout_returns_result():
    a = ShellAdapter(timeout_ms=200)
    run, session, result, seen = arun(execute(a, {"command": "sleep", "args": ["10"]}))
    assert types(seen)[-3:] == ["tool_call_failed", "error_occurred", "run_failed"]
    assert seen[-3]["data"]["tool_output"]["timed_out"] is True
    assert seen[-2]["data"] == {"error_code": "command_timeout", "error_message": "Command timed out after 200ms"}
    assert seen[-1]["data"]["error_code"] == "command_timeout" and seen[-1]["data"]["duration_ms"] >= 200
    assert result.output["timed_out"] is True and result.output["exit_code"] == 124


def test_input_timeout_override():
    run, session, result, seen = arun(execute(ShellAdapter(), {"command": "sleep", "args": [10],
                                                               "timeout_ms": 150}))
    assert result.output["timed_out"] is True


def test_env_option_and_input_env(tmp_path):
    a = ShellAdapter(env={"ASM_SHELL_A": "1", "ASM_SHELL_B": "x"})
    _, _, result, _ = arun(execute(a, "echo $ASM_SHELL_A$ASM_SHELL_B"))
    assert result.output["content"] == "1x\n"
    _, _, result, _ = arun(execute(a, {"command": "sh", "args": ["-c", "echo $ASM_SHELL_A$ASM_SHELL_B"],
                                       "env": [("ASM_SHELL_B", "y"), ("bad",)]}))
    assert result.output["content"] == "1y\n"


def test_output_cap():
    a = ShellAdapter(max_output_bytes=1024, timeout_ms=300)
    _, _, result, seen = arun(execute(a, {"command": "yes", "streaming": False}))
    assert len(result.output["content"].encode()) <= 1024
    assert "message_streamed" not in types(seen)


def test_structured_input_and_display():
    run, session, result, seen = arun(execute(ShellAdapter(), {"command": "echo", "args": ["a", 1]}))
    assert seen[0]["data"]["command"] == "echo a 1"
    assert seen[2]["data"]["tool_input"]["command"] == "echo" and seen[2]["data"]["tool_input"]["args"] == ["a", "1"]
    assert result.output["content"] == "a 1\n"


def test_messages_input():
    inp = {"messages": [{"role": "system", "content": "ignored"}, {"role": "user", "content": "echo hi"}]}
    _, _, result, _ = arun(execute(ShellAdapter(), inp))
    assert result.output["content"] == "hi\n"


def test_invalid_inputs_raise_without_events():
    a = ShellAdapter()
    for inp, msg in [({"args": ["x"]}, "input.command is required"),
                     (42, "Unsupported input format for shell execution")]:
        seen = []
        run, session = new_run(inp)
        with pytest.raises(AsmError) as ei:
            arun(a.execute(run, session, event_callback=seen.append))
        assert ei.value.code == "validation_error" and ei.value.message == msg and seen == []


def test_command_policy():
    cases = [(ShellAdapter(denied_commands=["rm"]), "rm -rf /nonexistent", "Command 'rm' is denied"),
             (ShellAdapter(allowed_commands=["echo"]), "ls", "Command 'ls' is not in the allowed list"),
             (ShellAdapter(allowed_commands=["rm"], denied_commands=["rm"]), {"command": "/bin/rm"},
              "Command 'rm' is denied")]
    for a, inp, msg in cases:
        seen = []
        run, session = new_run(inp)
        with pytest.raises(AsmError) as ei:
            arun(a.execute(run, session, event_callback=seen.append))
        assert ei.value.code == "policy_violation" and ei.value.message == msg and seen == []
    _, _, result, _ = arun(execute(ShellAdapter(allowed_commands=["/usr/bin/echo"]), "echo ok | cat"))
    assert result.output["content"] == "ok\n"


def test_unknown_command_fails_run_and_raises():
    a = ShellAdapter()
    run, session = new_run({"command": "no-such-command-asm-xyz"})
    seen = []
    with pytest.raises(AsmError) as ei:
        arun(a.execute(run, session, event_callback=seen.append))
    assert ei.value.code == "command_not_found"
    assert types(seen) == ["run_started", "message_sent", "tool_call_started", "tool_call_failed",
                           "error_occurred", "run_failed"]
    assert seen[3]["data"]["tool_output"] == {"output": "", "exit_code": None}
    assert seen[-1]["data"]["error_code"] == "command_not_found"


def test_cwd_validation(tmp_path):
    with pytest.raises(AsmError, match="cwd cannot be empty"):
        ShellAdapter(cwd="")
    with pytest.raises(AsmError, match="cwd must be a non-empty string"):
        ShellAdapter(cwd=5)
    with pytest.raises(AsmError, match="cwd does not exist"):
        ShellAdapter(cwd=str(tmp_path / "missing"))
    a = ShellAdapter()
    a.validate_config({})
    with pytest.raises(AsmError, match="cwd cannot be empty"):
        a.validate_config({"cwd": ""})
    # a bad cwd override in the input fails the run after it started
    run, session = new_run({"command": "pwd", "cwd": str(tmp_path / "missing")})
    seen = []
    with pytest.raises(AsmError, match="cwd does not exist"):
        arun(a.execute(run, session, event_callback=seen.append))
    assert seen[-1]["type"] == "run_failed"


def test_cancel_kills_group_closes_tool_and_emits_run_cancelled():
    a = ShellAdapter()

    async def main():
        task, run, seen = await start_until_streamed(a, "echo $$; sleep 30 & sleep 30; wait")
        assert await a.cancel(run.id) == run.id
        with pytest.raises(AsmError) as ei:
            await asyncio.wait_for(task, 3)
        pgid = int(next(e for e in seen if e["type"] == "message_streamed")["data"]["content"].split()[0])
        deadline = asyncio.get_running_loop().time() + 2
        while group_members(pgid) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        return ei.value, seen, group_members(pgid)

    err, seen, left = arun(main())
    assert left == [], f"processes left in the command's group: {left}"
    assert err.code == "cancelled"
    assert types(seen)[-2:] == ["tool_call_failed", "run_cancelled"]
    assert seen[-2]["data"]["reason"] == "cancelled"
    assert types(seen).count("run_cancelled") == 1


def test_cancel_from_inside_callback():
    a = ShellAdapter()

    async def main():
        run, session = new_run("echo go; exec sleep 30")
        seen = []

        async def cb(ev):
            seen.append(ev)
            if ev["type"] == "message_streamed":
                await a.cancel(run.id)

        with pytest.raises(AsmError) as ei:
            await asyncio.wait_for(a.execute(run, session, event_callback=cb), 5)
        return ei.value, seen

    err, seen = arun(main())
    assert err.code == "cancelled" and seen[-1]["type"] == "run_cancelled"


def test_cancel_unknown_run():
    with pytest.raises(AsmError) as ei:
        arun(ShellAdapter().cancel("non-existent-run-id"))
    assert ei.value.code == "run_not_found" and ei.value.message == "Run not found: non-existent-run-id"


def test_three_concurrent_executes():
    a = ShellAdapter()

    async def main():
        return await asyncio.gather(*[execute(a, f"echo run{i}") for i in range(3)])

    outs = arun(main())
    assert sorted(r.output["content"] for _, _, r, _ in outs) == ["run0\n", "run1\n", "run2\n"]
    for run, _, result, seen in outs:
        assert result.events == seen and all(e["run_id"] == run.id for e in seen)
    assert a._active == {}


def test_port_deadline_cancellation_emits_nothing_and_kills():
    a = ShellAdapter()

    async def main():
        task, run, seen = await start_until_streamed(a, "echo $$; exec sleep 30")
        pid = int(seen[-1]["data"]["content"].strip())
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return pid, seen

    pid, seen = arun(main())
    assert "run_cancelled" not in types(seen) and "run_failed" not in types(seen)
    with open(f"/proc/{pid}/stat") if os.path.exists(f"/proc/{pid}") else open(os.devnull) as f:
        stat = f.read()
    assert stat == "" or stat.split(") ")[1].startswith("Z")


def test_worker_failure_isolation(monkeypatch):
    from asm_nb.providers import shell as shell_mod

    real_run = shell_mod.wexec.run

    async def broken_run(*args, **kwargs):
        raise RuntimeError("exec bug")

    a = ShellAdapter()
    monkeypatch.setattr(shell_mod.wexec, "run", broken_run)
    run, session = new_run("echo x")
    seen = []
    with pytest.raises(AsmError) as ei:
        arun(a.execute(run, session, event_callback=seen.append))
    assert ei.value.code == "internal_error" and "exec bug" in ei.value.message
    assert seen[-1]["type"] == "run_failed" and types(seen).count("run_failed") == 1
    monkeypatch.setattr(shell_mod.wexec, "run", real_run)
    _, _, result, _ = arun(execute(a, "echo again"))
    assert result.output["content"] == "again\n"
    assert arun(a.capabilities())


def test_python_unicode_output():
    _, _, result, _ = arun(execute(ShellAdapter(), {"command": sys.executable,
                                                    "args": ["-c", "print('héllo ✓')"]}))
    assert result.output["content"] == "héllo ✓\n"


def test_a_command_ended_by_sigint_then_cancelled_is_cancelled_not_failed():
    """The notebook's stop button interrupts the kernel's process group; a child still being
    spawned (not yet in its own group) can receive that SIGINT before the run's cancel arrives a
    few ms later. The run ends cancelled, as the user asked, not failed with exit 130."""
    a = ShellAdapter()

    async def go():
        run, session = new_run("echo x; kill -INT $$; sleep 5")
        seen = []

        def cb(ev):
            seen.append(ev)
            if ev["type"] == "message_streamed":  # the command runs: its SIGINT comes, then the cancel
                asyncio.get_running_loop().call_later(0.05, lambda: asyncio.ensure_future(a.cancel(run.id)))

        with pytest.raises(AsmError) as ei:
            await a.execute(run, session, event_callback=cb)
        return ei.value, seen

    err, seen = arun(go())
    assert err.code == "cancelled" and types(seen)[-1] == "run_cancelled"
    assert "run_failed" not in types(seen)


def test_a_command_ended_by_sigint_without_a_cancel_still_fails():
    a = ShellAdapter()
    run, _, result, seen = arun(execute(a, "kill -INT $$"))
    assert types(seen)[-1] == "run_failed" and result.output["exit_code"] == 130
