"""``LocalStore``: the embedded default SessionStore, a folder (docs/store-format.md).

Layout under the root (``./.asm``, ``$ASM_HOME`` or the path given; docs/store-format.md)::

    store.json                      {"format": "asm-local", "version": 2}
    db/sessions.jsonl runs.jsonl    append-only document tables, the last line of an id wins
                                    (see ``_doclog.py``)
    db/artifacts.json               TinyDB (small documents; see ``_tinydb.py``)
    db.lock                         cross-process lock for every db write
    events/<session>.jsonl          append-only event log, one ``Event.to_dict()`` per line
    events/<session>.lock           per-session cross-process append lock
    events/<session>.meta.json      {"last_sequence": N}, written only by pruning

Appends are buffered per session ("write-behind"): the first append after an idle period takes
the session's OS lock and re-reads whatever other processes appended, so sequence numbers stay
gap-free across processes; lines collect in memory and go to the file in one ``os.write`` after
``local_flush_interval_ms`` (50 ms), at 4 MiB, on ``flush()``/``close()`` or at interpreter
exit, and then the lock is released. In-process readers see buffered events at once. A
``kill -9`` loses only the unflushed buffer; the torn last line it may leave is cut off, with a
warning, by the next writer.

A version-1 store (TinyDB ``db/sessions.json`` and ``db/runs.json``) is upgraded in place the first
time this version opens it. Runs written ``pending``/``running`` carry their owner process
(``metadata.owner``); opening or listing the store marks those whose owner is gone ``failed``
with ``error.code == "interrupted"`` (a ``run_failed`` event is appended; earlier events stay).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
import warnings
import weakref
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import unquote

from .. import config
from ..core.errors import AsmError
from ..core.events import Event, EventType
from ..core.run import Run
from ..core.session import Session
from . import _codec
from ._base import (EventQuery, StoreBase, check_event, check_events, check_run, check_session, check_session_id, filter_runs,
                    filter_sessions, merge_session, parse_payload, pick_active_run, set_sequence_in_place,
                    start_flusher, track_open_stores, with_sequence)
from ._base import interrupted_runs, stamp_owner
from ._doclog import DocLog
from ._locks import FileLock
from ._tinydb import TinyTables

__all__ = ["LocalStore", "LocalStoreWarning", "STORE_FORMAT", "STORE_VERSION"]

log = logging.getLogger(__name__)

STORE_FORMAT = "asm-local"
STORE_VERSION = 2
MAX_CACHE_BYTES = 64 * 1024 * 1024  # parsed event logs kept per store (least recently used first out)
_MEM_PER_LINE_BYTE = 4  # a parsed Event takes ~4x the bytes of its JSON line
MAX_BUFFER_BYTES = 4 * 1024 * 1024
_MAX_LOGS = 1024  # parsed session logs kept per store
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


class LocalStoreWarning(UserWarning):
    """A LocalStore file needed repair or held an unreadable line (never fatal)."""


def encode_session_id(session_id: str) -> str:
    """File-name form of a session id: ``[A-Za-z0-9._-]`` kept, every other byte ``%XX``."""
    if all(c in _SAFE for c in session_id):
        return session_id
    return "".join(c if c in _SAFE else "".join(f"%{b:02X}" for b in c.encode("utf-8")) for c in session_id)


def decode_session_id(name: str) -> str:
    return unquote(name, encoding="utf-8", errors="strict") if "%" in name else name


def _warn(message: str) -> None:
    log.warning(message)
    warnings.warn(message, LocalStoreWarning, stacklevel=3)


# --------------------------------------------------------------------------------------------
# one session's log


class _SessionLog:
    """In-process state of one session's event log. Every method runs under ``self.lock``."""

    __slots__ = ("sid", "path", "meta_path", "flock", "lock", "owned", "owned_since", "ino", "offset",
                 "events", "ids", "last_seq", "meta_seq", "n_flushed", "buf", "buf_bytes", "warned", "store_ref",
                 "fsync", "complete", "base_seq", "cached_bytes", "counter", "trim_ts")

    def __init__(self, store: "LocalStore", sid: str) -> None:
        name = encode_session_id(sid)
        self.store_ref = weakref.ref(store)  # weak: no store <-> log cycle keeping caches alive
        self.fsync = store.durability == "fsync"
        self.sid = sid
        self.path = store._events_dir / f"{name}.jsonl"
        self.meta_path = store._events_dir / f"{name}.meta.json"
        self.flock = FileLock(store._events_dir / f"{name}.lock")
        self.lock = threading.Lock()
        self.owned = False
        self.owned_since = 0.0
        self.counter = store._cache_counter  # the store's running total of cached bytes
        self.cached_bytes = 0
        self._reset()
        self.warned = False

    def forget_bytes(self) -> None:
        """Take this log's parsed bytes out of the store's running total (it is being let go)."""
        self.counter[0] -= self.cached_bytes
        self.cached_bytes = 0

    def _reset(self) -> None:
        self.ino: int | None = None
        self.offset = 0
        self.events: list[Event] = []
        self.ids: dict[str, Event] = {}
        self.last_seq: int = 0
        self.meta_seq: int = 0
        self.n_flushed = 0
        self.buf: list[bytes] = []
        self.buf_bytes = 0
        # ``events`` holds every event of the log (``complete``) or, after ``trim``, only those
        # numbered above ``base_seq`` (the rest is read from the file when a query needs it)
        self.complete = True
        self.base_seq = 0
        self.trim_ts = None  # newest timestamp among the trimmed events (see ``may_hold``)
        self.forget_bytes()

    def may_hold(self, e: Event) -> bool:
        """Whether the trimmed part of the log may hold ``e``'s id: a stored copy of an event
        carries its timestamp, so an event newer than every trimmed one (any event made now) is
        not there and no file scan is needed to prove it."""
        return self.trim_ts is None or e.timestamp <= self.trim_ts

    def trim(self) -> None:
        """Forget the parsed events (all written: caller checked ``buf`` is empty); numbering and
        the file position stay, so appends go on without re-reading the log."""
        if self.events:
            newest = max(e.timestamp for e in self.events)
            self.trim_ts = newest if self.trim_ts is None or newest > self.trim_ts else self.trim_ts
        self.events = []
        self.ids = {}
        self.n_flushed = 0
        self.base_seq = self.last_seq
        self.complete = False
        self.forget_bytes()

    def ensure_complete(self, owner: bool) -> None:
        """Parse the whole log again after a ``trim`` (maintenance needs every event)."""
        if not self.complete and not self.buf:
            self._reset()
            self.sync(owner)

    def read_all(self) -> list[Event]:
        """Every event in the file, parsed now and not kept (queries reaching before ``base_seq``)."""
        tmp = _SessionLog.__new__(_SessionLog)
        tmp.path, tmp.meta_path, tmp.warned = self.path, self.meta_path, True
        tmp.counter, tmp.cached_bytes = [0], 0  # not cached: outside the store's total
        tmp._reset()
        try:
            with open(self.path, "rb") as f:
                data = f.read(self.offset)
        except FileNotFoundError:
            data = b""
        end = data.rfind(b"\n") + 1
        if end:
            tmp._parse(data[:end])
        out = tmp.events
        if self.events:  # buffered, not yet written
            last = (out[-1].sequence_number or 0) if out else 0
            out.extend(e for e in self.events if (e.sequence_number or 0) > last)
        return out

    def find_stored(self, event_id: str) -> Event | None:
        """The stored event with this id when the cache was trimmed (a scan of the file)."""
        needle = b'{"id":' + _codec.dumps(event_id) + b","
        try:
            with open(self.path, "rb") as f:
                data = f.read(self.offset)
        except FileNotFoundError:
            return None
        i = data.find(needle)
        while i != -1:
            if i == 0 or data[i - 1:i] == b"\n":
                line = data[i:data.index(b"\n", i)]
                try:
                    return Event._from_stored(_codec.loads(line))
                except Exception:
                    return None
            i = data.find(needle, i + 1)
        return None

    # -- reading the file -------------------------------------------------------------------
    def _read_meta(self) -> int:
        try:
            meta = _codec.loads(self.meta_path.read_bytes())
        except FileNotFoundError:
            return 0
        except ValueError:
            _warn(f"LocalStore: unreadable {self.meta_path}; ignoring it")
            return 0
        v = meta.get("last_sequence") if isinstance(meta, dict) else None
        return v if isinstance(v, int) and not isinstance(v, bool) else 0

    def sync(self, owner: bool) -> None:
        """Catch up with the file: parse lines appended since ``offset``. With the OS lock held
        (``owner``), also cut a torn tail left by a killed writer."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if self.ino is not None or self.events:
                self._reset()  # deleted (delete_session in another process)
            if self.ino is None and not self.events:
                self.meta_seq = self._read_meta() if self.meta_path.exists() else 0
            return
        if st.st_ino != self.ino or st.st_size < self.offset:
            self._reset()  # first read, or the log was rewritten (pruning) / replaced
            self.ino = st.st_ino
            self.meta_seq = self._read_meta()
        if st.st_size == self.offset:
            return
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        if end < len(data) and owner:
            torn = len(data) - end
            os.truncate(self.path, self.offset + end)
            _warn(f"LocalStore: dropped a torn last line ({torn} bytes) from {self.path} "
                  "(a writer was killed mid-write; those events were never flushed)")
        if end:
            self._parse(data[:end])
            self.offset += end
            self.n_flushed = len(self.events)

    def _parse(self, chunk: bytes) -> None:
        from_stored = Event._from_stored
        loads = _codec.loads
        events, ids = self.events, self.ids
        last = self.last_seq
        self.cached_bytes += len(chunk)
        self.counter[0] += len(chunk)
        for line in chunk.split(b"\n"):
            if not line:
                continue
            try:
                e = from_stored(loads(line))
                seq = e.sequence_number
                if not isinstance(seq, int) or seq <= last:
                    raise ValueError(f"sequence_number {seq!r} out of order")
            except Exception as exc:  # a bad line never makes the log unreadable
                if not self.warned:
                    self.warned = True
                    _warn(f"LocalStore: skipped an unreadable line in {self.path}: {exc!r}")
                continue
            if e.id in ids:
                continue
            events.append(e)
            ids[e.id] = e
            last = seq
        self.last_seq = last

    # -- ownership and writing ---------------------------------------------------------------
    def ensure_owned(self) -> None:
        """Hold the session's OS lock (taking it, and re-synchronizing, if not held yet)."""
        if self.owned:
            return
        self.flock.acquire()
        try:
            self.sync(owner=True)
        except BaseException:
            self.flock.release()
            raise
        self.owned = True
        self.owned_since = time.monotonic()
        store = self.store_ref()
        if store is not None:
            store._schedule(self)

    def next_seq(self) -> int:
        seq = max(self.last_seq, self.meta_seq) + 1
        self.last_seq = seq
        return seq

    def write_buffer(self) -> None:
        """Write buffered lines with one ``os.write`` (the OS lock must be held)."""
        if not self.buf:
            return
        data = b"".join(self.buf)
        start = self.offset
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                view = memoryview(data)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                if self.fsync:
                    os.fsync(fd)
                self.ino = os.fstat(fd).st_ino
            finally:
                os.close(fd)
        except OSError as exc:
            # keep file and memory consistent: cut what may have been written, forget the buffer
            try:
                if self.path.exists():
                    os.truncate(self.path, start)
            except OSError:
                pass
            lost = len(self.events) - self.n_flushed
            self.rollback(self.n_flushed, start)
            raise AsmError("storage_error", f"Failed to write {lost} buffered event(s) to {self.path}: {exc!r}",
                           context={"session_id": self.sid}) from exc
        self.offset = start + len(data)
        self.n_flushed = len(self.events)
        self.buf.clear()
        self.buf_bytes = 0

    def rollback(self, n_events: int, offset: int) -> None:
        """Forget events after index ``n_events`` (unwritten or truncated) and unflushed lines."""
        for e in self.events[n_events:]:
            self.ids.pop(e.id, None)
        del self.events[n_events:]
        self.last_seq = (self.events[-1].sequence_number or 0) if self.events else self.base_seq
        self.offset = offset
        self.n_flushed = min(self.n_flushed, n_events)
        self.buf.clear()
        self.buf_bytes = 0

    def release(self) -> None:
        """Write the buffer and let other processes append (no-op when not owned)."""
        if not self.owned:
            return
        try:
            self.write_buffer()
        finally:
            self.owned = False
            self.flock.close()  # no descriptor kept per session between bursts


# --------------------------------------------------------------------------------------------
# the store


class LocalStore(StoreBase):
    """The default SessionStore: a folder of TinyDB tables and per-session JSON-lines logs.

    >>> store = LocalStore("/tmp/asm-doc-example")              # doctest: +SKIP
    >>> store.append_event_with_sequence(event).sequence_number  # doctest: +SKIP
    1

    Options: ``durability`` ``"flush"`` (default: OS buffers) or ``"fsync"``;
    ``flush_interval_ms`` (default config ``local_flush_interval_ms``, 50);
    ``max_buffer_bytes`` (4 MiB); ``max_cache_bytes`` (64 MiB of parsed event logs kept in memory).
    """

    inline_safe = True
    _poll_s = 0.025  # long-poll also notices other processes' appends
    lazy_result_events = True  # reads work after close: RunResult.events may load on demand

    def __init__(self, root: str | os.PathLike | None = None, *, durability: str = "flush",
                 flush_interval_ms: int | None = None, max_buffer_bytes: int = MAX_BUFFER_BYTES,
                 max_cache_bytes: int = MAX_CACHE_BYTES) -> None:
        if root is None:
            from . import default_root

            root = default_root()
        if durability not in ("flush", "fsync"):
            raise AsmError("validation_error", f"durability must be 'flush' or 'fsync', got: {durability!r}")
        if flush_interval_ms is None:
            flush_interval_ms = config.get("local_flush_interval_ms")
        if isinstance(flush_interval_ms, bool) or not isinstance(flush_interval_ms, (int, float)) \
                or flush_interval_ms < 0:
            raise AsmError("validation_error", "flush_interval_ms must be a non-negative number")
        if isinstance(max_buffer_bytes, bool) or not isinstance(max_buffer_bytes, int) or max_buffer_bytes <= 0:
            raise AsmError("validation_error", "max_buffer_bytes must be a positive integer")
        self.root = Path(root).expanduser().absolute()
        self.durability = durability
        self.flush_interval_s = flush_interval_ms / 1000.0
        self.max_buffer_bytes = max_buffer_bytes
        self.max_cache_bytes = max_cache_bytes
        self._events_dir = self.root / "events"
        try:
            self._open_layout()
        except OSError as exc:
            raise AsmError("storage_error", f"cannot open LocalStore at {self.root}: {exc}") from exc
        fsync = durability == "fsync"
        self._tables = TinyTables(self.root, {"artifacts": dict}, fsync=fsync)
        self._sessions = DocLog(self.root / "db" / "sessions.jsonl", Session.from_dict, _session_meta, fsync=fsync,
                                warn=_warn)
        self._runs = DocLog(self.root / "db" / "runs.jsonl", Run.from_dict, _run_meta, fsync=fsync, warn=_warn)
        self._init_runtime()
        try:
            if self._legacy:
                self._upgrade_v1()
        except OSError as exc:
            raise AsmError("storage_error", f"cannot upgrade LocalStore at {self.root}: {exc}") from exc
        _OPEN_STORES.add(self)
        self._reap_interrupted(force=True)

    def _init_runtime(self) -> None:
        self._closed = False
        self._logs: "OrderedDict[str, _SessionLog]" = OrderedDict()
        self._cache_counter = [0]  # sum of the logs' cached_bytes (kept by the logs themselves)
        self._reaped_at = 0.0
        self._logs_lock = threading.Lock()
        self._cond = threading.Condition(threading.Lock())
        self._timer_cond = threading.Condition(threading.Lock())
        self._owned: set[_SessionLog] = set()
        self._flusher: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    # -- layout -------------------------------------------------------------------------------
    def _open_layout(self) -> None:
        created = not self.root.exists()
        self.root.mkdir(parents=True, exist_ok=True)
        if created:  # a store made beside a notebook stays out of git (docs/stores.md, LocalStore)
            (self.root / ".gitignore").write_text("# made by asm_nb: a run store, not source\n*\n")
        marker = self.root / "store.json"
        if marker.exists():
            try:
                info = _codec.loads(marker.read_bytes())
            except ValueError as exc:
                raise AsmError("storage_error", f"{marker} is not valid JSON: {exc}") from None
            fmt = info.get("format") if isinstance(info, dict) else None
            version = info.get("version") if isinstance(info, dict) else None
            if fmt != STORE_FORMAT:
                raise AsmError("storage_error", f"{self.root} is not a LocalStore ({marker} says format {fmt!r})")
            if isinstance(version, bool) or not isinstance(version, int) or version < 1:
                raise AsmError("storage_error", f"{marker} has an invalid version: {version!r}")
            self._legacy = version < STORE_VERSION
            if version > STORE_VERSION:
                raise AsmError("migration_required",
                               f"LocalStore at {self.root} has format version {version}; this asm_nb reads "
                               f"version {STORE_VERSION}. Upgrade asm_nb to open it.",
                               details={"found": version, "supported": STORE_VERSION})
        else:
            self._legacy = False
            tmp = marker.with_name(f".store.json.{os.getpid()}.tmp")
            tmp.write_bytes(_codec.dumps({"format": STORE_FORMAT, "version": STORE_VERSION}) + b"\n")
            os.replace(tmp, marker)
        self._events_dir.mkdir(exist_ok=True)
        (self.root / "db").mkdir(exist_ok=True)

    def _log(self, session_id: str) -> _SessionLog:
        slog = self._logs.get(session_id)
        if slog is None:
            with self._logs_lock:
                slog = self._logs.get(session_id)
                if slog is None:
                    slog = self._logs[session_id] = _SessionLog(self, session_id)
                    # a pass walks every cached log: it runs only when a bound is crossed, and
                    # evicts below it with a margin, so a run's cost does not grow with the cache
                    if len(self._logs) > _MAX_LOGS or \
                            self._cache_counter[0] * _MEM_PER_LINE_BYTE > self.max_cache_bytes:
                        self._evict_logs()
        return slog

    def _evict_logs(self) -> None:
        """Keep the parsed logs of this process under ``max_cache_bytes`` and 1,024 sessions:
        forget the oldest ones that hold no buffer and no lock (caller holds ``_logs_lock``), down
        to 7/8 of the bytes and 64 sessions under the count, so the next pass is not the next new
        log. A forgotten log is re-read from its file when next used."""
        total = sum(sl.cached_bytes for sl in self._logs.values()) * _MEM_PER_LINE_BYTE
        max_logs = _MAX_LOGS - 64 if len(self._logs) > _MAX_LOGS else _MAX_LOGS
        max_bytes = self.max_cache_bytes * 7 // 8 if total > self.max_cache_bytes else self.max_cache_bytes
        for sid in list(self._logs):
            if total <= max_bytes and len(self._logs) <= max_logs:
                break
            sl = self._logs[sid]
            if sl.owned or sl.buf or not sl.lock.acquire(blocking=False):
                continue
            try:
                if sl.owned or sl.buf:
                    continue
                del self._logs[sid]
                total -= sl.cached_bytes * _MEM_PER_LINE_BYTE
                sl.forget_bytes()
                sl.flock.close()
            finally:
                sl.lock.release()
        self._cache_counter[0] = sum(sl.cached_bytes for sl in self._logs.values())  # exact again

    def _upgrade_v1(self) -> None:
        """Version 1 → 2 in place, under ``db.lock``: the TinyDB ``db/sessions.json`` and
        ``db/runs.json`` become ``db/sessions.jsonl`` and ``db/runs.jsonl`` (one line per row), then
        ``store.json`` says version 2, then the old files go. A crash before the marker is written
        leaves version 1 intact (the next open redoes the upgrade)."""
        marker = self.root / "store.json"
        with self._tables.lock:
            self._tables.file_lock.acquire()
            try:
                info = _codec.loads(marker.read_bytes())
                if isinstance(info, dict) and isinstance(info.get("version"), int) \
                        and info["version"] >= STORE_VERSION:
                    return  # another process upgraded it meanwhile
                for name in ("sessions", "runs"):
                    old = self.root / "db" / f"{name}.json"
                    rows: dict = {}
                    if old.exists():
                        raw = old.read_bytes()
                        try:
                            data = _codec.loads(raw) if raw.strip() else {}
                        except ValueError as exc:
                            raise AsmError("storage_error", f"cannot upgrade {old}: {exc}") from None
                        rows = data.get(name, {}) if isinstance(data, dict) else {}
                    lines = [_codec.dumps({**doc, "id": doc.get("id") or key}) + b"\n"
                             for key, doc in rows.items() if isinstance(doc, dict)]
                    _write_atomic(self.root / "db" / f"{name}.jsonl", b"".join(lines), fsync=True)
                _write_atomic(marker, _codec.dumps({"format": STORE_FORMAT, "version": STORE_VERSION}) + b"\n",
                              fsync=True)
                for name in ("sessions", "runs"):
                    try:
                        os.unlink(self.root / "db" / f"{name}.json")
                    except FileNotFoundError:
                        pass
                log.info("LocalStore at %s upgraded from format version 1 to %d", self.root, STORE_VERSION)
            finally:
                self._tables.file_lock.release()
        self._legacy = False

    # -- write-behind timer ---------------------------------------------------------------------
    def _schedule(self, slog: _SessionLog) -> None:
        with self._timer_cond:
            self._owned.add(slog)
            start_flusher(self, f"asm-localstore-flush:{self.root.name}", slog.owned_since + self.flush_interval_s)

    def _due(self) -> tuple[list[_SessionLog], float | None]:
        """(sessions whose buffer is due now, seconds until the next one). Caller holds timer lock."""
        now = time.monotonic()
        due, wait = [], None
        for slog in self._owned:
            left = slog.owned_since + self.flush_interval_s - now
            if left <= 0:
                due.append(slog)
            elif wait is None or left < wait:
                wait = left
        # a due log stays in ``_owned`` until it is released: ``flush()`` run meanwhile still
        # finds it and waits for the write (taking it out here let flush() return before it)
        return due, wait

    def _flush_due(self, due: list[_SessionLog]) -> bool:
        """Write the due buffers (flusher thread; see ``_base.flusher_loop``). Never asks for a retry."""
        for slog in due:
            with slog.lock:
                try:
                    self._release(slog)  # also takes it out of ``_owned``, even when the write fails
                except Exception as exc:  # nobody to raise to: log, keep the timer alive
                    log.error("LocalStore: background flush of session %s failed: %s", slog.sid, exc)
        return False

    def _maybe_trim(self, slog: _SessionLog) -> None:
        """Trim a log whose parsed events outgrow an eighth of the cache (caller holds its lock)."""
        if slog.cached_bytes * _MEM_PER_LINE_BYTE > self.max_cache_bytes // 8 and not slog.buf and not slog.owned:
            slog.trim()

    def _release(self, slog: _SessionLog) -> None:
        """Write a session's buffer and release its OS lock (caller holds ``slog.lock``); a log
        whose parsed events outgrow its share of the cache is trimmed."""
        try:
            slog.release()
        finally:
            with self._timer_cond:
                self._owned.discard(slog)
        self._maybe_trim(slog)

    # -- sessions ---------------------------------------------------------------------------------
    @contextmanager
    def _db(self, sessions: bool = True, runs: bool = True):
        """A write of the document tables: ``db.lock`` held, the tables it touches caught up (torn
        tails cut)."""
        with self._tables.lock:
            self._tables.file_lock.acquire()
            try:
                if sessions:
                    self._sessions.sync(owner=True)
                if runs:
                    self._runs.sync(owner=True)
                yield
            finally:
                self._tables.file_lock.release()

    def _dtx(self, fn, what: str, sessions: bool = True, runs: bool = True) -> Any:
        try:
            with self._db(sessions, runs):
                return fn()
        except AsmError:
            raise
        except (OSError, ValueError, TypeError) as exc:
            raise AsmError("storage_error", f"{what} failed: {exc!r}") from exc

    def save_session(self, session: Session) -> None:
        """Upsert by id (one line appended to ``db/sessions.jsonl`` under ``db.lock``)."""
        check_session(session)
        self._check_open()
        doc = session.to_dict()
        self._dtx(lambda: self._sessions.append([doc]), "save_session", runs=False)

    def get_session(self, session_id: str) -> Session:
        s = None
        if isinstance(session_id, str):
            self._sessions.sync()
            s = self._sessions.get(session_id)
        if s is None:
            raise AsmError("session_not_found", f"Session not found: {session_id}")
        return s

    def get_or_create_named_session(self, name: str, session: Session) -> tuple[Session, bool]:
        """``(the newest session whose metadata name is name, False)``, or ``session`` saved and
        ``True`` when there is none, atomically across processes (under ``db.lock``)."""
        check_session(session)
        self._check_open()

        def run() -> tuple[Session, bool]:
            ids = self._sessions.groups.get(name)
            if ids:
                found = self._sessions.get_many(sorted(ids))
                if found:
                    return max(found, key=lambda x: (x.created_at, x.id)), False
            self._sessions.append([session.to_dict()])
            return session, True

        return self._dtx(run, "get_or_create_named_session", runs=False)

    def list_sessions(self, *, status: Any = None, agent_id: str | None = None, limit: int | None = None,
                      offset: int = 0) -> list[Session]:
        """All sessions (soft-deleted included) by ``created_at`` then id."""
        self._sessions.sync()
        rows = self._sessions.all()
        return filter_sessions(rows, status=status, agent_id=agent_id, limit=limit, offset=offset)

    def delete_session(self, session_id: str) -> None:
        """Idempotent cascade: the event log, lock and meta files, the runs and artifact records
        of the session, then its row."""
        check_session_id(session_id)
        self._check_open()
        slog = self._log(session_id)
        with slog.lock:
            try:
                slog.ensure_owned()
                slog.buf.clear()
                slog.buf_bytes = 0
                for p in (slog.path, slog.meta_path):
                    try:
                        os.unlink(p)
                    except FileNotFoundError:
                        pass
                slog._reset()

                def cascade() -> None:
                    runs = sorted(self._runs.groups.get(session_id, ()))
                    self._runs.append([{"id": rid, "_deleted": True} for rid in runs])
                    self._tables["artifacts"].storage.invalidate()
                    self._tables["artifacts"].update(
                        lambda rows: _drop(rows, lambda d: d.get("session_id") == session_id))
                    if session_id in self._sessions.index:
                        self._sessions.append([{"id": session_id, "_deleted": True}])

                self._dtx(cascade, "delete_session")
            finally:
                slog.owned = False
                slog.flock.remove_and_release()
                with self._timer_cond:
                    self._owned.discard(slog)
        self._notify()

    def list_session_ids(self) -> list[str]:
        """Ids of every session with a row, a run or an event log, sorted."""
        self._sessions.sync()
        self._runs.sync()
        with self._sessions.lock, self._runs.lock:
            ids = set(self._sessions.index) | {k for k in self._runs.groups if isinstance(k, str)}
        ids.update(self.event_log_paths(flush=False))
        with self._logs_lock:
            ids.update(sid for sid, slog in self._logs.items() if slog.events)
        return sorted(ids)

    def event_log_paths(self, *, flush: bool = True) -> dict[str, Path]:
        """``session_id → events/<session>.jsonl`` for every log on disk. Buffered events are
        written first (``flush=True``) so the files hold everything this process appended."""
        if flush and not self._closed:
            self.flush()
        out = {}
        try:
            names = os.listdir(self._events_dir)
        except FileNotFoundError:
            return {}
        for name in sorted(names):
            if name.endswith(".jsonl"):  # temp files end in .tmp
                out[decode_session_id(name[:-6])] = self._events_dir / name
        return out

    # -- maintenance and artifact-record hooks (used by stores/_maintenance.py, the registry) -------
    def delete_events(self, session_id: str, event_ids: Iterable[str]) -> int:
        """Remove stored events (pruning): the log is rewritten (temp file + ``os.replace``) under
        the session lock; when the newest event goes, ``meta.json`` keeps the high-water mark
        first, so numbering never goes back. Returns how many events were removed."""
        check_session_id(session_id)
        self._check_open()
        ids = set(event_ids)
        slog = self._log(session_id)
        with slog.lock:
            slog.ensure_owned()
            try:
                slog.write_buffer()
                slog.ensure_complete(owner=True)
                keep = [e for e in slog.events if e.id not in ids]
                removed = len(slog.events) - len(keep)
                if not removed:
                    return 0
                newest = max(slog.last_seq, slog.meta_seq)
                if not keep or (keep[-1].sequence_number or 0) < newest:
                    _write_atomic(slog.meta_path, _codec.dumps({"last_sequence": newest}) + b"\n")
                    slog.meta_seq = newest
                kept_lines = []
                for line in slog.path.read_bytes()[:slog.offset].split(b"\n"):
                    if not line:
                        continue
                    try:
                        doc_id = _codec.loads(line).get("id")
                    except (ValueError, AttributeError):
                        doc_id = None  # unreadable lines stay as they were (readers skip them)
                    if doc_id not in ids:
                        kept_lines.append(line + b"\n")
                body = b"".join(kept_lines)
                _write_atomic(slog.path, body, fsync=slog.fsync)
                slog.events = keep
                slog.ids = {e.id: e for e in keep}
                slog.offset = len(body)
                slog.n_flushed = len(keep)
                slog.ino = os.stat(slog.path).st_ino
            except OSError as exc:
                raise AsmError("storage_error", f"delete_events failed: {exc!r}") from exc
            finally:
                self._release(slog)
        return removed

    def sequence_counters(self) -> dict[str, int]:
        """``session_id → highest sequence ever assigned`` for every session with a log or mark."""
        names = set()
        try:
            for name in os.listdir(self._events_dir):
                if name.endswith(".jsonl"):
                    names.add(name[:-len(".jsonl")])
                elif name.endswith(".meta.json"):
                    names.add(name[:-len(".meta.json")])
        except FileNotFoundError:
            pass
        sids = {decode_session_id(n) for n in names}
        with self._logs_lock:
            sids.update(sid for sid, slog in self._logs.items() if slog.last_seq or slog.meta_seq)
        out = {sid: self.get_latest_sequence(sid) for sid in sorted(sids)}
        return {sid: n for sid, n in out.items() if n}

    def delete_sequence_counter(self, session_id: str) -> None:
        """Forget the counter of a session that has no events left (no-op otherwise)."""
        check_session_id(session_id)
        self._check_open()
        slog = self._log(session_id)
        with slog.lock:
            slog.ensure_owned()
            try:
                slog.write_buffer()
                slog.ensure_complete(owner=True)
                if slog.events:
                    return
                for p in (slog.meta_path, slog.path):
                    try:
                        os.unlink(p)
                    except FileNotFoundError:
                        pass
                slog._reset()
            finally:
                slog.owned = False
                slog.flock.remove_and_release()
                with self._timer_cond:
                    self._owned.discard(slog)

    def save_artifact_record(self, record: dict) -> None:
        """Upsert an artifact metadata record (a dict with a string ``id``) in ``db/artifacts.json``."""
        if not isinstance(record, dict) or not isinstance(record.get("id"), str) or not record["id"]:
            raise AsmError("validation_error", "artifact record must be a dict with a non-empty string id")
        self._check_open()
        from ..core.serialization import to_jsonable

        doc = to_jsonable(record)
        self._tx(lambda t: t["artifacts"].update(lambda rows: _put(rows, record["id"], doc)), "save_artifact_record")

    def list_artifact_records(self, session_id: str | None = None) -> list[dict]:
        """Artifact records (all, or of one session), by ``created_at`` then id; copies."""
        with self._tables.lock:
            rows = [dict(r) for r in self._tables["artifacts"].objects().values()
                    if session_id is None or r.get("session_id") == session_id]
        rows.sort(key=lambda r: (str(r.get("created_at") or ""), str(r.get("id"))))
        return rows

    def delete_artifact_record(self, record_id: str) -> None:
        """Remove an artifact record (idempotent). Blobs are not touched."""
        self._check_open()
        self._tx(lambda t: t["artifacts"].update(lambda rows: rows.pop(record_id, None) is not None),
                 "delete_artifact_record")

    # -- runs -------------------------------------------------------------------------------------
    def save_run(self, run: Run) -> None:
        """Upsert by id (one line appended to ``db/runs.jsonl``). A terminal run is written only
        after the events its session has buffered are: a reader never sees a finished run
        without the events that finished it. A pending/running run records this process as its
        owner (``metadata.owner``)."""
        check_run(run)
        self._check_open()
        if run.status.value in _TERMINAL_RUN:
            self._write_session_buffer(run.session_id)
        doc = stamp_owner(run.to_dict())
        self._dtx(lambda: self._runs.append([doc]), "save_run", sessions=False)

    def _write_session_buffer(self, session_id: str) -> None:
        slog = self._logs.get(session_id)
        if slog is not None and slog.owned:
            with slog.lock:
                try:
                    self._release(slog)
                except AsmError:
                    raise
            self._notify()

    def save_runs(self, runs: Iterable[Run]) -> None:
        """Upsert several runs with one append (``save_run`` for each, in one write)."""
        runs = list(runs)
        for run in runs:
            check_run(run)
        self._check_open()
        for sid in {r.session_id for r in runs if r.status.value in _TERMINAL_RUN}:
            self._write_session_buffer(sid)
        docs = [stamp_owner(r.to_dict()) for r in runs]
        if docs:
            self._dtx(lambda: self._runs.append(docs), "save_runs", sessions=False)

    def get_run(self, run_id: str) -> Run:
        r = None
        if isinstance(run_id, str):
            self._runs.sync()
            r = self._runs.get(run_id)
        if r is None:
            raise AsmError("run_not_found", f"Run not found: {run_id}")
        return r

    def list_runs(self, session_id: str | None, *, status: Any = None, limit: int | None = None) -> list[Run]:
        """Runs of one session (``None``: of every session) by ``started_at`` then id. Runs whose
        owner process is gone are marked interrupted first."""
        self._reap_interrupted()
        self._runs.sync()
        if session_id is None:
            rows = self._runs.all()
        else:
            rows = self._runs.get_many(sorted(self._runs.groups.get(session_id, ())))
        return filter_runs(rows, status=status, limit=limit)

    def get_active_run(self, session_id: str) -> Run | None:
        self._runs.sync()
        with self._runs.lock:
            ids = [rid for rid in self._runs.groups.get(session_id, ())
                   if self._runs.index[rid][2][1] == "running"]
        return pick_active_run(self._runs.get_many(ids))

    def _reap_interrupted(self, force: bool = False) -> None:
        """Mark runs whose owner process is gone as failed (``interrupted``); at most once a second
        unless ``force``."""
        now = time.monotonic()
        if self._closed or (not force and now - self._reaped_at < 1.0):
            return
        self._reaped_at = now
        self._runs.sync()
        candidates = [rid for rid, (_o, _l, m) in list(self._runs.index.items()) if m[1] in ("pending", "running")]
        if not candidates:
            return
        interrupted_runs(self, self._runs.get_many(candidates))

    def _tx(self, fn, what: str) -> Any:
        try:
            with self._tables.transaction() as t:
                return fn(t)
        except AsmError:
            raise
        except (OSError, ValueError, TypeError) as exc:
            raise AsmError("storage_error", f"{what} failed: {exc!r}") from exc

    # -- events -----------------------------------------------------------------------------------
    def _prepare(self, events: list[Event], single: bool) -> list[tuple[bytes, bytes]]:
        try:
            return [_codec.event_line_parts(e) for e in events]
        except (TypeError, ValueError) as exc:
            what = "event" if single else "events"
            raise AsmError("storage_error", f"Failed to append {what}: {exc!r}") from exc

    def _stage(self, events: list[Event], parts: list[tuple[bytes, bytes]], slogs: list[_SessionLog],
               in_place: bool = False) -> list[Event]:
        """Assign numbers and buffer lines; every session involved is locked and owned."""
        out = []
        slog = None
        by_sid = {sl.sid: sl for sl in slogs}
        for e, (before, after) in zip(events, parts):
            if slog is None or slog.sid != e.session_id:
                slog = by_sid[e.session_id]
            out.append(_stage_one(slog, e, before, after, in_place))
        return out

    def _locked_logs(self, events: Iterable[Event]) -> list[_SessionLog]:
        return [self._log(sid) for sid in sorted({e.session_id for e in events})]

    def _append(self, events: list[Event], single: bool, in_place: bool = False) -> list[Event]:
        self._check_open()
        if len(events) == 1:
            return [self._append_one(events[0], single, in_place)]
        parts = self._prepare(events, single)  # serialize outside any lock
        slogs = self._locked_logs(events)
        acquired = []
        try:
            for slog in slogs:
                slog.lock.acquire()
                acquired.append(slog)
            for slog in slogs:
                slog.ensure_owned()
            out = self._stage(events, parts, slogs, in_place)
            ending = {e.session_id for e in events if e.type in _SESSION_END}
            for slog in slogs:
                if slog.buf_bytes >= self.max_buffer_bytes or slog.sid in ending:
                    self._release(slog)
        except AsmError:
            raise
        except OSError as exc:
            what = "event" if single else "events"
            raise AsmError("storage_error", f"Failed to append {what}: {exc!r}") from exc
        finally:
            for slog in reversed(acquired):
                slog.lock.release()
        self._notify()
        return out

    def _append_unshared(self, event: Event) -> Event:
        """``append_event_with_sequence`` for an event nobody else holds (the pipeline's freshly
        built ones): its number is set on it in place instead of on a copy."""
        check_event(event)
        if self._closed:
            self._check_open()
        return self._append_one(event, True, True)

    def _append_events_unshared(self, events: list[Event]) -> list[Event]:
        """``append_events`` for events nobody else holds (``EventPipeline.process_batch``):
        numbered in place instead of copied."""
        events = check_events(events)
        if not events:
            return []
        return self._append(events, single=False, in_place=True)

    def _append_one(self, e: Event, single: bool, in_place: bool = False) -> Event:
        """The streaming hot path: one event, one session."""
        try:
            before, after = _codec.event_line_parts(e)  # serialize outside any lock
        except (TypeError, ValueError) as exc:
            raise AsmError("storage_error", f"Failed to append {'event' if single else 'events'}: {exc!r}") from exc
        slog = self._logs.get(e.session_id) or self._log(e.session_id)
        with slog.lock:
            if not slog.owned:
                try:
                    slog.ensure_owned()
                except OSError as exc:
                    raise AsmError("storage_error",
                                   f"Failed to append {'event' if single else 'events'}: {exc!r}") from exc
            stored = _stage_one(slog, e, before, after, in_place)
            if slog.buf_bytes >= self.max_buffer_bytes or e.type in _SESSION_END:
                self._release(slog)
        if self._waiters:
            self._notify()
        return stored

    def _query(self, session_id: str, query: EventQuery) -> list[Event]:
        slog = self._log(session_id)
        with slog.lock:
            if not slog.owned:
                slog.sync(owner=False)
            if slog.complete or (query.after is not None and query.after >= slog.base_seq):
                return query.apply(slog.events) if slog.events else []
            events = slog.read_all()  # the query reaches into the trimmed part: read the file
        return query.apply(events)

    def get_latest_sequence(self, session_id: str) -> int:
        """Highest sequence ever assigned for the session (0 when none), pruning included."""
        check_session_id(session_id)
        slog = self._log(session_id)
        with slog.lock:
            if not slog.owned:
                slog.sync(owner=False)
            return max(slog.last_seq, slog.meta_seq)

    def flush(self, payload: Any = None) -> None:
        """Without a payload: write every buffered event and release the session locks. With one:
        append its events, merge its session and upsert its run atomically (docs/stores.md, store contract)."""
        if payload is None:
            self._flush_all()
            return
        session, run, events = parse_payload(payload)
        self._check_open()
        parts = self._prepare(events, single=False)
        slogs = self._locked_logs(events)
        if run.session_id not in {sl.sid for sl in slogs}:
            # the run's own session: its buffered events are written before the run row (a run
            # is final only after its events are)
            slogs = sorted([*slogs, self._log(run.session_id)], key=lambda sl: sl.sid)
        acquired = []
        try:
            for slog in slogs:
                slog.lock.acquire()
                acquired.append(slog)
            marks = []
            for slog in slogs:
                slog.ensure_owned()
                slog.write_buffer()  # earlier appends go out on their own, before the payload's
                marks.append((slog, len(slog.events), slog.offset))
            self._stage(events, parts, slogs)
            try:
                for slog in slogs:
                    slog.write_buffer()

                with self._db():
                    stored = self._sessions.get(session.id)
                    self._sessions.append([merge_session(stored, session).to_dict()])
                    self._runs.append([stamp_owner(run.to_dict())])
            except BaseException as exc:
                for slog, n, offset in marks:  # undo: nothing of the payload stays
                    try:
                        if slog.path.exists():
                            os.truncate(slog.path, offset)
                    except OSError:
                        pass
                    slog.rollback(n, offset)
                if isinstance(exc, AsmError):
                    raise
                if isinstance(exc, Exception):
                    raise AsmError("storage_error", f"flush failed: {exc!r}") from exc
                raise
            for slog in slogs:
                self._release(slog)
        finally:
            for slog in reversed(acquired):
                slog.lock.release()
        self._notify()

    def _flush_all(self) -> None:
        errors = []
        with self._timer_cond:
            owned = list(self._owned)
        for slog in owned:
            with slog.lock:
                try:
                    self._release(slog)
                except AsmError as exc:
                    errors.append(exc)
        if owned:
            self._notify()
        if errors:
            raise errors[0]

    def close(self) -> None:
        """Write every buffer, release every lock, stop the timer and wake waiters with ``[]``.
        Later writes raise ``storage_error``; reads keep working."""
        if self._closed:
            return
        self._closed = True  # first: no new append starts; one already inside is written below
        errors = []
        with self._logs_lock:
            logs = list(self._logs.values())
        for slog in logs:
            with slog.lock:
                try:
                    self._release(slog)
                except AsmError as exc:
                    errors.append(exc)
                slog.flock.close()
        with self._logs_lock:
            self._logs.clear()  # free the event caches; reads after close re-read the files
            self._cache_counter[0] = 0
        with self._timer_cond:
            self._timer_cond.notify_all()
            self._owned.clear()
        self._tables.close()
        self._sessions.close()
        self._runs.close()
        _OPEN_STORES.discard(self)
        self._notify()
        if errors:
            raise errors[0]

    def _after_fork(self) -> None:
        """In a forked child: drop everything inherited (locks, buffers, descriptors); the parent
        still owns its locks and will write its own buffers."""
        for slog in list(self._logs.values()):
            slog.flock.forget()
        self._tables.after_fork()
        self._sessions.after_fork()
        self._runs.after_fork()
        self._init_runtime()


# --------------------------------------------------------------------------------------------
# helpers


def _stage_one(slog: _SessionLog, e: Event, before: bytes, after: bytes, in_place: bool = False) -> Event:
    """Number and buffer one event (or resolve its id to the stored one); caller owns ``slog``.
    ``in_place``: ``e`` is unshared and is numbered itself rather than copied."""
    stored = slog.ids.get(e.id)
    if stored is None and not slog.complete and not in_place and slog.may_hold(e):
        stored = slog.find_stored(e.id)  # trimmed cache: the id may be in the written part
    if stored is None:
        last = slog.last_seq
        meta = slog.meta_seq
        seq = (last if last >= meta else meta) + 1
        slog.last_seq = seq
        if in_place:
            set_sequence_in_place(e, seq)
            stored = e
        else:
            stored = with_sequence(e, seq)
        slog.events.append(stored)
        slog.ids[e.id] = stored
        line = b"%b%d%b" % (before, seq, after)
        slog.buf.append(line)
        slog.buf_bytes += len(line)
        slog.cached_bytes += len(line)
        slog.counter[0] += len(line)
    return stored


def _write_atomic(path: Path, data: bytes, fsync: bool = False) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


_TERMINAL_RUN = frozenset({"completed", "failed", "cancelled"})
# a session's last event: written at once and the session lock released (a one-shot run leaves
# nothing buffered and no flush pending once its session is closed)
_SESSION_END = frozenset({EventType.SESSION_COMPLETED, EventType.SESSION_FAILED, EventType.SESSION_CANCELLED})


def _session_meta(doc: dict) -> tuple:
    md = doc.get("metadata")
    name = md.get("name") if isinstance(md, dict) else None
    return (name if isinstance(name, str) and name else None,)


def _run_meta(doc: dict) -> tuple:
    return (doc.get("session_id"), doc.get("status"))


def _put(rows: dict, doc_id: str, doc: dict) -> bool:
    rows[doc_id] = doc
    return True


def _drop(rows: dict, pred) -> bool:
    doomed = [k for k, d in rows.items() if pred(d)]
    for k in doomed:
        del rows[k]
    return bool(doomed)


_OPEN_STORES: "weakref.WeakSet[LocalStore]" = track_open_stores(log, "LocalStore", lambda store: str(store.root))
