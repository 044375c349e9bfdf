"""``CompareResult``, the outcome of ``compare``: ``.results`` (label -> ``RunResult``), ``.frame``
(one row per provider, ``FRAME_COLUMNS``) and its displays: ``text/plain`` deterministic (each
column's Studio text under a header, then a table without ids or timings), ``text/html`` the
columns side by side plus ``summary_html``. Also the text helpers the live views share
(``_column_block``). pandas / polars are imported only by ``.frame``.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..core.usage import CACHE_CREATION_TOKENS, CACHE_READ_TOKENS, TOKEN_KEYS

#: Columns of ``CompareResult.frame``, in order.
FRAME_COLUMNS = ["provider", "status", "output", "tool_calls", "input_tokens", "output_tokens",
                 CACHE_READ_TOKENS, CACHE_CREATION_TOKENS, "cost_usd", "duration_ms", "error",
                 "model", "run_id"]
#: ``output`` in the frame is cut to this many characters (the full text is in ``.results``).
OUTPUT_CHARS = 200
_TEXT_COLUMNS = ["provider", "status", "tools", "in", "out", "cache", "cost_usd", "error"]


def _error_text(err: Any) -> str | None:
    if err is None:
        return None
    code = getattr(err, "code", None)
    msg = getattr(err, "message", None) or str(err)
    return f"{code}: {msg}" if code else str(msg)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _column_state(result: Any, redact: Any = None) -> Any:
    """The run view model (``RunState``) of a finished run, rebuilt from its events."""
    from ..rendering.runview import RunState, result_fields

    r = result_fields(result)
    st = RunState(provider=r.get("provider"), model=r.get("model"), session_id=r.get("session_id"),
                  run_id=r.get("run_id"), redact=redact, clock=lambda: 0.0)
    for e in r.get("events") or []:
        st.apply(e)
    st.finish(r)
    return st


def _header(label: str, status: str) -> str:
    return f"── {label} · {status} ──"


def _column_block(label: str, status: str, body: str, output: str | None) -> str:
    """One column of the text view: a header, the run's rendered text, and its final output
    when the rendering did not show it (a provider that sends its answer in one message)."""
    body = body.rstrip("\n")
    out = (output or "").strip()
    if out and " ".join(out.split()) not in " ".join(body.split()):
        body += ("\n\n" if body else "") + "\n".join("  " + line for line in _redact(out).splitlines())
    return _header(label, status) + ("\n" + body if body else "") + "\n"


def _text_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    def cell(v: Any) -> str:
        if v is None:
            return ""
        if isinstance(v, float):
            return f"{v:.4f}"
        return _cut(str(v).replace("\n", " "), 60)

    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


@dataclass
class CompareResult:
    """The outcome of ``compare``: ``results`` (label → ``RunResult``, in the order given) and
    ``frame`` (a DataFrame, one row per provider: ``FRAME_COLUMNS``)."""

    prompt: Any
    results: dict = field(default_factory=dict)
    backend: str = "pandas"
    store: Any = field(default=None, repr=False, compare=False)
    _frame: Any = field(default=None, init=False, repr=False, compare=False)

    @property
    def providers(self) -> list[str]:
        """The provider labels, in order."""
        return list(self.results)

    @property
    def ok(self) -> bool:
        """True when every run completed."""
        return all(r.ok for r in self.results.values())

    def __getitem__(self, label: str) -> Any:
        try:
            return self.results[label]
        except KeyError:
            raise KeyError(f"no provider {label!r} in this comparison; providers: {self.providers}") from None

    def __iter__(self):
        return iter(self.results.values())

    def __len__(self) -> int:
        return len(self.results)

    def rows(self) -> list[dict[str, Any]]:
        """One dict per provider with the ``FRAME_COLUMNS`` keys."""
        out = []
        for label, r in self.results.items():
            usage = r.token_usage or {}
            out.append({
                "provider": label, "status": r.status, "output": _cut(r.output or "", OUTPUT_CHARS),
                "tool_calls": len(r.tool_calls),
                **{k: int(usage.get(k) or 0) for k in TOKEN_KEYS},
                "cost_usd": r.cost_usd, "duration_ms": r.duration_ms, "error": _error_text(r.error),
                "model": r.model, "run_id": r.run_id or None,
            })
        return out

    @property
    def frame(self) -> Any:
        """The outcome as a DataFrame (``backend``: pandas, polars, or a list of dicts)."""
        if self._frame is None:
            rows = self.rows()
            if self.backend == "records":
                self._frame = rows
            elif self.backend == "polars":
                import polars as pl

                self._frame = pl.DataFrame(rows, infer_schema_length=None).select(FRAME_COLUMNS)
            else:
                import pandas as pd

                self._frame = pd.DataFrame(rows, columns=FRAME_COLUMNS)
        return self._frame

    def to_dict(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "results": {k: r.to_dict() for k, r in self.results.items()}}

    # -- display ----------------------------------------------------------------------------------

    def table_text(self) -> str:
        """The deterministic summary table (no ids, no timings)."""
        rows = []
        for row in self.rows():
            rows.append({"provider": row["provider"], "status": row["status"], "tools": row["tool_calls"],
                         "in": row["input_tokens"], "out": row["output_tokens"],
                         "cache": row[CACHE_READ_TOKENS] + row[CACHE_CREATION_TOKENS],
                         "cost_usd": row["cost_usd"], "error": row["error"]})
        return _redact(_text_table(rows, _TEXT_COLUMNS))

    def plain_text(self) -> str:
        """Deterministic text: each provider's Studio text under a header, then the table."""
        parts = []
        for label, r in self.results.items():
            parts.append(_column_block(label, r.status, _column_state(r).plain_text(), r.output))
        return "\n".join(parts) + "\n" + self.table_text() + "\n"

    def table_html(self) -> str:
        """The summary table as HTML (with durations)."""
        return summary_html(self.rows())

    def _repr_html_(self) -> str:
        cols = []
        for r in self.results.values():
            cols.append(f'<div class="asm-compare-col" style="flex:1 1 0;min-width:0">'
                        f'{_column_state(r).static_html(deterministic=True)}</div>')
        return (f'<div class="asm-compare"><div style="display:flex;gap:12px;align-items:flex-start">'
                f'{"".join(cols)}</div>{self.table_html()}</div>')

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict:
        return {"text/plain": self.plain_text(), "text/html": self._repr_html_()}

    def __repr__(self) -> str:
        return self.plain_text()


def _redact(text: str) -> str:
    from ..rendering.runview import make_redactor

    return make_redactor(None)(text)


def summary_html(rows: list[dict[str, Any]]) -> str:
    """An HTML table of ``CompareResult.rows()``: provider, model, status, tools, tokens, cost,
    duration, error (escaped and redacted)."""
    from ..rendering.runview import make_redactor

    redact = make_redactor(None)
    head = ["provider", "model", "status", "tools", "in", "out", "cache", "cost", "duration", "error"]
    body = []
    for r in rows:
        cost = "—" if r["cost_usd"] is None else f"${r['cost_usd']:.4f}"
        dur = "" if r["duration_ms"] is None else f"{r['duration_ms'] / 1000:.1f}s"
        cls = "asm-ok" if r["status"] == "completed" else "asm-err"
        cells = [f"<b>{html.escape(str(r['provider']))}</b>", html.escape(str(r.get("model") or "")),
                 f'<span class="{cls}">{html.escape(str(r["status"]))}</span>', str(r["tool_calls"]),
                 f"{r['input_tokens']:,}", f"{r['output_tokens']:,}",
                 f"{r[CACHE_READ_TOKENS] + r[CACHE_CREATION_TOKENS]:,}", cost, dur,
                 html.escape(redact(r["error"] or ""))]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return ('<table class="asm-compare-summary"><thead><tr>' + "".join(f"<th>{h}</th>" for h in head)
            + "</tr></thead><tbody>" + "".join(body) + "</tbody></table>")
