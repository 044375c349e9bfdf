"""Tasks per one-shot command on the runtime loop, counted (not timed).

Each asyncio task costs a creation, at least one extra loop turn and its done callbacks. A
``run_once("true", provider="shell")`` needs: the run itself, the shell adapter's command task
and the stdout pump. What it no longer makes: the exit watch's task (the exit is handled in the
transport's exit notice, the drain of a descendant's output by a loop timer), the timeout
watchdog's task (a loop timer re-armed for the nearest deadline), asyncio's
pipe connection task for the new child (the runtime loop connects the pipes as it makes the
transport), a task shielding the process start (the start has no suspension point left), a task for the adapter call
under the port deadline (``asyncio.timeout`` on the run's task, 3.11+), one per watchdog wait, a
``Process.wait`` task plus a poll timer per exit watch (the transport's exit notice instead), and
a shield task for a process result the caller already waited for.

The behaviours those tasks served still hold: exit codes, the port deadline
(``provider_timeout``), the command timeout, a background descendant holding stdout.
"""

from __future__ import annotations

import asyncio
import collections
import sys
import threading
import time
from typing import Any

import pytest

import asm_nb
from asm_nb import config
from asm_nb.process import exec as wexec
from asm_nb.providers._base import BaseAdapter
from asm_nb.runtime import loop
from asm_nb.stores.local import LocalStore

needs_311 = pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout is Python 3.11+")


def _on_loop(fn: Any) -> None:
    lp = loop.get_loop()
    done = threading.Event()
    lp.call_soon_threadsafe(lambda: (fn(lp), done.set()))
    assert done.wait(5)


class _CountTasks:
    def __init__(self) -> None:
        self.names: collections.Counter[str] = collections.Counter()

    def __enter__(self) -> "_CountTasks":
        def factory(lp: Any, coro: Any, context: Any = None) -> asyncio.Task:
            self.names[getattr(coro, "__qualname__", type(coro).__name__)] += 1
            return asyncio.Task(coro, loop=lp, context=context)

        _on_loop(lambda lp: lp.set_task_factory(factory))
        return self

    def __exit__(self, *exc: Any) -> None:
        _on_loop(lambda lp: lp.set_task_factory(None))


@needs_311
def test_a_one_shot_command_makes_three_tasks(tmp_path: Any) -> None:
    store = LocalStore(tmp_path)
    try:
        asm_nb.run_once("true", provider="shell", store=store)  # warm-up
        n = 10
        with _CountTasks() as tasks:
            for i in range(n):
                r = asm_nb.run_once(f"exit {i % 3}", provider="shell", store=store)
                assert r.raw_output["exit_code"] == i % 3
        # was 10-11 per run: + BaseAdapter.execute (wait_for), Process.wait, Event.wait (watchdog),
        # ManagedProcess.wait (aclose's shield of a known result), create_subprocess_exec (the
        # shielded start), BaseSubprocessTransport._connect_pipes and ManagedProcess._watchdog
        assert sum(tasks.names.values()) == 3 * n, dict(tasks.names)
        for gone in ("ManagedProcess._watch_exit", "BaseAdapter.execute", "Process.wait", "Event.wait", "ManagedProcess.wait", "create_subprocess_exec",
                     "BaseSubprocessTransport._connect_pipes", "ManagedProcess._watchdog"):
            assert gone not in tasks.names
    finally:
        store.close()


class _Sleeper(BaseAdapter):
    name = "sleeper"

    async def _execute(self, active: Any, **opts: Any) -> dict:
        await active.emit("run_started", {})
        await asyncio.sleep(30)
        return {"output": {}}


def test_the_port_deadline_still_stops_a_silent_adapter() -> None:
    t0 = time.monotonic()
    with config.override(execute_grace_timeout_ms=0):
        r = asm_nb.run_once("go", provider=_Sleeper(), store="memory://", timeout=0.3)
    assert r.status == "failed" and r.error is not None and r.error.code == "provider_timeout", r
    assert time.monotonic() - t0 < 10


def test_the_exit_is_seen_while_a_descendant_holds_stdout() -> None:
    """The exit notice comes from the transport, not from Process.wait (which waits for every pipe
    to close): a background child keeping stdout open neither hides the exit nor hangs the run."""
    t0 = time.monotonic()
    res = loop.run_sync(wexec.run("/bin/sh", ["-c", "sleep 5 & echo started; exit 3"], timeout_ms=20_000))
    assert res.exit_code == 3 and "started" in res.stdout and not res.timed_out
    assert time.monotonic() - t0 < 4.5  # the drain (1 s) then the group kill, not the sleeper's 5 s
