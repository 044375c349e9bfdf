"""ControlOperations: cancel, interrupt, pause and resume of in-flight runs (docs/runtime.md, cancel, interrupt,
pause, resume).

Tracks its own per-run *operation state* (separate from ``Run.status``): ``unknown`` →
``interrupted`` | ``cancelled`` | ``paused`` | ``running``, and a history of operations. An
interrupt **is** a cancel at the adapter (``adapter.cancel``), so the adapter emits
``run_cancelled`` and the manager finalizes the run as ``cancelled``. Pause and resume need an
adapter advertising an enabled capability named ``"pause"`` / ``"resume"`` and implementing
``pause(run_id)`` / ``resume(run_id)``. The Claude API adapter can (it waits between turns of
its tool loop); the CLI adapters cannot (their process runs its own loop), so for them ``pause``
raises ``capability_not_supported``.

Users reach this through ``asm_nb.pause(run_id)`` / ``asm_nb.resume(run_id)`` (any run in flight
in this process), ``%asm pause|resume RUN``, and ``SessionServer.pause_run`` /
``resume_run``; each uses the adapter's default ``ControlOperations`` (:func:`for_adapter`).

Calls on one instance are serialized with an ``asyncio.Lock`` (created lazily on first use,
so an instance may be built outside a loop). Sync twins run on the runtime loop.
"""

from __future__ import annotations

import asyncio
import inspect
import weakref
from typing import Any, Iterable

from ..core.errors import AsmError
from ..core.serialization import utc_now

__all__ = ["ControlOperations", "TERMINAL_STATES", "terminal_state", "for_adapter", "apause_run",
           "aresume_run", "ainterrupt_run", "pause_run", "resume_run", "interrupt_run", "operation_status"]

TERMINAL_STATES = frozenset({"cancelled", "completed", "failed", "timeout"})


def terminal_state(state: Any) -> bool:
    """True for ``cancelled``, ``completed``, ``failed``, ``timeout``."""
    return getattr(state, "value", state) in TERMINAL_STATES


class ControlOperations:
    """Run control over one adapter.

    >>> import asyncio
    >>> from asm_nb.testing import MockAdapter
    >>> ops = ControlOperations(MockAdapter())
    >>> asyncio.run(ops.interrupt("run_x"))   # nothing running: the adapter has nothing to cancel
    Traceback (most recent call last):
    ...
    asm_nb.core.errors.AsmError: [run_not_found] Run not found: run_x
    """

    def __init__(self, adapter: Any) -> None:
        if adapter is None:
            raise AsmError("validation_error", "ControlOperations needs an adapter")
        self.adapter = adapter
        self._states: dict[str, str] = {}
        self._history: dict[str, list[dict[str, Any]]] = {}
        self._sessions: dict[str, list[str]] = {}
        self._lock: asyncio.Lock | None = None
        self._lock_loop: Any = None

    # -- helpers ----------------------------------------------------------------------------
    def _get_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    def _record(self, run_id: str, operation: str, result: Any) -> None:
        self._history.setdefault(run_id, []).append({"operation": operation, "timestamp": utc_now(),
                                                     "result": result})

    async def _call(self, method: str, run_id: str) -> Any:
        fn = getattr(self.adapter, method, None)
        if not callable(fn):
            raise AsmError("provider_error", f"Adapter does not support {method}")
        res = fn(run_id)
        if inspect.isawaitable(res):
            res = await res
        return res

    async def _require_capability(self, name: str) -> None:
        caps_fn = getattr(self.adapter, "capabilities", None)
        caps: Any = []
        if callable(caps_fn):
            caps = caps_fn()
            if inspect.isawaitable(caps):
                caps = await caps  # a listing failure propagates as is
        for c in caps or []:
            cname = c.get("name") if isinstance(c, dict) else getattr(c, "name", None)
            enabled = c.get("enabled", True) if isinstance(c, dict) else getattr(c, "enabled", True)
            if cname == name and enabled:
                return
        raise AsmError("capability_not_supported", f"Capability '{name}' not supported by adapter")

    async def _op(self, operation: str, run_id: str, target_state: str) -> str:
        try:
            await self._call("cancel" if operation in ("interrupt", "cancel") else operation, run_id)
        except Exception as exc:
            err = exc if isinstance(exc, AsmError) else AsmError.from_exception(exc)
            self._record(run_id, operation, err)
            raise err from None
        self._record(run_id, operation, "ok")
        self._states[run_id] = target_state
        return run_id

    # -- operations -------------------------------------------------------------------------
    async def interrupt(self, run_id: str) -> str:
        """Stop a run now (adapter ``cancel``); a second interrupt is a no-op."""
        async with self._get_lock():
            if self._states.get(run_id) == "interrupted":
                return run_id
            return await self._op("interrupt", run_id, "interrupted")

    async def cancel(self, run_id: str) -> str:
        """Cancel a run (adapter ``cancel``); idempotent once cancelled."""
        async with self._get_lock():
            if self._states.get(run_id) == "cancelled":
                return run_id
            return await self._op("cancel", run_id, "cancelled")

    async def pause(self, run_id: str) -> str:
        """Pause a run where the adapter can (capability ``"pause"`` + ``adapter.pause``)."""
        async with self._get_lock():
            if self._states.get(run_id) == "paused":
                return run_id
            await self._require_capability("pause")
            return await self._op("pause", run_id, "paused")

    async def resume(self, run_id: str) -> str:
        """Resume a paused run (capability ``"resume"`` + ``adapter.resume``)."""
        async with self._get_lock():
            state = self._states.get(run_id, "unknown")
            if state == "running":
                return run_id
            if terminal_state(state):
                raise AsmError("invalid_operation", f"Cannot resume run in terminal state: {state}")
            await self._require_capability("resume")
            return await self._op("resume", run_id, "running")

    async def cancel_all(self, run_ids: Iterable[str]) -> dict[str, Any]:
        """Cancel each run; ``{run_id: "ok" | AsmError}`` (continues past failures)."""
        out: dict[str, Any] = {}
        for rid in run_ids:
            try:
                await self.cancel(rid)
                out[rid] = "ok"
            except AsmError as err:
                out[rid] = err
        return out

    def register_run(self, session_id: str, run_id: str) -> None:
        """Remember that ``run_id`` belongs to ``session_id`` (for ``interrupt_session``)."""
        runs = self._sessions.setdefault(session_id, [])
        if run_id not in runs:
            runs.append(run_id)

    def unregister_run(self, session_id: str, run_id: str) -> None:
        runs = self._sessions.get(session_id)
        if runs and run_id in runs:
            runs.remove(run_id)

    async def interrupt_session(self, session_id: str) -> dict[str, Any]:
        """Interrupt every registered run of a session; same result shape as ``cancel_all``."""
        out: dict[str, Any] = {}
        for rid in list(self._sessions.get(session_id, [])):
            try:
                await self.interrupt(rid)
                out[rid] = "ok"
            except AsmError as err:
                out[rid] = err
        return out

    def mark(self, run_id: str, state: str) -> None:
        """Record a state reached outside this object (e.g. the run completed)."""
        self._states[run_id] = state

    def get_operation_status(self, run_id: str) -> dict[str, Any]:
        hist = self.get_operation_history(run_id)
        return {"last_operation": hist[-1]["operation"] if hist else None,
                "state": self._states.get(run_id, "unknown"), "history": hist}

    def get_operation_history(self, run_id: str) -> list[dict[str, Any]]:
        return list(self._history.get(run_id, []))

    terminal_state = staticmethod(terminal_state)


# ------------------------------------------------------------------------------------------
# Default instances: one ControlOperations per adapter, for runs in flight in this process

_DEFAULTS: "weakref.WeakKeyDictionary[Any, ControlOperations]" = weakref.WeakKeyDictionary()
_BY_RUN: dict[str, ControlOperations] = {}


def for_adapter(adapter: Any) -> ControlOperations:
    """The default ``ControlOperations`` of ``adapter`` (built on first use, kept while the
    adapter lives). ``SessionServer`` and ``asm_nb.pause``/``resume`` share it."""
    try:
        ops = _DEFAULTS.get(adapter)
    except TypeError:  # an adapter that cannot be weakly referenced: a fresh instance
        return ControlOperations(adapter)
    if ops is None:
        ops = ControlOperations(adapter)
        _DEFAULTS[adapter] = ops
    return ops


def _inflight_ops(run_id: str) -> ControlOperations:
    from . import manager

    tracker = manager._INFLIGHT.get(run_id)
    if tracker is None:
        ops = _BY_RUN.get(run_id)
        if ops is not None:
            return ops
        raise AsmError("run_not_found", f"Run not in flight in this process: {run_id}")
    ops = for_adapter(tracker.adapter)
    _BY_RUN[run_id] = ops
    if len(_BY_RUN) > 1024:  # keep the lookup small: old runs drop out first
        for rid in list(_BY_RUN)[:512]:
            _BY_RUN.pop(rid, None)
    return ops


async def apause_run(run_id: str) -> str:
    """Pause a run in flight in this process (it waits at its next turn boundary). Adapters
    without the ``pause`` capability → ``capability_not_supported``."""
    return await _inflight_ops(run_id).pause(run_id)


async def aresume_run(run_id: str) -> str:
    """Resume a paused run."""
    return await _inflight_ops(run_id).resume(run_id)


async def ainterrupt_run(run_id: str) -> str:
    """Interrupt (cancel at the adapter) a run in flight in this process."""
    return await _inflight_ops(run_id).interrupt(run_id)


def _sync(coro: Any) -> Any:
    from .loop import run_sync

    return run_sync(coro)


def pause_run(run_id: str) -> str:
    """Sync twin of :func:`apause_run` (``asm_nb.pause``).

    >>> pause_run("run_missing")
    Traceback (most recent call last):
    ...
    asm_nb.core.errors.AsmError: [run_not_found] Run not in flight in this process: run_missing
    """
    return _sync(apause_run(run_id))


def resume_run(run_id: str) -> str:
    """Sync twin of :func:`aresume_run` (``asm_nb.resume``)."""
    return _sync(aresume_run(run_id))


def interrupt_run(run_id: str) -> str:
    """Sync twin of :func:`ainterrupt_run` (``asm_nb.interrupt``)."""
    return _sync(ainterrupt_run(run_id))


def operation_status(run_id: str) -> dict[str, Any]:
    """``{last_operation, state, history}`` of a run controlled through the default instances."""
    ops = _BY_RUN.get(run_id)
    if ops is None:
        return {"last_operation": None, "state": "unknown", "history": []}
    return ops.get_operation_status(run_id)
