"""Per-session runtime: RunQueue, SessionServer, SessionRegistry, SessionRuntime (docs/runtime.md, streams, batches,
the session server).

A ``SessionServer`` owns one session: runs are submitted to a FIFO queue, started while one of
``max_concurrent_runs`` slots is free (and, with a ``ConcurrencyLimiter``, while the limiter
grants a run slot), awaited, cancelled (queued or in flight) and drained. Subscribers receive
the session's stored events, ``(session_id, event)``, through a callback and/or an async
iterator: a late subscriber first catches up from the store (paged backfill from
``from_sequence``), then goes live; a per-subscriber "last delivered sequence" makes delivery
exactly-once and in order even when backfill and live dispatch overlap.

Everything of one server happens on the event loop that started it (normally the runtime loop
of ``runtime/loop.py``), so its state needs no locks. Sync twins (``open``, ``submit``,
``wait``, ``cancel``, ``wait_drained``, ``close``) run the async methods on the runtime loop.

Subscriptions (``Subscription``, backfill, live dispatch) are in ``runtime/server_events.py``;
``SessionRegistry``, ``SessionRuntime`` and ``default_runtime`` in ``runtime/session_registry.py``
(both re-exported here).

>>> import asyncio
>>> from asm_nb.stores import open_store
>>> from asm_nb.testing import MockAdapter
>>> async def demo():
...     server = await SessionServer.start(store=open_store("memory://"), adapter=MockAdapter(),
...                                        session_opts={"agent_id": "demo"}, max_concurrent_runs=2)
...     run_ids = [await server.submit_run(f"q{i}") for i in range(3)]
...     results = [await server.await_run(r) for r in run_ids]
...     await server.aclose()
...     return [r.output["content"] for r in results]
>>> asyncio.run(demo())
['Mock response: q0', 'Mock response: q1', 'Mock response: q2']
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import time
from typing import Any, Mapping

from .. import config
from ..core.errors import AsmError
from ..core.run import RunStatus
from ..core.session import SessionStatus
from ..persistence.store_call import call_store
from . import manager
# the subscriptions and the registry live in server_events / session_registry; server.py
# re-exports their public names (``runtime.server`` stays the import path)
from .server_events import ServerSubscriptions, Subscription as Subscription, _is_int, _telemetry
from .session_registry import SessionRegistry as SessionRegistry
from .session_registry import SessionRuntime as SessionRuntime
from .session_registry import default_runtime as default_runtime

log = logging.getLogger(__name__)

__all__ = ["RunQueue", "SessionServer", "Subscription", "SessionRegistry", "SessionRuntime", "default_runtime"]


# ------------------------------------------------------------------------------------------
# RunQueue


class RunQueue:
    """A bounded FIFO of run ids (pure; docs/runtime.md, streams, batches, the session server)."""

    def __init__(self, max_queued_runs: int | None = None) -> None:
        m = config.get("max_queued_runs") if max_queued_runs is None else max_queued_runs
        if not _is_int(m) or m < 0:
            raise AsmError("validation_error", f"max_queued_runs must be a non-negative integer, got: {m!r}")
        self.max_queued_runs = m
        self._items: collections.deque[str] = collections.deque()

    @classmethod
    def new(cls, max_queued_runs: int | None = None) -> "RunQueue":
        return cls(max_queued_runs)

    @property
    def size(self) -> int:
        return len(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._items

    def to_list(self) -> list[str]:
        return list(self._items)

    def enqueue(self, run_id: str) -> None:
        if len(self._items) >= self.max_queued_runs:
            raise AsmError("max_runs_exceeded", f"Maximum queued runs exceeded ({self.max_queued_runs})")
        self._items.append(run_id)

    def dequeue(self) -> str | None:
        return self._items.popleft() if self._items else None

    def remove(self, run_id: str) -> None:
        if run_id not in self._items:
            raise AsmError("run_not_found", f"Run not found in queue: {run_id}")
        self._items = collections.deque(r for r in self._items if r != run_id)



# ------------------------------------------------------------------------------------------
# SessionServer


class SessionServer(ServerSubscriptions):
    """Runs of one session: queue, slots, await, cancel, drain, subscriptions (docs/runtime.md, streams, batches, the
    session server).

    Build with ``await SessionServer.start(...)`` (or ``SessionServer.open(...)`` from sync code).
    Python additions: ``limiter_wait=True`` queues for a limiter slot instead of failing the run
    with ``max_runs_exceeded``; per-run ``timeout`` is the provider execute timeout (the await
    timeout is ``timeout_ms``).
    """

    def __init__(self) -> None:  # use start()
        self.store: Any = None
        self.adapter: Any = None
        self.session_id: str = ""
        self.max_concurrent_runs = 1
        self.queue = RunQueue(0)
        self.limiter: Any = None
        self.limiter_wait = False
        self.control_ops: Any = None
        self.default_execute_opts: dict[str, Any] = {}
        self.in_flight: dict[str, asyncio.Task] = {}
        self._phase: dict[str, str] = {}  # run_id -> "waiting_slot" | "executing"
        self._run_opts: dict[str, dict[str, Any]] = {}
        self.results: dict[str, Any] = {}
        self._done: dict[str, asyncio.Future] = {}
        self._cancel_requested: set[str] = set()
        self._subscribers: list[Subscription] = []
        self._dispatch_cursor = 0
        self._dispatch_pending = False
        self._dispatch_task: asyncio.Task | None = None
        self._drain_waiters: list[asyncio.Future] = []
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._registry: "SessionRegistry | None" = None
        self._bg: set[asyncio.Task] = set()

    # -- construction -----------------------------------------------------------------------
    @classmethod
    async def start(cls, *, store: Any = None, adapter: Any = None, session_id: str | None = None,
                    session_opts: Mapping[str, Any] | None = None, max_concurrent_runs: Any = 1,
                    max_queued_runs: int | None = None, limiter: Any = None, control_ops: Any = None,
                    default_execute_opts: Mapping[str, Any] | None = None, limiter_wait: bool = False,
                    registry: "SessionRegistry | None" = None) -> "SessionServer":
        """Start a server for an existing session (``session_id``) or a new one (``session_opts``:
        ``agent_id``, ``metadata``, ``context``, ``tags``)."""
        if isinstance(max_concurrent_runs, bool) or not _is_int(max_concurrent_runs) or max_concurrent_runs < 1:
            raise AsmError("validation_error",
                           f"max_concurrent_runs must be a positive integer, got: {max_concurrent_runs!r}")
        queue = RunQueue(max_queued_runs)
        if store is None:
            raise AsmError("validation_error", "SessionServer requires a store")
        if adapter is None:
            raise AsmError("validation_error", "SessionServer requires an adapter")
        if not session_id and session_opts is None:
            raise AsmError("validation_error",
                           "SessionServer requires session_id (existing) or session_opts (to create)")
        self = cls()
        self.store, self.adapter, self.queue = store, adapter, queue
        self.max_concurrent_runs = max_concurrent_runs
        self.limiter, self.control_ops, self.limiter_wait = limiter, control_ops, bool(limiter_wait)
        self.default_execute_opts = dict(default_execute_opts or {})
        self._loop = asyncio.get_running_loop()
        if session_id:
            session = await manager.aget_session(store, session_id)
            if session.status is not SessionStatus.ACTIVE:
                session = await manager.aactivate_session(store, session_id)
        else:
            session = await manager.astart_session(store, adapter, session_opts)
            session = await manager.aactivate_session(store, session.id)
        self.session_id = session.id
        self._dispatch_cursor = await call_store(store, "get_latest_sequence", session.id)
        if registry is not None:
            registry.register(session.id, self)
            self._registry = registry
        _telemetry("start", {"system_time": time.time_ns()}, {"session_id": self.session_id})
        return self

    @classmethod
    def open(cls, **opts: Any) -> "SessionServer":
        """Sync twin of ``start``: the server lives on the runtime loop."""
        from . import loop

        return loop.run_sync(cls.start(**opts))

    # -- submission -------------------------------------------------------------------------
    async def submit_run(self, input: Any, **opts: Any) -> str:
        """Create a pending run and queue it; returns the run id. Rejected (nothing written) with
        ``max_runs_exceeded`` when every slot is busy and the queue is full."""
        if self._closed:
            raise AsmError("invalid_operation", f"SessionServer for {self.session_id} is closed")
        if len(self.in_flight) >= self.max_concurrent_runs and self.queue.size >= self.queue.max_queued_runs:
            raise AsmError("max_runs_exceeded", f"Maximum queued runs exceeded ({self.queue.max_queued_runs})")
        req = opts.pop("required_capabilities", ())
        opt = opts.pop("optional_capabilities", ())
        metadata = opts.pop("metadata", None)
        opts.pop("timeout_ms", None)
        run = await manager.astart_run(self.store, self.adapter, self.session_id, input, required_capabilities=req,
                                       optional_capabilities=opt, metadata=metadata)
        self._run_opts[run.id] = opts
        self._done[run.id] = self._loop.create_future()  # type: ignore[union-attr]
        if len(self.in_flight) < self.max_concurrent_runs and not self.queue.size:
            self.queue._items.append(run.id)  # a free slot: straight through (even with max_queued_runs=0)
        else:
            self.queue.enqueue(run.id)
        _telemetry("queue.enqueue", {"queue_length": self.queue.size}, {"session_id": self.session_id,
                                                                        "run_id": run.id})
        self._start_runs()
        return run.id

    async def await_run(self, run_id: str, timeout_ms: int | None = None) -> Any:
        """The run's ``ExecutionResult``; raises its ``AsmError``. Unknown run → ``run_not_found``
        at once; ``timeout`` error after ``timeout_ms`` (the run keeps going)."""
        if run_id in self.results:
            return self._outcome(run_id)
        fut = self._done.get(run_id)
        if fut is None:
            raise AsmError("run_not_found", f"Run not found in this session server: {run_id}")
        ms = config.get("await_run_timeout_ms") if timeout_ms is None else timeout_ms
        try:
            await asyncio.wait_for(asyncio.shield(fut), ms / 1000)
        except asyncio.TimeoutError:
            raise AsmError("timeout", f"Timed out awaiting run {run_id} after {ms}ms") from None
        return self._outcome(run_id)

    def _outcome(self, run_id: str) -> Any:
        res = self.results[run_id]
        if isinstance(res, AsmError):
            raise res
        if isinstance(res, BaseException):
            raise AsmError("internal_error", repr(res))
        return res

    async def execute_run(self, input: Any, timeout_ms: int | None = None, **opts: Any) -> Any:
        """``submit_run`` then ``await_run``."""
        run_id = await self.submit_run(input, **opts)
        return await self.await_run(run_id, timeout_ms)

    # -- scheduling -------------------------------------------------------------------------
    def _start_runs(self) -> None:
        while len(self.in_flight) < self.max_concurrent_runs and self.queue.size:
            run_id = self.queue.dequeue()
            if run_id is None:  # the size check above says this does not happen
                break
            _telemetry("queue.dequeue", {"queue_length": self.queue.size}, {"session_id": self.session_id,
                                                                            "run_id": run_id})
            self._phase[run_id] = "waiting_slot"
            task = self._loop.create_task(self._run_task(run_id))  # type: ignore[union-attr]
            self.in_flight[run_id] = task

    def _execute_opts(self, run_id: str) -> dict[str, Any]:
        per_run = self._run_opts.pop(run_id, {})
        opts = {**self.default_execute_opts, **per_run}
        if "adapter_opts" in self.default_execute_opts or "adapter_opts" in per_run:
            opts["adapter_opts"] = {**(self.default_execute_opts.get("adapter_opts") or {}),
                                    **(per_run.get("adapter_opts") or {})}
        user_cb = opts.get("event_callback")

        async def callback(ev: Mapping[str, Any]) -> None:
            self._signal()
            if user_cb is not None:
                res = user_cb(ev)
                if inspect.isawaitable(res):
                    await res

        opts["event_callback"] = callback
        return opts

    async def _run_task(self, run_id: str) -> None:
        outcome: Any = None
        holds_slot = False
        try:
            if self.limiter is not None:
                provider = getattr(self.adapter, "name", None)
                if self.limiter_wait:
                    await self.limiter.await_run_slot(self.session_id, run_id, provider=provider)
                else:
                    self.limiter.acquire_run_slot(self.session_id, run_id, provider=provider)
                holds_slot = True
            opts = self._execute_opts(run_id)
            if self.control_ops is not None:
                self.control_ops.register_run(self.session_id, run_id)
            self._phase[run_id] = "executing"
            _telemetry("run.start", {"system_time": time.time_ns()}, {"session_id": self.session_id,
                                                                      "run_id": run_id})
            outcome = await manager.aexecute_run(self.store, self.adapter, run_id, **opts)
        except AsmError as err:
            outcome = err
            if run_id in self._cancel_requested and err.code == "invalid_operation":
                outcome = AsmError("cancelled", "Run cancelled")  # cancelled between start and execute
            elif self._phase.get(run_id) == "waiting_slot":
                await self._finalize_unstarted(run_id, err)
        except asyncio.CancelledError:
            outcome = AsmError("cancelled", "Run cancelled")
            if self._phase.get(run_id) == "waiting_slot":
                await asyncio.shield(self._finalize_unstarted(run_id, None))
        except Exception as exc:  # a crash inside the manager itself
            outcome = AsmError("internal_error", f"Run task crashed: {exc!r}")
        finally:
            if self.limiter is not None and (holds_slot or self.limiter.holds_run(run_id)):
                self.limiter.release_run_slot(run_id)
            self._finish(run_id, outcome)

    async def _finalize_unstarted(self, run_id: str, error: AsmError | None) -> None:
        """A dequeued run that never reached the manager (limiter refused it, or it was cancelled
        while waiting for a slot): record it in the store as failed / cancelled."""
        try:
            run = await call_store(self.store, "get_run", run_id)
            if run.is_terminal:
                return
            session = await call_store(self.store, "get_session", self.session_id)
            if error is None:
                await call_store(self.store, "save_run", run.with_status(RunStatus.CANCELLED))
                await manager._internal_event(self.store, session, "run_cancelled", {}, run_id=run_id,
                                              provider=self.adapter.name)
            else:
                payload = manager._error_payload(error, hint=self.adapter.name)
                run = run.replace(status=RunStatus.FAILED, error={"code": payload["error_code"],
                                                                  "message": payload["error_message"]})
                await call_store(self.store, "save_run", run)
                await manager._internal_event(self.store, session, "run_failed", payload, run_id=run_id,
                                              provider=self.adapter.name)
        except AsmError as err:
            log.warning("could not record the outcome of unstarted run %s: %s", run_id, err)

    def _finish(self, run_id: str, outcome: Any) -> None:
        self.results[run_id] = outcome
        fut = self._done.get(run_id)
        if fut is not None and not fut.done():
            fut.set_result(None)
        self.in_flight.pop(run_id, None)
        self._phase.pop(run_id, None)
        self._run_opts.pop(run_id, None)
        if self.control_ops is not None:
            unregister = getattr(self.control_ops, "unregister_run", None)
            if unregister is not None:
                unregister(self.session_id, run_id)
        _telemetry("run.stop", {"system_time": time.time_ns()}, {"session_id": self.session_id, "run_id": run_id})
        self._signal()
        if not self._closed:
            self._start_runs()
        self._check_drained()

    def _check_drained(self) -> None:
        if not self.in_flight and not self.queue.size:
            waiters, self._drain_waiters = self._drain_waiters, []
            for w in waiters:
                if not w.done():
                    w.set_result(None)

    # -- cancel / interrupt -----------------------------------------------------------------
    async def cancel_run(self, run_id: str) -> None:
        """Cancel a queued run (marked cancelled at once) or an in-flight one (cancel requested in
        the background). Finished → no-op; unknown → ``run_not_found``."""
        if run_id in self.in_flight:
            self._cancel_requested.add(run_id)
            _telemetry("cancel.active", {}, {"session_id": self.session_id, "run_id": run_id})
            if self._phase.get(run_id) == "waiting_slot":
                self.in_flight[run_id].cancel()
                return
            self._background(self._cancel_in_flight(run_id))
            return
        if run_id in self.queue:
            self.queue.remove(run_id)
            self._run_opts.pop(run_id, None)
            try:
                await self._finalize_unstarted(run_id, None)
            finally:
                self._finish_queued_cancel(run_id)
            return
        if run_id in self.results:
            return
        raise AsmError("run_not_found", f"Run not found in queue: {run_id}")

    def _finish_queued_cancel(self, run_id: str) -> None:
        self.results[run_id] = AsmError("cancelled", "Run cancelled")
        fut = self._done.get(run_id)
        if fut is not None and not fut.done():
            fut.set_result(None)
        _telemetry("cancel.queued", {}, {"session_id": self.session_id, "run_id": run_id})
        self._signal()
        self._check_drained()

    async def _cancel_in_flight(self, run_id: str) -> None:
        try:
            await manager.acancel_run(self.store, self.adapter, run_id)
        except AsmError as err:
            _telemetry("cancel.failed", {}, {"session_id": self.session_id, "run_id": run_id,
                                             "error_code": err.code, "error_message": err.message})
        except Exception as exc:
            _telemetry("cancel.failed", {}, {"session_id": self.session_id, "run_id": run_id,
                                             "error_code": "internal_error", "error_message": repr(exc)})

    def _background(self, coro: Any) -> asyncio.Task:
        task = self._loop.create_task(coro)  # type: ignore[union-attr]
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)
        return task

    async def interrupt_run(self, run_id: str) -> str | None:
        """In flight: ``control_ops.interrupt`` when configured (returns the run id), else the same
        as ``cancel_run``. Not in flight → ``run_not_found``."""
        if run_id not in self.in_flight:
            raise AsmError("run_not_found", f"Run not in flight: {run_id}")
        if self.control_ops is not None and self._phase.get(run_id) == "executing":
            self._cancel_requested.add(run_id)
            return await self.control_ops.interrupt(run_id)
        await self.cancel_run(run_id)
        return None

    # -- pause / resume ----------------------------------------------------------------------
    def _control(self) -> Any:
        if self.control_ops is None:
            from .control import for_adapter

            self.control_ops = for_adapter(self.adapter)
        return self.control_ops

    async def pause_run(self, run_id: str) -> str:
        """Pause an executing run through ``control_ops`` (the adapter's default
        ``ControlOperations`` when none was given): the adapter waits at its next turn boundary.
        Not executing → ``run_not_found``; adapter without ``pause`` → ``capability_not_supported``."""
        if self._phase.get(run_id) != "executing":
            raise AsmError("run_not_found", f"Run not executing: {run_id}")
        return await self._control().pause(run_id)

    async def resume_run(self, run_id: str) -> str:
        """Resume a run paused with :meth:`pause_run`."""
        if self._phase.get(run_id) != "executing":
            raise AsmError("run_not_found", f"Run not executing: {run_id}")
        return await self._control().resume(run_id)

    def pause(self, run_id: str) -> str:
        """Sync twin of :meth:`pause_run`."""
        return self._sync(self.pause_run(run_id))

    def resume(self, run_id: str) -> str:
        """Sync twin of :meth:`resume_run`."""
        return self._sync(self.resume_run(run_id))

    # -- drain / status / close -------------------------------------------------------------
    async def drain(self, timeout_ms: int | None = None) -> None:
        """Return once the queue and the in-flight set are both empty."""
        if not self.in_flight and not self.queue.size:
            return
        ms = config.get("await_run_timeout_ms") if timeout_ms is None else timeout_ms
        fut = self._loop.create_future()  # type: ignore[union-attr]
        self._drain_waiters.append(fut)
        try:
            await asyncio.wait_for(fut, ms / 1000)
        except asyncio.TimeoutError:
            raise AsmError("timeout", f"Drain timed out after {ms}ms") from None

    def status(self) -> dict[str, Any]:
        return {"session_id": self.session_id, "in_flight_runs": list(self.in_flight),
                "in_flight_count": len(self.in_flight), "queued_runs": self.queue.to_list(),
                "queued_count": self.queue.size, "max_concurrent_runs": self.max_concurrent_runs,
                "max_queued_runs": self.queue.max_queued_runs, "subscribers": len(self._subscribers)}

    @property
    def closed(self) -> bool:
        return self._closed

    async def aclose(self, cancel_in_flight: bool = True, *, timeout_ms: int | None = None) -> None:
        """Stop accepting work; cancel queued (and, by default, in-flight) runs; close subscriptions."""
        if self._closed:
            return
        self._closed = True
        for run_id in self.queue.to_list():
            try:
                await self.cancel_run(run_id)
            except AsmError:
                pass
        if cancel_in_flight:
            for run_id in list(self.in_flight):
                await self.cancel_run(run_id)
        tasks = list(self.in_flight.values()) + list(self._bg)
        if tasks and cancel_in_flight:
            ms = config.get("task_shutdown_timeout_ms") if timeout_ms is None else timeout_ms
            done, pending = await asyncio.wait(tasks, timeout=ms / 1000)
            for t in pending:
                t.cancel()
        await self._dispatch_now()
        for sub in list(self._subscribers):
            sub._close()
        self._subscribers.clear()
        if self._registry is not None:
            self._registry.unregister(self.session_id)
            self._registry = None

    # -- sync twins -------------------------------------------------------------------------
    def _sync(self, coro: Any) -> Any:
        from . import loop

        if self._loop is not loop.get_loop():
            coro.close()
            raise AsmError("invalid_operation", "sync methods need a server started on the asm runtime loop "
                                                "(SessionServer.open); await the async methods instead")
        return loop.run_sync(coro)

    def submit(self, input: Any, **opts: Any) -> str:
        """Sync twin of ``submit_run``."""
        return self._sync(self.submit_run(input, **opts))

    def wait(self, run_id: str, timeout_ms: int | None = None) -> Any:
        """Sync twin of ``await_run``."""
        return self._sync(self.await_run(run_id, timeout_ms))

    def cancel(self, run_id: str) -> None:
        """Sync twin of ``cancel_run``."""
        return self._sync(self.cancel_run(run_id))

    def wait_drained(self, timeout_ms: int | None = None) -> None:
        """Sync twin of ``drain``."""
        return self._sync(self.drain(timeout_ms))

    def close(self, cancel_in_flight: bool = True) -> None:
        """Sync twin of ``aclose``."""
        return self._sync(self.aclose(cancel_in_flight))

    def __repr__(self) -> str:
        return (f"<SessionServer {self.session_id} in_flight={len(self.in_flight)} queued={self.queue.size}"
                f"{' closed' if self._closed else ''}>")

