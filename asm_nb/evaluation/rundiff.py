"""``asm_nb.diff_runs(a, b)``: two runs side by side — their tool-call sequences aligned (with
the first divergence marked), and the output, token, cost, duration and workspace deltas.

>>> from types import SimpleNamespace as NS
>>> call = lambda n, **i: {"name": n, "input": i}
>>> a = NS(run_id="a", status="completed", output="ok", tool_calls=[call("read", p=1), call("edit", p=1)],
...        token_usage={}, cost_usd=None, duration_ms=10, workspace=None, provider="x", model=None)
>>> b = NS(run_id="b", status="completed", output="ok", tool_calls=[call("read", p=1), call("bash", c="ls")],
...        token_usage={}, cost_usd=None, duration_ms=12, workspace=None, provider="x", model=None)
>>> d = diff_runs(a, b)
>>> d.first_divergence, [r["op"] for r in d.rows]
(1, ['same', 'changed'])
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from ..core.errors import AsmError
from . import trajectory as tj

__all__ = ["diff_runs", "RunDiff", "align_calls"]


def _key(call: Mapping[str, Any]) -> tuple[str, str]:
    return (str(call.get("name")), json.dumps(call.get("input"), sort_keys=True, default=repr))


def align_calls(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows ``{op, a, b, a_index, b_index}`` aligning two tool-call lists (longest common
    subsequence of name + input): ``same``, ``args_differ`` (same tool, other input), ``changed``
    (another tool at that point), ``only_a``, ``only_b``."""
    ka, kb = [_key(c) for c in a], [_key(c) for c in b]
    rows: list[dict[str, Any]] = []
    sm = difflib.SequenceMatcher(a=ka, b=kb, autojunk=False)

    def add(op: str, i: int | None, j: int | None) -> None:
        rows.append({"op": op, "a": a[i] if i is not None else None, "b": b[j] if j is not None else None,
                     "a_index": i, "b_index": j})

    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal":
            for k in range(i2 - i1):
                add("same", i1 + k, j1 + k)
        elif tag == "replace":
            n = min(i2 - i1, j2 - j1)
            for k in range(n):
                same_name = ka[i1 + k][0] == kb[j1 + k][0]
                add("args_differ" if same_name else "changed", i1 + k, j1 + k)
            for k in range(i1 + n, i2):
                add("only_a", k, None)
            for k in range(j1 + n, j2):
                add("only_b", None, k)
        elif tag == "delete":
            for k in range(i1, i2):
                add("only_a", k, None)
        elif tag == "insert":
            for k in range(j1, j2):
                add("only_b", None, k)
    return rows


def _as_result(run: Any, store: Any) -> Any:
    if hasattr(run, "tool_calls") and hasattr(run, "output") and not isinstance(run, str):
        return run
    from ..runtime.result import result_from_store
    from ..stores import resolve_store
    from ..workspace.rollback import workspace_record

    st = resolve_store(store)
    if isinstance(run, str):
        run_obj = st.get_run(run)
    elif hasattr(run, "session_id") and hasattr(run, "status"):
        run_obj = run
    else:
        raise AsmError("validation_error", f"diff_runs takes run ids, RunResults or Runs, got {run!r}")
    res = result_from_store(st, run_obj)
    res.workspace = workspace_record(run_obj)
    return res


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _delta(a: Any, b: Any) -> dict[str, Any]:
    x, y = _num(a), _num(b)
    if x is None or y is None:
        return {"a": a, "b": b, "delta": None}
    both_int = isinstance(a, int) and isinstance(b, int)
    return {"a": a, "b": b, "delta": (b - a) if both_int else (y - x)}


@dataclass
class RunDiff:
    """The comparison of two runs: ``rows`` (aligned tool calls), ``first_divergence`` (row index
    or None), ``deltas`` (status, output, tokens, cost, duration, workspace)."""

    a: Any
    b: Any
    rows: list
    first_divergence: int | None
    deltas: dict = field(default_factory=dict)

    @property
    def frame(self) -> Any:
        """pandas DataFrame of the alignment: op, tool and input on each side."""
        import pandas as pd

        return pd.DataFrame([{"op": r["op"], "a_tool": (r["a"] or {}).get("name"),
                              "a_input": json.dumps((r["a"] or {}).get("input"), default=repr) if r["a"] else None,
                              "b_tool": (r["b"] or {}).get("name"),
                              "b_input": json.dumps((r["b"] or {}).get("input"), default=repr) if r["b"] else None,
                              "divergence": i == self.first_divergence} for i, r in enumerate(self.rows)],
                            columns=["op", "a_tool", "a_input", "b_tool", "b_input", "divergence"])

    def text(self) -> str:
        d = self.deltas
        lines = [f"run A {d['run_id']['a']}  ({d['status']['a']})", f"run B {d['run_id']['b']}  ({d['status']['b']})", ""]
        if self.first_divergence is None:
            lines.append(f"tool calls: identical ({len(self.rows)})")
        else:
            lines.append(f"tool calls: first divergence at step {self.first_divergence + 1}")
        sym = {"same": " ", "args_differ": "~", "changed": "!", "only_a": "-", "only_b": "+"}
        for i, r in enumerate(self.rows):
            mark = ">" if i == self.first_divergence else " "
            a = _call_text(r["a"])
            b = _call_text(r["b"])
            lines.append(f"{mark}{sym[r['op']]} {i + 1:>3}  {a:<40}  {b}")
        lines.append("")
        for k in ("input_tokens", "output_tokens", "cost_usd", "duration_ms"):
            v = d[k]
            lines.append(f"{k:<14} A {_fmt(v['a'])}  B {_fmt(v['b'])}  delta {_fmt(v['delta'], sign=True)}")
        ws = d["workspace"]
        lines.append(f"workspace      A {ws['a_files']} file(s)  B {ws['b_files']} file(s)"
                     + (f"  only A: {', '.join(ws['only_a'])}" if ws["only_a"] else "")
                     + (f"  only B: {', '.join(ws['only_b'])}" if ws["only_b"] else ""))
        if d["output"]["same"]:
            lines.append("output: identical")
        else:
            lines.append("output diff:")
            lines += ["  " + ln for ln in d["output"]["diff"]]
        return "\n".join(lines) + "\n"

    def __repr__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        from . import _views

        return _views.run_diff(self)._repr_html_()


def _call_text(c: Mapping[str, Any] | None) -> str:
    if c is None:
        return "-"
    inp = json.dumps(c.get("input"), sort_keys=True, default=repr)
    s = f"{c.get('name')}({inp[1:-1] if inp.startswith('{') else inp})"
    return s if len(s) <= 40 else s[:39] + "…"


def _fmt(v: Any, sign: bool = False) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:+.4f}" if sign else f"{v:.4f}"
    return f"{v:+d}" if sign and isinstance(v, int) else str(v)


def diff_runs(a: Any, b: Any, *, store: Any = None) -> RunDiff:
    """Compare two runs (ids, ``RunResult`` or ``Run``; ids are read from ``store``, default the
    default store): aligned tool calls, the first divergence, and output / token / cost /
    duration / workspace deltas."""
    ra, rb = _as_result(a, store), _as_result(b, store)
    ca, cb = tj.tool_calls_of(ra), tj.tool_calls_of(rb)
    rows = align_calls(ca, cb)
    first = next((i for i, r in enumerate(rows) if r["op"] != "same"), None)
    ua, ub = getattr(ra, "token_usage", None) or {}, getattr(rb, "token_usage", None) or {}
    wa, wb = getattr(ra, "workspace", None) or {}, getattr(rb, "workspace", None) or {}
    pa, pb = set(wa.get("changed_paths") or []), set(wb.get("changed_paths") or [])
    oa, ob = str(getattr(ra, "output", "") or ""), str(getattr(rb, "output", "") or "")
    deltas = {
        "run_id": {"a": getattr(ra, "run_id", None), "b": getattr(rb, "run_id", None)},
        "status": {"a": getattr(ra, "status", None), "b": getattr(rb, "status", None)},
        "provider": {"a": getattr(ra, "provider", None), "b": getattr(rb, "provider", None)},
        "model": {"a": getattr(ra, "model", None), "b": getattr(rb, "model", None)},
        "output": {"a": oa, "b": ob, "same": oa == ob,
                   "diff": list(difflib.unified_diff(oa.splitlines(), ob.splitlines(), "A", "B", lineterm="", n=1))},
        "input_tokens": _delta(ua.get("input_tokens"), ub.get("input_tokens")),
        "output_tokens": _delta(ua.get("output_tokens"), ub.get("output_tokens")),
        "cost_usd": _delta(getattr(ra, "cost_usd", None), getattr(rb, "cost_usd", None)),
        "duration_ms": _delta(getattr(ra, "duration_ms", None), getattr(rb, "duration_ms", None)),
        "tool_calls": _delta(len(ca), len(cb)),
        "workspace": {"a_files": len(pa), "b_files": len(pb), "only_a": sorted(pa - pb), "only_b": sorted(pb - pa),
                      "both": sorted(pa & pb),
                      "insertions": _delta(wa.get("insertions"), wb.get("insertions")),
                      "deletions": _delta(wa.get("deletions"), wb.get("deletions"))},
    }
    return RunDiff(a=ra, b=rb, rows=rows, first_divergence=first, deltas=deltas)
