"""asm_nb.analytics.plots: every figure builds from a store and from frames of both backends,
and its traces add up to the frame's numbers."""

from __future__ import annotations

import warnings

import pytest

pl = pytest.importorskip("polars")
pytest.importorskip("pandas")
go = pytest.importorskip("plotly.graph_objects")

from asm_nb.core.errors import AsmError  # noqa: E402
from asm_nb.analytics import frames, plots  # noqa: E402
from asm_nb.stores.memory import InMemoryStore  # noqa: E402


def _load_helper():
    import importlib.util
    import pathlib
    import sys

    name = "asm_nb_tests_analytics_data"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, pathlib.Path(__file__).with_name("analytics_data.py"))
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


build = _load_helper().build


@pytest.fixture(scope="module")
def filled():
    store = InMemoryStore()
    ds = build(store)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield store, ds


def _sources(store, fn):
    return [store, fn(store, backend="polars"), fn(store, backend="pandas")]


def _sum(fig, attr="y"):
    return sum(sum(v for v in getattr(t, attr) if v is not None) for t in fig.data)


@pytest.mark.parametrize("src", [0, 1, 2])
@pytest.mark.parametrize("by", ["model", "provider"])
def test_cost_over_time(filled, src, by):
    store, ds = filled
    data = _sources(store, frames.costs)[src]
    fig = plots.cost_over_time(data, by=by)
    assert isinstance(fig, go.Figure)
    costs = frames.costs(store, backend="polars")
    assert _sum(fig) == pytest.approx(costs["cost_usd"].sum())
    names = {t.name for t in fig.data}
    assert names == {str(v) if v is not None else "unknown" for v in
                     costs.filter(pl.col("cost_usd").is_not_null())[by].cast(pl.String).to_list()}
    assert "1 unpriced" in fig.layout.title.text
    assert fig.layout.barmode == "stack"


def test_cost_over_time_freq_and_validation(filled):
    store, _ = filled
    weekly = plots.cost_over_time(store, freq="week", by="provider")
    assert _sum(weekly) == pytest.approx(frames.costs(store, backend="polars")["cost_usd"].sum())
    with pytest.raises(AsmError):
        plots.cost_over_time(store, by="agent")
    with pytest.raises(AsmError):
        plots.cost_over_time(store, freq="fortnight")
    with pytest.raises(AsmError, match="missing column"):
        plots.cost_over_time(pl.DataFrame({"x": [1]}))
    with pytest.raises(AsmError, match="filters"):
        plots.cost_over_time(frames.costs(store, backend="polars"), provider="claude")


@pytest.mark.parametrize("src", [0, 1, 2])
def test_tokens_per_run(filled, src):
    store, ds = filled
    fig = plots.tokens_per_run(_sources(store, frames.runs)[src])
    assert [t.name for t in fig.data] == ["input", "output", "cache read", "cache write"]
    assert _sum(fig) == sum(sum(r.token_usage.values()) for r in ds.runs)
    assert len(fig.data[0].x) == len(ds.runs)
    assert len(plots.tokens_per_run(store, limit=3).data[0].x) == 3


@pytest.mark.parametrize("src", [0, 1, 2])
def test_tool_timeline(filled, src):
    store, ds = filled
    run_id = ds.runs[-1].id  # the cancelled run: completed, failed and still-running calls
    data = _sources(store, frames.tool_calls)[src]
    fig = plots.tool_timeline(data, run_id=run_id)
    calls = [c for c in ds.tool_calls if c[1] == run_id]
    assert sum(len(t.y) for t in fig.data) == len(calls)
    assert {t.name for t in fig.data} == {c[3] for c in calls}
    assert all(t.orientation == "h" for t in fig.data)
    assert fig.layout.xaxis.type == "date"
    for t in fig.data:
        assert all(w > 0 for w in t.x)


@pytest.mark.parametrize("src", [0, 1, 2])
@pytest.mark.parametrize("color", ["provider", "status"])
def test_run_durations(filled, src, color):
    store, ds = filled
    fig = plots.run_durations(_sources(store, frames.runs)[src], color=color)
    assert sum(len(t.x) for t in fig.data) == len(ds.runs)
    assert all(isinstance(t, go.Histogram) for t in fig.data)


@pytest.mark.parametrize("src", [0, 1, 2])
def test_outcomes_by_provider(filled, src):
    store, ds = filled
    fig = plots.outcomes_by_provider(_sources(store, frames.runs)[src])
    assert _sum(fig) == len(ds.runs)
    failed = next(t for t in fig.data if t.name == "failed")
    claude_idx = list(failed.x).index("claude")
    assert failed.y[claude_idx] == sum(r.provider == "claude" and r.status.value == "failed" for r in ds.runs)
    share = plots.outcomes_by_provider(store, normalize=True)
    for i, _ in enumerate(share.data[0].x):
        assert sum(t.y[i] for t in share.data) == pytest.approx(1.0)


@pytest.mark.parametrize("fn", [plots.cost_over_time, plots.tokens_per_run, plots.tool_timeline,
                                plots.run_durations, plots.outcomes_by_provider])
def test_empty_store_gives_an_empty_figure(fn):
    fig = fn(InMemoryStore())
    assert isinstance(fig, go.Figure) and len(fig.data) == 0
    assert fig.layout.annotations[0].text == "No data"


def test_filters_pass_through_with_a_store(filled):
    store, ds = filled
    fig = plots.outcomes_by_provider(store, provider="codex")
    assert list(fig.data[0].x) == ["codex"]
    fig.to_dict()  # serialisable


@pytest.mark.parametrize("fn", ["cost_over_time", "tokens_per_run", "run_durations", "outcomes_by_provider"])
def test_figures_are_themed_for_light_and_dark_pages(filled, fn):
    """Transparent backgrounds (the page's colour shows through) and translucent grid lines:
    the plotly default (white paper, #E5ECF6 plot area) is a white box in a dark theme."""
    fig = getattr(plots, fn)(filled[0])
    lay = fig.layout
    assert lay.paper_bgcolor == "rgba(0,0,0,0)" and lay.plot_bgcolor == "rgba(0,0,0,0)"
    assert lay.xaxis.gridcolor.startswith("rgba(128,128,128") and lay.yaxis.gridcolor.startswith("rgba(128,128,128")
    assert lay.legend.bgcolor == "rgba(0,0,0,0)"
    assert isinstance(fig, go.Figure)
    assert plots._empty("x").layout.paper_bgcolor == "rgba(0,0,0,0)"


def test_static_image_only_when_enabled(filled, monkeypatch):
    """``chart_images`` on: the displayed bundle carries an image/png next to the plotly JSON
    (what nbconvert / GitHub show); off (the default): no image, no browser started."""
    import plotly.io as pio

    from asm_nb import config

    monkeypatch.setattr(pio.renderers, "default", "plotly_mimetype")  # what a notebook kernel uses
    fig = plots.outcomes_by_provider(filled[0])
    calls = []
    monkeypatch.setattr(plots, "static_png", lambda f, **k: calls.append(f) or "iVBORw0KGgo=")
    bundle = fig._repr_mimebundle_()
    assert "image/png" not in bundle and calls == []
    with config.override(chart_images=True):
        bundle = fig._repr_mimebundle_()
    assert bundle["image/png"] == "iVBORw0KGgo=" and calls == [fig]
    assert "application/vnd.plotly.v1+json" in bundle


def test_static_png_renders_with_kaleido_or_says_none(filled):
    """A real PNG when kaleido and a browser are here; None otherwise (never an exception)."""
    import base64

    png = plots.static_png(plots.outcomes_by_provider(filled[0]), width=500, height=300)
    try:
        import kaleido  # noqa: F401
    except ImportError:
        assert png is None
        return
    if png is None:  # kaleido without a usable browser
        assert plots._KALEIDO["state"] == "broken"
        return
    raw = base64.b64decode(png)
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and len(raw) > 2000


def test_ipython_display_carries_the_image(filled, monkeypatch):
    """IPython displays a plotly figure through ``_ipython_display_``: with ``chart_images`` the
    published bundle has the PNG too."""
    import IPython.display
    import plotly.io as pio

    from asm_nb import config

    monkeypatch.setattr(pio.renderers, "default", "plotly_mimetype")
    monkeypatch.setattr(plots, "static_png", lambda f, **k: "iVBORw0KGgo=")
    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, raw=False: shown.append((obj, raw)))
    with config.override(chart_images=True):
        plots.outcomes_by_provider(filled[0])._ipython_display_()
    (bundle, raw), = shown
    assert raw and bundle["image/png"] == "iVBORw0KGgo=" and "application/vnd.plotly.v1+json" in bundle
