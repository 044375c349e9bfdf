"""StreamSession: one run consumed lazily as an iterator of events (docs/runtime.md, streams, batches, the session
server).

``asm_nb.stream(prompt, provider=...)`` starts a run on the runtime loop and returns a
``StreamSession``; iterate it (``for ev in s`` or ``async for ev in s``) to get each enriched
event dict as the provider emits it. On success the iteration simply ends; on failure one final
synthetic ``{"type": "error_occurred", "data": {error_code, error_message, ...}}`` item comes
last. No item within ``idle_timeout_ms`` → a final ``error_occurred`` "stream idle timeout after
<ms>ms" item, and the run is cancelled. Leaving the loop early (``break``) or ``close()``
cancels the run; resources the stream created (adapter, store) are closed, borrowed ones are not.

``StreamSession.start(adapter=..., input=...)`` is the spec-level constructor (manager
``execute_once`` into an in-memory store unless one is given); ``stream(...)`` is the notebook face
(``asm_nb.run_once`` options: default store, ``session`` names, policy, ...).

**Deviation:** the reference returns a ``(stream, close, meta)`` tuple; iterating a
``StreamSession`` yields events, so tuple unpacking is offered as ``session.parts()``.

>>> from asm_nb.testing import MockAdapter
>>> s = StreamSession.start(adapter=MockAdapter(), input="hi")
>>> [ev["type"] for ev in s][:2]
['run_started', 'message_sent']
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import inspect
import logging
import threading
import time
import traceback
from typing import Any, AsyncIterator, Callable, Iterator, Mapping, Sequence

from .. import config
from ..core.errors import AsmError
from .options import public_options

log = logging.getLogger(__name__)

__all__ = ["StreamSession", "stream", "astream"]

_END = object()


class _Channel:
    """A thread-safe FIFO readable from sync code and from any event loop."""

    def __init__(self) -> None:
        self._items: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = []

    def put(self, item: Any) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify_all()
            waiters, self._async_waiters = self._async_waiters, []
        for loop, fut in waiters:
            try:
                loop.call_soon_threadsafe(lambda f=fut: f.done() or f.set_result(None))
            except RuntimeError:  # that loop is closed
                pass

    def get(self, timeout_s: float | None) -> Any:
        """The next item; ``TimeoutError`` when none arrived within ``timeout_s``. Waits in short
        slices so KeyboardInterrupt reaches the caller promptly."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while not self._items:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError
                self._cond.wait(0.05 if left is None else min(left, 0.05))
            return self._items.popleft()

    async def aget(self, timeout_s: float | None) -> Any:
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        while True:
            with self._cond:
                if self._items:
                    return self._items.popleft()
                fut = loop.create_future()
                self._async_waiters.append((loop, fut))
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                raise TimeoutError
            try:
                await asyncio.wait_for(fut, left)
            except asyncio.TimeoutError:
                raise TimeoutError from None


def _error_item(err: Any, *, session_id: str | None = None, run_id: str | None = None) -> dict[str, Any]:
    """The synthetic final item for a failed run (provider normalization as docs/runtime.md, the session manager)."""
    from .manager import _error_payload

    if isinstance(err, AsmError):
        hint = (err.provider_error or {}).get("provider") if isinstance(err.provider_error, Mapping) else None
        data = _error_payload(err, hint=hint)
    else:
        data = {"error_message": str(err)}
    item: dict[str, Any] = {"type": "error_occurred", "data": data}
    if session_id:
        item["session_id"] = session_id
    if run_id:
        item["run_id"] = run_id
    return item


class StreamSession:
    """A run as a lazy, single-use stream of events (sync and async iteration): event dicts, or
    ``Event`` objects with ``as_events=True`` (what ``asm_nb.stream`` gives)."""

    def __init__(self, runner: Callable[[Callable], Any], *, idle_timeout_ms: int | None = None,
                 shutdown_timeout_ms: int | None = None, meta: Any = None, owned_adapter: Any = None,
                 owned_store: Any = None, cancel: Callable[[str], Any] | None = None,
                 user_callback: Callable | None = None, as_events: bool = False) -> None:
        from . import loop

        self.as_events = as_events

        self.idle_timeout_ms = config.get("stream_idle_timeout_ms") if idle_timeout_ms is None else idle_timeout_ms
        self.shutdown_timeout_ms = (config.get("task_shutdown_timeout_ms") if shutdown_timeout_ms is None
                                    else shutdown_timeout_ms)
        self.meta = meta
        self.session_id: str | None = None
        self.run_id: str | None = None
        self.result: Any = None  # the run's outcome once it ended (ExecutionResult / RunResult)
        self.error: Any = None
        self._owned_adapter, self._owned_store = owned_adapter, owned_store
        self._cancel = cancel
        self._user_callback = user_callback
        self._channel = _Channel()
        self._consumed = False
        self._closed = False
        self._close_lock = threading.Lock()
        self._task: asyncio.Task | None = None
        self._future: concurrent.futures.Future = loop.submit(self._main(runner))

    # -- background task -----------------------------------------------------------------------
    async def _bridge(self, ev: Mapping[str, Any]) -> None:
        ev = dict(ev)
        self.session_id = self.session_id or ev.get("session_id")
        self.run_id = self.run_id or ev.get("run_id")
        self._channel.put(ev)
        if self._user_callback is not None:
            try:
                res = self._user_callback(ev)
                if inspect.isawaitable(res):
                    await res
            except Exception:
                log.exception("stream event_callback raised (ignored)")

    async def _main(self, runner: Callable[[Callable], Any]) -> None:
        self._task = asyncio.current_task()
        final: Any = None
        try:
            outcome = await runner(self._bridge)
            self.result = outcome
            err = getattr(outcome, "error", None)  # asm_nb.run_once returns failures as results
            status = getattr(outcome, "status", None)
            if err is not None and status != "completed":
                self.error = err
                final = _error_item(err, session_id=getattr(outcome, "session_id", None) or self.session_id,
                                    run_id=getattr(outcome, "run_id", None) or self.run_id)
        except AsmError as err:
            self.error = err
            final = _error_item(err, session_id=self.session_id, run_id=self.run_id)
        except asyncio.CancelledError:
            self.error = AsmError("cancelled", "session task shutdown")
            final = _error_item("session task shutdown", session_id=self.session_id, run_id=self.run_id)
            self._channel.put(final)
            self._channel.put(_END)
            raise
        except Exception as exc:
            self.error = exc
            final = _error_item("".join(traceback.format_exception_only(type(exc), exc)).strip(),
                                session_id=self.session_id, run_id=self.run_id)
        if final is not None:
            self._channel.put(final)
        self._channel.put(_END)

    # -- iteration -------------------------------------------------------------------------------
    def _idle_item(self) -> dict[str, Any]:
        return {"type": "error_occurred", "data": {"error_message": f"stream idle timeout after {self.idle_timeout_ms}ms"},
                **({"session_id": self.session_id} if self.session_id else {}),
                **({"run_id": self.run_id} if self.run_id else {})}

    def _out(self, item: dict[str, Any]) -> Any:
        """The item as this stream hands it out: the event dict, or (``as_events``) an ``Event``
        equal to the stored one (synthetic items get a fresh id and the stream's session)."""
        if not self.as_events:
            return item
        from ..core.events import Event

        fields = {k: item[k] for k in ("id", "timestamp", "run_id", "sequence_number", "provider",
                                       "correlation_id", "metadata", "schema_version") if item.get(k) is not None}
        return Event.new(item["type"], item.get("session_id") or self.session_id or "unknown",
                         data=item.get("data") or {}, **fields)

    def _timeout_s(self) -> float | None:
        ms = self.idle_timeout_ms
        return None if ms is None or ms <= 0 else ms / 1000

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self._consumed:
            return
        self._consumed = True
        try:
            while True:
                try:
                    item = self._channel.get(self._timeout_s())
                except TimeoutError:
                    yield self._out(self._idle_item())
                    return
                if item is _END:
                    return
                yield self._out(item)
        finally:
            self.close()

    async def _aiter(self) -> AsyncIterator[dict[str, Any]]:
        try:
            while True:
                try:
                    item = await self._channel.aget(self._timeout_s())
                except TimeoutError:
                    yield self._out(self._idle_item())
                    return
                if item is _END:
                    return
                yield self._out(item)
        finally:
            await self.aclose()

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        if self._consumed:
            return _empty()
        self._consumed = True
        return self._aiter()

    def parts(self) -> tuple["StreamSession", Callable[[], None], Any]:
        """``(stream, close, meta)``, the reference's tuple shape."""
        return self, self.close, self.meta

    # -- closing ---------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        """The background run has ended."""
        return self._future.done()

    async def _shutdown(self) -> None:
        timeout = self.shutdown_timeout_ms / 1000
        if not self._future.done() and self._cancel is not None and self.run_id:
            try:
                await asyncio.wait_for(self._cancel(self.run_id), timeout)
            except Exception:
                log.debug("stream cancel of %s failed", self.run_id, exc_info=True)
        task = self._task  # the task itself: its future reports "cancelled" before clean-up ran
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=timeout)
        elif task is None and not self._future.done():
            self._future.cancel()  # not started yet: it never will
        if self._owned_adapter is not None:
            try:
                close = getattr(self._owned_adapter, "aclose", None)
                if close is not None:
                    await close()
            except Exception:
                log.debug("closing the stream's adapter failed", exc_info=True)
        if self._owned_store is not None:
            try:
                close = getattr(self._owned_store, "close", None)
                if close is not None:
                    close()
            except Exception:
                log.debug("closing the stream's store failed", exc_info=True)

    def _claim_close(self) -> bool:
        with self._close_lock:
            if self._closed:
                return False
            self._closed = True
            return True

    def close(self) -> None:
        """Cancel the run if still going, close owned resources. Idempotent."""
        if not self._claim_close():
            return
        from . import loop

        if loop.in_loop_thread():  # called from the runtime loop: schedule, don't block it
            loop.get_loop().create_task(self._shutdown())
            return
        fut = loop.submit(self._shutdown())
        try:
            fut.result(timeout=self.shutdown_timeout_ms / 1000 * 2 + 1)
        except Exception:
            log.debug("stream shutdown did not finish in time", exc_info=True)

    async def aclose(self) -> None:
        """Async twin of ``close``."""
        if not self._claim_close():
            return
        from . import loop

        fut = loop.submit(self._shutdown())
        try:
            await asyncio.wait_for(asyncio.wrap_future(fut), self.shutdown_timeout_ms / 1000 * 2 + 1)
        except Exception:
            log.debug("stream shutdown did not finish in time", exc_info=True)

    def __enter__(self) -> "StreamSession":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    async def __aenter__(self) -> "StreamSession":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    # -- spec constructor --------------------------------------------------------------------------
    @classmethod
    def start(cls, *, adapter: Any = None, input: Any = None, store: Any = None, agent_id: str | None = None,
              run_opts: Mapping[str, Any] | None = None, idle_timeout_ms: int | None = None,
              shutdown_timeout_ms: int | None = None) -> "StreamSession":
        """Start ``manager.execute_once(store, adapter, input, **run_opts)`` in the background.

        ``adapter``: an instance (borrowed), ``(AdapterClass, opts)`` or a registered name (both
        created and owned). ``store``: None → a new InMemoryStore (owned), else borrowed.
        """
        from . import manager

        if adapter is None:
            raise AsmError("validation_error", "missing option: adapter")
        if input is None:
            raise AsmError("validation_error", "missing option: input")
        owned_store = None
        if store is None:
            from ..stores import open_store

            store = owned_store = open_store("memory://")
        owned_adapter = None
        meta: Any = adapter
        if isinstance(adapter, tuple) and len(adapter) == 2 and isinstance(adapter[0], type):
            klass, opts = adapter
            meta = {"adapter": klass}
            try:
                adapter = owned_adapter = klass(**dict(opts or {}))
            except BaseException:
                if owned_store is not None:
                    owned_store.close()
                raise
        elif isinstance(adapter, str):
            from ..providers import create_adapter

            try:
                adapter = owned_adapter = create_adapter(adapter)
            except BaseException:
                if owned_store is not None:
                    owned_store.close()
                raise
        elif not (callable(getattr(adapter, "execute", None)) and isinstance(getattr(adapter, "name", None), str)):
            if owned_store is not None:
                owned_store.close()
            raise AsmError("validation_error",
                           "adapter must be (AdapterClass, opts), an adapter instance, or a registered name")
        opts = dict(run_opts or {})
        user_cb = opts.pop("event_callback", None)
        if agent_id is not None:
            opts["agent_id"] = agent_id
        the_adapter, the_store = adapter, store

        def runner(bridge: Callable) -> Any:
            return manager.aexecute_once(the_store, the_adapter, input, event_callback=bridge, **opts)

        return cls(runner, idle_timeout_ms=idle_timeout_ms, shutdown_timeout_ms=shutdown_timeout_ms, meta=meta,
                   owned_adapter=owned_adapter, owned_store=owned_store,
                   cancel=lambda run_id: manager.acancel_run(the_store, the_adapter, run_id),
                   user_callback=user_cb)


async def _empty() -> AsyncIterator[dict[str, Any]]:
    return
    yield  # pragma: no cover


@public_options
def stream(prompt: Any, provider: Any = None, *, idle_timeout_ms: int | None = None,
           shutdown_timeout_ms: int | None = None, on_event: Callable[[dict], Any] | None = None,
           store: Any = None, model: str | None = None, session: str | None = None, policy: Any = None,
           snapshot: bool | Mapping[str, Any] = False, cwd: str | None = None, system: str | None = None,
           max_turns: int | None = None, permission_mode: str | None = None, timeout: float | None = None,
           metadata: Mapping[str, Any] | None = None, tags: Sequence[str] | None = None,
           agent_id: str | None = None, continuation: str | bool | None = "auto",
           continuation_opts: Mapping[str, Any] | None = None, routing: Mapping[str, Any] | None = None,
           required_capabilities: Sequence[Any] | None = None, publish: Any = False,
           options: Mapping[str, Any] | None = None) -> StreamSession:
    """Start a run and return it as a stream of ``Event`` objects (equal to the stored events,
    i.e. to ``RunResult.events``; a failure ends it with one synthetic ``error_occurred``).

    >>> for ev in stream("echo hi", provider="shell", store="memory://"):   # doctest: +SKIP
    ...     print(ev.type.value)

    Options are those of ``asm_nb.run_once`` (``store``, ``model``, ``session``, ``policy``,
    ``timeout`` in seconds, ``options`` for the adapter, ...);
    ``on_event`` is still called for each event. The finished run's ``RunResult`` is
    ``stream.result`` once the iteration ended.
    """
    given = {k: v for k, v in locals().items()
             if k not in ("idle_timeout_ms", "shutdown_timeout_ms", "on_event")}
    from . import manager
    from .oneshot import _checked, arun_tracked

    run_once_options = _checked({**given, "on_event": None})
    run_once_options.pop("on_event")
    state: dict[str, Any] = {}  # arun_tracked fills in run_id, adapter and store

    def runner(bridge: Callable) -> Any:
        return arun_tracked(prompt, provider, state, on_event=bridge, **run_once_options)

    async def cancel(run_id: str) -> Any:
        if state.get("adapter") is not None:
            return await manager.acancel_run(state["store"], state["adapter"], run_id)

    return StreamSession(runner, idle_timeout_ms=idle_timeout_ms, shutdown_timeout_ms=shutdown_timeout_ms,
                         meta=provider, cancel=cancel, user_callback=on_event, as_events=True)


astream = stream  # the same object iterates with ``async for``
