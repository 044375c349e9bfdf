"""The dashboard's detail pane: the picked run beside the grid.

Top to bottom: a header (status dot and word, provider / model, start time, duration, the
prompt, tokens and cost, run and session ids, the error), the **run card** — the same view
model and HTML as the live ``%%asm`` widget's static snapshot, the compare panes and the saved
card (``rendering.runview.RunState`` rebuilt from the run's stored events: Markdown, tool rows in
plain words with their input and output) — then a collapsible table of the tool calls and the
tool timeline chart. Everything shown is redacted with the effective redaction config.

ipywidgets is imported by the caller (``Dashboard``); polars and plotly when a run is shown.
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any, Callable

from ..core.errors import AsmError
from ..rendering.runview import RunState, cost_words, duration_words, make_redactor
from .dashgrid import relative_time

__all__ = ["RunDetail", "stored_run_fields"]

EMPTY_HINT = "<i>Pick a run in the grid to see its prompt, transcript and tool calls here.</i>"


def _esc(v: Any) -> str:
    return html.escape("" if v is None else str(v))


def stored_run_fields(store: Any, run_id: str) -> dict:
    """A stored run and its events (audit events left out) as the fields ``RunState.finish`` and
    the run bundle read: ``run_id, session_id, status, output, token_usage, cost_usd, error,
    provider, model, events``."""
    from collections.abc import Mapping

    from ..core.events import without_audit

    run = store.get_run(run_id)
    events = without_audit(store.get_events(run.session_id, run_id=run.id))
    md = run.provider_metadata if isinstance(run.provider_metadata, Mapping) else {}
    output = run.output
    if isinstance(output, Mapping):
        output = output.get("content", "")
    return {"run_id": run.id, "session_id": run.session_id, "status": run.status.value, "output": output,
            "token_usage": dict(run.token_usage or {}), "cost_usd": run.cost_usd, "error": run.error,
            "provider": run.provider, "model": md.get("model"), "events": [e.to_dict() for e in events]}


def run_card_html(fields: dict, redact: Callable[[Any], Any] | None = None) -> str:
    """The run card (``RunState.static_html``) of a finished run's fields."""
    st = RunState(provider=fields.get("provider"), model=fields.get("model"), session_id=fields.get("session_id"),
                  run_id=fields.get("run_id"), redact=redact, clock=lambda: 0.0)
    for e in fields.get("events") or []:
        st.apply(e)
    st.finish(fields)
    return st.static_html()


def header_html(r: dict, redact: Callable[[Any], Any], now: datetime | None = None) -> str:
    """The detail header of one runs-frame row (with its ``prompt``)."""
    status = str(r.get("status") or "")
    model = r.get("model")
    pm = f"{_esc(r.get('provider') or '?')} / {_esc(model)}" if model else _esc(r.get("provider") or "?")
    started = r.get("started_at")
    title = [f'<span class="asm-dot" data-status="{_esc(status)}"></span> <b>{_esc(status)}</b>', pm]
    if isinstance(started, datetime):
        title.append(f'started {started.strftime("%Y-%m-%d %H:%M")} UTC '
                     f'<span class="asm-muted">({_esc(relative_time(started, now))})</span>')
    dur = r.get("duration_s")
    if dur is not None:
        title.append(_esc(duration_words(dur * 1000) or "0 ms"))
    cost = r.get("cost_usd")
    usage = [f"in {int(r.get('input_tokens') or 0):,}", f"out {int(r.get('output_tokens') or 0):,}"]
    if r.get("cache_read_tokens"):
        usage.append(f"cache read {int(r['cache_read_tokens']):,}")
    usage.append("cost n/a (no price)" if cost is None else f"cost {cost_words(float(cost))}")
    prompt = str(redact(r.get("prompt") or ""))
    out = (f'<div class="asm-dash-detail-title">{" · ".join(title)}</div>'
           f'<div class="asm-dash-prompt">{_esc(prompt) or "<i>(no prompt)</i>"}</div>'
           f'<div class="asm-muted">tokens {" · ".join(usage)}</div>'
           f'<div class="asm-muted asm-dash-ids">run <code>{_esc(r["run_id"])}</code> · session '
           f'<code>{_esc(r["session_id"])}</code></div>')
    if r.get("error_code") or r.get("error_message"):
        out += (f'<div class="asm-banner">✗ [{_esc(r.get("error_code"))}] '
                f'{_esc(redact(r.get("error_message") or ""))}</div>')
    return f'<div class="asm-dash-detail-head">{out}</div>'


def tools_html(tc: Any, redact: Callable[[Any], Any]) -> str:
    """The tool calls of a run (a ``frames.tool_calls`` frame) as a collapsible table."""
    if tc.height == 0:
        return '<div class="asm-muted">No tool calls.</div>'
    head = "".join(f"<th>{h}</th>" for h in ("#", "tool", "summary", "status", "duration", "output", "reason"))
    body = []
    for i, r in enumerate(tc.iter_rows(named=True), 1):
        dur = r.get("duration_ms")
        cells = (i, _esc(r.get("tool_name")), _esc(redact(r.get("summary") or "")), _esc(r.get("status")),
                 "-" if dur is None else _esc(duration_words(dur) or f"{dur:,.0f} ms"),
                 "-" if r.get("output_size") is None else f"{r['output_size']:,} chars",
                 _esc(redact(r.get("reason") or "")))
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    n = tc.height
    return (f'<details class="asm-dash-tools"><summary>Tool calls table ({n} call{"s" if n != 1 else ""})</summary>'
            f'<table class="asm-tools"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
            "</details>")


def _fit_timeline(fig: Any, label_chars: int = 30) -> Any:
    """The tool timeline made to fit the narrow detail pane: row labels cut to ``label_chars``
    (the full text stays in the hover), the legend above the plot."""
    labels = (fig.layout.yaxis.categoryarray or ()) if fig.layout.yaxis else ()
    if labels:
        short = [lb if len(lb) <= label_chars else lb[: label_chars - 1] + "…" for lb in labels]
        fig.update_yaxes(tickmode="array", tickvals=list(labels), ticktext=short, automargin=True)
    fig.update_xaxes(automargin=True)
    fig.update_layout(legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "right", "x": 1,
                              "title": {"text": ""}},
                      title={"x": 0, "xanchor": "left"})
    return fig


class RunDetail:
    """The detail pane's widgets: ``header``, ``card`` (the run card), ``tools`` (``HTML``),
    ``timeline`` (``Output``: the tool timeline chart) in ``box`` (a ``VBox``)."""

    def __init__(self, W: Any, *, figure_output: Callable[..., dict], html_output: Callable[[str, str], dict],
                 charts: bool) -> None:
        self.header = W.HTML(EMPTY_HINT)
        self.card = W.HTML()
        self.tools = W.HTML()
        self.timeline = W.Output()
        self.box = W.VBox([self.header, self.card, self.tools, self.timeline]).add_class("asm-dash-detail")
        self._figure_output = figure_output
        self._html_output = html_output
        self._charts = charts

    def clear(self) -> None:
        self.header.value = EMPTY_HINT
        self.card.value = ""
        self.tools.value = ""
        self.timeline.outputs = ()

    def show(self, store: Any, row: dict) -> None:
        """Show the run of ``row`` (a runs-frame row): header, card, tool table and timeline."""
        from ..analytics import frames

        redact = make_redactor(None)
        run_id = row["run_id"]
        self.header.value = header_html(row, redact)
        self.card.value = run_card_html(stored_run_fields(store, run_id), redact)
        tc = frames.tool_calls(store, session_id=row["session_id"], run_id=run_id, backend="polars")
        self.tools.value = tools_html(tc, redact)
        if tc.height and self._charts:
            from ..analytics import plots as _plots

            try:
                fig = _fit_timeline(_plots.tool_timeline(tc, run_id, title="Tool timeline"))
                self.timeline.outputs = (self._figure_output(fig, height=max(220, 26 * tc.height + 130),
                                                             title=f"tool calls of {run_id}"),)
            except Exception as exc:  # a chart never breaks the dashboard
                msg = exc.message if isinstance(exc, AsmError) else f"{type(exc).__name__}: {exc}"
                self.timeline.outputs = (self._html_output(f"<i>{_esc(msg)}</i>", msg),)
        else:
            self.timeline.outputs = ()
