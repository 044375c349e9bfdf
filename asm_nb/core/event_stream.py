"""``EventStream``: an immutable, bounded cursor over one run's ``NormalizedEvent``s.

Every mutator returns a new stream; readers never change the cursor except ``take``.
Pure standard library; imports only ``asm_nb.core``. See docs/event-model.md, normalized events and event streams.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum
from typing import Any, Iterable, Iterator, Mapping

from ._checks import require_non_empty
from ._settings import setting
from .errors import AsmError
from .events import filter_by_type, sort_events


class StreamStatus(str, Enum):
    """An ``EventStream`` accepts pushes while ``open``; a ``closed`` one stays readable."""

    OPEN = "open"
    CLOSED = "closed"

    def __str__(self) -> str:
        return self.value


def _positive_int(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise AsmError("validation_error", f"{key} must be a positive integer")
    return value


def _non_negative_int(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise AsmError("validation_error", f"{key} must be a non-negative integer")
    return value


@dataclass(frozen=True, slots=True)
class EventStream:
    """Buffered events of one (session, run) pair and a read cursor (the next sequence to read).

    >>> from asm_nb.core.events import NormalizedEvent
    >>> s = EventStream.new("ses_1", "run_1")
    >>> for text in ("a", "b", "c"):
    ...     s = s.push(NormalizedEvent.new("message_streamed", "ses_1", "run_1", data={"delta": text}))
    >>> got, s = s.take(2)
    >>> [e.data["delta"] for e in got], s.cursor, s.remaining()
    (['a', 'b'], 2, 1)
    """

    session_id: str
    run_id: str
    events: tuple = ()
    cursor: int = 0
    buffer_size: int = 1_000
    status: StreamStatus = StreamStatus.OPEN
    next_sequence: int = 0

    @classmethod
    def new(cls, session_id: Any = None, run_id: Any = None, buffer_size: int | None = None) -> "EventStream":
        """An open, empty stream. ``buffer_size`` defaults to config ``event_buffer_size`` (1000).

        ``session_id`` may also be a context dict with ``session_id``, ``run_id``, ``buffer_size``.
        """
        if isinstance(session_id, Mapping):
            ctx = dict(session_id)
            return cls.new(ctx.get("session_id"), ctx.get("run_id"), ctx.get("buffer_size"))
        require_non_empty(session_id, "session_id")
        require_non_empty(run_id, "run_id")
        size = setting("event_buffer_size") if buffer_size is None else buffer_size
        return cls(session_id=session_id, run_id=run_id, buffer_size=_positive_int(size, "buffer_size"))

    # -- writing -------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self.status is StreamStatus.CLOSED:
            raise AsmError("stream_closed", "Cannot push to a closed stream")

    def _context_error(self, event: Any) -> AsmError | None:
        if event.session_id != self.session_id:
            return AsmError("session_mismatch", "Event session_id does not match stream session_id")
        if event.run_id != self.run_id:
            return AsmError("run_mismatch", "Event run_id does not match stream run_id")
        return None

    def push(self, event: Any) -> "EventStream":
        """A stream with ``event`` added.

        An event without ``sequence_number`` gets ``next_sequence``; ``next_sequence`` then becomes
        ``max(next_sequence, seq + 1)``. Past ``buffer_size`` the events with the highest sequence
        numbers are kept. Closed → ``stream_closed``; other session → ``session_mismatch``;
        other run → ``run_mismatch``.
        """
        self._check_open()
        err = self._context_error(event)
        if err is not None:
            raise err
        seq = event.sequence_number
        if seq is None:
            seq = self.next_sequence
            event = dataclasses.replace(event, sequence_number=seq)
        events = (*self.events, event)
        if len(events) > self.buffer_size:
            # keep the newest by sequence; sorted() is stable, so equal sequences keep push order
            events = tuple(sorted(events, key=lambda e: e.sequence_number, reverse=True)[: self.buffer_size])
        return dataclasses.replace(self, events=events, next_sequence=max(self.next_sequence, seq + 1))

    def push_batch(self, events: Iterable[Any]) -> "EventStream":
        """Push every event in order, atomically: if any event belongs to another session or run,
        raise ``context_mismatch`` "Event <id> has mismatched context" and add nothing."""
        self._check_open()
        events = list(events)
        for event in events:
            if self._context_error(event) is not None:
                raise AsmError("context_mismatch", f"Event {event.id} has mismatched context")
        stream = self
        for event in events:
            stream = stream.push(event)
        return stream

    def advance_cursor(self, position: int) -> "EventStream":
        """Move the cursor forward to ``position``; backwards → ``invalid_cursor``."""
        if isinstance(position, bool) or not isinstance(position, int):
            raise AsmError("validation_error", "position must be an integer")
        if position < self.cursor:
            raise AsmError("invalid_cursor", "Cannot move cursor backwards")
        return dataclasses.replace(self, cursor=position)

    def close(self) -> "EventStream":
        """A closed stream; the cursor moves past the highest buffered sequence (0 when empty)."""
        end = max((e.sequence_number for e in self.events), default=-1) + 1
        return dataclasses.replace(self, status=StreamStatus.CLOSED, cursor=end)

    # -- reading -------------------------------------------------------------------------
    def get_events(self, from_cursor: bool = False, limit: int | None = None, type: Any = None) -> list[Any]:
        """Buffered events in ``sort_events`` order; ``from_cursor`` keeps ``seq >= cursor``;
        ``type`` is one type or many; then at most ``limit`` events."""
        events = sort_events(self.events)
        if from_cursor:
            events = [e for e in events if e.sequence_number >= self.cursor]
        if type is not None:
            events = filter_by_type(events, type)
        if limit is not None:
            events = events[: _non_negative_int(limit, "limit")]
        return events

    def peek(self, n: int) -> list[Any]:
        """The next ``n`` unread events; the cursor does not move."""
        return self.get_events(from_cursor=True, limit=n)

    def take(self, n: int) -> tuple[list[Any], "EventStream"]:
        """``(events, stream)``: the next ``n`` unread events and a stream whose cursor is past them."""
        events = self.peek(n)
        if not events:
            return events, self
        cursor = max(e.sequence_number for e in events) + 1
        return events, dataclasses.replace(self, cursor=cursor)

    def count(self) -> int:
        """Number of buffered events."""
        return len(self.events)

    def remaining(self) -> int:
        """Number of buffered events at or after the cursor."""
        return sum(1 for e in self.events if e.sequence_number >= self.cursor)

    @property
    def closed(self) -> bool:
        """True once ``close`` was called."""
        return self.status is StreamStatus.CLOSED

    def __iter__(self) -> Iterator[Any]:
        return iter(self.get_events(from_cursor=True))
