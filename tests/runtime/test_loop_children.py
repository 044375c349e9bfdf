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
def test_a_start_on_the_runtime_loop_has_no_suspension_point_and_a_failed_one_kills_the_group(tmp_path, monkeypatch):
    """The runtime loop connects a new child's pipes as it makes the transport (no
    ``_connect_pipes`` task, no waiter): ``create_subprocess_exec`` returns without yielding to
    the loop, so no cancel can land between the fork and the returned process, and no task
    shields the start. A start that fails after the fork (here: connecting stdout) kills the
    child's whole new process group (asyncio kills the leader alone), so a background child it
    already started is gone too, and the error reaches the caller."""
    import asyncio

    from asm_nb.core.errors import AsmError
    from asm_nb.process.managed import ManagedProcess

    lp = loop.get_loop()
    created: list[str] = []

    def factory(lp_, coro, context=None):
        created.append(getattr(coro, "__qualname__", ""))
        return asyncio.Task(coro, loop=lp_, context=context)

    async def start_in_one_step() -> bool:
        start = asyncio.create_subprocess_exec("/bin/sh", "-c", "exit 3", stdout=asyncio.subprocess.PIPE,
                                               start_new_session=True)
        suspensions = 0
        while True:  # drive the coroutine by hand, counting the times it waits for the loop
            try:
                yielded = start.send(None)
            except StopIteration as done:
                proc = done.value
                break
            suspensions += 1
            while yielded is not None and not yielded.done():
                await asyncio.sleep(0.001)
            if yielded is not None:
                yielded._asyncio_future_blocking = False  # handed back as the task would
        assert proc.stdout is not None  # the streams are there at once
        return suspensions == 0 and await proc.wait() == 3

    lp.call_soon_threadsafe(lp.set_task_factory, factory)
    try:
        assert loop.run_sync(start_in_one_step())
        assert loop.run_sync(wexec.run("/bin/sh", ["-c", "echo hi"])).stdout == "hi\n"
    finally:
        lp.call_soon_threadsafe(lp.set_task_factory, None)
    assert not any("_connect_pipes" in n or n == "create_subprocess_exec" for n in created), created

    marker = tmp_path / "pid"
    real = type(lp)._make_read_pipe_transport

    def failing(self, pipe, protocol, waiter=None, extra=None):
        deadline = time.monotonic() + 10  # the child has started its background child
        while not (marker.exists() and marker.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.01)
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(type(lp), "_make_read_pipe_transport", failing)
    with pytest.raises(AsmError) as err:
        loop.run_sync(ManagedProcess.spawn(argv=["sh", "-c", f"sleep 30 & echo $! > {marker}; wait"]))
    monkeypatch.setattr(type(lp), "_make_read_pipe_transport", real)
    assert "Too many open files" in str(err.value)
    pid = int(marker.read_text())
    deadline = time.monotonic() + 3
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(pid), f"background child {pid} survived a failed start"


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
