"""Issue 18 item 13: one bad record (a run row with an invalid status or date) does not break
every listing: it is skipped with a warning naming the file (or table) and the row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asm_nb import run_once
from asm_nb.stores import open_store
from asm_nb.stores._tolerant import BadRecordWarning

BAD_STATUS = "run_" + "b" * 32
BAD_DATE = "run_" + "c" * 32
BAD_SESSION = "ses_" + "d" * 32


def _corrupt_local(store_dir: Path) -> None:
    runs = store_dir / "db" / "runs.jsonl"
    good = json.loads(runs.read_text().splitlines()[-1])
    bad1 = {**good, "id": BAD_STATUS, "status": "bogus"}
    bad2 = {**good, "id": BAD_DATE, "started_at": "not a date"}
    with runs.open("a") as f:
        f.write(json.dumps(bad1) + "\n" + json.dumps(bad2) + "\n")
    sessions = store_dir / "db" / "sessions.jsonl"
    s = json.loads(sessions.read_text().splitlines()[-1])
    with sessions.open("a") as f:
        f.write(json.dumps({**s, "id": BAD_SESSION, "status": "weird"}) + "\n")


def test_local_store_listings_skip_a_bad_row_with_a_warning(tmp_path):
    d = tmp_path / "store"
    good = [run_once("echo 1", provider="shell", store=str(d)).run_id,
            run_once("echo 2", provider="shell", store=str(d)).run_id]
    _corrupt_local(d)
    store = open_store(str(tmp_path / "store"))  # a fresh reader
    with pytest.warns(BadRecordWarning) as caught:
        runs = store.list_runs(None)
        sessions = store.list_sessions()
    assert sorted(r.id for r in runs) == sorted(good)
    assert BAD_SESSION not in [s.id for s in sessions] and len(sessions) == 2
    text = " ".join(str(w.message) for w in caught)
    assert BAD_STATUS in text and BAD_DATE in text and BAD_SESSION in text
    assert "runs.jsonl" in text and "sessions.jsonl" in text


def test_asm_runs_lists_the_good_rows_and_warns_in_one_line(tmp_path):
    d = tmp_path / "store"
    good = run_once("echo 1", provider="shell", store=str(d)).run_id
    _corrupt_local(d)
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "asm_nb.cli", "runs", "--store", str(d)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert good in out.stdout and BAD_STATUS not in out.stdout
    warn_lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(warn_lines) == 2, out.stderr
    assert any(BAD_STATUS in ln and "runs.jsonl" in ln and ln.startswith("asm: warning:") for ln in warn_lines)
    assert "Traceback" not in out.stderr


def test_sql_store_listing_skips_a_bad_row(tmp_path):
    pytest.importorskip("sqlalchemy")
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'runs.db'}"
    good = run_once("echo 1", provider="shell", store=url).run_id
    engine = sa.create_engine(url)
    with engine.begin() as c:
        row = dict(c.execute(sa.text("SELECT * FROM asm_runs")).mappings().first())
        row.update(id=BAD_STATUS, status="bogus")
        cols = ", ".join(row)
        c.execute(sa.text(f"INSERT INTO asm_runs ({cols}) VALUES ({', '.join(':' + k for k in row)})"), row)
    engine.dispose()
    store = open_store(url)
    try:
        with pytest.warns(BadRecordWarning, match=BAD_STATUS):
            runs = store.list_runs(None)
        assert [r.id for r in runs] == [good]
    finally:
        store.close()
