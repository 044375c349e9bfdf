"""``asm_nb.batch``: many runs through the SessionServer and the ConcurrencyLimiter, one result row
per input row; the executor hook with ``run_batch_item``."""

from __future__ import annotations

import concurrent.futures
import pickle
import time

import pytest

import asm_nb
from asm_nb.core.errors import AsmError
from asm_nb.runtime.batch import build_items, run_batch_item
from asm_nb.runtime.limiter import ConcurrencyLimiter
from asm_nb.stores import open_store
from asm_nb.testing import ScriptedAdapter, example_cassette

HELLO = str(example_cassette("hello"))
FAILURE = str(example_cassette("failure"))
TERMINAL = {"run_completed", "run_failed", "run_cancelled"}


def max_overlap(store, session_id) -> int:
    spans: dict[str, list] = {}
    for ev in store.get_events(session_id):
        if ev.run_id is None:
            continue
        span = spans.setdefault(ev.run_id, [None, None])
        if ev.type.value == "run_started" and span[0] is None:
            span[0] = ev.timestamp
        elif ev.type.value in TERMINAL:
            span[1] = ev.timestamp
    points = []
    for s, e in spans.values():
        points += [(s, 1), (e, -1)]
    points.sort(key=lambda p: (p[0], p[1]))
    cur = best = 0
    for _, d in points:
        cur += d
        best = max(best, cur)
    return best


def test_200_replayed_prompts_at_concurrency_8_with_one_forced_failure():
    store = open_store("memory://")
    lim = ConcurrencyLimiter(max_parallel_runs=8)
    prompts = [f"question {i}" for i in range(200)]
    seen = []
    t0 = time.perf_counter()
    df = asm_nb.batch(prompts, provider="replay", store=store, concurrency=8, limiter=lim,
                      progress=False, on_result=seen.append,
                      row_options=lambda row: {"cassette": FAILURE} if row["prompt"] == "question 117" else {},
                      options={"cassette": HELLO})
    elapsed = time.perf_counter() - t0
    assert len(df) == 200 and list(df["prompt"]) == prompts
    assert (df["status"] == "completed").sum() == 199
    failed = df[df["status"] == "failed"]
    assert list(failed["prompt"]) == ["question 117"]
    assert failed.iloc[0]["error_code"] == "provider_rate_limited" and failed.iloc[0]["error_message"]
    ok = df[df["status"] == "completed"]
    assert ok["output_tokens"].gt(0).all() and ok["output"].str.len().gt(0).all()
    assert df["run_id"].nunique() == 200 and df["session_id"].nunique() == 1
    assert lim.peak_active_runs <= 8 and lim.get_status()["active_runs"] == 0
    assert max_overlap(store, df["session_id"][0]) <= 8
    assert len(seen) == 200
    session = store.get_session(df["session_id"][0])
    assert session.metadata["batch"] is True and session.status.value == "completed"
    assert elapsed < 30


def test_limiter_bound_below_concurrency_is_held():
    store = open_store("memory://")
    lim = ConcurrencyLimiter(max_parallel_runs=3)
    adapter = ScriptedAdapter([("sleep", 15, {"content": "ok"})])
    df = asm_nb.batch([f"p{i}" for i in range(12)], provider=adapter, store=store, concurrency=8, limiter=lim,
                      progress=False)
    assert (df["status"] == "completed").all()
    assert lim.peak_active_runs == 3
    assert max_overlap(store, df["session_id"][0]) <= 3


def test_dataframe_input_with_template_keeps_index_and_columns():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"city": ["Paris", "Rome", "Oslo"], "n": [1, 2, 3]}, index=[10, 20, 30])
    df = asm_nb.batch(frame, provider="shell", prompt="echo {city}-{n}", store="memory://", concurrency=2,
                      progress=False)
    assert list(df.index) == [10, 20, 30]
    assert list(df["city"]) == ["Paris", "Rome", "Oslo"] and list(df["n"]) == [1, 2, 3]
    assert list(df["prompt"]) == ["echo Paris-1", "echo Rome-2", "echo Oslo-3"]
    assert list(df["output"]) == ["Paris-1\n", "Rome-2\n", "Oslo-3\n"]


def test_input_columns_named_like_result_columns_keep_theirs_and_results_get_a_suffix():
    pd = pytest.importorskip("pandas")
    import warnings

    frame = pd.DataFrame({"cmd": ["echo a", "exit 2"], "status": ["todo", "todo"], "model": ["x", "y"]},
                         index=["r1", "r2"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no pandas deprecation on the way (join's lsuffix/rsuffix)
        df = asm_nb.batch(frame, provider="shell", prompt="cmd", store="memory://", progress=False)
    assert list(df.index) == ["r1", "r2"]
    assert list(df["status"]) == ["todo", "todo"] and list(df["model"]) == ["x", "y"]
    assert list(df["status_result"]) == ["completed", "failed"]
    assert list(df["output"]) == ["a\n", ""]
    assert list(df.columns[:3]) == ["cmd", "status", "model"]
    records = asm_nb.batch([{"q": "echo r", "status": "s"}], provider="shell", prompt="q", store="memory://",
                           progress=False, backend="pandas")
    assert records.iloc[0]["status"] == "s" and records.iloc[0]["status_result"] == "completed"


def test_polars_input_and_backends():
    pl = pytest.importorskip("polars")
    frame = pl.DataFrame({"cmd": ["echo x", "exit 3"]})
    out = asm_nb.batch(frame, provider="shell", prompt="cmd", store="memory://", progress=False, backend="polars")
    assert isinstance(out, pl.DataFrame)
    assert out["status"].to_list() == ["completed", "failed"] and out["cmd"].to_list() == ["echo x", "exit 3"]
    recs = asm_nb.batch([{"q": "echo r"}], provider="shell", prompt="q", store="memory://", progress=False,
                        backend="records")
    assert recs[0]["output"] == "r\n"


def test_cancel_the_whole_batch():
    store = open_store("memory://")
    adapter = ScriptedAdapter([("sleep", 10_000, {"content": "never"})])
    handle = asm_nb.batch([f"p{i}" for i in range(10)], provider=adapter, store=store, concurrency=2,
                          progress=False, wait=False)
    deadline = time.monotonic() + 5
    while len(adapter.calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert handle.summary().get("running") == 2
    t0 = time.perf_counter()
    handle.cancel()
    df = handle.result(timeout=10)
    assert time.perf_counter() - t0 < 10
    assert set(df["status"]) == {"cancelled"} and len(df) == 10
    assert {r.status.value for r in store.list_runs(handle.session_id)} == {"cancelled"}


def test_progress_bar_runs(capsys):
    pytest.importorskip("tqdm")
    df = asm_nb.batch(["echo 1", "echo 2"], provider="shell", store="memory://", progress=True)
    assert list(df["status"]) == ["completed", "completed"]
    assert "2/2" in capsys.readouterr().err


def test_validation():
    with pytest.raises(AsmError, match="concurrency"):
        asm_nb.batch(["a"], provider="shell", concurrency=0, store="memory://")
    with pytest.raises(AsmError, match="missing column"):
        build_items([{"a": 1}], prompt="{b}")
    with pytest.raises(AsmError, match="which column"):
        build_items([{"a": 1, "b": 2}])
    with pytest.raises(AsmError, match="empty prompt"):
        build_items(["ok", "  "])
    with pytest.raises(AsmError):
        asm_nb.batch("not a list", provider="shell", store="memory://")
    with pytest.raises(AsmError, match="path or URL"):
        asm_nb.batch(["a"], provider="shell", store=open_store("memory://"),
                     executor=concurrent.futures.ThreadPoolExecutor(1))


def test_run_batch_item_is_picklable_and_opens_the_store_by_path(tmp_path):
    store_path = str(tmp_path / "store")
    item = {"index": 3, "prompt": "echo picked", "provider": "shell", "adapter_options": {}, "options": {},
            "store": store_path, "session_id": None}
    fn, again = pickle.loads(pickle.dumps((run_batch_item, item)))
    row = fn(again)
    assert row["status"] == "completed" and row["output"] == "picked\n" and row["index"] == 3
    assert open_store(store_path).get_run(row["run_id"]).status.value == "completed"
    bad = fn({**item, "provider": "no-such-provider"})
    assert bad["status"] == "failed" and bad["error_code"]


def test_executor_path_with_a_thread_pool(tmp_path):
    store_path = str(tmp_path / "shared")
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        df = asm_nb.batch([f"q{i}" for i in range(6)], provider="replay", store=store_path,
                          executor=pool, progress=False, options={"cassette": HELLO})
    assert list(df["status"]) == ["completed"] * 6 and df["session_id"].nunique() == 1
    store = open_store(store_path)
    assert len(store.list_runs(df["session_id"][0])) == 6
