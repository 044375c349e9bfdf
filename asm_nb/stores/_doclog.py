"""Append-only document tables of LocalStore (``db/sessions.jsonl``, ``db/runs.jsonl``).

One JSON document per line, ``\\n``-terminated; the last line of an id wins; a line
``{"id": ..., "_deleted": true}`` removes the id. Writers hold ``db.lock`` (``TinyTables``'
cross-process lock), catch up with the file, cut a torn tail left by a killed writer, and append
their lines with one ``os.write`` on an ``O_APPEND`` descriptor. Readers take no lock: they parse
only the bytes appended since their last read (up to the last ``\\n``), so the cost of a read or a
write does not depend on how many documents the table holds.

In memory a table keeps, per live id, where its current line is (offset, length) and a few fields
(``meta``: a run's session, status, start and owner; a session's name) for the indexes LocalStore
needs; parsed objects sit in a small LRU cache; a document is re-read with ``os.pread`` when asked.
When superseded lines outnumber live ones (plus a margin) a writer compacts the file (temp file +
``os.replace``); other processes notice the new inode and re-index.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterable

from . import _docindex
from ._atomic import write_atomic
from ._codec import dumps, loads
from ._runsummary import RunSummaryFile
from ._tolerant import parse_row

__all__ = ["DocLog"]

log = logging.getLogger(__name__)

_CACHE_OBJECTS = 4096
_COMPACT_MARGIN = 2048


class _Line:
    """A cache entry holding the line this process just wrote for a document, parsed when first
    read: a save followed by a get costs no ``pread``, and returns exactly what a reader of the
    file gets."""

    __slots__ = ("raw",)

    def __init__(self, raw: bytes) -> None:
        self.raw = raw


class DocLog:
    """One table. ``parse(doc) -> object``; ``meta(doc) -> tuple`` whose first item groups ids
    (``groups[meta[0]]``: a run's session id, a session's name)."""

    def __init__(self, path: Path, parse: Callable[[dict], Any], meta: Callable[[dict], tuple], *,
                 fsync: bool = False, warn: Callable[[str], None] | None = None,
                 summary: Callable[[Any], dict] | None = None) -> None:
        self.path = Path(path)
        # ``summary(obj) -> row``: keep ``<stem>.summary.jsonl`` beside the table (``_runsummary.py``)
        self.summary = RunSummaryFile(self.path, parse, summary, fsync=fsync) if summary is not None else None
        self.parse = parse
        self.meta = meta
        self.fsync = fsync
        self.warn = warn or (lambda m: (log.warning(m), warnings.warn(m, stacklevel=3)))
        self.what = path.stem.rstrip("s") or "record"  # "run" for runs.jsonl, in skip warnings
        self.lock = threading.RLock()  # in-process readers and writers of this table
        self.cp_loaded = self.cp_written = 0  # index checkpoints installed / written (``_docindex``)
        self._reset()

    def _reset(self) -> None:
        self.ino: int | None = None
        self.offset = 0
        self.lines = 0
        self.cp_lines = 0  # ``lines`` at the last index checkpoint loaded or written
        self.index: dict[str, tuple[int, int, tuple]] = {}
        self.groups: dict[Any, set[str]] = {}
        self.cache: OrderedDict[str, Any] = OrderedDict()
        self.generation = 0
        self._close_fd()
        self._fd: int | None = None
        self._wfd: int | None = None
        self._warned = False

    def _close_fd(self) -> None:
        """Close the read descriptor (``pread``) and the append descriptor."""
        for name in ("_fd", "_wfd"):
            fd = getattr(self, name, None)
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
            setattr(self, name, None)

    # -- reading --------------------------------------------------------------------------------
    def sync(self, owner: bool = False) -> None:
        """Index the lines appended since the last read; with ``db.lock`` held (``owner``) also cut
        a torn tail. A replaced file (compaction elsewhere) is re-indexed from the start."""
        with self.lock:
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                if self.ino is not None:
                    self._reset()
                    self.generation += 1
                return
            if st.st_ino != self.ino or st.st_size < self.offset:
                gen = self.generation
                self._reset()
                self.generation = gen + 1
                self.ino = st.st_ino
            if self.offset == 0 and not self.index and st.st_size:
                _docindex.load(self, st)  # a checkpoint: parse only the lines after it
            if st.st_size == self.offset:
                return
            with open(self.path, "rb") as f:
                if os.fstat(f.fileno()).st_ino != self.ino:  # replaced between stat and open
                    self._reset()
                    self.ino = os.fstat(f.fileno()).st_ino
                f.seek(self.offset)
                data = f.read()
            end = data.rfind(b"\n") + 1
            if end < len(data) and owner:
                os.truncate(self.path, self.offset + end)
                self.warn(f"LocalStore: dropped a torn last line ({len(data) - end} bytes) from {self.path} "
                          "(a writer was killed mid-write)")
            if end:
                self._apply(data[:end], self.offset)
                self.offset += end
                self.generation += 1

    def _apply(self, chunk: bytes, base: int, docs: list[dict] | None = None) -> None:
        """Index the lines of ``chunk`` (at file offset ``base``). ``docs``: the documents those
        lines encode, one per line (a writer's own append: nothing is parsed again)."""
        pos = 0
        n = len(chunk)
        k = 0
        while pos < n:
            nl = chunk.index(b"\n", pos)
            off = base + pos
            length = nl - pos
            pos = nl + 1
            try:
                if docs is not None:  # our own lines: one per document, none blank
                    self.lines += 1
                    k += 1
                    self._index(docs[k - 1], off, length)
                    continue
                line = chunk[off - base:nl]
                if not line.strip():
                    continue
                self.lines += 1
                doc = loads(line)
                if not isinstance(doc, dict):
                    raise ValueError("not a JSON object")
                self._index(doc, off, length)
            except Exception as exc:  # a bad line never makes the table unreadable
                if not self._warned:
                    self._warned = True
                    self.warn(f"LocalStore: skipped an unreadable line in {self.path}: {exc!r}")
                continue

    def _index(self, doc: dict, off: int, length: int) -> None:
        doc_id = doc["id"]
        if not isinstance(doc_id, str):
            raise ValueError("id is not a string")
        m = None if doc.get("_deleted") else self.meta(doc)
        index, groups = self.index, self.groups
        old = index.pop(doc_id, None)
        if old is not None:
            ids = groups.get(old[2][0])
            if ids is not None:
                ids.discard(doc_id)
                if not ids:
                    del groups[old[2][0]]
        self.cache.pop(doc_id, None)
        if m is not None:
            index[doc_id] = (off, length, m)
            groups.setdefault(m[0], set()).add(doc_id)

    def _read_at(self, off: int, length: int) -> bytes:
        if self._fd is None:
            fd = os.open(self.path, os.O_RDONLY)
            if os.fstat(fd).st_ino != self.ino:
                os.close(fd)
                raise FileNotFoundError(self.path)
            self._fd = fd
        return os.pread(self._fd, length, off)

    def get(self, doc_id: str) -> Any | None:
        """The parsed current document (caller synced first), or None."""
        with self.lock:
            obj = self.cache.get(doc_id)
            if obj is not None:
                self.cache.move_to_end(doc_id)
                if type(obj) is _Line:
                    obj = self.cache[doc_id] = parse_row(loads(obj.raw), self.parse, what=self.what, where=self.path)
                    if obj is None:
                        del self.cache[doc_id]
                return obj
            entry = self.index.get(doc_id)
            if entry is None:
                return None
            try:
                raw = self._read_at(entry[0], entry[1])
            except FileNotFoundError:  # compacted meanwhile: re-index and retry once
                self._close_fd()
                self.sync()
                entry = self.index.get(doc_id)
                if entry is None:
                    return None
                raw = self._read_at(entry[0], entry[1])
            obj = parse_row(loads(raw), self.parse, what=self.what, where=self.path)
            if obj is None:  # a bad record: skipped with a warning naming the file and row
                return None
            self.cache[doc_id] = obj
            if len(self.cache) > _CACHE_OBJECTS:
                self.cache.popitem(last=False)
            return obj

    def get_many(self, ids: Iterable[str]) -> list[Any]:
        return [o for o in (self.get(i) for i in ids) if o is not None]

    def all(self) -> list[Any]:
        """Every live document, parsed from one read of the file (not cached)."""
        with self.lock:
            if not self.index:
                return []
            try:
                with open(self.path, "rb") as f:
                    if os.fstat(f.fileno()).st_ino != self.ino:
                        raise FileNotFoundError(self.path)
                    data = f.read(self.offset)
            except FileNotFoundError:
                self.sync()
                return [o for o in (self.get(i) for i in list(self.index)) if o is not None]
            parse, cache = self.parse, self.cache
            out = []
            for doc_id, (off, length, _m) in self.index.items():
                obj = cache.get(doc_id)
                if type(obj) is _Line:
                    obj = parse_row(loads(obj.raw), parse, what=self.what, where=self.path)
                    if obj is None:
                        continue
                elif obj is None:
                    obj = parse_row(loads(data[off:off + length]), parse, what=self.what, where=self.path)
                    if obj is None:  # a bad record: skipped with a warning naming the file and row
                        continue
                out.append(obj)
            return out

    # -- writing (caller holds db.lock and called sync(owner=True)) -------------------------------
    def append(self, docs: list[dict], objs: list[Any] | None = None) -> None:
        """Append documents (``{"id": ..., "_deleted": True}`` removes one). Their lines stay in
        the cache (parsed when first read). The append descriptor stays open between writes (one
        per table, not per write); ``sync`` closes it when another process replaced the file.
        ``objs``: the parsed objects of ``docs`` (None for a deletion), for the summary file."""
        if not docs:
            return
        lines = [dumps(d) + b"\n" for d in docs]
        data = b"".join(lines)
        with self.lock:
            start = self.offset
            fd = self._wfd
            if fd is None:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                ino = os.fstat(fd).st_ino
                if self.ino is None:
                    self.ino = ino
                elif ino != self.ino:  # pragma: no cover - replaced without db.lock: never by asm_nb
                    os.close(fd)
                    raise OSError(f"{self.path} was replaced while db.lock was held")
                self._wfd = fd
            view = memoryview(data)
            try:
                while view:
                    view = view[os.write(fd, view):]
                if self.fsync:
                    os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, start)
                self._close_fd()
                raise
            self._apply(data, start, docs)
            self.offset = start + len(data)
            self.generation += 1
            if self.summary is not None and self.ino is not None:
                self.summary.append(self.ino, start, docs, objs, [len(line) - 1 for line in lines])
            cache = self.cache
            for d, line in zip(docs, lines):
                if not d.get("_deleted") and d["id"] in self.index:
                    cache[d["id"]] = _Line(line)
            while len(cache) > _CACHE_OBJECTS:
                cache.popitem(last=False)
            if self.lines - len(self.index) > len(self.index) + _COMPACT_MARGIN:
                self.compact()
            elif _docindex.due(self):
                _docindex.write(self)

    def compact(self) -> None:
        """Rewrite the file with only the live lines (temp file + ``os.replace``)."""
        with self.lock:
            with open(self.path, "rb") as f:
                data = f.read(self.offset)
            body = b"".join(data[off:off + length] + b"\n"
                            for off, length, _m in sorted(self.index.values(), key=lambda e: e[0]))
            write_atomic(self.path, body, fsync=self.fsync)
            cache = self.cache
            gen = self.generation
            self._reset()
            self.generation = gen
            self.sync()
            for k, v in cache.items():
                if k in self.index:
                    self.cache[k] = v
            if self.summary is not None and self.ino is not None:
                self.summary.after_compaction(self.ino, self.offset)
            _docindex.write(self)

    def close(self) -> None:
        with self.lock:
            self._close_fd()
            if self.summary is not None:
                self.summary.close()

    def after_fork(self) -> None:
        self.lock = threading.RLock()
