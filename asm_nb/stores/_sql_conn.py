"""SqlStore's connections: the URL normalisation, the engines (a SQLite file in WAL mode with
``BEGIN IMMEDIATE`` writes, or PostgreSQL through psycopg 3), ``migrate``/``downgrade`` and the
``LISTEN asm_events`` loop that wakes long-poll waiters (docs/stores.md, SqlStore).

Split out of ``stores/sql.py``, which re-exports ``normalize_url``, ``migrate``, ``downgrade``
and ``NOTIFY_CHANNEL``.
"""

from __future__ import annotations

import logging
import weakref
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event as sa_event

from .. import config
from ..core.errors import AsmError
from . import _codec
from . import _sql_schema as S
from ._sql_rows import _json_text

if TYPE_CHECKING:
    from .sql import SqlStore

log = logging.getLogger("asm_nb.stores.sql")  # the logger keeps the name it had before the split

NOTIFY_CHANNEL = "asm_events"


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
