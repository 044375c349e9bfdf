"""The events and audit frames: the raw event log read by polars (LocalStore JSONL) or from
``store.get_events``, and the event filters the derived frames share."""

from __future__ import annotations

import json
import os
import urllib.parse
import warnings
from typing import TYPE_CHECKING, Any, Mapping

from ...core.errors import AsmError
from ._common import (
    _as_list, _check_backend, _Filters, _finish, _polars, _raw_event_schema, _resolve_store, _TS_FORMAT, _utc,
    Backend, EVENT_COLUMNS, log,
)
from .run_tables import _filter_runs, _runs_frame, _session_ids

if TYPE_CHECKING:  # pragma: no cover
    import polars as pl


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
    from ...core.events import is_valid_type

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
