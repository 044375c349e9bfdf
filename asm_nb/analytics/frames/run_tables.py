"""The runs and sessions frames (from ``store.list_runs`` / ``store.list_sessions``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping, cast

from ...core.errors import AsmError
from ...core.run_summary import _float_or_none as _float_or_none
from ...core.run_summary import _int_or_none as _int_or_none
from ._common import (
    _check_backend, _check_statuses, _Filters, _finish, _polars, _resolve_store, _run_status_dtype,
    _session_status_dtype, _TOKEN_KEYS, _utc, Backend,
)

if TYPE_CHECKING:  # pragma: no cover
    import polars as pl


# --------------------------------------------------------------------------------------------
# runs


def _model_of(run: Any) -> Any:
    pm = run.provider_metadata if isinstance(run.provider_metadata, Mapping) else {}
    md = run.metadata if isinstance(run.metadata, Mapping) else {}
    return pm.get("model") if pm.get("model") is not None else md.get("model")


def _all_runs(store: Any) -> list:
    try:
        return list(store.list_runs(None))
    except AsmError:
        raise
    except Exception as exc:
        raise AsmError("query_error", f"store {type(store).__name__} cannot list all runs: {exc}") from exc


_STR_COLS = ("session_id", "status", "provider", "model", "cost_source", "price_key", "pricing_version",
             "error_code", "error_message", "stop_reason")
_FLOAT_COLS = ("cost_usd", "reported_cost_usd", "computed_cost_usd")
_IN_FLIGHT = ("pending", "running")


def _summary_schema(pl, places: bool) -> dict:
    """polars schema of ``core.run_summary.summary_row`` rows (plus the summary file's ``o``, ``n``,
    ``deleted`` with ``places``)."""
    from ...core.run_summary import SUMMARY_COLUMNS

    schema = {"o": pl.Int64, "n": pl.Int64, "id": pl.String, "deleted": pl.Boolean} if places else {"id": pl.String}
    for c in SUMMARY_COLUMNS:
        schema[c] = pl.String if c in _STR_COLS else pl.Float64 if c in _FLOAT_COLS else pl.Int64
    return schema


def _summary_rows(store: Any) -> "pl.DataFrame | None":
    """The current summary row of every run, read from the store's run summaries (LocalStore:
    ``db/runs.summary.jsonl``, parsed by polars, no run document parsed), or None when the store
    keeps none or a run is pending/running (its owner may be gone: listing the runs marks it)."""
    get = getattr(store, "run_summaries", None)
    if not callable(get):
        return None
    snap = get()
    if snap is None:
        return None
    import io

    pl = _polars()
    lines, tail = cast("tuple[bytes, list[bytes]]", snap)  # LocalStore.run_summaries
    schema = _summary_schema(pl, True)
    parts = []
    if lines:
        parts.append(pl.read_ndjson(io.BytesIO(lines), schema=schema))
    if tail:
        parts.append(pl.read_ndjson(io.BytesIO(b"".join(tail)), schema=schema))
    if not parts:
        return pl.DataFrame(schema=schema)
    df = pl.concat(parts) if len(parts) > 1 else parts[0]
    df = df.unique(subset="id", keep="last", maintain_order=True).filter(pl.col("deleted").is_null())
    if df.filter(pl.col("status").is_in(_IN_FLIGHT)).height:
        return None
    return df


def _run_source(store: Any) -> "tuple[pl.DataFrame, Callable[[list[str]], dict[str, Any]]]":
    """(the runs frame, ``load(run_ids) -> {id: Run}`` for the few runs a caller needs whole)."""
    df = _summary_rows(store)
    if df is not None:
        places = df.select("id", "o", "n")

        def load(ids: list[str]) -> dict[str, Any]:
            pl = _polars()
            want = places.filter(pl.col("id").is_in(ids))
            return store.runs_at(list(zip(want["id"].to_list(), want["o"].to_list(), want["n"].to_list())))

        return _shape_runs(df), load
    run_objs = _all_runs(store)
    by_id = {r.id: r for r in run_objs}
    return _runs_frame(store, run_objs), lambda ids: {i: by_id[i] for i in ids if i in by_id}


def _runs_frame(store: Any, run_objs: list | None = None) -> "pl.DataFrame":
    """Every run of the store as a typed polars frame (no filters). Without ``run_objs``, from the
    store's run summaries when it keeps them."""
    pl = _polars()
    if run_objs is None:
        df = _summary_rows(store)
        if df is not None:
            return _shape_runs(df)
        run_objs = _all_runs(store)
    from ...core.run_summary import summary_row

    schema = _summary_schema(pl, False)
    rows = [summary_row(r) for r in run_objs]
    return _shape_runs(pl.from_dicts(rows, schema=schema) if rows else pl.DataFrame(schema=schema))


def _shape_runs(df: "pl.DataFrame") -> "pl.DataFrame":
    """Summary rows (``core.run_summary``) as the runs frame: typed, derived columns added."""
    pl = _polars()
    cat = pl.Categorical
    df = df.select(
        pl.col("id").alias("run_id"), "session_id", pl.col("status").cast(_run_status_dtype(pl)),
        pl.col("provider").cast(cat), pl.col("model").cast(cat),
        *[pl.col(c).cast(pl.Datetime("us")).dt.replace_time_zone("UTC") for c in ("started_at", "ended_at")],
        "turn_count", *_TOKEN_KEYS, "reasoning_output_tokens", *_FLOAT_COLS,
        *[pl.col(c).cast(cat) for c in ("cost_source", "price_key", "pricing_version", "error_code")],
        "error_message", pl.col("stop_reason").cast(cat))
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
    from ...core.run import RunStatus

    f = _Filters.of(session_id, run_id, provider, model, status, since, until)
    _check_statuses(f.status, RunStatus, "status")
    df = _filter_runs(_runs_frame(_resolve_store(store)), f).sort("started_at", "run_id")
    return _finish(df, backend)


# --------------------------------------------------------------------------------------------
# sessions


def _session_ids(store: Any) -> list[str]:
    """Every session id the store knows: rows, runs and event logs."""
    lister: Callable[..., Any] | None = getattr(store, "list_session_ids", None)
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
    from ...core.session import SessionStatus

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
