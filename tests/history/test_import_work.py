"""How much work ``asm import`` does per line, event and session (counted, not timed): the
progress bar moves per 64 KiB read, a fixed payload (``run_started``, ``run_completed``) goes
through the redactor once per file unless the redactor changes it, timestamps are parsed once,
and each imported session is written with one event-log write and a bounded number of table
appends."""

from __future__ import annotations

import collections
import math
import warnings
from datetime import datetime, timedelta, timezone

import pytest

from asm_nb import config
from asm_nb.history import HistoryWarning, import_history
from asm_nb.history import _base, _driver
from asm_nb.persistence import redaction
from asm_nb.stores import open_store
from asm_nb.testing.history_logs import write_claude_code_logs, write_codex_logs


def _import(source, store, path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", HistoryWarning)  # generated logs import without a warning
        return import_history(source, store, path=path)


class _Bar:
    def __init__(self) -> None:
        self.updates: list[int] = []

    def update(self, n: int) -> None:
        self.updates.append(n)

    def close(self) -> None:
        pass


def test_progress_moves_per_64k_read_not_per_line(tmp_path, monkeypatch):
    gen = write_claude_code_logs(tmp_path / "claude", lines=3000, sessions=3)
    bar = _Bar()
    monkeypatch.setattr(_driver, "_progress", lambda enabled, total, source: bar)
    st = open_store(tmp_path / "store")
    rep = _import("claude-code", st, gen["root"])
    st.close()
    sizes = [f.stat().st_size for f in gen["files"]]
    assert rep.lines_read == gen["lines"] > 2000
    assert sum(bar.updates) == sum(sizes)  # every byte read is shown
    assert len(bar.updates) <= sum(math.ceil(s / 65536) + 1 for s in sizes) < gen["lines"] // 10


def test_fixed_payloads_go_through_the_redactor_once_per_file(tmp_path, monkeypatch):
    gen = write_codex_logs(tmp_path / "codex", lines=2000, sessions=4)
    calls: collections.Counter = collections.Counter()
    real = redaction.redact_payload

    def counting(etype, data, metadata, cfg):
        calls[etype.value] += 1
        return real(etype, data, metadata, cfg)

    monkeypatch.setattr(redaction, "redact_payload", counting)
    st = open_store(tmp_path / "store")
    _import("codex", st, gen["root"])
    events = collections.Counter(e.type.value for s in st.list_sessions() for e in st.get_events(s.id))
    st.close()
    files = len(gen["files"])
    assert events["run_started"] > 4 * files  # several runs per file...
    assert calls["run_started"] == files       # ...one redaction of {"imported_from": "codex"} each
    assert calls["run_completed"] <= files
    for etype in ("message_sent", "message_received", "tool_call_started", "tool_call_completed"):
        assert calls[etype] == events[etype] > 0  # texts from the log: every one scanned


def test_a_fixed_payload_the_redactor_changes_is_redacted_every_time(tmp_path):
    # a custom pattern that hits the fixed text: nothing is remembered as clean
    gen = write_claude_code_logs(tmp_path / "claude", lines=600, sessions=2)
    st = open_store(tmp_path / "store")
    with config.override(redaction_patterns=[r"claude-code"]):
        _import("claude-code", st, gen["root"])
    started = [e for s in st.list_sessions() for e in st.get_events(s.id) if e.type.value == "run_started"]
    st.close()
    assert len(started) > 4
    assert {e.data["imported_from"] for e in started} == {"[REDACTED]"}


def test_parse_ts_cache_returns_what_parsing_returns():
    base = datetime(2025, 9, 1, 7, 46, 7, tzinfo=timezone.utc)
    texts = ["2025-09-01T07:46:07.000Z", "2025-09-01T07:46:07Z", "2025-09-01T09:46:07+02:00",
             "2025-09-01T07:46:07", "2025-09-01T07:46:07.123456z", "not a time", "2025-13-01T00:00:00Z", ""]
    for _ in range(2):  # the second round comes from the cache
        for t in texts:
            assert _base.parse_ts(t) == _base._parse_ts(t)
    assert _base.parse_ts("2025-09-01T07:46:07.000Z") == base
    for i in range(5000):  # bounded
        _base.parse_ts((base + timedelta(seconds=i)).isoformat())
    assert len(_base._ts_cache) <= 4096
    assert _base.parse_ts(None) is None and _base.parse_ts(12) is None


@pytest.mark.parametrize("source", ["claude-code", "codex"])
def test_each_imported_session_is_one_event_log_write(tmp_path, monkeypatch, source):
    """A regression guard on the store path (the import already batched this before the
    2026-12 speed work): per imported file one event-log lock and one ``os.write`` of all its
    events, and at most three appends to the session/run tables (new session, runs, state)."""
    from asm_nb.stores import _doclog, local

    gen = (write_claude_code_logs if source == "claude-code" else write_codex_logs)(
        tmp_path / "logs", lines=1500, sessions=3)
    writes: collections.Counter = collections.Counter()
    owned: collections.Counter = collections.Counter()
    appends: collections.Counter = collections.Counter()
    real_write, real_owned, real_append = (local._SessionLog.write_buffer, local._SessionLog.ensure_owned,
                                           _doclog.DocLog.append)

    def write_buffer(self):
        if self.buf:
            writes[self.sid] += 1
        return real_write(self)

    def ensure_owned(self):
        if not self.owned:
            owned[self.sid] += 1
        return real_owned(self)

    def append(self, docs, *args, **kwargs):
        appends[self.path.name] += 1
        return real_append(self, docs, *args, **kwargs)

    monkeypatch.setattr(local._SessionLog, "write_buffer", write_buffer)
    monkeypatch.setattr(local._SessionLog, "ensure_owned", ensure_owned)
    monkeypatch.setattr(_doclog.DocLog, "append", append)
    st = open_store(tmp_path / "store")
    rep = _import(source, st, gen["root"])
    st.flush()
    files = len(gen["files"])
    assert rep.sessions_new == files and rep.events > 1000
    assert set(writes.values()) == {1} and len(writes) == files
    assert set(owned.values()) == {1} and len(owned) == files
    assert appends["sessions.jsonl"] == 2 * files and appends["runs.jsonl"] == files
    st.close()


@pytest.mark.parametrize("source", ["claude-code", "codex"])
def test_run_totals_and_model_usage_equal_the_sum_of_their_usage_events(tmp_path, source):
    # every counter of a run's token_usage and of each model in model_usage is the sum of the
    # token_usage_updated events of that run (and model): a counter added to the wrong key fails
    write = write_claude_code_logs if source == "claude-code" else write_codex_logs
    gen = write(tmp_path / "logs", lines=1500, sessions=3)
    st = open_store(tmp_path / "store")
    _import(source, st, gen["root"])
    keys = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens")
    checked = 0
    for s in st.list_sessions():
        per_run: dict = collections.defaultdict(collections.Counter)
        per_model: dict = collections.defaultdict(lambda: collections.defaultdict(collections.Counter))
        reasoning: collections.Counter = collections.Counter()
        for e in st.get_events(s.id):
            if e.type.value != "token_usage_updated":
                continue
            for k in keys:
                per_run[e.run_id][k] += e.data[k]
                per_model[e.run_id][e.data["model"] or "unknown"][k] += e.data[k]
            reasoning[e.run_id] += e.data.get("reasoning_output_tokens") or 0
        for r in st.list_runs(s.id):
            assert {k: r.token_usage[k] for k in keys} == {k: per_run[r.id][k] for k in keys}
            assert (r.token_usage.get("reasoning_output_tokens") or 0) == reasoning[r.id]
            mu = r.provider_metadata.get("model_usage") or {}
            assert {m: {k: v[k] for k in keys} for m, v in mu.items()} == \
                {m: {k: c[k] for k in keys} for m, c in per_model[r.id].items()}
            checked += bool(mu)
    st.close()
    assert checked > 10 and sum(sum(c.values()) for c in per_run.values()) > 0


@pytest.mark.parametrize("source", ["claude-code", "codex"])
def test_the_cyclic_gc_is_paused_during_an_import_and_restored_after(tmp_path, monkeypatch, source):
    import gc

    gen = (write_claude_code_logs if source == "claude-code" else write_codex_logs)(tmp_path / "logs", lines=600,
                                                                                     sessions=2)
    mod = __import__(f"asm_nb.history.{source.replace('-', '_')}", fromlist=["handle_line"])
    seen: list[bool] = []
    real = mod.handle_line

    def spying(obj, b):
        seen.append(gc.isenabled())
        real(obj, b)

    monkeypatch.setattr(mod, "handle_line", spying)
    st = open_store(tmp_path / "store")
    assert gc.isenabled()
    _import(source, st, gen["root"])
    assert seen and not any(seen)  # no collector pass while lines are read
    assert gc.isenabled()  # and it is back on afterwards
    # a failing store: still back on
    monkeypatch.setattr(st, "save_runs", lambda runs: (_ for _ in ()).throw(OSError("disk full")))
    more = (write_claude_code_logs if source == "claude-code" else write_codex_logs)(tmp_path / "more", lines=200,
                                                                                      sessions=1, seed=2)
    with pytest.raises(OSError):
        _import(source, st, more["root"])
    assert gc.isenabled()
    # a caller that turned it off itself keeps it off
    gc.disable()
    try:
        again = (write_claude_code_logs if source == "claude-code" else write_codex_logs)(tmp_path / "again",
                                                                                           lines=200, sessions=1, seed=3)
        monkeypatch.undo()
        _import(source, st, again["root"])
        assert not gc.isenabled()
    finally:
        gc.enable()
    st.close()


@pytest.mark.parametrize("source", ["claude-code", "codex"])
def test_an_import_leaves_no_cyclic_garbage(tmp_path, source):
    """Why pausing the collector during an import costs no memory: nothing it builds is a cycle."""
    import gc

    write = write_claude_code_logs if source == "claude-code" else write_codex_logs
    warm, gen = write(tmp_path / "warm", lines=300, sessions=1), write(tmp_path / "logs", lines=3000, sessions=3)
    st = open_store(tmp_path / "store")
    _import(source, st, warm["root"])  # first-use imports and caches outside the count
    gc.collect()
    gc.disable()
    try:
        rep = _import(source, st, gen["root"])
        _import(source, st, gen["root"])  # the incremental re-import too
        assert rep.events > 2000
        assert gc.collect() == 0
    finally:
        gc.enable()
        st.close()


def test_the_pricer_gives_exactly_what_tokens_cost_gives():
    """``_Pricer.cost`` applies the cached rates inline for clean counts: the same float, bit for
    bit, as ``tokens_cost`` (also for rates without cache prices, odd counts and unknown models)."""
    import random

    from asm_nb.cost.calculator import Rates, lookup_price, tokens_cost
    from asm_nb.cost.pricing import PricingInfo
    from asm_nb.history._builder import _Pricer

    p = _Pricer()
    p.info = PricingInfo(table={**p.info.table, "acme": {
        "default": {"input": 3.1e-6, "output": 1.7e-5},
        "models": {"x-1": {"input": 1e-7, "output": 3e-7, "cache_read": 7e-9}}}}, version="t", source="test")
    rng = random.Random(7)
    models = [("claude_code", "claude-sonnet-4-20250514"), ("claude_code", "claude-opus-4-1-20250805"),
              ("codex", "gpt-5-codex"), ("codex", "gpt-5"), ("codex", "no-such-model"), ("acme", "x-1"),
              ("acme", None), ("nobody", "m")]
    seen = 0
    for _ in range(3000):
        prov, model = rng.choice(models)
        vals = [rng.choice([0, 1, rng.randrange(10**7), rng.randrange(10**12), -5, 2.5, True]) for _ in range(4)]
        usage = dict(zip(("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens"), vals))
        got = p.cost(prov, model, usage)
        found = lookup_price(prov, model, p.info.table)
        if found[0] is None:
            assert got == (None, None)
            continue
        assert isinstance(found[1], Rates)
        want = tokens_cost(usage, found[1])
        assert got[1] == found[0] and type(got[0]) is type(want) and got[0] == want, (prov, model, usage)
        seen += 1
    assert seen > 1000
