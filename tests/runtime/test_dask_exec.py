"""Batch runs on a Dask LocalCluster (3 worker processes) writing one PostgreSQL store:
``asm_nb.batch(..., executor=client)`` and the standalone ``run_on_dask``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")

import asm_nb  # noqa: E402
from asm_nb.runtime.dask_exec import is_dask_client, run_on_dask  # noqa: E402
from asm_nb.stores.sql import SqlStore  # noqa: E402
from asm_nb.testing import example_cassette  # noqa: E402


def _load_pg():
    name = "asm_tests_pg_helper"
    mod = sys.modules.get(name)
    if mod is None:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "pg.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return mod


_pg = _load_pg()


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=3, threads_per_worker=2, processes=True, dashboard_address=None,
                                       silence_logs=40)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def pg_url():
    return _pg.require().new_database()


def test_batch_of_100_on_three_workers(client, pg_url):
    assert is_dask_client(client) and len(client.scheduler_info()["workers"]) == 3
    prompts = [f"prompt {i}" for i in range(100)]
    df = asm_nb.batch(prompts, provider="replay", store=pg_url,
                      executor=client, progress=False, options={"cassette": str(example_cassette("hello"))})
    assert len(df) == 100 and list(df["prompt"]) == prompts
    assert set(df["status"]) == {"completed"}, df[df["status"] != "completed"][["error_code", "error_message"]]
    with SqlStore(pg_url) as st:
        runs = st.list_runs(None)
        assert {r.id for r in runs} == set(df["run_id"]) and all(r.status.value == "completed" for r in runs)
        [sid] = {r.session_id for r in runs}
        events = st.get_events(sid)
        assert [e.sequence_number for e in events] == list(range(1, len(events) + 1))  # gap-free
        per_run = {}
        for e in events:
            per_run[e.run_id] = per_run.get(e.run_id, 0) + 1
        assert set(per_run) >= set(df["run_id"]) and len({per_run[r] for r in df["run_id"]}) == 1
        assert st.maintenance.health_check() == []


def test_run_on_dask_standalone(client, pg_url, tmp_path):
    items = [{"prompt": f"p{i}", "provider": "replay", "store": pg_url,
              "adapter_options": {"cassette": str(example_cassette("hello"))}} for i in range(6)]
    items.append({"prompt": "boom", "provider": "replay", "store": pg_url,
                  "adapter_options": {"cassette": str(tmp_path / "missing.jsonl")}})
    df = run_on_dask(items, client, progress=False)
    assert list(df["index"]) == list(range(7))
    assert list(df["status"]) == ["completed"] * 6 + ["failed"]
    assert df["error_code"].iloc[-1] is not None
    with pytest.raises(asm_nb.AsmError):
        run_on_dask(items, object())
