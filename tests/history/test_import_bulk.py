"""The bulk store path of ``asm import`` (``ports.BatchWriter``, ``LocalStore.write_batch``):
it stores exactly what the per-file path (``append_events`` / ``save_runs`` / ``save_session``)
stores, with fewer lock rounds and writes, and keeps the store's guarantees (gap-free numbers
across processes, torn tails cut, pruning marks, nothing unredacted on disk)."""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import pytest

from asm_nb.core.errors import AsmError
from asm_nb.core.events import Event, EventType
from asm_nb.core.run import Run, RunStatus
from asm_nb.core.session import Session
from asm_nb.history import HistoryWarning, import_history
from asm_nb.ports import batch_writer
from asm_nb.stores import _locks, open_store
from asm_nb.stores.local import LocalStore
from asm_nb.stores.memory import InMemoryStore
from asm_nb.testing.history_logs import write_claude_code_logs, write_codex_logs

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "history"
SOURCES = {"claude-code": (FIX / "claude", write_claude_code_logs), "codex": (FIX / "codex", write_codex_logs)}
_ID = re.compile(rb'"id":"evt_[0-9a-f]+"')
_INO = re.compile(rb'"runs_ino":[0-9]+')


class PerFile(LocalStore):
    """A LocalStore written through the public methods one by one (an override of one of them
    turns the bulk path off): the path every import took before the bulk one."""

    def save_session(self, session):
        return super().save_session(session)


def _import(source, store, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HistoryWarning)
        rep = import_history(source, store, path=path)
    d = rep.to_dict()
    d.pop("duration_s")
    return d


def _halves(src: Path, dst: Path, part: int) -> None:
    """``dst`` = the tree of ``src`` with each file's first half (part 1) or whole (part 2)."""
    for f in src.rglob("*.jsonl"):
        out = dst / f.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        data = f.read_bytes()
        lines = data.splitlines(keepends=True)
        out.write_bytes(b"".join(lines[:max(len(lines) // 2, 1)]) if part == 1 else data)


def _stepwise(tmp: Path, logs: Path, stores: dict, call: Callable[[Any, Any, Path], dict]) -> dict:
    """Import ``logs`` into every store in four steps: each file's first half, then whole files
    (the logs have lines already), then nothing new, then one file grown by a torn and a whole
    line; ``call(key, store, folder)`` imports one folder. Returns each store's reports, in steps."""
    seq = [tmp / "in1", tmp / "in2"]
    _halves(logs, seq[0], 1)
    _halves(logs, seq[1], 2)
    reports: dict = {k: [] for k in stores}
    cur = tmp / "cur"
    for step in (seq[0], seq[1], seq[1], "grow"):
        if step == "grow":
            f = sorted(cur.rglob("*.jsonl"))[-1]
            f.write_bytes(f.read_bytes() + b'"}\n' + b'{"type": "summary", "summary": "later"}\n')
        else:
            if cur.exists():
                shutil.rmtree(cur)
            shutil.copytree(step, cur)
        for k, st in stores.items():
            reports[k].append(call(k, st, cur))
    return reports


def _logs(tmp: Path, source: str) -> Path:
    """The fixtures (every format version, malformed lines included) plus generated logs with a
    secret, a malformed line, a non-object line, an unknown record type and a half-written tail."""
    fix, gen = SOURCES[source]
    root = tmp / "logs"
    shutil.copytree(fix, root)
    g = gen(tmp / "gen", lines=400, sessions=3)
    for f in g["files"]:
        rel = f.relative_to(g["root"])
        out = root / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        lines = f.read_bytes().splitlines(keepends=True)
        lines.insert(5, b'{"type": "user", "oops\n')
        lines.insert(9, b'[1, 2, 3]\n')
        lines.insert(12, b'{"type": "never-seen-before", "timestamp": "2025-06-01T00:00:00Z"}\n')
        lines.insert(14, json.dumps({"type": "user", "timestamp": "2025-06-01T00:00:01Z",
                                     "message": {"role": "user", "content":
                                                 "token sk-ant-api03-" + "A1b2C3d4" * 12 + " here"},
                                     "payload": {"type": "message", "role": "user",
                                                 "content": [{"type": "input_text", "text":
                                                              "key AKIAIOSFODNN7EXAMPLE now"}]}}).encode() + b"\n")
        out.write_bytes(b"".join(lines) + b'{"type": "assistant", "half')
    return root


def _snapshot(store, root: Path) -> dict:
    """Everything an import leaves: sessions, runs, events without their random ids, and the
    bytes of the document tables, run summaries and event logs (ids masked)."""
    store.flush()
    out = {"sessions": [s.to_dict() for s in store.list_sessions()],
           "runs": sorted((r.to_dict() for r in store.list_runs(None)), key=lambda d: d["id"])}
    out["events"] = {s["id"]: [{k: v for k, v in e.to_dict().items() if k != "id"} for e in store.get_events(s["id"])]
                     for s in out["sessions"]}
    files = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix in (".jsonl", ".json") and p.name != "store.json":
            files[str(p.relative_to(root))] = _INO.sub(b"", _ID.sub(b'"id":"evt_"', p.read_bytes()))
    out["files"] = files
    return out


@pytest.mark.parametrize("source", ["claude-code", "codex"])
def test_the_bulk_path_stores_exactly_what_the_per_file_path_stores(tmp_path, monkeypatch, source):
    """First halves, then whole files (incremental), then nothing new, then a file that grew
    again: reports, sessions, runs, events (minus their random ids) and the bytes of every table,
    summary and log are the same through both paths. (Records without a time get the import's
    clock: it is fixed here.)"""
    from asm_nb.history import _base, _builder

    fixed = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)
    for mod in (_base, _builder):
        monkeypatch.setattr(mod, "_now", lambda: fixed)
    logs = _logs(tmp_path, source)
    stores = {"per-file": PerFile(tmp_path / "s-old"), "bulk": open_store(tmp_path / "s-new")}
    assert batch_writer(stores["per-file"]) is None and batch_writer(stores["bulk"]) is not None
    reports = _stepwise(tmp_path, logs, stores, lambda name, st, cur: _import(source, st, cur))
    assert reports["bulk"] == reports["per-file"]
    assert reports["bulk"][0]["warning_count"] > 0 and reports["bulk"][1]["events"] > 0
    assert reports["bulk"][2]["events"] == 0 and reports["bulk"][2]["files_unchanged"] > 0
    snaps = {name: _snapshot(st, Path(st.root)) for name, st in stores.items()}
    assert snaps["bulk"]["events"] and snaps["bulk"]["runs"]
    for key in ("sessions", "runs", "events", "files"):
        assert snaps["bulk"][key] == snaps["per-file"][key], key
    for st in stores.values():
        st.close()
    # and read back by a fresh process's store, the same again
    again = {name: open_store(Path(st.root)) for name, st in stores.items()}
    assert _snapshot(again["bulk"], Path(again["bulk"].root))["events"] == snaps["per-file"]["events"]
    for st in again.values():
        st.close()


def test_an_import_takes_one_lock_round_per_batch_not_four_per_file(tmp_path, monkeypatch):
    """Per batch: one OS lock round per session log and one ``db.lock`` round (the per-file path
    took a session lock and three ``db.lock`` rounds for every file)."""
    gen = write_claude_code_logs(tmp_path / "logs", lines=1200, sessions=6)
    rounds: collections.Counter = collections.Counter()
    real = _locks.FileLock.acquire

    def acquire(self):
        if not self.held:
            rounds["db" if self.path.name == "db.lock" else "session"] += 1
        return real(self)

    monkeypatch.setattr(_locks.FileLock, "acquire", acquire)
    st = open_store(tmp_path / "store")
    rep = _import("claude-code", st, gen["root"])
    files = len(gen["files"])
    assert rep["sessions_new"] == files >= 6 and rep["events"] > 1000
    assert rounds == {"session": files, "db": 1}
    rounds.clear()
    old = PerFile(tmp_path / "old")
    _import("claude-code", old, gen["root"])
    old.flush()
    assert rounds["db"] == 3 * files  # what the bulk path saves
    st.close()
    old.close()


def _ev(sid: str, i: int, run: str | None = "run_1", **kw) -> Event:
    ts = datetime(2025, 6, 1, tzinfo=timezone.utc) + timedelta(seconds=i)
    return Event.new(EventType.MESSAGE_RECEIVED, sid, run_id=run, timestamp=ts,
                     data={"role": "assistant", "content": f"m{i}"}, **kw)


def test_write_batch_one_write_per_log_and_one_append_per_group(tmp_path, monkeypatch):
    from asm_nb.stores import _doclog, _sessionlog

    st = LocalStore(tmp_path / "s")
    writes: collections.Counter = collections.Counter()
    real_write = os.write

    def counting(fd, data):
        writes[os.readlink(f"/proc/self/fd/{fd}").rsplit("/", 1)[-1]] += 1
        return real_write(fd, data)

    appends: collections.Counter = collections.Counter()
    real_append = _doclog.DocLog.append

    def append(self, docs, *a, **k):
        appends[self.path.name] += 1
        return real_append(self, docs, *a, **k)

    monkeypatch.setattr(_sessionlog.os, "write", counting)
    monkeypatch.setattr(_doclog.DocLog, "append", append)
    evs = [_ev(f"ses_{k}", i) for i in range(300) for k in "abc"]
    runs = [Run(id=f"run_{k}", session_id=f"ses_{k}", status=RunStatus.COMPLETED, input="x",
                started_at=datetime(2025, 6, 1, tzinfo=timezone.utc)) for k in "abc"]
    sessions = [Session.new("agent", id=f"ses_{k}") for k in "abc"]
    st.write_batch(evs, [runs, sessions])
    assert writes == {"ses_a.jsonl": 1, "ses_b.jsonl": 1, "ses_c.jsonl": 1, "runs.jsonl": 1, "runs.summary.jsonl": 1,
                      "sessions.jsonl": 1}
    assert appends == {"runs.jsonl": 1, "sessions.jsonl": 1}
    for k in "abc":
        got = st.get_events(f"ses_{k}")
        assert [e.sequence_number for e in got] == list(range(1, 301))
        assert [e.data["content"] for e in got] == [f"m{i}" for i in range(300)]
    assert [e.sequence_number for e in evs[:3]] == [1, 1, 1]  # numbered in place
    assert {r.id for r in st.list_runs(None)} == {"run_a", "run_b", "run_c"}
    assert {s.id for s in st.list_sessions()} == {"ses_a", "ses_b", "ses_c"}
    st.close()


def test_write_batch_numbers_after_other_writers_torn_tails_and_pruning_marks(tmp_path):
    """Two stores on one folder (two processes' view): numbers stay gap-free whoever writes; a
    torn last line is cut before the batch is written; a pruning mark is never gone below."""
    a, b = LocalStore(tmp_path / "s"), LocalStore(tmp_path / "s")
    a.append_events([_ev("ses_x", i) for i in range(3)])  # buffered: a holds the session's lock
    b.write_batch([_ev("ses_x", i) for i in range(3, 8)], [])  # waits for a's write-behind
    a.append_events([_ev("ses_x", i) for i in range(8, 10)])
    a.flush()
    for st in (a, b):
        got = st.get_events("ses_x")
        assert [e.sequence_number for e in got] == list(range(1, 11))
        assert [e.data["content"] for e in got] == [f"m{i}" for i in range(10)]
    log = tmp_path / "s" / "events" / "ses_x.jsonl"
    with open(log, "ab") as f:
        f.write(b'{"id":"evt_torn","type":"mess')
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        b.write_batch([_ev("ses_x", 10)], [])
    assert any("torn" in str(x.message) for x in w)
    assert [e.sequence_number for e in LocalStore(tmp_path / "s").get_events("ses_x")] == list(range(1, 12))
    (tmp_path / "s" / "events" / "ses_y.meta.json").write_text('{"last_sequence": 50}')
    b.write_batch([_ev("ses_y", 0), _ev("ses_y", 1)], [])
    assert [e.sequence_number for e in a.get_events("ses_y")] == [51, 52]
    a.close()
    b.close()


def test_a_failed_bulk_write_leaves_nothing_and_numbers_go_on(tmp_path, monkeypatch):
    from asm_nb.stores import _sessionlog

    st = LocalStore(tmp_path / "s")
    st.write_batch([_ev("ses_x", 0)], [])
    real = os.write

    def fail(fd, data):
        real(fd, bytes(data)[:10])  # half a line reaches the file, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_sessionlog.os, "write", fail)
    evs = [_ev("ses_x", i) for i in range(1, 4)]
    with pytest.raises(AsmError) as err:
        st.write_batch(evs, [[Run(id="run_1", session_id="ses_x", status=RunStatus.COMPLETED,
                                  started_at=datetime(2025, 6, 1, tzinfo=timezone.utc))]])
    assert err.value.code == "storage_error"
    assert all(e.sequence_number is None for e in evs)
    monkeypatch.undo()
    assert [e.sequence_number for e in st.get_events("ses_x")] == [1]
    assert st.list_runs(None) == []  # nothing after the events was written
    st.write_batch([_ev("ses_x", 5)], [])
    assert [e.sequence_number for e in LocalStore(tmp_path / "s").get_events("ses_x")] == [1, 2]
    st.close()


def test_batch_writer_is_used_only_where_nothing_replaces_the_public_writes(tmp_path):
    st = LocalStore(tmp_path / "a")
    assert batch_writer(st) == st.write_batch
    assert batch_writer(PerFile(tmp_path / "b")) is None

    class Counting(LocalStore):
        def append_events(self, events):
            return super().append_events(events)

    assert batch_writer(Counting(tmp_path / "c")) is None
    st.save_runs = lambda runs: None  # an instance attribute (a test double) replaces one
    assert batch_writer(st) is None
    assert batch_writer(InMemoryStore()) is None

    class Sub(LocalStore):  # a subclass that changes nothing keeps the bulk path
        pass

    assert batch_writer(Sub(tmp_path / "d")) is not None


def test_the_bulk_path_writes_no_secret(tmp_path):
    logs = _logs(tmp_path, "claude-code")
    st = open_store(tmp_path / "store")
    _import("claude-code", st, logs)
    st.close()
    raw = b"".join(p.read_bytes() for p in (tmp_path / "store").rglob("*") if p.is_file())
    assert b"A1b2C3d4A1b2C3d4" not in raw and b"AKIAIOSFODNN7EXAMPLE" not in raw
    assert b"REDACTED" in raw


def test_files_read_before_a_failure_are_kept_and_not_read_again(tmp_path, monkeypatch):
    """A line the handler cannot survive (an error that is not a bad-line error) stops the import,
    as before; the files read before it are written (they sit in the pending batch), so the next
    import reads only the rest."""
    from asm_nb.history import claude_code

    gen = write_claude_code_logs(tmp_path / "logs", lines=600, sessions=3)
    files = sorted(gen["files"])
    bad = files[-1]
    real = claude_code.handle_line

    def handler(obj, b):
        if b.job.path == bad and b.line_no == 3:
            raise RuntimeError("boom")
        real(obj, b)

    monkeypatch.setattr(claude_code, "handle_line", handler)
    st = open_store(tmp_path / "store")
    with pytest.raises(RuntimeError):
        _import("claude-code", st, gen["root"])
    stored = {s.id for s in st.list_sessions()}
    assert len(stored) == len(files) - 1  # every file before the bad one
    monkeypatch.undo()
    rep = _import("claude-code", st, gen["root"])
    assert rep["files_unchanged"] == len(files) - 1 and rep["files_read"] == 1 and rep["sessions_new"] == 1
    for s in st.list_sessions():
        evs = st.get_events(s.id)
        assert [e.sequence_number for e in evs] == list(range(1, len(evs) + 1))
    st.close()


def test_a_failing_bulk_write_stops_the_import_and_turns_the_gc_back_on(tmp_path, monkeypatch):
    import gc

    gen = write_codex_logs(tmp_path / "logs", lines=300, sessions=2)
    st = open_store(tmp_path / "store")

    def fail(self, events, upserts):
        raise AsmError("storage_error", "disk full")

    monkeypatch.setattr(LocalStore, "write_batch", fail)
    assert gc.isenabled()
    with pytest.raises(AsmError):
        _import("codex", st, gen["root"])
    assert gc.isenabled() and st.list_sessions() == []
    st.close()


def _runs_of_every_shape():
    import enum
    import uuid

    class Color(enum.Enum):
        RED = "red"

    t0 = datetime(2025, 6, 1, 1, 2, 3, 4, tzinfo=timezone.utc)
    shapes = [None, "text", {"content": "x"}, {"a": [1, 2.5, None, True, {"b": "c"}]}, {1: "int key"},
              {"t": (1, 2)}, {"u": uuid.UUID(int=7)}, {"e": Color.RED}, {"at": t0}, {"n": 2 ** 70}, [1, {"x": [2]}],
              {"s": {1, 2}}, {"nested": {"deeper": {"k": b"xx"}}}, {"f": float("nan")}]
    for i, v in enumerate(shapes):
        yield Run(id=f"run_{i}", session_id="ses_1", status=RunStatus.COMPLETED, input=v,
                  output=v if isinstance(v, dict) or v is None else {"content": v},
                  error={"code": "x", "message": v} if v is not None else None,
                  metadata={"m": v}, token_usage={"input_tokens": i, "extra": v}, started_at=t0,
                  ended_at=t0.astimezone(timezone(timedelta(hours=2))) if i % 2 else None,
                  provider="p", cost_usd=0.5, provider_metadata={"model_usage": {"m": {"input_tokens": i}}, "v": v})


def test_run_documents_equal_to_dict_on_every_shape():
    """The bulk path's run documents equal ``Run.to_dict()`` (values, key order and the encoded
    bytes) for plain values and for every value ``to_jsonable`` converts."""
    from asm_nb.stores import _codec
    from asm_nb.stores._localbulk import run_doc

    for r in _runs_of_every_shape():
        want = r.to_dict()
        got = run_doc(r)
        assert list(got) == list(want)
        assert _codec.dumps(got) == _codec.dumps(want), r.id


def test_the_reader_hands_over_a_block_of_lines_per_step(tmp_path):
    """``_blocks`` (what the import loop reads): the same lines and offsets as ``_lines``, one
    generator step per block rather than per line, the half-written tail left out."""
    import io

    from asm_nb.history import _driver

    data = b"".join(b'{"n": %d}\n' % i for i in range(5000)) + b"\n\n" + b'{"half'
    for start in (0, 7, len(data) // 2):
        blocks = list(_driver._blocks(io.BytesIO(data), start))
        flat, pos = [], start
        for block in blocks:
            for ln in block:
                pos += len(ln) + 1
                flat.append((pos, ln))
        assert flat == list(_driver._lines(io.BytesIO(data), start))
        assert flat[-1][0] == len(data) - len(b'{"half') and len(blocks) == 1
    small = list(_driver._blocks(io.BytesIO(data), 0, chunk=4096))
    assert len(small) > 10
    assert [x for b in small for x in b] == data.split(b"\n")[:-1]
