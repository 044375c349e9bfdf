"""TinyDB tables of LocalStore (sessions, runs, artifact records), one table per file.

- ``AtomicJSONStorage``: a TinyDB ``Storage`` that writes the whole file to a temp file and
  ``os.replace``s it (never a half-written JSON after a crash) and caches the parsed data until
  the file's ``(inode, mtime_ns, ctime_ns, size)`` changes, so two kernels sharing a store see
  each other's writes.
- ``StrIdTable``: TinyDB table keyed by our string ids (``ses_…``, ``run_…``).
- ``TinyTables``: the three files plus ``db.lock``; every read-modify-write happens under the
  cross-process lock and re-reads the file first.

See docs/store-format.md. TinyDB rewrites the whole file per write: fine for sessions and runs, which
is why events live in append-only logs instead.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

from tinydb import TinyDB
from tinydb.storages import Storage
from tinydb.table import Table

from ..core.errors import AsmError
from ._atomic import write_atomic
from ._codec import dumps, loads
from ._locks import FileLock

__all__ = ["AtomicJSONStorage", "StrIdTable", "TableFile", "TinyTables"]


class StrIdTable(Table):
    """A TinyDB table whose document ids are our string ids (no auto-increment)."""

    document_id_class = str  # type: ignore[assignment]

    def _get_next_id(self):  # pragma: no cover - we always give ids
        raise AsmError("internal_error", "LocalStore documents need an explicit string id")


class AtomicJSONStorage(Storage):
    """Whole-file JSON storage: cached reads, temp file + ``os.replace`` writes."""

    def __init__(self, path: str | os.PathLike, fsync: bool = False) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._sig: tuple | None = None
        self._raw: bytes | None = None
        self._data: dict | None = None
        self.generation = 0  # bumps whenever the cached data changes

    def _stat_sig(self) -> tuple | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)

    def invalidate(self) -> None:
        """Distrust the stat signature: the next read re-reads the bytes (and re-parses them only
        if they differ). Used under ``db.lock``, where the file is known to be current."""
        self._sig = ("invalid",)

    def read(self) -> dict | None:
        sig = self._stat_sig()
        if sig != self._sig or self._data is None:
            raw = b"" if sig is None else self.path.read_bytes()
            if raw != self._raw or self._data is None:
                try:
                    data = loads(raw) if raw.strip() else {}
                except ValueError as exc:
                    raise AsmError("storage_error", f"cannot parse {self.path}: {exc}") from None
                if not isinstance(data, dict):
                    raise AsmError("storage_error", f"{self.path} does not hold a TinyDB document")
                self._data, self._raw = data, raw
                self.generation += 1
            self._sig = sig
        return dict(self._data)  # shallow copy: callers may rebind tables without touching the cache

    def write(self, data: dict) -> None:
        payload = dumps(data)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, payload, fsync=self.fsync)
        self._data, self._raw, self._sig = dict(data), payload, self._stat_sig()
        self.generation += 1

    def close(self) -> None:
        pass


class TableFile:
    """One TinyDB file holding one table; rows parsed into objects and cached per generation."""

    def __init__(self, path: Path, name: str, parse: Callable[[dict], Any], fsync: bool = False) -> None:
        self.name = name
        self.parse = parse
        self.db = TinyDB(path, storage=AtomicJSONStorage, fsync=fsync)
        self.db.table_class = StrIdTable
        self.table = self.db.table(name, cache_size=0)  # no query cache: other processes write too
        self.storage: AtomicJSONStorage = self.db.storage  # type: ignore[assignment]
        self._objs: dict[str, Any] = {}
        self._gen = -1

    def objects(self) -> dict[str, Any]:
        """``id → parsed object`` for every row (re-parsed only after the file changed)."""
        self.storage.read()
        if self.storage.generation != self._gen:
            self._objs = {str(doc.doc_id): self.parse(doc) for doc in self.table.all()}
            self._gen = self.storage.generation
        return self._objs

    def get(self, doc_id: str) -> Any | None:
        return self.objects().get(doc_id)

    def get_fresh(self, doc_id: str) -> Any | None:
        """One row parsed from the current file data (no whole-table parse); for transactions."""
        doc = (self.storage.read() or {}).get(self.name, {}).get(doc_id)
        return None if doc is None else self.parse(doc)

    def update(self, fn: Callable[[dict], bool]) -> None:
        """Apply ``fn`` to a fresh copy of the raw table ``{id: doc}``; write back if it returns True.
        Call inside ``TinyTables.transaction()``."""
        data = self.storage.read() or {}
        table = dict(data.get(self.name, {}))
        if fn(table):
            data[self.name] = table
            self.storage.write(data)


class TinyTables:
    """``db/sessions.json``, ``db/runs.json``, ``db/artifacts.json`` and their shared ``db.lock``."""

    def __init__(self, root: Path, parsers: dict[str, Callable[[dict], Any]], fsync: bool = False) -> None:
        self.lock = threading.RLock()
        self.file_lock = FileLock(root / "db.lock")
        self.tables = {name: TableFile(root / "db" / f"{name}.json", name, parse, fsync)
                       for name, parse in parsers.items()}

    def __getitem__(self, name: str) -> TableFile:
        return self.tables[name]

    @contextlib.contextmanager
    def transaction(self) -> Iterator["TinyTables"]:
        """Cross-process read-modify-write: thread lock, then ``db.lock``; caches re-read inside."""
        with self.lock:
            self.file_lock.acquire()
            try:
                for t in self.tables.values():
                    t.storage.invalidate()
                yield self
            finally:
                self.file_lock.release()

    def after_fork(self) -> None:
        self.lock = threading.RLock()
        self.file_lock.forget()

    def close(self) -> None:
        with self.lock:
            self.file_lock.close()
