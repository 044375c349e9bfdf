"""``Run``: one execution of an agent within a session, with its status machine.

Pure standard library. See docs/event-model.md, run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from collections.abc import Mapping
from typing import Any, TypeGuard

from ._checks import dict_or_empty, optional_datetime, require_datetime, require_non_empty, require_str
from .errors import AsmError
from .serialization import format_datetime, new_id, to_jsonable, utc_now
from .session import _status


class RunStatus(str, Enum):
    """Run statuses; ``completed``, ``failed``, ``cancelled`` and ``timeout`` are terminal."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"

    def __str__(self) -> str:
        return self.value


RUN_TERMINAL = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TIMEOUT})
_RUN_NEXT = {
    RunStatus.PENDING: {RunStatus.RUNNING, RunStatus.CANCELLED},
    RunStatus.RUNNING: set(RUN_TERMINAL),
}


def can_transition(from_status: object, to_status: object) -> bool:
    """Intended run table: pending → running → one terminal state (pending → cancelled too)."""
    a, b = _status(from_status, RunStatus), _status(to_status, RunStatus)
    return b in _RUN_NEXT.get(a, set())


def is_terminal(status: object) -> bool:
    """True for a terminal status."""
    return _status(status, RunStatus) in RUN_TERMINAL


@dataclass(frozen=True, slots=True)
class Run:
    """A run. ``token_usage`` holds input/output/cache token counts; ``cost_usd`` its price."""

    id: str
    session_id: str
    status: RunStatus = RunStatus.PENDING
    input: Any = None
    output: dict | None = None
    error: dict | None = None
    metadata: dict = field(default_factory=dict)
    turn_count: int = 0
    token_usage: dict = field(default_factory=dict)
    cost_usd: float | None = None
    started_at: datetime = field(default_factory=utc_now)
    ended_at: datetime | None = None
    provider: str | None = None
    provider_metadata: dict = field(default_factory=dict)

    @classmethod
    def new(cls, session_id: Any = None, *, id: str | None = None, input: Any = None,
            metadata: Mapping | None = None) -> "Run":
        """A new ``pending`` run (``started_at`` = now); ``session_id`` may be one dict of attributes.

        Missing → ``validation_error`` "session_id is required"; ``""`` → "session_id cannot be empty".
        """
        if isinstance(session_id, Mapping):
            a = dict(session_id)
            return cls.new(a.get("session_id"), id=a.get("id"), input=a.get("input"), metadata=a.get("metadata"))
        require_non_empty(session_id, "session_id")
        return cls(id=id or new_id("run_"), session_id=session_id, input=input, metadata=dict(metadata or {}))

    def with_status(self, status: object) -> "Run":
        """A copy with ``status``; a terminal status also sets ``ended_at = now``."""
        s = _status(status, RunStatus)
        ended = utc_now() if s in RUN_TERMINAL else self.ended_at
        return dataclasses.replace(self, status=s, ended_at=ended)

    def with_output(self, output: Mapping | None) -> "Run":
        """A ``completed`` copy holding ``output`` (``ended_at = now``)."""
        return dataclasses.replace(self, output=dict(output or {}), status=RunStatus.COMPLETED, ended_at=utc_now())

    def with_error(self, error: Mapping) -> "Run":
        """A ``failed`` copy holding ``error`` (``ended_at = now``)."""
        return dataclasses.replace(self, error=dict(error), status=RunStatus.FAILED, ended_at=utc_now())

    def increment_turn(self) -> "Run":
        """A copy with ``turn_count + 1``."""
        return dataclasses.replace(self, turn_count=self.turn_count + 1)

    def add_token_usage(self, usage: Mapping | None) -> "Run":
        """Key-wise merge: numbers are summed, anything else replaces, absent keys are kept."""
        merged = dict(self.token_usage)
        for k, v in (usage or {}).items():
            old = merged.get(k)
            if _is_num(old) and _is_num(v):
                merged[k] = old + v
            else:
                merged[k] = v
        return dataclasses.replace(self, token_usage=merged)

    def replace(self, **changes: Any) -> "Run":
        """A copy with ``changes`` applied (no validation)."""
        return dataclasses.replace(self, **changes)

    @property
    def is_terminal(self) -> bool:
        """True for a terminal status."""
        return self.status in RUN_TERMINAL

    @property
    def duration_ms(self) -> int | None:
        """Milliseconds from ``started_at`` to ``ended_at``; None while running."""
        if self.ended_at is None:
            return None
        return int((self.ended_at - self.started_at).total_seconds() * 1000)

    def to_dict(self) -> dict[str, Any]:
        """The 14 fields, JSON-safe."""
        return {
            "id": self.id, "session_id": self.session_id, "status": self.status.value,
            "input": to_jsonable(self.input), "output": to_jsonable(self.output), "error": to_jsonable(self.error),
            "metadata": to_jsonable(self.metadata), "turn_count": self.turn_count,
            "token_usage": to_jsonable(self.token_usage), "started_at": format_datetime(self.started_at),
            "ended_at": format_datetime(self.ended_at), "provider": self.provider, "cost_usd": self.cost_usd,
            "provider_metadata": to_jsonable(self.provider_metadata),
        }

    @classmethod
    def from_dict(cls, d: object) -> "Run":
        """Inverse of ``to_dict`` with the validation rules of docs/event-model.md, run."""
        if not isinstance(d, Mapping):
            raise AsmError("validation_error", "Invalid run map")
        rid = require_str(d, "id")
        sid = require_str(d, "session_id")
        if d.get("status") is None:
            raise AsmError("validation_error", "status is required")
        status = _status(d["status"], RunStatus, strict_type=True)
        started = require_datetime(d, "started_at")
        cost = d.get("cost_usd")
        if isinstance(cost, bool) or not isinstance(cost, (int, float)):
            cost = None
        else:
            cost = float(cost)
        tc = d.get("turn_count")
        return cls(id=rid, session_id=sid, status=status, input=d.get("input"), output=d.get("output"),
                   error=d.get("error"), metadata=dict_or_empty(d.get("metadata")),
                   turn_count=tc if isinstance(tc, int) and not isinstance(tc, bool) else 0,
                   token_usage=dict_or_empty(d.get("token_usage")), cost_usd=cost, started_at=started,
                   ended_at=optional_datetime(d, "ended_at"), provider=d.get("provider"),
                   provider_metadata=dict_or_empty(d.get("provider_metadata")))


def _is_num(v: object) -> TypeGuard[int | float]:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
