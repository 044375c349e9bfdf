"""SqlStore's artifact records (the artifact registry's table, used by Maintenance) and its
maintenance hooks (delete pruned events, list and delete sequence counters): ``SqlRecords``, a
base class of ``SqlStore`` (``stores/sql.py``) on the write-behind layer.

Split out of ``stores/sql.py``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Callable, Iterable

import sqlalchemy as sa

from ..core.errors import AsmError
from ..core.serialization import format_datetime
from . import _sql_schema as S
from ._sql_rows import _UTC, _upsert
from ._sql_writes import SqlWriteBehind


class SqlRecords(SqlWriteBehind):
    """Artifact records and maintenance hooks of ``SqlStore``."""

    flush: Callable[..., None]  # SqlStore.flush

    # -- artifact records (the registry's table; used by Maintenance) ---------------------------
    def save_artifact_record(self, record: dict) -> None:
        """Upsert an artifact metadata record (the record fields of docs/stores.md, artifacts; missing required ones get
        empty defaults: ``byte_size`` 0, ``checksum_sha256``/``storage_*`` "", ``metadata`` {})."""
        if not isinstance(record, dict) or not isinstance(record.get("id"), str) or not record["id"]:
            raise AsmError("validation_error", "artifact record must be a dict with a non-empty string id")
        if not isinstance(record.get("key"), str) or not record["key"]:
            raise AsmError("validation_error", "missing required artifact field: key")
        values = {"id": record["id"], "session_id": record.get("session_id"), "run_id": record.get("run_id"),
                  "key": record["key"], "content_type": record.get("content_type"),
                  "byte_size": int(record.get("byte_size") or 0),
                  "checksum_sha256": record.get("checksum_sha256") or "",
                  "storage_backend": record.get("storage_backend") or "",
                  "storage_ref": record.get("storage_ref") or "", "metadata": record.get("metadata") or {},
                  "created_at": record.get("created_at") or datetime.now(_UTC),
                  "deleted_at": record.get("deleted_at")}
        self._write(lambda c: _upsert(c, S.artifacts, values), "save_artifact_record")

    def list_artifact_records(self, session_id: str | None = None) -> list[dict]:
        """Artifact records (all, or of one session; soft-deleted included) by ``created_at``
        then id, as dicts with ISO timestamps."""
        t = S.artifacts
        q = sa.select(t).order_by(t.c.created_at, t.c.id)
        if session_id is not None:
            q = q.where(t.c.session_id == session_id)
        rows = self._read(lambda c: c.execute(q).mappings().all())
        return [{**dict(r), "created_at": format_datetime(r["created_at"]),
                 "deleted_at": format_datetime(r["deleted_at"])} for r in rows]

    def delete_artifact_record(self, record_id: str) -> None:
        """Remove an artifact record (idempotent)."""
        self._write(lambda c: c.execute(sa.delete(S.artifacts).where(S.artifacts.c.id == record_id)),
                    "delete_artifact_record")

    # -- maintenance hooks ----------------------------------------------------------------------
    def delete_events(self, session_id: str, event_ids: Iterable[str]) -> int:
        """Delete stored events of a session (pruning); the counter is left as is."""
        ids = list(event_ids)
        if not ids:
            return 0
        burst = self._burst_for(session_id)
        box = [0]

        def delete(conn: sa.Connection) -> None:
            for i in range(0, len(ids), 500):
                res = conn.execute(sa.delete(S.events).where(S.events.c.session_id == session_id,
                                                             S.events.c.id.in_(ids[i:i + 500])))
                box[0] += res.rowcount or 0

        with burst.lock:
            self._retry(lambda: self._commit(burst))
            self._retry(lambda: self._commit(burst, delete))
        return box[0]

    def sequence_counters(self) -> dict[str, int]:
        """``{session_id: last_sequence}`` of every counter row."""
        self.flush()
        rows = self._read(lambda c: c.execute(sa.select(S.sequences.c.session_id, S.sequences.c.last_sequence)).all())
        return {sid: int(n) for sid, n in rows}

    def delete_sequence_counter(self, session_id: str) -> None:
        """Delete a counter, only when the session has no events."""
        def delete(conn: sa.Connection) -> None:
            conn.execute(sa.delete(S.sequences).where(
                S.sequences.c.session_id == session_id,
                ~sa.exists().where(S.events.c.session_id == session_id)))

        self._write(delete, "delete_sequence_counter")
