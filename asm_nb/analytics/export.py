"""``asm export`` / :func:`export`: the sessions / runs / events / tool_calls frames written to
Parquet (via pyarrow), CSV or JSON-lines files, one file per table, or (``format="sqlite"``) one
SQLite file with tables and views (``sql_export.py``, docs/sql-export.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from ..core.errors import AsmError

if TYPE_CHECKING:
    import polars as pl

    from ..ports import SessionStore, StoreRef

__all__ = ["export", "EXPORT_TABLES", "EXPORT_FORMATS", "ALL_FORMATS"]

#: Tables :func:`export` writes, in order.
EXPORT_TABLES = ("sessions", "runs", "events", "tool_calls")
#: Formats :func:`export` writes → file extension.
EXPORT_FORMATS = {"parquet": "parquet", "csv": "csv", "jsonl": "jsonl"}
#: Every format :func:`export` writes (``sqlite``: one file, ``out`` is its path).
ALL_FORMATS = (*EXPORT_FORMATS, "sqlite")


def _store(store: StoreRef) -> SessionStore:
    from ..stores import resolve_store

    return resolve_store(store)


def _redacted_frame(df: pl.DataFrame) -> pl.DataFrame:
    """Every text column through the redactor: an export is a file people share, and a store
    written before a pattern existed may still hold that secret."""
    import polars as pl

    from ..persistence.redaction import scan_text

    cols = [c for c, t in df.schema.items() if t == pl.Utf8]
    if not cols:
        return df
    return df.with_columns([pl.col(c).map_elements(lambda v: scan_text(v, None)[0], return_dtype=pl.Utf8)
                            for c in cols])


def _frame(table: str, store: SessionStore, filters: Mapping[str, Any]) -> pl.DataFrame:
    from . import frames

    f = {k: v for k, v in filters.items() if v is not None}
    if table == "sessions":
        return frames.sessions(store, backend="polars", **f)
    if table == "runs":
        return frames.runs(store, backend="polars", **f)
    if table == "events":
        return frames.events(store, backend="polars", **f)
    if table == "tool_calls":
        return frames.tool_calls(store, backend="polars", include_output=True, **f)
    raise AsmError("validation_error", f"unknown table {table!r}; expected one of {', '.join(EXPORT_TABLES)}")


def _flat_for_csv(df: pl.DataFrame) -> pl.DataFrame:
    """CSV holds no nested values: list / struct columns become JSON text."""
    import polars as pl

    exprs = []
    for name, dtype in df.schema.items():
        if isinstance(dtype, (pl.List, pl.Array, pl.Struct)):
            exprs.append(pl.Series(name, [None if v is None else json.dumps(v, ensure_ascii=False, default=str)
                                          for v in df[name].to_list()], dtype=pl.String))
    return df.with_columns(exprs) if exprs else df


def _write(df: pl.DataFrame, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise AsmError("dependency_not_available", "parquet export needs pyarrow: pip install pyarrow") from exc
        pq.write_table(df.to_arrow(), str(path))
    elif fmt == "csv":
        _flat_for_csv(df).write_csv(path)
    else:
        df.write_ndjson(path)


def export(store: StoreRef, out: str | os.PathLike[str], *, format: str = "parquet", tables: Iterable[str] | None = None,
           overwrite: bool = False, session_id: Any = None, provider: Any = None, since: Any = None,
           until: Any = None) -> dict[str, dict[str, Any]]:
    """Write the ``sessions``, ``runs``, ``events`` and ``tool_calls`` frames of ``store`` to
    ``out/<table>.<parquet|csv|jsonl>`` (``out`` is a directory, created if missing).

    ``format``: ``"parquet"`` (through pyarrow; types kept), ``"csv"`` (list columns as JSON
    text) or ``"jsonl"`` (one JSON object per row). ``tables`` picks a subset. The filters
    (``session_id``, ``provider``, ``since``/``until``) are those of :mod:`asm_nb.frames`: the time
    range applies to ``created_at`` for sessions, ``started_at`` for runs and tool calls and
    ``timestamp`` for events. An existing file is an error unless ``overwrite=True``.

    ``format="sqlite"`` writes one SQLite file at ``out`` instead: the four tables, ``costs`` and
    views (``runs_v``, ``costs_by_day``, ...; docs/sql-export.md); ``tables`` is not taken.

    Returns ``{table: {"path": str, "rows": int}}``.
    """
    if format == "sqlite":
        if tables is not None:
            raise AsmError("validation_error", "the sqlite export writes every table; leave out tables / --tables")
        from .sql_export import export_sqlite

        return export_sqlite(store, out, overwrite=overwrite, session_id=session_id, provider=provider, since=since,
                             until=until)
    if format not in EXPORT_FORMATS:
        raise AsmError("validation_error", f"format must be one of {', '.join(ALL_FORMATS)}, got {format!r}")
    names = list(EXPORT_TABLES if tables is None else tables)
    for t in names:
        if t not in EXPORT_TABLES:
            raise AsmError("validation_error", f"unknown table {t!r}; expected one of {', '.join(EXPORT_TABLES)}")
    if not names:
        raise AsmError("validation_error", "tables is empty: name at least one of " + ", ".join(EXPORT_TABLES))
    outdir = Path(os.fspath(out))
    if outdir.exists() and not outdir.is_dir():
        raise AsmError("validation_error", f"export target {str(outdir)!r} exists and is not a directory")
    ext = EXPORT_FORMATS[format]
    targets = {t: outdir / f"{t}.{ext}" for t in names}
    if not overwrite:
        existing = [str(p) for p in targets.values() if p.exists()]
        if existing:
            raise AsmError("validation_error", f"{existing[0]} already exists (pass overwrite=True / --overwrite)")
    st = _store(store)
    filters = {"session_id": session_id, "provider": provider, "since": since, "until": until}
    built = {t: _redacted_frame(_frame(t, st, filters)) for t in names}  # build everything before writing
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AsmError("storage_error", f"cannot create the export folder {str(outdir)!r}: "
                                        f"{exc.strerror or exc}") from None
    result: dict[str, dict[str, Any]] = {}
    for t, df in built.items():
        path = targets[t]
        tmp = path.with_name(path.name + ".tmp")
        try:
            _write(df, tmp, format)
            os.replace(tmp, path)
        except OSError as exc:
            raise AsmError("storage_error", f"cannot write {path}: {exc.strerror or exc}") from None
        finally:
            if tmp.exists():
                tmp.unlink()
        result[t] = {"path": str(path), "rows": df.height}
    return result
