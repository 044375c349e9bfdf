"""A store written in the version-1 format (tests/stores/fixtures/local_v1, made by the code of the
day the format changed) opens with today's code, is upgraded in place, and keeps everything."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import asm_nb
from asm_nb.stores.local import LocalStore, LocalStoreWarning

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "local_v1"


@pytest.fixture
def v1(tmp_path):
    root = tmp_path / "old"
    shutil.copytree(FIXTURE, root)
    return root


def _v1_rows(root: Path, name: str) -> dict:
    return json.loads((root / "db" / f"{name}.json").read_text())[name]


def test_v1_store_opens_upgraded_in_place_with_everything(v1):
    sessions, runs = _v1_rows(v1, "sessions"), _v1_rows(v1, "runs")
    assert json.loads((v1 / "store.json").read_text())["version"] == 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store = LocalStore(v1)
        got_sessions = {s.id: s for s in store.list_sessions()}
        got_runs = {r.id: r for r in store.list_runs(None)}
        assert set(got_sessions) == set(sessions) and set(got_runs) == set(runs)
        for rid, doc in runs.items():
            assert got_runs[rid].to_dict() == doc
        for sid, doc in sessions.items():
            assert got_sessions[sid].to_dict() == doc
        named = [s for s in got_sessions.values() if s.metadata.get("name") == "named-chat"]
        assert len(named) == 1
        events = store.get_events(named[0].id)  # the torn tail is skipped, the rest is there
        assert [e.sequence_number for e in events] == list(range(1, len(events) + 1)) and len(events) > 10
        # the upgraded store takes new runs, also in the old named session (continuity)
        r = asm_nb.run_once("echo three", provider="shell", store=store, session="named-chat")
        assert r.status == "completed" and r.session_id == named[0].id
        assert [x.metadata.get("name") for x in store.list_sessions()].count("named-chat") == 1
        assert len(store.list_runs(named[0].id)) == 3
        assert store.list_artifact_records()[0]["key"] == "notes.txt"
        store.close()
    assert json.loads((v1 / "store.json").read_text()) == {"format": "asm-local", "version": 2}
    assert not (v1 / "db" / "runs.json").exists() and (v1 / "db" / "runs.jsonl").exists()
    assert any(issubclass(w.category, LocalStoreWarning) and "torn" in str(w.message) for w in caught)
    # and it opens again (already version 2), from another process too
    out = subprocess.run([sys.executable, "-c", "import sys; from asm_nb.stores.local import LocalStore; "
                          "s = LocalStore(sys.argv[1]); print(len(s.list_runs(None)), len(s.list_sessions()))",
                          str(v1)], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == [str(len(runs) + 1), str(len(sessions))], out.stderr


def test_two_processes_upgrade_one_v1_store_once(v1):
    code = ("import sys; from asm_nb.stores.local import LocalStore; s = LocalStore(sys.argv[1]); "
            "print(len(s.list_runs(None)))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(v1)], stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    n = len(_runs_after(v1))
    assert outs == [str(n)] * 3 and n == 4


def _runs_after(root: Path) -> list:
    s = LocalStore(root)
    try:
        return s.list_runs(None)
    finally:
        s.close()
