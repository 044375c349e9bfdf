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

Modules: ``_sessionlog.py`` (one session's log: parse, number, buffer, write), ``_localdocs.py``
(layout, upgrade, sessions, runs, artifact records: ``LocalDocuments``, the base class),
``_localprune.py`` (pruning hooks), ``_doclog.py`` / ``_tinydb.py`` (the document files).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
import weakref
from pathlib import Path
from typing import Any, Iterable

from .. import config
from ..core.errors import AsmError
from ..core.events import Event
from ..core.run import Run
from ..core.run_summary import summary_row
from ..core.session import Session
from . import _codec, _localprune
from ._base import (EventQuery, check_event, check_events, check_run, check_session_id, merge_session,
                    parse_payload, start_flusher, track_open_stores)
from ._base import stamp_owner
from ._doclog import DocLog
from ._localdocs import STORE_FORMAT, STORE_VERSION, LocalDocuments, _drop, _run_meta, _session_meta, _TERMINAL_RUN
from ._sessionlog import (LocalStoreWarning, _SESSION_END, _SessionLog, _stage_one, _warn,
                          decode_session_id, encode_session_id)
from ._tinydb import TinyTables

__all__ = ["LocalStore", "LocalStoreWarning", "STORE_FORMAT", "STORE_VERSION"]
# private names other modules and tests reach through this module
__all__ += ["decode_session_id", "encode_session_id"]

log = logging.getLogger(__name__)

MAX_CACHE_BYTES = 64 * 1024 * 1024  # parsed event logs kept per store (least recently used first out)
_MEM_PER_LINE_BYTE = 4  # a parsed Event takes ~4x the bytes of its JSON line
MAX_BUFFER_BYTES = 4 * 1024 * 1024
_MAX_LOGS = 1024  # parsed session logs kept per store


# --------------------------------------------------------------------------------------------
# the store

class LocalStore(LocalDocuments):
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
        self._runs = DocLog(self.root / "db" / "runs.jsonl", Run.from_dict, _run_meta, fsync=fsync, warn=_warn,
                            summary=summary_row)
        self._init_runtime()
        try:
            if self._legacy:
                self._upgrade_v1()
        except OSError as exc:
            raise AsmError("storage_error", f"cannot upgrade LocalStore at {self.root}: {exc}") from exc
        _OPEN_STORES.add(self)
        # runs whose owner died are marked on the first read of runs or events, not here: opening
        # a store reads no table that grows with it (a cold frame reads only the run summaries)
        self._reap_due = True

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

    # -- sessions: the parts that touch event logs -------------------------------------------
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

    # -- maintenance hooks (stores/_maintenance.py; the work is in _localprune.py) ---------------
    def delete_events(self, session_id: str, event_ids: Iterable[str]) -> int:
        """Remove stored events (pruning): the log is rewritten (temp file + ``os.replace``) under
        the session lock; when the newest event goes, ``meta.json`` keeps the high-water mark
        first, so numbering never goes back. Returns how many events were removed."""
        return _localprune.delete_events(self, session_id, event_ids)

    def sequence_counters(self) -> dict[str, int]:
        """``session_id → highest sequence ever assigned`` for every session with a log or mark."""
        return _localprune.sequence_counters(self)

    def delete_sequence_counter(self, session_id: str) -> None:
        """Forget the counter of a session that has no events left (no-op otherwise)."""
        _localprune.delete_sequence_counter(self, session_id)

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
        self._dtx(lambda: self._runs.append([doc], [run]), "save_run", sessions=False)

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
            self._dtx(lambda: self._runs.append(docs, runs), "save_runs", sessions=False)

    def write_batch(self, events: list[Event], upserts: list[list[Run] | list[Session]]) -> None:
        """The bulk path of a history import (``ports.BatchWriter``): fresh events (numbered in
        place), then groups of run or session upserts in order, with one lock round and one
        ``os.write`` per session log and one ``db.lock`` round for the upserts (``_localbulk.py``;
        the bytes are those of ``append_events``, ``save_runs`` and ``save_session``)."""
        from ._localbulk import write_batch

        write_batch(self, events, upserts)

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

    def _append_built(self, event: Event) -> Event:
        """``_append_unshared`` for an event ``persistence.pipeline.build_event`` made (the
        per-run ``EventPipeline.bind``): valid by construction (string ids, an ``EventType``, an
        aware timestamp), so the store-boundary check is not repeated."""
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
        if self._reap_due:
            self._reap_interrupted(force=True)
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
        append its events, merge its session and upsert its run atomically (docs/stores.md, store
        contract); everything is on disk when it returns, and the sessions' locks are released by
        their closing event or the write-behind timer (``flush_interval_ms``), like any append's."""
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
                    # the payload's session is the very object the table holds (a run's end read
                    # it and changed nothing): merging it into itself changes nothing, no line
                    if stored is not session:
                        merged = merge_session(stored, session).to_dict()
                        if stored is None or merged != stored.to_dict():  # an unchanged session: no line
                            self._sessions.append([merged])
                    self._runs.append([stamp_owner(run.to_dict())], [run])
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
            # everything is written (above); the session locks stay held until the session's
            # closing event or the write-behind timer releases them, so the records a run's end
            # still adds (audit, session_completed) do not take the OS lock a second time
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



_OPEN_STORES: "weakref.WeakSet[LocalStore]" = track_open_stores(log, "LocalStore", lambda store: str(store.root))
