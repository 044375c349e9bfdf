"""The outcome of an eval: ``EvalResult`` (rows, ``frame``, per-agent ``summary`` with 95%
confidence intervals, ``compare``, ``matrix``, ``thresholds``), ``EvalComparison`` (per-item deltas
against a baseline agent) and ``load_eval`` (the stored results of an eval by name).

Split out of ``evaluation/runner.py``, which re-exports these names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from ..core.errors import AsmError
from .agents import Agent
from .eval_rows import BASE_COLUMNS, _done_runs, _row, _Task
from .scorers import Score

_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         12: 2.179, 15: 2.131, 20: 2.086, 25: 2.060, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}


def _t975(df: int) -> float:
    if df <= 0:
        return float("nan")
    keys = sorted(_T975)
    for k in keys:
        if df <= k:
            return _T975[k]
    return 1.960


def mean_ci(values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, low, high): the 95% t interval of the mean (NaN bounds for fewer than 2 values)."""
    vals = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return (float("nan"),) * 3  # type: ignore[return-value]
    m = sum(vals) / len(vals)
    if len(vals) < 2:
        return m, float("nan"), float("nan")
    sd = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1))
    half = _t975(len(vals) - 1) * sd / math.sqrt(len(vals))
    return m, m - half, m + half


def _pct(values: Sequence[float | None], q: float) -> float | None:
    vals = sorted(float(v) for v in values if v is not None)
    if not vals:
        return None
    k = (len(vals) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return vals[lo] + (vals[hi] - vals[lo]) * (k - lo)


@dataclass
class EvalResult:
    """The outcome of :func:`evaluate`: one row per item x agent x repeat."""

    name: str
    rows: list
    agents: list
    scorers: list
    store: Any = None
    stopped: str | None = None
    spent_usd: float = 0.0

    @property
    def frame(self) -> Any:
        """pandas DataFrame: item, agent, repeat, input, expected, output, status, passed, score
        (mean of the scorers' values), ``score_<name>`` / ``pass_<name>`` / ``why_<name>`` per
        scorer, tokens, cost, duration, diff stats, run and session ids."""
        import pandas as pd

        cols = list(BASE_COLUMNS)
        for s in self.scorers:
            cols += [f"score_{s}", f"pass_{s}", f"why_{s}"]
        return pd.DataFrame([{c: r.get(c) for c in cols} for r in self.rows], columns=cols)

    def _agent_rows(self, agent: str) -> list[dict]:
        return [r for r in self.rows if r["agent"] == agent and r["status"] != "skipped"]

    @property
    def summary(self) -> Any:
        """Per agent: runs, mean score with its 95% confidence interval, pass rate, errors, total
        and per-item cost, p50/p95 duration."""
        import pandas as pd

        out = []
        for a in self.agents:
            rows = self._agent_rows(a.name)
            m, lo, hi = mean_ci([r["score"] for r in rows if r.get("score") is not None])
            costs = [r["cost_usd"] for r in rows if isinstance(r.get("cost_usd"), (int, float))]
            items = {r["item_id"] for r in rows}
            out.append({"agent": a.name, "runs": len(rows), "items": len(items),
                        "skipped": sum(1 for r in self.rows if r["agent"] == a.name and r["status"] == "skipped"),
                        "mean_score": m, "ci_low": lo, "ci_high": hi,
                        "pass_rate": (sum(1 for r in rows if r["passed"]) / len(rows)) if rows else float("nan"),
                        "errors": sum(1 for r in rows if r["status"] != "completed"),
                        "cost_usd": sum(costs) if costs else None,
                        "cost_per_item": (sum(costs) / len(items)) if costs and items else None,
                        "p50_duration_ms": _pct([r.get("duration_ms") for r in rows], 0.5),
                        "p95_duration_ms": _pct([r.get("duration_ms") for r in rows], 0.95)})
        return pd.DataFrame(out)

    def item_scores(self) -> dict[tuple[str, str], dict]:
        """``{(item_id, agent): {"score": mean over repeats, "passed": all repeats passed}}``."""
        acc: dict[tuple[str, str], list[dict]] = {}
        for r in self.rows:
            if r["status"] == "skipped":
                continue
            acc.setdefault((r["item_id"], r["agent"]), []).append(r)
        out = {}
        for k, rs in acc.items():
            vals = [r["score"] for r in rs if r.get("score") is not None]
            out[k] = {"score": sum(vals) / len(vals) if vals else None, "passed": all(r["passed"] for r in rs),
                      "rows": rs}
        return out

    def disagreements(self) -> list[str]:
        """Item ids where the agents do not all pass or all fail."""
        by_item: dict[str, set] = {}
        for (item, _agent), v in self.item_scores().items():
            by_item.setdefault(item, set()).add(v["passed"])
        return [i for i, s in by_item.items() if len(s) > 1]

    def compare(self, baseline: str | None = None, *, tolerance: float = 1e-9) -> "EvalComparison":
        """Per-item score deltas of each agent against ``baseline`` (default the first agent), and
        wins / losses / ties."""
        names = [a.name for a in self.agents]
        base = baseline or names[0]
        if base not in names:
            raise AsmError("validation_error", f"baseline {base!r} is not an agent of this eval ({names})")
        scores = self.item_scores()
        items = list(dict.fromkeys(r["item_id"] for r in self.rows))
        rows = []
        for a in names:
            if a == base:
                continue
            for i in items:
                b, x = scores.get((i, base)), scores.get((i, a))
                if b is None or x is None or b["score"] is None or x["score"] is None:
                    continue
                d = x["score"] - b["score"]
                rows.append({"item_id": i, "agent": a, "baseline": base, "baseline_score": b["score"],
                             "score": x["score"], "delta": d, "baseline_passed": b["passed"], "passed": x["passed"],
                             "outcome": "win" if d > tolerance else "loss" if d < -tolerance else "tie"})
        return EvalComparison(baseline=base, rows=rows, agents=[n for n in names if n != base])

    def matrix(self, *, only_disagreements: bool = False, max_items: int = 200, excerpt_chars: int = 160,
               deterministic: bool = False) -> Any:
        """The matrix view (rows = items, columns = agents): output excerpt, score badges, cost;
        each cell opens its run card; a checkbox filters to disagreements. Static HTML (it stays
        in a saved notebook); needs ``asm_nb.notebook``. ``deterministic=True``: run cards
        without ids and timings (for notebooks checked by nbval)."""
        from . import _views

        return _views.matrix(self, only_disagreements=only_disagreements, max_items=max_items,
                             excerpt_chars=excerpt_chars, deterministic=deterministic)

    def thresholds(self, **limits: float) -> list[str]:
        """Failed thresholds, one message each (empty: all met). Limits per agent:
        ``pass_rate`` / ``mean_score`` (minimums), ``max_cost_usd`` (maximum)."""
        failures = []
        summ = self.summary.to_dict("records")
        for row in summ:
            for key, limit in limits.items():
                if limit is None:
                    continue
                if key in ("pass_rate", "mean_score"):
                    v = row[key]
                    if v is None or (isinstance(v, float) and math.isnan(v)) or v < float(limit):
                        failures.append(f"{row['agent']}: {key} {v:.3f} < {float(limit):g}")
                elif key == "max_cost_usd":
                    v = row["cost_usd"] or 0.0
                    if v > float(limit):
                        failures.append(f"{row['agent']}: cost ${v:.4f} > ${float(limit):g}")
                else:
                    raise AsmError("validation_error", f"unknown threshold {key!r} (pass_rate, mean_score, "
                                                       "max_cost_usd)")
        if self.stopped == "budget":
            failures.append(f"eval stopped by its budget after ${self.spent_usd:.4f}")
        return failures

    def __repr__(self) -> str:
        n = len(self.rows)
        done = sum(1 for r in self.rows if r["status"] != "skipped")
        stop = f", stopped: {self.stopped}" if self.stopped else ""
        return f"<EvalResult {self.name!r}: {done}/{n} runs, agents {[a.name for a in self.agents]}{stop}>"

    def _repr_html_(self) -> str:
        import html

        cols = ["agent", "runs", "skipped", "mean_score", "ci_low", "ci_high", "pass_rate", "errors", "cost_usd"]
        stop = f" (stopped: {html.escape(self.stopped)})" if self.stopped else ""
        return (f"<p><b>eval {html.escape(self.name)}</b>{stop}</p>"  # no timings: a saved notebook stays stable
                + self.summary[cols].to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep=""))


@dataclass
class EvalComparison:
    """Per-item deltas against a baseline agent: ``frame`` and ``summary`` (wins/losses/ties)."""

    baseline: str
    rows: list
    agents: list

    @property
    def frame(self) -> Any:
        import pandas as pd

        cols = ["item_id", "agent", "baseline", "baseline_score", "score", "delta", "baseline_passed", "passed",
                "outcome"]
        return pd.DataFrame(self.rows, columns=cols)

    @property
    def summary(self) -> Any:
        import pandas as pd

        out = []
        for a in self.agents:
            rs = [r for r in self.rows if r["agent"] == a]
            out.append({"agent": a, "baseline": self.baseline, "items": len(rs),
                        "wins": sum(r["outcome"] == "win" for r in rs),
                        "losses": sum(r["outcome"] == "loss" for r in rs),
                        "ties": sum(r["outcome"] == "tie" for r in rs),
                        "mean_delta": (sum(r["delta"] for r in rs) / len(rs)) if rs else float("nan")})
        return pd.DataFrame(out)

    def __repr__(self) -> str:
        return f"<EvalComparison vs {self.baseline}>\n{self.summary.to_string(index=False)}"

    def _repr_html_(self) -> str:
        return self.summary.to_html(index=False, float_format=lambda v: f"{v:.3f}")


def load_eval(name: str, store: Any = None) -> EvalResult:
    """The stored results of eval ``name`` (every scored run, latest per item x agent x repeat), no
    dataset needed: for a kernel restarted after the eval ran."""
    from .. import api
    from .dataset import Item as _Item

    st = api.resolve_store(store)
    done = _done_runs(st, name)
    if not done:
        raise AsmError("not_found", f"no stored results for eval {name!r}")
    agents: dict[str, Agent] = {}
    rows = []
    scorer_names: list[str] = []
    for (ih, ah, rep), run in sorted(done.items(), key=lambda kv: (kv[1].started_at, kv[1].id)):
        ev = run.metadata["eval"]
        agent = agents.get(ev["agent"]) or agents.setdefault(ev["agent"], Agent(name=ev["agent"], provider=run.provider))
        item = _Item(id=str(ev.get("item_id")), input=run.input, expected=ev.get("expected"))
        scores = [Score.from_dict(d) for d in ev.get("scores") or []]
        for s in scores:
            if s.name not in scorer_names:
                scorer_names.append(s.name)
        row = _row(name, _Task(item, agent, rep), run, scores, None, resumed=True)
        row["item_hash"], row["agent_hash"] = ih, ah
        rows.append(row)
    return EvalResult(name=name, rows=rows, agents=list(agents.values()), scorers=scorer_names, store=st)
