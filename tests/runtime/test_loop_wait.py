"""How a synchronous caller (``run_once``, ``%%asm``) waits for the runtime loop, counted.

On Linux the caller sleeps on its thread's eventfd, written by the future's done callback: the
loop thread wakes it with a system call made without the GIL, instead of releasing the caller's
lock inside ``Future.set_result`` while holding the GIL (the woken caller then preempts the loop
thread only to block on the GIL, and is woken again when the loop lets go of it). What must not
change: the result or the exception arrives, an earlier wake never ends a later wait early,
``poll`` runs between slices, and a thread's eventfd is closed when the thread ends.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import os
import sys
import threading
import time

import pytest

import asm_nb
from asm_nb.runtime import loop

linux_only = pytest.mark.skipif(not hasattr(os, "eventfd"), reason="os.eventfd is Linux-only")


@linux_only
def test_the_loop_wakes_a_waiting_caller_without_the_future_condition(monkeypatch):
    """``Future.set_result`` on the loop thread finds nobody waiting on the future's condition
    (was one waiter per call: the caller blocked in ``fut.result(timeout)``)."""
    waiting: list[int] = []
    real = concurrent.futures.Future.set_result

    def spying(self, result):
        if threading.current_thread().name == "asm-runtime-loop":
            waiting.append(len(self._condition._waiters))
        return real(self, result)

    monkeypatch.setattr(concurrent.futures.Future, "set_result", spying)

    async def slow() -> str:
        await asyncio.sleep(0.02)  # the caller is asleep when the result comes
        return "ok"

    for _ in range(5):
        assert loop.run_sync(slow()) == "ok"
    r = asm_nb.run_once("true", provider="shell", store="memory://")
    assert r.status == "completed"
    assert waiting and waiting == [0] * len(waiting), waiting


@linux_only
def test_an_earlier_wake_never_ends_a_later_wait_early():
    loop.run_sync(asyncio.sleep(0))
    waker = loop._waker()
    assert waker is not None
    waker.wake()  # leftover wakes, as a done callback that ran after its wait returned leaves
    waker.wake()

    async def later() -> float:
        await asyncio.sleep(0.15)
        return time.monotonic()

    t0 = time.monotonic()
    done_at = loop.run_sync(later())
    assert done_at - t0 >= 0.15 and time.monotonic() >= done_at


def test_exceptions_results_and_poll_between_slices():
    async def boom() -> None:
        await asyncio.sleep(0.01)
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        loop.run_sync(boom())
    polls: list[float] = []
    fut = loop.submit(asyncio.sleep(loop.WAIT_SLICE_S * 3, result=7))
    assert loop.wait(fut, poll=lambda: polls.append(time.monotonic())) == 7
    assert len(polls) >= 2  # the caller still wakes every slice to let a widget process its messages
    done: concurrent.futures.Future = concurrent.futures.Future()
    done.set_result(3)
    assert loop.wait(done) == 3  # already done: no sleep


@linux_only
def test_a_thread_that_waited_leaves_no_descriptor_behind():
    loop.run_sync(asyncio.sleep(0))  # the runtime loop and this thread's waker exist

    def fds() -> int:
        # eventfds only: other threads of this worker (a store's flusher, a finished test's
        # children) open and close other descriptors at any moment
        n = 0
        for name in os.listdir("/proc/self/fd"):
            try:
                n += os.readlink(f"/proc/self/fd/{name}") == "anon_inode:[eventfd]"
            except OSError:  # closed since the listing
                pass
        return n

    def worker() -> None:
        for _ in range(3):
            loop.run_sync(asyncio.sleep(0))

    gc.collect()
    before = fds()
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    gc.collect()
    assert fds() <= before, "each waiting thread's eventfd is closed when the thread ends"


@pytest.mark.skipif(sys.platform != "linux", reason="fork + eventfd")
def test_a_forked_child_waits_on_its_own_eventfd():
    loop.run_sync(asyncio.sleep(0))
    parent = loop._waker()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            child = loop._waker()
            ok = loop.run_sync(asyncio.sleep(0.01, result=5)) == 5
            code = 0 if ok and child is not parent else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
