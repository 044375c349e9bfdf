"""The runs and sessions frames (from ``store.list_runs`` / ``store.list_sessions``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping

from ...core.errors import AsmError
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
