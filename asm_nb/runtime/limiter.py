"""ConcurrencyLimiter: bounds on parallel sessions and runs, global and per provider (docs/runtime.md, streams,
batches, the session server).

The spec's operations are *non-blocking*: ``acquire_session_slot`` / ``acquire_run_slot``
either take a slot or raise ``max_sessions_exceeded`` / ``max_runs_exceeded``. The Python port
adds waiting variants (``await_run_slot``, ``wait_run_slot``, ``await_session_slot``) that queue
the caller FIFO until a slot frees — fair queueing: a slot released goes to the earliest waiter
that it can satisfy (a waiter held back only by its own provider's limit does not block
waiters for other providers) — and context managers that release on every exit path
(normal exit, exception, task cancellation).

One ``threading.Lock`` guards the state, so a limiter may be shared by the runtime loop, worker
threads and several event loops; async waiters are woken with ``call_soon_threadsafe``.

>>> lim = ConcurrencyLimiter(max_parallel_sessions=2, max_parallel_runs=1)
>>> lim.acquire_run_slot("ses_1", "run_1")
>>> lim.get_status()["available_run_slots"]
0
>>> lim.release_run_slot("run_1")

Imports only ``core`` and ``config``.
"""

from __future__ import annotations

import asyncio
import collections
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .. import config
from ..core.errors import AsmError

__all__ = ["ConcurrencyLimiter", "Limit"]

Limit = int | float | None  # None / math.inf = unlimited


def _check_limit(value: Any, name: str) -> float:
    if value is None or (isinstance(value, float) and math.isinf(value) and value > 0):
        return math.inf
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise AsmError("validation_error",
                       f"{name} must be a non-negative integer, None or math.inf (unlimited), got: {value!r}")
    return value


def _fmt(limit: float) -> Any:
    return "infinity" if math.isinf(limit) else int(limit)


def _available(limit: float, active: int) -> Any:
    return math.inf if math.isinf(limit) else max(0, int(limit) - active)


@dataclass
class _Waiter:
    kind: str  # "run" | "session"
    session_id: str
    run_id: str | None
    provider: str | None
    wake: Callable[[], None]
    granted: bool = False
    abandoned: bool = False
    enqueued_at: float = field(default_factory=time.monotonic)


class ConcurrencyLimiter:
    """Global and per-provider limits on parallel sessions and runs.

    Args:
        max_parallel_sessions / max_parallel_runs: global bounds (default: config keys of the
            same name); ``None`` or ``math.inf`` = unlimited.
        provider_limits: per-provider bounds, ``{"claude": 4}`` (runs) or
            ``{"claude": {"max_parallel_runs": 4, "max_parallel_sessions": 2}}``. A run or
            session counts against its provider when ``provider=`` is given on acquire.

    Run limits are global across sessions; a run needs no session slot. Acquiring a slot that
    is already held succeeds (counted once); releasing an unknown id is a no-op; releasing a
    session also releases every run slot recorded under it.
    """

    def __init__(self, max_parallel_sessions: Limit | object = ..., max_parallel_runs: Limit | object = ..., *,
                 provider_limits: Mapping[str, Any] | None = None) -> None:
        if max_parallel_sessions is ...:
            max_parallel_sessions = config.get("max_parallel_sessions")
        if max_parallel_runs is ...:
            max_parallel_runs = config.get("max_parallel_runs")
        self.max_parallel_sessions = _check_limit(max_parallel_sessions, "max_parallel_sessions")
        self.max_parallel_runs = _check_limit(max_parallel_runs, "max_parallel_runs")
        self.provider_limits: dict[str, dict[str, float]] = {}
        for name, spec in (provider_limits or {}).items():
            if isinstance(spec, Mapping):
                unknown = set(spec) - {"max_parallel_runs", "max_parallel_sessions"}
                if unknown:
                    raise AsmError("validation_error", f"unknown provider limit keys for {name!r}: {sorted(unknown)}")
                self.provider_limits[str(name)] = {
                    "max_parallel_runs": _check_limit(spec.get("max_parallel_runs"), f"{name}.max_parallel_runs"),
                    "max_parallel_sessions": _check_limit(spec.get("max_parallel_sessions"),
                                                          f"{name}.max_parallel_sessions")}
            else:
                self.provider_limits[str(name)] = {"max_parallel_runs": _check_limit(spec, f"{name} run limit"),
                                                   "max_parallel_sessions": math.inf}
        self._lock = threading.Lock()
        self._sessions: dict[str, str | None] = {}  # session_id -> provider
        self._runs: dict[str, tuple[str, str | None]] = {}  # run_id -> (session_id, provider)
        self._waiters: collections.deque[_Waiter] = collections.deque()
        self.peak_active_runs = 0
        self.peak_active_sessions = 0

    # -- capacity checks (lock held) ---------------------------------------------------------
    def _count(self, table: Mapping[str, Any], provider: str | None) -> int:
        if table is self._runs:
            return sum(1 for _, p in self._runs.values() if p == provider)
        return sum(1 for p in self._sessions.values() if p == provider)

    def _run_blocker(self, provider: str | None) -> AsmError | None:
        active = len(self._runs)
        if active >= self.max_parallel_runs:
            return AsmError("max_runs_exceeded", f"Maximum parallel runs limit ({_fmt(self.max_parallel_runs)}) "
                                                 f"exceeded. Currently active: {active}")
        plim = self.provider_limits.get(provider or "", {}).get("max_parallel_runs", math.inf)
        if not math.isinf(plim):
            n = self._count(self._runs, provider)
            if n >= plim:
                return AsmError("max_runs_exceeded", f"Maximum parallel runs limit for provider {provider!r} "
                                                     f"({_fmt(plim)}) exceeded. Currently active: {n}")
        return None

    def _session_blocker(self, provider: str | None) -> AsmError | None:
        active = len(self._sessions)
        if active >= self.max_parallel_sessions:
            return AsmError("max_sessions_exceeded",
                            f"Maximum parallel sessions limit ({_fmt(self.max_parallel_sessions)}) exceeded. "
                            f"Currently active: {active}")
        plim = self.provider_limits.get(provider or "", {}).get("max_parallel_sessions", math.inf)
        if not math.isinf(plim):
            n = self._count(self._sessions, provider)
            if n >= plim:
                return AsmError("max_sessions_exceeded",
                                f"Maximum parallel sessions limit for provider {provider!r} ({_fmt(plim)}) "
                                f"exceeded. Currently active: {n}")
        return None

    def _take_run(self, session_id: str, run_id: str, provider: str | None) -> None:
        self._runs[run_id] = (session_id, provider)
        self.peak_active_runs = max(self.peak_active_runs, len(self._runs))

    def _take_session(self, session_id: str, provider: str | None) -> None:
        self._sessions[session_id] = provider
        self.peak_active_sessions = max(self.peak_active_sessions, len(self._sessions))

    def _grant_waiters(self) -> list[Callable[[], None]]:
        """Hand freed slots to waiters in FIFO order (lock held); returns the wake-ups to call."""
        wakes = []
        for w in list(self._waiters):
            if w.abandoned:
                self._waiters.remove(w)
                continue
            if w.kind == "run":
                if w.run_id in self._runs:
                    ok = True
                else:
                    ok = self._run_blocker(w.provider) is None
                    if ok:
                        self._take_run(w.session_id, w.run_id, w.provider)  # type: ignore[arg-type]
            else:
                if w.session_id in self._sessions:
                    ok = True
                else:
                    ok = self._session_blocker(w.provider) is None
                    if ok:
                        self._take_session(w.session_id, w.provider)
            if ok:
                w.granted = True
                self._waiters.remove(w)
                wakes.append(w.wake)
        return wakes

    @staticmethod
    def _wake(wakes: list[Callable[[], None]]) -> None:
        for wake in wakes:
            try:
                wake()
            except RuntimeError:  # the waiter's loop closed meanwhile: nothing to wake
                pass

    # -- spec operations ---------------------------------------------------------------------
    def acquire_session_slot(self, session_id: str, *, provider: str | None = None) -> None:
        """Take a session slot now, or raise ``max_sessions_exceeded``."""
        with self._lock:
            if session_id in self._sessions:
                return
            err = self._session_blocker(provider)
            if err is not None:
                raise err
            self._take_session(session_id, provider)

    def release_session_slot(self, session_id: str) -> None:
        """Release a session slot and every run slot recorded under that session."""
        with self._lock:
            self._sessions.pop(session_id, None)
            for rid in [r for r, (sid, _) in self._runs.items() if sid == session_id]:
                del self._runs[rid]
            wakes = self._grant_waiters()
        self._wake(wakes)

    def acquire_run_slot(self, session_id: str, run_id: str, *, provider: str | None = None) -> None:
        """Take a run slot now, or raise ``max_runs_exceeded`` (global or per-provider bound)."""
        with self._lock:
            if run_id in self._runs:
                return
            err = self._run_blocker(provider)
            if err is not None:
                raise err
            self._take_run(session_id, run_id, provider)

    def release_run_slot(self, run_id: str) -> None:
        """Release a run slot (unknown id: no-op) and hand it to the next waiter."""
        with self._lock:
            if self._runs.pop(run_id, None) is None and not self._waiters:
                return
            wakes = self._grant_waiters()
        self._wake(wakes)

    def get_limits(self) -> dict[str, Any]:
        return {"max_parallel_sessions": self.max_parallel_sessions, "max_parallel_runs": self.max_parallel_runs}

    def get_status(self) -> dict[str, Any]:
        with self._lock:
            s, r = len(self._sessions), len(self._runs)
        return {"active_sessions": s, "active_runs": r,
                "max_parallel_sessions": self.max_parallel_sessions, "max_parallel_runs": self.max_parallel_runs,
                "available_session_slots": _available(self.max_parallel_sessions, s),
                "available_run_slots": _available(self.max_parallel_runs, r)}

    def provider_status(self, provider: str) -> dict[str, Any]:
        """Active runs/sessions of one provider and its limits."""
        lim = self.provider_limits.get(provider, {})
        with self._lock:
            return {"provider": provider, "active_runs": self._count(self._runs, provider),
                    "active_sessions": self._count(self._sessions, provider),
                    "max_parallel_runs": lim.get("max_parallel_runs", math.inf),
                    "max_parallel_sessions": lim.get("max_parallel_sessions", math.inf),
                    "waiting": sum(1 for w in self._waiters if w.provider == provider and not w.abandoned)}

    def holds_run(self, run_id: str) -> bool:
        with self._lock:
            return run_id in self._runs

    @property
    def waiting(self) -> int:
        """Number of callers queued for a slot."""
        with self._lock:
            return sum(1 for w in self._waiters if not w.abandoned)

    # -- waiting variants (Python) -----------------------------------------------------------
    def _enqueue_or_take(self, kind: str, session_id: str, run_id: str | None, provider: str | None,
                         wake: Callable[[], None]) -> _Waiter | None:
        """Take the slot now (→ None) or queue a waiter (lock taken here). Freed slots are handed
        to waiters under the same lock, so queued callers are never overtaken: a newcomer finds
        capacity only when every waiter is held back by its own provider's limit."""
        with self._lock:
            if kind == "run":
                if run_id in self._runs:
                    return None
                if self._run_blocker(provider) is None:
                    self._take_run(session_id, run_id, provider)  # type: ignore[arg-type]
                    return None
            else:
                if session_id in self._sessions:
                    return None
                if self._session_blocker(provider) is None:
                    self._take_session(session_id, provider)
                    return None
            w = _Waiter(kind, session_id, run_id, provider, wake)
            self._waiters.append(w)
            return w

    def _abandon(self, w: _Waiter) -> None:
        """A waiter gave up (timeout/cancel): drop it, or give back a slot granted meanwhile."""
        with self._lock:
            w.abandoned = True
            granted = w.granted
            if w in self._waiters:
                self._waiters.remove(w)
        if granted:
            if w.kind == "run":
                self.release_run_slot(w.run_id)  # type: ignore[arg-type]
            else:
                self.release_session_slot(w.session_id)

    def _timeout_error(self, w: _Waiter, timeout_s: float) -> AsmError:
        what = f"run slot for {w.run_id}" if w.kind == "run" else f"session slot for {w.session_id}"
        return AsmError("timeout", f"Timed out after {int(timeout_s * 1000)}ms waiting for a {what}")

    async def _await(self, kind: str, session_id: str, run_id: str | None, provider: str | None,
                     timeout_s: float | None) -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()

        def wake() -> None:
            loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(None))

        w = self._enqueue_or_take(kind, session_id, run_id, provider, wake)
        if w is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout_s)
        except asyncio.TimeoutError:
            self._abandon(w)
            raise self._timeout_error(w, timeout_s or 0) from None
        except BaseException:
            self._abandon(w)
            raise

    def _wait(self, kind: str, session_id: str, run_id: str | None, provider: str | None,
              timeout_s: float | None) -> None:
        ev = threading.Event()
        w = self._enqueue_or_take(kind, session_id, run_id, provider, ev.set)
        if w is None:
            return
        try:
            if not ev.wait(timeout_s):
                self._abandon(w)
                raise self._timeout_error(w, timeout_s or 0)
        except BaseException:
            if not w.abandoned:
                self._abandon(w)
            raise

    async def await_run_slot(self, session_id: str, run_id: str, *, provider: str | None = None,
                             timeout_s: float | None = None) -> None:
        """Take a run slot, waiting in FIFO order until one frees (``timeout`` error after ``timeout_s``)."""
        await self._await("run", session_id, run_id, provider, timeout_s)

    def wait_run_slot(self, session_id: str, run_id: str, *, provider: str | None = None,
                      timeout_s: float | None = None) -> None:
        """Blocking twin of ``await_run_slot`` (for worker threads)."""
        self._wait("run", session_id, run_id, provider, timeout_s)

    async def await_session_slot(self, session_id: str, *, provider: str | None = None,
                                 timeout_s: float | None = None) -> None:
        """Take a session slot, waiting in FIFO order until one frees."""
        await self._await("session", session_id, None, provider, timeout_s)

    def wait_session_slot(self, session_id: str, *, provider: str | None = None,
                          timeout_s: float | None = None) -> None:
        """Blocking twin of ``await_session_slot``."""
        self._wait("session", session_id, None, provider, timeout_s)

    # -- context managers --------------------------------------------------------------------
    def session_slot(self, session_id: str, *, provider: str | None = None, wait: bool = False,
                     timeout_s: float | None = None) -> "_Slot":
        """``with`` / ``async with`` a session slot; released on every exit path.
        ``wait=True`` queues for a slot instead of raising ``max_sessions_exceeded``."""
        return _Slot(self, "session", session_id, "", provider, wait, timeout_s)

    def run_slot(self, session_id: str, run_id: str, *, provider: str | None = None, wait: bool = False,
                 timeout_s: float | None = None) -> "_Slot":
        """``with`` / ``async with`` a run slot; released on every exit path.
        ``wait=True`` queues for a slot instead of raising ``max_runs_exceeded``."""
        return _Slot(self, "run", session_id, run_id, provider, wait, timeout_s)


class _Slot:
    def __init__(self, limiter: ConcurrencyLimiter, kind: str, session_id: str, run_id: str,
                 provider: str | None, wait: bool, timeout_s: float | None) -> None:
        self.limiter, self.kind, self.session_id, self.run_id = limiter, kind, session_id, run_id
        self.provider, self.wait, self.timeout_s = provider, wait, timeout_s

    def _release(self) -> None:
        if self.kind == "run":
            self.limiter.release_run_slot(self.run_id)
        else:
            self.limiter.release_session_slot(self.session_id)

    def __enter__(self) -> "_Slot":
        lim = self.limiter
        if self.kind == "run":
            if self.wait:
                lim.wait_run_slot(self.session_id, self.run_id, provider=self.provider, timeout_s=self.timeout_s)
            else:
                lim.acquire_run_slot(self.session_id, self.run_id, provider=self.provider)
        elif self.wait:
            lim.wait_session_slot(self.session_id, provider=self.provider, timeout_s=self.timeout_s)
        else:
            lim.acquire_session_slot(self.session_id, provider=self.provider)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._release()

    async def __aenter__(self) -> "_Slot":
        lim = self.limiter
        if not self.wait:
            return self.__enter__()
        if self.kind == "run":
            await lim.await_run_slot(self.session_id, self.run_id, provider=self.provider,  # type: ignore[arg-type]
                                     timeout_s=self.timeout_s)
        else:
            await lim.await_session_slot(self.session_id, provider=self.provider, timeout_s=self.timeout_s)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self._release()
