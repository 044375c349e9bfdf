"""The persistence event pipeline: raw adapter dict → redacted, validated, sequenced, stored Event.

See docs/event-model.md, the persistence pipeline. ``build_event`` (no I/O) runs build → redact → enrich → validate;
``EventPipeline`` adds warning telemetry → ``store.append_event_with_sequence`` → persisted
telemetry, and reports rejections. Telemetry names (docs/runtime.md, telemetry), under ``("asm",)``:
``persistence.event_redacted``, ``.event_validation_warning``, ``.event_persisted``,
``.event_rejected``.

Python additions to the reference builder:
- a non-empty string ``raw["id"]`` becomes the event id (replays produce the same ids, so a
  re-append is idempotent, store rule S3); ``raw["sequence_number"]`` and ``raw["provider"]``
  are ignored (the store numbers events; the context names the provider);
- an unknown raw type becomes ``error_occurred`` with ``metadata["_original_type"]``.

>>> from asm_nb.persistence.pipeline import PipelineContext, build_event
>>> ev = build_event({"type": "message_streamed", "data": {"delta": "hi", "content": "hi"}},
...                  PipelineContext("ses_1", run_id="run_1", provider="shell"))
>>> ev.type.value, ev.provider, ev.sequence_number
('message_streamed', 'shell', None)

Imports ``core``, ``config``, ``telemetry`` and the sibling persistence modules.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Callable

from .. import telemetry
from ..core.errors import AsmError
from ..core.events import EVENT_SCHEMA_VERSION, Event, EventType, resolve_type
from ..core.serialization import ensure_aware, new_id, parse_datetime, utc_now
from .redaction import EVENT_REDACTED, RedactionConfig, emit_redacted, redact_payload
from .validation import SHAPE_RULES, shape_warnings, validate_structural

if TYPE_CHECKING:
    from ..ports import SessionStore


__all__ = ["PipelineContext", "build_event", "EventPipeline", "EVENT_PERSISTED", "EVENT_VALIDATION_WARNING",
           "EVENT_REJECTED", "EVENT_REDACTED"]

_P = telemetry.TELEMETRY_PREFIX + ("persistence",)
EVENT_PERSISTED = _P + ("event_persisted",)
EVENT_VALIDATION_WARNING = _P + ("event_validation_warning",)
EVENT_REJECTED = _P + ("event_rejected",)

_BY_VALUE = {t.value: t for t in EventType}
_ERROR_OCCURRED = EventType.ERROR_OCCURRED
_UTC = timezone.utc
_now = datetime.now


@dataclass(frozen=True, slots=True)
class PipelineContext:
    """Where built events belong: ``session_id`` (required by ``build_event``), ``run_id``,
    ``provider`` (set on every event), ``correlation_id``, and ``redaction`` — an optional dict
    overriding the global redaction config (``enabled`` then defaults to True; omitted keys take
    the redactor defaults, docs/event-model.md, redaction)."""

    session_id: str | None
    run_id: str | None = None
    provider: str | None = None
    correlation_id: str | None = None
    redaction: Mapping[str, Any] | None = None

    @classmethod
    def coerce(cls, ctx: object) -> "PipelineContext":
        """A ``PipelineContext`` as is, or one built from a dict with the same keys."""
        if isinstance(ctx, PipelineContext):
            return ctx
        if isinstance(ctx, Mapping):
            return cls(ctx.get("session_id"), ctx.get("run_id"), ctx.get("provider"), ctx.get("correlation_id"),
                       ctx.get("redaction"))
        raise AsmError("validation_error", f"pipeline context must be a PipelineContext or dict, got: {ctx!r}")


def _timestamp(value: object) -> datetime:
    if isinstance(value, datetime):
        return ensure_aware(value)
    if isinstance(value, str):
        try:
            return parse_datetime(value)
        except ValueError:
            pass
    return utc_now()


def _session_id(value: object) -> str:
    if value is None:
        raise AsmError("validation_error", "session_id is required")
    if not isinstance(value, str):
        raise AsmError("validation_error", "session_id must be a string")
    if value == "":
        raise AsmError("validation_error", "session_id cannot be empty")
    return value


def _as_dict(value: object) -> dict[str, Any]:
    if type(value) is dict:
        return value.copy()  # shallow: the stored event must not share the caller's dict
    if value is not None and isinstance(value, Mapping):
        return dict(value)
    return {}


def _override_config(override: object) -> RedactionConfig:
    if isinstance(override, RedactionConfig):
        return override
    if isinstance(override, Mapping):
        return RedactionConfig.from_mapping(override, enabled_default=True)
    raise AsmError("validation_error", f"redaction override must be a dict, got: {override!r}")


def _event_factory() -> Callable[..., Event] | None:
    """A constructor for fully validated fields that sets the slots directly.

    The generated ``__init__`` of a frozen dataclass goes through ``object.__setattr__`` per
    field (~1.5 µs for 11 fields, the largest single cost of a build); the slot descriptors do
    the same write in ~0.6 µs. Used only while ``Event`` has exactly the fields below as
    slots; otherwise (core changed) the normal constructor is used.
    """
    expected = ("id", "type", "timestamp", "session_id", "run_id", "data", "metadata", "sequence_number",
                "schema_version", "provider", "correlation_id")
    try:
        if tuple(f.name for f in dataclasses.fields(Event)) != expected or "__slots__" not in Event.__dict__:
            return None
        (s_id, s_type, s_ts, s_sid, s_run, s_data, s_meta, s_seq, s_ver, s_prov,
         s_corr) = (Event.__dict__[name].__set__ for name in expected)
    except (TypeError, KeyError, AttributeError):
        return None
    new = object.__new__

    def make(ev_id: str, etype: EventType, ts: datetime, session_id: str, run_id: str | None,
             data: dict[str, Any], metadata: dict[str, Any], provider: str | None,
             correlation_id: str | None) -> Event:
        e = new(Event)
        s_id(e, ev_id)
        s_type(e, etype)
        s_ts(e, ts)
        s_sid(e, session_id)
        s_run(e, run_id)
        s_data(e, data)
        s_meta(e, metadata)
        s_seq(e, None)
        s_ver(e, EVENT_SCHEMA_VERSION)
        s_prov(e, provider)
        s_corr(e, correlation_id)
        return e

    return make


def _event_slow(ev_id: str, etype: EventType, ts: datetime, session_id: str, run_id: str | None,
                data: dict[str, Any], metadata: dict[str, Any], provider: str | None,
                correlation_id: str | None) -> Event:
    return Event(id=ev_id, type=etype, timestamp=ts, session_id=session_id, run_id=run_id, data=data,
                 metadata=metadata, provider=provider, correlation_id=correlation_id)


_make_event = _event_factory() or _event_slow


def build_event(raw: Mapping[str, Any], ctx: PipelineContext | Mapping[str, Any]) -> Event:
    """Build one unsequenced ``Event`` from a raw dict: build → redact → enrich → validate.

    Raises ``AsmError`` (``validation_error``) for a non-dict ``raw`` or a missing/empty
    ``ctx.session_id``. Shape problems never reject: they land in
    ``metadata["_validation_warnings"]``.
    """
    if type(raw) is not dict and not isinstance(raw, Mapping):
        raise AsmError("validation_error", "raw event data must be a dict")
    if type(ctx) is not PipelineContext:
        ctx = PipelineContext.coerce(ctx)
    # build
    raw_type = raw.get("type")
    etype = _BY_VALUE.get(raw_type) if type(raw_type) is str else None
    if etype is None:
        etype = resolve_type(raw_type)
    session_id = ctx.session_id
    if type(session_id) is not str or not session_id:
        session_id = _session_id(session_id)
    data = raw.get("data")
    data = data.copy() if type(data) is dict else _as_dict(data)  # shallow: never the caller's dict
    metadata = raw.get("metadata")
    metadata = {} if metadata is None else _as_dict(metadata)
    if etype is _ERROR_OCCURRED and raw_type != "error_occurred":
        metadata["_original_type"] = str(raw_type)
    ts = raw.get("timestamp")
    if ts is None:
        ts = _now(_UTC)
    elif type(ts) is not datetime or ts.tzinfo is not _UTC:  # an aware UTC datetime (adapters' utc_now) is kept
        ts = _timestamp(ts)
    ev_id = raw.get("id")
    if type(ev_id) is not str or not ev_id:
        ev_id = new_id("evt_")
    # redact
    override = ctx.redaction
    cfg = RedactionConfig.from_config() if override is None else _override_config(override)
    if cfg.enabled:
        data, metadata, count, fields = redact_payload(etype, data, metadata, cfg)
        if count:
            emit_redacted(session_id, ctx.run_id, etype, count, fields)
    # validate (shape warnings are advisory and attached before the event is frozen)
    rules = SHAPE_RULES.get(etype)
    if rules:
        for name, expected in rules:  # all fields fine (the usual case): no warning list to build
            value = data.get(name)
            if type(value) is not (str if expected == "string" else int):
                warnings = shape_warnings(etype, data)
                if warnings:
                    metadata["_validation_warnings"] = warnings  # our own copy (``_as_dict`` / the redactor)
                break
    # enrich: provider and correlation id always come from the context
    event = _make_event(ev_id, etype, ts, session_id, ctx.run_id, data, metadata, ctx.provider, ctx.correlation_id)
    if type(data) is not dict:  # cannot happen (built above as a dict); the full check decides
        validate_structural(event)
    return event


def _unshared_appender(store: object, hook: str = "_append_unshared",
                       public: str = "append_event_with_sequence") -> Callable[..., Any] | None:
    """``store._append_unshared`` (same contract as ``append_event_with_sequence``, but the store
    may number the event in place instead of copying it) when the store's own class defines it and
    no instance attribute replaces ``append_event_with_sequence``. A subclass that overrides the
    public method does not define it, so it is called through its override. Else None.
    ``hook``/``public``: the same for ``_append_events_unshared``/``append_events``."""
    if hook not in type(store).__dict__:
        return None
    d = getattr(store, "__dict__", None)
    if d and public in d:
        return None
    return getattr(store, hook)


class EventPipeline:
    """Builds events and appends them to ``store`` (anything with ``append_event_with_sequence``
    and ``append_events``), emitting the persistence telemetry events.

    >>> from asm_nb.stores.memory import InMemoryStore
    >>> pipe = EventPipeline(InMemoryStore())
    >>> [pipe.process({"type": "run_started"}, {"session_id": "ses_1"}).sequence_number for _ in range(2)]
    [1, 2]
    """

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    # -- telemetry helpers ----------------------------------------------------------------
    @staticmethod
    def _rejected(ctx: object, error: AsmError) -> None:
        if telemetry.has_handlers(EVENT_REJECTED) and telemetry.enabled():
            session_id = ctx.session_id if isinstance(ctx, PipelineContext) else (
                ctx.get("session_id") if isinstance(ctx, Mapping) else None)
            telemetry.execute(EVENT_REJECTED, {"system_time": time.time_ns()},
                              {"session_id": session_id, "reason": error.message})

    @staticmethod
    def _warned(event: Event) -> None:
        warnings = event.metadata.get("_validation_warnings")
        if warnings and isinstance(warnings, list) and telemetry.has_handlers(EVENT_VALIDATION_WARNING) \
                and telemetry.enabled():
            telemetry.execute(EVENT_VALIDATION_WARNING, {"warning_count": len(warnings)},
                              {"session_id": event.session_id, "type": event.type, "warnings": warnings})

    @staticmethod
    def _persisted(stored: Event, ctx: PipelineContext) -> None:
        if telemetry.has_handlers(EVENT_PERSISTED) and telemetry.enabled():
            telemetry.execute(EVENT_PERSISTED, {"system_time": time.time_ns(), "sequence_number": stored.sequence_number},
                              {"session_id": stored.session_id, "run_id": stored.run_id, "type": stored.type,
                               "provider": ctx.provider})

    # -- API ------------------------------------------------------------------------------
    def build(self, raw: Mapping[str, Any], ctx: PipelineContext | Mapping[str, Any]) -> Event:
        """Steps 1–3 of ``process`` without storing: build (rejected telemetry on failure) and
        report shape warnings."""
        try:
            ctx = PipelineContext.coerce(ctx)
            event = build_event(raw, ctx)
        except AsmError as err:
            self._rejected(ctx, err)
            raise
        self._warned(event)
        return event

    def process(self, raw: Mapping[str, Any], ctx: PipelineContext | Mapping[str, Any]) -> Event:
        """Build, store with a sequence number and return the stored event."""
        try:
            if type(ctx) is not PipelineContext:
                ctx = PipelineContext.coerce(ctx)
            event = build_event(raw, ctx)
        except AsmError as err:
            self._rejected(ctx, err)
            raise
        if event.metadata:
            self._warned(event)
        store = self.store
        # The event was built above and nobody else holds it: stores that can number it in
        # place (instead of copying it) say so with ``_append_unshared``.
        append = _unshared_appender(store) or store.append_event_with_sequence
        try:
            stored = append(event)
        except AsmError as err:
            self._rejected(ctx, err)
            raise
        if telemetry.has_handlers(EVENT_PERSISTED):
            self._persisted(stored, ctx)
        return stored

    def bind(self, ctx: PipelineContext | Mapping[str, Any]) -> Callable[[Mapping[str, Any]], Event]:
        """``process`` for one context, resolved once: ``bind(ctx)(raw)`` does what
        ``process(raw, ctx)`` does (same events, sequence numbers, errors and telemetry), with the
        context coerced and the store's append method chosen when binding instead of per event
        (the runtime binds once per run). Raises like ``process`` for a bad ``ctx``."""
        try:
            if type(ctx) is not PipelineContext:
                ctx = PipelineContext.coerce(ctx)
        except AsmError as err:
            self._rejected(ctx, err)
            raise
        bound: PipelineContext = ctx
        store = self.store
        # ``_append_built``: the store's in-place append for events ``build_event`` made, without
        # repeating the store-boundary check they pass by construction (same override rules)
        append = _unshared_appender(store, "_append_built") or _unshared_appender(store) \
            or store.append_event_with_sequence
        rejected = self._rejected

        def process(raw: Mapping[str, Any]) -> Event:
            try:
                event = build_event(raw, bound)  # the module's (looked up per call, like ``process``)
            except AsmError as err:
                rejected(bound, err)
                raise
            if event.metadata:
                self._warned(event)
            try:
                stored = append(event)
            except AsmError as err:
                rejected(bound, err)
                raise
            if telemetry.has_handlers(EVENT_PERSISTED):
                self._persisted(stored, bound)
            return stored

        return process

    def process_batch(self, raws: Sequence[Mapping[str, Any]], ctx: PipelineContext | Mapping[str, Any]) -> list[Event]:
        """Build every event first (the first failure rejects the whole batch and nothing is
        stored), then one ``store.append_events``. Returns the stored events in input order."""
        if not isinstance(raws, (list, tuple)):
            err = AsmError("validation_error", "raw events must be a list")
            self._rejected(ctx, err)
            raise err
        if not raws:
            return []
        built = []
        try:
            if type(ctx) is not PipelineContext:
                ctx = PipelineContext.coerce(ctx)
            for raw in raws:
                event = build_event(raw, ctx)
                if event.metadata:
                    self._warned(event)
                built.append(event)
        except AsmError as err:
            self._rejected(ctx, err)
            raise
        store = self.store
        # built above and held by nobody else: numbered in place where the store can (see process)
        append = _unshared_appender(store, "_append_events_unshared", "append_events") or store.append_events
        try:
            stored = append(built)
        except AsmError as err:
            self._rejected(ctx, err)
            raise
        if telemetry.has_handlers(EVENT_PERSISTED):
            for ev in stored:
                self._persisted(ev, ctx)
        return stored
