"""Notebook views of evaluations: the item x agent matrix and the run diff.

``MatrixView(result)`` (what ``EvalResult.matrix()`` returns) is static HTML: rows are items,
columns agents; each cell shows the output excerpt, one badge per scorer (hover: its
explanation), the cost, and opens (``<details>``) the run card of each repeat. A checkbox hides
the items where the agents agree — pure CSS, so the filter and the cards keep working in a saved
notebook, without a kernel or JavaScript. ``text/plain`` is a deterministic table (for nbval).

``RunDiffView(diff)``: two runs side by side — the aligned tool calls with the first divergence
marked, then output, token, cost, duration and workspace deltas. ``%asm diff RUN_A RUN_B``
shows it.

Every string shown is redacted with the effective redaction config.
"""

from __future__ import annotations

import html
import itertools
import json
from typing import Any

from ..rendering.runview import make_redactor

__all__ = ["MatrixView", "RunDiffView", "run_diff_command"]

_ids = itertools.count(1)

_CSS = """
.asm-evm{font-family:var(--jp-ui-font-family,sans-serif);font-size:12px}
.asm-evm table{border-collapse:collapse;margin-top:4px}
.asm-evm th,.asm-evm td{border:1px solid #ddd;padding:4px 6px;vertical-align:top;text-align:left;max-width:360px}
.asm-evm th{background:#f6f6f6}
.asm-evm .out{white-space:pre-wrap;font-family:var(--jp-code-font-family,monospace);color:#333}
.asm-evm .b{display:inline-block;border-radius:3px;padding:0 4px;margin:1px;font-size:11px;color:#fff}
.asm-evm .ok{background:#2e7d32}.asm-evm .ko{background:#c62828}.asm-evm .na{background:#777}
.asm-evm .cost{color:#666;font-size:11px}
.asm-evm tr.dis td:first-child{border-left:3px solid #f9a825}
.asm-evm summary{cursor:pointer;list-style:none}
.asm-evm .toggle:checked ~ table tr.agree{display:none}
"""


_TIMING_KEYS = ("duration_ms", "duration", "elapsed_ms")


def _untimed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if k not in _TIMING_KEYS}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


def _badge(ok: bool | None, label: str, title: str) -> str:
    cls = "na" if ok is None else ("ok" if ok else "ko")
    return f'<span class="b {cls}" title="{html.escape(title, quote=True)}">{html.escape(label)}</span>'


def _fmt_value(v: Any) -> str:
    return "–" if v is None else (f"{v:.2f}".rstrip("0").rstrip(".") if isinstance(v, float) else str(v))


class MatrixView:
    """The eval matrix (see the module docstring)."""

    def __init__(self, result: Any, *, only_disagreements: bool = False, max_items: int = 200,
                 excerpt_chars: int = 160, redact: Any = None, deterministic: bool = False) -> None:
        self.result = result
        self.deterministic = deterministic
        self.only_disagreements = only_disagreements
        self.max_items = max_items
        self.excerpt_chars = excerpt_chars
        self._redact = make_redactor(redact)
        self.agents = [a.name for a in result.agents]
        self.cells = result.item_scores()
        items = list(dict.fromkeys(r["item_id"] for r in result.rows))
        self.disagreements = set(result.disagreements())
        if only_disagreements:
            items = [i for i in items if i in self.disagreements]
        self.items = items
        self.inputs = {r["item_id"]: r["input"] for r in result.rows}

    # -- text ------------------------------------------------------------------------------
    def text(self) -> str:
        rows = self.items[: self.max_items]
        head = ["item"] + self.agents
        table = [head]
        for i in rows:
            line = [str(i)]
            for a in self.agents:
                c = self.cells.get((i, a))
                if c is None:
                    line.append("skipped")
                    continue
                marks = " ".join(("P" if s.passed else "F") for s in c["rows"][0]["_scores"]) or "-"
                line.append(f"{'pass' if c['passed'] else 'FAIL'} {_fmt_value(c['score'])} [{marks}]")
            table.append(line)
        widths = [max(len(r[k]) for r in table) for k in range(len(head))]
        out = [f"eval {self.result.name}: {len(self.items)} item(s) x {len(self.agents)} agent(s), "
               f"{len(self.disagreements)} disagreement(s)"]
        for n, r in enumerate(table):
            out.append("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
            if n == 0:
                out.append("  ".join("-" * w for w in widths))
        if len(self.items) > self.max_items:
            out.append(f"... {len(self.items) - self.max_items} more item(s)")
        return "\n".join(out) + "\n"

    # -- html ------------------------------------------------------------------------------
    def _card(self, row: dict) -> str:
        store = self.result.store
        if store is None or not row.get("run_id"):
            return ""
        try:
            from ..runtime.result import result_from_store as _result_from_store
            from ..rendering.mime import run_result_mimebundle

            res = _result_from_store(store, store.get_run(row["run_id"]))
            if self.deterministic:  # no timings in the card: a re-executed notebook gives the same HTML
                res.events = [e.replace(data=_untimed(e.data)) for e in res.events]
                res.duration_ms = None
            return run_result_mimebundle(res, deterministic=self.deterministic)["text/html"]
        except Exception as exc:  # a pruned run: the cell still shows the scores
            return f"<p>run card unavailable: {html.escape(str(exc))}</p>"

    def _cell(self, item: str, agent: str) -> str:
        c = self.cells.get((item, agent))
        if c is None:
            return '<td><span class="b na">skipped</span></td>'
        parts = []
        for r in c["rows"]:
            out = self._redact(r.get("output") or "")
            out = str(out)
            excerpt = out if len(out) <= self.excerpt_chars else out[: self.excerpt_chars - 1] + "…"
            badges = "".join(_badge(s.passed, f"{s.name} {_fmt_value(s.value)}", self._redact(s.explanation) or "")
                             for s in r["_scores"])
            status = "" if r["status"] == "completed" else _badge(False, r["status"], r.get("error_message") or "")
            cost = "" if r.get("cost_usd") is None else f'<span class="cost">${r["cost_usd"]:.4f}</span>'
            rep = f"<b>#{r['repeat'] + 1}</b> " if len(c["rows"]) > 1 else ""
            summary = (f'<summary>{rep}{status}{badges} {cost}<div class="out">{html.escape(excerpt)}</div>'
                       "</summary>")
            rid = "" if self.deterministic else html.escape(str(r.get("run_id") or ""))
            parts.append(f'<details data-run-id="{rid}">{summary}'
                         f"{self._card(r)}</details>")
        return "<td>" + "".join(parts) + "</td>"

    def html(self) -> str:
        uid = f"asm-evm-{next(_ids)}"
        head = "".join(f"<th>{html.escape(a)}</th>" for a in self.agents)
        body = []
        for i in self.items[: self.max_items]:
            cls = "dis" if i in self.disagreements else "agree"
            inp = str(self._redact(str(self.inputs.get(i) or "")))
            inp = inp if len(inp) <= 120 else inp[:119] + "…"
            cells = "".join(self._cell(i, a) for a in self.agents)
            body.append(f'<tr class="{cls}"><td><b>{html.escape(str(i))}</b><div class="out">{html.escape(inp)}</div>'
                        f"</td>{cells}</tr>")
        more = (f"<p>… {len(self.items) - self.max_items} more item(s) (matrix(max_items=…))</p>"
                if len(self.items) > self.max_items else "")
        toggle = ("" if self.only_disagreements else
                  f'<input type="checkbox" class="toggle" id="{uid}-t"><label for="{uid}-t"> only disagreements '
                  f"({len(self.disagreements)})</label>")
        return (f'<div class="asm-evm" id="{uid}"><style>{_CSS}</style>'
                f"<div><b>eval {html.escape(self.result.name)}</b>: {len(self.items)} item(s) x "
                f"{len(self.agents)} agent(s) — click a cell for its run card</div>{toggle}"
                f"<table><thead><tr><th>item</th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}</div>")

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict:
        return {"text/plain": self.text(), "text/html": self.html()}

    def __repr__(self) -> str:
        return self.text()


class RunDiffView:
    """Two runs side by side (see the module docstring)."""

    _OP = {"same": "", "args_differ": "#fff8e1", "changed": "#ffebee", "only_a": "#fce4ec", "only_b": "#e8f5e9"}

    def __init__(self, diff: Any, redact: Any = None) -> None:
        self.diff = diff
        self._redact = make_redactor(redact)

    def _call(self, c: Any) -> str:
        if c is None:
            return ""
        inp = json.dumps(self._redact(c.get("input")), sort_keys=True, default=repr)
        inp = inp if len(inp) <= 200 else inp[:199] + "…"
        return f"<b>{html.escape(str(c.get('name')))}</b> <code>{html.escape(inp)}</code>"

    def html(self) -> str:
        d = self.diff.deltas
        rows = []
        for i, r in enumerate(self.diff.rows):
            mark = " ◀ first divergence" if i == self.diff.first_divergence else ""
            bg = self._OP[r["op"]]
            style = f' style="background:{bg}"' if bg else ""
            rows.append(f"<tr{style}><td>{i + 1}</td><td>{self._call(r['a'])}</td><td>{self._call(r['b'])}</td>"
                        f"<td>{html.escape(r['op'])}{mark}</td></tr>")
        stats = []
        for k in ("input_tokens", "output_tokens", "cost_usd", "duration_ms", "tool_calls"):
            v = d[k]
            stats.append(f"<tr><td>{k}</td><td>{_v(v['a'])}</td><td>{_v(v['b'])}</td><td>{_v(v['delta'], True)}</td></tr>")
        ws = d["workspace"]
        stats.append(f"<tr><td>files changed</td><td>{ws['a_files']}</td><td>{ws['b_files']}</td>"
                     f"<td>only A: {html.escape(', '.join(ws['only_a']) or '–')}; only B: "
                     f"{html.escape(', '.join(ws['only_b']) or '–')}</td></tr>")
        out = d["output"]
        out_html = ("<p>output: identical</p>" if out["same"] else
                    "<pre>" + html.escape(str(self._redact("\n".join(out["diff"])))) + "</pre>")
        return ('<div class="asm-rundiff" style="font-size:12px">'
                f"<div>A <code>{html.escape(str(d['run_id']['a']))}</code> ({html.escape(str(d['status']['a']))}) vs "
                f"B <code>{html.escape(str(d['run_id']['b']))}</code> ({html.escape(str(d['status']['b']))})</div>"
                '<table style="border-collapse:collapse"><thead><tr><th>#</th><th>A</th><th>B</th><th></th></tr></thead>'
                f"<tbody>{''.join(rows) or '<tr><td colspan=4>no tool calls</td></tr>'}</tbody></table>"
                '<table style="margin-top:6px"><thead><tr><th></th><th>A</th><th>B</th><th>delta</th></tr></thead>'
                f"<tbody>{''.join(stats)}</tbody></table>{out_html}</div>")

    def _repr_html_(self) -> str:
        return self.html()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict:
        return {"text/plain": str(self._redact(self.diff.text())), "text/html": self.html()}


def _v(v: Any, sign: bool = False) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:+.4f}" if sign else f"{v:.4f}"
    return f"{v:+d}" if sign and isinstance(v, int) else html.escape(str(v))


def run_diff_command(run_a: str, run_b: str, store: Any, *, text: bool = False) -> Any:
    """``%asm diff RUN_A RUN_B``: the run diff view (``--text``: printed)."""
    from ..evaluation.rundiff import diff_runs

    view = RunDiffView(diff_runs(run_a, run_b, store=store))
    if text:
        print(view._repr_mimebundle_()["text/plain"], end="")
        return None
    return view


def eval_command(magics: Any, args: list[str]) -> Any:
    """``%asm eval SPEC [--store PATH|URL] [--name NAME] [--concurrency N] [--disagreements]
    [--text]``: run an eval spec (the TOML/YAML file ``asm eval`` takes), print the failed
    thresholds and show the matrix (``--text``: the summary and matrix as text). A re-run
    resumes: finished runs are not run again. The store is ``--store``, else the spec's
    ``store``, else the kernel's (``%asm store``). The result is ``view.result`` (an
    ``EvalResult``) of the returned view."""
    import argparse

    from ..core.errors import AsmError
    from .magics import UsageError, _default

    class _P(argparse.ArgumentParser):
        def error(self, message: str) -> Any:  # one line, no SystemExit
            raise UsageError(f"{self.format_usage().strip()}\n{self.prog}: {message}")

    p = _P(prog="%asm eval", add_help=False, description="Run an eval spec and show its matrix.")
    p.add_argument("spec")
    p.add_argument("--store", default=None)
    p.add_argument("--name", default=None)
    p.add_argument("--concurrency", type=int, default=None)
    p.add_argument("--disagreements", action="store_true", help="only items where the agents disagree")
    p.add_argument("--text", action="store_true")
    ns = p.parse_args(args)
    if ns.concurrency is not None and ns.concurrency < 1:
        raise UsageError("%asm eval: --concurrency must be a positive integer")
    from ..evaluation.spec import load_spec, run_spec

    try:
        store = ns.store
        if store is None and not load_spec(ns.spec).get("store"):
            store = _default("store")
        result, failures = run_spec(ns.spec, store=store, name=ns.name, concurrency=ns.concurrency,
                                    progress=not ns.text)
    except AsmError as err:
        raise UsageError(f"%asm eval: {err.message}") from None
    for f in failures:
        print(f"FAIL {f}")
    print("thresholds: " + ("failed" if failures else "met"))
    view = MatrixView(result, only_disagreements=ns.disagreements)
    if ns.text:
        cols = ["agent", "runs", "mean_score", "pass_rate", "errors", "cost_usd"]
        print(result.summary[cols].to_string(index=False))
        print(view.text(), end="")
        return None
    return view


def _register() -> None:
    from .magics import register_line_command

    register_line_command("eval", eval_command)


_register()
