"""LocalStore's run summaries (``db/runs.summary.jsonl``): a cold ``frames.runs`` / ``frames.costs``
reads them instead of parsing every run document, and opening a store parses no table. The frame
they give is the frame the run documents give, whatever wrote the store (a store kept without
summaries, a writer that died between its two writes, a compaction, a torn line)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

import asm_nb
from asm_nb.core.run import Run, RunStatus
from asm_nb.stores import _doclog
from asm_nb.stores.local import LocalStore

from .contract import run_for, session

pl = pytest.importorskip("polars")

from asm_nb.analytics.frames import run_tables  # noqa: E402


def _fill(store: LocalStore, n: int, **extra) -> list[Run]:
    runs = []
    for i in range(n):
        s = session()
        store.save_session(s)
        r = run_for(s.id).with_status(RunStatus.RUNNING)
        store.save_run(r)
        done = r.replace(status=RunStatus.COMPLETED if i % 3 else RunStatus.FAILED, provider="claude",
                         token_usage={"input_tokens": i, "output_tokens": 2 * i, "cache_read_tokens": 1},
                         metadata={"model": "claude-sonnet-4-5", "cost_source": "computed", "price_key": "k"},
                         cost_usd=None if i % 4 == 0 else 0.001 * i, turn_count=1,
                         error={"code": "boom", "message": f"failed {i}"} if i % 3 == 0 else None,
                         output={"stop_reason": "end_turn"}, **extra)
        store.save_run(done)
        runs.append(done)
    return runs


def _slow(store) -> "pl.DataFrame":
    """The runs frame from the run documents (the path every other store takes)."""
    return run_tables._runs_frame(store, store.list_runs(None)).sort("run_id")


def _fast(store) -> "pl.DataFrame":
    df = run_tables._summary_rows(store)
    assert df is not None, "the store's run summaries were not used"
    return run_tables._shape_runs(df).sort("run_id")


class _Parses:
    """Counts run documents parsed (``Run.from_dict``) in this process."""

    def __init__(self, monkeypatch) -> None:
        self.n = 0
        real = Run.from_dict.__func__

        def counting(cls, d):
            self.n += 1
            return real(cls, d)

        monkeypatch.setattr(Run, "from_dict", classmethod(counting))


def test_a_cold_runs_frame_parses_no_run_document(local_root, monkeypatch):
    st = LocalStore(local_root)
    runs = _fill(st, 40)
    st.close()
    parses = _Parses(monkeypatch)
    cold = LocalStore(local_root)  # a new kernel
    df = asm_nb.frames.runs(cold, backend="polars")
    assert df.height == 40
    assert parses.n == 0  # was one parse per run (list_runs) plus one per run when the store opened
    assert cold._runs.index == {}  # and no index of the run table was built
    costs = asm_nb.frames.costs(cold, backend="polars")
    assert costs.height == 40
    unpriced = sum(1 for r in runs if r.cost_usd is None)
    assert 0 < parses.n <= unpriced  # only the unpriced runs are read whole (priced post hoc)
    assert cold._runs.index == {}
    cold.close()


def test_opening_a_store_parses_no_table(local_root, monkeypatch):
    st = LocalStore(local_root)
    _fill(st, 10)
    st.close()
    parses = _Parses(monkeypatch)
    loads = []
    real_apply = _doclog.DocLog._apply
    monkeypatch.setattr(_doclog.DocLog, "_apply", lambda self, *a, **kw: loads.append(self.path.name)
                        or real_apply(self, *a, **kw))
    LocalStore(local_root).close()
    assert parses.n == 0 and loads == []  # opening used to index (parse) all of db/runs.jsonl


def test_the_frame_from_summaries_is_the_frame_from_the_documents(local_root):
    st = LocalStore(local_root)
    runs = _fill(st, 12)
    st.delete_session(runs[1].session_id)  # deletion lines
    st.save_run(runs[2].replace(cost_usd=9.5, metadata={"reported_cost_usd": 9.5}))  # a later line wins
    st.save_run(Run.new("ses_orphan", input="x").replace(status=RunStatus.CANCELLED))  # a run without a session
    fast, slow = _fast(st), _slow(st)
    assert fast.height == 12 and fast.equals(slow), (fast, slow)
    assert fast.schema == slow.schema
    st.close()


def test_a_store_kept_without_summaries_is_summarized_once(local_root, monkeypatch):
    st = LocalStore(local_root)
    _fill(st, 15)
    st.close()
    (local_root / "db" / "runs.summary.jsonl").unlink()  # as today's stores written before summaries
    st = LocalStore(local_root)
    assert _fast(st).equals(_slow(st))
    assert st._runs.summary.rows_made == 30  # every document line summarized once (2 lines per run)
    st.close()
    st = LocalStore(local_root)
    parses = _Parses(monkeypatch)
    assert _fast(st).height == 15 and parses.n == 0  # the next reader parses nothing
    st.close()


def test_lines_the_summary_misses_are_covered_by_readers_and_the_next_writer(local_root):
    st = LocalStore(local_root)
    _fill(st, 5)
    st.close()
    # an asm_nb that keeps no summary (or a writer killed between its two writes) appends runs
    old = LocalStore(local_root)
    old._runs.summary = None
    extra = _fill(old, 4)
    old.close()
    st = LocalStore(local_root)
    lines, tail = st.run_summaries()
    assert len(tail) == 8  # the 4 runs' 8 document lines, summarized in memory
    assert _fast(st).equals(_slow(st))
    st.save_run(extra[0].replace(turn_count=7))  # the next writer covers the gap first
    lines, tail = st.run_summaries()
    assert tail == [] and _fast(st).equals(_slow(st))
    st.close()


def test_compaction_and_a_torn_summary_line(local_root, monkeypatch):
    monkeypatch.setattr(_doclog, "_COMPACT_MARGIN", 4)
    st = LocalStore(local_root)
    s = session()
    st.save_session(s)
    r = run_for(s.id).replace(status=RunStatus.COMPLETED)
    for i in range(30):  # superseded lines pile up: the table is compacted (a new inode)
        st.save_run(r.replace(turn_count=i))
    ino = os.stat(local_root / "db" / "runs.jsonl").st_ino
    assert st._runs.lines < 30  # it was compacted
    lines, tail = st.run_summaries()
    assert tail == [] and b'"runs_ino":%d' % ino in (local_root / "db" / "runs.summary.jsonl").read_bytes()
    assert _fast(st).equals(_slow(st)) and _fast(st)["turn_count"].to_list() == [29]
    with open(local_root / "db" / "runs.summary.jsonl", "ab") as f:
        f.write(b'{"o":123,"n":4')  # a writer killed mid-line
    assert _fast(st).equals(_slow(st))  # readers stop at the last whole line
    other = LocalStore(local_root)
    other.save_run(r.replace(turn_count=99))  # the next writer cuts the torn line
    assert (local_root / "db" / "runs.summary.jsonl").read_bytes().endswith(b"}\n")
    assert _fast(other)["turn_count"].to_list() == [99] and _fast(other).equals(_slow(other))
    other.close()
    st.close()


def test_a_summary_of_another_runs_file_is_not_used(local_root):
    st = LocalStore(local_root)
    _fill(st, 3)
    st.close()
    runs_path = local_root / "db" / "runs.jsonl"
    data = runs_path.read_bytes()
    tmp = runs_path.with_name("x.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, runs_path)  # rewritten by an asm_nb without summaries: the header names the old inode
    st = LocalStore(local_root)
    assert _fast(st).equals(_slow(st))
    assert b'"runs_ino":%d' % os.stat(runs_path).st_ino in (local_root / "db" / "runs.summary.jsonl").read_bytes()
    st.close()


_HOLD = r"""
import sys, time
from asm_nb.core.run import Run, RunStatus
from asm_nb.core.session import Session
from asm_nb.stores.local import LocalStore
st = LocalStore(sys.argv[1])
s = Session.new("agent")
st.save_session(s)
st.save_run(Run.new(s.id, input="x").with_status(RunStatus.RUNNING))
print("ready", flush=True)
time.sleep(60)
"""


def test_a_run_whose_owner_died_shows_failed_in_a_cold_frame(local_root):
    LocalStore(local_root).close()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    p = subprocess.Popen([sys.executable, "-c", _HOLD, str(local_root)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        st = LocalStore(local_root)
        assert asm_nb.frames.runs(st, backend="polars")["status"].to_list() == ["running"]  # alive: left alone
        st.close()
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
    st = LocalStore(local_root)
    df = asm_nb.frames.runs(st, backend="polars")
    assert df["status"].to_list() == ["failed"] and df["error_code"].to_list() == ["interrupted"]
    st.close()


# -- index checkpoints (db/<table>.index.json) ----------------------------------------------------
from asm_nb.stores import _docindex  # noqa: E402


def _index_of(root, name: str):
    """(index, groups) of a table parsed from its file alone (no checkpoint)."""
    from asm_nb.core.run import Run as _Run
    from asm_nb.core.session import Session
    from asm_nb.stores._localdocs import _run_meta, _session_meta

    parse, meta = (_Run.from_dict, _run_meta) if name == "runs" else (Session.from_dict, _session_meta)
    dl = _doclog.DocLog(root / "db" / f"{name}.jsonl", parse, meta)
    os.rename(root / "db" / f"{name}.index.json", root / "db" / "hidden.json")
    try:
        dl.sync()
    finally:
        os.rename(root / "db" / "hidden.json", root / "db" / f"{name}.index.json")
    return dl.index, dl.groups


class _Parsed:
    """Counts document lines a DocLog parses while indexing (``_apply`` without the writer's docs)."""

    def __init__(self, monkeypatch) -> None:
        self.lines = 0
        real = _doclog.DocLog._apply

        def counting(dl, chunk, base, docs=None):
            if docs is None:
                self.lines += chunk.count(b"\n")
            return real(dl, chunk, base, docs)

        monkeypatch.setattr(_doclog.DocLog, "_apply", counting)


def test_a_new_process_parses_only_the_lines_after_the_index_checkpoint(local_root, monkeypatch):
    monkeypatch.setattr(_docindex, "CHECKPOINT_MIN_LINES", 20)
    st = LocalStore(local_root)
    _fill(st, 30)  # 30 sessions, 60 run lines: checkpoints written as the tables grow
    assert st._runs.cp_written >= 1 and st._sessions.cp_written >= 1
    st.close()
    parsed = _Parsed(monkeypatch)
    st = LocalStore(local_root)  # a new kernel
    st._runs.sync()
    st._sessions.sync()
    assert st._runs.cp_loaded == 1 and st._sessions.cp_loaded == 1
    assert parsed.lines < 20 + 10  # only the lines after each checkpoint (was all 90)
    for name, dl in (("runs", st._runs), ("sessions", st._sessions)):
        index, groups = _index_of(local_root, name)
        assert dl.index == index and dl.groups == groups
    assert _fast(st).equals(_slow(st))
    assert [r.id for r in st.list_runs(None)] == [r.id for r in LocalStore(local_root).list_runs(None)]
    st.close()


@pytest.mark.parametrize("damage", ["other_inode", "truncated", "garbage", "wrong_entry"])
def test_a_checkpoint_that_does_not_describe_the_table_is_ignored(local_root, monkeypatch, damage):
    monkeypatch.setattr(_docindex, "CHECKPOINT_MIN_LINES", 10)
    st = LocalStore(local_root)
    runs = _fill(st, 12)
    st.close()
    db = local_root / "db"
    cp = db / "runs.index.json"
    assert cp.exists()
    if damage == "other_inode":  # the table rewritten by an asm_nb that keeps no checkpoint
        (db / "x.tmp").write_bytes((db / "runs.jsonl").read_bytes())
        os.replace(db / "x.tmp", db / "runs.jsonl")
    elif damage == "truncated":
        os.truncate(db / "runs.jsonl", 10)
    elif damage == "garbage":
        cp.write_bytes(b"{not json")
    else:
        import json
        doc = json.loads(cp.read_bytes())
        doc["ids"][-1] = "run_someone_else"
        cp.write_text(json.dumps(doc))
    st = LocalStore(local_root)
    st._runs.sync()
    assert st._runs.cp_loaded == 0
    if damage != "truncated":
        assert {r.id for r in st.list_runs(None)} == {r.id for r in runs}
    st.close()
