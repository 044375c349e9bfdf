"""Events: the 28 ``EventType``s, one event model (``Event``, the persisted form, and
``NormalizedEvent``, the same event in flight: an ``Event`` subclass with the two causal fields
``parent_event_id`` / ``provider_event_id`` and a required ``run_id``; ``to_event()`` /
``NormalizedEvent.from_event`` convert) and the ``EventNormalizer`` module functions.

Pure standard library. See docs/event-model.md, event.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from collections.abc import Iterable, Mapping
from typing import Any, TypeGuard, TypeVar

from ._checks import dict_or_empty, require_datetime, require_non_empty, require_str
from .errors import AsmError, BatchNormalizationError
from .serialization import ensure_aware, format_datetime, new_id, to_jsonable, utc_now

EVENT_SCHEMA_VERSION = 1


class EventType(str, Enum):
    # session
    """The 28 event types; ``category`` names the group each belongs to."""

    SESSION_CREATED = "session_created"
    SESSION_STARTED = "session_started"
    SESSION_PAUSED = "session_paused"
    SESSION_RESUMED = "session_resumed"
    SESSION_COMPLETED = "session_completed"
    SESSION_FAILED = "session_failed"
    SESSION_CANCELLED = "session_cancelled"
    # run
    RUN_STARTED = "run_started"
    RUN_COMPLETED = "run_completed"
    RUN_FAILED = "run_failed"
    RUN_CANCELLED = "run_cancelled"
    RUN_TIMEOUT = "run_timeout"
    # message
    MESSAGE_SENT = "message_sent"
    MESSAGE_RECEIVED = "message_received"
    MESSAGE_STREAMED = "message_streamed"
    # tool
    TOOL_CALL_STARTED = "tool_call_started"
    TOOL_CALL_COMPLETED = "tool_call_completed"
    TOOL_CALL_FAILED = "tool_call_failed"
    # error
    ERROR_OCCURRED = "error_occurred"
    ERROR_RECOVERED = "error_recovered"
    # usage
    TOKEN_USAGE_UPDATED = "token_usage_updated"
    TURN_COMPLETED = "turn_completed"
    # workspace
    WORKSPACE_SNAPSHOT_TAKEN = "workspace_snapshot_taken"
    WORKSPACE_DIFF_COMPUTED = "workspace_diff_computed"
    # policy
    POLICY_VIOLATION = "policy_violation"
    # approval
    TOOL_APPROVAL_REQUESTED = "tool_approval_requested"
    TOOL_APPROVAL_GRANTED = "tool_approval_granted"
    TOOL_APPROVAL_DENIED = "tool_approval_denied"

    @property
    def category(self) -> str:
        """The category of this type (``session``, ``run``, ``message``…)."""
        return _CATEGORY_OF[self]

    def __str__(self) -> str:  # f"{EventType.RUN_STARTED}" → "run_started"
        return self.value


_CATEGORIES: dict[str, tuple[EventType, ...]] = {
    "session": tuple(t for t in EventType if t.value.startswith("session_")),
    "run": (EventType.RUN_STARTED, EventType.RUN_COMPLETED, EventType.RUN_FAILED, EventType.RUN_CANCELLED,
            EventType.RUN_TIMEOUT),
    "message": (EventType.MESSAGE_SENT, EventType.MESSAGE_RECEIVED, EventType.MESSAGE_STREAMED),
    "tool": (EventType.TOOL_CALL_STARTED, EventType.TOOL_CALL_COMPLETED, EventType.TOOL_CALL_FAILED),
    "error": (EventType.ERROR_OCCURRED, EventType.ERROR_RECOVERED),
    "usage": (EventType.TOKEN_USAGE_UPDATED, EventType.TURN_COMPLETED),
    "workspace": (EventType.WORKSPACE_SNAPSHOT_TAKEN, EventType.WORKSPACE_DIFF_COMPUTED),
    "policy": (EventType.POLICY_VIOLATION,),
    "approval": (EventType.TOOL_APPROVAL_REQUESTED, EventType.TOOL_APPROVAL_GRANTED,
                 EventType.TOOL_APPROVAL_DENIED),
}
_CATEGORY_OF = {t: cat for cat, types in _CATEGORIES.items() for t in types}
_BY_VALUE = {t.value: t for t in EventType}

TERMINAL_RUN_EVENTS = frozenset({EventType.RUN_COMPLETED, EventType.RUN_FAILED, EventType.RUN_CANCELLED,
                                 EventType.RUN_TIMEOUT})


def is_valid_type(x: object) -> TypeGuard[EventType | str]:
    """True for an ``EventType`` or its exact string value; anything else False."""
    if isinstance(x, EventType):
        return True
    return isinstance(x, str) and x in _BY_VALUE


def to_event_type(x: object) -> EventType:
    """The ``EventType`` for a member or exact string value; raises ``invalid_event_type``."""
    if isinstance(x, EventType):
        return x
    if isinstance(x, str) and x in _BY_VALUE:
        return _BY_VALUE[x]
    raise AsmError("invalid_event_type", f"Invalid event type: {x!r}")


def all_types() -> list[EventType]:
    """All 28 types, grouped by category in spec order."""
    return [t for types in _CATEGORIES.values() for t in types]


def session_events() -> list[EventType]:
    """The session event types."""
    return list(_CATEGORIES["session"])


def run_events() -> list[EventType]:
    """The run event types."""
    return list(_CATEGORIES["run"])


def message_events() -> list[EventType]:
    """The message event types."""
    return list(_CATEGORIES["message"])


def tool_events() -> list[EventType]:
    """The tool event types."""
    return list(_CATEGORIES["tool"])


def error_events() -> list[EventType]:
    """The error event types."""
    return list(_CATEGORIES["error"])


def usage_events() -> list[EventType]:
    """The usage event types."""
    return list(_CATEGORIES["usage"])


def workspace_events() -> list[EventType]:
    """The workspace event types."""
    return list(_CATEGORIES["workspace"])


def policy_events() -> list[EventType]:
    """The policy event types."""
    return list(_CATEGORIES["policy"])


def approval_events() -> list[EventType]:
    """The approval event types."""
    return list(_CATEGORIES["approval"])


def _timestamp_attr(ts: object) -> datetime:
    """Constructor timestamps: a datetime (naive = UTC) or an ISO string with offset; None → now."""
    if ts is None:
        return utc_now()
    if isinstance(ts, datetime):
        return ensure_aware(ts)
    if isinstance(ts, str):
        from .serialization import parse_datetime

        try:
            return parse_datetime(ts)
        except ValueError:
            raise AsmError("validation_error", "Invalid datetime format") from None
    raise AsmError("validation_error", "timestamp must be a datetime or an ISO-8601 string")


def _schema_version_ok(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


@dataclass(frozen=True, slots=True)
class Event:
    """One persisted event. Stores assign ``sequence_number`` (per session, from 1)."""

    id: str
    type: EventType
    timestamp: datetime
    session_id: str
    run_id: str | None = None
    data: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    sequence_number: int | None = None
    schema_version: int = EVENT_SCHEMA_VERSION
    provider: str | None = None
    correlation_id: str | None = None

    @classmethod
    def new(cls, type: Any, session_id: Any = None, **attrs: Any) -> "Event":
        """Build a validated event. ``type`` is an ``EventType`` or its string value.

        >>> Event.new("run_started", "ses_1", run_id="run_1").type
        <EventType.RUN_STARTED: 'run_started'>
        """
        if type is None:
            raise AsmError("validation_error", "type is required")
        if not isinstance(type, (str, EventType)):
            raise AsmError("validation_error", "type must be a string")
        etype = to_event_type(type)
        session_id = require_non_empty(session_id, "session_id")
        ts = _timestamp_attr(attrs.pop("timestamp", None))
        ev_id = attrs.pop("id", None) or new_id("evt_")
        data = attrs.pop("data", None)
        metadata = attrs.pop("metadata", None)
        sv = attrs.pop("schema_version", EVENT_SCHEMA_VERSION)
        if not _schema_version_ok(sv):
            raise AsmError("validation_error", "schema_version must be an integer greater than or equal to 1")
        allowed = {"run_id", "sequence_number", "provider", "correlation_id"}
        unknown = set(attrs) - allowed
        if unknown:
            raise AsmError("validation_error", f"unknown event fields: {sorted(unknown)}")
        return cls(
            id=ev_id, type=etype, timestamp=ts, session_id=session_id,
            data=dict(data) if isinstance(data, Mapping) else {},
            metadata=dict(metadata) if isinstance(metadata, Mapping) else {},
            schema_version=sv, **attrs,
        )

    def replace(self, **changes: Any) -> "Event":
        """A copy with ``changes`` applied (no validation)."""
        return dataclasses.replace(self, **changes)

    @property
    def category(self) -> str:
        """The category of this type (``session``, ``run``, ``message``…)."""
        return self.type.category

    def to_dict(self) -> dict[str, Any]:
        """All 11 fields in the on-disk key order (docs/store-format.md)."""
        return {
            "id": self.id,
            "type": self.type.value,
            "timestamp": format_datetime(self.timestamp),
            "session_id": self.session_id,
            "run_id": self.run_id,
            "sequence_number": self.sequence_number,
            "data": to_jsonable(self.data),
            "metadata": to_jsonable(self.metadata),
            "schema_version": self.schema_version,
            "provider": self.provider,
            "correlation_id": self.correlation_id,
        }

    @classmethod
    def from_dict(cls, d: object) -> "Event":
        """Inverse of ``to_dict`` with the validation rules of docs/event-model.md, event."""
        if not isinstance(d, Mapping):
            raise AsmError("validation_error", "Invalid event map")
        ev_id = require_str(d, "id")
        t = d.get("type")
        if t is None:
            raise AsmError("validation_error", "type is required")
        if not isinstance(t, (str, EventType)):
            raise AsmError("validation_error", "type must be a string")
        etype = to_event_type(t)
        session_id = require_str(d, "session_id")
        ts = d.get("timestamp")
        if ts is None:
            raise AsmError("validation_error", "timestamp is required")
        if not isinstance(ts, (str, datetime)):
            raise AsmError("validation_error", "timestamp must be a string")
        timestamp = require_datetime(d, "timestamp", label="timestamp")
        sv = d.get("schema_version")
        if sv is None:
            raise AsmError("validation_error", "schema_version is required")
        if not _schema_version_ok(sv):
            raise AsmError("validation_error", "schema_version must be an integer greater than or equal to 1")
        seq = d.get("sequence_number")
        return cls(
            id=ev_id, type=etype, timestamp=timestamp, session_id=session_id, run_id=d.get("run_id"),
            data=dict_or_empty(d.get("data")), metadata=dict_or_empty(d.get("metadata")),
            sequence_number=seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
            schema_version=sv, provider=d.get("provider"), correlation_id=d.get("correlation_id"),
        )

    @classmethod
    def _from_stored(cls, d: Mapping[str, Any]) -> "Event":
        """Fast path for rows this library wrote itself (stores): no re-validation of strings."""
        from .serialization import parse_datetime

        return cls(
            id=d["id"], type=_BY_VALUE[d["type"]], timestamp=parse_datetime(d["timestamp"]),
            session_id=d["session_id"], run_id=d.get("run_id"), data=d.get("data") or {},
            metadata=d.get("metadata") or {}, sequence_number=d.get("sequence_number"),
            schema_version=d.get("schema_version") or 1, provider=d.get("provider"),
            correlation_id=d.get("correlation_id"),
        )


# --------------------------------------------------------------------------------------------
# NormalizedEvent and the normalizer (docs/event-model.md, event)


#: Fields a ``NormalizedEvent`` has beyond ``Event``; ``to_event()`` keeps them in ``metadata``.
_IN_FLIGHT_FIELDS = ("parent_event_id", "provider_event_id")


@dataclass(frozen=True, slots=True)
class NormalizedEvent(Event):
    """An ``Event`` in flight: the canonical form ``normalize()`` makes of raw provider data and
    what ``EventStream`` buffers. Beyond ``Event`` it carries ``parent_event_id`` (causal order)
    and ``provider_event_id`` (the native id), its ``run_id`` is required, ids are ``nevt_...`` and
    ``to_dict()`` has its own 11 keys (no ``schema_version`` / ``correlation_id``).

    The persisted form is ``to_event()``: a plain ``Event`` with the same id, type, timestamp,
    ids, data, sequence number and provider, the two in-flight fields kept in ``metadata`` under
    their names when set. ``NormalizedEvent.from_event(e)`` reads them back. Stores refuse a
    ``NormalizedEvent`` itself (its extra fields would be lost): append ``n.to_event()``.

    >>> n = NormalizedEvent.new("message_streamed", "ses_1", "run_1", provider_event_id="msg_1")
    >>> isinstance(n, Event), n.to_event().metadata
    (True, {'provider_event_id': 'msg_1'})
    """

    parent_event_id: str | None = None
    provider_event_id: str | None = None

    @classmethod
    def new(cls, type: Any, session_id: Any = None, run_id: Any = None, **attrs: Any) -> "NormalizedEvent":
        """Validated constructor: ``type`` valid, ``session_id`` and ``run_id`` non-empty."""
        if type is None:
            raise AsmError("validation_error", "type is required")
        if not isinstance(type, (str, EventType)):
            raise AsmError("validation_error", "type must be a string")
        etype = to_event_type(type)
        session_id = require_non_empty(session_id, "session_id")
        run_id = require_non_empty(run_id, "run_id")
        ts = _timestamp_attr(attrs.pop("timestamp", None))
        ev_id = attrs.pop("id", None) or new_id("nevt_")
        data = dict_or_empty(attrs.pop("data", None))
        metadata = dict_or_empty(attrs.pop("metadata", None))
        unknown = set(attrs) - {"sequence_number", "parent_event_id", "provider", "provider_event_id"}
        if unknown:
            raise AsmError("validation_error", f"unknown event fields: {sorted(unknown)}")
        return cls(id=ev_id, type=etype, timestamp=ts, session_id=session_id, run_id=run_id,
                   data=data, metadata=metadata, **attrs)

    def is_valid(self) -> bool:
        """True when id, type and timestamp are set and both ids are non-empty."""
        return bool(self.id and self.timestamp and self.session_id and self.run_id and is_valid_type(self.type))

    def to_dict(self) -> dict[str, Any]:
        """All 11 fields, JSON-safe."""
        return {
            "id": self.id, "type": self.type.value, "timestamp": format_datetime(self.timestamp),
            "session_id": self.session_id, "run_id": self.run_id, "sequence_number": self.sequence_number,
            "parent_event_id": self.parent_event_id, "data": to_jsonable(self.data),
            "metadata": to_jsonable(self.metadata), "provider": self.provider,
            "provider_event_id": self.provider_event_id,
        }

    @classmethod
    def from_dict(cls, d: object) -> "NormalizedEvent":
        """Inverse of ``to_dict`` with the validation rules of docs/event-model.md, event."""
        if not isinstance(d, Mapping):
            raise AsmError("validation_error", "Invalid event map")
        ev_id = require_str(d, "id")
        t = d.get("type")
        if t is None:
            raise AsmError("validation_error", "type is required")
        if not isinstance(t, (str, EventType)):
            raise AsmError("validation_error", "type must be a string")
        etype = to_event_type(t)
        session_id = require_str(d, "session_id")
        run_id = require_str(d, "run_id")
        if d.get("timestamp") is None:
            raise AsmError("validation_error", "timestamp is required")
        ts = require_datetime(d, "timestamp", label="timestamp")
        return cls(
            id=ev_id, type=etype, timestamp=ts, session_id=session_id, run_id=run_id,
            sequence_number=d.get("sequence_number"), parent_event_id=d.get("parent_event_id"),
            data=dict_or_empty(d.get("data")), metadata=dict_or_empty(d.get("metadata")),
            provider=d.get("provider"), provider_event_id=d.get("provider_event_id"),
        )

    def to_event(self) -> Event:
        """The persisted form (a plain ``Event``); ``parent_event_id`` / ``provider_event_id``, when
        set, go into ``metadata`` under those names (a key already there is kept)."""
        metadata = dict(self.metadata)
        for name in _IN_FLIGHT_FIELDS:
            value = getattr(self, name)
            if value is not None:
                metadata.setdefault(name, value)
        return Event(id=self.id, type=self.type, timestamp=self.timestamp, session_id=self.session_id,
                     run_id=self.run_id, data=dict(self.data), metadata=metadata,
                     sequence_number=self.sequence_number, schema_version=self.schema_version,
                     provider=self.provider, correlation_id=self.correlation_id)

    @classmethod
    def from_event(cls, event: Event) -> "NormalizedEvent":
        """An ``Event`` back in flight: ``metadata["parent_event_id"]`` / ``["provider_event_id"]``
        move back to the fields (inverse of ``to_event``); its ``run_id`` must be set."""
        if not isinstance(event, Event):
            raise AsmError("validation_error", "from_event needs an Event")
        if isinstance(event, NormalizedEvent):
            return event
        run_id = require_non_empty(event.run_id, "run_id")
        metadata = dict(event.metadata)
        moved = {name: metadata.pop(name) for name in _IN_FLIGHT_FIELDS if isinstance(metadata.get(name), str)}
        return cls(id=event.id, type=event.type, timestamp=event.timestamp, session_id=event.session_id,
                   run_id=run_id, data=dict(event.data), metadata=metadata,
                   sequence_number=event.sequence_number, schema_version=event.schema_version,
                   provider=event.provider, correlation_id=event.correlation_id, **moved)


def same_context(a: NormalizedEvent, b: NormalizedEvent) -> bool:
    """True when both events belong to the same session and run."""
    return a.session_id == b.session_id and a.run_id == b.run_id


def resolve_type(x: object) -> EventType:
    """Exact canonical names only; anything else (aliases, ``""``, None) → ``error_occurred``."""
    if isinstance(x, EventType):
        return x
    if isinstance(x, str) and x in _BY_VALUE:
        return _BY_VALUE[x]
    return EventType.ERROR_OCCURRED


def normalize(raw: Any, context: Any) -> NormalizedEvent:
    """Turn one raw provider dict into a ``NormalizedEvent`` (docs/event-model.md, event)."""
    if not isinstance(raw, Mapping) or not isinstance(context, Mapping):
        raise AsmError("validation_error", "Invalid raw event or context")
    for key in ("session_id", "run_id"):
        v = context.get(key)
        if v is None:
            raise AsmError("validation_error", f"{key} is required in context")
        if v == "":
            raise AsmError("validation_error", f"{key} cannot be empty")
    raw_type = raw.get("type") or ""
    etype = resolve_type(raw_type)
    data: dict[str, Any] = {"raw": dict(raw)}
    for key in ("content", "delta", "role"):
        if raw.get(key) is not None:
            data[key] = raw[key]
    tool_name = raw.get("tool_name") if raw.get("tool_name") is not None else raw.get("name")
    if tool_name is not None:
        data["tool_name"] = tool_name
    for key in ("tool_input", "tool_output"):
        if raw.get(key) is not None:
            data[key] = raw[key]
    if etype is EventType.ERROR_OCCURRED and raw_type:
        data["original_type"] = raw_type
    metadata = dict(raw.get("metadata") or {})
    for key in ("model", "stop_reason"):
        if raw.get(key) is not None:
            metadata[key] = raw[key]
    return NormalizedEvent.new(
        etype, context["session_id"], context["run_id"], data=data, metadata=metadata,
        provider=context.get("provider", "generic"),
        provider_event_id=raw.get("id") or raw.get("message_id"),
        sequence_number=context.get("sequence_number"),
    )


def normalize_batch(raws: Iterable[Any], context: Mapping[str, Any]) -> list[NormalizedEvent]:
    """Normalize in order with sequence numbers ``offset, offset+1, …``; any failure raises
    ``BatchNormalizationError`` carrying ``errors`` and ``successful``."""
    offset = int(context.get("sequence_offset", 0) or 0) if isinstance(context, Mapping) else 0
    ok: list[NormalizedEvent] = []
    errors: list[tuple[int, Any, AsmError]] = []
    for i, raw in enumerate(raws):
        seq = offset + i
        try:
            ctx = {**context, "sequence_number": seq} if isinstance(context, Mapping) else context
            ok.append(normalize(raw, ctx))
        except AsmError as exc:
            errors.append((seq, raw, exc))
    if errors:
        raise BatchNormalizationError(f"{len(errors)} event(s) failed to normalize", errors, ok)
    return ok


AUDIT_SOURCE = "audit"


def is_audit(event: object) -> bool:
    """Whether ``event`` is an audit record (``metadata["source"] == "audit"``, written by the
    audit logger beside the adapter's own lifecycle events). Readers that tell a run's story
    (results, transcripts, frames) leave these out; ``frames.audit`` reads only them.

    >>> is_audit(Event.new("run_started", "ses_1", metadata={"source": "audit"}))
    True
    """
    if type(event) is Event:  # the usual case: no ABC checks (``typing.Mapping`` isinstance is slow)
        md = event.metadata
        if type(md) is dict:
            return md.get("source") == AUDIT_SOURCE
    else:
        md = event.get("metadata") if isinstance(event, Mapping) else getattr(event, "metadata", None)
    return isinstance(md, Mapping) and md.get("source") == AUDIT_SOURCE


_E = TypeVar("_E", bound=Event)  # Event or NormalizedEvent; the helpers keep the caller's type
_T = TypeVar("_T")


def without_audit(events: Iterable[_T]) -> list[_T]:
    """``events`` without the audit records (see :func:`is_audit`)."""
    return [e for e in events if not is_audit(e)]


def sort_events(events: Iterable[_E]) -> list[_E]:
    """By sequence (None last), then timestamp, then id: deterministic for any input order."""
    def key(e: _E) -> tuple[bool, int, datetime, str]:
        seq = e.sequence_number
        return (seq is None, seq if seq is not None else 0, e.timestamp, e.id or "")

    return sorted(events, key=key)


def filter_by_run(events: Iterable[_E], run_id: str) -> list[_E]:
    """Events of run ``run_id`` (order kept)."""
    return [e for e in events if e.run_id == run_id]


def filter_by_session(events: Iterable[_E], session_id: str) -> list[_E]:
    """Events of session ``session_id`` (order kept)."""
    return [e for e in events if e.session_id == session_id]


def filter_by_type(events: Iterable[_E], types: EventType | str | Iterable[EventType | str]) -> list[_E]:
    """Events whose type is ``types`` (one type) or in ``types`` (many). Exact names only:
    an unknown name matches nothing (it is not mapped to ``error_occurred``)."""
    if isinstance(types, (str, EventType)):
        types = (types,)
    wanted = {_BY_VALUE[t] if not isinstance(t, EventType) else t
              for t in types if isinstance(t, EventType) or (isinstance(t, str) and t in _BY_VALUE)}
    return [e for e in events if _BY_VALUE.get(getattr(e.type, "value", e.type)) in wanted]
