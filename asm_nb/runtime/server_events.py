"""The session server's event side: ``Subscription`` (one subscriber: filters, a callback and/or
an async queue) and ``ServerSubscriptions``, the part of ``SessionServer`` that subscribes,
backfills from the store and dispatches new events exactly once and in order (the module
docstring of ``runtime/server.py`` describes how); plus the server's telemetry helper.

Split out of ``runtime/server.py``, which re-exports ``Subscription``.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Mapping, TypeGuard

from ..core.errors import AsmError
from ..core.events import is_audit, resolve_type
from ..persistence.store_call import call_store

if TYPE_CHECKING:
    from .server import SessionServer

log = logging.getLogger("asm_nb.runtime.server")  # the logger keeps the name it had before the split

_BACKFILL_PAGE = 1000
_DISPATCH_PAGE = 500


def _telemetry(suffix: str, measurements: Mapping[str, Any], metadata: Mapping[str, Any]) -> None:
    from .. import telemetry

    name = telemetry.TELEMETRY_PREFIX + ("runtime", "session_server") + tuple(suffix.split("."))
    if telemetry.has_handlers(name) and telemetry.enabled():
        telemetry.execute(name, dict(measurements), dict(metadata))


def _is_int(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)



_CLOSED = object()
_sub_ids = itertools.count(1)


class Subscription:
    """One subscriber: filters, a callback and/or an async queue (``async for sid, ev in sub``).

    ``type``: one event type or a set of them; ``run_id``: one run; ``from_sequence``: the first
    sequence wanted. Events at or below the last delivered sequence are dropped, so nothing is
    delivered twice. A raising callback is logged and never stops delivery.
    """

    def __init__(self, server: "SessionServer | ServerSubscriptions", *, from_sequence: int, run_id: str | None, type: Any,
                 callback: Callable | None, maxsize: int = 0) -> None:
        self.id = next(_sub_ids)
        self.server = server
        self.session_id = server.session_id
        self.from_sequence = from_sequence
        self.run_id = run_id
        if type is None:
            self.types: frozenset[str] | None = None
        elif isinstance(type, (set, frozenset, list, tuple)):
            self.types = frozenset(resolve_type(t).value for t in type)
        else:
            self.types = frozenset({resolve_type(type).value})
        self.callback = callback
        self.last_delivered = max(from_sequence - 1, 0)
        self.backfilling = True
        self.closed = False
        self.delivered = 0
        self._queue: asyncio.Queue = asyncio.Queue(maxsize)

    def matches(self, event: Any) -> bool:
        if self.types is not None and event.type.value not in self.types:
            return False
        if self.run_id is not None and event.run_id != self.run_id:
            return False
        seq = event.sequence_number
        return not _is_int(seq) or seq >= self.from_sequence

    def _deliver(self, event: Any) -> None:
        if self.closed:
            return
        seq = event.sequence_number
        if _is_int(seq):
            if seq <= self.last_delivered:
                return
            self.last_delivered = seq
        if not self.matches(event) or is_audit(event):  # audit records: frames.audit / asm audit
            return
        self.delivered += 1
        item = (self.session_id, event)
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:  # a consumer that stopped reading: drop the oldest
            try:
                self._queue.get_nowait()
                self._queue.put_nowait(item)
            except (asyncio.QueueEmpty, asyncio.QueueFull):
                pass
        if self.callback is not None:
            try:
                res = self.callback(self.session_id, event)
                if inspect.isawaitable(res):
                    asyncio.ensure_future(res)
            except Exception:
                log.exception("subscriber callback raised (ignored)")

    def _close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self._queue.put_nowait(_CLOSED)
            except asyncio.QueueFull:
                pass

    def __aiter__(self) -> AsyncIterator[tuple[str, Any]]:
        return self

    async def __anext__(self) -> tuple[str, Any]:
        if self.closed and self._queue.empty():
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is _CLOSED:
            raise StopAsyncIteration
        return item

    async def get(self, timeout_s: float | None = None) -> tuple[str, Any]:
        """The next ``(session_id, event)``; ``timeout`` error after ``timeout_s``."""
        try:
            return await asyncio.wait_for(self.__anext__(), timeout_s)
        except asyncio.TimeoutError:
            raise AsmError("timeout", f"No event within {timeout_s}s") from None

    async def aclose(self) -> None:
        await self.server.unsubscribe(self)



class ServerSubscriptions:
    """Subscriptions of a ``SessionServer`` (its base class; ``SessionServer.__init__`` sets the
    attributes below): subscribe with a paged backfill, then live dispatch after each stored
    event batch (``_signal``)."""

    store: Any
    session_id: str
    _subscribers: list[Subscription]
    _dispatch_cursor: int
    _dispatch_pending: bool
    _dispatch_task: asyncio.Task | None
    _loop: asyncio.AbstractEventLoop | None

    async def subscribe(self, *, from_sequence: int = 0, run_id: str | None = None, type: Any = None,
                        callback: Callable | None = None, maxsize: int = 0) -> Subscription:
        """Events of this session from ``from_sequence`` on: stored ones first, then live ones."""
        if not _is_int(from_sequence) or from_sequence < 0:
            raise AsmError("validation_error", "from_sequence must be a non-negative integer")
        sub = Subscription(self, from_sequence=from_sequence, run_id=run_id, type=type, callback=callback,
                           maxsize=maxsize)
        self._subscribers.append(sub)
        _telemetry("subscribe", {"count": len(self._subscribers)}, {"session_id": self.session_id})
        await self._backfill(sub)
        return sub

    async def _backfill(self, sub: Subscription) -> None:
        query: dict[str, Any] = {}
        if sub.run_id is not None:
            query["run_id"] = sub.run_id
        if sub.types is not None:
            query["type"] = sorted(sub.types)

        async def read(**kw: Any) -> list:
            return await call_store(self.store, "get_events", self.session_id, after=sub.last_delivered,
                                        **query, **kw)

        while True:
            page = await read(limit=_BACKFILL_PAGE)
            for ev in page:
                sub._deliver(ev)
            if len(page) >= _BACKFILL_PAGE:
                continue
            # Go live once live dispatch has not delivered past our cursor. The check and the switch
            # happen in one loop step, so no event falls between backfill and live delivery.
            target = self._dispatch_cursor
            others = self._live_subscribers(exclude=sub)
            if not others:
                sub.backfilling = False
                self._dispatch_cursor = sub.last_delivered  # live dispatch continues from our cursor
                return
            if target <= sub.last_delivered:
                sub.backfilling = False
                return
            # live dispatch is ahead of us: every event up to its cursor is stored, read that gap
            for ev in await read(before=target + 1):
                sub._deliver(ev)
            sub.last_delivered = max(sub.last_delivered, target)

    def _live_subscribers(self, exclude: Subscription | None = None) -> list[Subscription]:
        return [s for s in self._subscribers if not s.backfilling and s is not exclude and not s.closed]

    async def unsubscribe(self, sub: Subscription) -> None:
        """Stop a subscription (idempotent)."""
        if sub in self._subscribers:
            self._subscribers.remove(sub)
            _telemetry("unsubscribe", {"count": len(self._subscribers)}, {"session_id": self.session_id})
        sub._close()

    def _signal(self) -> None:
        """New events may be in the store: schedule one (coalesced) dispatch."""
        if not self._live_subscribers():
            return
        self._dispatch_pending = True
        if self._dispatch_task is None or self._dispatch_task.done():
            self._dispatch_task = self._loop.create_task(self._dispatch_loop())  # type: ignore[union-attr]

    async def _dispatch_loop(self) -> None:
        while self._dispatch_pending:
            self._dispatch_pending = False
            await self._dispatch_now()

    async def _dispatch_now(self) -> None:
        while True:
            live = self._live_subscribers()
            if not live:
                return
            cursor = self._dispatch_cursor
            try:
                page = await call_store(self.store, "get_events", self.session_id, after=cursor,
                                            limit=_DISPATCH_PAGE)
            except AsmError as err:
                log.warning("event dispatch for session %s failed: %s", self.session_id, err)
                return
            if self._dispatch_cursor != cursor:
                continue  # another dispatch moved the cursor meanwhile: read again from there
            for ev in page:
                for sub in self._live_subscribers():
                    sub._deliver(ev)
                if _is_int(ev.sequence_number):
                    self._dispatch_cursor = max(self._dispatch_cursor, ev.sequence_number)
            for sub in [s for s in self._subscribers if s.closed]:
                self._subscribers.remove(sub)
            if len(page) < _DISPATCH_PAGE:
                return
