"""``SqlArtifactStore``: artifact bytes in the SqlStore's own database.

Bytes are content-addressed in ``asm_artifact_blobs`` (one row per SHA-256: a patch written twice
is stored once); the key → blob mapping is the artifact registry row in ``asm_artifacts``
(``storage_backend "sql"``, ``storage_ref "sql:sha256:<hex>"``), so a SqlStore's workspace patches
are registered artifacts like LocalStore's, visible to ``ArtifactRegistry`` and Maintenance.
``delete`` is a soft delete (the record gets ``deleted_at``; a later ``put`` of the same key
revives it); blobs no live record points at are removed by :meth:`SqlArtifactStore.vacuum`.

``artifact_store_for(sql_store)`` returns one; imported only when a SqlStore needs it.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from ..core.errors import AsmError
from . import _sql_schema as S
from .artifacts import _check_key, to_bytes

__all__ = ["SqlArtifactStore"]


def _insert_ignore(conn: sa.Connection, table: sa.Table, values: dict[str, Any], key: str) -> None:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    conn.execute(insert(table).values(**values).on_conflict_do_nothing(index_elements=[key]))


class SqlArtifactStore:
    """ArtifactStore port over a ``SqlStore`` (``put``/``get``/``delete``/``exists``)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def __repr__(self) -> str:
        return f"SqlArtifactStore({self.store!r})"

    def _record(self, key: str, *, live: bool = True) -> dict | None:
        t = S.artifacts
        q = sa.select(t).where(t.c.key == key)
        if live:
            q = q.where(t.c.deleted_at.is_(None))
        row = self.store._read(lambda c: c.execute(q).mappings().first())
        return None if row is None else dict(row)

    def put(self, key: str, data: Any, **opts: Any) -> None:
        """Store ``data`` under ``key`` (overwrites); ``session_id``, ``run_id``, ``content_type``,
        ``metadata`` go on the record."""
        _check_key(key)
        payload = to_bytes(data)
        sha = hashlib.sha256(payload).hexdigest()
        now = datetime.now(timezone.utc)
        old = self._record(key, live=False)
        rec = {"id": old["id"] if old else "art_" + secrets.token_urlsafe(12), "key": key,
               "session_id": opts.get("session_id", old and old.get("session_id")),
               "run_id": opts.get("run_id", old and old.get("run_id")),
               "content_type": opts.get("content_type", old and old.get("content_type")),
               "byte_size": len(payload), "checksum_sha256": sha, "storage_backend": "sql",
               "storage_ref": f"sql:sha256:{sha}", "metadata": dict(opts.get("metadata") or {}),
               "created_at": old["created_at"] if old else now, "deleted_at": None}

        def write(conn: sa.Connection) -> None:
            _insert_ignore(conn, S.artifact_blobs, {"checksum_sha256": sha, "byte_size": len(payload),
                                                    "data": payload, "created_at": now}, "checksum_sha256")
            if old is None:
                conn.execute(sa.insert(S.artifacts).values(**rec))
            else:
                conn.execute(sa.update(S.artifacts).where(S.artifacts.c.id == rec["id"]).values(**rec))

        self.store._write(write, "artifact put")

    def get(self, key: str, **opts: Any) -> bytes:
        """The bytes under ``key``; missing or deleted → ``not_found`` "Artifact not found: <key>"."""
        _check_key(key)
        rec = self._record(key)
        if rec is None:
            raise AsmError("not_found", f"Artifact not found: {key}")
        b = S.artifact_blobs
        data = self.store._read(lambda c: c.execute(sa.select(b.c.data).where(
            b.c.checksum_sha256 == rec["checksum_sha256"])).scalar())
        if data is None:
            raise AsmError("not_found", f"Artifact not found: {key}")
        return bytes(data)

    def delete(self, key: str, **opts: Any) -> None:
        """Soft delete (idempotent): the record gets ``deleted_at``; the bytes stay until
        :meth:`vacuum`."""
        _check_key(key)
        t = S.artifacts
        now = datetime.now(timezone.utc)
        self.store._write(lambda c: c.execute(sa.update(t).where(t.c.key == key, t.c.deleted_at.is_(None))
                                              .values(deleted_at=now)), "artifact delete")

    def exists(self, key: str) -> bool:
        return self._record(_check_key(key)) is not None

    def vacuum(self, *, dry_run: bool = False) -> int:
        """Remove blobs no live record points at; returns how many (``dry_run``: only count them).
        ``asm gc`` / ``asm_nb.gc`` call it after the retention pass."""
        t, b = S.artifacts, S.artifact_blobs
        live = sa.select(t.c.checksum_sha256).where(t.c.deleted_at.is_(None))
        dead = b.c.checksum_sha256.not_in(live)
        if dry_run:
            return int(self.store._read(lambda c: c.execute(sa.select(sa.func.count()).select_from(b)
                                                            .where(dead)).scalar()) or 0)
        box: list[int] = []

        def go(conn: sa.Connection) -> None:
            box.append(conn.execute(sa.delete(b).where(dead)).rowcount or 0)

        self.store._write(go, "artifact vacuum")
        return box[0] if box else 0

    def close(self) -> None:
        """Nothing to release: the SqlStore owns the connection pool."""
