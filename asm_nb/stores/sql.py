"""``SqlStore``: the SessionStore on SQLAlchemy 2 Core — a SQLite file or PostgreSQL (psycopg 3)
through one code path (docs/stores.md, SqlStore).

``open_store("sqlite:///runs.db")`` / ``open_store("postgresql://user@host/db")`` (the bare
``postgresql://`` and ``postgres://`` schemes are mapped to ``postgresql+psycopg://``).

Writes of events are batched ("write-behind", like LocalStore): the first append to a session
after an idle period opens a write transaction and locks the session's counter row in
``asm_session_sequences`` (an upsert ``… ON CONFLICT DO UPDATE … RETURNING last_sequence``:
one statement, no read-then-write race). While the transaction is open, numbers come from
memory and events collect in a buffer; after ``flush_interval_ms`` (50 ms), at
``max_buffer_events``, on ``flush()``/``flush(payload)``/``close()`` or at interpreter exit the
buffer is inserted with one ``executemany``, the counter is updated and the transaction commits:
**one transaction per flush, not per event**. Another process appending to the same session waits
on the row lock and then continues from the committed counter, so numbers stay unique and
gap-free across processes. In-process readers see buffered events at once.

- PostgreSQL: one transaction (one pooled connection) per session being written, so writers of
  different sessions never wait for each other; a batch spanning sessions locks their counters in
  sorted order. Waiting for new events uses ``LISTEN asm_events`` (the commit sends
  ``pg_notify('asm_events', session_id)``).
- SQLite: WAL mode, ``busy_timeout`` and ``BEGIN IMMEDIATE`` for writes; all sessions share one
  write transaction (SQLite has a single writer anyway); busy errors are retried
  ``sqlite_busy_retry_attempts`` times, ``sqlite_busy_retry_sleep_ms`` apart. Waiting polls.

The schema is versioned (``_sql_schema.MIGRATIONS``, recorded in ``asm_schema_migrations``) and
migrated on open; a database newer than this code → ``migration_required``. ``store.query``
and ``store.maintenance`` answer the QueryAPI and Maintenance protocols with SQL
(``_sql_query.py``). ``inline_safe = False``: the async runtime calls it from worker threads.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import weakref
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.exc import IntegrityError, OperationalError

from .. import config
from ..core.errors import AsmError
from ..core.events import Event, EventType
from ..core.run import Run, RunStatus
from ..core.serialization import format_datetime
from ..core.session import Session, SessionStatus
from . import _codec
from . import _sql_schema as S
from ._tolerant import parse_rows
from ._base import (EventQuery, StoreBase, check_event, check_limit, check_offset, check_run, check_session, check_session_id,
                    check_status, interrupted_runs, merge_session, parse_payload, start_flusher, track_open_stores,
                    with_owner, with_sequence)

__all__ = ["SqlStore", "migrate", "downgrade", "normalize_url", "NOTIFY_CHANNEL"]

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "asm_events"
DEFAULT_FLUSH_INTERVAL_MS = 50
DEFAULT_MAX_BUFFER_EVENTS = 5_000
_KNOWN_SESSIONS = 256  # id caches kept per process (LRU)
_BY_VALUE = {t.value: t for t in EventType}
_UTC = timezone.utc
_EVENT_COLS = ("id", "type", "timestamp", "session_id", "run_id", "sequence_number", "data", "metadata",
               "schema_version", "provider", "correlation_id")


def normalize_url(url: str) -> str:
    """``postgresql://`` / ``postgres://`` → ``postgresql+psycopg://`` (psycopg 3); others unchanged."""
    if not isinstance(url, str) or not url.strip():
        raise AsmError("validation_error", f"SqlStore needs a URL, got: {url!r}")
    url = url.strip()
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    if url.startswith("postgres+"):
        return "postgresql+" + url[len("postgres+"):]
    return url


def _json_text(value: Any) -> str:
    return _codec.dumps(value).decode("utf-8")


def _ts_text(dt: datetime) -> str:
    if dt.tzinfo is _UTC:
        return dt.isoformat(timespec="microseconds")[:-6] + "Z"
    return format_datetime(dt)


def _is_busy(exc: BaseException) -> bool:
    text = str(getattr(exc, "orig", exc)).lower()
    return "database is locked" in text or "database is busy" in text or "database table is locked" in text


def _make_engine(url: str, pool_size: int, connect_args: dict | None, echo: bool) -> tuple[sa.Engine, sa.Engine]:
    """(write engine, read engine). Same engine on PostgreSQL; on SQLite the write engine opens
    transactions with ``BEGIN IMMEDIATE`` and the read engine runs in autocommit."""
    common = dict(json_serializer=_json_text, json_deserializer=_codec.loads, echo=echo)
    u = sa.make_url(url)
    if u.get_backend_name() == "postgresql":
        args = {"options": "-c TimeZone=UTC", **(connect_args or {})}
        eng = sa.create_engine(u, pool_size=pool_size, max_overflow=pool_size * 2, pool_pre_ping=True,
                               connect_args=args, **common)
        return eng, eng
    if u.get_backend_name() != "sqlite":
        raise AsmError("validation_error", f"SqlStore supports sqlite:// and postgresql:// URLs, got {url!r}")
    db = u.database or ""
    if db in ("", ":memory:") or db.startswith("file::memory:"):
        raise AsmError("validation_error", "SqlStore needs a SQLite file ('sqlite:///path.db'); "
                                           "for an in-memory store use 'memory://'")
    busy_ms = max(5_000, int(config.get("sqlite_busy_retry_attempts")) * int(config.get("sqlite_busy_retry_sleep_ms")))
    args = {"check_same_thread": False, "timeout": busy_ms / 1000.0, **(connect_args or {})}

    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {busy_ms}")
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
        finally:
            cur.close()

    writer = sa.create_engine(u, connect_args=args, pool_size=pool_size, max_overflow=pool_size, **common)
    reader = sa.create_engine(u, connect_args=args, pool_size=pool_size, max_overflow=pool_size * 2, **common)
    sa_event.listen(writer, "connect", on_connect)
    sa_event.listen(reader, "connect", on_connect)
    sa_event.listen(writer, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    sa_event.listen(reader, "begin", lambda conn: None)  # autocommit reads (WAL snapshot per statement)
    return writer, reader


# --------------------------------------------------------------------------------------------
# row conversions (docs/stores.md, SqlStore)


def _dict(v: Any) -> dict:
    return v if isinstance(v, dict) else {}


def event_from_row(r: Any) -> Event:
    """An ``Event`` from an ``asm_events`` row (mapping)."""
    return Event(r["id"], _BY_VALUE[r["type"]], r["timestamp"], r["session_id"], r["run_id"], _dict(r["data"]),
                 _dict(r["metadata"]), r["sequence_number"], r["schema_version"] or 1, r["provider"],
                 r["correlation_id"])


def session_from_row(r: Any) -> Session:
    """A ``Session`` from an ``asm_sessions`` row."""
    return Session(id=r["id"], agent_id=r["agent_id"], status=SessionStatus(r["status"]),
                   parent_session_id=r["parent_session_id"], metadata=_dict(r["metadata"]),
                   context=_dict(r["context"]), tags=list(r["tags"] or []), created_at=r["created_at"],
                   updated_at=r["updated_at"], deleted_at=r["deleted_at"])


def run_from_row(r: Any) -> Run:
    """A ``Run`` from an ``asm_runs`` row."""
    cost = r["cost_usd"]
    return Run(id=r["id"], session_id=r["session_id"], status=RunStatus(r["status"]), input=r["input"],
               output=r["output"], error=r["error"], metadata=_dict(r["metadata"]),
               turn_count=r["turn_count"] or 0, token_usage=_dict(r["token_usage"]),
               cost_usd=None if cost is None else float(cost), started_at=r["started_at"],
               ended_at=r["ended_at"], provider=r["provider"], provider_metadata=_dict(r["provider_metadata"]))


def session_values(s: Session) -> dict[str, Any]:
    d = s.to_dict()
    return {"id": s.id, "agent_id": s.agent_id, "status": s.status.value, "parent_session_id": s.parent_session_id,
            "metadata": d["metadata"] or {}, "context": d["context"] or {}, "tags": d["tags"] or [],
            "created_at": s.created_at, "updated_at": s.updated_at, "deleted_at": s.deleted_at}


def run_values(r: Run) -> dict[str, Any]:
    d = r.to_dict()
    return {"id": r.id, "session_id": r.session_id, "status": r.status.value, "input": d["input"],
            "output": d["output"], "error": d["error"], "metadata": d["metadata"] or {},
            "turn_count": r.turn_count if r.turn_count is not None else 0, "token_usage": d["token_usage"] or {},
            "started_at": r.started_at, "ended_at": r.ended_at, "provider": r.provider,
            "provider_metadata": d["provider_metadata"] or {}, "cost_usd": r.cost_usd}


def _upsert(conn: sa.Connection, table: sa.Table, values: dict[str, Any]) -> None:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(table).values(**values)
    conn.execute(stmt.on_conflict_do_update(index_elements=["id"],
                                            set_={k: stmt.excluded[k] for k in values if k != "id"}))


# --------------------------------------------------------------------------------------------
# write-behind bursts


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


class SqlStore(StoreBase):
    """A SessionStore in a SQL database (SQLite file or PostgreSQL).

    >>> store = SqlStore("sqlite:////tmp/asm-doc.db")                    # doctest: +SKIP
    >>> store.append_event_with_sequence(event).sequence_number          # doctest: +SKIP
    1

    Options: ``migrate`` ``"auto"`` (default: apply missing migrations on open) or ``"never"``
    (only check: missing tables/columns → ``migration_required``); ``flush_interval_ms`` (50);
    ``max_buffer_events`` (5 000); ``pool_size`` (5); ``connect_args`` (passed to the driver);
    ``echo`` (log SQL).
    """

    inline_safe = False
    #: appends stage rows in the write-behind buffer (the I/O happens once per burst and in the
    #: flusher), so the runtime calls them on its loop: no thread hop per event.
    inline_append_safe = True

    def __init__(self, url: str, *, migrate: str = "auto", flush_interval_ms: int | float = DEFAULT_FLUSH_INTERVAL_MS,
                 max_buffer_events: int = DEFAULT_MAX_BUFFER_EVENTS, pool_size: int = 5,
                 connect_args: dict | None = None, echo: bool = False,
                 migrations: list[S.Migration] | None = None) -> None:
        if migrate not in ("auto", "never"):
            raise AsmError("validation_error", f"migrate must be 'auto' or 'never', got: {migrate!r}")
        if isinstance(flush_interval_ms, bool) or not isinstance(flush_interval_ms, (int, float)) \
                or flush_interval_ms < 0:
            raise AsmError("validation_error", "flush_interval_ms must be a non-negative number")
        if isinstance(max_buffer_events, bool) or not isinstance(max_buffer_events, int) or max_buffer_events <= 0:
            raise AsmError("validation_error", "max_buffer_events must be a positive integer")
        self.url = normalize_url(url)
        self._engine, self._reader = _make_engine(self.url, pool_size, connect_args, echo)
        self.dialect = self._engine.dialect.name
        self._pg = self.dialect == "postgresql"
        self.flush_interval_s = flush_interval_ms / 1000.0
        self.max_buffer_events = max_buffer_events
        try:
            if migrate == "auto":
                self._retry(lambda: S.apply_migrations(self._engine, self._safe_url(), migrations))
            S.check_schema(self._reader, self._safe_url(), migrations)
        except AsmError:
            self._dispose()
            raise
        except Exception as exc:
            self._dispose()
            raise AsmError("storage_error", f"cannot open SqlStore at {self._safe_url()}: {exc}") from exc
        self._closed = False
        self._cond = threading.Condition(threading.Lock())
        self._poll_s = 0.5 if self._pg else 0.05
        self._bursts_lock = threading.Lock()
        self._bursts: dict[str, _Burst] = {}
        self._global = None if self._pg else _Burst()
        self._known: "OrderedDict[str, _Known]" = OrderedDict()
        self._known_lock = threading.Lock()
        self._timer_cond = threading.Condition(threading.Lock())
        self._open_bursts: set[_Burst] = set()
        self._flusher: threading.Thread | None = None
        self._listener: threading.Thread | None = None
        self._listen_conn: Any = None
        self._ins_sql = self._insert_sql()
        self._multi_sql: dict[int, str] = {}
        from ._sql_query import SqlMaintenance, SqlQueryAPI

        self.query = SqlQueryAPI(self)
        self.maintenance = SqlMaintenance(self)
        _OPEN_STORES.add(self)
        self._reaped_at = 0.0
        self._reap_interrupted(force=True)

    def _where(self) -> str:
        """The database URL with its password hidden (for warnings)."""
        try:
            return sa.engine.make_url(str(self.url)).render_as_string(hide_password=True)
        except Exception:  # noqa: BLE001 - a warning must not fail
            return "the SQL store"

    def __repr__(self) -> str:
        return f"SqlStore({self._safe_url()!r})"

    def _safe_url(self) -> str:
        return sa.make_url(self.url).render_as_string(hide_password=True)

    def _dispose(self) -> None:
        self._engine.dispose()
        if self._reader is not self._engine:
            self._reader.dispose()

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

    def _read(self, fn: Callable[[sa.Connection], Any]) -> Any:
        with self._reader.connect() as conn:
            return fn(conn)

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

    # -- sessions ---------------------------------------------------------------------------
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

    def save_session(self, session: Session) -> None:
        """Upsert by id (the whole row is replaced)."""
        check_session(session)
        values = session_values(session)
        self._write(lambda c: _upsert(c, S.sessions, values), "save_session")

    def get_or_create_named_session(self, name: str, session: Session) -> tuple[Session, bool]:
        """``(newest session whose metadata name is name, False)`` or ``(session saved, True)``,
        atomically across processes: SQLite's write transaction is exclusive (``BEGIN IMMEDIATE``);
        PostgreSQL takes a transaction-scoped advisory lock on the name first."""
        check_session(session)
        if not isinstance(name, str) or not name:
            raise AsmError("validation_error", "session name must be a non-empty string")
        values = session_values(session)
        out: list = []

        def fn(conn: sa.Connection) -> None:
            out.clear()
            t = S.sessions
            if self._pg:
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
                             {"k": "asm_session_name:" + name})
                name_expr = sa.text("(metadata::jsonb ->> 'name') = :name")
            else:
                name_expr = sa.text("json_extract(metadata, '$.name') = :name")
            row = conn.execute(sa.select(t).where(name_expr.bindparams(name=name))
                               .order_by(t.c.created_at.desc(), t.c.id.desc()).limit(1)).mappings().first()
            if row is not None:
                out.append((session_from_row(row), False))
                return
            _upsert(conn, t, values)
            out.append((session, True))

        self._write(fn, "get_or_create_named_session")
        return out[0]

    def get_session(self, session_id: str) -> Session:
        row = self._read(lambda c: c.execute(sa.select(S.sessions).where(S.sessions.c.id == session_id))
                         .mappings().first()) if isinstance(session_id, str) else None
        if row is None:
            raise AsmError("session_not_found", f"Session not found: {session_id}")
        return session_from_row(row)

    def list_sessions(self, *, status: Any = None, agent_id: str | None = None, limit: int | None = None,
                      offset: int = 0) -> list[Session]:
        """All sessions (soft-deleted included) by ``created_at`` then id."""
        status = check_status(status, SessionStatus)
        limit = check_limit(limit)
        offset = check_offset(offset)
        t = S.sessions
        q = sa.select(t).order_by(t.c.created_at, t.c.id)
        if status is not None:
            q = q.where(t.c.status == status.value)
        if agent_id is not None:
            q = q.where(t.c.agent_id == agent_id)
        if offset:
            q = q.offset(offset)
        if limit is not None:
            q = q.limit(limit)
        return parse_rows(self._read(lambda c: c.execute(q).mappings().all()), session_from_row, what="session",
                          where=f"{self._where()} table asm_sessions")

    def list_session_ids(self) -> list[str]:
        """Ids of every session with a row, a run or an event, sorted."""
        self.flush()
        q = sa.union(sa.select(S.sessions.c.id), sa.select(S.runs.c.session_id),
                     sa.select(S.events.c.session_id).distinct())
        return sorted(self._read(lambda c: c.execute(q).scalars().all()))

    def delete_session(self, session_id: str) -> None:
        """Idempotent; deletes the session's events, runs, artifact records, counter and row in one
        transaction."""
        self._check_open()
        burst = self._burst_for(session_id) if isinstance(session_id, str) else None

        def cascade(conn: sa.Connection) -> None:
            for t, col in ((S.events, S.events.c.session_id), (S.runs, S.runs.c.session_id),
                           (S.artifacts, S.artifacts.c.session_id), (S.sequences, S.sequences.c.session_id),
                           (S.sessions, S.sessions.c.id)):
                conn.execute(sa.delete(t).where(col == session_id))

        try:
            if burst is None:
                return
            with burst.lock:
                self._retry(lambda: self._commit(burst))
                self._retry(lambda: self._commit(burst, cascade))
                with self._known_lock:
                    self._known.pop(session_id, None)
        except AsmError as exc:
            raise AsmError("storage_error", f"delete_session failed: {exc.message}") from exc
        except Exception as exc:
            raise AsmError("storage_error", f"delete_session failed: {exc!r}") from exc

    # -- runs -------------------------------------------------------------------------------
    def save_run(self, run: Run) -> None:
        """Upsert by id."""
        check_run(run)
        if self._pg and run.status in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED):
            # a run is final only after its events: commit the session's buffered events first
            burst = self._burst_for(run.session_id)
            with burst.lock:
                self._check_open()
                self._retry(lambda: self._commit(burst))
        values = run_values(with_owner(run))
        self._write(lambda c: _upsert(c, S.runs, values), "save_run")

    def get_run(self, run_id: str) -> Run:
        row = self._read(lambda c: c.execute(sa.select(S.runs).where(S.runs.c.id == run_id)).mappings().first()) \
            if isinstance(run_id, str) else None
        if row is None:
            raise AsmError("run_not_found", f"Run not found: {run_id}")
        return run_from_row(row)

    def list_runs(self, session_id: str | None, *, status: Any = None, limit: int | None = None) -> list[Run]:
        """Runs of one session (``None``: of every session) by ``started_at`` then id. Runs whose
        owner process is gone are marked interrupted first."""
        self._reap_interrupted()
        status = check_status(status, RunStatus)
        limit = check_limit(limit)
        t = S.runs
        q = sa.select(t).order_by(t.c.started_at, t.c.id)
        if session_id is not None:
            q = q.where(t.c.session_id == session_id)
        if status is not None:
            q = q.where(t.c.status == status.value)
        if limit is not None:
            q = q.limit(limit)
        return parse_rows(self._read(lambda c: c.execute(q).mappings().all()), run_from_row, what="run",
                          where=f"{self._where()} table asm_runs")

    def _reap_interrupted(self, force: bool = False) -> None:
        """Mark runs whose owner process is gone failed (``interrupted``); at most once a second."""
        now = time.monotonic()
        if self._closed or (not force and now - self._reaped_at < 1.0):
            return
        self._reaped_at = now
        t = S.runs
        q = sa.select(t).where(t.c.status.in_([RunStatus.PENDING.value, RunStatus.RUNNING.value]))
        try:
            rows = self._read(lambda c: c.execute(q).mappings().all())
        except Exception as exc:  # a read problem surfaces in the caller's own query
            log.debug("listing unfinished runs failed: %r", exc)
            return
        if rows:
            interrupted_runs(self, [run_from_row(r) for r in rows])

    def get_active_run(self, session_id: str) -> Run | None:
        """The ``running`` run with the latest ``started_at`` (ties: greatest id), or None."""
        t = S.runs
        q = (sa.select(t).where(t.c.session_id == session_id, t.c.status == RunStatus.RUNNING.value)
             .order_by(t.c.started_at.desc(), t.c.id.desc()).limit(1))
        row = self._read(lambda c: c.execute(q).mappings().first())
        return None if row is None else run_from_row(row)

    # -- artifact records (the registry's table; used by Maintenance) ---------------------------
    def save_artifact_record(self, record: dict) -> None:
        """Upsert an artifact metadata record (the record fields of docs/stores.md, artifacts; missing required ones get
        empty defaults: ``byte_size`` 0, ``checksum_sha256``/``storage_*`` "", ``metadata`` {})."""
        if not isinstance(record, dict) or not isinstance(record.get("id"), str) or not record["id"]:
            raise AsmError("validation_error", "artifact record must be a dict with a non-empty string id")
        if not isinstance(record.get("key"), str) or not record["key"]:
            raise AsmError("validation_error", "missing required artifact field: key")
        values = {"id": record["id"], "session_id": record.get("session_id"), "run_id": record.get("run_id"),
                  "key": record["key"], "content_type": record.get("content_type"),
                  "byte_size": int(record.get("byte_size") or 0),
                  "checksum_sha256": record.get("checksum_sha256") or "",
                  "storage_backend": record.get("storage_backend") or "",
                  "storage_ref": record.get("storage_ref") or "", "metadata": record.get("metadata") or {},
                  "created_at": record.get("created_at") or datetime.now(_UTC),
                  "deleted_at": record.get("deleted_at")}
        self._write(lambda c: _upsert(c, S.artifacts, values), "save_artifact_record")

    def list_artifact_records(self, session_id: str | None = None) -> list[dict]:
        """Artifact records (all, or of one session; soft-deleted included) by ``created_at``
        then id, as dicts with ISO timestamps."""
        t = S.artifacts
        q = sa.select(t).order_by(t.c.created_at, t.c.id)
        if session_id is not None:
            q = q.where(t.c.session_id == session_id)
        rows = self._read(lambda c: c.execute(q).mappings().all())
        return [{**dict(r), "created_at": format_datetime(r["created_at"]),
                 "deleted_at": format_datetime(r["deleted_at"])} for r in rows]

    def delete_artifact_record(self, record_id: str) -> None:
        """Remove an artifact record (idempotent)."""
        self._write(lambda c: c.execute(sa.delete(S.artifacts).where(S.artifacts.c.id == record_id)),
                    "delete_artifact_record")

    # -- maintenance hooks ----------------------------------------------------------------------
    def delete_events(self, session_id: str, event_ids: Iterable[str]) -> int:
        """Delete stored events of a session (pruning); the counter is left as is."""
        ids = list(event_ids)
        if not ids:
            return 0
        burst = self._burst_for(session_id)
        box = [0]

        def delete(conn: sa.Connection) -> None:
            for i in range(0, len(ids), 500):
                res = conn.execute(sa.delete(S.events).where(S.events.c.session_id == session_id,
                                                             S.events.c.id.in_(ids[i:i + 500])))
                box[0] += res.rowcount or 0

        with burst.lock:
            self._retry(lambda: self._commit(burst))
            self._retry(lambda: self._commit(burst, delete))
        return box[0]

    def sequence_counters(self) -> dict[str, int]:
        """``{session_id: last_sequence}`` of every counter row."""
        self.flush()
        rows = self._read(lambda c: c.execute(sa.select(S.sequences.c.session_id, S.sequences.c.last_sequence)).all())
        return {sid: int(n) for sid, n in rows}

    def delete_sequence_counter(self, session_id: str) -> None:
        """Delete a counter, only when the session has no events."""
        def delete(conn: sa.Connection) -> None:
            conn.execute(sa.delete(S.sequences).where(
                S.sequences.c.session_id == session_id,
                ~sa.exists().where(S.events.c.session_id == session_id)))

        self._write(delete, "delete_sequence_counter")

    # -- events -----------------------------------------------------------------------------
    def append_event_with_sequence(self, event: Event) -> Event:
        """Store one event and return it with its number (or the originally stored event for an
        id already stored). While the session's counter is locked this is memory-only."""
        check_event(event)
        sid = event.session_id
        burst = self._burst_for(sid)
        stored = None
        with burst.lock:
            last = burst.seq.get(sid)
            if last is not None and not self._closed:
                stored = burst.ids.get(event.id)
                if stored is None:
                    known = self._known.get(sid)
                    if known is None or event.id not in known.ids:
                        last += 1
                        burst.seq[sid] = last
                        stored = with_sequence(event, last)
                        burst.ids[event.id] = stored
                        burst.pending.append(stored)
                        lst = burst.by_session.get(sid)
                        if lst is None:
                            burst.by_session[sid] = [stored]
                        else:
                            lst.append(stored)
                        if len(burst.pending) >= self.max_buffer_events:
                            self._commit(burst)
        if stored is None:
            return self._append([event], single=True)[0]
        if self._waiters:
            self._notify()
        return stored

    def _append(self, events: list[Event], single: bool) -> list[Event]:
        self._check_open()
        sids = list(dict.fromkeys(e.session_id for e in events))
        try:
            if len(sids) == 1 or self._global is not None:
                burst = self._burst_for(sids[0])
                with burst.lock:
                    self._check_open()
                    out = self._retry(lambda: self._stage_all_or_nothing(burst, events))
                    if len(burst.pending) >= self.max_buffer_events:
                        self._commit(burst)
            else:
                out = self._append_multi(sids, lambda burst: self._stage(burst, events))
        except AsmError:
            raise
        except Exception as exc:
            what = "event" if single else "events"
            raise AsmError("storage_error", f"Failed to append {what}: {exc!r}") from exc
        self._notify()
        return out

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
                if main.conn is not None:
                    main.conn.rollback()
                    main.conn.close()
                main._reset()
                self._unschedule(main)
                raise
            self._commit(main, extra)
            return out
        finally:
            for b in reversed(bursts):
                b.lock.release()

    def _select_events(self, session_id: str, query: EventQuery, limit: int | None) -> list[Event]:
        t = S.events
        q = sa.select(t).where(t.c.session_id == session_id)
        if query.run_id is not None:
            q = q.where(t.c.run_id == query.run_id)
        if query.types is not None:
            q = q.where(t.c.type.in_(sorted(x.value for x in query.types)))
        if query.since is not None:
            q = q.where(t.c.timestamp >= query.since)
        if query.after is not None:
            q = q.where(t.c.sequence_number > query.after)
        if query.before is not None:
            q = q.where(t.c.sequence_number < query.before)
        q = q.order_by(t.c.sequence_number)
        if limit is not None:
            q = q.limit(limit)
        return [event_from_row(r) for r in self._read(lambda c: c.execute(q).mappings().all())]

    def _query(self, session_id: str, query: EventQuery) -> list[Event]:
        burst = self._global if self._global is not None else self._bursts.get(session_id)
        if burst is not None and burst.by_session.get(session_id):
            with burst.lock:
                buf = burst.by_session.get(session_id)
                if buf:
                    # committed rows all precede the buffer (the counter is locked by us)
                    rows = self._select_events(session_id, query, None)
                    rows.extend(dataclasses.replace(query, limit=None).apply(buf))
                    return rows if query.limit is None else rows[:query.limit]
        return self._select_events(session_id, query, query.limit)

    def get_events(self, session_id: str, *, run_id: str | None = None, type: Any = None, since: Any = None,
                   after: int | None = None, before: int | None = None, limit: int | None = None,
                   wait_timeout_ms: int = 0) -> list[Event]:
        """Events of one session in ascending sequence, filtered (docs/stores.md, store contract); long-poll with
        ``wait_timeout_ms`` (PostgreSQL: woken by ``LISTEN``; SQLite: polling)."""
        if self._pg and isinstance(wait_timeout_ms, int) and wait_timeout_ms > 0 and not self._closed:
            self._ensure_listener()
        return super().get_events(session_id, run_id=run_id, type=type, since=since, after=after, before=before,
                                  limit=limit, wait_timeout_ms=wait_timeout_ms)

    def get_latest_sequence(self, session_id: str) -> int:
        """Highest sequence ever assigned for the session (0 when none)."""
        check_session_id(session_id)
        burst = self._global if self._global is not None else self._bursts.get(session_id)
        if burst is not None:
            n = burst.seq.get(session_id)
            if n is not None:
                return n
        v = self._read(lambda c: c.execute(sa.select(S.sequences.c.last_sequence)
                                           .where(S.sequences.c.session_id == session_id)).scalar())
        return int(v or 0)

    def flush(self, payload: Any = None) -> None:
        """Without a payload: commit every buffered event. With one: append its events, merge
        its session and upsert its run in one transaction (docs/stores.md, store contract)."""
        if payload is None:
            self._flush_all()
            return
        session, run, events = parse_payload(payload)
        self._check_open()
        svalues_given = session
        rvalues = run_values(with_owner(run))

        def write_rows(conn: sa.Connection) -> None:
            row = conn.execute(sa.select(S.sessions).where(S.sessions.c.id == svalues_given.id)).mappings().first()
            stored = None if row is None else session_from_row(row)
            _upsert(conn, S.sessions, session_values(merge_session(stored, svalues_given)))
            _upsert(conn, S.runs, rvalues)

        sids = list(dict.fromkeys([session.id, *(e.session_id for e in events)]))
        try:
            if len(sids) == 1 or self._global is not None:
                burst = self._burst_for(session.id)
                with burst.lock:
                    self._check_open()
                    self._retry(lambda: self._commit(burst))  # earlier appends commit on their own
                    try:
                        self._retry(lambda: self._stage(burst, events))
                    except BaseException:
                        if burst.conn is not None:
                            burst.conn.rollback()
                            burst.conn.close()
                        burst._reset()
                        self._unschedule(burst)
                        raise
                    self._commit(burst, write_rows)
            else:
                self._append_multi(sids, lambda b: self._stage(b, events), write_rows)
        except AsmError as exc:
            if exc.code == "storage_error" and not exc.message.startswith("flush failed"):
                raise AsmError("storage_error", f"flush failed: {exc.message}") from exc
            raise
        except Exception as exc:
            raise AsmError("storage_error", f"flush failed: {exc!r}") from exc
        self._notify()

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

    # -- LISTEN/NOTIFY (PostgreSQL) ---------------------------------------------------------------
    def _ensure_listener(self) -> None:
        if self._listener is not None and self._listener.is_alive():
            return
        with self._bursts_lock:
            if self._listener is not None and self._listener.is_alive():
                return
            try:
                raw = self._engine.raw_connection()
                pgconn = raw.driver_connection
                if pgconn is None:
                    raise RuntimeError("no driver connection")
                raw.detach()  # ours for good: not returned to the pool
                pgconn.autocommit = True
                pgconn.execute(f"LISTEN {NOTIFY_CHANNEL}")
            except Exception as exc:  # noqa: BLE001 - fall back to polling
                log.warning("SqlStore: LISTEN failed (%r); long-poll falls back to polling", exc)
                self._poll_s = 0.05
                return
            self._listen_conn = pgconn
            self._listener = threading.Thread(target=_listen_loop, args=(weakref.ref(self), pgconn),
                                              name="asm-sqlstore-listen", daemon=True)
            self._listener.start()

    # -- lifecycle --------------------------------------------------------------------------------
    def close(self) -> None:
        """Commit every buffer, stop the background threads, release the connections and wake
        waiters with ``[]``. Later writes raise ``storage_error``."""
        if self._closed:
            return
        self._closed = True
        errors = []
        bursts = ([self._global] if self._global is not None else []) + list(self._bursts.values())
        for b in bursts:
            with b.lock:
                try:
                    self._retry(lambda: self._commit(b))
                except AsmError as exc:
                    errors.append(exc)
        with self._timer_cond:
            self._open_bursts.clear()
            self._timer_cond.notify_all()
        self._notify_all()
        if self._listener is not None:
            self._listener.join(2.0)
        if self._listen_conn is not None:
            try:
                self._listen_conn.close()
            except Exception:  # noqa: BLE001
                pass
        self._dispose()
        _OPEN_STORES.discard(self)
        if errors:
            raise errors[0]

    def _notify_all(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _after_fork(self) -> None:
        """In a forked child: forget the parent's connections and buffers (the parent commits
        its own); the pools reconnect lazily."""
        self._engine.dispose(close=False)
        if self._reader is not self._engine:
            self._reader.dispose(close=False)
        self._bursts = {}
        self._bursts_lock = threading.Lock()
        if self._global is not None:
            self._global = _Burst()
        self._timer_cond = threading.Condition(threading.Lock())
        self._open_bursts = set()
        self._flusher = None
        self._listener = None
        self._listen_conn = None
        self._cond = threading.Condition(threading.Lock())
        self._known_lock = threading.Lock()


# --------------------------------------------------------------------------------------------
# module functions and background loops


def migrate(url: str, *, migrations: list[S.Migration] | None = None) -> list[str]:
    """Create or upgrade the schema at ``url`` (docs/stores.md, SqlStore); returns the migration names applied."""
    eng, reader = _make_engine(normalize_url(url), 1, None, False)
    try:
        return S.apply_migrations(eng, url, migrations)
    finally:
        eng.dispose()
        if reader is not eng:
            reader.dispose()


def downgrade(url: str) -> None:
    """Drop the SqlStore tables at ``url`` (the reference ``down()``), if they exist."""
    eng, reader = _make_engine(normalize_url(url), 1, None, False)
    try:
        S.drop_all(eng)
    finally:
        eng.dispose()
        if reader is not eng:
            reader.dispose()


def _listen_loop(store_ref: "weakref.ref[SqlStore]", pgconn: Any) -> None:
    """Wake long-poll waiters on every ``asm_events`` notification."""
    while True:
        store = store_ref()
        if store is None or store._closed:
            return
        del store
        try:
            got = False
            for _n in pgconn.notifies(timeout=0.25, stop_after=64):
                got = True
            if got:
                store = store_ref()
                if store is not None:
                    store._notify_all()
                del store
        except Exception as exc:  # noqa: BLE001
            store = store_ref()
            if store is not None and not store._closed:
                log.warning("SqlStore: LISTEN connection failed (%r); falling back to polling", exc)
                store._poll_s = 0.05
            return


_OPEN_STORES: "weakref.WeakSet[SqlStore]" = track_open_stores(log, "SqlStore", repr)
