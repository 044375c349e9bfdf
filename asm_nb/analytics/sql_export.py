"""``asm export --format sqlite OUT.db``: the store as one SQLite file with a documented schema and
views (docs/sql-export.md), ready for Datasette, DBeaver, ``sqlite3`` or any SQL tool.

Tables ``sessions``, ``runs``, ``events``, ``tool_calls`` and ``costs`` are the frames of the
same names (``asm_nb.frames``), column for column; views answer the usual questions (``runs_v``,
``tool_calls_by_name``, ``costs_by_day``, ``costs_by_model``, ``costs_by_session``,
``messages``); ``asm_export_meta`` says what wrote the file. Timestamps are ISO-8601 UTC text
(``2026-12-03T06:01:26.123456Z``, which SQLite's date functions read), ``costs.day`` is
``YYYY-MM-DD``, lists are JSON text, booleans 0/1.
"""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ..core.errors import AsmError
from ..core.usage import TOKEN_KEYS, TOTAL_TOKENS

if TYPE_CHECKING:
    from ..ports import StoreRef

__all__ = ["export_sqlite", "SQLITE_TABLES", "SQLITE_VIEWS", "SQLITE_EXPORT_VERSION"]

#: Version of the exported schema (``asm_export_meta.schema_version``).
SQLITE_EXPORT_VERSION = 1

#: Tables written, with their primary key and indexed columns.
SQLITE_TABLES: dict[str, dict[str, Any]] = {
    "sessions": {"key": ["session_id"], "index": ["created_at", "status"]},
    "runs": {"key": ["run_id"], "index": ["session_id", "started_at", "status", "model"]},
    "events": {"key": ["id"], "index": ["session_id, sequence_number", "run_id", "type", "timestamp"]},
    "tool_calls": {"key": ["session_id", "run_id", "tool_call_id"], "index": ["run_id", "tool_name", "started_at"]},
    "costs": {"key": ["run_id"], "index": ["day", "model"]},
}

_TOKENS = (*TOKEN_KEYS, TOTAL_TOKENS)


def _cost_view(name: str, keys: str) -> str:
    sums = ", ".join(f"coalesce(sum({t}), 0) AS {t}" for t in _TOKENS)
    return (f"CREATE VIEW {name} AS SELECT {keys}, count(*) AS run_count, {sums}, sum(cost_usd) AS cost_usd, "
            f"coalesce(sum(unpriced), 0) AS unpriced_runs FROM costs GROUP BY {keys} ORDER BY {keys}")


#: Views created, name → SQL.
SQLITE_VIEWS: dict[str, str] = {
    "runs_v": (
        "CREATE VIEW runs_v AS SELECT r.run_id, r.session_id, s.agent_id, r.status, r.provider, r.model, "
        "r.started_at, r.ended_at, r.duration_s, date(r.started_at) AS day, r.input_tokens, r.output_tokens, "
        "r.cache_read_tokens, r.cache_creation_tokens, r.total_tokens, coalesce(c.cost_usd, r.cost_usd) AS cost_usd, "
        "c.cost_source, r.error_code, r.error_message, r.stop_reason, "
        "(SELECT count(*) FROM tool_calls t WHERE t.run_id = r.run_id) AS tool_calls, "
        "(SELECT count(*) FROM tool_calls t WHERE t.run_id = r.run_id AND t.status = 'failed') AS tool_calls_failed "
        "FROM runs r LEFT JOIN sessions s ON s.session_id = r.session_id LEFT JOIN costs c ON c.run_id = r.run_id "
        "ORDER BY r.started_at"),
    "tool_calls_by_name": (
        "CREATE VIEW tool_calls_by_name AS SELECT tool_name, count(*) AS calls, "
        "sum(status = 'completed') AS completed, sum(status = 'failed') AS failed, "
        "avg(duration_ms) AS avg_duration_ms, max(duration_ms) AS max_duration_ms, "
        "coalesce(sum(output_size), 0) AS output_chars FROM tool_calls GROUP BY tool_name ORDER BY calls DESC, tool_name"),
    "costs_by_day": _cost_view("costs_by_day", "day"),
    "costs_by_model": _cost_view("costs_by_model", "provider, model"),
    "costs_by_session": _cost_view("costs_by_session", "session_id"),
    "messages": (
        "CREATE VIEW messages AS SELECT session_id, run_id, sequence_number, timestamp, "
        "CASE type WHEN 'message_sent' THEN 'user' ELSE coalesce(json_extract(data, '$.role'), 'assistant') END "
        "AS role, json_extract(data, '$.content') AS content FROM events "
        "WHERE type IN ('message_sent', 'message_received') ORDER BY session_id, sequence_number"),
}


def _sql_type(dtype: Any, pl: Any) -> str:
    if dtype == pl.Boolean or dtype.is_integer():
        return "INTEGER"
    if dtype.is_float():
        return "REAL"
    return "TEXT"


def _cell(v: Any) -> Any:
    if v is None or isinstance(v, (int, float, str)):
        return int(v) if isinstance(v, bool) else v
    if isinstance(v, datetime):
        v = v.astimezone(timezone.utc) if v.tzinfo else v
        return v.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if hasattr(v, "isoformat"):  # a date
        return v.isoformat()
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(v, ensure_ascii=False, default=str)
    return str(v)


def _create_table(conn: sqlite3.Connection, name: str, df: Any) -> None:
    import polars as pl

    spec = SQLITE_TABLES[name]
    cols = [f'"{c}" {_sql_type(t, pl)}' + (" NOT NULL" if c in spec["key"] else "") for c, t in df.schema.items()]
    key = ", ".join(f'"{k}"' for k in spec["key"])
    conn.execute(f'CREATE TABLE "{name}" ({", ".join(cols)}, PRIMARY KEY ({key}))')
    for i, ix in enumerate(spec["index"]):
        conn.execute(f'CREATE INDEX "{name}_ix{i}" ON "{name}" ({ix})')
    placeholders = ", ".join("?" for _ in df.columns)
    conn.executemany(f'INSERT OR REPLACE INTO "{name}" VALUES ({placeholders})',
                     ([_cell(v) for v in row] for row in df.iter_rows()))


def _frames(store: Any, filters: Mapping[str, Any]) -> dict[str, Any]:
    import polars as pl

    from . import frames
    from .export import _redacted_frame

    f = {k: v for k, v in filters.items() if v is not None}
    costs = frames.costs(store, backend="polars", **f)
    costs = costs.with_columns(pl.col("day").dt.date())
    built = {"sessions": frames.sessions(store, backend="polars", **f),
             "runs": frames.runs(store, backend="polars", **f),
             "events": frames.events(store, backend="polars", **f),
             "tool_calls": frames.tool_calls(store, backend="polars", include_output=True, **f),
             "costs": costs}
    return {k: _redacted_frame(v) for k, v in built.items()}


def export_sqlite(store: StoreRef, out: str | os.PathLike[str], *, overwrite: bool = False, session_id: Any = None, provider: Any = None,
                  since: Any = None, until: Any = None) -> dict[str, dict[str, Any]]:
    """Write ``store`` to the SQLite file ``out`` (docs/sql-export.md); returns ``{table: {"path",
    "rows"}}``. The file is written beside ``out`` and moved into place when complete; an existing
    ``out`` is an error unless ``overwrite=True``. Filters as :func:`asm_nb.export`."""
    from ..stores import resolve_store

    path = Path(os.fspath(out))
    if path.exists() and path.is_dir():
        raise AsmError("validation_error", f"sqlite export target {str(path)!r} is a directory; give a file name "
                                           "like runs.db")
    if path.exists() and not overwrite:
        raise AsmError("validation_error", f"{path} already exists (pass overwrite=True / --overwrite)")
    built = _frames(resolve_store(store), {"session_id": session_id, "provider": provider, "since": since,
                                           "until": until})
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            tmp.unlink()
        conn = sqlite3.connect(tmp)
        try:
            with conn:
                for name, df in built.items():
                    _create_table(conn, name, df)
                for sql in SQLITE_VIEWS.values():
                    conn.execute(sql)
                import sys

                version = getattr(sys.modules.get("asm_nb"), "__version__", "")  # loaded package, no root import
                conn.execute("CREATE TABLE asm_export_meta (key TEXT PRIMARY KEY, value TEXT)")
                conn.executemany("INSERT INTO asm_export_meta VALUES (?, ?)", [
                    ("format", "asm-sqlite-export"), ("schema_version", str(SQLITE_EXPORT_VERSION)),
                    ("asm_nb_version", str(version)),
                    ("exported_at", _cell(datetime.now(timezone.utc))),
                    ("filters", json.dumps({"session_id": session_id, "provider": provider, "since": since,
                                            "until": until}, default=str))])
        finally:
            conn.close()
        os.replace(tmp, path)
    except OSError as exc:
        raise AsmError("storage_error", f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return {name: {"path": str(path), "rows": df.height} for name, df in built.items()}
