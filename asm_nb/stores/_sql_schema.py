"""SqlStore schema (docs/stores.md, SqlStore) as SQLAlchemy Core tables, the column types shared by
SQLite and PostgreSQL, and the versioned migrations (docs/stores.md, SqlStore).

Migrations are a small ordered list of named steps. The versions applied are recorded in the
table ``asm_schema_migrations (version, name, applied_at)``; opening a store applies the missing
ones (PostgreSQL: under an advisory lock; SQLite: inside ``BEGIN IMMEDIATE``) and refuses a
database that records a version this code does not know (``migration_required``).

Imported only by the SqlStore modules (``stores/sql.py`` and its ``_sql_*`` parts; SQLAlchemy is loaded here, never by ``import asm_nb``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator

from ..core.errors import AsmError
from ..core.serialization import format_datetime, parse_datetime

__all__ = ["metadata", "sessions", "runs", "events", "sequences", "artifacts", "artifact_blobs", "schema_migrations", "Migration",
           "MIGRATIONS", "apply_migrations", "check_schema", "drop_all", "Timestamp", "PROBES", "MIGRATION_LOCK_ID"]

#: Advisory-lock key serializing migrations across PostgreSQL clients (any fixed 64-bit int).
MIGRATION_LOCK_ID = 0x61736D5F6E62  # "asm_nb"


class Timestamp(TypeDecorator):
    """Aware UTC datetimes: ``timestamptz`` on PostgreSQL; on SQLite fixed-width ISO text
    ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, so text order is time order (cursors depend on it)."""

    impl = sa.String(32)
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(sa.DateTime(timezone=True))
        return dialect.type_descriptor(sa.String(32))

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            value = parse_datetime(value)
        if dialect.name == "postgresql":
            return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
        return format_datetime(value)

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, datetime):
            return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return parse_datetime(value)


#: JSON maps: ``json`` on PostgreSQL (not ``jsonb``: it keeps the text, so key order survives a
#: round trip and frames built from a copy equal the original's), JSON text on SQLite.
Json = sa.JSON()

metadata = sa.MetaData()

sessions = sa.Table(
    "asm_sessions", metadata,
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("agent_id", sa.String(255), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("parent_session_id", sa.String(255)),
    sa.Column("metadata", Json),
    sa.Column("context", Json),
    sa.Column("tags", Json),
    sa.Column("created_at", Timestamp(), nullable=False),
    sa.Column("updated_at", Timestamp(), nullable=False),
    sa.Column("deleted_at", Timestamp()),
    sa.Index("asm_sessions_status_index", "status"),
    sa.Index("asm_sessions_agent_id_index", "agent_id"),
    sa.Index("asm_sessions_created_at_index", "created_at"),
    sa.Index("asm_sessions_deleted_at_index", "deleted_at"),
)

runs = sa.Table(
    "asm_runs", metadata,
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("session_id", sa.String(255), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("input", Json),
    sa.Column("output", Json),
    sa.Column("error", Json),
    sa.Column("metadata", Json),
    sa.Column("turn_count", sa.Integer, server_default="0"),
    sa.Column("token_usage", Json),
    sa.Column("started_at", Timestamp(), nullable=False),
    sa.Column("ended_at", Timestamp()),
    sa.Column("provider", sa.String(255)),
    sa.Column("provider_metadata", Json, nullable=False),
    sa.Column("cost_usd", sa.Float(precision=53)),
    sa.Index("asm_runs_session_id_status_index", "session_id", "status"),
    sa.Index("asm_runs_provider_index", "provider"),
    sa.Index("asm_runs_started_at_index", "started_at"),
)

events = sa.Table(
    "asm_events", metadata,
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("timestamp", Timestamp(), nullable=False),
    sa.Column("session_id", sa.String(255), nullable=False),
    sa.Column("run_id", sa.String(255)),
    sa.Column("sequence_number", sa.Integer, nullable=False),
    sa.Column("data", Json),
    sa.Column("metadata", Json),
    sa.Column("schema_version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("provider", sa.String(255)),
    sa.Column("correlation_id", sa.String(255)),
    sa.Index("asm_events_session_id_sequence_number_index", "session_id", "sequence_number", unique=True),
    sa.Index("asm_events_session_id_type_index", "session_id", "type"),
    sa.Index("asm_events_session_id_run_id_index", "session_id", "run_id"),
    sa.Index("asm_events_correlation_id_index", "correlation_id"),
    sa.Index("asm_events_provider_index", "provider"),
    sa.Index("asm_events_timestamp_index", "timestamp"),
)

sequences = sa.Table(
    "asm_session_sequences", metadata,
    sa.Column("session_id", sa.String(255), primary_key=True),
    sa.Column("last_sequence", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated_at", Timestamp()),
)

artifacts = sa.Table(
    "asm_artifacts", metadata,
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("session_id", sa.String(255)),
    sa.Column("run_id", sa.String(255)),
    sa.Column("key", sa.String(1024), nullable=False),
    sa.Column("content_type", sa.String(255)),
    sa.Column("byte_size", sa.BigInteger, nullable=False),
    sa.Column("checksum_sha256", sa.String(64), nullable=False),
    sa.Column("storage_backend", sa.String(64), nullable=False),
    sa.Column("storage_ref", sa.String(2048), nullable=False),
    sa.Column("metadata", Json, nullable=False),
    sa.Column("created_at", Timestamp(), nullable=False),
    sa.Column("deleted_at", Timestamp()),
    sa.Index("asm_artifacts_key_index", "key", unique=True),
    sa.Index("asm_artifacts_session_id_index", "session_id"),
    sa.Index("asm_artifacts_created_at_index", "created_at"),
)

#: Artifact bytes for SqlStore (Python addition): content-addressed, so a patch written twice is
#: stored once; records stay in ``asm_artifacts`` (``storage_backend "sql"``,
#: ``storage_ref "sql:sha256:<hex>"``). Created by migration 2.
artifact_blobs = sa.Table(
    "asm_artifact_blobs", metadata,
    sa.Column("checksum_sha256", sa.String(64), primary_key=True),
    sa.Column("byte_size", sa.BigInteger, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("created_at", Timestamp(), nullable=False),
)

# Kept out of ``metadata``: the data tables are the reference migration; this one is ours.
schema_migrations = sa.Table(
    "asm_schema_migrations", sa.MetaData(),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("applied_at", sa.String(32), nullable=False),
)

DATA_TABLES = (sessions, runs, events, sequences, artifacts)

#: Columns probed on open (docs/stores.md, SqlStore), in order.
PROBES = (("asm_sessions", "deleted_at"), ("asm_runs", "provider"), ("asm_runs", "provider_metadata"),
          ("asm_runs", "cost_usd"), ("asm_events", "provider"), ("asm_events", "correlation_id"),
          ("asm_session_sequences", "updated_at"), ("asm_artifacts", "id"))


@dataclass(frozen=True)
class Migration:
    """One schema step: ``version`` (1, 2, … in order), a ``name`` and ``up(connection)``."""

    version: int
    name: str
    up: Callable[[sa.Connection], None]


def _create_tables(conn: sa.Connection) -> None:
    metadata.create_all(conn, tables=list(DATA_TABLES), checkfirst=True)


#: The ordered list of migrations. Append new steps; never edit or reorder applied ones.
def _create_artifact_blobs(conn: sa.Connection) -> None:
    artifact_blobs.create(conn, checkfirst=True)


def _create_search_index(conn: sa.Connection) -> None:
    from ._sql_search import create_search_index

    create_search_index(conn)


MIGRATIONS: list[Migration] = [
    Migration(1, "create_asm_tables", _create_tables),
    Migration(2, "create_asm_artifact_blobs", _create_artifact_blobs),
    Migration(3, "create_asm_search_index", _create_search_index),
]


def _utc_text() -> str:
    return format_datetime(datetime.now(timezone.utc))


def applied_versions(conn: sa.Connection) -> dict[int, str]:
    """``{version: name}`` recorded in the database (empty without the migrations table)."""
    if not sa.inspect(conn).has_table(schema_migrations.name):
        return {}
    rows = conn.execute(sa.select(schema_migrations.c.version, schema_migrations.c.name)).all()
    return {int(v): n for v, n in rows}


def _refuse_newer(done: dict[int, str], known: list[Migration], url: str) -> None:
    known_versions = {m.version for m in known}
    newer = sorted(v for v in done if v not in known_versions)
    if newer:
        raise AsmError("migration_required",
                       f"the database at {url} has schema version {max(newer)}, newer than this asm_nb "
                       f"(knows up to {max(known_versions, default=0)}); upgrade asm_nb",
                       details={"db_versions": sorted(done), "code_versions": sorted(known_versions)})


def apply_migrations(engine: sa.Engine, url: str, migrations: list[Migration] | None = None) -> list[str]:
    """Apply the missing migrations in one transaction; returns the names applied. A database
    recording an unknown (newer) version → ``migration_required``."""
    migrations = sorted(MIGRATIONS if migrations is None else migrations, key=lambda m: m.version)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_ID})
        schema_migrations.create(conn, checkfirst=True)
        done = applied_versions(conn)
        _refuse_newer(done, migrations, url)
        applied = []
        for m in migrations:
            if m.version in done:
                continue
            m.up(conn)
            conn.execute(schema_migrations.insert().values(version=m.version, name=m.name, applied_at=_utc_text()))
            applied.append(m.name)
        return applied


def check_schema(engine: sa.Engine, url: str, migrations: list[Migration] | None = None) -> None:
    """The startup check without migrating: refuse a newer database, then probe the columns
    (docs/stores.md, SqlStore) → ``migration_required`` naming the first missing one."""
    migrations = MIGRATIONS if migrations is None else migrations
    try:
        with engine.connect() as conn:
            done = applied_versions(conn)
    except Exception as exc:  # noqa: BLE001 - any failure means the probe cannot run
        raise AsmError("migration_required", "SqlStore schema is incomplete; run asm_nb.stores.sql.migrate(url)",
                       details={"reason": repr(exc)}) from exc
    _refuse_newer(done, migrations, url)
    for table, column in PROBES:
        try:
            with engine.connect() as conn:
                conn.execute(sa.text(f"SELECT {column} FROM {table} LIMIT 1")).all()
        except Exception:  # noqa: BLE001
            raise AsmError("migration_required", "SqlStore schema is incomplete; run asm_nb.stores.sql.migrate(url)",
                           details={"missing_column": f"{table}.{column}"}) from None


def drop_all(engine: sa.Engine) -> None:
    """The reference ``down()``: drop the five tables (and our migrations table) if they exist."""
    from ._sql_search import drop_search_index

    with engine.begin() as conn:
        drop_search_index(conn)
        for t in (artifact_blobs, artifacts, sequences, events, runs, sessions, schema_migrations):
            t.drop(conn, checkfirst=True)
