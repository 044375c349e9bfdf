"""SqlStore's write-behind layer (docs/stores.md, SqlStore): bursts (one open write transaction
and the events buffered in it), the session counter locks, staging, the batched insert, the
commit (with id-conflict renumbering) and the flush timer.

``SqlWriteBehind`` is the base class of ``SqlStore`` (``stores/sql.py``): the store's public
methods stay there, the machinery they share is here. How a burst works is described in
``sql.py``'s module docstring.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from datetime import datetime
from typing import Any, Callable, Sequence

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError

from .. import config
from ..core.errors import AsmError
from ..core.events import Event
from . import _sql_schema as S
from ._base import StoreBase, start_flusher, with_sequence
from ._sql_conn import NOTIFY_CHANNEL, _is_busy
from ._sql_rows import _EVENT_COLS, _UTC, _json_text, _ts_text, event_from_row

log = logging.getLogger("asm_nb.stores.sql")  # the logger keeps the name it had before the split

_KNOWN_SESSIONS = 256  # id caches kept per process (LRU)


class _Burst:
    """One open write transaction and the events buffered in it (all under ``lock``)."""

    __slots__ = ("lock", "conn", "opened", "seq", "pending", "by_session", "ids", "dirty", "__weakref__")

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._reset()

    def _reset(self) -> None:
        self.conn: sa.Connection | None = None
        self.opened = 0.0
        self.seq: dict[str, int] = {}          # session → last number handed out (counter row locked)
        self.pending: list[Event] = []         # buffered events, append order
        self.by_session: dict[str, list[Event]] = {}
        self.ids: dict[str, Event] = {}        # buffered id → stored event
        self.dirty = False                     # statements other than events ran in the transaction


class _Known:
    """Ids of a session's committed events known to this process, up to sequence ``upto``."""

    __slots__ = ("ids", "upto")

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.upto = 0


class SqlWriteBehind(StoreBase):
    """The write-behind machinery of ``SqlStore`` (its ``__init__`` sets the attributes below)."""

    _engine: sa.Engine
    _reader: sa.Engine
    _closed: bool
    _pg: bool
    flush_interval_s: float
    max_buffer_events: int
    _bursts_lock: threading.Lock
    _bursts: dict[str, _Burst]
    _global: _Burst | None
    _known: "OrderedDict[str, _Known]"
    _known_lock: threading.Lock
    _timer_cond: threading.Condition
    _open_bursts: set[_Burst]
    _ins_sql: str
    _multi_sql: dict[int, str]

    # -- transactions ------------------------------------------------------------------------
    def _read(self, fn: Callable[[sa.Connection], Any]) -> Any:
        with self._reader.connect() as conn:
            out = fn(conn)
        if self._closed:
            # a read after close() (``RunResult.events`` loads lazily): the connection went back
            # to a pool nobody will dispose again, so close it now instead of at GC
            self._reader.dispose()
        return out

    def _write(self, fn: Callable[[sa.Connection], object], what: str, session_id: str | None = None) -> None:
        """Run ``fn`` in a committed write transaction. SQLite: inside the shared burst (its
        buffered events commit too). PostgreSQL: on its own connection."""
        self._check_open()
        try:
            if self._global is not None:
                b = self._global
                with b.lock:
                    self._retry(lambda: self._commit(b, fn))
            else:
                with self._engine.begin() as conn:
                    fn(conn)
        except AsmError:
            raise
        except Exception as exc:
            raise AsmError("storage_error", f"{what} failed: {exc!r}") from exc

    # -- plumbing ----------------------------------------------------------------------------
    def _retry(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn``; on SQLite retry "database is locked/busy" errors (config attempts/sleep)."""
        if self._pg:
            return fn()
        try:
            return fn()
        except OperationalError as exc:
            if not _is_busy(exc):
                raise
        attempts = max(1, int(config.get("sqlite_busy_retry_attempts")))
        sleep_s = int(config.get("sqlite_busy_retry_sleep_ms")) / 1000.0
        for i in range(1, attempts):
            time.sleep(sleep_s)
            try:
                return fn()
            except OperationalError as exc:
                if not _is_busy(exc) or i == attempts - 1:
                    raise
        return fn()

    def _ts(self, dt: datetime) -> Any:
        return dt if self._pg else _ts_text(dt)

    def _insert_sql(self) -> str:
        cols = ", ".join(_EVENT_COLS)
        if self._pg:
            marks = "%s, %s, %s, %s, %s, %s, %s::json, %s::json, %s, %s, %s"
        else:
            marks = ", ".join("?" * len(_EVENT_COLS))
        return f"INSERT INTO asm_events ({cols}) VALUES ({marks})"

    def _insert_rows(self, conn: sa.Connection, rows: list[tuple]) -> None:
        """PostgreSQL: ``executemany``. SQLite: multi-row ``INSERT … VALUES (…), (…)`` in chunks
        of ``sqlite_max_bind_params // 11`` rows (at most 2 000), checking the inserted count."""
        if self._pg:  # psycopg's executemany (pipeline mode) beats a huge VALUES list here
            conn.exec_driver_sql(self._ins_sql, rows)
            return
        ncol = len(_EVENT_COLS)
        max_params = int(config.get("sqlite_max_bind_params"))
        per = max(1, min(max_params // ncol, 2_000))
        for i in range(0, len(rows), per):
            chunk = rows[i:i + per]
            sql = self._multi_sql.get(len(chunk))
            if sql is None:
                sql = self._multi_sql[len(chunk)] = self._ins_sql + (", " + self._ins_sql[self._ins_sql.index(
                    "VALUES (") + 7:]) * (len(chunk) - 1)
            res = conn.exec_driver_sql(sql, tuple(v for r in chunk for v in r))
            if res.rowcount is not None and res.rowcount >= 0 and res.rowcount != len(chunk):
                sid = chunk[0][3]
                raise AsmError("storage_error", f"batch insert count mismatch for session {sid}: expected "
                                                f"{len(chunk)}, got {res.rowcount}")

    def _row(self, e: Event) -> tuple:
        ts = e.timestamp
        meta = e.metadata
        return (e.id, e.type._value_, ts if self._pg else _ts_text(ts), e.session_id, e.run_id, e.sequence_number,
                _json_text(e.data), _json_text(meta) if meta else "{}", e.schema_version or 1, e.provider,
                e.correlation_id)

    # -- bursts ------------------------------------------------------------------------------
    def _burst_for(self, session_id: str) -> _Burst:
        if self._global is not None:
            return self._global
        b = self._bursts.get(session_id)
        if b is None:
            with self._bursts_lock:
                b = self._bursts.get(session_id)
                if b is None:
                    b = self._bursts[session_id] = _Burst()
        return b

    def _begin(self, burst: _Burst) -> sa.Connection:
        """The burst's connection with an open write transaction (opened if needed)."""
        if burst.conn is None:
            def open_tx() -> sa.Connection:
                conn = self._engine.connect()
                try:
                    conn.begin()
                except BaseException:
                    conn.close()
                    raise
                return conn

            conn = burst.conn = self._retry(open_tx)
            burst.opened = time.monotonic()
            self._schedule(burst)
            return conn
        return burst.conn

    def _known_for(self, session_id: str) -> _Known:
        with self._known_lock:
            k = self._known.get(session_id)
            if k is None:
                k = self._known[session_id] = _Known()
                while len(self._known) > _KNOWN_SESSIONS:
                    self._known.popitem(last=False)
            else:
                self._known.move_to_end(session_id)
            return k

    def _lock_session(self, burst: _Burst, session_id: str) -> None:
        """Lock the session's counter row in the burst's transaction and catch up with the ids
        other processes committed since this process last looked."""
        conn = self._begin(burst)
        base = conn.execute(sa.text(
            "INSERT INTO asm_session_sequences (session_id, last_sequence, updated_at) VALUES (:sid, 0, :now) "
            "ON CONFLICT (session_id) DO UPDATE SET last_sequence = asm_session_sequences.last_sequence "
            "RETURNING last_sequence"), {"sid": session_id, "now": self._ts(datetime.now(_UTC))}).scalar_one()
        known = self._known_for(session_id)
        if base < known.upto:  # deleted and restarted elsewhere: forget what we knew
            known.ids.clear()
            known.upto = 0
        if base > known.upto:
            rows = conn.execute(sa.text("SELECT id FROM asm_events WHERE session_id = :sid AND sequence_number > :n"),
                                {"sid": session_id, "n": known.upto}).scalars()
            known.ids.update(rows)
            known.upto = base
        burst.seq[session_id] = base

    def _stored_event(self, conn: sa.Connection, event_id: str) -> Event | None:
        row = conn.execute(sa.select(S.events).where(S.events.c.id == event_id)).mappings().first()
        return None if row is None else event_from_row(row)

    def _stage(self, burst: _Burst, events: Sequence[Event]) -> list[Event]:
        """Number and buffer events (or resolve ids already stored); caller holds ``burst.lock``."""
        for sid in dict.fromkeys(e.session_id for e in events):
            if sid not in burst.seq:
                self._lock_session(burst, sid)
        out: list[Event] = []
        ids, seq, pending, by_session = burst.ids, burst.seq, burst.pending, burst.by_session
        for e in events:
            stored = ids.get(e.id)
            if stored is None:
                sid = e.session_id
                known = self._known.get(sid)
                if known is not None and e.id in known.ids:
                    stored = self._stored_event(self._begin(burst), e.id)
                    if stored is None:
                        known.ids.discard(e.id)  # pruned or deleted since: store it again
                if stored is None:
                    n = seq[sid] + 1
                    seq[sid] = n
                    stored = with_sequence(e, n)
                    ids[e.id] = stored
                    pending.append(stored)
                    lst = by_session.get(sid)
                    if lst is None:
                        by_session[sid] = [stored]
                    else:
                        lst.append(stored)
            out.append(stored)
        return out

    def _commit(self, burst: _Burst, extra: Callable[[sa.Connection], object] | None = None) -> None:
        """Insert the buffer, update the counters, run ``extra`` and commit (caller holds the
        lock). Any failure rolls back the whole transaction and raises ``storage_error``."""
        conn = burst.conn
        if conn is None:
            if extra is None:
                return
            conn = self._begin(burst)
        pending = burst.pending
        try:
            try:
                self._write_pending(conn, burst)
            except IntegrityError:
                self._resolve_conflicts(conn, burst)
                self._write_pending(conn, burst)
            if extra is not None:
                extra(conn)
            conn.commit()
        except BaseException as exc:
            try:
                conn.rollback()
            except Exception:  # noqa: BLE001
                pass
            conn.close()
            lost = len(pending)
            burst._reset()
            self._unschedule(burst)
            if isinstance(exc, AsmError):
                raise
            if isinstance(exc, Exception):
                raise AsmError("storage_error", f"Failed to write {lost} buffered event(s): {exc!r}") from exc
            raise
        conn.close()
        for sid, n in burst.seq.items():
            known = self._known.get(sid)
            if known is not None:
                known.upto = n
        for e in pending:
            known = self._known.get(e.session_id)
            if known is not None:
                known.ids.add(e.id)
        burst._reset()
        self._unschedule(burst)

    def _write_pending(self, conn: sa.Connection, burst: _Burst) -> None:
        if not burst.pending:
            return
        # a savepoint lets a primary-key clash (the id is stored under another session) be undone
        # without losing the counter locks
        nested = conn.begin_nested()
        try:
            self._insert_rows(conn, [self._row(e) for e in burst.pending])
        except BaseException:
            nested.rollback()
            raise
        nested.commit()
        now = self._ts(datetime.now(_UTC))
        touched = [{"sid": sid, "n": n, "now": now} for sid, n in burst.seq.items() if sid in burst.by_session]
        conn.execute(sa.text("UPDATE asm_session_sequences SET last_sequence = :n, updated_at = :now "
                             "WHERE session_id = :sid"), touched)
        if self._pg:
            for t in touched:
                conn.execute(sa.text("SELECT pg_notify(:ch, :sid)"), {"ch": NOTIFY_CHANNEL, "sid": t["sid"]})

    def _resolve_conflicts(self, conn: sa.Connection, burst: _Burst) -> None:
        """Some buffered ids are already stored under another session (ids are global primary
        keys): drop those and renumber the rest from the locked counters."""
        ids = [e.id for e in burst.pending]
        taken: set[str] = set()
        for i in range(0, len(ids), 500):
            taken.update(conn.execute(sa.select(S.events.c.id).where(S.events.c.id.in_(ids[i:i + 500]))).scalars())
        if not taken:
            raise AsmError("storage_error", "Failed to append events: unique constraint violated")
        log.warning("SqlStore: %d buffered event id(s) already stored under another session; "
                    "dropped them and renumbered the rest of the buffer", len(taken))
        base = {sid: n - len(lst) for sid, lst in burst.by_session.items() for n in (burst.seq[sid],)}
        kept = [e for e in burst.pending if e.id not in taken]
        burst.pending, burst.by_session, burst.ids = [], {}, {}
        for sid, b in base.items():
            burst.seq[sid] = b
        for e in kept:
            n = burst.seq[e.session_id] + 1
            burst.seq[e.session_id] = n
            e2 = with_sequence(e, n)
            burst.pending.append(e2)
            burst.by_session.setdefault(e.session_id, []).append(e2)
            burst.ids[e.id] = e2

    # -- write-behind timer --------------------------------------------------------------------
    def _schedule(self, burst: _Burst) -> None:
        with self._timer_cond:
            self._open_bursts.add(burst)
            start_flusher(self, "asm-sqlstore-flush", burst.opened + self.flush_interval_s)

    def _unschedule(self, burst: _Burst) -> None:
        with self._timer_cond:
            self._open_bursts.discard(burst)

    def _abandon(self, burst: _Burst) -> None:
        """Drop a burst whose staging failed: roll back its open transaction, forget its rows."""
        if burst.conn is not None:
            burst.conn.rollback()
            burst.conn.close()
        burst._reset()
        self._unschedule(burst)

    def _due(self) -> tuple[list[_Burst], float | None]:
        now = time.monotonic()
        due, wait = [], None
        for b in self._open_bursts:
            left = b.opened + self.flush_interval_s - now
            if left <= 0:
                due.append(b)
            elif wait is None or left < wait:
                wait = left
        return due, wait

    def _flush_due(self, due: list[_Burst]) -> bool:
        """Commit the due bursts (flusher thread; see ``_base.flusher_loop``). True when one was
        busy (locked by a writer): the flusher tries again shortly."""
        retry = False
        for b in due:
            if not b.lock.acquire(timeout=0.005):  # busy: try again shortly
                retry = True
                continue
            try:
                if b.conn is not None and time.monotonic() - b.opened >= self.flush_interval_s:
                    self._retry(lambda: self._commit(b))
            except Exception as exc:  # nobody to raise to: log, keep the timer alive
                log.error("SqlStore: background flush failed: %s", exc)
            finally:
                b.lock.release()
        return retry

    def _stage_all_or_nothing(self, burst: _Burst, events: Sequence[Event]) -> list[Event]:
        """``_stage`` that leaves the buffer untouched when it fails part-way (e.g. while locking a
        second session's counter)."""
        mark = (len(burst.pending), dict(burst.seq), {k: len(v) for k, v in burst.by_session.items()})
        try:
            return self._stage(burst, events)
        except BaseException:
            n, seq, lens = mark
            for e in burst.pending[n:]:
                burst.ids.pop(e.id, None)
            del burst.pending[n:]
            for sid in list(burst.by_session):
                if sid in lens:
                    del burst.by_session[sid][lens[sid]:]
                else:
                    del burst.by_session[sid]
            # counters locked for nothing stay locked until the commit (which skips them)
            raise

    def _append_multi(self, sids: list[str], fn: Callable[[_Burst], Any],
                      extra: Callable[[sa.Connection], None] | None = None) -> Any:
        """PostgreSQL, several sessions at once: flush their bursts, lock every counter (sorted
        order: no deadlock) in the first burst's transaction, stage and commit at once."""
        bursts = [self._burst_for(s) for s in sorted(sids)]
        for b in bursts:
            b.lock.acquire()
        try:
            self._check_open()
            for b in bursts:
                self._commit(b)
            main = bursts[0]
            for sid in sorted(sids):
                self._lock_session(main, sid)
            try:
                out = fn(main)
            except BaseException:
                self._abandon(main)
                raise
            self._commit(main, extra)
            return out
        finally:
            for b in reversed(bursts):
                b.lock.release()

    def _flush_all(self) -> None:
        with self._timer_cond:
            bursts = list(self._open_bursts)
        errors = []
        for b in bursts:
            with b.lock:
                try:
                    self._retry(lambda: self._commit(b))
                except AsmError as exc:
                    errors.append(exc)
        if bursts:
            self._notify()
        if errors:
            raise errors[0]
