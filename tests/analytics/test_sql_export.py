"""``asm export --format sqlite``: one SQLite file with the documented tables and views, opened with
plain ``sqlite3``; the views' totals equal the frames'; LocalStore and SqlStore alike."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

pytest.importorskip("polars")

import asm_nb  # noqa: E402
from asm_nb.analytics.sql_export import SQLITE_TABLES, SQLITE_VIEWS  # noqa: E402
from asm_nb.analytics.export import export  # noqa: E402
from asm_nb.core.errors import AsmError  # noqa: E402


def _fill(store):
    for name in ("hello", "tools", "failure"):
        asm_nb.run_once(f"replay {name}", provider="replay", store=store,
                        options={"cassette": asm_nb.testing.example_cassette(name)})
    asm_nb.run_once("echo sqlexport", provider="shell", store=store)


@pytest.fixture(params=["local", "sqlite"])
def filled_store(request, tmp_path):
    target = str(tmp_path / "store") if request.param == "local" else f"sqlite:///{tmp_path / 'store.db'}"
    store = asm_nb.open_store(target)
    _fill(store)
    yield store
    store.close()


def _rows(conn, sql):
    conn.row_factory = sqlite3.Row
    return [dict(r) for r in conn.execute(sql)]


def test_sqlite_export_opens_and_views_match_frames(filled_store, tmp_path):
    import polars as pl

    st = filled_store
    out = tmp_path / "out" / "asm.db"
    written = export(st, out, format="sqlite")
    assert set(written) == set(SQLITE_TABLES)
    conn = sqlite3.connect(out)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        names = {r[0]: r[1] for r in conn.execute("SELECT name, type FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' "
                                                  "AND type IN ('table', 'view')")}
        assert {n for n, t in names.items() if t == "table"} == set(SQLITE_TABLES) | {"asm_export_meta"}
        assert {n for n, t in names.items() if t == "view"} == set(SQLITE_VIEWS)
        for view in SQLITE_VIEWS:
            conn.execute(f"SELECT * FROM {view}").fetchall()  # every view runs

        runs = asm_nb.frames.runs(st, backend="polars")
        costs = asm_nb.frames.costs(st, backend="polars")
        tools = asm_nb.frames.tool_calls(st, include_output=True, backend="polars")
        for table, df in (("runs", runs), ("costs", costs), ("tool_calls", tools),
                          ("events", asm_nb.frames.events(st, backend="polars")),
                          ("sessions", asm_nb.frames.sessions(st, backend="polars"))):
            assert written[table]["rows"] == df.height > 0
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == df.height
            assert [r[1] for r in conn.execute(f"PRAGMA table_info({table})")] == df.columns

        # runs_v: one row per run, tool call counts per run
        rv = _rows(conn, "SELECT run_id, tool_calls, cost_usd FROM runs_v")
        assert sorted(r["run_id"] for r in rv) == sorted(runs["run_id"].to_list())
        per_run = dict(tools.group_by("run_id").len().iter_rows())
        assert {r["run_id"]: r["tool_calls"] for r in rv} == {rid: per_run.get(rid, 0) for rid in runs["run_id"]}

        # costs_by_day / costs_by_model equal frames.costs(by=...)
        by_day = asm_nb.frames.costs(st, by="day", backend="polars")
        got = _rows(conn, "SELECT * FROM costs_by_day")
        assert [g["day"] for g in got] == [d.strftime("%Y-%m-%d") for d in by_day["day"].to_list()]
        for g, e in zip(got, by_day.iter_rows(named=True)):
            assert g["run_count"] == e["run_count"]
            for k in ("input_tokens", "output_tokens", "cache_read_tokens", "total_tokens", "unpriced_runs"):
                assert g[k] == e[k], k
            assert g["cost_usd"] == pytest.approx(e["cost_usd"])
        by_model = asm_nb.frames.costs(st, by="model", backend="polars")
        got_m = conn.execute("SELECT sum(run_count), sum(output_tokens), sum(cost_usd) FROM costs_by_model").fetchone()
        assert got_m[0] == by_model["run_count"].sum() == runs.height
        assert got_m[1] == by_model["output_tokens"].sum() > 0
        assert got_m[2] == pytest.approx(costs["cost_usd"].sum())

        # tool calls by name equal the frame's counts
        tn = dict(conn.execute("SELECT tool_name, calls FROM tool_calls_by_name").fetchall())
        exp = {k: v for k, v in tools.with_columns(pl.col("tool_name").cast(pl.String))
               .group_by("tool_name").len().iter_rows()}
        assert tn == exp and sum(tn.values()) == tools.height > 0

        # types a SQL tool can use: dates work with SQLite's date functions, lists are JSON
        first = conn.execute("SELECT started_at, date(started_at), julianday(ended_at) - julianday(started_at) "
                             "FROM runs ORDER BY started_at LIMIT 1").fetchone()
        assert first[0].endswith("Z") and first[1] == first[0][:10] and first[2] >= 0
        tags = conn.execute("SELECT tags FROM sessions LIMIT 1").fetchone()[0]
        assert tags is None or isinstance(json.loads(tags), list)
        msgs = _rows(conn, "SELECT role, content FROM messages WHERE content LIKE '%sqlexport%'")
        assert {m["role"] for m in msgs} >= {"user"}
        meta = dict(conn.execute("SELECT key, value FROM asm_export_meta").fetchall())
        assert meta["format"] == "asm-sqlite-export" and meta["schema_version"] == "1"
    finally:
        conn.close()


def test_sqlite_export_refuses_and_overwrites(tmp_path):
    st = asm_nb.open_store("memory://")
    asm_nb.run_once("echo one", provider="shell", store=st)
    out = tmp_path / "a.db"
    export(st, out, format="sqlite")
    with pytest.raises(AsmError, match="already exists"):
        export(st, out, format="sqlite")
    asm_nb.run_once("echo two", provider="shell", store=st)
    assert export(st, out, format="sqlite", overwrite=True)["runs"]["rows"] == 2
    with pytest.raises(AsmError, match="every table"):
        export(st, tmp_path / "b.db", format="sqlite", tables=["runs"])
    with pytest.raises(AsmError, match="directory"):
        export(st, tmp_path, format="sqlite", overwrite=True)
    with pytest.raises(AsmError) as ei:
        export(st, tmp_path / "c", format="xml")
    assert ei.value.code == "validation_error" and "sqlite" in str(ei.value)
    assert not list(tmp_path.glob("*.tmp"))


def test_sqlite_export_filters(tmp_path):
    st = asm_nb.open_store("memory://")
    r1 = asm_nb.run_once("echo one", provider="shell", store=st)
    asm_nb.run_once("echo two", provider="shell", store=st)
    out = tmp_path / "one.db"
    export(st, out, format="sqlite", session_id=r1.session_id)
    conn = sqlite3.connect(out)
    assert conn.execute("SELECT DISTINCT session_id FROM runs").fetchall() == [(r1.session_id,)]
    assert conn.execute("SELECT DISTINCT session_id FROM events").fetchall() == [(r1.session_id,)]
    conn.close()


def test_cli_export_sqlite(tmp_path):
    store = tmp_path / "store"
    with asm_nb.open_store(store) as st:
        _fill(st)
    env = {k: v for k, v in os.environ.items() if k != "ASM_HOME"}

    def asm(*args):
        return subprocess.run([sys.executable, "-m", "asm_nb.cli", *args, "--store", str(store)], capture_output=True,
                              text=True, env=env, timeout=120)

    out = tmp_path / "x.db"
    p = asm("export", "--format", "sqlite", str(out), "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["runs"] == {"path": str(out), "rows": 4}
    assert sqlite3.connect(out).execute("SELECT count(*) FROM runs_v").fetchone() == (4,)
    again = asm("export", "--format", "sqlite", str(out))
    assert again.returncode == 2 and again.stderr.count("\n") == 1 and "already exists" in again.stderr
    bad = asm("export", "--format", "sqlite", str(tmp_path / "y.db"), "--tables", "runs")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "every table" in bad.stderr
    bad = asm("export", "--format", "xlsx", str(tmp_path / "y.db"))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "invalid choice" in bad.stderr
