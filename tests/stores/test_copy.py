"""``copy_store`` / ``asm copy``: LocalStore (filled by replayed runs) → PostgreSQL → a fresh
LocalStore gives equal frames; copying again changes nothing; SQLite works the same way."""

from __future__ import annotations

from pathlib import Path

import pytest

import asm_nb
from asm_nb.stores.copy import copy_store
from asm_nb.stores.local import LocalStore
from asm_nb.stores.sql import SqlStore
from asm_nb.testing import example_cassette


def _fill(root: Path, n_runs: int = 4) -> None:
    store = LocalStore(root)
    try:
        for i in range(n_runs):
            r = asm_nb.run_once(f"hello {i}", provider="replay", store=store,
                                session="shared" if i % 2 else None, continuation=False,
                                options={"cassette": example_cassette("hello")})
            assert r.status == "completed"
    finally:
        store.close()


def _frames(store):
    pl = pytest.importorskip("polars")
    runs = asm_nb.frames.runs(store, backend="polars").sort("run_id")
    events = asm_nb.frames.events(store, backend="polars").sort(["session_id", "sequence_number"])
    assert isinstance(runs, pl.DataFrame) and runs.height > 0 and events.height > 0
    return runs, events


def _assert_same(a, b):
    ra, ea = a
    rb, eb = b
    assert ra.equals(rb), (ra, rb)
    assert ea.equals(eb), (ea, eb)


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_local_to_sql_and_back(backend, tmp_path, request):
    src_root, back_root = tmp_path / "src", tmp_path / "back"
    _fill(src_root)
    if backend == "postgresql":
        url = request.getfixturevalue("pg_server").new_database()
    else:
        url = f"sqlite:///{tmp_path / 'team.db'}"
    first = copy_store(str(src_root), url, progress=False)
    assert first["runs"] == 4 and first["events_copied"] > 0 and first["events_skipped"] == 0
    with LocalStore(src_root) as src:
        expected = _frames(src)
    with SqlStore(url) as sql:
        _assert_same(expected, _frames(sql))
    copy_store(url, str(back_root), progress=False)
    with LocalStore(back_root) as back:
        _assert_same(expected, _frames(back))
    # idempotent: a second copy writes nothing new
    again = copy_store(str(src_root), url, progress=False)
    assert again["events_copied"] == 0 and again["events_skipped"] == first["events_copied"]
    back_again = copy_store(url, str(back_root), progress=False)
    assert back_again["events_copied"] == 0
    with SqlStore(url) as sql:
        _assert_same(expected, _frames(sql))
    with LocalStore(back_root) as back:
        _assert_same(expected, _frames(back))


def test_copy_cli(tmp_path, capsys):
    from asm_nb.cli import main

    src_root = tmp_path / "src"
    _fill(src_root, 2)
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["copy", str(src_root), url, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "runs" in out and "events_copied" in out
    with SqlStore(url) as sql, LocalStore(src_root) as src:
        assert len(sql.list_runs(None)) == 2
        _assert_same(_frames(src), _frames(sql))


def test_copy_errors_and_public_name(tmp_path):
    assert asm_nb.copy_store is copy_store
    with pytest.raises(asm_nb.AsmError) as ei:
        copy_store("memory://", "memory://", batch_size=0)
    assert ei.value.code == "validation_error"
    store = asm_nb.open_store("memory://")
    with pytest.raises(asm_nb.AsmError, match="same store"):
        copy_store(store, store)
