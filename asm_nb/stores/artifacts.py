"""Artifact stores on the local machine (docs/stores.md, artifacts) and ``artifact_store_for``.

- :class:`FileArtifactStore` — bytes by key in a folder, written atomically (temp file in the
  same folder + ``os.replace``). Two layouts:

  * ``layout="key"`` (the reference layout, docs/stores.md, artifacts): one file per key named
    ``<prefix>_<sha256(key)[:16]>``;
  * ``layout="content"`` (docs/stores.md, artifacts, what LocalStore uses): bytes at ``<aa>/<62 hex>`` named by their
    SHA-256 (identical content stored once), and a record per key in an index — LocalStore's
    ``db/artifacts.json`` TinyDB table (artifact-registry row shape of docs/stores.md, artifacts, ``storage_backend
    "local"``, ``storage_ref "blob:sha256:<hex>"``) or, for a bare folder, ``index.json`` in it.
    ``delete`` soft-deletes the record; the blob stays until maintenance finds no live record.

- :class:`BlobStore` / :class:`MemoryBlobStore` — content-addressed bytes by SHA-256 (also used
  by the workspace hash backend to keep file contents for line counts and patches).
- :class:`InMemoryArtifactStore` — a dict, for ``InMemoryStore`` and tests.
- :func:`artifact_store_for` — the artifact store that goes with a session store.

Standard library plus the LocalStore helpers in ``stores/_tinydb.py``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import threading
import weakref
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..core.errors import AsmError
from ..core.serialization import format_datetime, utc_now
from ._atomic import write_atomic

__all__ = ["FileArtifactStore", "InMemoryArtifactStore", "BlobStore", "MemoryBlobStore", "artifact_store_for",
           "to_bytes", "key_file_name", "blob_store_for"]

_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def to_bytes(data: Any) -> bytes:
    """bytes / bytearray / memoryview / str (UTF-8) or an iterable of those ("iodata") → bytes."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, Iterable) and not isinstance(data, Mapping):
        return b"".join(to_bytes(part) for part in data)
    raise AsmError("validation_error", f"artifact data must be bytes, str or an iterable of those, got "
                                       f"{type(data).__name__}")


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise AsmError("validation_error", "artifact key must be a non-empty string")
    return key


def key_file_name(key: str) -> str:
    """Reference file name of a key: ``<safe prefix, ≤ 32 chars>_<first 16 hex of sha256(key)>``."""
    raw = key.encode("utf-8")
    prefix = "".join(chr(b) if b in _SAFE else "_" for b in raw)[:32]
    return f"{prefix}_{hashlib.sha256(raw).hexdigest()[:16]}"


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data)


# ---------------------------------------------------------------------------------------------- blobs
class BlobStore:
    """Content-addressed bytes under ``root``: ``<root>/<first 2 hex>/<remaining 62 hex>``."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(os.path.expanduser(str(root))).absolute()

    def path_for(self, sha: str) -> Path:
        """Where the blob with this SHA-256 lives."""
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise AsmError("validation_error", f"not a sha256 hex digest: {sha!r}")
        return self.root / sha[:2] / sha[2:]

    def put(self, data: bytes, sha: str | None = None) -> str:
        """Store ``data`` (skipped when already present) and return its SHA-256 hex."""
        sha = sha or hashlib.sha256(data).hexdigest()
        p = self.path_for(sha)
        if not p.exists():
            _atomic_write(p, data)
        return sha

    def has(self, sha: str) -> bool:
        """True when the blob is stored."""
        return self.path_for(sha).exists()

    def get(self, sha: str) -> bytes:
        """The blob's bytes; missing → ``not_found``."""
        try:
            return self.path_for(sha).read_bytes()
        except FileNotFoundError:
            raise AsmError("not_found", f"Blob not found: {sha}") from None

    def remove(self, sha: str) -> None:
        """Delete the blob (idempotent)."""
        with contextlib.suppress(FileNotFoundError):
            self.path_for(sha).unlink()


class MemoryBlobStore:
    """Content-addressed bytes in a dict (same methods as :class:`BlobStore`)."""

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self.root = None

    def put(self, data: bytes, sha: str | None = None) -> str:
        sha = sha or hashlib.sha256(data).hexdigest()
        with self._lock:
            self._blobs.setdefault(sha, bytes(data))
        return sha

    def has(self, sha: str) -> bool:
        return sha in self._blobs

    def get(self, sha: str) -> bytes:
        try:
            return self._blobs[sha]
        except KeyError:
            raise AsmError("not_found", f"Blob not found: {sha}") from None

    def remove(self, sha: str) -> None:
        with self._lock:
            self._blobs.pop(sha, None)


# ---------------------------------------------------------------------------------------------- records
class _JsonIndex:
    """Key records in one JSON file (a folder used without LocalStore): ``{id: record}``."""

    def __init__(self, path: Path) -> None:
        from ._locks import FileLock

        self.path = path
        self._lock = threading.RLock()
        self._flock = FileLock(path.with_name(path.name + ".lock"))

    @contextlib.contextmanager
    def rows(self, write: bool):
        from ._codec import dumps, loads

        with self._lock:
            self._flock.acquire()
            try:
                try:
                    data = loads(self.path.read_bytes())
                except FileNotFoundError:
                    data = {}
                yield data
                if write:
                    _atomic_write(self.path, dumps(data))
            finally:
                self._flock.release()


class _TinyIndex:
    """Key records in a LocalStore's ``db/artifacts.json`` table, under its ``db.lock``."""

    def __init__(self, root: Path) -> None:
        from ._tinydb import TinyTables

        self._tables = TinyTables(root, {"artifacts": dict})

    @contextlib.contextmanager
    def rows(self, write: bool):
        with self._tables.transaction() as t:
            table = t["artifacts"]
            snapshot: dict[str, Any] = {}

            def read(current: dict) -> bool:
                snapshot.update(current)
                return False

            table.update(read)
            rows = {k: dict(v) for k, v in snapshot.items()}
            yield rows
            if write:
                def replace(current: dict) -> bool:
                    current.clear()
                    current.update(rows)
                    return True

                table.update(replace)


def _find(rows: Mapping[str, Any], key: str, *, live: bool = True) -> tuple[str, dict] | None:
    for doc_id, doc in rows.items():
        if isinstance(doc, Mapping) and doc.get("key") == key and (not live or not doc.get("deleted_at")):
            return doc_id, dict(doc)
    return None


# ---------------------------------------------------------------------------------------------- stores
class FileArtifactStore:
    """Bytes by key in a folder (ArtifactStore port, docs/stores.md, artifacts).

    ``FileArtifactStore(root)`` uses the reference layout (one file per key, docs/stores.md, artifacts);
    ``FileArtifactStore(root, layout="content")`` stores content-addressed blobs with key records
    (docs/stores.md, artifacts) — in ``index.json`` in ``root``, or in ``records_root``'s LocalStore tables
    (``db/artifacts.json``) when given. Writes are atomic. ``put(key, data, session_id=…,
    run_id=…, content_type=…, metadata=…)`` records those fields in content layout.

    >>> import tempfile
    >>> s = FileArtifactStore(tempfile.mkdtemp())
    >>> s.put("patch-abc", b"diff"); s.get("patch-abc")
    b'diff'
    """

    def __init__(self, root: Any, *, layout: str = "key", records_root: str | os.PathLike | None = None) -> None:
        if isinstance(root, os.PathLike):
            root = os.fspath(root)
        if not isinstance(root, str) or not root:
            raise AsmError("validation_error", "root directory is required")
        if layout not in ("key", "content"):
            raise AsmError("validation_error", f"layout must be 'key' or 'content', got {layout!r}")
        self.root = Path(os.path.expanduser(root)).absolute()
        self.layout = layout
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AsmError("storage_error", f"Failed to create artifact root: {exc}") from exc
        self.blobs = BlobStore(self.root)
        self._index: Any = None
        if layout == "content":
            self._index = _TinyIndex(Path(records_root)) if records_root is not None \
                else _JsonIndex(self.root / "index.json")

    def __repr__(self) -> str:
        return f"FileArtifactStore({str(self.root)!r}, layout={self.layout!r})"

    def path_for(self, key: str) -> Path:
        """File holding ``key``'s bytes (key layout: its file; content layout: its blob)."""
        _check_key(key)
        if self.layout == "key":
            return self.root / key_file_name(key)
        rec = self.record(key)
        if rec is None:
            raise AsmError("not_found", f"Artifact not found: {key}")
        return self.blobs.path_for(rec["checksum_sha256"])

    def put(self, key: str, data: Any, **opts: Any) -> None:
        """Store ``data`` under ``key`` (overwrites silently)."""
        _check_key(key)
        payload = to_bytes(data)
        try:
            if self.layout == "key":
                _atomic_write(self.root / key_file_name(key), payload)
                return
            sha = self.blobs.put(payload)
            self._upsert(key, sha, len(payload), opts)
        except AsmError:
            raise
        except (OSError, ValueError, TypeError) as exc:
            raise AsmError("storage_error", f"Failed to write artifact: {exc}") from exc

    def get(self, key: str, **opts: Any) -> bytes:
        """The bytes stored under ``key``; missing → ``not_found`` "Artifact not found: <key>"."""
        _check_key(key)
        try:
            if self.layout == "key":
                return (self.root / key_file_name(key)).read_bytes()
            rec = self.record(key)
            if rec is None:
                raise AsmError("not_found", f"Artifact not found: {key}")
            return self.blobs.path_for(rec["checksum_sha256"]).read_bytes()
        except FileNotFoundError:
            raise AsmError("not_found", f"Artifact not found: {key}") from None
        except AsmError:
            raise
        except (OSError, ValueError) as exc:
            raise AsmError("storage_error", f"Failed to read artifact: {exc}") from exc

    def delete(self, key: str, **opts: Any) -> None:
        """Remove ``key`` (idempotent). Content layout: soft-deletes the record; the blob stays."""
        _check_key(key)
        try:
            if self.layout == "key":
                with contextlib.suppress(FileNotFoundError):
                    (self.root / key_file_name(key)).unlink()
                return
            with self._index.rows(write=True) as rows:
                hit = _find(rows, key)
                if hit is not None:
                    doc_id, doc = hit
                    doc["deleted_at"] = format_datetime(utc_now())
                    rows[doc_id] = doc
        except AsmError:
            raise
        except (OSError, ValueError) as exc:
            raise AsmError("storage_error", f"Failed to delete artifact: {exc}") from exc

    def exists(self, key: str) -> bool:
        """True when ``key`` is stored."""
        try:
            return self.path_for(key).exists()
        except AsmError as err:
            if err.code == "not_found":
                return False
            raise

    def record(self, key: str) -> dict | None:
        """Content layout: the key's metadata record (the artifact record keys of docs/stores.md, artifacts) or None;
        key layout: None."""
        if self.layout != "content":
            return None
        with self._index.rows(write=False) as rows:
            hit = _find(rows, key)
        return None if hit is None else hit[1]

    def list_records(self, session_id: str | None = None) -> list[dict]:
        """Content layout: live records (optionally of one session), oldest first."""
        if self.layout != "content":
            return []
        with self._index.rows(write=False) as rows:
            out = [dict(d) for d in rows.values() if isinstance(d, Mapping) and not d.get("deleted_at")
                   and (session_id is None or d.get("session_id") == session_id)]
        return sorted(out, key=lambda d: (d.get("created_at") or "", d.get("id") or ""))

    def _upsert(self, key: str, sha: str, size: int, opts: Mapping[str, Any]) -> None:
        with self._index.rows(write=True) as rows:
            hit = _find(rows, key, live=False)
            now = format_datetime(utc_now())
            if hit is None:
                doc_id = "art_" + secrets.token_urlsafe(12)
                doc: dict[str, Any] = {"id": doc_id, "key": key, "created_at": now, "metadata": {}}
            else:
                doc_id, doc = hit
            doc.update({"checksum_sha256": sha, "byte_size": size, "storage_backend": "local",
                        "storage_ref": f"blob:sha256:{sha}", "deleted_at": None})
            for k in ("session_id", "run_id", "content_type"):
                if opts.get(k) is not None or k not in doc:
                    doc[k] = opts.get(k, doc.get(k))
            if isinstance(opts.get("metadata"), Mapping):
                doc["metadata"] = dict(opts["metadata"])
            rows[doc_id] = doc

    def close(self) -> None:
        """Nothing to release (present for symmetry with other stores)."""


class InMemoryArtifactStore:
    """Bytes by key in a dict (ArtifactStore port); thread-safe."""

    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}
        self._meta: dict[str, dict] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"InMemoryArtifactStore({len(self._data)} artifacts)"

    def put(self, key: str, data: Any, **opts: Any) -> None:
        """Store ``data`` under ``key`` (overwrites silently)."""
        _check_key(key)
        payload = to_bytes(data)
        with self._lock:
            self._data[key] = payload
            self._meta[key] = {k: opts[k] for k in ("session_id", "run_id", "content_type", "metadata")
                               if k in opts}

    def get(self, key: str, **opts: Any) -> bytes:
        """The bytes under ``key``; missing → ``not_found``."""
        _check_key(key)
        try:
            return self._data[key]
        except KeyError:
            raise AsmError("not_found", f"Artifact not found: {key}") from None

    def delete(self, key: str, **opts: Any) -> None:
        """Remove ``key`` (idempotent)."""
        _check_key(key)
        with self._lock:
            self._data.pop(key, None)
            self._meta.pop(key, None)

    def keys(self) -> list[str]:
        """Stored keys, sorted."""
        return sorted(self._data)

    def close(self) -> None:
        """Nothing to release."""


_FOR_STORE: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()
_FOR_STORE_LOCK = threading.Lock()


def artifact_store_for(session_store: Any) -> Any:
    """The artifact store that belongs with ``session_store``, or None when it has none.

    - an object that is also an artifact store (``put``/``get``/``delete``; e.g.
      ``CompositeSessionStore``) → itself; one with an ``.artifacts`` store → that;
    - ``LocalStore`` → ``FileArtifactStore(root / "blobs", layout="content")`` with records in its
      ``db/artifacts.json``;
    - ``InMemoryStore`` → one ``InMemoryArtifactStore`` per store object;
    - ``SqlStore`` → ``SqlArtifactStore`` (bytes in ``asm_artifact_blobs``, records in
      ``asm_artifacts``);
    - anything else → None.
    """
    if all(callable(getattr(session_store, m, None)) for m in ("put", "get", "delete")):
        return session_store
    arts = getattr(session_store, "artifacts", None)
    if arts is not None and all(callable(getattr(arts, m, None)) for m in ("put", "get", "delete")):
        return arts
    with _FOR_STORE_LOCK:
        try:
            cached = _FOR_STORE.get(session_store)
        except TypeError:  # not weak-referenceable
            cached = None
        if cached is not None:
            return cached
        made = _make_for(session_store)
        if made is not None:
            with contextlib.suppress(TypeError):
                _FOR_STORE[session_store] = made
        return made


def _make_for(session_store: Any) -> Any:
    from .local import LocalStore
    from .memory import InMemoryStore

    if isinstance(session_store, LocalStore):
        return FileArtifactStore(session_store.root / "blobs", layout="content", records_root=session_store.root)
    if isinstance(session_store, InMemoryStore):
        return InMemoryArtifactStore()
    if type(session_store).__name__ == "SqlStore" and type(session_store).__module__ == "asm_nb.stores.sql":
        from .sql_artifacts import SqlArtifactStore  # bytes and records in the same database

        return SqlArtifactStore(session_store)
    return None


def blob_store_for(session_store: Any) -> Any:
    """Content-addressed blob storage next to a session store: LocalStore → ``BlobStore(root /
    "blobs")`` (the same blobs artifacts use); anything else → None (the caller keeps blobs in
    memory)."""
    from .local import LocalStore

    inner = getattr(session_store, "sessions", session_store)  # a CompositeSessionStore's session store
    if isinstance(inner, LocalStore):
        return BlobStore(inner.root / "blobs")
    return None
