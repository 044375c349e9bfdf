"""``Session``: an agent conversation that holds runs, with its status machine.

Pure standard library. See docs/event-model.md, session.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from collections.abc import Mapping
from typing import Any

from ._checks import dict_or_empty, optional_datetime, require_datetime, require_non_empty, require_str
from .errors import AsmError
from .serialization import format_datetime, new_id, to_jsonable, utc_now


class SessionStatus(str, Enum):
    """Session statuses; ``completed``, ``failed`` and ``cancelled`` are terminal."""

    PENDING = "pending"
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


SESSION_TERMINAL = frozenset({SessionStatus.COMPLETED, SessionStatus.FAILED, SessionStatus.CANCELLED})
_SESSION_NEXT = {
    SessionStatus.PENDING: {SessionStatus.ACTIVE},
    SessionStatus.ACTIVE: {SessionStatus.PAUSED, SessionStatus.COMPLETED, SessionStatus.FAILED,
                           SessionStatus.CANCELLED},
    SessionStatus.PAUSED: {SessionStatus.ACTIVE},
}


def _status(value: Any, enum: type[Enum], *, strict_type: bool = False) -> Any:
    """Coerce a member or its exact string value to ``enum``.

    ``strict_type`` selects the ``from_dict`` messages (non-str → "status must be a string",
    unknown string → "Invalid status: <s>"); otherwise (``with_status``) any bad value reads
    "Invalid status: <repr>. Valid statuses: [...]".
    """
    if isinstance(value, enum):
        return value
    if isinstance(value, str):
        try:
            return enum(value)
        except ValueError:
            pass
    if strict_type:
        if not isinstance(value, str):
            raise AsmError("validation_error", "status must be a string")
        raise AsmError("invalid_status", f"Invalid status: {value}")
    valid = [m.value for m in enum]
    raise AsmError("invalid_status", f"Invalid status: {value!r}. Valid statuses: {valid}")


def can_transition(from_status: object, to_status: object) -> bool:
    """The intended session status table (the core itself enforces nothing, as the reference)."""
    a, b = _status(from_status, SessionStatus), _status(to_status, SessionStatus)
    return b in _SESSION_NEXT.get(a, set())


@dataclass(frozen=True, slots=True)
class Session:
    """An agent session. Frozen: ``with_status`` and friends return a new object."""

    id: str
    agent_id: str
    status: SessionStatus = SessionStatus.PENDING
    parent_session_id: str | None = None
    metadata: dict = field(default_factory=dict)
    context: dict = field(default_factory=dict)
    tags: list = field(default_factory=list)
    created_at: datetime = field(default_factory=utc_now)
    updated_at: datetime = field(default_factory=utc_now)
    deleted_at: datetime | None = None

    @classmethod
    def new(cls, agent_id: Any = None, *, id: str | None = None, parent_session_id: str | None = None,
            metadata: Mapping | None = None, context: Mapping | None = None, tags: list | None = None) -> "Session":
        """A new ``pending`` session. ``agent_id`` may also be a dict of these attributes."""
        if isinstance(agent_id, Mapping):
            attrs = dict(agent_id)
            return cls.new(attrs.get("agent_id"), id=attrs.get("id"), parent_session_id=attrs.get("parent_session_id"),
                           metadata=attrs.get("metadata"), context=attrs.get("context"), tags=attrs.get("tags"))
        if agent_id is None:
            raise AsmError("validation_error", "agent_id is required")
        require_non_empty(agent_id, "agent_id")
        now = utc_now()
        return cls(id=id or new_id("ses_"), agent_id=agent_id, parent_session_id=parent_session_id,
                   metadata=dict(metadata or {}), context=dict(context or {}), tags=list(tags or []),
                   created_at=now, updated_at=now)

    def with_status(self, status: object) -> "Session":
        """A copy with ``status`` and ``updated_at = now``; no transition is enforced."""
        return dataclasses.replace(self, status=_status(status, SessionStatus), updated_at=utc_now())

    def replace(self, **changes: Any) -> "Session":
        """A copy with ``changes`` applied (no validation)."""
        return dataclasses.replace(self, **changes)

    @property
    def is_terminal(self) -> bool:
        """True for ``completed``, ``failed`` or ``cancelled``."""
        return self.status in SESSION_TERMINAL

    def to_dict(self) -> dict[str, Any]:
        """The ten fields, JSON-safe (the runtime-only ``context['transcript']`` is left out)."""
        ctx = {k: v for k, v in self.context.items() if k != "transcript"}  # runtime-only object
        return {
            "id": self.id, "agent_id": self.agent_id, "status": self.status.value,
            "parent_session_id": self.parent_session_id, "metadata": to_jsonable(self.metadata),
            "context": to_jsonable(ctx), "tags": list(self.tags),
            "created_at": format_datetime(self.created_at), "updated_at": format_datetime(self.updated_at),
            "deleted_at": format_datetime(self.deleted_at),
        }

    @classmethod
    def from_dict(cls, d: object) -> "Session":
        """Inverse of ``to_dict`` with the validation rules of docs/event-model.md, session."""
        if not isinstance(d, Mapping):
            raise AsmError("validation_error", "Invalid session map")
        sid = require_str(d, "id")
        agent_id = require_str(d, "agent_id")
        if d.get("status") is None:
            raise AsmError("validation_error", "status is required")
        status = _status(d["status"], SessionStatus, strict_type=True)
        created = require_datetime(d, "created_at")
        updated = require_datetime(d, "updated_at")
        return cls(id=sid, agent_id=agent_id, status=status, parent_session_id=d.get("parent_session_id"),
                   metadata=dict_or_empty(d.get("metadata")), context=dict_or_empty(d.get("context")),
                   tags=list(d.get("tags") or []), created_at=created, updated_at=updated,
                   deleted_at=optional_datetime(d, "deleted_at"))
