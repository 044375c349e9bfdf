"""Eval frames over a store (exposed as ``asm_nb.frames.evals`` / ``asm_nb.frames.scores``).

- ``evals_frame(store)``: one row per eval and agent — runs, items, pass rate, mean score, cost,
  first start and last end;
- ``scores_frame(store, eval=None)``: one row per scored run and scorer — value, passed,
  explanation, with the item, agent, repeat, run status and cost.

Both read the scores kept on the runs (``run.metadata["eval"]``); built with polars,
``backend="pandas"`` (default) converts at the end.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..core.errors import AsmError

__all__ = ["evals_frame", "scores_frame", "score_rows"]

SCORE_COLUMNS = ["eval", "item_id", "item_hash", "agent", "agent_hash", "repeat", "run_id", "session_id", "status",
                 "scorer", "kind", "value", "passed", "explanation", "cost_usd", "duration_ms", "started_at"]


def _store(store: Any) -> Any:
    from .. import api

    return api.resolve_store(store)


def score_rows(store: Any = None, *, eval: str | list[str] | None = None) -> list[dict[str, Any]]:
    """The rows of :func:`scores_frame` as dicts."""
    st = _store(store)
    names = [eval] if isinstance(eval, str) else (list(eval) if eval is not None else None)
    try:
        st.flush()
    except Exception:
        pass
    rows = []
    for run in st.list_runs(None):
        ev = (run.metadata or {}).get("eval")
        if not isinstance(ev, Mapping) or not ev.get("scored"):
            continue
        if names is not None and ev.get("name") not in names:
            continue
        base = {"eval": ev.get("name"), "item_id": None if ev.get("item_id") is None else str(ev.get("item_id")),
                "item_hash": ev.get("item_hash"), "agent": ev.get("agent"), "agent_hash": ev.get("agent_hash"),
                "repeat": ev.get("repeat"), "run_id": run.id, "session_id": run.session_id,
                "status": run.status.value, "cost_usd": run.cost_usd, "duration_ms": run.duration_ms,
                "started_at": run.started_at}
        for s in ev.get("scores") or []:
            v = s.get("value")
            rows.append({**base, "scorer": s.get("name"), "kind": s.get("kind"),
                         "value": float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None,
                         "passed": bool(s.get("passed")), "explanation": s.get("explanation")})
    rows.sort(key=lambda r: (r["eval"] or "", r["started_at"], r["run_id"], r["scorer"] or ""))
    return rows


def _finish(rows: list[dict[str, Any]], columns: list[str], backend: str, schema: dict) -> Any:
    if backend not in ("pandas", "polars"):
        raise AsmError("validation_error", f"backend must be pandas or polars, got {backend!r}")
    import polars as pl

    df = pl.DataFrame([{c: r.get(c) for c in columns} for r in rows], schema=schema, orient="row") if rows \
        else pl.DataFrame(schema=schema)
    return df.to_pandas() if backend == "pandas" else df


def scores_frame(store: Any = None, *, eval: str | list[str] | None = None, backend: str = "pandas") -> Any:
    """One row per scored run and scorer (see the module docstring)."""
    import polars as pl

    schema = {"eval": pl.Utf8, "item_id": pl.Utf8, "item_hash": pl.Utf8, "agent": pl.Utf8, "agent_hash": pl.Utf8,
              "repeat": pl.Int64, "run_id": pl.Utf8, "session_id": pl.Utf8, "status": pl.Utf8, "scorer": pl.Utf8,
              "kind": pl.Utf8, "value": pl.Float64, "passed": pl.Boolean, "explanation": pl.Utf8,
              "cost_usd": pl.Float64, "duration_ms": pl.Int64, "started_at": pl.Datetime("us", "UTC")}
    return _finish(score_rows(store, eval=eval), SCORE_COLUMNS, backend, schema)


def evals_frame(store: Any = None, *, backend: str = "pandas") -> Any:
    """One row per eval and agent: runs, items, passed, pass_rate, mean_score, cost_usd,
    first_started, last_ended."""
    import polars as pl

    st = _store(store)
    try:
        st.flush()
    except Exception:
        pass
    acc: dict[tuple[str, str], dict[str, Any]] = {}
    for run in st.list_runs(None):
        ev = (run.metadata or {}).get("eval")
        if not isinstance(ev, Mapping) or not ev.get("scored"):
            continue
        k = (str(ev.get("name")), str(ev.get("agent")))
        a = acc.setdefault(k, {"eval": k[0], "agent": k[1], "runs": 0, "items": set(), "passed": 0, "values": [],
                               "cost_usd": None, "first_started": run.started_at, "last_ended": run.ended_at})
        a["runs"] += 1
        a["items"].add(ev.get("item_hash"))
        scores = ev.get("scores") or []
        if run.status.value == "completed" and all(s.get("passed") for s in scores):
            a["passed"] += 1
        vals = [s.get("value") for s in scores if isinstance(s.get("value"), (int, float))]
        if vals:
            a["values"].append(sum(vals) / len(vals))
        if run.cost_usd is not None:
            a["cost_usd"] = (a["cost_usd"] or 0.0) + run.cost_usd
        a["first_started"] = min(a["first_started"], run.started_at)
        if run.ended_at is not None:
            a["last_ended"] = run.ended_at if a["last_ended"] is None else max(a["last_ended"], run.ended_at)
    rows = []
    for a in acc.values():
        rows.append({"eval": a["eval"], "agent": a["agent"], "runs": a["runs"], "items": len(a["items"]),
                     "passed": a["passed"], "pass_rate": a["passed"] / a["runs"],
                     "mean_score": sum(a["values"]) / len(a["values"]) if a["values"] else None,
                     "cost_usd": a["cost_usd"], "first_started": a["first_started"], "last_ended": a["last_ended"]})
    eval_start: dict[str, Any] = {}
    for r in rows:
        eval_start[r["eval"]] = min(eval_start.get(r["eval"], r["first_started"]), r["first_started"])
    rows.sort(key=lambda r: (eval_start[r["eval"]], r["eval"], r["agent"]))  # evals in time order, agents by name
    cols = ["eval", "agent", "runs", "items", "passed", "pass_rate", "mean_score", "cost_usd", "first_started",
            "last_ended"]
    schema = {"eval": pl.Utf8, "agent": pl.Utf8, "runs": pl.Int64, "items": pl.Int64, "passed": pl.Int64,
              "pass_rate": pl.Float64, "mean_score": pl.Float64, "cost_usd": pl.Float64,
              "first_started": pl.Datetime("us", "UTC"), "last_ended": pl.Datetime("us", "UTC")}
    return _finish(rows, cols, backend, schema)
