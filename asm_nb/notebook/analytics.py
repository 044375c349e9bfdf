"""Store-wide analytics helpers behind ``asm_nb.query``, ``asm_nb.maintenance``, ``asm export``
and ``asm gc``.

- :func:`query` — the store's QueryAPI (its own ``query`` when it has one, else the generic
  scan implementation of ``stores/_query.py``);
- :func:`maintenance` — the store's Maintenance (its own, else ``stores/_maintenance.py``);
- :func:`cost_table` / :func:`cost_rows` / :func:`format_cost_table` — runs, tokens and USD by
  provider and model (``%asm cost``, ``asm cost``);
- :func:`export` — the sessions / runs / events / tool_calls frames written to Parquet (via
  pyarrow), CSV or JSON-lines files, one file per table;
- :func:`gc` — a retention pass (soft delete of old sessions, hard delete of long soft-deleted
  ones, event pruning, orphan clean-up) with the maintenance report; ``dry_run=True`` reports
  what would go without touching the store.

Imports ``core``, ``stores``, ``persistence.retention`` and (inside functions) the frames, so
polars / pyarrow load only when a frame is built.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..core.errors import AsmError

__all__ = ["query", "maintenance", "cost_table", "cost_rows", "format_cost_table", "export", "gc",
           "retention_policy", "COST_GROUPS", "EXPORT_TABLES", "EXPORT_FORMATS"]

#: Tables :func:`export` writes, in order.
EXPORT_TABLES = ("sessions", "runs", "events", "tool_calls")
#: Formats :func:`export` writes → file extension.
EXPORT_FORMATS = {"parquet": "parquet", "csv": "csv", "jsonl": "jsonl"}


def _store(store: Any) -> Any:
    from ..api import resolve_store

    return resolve_store(store)


def query(store: Any = None) -> Any:
    """The QueryAPI of ``store`` (a store, a path/URL, or None for the default store): the
    store's own ``query`` when it has one (SqlStore answers with SQL), else a
    ``GenericQueryAPI`` scanning its rows.

    >>> q = query("memory://")
    >>> q.search_runs()["runs"]
    []
    """
    from ..stores._query import query_api

    return query_api(_store(store))


def maintenance(store: Any = None) -> Any:
    """The Maintenance of ``store`` (its own ``maintenance`` when it has one, else a
    ``GenericMaintenance``): ``execute(policy)``, ``health_check()``, ...

    >>> maintenance("memory://").health_check()
    []
    """
    from ..stores._maintenance import maintenance as _maintenance

    return _maintenance(_store(store))


# --------------------------------------------------------------------------------------------
# cost table

COST_GROUPS = ("provider", "model", "day", "session")
_NUM_COLS = ("runs", "input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens", "total_tokens")
_COLUMNS_AFTER_KEYS = (*_NUM_COLS, "cost_usd", "unpriced_runs")


def _groups(by: Any) -> list[str]:
    if by is None:
        return ["provider", "model"]
    groups = [g.strip() for g in by.split(",")] if isinstance(by, str) else list(by)
    groups = [g for g in groups if g]
    if not groups:
        raise AsmError("validation_error", f"by must name at least one of {', '.join(COST_GROUPS)}")
    for g in groups:
        if g not in COST_GROUPS:
            raise AsmError("validation_error", f"by contains unsupported value: {g!r} (allowed: {', '.join(COST_GROUPS)})")
    if len(set(groups)) != len(groups):
        raise AsmError("validation_error", f"by names a column twice: {groups}")
    return groups


def cost_table(store: Any = None, *, by: Any = ("provider", "model"), backend: str = "pandas",
               **filters: Any) -> Any:
    """Runs, tokens and USD per group (default: per provider and model), most expensive first.

    Columns: the ``by`` keys (``session`` is shown as ``session_id``), ``runs, input_tokens,
    output_tokens, cache_read_tokens, cache_creation_tokens, total_tokens, cost_usd`` (sum over
    priced runs; null when none is priced) and ``unpriced_runs``. ``filters`` are those of
    :func:`asm_nb.frames.costs` (``session_id``, ``provider``, ``model``, ``status``, ``since``,
    ``until``, ``pricing_table``). Costs are the runs' stored costs; a finished run stored without
    one is priced post hoc with the active pricing table.
    """
    import polars as pl

    from . import frames

    groups = _groups(by)
    df = frames.costs(store, by=groups, backend="polars", **filters)
    keys = ["session_id" if g == "session" else g for g in groups]
    df = df.rename({"run_count": "runs"}).select(*keys, *_COLUMNS_AFTER_KEYS)
    df = df.sort([pl.col("cost_usd").fill_null(-1.0), *keys], descending=[True] + [False] * len(keys),
                 nulls_last=True)
    if backend == "polars":
        return df
    if backend != "pandas":
        raise AsmError("validation_error", f"backend must be 'pandas' or 'polars', got {backend!r}")
    return frames._finish(df, "pandas")


def _plain(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.date().isoformat() if (v.hour, v.minute, v.second, v.microsecond) == (0, 0, 0, 0) else v.isoformat()
    return v


def cost_rows(store: Any = None, *, by: Any = ("provider", "model"), **filters: Any) -> tuple[list[dict], dict]:
    """``(rows, total)``: :func:`cost_table` as JSON-ready dicts (days as ``YYYY-MM-DD``) and the
    column sums (``cost_usd`` None when no run is priced)."""
    df = cost_table(store, by=by, backend="polars", **filters)
    rows = [{k: _plain(v) for k, v in r.items()} for r in df.iter_rows(named=True)]
    total: dict[str, Any] = {k: sum(r[k] or 0 for r in rows) for k in (*_NUM_COLS, "unpriced_runs")}
    priced = [r["cost_usd"] for r in rows if r["cost_usd"] is not None]
    total["cost_usd"] = sum(priced) if priced else None
    return rows, total


def format_cost_table(rows: Sequence[dict], total: dict | None = None) -> str:
    """A fixed-width text table of :func:`cost_rows` output, numbers right-aligned, with a
    ``TOTAL`` line."""
    if not rows:
        return "(no runs)"
    keys = [k for k in rows[0] if k not in _COLUMNS_AFTER_KEYS]
    heads = {"input_tokens": "input", "output_tokens": "output", "cache_read_tokens": "cache_read",
             "cache_creation_tokens": "cache_write", "total_tokens": "total_tokens", "cost_usd": "cost_usd",
             "unpriced_runs": "unpriced"}
    cols = [*keys, *_COLUMNS_AFTER_KEYS]

    def cell(k: str, v: Any) -> str:
        if k == "cost_usd":
            return "n/a" if v is None else f"${v:,.4f}"
        if k in _NUM_COLS or k == "unpriced_runs":
            return f"{int(v or 0):,}"
        return "-" if v is None else str(v)

    body = [[cell(k, r.get(k)) for k in cols] for r in rows]
    if total is not None:
        body.append(["TOTAL" if i == 0 else "" for i in range(len(keys))] + [cell(k, total.get(k)) for k in
                                                                              _COLUMNS_AFTER_KEYS])
    titles = [heads.get(c, c) for c in cols]
    widths = [max(len(t), *(len(row[i]) for row in body)) for i, t in enumerate(titles)]
    right = [c not in keys for c in cols]

    def line(vals: Iterable[str]) -> str:
        return "  ".join(v.rjust(w) if r else v.ljust(w) for v, w, r in zip(vals, widths, right)).rstrip()

    out = [line(titles), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in body[:len(rows)]]
    if total is not None:
        out.append("  ".join("-" * w for w in widths))
        out.append(line(body[-1]))
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# export


def _redacted_frame(df: Any) -> Any:
    """Every text column through the redactor: an export is a file people share, and a store
    written before a pattern existed may still hold that secret."""
    import polars as pl

    from ..persistence.redaction import scan_text

    cols = [c for c, t in df.schema.items() if t == pl.Utf8]
    if not cols:
        return df
    return df.with_columns([pl.col(c).map_elements(lambda v: scan_text(v, None)[0], return_dtype=pl.Utf8)
                            for c in cols])


def _frame(table: str, store: Any, filters: Mapping[str, Any]) -> Any:
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


def _flat_for_csv(df: Any) -> Any:
    """CSV holds no nested values: list / struct columns become JSON text."""
    import polars as pl

    exprs = []
    for name, dtype in df.schema.items():
        if isinstance(dtype, (pl.List, pl.Array, pl.Struct)):
            exprs.append(pl.Series(name, [None if v is None else json.dumps(v, ensure_ascii=False, default=str)
                                          for v in df[name].to_list()], dtype=pl.String))
    return df.with_columns(exprs) if exprs else df


def _write(df: Any, path: Path, fmt: str) -> None:
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


def export(store: Any, out: Any, *, format: str = "parquet", tables: Iterable[str] | None = None,
           overwrite: bool = False, session_id: Any = None, provider: Any = None, since: Any = None,
           until: Any = None) -> dict[str, dict[str, Any]]:
    """Write the ``sessions``, ``runs``, ``events`` and ``tool_calls`` frames of ``store`` to
    ``out/<table>.<parquet|csv|jsonl>`` (``out`` is a directory, created if missing).

    ``format``: ``"parquet"`` (through pyarrow; types kept), ``"csv"`` (list columns as JSON
    text) or ``"jsonl"`` (one JSON object per row). ``tables`` picks a subset. The filters
    (``session_id``, ``provider``, ``since``/``until``) are those of :mod:`asm_nb.frames`: the time
    range applies to ``created_at`` for sessions, ``started_at`` for runs and tool calls and
    ``timestamp`` for events. An existing file is an error unless ``overwrite=True``.

    Returns ``{table: {"path": str, "rows": int}}``.
    """
    if format not in EXPORT_FORMATS:
        raise AsmError("validation_error", f"format must be one of {', '.join(EXPORT_FORMATS)}, got {format!r}")
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


# --------------------------------------------------------------------------------------------
# gc (retention)


def retention_policy(*, max_age_days: Any = None, hard_delete_after_days: Any = None,
                     max_events_per_session: Any = None, keep_failed: bool = False) -> Any:
    """A ``RetentionPolicy`` from the config defaults with these overrides: ``max_age_days`` →
    ``max_completed_session_age_days`` (sessions not updated for that many days are soft
    deleted), ``hard_delete_after_days``, ``max_events_per_session``; ``keep_failed`` exempts
    sessions whose status is ``failed``. Invalid values → ``validation_error``."""
    from ..persistence.retention import RetentionPolicy

    kw: dict[str, Any] = {}
    if max_age_days is not None:
        kw["max_completed_session_age_days"] = max_age_days
    if hard_delete_after_days is not None:
        kw["hard_delete_after_days"] = hard_delete_after_days
    if max_events_per_session is not None:
        kw["max_events_per_session"] = max_events_per_session
    policy = RetentionPolicy.new(**kw)
    if keep_failed and "failed" not in policy.exempt_statuses:
        policy.exempt_statuses = [*policy.exempt_statuses, "failed"]
    try:
        policy.validate()
    except AsmError as exc:
        if exc.message.startswith("max_completed_session_age_days "):  # say it with the caller's name
            raise AsmError(exc.code, "max_age_days" + exc.message[len("max_completed_session_age_days"):]) from None
        raise
    return policy


def _inf(v: Any) -> bool:
    return isinstance(v, float) and v == float("inf")


def _plan(store: Any, policy: Any) -> dict[str, Any]:
    """What ``Maintenance.execute(policy)`` would do, computed without writing (dry run)."""
    from ..core.serialization import utc_now
    from ..stores._maintenance import PROTECTED_EVENT_TYPES

    now = utc_now()
    sessions = list(store.list_sessions())
    soft: list[str] = []
    if not _inf(policy.max_completed_session_age_days):
        cutoff = now - timedelta(days=policy.max_completed_session_age_days)
        exempt_status, exempt_tags = set(policy.exempt_statuses or []), set(policy.exempt_tags or [])
        soft = [s.id for s in sessions
                if s.deleted_at is None and s.status.value not in exempt_status and s.updated_at < cutoff
                and not (exempt_tags & set(s.tags or []))]
    hard: list[str] = []
    if not _inf(policy.hard_delete_after_days):
        cutoff = now - timedelta(days=policy.hard_delete_after_days)
        hard = [s.id for s in sessions if s.deleted_at is not None and s.deleted_at < cutoff]
    gone = set(hard)
    pruned = 0
    if not _inf(policy.max_events_per_session):
        lister = getattr(store, "list_session_ids", None)
        ids = list(lister()) if callable(lister) else sorted({s.id for s in sessions})
        first = set(policy.prune_event_types_first or [])
        for sid in ids:
            if sid in gone:
                continue
            evs = list(store.get_events(sid))
            excess = len(evs) - policy.max_events_per_session
            if excess > 0:
                prunable = sum(1 for e in evs if e.type.value in first or e.type.value not in PROTECTED_EVENT_TYPES)
                pruned += min(excess, prunable)
    known = {s.id for s in sessions} - gone
    artifacts = None
    rec_lister = getattr(store, "list_artifact_records", None)
    if callable(rec_lister):
        artifacts = 0
        for rec in rec_lister():
            rec = rec if isinstance(rec, dict) else getattr(rec, "__dict__", {})
            if rec.get("session_id") and rec.get("session_id") not in known and rec.get("session_id") not in gone:
                artifacts += 1
    return {"sessions_soft_deleted": len(soft), "sessions_hard_deleted": len(hard), "events_pruned": pruned,
            "artifacts_cleaned": artifacts, "orphaned_sequences_cleaned": None, "duration_ms": 0, "errors": [],
            "soft_delete_session_ids": soft, "hard_delete_session_ids": hard}


def gc(store: Any = None, *, max_age_days: Any = None, hard_delete_after_days: Any = None,
       max_events_per_session: Any = None, keep_failed: bool = False, dry_run: bool = False) -> dict[str, Any]:
    """Apply retention to ``store`` and return the maintenance report: ``sessions_soft_deleted,
    sessions_hard_deleted, events_pruned, artifacts_cleaned, orphaned_sequences_cleaned,
    duration_ms, errors`` plus ``dry_run`` and ``policy`` (the limits used).

    Retention is two-phase (docs/stores.md, retention and maintenance): a session not updated for ``max_age_days``
    (default:
    config ``retention_max_completed_age_days``) is soft deleted (``deleted_at`` set; active,
    paused, pinned — and with ``keep_failed`` failed — sessions are exempt); a session soft deleted
    more than ``hard_delete_after_days`` ago is deleted with its runs and events.
    ``max_events_per_session`` prunes the oldest streaming events beyond the limit.

    ``dry_run=True`` changes nothing and also lists ``soft_delete_session_ids`` and
    ``hard_delete_session_ids`` (``orphaned_sequences_cleaned`` is None: not estimated).
    """
    policy = retention_policy(max_age_days=max_age_days, hard_delete_after_days=hard_delete_after_days,
                              max_events_per_session=max_events_per_session, keep_failed=keep_failed)
    st = _store(store)
    if dry_run:
        report = _plan(st, policy)
    else:
        report = dict(maintenance(st).execute(policy))
    report["dry_run"] = bool(dry_run)
    report["policy"] = {"max_age_days": _jsonable_limit(policy.max_completed_session_age_days),
                        "hard_delete_after_days": _jsonable_limit(policy.hard_delete_after_days),
                        "max_events_per_session": _jsonable_limit(policy.max_events_per_session),
                        "exempt_statuses": list(policy.exempt_statuses),
                        "exempt_tags": list(policy.exempt_tags)}
    return report


def _jsonable_limit(v: Any) -> Any:
    return "infinity" if _inf(v) else v
