"""Transcripts: the provider-agnostic conversation rebuilt from a session's events.

``from_events`` turns events (``Event`` objects or their ``to_dict`` form) into ``Transcript``
messages; ``maybe_truncate`` trims them to a message / character budget; ``from_store`` and
``update_from_store`` (and their async twins) read the events through a store's
``get_events``. The runtime injects the result as ``session.context["transcript"]`` so
adapters can replay earlier runs (continuation).

Pure standard library; imports only ``asm_nb.core``. See docs/event-model.md, transcripts.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Callable, Iterable, Mapping, NamedTuple, TypeGuard

from ._checks import dict_or_empty, require_non_empty
from ._settings import setting
from .errors import AsmError
from .events import EventType, is_valid_type, without_audit
from .serialization import ensure_aware, first_set, format_datetime, parse_datetime, to_jsonable

APPROVAL_PAUSED_OUTPUT = "[Execution paused: awaiting human approval]"
STORE_QUERY_KEYS = ("run_id", "type", "since", "limit", "after", "before")
TRUNCATION_KEYS = ("max_messages", "max_chars", "max_tokens_approx")


class Role(str, Enum):
    """Who speaks in a transcript message."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"

    def __str__(self) -> str:
        return self.value


_ROLES = {r.value: r for r in Role}


def normalize_role(value: object, default: Role) -> Role:
    """A ``Role`` member as is; a string matched case-insensitively; anything else → ``default``."""
    if isinstance(value, Role):
        return value
    if isinstance(value, str):
        return _ROLES.get(value.lower(), default)
    return default


@dataclass(frozen=True, slots=True)
class TranscriptMessage:
    """One message: text (``content``), an assistant tool call, or a tool result.

    Also readable like a dict (``msg["role"]``, ``msg.get("content")``) for code that treats
    transcript messages as plain mappings.
    """

    role: Role
    content: str | None = None
    tool_call_id: str | None = None
    tool_name: str | None = None
    tool_input: dict | None = None
    tool_output: Any = None
    metadata: dict = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        if key not in _MESSAGE_FIELDS:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        """Mapping-style access to a field."""
        return getattr(self, key) if key in _MESSAGE_FIELDS else default

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (``role`` as its string, datetimes in ``metadata`` as ISO)."""
        return {
            "role": self.role.value, "content": self.content, "tool_call_id": self.tool_call_id,
            "tool_name": self.tool_name, "tool_input": to_jsonable(self.tool_input),
            "tool_output": to_jsonable(self.tool_output), "metadata": to_jsonable(self.metadata),
        }

    @classmethod
    def from_dict(cls, d: object) -> "TranscriptMessage":
        """Inverse of ``to_dict``; ``role`` must be one of the four roles."""
        if isinstance(d, TranscriptMessage):
            return d
        if not isinstance(d, Mapping):
            raise AsmError("validation_error", "Invalid transcript message map")
        role = d.get("role")
        if isinstance(role, Role):
            r = role
        elif isinstance(role, str) and role.lower() in _ROLES:
            r = _ROLES[role.lower()]
        else:
            raise AsmError("validation_error", f"Invalid transcript role: {role!r}")
        tool_input = d.get("tool_input")
        return cls(role=r, content=d.get("content"), tool_call_id=d.get("tool_call_id"),
                   tool_name=d.get("tool_name"),
                   tool_input=dict(tool_input) if isinstance(tool_input, Mapping) else None,
                   tool_output=d.get("tool_output"), metadata=dict_or_empty(d.get("metadata")))


_MESSAGE_FIELDS = frozenset(f.name for f in dataclasses.fields(TranscriptMessage))


@dataclass(frozen=True, slots=True)
class Transcript:
    """A session's conversation: ordered ``messages`` plus where the source events ended
    (``last_sequence``, ``last_timestamp``) so ``update_from_store`` can continue from there."""

    session_id: str
    messages: list = field(default_factory=list)
    last_sequence: int | None = None
    last_timestamp: datetime | None = None
    metadata: dict = field(default_factory=dict)

    @classmethod
    def new(cls, session_id: Any = None, *, messages: Iterable[Any] | None = None, last_sequence: int | None = None,
            last_timestamp: datetime | None = None, metadata: Mapping | None = None) -> "Transcript":
        """Validated constructor (``session_id`` required, non-empty). ``messages`` items may
        be ``TranscriptMessage`` objects or their dicts."""
        require_non_empty(session_id, "session_id")
        return cls(session_id=session_id, messages=[TranscriptMessage.from_dict(m) for m in messages or ()],
                   last_sequence=last_sequence,
                   last_timestamp=ensure_aware(last_timestamp) if isinstance(last_timestamp, datetime) else None,
                   metadata=dict_or_empty(metadata))

    def replace(self, **changes: Any) -> "Transcript":
        """A copy with ``changes`` applied (no validation)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return {
            "session_id": self.session_id, "messages": [m.to_dict() for m in self.messages],
            "last_sequence": self.last_sequence, "last_timestamp": format_datetime(self.last_timestamp),
            "metadata": to_jsonable(self.metadata),
        }

    @classmethod
    def from_dict(cls, d: object) -> "Transcript":
        """Inverse of ``to_dict``; not a dict → ``validation_error`` "Invalid transcript map"."""
        if not isinstance(d, Mapping):
            raise AsmError("validation_error", "Invalid transcript map")
        ts = d.get("last_timestamp")
        if isinstance(ts, str):
            try:
                ts = parse_datetime(ts)
            except ValueError:
                raise AsmError("validation_error", "Invalid datetime format") from None
        seq = d.get("last_sequence")
        return cls.new(d.get("session_id"), messages=d.get("messages") or (),
                       last_sequence=seq if _is_int(seq) else None,
                       last_timestamp=ts if isinstance(ts, datetime) else None, metadata=d.get("metadata"))


# --------------------------------------------------------------------------------------------
# building from events


class _Ev(NamedTuple):
    """The event fields the builder reads, from an ``Event`` object or an event dict."""

    id: str | None
    type: EventType | None
    timestamp: datetime | None
    session_id: str | None
    run_id: str | None
    sequence_number: Any
    data: dict
    metadata: dict


def _view(event: object) -> _Ev:
    get: Callable[..., Any] = (event.get if isinstance(event, Mapping)
                               else lambda key, default=None: getattr(event, key, default))
    raw_type = get("type")
    etype = EventType(getattr(raw_type, "value", raw_type)) if is_valid_type(raw_type) else None
    ts = get("timestamp")
    if isinstance(ts, str):
        try:
            ts = parse_datetime(ts)
        except ValueError:
            ts = None
    ts = ensure_aware(ts) if isinstance(ts, datetime) else None
    return _Ev(id=get("id"), type=etype, timestamp=ts, session_id=get("session_id"), run_id=get("run_id"),
               sequence_number=get("sequence_number"), data=dict_or_empty(get("data")),
               metadata=dict_or_empty(get("metadata")))


def _is_int(v: object) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _sort(events: list[_Ev]) -> list[_Ev]:
    """Sequenced events first by sequence; ties and unsequenced ones by timestamp (None last),
    then id (None as ""), then input position. Events already in strictly increasing sequence
    (what a store returns) are that order as they are: no sort (a long session's first turn
    after a restart builds its transcript from every event)."""
    prev = 0
    for e in events:
        seq = e.sequence_number
        if not _is_int(seq) or seq <= prev:
            break
        prev = seq
    else:
        return list(events)

    def key(item: tuple[int, _Ev]):
        idx, e = item
        seq = e.sequence_number
        has_seq = _is_int(seq)
        return (0 if has_seq else 1, seq if has_seq else 0, e.timestamp is None, e.timestamp or _EPOCH,
                e.id if isinstance(e.id, str) else "", idx)

    return [e for _, e in sorted(enumerate(events), key=key)]


def _text(value: object) -> str:
    """``None`` → ``""``; str as is; anything else → ``repr`` (Elixir ``inspect``)."""
    if value is None:
        return ""
    return value if isinstance(value, str) else repr(value)


def _name(value: object) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else repr(value)


def _event_metadata(e: _Ev) -> dict[str, Any]:
    meta = {k: v for k, v in (("event_id", e.id), ("run_id", e.run_id), ("timestamp", e.timestamp),
                              ("sequence_number", e.sequence_number)) if v is not None}
    meta.update(e.metadata)
    return meta


class _Builder:
    """Walks sorted events, keeping an optional pending stream of ``message_streamed`` text."""

    def __init__(self) -> None:
        self.messages: list[TranscriptMessage] = []
        self.stream: tuple[str, dict] | None = None  # (content, metadata)

    def flush(self) -> None:
        if self.stream is not None and self.stream[0] != "":
            self.messages.append(TranscriptMessage(Role.ASSISTANT, self.stream[0], metadata=self.stream[1]))
        self.stream = None

    def add(self, e: _Ev) -> None:
        t, data = e.type, e.data
        if t is EventType.MESSAGE_STREAMED:
            if data.get("kind") in ("reasoning", "plan"):  # thinking and plans are not the reply text
                return
            chunk = _text(first_set(data.get("delta"), data.get("content")))
            if chunk == "":
                return
            content, meta = self.stream or ("", {})
            self.stream = (content + chunk, {**meta, **_event_metadata(e)})
        elif t is EventType.MESSAGE_RECEIVED:
            role = normalize_role(data.get("role"), Role.ASSISTANT)
            content = _text(data.get("content"))
            if role is Role.ASSISTANT and self.stream is not None:
                self.messages.append(TranscriptMessage(Role.ASSISTANT, content or self.stream[0],
                                                       metadata=self.stream[1]))
                self.stream = None
            else:
                self.flush()
                if content:
                    self.messages.append(TranscriptMessage(role, content, metadata=_event_metadata(e)))
        elif t is EventType.MESSAGE_SENT:
            self.flush()
            role = normalize_role(data.get("role"), Role.USER)
            content = _text(data.get("content"))
            if content:
                self.messages.append(TranscriptMessage(role, content, metadata=_event_metadata(e)))
        elif t is EventType.TOOL_CALL_STARTED:
            self.flush()
            tool_input = data.get("tool_input")
            self.messages.append(TranscriptMessage(
                Role.ASSISTANT, None, tool_call_id=data.get("tool_call_id"), tool_name=_name(data.get("tool_name")),
                tool_input=tool_input if isinstance(tool_input, dict) else None, metadata=_event_metadata(e)))
        elif t in (EventType.TOOL_CALL_COMPLETED, EventType.TOOL_CALL_FAILED):
            self.flush()
            self.messages.append(TranscriptMessage(
                Role.TOOL, None, tool_call_id=data.get("tool_call_id"), tool_name=_name(data.get("tool_name")),
                tool_output=data.get("tool_output"), metadata=_event_metadata(e)))
        elif t is EventType.TOOL_APPROVAL_REQUESTED:
            self.flush()
            self.messages.append(TranscriptMessage(
                Role.TOOL, None, tool_call_id=data.get("tool_call_id"), tool_name=_name(data.get("tool_name")),
                tool_output=APPROVAL_PAUSED_OUTPUT, metadata=_event_metadata(e)))
        # every other type (run_*, session_*, errors, usage, approvals granted/denied…) is ignored


def from_events(events: Iterable[Any], *, session_id: str | None = None, max_messages: object = None,
                max_chars: object = None, max_tokens_approx: object = None) -> Transcript:
    """Build a transcript from events (``Event`` objects or event dicts), in any order.

    ``session_id`` defaults to the first event's; with none → ``validation_error``
    "session_id is required to build transcript". Truncation options as ``maybe_truncate``.

    >>> from asm_nb.core.events import Event
    >>> evs = [Event.new("message_sent", "ses_1", data={"content": "hi"}, sequence_number=1),
    ...        Event.new("message_received", "ses_1", data={"content": "hello"}, sequence_number=2)]
    >>> [(m.role.value, m.content) for m in from_events(evs).messages]
    [('user', 'hi'), ('assistant', 'hello')]
    """
    views = [_view(e) for e in events]
    sid = session_id
    if not (isinstance(sid, str) and sid):
        sid = next((v.session_id for v in views if isinstance(v.session_id, str) and v.session_id), None)
    if sid is None:
        raise AsmError("validation_error", "session_id is required to build transcript")
    ordered = _sort(views)
    builder = _Builder()
    for e in ordered:
        builder.add(e)
    builder.flush()
    sequences = [e.sequence_number for e in ordered if _is_int(e.sequence_number)]
    transcript = Transcript(session_id=sid, messages=builder.messages,
                            last_sequence=max(sequences) if sequences else None,
                            last_timestamp=ordered[-1].timestamp if ordered else None)
    return maybe_truncate(transcript, max_messages=max_messages, max_chars=max_chars,
                          max_tokens_approx=max_tokens_approx)


# --------------------------------------------------------------------------------------------
# truncation


def _limit(v: object) -> int | None:
    return v if _is_int(v) and v > 0 else None


def _char_count(m: TranscriptMessage) -> int:
    # parity with the reference: tool inputs and outputs are not counted
    if isinstance(m.content, str):
        return len(m.content)
    if isinstance(m.tool_name, str):
        return len(m.tool_name)
    return 0


def maybe_truncate(transcript: Transcript, *, max_messages: object = None, max_chars: object = None,
                   max_tokens_approx: object = None, chars_per_token: object = None) -> Transcript:
    """Keep the newest messages that fit the limits (order preserved).

    1. ``max_messages`` (int > 0): the last N messages.
    2. Character budget: ``max_chars`` and ``max_tokens_approx * chars_per_token`` (config
       ``chars_per_token``, 4); when both are given the smaller wins. Walking from the newest
       message, stop at the first one that would push the total above the budget.
    Non-int or ≤ 0 values disable a limit.
    """
    messages = list(transcript.messages)
    n = _limit(max_messages)
    if n is not None:
        messages = messages[-n:]
    budgets: list[int] = []
    chars = _limit(max_chars)
    if chars is not None:
        budgets.append(chars)
    tokens = _limit(max_tokens_approx)
    if tokens is not None:
        cpt = _limit(chars_per_token)
        budgets.append(tokens * (cpt if cpt is not None else setting("chars_per_token")))
    if budgets:
        budget, used, keep = min(budgets), 0, 0
        for m in reversed(messages):
            used += _char_count(m)
            if used > budget:
                break
            keep += 1
        messages = messages[len(messages) - keep:]
    if len(messages) == len(transcript.messages):  # only ever drops from the front
        return transcript
    return dataclasses.replace(transcript, messages=messages)


# --------------------------------------------------------------------------------------------
# store-backed builders


def _split_opts(opts: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(store query, truncation options); None values and other keys are dropped (parity:
    the reference takes the known keys and ignores the rest)."""
    query = {k: opts[k] for k in STORE_QUERY_KEYS if opts.get(k) is not None}
    trunc = {k: opts[k] for k in TRUNCATION_KEYS if k in opts}
    return query, trunc


def _incremental_query(transcript: Transcript, query: dict[str, Any]) -> dict[str, Any]:
    query = dict(query)
    if _is_int(transcript.last_sequence) and transcript.last_sequence >= 0:
        query["after"] = transcript.last_sequence
    elif isinstance(transcript.last_timestamp, datetime) and "since" not in query:
        query["since"] = transcript.last_timestamp
    return query


def _merge(transcript: Transcript, events: list[Any]) -> Transcript:
    if not events:
        return transcript
    inc = from_events(events, session_id=transcript.session_id)
    return dataclasses.replace(
        transcript,
        messages=[*transcript.messages, *inc.messages],
        last_sequence=inc.last_sequence if inc.last_sequence is not None else transcript.last_sequence,
        last_timestamp=inc.last_timestamp if inc.last_timestamp is not None else transcript.last_timestamp,
        metadata={**transcript.metadata, **inc.metadata},
    )


def _sync_events(store: Any, session_id: str, query: dict[str, Any]) -> list[Any]:
    events = store.get_events(session_id, **query)
    if inspect.isawaitable(events):
        close = getattr(events, "close", None)
        if close is not None:
            close()  # avoid "coroutine was never awaited"
        raise AsmError("validation_error", "store.get_events is async; use afrom_store / aupdate_from_store")
    return without_audit(events)


async def _async_events(store: Any, session_id: str, query: dict[str, Any]) -> list[Any]:
    # stores are blocking objects today; an async store (awaitable result) works too
    events = store.get_events(session_id, **query)
    if inspect.isawaitable(events):
        events = await events
    return without_audit(events)


def from_store(store: Any, session_id: str, **opts: Any) -> Transcript:
    """Transcript of ``session_id`` from ``store.get_events``.

    Query keys ``run_id, type, since, limit, after, before`` go to the store; truncation keys
    ``max_messages, max_chars, max_tokens_approx`` to ``from_events``.
    """
    require_non_empty(session_id, "session_id")
    query, trunc = _split_opts(opts)
    return from_events(_sync_events(store, session_id, query), session_id=session_id, **trunc)


def update_from_store(store: Any, transcript: Transcript, **opts: Any) -> Transcript:
    """``transcript`` extended with the session's newer events.

    Reads ``after = last_sequence`` when it is an int ≥ 0 (overriding a caller ``after``), else
    ``since = last_timestamp`` unless the caller gave ``since``. No new events → unchanged.
    New messages come from the new events alone, so a stream split across the boundary becomes
    two messages. Truncation applies in both cases.
    """
    query, trunc = _split_opts(opts)
    events = _sync_events(store, transcript.session_id, _incremental_query(transcript, query))
    return maybe_truncate(_merge(transcript, events), **trunc)


async def afrom_store(store: Any, session_id: str, **opts: Any) -> Transcript:
    """Async twin of ``from_store``."""
    require_non_empty(session_id, "session_id")
    query, trunc = _split_opts(opts)
    return from_events(await _async_events(store, session_id, query), session_id=session_id, **trunc)


async def aupdate_from_store(store: Any, transcript: Transcript, **opts: Any) -> Transcript:
    """Async twin of ``update_from_store``."""
    query, trunc = _split_opts(opts)
    events = await _async_events(store, transcript.session_id, _incremental_query(transcript, query))
    return maybe_truncate(_merge(transcript, events), **trunc)


class TranscriptBuilder:
    """The builder functions under the reference's module name (``TranscriptBuilder.from_events``…)."""

    from_events = staticmethod(from_events)
    maybe_truncate = staticmethod(maybe_truncate)
    from_store = staticmethod(from_store)
    update_from_store = staticmethod(update_from_store)
    afrom_store = staticmethod(afrom_store)
    aupdate_from_store = staticmethod(aupdate_from_store)
