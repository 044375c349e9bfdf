"""ConcurrencyLimiter (docs/runtime.md, streams, batches, the session server) plus the Python waiting variants and
per-provider limits."""

from __future__ import annotations

import asyncio
import math
import threading

import pytest

from asm_nb.core.errors import AsmError
from asm_nb.runtime.limiter import ConcurrencyLimiter


def arun(coro, timeout: float = 10):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def test_session_limit_message_and_idempotence():
    lim = ConcurrencyLimiter(max_parallel_sessions=3, max_parallel_runs=10)
    for s in ("a", "b", "c"):
        lim.acquire_session_slot(s)
    lim.acquire_session_slot("a")  # held → ok, counted once
    with pytest.raises(AsmError) as e:
        lim.acquire_session_slot("d")
    assert e.value.code == "max_sessions_exceeded"
    assert "Maximum parallel sessions limit" in e.value.message and "3" in e.value.message
    lim.release_session_slot("a")
    lim.release_session_slot("a")  # unknown → no-op
    lim.acquire_session_slot("d")
    assert lim.get_status()["active_sessions"] == 3


def test_run_limit_is_global_and_release_session_frees_runs():
    lim = ConcurrencyLimiter(max_parallel_sessions=10, max_parallel_runs=2)
    lim.acquire_session_slot("s1")
    lim.acquire_run_slot("s1", "r1")
    lim.acquire_run_slot("s2", "r2")  # no session slot needed
    lim.acquire_run_slot("s1", "r1")  # idempotent
    with pytest.raises(AsmError) as e:
        lim.acquire_run_slot("s3", "r3")
    assert e.value.code == "max_runs_exceeded" and "Maximum parallel runs limit (2)" in e.value.message
    assert "Currently active: 2" in e.value.message
    lim.release_session_slot("s1")
    st = lim.get_status()
    assert st["active_runs"] == 1 and st["available_run_slots"] == 1 and st["active_sessions"] == 0
    lim.release_run_slot("nope")


def test_unlimited_and_validation():
    lim = ConcurrencyLimiter(max_parallel_sessions=None, max_parallel_runs=math.inf)
    for i in range(50):
        lim.acquire_run_slot("s", f"r{i}")
    st = lim.get_status()
    assert st["available_run_slots"] == math.inf and st["available_session_slots"] == math.inf
    assert lim.get_limits() == {"max_parallel_sessions": math.inf, "max_parallel_runs": math.inf}
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(AsmError) as e:
            ConcurrencyLimiter(max_parallel_runs=bad)
        assert e.value.code == "validation_error"
    defaults = ConcurrencyLimiter()
    assert defaults.get_limits() == {"max_parallel_sessions": 100, "max_parallel_runs": 50}


def test_per_provider_limits():
    lim = ConcurrencyLimiter(max_parallel_runs=10, provider_limits={"claude": 1, "codex": {"max_parallel_runs": 2}})
    lim.acquire_run_slot("s", "c1", provider="claude")
    with pytest.raises(AsmError) as e:
        lim.acquire_run_slot("s", "c2", provider="claude")
    assert "provider 'claude'" in e.value.message
    lim.acquire_run_slot("s", "x1", provider="codex")
    lim.acquire_run_slot("s", "x2", provider="codex")
    lim.acquire_run_slot("s", "m1", provider="mock")  # unlimited provider
    assert lim.provider_status("codex")["active_runs"] == 2
    with pytest.raises(AsmError):
        ConcurrencyLimiter(provider_limits={"x": {"bogus": 1}})


def test_context_managers_release_on_every_exit_path():
    lim = ConcurrencyLimiter(max_parallel_runs=1, max_parallel_sessions=1)
    with lim.run_slot("s", "r1"):
        assert lim.get_status()["active_runs"] == 1
    with pytest.raises(ValueError):
        with lim.run_slot("s", "r2"):
            raise ValueError("inside")
    assert lim.get_status()["active_runs"] == 0

    async def go():
        async with lim.session_slot("s1"):
            assert lim.get_status()["active_sessions"] == 1
        task = asyncio.ensure_future(_hold(lim))
        await asyncio.sleep(0.01)
        assert lim.get_status()["active_runs"] == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert lim.get_status()["active_runs"] == 0

    arun(go())


async def _hold(lim):
    async with lim.run_slot("s", "held", wait=True):
        await asyncio.sleep(10)


def test_waiters_are_served_fifo():
    lim = ConcurrencyLimiter(max_parallel_runs=1)
    order = []

    async def worker(i):
        async with lim.run_slot("s", f"r{i}", wait=True):
            order.append(i)
            await asyncio.sleep(0.002)

    async def go():
        lim.acquire_run_slot("s", "blocker")
        tasks = []
        for i in range(6):
            tasks.append(asyncio.ensure_future(worker(i)))
            await asyncio.sleep(0)  # enqueue in this order
        await asyncio.sleep(0.01)
        assert lim.waiting == 6
        lim.release_run_slot("blocker")
        await asyncio.gather(*tasks)

    arun(go())
    assert order == list(range(6)) and lim.peak_active_runs == 1


def test_provider_blocked_waiter_does_not_block_others():
    lim = ConcurrencyLimiter(max_parallel_runs=2, provider_limits={"claude": 1})
    lim.acquire_run_slot("s", "c1", provider="claude")

    async def go():
        blocked = asyncio.ensure_future(lim.await_run_slot("s", "c2", provider="claude"))
        await asyncio.sleep(0.01)
        await asyncio.wait_for(lim.await_run_slot("s", "m1", provider="mock"), 1)  # not stuck behind c2
        assert not blocked.done()
        lim.release_run_slot("m1")
        lim.release_run_slot("c1")
        await asyncio.wait_for(blocked, 1)
        assert lim.holds_run("c2")

    arun(go())


def test_wait_timeout_and_threads():
    lim = ConcurrencyLimiter(max_parallel_runs=1)
    lim.acquire_run_slot("s", "a")
    with pytest.raises(AsmError) as e:
        lim.wait_run_slot("s", "b", timeout_s=0.02)
    assert e.value.code == "timeout"
    assert lim.waiting == 0
    got = threading.Event()

    def worker():
        lim.wait_run_slot("s", "c", timeout_s=5)
        got.set()

    t = threading.Thread(target=worker)
    t.start()
    assert not got.wait(0.02)
    lim.release_run_slot("a")
    assert got.wait(5)
    t.join()
    assert lim.holds_run("c")


def test_bound_holds_under_threaded_contention():
    lim = ConcurrencyLimiter(max_parallel_runs=3)
    active = []
    peak = []
    lock = threading.Lock()

    def worker(i):
        with lim.run_slot("s", f"r{i}", wait=True, timeout_s=10):
            with lock:
                active.append(i)
                peak.append(len(active))
            with lock:
                active.remove(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert max(peak) <= 3 and lim.peak_active_runs <= 3 and lim.get_status()["active_runs"] == 0
