"""process.exec: run / run_streaming per docs/workspace.md, running commands."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import pytest

from asm_nb.core.errors import AsmError
from asm_nb.process import exec as wexec


def arun(coro, timeout=20):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def collect(agen):
    return [item async for item in agen]


def test_echo():
    r = arun(wexec.run("echo", ["hello"]))
    assert r.stdout == "hello\n" and r.exit_code == 0 and r.command == "echo" and r.args == ["hello"]
    assert r.stderr == "" and r.timed_out is False and r.duration_ms >= 0
    assert r.cwd == os.getcwd()


def test_false_is_a_result_not_an_error():
    assert arun(wexec.run("false")).exit_code != 0
    assert arun(wexec.run("sh", ["-c", "exit 42"])).exit_code == 42


def test_timeout_kills_and_keeps_partial_output():
    t0 = time.monotonic()
    r = arun(wexec.run("sh", ["-c", "echo started; sleep 10"], timeout_ms=200))
    assert r.timed_out and r.exit_code == 124 and r.duration_ms >= 200
    assert r.stdout == "started\n"
    assert time.monotonic() - t0 < 3


def test_cwd(tmp_path):
    r = arun(wexec.run("pwd", cwd="/tmp"))
    assert r.stdout.strip() == os.path.realpath("/tmp") or r.stdout.strip() == "/tmp"
    with pytest.raises(AsmError, match="cwd does not exist"):
        arun(wexec.run("pwd", cwd=str(tmp_path / "missing")))
    with pytest.raises(AsmError, match="cwd must be a non-empty string"):
        arun(wexec.run("pwd", cwd=""))


def test_stderr_is_merged():
    r = arun(wexec.run("sh", ["-c", "echo err >&2"]))
    assert "err" in r.stdout and r.stderr == ""


def test_env_added_to_inherited(monkeypatch):
    monkeypatch.setenv("ASM_EXEC_INHERITED", "yes")
    r = arun(wexec.run("sh", ["-c", "echo $ASM_EXEC_VAR/$ASM_EXEC_INHERITED"], env={"ASM_EXEC_VAR": 7}))
    assert r.stdout == "7/yes\n"
    r = arun(wexec.run("sh", ["-c", "echo $A$B"], env=[("A", "x"), ("B", "y")]))
    assert r.stdout == "xy\n"


def test_output_cap_and_on_output_sees_everything():
    seen = []
    r = arun(wexec.run("yes", timeout_ms=300, max_output_bytes=1024, on_output=seen.append))
    assert r.timed_out
    assert len(r.stdout.encode()) <= 1024
    total = sum(len(c.encode()) for _, c in seen)
    assert total > 1024 and all(kind == "stdout" for kind, _ in seen)


def test_on_output_errors_are_swallowed():
    def boom(_):
        raise RuntimeError("hook failed")

    assert arun(wexec.run("echo", ["ok"], on_output=boom)).stdout == "ok\n"


def test_unknown_command():
    with pytest.raises(AsmError) as ei:
        arun(wexec.run("no-such-command-asm-xyz"))
    assert ei.value.code == "command_not_found"
    assert ei.value.message == "Command not found: no-such-command-asm-xyz"


def test_invalid_utf8_is_replaced():
    r = arun(wexec.run(sys.executable, ["-c", "import sys; sys.stdout.buffer.write(b'a\\xffb')"]))
    assert r.stdout == "a\ufffdb"


def test_streaming_exit_codes():
    items = arun(collect(wexec.run_streaming("true")))
    assert items[-1] == ("exit", 0)
    items = arun(collect(wexec.run_streaming("false")))
    assert items[-1][0] == "exit" and items[-1][1] != 0
    items = arun(collect(wexec.run_streaming("echo", ["hi"])))
    assert ("stdout", "hi\n") in items and items[-1] == ("exit", 0)


def test_streaming_idle_timeout():
    t0 = time.monotonic()
    items = arun(collect(wexec.run_streaming("sleep", ["10"], timeout_ms=200)))
    assert items == [("exit", 124)] and time.monotonic() - t0 < 3


def test_streaming_start_failure_yields_error():
    items = arun(collect(wexec.run_streaming("no-such-command-asm-xyz")))
    assert len(items) == 1 and items[0][0] == "error" and items[0][1].code == "command_not_found"


def test_streaming_close_early_kills_process():
    async def main():
        agen = wexec.run_streaming("sh", ["-c", "echo $$; exec sleep 30"])
        kind, text = await agen.__anext__()
        pid = int(text.strip())
        await agen.aclose()
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().split(") ")[1].startswith("Z"):
                        return True
            except (ProcessLookupError, FileNotFoundError):
                return True
            await asyncio.sleep(0.02)
        return False

    assert arun(main())


def test_cancel_kills_process():
    async def main():
        started = asyncio.Event()
        task = asyncio.ensure_future(wexec.run("sh", ["-c", "echo go; exec sleep 30"],
                                               on_output=lambda _: started.set()))
        await asyncio.wait_for(started.wait(), 5)
        t0 = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - t0

    assert arun(main()) < 2


def test_run_sync_inside_and_outside_a_loop():
    assert wexec.run_sync("echo", ["x"]).stdout == "x\n"

    async def inside():
        return wexec.run_sync("echo", ["y"]).stdout

    assert arun(inside()) == "y\n"
