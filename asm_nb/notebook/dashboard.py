"""The analytics dashboard: ``asm_nb.dashboard(store)`` and ``%asm dashboard``.

An ipywidgets app over one store::

    ┌ filters: provider · model · status (multi-select; none selected = all) · from / to dates ┐
    │ KPI tiles: runs · success rate · tokens · cost                                          │
    │ charts: cost over time · tokens per run · run durations · outcomes by provider          │
    │ ┌ run grid (sortable, paged) ─────────────┐ ┌ the picked run ─────────────────────────┐ │
    │ │ ● prompt · provider/model · started ·   │ │ header (status, prompt, tokens, cost),  │ │
    │ │   duration · tokens · cost              │ │ the run card, tool calls, tool timeline │ │
    │ └─────────────────────────────────────────┘ └─────────────────────────────────────────┘ │
    └──────────────────────────────────────────────────────────────────────────────────────────┘

The grid (:mod:`.dashgrid`, a small anywidget) sorts on a header click (again: the other
direction), picks the run of a clicked row (keyboard: arrows, Enter, PageUp / PageDown) and shows
``page_size`` runs per page, so thousands of runs stay responsive. The detail (:mod:`.dashdetail`)
sits beside the grid and moves below it when the notebook is narrow; its body is the run card,
the same view as a finished ``%%asm`` output.

Data: the store's runs are read once (``frames.runs`` joined with ``frames.costs``, so a run
stored without a cost is priced post hoc, plus each run's prompt, redacted) and filtered in
memory on every filter change; **Refresh** re-reads the store. A picked run's transcript and
tool calls are read from its events when it is picked.

Charts (the :mod:`asm_nb.plots` figures) are drawn **offline** (:mod:`.dashstatic`): each is a
``display_data`` output of an ``ipywidgets.Output`` carrying the plotly mime type and a
``text/html`` fallback; plotly.js is inlined **once** per dashboard, never loaded from a CDN.

**Saved notebooks.** Next to the widget the output carries a static snapshot (:meth:`Dashboard.snapshot`):
``application/vnd.asm.dashboard+json`` (KPIs and the run grid as data), ``text/html`` (KPI tiles and
the run table; what nbconvert, nbviewer and GitHub show) and ``text/plain``
(:meth:`Dashboard.text`). In JupyterLab the asm_nb extension draws the snapshot as a sortable grid
whenever the widget's kernel is gone (a reopened notebook: never "model not found"), and the
live widget while its kernel still holds it. With the ``deterministic_display`` setting the
snapshot leaves out the widget id and wall-clock durations (the committed notebooks).

ipywidgets, anywidget, plotly and polars are imported when a dashboard is built, never at module import.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterable

from ..core.errors import AsmError
from . import dashstatic as _static
from .dashstatic import (
    DASHBOARD_MIME, GRID_COLUMNS, PLOTLY_MIME, WIDGET_MIME, _esc, _figure_output, _fmt_cost, _fmt_duration, _fmt_int,
    _fmt_time, _html_output, _tile, figure_html, plotlyjs_html,
)

__all__ = ["Dashboard", "dashboard", "CHARTS", "DASHBOARD_MIME", "SORTS", "figure_html", "plotlyjs_html"]
# names older code imports from here (they live in .dashstatic now)
_REEXPORTED = (GRID_COLUMNS, PLOTLY_MIME, WIDGET_MIME)

#: Chart name → (asm_nb.plots function name, keyword arguments).
CHARTS: dict[str, tuple[str, dict]] = {
    "cost_over_time": ("cost_over_time", {"by": "model"}),
    "tokens_per_run": ("tokens_per_run", {"limit": 50}),
    "run_durations": ("run_durations", {"color": "provider"}),
    "outcomes_by_provider": ("outcomes_by_provider", {}),
}

NO_MODEL = "(no model)"
#: Named orders of the run grid (``dash.sort_by.value = "cost"``): name → grid sort ("-" = descending).
SORTS: dict[str, str] = {
    "newest": "-started_at", "oldest": "started_at", "cost": "-cost_usd", "tokens": "-total_tokens",
    "duration": "-duration_s", "status": "status", "provider": "provider_model", "prompt": "prompt",
}
_FINISHED = ("completed", "failed", "cancelled", "timeout")
_STATUS_ORDER = ["completed", "failed", "cancelled", "timeout", "running", "pending"]
_PROMPT_CHARS = 4000  # of a prompt kept for the grid and the detail header

_CSS = """<style>
.asm-dash {color: var(--jp-ui-font-color1, #1f2328); font-family: var(--jp-ui-font-family, system-ui, sans-serif);}
.asm-dash .asm-kpi {border: 1px solid var(--jp-border-color2, #ddd); border-radius: 6px; padding: 4px 12px;
  min-width: 150px; margin: 0 8px 8px 0; background: var(--jp-layout-color1, #fff);}
.asm-dash .asm-kpi-value {font-size: 20px; font-weight: 600;}
.asm-dash .asm-kpi-label {color: var(--jp-ui-font-color2, #666); font-size: 12px;}
.asm-dash .asm-kpi-note {color: var(--jp-ui-font-color2, #888); font-size: 11px;}
.asm-dash .asm-dash-section {font-weight: 600; margin: 8px 0 4px;}
.asm-dash .widget-html.asm-dash-section, .asm-dash .asm-dash-detail .widget-html {height: auto; line-height: 1.4;}
.asm-dash .asm-dash-detail .widget-html-content {display: block; line-height: 1.4;}
.asm-dash .asm-dash-split {display: flex; flex-flow: row wrap; gap: 12px; align-items: flex-start; width: 100%;}
.asm-dash .asm-dash-split > .asm-dash-gridcol {flex: 3 1 520px; min-width: 0; margin: 0;}
.asm-dash .asm-dash-split > .asm-dash-detail {flex: 2 1 340px; min-width: 0; margin: 0; max-height: 820px;
  overflow: auto; border: 1px solid var(--jp-border-color2, #d0d7de); border-radius: 4px; padding: 6px 10px;
  background: var(--jp-layout-color1, #fff); box-sizing: border-box;}
.asm-dash .asm-dash-detail-head {margin-bottom: 6px; font-size: var(--jp-ui-font-size1, 13px);}
.asm-dash .asm-dash-detail-title {margin-bottom: 4px;}
.asm-dash .asm-dash-prompt {white-space: pre-wrap; word-break: break-word; max-height: 9em; overflow: auto;
  margin: 4px 0; padding: 4px 8px; border-left: 3px solid var(--jp-brand-color1, #0969da);
  background: var(--jp-layout-color2, #f6f8fa); color: var(--jp-content-font-color1, inherit);}
.asm-dash .asm-dash-ids code {font-size: 11px;}
.asm-dash .asm-dash-detail .asm-muted {color: var(--jp-ui-font-color2, #59636e);}
.asm-dash .asm-dash-detail .asm-banner {border-left: 3px solid var(--jp-error-color1, #cf222e); padding: 2px 8px;
  margin: 4px 0; background: var(--jp-layout-color2, #f6f8fa); color: var(--jp-content-font-color1, inherit);}
.asm-dash .asm-dash-detail .asm-run {border-top: 1px solid var(--jp-border-color2, #d0d7de); padding-top: 6px;}
.asm-dash .asm-dash-tools summary {cursor: pointer; color: var(--jp-ui-font-color2, #59636e); margin: 6px 0 2px;}
.asm-dash table.asm-tools {border-collapse: collapse; font-size: 12px;}
.asm-dash table.asm-tools td, .asm-dash table.asm-tools th {border-bottom: 1px solid var(--jp-border-color3, #eee);
  padding: 2px 8px; text-align: left; vertical-align: top;}
</style>"""


def _day_start(d: Any, name: str) -> datetime | None:
    if d is None:
        return None
    if isinstance(d, datetime):
        return d if d.tzinfo else d.replace(tzinfo=timezone.utc)
    if isinstance(d, date):
        return datetime.combine(d, time(0), tzinfo=timezone.utc)
    raise AsmError("validation_error", f"{name} must be a date, got {d!r}")


def _prompt_text(value: Any) -> str | None:
    """A run's input as one prompt string (None when empty)."""
    from collections.abc import Mapping

    if isinstance(value, Mapping):
        value = value.get("content", value.get("prompt", ""))
    if isinstance(value, list):
        value = " ".join(str(v.get("content", v)) if isinstance(v, Mapping) else str(v) for v in value)
    text = "" if value is None else str(value)
    return text[:_PROMPT_CHARS] or None


class _RunsReadOnce:
    """The store seen through one read of its run list: ``frames.runs``, ``frames.costs`` and the
    prompts all ask for every run; one refresh reads them once (a LocalStore parses every run
    record per ``list_runs``). Everything else goes to the store."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self._runs: list | None = None

    def list_runs(self, session_id: Any = None, *args: Any, **kwargs: Any) -> list:
        if session_id is not None or args or kwargs:
            return self._store.list_runs(session_id, *args, **kwargs)
        if self._runs is None:
            self._runs = list(self._store.list_runs(None))
        return list(self._runs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class SortBy:
    """The run grid's order by name (``dash.sort_by.value = "cost"``, see :data:`SORTS`), or by
    column (``dash.sort_by("total_tokens", descending=True)``); a header click does the same."""

    def __init__(self, grid: Any) -> None:
        self._grid = grid

    @property
    def options(self) -> list[str]:
        return list(SORTS)

    @property
    def value(self) -> str:
        """The name of the current order (the grid's sort spec when it has no name)."""
        spec = self._grid.sort
        return next((name for name, s in SORTS.items() if s == spec), spec)

    @value.setter
    def value(self, name: str) -> None:
        if name not in SORTS:
            raise AsmError("validation_error", f"unknown order {name!r}; expected one of {', '.join(SORTS)}")
        self._grid.sort = SORTS[name]

    def __call__(self, column: str, descending: bool = False) -> None:
        self._grid.sort = f"-{column}" if descending else column


class Dashboard:
    """Filters, KPI tiles, charts, a run grid and the picked run beside it, over one store (see the
    module docstring).

    >>> dash = asm_nb.dashboard(store)                       # doctest: +SKIP
    >>> dash.set_filters(provider=["claude"], since="2026-03-01")   # doctest: +SKIP
    >>> dash.kpi_values["runs"], dash.select_run(dash.run_ids[0])   # doctest: +SKIP

    Attributes tests and users rely on: ``widget`` (the root ``VBox``), ``provider`` /
    ``model`` / ``status`` (``SelectMultiple``), ``since`` / ``until`` (``DatePicker``),
    ``refresh_button``, ``kpis`` (name → ``HTML`` tile), ``kpi_values`` (name → number),
    ``charts`` (name → ``Output``), ``grid`` (the run grid, :class:`.dashgrid.RunGrid`: ``value``
    = the picked run id, ``sort``, ``page``, ``rows`` = the page shown; ``click_header``,
    ``click_row``, ``show_page`` do what the mouse does), ``run_table`` (the same grid, the old
    name), ``sort_by`` (:class:`SortBy`), ``run_ids`` (the filtered runs in the grid's order,
    newest first by default), ``runs`` (the filtered polars frame, in that order),
    ``detail_header``, ``transcript`` (the run card) and ``tool_calls`` (``HTML``), ``timeline``
    (``Output``), ``selected_run``.

    ``charts``: names from :data:`CHARTS` (``()`` = no charts); ``page_size``: runs per grid page;
    ``run_limit``: rows in the saved snapshot and the text view; ``plotlyjs``: ``"inline"``
    (plotly.js inlined once by this dashboard) or ``False`` (the page already has ``window.Plotly``).
    """

    def __init__(self, store: Any = None, *, charts: Iterable[str] | None = None, run_limit: int = 500,
                 chart_height: int = 340, plotlyjs: Any = "inline", page_size: int = 25) -> None:
        try:
            import ipywidgets as W

            from .dashgrid import RunGrid
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise AsmError("dependency_not_available",
                           f"the dashboard needs ipywidgets and anywidget ({exc.name} is missing): "
                           "pip install 'asm_nb[notebook]'") from exc
        from ..stores import resolve_store
        from .dashdetail import RunDetail

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
        self.message = W.HTML()
        self.kpis = {k: W.HTML().add_class("asm-kpi") for k in ("runs", "success_rate", "tokens", "cost")}
        self.charts = {n: W.Output(layout=W.Layout(min_height=f"{chart_height}px")) for n in names}
        self.grid = RunGrid(page_size=page_size, on_pick=self._show_run)
        self.run_table = self.grid
        self.sort_by = SortBy(self.grid)
        self.detail = RunDetail(W, figure_output=_figure_output, html_output=_html_output, charts=bool(names))
        self.detail_header = self.detail.header
        self.transcript = self.detail.card
        self.tool_calls = self.detail.tools
        self.timeline = self.detail.timeline
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
        gridcol = W.VBox([W.HTML("Runs <small>(click a header to sort, a row to see the run)</small>")
                          .add_class("asm-dash-section"), self.grid]).add_class("asm-dash-gridcol")
        self.split = W.Box([gridcol, self.detail.box]).add_class("asm-dash-split")
        self.widget = W.VBox([W.HTML(_CSS), self._loader, filters, W.HBox(list(self.kpis.values())),
                              chart_grid, self.split]).add_class("asm-dash")

        for w in (self.provider, self.model, self.status, self.since, self.until):
            w.observe(self._on_filter, names="value")
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.clear_button.on_click(lambda _b: self.clear_filters())
        self.refresh()

    # -- data ---------------------------------------------------------------------------------
    @property
    def runs(self) -> Any:
        """The filtered runs (polars) in the grid's order; None before the first read."""
        return self.grid.frame

    @property
    def run_ids(self) -> list[str]:
        """The filtered runs' ids in the grid's order."""
        return list(self.grid.run_ids)

    def _load(self) -> Any:
        """Every run of the store: ``frames.runs`` with the cost columns of ``frames.costs`` and
        each run's prompt (redacted)."""
        import polars as pl

        from ..analytics import frames
        from ..rendering.runview import make_redactor

        store = _RunsReadOnce(self.store)
        runs = frames.runs(store, backend="polars")
        costs = frames.costs(store, backend="polars").select(
            "run_id", pl.col("cost_usd").alias("_cost"), pl.col("unpriced").alias("_unpriced"),
            pl.col("cost_source").alias("_cost_source"))
        redact = make_redactor(None)
        prompts = {}
        for r in store.list_runs(None):
            text = _prompt_text(r.input)
            prompts[r.id] = None if text is None else str(redact(text))
        df = runs.join(costs, on="run_id", how="left").with_columns(
            cost_usd=pl.coalesce("_cost", "cost_usd"), unpriced=pl.coalesce("_unpriced", "unpriced"),
            cost_source=pl.coalesce(pl.col("_cost_source").cast(pl.String), pl.col("cost_source").cast(pl.String))
            .cast(pl.Categorical),
            prompt=pl.Series("prompt", [prompts.get(i) for i in runs["run_id"].to_list()], dtype=pl.String),
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
        """Apply the filters: KPIs, charts and the run grid (first page; the picked run stays
        picked when it still matches, otherwise the detail clears)."""
        df = self._filtered()
        f = self.filters()
        if f["since"] is not None and f["until"] is not None and f["since"] > f["until"]:
            self.message.value = "<i>'From' is after 'To': no run can match.</i>"
        else:
            self.message.value = ""
        self._draw_kpis(df)
        for name in self.chart_names:
            self._draw_chart(name, df)
        self.grid.set_frame(df)

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
    def select_run(self, run_id: str | None) -> None:
        """Pick a run of the grid (None clears): turns to its page and shows its header, run card,
        tool calls and tool timeline beside the grid. A run not in the (filtered) grid →
        ``validation_error``."""
        self.grid.pick(run_id)

    def _show_run(self, run_id: str | None) -> None:
        import polars as pl

        self.selected_run = run_id
        if run_id is None:
            self.detail.clear()
            return
        row = self._all.filter(pl.col("run_id") == run_id).row(0, named=True)
        self.detail.show(self.store, row)

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
        if self.runs is not None:
            lines += [self._label(r) for r in self.runs.head(self.run_limit).iter_rows(named=True)]
        return "\n".join(lines)

    def snapshot(self, *, deterministic: bool | None = None) -> dict:
        """The ``application/vnd.asm.dashboard+json`` payload (see :func:`.dashstatic.snapshot`):
        the KPIs and the filtered runs in the grid's order (at most ``run_limit``)."""
        return _static.snapshot(self, deterministic=deterministic)

    def static_html(self, *, deterministic: bool | None = None) -> str:
        """The snapshot as self-contained HTML (KPI tiles and the run table): what nbconvert,
        nbviewer and GitHub show."""
        return _static.static_html(self, deterministic=deterministic)

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
