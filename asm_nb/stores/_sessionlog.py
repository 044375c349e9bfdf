"""One session's event log of LocalStore (``events/<session>.jsonl``): the in-process state
``_SessionLog`` (parsed events, write-behind buffer, the session's OS lock), numbering and staging
of one event (``_stage_one``) and the file-name form of session ids. docs/store-format.md, event
logs, describes the bytes; ``local.py`` the store around it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
import weakref
from typing import TYPE_CHECKING
from urllib.parse import unquote

from ..core.errors import AsmError
from ..core.events import Event, EventType
from . import _codec
from ._base import set_sequence_in_place, with_sequence
from ._locks import FileLock

if TYPE_CHECKING:  # pragma: no cover
    from .local import LocalStore

__all__ = ["LocalStoreWarning", "decode_session_id", "encode_session_id"]

log = logging.getLogger("asm_nb.stores.local")

_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


class LocalStoreWarning(UserWarning):
    """A LocalStore file needed repair or held an unreadable line (never fatal)."""


def encode_session_id(session_id: str) -> str:
    """File-name form of a session id: ``[A-Za-z0-9._-]`` kept, every other byte ``%XX``."""
    if _SAFE.issuperset(session_id):  # the usual id: one set operation, not a generator per character
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


# a session's last event: written at once and the session lock released (a one-shot run leaves
# nothing buffered and no flush pending once its session is closed)
_SESSION_END = frozenset({EventType.SESSION_COMPLETED, EventType.SESSION_FAILED, EventType.SESSION_CANCELLED})
