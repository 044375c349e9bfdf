"""ExecutionState (the in-memory accumulator of one executing run) and ExecutionPayload (what
``store.flush(payload)`` receives).

See docs/stores.md, flush. The reference state is persistent data; here it is a small mutable class
whose mutators also return ``self`` so calls can chain.

Imports only ``core``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Callable, Mapping
from typing import Any

from ..core.errors import AsmError
from ..core.events import Event

__all__ = ["ExecutionPayload", "ExecutionState"]


@dataclass(frozen=True)
class ExecutionPayload:
    """``session``, ``run``, ``events`` and ``provider_metadata`` of one finished execution.

    ``flush`` also accepts the same thing as a plain dict; ``ExecutionPayload.coerce`` turns
    either form into a payload, so a store handles one shape.
    """

    session: Any = None
    run: Any = None
    events: list[Event] = field(default_factory=list)
    provider_metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def coerce(cls, payload: object) -> "ExecutionPayload":
        """A payload as is; a dict with the four keys (missing ``events``/``provider_metadata``
        → empty) → payload; anything else → ``validation_error``."""
        if isinstance(payload, ExecutionPayload):
            return payload
        if isinstance(payload, Mapping):
            events = payload.get("events")
            pm = payload.get("provider_metadata")
            return cls(session=payload.get("session"), run=payload.get("run"),
                       events=list(events) if events is not None else [],
                       provider_metadata=dict(pm) if isinstance(pm, Mapping) else {})
        raise AsmError("validation_error", f"flush payload must be an ExecutionPayload or dict, got: {payload!r}")

    def to_dict(self) -> dict[str, Any]:
        """The plain-dict form (objects kept as objects, not serialized)."""
        return {"session": self.session, "run": self.run, "events": list(self.events),
                "provider_metadata": dict(self.provider_metadata)}


class ExecutionState:
    """Accumulates a run's events and provider metadata while it executes.

    ``append_event`` counts events in ``sequence_counter`` but never sets
    ``event.sequence_number`` (the store does that when the payload is flushed).

    >>> st = ExecutionState.new({"id": "ses_1"}, {"id": "run_1"})
    >>> st.cache_provider_metadata({"model": "m"}).provider_metadata
    {'model': 'm'}
    """

    __slots__ = ("session", "run", "events", "provider_metadata", "sequence_counter")

    def __init__(self, session: Any = None, run: Any = None, events: list[Event] | None = None,
                 provider_metadata: Mapping[str, Any] | None = None, sequence_counter: int = 0) -> None:
        self.session = session
        self.run = run
        self.events: list[Event] = list(events or [])
        self.provider_metadata: dict[str, Any] = dict(provider_metadata or {})
        self.sequence_counter = sequence_counter

    @classmethod
    def new(cls, session: Any, run: Any) -> "ExecutionState":
        """A state seeded with ``session`` and ``run``; no events, empty metadata, counter 0."""
        return cls(session, run)

    def append_event(self, event: Event) -> "ExecutionState":
        """Keep ``event`` (unchanged) and increment ``sequence_counter``."""
        self.events.append(event)
        self.sequence_counter += 1
        return self

    def cache_provider_metadata(self, metadata: object) -> "ExecutionState":
        """Shallow-merge ``metadata`` into ``provider_metadata``; non-dict → ``validation_error``."""
        if not isinstance(metadata, Mapping):
            raise AsmError("validation_error", "provider metadata must be a dict")
        self.provider_metadata.update(metadata)
        return self

    def update_session(self, fn: Callable[[Any], Any]) -> "ExecutionState":
        """Replace ``session`` with ``fn(session)``."""
        self.session = fn(self.session)
        return self

    def update_run(self, fn: Callable[[Any], Any]) -> "ExecutionState":
        """Replace ``run`` with ``fn(run)``."""
        self.run = fn(self.run)
        return self

    def finalized_events(self) -> list[Event]:
        """The events in append order (a new list)."""
        return list(self.events)

    def to_result(self) -> ExecutionPayload:
        """``ExecutionPayload(session, run, finalized_events(), provider_metadata)``."""
        return ExecutionPayload(self.session, self.run, self.finalized_events(), dict(self.provider_metadata))

    def __repr__(self) -> str:
        sid = getattr(self.session, "id", None)
        rid = getattr(self.run, "id", None)
        return f"ExecutionState(session={sid!r}, run={rid!r}, events={len(self.events)})"
