"""The dashboard's saved view and its offline charts.

- :func:`snapshot`: the ``application/vnd.asm.dashboard+json`` payload (KPIs and the filtered
  runs as grid rows), which the asm_nb JupyterLab extension draws as KPI tiles and a sortable grid
  when the widget's kernel is gone (a reopened notebook: never "model not found");
- :func:`static_html`: the same as self-contained HTML (what nbconvert, nbviewer and GitHub show);
- :func:`figure_html` / :func:`plotlyjs_html`: plotly figures drawn offline (plotly.js inlined
  once per dashboard, never loaded from a CDN) and the ``display_data`` outputs the dashboard's
  ``Output`` widgets hold.

No ipywidgets here; plotly is imported when a figure is drawn.
"""

from __future__ import annotations

import html
import json
import uuid
from datetime import datetime
from typing import Any

from ..core.errors import AsmError

__all__ = ["DASHBOARD_MIME", "PLOTLY_MIME", "WIDGET_MIME", "GRID_COLUMNS", "figure_html", "plotlyjs_html",
           "snapshot", "static_html"]

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
DASHBOARD_MIME = "application/vnd.asm.dashboard+json"
PLOTLY_MIME = "application/vnd.plotly.v1+json"
_SNAPSHOT_PROMPT_CHARS = 80
#: The run grid's columns in the static snapshot: key, label, kind (how the grid sorts/formats it).
GRID_COLUMNS: list[tuple[str, str, str]] = [
    ("started_at", "Started (UTC)", "time"), ("status", "Status", "text"), ("prompt", "Prompt", "text"),
    ("provider", "Provider", "text"),
    ("model", "Model", "text"), ("total_tokens", "Tokens", "int"), ("cost_usd", "Cost", "usd"),
    ("duration_s", "Duration", "seconds"), ("run_id", "Run", "text"),
]


# --------------------------------------------------------------------------------------------
# offline plotly rendering


def plotlyjs_html() -> str:
    """``<script>`` tags holding the whole plotly.js bundle (defines ``window.Plotly``); no CDN."""
    from plotly.offline import get_plotlyjs

    return ("<script type=\"text/javascript\">window.PlotlyConfig = {MathJaxConfig: 'local'};</script>\n"
            "<script type=\"text/javascript\">" + get_plotlyjs() + "</script>")


def _fig_json(fig: Any) -> str:
    import plotly.io as pio

    text = pio.to_json(fig, validate=False)
    if text is None:  # plotly returns None only when asked to write a file, which this never does
        raise AsmError("internal_error", "plotly returned no JSON for a figure")
    return text


def figure_html(fig: Any, *, height: int = 360, div_id: str | None = None) -> str:
    """A ``<div>`` and a script drawing ``fig`` with ``window.Plotly`` once it is defined (the
    dashboard's loader inlines plotly.js; this never references a CDN)."""
    div_id = div_id or f"asm-fig-{uuid.uuid4().hex}"
    spec = _fig_json(fig).replace("</", "<\\/")
    return (f'<div id="{div_id}" class="asm-fig" style="height:{int(height)}px;width:100%;"></div>\n'
            '<script type="text/javascript">(function () {\n'
            f'  var spec = {spec}; var tries = 0;\n'
            '  function draw() {\n'
            f'    var el = document.getElementById("{div_id}"); if (!el) return;\n'
            '    if (window.Plotly) { window.Plotly.newPlot(el, spec.data, spec.layout,'
            ' {responsive: true, displaylogo: false}); }\n'
            '    else if (tries++ < 400) { setTimeout(draw, 50); }\n'
            '    else { el.textContent = "plotly.js is not loaded in this page"; }\n'
            '  }\n'
            '  draw();\n'
            '})();</script>')


def _figure_output(fig: Any, *, height: int, title: str) -> dict:
    """One ``display_data`` output for an ``ipywidgets.Output``: plotly mime + HTML fallback."""
    fig = fig.update_layout(height=height, margin={"l": 50, "r": 20, "t": 50, "b": 40})
    return {"output_type": "display_data", "metadata": {},
            "data": {PLOTLY_MIME: json.loads(_fig_json(fig)),
                     "text/html": figure_html(fig, height=height),
                     "text/plain": f"<plotly figure: {title}>"}}


def _html_output(text_html: str, plain: str) -> dict:
    return {"output_type": "display_data", "metadata": {}, "data": {"text/html": text_html, "text/plain": plain}}


# --------------------------------------------------------------------------------------------
# formatting


def _esc(v: Any) -> str:
    return html.escape("" if v is None else str(v))


def _fmt_int(v: Any) -> str:
    return f"{int(v or 0):,}"


def _fmt_cost(v: Any) -> str:
    return "n/a" if v is None else f"${v:,.4f}"


def _fmt_time(dt: Any) -> str:
    return dt.strftime("%Y-%m-%d %H:%M") if isinstance(dt, datetime) else "-"


def _fmt_duration(s: Any) -> str:
    if s is None:
        return "-"
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.1f} s"


def _short_prompt(text: Any, limit: int = _SNAPSHOT_PROMPT_CHARS) -> str | None:
    """A prompt on one line, cut to ``limit`` characters (None stays None)."""
    if text is None:
        return None
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _tile(label: str, value: str, note: str = "") -> str:
    return (f'<div class="asm-kpi-label">{_esc(label)}</div><div class="asm-kpi-value">{_esc(value)}</div>'
            f'<div class="asm-kpi-note">{_esc(note) or "&nbsp;"}</div>')


def _grid_text(v: Any, kind: str) -> str:
    """A grid cell as text (the static HTML table; the extension formats the same way)."""
    if v is None:
        return "-" if kind != "text" else ""
    if kind == "time":
        return str(v).replace("T", " ")[:16]
    if kind == "int":
        return f"{int(v):,}"
    if kind == "usd":
        return f"${float(v):,.4f}"
    if kind == "seconds":
        return _fmt_duration(float(v))
    return str(v)


_STATIC_CSS = """<style>
.asm-dash-static {font-family: var(--jp-ui-font-family, sans-serif); color: var(--jp-ui-font-color1, #222);}
.asm-dash-static .asm-dash-title {font-weight: 600; margin: 4px 0 8px;}
.asm-dash-static .asm-kpis {display: flex; flex-wrap: wrap;}
.asm-dash-static .asm-kpi {border: 1px solid var(--jp-border-color2, #ddd); border-radius: 6px; padding: 4px 12px;
  min-width: 140px; margin: 0 8px 8px 0;}
.asm-dash-static .asm-kpi-value {font-size: 20px; font-weight: 600;}
.asm-dash-static .asm-kpi-label, .asm-dash-static .asm-kpi-note, .asm-dash-static .asm-dash-note
  {color: var(--jp-ui-font-color2, #666); font-size: 12px;}
.asm-dash-static table.asm-grid {border-collapse: collapse; font-size: 12px; width: 100%;}
.asm-dash-static table.asm-grid th {text-align: left; border-bottom: 2px solid var(--jp-border-color1, #bbb);
  padding: 3px 8px; white-space: nowrap;}
.asm-dash-static table.asm-grid td {border-bottom: 1px solid var(--jp-border-color2, #e5e5e5); padding: 2px 8px;
  white-space: nowrap; text-align: left;}
.asm-dash-static table.asm-grid .asm-int, .asm-dash-static table.asm-grid .asm-usd,
.asm-dash-static table.asm-grid .asm-seconds {text-align: right; font-variant-numeric: tabular-nums;}
</style>"""


# --------------------------------------------------------------------------------------------
# the snapshot


def snapshot(dash: Any, *, deterministic: bool | None = None) -> dict:
    """The ``application/vnd.asm.dashboard+json`` payload: the KPIs and the filtered runs
    (newest first, at most ``run_limit``) as the run grid's rows::

        {"schema": "asm.dashboard", "version": 1, "model_id": str|null, "filters": {...},
         "kpis": [{"name", "label", "value", "note"}], "columns": [{"key", "label", "kind"}],
         "rows": [{"started_at": ISO str|null, "status", "prompt" (one line, at most 80 characters,
                   redacted), "provider", "model", "total_tokens", "cost_usd", "duration_s", "run_id"}],
         "total": int}

    ``deterministic`` (default: the ``deterministic_display`` setting): no widget id, no
    durations."""
    from .. import config

    if deterministic is None:
        deterministic = bool(config.get("deterministic_display"))
    k = dash.kpi_values
    rate = k.get("success_rate")
    kpis = [
        {"name": "runs", "label": "Runs", "value": f"{k.get('runs', 0):,}",
         "note": f"{k.get('runs', 0) - k.get('finished', 0)} not finished" if k.get("runs", 0) - k.get("finished", 0)
         else ""},
        {"name": "success_rate", "label": "Success rate", "value": "n/a" if rate is None else f"{rate:.0%}",
         "note": f"{k.get('completed', 0)} of {k.get('finished', 0)} finished" if k.get("finished") else ""},
        {"name": "tokens", "label": "Tokens", "value": f"{k.get('tokens', 0):,}", "note": ""},
        {"name": "cost", "label": "Cost", "value": _fmt_cost(k.get("cost")),
         "note": f"{k.get('unpriced')} unpriced run(s)" if k.get("unpriced") else ""},
    ]
    rows = []
    df = dash.runs
    if df is not None:
        for r in df.head(dash.run_limit).iter_rows(named=True):
            started = r.get("started_at")
            rows.append({
                "started_at": started.strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(started, datetime) else None,
                "status": None if r.get("status") is None else str(r["status"]),
                "prompt": _short_prompt(r.get("prompt")),
                "provider": None if r.get("provider") is None else str(r["provider"]),
                "model": None if r.get("model") is None else str(r["model"]),
                "total_tokens": int(r.get("total_tokens") or 0),
                "cost_usd": None if r.get("cost_usd") is None else round(float(r["cost_usd"]), 6),
                "duration_s": None if deterministic or r.get("duration_s") is None else round(float(r["duration_s"]), 3),
                "run_id": r.get("run_id")})
    f = dash.filters()
    filters: dict[str, Any] = {n: list(map(str, v)) for n, v in f.items()
                               if n in ("provider", "model", "status") and v}
    for n in ("since", "until"):
        if f[n] is not None:
            filters[n] = str(f[n])
    return {"schema": "asm.dashboard", "version": 1,
            "model_id": None if deterministic else dash.widget.model_id, "filters": filters, "kpis": kpis,
            "columns": [{"key": key, "label": label, "kind": kind} for key, label, kind in GRID_COLUMNS],
            "rows": rows, "total": 0 if df is None else df.height}


def static_html(dash: Any, *, deterministic: bool | None = None) -> str:
    """The snapshot as self-contained HTML (KPI tiles and the run table, newest first):
    what nbconvert, nbviewer and GitHub show."""
    from .. import config

    snap = snapshot(dash, deterministic=deterministic)
    if deterministic is None:
        deterministic = bool(config.get("deterministic_display"))
    columns = snap["columns"]
    if deterministic:  # times and ids change on every build: left out of the saved table
        columns = [c for c in columns if c["key"] not in ("started_at", "run_id", "duration_s")]
    tiles = "".join(f'<div class="asm-kpi">{_tile(t["label"], t["value"], t["note"])}</div>' for t in snap["kpis"])
    head = "".join(f'<th class="asm-{c["kind"]}">{_esc(c["label"])}</th>' for c in columns)
    body = []
    for r in snap["rows"]:
        cells = []
        for c in columns:
            v = r.get(c["key"])
            cells.append(f'<td class="asm-{c["kind"]}">{_esc(_grid_text(v, c["kind"]))}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = (f'<div class="asm-dash-note">showing {len(snap["rows"])} of {snap["total"]} runs</div>'
            if snap["total"] > len(snap["rows"]) else "")
    active = ", ".join(f"{k}: {', '.join(v) if isinstance(v, list) else v}" for k, v in snap["filters"].items())
    return (_STATIC_CSS + '<div class="asm-dash asm-dash-static">'
            f'<div class="asm-dash-title">Agent runs dashboard{" — " + _esc(active) if active else ""}</div>'
            f'<div class="asm-kpis">{tiles}</div>'
            f'<table class="asm-grid"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
            f"{more}</div>")
