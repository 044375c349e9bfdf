"""``BaseAdapter``: the bookkeeping every built-in adapter shares.

Tracks in-flight runs (``dict[run_id, ActiveRun]``), builds the event envelope (docs/providers.md), keeps
``AdapterResult.events`` equal to what the callback saw, closes open tool calls and
guarantees exactly one terminal event. Adapters subclass it and implement ``_execute``.

A callback whose owner records the stream itself (the session manager persists every event)
says so with a true ``records_events`` attribute: the run then keeps only its first
``run_started`` and its terminal events (``KeptEvents``), not a copy of every delta, and
``AdapterResult.events`` holds those.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from dataclasses import dataclass, field
from collections.abc import Callable, Mapping
from typing import Any

from ..core.capabilities import Capability, CapabilityType
from ..core.errors import AsmError
from ..core.run import Run
from ..core.serialization import utc_now
from ..core.session import Session
from ..ports import CALLBACK_DONE, AdapterResult, EventCallback, KeptEvents
from ..core.usage import empty_usage
from ..core.provider_errors import normalize_provider_error

log = logging.getLogger(__name__)

TERMINAL = frozenset({"run_completed", "run_failed", "run_cancelled"})
_MAY_KEEP = KeptEvents.MAY_KEEP



@dataclass
class ActiveRun:
    """One in-flight execute: the events it emitted, its open tool calls and its cancel flag."""

    run: Run
    session: Session
    adapter: "BaseAdapter"
    callback: EventCallback | None
    events: list | KeptEvents = field(default_factory=list)  # every event, or KeptEvents (module doc)
    open_tools: dict = field(default_factory=dict)  # tool_call_id -> (tool_name, tool_input)
    started_tools: set = field(default_factory=set)  # every tool_call_id started in this run
    cancelled: bool = False
    cancel_event: asyncio.Event = field(default_factory=asyncio.Event)
    terminal_emitted: bool = False
    error_messages: set = field(default_factory=set)
    on_cancel: list = field(default_factory=list)  # callables run when cancel() is called
    task: asyncio.Task | None = None
    resumed: asyncio.Event = field(default_factory=asyncio.Event)  # clear while a pause is requested

    def __post_init__(self) -> None:
        self.resumed.set()
        if getattr(self.callback, "records_events", False) and isinstance(self.events, list) and not self.events:
            self.events = KeptEvents()

    @property
    def pause_requested(self) -> bool:
        return not self.resumed.is_set()

    async def checkpoint(self) -> None:
        """A point where the run may wait: between turns of an adapter's loop. While a pause is
        requested, emit ``session_paused`` ``{run_id, reason: "paused"}``, wait for ``resume`` (or
        a cancel), then emit ``session_resumed``. Adapters that call this advertise the
        ``pause`` / ``resume`` capabilities (``supports_pause = True``)."""
        if self.resumed.is_set() or self.cancelled:
            return
        await self.emit("session_paused", {"run_id": self.run.id, "reason": "paused"})
        resumed = asyncio.ensure_future(self.resumed.wait())
        cancelled = asyncio.ensure_future(self.cancel_event.wait())
        try:
            await asyncio.wait({resumed, cancelled}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            resumed.cancel()
            cancelled.cancel()
        if not self.cancelled:
            await self.emit("session_resumed", {"run_id": self.run.id})

    async def emit(self, type: str, data: Mapping[str, Any] | None = None, **extra: Any) -> dict:
        """Send one event (docs/providers.md, event envelope) to the callback and record it."""
        if self.terminal_emitted:
            log.debug("dropping %s after terminal event for run %s", type, self.run.id)
            return {}
        d = dict(data or {})
        if type == "tool_call_started":
            self.open_tools[d.get("tool_call_id")] = (d.get("tool_name"), d.get("tool_input"))
            self.started_tools.add(d.get("tool_call_id"))
        elif type in ("tool_call_completed", "tool_call_failed"):
            tcid = d.get("tool_call_id")
            if tcid not in self.open_tools and tcid not in self.started_tools and not extra.pop("_no_synth", False):
                # invariant 4: every end has a start with the same id
                await self.emit("tool_call_started", {"tool_call_id": tcid, "tool_name": d.get("tool_name"),
                                                      "tool_input": d.get("tool_input") or {}})
            self.open_tools.pop(tcid, None)
        elif type == "error_occurred":
            self.error_messages.add(d.get("error_message"))
        if extra:
            ev = {"type": type, "timestamp": extra.pop("timestamp", None) or utc_now(),
                  "session_id": self.session.id, "run_id": self.run.id, "data": d, "provider": self.adapter.name}
            if extra.get("metadata"):
                ev["metadata"] = dict(extra["metadata"])
            if extra.get("id"):  # a caller-chosen event id (deterministic replay); the pipeline keeps it
                ev["id"] = str(extra["id"])
        else:  # the usual call (a delta): no keyword extras to look into
            ev = {"type": type, "timestamp": utc_now(), "session_id": self.session.id, "run_id": self.run.id,
                  "data": d, "provider": self.adapter.name}
        if type in TERMINAL:
            self.terminal_emitted = True
        events = self.events
        if events.__class__ is KeptEvents and type not in _MAY_KEEP and isinstance(events, KeptEvents):
            events.count += 1  # what KeptEvents.append does with an event it does not keep (a delta)
        else:
            events.append(ev)
        if self.callback is not None:
            res = self.callback(ev)
            if res is not CALLBACK_DONE and res is not None and inspect.isawaitable(res):
                await res  # (CALLBACK_DONE: the manager's callback finished synchronously)
        return ev

    def stream_delta(self, data: dict) -> Any:
        """``emit("message_streamed", data)`` without a coroutine: the hot path of a streamed
        answer (one call per text delta). ``data`` must be a dict the caller made for this event
        and does not touch again: it becomes the event's ``data`` as is (``emit`` copies). The
        callback sees the same envelope ``emit`` would build. Returns None when the callback is
        done, else the awaitable the caller must await before the next event."""
        if self.terminal_emitted:
            log.debug("dropping message_streamed after terminal event for run %s", self.run.id)
            return None
        ev = {"type": "message_streamed", "timestamp": utc_now(), "session_id": self.session.id,
              "run_id": self.run.id, "data": data, "provider": self.adapter.name}
        events = self.events
        if events.__class__ is KeptEvents and isinstance(events, KeptEvents):
            events.count += 1  # a delta is never kept (``KeptEvents.MAY_KEEP``)
        else:
            events.append(ev)
        callback = self.callback
        if callback is not None:
            res = callback(ev)
            if res is not CALLBACK_DONE and res is not None and inspect.isawaitable(res):
                return res
        return None

    async def close_open_tools(self, reason: str) -> None:
        """Invariant 5: close tool calls still open before a terminal event."""
        for tcid, (name, tinput) in list(self.open_tools.items()):
            await self.emit("tool_call_failed", {"tool_call_id": tcid, "tool_name": name, "tool_input": tinput,
                                                 "tool_output": None, "is_error": True, "reason": reason,
                                                 "status": "unfinished"})

    async def emit_cancelled(self, reason: str | None = None, extra: Mapping[str, Any] | None = None) -> AsmError:
        await self.close_open_tools("cancelled")
        await self.emit("run_cancelled", {**({"reason": reason} if reason else {}), **dict(extra or {})})
        return AsmError("cancelled", "Run was cancelled", context={"run_id": self.run.id,
                                                                   "provider": self.adapter.name})

    async def emit_failure(self, error: AsmError, extra_data: Mapping[str, Any] | None = None) -> AsmError:
        """Close tools, emit ``error_occurred`` (unless already said) and ``run_failed``; return ``error``."""
        await self.close_open_tools("stream_incomplete")
        data: dict[str, Any] = {"error_code": str(error.code), "error_message": error.message}
        if error.provider_error is not None:
            data["provider_error"] = error.provider_error
        if error.details:
            data["details"] = error.details
        data.update(extra_data or {})
        if error.message not in self.error_messages:
            await self.emit("error_occurred", data)
        await self.emit("run_failed", data)
        return error


class BaseAdapter:
    """Shared behaviour of the built-in adapters. Subclasses set ``name`` and implement
    ``_execute(active, **opts) -> AdapterResult-ish dict`` (``output`` and ``token_usage``)."""

    name: str = "base"
    emits_input_messages: bool = True
    supports_pause: bool = False  # True when _execute calls ``active.checkpoint()`` between turns

    def __init__(self, **options: Any) -> None:
        self.options: dict[str, Any] = dict(options)
        self._active: dict[str, ActiveRun] = {}
        self._closed = False

    # -- port surface ---------------------------------------------------------------------
    async def capabilities(self) -> list[Capability]:
        return []

    def validate_config(self, config: Mapping[str, Any]) -> None:
        if not isinstance(config, Mapping):
            raise AsmError("validation_error", f"Invalid {self.name} config")

    async def execute(self, run: Run, session: Session, *, event_callback: EventCallback | None = None,
                      timeout: Any = None, **adapter_opts: Any) -> AdapterResult:
        if self._closed:
            raise AsmError("provider_unavailable", f"{self.name} adapter is closed")
        active = ActiveRun(run=run, session=session, adapter=self, callback=event_callback)
        active.task = asyncio.current_task()
        self._active[run.id] = active
        try:
            try:
                out = await self._execute(active, timeout=timeout, **adapter_opts)
            except AsmError as exc:
                exc.with_context(run_id=run.id, session_id=session.id, provider=self.name)
                if exc.code == "cancelled" and not active.terminal_emitted and active.events:
                    await active.emit_cancelled()
                elif not active.terminal_emitted and active.events:
                    await active.emit_failure(exc)
                raise
            except asyncio.CancelledError:
                raise  # port-level deadline: emit nothing, re-raise (docs/providers.md, cancellation)
            except Exception as exc:  # worker failure isolation (docs/providers.md, the adapter contract)
                log.exception("%s adapter crashed during run %s", self.name, run.id)
                err = AsmError("internal_error", str(exc) or repr(exc),
                               context={"run_id": run.id, "session_id": session.id, "provider": self.name})
                if not active.terminal_emitted and active.events:
                    await active.emit_failure(err)
                raise err from exc
            if isinstance(out, AdapterResult):
                out = {"output": out.output, "token_usage": out.token_usage}
            usage = {**empty_usage(), **(out.get("token_usage") or {})}
            return AdapterResult(output=dict(out.get("output") or {}), token_usage=usage, events=list(active.events))
        finally:
            self._active.pop(run.id, None)

    async def _execute(self, active: ActiveRun, **opts: Any) -> Mapping[str, Any] | AdapterResult:
        raise NotImplementedError

    async def cancel(self, run_id: str) -> str:
        """Mark the run cancelled and act on its live resource; never waits for the run to end."""
        active = self._active.get(run_id)
        if active is None:
            raise AsmError("run_not_found", f"Run not found: {run_id}")
        active.cancelled = True
        active.cancel_event.set()
        for fn in list(active.on_cancel):
            try:
                res = fn()
                if inspect.isawaitable(res):
                    asyncio.ensure_future(res)
            except Exception:  # best effort
                log.debug("cancel hook failed for %s", run_id, exc_info=True)
        return run_id

    def _pausable(self, run_id: str) -> ActiveRun:
        if not self.supports_pause:
            raise AsmError("capability_not_supported", f"Capability 'pause' not supported by adapter {self.name}")
        active = self._active.get(run_id)
        if active is None:
            raise AsmError("run_not_found", f"Run not found: {run_id}")
        return active

    async def pause(self, run_id: str) -> str:
        """Ask the run to wait at its next checkpoint (between turns); returns at once."""
        _on_run_loop(self._pausable(run_id), "clear")
        return run_id

    async def resume(self, run_id: str) -> str:
        """Let a paused run continue."""
        _on_run_loop(self._pausable(run_id), "set")
        return run_id

    @staticmethod
    def pause_capabilities() -> list[Capability]:
        """The ``pause`` / ``resume`` capabilities of an adapter with ``supports_pause``."""
        return [Capability("pause", CapabilityType.SAMPLING, True, "Pause a run between turns"),
                Capability("resume", CapabilityType.SAMPLING, True, "Resume a paused run")]

    async def aclose(self) -> None:
        self._closed = True
        for run_id in list(self._active):
            try:
                await self.cancel(run_id)
            except AsmError:
                pass

    # -- helpers for subclasses ------------------------------------------------------------
    def provider_failure(self, code: str, attrs: Mapping[str, Any], *, provider: str | None = None) -> AsmError:
        """An ``AsmError`` with a normalized ``provider_error`` payload (docs/providers.md, errors)."""
        pe, details = normalize_provider_error(provider or self.name, attrs)
        return AsmError(code, pe["message"], provider_error=pe, details=details)


def _on_run_loop(active: ActiveRun, method: str) -> None:
    """``active.resumed.<method>()`` on the loop that runs the run (asyncio events are not
    thread-safe: a pause may come from another thread's loop)."""
    fn = getattr(active.resumed, method)
    loop = active.task.get_loop() if active.task is not None else None
    try:
        current = asyncio.get_running_loop()
    except RuntimeError:
        current = None
    if loop is None or loop is current:
        fn()
    else:
        loop.call_soon_threadsafe(fn)


def input_text(run_input: Any) -> str:
    """The prompt text of a run input: a str, ``{"prompt": s}``, or the user messages joined."""
    if isinstance(run_input, str):
        return run_input
    if isinstance(run_input, Mapping):
        msgs = run_input.get("messages")
        if isinstance(msgs, list):
            parts = []
            for m in msgs:
                if isinstance(m, Mapping) and str(m.get("role", "user")).lower() == "user":
                    c = m.get("content")
                    parts.append(c if isinstance(c, str) else str(c))
            return "\n".join(parts)
        p = run_input.get("prompt")
        if isinstance(p, str):
            return p
    return "" if run_input is None else str(run_input)


def call_sync_or_async(fn: Callable[..., Any], *args: Any) -> Any:
    res = fn(*args)
    return res
