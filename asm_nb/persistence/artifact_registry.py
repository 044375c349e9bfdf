"""ArtifactRegistry: the metadata of stored artifacts (workspace patches, files a run kept).

One row per artifact key in the store's artifact table (``asm_artifacts`` in SQL,
``db/artifacts.json`` in LocalStore, a dict in memory), written by the artifact stores when they
``put`` bytes and readable here without touching the bytes:

    >>> from asm_nb.stores.memory import InMemoryStore
    >>> reg = ArtifactRegistry(InMemoryStore())
    >>> art_id = reg.register({"key": "patch-1", "byte_size": 3, "checksum_sha256": "0" * 64,
    ...                        "storage_backend": "s3", "storage_ref": "s3://b/patch-1", "session_id": "ses_1"})
    >>> reg.session_stats("ses_1")
    {'artifact_count': 1, 'total_bytes': 3}
    >>> reg.delete("patch-1"); reg.get_by_key("patch-1") is None
    True

``register`` validates every field (one clear ``validation_error``), refuses a key already
registered (``already_exists``, soft-deleted rows included) and returns the new id. ``delete`` is a
soft delete (``deleted_at``); Maintenance removes soft-deleted rows and unreferenced blobs later.
Works over any store with ``save_artifact_record`` / ``list_artifact_records``.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any

from ..core.errors import AsmError
from ..core.serialization import format_datetime, utc_now

__all__ = ["ArtifactRegistry", "REQUIRED_FIELDS", "FIELDS"]

REQUIRED_FIELDS = ("key", "byte_size", "checksum_sha256", "storage_backend", "storage_ref")
FIELDS = ("id", "session_id", "run_id", "key", "content_type", "byte_size", "checksum_sha256", "storage_backend",
          "storage_ref", "metadata", "created_at")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _opt_str(attrs: Mapping[str, Any], name: str) -> Any:
    v = attrs.get(name)
    if v is not None and (not isinstance(v, str) or not v):
        raise AsmError("validation_error", f"artifact field {name} must be a non-empty string or None, got {v!r}")
    return v


def _public(row: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: row.get(k) for k in FIELDS}
    ca = out.get("created_at")
    if ca is not None and not isinstance(ca, str):
        out["created_at"] = format_datetime(ca)
    out["metadata"] = dict(out.get("metadata") or {})
    return out


class ArtifactRegistry:
    """Artifact metadata over ``store``'s artifact table."""

    def __init__(self, store: Any) -> None:
        inner = store
        if not callable(getattr(store, "save_artifact_record", None)):
            inner = getattr(store, "sessions", store)  # a CompositeSessionStore: records in its session store
        for name in ("save_artifact_record", "list_artifact_records"):
            if not callable(getattr(inner, name, None)):
                raise AsmError("validation_error", f"store {store!r} keeps no artifact records (needs {name})")
        self.store = inner

    def __repr__(self) -> str:
        return f"ArtifactRegistry({self.store!r})"

    def _rows(self, session_id: str | None = None) -> list[dict]:
        try:
            return [dict(r) for r in self.store.list_artifact_records(session_id)]
        except AsmError:
            raise
        except Exception as exc:
            raise AsmError("query_error", str(exc)) from exc

    def _find(self, key: str, *, live: bool = True) -> dict | None:
        for r in self._rows():
            if r.get("key") == key and (not live or not r.get("deleted_at")):
                return r
        return None

    def register(self, attrs: Mapping[str, Any]) -> str:
        """Record an artifact; returns its id. Required: ``key``, ``byte_size`` (int >= 0),
        ``checksum_sha256`` (64 lowercase hex), ``storage_backend``, ``storage_ref``; optional
        ``id``, ``session_id``, ``run_id``, ``content_type``, ``metadata`` (dict)."""
        if not isinstance(attrs, Mapping):
            raise AsmError("validation_error", f"artifact attributes must be a mapping, got {type(attrs).__name__}")
        for name in REQUIRED_FIELDS:
            if attrs.get(name) is None:
                raise AsmError("validation_error", f"missing required artifact field: {name}")
        for name in ("key", "storage_backend", "storage_ref"):
            if not isinstance(attrs[name], str) or not attrs[name]:
                raise AsmError("validation_error", f"artifact field {name} must be a non-empty string")
        size = attrs["byte_size"]
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise AsmError("validation_error", f"artifact field byte_size must be a non-negative integer, got {size!r}")
        sha = attrs["checksum_sha256"]
        if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
            raise AsmError("validation_error", "artifact field checksum_sha256 must be 64 lowercase hex characters")
        meta = attrs.get("metadata")
        if meta is not None and not isinstance(meta, Mapping):
            raise AsmError("validation_error", "artifact field metadata must be a dict")
        art_id = _opt_str(attrs, "id") or "art_" + secrets.token_urlsafe(12)
        record = {"id": art_id, "key": attrs["key"], "session_id": _opt_str(attrs, "session_id"),
                  "run_id": _opt_str(attrs, "run_id"), "content_type": _opt_str(attrs, "content_type"),
                  "byte_size": size, "checksum_sha256": sha, "storage_backend": attrs["storage_backend"],
                  "storage_ref": attrs["storage_ref"], "metadata": dict(meta or {}), "created_at": utc_now(),
                  "deleted_at": None}
        if self._find(record["key"], live=False) is not None:
            raise AsmError("already_exists", f"artifact key already registered: {record['key']}")
        try:
            self.store.save_artifact_record(record)
        except AsmError:
            raise
        except Exception as exc:
            raise AsmError("persistence_error", f"registering artifact {record['key']} failed: {exc}") from exc
        return art_id

    def get_by_key(self, key: str) -> dict | None:
        """The metadata of ``key`` (keys of :data:`FIELDS`) or None; soft-deleted rows are invisible."""
        row = self._find(key)
        return None if row is None else _public(row)

    def list_by_session(self, session_id: str) -> list[dict]:
        """Live rows of ``session_id``, oldest first."""
        return [_public(r) for r in self._rows(session_id) if not r.get("deleted_at")]

    def session_stats(self, session_id: str) -> dict[str, int]:
        """``{"artifact_count": n, "total_bytes": sum}`` over the session's live rows."""
        rows = self.list_by_session(session_id)
        return {"artifact_count": len(rows), "total_bytes": sum(int(r.get("byte_size") or 0) for r in rows)}

    def delete(self, key: str) -> None:
        """Soft delete: ``deleted_at = now`` on the live row of ``key``. Idempotent."""
        row = self._find(key)
        if row is None:
            return
        row["deleted_at"] = utc_now()
        self.store.save_artifact_record(row)
