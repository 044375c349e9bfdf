"""The analytics dashboard: ``asm_nb.dashboard(store)`` and ``%asm dashboard``.

An ipywidgets app over one store (standard widgets only, no front-end build)::

    ┌ filters: provider · model · status (multi-select; none selected = all) · from / to dates ┐
    │ KPI tiles: runs · success rate · tokens · cost                                          │
    │ charts: cost over time · tokens per run · run durations · outcomes by provider          │
    │ run table (newest first) ─ picking a run shows its header, transcript, tool calls and    │
    │ tool timeline                                                                            │
    └──────────────────────────────────────────────────────────────────────────────────────────┘

Data: the store's runs are read once (``frames.runs`` joined with ``frames.costs``, so a run
stored without a cost is priced post hoc) and filtered in memory on every filter change;
**Refresh** re-reads the store. A picked run's transcript and tool calls are read from its
events when it is picked.

Charts (the :mod:`asm_nb.plots` figures) are rendered **offline**: plotly 6+ ``FigureWidget``
needs ``anywidget``, so each figure is a ``display_data`` output of an ``ipywidgets.Output``
carrying the plotly mime type (drawn by the plotly JupyterLab / VS Code renderer when present)
and a ``text/html`` fallback: a ``<div>`` plus a small script that draws it with ``Plotly.newPlot``
once ``window.Plotly`` exists. plotly.js itself is inlined **once** per dashboard (a hidden
loader output holding ``plotly.offline.get_plotlyjs()``), never loaded from a CDN.

**Saved notebooks.** Next to the widget the output carries a static snapshot (:meth:`Dashboard.snapshot`):
``application/vnd.asm.dashboard+json`` (KPIs and the run grid as data), ``text/html`` (KPI tiles and
the run table; what nbconvert, nbviewer and GitHub show) and ``text/plain``
(:meth:`Dashboard.text`). In JupyterLab the asm_nb extension draws the snapshot as a sortable grid
whenever the widget's kernel is gone (a reopened notebook: never "model not found"), and the
live widget while its kernel still holds it. With the ``deterministic_display`` setting the
snapshot leaves out the widget id and wall-clock durations (the committed notebooks).

ipywidgets, plotly and polars are imported when a dashboard is built, never at module import.
"""

from __future__ import annotations

import html
import json
import uuid
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterable

from ..core.errors import AsmError

__all__ = ["Dashboard", "dashboard", "CHARTS", "DASHBOARD_MIME", "figure_html", "plotlyjs_html"]

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
DASHBOARD_MIME = "application/vnd.asm.dashboard+json"
#: The run grid's columns in the static snapshot: key, label, kind (how the grid sorts/formats it).
GRID_COLUMNS: list[tuple[str, str, str]] = [
    ("started_at", "Started (UTC)", "time"), ("status", "Status", "text"), ("provider", "Provider", "text"),
    ("model", "Model", "text"), ("total_tokens", "Tokens", "int"), ("cost_usd", "Cost", "usd"),
    ("duration_s", "Duration", "seconds"), ("run_id", "Run", "text"),
]
PLOTLY_MIME = "application/vnd.plotly.v1+json"

#: Chart name → (asm_nb.plots function name, keyword arguments).
CHARTS: dict[str, tuple[str, dict]] = {
    "cost_over_time": ("cost_over_time", {"by": "model"}),
    "tokens_per_run": ("tokens_per_run", {"limit": 50}),
    "run_durations": ("run_durations", {"color": "provider"}),
    "outcomes_by_provider": ("outcomes_by_provider", {}),
}

NO_MODEL = "(no model)"
#: The live run table's orders: choice → (column, descending).
SORTS: dict[str, tuple[str, bool]] = {
    "newest": ("started_at", True), "oldest": ("started_at", False), "cost": ("cost_usd", True),
    "tokens": ("total_tokens", True), "duration": ("duration_s", True), "status": ("status", False),
    "provider": ("provider", False),
}
SORT_CHOICES = [("newest first", "newest"), ("oldest first", "oldest"), ("cost, highest first", "cost"),
                ("tokens, most first", "tokens"), ("duration, longest first", "duration"), ("status", "status"),
                ("provider", "provider")]
_FINISHED = ("completed", "failed", "cancelled", "timeout")
_STATUS_ORDER = ["completed", "failed", "cancelled", "timeout", "running", "pending"]
_MAX_MESSAGE_CHARS = 4000

_CSS = """<style>
.asm-dash .asm-kpi {border: 1px solid var(--jp-border-color2, #ddd); border-radius: 6px; padding: 4px 12px;
  min-width: 150px; margin: 0 8px 8px 0; background: var(--jp-layout-color1, #fff);}
.asm-dash .asm-kpi-value {font-size: 20px; font-weight: 600;}
.asm-dash .asm-kpi-label {color: var(--jp-ui-font-color2, #666); font-size: 12px;}
.asm-dash .asm-kpi-note {color: var(--jp-ui-font-color2, #888); font-size: 11px;}
.asm-dash .asm-runs select {font-family: var(--jp-code-font-family, monospace); font-size: 12px;}
.asm-dash .asm-runs-head {font-family: var(--jp-code-font-family, monospace); font-size: 12px;
  white-space: pre; color: var(--jp-ui-font-color2, #666);}
.asm-dash table.asm-tools {border-collapse: collapse; font-size: 12px;}
.asm-dash table.asm-tools td, .asm-dash table.asm-tools th {border-bottom: 1px solid #eee; padding: 2px 8px;
  text-align: left; vertical-align: top;}
.asm-dash .asm-msg {margin: 4px 0; padding: 4px 8px; border-left: 3px solid #ccc; white-space: pre-wrap;
  font-size: 13px;}
.asm-dash .asm-msg-user {border-color: #1f77b4;} .asm-dash .asm-msg-assistant {border-color: #2ca02c;}
.asm-dash .asm-msg-tool_call, .asm-dash .asm-msg-tool {border-color: #ff7f0e; font-family:
  var(--jp-code-font-family, monospace); font-size: 12px;}
.asm-dash .asm-role {font-weight: 600; font-size: 11px; color: var(--jp-ui-font-color2, #666);}
</style>"""


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
# small formatting helpers


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


def _day_start(d: Any, name: str) -> datetime | None:
    if d is None:
        return None
    if isinstance(d, datetime):
        return d if d.tzinfo else d.replace(tzinfo=timezone.utc)
    if isinstance(d, date):
        return datetime.combine(d, time(0), tzinfo=timezone.utc)
    raise AsmError("validation_error", f"{name} must be a date, got {d!r}")


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
# the dashboard


class Dashboard:
    """Filters, KPI tiles, charts and a run table over one store (see the module docstring).

    >>> dash = asm_nb.dashboard(store)                       # doctest: +SKIP
    >>> dash.set_filters(provider=["claude"], since="2026-03-01")   # doctest: +SKIP
    >>> dash.kpi_values["runs"], dash.select_run(dash.run_ids[0])   # doctest: +SKIP

    Attributes tests and users rely on: ``widget`` (the root ``VBox``), ``provider`` /
    ``model`` / ``status`` (``SelectMultiple``), ``since`` / ``until`` (``DatePicker``),
    ``refresh_button``, ``kpis`` (name → ``HTML`` tile), ``kpi_values`` (name → number),
    ``charts`` (name → ``Output``), ``run_table`` (``Select``: value = run id), ``sort_by``
    (``Dropdown``: the run table's order, a key of :data:`SORTS`), ``run_ids`` (the filtered runs
    in the table's order, newest first by default), ``runs`` (the filtered polars frame), ``detail_header``,
    ``transcript`` and ``tool_calls`` (``HTML``), ``timeline`` (``Output``), ``selected_run``.

    ``charts``: names from :data:`CHARTS` (``()`` = no charts); ``run_limit``: rows shown in the
    run table; ``plotlyjs``: ``"inline"`` (plotly.js inlined once by this dashboard) or
    ``False`` (the page already has ``window.Plotly``).
    """

    def __init__(self, store: Any = None, *, charts: Iterable[str] | None = None, run_limit: int = 500,
                 chart_height: int = 340, plotlyjs: Any = "inline") -> None:
        try:
            import ipywidgets as W
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise AsmError("dependency_not_available",
                           "the dashboard needs ipywidgets: pip install 'asm_nb[notebook]'") from exc
        from ..stores import resolve_store

        names = list(CHARTS) if charts is None else list(charts)
        for n in names:
            if n not in CHARTS:
                raise AsmError("validation_error", f"unknown chart {n!r}; expected some of {', '.join(CHARTS)}")
        if plotlyjs not in ("inline", False, None):
            raise AsmError("validation_error", f"plotlyjs must be 'inline' or False (never a CDN), got {plotlyjs!r}")
        if not isinstance(run_limit, int) or isinstance(run_limit, bool) or run_limit <= 0:
            raise AsmError("validation_error", f"run_limit must be a positive integer, got {run_limit!r}")
        self.store = resolve_store(store)
        self.chart_names = names
        self.run_limit = run_limit
        self.chart_height = chart_height
        self._W = W
        self._updating = False
        self._all: Any = None
        self.runs: Any = None
        self.run_ids: list[str] = []
        self.kpi_values: dict[str, Any] = {}
        self.selected_run: str | None = None

        def picker(label: str, width: str) -> Any:
            return W.SelectMultiple(description=label, rows=4, layout=W.Layout(width=width),
                                    style={"description_width": "60px"})

        self.provider = picker("Provider", "240px")
        self.model = picker("Model", "340px")
        self.status = picker("Status", "220px")
        self.since = W.DatePicker(description="From")
        self.until = W.DatePicker(description="To")
        self.refresh_button = W.Button(description="Refresh", icon="refresh", tooltip="re-read the store")
        self.clear_button = W.Button(description="Clear filters", tooltip="show every run")
        self.sort_by = W.Dropdown(options=SORT_CHOICES, value="newest", description="Sort by",
                                  layout=W.Layout(width="260px"), style={"description_width": "60px"})
        self.message = W.HTML()
        self.kpis = {k: W.HTML().add_class("asm-kpi") for k in ("runs", "success_rate", "tokens", "cost")}
        self.charts = {n: W.Output(layout=W.Layout(min_height=f"{chart_height}px")) for n in names}
        self.runs_head = W.HTML().add_class("asm-runs-head")
        self.run_table = W.Select(options=[], rows=12, layout=W.Layout(width="100%")).add_class("asm-runs")
        self.detail_header = W.HTML()
        self.transcript = W.HTML()
        self.tool_calls = W.HTML()
        self.timeline = W.Output()
        self._loader = W.Output(layout=W.Layout(height="0px", overflow="hidden"))
        if plotlyjs == "inline" and names:
            self._loader.outputs = (_html_output(plotlyjs_html(), ""),)
        self._plotlyjs = plotlyjs

        chart_grid = W.GridBox(list(self.charts.values()),
                               layout=W.Layout(grid_template_columns="repeat(2, minmax(0, 1fr))", grid_gap="8px"))
        hint = W.HTML("<small>ctrl/cmd-click picks several; none picked = all</small>")
        filters = W.VBox([W.HBox([self.provider, self.model, self.status]),
                          W.HBox([self.since, self.until, self.refresh_button, self.clear_button]), hint,
                          self.message])
        self.detail = W.VBox([self.detail_header, W.HTML("<b>Transcript</b>"), self.transcript,
                              W.HTML("<b>Tool calls</b>"), self.tool_calls, self.timeline])
        self.widget = W.VBox([W.HTML(_CSS), self._loader, filters, W.HBox(list(self.kpis.values())),
                              chart_grid, W.HBox([W.HTML("<b>Runs</b> (pick one to see its transcript)"), self.sort_by],
                                     layout=W.Layout(align_items="center", justify_content="space-between")),
                              self.runs_head, self.run_table, self.detail]).add_class("asm-dash")

        self.sort_by.observe(self._on_filter, names="value")
        for w in (self.provider, self.model, self.status, self.since, self.until):
            w.observe(self._on_filter, names="value")
        self.run_table.observe(self._on_pick, names="value")
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.clear_button.on_click(lambda _b: self.clear_filters())
        self.refresh()

    # -- data ---------------------------------------------------------------------------------
    def _load(self) -> Any:
        """Every run of the store: ``frames.runs`` with the cost columns of ``frames.costs``."""
        import polars as pl

        from ..analytics import frames

        runs = frames.runs(self.store, backend="polars")
        costs = frames.costs(self.store, backend="polars").select(
            "run_id", pl.col("cost_usd").alias("_cost"), pl.col("unpriced").alias("_unpriced"),
            pl.col("cost_source").alias("_cost_source"))
        df = runs.join(costs, on="run_id", how="left").with_columns(
            cost_usd=pl.coalesce("_cost", "cost_usd"), unpriced=pl.coalesce("_unpriced", "unpriced"),
            cost_source=pl.coalesce(pl.col("_cost_source").cast(pl.String), pl.col("cost_source").cast(pl.String))
            .cast(pl.Categorical),
        ).drop("_cost", "_unpriced", "_cost_source")
        return df.sort("started_at", "run_id", descending=True, nulls_last=True)

    def refresh(self) -> None:
        """Re-read the store, refresh the filter choices (keeping the current picks that still
        exist) and redraw everything."""
        import polars as pl

        self._all = self._load()
        df = self._all
        providers = sorted({p for p in df["provider"].cast(pl.String).to_list() if p is not None})
        models = sorted({m for m in df["model"].cast(pl.String).to_list() if m is not None})
        if df["model"].null_count():
            models.append(NO_MODEL)
        statuses = sorted(set(df["status"].cast(pl.String).to_list()),
                          key=lambda s: (_STATUS_ORDER.index(s) if s in _STATUS_ORDER else 99, s))
        self._updating = True
        try:
            for w, opts in ((self.provider, providers), (self.model, models), (self.status, statuses)):
                keep = tuple(v for v in w.value if v in opts)
                w.options = opts
                w.value = keep
        finally:
            self._updating = False
        self.update()

    def filters(self) -> dict[str, Any]:
        """The current filter values: ``provider, model, status`` (tuples; empty = all),
        ``since, until`` (dates or None; ``until`` inclusive)."""
        return {"provider": tuple(self.provider.value), "model": tuple(self.model.value),
                "status": tuple(self.status.value), "since": self.since.value, "until": self.until.value}

    def set_filters(self, *, provider: Any = None, model: Any = None, status: Any = None, since: Any = None,
                    until: Any = None) -> None:
        """Set several filters at once (one redraw). Each of ``provider, model, status`` takes a
        value or a list (None or ``[]`` = all; a value not in the store is an error); ``since`` /
        ``until`` take dates, datetimes or ISO strings (None = open)."""
        def many(w: Any, v: Any, name: str) -> tuple:
            vals = () if v is None else ((v,) if isinstance(v, str) else tuple(v))
            bad = [x for x in vals if x not in w.options]
            if bad:
                raise AsmError("validation_error", f"{name} {bad[0]!r} is not in the store "
                                                   f"(choices: {', '.join(map(str, w.options)) or 'none'})")
            return vals

        def day(v: Any, name: str) -> date | None:
            if v is None or (isinstance(v, date) and not isinstance(v, datetime)):
                return v
            if isinstance(v, datetime):
                return v.date()
            if isinstance(v, str):
                try:
                    return datetime.fromisoformat(v.strip().replace("Z", "+00:00")).date()
                except ValueError:
                    pass
            raise AsmError("validation_error", f"{name} must be a date or an ISO date string, got {v!r}")

        values = (many(self.provider, provider, "provider"), many(self.model, model, "model"),
                  many(self.status, status, "status"), day(since, "since"), day(until, "until"))
        self._updating = True
        try:
            for w, v in zip((self.provider, self.model, self.status, self.since, self.until), values):
                w.value = v
        finally:
            self._updating = False
        self.update()

    def clear_filters(self) -> None:
        """Show every run."""
        self.set_filters()

    def _filtered(self) -> Any:
        import polars as pl

        df = self._all
        f = self.filters()
        exprs = []
        if f["provider"]:
            exprs.append(pl.col("provider").cast(pl.String).is_in(list(f["provider"])))
        if f["model"]:
            named = [m for m in f["model"] if m != NO_MODEL]
            e = pl.col("model").cast(pl.String).is_in(named)
            exprs.append(e | pl.col("model").is_null() if NO_MODEL in f["model"] else e)
        if f["status"]:
            exprs.append(pl.col("status").cast(pl.String).is_in(list(f["status"])))
        since = _day_start(f["since"], "since")
        until = _day_start(f["until"], "until")
        if since is not None:
            exprs.append(pl.col("started_at") >= since)
        if until is not None:
            exprs.append(pl.col("started_at") < until + timedelta(days=1))
        return df.filter(*exprs) if exprs else df

    # -- drawing ------------------------------------------------------------------------------
    def _on_filter(self, change: Any) -> None:
        if not self._updating:
            self.update()

    def update(self) -> None:
        """Apply the filters: KPIs, charts and the run table (the picked run stays picked when
        it still matches; otherwise the detail panel clears)."""
        df = self._filtered()
        self.runs = df
        f = self.filters()
        if f["since"] is not None and f["until"] is not None and f["since"] > f["until"]:
            self.message.value = "<i>'From' is after 'To': no run can match.</i>"
        else:
            self.message.value = ""
        self._draw_kpis(df)
        for name in self.chart_names:
            self._draw_chart(name, df)
        df = self._sorted(df)
        self.runs = df
        self.run_ids = df["run_id"].to_list()
        shown = df.head(self.run_limit)
        options = [(self._label(r), r["run_id"]) for r in shown.iter_rows(named=True)]
        more = df.height - shown.height
        self.runs_head.value = _esc(self._label(None)) + (f"  (showing {shown.height} of {df.height})" if more else "")
        keep = self.selected_run if self.selected_run in set(shown["run_id"].to_list()) else None
        self._updating = True
        try:
            self.run_table.options = options
            self.run_table.value = keep
        finally:
            self._updating = False
        if keep is None:
            self._show_run(None)

    def _sorted(self, df: Any) -> Any:
        """The runs in the ``sort_by`` order (empty values last; ties newest first)."""
        import polars as pl

        column, descending = SORTS[str(self.sort_by.value)]
        if column == "started_at" and descending:
            return df  # already newest first
        key = pl.col(column).cast(pl.String) if column in ("status", "provider") else pl.col(column)
        return df.sort([key, pl.col("started_at")], descending=[descending, True], nulls_last=True)

    def _draw_kpis(self, df: Any) -> None:
        import polars as pl

        n = df.height
        statuses = df["status"].cast(pl.String).to_list()
        finished = sum(1 for s in statuses if s in _FINISHED)
        completed = sum(1 for s in statuses if s == "completed")
        rate = completed / finished if finished else None
        tokens = int(df["total_tokens"].fill_null(0).sum()) if n else 0
        inp = int(df["input_tokens"].fill_null(0).sum()) if n else 0
        out = int(df["output_tokens"].fill_null(0).sum()) if n else 0
        priced = df["cost_usd"].drop_nulls()
        cost = float(priced.sum()) if priced.len() else (0.0 if n == 0 else None)
        unpriced = int(df["unpriced"].fill_null(False).sum()) if n else 0
        running = n - finished
        self.kpi_values = {"runs": n, "success_rate": rate, "tokens": tokens, "cost": cost,
                           "completed": completed, "finished": finished, "unpriced": unpriced}
        self.kpis["runs"].value = _tile("Runs", f"{n:,}", f"{running} not finished" if running else "")
        self.kpis["success_rate"].value = _tile("Success rate", "n/a" if rate is None else f"{rate:.0%}",
                                                f"{completed} of {finished} finished" if finished else "")
        self.kpis["tokens"].value = _tile("Tokens", f"{tokens:,}", f"in {inp:,} · out {out:,}")
        self.kpis["cost"].value = _tile("Cost", _fmt_cost(cost), f"{unpriced} unpriced run(s)" if unpriced else "")

    def _draw_chart(self, name: str, df: Any) -> None:
        from ..analytics import plots as _plots

        fn_name, kwargs = CHARTS[name]
        try:
            fig = getattr(_plots, fn_name)(df, **kwargs)
            out = _figure_output(fig, height=self.chart_height, title=name)
        except Exception as exc:  # a chart never breaks the dashboard
            msg = exc.message if isinstance(exc, AsmError) else f"{type(exc).__name__}: {exc}"
            out = _html_output(f"<i>{_esc(name)}: {_esc(msg)}</i>", f"{name}: {msg}")
        self.charts[name].outputs = (out,)

    @staticmethod
    def _label(r: dict | None) -> str:
        if r is None:
            return (f"{'started (UTC)':<16}  {'status':<9}  {'provider/model':<32}  {'tokens':>9}  "
                    f"{'cost':>9}  {'duration':>9}  run_id")
        pm = f"{r.get('provider') or '?'}/{r.get('model') or '-'}"
        pm = pm if len(pm) <= 32 else pm[:31] + "…"
        return (f"{_fmt_time(r.get('started_at')):<16}  {str(r.get('status') or ''):<9}  {pm:<32}  "
                f"{_fmt_int(r.get('total_tokens')):>9}  {_fmt_cost(r.get('cost_usd')):>9}  "
                f"{_fmt_duration(r.get('duration_s')):>9}  {r.get('run_id')}")

    # -- picking a run --------------------------------------------------------------------------
    def _on_pick(self, change: Any) -> None:
        if not self._updating:
            self._show_run(change["new"])

    def select_run(self, run_id: str | None) -> None:
        """Pick a run of the table (None clears): shows its header, transcript, tool calls and
        tool timeline. A run not in the (filtered) table → ``validation_error``."""
        if run_id is not None and run_id not in {v for _, v in self.run_table.options}:
            raise AsmError("validation_error", f"run {run_id!r} is not in the run table (check the filters)")
        self.run_table.value = run_id  # the observer draws it
        if self.selected_run != run_id:  # value unchanged: draw anyway
            self._show_run(run_id)

    def _show_run(self, run_id: str | None) -> None:
        import polars as pl

        from ..analytics import frames

        self.selected_run = run_id
        if run_id is None:
            self.detail_header.value = "<i>Pick a run above to see its transcript and tool calls.</i>"
            self.transcript.value = ""
            self.tool_calls.value = ""
            self.timeline.outputs = ()
            return
        row = self._all.filter(pl.col("run_id") == run_id).row(0, named=True)
        self.detail_header.value = self._run_header(row)
        tr = frames.transcript(self.store, row["session_id"], run_id=run_id, include_tools=True, backend="polars")
        self.transcript.value = self._transcript_html(tr)
        tc = frames.tool_calls(self.store, session_id=row["session_id"], run_id=run_id, backend="polars")
        self.tool_calls.value = self._tools_html(tc)
        if tc.height and self.chart_names:
            from ..analytics import plots as _plots

            try:
                fig = _plots.tool_timeline(tc, run_id)
                self.timeline.outputs = (_figure_output(fig, height=max(220, 28 * tc.height + 120),
                                                        title=f"tool calls of {run_id}"),)
            except Exception as exc:  # pragma: no cover - a chart never breaks the dashboard
                self.timeline.outputs = (_html_output(f"<i>{_esc(exc)}</i>", str(exc)),)
        else:
            self.timeline.outputs = ()

    @staticmethod
    def _run_header(r: dict) -> str:
        parts = [f"<b>{_esc(r['run_id'])}</b>", f"status <b>{_esc(r['status'])}</b>",
                 f"{_esc(r.get('provider') or '?')} / {_esc(r.get('model') or '-')}",
                 f"started {_esc(_fmt_time(r.get('started_at')))} UTC", f"duration {_fmt_duration(r.get('duration_s'))}",
                 f"tokens in {_fmt_int(r.get('input_tokens'))} · out {_fmt_int(r.get('output_tokens'))}"
                 f" · cache read {_fmt_int(r.get('cache_read_tokens'))}", f"cost {_esc(_fmt_cost(r.get('cost_usd')))}"]
        out = " · ".join(parts) + f"<br><small>session {_esc(r['session_id'])}</small>"
        if r.get("error_code") or r.get("error_message"):
            out += (f"<div style='color:#d62728'>error [{_esc(r.get('error_code'))}] "
                    f"{_esc(r.get('error_message'))}</div>")
        return out

    @staticmethod
    def _transcript_html(tr: Any) -> str:
        if tr.height == 0:
            return "<i>No messages.</i>"
        rows = []
        for r in tr.iter_rows(named=True):
            role = str(r.get("role") or "")
            text = r.get("content") or ""
            if len(text) > _MAX_MESSAGE_CHARS:
                text = text[:_MAX_MESSAGE_CHARS] + f"… ({len(text) - _MAX_MESSAGE_CHARS:,} more characters)"
            label = {"tool_call": "tool call", "tool": "tool result"}.get(role, role)
            rows.append(f'<div class="asm-msg asm-msg-{_esc(role)}"><div class="asm-role">{_esc(label)}</div>'
                        f"{_esc(text)}</div>")
        return "\n".join(rows)

    @staticmethod
    def _tools_html(tc: Any) -> str:
        if tc.height == 0:
            return "<i>No tool calls.</i>"
        head = "".join(f"<th>{h}</th>" for h in ("#", "tool", "summary", "status", "duration", "output", "reason"))
        body = []
        for i, r in enumerate(tc.iter_rows(named=True), 1):
            dur = r.get("duration_ms")
            body.append("<tr>" + "".join(f"<td>{c}</td>" for c in (
                i, _esc(r.get("tool_name")), _esc(r.get("summary")), _esc(r.get("status")),
                "-" if dur is None else f"{dur:,.0f} ms",
                "-" if r.get("output_size") is None else f"{r['output_size']:,} chars", _esc(r.get("reason") or "")))
                        + "</tr>")
        return f'<table class="asm-tools"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'

    # -- display --------------------------------------------------------------------------------
    def text(self) -> str:
        """Plain-text view (the fallback without a widget front end): filters, KPIs and the runs."""
        f = self.filters()
        k = self.kpi_values
        active = ", ".join(f"{n}={'|'.join(map(str, v))}" for n, v in f.items() if n in ("provider", "model", "status") and v)
        if f["since"] or f["until"]:
            active = ", ".join(filter(None, [active, f"dates={f['since'] or '…'}..{f['until'] or '…'}"]))
        rate = "n/a" if k.get("success_rate") is None else f"{k['success_rate']:.0%}"
        lines = [f"asm dashboard — filters: {active or 'none'}",
                 f"runs {k.get('runs', 0):,} · success {rate} · tokens {k.get('tokens', 0):,} · "
                 f"cost {_fmt_cost(k.get('cost'))}", self._label(None)]
        lines += [label for label, _ in self.run_table.options]
        return "\n".join(lines)

    def snapshot(self, *, deterministic: bool | None = None) -> dict:
        """The ``application/vnd.asm.dashboard+json`` payload: the KPIs and the filtered runs
        (newest first, at most ``run_limit``) as the run grid's rows::

            {"schema": "asm.dashboard", "version": 1, "model_id": str|null, "filters": {...},
             "kpis": [{"name", "label", "value", "note"}], "columns": [{"key", "label", "kind"}],
             "rows": [{"started_at": ISO str|null, "status", "provider", "model", "total_tokens",
                       "cost_usd", "duration_s", "run_id"}], "total": int}

        ``deterministic`` (default: the ``deterministic_display`` setting): no widget id, no
        durations."""
        from .. import config

        if deterministic is None:
            deterministic = bool(config.get("deterministic_display"))
        k = self.kpi_values
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
        df = self.runs
        if df is not None:
            for r in df.head(self.run_limit).iter_rows(named=True):
                started = r.get("started_at")
                rows.append({
                    "started_at": started.strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(started, datetime) else None,
                    "status": None if r.get("status") is None else str(r["status"]),
                    "provider": None if r.get("provider") is None else str(r["provider"]),
                    "model": None if r.get("model") is None else str(r["model"]),
                    "total_tokens": int(r.get("total_tokens") or 0),
                    "cost_usd": None if r.get("cost_usd") is None else round(float(r["cost_usd"]), 6),
                    "duration_s": None if deterministic or r.get("duration_s") is None else round(float(r["duration_s"]), 3),
                    "run_id": r.get("run_id")})
        f = self.filters()
        filters: dict[str, Any] = {n: list(map(str, v)) for n, v in f.items()
                                   if n in ("provider", "model", "status") and v}
        for n in ("since", "until"):
            if f[n] is not None:
                filters[n] = str(f[n])
        return {"schema": "asm.dashboard", "version": 1,
                "model_id": None if deterministic else self.widget.model_id, "filters": filters, "kpis": kpis,
                "columns": [{"key": key, "label": label, "kind": kind} for key, label, kind in GRID_COLUMNS],
                "rows": rows, "total": 0 if df is None else df.height}

    def static_html(self, *, deterministic: bool | None = None) -> str:
        """The snapshot as self-contained HTML (KPI tiles and the run table, newest first):
        what nbconvert, nbviewer and GitHub show."""
        from .. import config

        snap = self.snapshot(deterministic=deterministic)
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

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kwargs: Any) -> dict:
        snap = self.snapshot()
        data = {"text/plain": self.text(), "text/html": self.static_html(), DASHBOARD_MIME: snap}
        if snap["model_id"]:
            data[WIDGET_MIME] = {"version_major": 2, "version_minor": 0, "model_id": self.widget.model_id}
        return data

    def __repr__(self) -> str:
        return f"<Dashboard {type(self.store).__name__}: {self.kpi_values.get('runs', 0)} runs shown>"

    def close(self) -> None:
        """Close every widget of the dashboard (frees the front-end models)."""
        def close(w: Any) -> None:
            for child in getattr(w, "children", ()):
                close(child)
            w.close()

        close(self.widget)


def dashboard(store: Any = None, **options: Any) -> Dashboard:
    """Build the analytics dashboard over ``store`` (a store, a path/URL, or None for the default
    store). Display it by leaving it last in a cell. ``options``: see :class:`Dashboard`."""
    return Dashboard(store, **options)
