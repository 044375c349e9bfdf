"""``asm cost``, ``asm export`` and ``asm gc`` run as real subprocesses on a temporary store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest

pytest.importorskip("polars")
pytest.importorskip("pyarrow")

import asm_nb  # noqa: E402


def asm(*args, store):
    env = {k: v for k, v in os.environ.items() if k != "ASM_HOME"}
    return subprocess.run([sys.executable, "-m", "asm_nb.cli", *args, "--store", str(store)], capture_output=True,
                          text=True, env=env, timeout=120)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "store"
    store = asm_nb.open_store(path)
    for name in ("hello", "tools", "failure"):
        asm_nb.run_once(f"replay {name}", provider="replay", store=store,
                        options={"cassette": asm_nb.testing.example_cassette(name)})
    asm_nb.run_once("echo cli", provider="shell", store=store)
    store.close()
    return path


def _runs(path):
    store = asm_nb.open_store(path)
    try:
        return store.list_runs(None)
    finally:
        store.close()


def test_cost_json_and_table(store_path):
    runs = _runs(store_path)
    p = asm("cost", "--json", store=store_path)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["total"]["runs"] == len(runs) == 4
    assert out["total"]["cost_usd"] == pytest.approx(sum(r.cost_usd or 0 for r in runs)) and out["total"]["cost_usd"] > 0
    for row in out["rows"]:
        mine = [r for r in runs if r.provider == row["provider"]
                and (r.provider_metadata or {}).get("model") == row["model"]]
        assert row["runs"] == len(mine)
        assert row["cost_usd"] == pytest.approx(sum(r.cost_usd or 0 for r in mine))
    p = asm("cost", "--by", "provider", store=store_path)
    assert p.returncode == 0, p.stderr
    last = p.stdout.strip().splitlines()[-1]
    assert last.startswith("TOTAL") and f"${out['total']['cost_usd']:,.4f}" in last
    p = asm("cost", "--by", "colour", store=store_path)
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0 and "colour" in p.stderr


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_export_round_trip(store_path, tmp_path, fmt):
    import polars as pl

    from asm_nb.analytics import frames

    out = tmp_path / "export"
    p = asm("export", "--format", fmt, str(out), "--json", store=store_path)
    assert p.returncode == 0, p.stderr
    written = json.loads(p.stdout)
    assert set(written) == {"sessions", "runs", "events", "tool_calls"}
    store = asm_nb.open_store(store_path)
    try:
        expected = {"sessions": frames.sessions(store, backend="polars"), "runs": frames.runs(store, backend="polars"),
                    "events": frames.events(store, backend="polars"),
                    "tool_calls": frames.tool_calls(store, include_output=True, backend="polars")}
    finally:
        store.close()
    read = {"parquet": pl.read_parquet, "csv": pl.read_csv, "jsonl": pl.read_ndjson}[fmt]
    for table, exp in expected.items():
        path = out / f"{table}.{fmt}"
        assert written[table] == {"path": str(path), "rows": exp.height}
        back = read(path)
        assert back.height == exp.height > 0, table
        assert back.columns == exp.columns
    back_runs = read(out / f"runs.{fmt}")
    assert sorted(back_runs["run_id"].to_list()) == sorted(expected["runs"]["run_id"].to_list())
    assert back_runs["cost_usd"].sum() == pytest.approx(expected["runs"]["cost_usd"].sum())
    # an existing file is refused (one line, exit 2) unless --overwrite
    again = asm("export", "--format", fmt, str(out), store=store_path)
    assert again.returncode == 2 and again.stderr.strip().count("\n") == 0 and "already exists" in again.stderr
    assert asm("export", "--format", fmt, str(out), "--overwrite", "--tables", "runs", store=store_path).returncode == 0


def test_export_bad_format_exits_2(store_path, tmp_path):
    p = asm("export", "--format", "xml", str(tmp_path / "x"), store=store_path)
    assert p.returncode == 2 and "invalid choice" in p.stderr
    p = asm("export", "--tables", "runs,nope", str(tmp_path / "x"), store=store_path)
    assert p.returncode == 2 and "unknown table 'nope'" in p.stderr and not (tmp_path / "x").exists()


def test_gc_dry_run_then_keep_failed(tmp_path):
    from asm_nb.core.serialization import utc_now

    path = tmp_path / "gcstore"
    store = asm_nb.open_store(path)
    ok = asm_nb.run_once("echo old", provider="shell", store=store)
    bad = asm_nb.run_once("exit 5", provider="shell", store=store)
    gone = asm_nb.run_once("echo long gone", provider="shell", store=store)
    fresh = asm_nb.run_once("echo fresh", provider="shell", store=store)
    now = utc_now()
    for res in (ok, bad):
        store.save_session(store.get_session(res.session_id).replace(updated_at=now - timedelta(days=100)))
    store.save_session(store.get_session(gone.session_id).replace(updated_at=now - timedelta(days=200),
                                                                  deleted_at=now - timedelta(days=40)))
    store.close()

    p = asm("gc", "--max-age-days", "30", "--dry-run", "--json", store=path)
    assert p.returncode == 0, p.stderr
    plan = json.loads(p.stdout)
    assert plan["dry_run"] is True
    assert (plan["sessions_soft_deleted"], plan["sessions_hard_deleted"]) == (2, 1)
    assert set(plan["soft_delete_session_ids"]) == {ok.session_id, bad.session_id}
    assert plan["hard_delete_session_ids"] == [gone.session_id]
    text = asm("gc", "--max-age-days", "30", "--dry-run", store=path)
    assert text.returncode == 0 and "dry run" in text.stdout and f"would hard delete {gone.session_id}" in text.stdout
    store = asm_nb.open_store(path)
    assert len(store.list_sessions()) == 4 and sum(s.deleted_at is not None for s in store.list_sessions()) == 1
    store.close()

    p = asm("gc", "--max-age-days", "30", "--keep-failed", store=path)
    assert p.returncode == 0, p.stderr
    assert "sessions_soft_deleted        1" in p.stdout and "sessions_hard_deleted        1" in p.stdout
    store = asm_nb.open_store(path)
    try:
        ids = {s.id: s for s in store.list_sessions()}
        assert gone.session_id not in ids and store.get_events(gone.session_id) == []
        assert ids[ok.session_id].deleted_at is not None
        assert ids[bad.session_id].deleted_at is None and ids[fresh.session_id].deleted_at is None
    finally:
        store.close()

    p = asm("gc", "--max-age-days", "0", store=path)
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0 and "max_age_days" in p.stderr
