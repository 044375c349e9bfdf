"""The cost table (``%asm cost``) summed against the runs, ``%asm dashboard``, and the analytics
helpers behind ``asm_nb.query`` / ``asm_nb.maintenance``."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

import pytest

pytest.importorskip("polars")
pytest.importorskip("IPython")

import asm_nb  # noqa: E402
from asm_nb.core.errors import AsmError  # noqa: E402
from asm_nb.analytics import cost, gc, query  # noqa: E402
from asm_nb.rendering.tables import format_cost_table  # noqa: E402


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    path = tmp_path_factory.mktemp("cost") / "store"
    store = asm_nb.open_store(path)
    for name in ("hello", "tools", "failure", "tools"):
        asm_nb.run_once(f"replay {name}", provider="replay", store=store,
                        options={"cassette": asm_nb.testing.example_cassette(name)})
    asm_nb.run_once("echo cost", provider="shell", store=store)
    yield store, path
    store.close()


def _by_group(store):
    groups = defaultdict(lambda: {"runs": 0, "cost": 0.0, "input": 0, "output": 0})
    for r in store.list_runs(None):
        g = groups[(r.provider, (r.provider_metadata or {}).get("model"))]
        g["runs"] += 1
        g["cost"] += r.cost_usd or 0.0
        g["input"] += (r.token_usage or {}).get("input_tokens", 0)
        g["output"] += (r.token_usage or {}).get("output_tokens", 0)
    return dict(groups)


def test_cost_table_sums_match_the_runs(filled):
    store, _ = filled
    expected = _by_group(store)
    df = cost.cost_table(store, backend="polars")
    assert df.columns[:3] == ["provider", "model", "runs"]
    got = {(r["provider"], r["model"]): r for r in df.iter_rows(named=True)}
    assert set(got) == set(expected) and len(expected) >= 3
    for key, exp in expected.items():
        row = got[key]
        assert row["runs"] == exp["runs"]
        assert row["cost_usd"] == pytest.approx(exp["cost"])
        assert (row["input_tokens"], row["output_tokens"]) == (exp["input"], exp["output"])
        assert row["total_tokens"] == exp["input"] + exp["output"]
    costs = df["cost_usd"].to_list()
    assert costs == sorted(costs, reverse=True)  # most expensive first
    rows, total = cost.cost_rows(store)
    assert total["runs"] == len(store.list_runs(None)) == 5
    assert total["cost_usd"] == pytest.approx(sum(r.cost_usd or 0 for r in store.list_runs(None)))
    assert total["cost_usd"] > 0
    pdf = cost.cost_table(store)  # pandas by default
    assert len(pdf) == len(expected) and pdf["cost_usd"].sum() == pytest.approx(total["cost_usd"])


def test_cost_table_groups_and_filters(filled):
    store, _ = filled
    rows, total = cost.cost_rows(store, by="provider")
    assert {r["provider"] for r in rows} == {"replay", "shell"}
    replay = next(r for r in rows if r["provider"] == "replay")
    assert replay["runs"] == 4
    rows, _ = cost.cost_rows(store, by="day")
    assert len(rows) == 1 and rows[0]["day"] == store.list_runs(None)[0].started_at.date().isoformat()
    assert rows[0]["cost_usd"] == pytest.approx(total["cost_usd"])
    rows, t = cost.cost_rows(store, provider="shell")
    assert t["runs"] == 1 and t["cost_usd"] == 0.0
    rows, t = cost.cost_rows(store, since=store.list_runs(None)[0].started_at + timedelta(days=1))
    assert rows == [] and t["runs"] == 0 and t["cost_usd"] is None
    assert format_cost_table(rows, t) == "(no runs)"
    with pytest.raises(AsmError, match="by contains unsupported value: 'colour'"):
        cost.cost_table(store, by="provider,colour")


def test_format_cost_table_has_a_total_line(filled):
    store, _ = filled
    rows, total = cost.cost_rows(store)
    text = format_cost_table(rows, total)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["provider", "model", "runs"]
    assert lines[-1].startswith("TOTAL") and f"${total['cost_usd']:,.4f}" in lines[-1]
    assert len(lines) == len(rows) + 4  # header, rule, rows, rule, total


@pytest.fixture
def ip(filled):
    from IPython import get_ipython
    from IPython.testing.globalipapp import start_ipython

    from asm_nb.notebook import magics

    shell = start_ipython() or get_ipython()  # the test shell is a process-wide singleton
    shell.run_line_magic("load_ext", "asm_nb")
    shell.run_line_magic("asm", f"store {filled[1]}")
    yield shell
    magics._KERNEL_DEFAULTS.clear()


def test_percent_asm_cost_prints_the_table(ip, filled, capsys):
    store, _ = filled
    capsys.readouterr()
    ip.run_line_magic("asm", "cost")
    out = capsys.readouterr().out
    _, total = cost.cost_rows(store)
    assert "replay" in out and "shell" in out
    assert out.strip().splitlines()[-1].startswith("TOTAL") and f"${total['cost_usd']:,.4f}" in out
    ip.run_line_magic("asm", "cost --by provider --provider shell")
    out = capsys.readouterr().out
    assert "shell" in out and "replay" not in out
    ip.run_line_magic("asm", "cost --by nope")
    err = capsys.readouterr().err
    assert "by contains unsupported value" in err and err.strip().count("\n") == 0
    ip.run_line_magic("asm", "cost --frobnicate")
    err = capsys.readouterr().err
    assert "UsageError" in err and "unrecognized arguments" in err


def test_percent_asm_dashboard_returns_the_dashboard(ip, filled):
    from asm_nb.notebook.dashboard import Dashboard

    d = ip.run_line_magic("asm", "dashboard")
    assert isinstance(d, Dashboard) and d.kpi_values["runs"] == 5
    d.close()


def test_percent_asm_search_returns_the_hits(ip, filled, capsys):
    df = ip.run_line_magic("asm", 'search "echo cost" --kind prompt')
    assert list(df["kind"].astype(str)) == ["prompt"] and "**echo** **cost**" in df["snippet"].iloc[0]
    assert len(ip.run_line_magic("asm", "search cost --limit 1")) == 1
    capsys.readouterr()
    ip.run_line_magic("asm", "search 'cost AND'")
    err = capsys.readouterr().err
    assert "not valid full-text syntax" in err and err.strip().count("\n") == 0
    ip.run_line_magic("asm", "search x --kind nope")
    assert "invalid choice" in capsys.readouterr().err


def test_query_and_maintenance_helpers(filled):
    store, _ = filled
    q = asm_nb.query(store)
    page = q.search_runs(limit=100)
    assert {r.id for r in page["runs"]} == {r.id for r in store.list_runs(None)}
    assert q.get_usage_summary()["run_count"] == 5
    m = asm_nb.maintenance(store)
    assert m.health_check() == []

    class WithOwn:  # a store carrying its own implementations is used as is
        def __init__(self) -> None:
            self.query = type("Q", (), {"search_sessions": lambda self, **kw: {}})()
            self.maintenance = type("M", (), {"health_check": lambda self: ["own"]})()

    own = WithOwn()
    assert query.query(own) is own.query and query.maintenance(own) is own.maintenance


def test_gc_dry_run_changes_nothing(tmp_path):
    from asm_nb.core.serialization import utc_now

    store = asm_nb.open_store(tmp_path / "gc")
    ok = asm_nb.run_once("echo a", provider="shell", store=store)
    bad = asm_nb.run_once("exit 2", provider="shell", store=store)
    for res in (ok, bad):
        s = store.get_session(res.session_id)
        store.save_session(s.replace(updated_at=utc_now() - timedelta(days=50)))
    report = gc.gc(store, max_age_days=30, dry_run=True)
    assert report["dry_run"] is True and report["sessions_soft_deleted"] == 2
    assert set(report["soft_delete_session_ids"]) == {ok.session_id, bad.session_id}
    assert all(s.deleted_at is None for s in store.list_sessions())
    report = gc.gc(store, max_age_days=30, keep_failed=True)
    assert report["sessions_soft_deleted"] == 1 and report["errors"] == []
    assert store.get_session(ok.session_id).deleted_at is not None
    assert store.get_session(bad.session_id).deleted_at is None  # failed sessions are kept
    with pytest.raises(AsmError, match="max_age_days must be a positive integer"):
        gc.gc(store, max_age_days=-1)
    store.close()
