"""SqlStore's rows: ``Event``/``Session``/``Run`` from table rows and back, the event column
order of the batched insert, timestamps as SQLite text, and the dialect's upsert
(docs/stores.md, SqlStore).

Split out of ``stores/sql.py`` (which re-exports ``event_from_row``, ``session_from_row``,
``run_from_row``, ``session_values`` and ``run_values``).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from ..core.events import Event, EventType
from ..core.run import Run, RunStatus
from ..core.serialization import format_datetime
from ..core.session import Session, SessionStatus
from . import _codec

_BY_VALUE = {t.value: t for t in EventType}
_UTC = timezone.utc
_EVENT_COLS = ("id", "type", "timestamp", "session_id", "run_id", "sequence_number", "data", "metadata",
               "schema_version", "provider", "correlation_id")


def _json_text(value: Any) -> str:
    return _codec.dumps(value).decode("utf-8")


def _ts_text(dt: datetime) -> str:
    if dt.tzinfo is _UTC:
        return dt.isoformat(timespec="microseconds")[:-6] + "Z"
    return format_datetime(dt)


def _dict(v: Any) -> dict:
    return v if isinstance(v, dict) else {}


def event_from_row(r: Any) -> Event:
    """An ``Event`` from an ``asm_events`` row (mapping)."""
    return Event(r["id"], _BY_VALUE[r["type"]], r["timestamp"], r["session_id"], r["run_id"], _dict(r["data"]),
                 _dict(r["metadata"]), r["sequence_number"], r["schema_version"] or 1, r["provider"],
                 r["correlation_id"])


def session_from_row(r: Any) -> Session:
    """A ``Session`` from an ``asm_sessions`` row."""
    return Session(id=r["id"], agent_id=r["agent_id"], status=SessionStatus(r["status"]),
                   parent_session_id=r["parent_session_id"], metadata=_dict(r["metadata"]),
                   context=_dict(r["context"]), tags=list(r["tags"] or []), created_at=r["created_at"],
                   updated_at=r["updated_at"], deleted_at=r["deleted_at"])


def run_from_row(r: Any) -> Run:
    """A ``Run`` from an ``asm_runs`` row."""
    cost = r["cost_usd"]
    return Run(id=r["id"], session_id=r["session_id"], status=RunStatus(r["status"]), input=r["input"],
               output=r["output"], error=r["error"], metadata=_dict(r["metadata"]),
               turn_count=r["turn_count"] or 0, token_usage=_dict(r["token_usage"]),
               cost_usd=None if cost is None else float(cost), started_at=r["started_at"],
               ended_at=r["ended_at"], provider=r["provider"], provider_metadata=_dict(r["provider_metadata"]))


def session_values(s: Session) -> dict[str, Any]:
    d = s.to_dict()
    return {"id": s.id, "agent_id": s.agent_id, "status": s.status.value, "parent_session_id": s.parent_session_id,
            "metadata": d["metadata"] or {}, "context": d["context"] or {}, "tags": d["tags"] or [],
            "created_at": s.created_at, "updated_at": s.updated_at, "deleted_at": s.deleted_at}


def run_values(r: Run) -> dict[str, Any]:
    d = r.to_dict()
    return {"id": r.id, "session_id": r.session_id, "status": r.status.value, "input": d["input"],
            "output": d["output"], "error": d["error"], "metadata": d["metadata"] or {},
            "turn_count": r.turn_count if r.turn_count is not None else 0, "token_usage": d["token_usage"] or {},
            "started_at": r.started_at, "ended_at": r.ended_at, "provider": r.provider,
            "provider_metadata": d["provider_metadata"] or {}, "cost_usd": r.cost_usd}


def _upsert(conn: sa.Connection, table: sa.Table, values: dict[str, Any]) -> None:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(table).values(**values)
    conn.execute(stmt.on_conflict_do_update(index_elements=["id"],
                                            set_={k: stmt.excluded[k] for k in values if k != "id"}))
