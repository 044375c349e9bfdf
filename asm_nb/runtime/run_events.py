"""One executing run's state (``_RunTracker``, in flight in ``_INFLIGHT``) and the manager
callback the adapter streams into: each event goes through persistence, policy observation
(``_apply_policy``, ``_policy_watchdog``), the user callback and telemetry; tool calls left open
are closed before the terminal event (``_close_open_tools``)."""

from __future__ import annotations

import asyncio
import inspect
import logging
from dataclasses import dataclass, field
from collections.abc import Mapping
from typing import Any, Callable

from ..core.errors import AsmError
from ..core.events import EventType, resolve_type
from ..core.run import Run
from ..core.serialization import utc_now
from ..core.session import Session
from ..core.usage import CACHE_CREATION_1H_TOKENS, TokenUsage, token_count
from ..ports import CALLBACK_DONE
from .. import telemetry
from .manager_io import _internal_event, _persist, _persister, _telemetry

log = logging.getLogger("asm_nb.runtime.manager")

TERMINAL_TYPES = frozenset({"run_completed", "run_failed", "run_cancelled", "run_timeout"})
_TYPE_VALUES = frozenset(t.value for t in EventType)  # a raw type already canonical needs no resolve_type


_INFLIGHT: dict[str, "_RunTracker"] = {}


@dataclass
class _RunTracker:
    """Per-execute state owned by ``aexecute_run`` (the manager callback writes into it)."""

    run: Run
    session: Session
    adapter: Any
    event_count: int = 0  # events recorded (the events themselves are in the store, not here)
    failed_data: dict | None = None  # data of the last run_failed event
    persistence_failures: int = 0
    terminal_seen: str | None = None
    usage: TokenUsage = field(default_factory=TokenUsage)
    hour_writes: int = 0  # the one-hour part of the cache writes the events reported (priced apart)
    provider_meta: dict = field(default_factory=dict)
    reported_cost: float | None = None
    policy_runtime: Any = None
    cancel_requested: bool = False
    policy_stopped: bool = False  # a policy stopped the run: later adapter events are dropped
    task: asyncio.Task | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    user_callback: Callable | None = None
    open_tools: dict = field(default_factory=dict)  # tool_call_id -> (tool_name, tool_input)
    streamed_text: list = field(default_factory=list)  # text deltas, for the partial output of a stopped run
    text_chunks: list = field(default_factory=list)  # earlier deltas joined 4096 at a time
    received_text: list = field(default_factory=list)  # message_received contents (adapters that do not stream)
    model_usage: dict = field(default_factory=dict)  # model -> usage, when the provider reports it per model

    def observe(self, etype: str, data: Mapping[str, Any]) -> None:
        """Keep what finalization needs from one event (not the event): its count, open tool calls,
        the text so far and the last failure."""
        self.event_count += 1
        if etype == "tool_call_started":
            self.open_tools[data.get("tool_call_id")] = (data.get("tool_name"), data.get("tool_input"))
        elif etype in ("tool_call_completed", "tool_call_failed"):
            self.open_tools.pop(data.get("tool_call_id"), None)
        elif etype == "message_streamed" and data.get("kind") in (None, "text"):
            if isinstance(data.get("delta"), str):
                self.streamed_text.append(data["delta"])
                if len(self.streamed_text) >= 4096:  # one string per 4096 deltas, not one object each
                    self.text_chunks.append("".join(self.streamed_text))
                    self.streamed_text.clear()
        elif etype == "message_received" and isinstance(data.get("content"), str):
            self.received_text.append(data["content"])
        elif etype == "run_failed":
            self.failed_data = dict(data)

    def partial_text(self) -> str:
        """The answer text a stopped run had produced so far."""
        if self.streamed_text or self.text_chunks:
            return "".join(self.text_chunks) + "".join(self.streamed_text)
        return "\n\n".join(t for t in self.received_text if t)

    def add_model_usage(self, per_model: Mapping[str, Any]) -> None:
        """Per-model usage a provider reported (Claude Code ``modelUsage``), summed per model."""
        for model, u in per_model.items():
            if not isinstance(u, Mapping):
                continue
            row = self.model_usage.setdefault(str(model), {})
            for k, v in u.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    row[k] = row.get(k, 0) + v

    def add_usage(self, data: Mapping[str, Any]) -> None:
        self.usage = self.usage + TokenUsage.of(data)
        hour = data.get(CACHE_CREATION_1H_TOKENS)
        if hour:
            self.hour_writes += token_count(hour)

    def capture_meta(self, data: Mapping[str, Any]) -> None:
        psid = data.get("provider_session_id") or data.get("session_id") or data.get("thread_id")
        for key, val in (("provider_session_id", psid), ("model", data.get("model")), ("tools", data.get("tools"))):
            if val is not None:
                self.provider_meta[key] = val
        self.capture_model(data)

    def capture_route(self, data: Mapping[str, Any]) -> None:
        """A router's run is priced as the provider that served it."""
        if isinstance(data.get("routed_provider"), str):
            self.provider_meta["routed_provider"] = data["routed_provider"]

    def capture_model(self, data: Mapping[str, Any]) -> None:
        """The model a run used and where that is known from (``model_source``); a later, surer
        statement (the terminal event's, from a session file) replaces an earlier one."""
        if isinstance(data.get("model"), str) and data["model"]:
            self.provider_meta["model"] = data["model"]
            self.provider_meta["model_source"] = data.get("model_source") or "adapter"


async def _record(store: Any, tracker: _RunTracker, type_: str, data: Mapping[str, Any]) -> None:
    """Persist an event the manager adds to a run and show it to the user callback (live views)."""
    try:
        stored = await _internal_event(store, tracker.session, type_, data, run_id=tracker.run.id,
                                       provider=tracker.adapter.name)
    except AsmError as err:
        tracker.persistence_failures += 1
        log.warning("Event persistence failed for run %s: [%s] %s", tracker.run.id, err.code, err.message)
        stored = None
    shown = {"type": type_, "data": dict(data), "session_id": tracker.session.id, "run_id": tracker.run.id,
             "provider": tracker.adapter.name, "timestamp": utc_now(),
             "sequence_number": getattr(stored, "sequence_number", None)}
    if stored is not None:
        shown["id"] = getattr(stored, "id", None)
    tracker.observe(type_, data)
    if tracker.user_callback is not None:
        try:
            res = tracker.user_callback(shown)
            if inspect.isawaitable(res):
                await res
        except Exception:
            log.exception("event_callback raised for run %s (ignored)", tracker.run.id)


#: why a tool call was left without a result, by the run's terminal event
_UNFINISHED_REASON = {"run_completed": "unfinished", "run_cancelled": "cancelled", "run_failed": "unfinished",
                      "run_timeout": "unfinished"}


async def _close_open_tools(store: Any, tracker: _RunTracker, terminal: str, why: str | None = None,
                            error: AsmError | None = None) -> None:
    """Close the tool calls that never got a result before the run's terminal event: each gets a
    ``tool_call_failed`` with ``status: "unfinished"`` (no tool call stays running in an ended run).
    The call a tool policy stopped the run for is ``failed`` with reason ``policy_denied``."""
    details = error.details if error is not None and isinstance(error.details, Mapping) else {}
    for tcid, (name, tinput) in list(tracker.open_tools.items()):
        if error is not None and error.code == "policy_violation" and details.get("limit") == "tool_rules" \
                and details.get("tool_name") == name:
            await _record(store, tracker, "tool_call_failed", {
                "tool_call_id": tcid, "tool_name": name, "tool_input": tinput if tinput is not None else {},
                "tool_output": None, "is_error": True, "reason": "policy_denied", "error_message": why})
            tracker.open_tools.pop(tcid, None)
            continue
        ended = {"run_completed": "completed", "run_cancelled": "was cancelled", "run_failed": "failed",
                 "run_timeout": "timed out"}.get(terminal, "ended")
        message = f"no result: the run {ended} before {name or 'the tool'} returned" + (f" ({why})" if why else "")
        await _record(store, tracker, "tool_call_failed", {
            "tool_call_id": tcid, "tool_name": name, "tool_input": tinput if tinput is not None else {},
            "tool_output": None, "is_error": True, "status": "unfinished",
            "reason": _UNFINISHED_REASON.get(terminal, "unfinished"), "error_message": message})
        tracker.open_tools.pop(tcid, None)


def _make_callback(store: Any, tracker: _RunTracker, user_callback: Callable | None) -> Callable:
    session, run, adapter = tracker.session, tracker.run, tracker.adapter
    correlation_id = session.metadata.get("correlation_id")
    # resolved once per run (not per event): the pipeline bound to its context and the store's
    # append method (``EventPipeline.bind``), whether the store is inline
    process, _ = _persister(store, session_id=session.id, run_id=run.id, provider=adapter.name,
                              correlation_id=correlation_id)
    has_handlers = telemetry.has_any_handlers

    def bookkeep(etype: str, data: Mapping[str, Any]) -> None:
        """What the tracker learns from an event before it is stored (terminal bookkeeping after
        any open tool calls were closed)."""
        if etype in TERMINAL_TYPES:
            tracker.terminal_seen = etype
            tracker.capture_model(data)
        elif etype == "token_usage_updated":
            tracker.add_usage(data)
            model_usage = data.get("model_usage")
            if isinstance(model_usage, Mapping):
                tracker.add_model_usage(model_usage)
        elif etype == "run_started":
            tracker.capture_meta(data)
        reported = data.get("total_cost_usd")
        if etype == "run_completed" and isinstance(reported, (int, float)) and not isinstance(reported, bool) \
                and reported > 0:
            if tracker.reported_cost is None:
                tracker.reported_cost = float(reported)

    def stored_as(ev: dict, stored: Any) -> None:
        ev["sequence_number"] = stored.sequence_number
        ev["id"] = stored.id

    def persist_failed(exc: Exception) -> None:
        tracker.persistence_failures += 1
        if isinstance(exc, AsmError):
            log.warning("Event persistence failed for run %s in session %s: [%s] %s", run.id, session.id,
                        exc.code, exc.message)
        else:
            log.warning("Event persistence failed because the SessionStore became unavailable: %r", exc)

    def user_failed() -> None:
        log.exception("event_callback raised for run %s (ignored)", run.id)

    async def finish_user(res: Any, ev: dict) -> None:
        try:
            await res
        except Exception:
            user_failed()
        if has_handlers():
            _telemetry("emit_adapter_event", ev, tracker.run, tracker.session)

    async def slow(ev: dict, etype: str, data: Mapping[str, Any]) -> None:
        """The general case: a terminal event with tool calls still open (closed first), a store
        called off the loop, a policy observing the run, an async user callback."""
        if etype in TERMINAL_TYPES and tracker.open_tools:
            why = data.get("error_message") if etype == "run_failed" else None
            await _close_open_tools(store, tracker, etype, why if isinstance(why, str) else None)
        bookkeep(etype, data)
        try:
            if process is not None:  # inline store: the pipeline copies what it keeps, ``ev`` is ours
                stored_as(ev, process(ev))
            else:
                stored_as(ev, await _persist(store, ev, session_id=session.id, run_id=run.id, provider=adapter.name,
                                             correlation_id=correlation_id))
        except Exception as exc:
            persist_failed(exc)
        tracker.observe(etype, data)
        tracker.capture_route(data)
        if tracker.policy_runtime is not None and etype not in TERMINAL_TYPES and not tracker.policy_stopped:
            await _apply_policy(store, tracker, ev, user_callback)
        if user_callback is not None:
            try:
                res = user_callback(ev)
                if inspect.isawaitable(res):
                    await res
            except Exception:
                user_failed()
        if has_handlers():  # no handler attached anywhere (the usual case): nothing to emit
            _telemetry("emit_adapter_event", ev, tracker.run, tracker.session)

    def callback(event: Mapping[str, Any]) -> Any:
        """Record one adapter event. Synchronous in the common case (inline store, no policy, no
        tool call left open at the end, a sync user callback): the work is done when it returns
        ``ports.CALLBACK_DONE`` (already finished: no coroutine per event; adapters that ``await``
        the callback's result still may). Otherwise it returns the coroutine that does the work."""
        if tracker.policy_stopped and _type_name(event.get("type")) != "token_usage_updated":
            # after a policy stopped the run nothing more is recorded (not even the adapter's
            # terminal event: finalization persists the single run_failed with the violation),
            # except usage: a request cut by the stop was still billed (e.g. its message_start)
            log.debug("dropping %s of run %s after the policy stopped it", event.get("type"), run.id)
            return CALLBACK_DONE
        ev = dict(event)
        etype = ev.get("type")
        if type(etype) is not str or etype not in _TYPE_VALUES:
            etype = ev["type"] = resolve_type(etype).value
        raw = ev.get("data")
        data: Mapping[str, Any] = raw if type(raw) is dict or isinstance(raw, Mapping) else {}
        if process is None or tracker.policy_runtime is not None or \
                (tracker.open_tools and etype in TERMINAL_TYPES):
            return slow(ev, etype, data)
        if etype != "message_streamed":  # a delta (most events) tells the tracker nothing before storing
            bookkeep(etype, data)
        try:
            stored = process(ev)
            ev["sequence_number"] = stored.sequence_number
            ev["id"] = stored.id
        except Exception as exc:
            persist_failed(exc)
        tracker.observe(etype, data)
        if "routed_provider" in data:
            tracker.capture_route(data)
        if user_callback is not None:
            try:
                res = user_callback(ev)
            except Exception:
                user_failed()
            else:
                if res is not None and inspect.isawaitable(res):
                    return finish_user(res, ev)
        if has_handlers():  # no handler attached anywhere (the usual case): nothing to emit
            _telemetry("emit_adapter_event", ev, tracker.run, tracker.session)
        return CALLBACK_DONE

    # this callback persists every event: the adapter need not keep a copy of the stream
    callback.records_events = True  # type: ignore[attr-defined]
    # nothing behind it can stop the run on an event (no policy, no user callback) and each event
    # is recorded before the callback returns (an inline store: no await, no loop turn in which
    # anything else could happen): an adapter may start its work before it reports the start (the
    # shell adapter: its child process)
    callback.no_event_observers = (process is not None and tracker.policy_runtime is None  # type: ignore[attr-defined]
                                   and user_callback is None)
    return callback


def _type_name(t: Any) -> Any:
    """An event's type as its string value (``EventType`` members and strings alike)."""
    return getattr(t, "value", t)


_POLICY_STOP_GRACE_S = 5.0


async def _apply_policy(store: Any, tracker: _RunTracker, ev: Mapping[str, Any],
                        user_callback: Callable | None = None) -> None:
    """Policy observation (docs/runtime.md, the session manager, step 6); the runtime object decides.
    Policy events are persisted and shown to the user callback too (live views)."""
    rt = tracker.policy_runtime
    outcome = rt.observe(ev)
    cancel = bool(outcome.get("cancel"))
    if cancel:
        tracker.policy_stopped = True  # before any await: events arriving meanwhile are dropped

    async def record(type_: str, data: Mapping[str, Any]) -> None:
        try:
            stored = await _internal_event(store, tracker.session, type_, data, run_id=tracker.run.id,
                                           provider=tracker.adapter.name)
        except AsmError as err:
            tracker.persistence_failures += 1
            log.warning("Event persistence failed for run %s: [%s] %s", tracker.run.id, err.code, err.message)
            stored = None
        if user_callback is not None:
            shown = {"type": type_, "data": dict(data), "session_id": tracker.session.id, "run_id": tracker.run.id,
                     "provider": tracker.adapter.name, "timestamp": utc_now(),
                     "sequence_number": getattr(stored, "sequence_number", None)}
            try:
                res = user_callback(shown)
                if inspect.isawaitable(res):
                    await res
            except Exception:
                log.exception("event_callback raised for run %s (ignored)", tracker.run.id)

    for violation in outcome.get("violations", ()):
        await record("policy_violation", violation)
    approval = outcome.get("approval")
    if approval:
        await record("tool_approval_requested", approval)
        ask = getattr(rt, "await_approval", None)
        decision = await ask(approval) if ask is not None else None
        if decision is not None:
            await record("tool_approval_granted" if decision == "approve" else "tool_approval_denied",
                         {**approval, "decision": decision})
            if decision != "approve":
                tracker.policy_stopped = cancel = True
    if cancel and not tracker.cancel_requested:
        tracker.cancel_requested = True
        try:
            await tracker.adapter.cancel(tracker.run.id)
        except AsmError as err:
            log.debug("policy cancel of %s: %s", tracker.run.id, err)

        def force_stop() -> None:  # an adapter that ignores cancel: stop its task outright
            if not tracker.done.is_set() and tracker.task is not None and not tracker.task.done():
                tracker.task.cancel()

        asyncio.get_running_loop().call_later(_POLICY_STOP_GRACE_S, force_stop)


async def _policy_watchdog(store: Any, tracker: _RunTracker, user_callback: Callable | None) -> None:
    """Check the policy when its duration limit comes due, even if the provider is silent."""
    rt = tracker.policy_runtime
    while not tracker.policy_stopped and not tracker.done.is_set():
        delay = rt.deadline_s()
        if delay is None:
            return
        await asyncio.sleep(max(delay, 0.001))
        if tracker.done.is_set() or tracker.policy_stopped:
            return
        await _apply_policy(store, tracker, {"type": "policy_timer", "data": {}, "run_id": tracker.run.id},
                            user_callback)
