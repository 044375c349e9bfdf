"""``db/runs.summary.jsonl``: one flat row per line of ``db/runs.jsonl`` (docs/store-format.md, run
summaries), so the runs and costs frames read a compact file instead of parsing every run document.

The first line is a header ``{"asm": "run-summary", "version": 1, "runs_ino": N}`` naming the
inode of the ``runs.jsonl`` it describes. Every other line is
``{"o": offset, "n": length, "id": ..., <core.run_summary columns>}`` for the run document line at
``offset`` (``length`` bytes, without its ``\\n``) in ``runs.jsonl``, or ``{"o", "n", "id",
"deleted": true}`` for a deletion line. Summary lines follow the document lines' order, so the last
summary line says how much of ``runs.jsonl`` is covered (``o + n + 1``); the last line of an id wins.

- **Writers** (under ``db.lock``, right after appending document lines) first cover what the
  summary misses (lines written by a process that died between its two writes, or by an asm_nb
  that kept no summary: parsed once, here), then append one summary line per document line. A
  missing summary, one naming another inode (``runs.jsonl`` was compacted by an asm_nb without
  summaries) or one covering more than the file holds is rebuilt (temp file + ``os.replace``).
  A failed summary write never fails the save: the next writer or reader covers the gap.
- **Readers** take no lock: they read the summary, then stat ``runs.jsonl``; a summary that does
  not describe that file is refused (the caller rebuilds it under ``db.lock`` or parses the
  documents); document lines past the covered part are parsed and summarized in memory.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any, Callable

from ._atomic import write_atomic
from ._codec import dumps, loads
from ._tolerant import parse_row

log = logging.getLogger("asm_nb.stores.local")

__all__ = ["RunSummaryFile", "SUMMARY_VERSION"]

SUMMARY_VERSION = 1


class RunSummaryFile:
    """The summary beside one ``DocLog`` (``runs.jsonl``). ``row(obj) -> dict`` summarizes a parsed
    document; ``parse(doc) -> obj`` is the table's parser."""

    def __init__(self, runs_path: Path, parse: Callable[[dict], Any], row: Callable[[Any], dict], *,
                 fsync: bool = False) -> None:
        self.runs_path = Path(runs_path)
        self.path = self.runs_path.with_name(self.runs_path.stem + ".summary.jsonl")
        self.parse = parse
        self.row = row
        self.fsync = fsync
        self.sig: tuple[int, int] | None = None  # (inode, size) of the summary as this process left it
        self.end = 0  # bytes of runs.jsonl the summary covers (valid while ``sig`` matches)
        self._fd: int | None = None
        self.rows_made = 0  # document lines summarized by parsing them (tests count this)

    # -- rows -----------------------------------------------------------------------------------
    def _lines_of(self, data: bytes, base: int) -> list[bytes]:
        """Summary lines for the complete document lines of ``data`` (read at offset ``base``)."""
        out = []
        pos = 0
        end = data.rfind(b"\n") + 1
        while pos < end:
            nl = data.index(b"\n", pos)
            line = data[pos:nl]
            off, pos = base + pos, nl + 1
            if not line.strip():
                continue
            try:
                doc = loads(line)
                if not isinstance(doc, dict) or not isinstance(doc.get("id"), str):
                    continue
            except ValueError:
                continue  # the table warns about unreadable lines; the summary just skips them
            out.append(self.encode(doc, None, off, len(line)))
        return out

    def encode(self, doc: dict, obj: Any, off: int, length: int) -> bytes:
        """One summary line for the document ``doc`` (``obj``: it parsed, when the caller has it)."""
        if doc.get("_deleted"):
            return dumps({"o": off, "n": length, "id": doc["id"], "deleted": True}) + b"\n"
        if obj is None:
            self.rows_made += 1
            obj = parse_row(doc, self.parse, what="run", where=self.runs_path)
            if obj is None:  # not a valid run: no row (the table skips it too)
                return dumps({"o": off, "n": length, "id": doc["id"], "deleted": True}) + b"\n"
        line = {"o": off, "n": length}
        for k, v in self.row(obj).items():
            if v is not None:  # absent = null: shorter lines
                line[k] = v
        return dumps(line) + b"\n"

    # -- writer side (db.lock held; runs.jsonl synced) --------------------------------------------
    def _header(self, ino: int) -> bytes:
        return dumps({"asm": "run-summary", "version": SUMMARY_VERSION, "runs_ino": ino}) + b"\n"

    def _close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = None

    def rebuild(self, runs_ino: int, upto: int) -> None:
        """Write the summary of ``runs.jsonl[:upto]`` afresh (temp file + ``os.replace``)."""
        with open(self.runs_path, "rb") as f:
            data = f.read(upto)
        body = self._header(runs_ino) + b"".join(self._lines_of(data, 0))
        write_atomic(self.path, body, fsync=self.fsync)
        self._close()
        self.sig = (os.stat(self.path).st_ino, len(body))
        self.end = upto

    def _examine(self, runs_ino: int) -> bool:
        """Read the header and the last line of the summary on disk (cutting a torn tail); False
        when it must be rebuilt."""
        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            st = os.fstat(fd)
            size = st.st_size
            head = os.pread(fd, 4096, 0)
            nl = head.find(b"\n")
            if nl < 0:
                return False
            header = loads(head[:nl])
            if not isinstance(header, dict) or header.get("runs_ino") != runs_ino \
                    or header.get("version") != SUMMARY_VERSION:
                return False
            chunk = min(size, 1 << 20)
            tail = os.pread(fd, chunk, size - chunk)
            good = tail.rfind(b"\n") + 1
            if good == 0:  # pragma: no cover - a summary line above 1 MiB: rebuild
                return False
            if good < len(tail):  # a writer died mid-line: cut it (db.lock is held)
                os.ftruncate(fd, size - chunk + good)
                size = size - chunk + good
            start = tail.rfind(b"\n", 0, good - 1) + 1
            if size - chunk + start <= nl:  # header only
                self.end = 0
            else:
                last = loads(tail[start:good - 1])
                self.end = int(last["o"]) + int(last["n"]) + 1
            self.sig = (st.st_ino, size)
            return True
        except (ValueError, KeyError, TypeError):
            return False
        finally:
            os.close(fd)

    def append(self, runs_ino: int, start: int, docs: list[dict], objs: list[Any] | None,
               lengths: list[int]) -> None:
        """After document lines were appended at ``start`` (``lengths`` without ``\\n``): cover what
        the summary missed, then add one line per document. Never raises."""
        try:
            self._append(runs_ino, start, docs, objs, lengths)
        except Exception as exc:  # the summary is a cache of runs.jsonl: the next writer repairs it
            self.sig = None
            self._close()
            log.warning("LocalStore: could not update %s (%r); it is repaired on the next write", self.path, exc)

    def _append(self, runs_ino: int, start: int, docs: list[dict], objs: list[Any] | None,
                lengths: list[int]) -> None:
        try:
            st = os.stat(self.path)
            sig: tuple[int, int] | None = (st.st_ino, st.st_size)
        except FileNotFoundError:
            sig = None
        if sig is None or sig != self.sig:
            if not self._examine(runs_ino):
                self.rebuild(runs_ino, start)
        if self.end > start:
            self.rebuild(runs_ino, start)
        missing = b""
        if self.end < start:
            with open(self.runs_path, "rb") as f:
                f.seek(self.end)
                missing = b"".join(self._lines_of(f.read(start - self.end), self.end))
        parts = [missing]
        off = start
        for i, (doc, length) in enumerate(zip(docs, lengths)):
            parts.append(self.encode(doc, objs[i] if objs is not None else None, off, length))
            off += length + 1
        data = b"".join(parts)
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        if self.fsync:
            os.fsync(self._fd)
        assert self.sig is not None
        self.sig = (self.sig[0], self.sig[1] + len(data))
        self.end = off

    def after_compaction(self, runs_ino: int, size: int) -> None:
        """``runs.jsonl`` was rewritten (new inode): summarize it afresh. Never raises."""
        try:
            self.rebuild(runs_ino, size)
        except Exception as exc:
            self.sig = None
            self._close()
            log.warning("LocalStore: could not rebuild %s (%r)", self.path, exc)

    def close(self) -> None:
        self._close()

    # -- reader side (no lock) ----------------------------------------------------------------------
    def read(self) -> tuple[bytes, list[bytes]] | None:
        """``(summary lines, summary lines of the uncovered document lines)`` describing the current
        ``runs.jsonl``, or None when the summary is missing or describes another file."""
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            data = None
        try:
            st = os.stat(self.runs_path)
        except FileNotFoundError:  # no run was ever written
            return (b"", []) if data is None else None
        if data is None:
            return None
        nl = data.find(b"\n")
        if nl < 0:
            return None
        try:
            header = loads(data[:nl])
        except ValueError:
            return None
        if not isinstance(header, dict) or header.get("runs_ino") != st.st_ino \
                or header.get("version") != SUMMARY_VERSION:
            return None
        good = data.rfind(b"\n") + 1
        body = data[nl + 1:good]
        covered = 0
        if body:
            start = data.rfind(b"\n", 0, good - 1) + 1
            try:
                last = loads(data[start:good - 1])
                o, n = int(last["o"]), int(last["n"])
            except (ValueError, KeyError, TypeError):
                return None
            covered = o + n + 1
            if covered > st.st_size:
                return None
            with open(self.runs_path, "rb") as f:  # the line it names is that document's line
                f.seek(o)
                line = f.read(n + 1)
            try:
                doc = loads(line[:n]) if line.endswith(b"\n") else None
            except ValueError:
                doc = None
            if not isinstance(doc, dict) or doc.get("id") != last.get("id"):
                return None
        tail: list[bytes] = []
        if covered < st.st_size:
            with open(self.runs_path, "rb") as f:
                f.seek(covered)
                tail = self._lines_of(f.read(st.st_size - covered), covered)
        return body, tail
