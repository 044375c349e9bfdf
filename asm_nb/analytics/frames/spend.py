"""The costs frame (per run, session, day, model or provider) and the usage frame."""

from __future__ import annotations

from typing import Any

from ...core.errors import AsmError
from ._common import (
    _as_list, _check_backend, _check_statuses, _Filters, _finish, _polars, _resolve_store, _TOKEN_KEYS, Backend,
)
from .run_tables import _all_runs, _filter_runs, _run_source, _runs_frame


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
    from ...core.run import RunStatus
    from ...cost.calculator import price_run
    from ...cost.pricing import resolve_pricing

    groups = _as_list(by)
    if groups is not None:
        bad = [g for g in groups if g not in _GROUPS]
        if bad:
            raise AsmError("validation_error", f"by contains unsupported value: {bad[0]!r} (allowed: {list(_GROUPS)})")
    f = _Filters.of(session_id, run_id, provider, model, status, since, until)
    _check_statuses(f.status, RunStatus, "status")
    st = _resolve_store(store)
    info = resolve_pricing(pricing_table) if pricing_table is not None else None
    if info is None:  # the stored costs: the run summaries suffice (whole runs only for the unpriced)
        frame, load = _run_source(st)
    else:  # every run is re-priced
        run_objs = _all_runs(st)
        by_id = {r.id: r for r in run_objs}
        frame, load = _runs_frame(st, run_objs), (lambda ids: {i: by_id[i] for i in ids if i in by_id})
    rdf = _filter_runs(frame, f)

    need = rdf.filter(pl.col("unpriced")) if info is None else rdf
    if need.height:
        by_id = load(need["run_id"].to_list())
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
    from ..usage import usage as _usage

    return _usage(store, by=by, since=since, until=until, source=source, backend=backend)
