"""Plotly figures over the analytics frames (exposed as ``asm_nb.plots``).

Each function takes either a store (the frame is built with :mod:`asm_nb.analytics.frames`,
and the usual frame filters may be passed as keywords) or a frame from
:mod:`~asm_nb.analytics.frames` in either backend (pandas or polars), and returns a
``plotly.graph_objects.Figure``:

- :func:`cost_over_time` — USD per day (or hour / week / month) stacked by model or provider;
- :func:`tokens_per_run` — input / output / cache-read / cache-write tokens per run, stacked;
- :func:`tool_timeline` — a Gantt chart of one run's tool calls;
- :func:`run_durations` — run duration distribution, coloured by provider (or model/status);
- :func:`outcomes_by_provider` — completed / failed / cancelled / ... runs per provider.

Empty data gives an empty figure with a "No data" note, never an exception. plotly and pandas
are imported inside the functions.

**Theme.** The figures have transparent backgrounds, translucent grey grid lines and a neutral
font, so they read on light and dark pages; inside JupyterLab the asm_nb extension's CSS also
paints their text and grid lines with the theme's colours (light and dark).

**Static fallback.** With ``asm_nb.config.set("chart_images", True)`` (or ``ASM_CHART_IMAGES=1``;
the committed notebooks are built that way) a figure displayed in a notebook also carries an
``image/png`` rendered by kaleido (``pip install kaleido``; it drives a local Chrome/Chromium),
which nbconvert, nbviewer and GitHub show. JupyterLab's plotly renderer shows a saved image
instead of redrawing the chart (it also saves one itself when a notebook is saved from Lab), so
leave the setting off for interactive work. Without kaleido or a browser the figure shows as
before, with no image (:func:`static_png` returns None).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from ..core.errors import AsmError
from ..core.usage import TOKEN_KEYS

__all__ = ["cost_over_time", "tokens_per_run", "tool_timeline", "run_durations", "outcomes_by_provider"]

_TOKEN_PARTS = list(zip(TOKEN_KEYS, ("input", "output", "cache read", "cache write")))
_STATUS_COLORS = {"completed": "#2ca02c", "failed": "#d62728", "cancelled": "#7f7f7f", "timeout": "#ff7f0e",
                  "running": "#1f77b4", "pending": "#bcbd22"}
_FREQS = {"hour": "1h", "h": "1h", "day": "1d", "d": "1d", "week": "1w", "w": "1w", "month": "1mo", "mo": "1mo"}


def _plotly():
    try:
        import plotly.graph_objects as go
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise AsmError("dependency_not_available", "asm_nb.plots needs plotly: pip install 'asm_nb[notebook]'") from exc
    return go


#: The shared look: transparent backgrounds and translucent grey lines (readable on light and
#: dark pages); JupyterLab's theme colours are applied on top by the extension's CSS.
_GRID = "rgba(128,128,128,0.25)"
_LINE = "rgba(128,128,128,0.5)"
THEME_LAYOUT: dict[str, Any] = {
    "template": "plotly_white", "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)",
    "font": {"color": "#6b6b6b"}, "legend": {"bgcolor": "rgba(0,0,0,0)"},
    "xaxis": {"gridcolor": _GRID, "zerolinecolor": _LINE, "linecolor": _LINE},
    "yaxis": {"gridcolor": _GRID, "zerolinecolor": _LINE, "linecolor": _LINE},
}
_FIGURE_CLASS: Any = None


def _figure_class() -> Any:
    """``go.Figure`` whose notebook display adds the static ``image/png`` (see the module doc)."""
    global _FIGURE_CLASS
    if _FIGURE_CLASS is None:
        go = _plotly()

        class Figure(go.Figure):  # type: ignore[misc, valid-type]
            """A plotly figure from :mod:`asm_nb.plots` (themed; static image when enabled)."""

            def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, validate: bool = True,
                                  **kwargs: Any) -> Any:
                bundle = super()._repr_mimebundle_(include, exclude, validate, **kwargs)
                png = static_png(self) if chart_images_enabled() else None
                if png is not None and isinstance(bundle, dict):
                    bundle = {**bundle, "image/png": png}
                return bundle

            def _ipython_display_(self) -> None:  # IPython prefers this to _repr_mimebundle_
                if not chart_images_enabled():
                    return super()._ipython_display_()
                from IPython.display import display

                bundle = self._repr_mimebundle_()
                if bundle:
                    display(bundle, raw=True)
                else:  # no renderer for this front end: plotly's own behaviour
                    super()._ipython_display_()

        _FIGURE_CLASS = Figure
    return _FIGURE_CLASS


def new_figure() -> Any:
    """An empty themed figure (the class every :mod:`asm_nb.plots` function returns)."""
    fig = _figure_class()()
    fig.update_layout(**THEME_LAYOUT)
    return fig


def chart_images_enabled() -> bool:
    """True when figures should carry a static PNG (``chart_images`` setting)."""
    from .. import config

    value = config.get("chart_images")
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


_KALEIDO: dict[str, Any] = {"state": None}


def static_png(fig: Any, *, width: int = 900, height: int | None = None) -> str | None:
    """The figure as a base64 PNG (transparent background, grey text: readable on light and dark
    pages), or None when kaleido or a browser for it is missing (logged once, never raised)."""
    import base64
    import logging
    import warnings

    if _KALEIDO["state"] == "broken":
        return None
    try:
        import kaleido
        import plotly.io as pio

        if _KALEIDO["state"] is None:
            import atexit

            kaleido.start_sync_server(silence_warnings=True)  # one browser for every image
            atexit.register(lambda: kaleido.stop_sync_server(silence_warnings=True))
            _KALEIDO["state"] = "ok"
        h = height or fig.layout.height or 420
        with warnings.catch_warnings():  # "kopts ... ignored if using a server": expected here
            warnings.simplefilter("ignore", UserWarning)
            raw = pio.to_image(fig, format="png", width=width, height=int(h), validate=False)
    except Exception as exc:  # no kaleido, no browser, a browser that failed: no image
        _KALEIDO["state"] = "broken"
        logging.getLogger(__name__).warning("chart images off: %s: %s", type(exc).__name__, exc)
        return None
    return base64.b64encode(raw).decode("ascii")


def _is_store(obj: Any) -> bool:
    return callable(getattr(obj, "list_runs", None)) and callable(getattr(obj, "get_events", None))


def _frame(data: Any, builder: Callable[..., Any], required: Sequence[str], filters: dict) -> Any:
    """A polars frame from a store (built by ``builder``) or from a pandas/polars frame."""
    import polars as pl

    if data is None or isinstance(data, str) or _is_store(data):
        df = builder(data, backend="polars", **filters)
    else:
        if filters:
            raise AsmError("validation_error",
                           f"filters {sorted(filters)} apply only when a store is given; filter the frame instead")
        if isinstance(data, pl.DataFrame):
            df = data
        elif isinstance(data, pl.LazyFrame):
            df = data.collect()
        else:
            try:
                import pandas as pd
            except ImportError:  # pragma: no cover
                pd = None
            if pd is None or not isinstance(data, pd.DataFrame):
                raise AsmError("validation_error",
                               f"expected a store or a pandas/polars DataFrame, got {type(data).__name__}")
            df = pl.from_pandas(data)
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise AsmError("validation_error", f"frame is missing column(s) {missing}; build it with asm_nb.frames "
                                           f"({builder.__name__})")
    return df


def _empty(title: str) -> Any:
    fig = new_figure()
    fig.update_layout(title=title, xaxis={"visible": False}, yaxis={"visible": False},
                      annotations=[{"text": "No data", "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5,
                                    "showarrow": False, "font": {"size": 16}}])
    return fig


def _str(df: Any, col: str, fill: str) -> Any:
    import polars as pl

    return pl.col(col).cast(pl.String).fill_null(fill)


def cost_over_time(data: Any = None, *, by: str = "model", freq: str = "day", title: str | None = None,
                   **filters: Any) -> Any:
    """Stacked bars of USD per ``freq`` bucket (``hour``, ``day``, ``week``, ``month``), one
    colour per ``by`` value (``model`` or ``provider``). ``data``: a store or a
    ``frames.costs`` / ``frames.runs`` frame. Unpriced runs are left out and counted in the
    title."""
    import polars as pl

    from . import frames

    if by not in ("model", "provider"):
        raise AsmError("validation_error", f"by must be 'model' or 'provider', got {by!r}")
    every = _FREQS.get(str(freq).lower())
    if every is None:
        raise AsmError("validation_error", f"freq must be one of {sorted(set(_FREQS))}, got {freq!r}")
    df = _frame(data, frames.costs, ["started_at", "cost_usd", by], filters)
    title = title or f"Cost over time by {by} (USD)"
    unpriced = df.filter(pl.col("cost_usd").is_null()).height
    if unpriced:
        title += f" — {unpriced} unpriced run(s) not shown"
    priced = df.filter(pl.col("cost_usd").is_not_null())
    if priced.height == 0:
        return _empty(title)
    agg = (priced.with_columns(bucket=pl.col("started_at").dt.truncate(every), key=_str(priced, by, "unknown"))
           .group_by("bucket", "key").agg(cost_usd=pl.col("cost_usd").sum(), runs=pl.len())
           .sort("bucket", "key"))
    go = _plotly()
    fig = new_figure()
    for key in sorted(agg["key"].unique().to_list()):
        part = agg.filter(pl.col("key") == key)
        fig.add_trace(go.Bar(x=part["bucket"].to_list(), y=part["cost_usd"].to_list(), name=key,
                             customdata=part["runs"].to_list(),
                             hovertemplate="%{x}<br>" + key + ": $%{y:.4f} (%{customdata} runs)<extra></extra>"))
    fig.update_layout(barmode="stack", title=title, xaxis_title=str(freq), yaxis_title="USD",
                      legend_title=by)
    return fig


def tokens_per_run(data: Any = None, *, limit: int | None = 50, title: str | None = None, **filters: Any) -> Any:
    """Stacked bars of input / output / cache-read / cache-write tokens for each run (the latest
    ``limit`` runs by start time; None = all). ``data``: a store or a ``frames.runs`` /
    ``frames.costs`` frame."""
    import polars as pl

    from . import frames

    df = _frame(data, frames.runs, ["run_id", "started_at", *[c for c, _ in _TOKEN_PARTS]], filters)
    title = title or "Tokens per run"
    if df.height == 0:
        return _empty(title)
    df = df.sort("started_at", "run_id")
    if limit is not None:
        df = df.tail(limit)
    label_cols = [c for c in ("provider", "model") if c in df.columns]
    labels = df.select(
        (pl.col("run_id").str.slice(0, 12)
         + (pl.lit(" ") + pl.concat_str([_str(df, c, "?") for c in label_cols], separator="/")
            if label_cols else pl.lit("")))
        .alias("label"))["label"].to_list()
    go = _plotly()
    fig = new_figure()
    for col, name in _TOKEN_PARTS:
        fig.add_trace(go.Bar(x=labels, y=df[col].fill_null(0).to_list(), name=name,
                             hovertemplate="%{x}<br>" + name + ": %{y:,}<extra></extra>"))
    fig.update_layout(barmode="stack", title=title, xaxis_title="run", yaxis_title="tokens",
                      xaxis={"type": "category"})
    return fig


def tool_timeline(data: Any = None, run_id: str | None = None, *, title: str | None = None,
                  **filters: Any) -> Any:
    """Gantt chart of tool calls: one bar per call from start to finish (calls still running
    end at the latest time seen), one row per call labelled with its summary, coloured by
    status. With a store, give ``run_id`` (or other frame filters); with a ``frames.tool_calls``
    frame, ``run_id`` selects one run of it."""
    import polars as pl

    from . import frames

    if data is None or isinstance(data, str) or _is_store(data):
        if run_id is not None:
            filters["run_id"] = run_id
        df = _frame(data, frames.tool_calls, ["started_at", "finished_at", "status"], filters)
    else:
        df = _frame(data, frames.tool_calls, ["started_at", "finished_at", "status"], filters)
        if run_id is not None:
            df = df.filter(pl.col("run_id") == run_id)
    title = title or (f"Tool calls of run {run_id}" if run_id else "Tool calls")
    if df.height == 0:
        return _empty(title)
    df = df.sort("started_at")
    last = df.select(pl.max_horizontal(pl.col("finished_at").max(), pl.col("started_at").max())).item()
    df = df.with_columns(end=pl.coalesce("finished_at", pl.lit(last)),
                         label=pl.concat_str([pl.int_range(1, pl.len() + 1).cast(pl.String), pl.lit(". "),
                                              (_str(df, "summary", "") if "summary" in df.columns
                                               else _str(df, "tool_name", "tool")).str.slice(0, 60)]))
    # identical start/end would draw nothing: give instantaneous calls 1 ms
    df = df.with_columns(end=pl.when(pl.col("end") <= pl.col("started_at"))
                         .then(pl.col("started_at") + pl.duration(milliseconds=1)).otherwise(pl.col("end")))
    go = _plotly()
    fig = new_figure()
    for status in [s for s in ("completed", "failed", "running") if s in set(df["status"].cast(pl.String).to_list())]:
        part = df.filter(pl.col("status").cast(pl.String) == status)
        starts = part["started_at"].to_list()
        ends = part["end"].to_list()
        widths = [(e - s).total_seconds() * 1000.0 for s, e in zip(starts, ends)]
        durations = part["duration_ms"].to_list() if "duration_ms" in part.columns else [None] * part.height
        fig.add_trace(go.Bar(
            base=starts, x=widths, y=part["label"].to_list(), orientation="h", name=status,
            marker_color=_STATUS_COLORS.get(status),
            customdata=[[d if d is not None else float("nan")] for d in durations],
            hovertemplate="%{y}<br>" + status + ", %{customdata[0]:.0f} ms<extra></extra>"))
    fig.update_layout(title=title, barmode="overlay", xaxis={"type": "date", "title": "time (UTC)"},
                      yaxis={"autorange": "reversed", "type": "category",
                             "categoryorder": "array", "categoryarray": df["label"].to_list()},
                      legend_title="status", height=max(300, 28 * df.height + 120))
    return fig


def run_durations(data: Any = None, *, color: str = "provider", nbins: int | None = None,
                  title: str | None = None, **filters: Any) -> Any:
    """Histogram of run durations in seconds (finished runs), overlaid per ``color`` value
    (``provider``, ``model`` or ``status``). ``data``: a store or a ``frames.runs`` frame."""
    import polars as pl

    from . import frames

    if color not in ("provider", "model", "status"):
        raise AsmError("validation_error", f"color must be 'provider', 'model' or 'status', got {color!r}")
    df = _frame(data, frames.runs, ["duration_s", color], filters)
    df = df.filter(pl.col("duration_s").is_not_null())
    title = title or "Run duration (s)"
    if df.height == 0:
        return _empty(title)
    go = _plotly()
    fig = new_figure()
    df = df.with_columns(key=_str(df, color, "unknown"))
    for key in sorted(df["key"].unique().to_list()):
        part = df.filter(pl.col("key") == key)
        fig.add_trace(go.Histogram(x=part["duration_s"].to_list(), name=key, opacity=0.75,
                                   nbinsx=nbins or 0,
                                   marker_color=_STATUS_COLORS.get(key) if color == "status" else None))
    fig.update_layout(barmode="overlay", title=title, xaxis_title="seconds", yaxis_title="runs",
                      legend_title=color)
    return fig


def outcomes_by_provider(data: Any = None, *, normalize: bool = False, title: str | None = None,
                         **filters: Any) -> Any:
    """Stacked bars of run outcomes (status) per provider; ``normalize=True`` shows shares.
    ``data``: a store or a ``frames.runs`` frame."""
    import polars as pl

    from . import frames

    df = _frame(data, frames.runs, ["provider", "status"], filters)
    title = title or ("Run outcomes by provider" + (" (share)" if normalize else ""))
    if df.height == 0:
        return _empty(title)
    counts = (df.with_columns(provider=_str(df, "provider", "unknown"), status=_str(df, "status", "unknown"))
              .group_by("provider", "status").agg(runs=pl.len())
              .with_columns(share=pl.col("runs") / pl.col("runs").sum().over("provider"))
              .sort("provider", "status"))
    providers = sorted(counts["provider"].unique().to_list())
    order = ["completed", "failed", "cancelled", "timeout", "running", "pending"]
    statuses = sorted(counts["status"].unique().to_list(), key=lambda s: (order.index(s) if s in order else 99, s))
    go = _plotly()
    fig = new_figure()
    value = "share" if normalize else "runs"
    for status in statuses:
        part = counts.filter(pl.col("status") == status)
        got = dict(zip(part["provider"].to_list(), part[value].to_list()))
        fig.add_trace(go.Bar(x=providers, y=[got.get(p, 0) for p in providers], name=status,
                             marker_color=_STATUS_COLORS.get(status)))
    fig.update_layout(barmode="stack", title=title, xaxis_title="provider",
                      yaxis_title="share of runs" if normalize else "runs", legend_title="status",
                      yaxis={"tickformat": ".0%"} if normalize else {})
    return fig
