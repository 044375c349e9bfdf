"""The analytics dashboard, built without a browser on a store filled by replayed and shell runs:
the widget tree, KPIs against the runs, filters, the run table, picking a run, offline charts."""

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
    # the run table: one option per run, newest first, value = run id
    values = [v for _, v in dash.run_table.options]
    assert set(values) == exp["ids"]
    starts = [store.get_run(v).started_at for v in values]
    assert starts == sorted(starts, reverse=True)


def test_filter_changes_update_kpis_and_run_table(dash, filled):
    store, results = filled
    dash.provider.value = ("shell",)  # as the front end would set it
    exp = _expected(store, lambda r: r.provider == "shell")
    assert dash.kpi_values["runs"] == exp["runs"] == 2
    assert {v for _, v in dash.run_table.options} == exp["ids"]
    assert dash.kpi_values["success_rate"] == pytest.approx(0.5)
    assert "50%" in dash.kpis["success_rate"].value

    dash.status.value = ("failed",)
    assert [v for _, v in dash.run_table.options] == [results["shell_fail"].run_id]
    assert dash.kpi_values["success_rate"] == 0 and "0%" in dash.kpis["success_rate"].value

    dash.clear_filters()
    dash.model.value = (NO_MODEL,)
    assert {v for _, v in dash.run_table.options} == _expected(store, lambda r: r.provider == "shell")["ids"]
    replay_model = store.get_run(results["tools"].run_id).provider_metadata["model"]
    dash.model.value = (replay_model,)
    assert {v for _, v in dash.run_table.options} == _expected(
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
    assert dash.kpi_values["runs"] == 0 and dash.run_table.options == ()
    assert dash.kpi_values["success_rate"] is None and "n/a" in dash.kpis["success_rate"].value


def test_picking_a_run_shows_transcript_and_tool_calls(dash, filled):
    store, results = filled
    tools = results["tools"]
    dash.run_table.value = tools.run_id  # a click in the front end
    assert dash.selected_run == tools.run_id
    assert tools.run_id in dash.detail_header.value and "completed" in dash.detail_header.value
    events = store.get_events(tools.session_id, run_id=tools.run_id)
    (sent,) = [e.data["content"] for e in events if e.type.value == "message_sent"]
    assert html.escape(sent) in dash.transcript.value
    final = tools.output.strip()
    assert final and html.escape(final) in dash.transcript.value
    assert dash.transcript.value.index(html.escape(sent)) < dash.transcript.value.index(html.escape(final))
    called = [e.data["tool_name"] for e in events if e.type.value == "tool_call_started"]
    assert called and all(name in dash.tool_calls.value for name in called)
    assert dash.tool_calls.value.count("<tr>") == len(called) + 1  # header + one row per call
    (timeline,) = dash.timeline.outputs
    assert PLOTLY_MIME in timeline["data"] and "Plotly.newPlot" in timeline["data"]["text/html"]

    fail = results["failure"]
    dash.select_run(fail.run_id)
    assert fail.error.code in dash.detail_header.value and "failed" in dash.detail_header.value
    assert "No tool calls" in dash.tool_calls.value and dash.timeline.outputs == ()

    # a filter that hides the picked run clears the detail panel; one that keeps it keeps it
    dash.set_filters(provider="replay")
    assert dash.selected_run == fail.run_id and dash.run_table.value == fail.run_id
    dash.set_filters(provider="shell")
    assert dash.selected_run is None and dash.transcript.value == "" and "Pick a run" in dash.detail_header.value
    with pytest.raises(AsmError, match="not in the run table"):
        dash.select_run(fail.run_id)


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
    assert d.kpi_values["runs"] == 0 and d.kpi_values["cost"] == 0 and d.run_table.options == ()
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
    assert {k["name"]: k["value"] for k in snap["kpis"]}["runs"] == str(len(results))
    page = bundle["text/html"]
    assert page.count("<tr>") == len(results) + 1 and results["hello"].run_id in page
    assert "<script" not in page and "widget" not in page.lower()
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


def test_run_table_sorts_by_any_column(dash, filled):
    """The live run table's "Sort by": cost / tokens highest first, status A-Z, back to newest."""
    newest = list(dash.run_ids)
    rows = {r["run_id"]: r for r in dash.runs.iter_rows(named=True)}
    dash.sort_by.value = "tokens"
    tokens = [rows[i]["total_tokens"] or 0 for i in dash.run_ids]
    assert tokens == sorted(tokens, reverse=True) and dash.run_ids != newest
    assert [v for _, v in dash.run_table.options] == dash.run_ids  # the table follows
    dash.sort_by.value = "cost"
    costs = [rows[i]["cost_usd"] for i in dash.run_ids]
    priced = [c for c in costs if c is not None]
    assert priced == sorted(priced, reverse=True) and costs[:len(priced)] == priced  # unpriced last
    dash.sort_by.value = "status"
    statuses = [str(rows[i]["status"]) for i in dash.run_ids]
    assert statuses == sorted(statuses)
    assert dash.snapshot()["rows"][0]["run_id"] == dash.run_ids[0]
    dash.sort_by.value = "newest"
    assert dash.run_ids == newest
