"""asm_nb.analytics.frames: row counts, dtypes and sums checked against the raw events, on both
backends and on every kind of store (generic scan, JSONL fast path, LocalStore)."""

from __future__ import annotations

import json
import warnings
from collections import Counter
from datetime import timedelta

import pytest

def load_helper():
    """tests/analytics/analytics_data.py (pytest runs with --import-mode=importlib)."""
    import importlib.util
    import pathlib
    import sys

    name = "asm_nb_tests_analytics_data"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, pathlib.Path(__file__).with_name("analytics_data.py"))
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


pl = pytest.importorskip("polars")
pd = pytest.importorskip("pandas")

from asm_nb.core.errors import AsmError  # noqa: E402

from asm_nb.cost.calculator import calculate  # noqa: E402
from asm_nb.cost.pricing import PRICING_VERSION, default_pricing_table  # noqa: E402
from asm_nb.analytics import frames  # noqa: E402
from asm_nb.stores.memory import InMemoryStore  # noqa: E402

_data = load_helper()
T0, LogDirStore, build = _data.T0, _data.LogDirStore, _data.build
BACKENDS = ["polars", "pandas"]


def _make_store(kind, tmp_path):
    if kind == "memory":
        return InMemoryStore()
    if kind == "logs":
        return LogDirStore(InMemoryStore(), str(tmp_path / "logs"))
    local = pytest.importorskip("asm_nb.stores.local")
    return local.LocalStore(tmp_path / "asm")


@pytest.fixture(params=["memory", "logs", "local"])
def filled(request, tmp_path):
    store = _make_store(request.param, tmp_path)
    ds = build(store)
    yield store, ds
    store.close()


@pytest.fixture
def mem():
    store = InMemoryStore()
    ds = build(store)
    return store, ds


def _pl(df):
    return df if isinstance(df, pl.DataFrame) else pl.from_pandas(df)


def _is_utc(df, col):
    if isinstance(df, pl.DataFrame):
        return df.schema[col] == pl.Datetime("us", "UTC")
    return str(df[col].dtype) == "datetime64[us, UTC]"


def _is_cat(df, col):
    if isinstance(df, pl.DataFrame):
        return isinstance(df.schema[col], (pl.Categorical, pl.Enum))
    return str(df[col].dtype) == "category"


# ---- events ----------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_events_match_raw(filled, backend):
    store, ds = filled
    df = frames.events(store, backend=backend)
    assert len(df) == len(ds.events)
    assert _is_utc(df, "timestamp") and _is_cat(df, "type") and _is_cat(df, "provider")
    p = _pl(df)
    assert Counter(p["type"].cast(pl.String).to_list()) == Counter(e.type.value for e in ds.events)
    raw = {e.id: e for e in ds.events}
    for row in p.iter_rows(named=True):
        e = raw[row["id"]]
        assert row["timestamp"] == e.timestamp
        assert row["sequence_number"] == e.sequence_number
        assert json.loads(row["data"]) == e.data
        assert row["run_id"] == e.run_id and row["session_id"] == e.session_id
    # ordered by session, then sequence
    keys = list(zip(p["session_id"].to_list(), p["sequence_number"].to_list()))
    assert keys == sorted(keys)


def test_events_filters(filled):
    store, ds = filled
    run = ds.runs[0]
    got = frames.events(store, run_id=run.id, backend="polars")
    assert got.height == sum(e.run_id == run.id for e in ds.events)
    got = frames.events(store, session_id=[ds.sessions[1].id], type=["tool_call_started", "run_started"],
                        backend="polars")
    want = [e for e in ds.events if e.session_id == ds.sessions[1].id
            and e.type.value in ("tool_call_started", "run_started")]
    assert sorted(got["id"].to_list()) == sorted(e.id for e in want)
    assert frames.events(store, provider="codex", backend="polars").height == \
        sum(e.provider == "codex" for e in ds.events)
    opus = [r.id for r in ds.runs if r.provider_metadata.get("model") == "claude-opus-4-6"]
    assert set(frames.events(store, model="claude-opus-4-6", backend="polars")["run_id"].to_list()) == set(opus)
    failed = {r.id for r in ds.runs if r.status.value == "failed"}
    assert set(frames.events(store, status="failed", backend="polars")["run_id"].to_list()) == failed
    since, until = T0 + timedelta(days=1), T0 + timedelta(days=2)
    got = frames.events(store, since=since, until=until.isoformat(), backend="polars")
    assert got.height == sum(since <= e.timestamp < until for e in ds.events) > 0


def test_events_parse_data(mem):
    store, ds = mem
    df = frames.events(store, type="token_usage_updated", parse_data=True, backend="polars")
    assert isinstance(df.schema["data"], pl.Struct)
    want = sum(e.data["input_tokens"] for e in ds.events if e.type.value == "token_usage_updated")
    assert df["data"].struct.field("input_tokens").sum() == want


def test_fast_path_flushes_and_reads_files(tmp_path):
    store = LogDirStore(InMemoryStore(), str(tmp_path / "logs"))
    ds = build(store)
    assert store.flushes == 0
    df = frames.events(store, backend="polars")
    assert store.flushes == 1 and df.height == len(ds.events)


def test_fast_path_skips_a_torn_line(tmp_path):
    store = LogDirStore(InMemoryStore(), str(tmp_path / "logs"))
    ds = build(store)
    store.flush()
    first = store.event_log_paths()[0]

    class Torn(LogDirStore):
        def flush(self, payload=None):
            super().flush(payload)
            with open(first, "a", encoding="utf-8") as fh:
                fh.write('{"id": "evt_torn", "type": "mess')

    torn = Torn(store.inner, store.root)
    with pytest.warns(RuntimeWarning, match="unreadable"):
        df = frames.events(torn, backend="polars")
    assert df.height == len(ds.events)


# ---- runs, costs, sessions ------------------------------------------------------------------

def _usage_from_events(ds, run_id):
    tot = Counter()
    for e in ds.events:
        if e.run_id == run_id and e.type.value == "token_usage_updated":
            for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens"):
                tot[k] += e.data[k]
    return tot


@pytest.mark.parametrize("backend", BACKENDS)
def test_runs_match_raw(filled, backend):
    store, ds = filled
    df = frames.runs(store, backend=backend)
    assert len(df) == len(ds.runs)
    assert _is_utc(df, "started_at") and _is_utc(df, "ended_at") and _is_cat(df, "status")
    assert _is_cat(df, "provider") and _is_cat(df, "model")
    p = _pl(df)
    for row in p.iter_rows(named=True):
        usage = _usage_from_events(ds, row["run_id"])
        for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens"):
            assert row[k] == usage[k]
        assert row["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
        run = next(r for r in ds.runs if r.id == row["run_id"])
        assert row["cost_usd"] == (pytest.approx(run.cost_usd) if run.cost_usd is not None else None)
        assert row["duration_s"] == pytest.approx((run.ended_at - run.started_at).total_seconds())
    mystery = p.filter(pl.col("model") == "mystery-model-x").row(0, named=True)
    assert mystery["unpriced"] is True and mystery["cost_usd"] is None
    amp = p.filter(pl.col("provider") == "amp").row(0, named=True)
    # the amp run names no model: its own reported cost stands, no placeholder price beside it
    assert amp["cost_usd"] == 0.42 and amp["cost_source"] == "reported" and amp["computed_cost_usd"] is None
    sonnet = p.filter(pl.col("model") == "claude-sonnet-4-5-20250929").row(0, named=True)
    assert sonnet["price_key"] == "claude/claude-sonnet-4-5" and sonnet["pricing_version"] == PRICING_VERSION
    failed = p.filter(pl.col("status") == "failed").row(0, named=True)
    assert failed["error_code"] == "provider_error"


def test_runs_filters_and_validation(mem):
    store, ds = mem
    assert frames.runs(store, provider=["codex", "amp"], backend="polars").height == 3
    assert frames.runs(store, status="completed", model="o3", backend="polars").height == 1
    assert frames.runs(store, session_id=ds.sessions[0].id, backend="polars").height == \
        sum(r.session_id == ds.sessions[0].id for r in ds.runs)
    assert frames.runs(store, since=T0 + timedelta(days=2), backend="polars").height == \
        sum(r.started_at >= T0 + timedelta(days=2) for r in ds.runs)
    with pytest.raises(AsmError, match="unsupported value"):
        frames.runs(store, status="done")
    with pytest.raises(AsmError, match="backend"):
        frames.runs(store, backend="spark")
    with pytest.raises(AsmError, match="since"):
        frames.runs(store, since="yesterday")


@pytest.mark.parametrize("backend", BACKENDS)
def test_costs_per_run_and_post_hoc(filled, backend):
    store, ds = filled
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = frames.costs(store, backend=backend)
    p = _pl(df)
    assert p.height == len(ds.runs)
    o3 = next(r for r in ds.runs if r.provider_metadata.get("model") == "o3")
    row = p.filter(pl.col("run_id") == o3.id).row(0, named=True)
    assert row["cost_source"] == "post_hoc"
    assert row["cost_usd"] == pytest.approx(calculate(o3.token_usage, "codex", "o3", default_pricing_table()))
    stored = sum(r.cost_usd for r in ds.runs if r.cost_usd is not None)
    assert p["cost_usd"].sum() == pytest.approx(stored + row["cost_usd"])
    assert p["unpriced"].sum() == 1
    assert _is_utc(df, "day")
    assert all(d.hour == 0 and d.minute == 0 for d in p["day"].to_list())


def test_costs_grouped(mem):
    store, ds = mem
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        per_run = frames.costs(store, backend="polars")
        by_prov = frames.costs(store, by="provider", backend="polars")
        by_day_model = frames.costs(store, by=["day", "model"], backend="pandas")
    want = per_run.group_by("provider").agg(pl.col("cost_usd").sum(), pl.col("input_tokens").sum())
    for row in by_prov.iter_rows(named=True):
        w = want.filter(pl.col("provider") == row["provider"]).row(0, named=True)
        assert row["cost_usd"] == pytest.approx(w["cost_usd"]) and row["input_tokens"] == w["input_tokens"]
    assert by_prov["run_count"].sum() == len(ds.runs)
    assert int(by_day_model["run_count"].sum()) == len(ds.runs)
    assert by_day_model["cost_usd"].sum() == pytest.approx(per_run["cost_usd"].sum())
    with pytest.raises(AsmError):
        frames.costs(store, by="week")


def test_costs_what_if_table(mem):
    store, ds = mem
    table = {"version": "flat-1", "unit": "per_million",
             "providers": {p: {"default": {"input": 1, "output": 1}, "models": {}} for p in ("claude", "codex", "amp")}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = frames.costs(store, pricing_table=table, backend="polars")
    for row in p.iter_rows(named=True):
        run = next(r for r in ds.runs if r.id == row["run_id"])
        tu = run.token_usage
        if row["provider"] == "amp":
            assert row["cost_usd"] == 0.42
        else:
            assert row["cost_usd"] == pytest.approx(sum(tu.values()) * 1e-6)
        assert row["pricing_version"] == "flat-1"


@pytest.mark.parametrize("backend", BACKENDS)
def test_sessions(filled, backend):
    store, ds = filled
    df = frames.sessions(store, backend=backend)
    p = _pl(df)
    assert p.height == 3 and _is_utc(df, "created_at") and _is_cat(df, "status")
    for row in p.iter_rows(named=True):
        mine = [r for r in ds.runs if r.session_id == row["session_id"]]
        assert row["run_count"] == len(mine)
        assert row["input_tokens"] == sum(r.token_usage["input_tokens"] for r in mine)
        costs = [r.cost_usd for r in mine if r.cost_usd is not None]
        assert row["cost_usd"] == (pytest.approx(sum(costs)) if costs else None)
        assert list(row["providers"]) == sorted({r.provider for r in mine})
    assert frames.sessions(store, status="completed", backend="polars").height == 1
    assert frames.sessions(store, provider="amp", backend="polars")["session_id"].to_list() == \
        [r.session_id for r in ds.runs if r.provider == "amp"]
    tags = frames.sessions(store, backend="pandas")["tags"].tolist()
    assert ["pinned"] in tags


# ---- tool calls, messages, transcript, diffs ---------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_tool_calls(filled, backend):
    store, ds = filled
    df = frames.tool_calls(store, include_output=True, backend=backend)
    p = _pl(df)
    assert p.height == len(ds.tool_calls)
    assert _is_utc(df, "started_at") and _is_cat(df, "tool_name") and _is_cat(df, "status")
    want = {(s, r, t): (st, d) for s, r, t, st, d in ds.tool_calls}
    for row in p.iter_rows(named=True):
        st, dur = want[(row["session_id"], row["run_id"], row["tool_call_id"])]
        assert row["status"] == st
        if dur is not None:
            assert row["duration_ms"] == pytest.approx(dur)
        if st == "running":
            assert row["finished_at"] is None and row["duration_ms"] is None
        if row["output"] is not None:
            assert row["output_size"] == len(row["output"])
        assert row["input_size"] == len(row["input"])
    bash = p.filter(pl.col("tool_name") == "Bash")
    assert set(bash["summary"].to_list()) == {"Running: pytest -q tests/"}
    assert frames.tool_calls(store, status="failed", backend="polars").height == \
        sum(x[3] == "failed" for x in ds.tool_calls)
    assert frames.tool_calls(store, tool_name="Read", backend="polars").height == \
        p.filter(pl.col("tool_name") == "Read").height
    cancelled = [r.id for r in ds.runs if r.status.value == "cancelled"]
    assert set(frames.tool_calls(store, run_status="cancelled", backend="polars")["run_id"].to_list()) == set(cancelled)


def test_tool_summary_matches_renderer():
    from asm_nb.core.events import Event
    from asm_nb.rendering.studio import ToolSummary

    store = InMemoryStore()
    inputs = [("Bash", {"command": "x" * 70}), ("bash", {}), ("Read", {"path": "a/b.py"}), ("Write", {}),
              ("Edit", {"file_path": "e.py"}), ("Glob", {"pattern": "**/*.py"}), ("Grep", {"pattern": "foo"}),
              ("Task", {"description": "Explore"}), ("WebFetch", {"url": "https://User@GitHub.com:443/x"}),
              ("WebFetch", {"url": "github.com/x"}), ("WebSearch", {"query": "polars"}), ("custom", {"a": 1}),
              ("", {}), ("Bash", {"command": "  spaced  "})]
    for i, (name, tin) in enumerate(inputs):
        store.append_event(Event.new("tool_call_started", "s", run_id="r", timestamp=T0 + timedelta(seconds=i),
                                     data={"tool_call_id": f"t{i}", "tool_name": name, "tool_input": tin}))
    df = frames.tool_calls(store, backend="polars")
    got = dict(zip(df["tool_call_id"].to_list(), df["summary"].to_list()))
    for i, (name, tin) in enumerate(inputs):
        assert got[f"t{i}"] == ToolSummary.spinner_text({"name": name, "input": tin}), (name, tin)


@pytest.mark.parametrize("backend", BACKENDS)
def test_messages(filled, backend):
    store, ds = filled
    df = frames.messages(store, backend=backend)
    p = _pl(df)
    want = [e for e in ds.events if e.type.value in ("message_sent", "message_received")]
    assert p.height == len(want)
    assert p["content"].to_list() == [e.data["content"] for e in sorted(want, key=lambda e: (e.session_id,
                                                                                            e.sequence_number))]
    assert set(p["role"].cast(pl.String).to_list()) == {"user", "assistant"}
    streamed = frames.messages(store, include_streamed=True, backend="polars")
    assert streamed.height == len(want) + sum(e.type.value == "message_streamed" for e in ds.events)
    assert set(streamed.filter(pl.col("type") == "message_streamed")["kind"].cast(pl.String).to_list()) == \
        {"text", "reasoning"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_transcript(filled, backend):
    store, ds = filled
    sid = ds.sessions[0].id  # holds the cancelled run (index 6 → session 0)
    df = _pl(frames.transcript(store, sid, backend=backend))
    seqs = df["sequence_number"].to_list()
    assert seqs == sorted(seqs)
    mine = [e for e in ds.events if e.session_id == sid]
    n_msgs = sum(e.type.value in ("message_sent", "message_received") for e in mine)
    cancelled = [r for r in ds.runs if r.session_id == sid and r.status.value == "cancelled"]
    assert df.height == n_msgs + len(cancelled)  # one joined streamed row per run without a reply
    assert df["role"][0] == "user"
    joined = df.filter(pl.col("type") == "message_streamed")["content"].to_list()
    assert all(c.startswith("chunk0 ") for c in joined)
    with_tools = frames.transcript(store, sid, include_tools=True, backend="polars")
    assert with_tools.height == df.height + sum(e.type.value.startswith("tool_call_") for e in mine)
    with pytest.raises(AsmError):
        frames.transcript(store, "")


def test_diff_summaries(mem):
    store, ds = mem
    df = frames.diff_summaries(store, backend="polars")
    assert df.height == 1
    row = df.row(0, named=True)
    assert row["files_changed"] == 2 and row["changed_paths"] == ["a.py", "b.py"] and row["has_patch"]
    pdf = frames.diff_summaries(store, backend="pandas")
    assert pdf["changed_paths"].iloc[0] == ["a.py", "b.py"]


@pytest.mark.parametrize("fn", [frames.sessions, frames.runs, frames.events, frames.messages, frames.tool_calls,
                                frames.costs, frames.diffs, frames.diff_summaries])
@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_store_gives_typed_empty_frames(fn, backend):
    df = fn(InMemoryStore(), backend=backend)
    assert len(df) == 0 and len(df.columns) > 3


def test_pandas_and_polars_agree(mem):
    store, _ = mem
    a = frames.tool_calls(store, backend="polars")
    b = frames.tool_calls(store, backend="pandas")
    assert list(b.columns) == a.columns
    assert b["duration_ms"].fillna(-1).tolist() == a["duration_ms"].fill_null(-1).to_list()
    assert b["summary"].tolist() == a["summary"].to_list()
