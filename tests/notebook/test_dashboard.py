"""The analytics dashboard, built without a browser on a store filled by replayed and shell runs:
the widget tree, KPIs against the runs, filters, the run grid (header clicks sort, row clicks
pick, pages), the picked run's detail beside the grid, offline charts, the saved snapshot.

The grid's front end sends its clicks as custom widget messages; ``_front`` delivers one through
ipywidgets' own message handler, as the comm would."""

from __future__ import annotations

import html
from datetime import timedelta

import pytest

pytest.importorskip("ipywidgets")
pytest.importorskip("plotly")
pytest.importorskip("polars")

import asm_nb  # noqa: E402
from asm_nb.core.errors import AsmError  # noqa: E402
from asm_nb.notebook.dashboard import NO_MODEL, PLOTLY_MIME, Dashboard  # noqa: E402

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """A LocalStore with the three example cassettes replayed, one shell run moved 10 days
    back and one failing shell run."""
    store = asm_nb.open_store(tmp_path_factory.mktemp("dash") / "store")
    results = {}
    for name in ("hello", "tools", "failure"):
        results[name] = asm_nb.run_once(f"replay the {name} cassette", provider="replay",
                                        store=store, options={"cassette": asm_nb.testing.example_cassette(name)})
    results["shell"] = asm_nb.run_once("echo dashboard-shell", provider="shell", store=store)
    results["shell_fail"] = asm_nb.run_once("echo oops; exit 3", provider="shell", store=store)
    old = store.get_run(results["shell"].run_id)
    store.save_run(old.replace(started_at=old.started_at - timedelta(days=10),
                               ended_at=old.ended_at - timedelta(days=10)))
    yield store, results
    store.close()


@pytest.fixture
def dash(filled):
    store, _ = filled
    d = asm_nb.dashboard(store)
    yield d
    d.close()


def _walk(w):
    yield w
    for c in getattr(w, "children", ()):
        yield from _walk(c)


def _page_ids(d: Dashboard) -> list[str]:
    return [r["run_id"] for r in d.grid.rows]


def _front(grid, **content) -> None:
    """A message from the grid's front end (a header, row or pager click), through ipywidgets'
    comm message handler."""
    grid._handle_msg({"content": {"data": {"method": "custom", "content": content}}, "buffers": []})


def _all_output_text(d: Dashboard) -> str:
    parts = []
    for w in _walk(d.widget):
        if hasattr(w, "outputs"):
            for o in w.outputs:
                parts.extend(str(v) for v in o.get("data", {}).values())
        if hasattr(w, "value") and isinstance(w.value, str):
            parts.append(w.value)
    return "\n".join(parts)


def _expected(store, pred=lambda r: True):
    runs = [r for r in store.list_runs(None) if pred(r)]
    finished = [r for r in runs if r.status.value in ("completed", "failed", "cancelled", "timeout")]
    done = [r for r in finished if r.status.value == "completed"]
    tokens = sum((r.token_usage or {}).get("input_tokens", 0) + (r.token_usage or {}).get("output_tokens", 0)
                 for r in runs)
    cost = sum(r.cost_usd for r in runs if r.cost_usd is not None)
    return {"runs": len(runs), "rate": len(done) / len(finished) if finished else None, "tokens": tokens,
            "cost": cost, "ids": {r.id for r in runs}}


def test_builds_the_whole_widget_tree(dash, filled):
    import ipywidgets as W

    store, results = filled
    assert isinstance(dash.widget, W.VBox) and "asm-dash" in dash.widget._dom_classes
    tree = list(_walk(dash.widget))
    for part in (dash.provider, dash.model, dash.status, dash.since, dash.until, dash.refresh_button,
                 dash.run_table, dash.detail_header, dash.transcript, dash.tool_calls, dash.timeline,
                 *dash.kpis.values(), *dash.charts.values()):
        assert any(part is w for w in tree), part
    assert set(dash.charts) == {"cost_over_time", "tokens_per_run", "run_durations", "outcomes_by_provider"}
    assert set(dash.provider.options) == {"replay", "shell"}
    assert NO_MODEL in dash.model.options  # shell runs have no model
    assert {"completed", "failed"} <= set(dash.status.options)
    # the mime bundle: a widget view plus a deterministic text fallback
    bundle = dash._repr_mimebundle_()
    assert bundle[WIDGET_MIME]["model_id"] == dash.widget.model_id
    assert bundle["text/plain"] == dash.text() and "runs 5" in bundle["text/plain"]


def test_kpis_match_the_runs(dash, filled):
    store, _ = filled
    exp = _expected(store)
    k = dash.kpi_values
    assert k["runs"] == exp["runs"] == 5
    assert k["success_rate"] == pytest.approx(exp["rate"])
    assert k["tokens"] == exp["tokens"] > 0
    assert k["cost"] == pytest.approx(exp["cost"]) and k["cost"] > 0
    assert set(dash.run_ids) == exp["ids"]
    assert f"{exp['rate']:.0%}" in dash.kpis["success_rate"].value
    assert f"{exp['tokens']:,}" in dash.kpis["tokens"].value
    assert f"${exp['cost']:,.4f}" in dash.kpis["cost"].value
    # the run grid: one row per run (one page), newest first
    values = _page_ids(dash)
    assert set(values) == exp["ids"] and values == dash.run_ids
    starts = [store.get_run(v).started_at for v in values]
    assert starts == sorted(starts, reverse=True)


def test_filter_changes_update_kpis_and_run_table(dash, filled):
    store, results = filled
    dash.provider.value = ("shell",)  # as the front end would set it
    exp = _expected(store, lambda r: r.provider == "shell")
    assert dash.kpi_values["runs"] == exp["runs"] == 2
    assert set(_page_ids(dash)) == exp["ids"] and dash.grid.total == 2
    assert dash.kpi_values["success_rate"] == pytest.approx(0.5)
    assert "50%" in dash.kpis["success_rate"].value

    dash.status.value = ("failed",)
    assert _page_ids(dash) == [results["shell_fail"].run_id]
    assert dash.kpi_values["success_rate"] == 0 and "0%" in dash.kpis["success_rate"].value

    dash.clear_filters()
    dash.model.value = (NO_MODEL,)
    assert set(_page_ids(dash)) == _expected(store, lambda r: r.provider == "shell")["ids"]
    replay_model = store.get_run(results["tools"].run_id).provider_metadata["model"]
    dash.model.value = (replay_model,)
    assert set(_page_ids(dash)) == _expected(
        store, lambda r: (r.provider_metadata or {}).get("model") == replay_model)["ids"]

    # date range (inclusive 'To'): the shell run moved 10 days back is outside "today"
    dash.clear_filters()
    today = store.get_run(results["tools"].run_id).started_at.date()
    dash.since.value = today
    assert results["shell"].run_id not in dash.run_ids and dash.kpi_values["runs"] == 4
    dash.until.value = today
    assert dash.kpi_values["runs"] == 4
    dash.set_filters(until=today - timedelta(days=1))
    assert dash.run_ids == [results["shell"].run_id]
    dash.set_filters(since=today + timedelta(days=1))
    assert dash.kpi_values["runs"] == 0 and dash.grid.rows == [] and dash.grid.total == 0
    assert dash.kpi_values["success_rate"] is None and "n/a" in dash.kpis["success_rate"].value


def test_picking_a_run_shows_its_detail_beside_the_grid(dash, filled):
    """A row click picks the run: the grid marks it (``value``) and the detail beside the grid
    shows its header (status, prompt, ids), the run card (the same view as a finished ``%%asm``
    output), the tool calls and the tool timeline."""
    from asm_nb.core.events import without_audit
    from asm_nb.notebook.dashdetail import run_card_html, stored_run_fields

    store, results = filled
    tools = results["tools"]
    # the layout: grid and detail side by side in one wrapping flex row
    gridcol, detail = dash.split.children
    assert dash.grid in gridcol.children and detail is dash.detail.box
    assert "asm-dash-split" in dash.split._dom_classes and "asm-dash-detail" in detail._dom_classes
    assert "Pick a run" in dash.detail_header.value and dash.transcript.value == ""

    _front(dash.grid, event="pick", run_id=tools.run_id)  # a click on its row
    assert dash.grid.value == dash.selected_run == tools.run_id
    head = dash.detail_header.value
    assert tools.run_id in head and tools.session_id in head and ">completed<" in head
    assert html.escape(store.get_run(tools.run_id).input) in head  # the prompt
    # the run card: RunState's HTML rebuilt from the stored events, as the saved card
    card = dash.transcript.value
    assert card.startswith('<div class="asm-run">') and card == run_card_html(stored_run_fields(store, tools.run_id))
    assert "now returns an empty list for an empty file" in card and "<code>convert()</code>" in card
    events = without_audit(store.get_events(tools.session_id, run_id=tools.run_id))
    called = [e.data["tool_name"] for e in events if e.type.value == "tool_call_started"]
    assert called and card.count('<details class="asm-tool">') == len(called)
    assert "Edited src/demo/convert.py" in card and "Ran pytest -q tests/test_convert.py" in card  # plain words
    assert all(name in dash.tool_calls.value for name in called)
    assert dash.tool_calls.value.count("<tr>") == len(called) + 1  # header + one row per call
    (timeline,) = dash.timeline.outputs
    assert PLOTLY_MIME in timeline["data"] and "Plotly.newPlot" in timeline["data"]["text/html"]

    fail = results["failure"]
    dash.select_run(fail.run_id)
    assert dash.grid.value == fail.run_id
    assert fail.error.code in dash.detail_header.value and ">failed<" in dash.detail_header.value
    assert 'class="asm-banner"' in dash.detail_header.value
    assert "No tool calls" in dash.tool_calls.value and dash.timeline.outputs == ()

    # a click on a row no longer on the page (a stale view) changes nothing
    _front(dash.grid, event="pick", run_id="run_not_there")
    assert dash.grid.value == fail.run_id and dash.selected_run == fail.run_id
    # a filter that hides the picked run clears the detail panel; one that keeps it keeps it
    dash.set_filters(provider="replay")
    assert dash.selected_run == fail.run_id and dash.run_table.value == fail.run_id
    dash.set_filters(provider="shell")
    assert dash.selected_run is None and dash.grid.value is None
    assert dash.transcript.value == "" and "Pick a run" in dash.detail_header.value
    with pytest.raises(AsmError, match="not in the run table"):
        dash.select_run(fail.run_id)
    dash.clear_filters()


def test_charts_render_offline(dash):
    import re

    (loader,) = dash._loader.outputs
    bundle = loader["data"]["text/html"]
    assert bundle.count("<script") == 2 and "plotly.js v" in bundle[:300]  # the whole library, inlined
    text = _all_output_text(dash)
    # nothing is fetched: no script loaded from a URL, no require.js paths to a CDN
    external = re.findall(r"<script[^>]*\ssrc=", text)
    assert external == []
    rest = text.replace(bundle, "")
    assert ("cdn.plot.ly" in rest, "https://" in rest, "require.config" in rest) == (False, False, False)
    for name, out in dash.charts.items():
        (o,) = out.outputs
        assert o["output_type"] == "display_data"
        assert o["data"][PLOTLY_MIME]["data"], name  # a figure with traces
        html = o["data"]["text/html"]
        assert "Plotly.newPlot" in html and "plotly.js v" not in html  # plotly.js is inlined once only
    # charts follow the filters
    before = dash.charts["outcomes_by_provider"].outputs[0]["data"][PLOTLY_MIME]
    dash.set_filters(provider="shell")
    after = dash.charts["outcomes_by_provider"].outputs[0]["data"][PLOTLY_MIME]
    assert {tuple(t["x"]) for t in after["data"]} == {("shell",)}
    assert {tuple(t["x"]) for t in before["data"]} == {("replay", "shell")}


def test_refresh_reads_new_runs(filled, tmp_path):
    store = asm_nb.open_store(tmp_path / "own")
    d = asm_nb.dashboard(store, charts=())
    assert d.kpi_values["runs"] == 0 and d.kpi_values["cost"] == 0 and d.grid.rows == []
    assert d._loader.outputs == ()  # no charts, no plotly.js
    asm_nb.run_once("echo one", provider="shell", store=store)
    assert d.kpi_values["runs"] == 0  # nothing moves until Refresh
    d.refresh_button.click()
    assert d.kpi_values["runs"] == 1 and d.provider.options == ("shell",)
    store.close()


def test_empty_store_and_bad_arguments(tmp_path):
    store = asm_nb.open_store("memory://")
    d = Dashboard(store)
    assert d.kpi_values["runs"] == 0 and "n/a" in d.kpis["success_rate"].value
    assert "No data" in str(d.charts["cost_over_time"].outputs[0]["data"][PLOTLY_MIME])
    with pytest.raises(AsmError, match="provider 'claude' is not in the store"):
        d.set_filters(provider="claude")
    with pytest.raises(AsmError, match="unknown chart"):
        Dashboard(store, charts=["pie"])
    with pytest.raises(AsmError, match="never a CDN"):
        Dashboard(store, plotlyjs="cdn")


def test_output_carries_a_static_snapshot_for_saved_notebooks(dash, filled):
    """The displayed bundle: the widget (live) plus the static snapshot a reopened notebook
    shows without the kernel (the grid's data, the HTML table, the text)."""
    from asm_nb import config
    from asm_nb.notebook.dashboard import DASHBOARD_MIME

    _, results = filled
    bundle = dash._repr_mimebundle_()
    assert bundle[WIDGET_MIME]["model_id"] == dash.widget.model_id
    snap = bundle[DASHBOARD_MIME]
    assert snap["schema"] == "asm.dashboard" and snap["model_id"] == dash.widget.model_id
    assert [r["run_id"] for r in snap["rows"]] == dash.run_ids  # newest first, as the table
    assert snap["total"] == len(results) and [c["key"] for c in snap["columns"]][-1] == "run_id"
    by_id = {r["run_id"]: r for r in snap["rows"]}
    fail = by_id[results["shell_fail"].run_id]
    assert fail["status"] == "failed" and fail["provider"] == "shell" and fail["duration_s"] is not None
    assert fail["prompt"] == "echo oops; exit 3"  # the prompt, as in the live grid
    assert {k["name"]: k["value"] for k in snap["kpis"]}["runs"] == str(len(results))
    page = bundle["text/html"]
    assert page.count("<tr>") == len(results) + 1 and results["hello"].run_id in page
    assert "<script" not in page and "widget" not in page.lower()
    assert "<td class=\"asm-text\">echo oops; exit 3</td>" in page
    # filtered: the snapshot follows the filters
    dash.set_filters(status=["failed"])
    snap = dash.snapshot()
    assert snap["filters"] == {"status": ["failed"]} and {r["status"] for r in snap["rows"]} == {"failed"}
    # deterministic (committed notebooks): no widget id, no durations, so no widget MIME type
    with config.override(deterministic_display=True):
        bundle = dash._repr_mimebundle_()
    assert WIDGET_MIME not in bundle and bundle[DASHBOARD_MIME]["model_id"] is None
    assert all(r["duration_s"] is None for r in bundle[DASHBOARD_MIME]["rows"])
    # ...and the saved HTML table has no run ids or times (they would be sanitized into tags)
    assert results["hello"].run_id not in bundle["text/html"] and "Started" not in bundle["text/html"]
    assert bundle["text/html"].count("<tr>") == len(dash.run_ids) + 1  # the failed runs, as filtered
    dash.clear_filters()


def test_header_clicks_sort_the_grid(dash, filled):
    """A header click sorts by that column (ascending; *Started* newest first); a second click on
    the same header flips the direction. Empty values sort last both ways; the snapshot and the
    text view follow the grid's order."""
    newest = list(dash.run_ids)
    assert dash.grid.sort == "-started_at"
    rows = {r["run_id"]: r for r in dash.runs.iter_rows(named=True)}

    _front(dash.grid, event="sort", key="total_tokens")
    assert dash.grid.sort == "total_tokens"
    tokens = [rows[i]["total_tokens"] for i in dash.run_ids]
    assert tokens == sorted(tokens) and dash.run_ids != newest
    assert _page_ids(dash) == dash.run_ids  # the page shown follows
    assert [r["cells"]["total_tokens"] for r in dash.grid.rows] == [f"{t:,}" for t in tokens]
    _front(dash.grid, event="sort", key="total_tokens")  # again: the other way
    assert dash.grid.sort == "-total_tokens"
    assert [rows[i]["total_tokens"] for i in dash.run_ids] == sorted(tokens, reverse=True)

    dash.grid.click_header("prompt")
    prompts = [rows[i]["prompt"].lower() for i in dash.run_ids]
    assert prompts == sorted(prompts) and dash.grid.rows[0]["cells"]["prompt"] == rows[dash.run_ids[0]]["prompt"]
    dash.grid.click_header("provider_model")
    pm = [(rows[i]["provider"], rows[i]["model"] or "") for i in dash.run_ids]
    assert [p for p, _ in pm] == sorted(p for p, _ in pm)
    dash.grid.click_header("status")
    statuses = [str(rows[i]["status"]) for i in dash.run_ids]
    assert statuses == sorted(statuses)
    assert dash.snapshot()["rows"][0]["run_id"] == dash.run_ids[0]
    assert dash.text().splitlines()[3].endswith(dash.run_ids[0])

    dash.grid.click_header("started_at")  # a new column: Started starts newest first
    assert dash.grid.sort == "-started_at" and dash.run_ids == newest
    dash.grid.click_header("started_at")
    assert dash.run_ids == newest[::-1]
    _front(dash.grid, event="sort", key="no_such_column")  # ignored, the grid redrawn as it is
    assert dash.grid.sort == "started_at"
    with pytest.raises(AsmError, match="cannot sort the runs by 'nope'"):
        dash.grid.sort = "nope"


def test_sort_by_names_and_unpriced_last(dash, filled):
    """``dash.sort_by``: the named orders of the old "Sort by" control still work."""
    newest = list(dash.run_ids)
    rows = {r["run_id"]: r for r in dash.runs.iter_rows(named=True)}
    dash.sort_by.value = "tokens"
    assert dash.grid.sort == "-total_tokens" and dash.sort_by.value == "tokens"
    tokens = [rows[i]["total_tokens"] or 0 for i in dash.run_ids]
    assert tokens == sorted(tokens, reverse=True) and dash.run_ids != newest
    dash.sort_by("cost_usd", descending=True)
    assert dash.sort_by.value == "cost"
    costs = [rows[i]["cost_usd"] for i in dash.run_ids]
    priced = [c for c in costs if c is not None]
    assert priced == sorted(priced, reverse=True) and costs[:len(priced)] == priced  # unpriced last
    with pytest.raises(AsmError, match="unknown order"):
        dash.sort_by.value = "random"
    dash.sort_by.value = "newest"
    assert dash.run_ids == newest


def test_pages(filled):
    """``page_size`` runs per page; the pager turns pages; picking a run from code turns to its
    page; a sort or a filter goes back to the first page."""
    store, results = filled
    d = asm_nb.dashboard(store, charts=(), page_size=2)
    try:
        assert (d.grid.total, d.grid.pages, d.grid.page) == (5, 3, 0)
        assert _page_ids(d) == d.run_ids[:2]
        _front(d.grid, event="page", page=2)
        assert d.grid.page == 2 and _page_ids(d) == d.run_ids[4:]
        d.grid.show_page(1)
        assert _page_ids(d) == d.run_ids[2:4]
        d.grid.show_page(99)  # clamped
        assert d.grid.page == 2
        last = d.run_ids[-1]
        d.grid.show_page(0)
        d.select_run(last)
        assert d.grid.page == 2 and d.grid.value == last and last in _page_ids(d)
        with pytest.raises(AsmError, match="not on the grid's page"):
            d.grid.click_row(d.run_ids[0])
        d.grid.click_header("cost_usd")
        assert d.grid.page == 0 and d.grid.value == last  # still picked, on another page
        d.set_filters(provider="shell")
        assert (d.grid.total, d.grid.pages, d.grid.page) == (2, 1, 0)
        with pytest.raises(AsmError, match="page_size"):
            asm_nb.dashboard(store, charts=(), page_size=0)
    finally:
        d.close()


def test_5000_runs_stay_one_page(filled):
    """5,000 runs: the grid syncs one page of rows, and sorting, paging and re-filtering take
    milliseconds (a polars sort and 25 row dicts), not seconds."""
    import json
    import time
    from datetime import datetime, timezone

    import polars as pl

    from asm_nb.notebook.dashgrid import RunGrid

    n = 5000
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    df = pl.DataFrame({
        "run_id": [f"run_{i:05d}" for i in range(n)], "session_id": ["ses_1"] * n,
        "status": ["completed" if i % 7 else "failed" for i in range(n)],
        "provider": ["claude" if i % 2 else "codex" for i in range(n)],
        "model": [None if i % 5 == 0 else f"model-{i % 3}" for i in range(n)],
        "started_at": [t0 + timedelta(minutes=i) for i in range(n)],
        "duration_s": [None if i % 11 == 0 else (i % 97) / 3 for i in range(n)],
        "total_tokens": [(i * 37) % 5003 for i in range(n)],
        "cost_usd": [None if i % 13 == 0 else ((i * 37) % 5003) / 1e5 for i in range(n)],
        "prompt": [f"task {(i * 7919) % n}: fix the build" for i in range(n)],
        "error_code": [None] * n, "error_message": [None] * n,
    })
    grid = RunGrid()
    try:
        start = time.perf_counter()
        grid.set_frame(df)
        for key in ("cost_usd", "cost_usd", "prompt", "duration_s", "provider_model", "started_at"):
            grid.click_header(key)
        grid.show_page(150)
        grid.set_frame(df.filter(pl.col("status") == "failed"))
        elapsed = time.perf_counter() - start
        assert elapsed < 1.0, f"{elapsed:.2f}s for 5,000 runs"
        grid.set_frame(df)
        assert (grid.total, grid.pages, len(grid.rows)) == (n, 200, 25)
        assert grid.rows[0]["run_id"] == "run_04999"  # newest first
        assert grid.rows[0]["started"] == "2026-01-04T11:19:00Z"  # the view re-words the age from it
        assert len(json.dumps(grid.get_state()["rows"])) < 20_000  # one page goes to the browser
        grid.click_header("cost_usd")
        grid.click_header("cost_usd")
        costs = grid.frame["cost_usd"].to_list()
        assert costs[-1] is None and costs[0] == max(c for c in costs if c is not None)
    finally:
        grid.close()


def test_grid_front_end_is_inlined():
    """The grid's JavaScript and CSS are part of the widget's state (nothing fetched), the
    sort and pick are sent as messages the Python side handles, and the header has a sort
    arrow, focusable buttons and aria-sort."""
    from asm_nb.notebook.dashgrid import LIVE_COLUMNS, RunGrid

    grid = RunGrid()
    try:
        state = grid.get_state()
        esm, css = state["_esm"], state["_css"]
        assert "export default" in esm and "import " not in esm and "http" not in esm
        for part in ('event: "sort"', 'event: "pick"', 'event: "page"', "aria-sort", "ArrowDown", "PageDown",
                     '"▼"', '"▲"', "asm-picked", "tabIndex"):
            assert part in esm, part
        assert "var(--jp-brand-color1" in css and "@import" not in css and "url(" not in css
        assert [c["key"] for c in state["columns"]] == [c["key"] for c in LIVE_COLUMNS] == [
            "status", "prompt", "provider_model", "started_at", "duration_s", "total_tokens", "cost_usd"]
    finally:
        grid.close()


def test_relative_times():
    from datetime import datetime, timezone

    from asm_nb.notebook.dashgrid import relative_time

    now = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)
    assert [relative_time(now - timedelta(seconds=s), now) for s in (5, 300, 7200, 3 * 86400, 30 * 86400)] == [
        "just now", "5 min ago", "2 h ago", "3 d ago", "2026-02-08"]
    assert relative_time(None, now) == "-"


def test_a_refresh_reads_the_run_list_once(filled):
    """frames.runs, frames.costs and the prompts share one read of the store's runs (a LocalStore
    parses every run record per ``list_runs``)."""
    store, _ = filled

    class Counting:
        def __init__(self, inner):
            self.inner, self.calls = inner, 0

        def list_runs(self, *args, **kwargs):
            self.calls += 1
            return self.inner.list_runs(*args, **kwargs)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    counting = Counting(store)
    d = asm_nb.dashboard(counting, charts=())
    try:
        assert counting.calls == 1 and d.kpi_values["runs"] == 5
        d.refresh()
        assert counting.calls == 2
        assert {r["cells"]["prompt"] for r in d.grid.rows} >= {"echo dashboard-shell", "echo oops; exit 3"}
    finally:
        d.close()
