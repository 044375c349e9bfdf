"""The runtime loop reaps its child processes without a thread per child (a pidfd on the loop on
Linux, as Python 3.12+ does by default): a command started through ``run_once`` costs no thread
start and no extra thread switches, and exit codes, timeouts and cancellation still work."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from asm_nb.process import exec as wexec
from asm_nb.runtime import loop

linux_pidfd = pytest.mark.skipif(sys.platform != "linux" or not hasattr(os, "pidfd_open"),
                                 reason="pidfd child watching is Linux-only")


@linux_pidfd
def test_commands_on_the_runtime_loop_start_no_thread(monkeypatch):
    loop.get_loop()
    started: list[str] = []
    real_start = threading.Thread.start

    def counting_start(self, *a, **kw):
        started.append(self.name)
        return real_start(self, *a, **kw)

    monkeypatch.setattr(threading.Thread, "start", counting_start)
    codes = [loop.run_sync(wexec.run("/bin/sh", ["-c", f"exit {i % 4}"])).exit_code for i in range(20)]
    assert codes == [i % 4 for i in range(20)]
    assert started == []  # asyncio's default on Python < 3.12 starts one waiter thread per child


@linux_pidfd
def test_timeout_and_cancel_still_reap_the_child():
    res = loop.run_sync(wexec.run("/bin/sh", ["-c", "sleep 30"], timeout_ms=200))
    assert res.timed_out and res.exit_code == wexec.TIMEOUT_EXIT_CODE

    async def cancelled():
        import asyncio

        task = asyncio.ensure_future(wexec.run("/bin/sh", ["-c", "echo $$; sleep 30"]))
        await asyncio.sleep(0.3)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return True
        return False

    t0 = time.monotonic()
    assert loop.run_sync(cancelled()) is True
    assert time.monotonic() - t0 < 10


def test_run_once_completes_through_the_runtime_loop(tmp_path):
    import asm_nb

    r = asm_nb.run_once("echo hi; exit 0", provider="shell", store="memory://")
    assert (r.status, r.output) == ("completed", "hi\n")
    r = asm_nb.run_once("exit 5", provider="shell", store="memory://")
    assert r.status == "failed" and r.error.code == "command_failed"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:].split()[0] not in ("Z", "X")


@linux_pidfd
@pytest.mark.skipif(sys.version_info >= (3, 12), reason="the runtime loop watches children itself on < 3.12 only")
def test_a_start_cancelled_on_the_runtime_loop_kills_the_whole_new_group(tmp_path, monkeypatch):
    """The runtime loop starts a child without a shielding task: a cancel while asyncio still
    connects the child's pipes (widened here) kills the child's whole new process group, not
    only its leader (asyncio's own behaviour), so a background child it started is gone too."""
    import asyncio
    from asyncio import base_subprocess

    from asm_nb.process.managed import ManagedProcess

    marker = tmp_path / "pid"
    real = base_subprocess.BaseSubprocessTransport._connect_pipes

    async def slow_connect(self, waiter):
        await asyncio.sleep(1.0)  # "connecting the pipes": the child runs meanwhile
        return await real(self, waiter)

    monkeypatch.setattr(base_subprocess.BaseSubprocessTransport, "_connect_pipes", slow_connect)
    created: list[str] = []

    def factory(lp, coro, context=None):
        created.append(getattr(coro, "__qualname__", ""))
        return asyncio.Task(coro, loop=lp, context=context)

    lp = loop.get_loop()
    lp.call_soon_threadsafe(lp.set_task_factory, factory)
    try:
        fut = loop.submit(ManagedProcess.spawn(argv=["sh", "-c", f"sleep 30 & echo $! > {marker}; wait"]))
        deadline = time.monotonic() + 10
        while not (marker.exists() and marker.read_text().strip()):
            assert time.monotonic() < deadline, "the child never started"
            time.sleep(0.01)
        assert not fut.done()
        fut.cancel()
        pid = int(marker.read_text())
        deadline = time.monotonic() + 3
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not _alive(pid), f"background child {pid} survived a cancel during start"
    finally:
        lp.call_soon_threadsafe(lp.set_task_factory, None)
    assert "create_subprocess_exec" not in created  # no task shields the start on this loop


def test_a_child_reads_stdin_from_dev_null_opened_once(monkeypatch, tmp_path):
    """Every command without stdin input reads ``/dev/null`` through one descriptor kept open
    (``DEVNULL`` made subprocess open and close it per command): 0 opens for 10 commands."""
    loop.run_sync(wexec.run("/bin/sh", ["-c", "true"]))  # the descriptor exists
    opened: list[str] = []
    real = os.open

    def counting(path, *a, **kw):
        if os.fspath(path) == os.devnull:
            opened.append(path)
        return real(path, *a, **kw)

    monkeypatch.setattr(os, "open", counting)
    probe = tmp_path / "stdin"
    for _ in range(10):
        res = loop.run_sync(wexec.run("/bin/sh", ["-c", f"wc -c > {probe}; readlink /proc/self/fd/0"]))
        assert res.exit_code == 0 and res.stdout.strip() == os.devnull and probe.read_text().strip() == "0"
    assert opened == []


def test_a_closed_dev_null_descriptor_is_opened_again(tmp_path):
    from asm_nb.process import launch

    loop.run_sync(wexec.run("/bin/sh", ["-c", "true"]))
    fd = launch._devnull()
    os.close(fd)  # someone closed it...
    other = os.open(tmp_path / "other", os.O_RDWR | os.O_CREAT)  # ...and the number was reused
    try:
        res = loop.run_sync(wexec.run("/bin/sh", ["-c", "readlink /proc/self/fd/0"]))
        assert res.stdout.strip() == os.devnull
    finally:
        os.close(other)
