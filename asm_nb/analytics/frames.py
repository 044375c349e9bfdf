"""DataFrames over a store: sessions, runs, events, messages, tool calls, costs, transcripts
and workspace diffs (exposed as ``asm_nb.frames``).

Every frame is built with polars; ``backend="pandas"`` (the default) converts at the end through
Arrow. Columns are typed: datetimes are tz-aware UTC (``Datetime("us", "UTC")`` /
``datetime64[us, UTC]``), statuses are enums / pandas categoricals, providers, models, event types
and tool names are categoricals, token counts are ``Int64``, costs ``Float64``.

Sources (``ARCHITECTURE.md``: events are the source of truth; runs carry summaries):

- sessions and runs come from ``store.list_sessions()`` / ``store.list_runs(None)``;
- events come, for a store exposing ``event_log_paths()`` (LocalStore), straight from its JSONL
  logs read by ``polars`` (after ``store.flush()`` so buffered events are included; an unreadable
  log — e.g. a torn last line being written by another process — falls back to a line-by-line
  read that skips bad lines with a warning); for any other store, from
  ``store.get_events(session_id)`` over ``store.list_session_ids()`` (or the sessions and runs).

In the events frame ``data`` and ``metadata`` are JSON text (nothing is lost whatever keys a
payload has; ``parse_data=True`` decodes them to structs). The derived frames (messages,
tool_calls, transcript) extract their fields from that JSON.

Common filters (each accepts one value or a list; None = no filter): ``session_id``, ``run_id``,
``provider``, ``model``, ``status`` (the run status; ``sessions`` → session status;
``tool_calls`` → the call's status, see ``run_status``), and a time range ``since`` (inclusive) /
``until`` (exclusive) given as datetimes (naive = UTC), ISO strings or dates — applied to
``created_at`` for sessions, ``started_at`` for runs and costs, ``timestamp`` for event frames.

Heavy imports (polars, pandas) happen inside the functions.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.parse
import warnings
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from typing import TYPE_CHECKING, Any, Iterable, Literal, Mapping

from ..core.errors import AsmError
from ..core.events import is_audit
from ..core.usage import TOKEN_KEYS

if TYPE_CHECKING:  # pragma: no cover
    import polars as pl

__all__ = ["sessions", "runs", "events", "audit", "messages", "tool_calls", "costs", "usage", "transcript", "diffs",
           "diff_summaries", "evals", "scores",
           "search", "EVENT_COLUMNS"]

log = logging.getLogger(__name__)

Backend = Literal["pandas", "polars"]

#: Columns of the raw event log (docs/store-format.md), in on-disk order.
EVENT_COLUMNS = ("id", "type", "timestamp", "session_id", "run_id", "sequence_number", "data", "metadata",
                 "schema_version", "provider", "correlation_id")

_TS_FORMAT = "%Y-%m-%dT%H:%M:%S%.fZ"
_TOKEN_KEYS = TOKEN_KEYS


# --------------------------------------------------------------------------------------------
# helpers: imports, dtypes, arguments


def _polars():
    try:
        import polars as pl
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise AsmError("dependency_not_available",
                       "asm_nb.frames needs polars and pyarrow: pip install 'asm_nb[notebook]'") from exc
    return pl


def _utc(pl):
    return pl.Datetime("us", "UTC")


def _run_status_dtype(pl):
    from ..core.run import RunStatus

    return pl.Enum([s.value for s in RunStatus])


def _session_status_dtype(pl):
    from ..core.session import SessionStatus

    return pl.Enum([s.value for s in SessionStatus])


_TOOL_STATUSES = ["running", "completed", "failed", "unfinished"]


def _raw_event_schema(pl) -> dict:
    return {"id": pl.String, "type": pl.String, "timestamp": pl.String, "session_id": pl.String,
            "run_id": pl.String, "sequence_number": pl.Int64, "data": pl.String, "metadata": pl.String,
            "schema_version": pl.Int64, "provider": pl.String, "correlation_id": pl.String}


def _check_backend(backend: Any) -> str:
    if backend not in ("pandas", "polars"):
        raise AsmError("validation_error", f"backend must be 'pandas' or 'polars', got {backend!r}")
    return backend


def _finish(df: "pl.DataFrame", backend: str) -> Any:
    """Return ``df`` as polars, or as pandas through Arrow (list columns become Python lists)."""
    if backend == "polars":
        return df
    pl = _polars()
    try:
        import pandas as pd
        import pyarrow as pa

        ints = {pa.int64(): pd.Int64Dtype(), pa.int32(): pd.Int32Dtype()}
        pdf = df.to_pandas(types_mapper=ints.get)  # integer columns stay integers when nullable
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise AsmError("dependency_not_available",
                       "backend='pandas' needs pandas and pyarrow: pip install 'asm_nb[notebook]'") from exc
    for name, dtype in df.schema.items():
        if isinstance(dtype, pl.List):
            pdf[name] = [list(v) if v is not None else None for v in pdf[name]]
    return pdf


def _as_list(value: Any) -> list | None:
    """None → None; a str/enum/scalar → [value]; an iterable → list (enum members → values)."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        value = [value]
    out = []
    for v in value:
        out.append(getattr(v, "value", v))
    return out


def _to_utc(value: Any, name: str) -> datetime | None:
    """datetime (naive = UTC), ``date`` (midnight UTC), ISO string, or None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=timezone.utc)
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise AsmError("validation_error",
                           f"{name} must be a datetime or an ISO-8601 string, got {value!r}") from None
        return _to_utc(dt, name)
    raise AsmError("validation_error", f"{name} must be a datetime, a date or an ISO-8601 string, got {value!r}")


def _resolve_store(store: Any) -> Any:
    if store is None or isinstance(store, (str, os.PathLike)):
        from ..stores import open_store

        return open_store(store)
    return store


@dataclass
class _Filters:
    session_id: list | None = None
    run_id: list | None = None
    provider: list | None = None
    model: list | None = None
    status: list | None = None
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def of(cls, session_id=None, run_id=None, provider=None, model=None, status=None, since=None,
           until=None) -> "_Filters":
        return cls(_as_list(session_id), _as_list(run_id), _as_list(provider), _as_list(model),
                   _as_list(status), _to_utc(since, "since"), _to_utc(until, "until"))

    @property
    def needs_runs(self) -> bool:
        """Whether event rows must be matched against the runs table (model / run status)."""
        return self.model is not None or self.status is not None

    def time_expr(self, pl, col: str):
        exprs = []
        if self.since is not None:
            exprs.append(pl.col(col) >= self.since)
        if self.until is not None:
            exprs.append(pl.col(col) < self.until)
        return exprs


def _check_statuses(values: list | None, enum_cls: type, field: str) -> None:
    if values is None:
        return
    allowed = {m.value for m in enum_cls}
    for v in values:
        if v not in allowed:
            raise AsmError("validation_error",
                           f"{field} contains unsupported value: {v!r} (allowed: {sorted(allowed)})")


# --------------------------------------------------------------------------------------------
# runs


def _model_of(run: Any) -> Any:
    pm = run.provider_metadata if isinstance(run.provider_metadata, Mapping) else {}
    md = run.metadata if isinstance(run.metadata, Mapping) else {}
    return pm.get("model") if pm.get("model") is not None else md.get("model")


def _int_or_none(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v == v and abs(v) != float("inf"):
        return int(v)
    return None


def _float_or_none(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def _all_runs(store: Any) -> list:
    try:
        return list(store.list_runs(None))
    except AsmError:
        raise
    except Exception as exc:
        raise AsmError("query_error", f"store {type(store).__name__} cannot list all runs: {exc}") from exc


def _runs_frame(store: Any, run_objs: list | None = None) -> "pl.DataFrame":
    """Every run of the store as a typed polars frame (no filters)."""
    pl = _polars()
    rows = run_objs if run_objs is not None else _all_runs(store)
    cols: dict[str, list] = {k: [] for k in (
        "run_id", "session_id", "status", "provider", "model", "started_at", "ended_at", "turn_count",
        *_TOKEN_KEYS, "reasoning_output_tokens", "cost_usd", "reported_cost_usd", "computed_cost_usd",
        "cost_source", "price_key", "pricing_version", "error_code", "error_message", "stop_reason")}
    for r in rows:
        tu = r.token_usage if isinstance(r.token_usage, Mapping) else {}
        md = r.metadata if isinstance(r.metadata, Mapping) else {}
        err = r.error if isinstance(r.error, Mapping) else {}
        out = r.output if isinstance(r.output, Mapping) else {}
        cols["run_id"].append(r.id)
        cols["session_id"].append(r.session_id)
        cols["status"].append(getattr(r.status, "value", r.status))
        cols["provider"].append(r.provider if r.provider is not None else md.get("provider"))
        model = _model_of(r)
        cols["model"].append(model if isinstance(model, str) else None)
        cols["started_at"].append(r.started_at)
        cols["ended_at"].append(r.ended_at)
        cols["turn_count"].append(_int_or_none(r.turn_count))
        for k in (*_TOKEN_KEYS, "reasoning_output_tokens"):
            cols[k].append(_int_or_none(tu.get(k)))
        cols["cost_usd"].append(_float_or_none(r.cost_usd))
        cols["reported_cost_usd"].append(_float_or_none(md.get("reported_cost_usd")))
        cols["computed_cost_usd"].append(_float_or_none(md.get("computed_cost_usd")))
        src = md.get("cost_source")
        cols["cost_source"].append(src if isinstance(src, str) else ("stored" if r.cost_usd is not None else None))
        cols["price_key"].append(md.get("price_key") if isinstance(md.get("price_key"), str) else None)
        ver = md.get("pricing_version")
        cols["pricing_version"].append(ver if isinstance(ver, str) else None)
        code = err.get("code")
        cols["error_code"].append(str(code) if code is not None else None)
        msg = err.get("message")
        cols["error_message"].append(str(msg) if msg is not None else None)
        sr = out.get("stop_reason")
        cols["stop_reason"].append(sr if isinstance(sr, str) else None)
    utc = _utc(pl)
    schema = {"run_id": pl.String, "session_id": pl.String, "status": _run_status_dtype(pl),
              "provider": pl.Categorical, "model": pl.Categorical, "started_at": utc, "ended_at": utc,
              "turn_count": pl.Int64, **{k: pl.Int64 for k in (*_TOKEN_KEYS, "reasoning_output_tokens")},
              "cost_usd": pl.Float64, "reported_cost_usd": pl.Float64, "computed_cost_usd": pl.Float64,
              "cost_source": pl.Categorical, "price_key": pl.Categorical, "pricing_version": pl.Categorical,
              "error_code": pl.Categorical, "error_message": pl.String, "stop_reason": pl.Categorical}
    df = pl.DataFrame(cols, schema={k: (pl.String if v in (pl.Categorical,) or isinstance(v, pl.Enum) else v)
                                    for k, v in schema.items()})
    df = df.with_columns([pl.col(k).cast(v) for k, v in schema.items() if v is pl.Categorical or isinstance(v, pl.Enum)])
    terminal = pl.col("status").is_in(["completed", "failed", "cancelled", "timeout"])
    return df.with_columns(
        total_tokens=(pl.col("input_tokens").fill_null(0) + pl.col("output_tokens").fill_null(0)),
        duration_s=(pl.col("ended_at") - pl.col("started_at")).dt.total_microseconds() / 1e6,
        unpriced=(pl.col("cost_usd").is_null() & terminal),
    ).select(
        "run_id", "session_id", "status", "provider", "model", "started_at", "ended_at", "duration_s",
        "turn_count", *_TOKEN_KEYS, "reasoning_output_tokens", "total_tokens", "cost_usd", "unpriced",
        "cost_source", "price_key", "pricing_version", "reported_cost_usd", "computed_cost_usd",
        "error_code", "error_message", "stop_reason")


def _filter_runs(df: "pl.DataFrame", f: _Filters, *, time_col: str | None = "started_at") -> "pl.DataFrame":
    pl = _polars()
    exprs = []
    if f.session_id is not None:
        exprs.append(pl.col("session_id").is_in(f.session_id))
    if f.run_id is not None:
        exprs.append(pl.col("run_id").is_in(f.run_id))
    if f.provider is not None:
        exprs.append(pl.col("provider").cast(pl.String).is_in(f.provider))
    if f.model is not None:
        exprs.append(pl.col("model").cast(pl.String).is_in(f.model))
    if f.status is not None:
        exprs.append(pl.col("status").cast(pl.String).is_in(f.status))
    if time_col is not None:
        exprs.extend(f.time_expr(pl, time_col))
    return df.filter(*exprs) if exprs else df


def runs(store: Any = None, *, session_id: Any = None, run_id: Any = None, provider: Any = None,
         model: Any = None, status: Any = None, since: Any = None, until: Any = None,
         backend: Backend = "pandas") -> Any:
    """One row per run, ordered by ``started_at`` then ``run_id``.

    Columns: ``run_id, session_id, status, provider, model, started_at, ended_at, duration_s,
    turn_count, input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens,
    reasoning_output_tokens, total_tokens`` (input + output, docs/providers.md, event envelope), ``cost_usd, unpriced``
    (a finished run without a cost), ``cost_source, price_key, pricing_version, reported_cost_usd,
    computed_cost_usd`` (the pricing audit trail written at run end), ``error_code, error_message,
    stop_reason``.

    >>> df = runs(store, provider="claude", status="completed")   # doctest: +SKIP
    """
    _check_backend(backend)
    from ..core.run import RunStatus

    f = _Filters.of(session_id, run_id, provider, model, status, since, until)
    _check_statuses(f.status, RunStatus, "status")
    df = _filter_runs(_runs_frame(_resolve_store(store)), f).sort("started_at", "run_id")
    return _finish(df, backend)


# --------------------------------------------------------------------------------------------
# sessions


def _session_ids(store: Any) -> list[str]:
    """Every session id the store knows: rows, runs and event logs."""
    lister = getattr(store, "list_session_ids", None)
    if callable(lister):
        return sorted(lister())
    ids = {s.id for s in store.list_sessions()}
    ids |= {r.session_id for r in _all_runs(store)}
    return sorted(ids)


def sessions(store: Any = None, *, session_id: Any = None, provider: Any = None, model: Any = None,
             status: Any = None, since: Any = None, until: Any = None, include_deleted: bool = True,
             backend: Backend = "pandas") -> Any:
    """One row per session, ordered by ``created_at`` then ``session_id``, with run aggregates.

    Columns: ``session_id, agent_id, status, created_at, updated_at, deleted_at,
    parent_session_id, tags`` (list), ``run_count, runs_completed, runs_failed, input_tokens,
    output_tokens, cache_read_tokens, cache_creation_tokens, total_tokens, cost_usd``
    (sum of priced runs; null when none), ``unpriced_runs, providers`` (sorted list),
    ``first_run_at, last_run_at``. ``provider`` / ``model`` keep sessions with at least one
    such run; ``status`` is the session status; ``since``/``until`` apply to ``created_at``.
    """
    _check_backend(backend)
    pl = _polars()
    from ..core.session import SessionStatus

    st = _resolve_store(store)
    f = _Filters.of(session_id, None, provider, model, status, since, until)
    _check_statuses(f.status, SessionStatus, "status")
    rows = list(st.list_sessions())
    utc = _utc(pl)
    sdf = pl.DataFrame(
        {"session_id": [s.id for s in rows], "agent_id": [s.agent_id for s in rows],
         "status": [s.status.value for s in rows], "created_at": [s.created_at for s in rows],
         "updated_at": [s.updated_at for s in rows], "deleted_at": [s.deleted_at for s in rows],
         "parent_session_id": [s.parent_session_id for s in rows],
         "tags": [[str(t) for t in (s.tags or [])] for s in rows]},
        schema={"session_id": pl.String, "agent_id": pl.String, "status": pl.String, "created_at": utc,
                "updated_at": utc, "deleted_at": utc, "parent_session_id": pl.String, "tags": pl.List(pl.String)},
    ).with_columns(pl.col("status").cast(_session_status_dtype(pl)))
    rdf = _runs_frame(st)
    known = set(sdf["session_id"].to_list())
    orphans = sorted(set(rdf["session_id"].to_list()) - known)
    if orphans:  # stores accept runs for sessions that were never saved (docs/stores.md, store contract)
        sdf = pl.concat([sdf, pl.DataFrame({"session_id": orphans}).with_columns(
            [pl.lit(None, dtype=d).alias(c) for c, d in sdf.schema.items() if c != "session_id"]
        ).select(sdf.columns)], how="vertical")
    agg = rdf.group_by("session_id").agg(
        run_count=pl.len().cast(pl.Int64),
        runs_completed=(pl.col("status") == "completed").sum().cast(pl.Int64),
        runs_failed=(pl.col("status") == "failed").sum().cast(pl.Int64),
        **{k: pl.col(k).fill_null(0).sum().cast(pl.Int64) for k in (*_TOKEN_KEYS, "total_tokens")},
        cost_usd=pl.when(pl.col("cost_usd").is_not_null().any()).then(pl.col("cost_usd").sum()).otherwise(None),
        unpriced_runs=pl.col("unpriced").sum().cast(pl.Int64),
        providers=pl.col("provider").cast(pl.String).drop_nulls().unique().sort(),
        first_run_at=pl.col("started_at").min(),
        last_run_at=pl.col("started_at").max(),
    )
    df = sdf.join(agg, on="session_id", how="left").with_columns(
        [pl.col(c).fill_null(0) for c in ("run_count", "runs_completed", "runs_failed", *_TOKEN_KEYS,
                                          "total_tokens", "unpriced_runs")])
    exprs = []
    if f.session_id is not None:
        exprs.append(pl.col("session_id").is_in(f.session_id))
    if f.status is not None:
        exprs.append(pl.col("status").cast(pl.String).is_in(f.status))
    if not include_deleted:
        exprs.append(pl.col("deleted_at").is_null())
    exprs.extend(f.time_expr(pl, "created_at"))
    if f.provider is not None or f.model is not None:
        sel = _filter_runs(rdf, _Filters(provider=f.provider, model=f.model), time_col=None)
        exprs.append(pl.col("session_id").is_in(sel["session_id"].unique().to_list()))
    if exprs:
        df = df.filter(*exprs)
    return _finish(df.sort("created_at", "session_id", nulls_last=True), backend)


# --------------------------------------------------------------------------------------------
# events: reading the logs


def _empty_raw(pl) -> "pl.DataFrame":
    return pl.DataFrame(schema=_raw_event_schema(pl))


def _session_of_path(path: Any) -> str:
    name = os.path.basename(os.fspath(path))
    if name.endswith(".jsonl"):
        name = name[: -len(".jsonl")]
    return urllib.parse.unquote(name)


def _log_paths(store: Any, session_ids: list | None) -> list[tuple[str, str]]:
    """``[(session_id, path)]`` sorted by session id, restricted to ``session_ids``."""
    paths = store.event_log_paths()
    if isinstance(paths, Mapping):
        pairs = [(str(sid), os.fspath(p)) for sid, p in paths.items()]
    else:
        pairs = [(_session_of_path(p), os.fspath(p)) for p in paths]
    if session_ids is not None:
        wanted = set(session_ids)
        pairs = [p for p in pairs if p[0] in wanted]
    return sorted(p for p in pairs if os.path.exists(p[1]))


def _read_log_lines(path: str) -> "pl.DataFrame":
    """Slow path for one log: parse line by line, skip (and warn about) bad lines."""
    pl = _polars()
    rows, bad = [], 0
    with open(path, "rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                if not isinstance(d, dict):
                    raise ValueError("not an object")
            except ValueError:
                bad += 1
                continue
            rows.append({k: (json.dumps(d.get(k), ensure_ascii=False) if k in ("data", "metadata")
                             and d.get(k) is not None else d.get(k)) for k in EVENT_COLUMNS})
    if bad:
        warnings.warn(f"asm_nb.frames: skipped {bad} unreadable line(s) in {path}", RuntimeWarning, stacklevel=4)
    if not rows:
        return _empty_raw(pl)
    return pl.DataFrame(rows, schema=_raw_event_schema(pl), strict=False)


def _raw_events_from_logs(store: Any, session_ids: list | None) -> "pl.LazyFrame":
    pl = _polars()
    flush = getattr(store, "flush", None)
    if callable(flush):
        flush()  # buffered, not yet written events must be in the files we read
    pairs = _log_paths(store, session_ids)
    if not pairs:
        return _empty_raw(pl).lazy()
    paths = [p for _, p in pairs]
    schema = _raw_event_schema(pl)
    try:
        return pl.read_ndjson(paths, schema=schema).lazy()
    except Exception as exc:  # a torn/partial line: read file by file, skipping bad lines
        log.warning("asm_nb.frames: fast read of %d event logs failed (%s); reading line by line", len(paths), exc)
        parts = []
        for p in paths:
            try:
                parts.append(pl.read_ndjson(p, schema=schema))
            except Exception:
                parts.append(_read_log_lines(p))
        return pl.concat(parts, how="vertical").lazy()


def _dump(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False, default=str)


def _raw_events_generic(store: Any, session_ids: list | None) -> "pl.LazyFrame":
    pl = _polars()
    ids = session_ids if session_ids is not None else _session_ids(store)
    cols: dict[str, list] = {k: [] for k in EVENT_COLUMNS}
    cols["timestamp"] = []
    for sid in sorted(set(ids)):
        for e in store.get_events(sid):
            cols["id"].append(e.id)
            cols["type"].append(e.type.value)
            cols["timestamp"].append(e.timestamp)
            cols["session_id"].append(e.session_id)
            cols["run_id"].append(e.run_id)
            cols["sequence_number"].append(e.sequence_number)
            cols["data"].append(_dump(e.data))
            cols["metadata"].append(_dump(e.metadata))
            cols["schema_version"].append(e.schema_version)
            cols["provider"].append(e.provider)
            cols["correlation_id"].append(e.correlation_id)
    schema = {**_raw_event_schema(pl), "timestamp": _utc(pl)}
    return pl.DataFrame(cols, schema=schema).lazy()


def _events_lazy(store: Any, session_ids: list | None) -> "pl.LazyFrame":
    """Typed events (timestamp parsed, categoricals) of the given sessions (None = all)."""
    pl = _polars()
    if callable(getattr(store, "event_log_paths", None)):
        lf = _raw_events_from_logs(store, session_ids).with_columns(
            pl.col("timestamp").str.to_datetime(_TS_FORMAT, time_zone="UTC", time_unit="us", strict=False))
    else:
        lf = _raw_events_generic(store, session_ids)
    return lf.with_columns(pl.col("type").cast(pl.Categorical), pl.col("provider").cast(pl.Categorical))


def _event_filters(pl, f: _Filters, *, types: list | None = None, run_ids: list | None = None) -> list:
    exprs = []
    if f.run_id is not None:
        exprs.append(pl.col("run_id").is_in(f.run_id))
    if run_ids is not None:
        exprs.append(pl.col("run_id").is_in(run_ids))
    if f.provider is not None:
        exprs.append(pl.col("provider").cast(pl.String).is_in(f.provider))
    if types is not None:
        exprs.append(pl.col("type").cast(pl.String).is_in(types))
    exprs.extend(f.time_expr(pl, "timestamp"))
    return exprs


def _matching_run_ids(store: Any, f: _Filters) -> list | None:
    """Run ids that satisfy the model / run-status filters (None when neither is set)."""
    if not f.needs_runs:
        return None
    rdf = _filter_runs(_runs_frame(store), _Filters(session_id=f.session_id, model=f.model, status=f.status),
                       time_col=None)
    return rdf["run_id"].to_list()


def _audit_expr(pl):
    """True for audit records (``metadata.source == "audit"``, written by ``persistence.audit``)."""
    return pl.col("metadata").str.json_path_match("$.source").fill_null("") == "audit"


def _filtered_events(store: Any, f: _Filters, types: list | None = None, *,
                     audit: bool = False) -> "pl.LazyFrame":
    """Events matching ``f``: the run's own events, or (``audit=True``) only the audit records."""
    pl = _polars()
    run_ids = _matching_run_ids(store, f)
    exprs = _event_filters(pl, f, types=types, run_ids=run_ids)
    exprs.append(_audit_expr(pl) if audit else ~_audit_expr(pl))
    lf = _events_lazy(store, f.session_id)
    return lf.filter(*exprs)


def _check_types(types: Any) -> list | None:
    from ..core.events import is_valid_type

    tl = _as_list(types)
    if tl is not None:
        for t in tl:
            if not is_valid_type(t):
                raise AsmError("validation_error", f"type contains unsupported value: {t!r}")
    return tl


def events(store: Any = None, *, session_id: Any = None, run_id: Any = None, type: Any = None,
           provider: Any = None, model: Any = None, status: Any = None, since: Any = None, until: Any = None,
           parse_data: bool = False, backend: Backend = "pandas") -> Any:
    """One row per stored event, ordered by session then ``sequence_number``.

    Columns: ``id, type`` (categorical), ``timestamp`` (UTC), ``session_id, run_id,
    sequence_number, data, metadata`` (JSON text; structs with ``parse_data=True``),
    ``schema_version, provider`` (categorical), ``correlation_id``. ``type`` filters by event
    type (one or a list); ``model``/``status`` keep events of runs with that model / run status.

    >>> df = events(store, run_id=result.run_id, type=["tool_call_started"])   # doctest: +SKIP
    """
    _check_backend(backend)
    _polars()  # a missing polars fails here, before the store is read
    types = _check_types(type)
    f = _Filters.of(session_id, run_id, provider, model, status, since, until)
    lf = _filtered_events(_resolve_store(store), f, types)
    df = lf.select(EVENT_COLUMNS).collect()
    if parse_data and df.height:
        df = df.with_columns(df["data"].str.json_decode(infer_schema_length=None),
                             df["metadata"].str.json_decode(infer_schema_length=None))
    return _finish(df, backend)


AUDIT_COLUMNS = ("timestamp", "session_id", "run_id", "type", "agent_id", "run_status", "error_code",
                 "error_message", "input_tokens", "output_tokens", "total_tokens", "sequence_number", "id")


def audit(store: Any = None, *, session_id: Any = None, run_id: Any = None, type: Any = None,
          since: Any = None, until: Any = None, backend: Backend = "pandas") -> Any:
    """The audit log: one row per audit record, oldest first.

    The runtime writes a record when a run starts (``run_started``), completes
    (``run_completed`` with its token usage) or fails (``run_failed`` with the error), while
    config ``audit_logging_enabled`` is on (the default). Records live in the session's event
    log with ``metadata.source == "audit"``; :func:`events` leaves them out, this frame keeps only
    them. Columns: ``timestamp, session_id, run_id, type, agent_id, run_status, error_code,
    error_message, input_tokens, output_tokens, total_tokens, sequence_number, id``.

    >>> audit(store, run_id=result.run_id)["type"].tolist()   # doctest: +SKIP
    ['run_started', 'run_completed']
    """
    _check_backend(backend)
    pl = _polars()
    types = _check_types(type)
    f = _Filters.of(session_id, run_id, None, None, None, since, until)
    df = _filtered_events(_resolve_store(store), f, types, audit=True).collect()
    df = df.sort(["timestamp", "session_id", "sequence_number"])

    def field(path: str, dtype: Any) -> Any:
        return pl.col("data").str.json_path_match(path).cast(dtype, strict=False)

    df = df.select(
        pl.col("timestamp"), pl.col("session_id"), pl.col("run_id"), pl.col("type").cast(pl.String),
        field("$.agent_id", pl.String).alias("agent_id"), field("$.run_status", pl.String).alias("run_status"),
        field("$.error_code", pl.String).alias("error_code"),
        field("$.error_message", pl.String).alias("error_message"),
        field("$.token_usage.input_tokens", pl.Int64).alias("input_tokens"),
        field("$.token_usage.output_tokens", pl.Int64).alias("output_tokens"),
        field("$.token_usage.total_tokens", pl.Int64).alias("total_tokens"),
        pl.col("sequence_number"), pl.col("id"))
    return _finish(df, backend)


# --------------------------------------------------------------------------------------------
# messages, transcript


def _jp(col: str, key: str):
    pl = _polars()
    return pl.col(col).str.json_path_match(f"$.{key}")


_MESSAGE_TYPES = ["message_sent", "message_received"]


def messages(store: Any = None, *, session_id: Any = None, run_id: Any = None, provider: Any = None,
             model: Any = None, status: Any = None, since: Any = None, until: Any = None,
             include_streamed: bool = False, backend: Backend = "pandas") -> Any:
    """One row per message event (``message_sent``, ``message_received``; with
    ``include_streamed`` also each ``message_streamed`` chunk), in log order.

    Columns: ``session_id, run_id, sequence_number, timestamp, type, role`` (categorical;
    ``user`` for sent, ``assistant`` for received when the payload has none), ``kind`` (``text``
    / ``reasoning`` for chunks), ``content, chars, provider``.
    """
    _check_backend(backend)
    pl = _polars()
    types = _MESSAGE_TYPES + (["message_streamed"] if include_streamed else [])
    f = _Filters.of(session_id, run_id, provider, model, status, since, until)
    lf = _filtered_events(_resolve_store(store), f, types)
    t = pl.col("type").cast(pl.String)
    df = lf.select(
        "session_id", "run_id", "sequence_number", "timestamp", "type",
        pl.coalesce(_jp("data", "role"),
                    pl.when(t == "message_sent").then(pl.lit("user")).otherwise(pl.lit("assistant"))
                    ).cast(pl.Categorical).alias("role"),
        pl.when(t == "message_streamed").then(pl.coalesce(_jp("data", "kind"), pl.lit("text")))
        .otherwise(None).cast(pl.Categorical).alias("kind"),
        pl.when(t == "message_streamed").then(pl.coalesce(_jp("data", "delta"), _jp("data", "content")))
        .otherwise(_jp("data", "content")).alias("content"),
        "provider",
    ).with_columns(chars=pl.col("content").str.len_chars().cast(pl.Int64)).collect()
    return _finish(df, backend)


def transcript(store: Any, session_id: str, *, run_id: Any = None, include_tools: bool = False,
               backend: Backend = "pandas") -> Any:
    """The conversation of one session in order: ``sequence_number, timestamp, run_id, role,
    content, type``.

    Rows are user messages (``message_sent``) and assistant messages (``message_received``); a
    run whose stream ended without a ``message_received`` (cancelled, failed) gets one assistant
    row with its streamed text joined. ``include_tools`` adds a ``tool_call`` row per started call
    (content = the call summary) and a ``tool`` row per result (content = the output).
    """
    _check_backend(backend)
    pl = _polars()
    if not isinstance(session_id, str) or not session_id:
        raise AsmError("validation_error", "transcript needs a session_id (a non-empty string)")
    st = _resolve_store(store)
    evs = [e for e in st.get_events(session_id) if not is_audit(e)]
    run_filter = set(_as_list(run_id)) if run_id is not None else None
    rows: list[dict] = []
    pending: dict[Any, list] = {}  # run_id -> [first chunk event, [texts]]

    def close_stream(rid: Any) -> None:
        p = pending.pop(rid, None)
        if p and "".join(p[1]):
            e = p[0]
            rows.append({"sequence_number": e.sequence_number, "timestamp": e.timestamp, "run_id": rid,
                         "role": "assistant", "content": "".join(p[1]), "type": "message_streamed"})

    for e in evs:
        if run_filter is not None and e.run_id not in run_filter:
            continue
        t, d = e.type.value, e.data if isinstance(e.data, Mapping) else {}
        if t == "message_streamed":
            if d.get("kind", "text") == "text":
                chunk = d.get("delta") if d.get("delta") is not None else d.get("content")
                if isinstance(chunk, str):
                    pending.setdefault(e.run_id, [e, []])[1].append(chunk)
            continue
        if t == "message_received":
            pending.pop(e.run_id, None)
            rows.append({"sequence_number": e.sequence_number, "timestamp": e.timestamp, "run_id": e.run_id,
                         "role": str(d.get("role") or "assistant"), "content": _text(d.get("content")), "type": t})
        elif t == "message_sent":
            rows.append({"sequence_number": e.sequence_number, "timestamp": e.timestamp, "run_id": e.run_id,
                         "role": str(d.get("role") or "user"), "content": _text(d.get("content")), "type": t})
        elif t in ("run_completed", "run_failed", "run_cancelled", "run_timeout"):
            close_stream(e.run_id)
        elif include_tools and t == "tool_call_started":
            from ..rendering.studio import ToolSummary

            rows.append({"sequence_number": e.sequence_number, "timestamp": e.timestamp, "run_id": e.run_id,
                         "role": "tool_call", "type": t,
                         "content": ToolSummary.spinner_text({"name": d.get("tool_name"),
                                                              "input": d.get("tool_input")})})
        elif include_tools and t in ("tool_call_completed", "tool_call_failed"):
            rows.append({"sequence_number": e.sequence_number, "timestamp": e.timestamp, "run_id": e.run_id,
                         "role": "tool", "content": _text(d.get("tool_output")), "type": t})
    for rid in list(pending):
        close_stream(rid)
    rows.sort(key=lambda r: (r["sequence_number"] is None, r["sequence_number"] or 0))
    df = pl.DataFrame(rows, schema={"sequence_number": pl.Int64, "timestamp": _utc(pl), "run_id": pl.String,
                                    "role": pl.String, "content": pl.String, "type": pl.String})
    df = df.with_columns(pl.col("role").cast(pl.Categorical), pl.col("type").cast(pl.Categorical))
    return _finish(df, backend)


def _text(v: Any) -> str | None:
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, list):  # content blocks: join their text parts
        parts = [b.get("text") for b in v if isinstance(b, Mapping) and isinstance(b.get("text"), str)]
        if parts:
            return "".join(parts)
    return _dump(v)


# --------------------------------------------------------------------------------------------
# tool calls


def _summary_expr(pl):
    """Vectorized ``ToolSummary.spinner_text`` (docs/rendering.md) over ``tool_name`` / ``input``."""
    name = pl.col("tool_name").cast(pl.String)
    tool = (pl.when(name.is_in(["Bash", "bash"])).then(pl.lit("bash"))
            .when(name.is_null() | (name == "")).then(pl.lit("tool")).otherwise(name))

    def val(key: str):
        v = pl.col("input").str.json_path_match(f"$.{key}")
        return pl.when(v == "").then(None).otherwise(v)

    path = pl.coalesce(val("file_path"), val("path"), pl.lit("file"))
    cmd = val("command").str.strip_chars()
    cut_cmd = pl.when(cmd.str.len_chars() > 60).then(cmd.str.slice(0, 60) + pl.lit("...")).otherwise(cmd)
    host = val("url").str.extract(r"^[A-Za-z][A-Za-z0-9+.\-]*://(?:[^/?#@]*@)?(\[[^\]]*\]|[^/:?#]+)", 1) \
        .str.strip_chars("[]").str.to_lowercase()
    host = pl.when(host == "").then(None).otherwise(host)
    return (pl.when(tool == "bash").then(pl.when(cmd.is_null()).then(pl.lit("Running bash"))
                                         .otherwise(pl.lit("Running: ") + cut_cmd))
            .when(tool == "Read").then(pl.lit("Reading ") + path)
            .when(tool == "Write").then(pl.lit("Writing ") + path)
            .when(tool == "Edit").then(pl.lit("Editing ") + path)
            .when(tool == "Glob").then(pl.lit("Searching for ") + pl.coalesce(val("pattern"), pl.lit("files")))
            .when(tool == "Grep").then(pl.lit('Searching "') + pl.coalesce(val("pattern"), pl.lit("pattern"))
                                       + pl.lit('" in ') + pl.coalesce(val("path"), pl.lit(".")))
            .when(tool == "Task").then(pl.lit("Running task: ") + pl.coalesce(val("description"), pl.lit("task")))
            .when(tool == "WebFetch").then(pl.lit("Fetching ") + pl.coalesce(host, pl.lit("web resource")))
            .when(tool == "WebSearch").then(pl.lit('Searching: "') + pl.coalesce(val("query"), pl.lit(""))
                                            + pl.lit('"'))
            .otherwise(pl.lit("Using ") + tool))


_TOOL_TYPES = ["tool_call_started", "tool_call_completed", "tool_call_failed"]


def tool_calls(store: Any = None, *, session_id: Any = None, run_id: Any = None, provider: Any = None,
               model: Any = None, status: Any = None, run_status: Any = None, tool_name: Any = None,
               since: Any = None, until: Any = None, include_output: bool = False,
               backend: Backend = "pandas") -> Any:
    """One row per tool call (a ``tool_call_started`` joined with its ``tool_call_completed`` /
    ``tool_call_failed`` by ``tool_call_id`` within the run), ordered by start.

    Columns: ``session_id, run_id, tool_call_id, tool_name`` (categorical), ``summary`` (as the
    live view's spinner text: ``Running: pytest -q``, ``Reading src/app.py``), ``status``
    (``running`` / ``completed`` / ``failed``), ``started_at, finished_at, duration_ms``,
    ``input`` (JSON text), ``input_size, output_size`` (characters), ``reason`` (failure
    reason, e.g. ``permission_denied``), ``provider``, and ``output`` with ``include_output=True``.
    ``status`` is ``running`` / ``completed`` / ``failed``, or ``unfinished`` for a call the run
    ended without (its last record says ``status: "unfinished"``).

    ``status`` filters the call status, ``run_status`` the run's; ``since``/``until`` apply to
    the start time.
    """
    _check_backend(backend)
    pl = _polars()
    from ..core.run import RunStatus

    tool_status = _as_list(status)
    if tool_status is not None:
        for s in tool_status:
            if s not in _TOOL_STATUSES:
                raise AsmError("validation_error", f"status contains unsupported value: {s!r} "
                                                   f"(allowed: {_TOOL_STATUSES})")
    f = _Filters.of(session_id, run_id, provider, model, run_status, None, None)
    _check_statuses(f.status, RunStatus, "run_status")
    lf = _filtered_events(_resolve_store(store), f, _TOOL_TYPES)
    base = lf.select(
        "session_id", "run_id", "sequence_number", "timestamp", "provider",
        pl.col("type").cast(pl.String).alias("type"),
        _jp("data", "tool_call_id").alias("tool_call_id"),
        _jp("data", "tool_name").alias("tool_name"),
        _jp("data", "tool_input").alias("input"),
        _jp("data", "tool_output").alias("output"),
        _jp("data", "reason").alias("reason"),
        _jp("data", "status").alias("end_mark"),
    ).collect()
    keys = ["session_id", "run_id", "tool_call_id"]
    starts = (base.filter(pl.col("type") == "tool_call_started")
              .unique(subset=keys, keep="first", maintain_order=True)
              .select(*keys, "sequence_number", pl.col("timestamp").alias("started_at"), "tool_name", "input",
                      "provider"))
    ends = (base.filter(pl.col("type") != "tool_call_started")
            .unique(subset=keys, keep="last", maintain_order=True)
            .select(*keys, pl.col("timestamp").alias("finished_at"),
                    pl.when(pl.col("type") == "tool_call_completed").then(pl.lit("completed"))
                    .when(pl.col("end_mark") == "unfinished").then(pl.lit("unfinished"))
                    .otherwise(pl.lit("failed")).alias("end_status"),
                    pl.col("tool_name").alias("end_tool_name"), pl.col("input").alias("end_input"),
                    "output", "reason", pl.col("provider").alias("end_provider"),
                    pl.col("sequence_number").alias("end_sequence_number")))
    df = starts.join(ends, on=keys, how="full", coalesce=True, nulls_equal=True)
    df = df.with_columns(
        tool_name=pl.coalesce("tool_name", "end_tool_name").cast(pl.Categorical),
        input=pl.coalesce("input", "end_input"),
        provider=pl.coalesce(pl.col("provider").cast(pl.String), pl.col("end_provider").cast(pl.String))
        .cast(pl.Categorical),
        started_at=pl.coalesce("started_at", "finished_at"),
        sequence_number=pl.coalesce("sequence_number", "end_sequence_number"),
        status=pl.coalesce("end_status", pl.lit("running")).cast(pl.Enum(_TOOL_STATUSES)),
    ).with_columns(
        summary=_summary_expr(pl),
        duration_ms=(pl.col("finished_at") - pl.col("started_at")).dt.total_microseconds() / 1000.0,
        input_size=pl.col("input").str.len_chars().cast(pl.Int64),
        output_size=pl.col("output").str.len_chars().cast(pl.Int64),
    )
    exprs = []
    if tool_status is not None:
        exprs.append(pl.col("status").cast(pl.String).is_in(tool_status))
    tn = _as_list(tool_name)
    if tn is not None:
        exprs.append(pl.col("tool_name").cast(pl.String).is_in(tn))
    since_, until_ = _to_utc(since, "since"), _to_utc(until, "until")
    if since_ is not None:
        exprs.append(pl.col("started_at") >= since_)
    if until_ is not None:
        exprs.append(pl.col("started_at") < until_)
    if exprs:
        df = df.filter(*exprs)
    cols = ["session_id", "run_id", "tool_call_id", "tool_name", "summary", "status", "started_at", "finished_at",
            "duration_ms", "input", "input_size", "output_size", "reason", "provider"]
    if include_output:
        cols.append("output")
    df = df.sort("session_id", "sequence_number", nulls_last=True).select(cols)
    return _finish(df, backend)


# --------------------------------------------------------------------------------------------
# costs / usage


_GROUPS = ("run", "session", "day", "model", "provider")


def costs(store: Any = None, *, session_id: Any = None, run_id: Any = None, provider: Any = None,
          model: Any = None, status: Any = None, since: Any = None, until: Any = None, by: Any = None,
          pricing_table: Any = None, backend: Backend = "pandas") -> Any:
    """Tokens and USD per run (default) or aggregated ``by`` one or more of ``"session"``,
    ``"day"``, ``"model"``, ``"provider"``.

    Per-run columns: ``run_id, session_id, day`` (``started_at`` truncated to UTC midnight, a
    tz-aware datetime in both backends), ``started_at,
    status, provider, model, input_tokens, output_tokens, cache_read_tokens,
    cache_creation_tokens, total_tokens, cost_usd, unpriced, cost_source, price_key,
    pricing_version, reported_cost_usd, computed_cost_usd``.

    Costs are the ones stored on the runs (``cost_source`` says ``reported`` / ``computed`` /
    ...). A finished run stored without a cost is priced post hoc (``cost_source="post_hoc"``)
    with the active table; ``pricing_table=`` (a table, pricing document or file path) instead
    re-prices **every** run with that table — a what-if view; provider-reported costs still win.

    Aggregated columns: the ``by`` keys, ``run_count``, the token sums, ``cost_usd`` (sum over
    priced runs) and ``unpriced_runs``.
    """
    _check_backend(backend)
    pl = _polars()
    from ..core.run import RunStatus
    from ..cost.calculator import price_run
    from ..cost.pricing import resolve_pricing

    groups = _as_list(by)
    if groups is not None:
        bad = [g for g in groups if g not in _GROUPS]
        if bad:
            raise AsmError("validation_error", f"by contains unsupported value: {bad[0]!r} (allowed: {list(_GROUPS)})")
    f = _Filters.of(session_id, run_id, provider, model, status, since, until)
    _check_statuses(f.status, RunStatus, "status")
    st = _resolve_store(store)
    run_objs = _all_runs(st)
    rdf = _filter_runs(_runs_frame(st, run_objs), f)

    info = resolve_pricing(pricing_table) if pricing_table is not None else None
    need = rdf.filter(pl.col("unpriced")) if info is None else rdf
    if need.height:
        by_id = {r.id: r for r in run_objs}
        upd = {"run_id": [], "cost_usd": [], "computed_cost_usd": [], "cost_source": [], "price_key": [],
               "pricing_version": []}
        for rid, rep in zip(need["run_id"].to_list(), need["reported_cost_usd"].to_list()):
            p = price_run(by_id[rid], reported_cost_usd=rep, table=info)
            upd["run_id"].append(rid)
            upd["cost_usd"].append(p["cost_usd"])
            upd["computed_cost_usd"].append(p["computed_cost_usd"])
            upd["cost_source"].append(p["cost_source"] if info is not None or p["cost_source"] is None
                                      else "post_hoc")
            upd["price_key"].append(p["price_key"])
            upd["pricing_version"].append(p["pricing_version"])
        u = pl.DataFrame(upd, schema={"run_id": pl.String, "cost_usd": pl.Float64, "computed_cost_usd": pl.Float64,
                                      "cost_source": pl.String, "price_key": pl.String,
                                      "pricing_version": pl.String})
        rdf = rdf.update(u.with_columns([pl.col(c).cast(pl.Categorical) for c in
                                         ("cost_source", "price_key", "pricing_version")]),
                         on="run_id", how="left", include_nulls=True)
        terminal = pl.col("status").is_in(["completed", "failed", "cancelled", "timeout"])
        rdf = rdf.with_columns(unpriced=pl.col("cost_usd").is_null() & terminal)

    df = rdf.with_columns(day=pl.col("started_at").dt.truncate("1d")).select(
        "run_id", "session_id", "day", "started_at", "status", "provider", "model", *_TOKEN_KEYS,
        "total_tokens", "cost_usd", "unpriced", "cost_source", "price_key", "pricing_version",
        "reported_cost_usd", "computed_cost_usd").sort("started_at", "run_id")
    if groups is not None and groups != ["run"]:
        keys = ["session_id" if g == "session" else ("run_id" if g == "run" else g) for g in groups]
        df = df.group_by(keys).agg(
            run_count=pl.len().cast(pl.Int64),
            **{k: pl.col(k).fill_null(0).sum().cast(pl.Int64) for k in (*_TOKEN_KEYS, "total_tokens")},
            cost_usd=pl.when(pl.col("cost_usd").is_not_null().any()).then(pl.col("cost_usd").sum()).otherwise(None),
            unpriced_runs=pl.col("unpriced").sum().cast(pl.Int64),
        ).sort(keys, nulls_last=True)
    return _finish(df, backend)


def usage(store: Any = None, *, by: str = "day", since: Any = None, until: Any = None, source: Any = None,
          backend: Backend = "pandas") -> Any:
    """Tokens and USD per model call summed ``by`` ``"day"``, ``"week"``, ``"month"``,
    ``"session"``, ``"project"``, ``"model"`` or ``"block"`` (5-hour billing windows), over
    imported history and runs made here alike (``asm_nb.analytics.usage``, docs/history.md)."""
    from .usage import usage as _usage

    return _usage(store, by=by, since=since, until=until, source=source, backend=backend)


# --------------------------------------------------------------------------------------------
# diffs


def diffs(store: Any = None, *, session_id: Any = None, run_id: Any = None, backend: Backend = "pandas") -> Any:
    """One row per changed file per run (``%%asm --snapshot`` / ``snapshot=True`` runs): ``run_id,
    session_id, started_at, workspace_backend, path, change`` (added / modified / deleted /
    renamed), ``old_path``, ``lines_added, lines_removed, binary``. Per-run totals:
    ``diff_summaries``."""
    from ..workspace.frames import diffs_frame

    return diffs_frame(_resolve_store(store), session_id=session_id, run_id=run_id, backend=backend)


def diff_summaries(store: Any = None, *, session_id: Any = None, run_id: Any = None, provider: Any = None,
                   model: Any = None, status: Any = None, since: Any = None, until: Any = None,
                   backend: Backend = "pandas") -> Any:
    """One row per run that recorded a workspace diff (``run.metadata["workspace"]``, docs/workspace.md): ``run_id,
    session_id, started_at, provider, backend, before_ref, after_ref,
    files_changed, insertions, deletions, changed_paths`` (list), ``has_patch, patch_ref,
    patch_bytes``."""
    _check_backend(backend)
    pl = _polars()
    from ..core.run import RunStatus

    f = _Filters.of(session_id, run_id, provider, model, status, since, until)
    _check_statuses(f.status, RunStatus, "status")
    st = _resolve_store(store)
    run_objs = _all_runs(st)
    keep = set(_filter_runs(_runs_frame(st, run_objs), f)["run_id"].to_list())
    rows = []
    for r in run_objs:
        if r.id not in keep:
            continue
        md = r.metadata if isinstance(r.metadata, Mapping) else {}
        pm = r.provider_metadata if isinstance(r.provider_metadata, Mapping) else {}
        ws = md.get("workspace") if isinstance(md.get("workspace"), Mapping) else pm.get("workspace")
        if not isinstance(ws, Mapping):
            continue
        diff = ws.get("diff") if isinstance(ws.get("diff"), Mapping) else {}
        before = ws.get("before_ref")
        after = ws.get("after_ref")
        if before is None and isinstance(ws.get("before_snapshot"), Mapping):
            before = ws["before_snapshot"].get("ref")
        if after is None and isinstance(ws.get("after_snapshot"), Mapping):
            after = ws["after_snapshot"].get("ref")
        paths = diff.get("changed_paths")
        rows.append({"run_id": r.id, "session_id": r.session_id, "started_at": r.started_at,
                     "provider": r.provider, "backend": ws.get("backend"), "before_ref": before, "after_ref": after,
                     "files_changed": _int_or_none(diff.get("files_changed")),
                     "insertions": _int_or_none(diff.get("insertions")),
                     "deletions": _int_or_none(diff.get("deletions")),
                     "changed_paths": [str(p) for p in paths] if isinstance(paths, list) else [],
                     "has_patch": isinstance(diff.get("patch"), str) or diff.get("patch_ref") is not None,
                     "patch_ref": diff.get("patch_ref") or ws.get("patch_ref"),
                     "patch_bytes": _int_or_none(diff.get("patch_bytes") or ws.get("patch_bytes"))})
    schema = {"run_id": pl.String, "session_id": pl.String, "started_at": _utc(pl), "provider": pl.String,
              "backend": pl.String, "before_ref": pl.String, "after_ref": pl.String, "files_changed": pl.Int64,
              "insertions": pl.Int64, "deletions": pl.Int64, "changed_paths": pl.List(pl.String),
              "has_patch": pl.Boolean, "patch_ref": pl.String, "patch_bytes": pl.Int64}
    df = pl.DataFrame(rows, schema=schema).with_columns(pl.col("provider").cast(pl.Categorical),
                                                        pl.col("backend").cast(pl.Categorical))
    return _finish(df.sort("started_at", "run_id"), backend)


def evals(store: Any = None, *, backend: Backend = "pandas") -> Any:
    """One row per eval and agent in ``store`` (see ``asm_nb.evaluate``): runs, items, pass rate,
    mean score, cost, first start and last end."""
    from ..evaluation.frames import evals_frame

    return evals_frame(store, backend=backend)


def scores(store: Any = None, *, eval: Any = None, backend: Backend = "pandas") -> Any:
    """One row per scored eval run and scorer: value, passed, explanation, with item, agent,
    repeat, run status and cost (``eval=``: one eval name or a list)."""
    from ..evaluation.frames import scores_frame

    return scores_frame(store, eval=eval, backend=backend)


# --------------------------------------------------------------------------------------------
# search


def search(store: Any = None, text: str = "", *, kind: Any = None, session_id: str | None = None, limit: int = 20,
           mark: tuple[str, str] = ("**", "**"), backend: Backend = "pandas") -> Any:
    """Full-text search over prompts, outputs, tool inputs and outputs, best first: ``rank, score,
    kind, session_id, run_id, sequence_number, timestamp, snippet`` (matches between ``mark``),
    ``event_id``. See :func:`asm_nb.analytics.search.search` and docs/search.md."""
    from .search import search as _search

    return _search(store, text, kind=kind, session_id=session_id, limit=limit, mark=mark, backend=backend)
