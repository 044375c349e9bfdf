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
(``_sql_query.py``). Connections, migrations and the LISTEN loop are in ``_sql_conn.py``, row
conversions in ``_sql_rows.py``, the write-behind bursts in ``_sql_writes.py`` (``SqlWriteBehind``)
and artifact records / maintenance hooks in ``_sql_records.py`` (``SqlRecords``): this class's
bases. ``inline_safe = False``: the async runtime calls it from worker threads.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import weakref
from collections import OrderedDict
from typing import Any

import sqlalchemy as sa

from ..core.errors import AsmError
from ..core.events import Event
from ..core.run import Run, RunStatus
from ..core.session import Session, SessionStatus
from . import _sql_schema as S
from ._tolerant import parse_rows
from ._base import (EventQuery, check_event, check_limit, check_offset, check_run, check_session, check_session_id,
                    check_status, interrupted_runs, merge_session, parse_payload, track_open_stores, with_owner,
                    with_sequence)
# the connections, rows, write-behind layer and records live in _sql_conn / _sql_rows /
# _sql_writes / _sql_records; the names other modules and tests import from here are re-exported
from ._sql_conn import NOTIFY_CHANNEL, _listen_loop, _make_engine, downgrade, migrate, normalize_url
from ._sql_rows import _upsert, event_from_row, run_from_row, run_values, session_from_row, session_values
from ._sql_records import SqlRecords
from ._sql_writes import _Burst, _Known

__all__ = ["SqlStore", "migrate", "downgrade", "normalize_url", "NOTIFY_CHANNEL"]

log = logging.getLogger(__name__)

DEFAULT_FLUSH_INTERVAL_MS = 50
DEFAULT_MAX_BUFFER_EVENTS = 5_000


class SqlStore(SqlRecords):
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
    #: reads work after ``close()`` (the engine reconnects): ``run_once``'s ``RunResult.events``
    #: loads from the database when asked instead of reading every event back at the end of a run
    lazy_result_events = True

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

    # -- sessions ---------------------------------------------------------------------------
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
                        self._abandon(burst)
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

    # -- LISTEN/NOTIFY (PostgreSQL) ---------------------------------------------------------------
    def _ensure_listener(self) -> None:
        if self._listener is not None and self._listener.is_alive():
            return
        with self._bursts_lock:
            if self._closed or (self._listener is not None and self._listener.is_alive()):
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
            listener = threading.Thread(target=_listen_loop, args=(weakref.ref(self), pgconn),
                                        name="asm-sqlstore-listen", daemon=True)
            listener.start()
            # published under the lock once started: close() reads them under the same lock, so
            # it never joins a thread that is not started yet
            self._listen_conn, self._listener = pgconn, listener

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
        with self._bursts_lock:  # a waiter's _ensure_listener may be starting it right now
            listener, listen_conn = self._listener, self._listen_conn
        if listener is not None:
            listener.join(2.0)
        if listen_conn is not None:
            try:
                listen_conn.close()
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


_OPEN_STORES: "weakref.WeakSet[SqlStore]" = track_open_stores(log, "SqlStore", repr)
