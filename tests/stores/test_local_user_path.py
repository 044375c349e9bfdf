"""LocalStore on the path users take (``run_once`` into the default store): what one run costs
in files opened, locks taken, flusher wake-ups and bytes read, and that none of it grows with the
number of runs the store holds. Each bound here is the design, so breaking it fails a test."""

from __future__ import annotations

import os
import threading

import pytest

import asm_nb
from asm_nb.core.events import Event
from asm_nb.stores import _doclog
from asm_nb.stores.local import LocalStore

from .contract import run_for, session


class _Opens:
    """Counts ``os.open`` calls on paths under ``root`` (by file name pattern)."""

    def __init__(self, monkeypatch, root) -> None:
        self.root = str(root)
        self.paths: list[str] = []
        real = os.open

        def counting(path, *a, **kw):
            p = os.fspath(path)
            if isinstance(p, str) and p.startswith(self.root):
                self.paths.append(os.path.relpath(p, self.root))
            return real(path, *a, **kw)

        monkeypatch.setattr(os, "open", counting)

    def count(self, pred) -> int:
        return sum(1 for p in self.paths if pred(p))


def test_saves_keep_one_append_descriptor_and_reads_after_a_save_do_not_touch_the_file(local_root, monkeypatch):
    st = LocalStore(local_root)
    s = session()
    st.save_session(s)
    runs = [run_for(s.id) for _ in range(50)]
    opens = _Opens(monkeypatch, local_root)
    preads: list[int] = []
    real_pread = os.pread
    monkeypatch.setattr(os, "pread", lambda fd, n, off: preads.append(n) or real_pread(fd, n, off))
    for r in runs:
        st.save_run(r)
        assert st.get_run(r.id).status == r.status
    assert opens.count(lambda p: p.endswith("runs.jsonl")) <= 1  # was one open per save
    assert preads == []  # the line just written is served from memory, parsed from the same bytes
    other = LocalStore(local_root)  # another instance reads the same documents from the file
    assert [other.get_run(r.id).to_dict() for r in runs] == [st.get_run(r.id).to_dict() for r in runs]
    other.close()
    st.close()


def test_a_cached_save_reads_back_exactly_what_the_file_holds(local_root):
    """The cached copy is parsed from the written bytes: a value JSON cannot hold (NaN) reads
    back the same in this process as in another one."""
    st = LocalStore(local_root)
    s = session(metadata={"score": float("nan"), "t": (1, 2)})
    st.save_session(s)
    mine = st.get_session(s.id).metadata
    other = LocalStore(local_root)
    assert mine == other.get_session(s.id).metadata
    other.close()
    st.close()


def test_a_one_shot_run_leaves_nothing_buffered_and_wakes_no_flusher(local_root):
    """Its session's last event is written at once and the session lock released; the
    write-behind thread is not woken for each run (60 s timer: only the runs themselves write)."""
    st = LocalStore(local_root, flush_interval_ms=60_000)
    asm_nb.run_once("true", provider="shell", store=st)  # starts the flusher thread
    notifies: list[int] = []
    real = st._timer_cond.notify
    st._timer_cond.notify = lambda n=1: notifies.append(n) or real(n)
    results = [asm_nb.run_once("true", provider="shell", store=st) for _ in range(20)]
    assert all(r.status == "completed" for r in results)
    assert len(notifies) <= 1, notifies  # was two per run
    assert not st._owned and not any(sl.owned or sl.buf for sl in st._logs.values())
    other = LocalStore(local_root)  # another kernel sees every run's events, the last included
    for r in results:
        assert other.get_events(r.session_id)[-1].type.value == "session_completed"
    other.close()
    st.close()


def test_a_one_shot_run_takes_its_session_lock_once(local_root):
    """The run's end (payload flush, audit record, session_completed) happens under one holding
    of the session's OS lock: the payload flush writes everything but leaves the lock to the
    closing event (was: released, then taken again for the audit record and the session's end).
    Everything is on disk when the run returns, and the lock is free for other processes."""
    from asm_nb.stores import _locks

    st = LocalStore(local_root, flush_interval_ms=60_000)
    asm_nb.run_once("true", provider="shell", store=st)
    taken: list[str] = []
    real = _locks.FileLock.acquire

    def acquire(self):
        if not self.held and self.path.parent == st._events_dir:
            taken.append(self.path.name)
        return real(self)

    _locks.FileLock.acquire = acquire
    try:
        results = [asm_nb.run_once("true", provider="shell", store=st) for _ in range(10)]
    finally:
        _locks.FileLock.acquire = real
    assert all(r.status == "completed" for r in results)
    assert len(taken) == 10, taken  # was 20: two holdings per one-shot run
    assert not any(sl.owned or sl.buf for sl in st._logs.values())
    other = LocalStore(local_root)
    for r in results:
        types = [e.type.value for e in other.get_events(r.session_id)]
        assert types[-1] == "session_completed" and "run_completed" in types
        assert sum(1 for e in other.get_events(r.session_id) if (e.metadata or {}).get("source") == "audit") == 2
        assert other.get_run(r.run_id).status.value == "completed"
        other.append_event_with_sequence(Event.new("session_resumed", session_id=r.session_id))  # lock is free
    other.close()
    st.close()


def test_a_payload_flush_writes_everything_and_the_timer_releases_the_lock(local_root):
    """A run in a session that stays open: after the payload flush every event and the run row are
    on disk; the session lock is released by the write-behind timer (another process can append)."""
    import time as _time

    st = LocalStore(local_root, flush_interval_ms=50)
    r = asm_nb.run_once("true", provider="shell", store=st, session="kept-open")
    other = LocalStore(local_root)
    assert other.get_run(r.run_id).status.value == "completed"
    assert "run_completed" in [e.type.value for e in other.get_events(r.session_id)]
    deadline = _time.monotonic() + 10
    while any(sl.owned for sl in st._logs.values()) and _time.monotonic() < deadline:
        _time.sleep(0.02)
    assert not any(sl.owned for sl in st._logs.values())
    other.append_event_with_sequence(Event.new("session_paused", session_id=r.session_id))
    seqs = [e.sequence_number for e in other.get_events(r.session_id)]
    assert seqs == list(range(1, len(seqs) + 1))
    other.close()
    st.close()


def _fill(root, n: int) -> None:
    from asm_nb.core.run import RunStatus

    st = LocalStore(root)
    for _ in range(n):
        s = session()
        st.save_session(s)
        st.save_run(run_for(s.id).with_status(RunStatus.RUNNING).with_status(RunStatus.COMPLETED))
    st.close()


@pytest.mark.parametrize("stored", [10, 1500])
def test_a_run_opens_and_reads_the_same_whatever_the_store_holds(local_root, monkeypatch, stored):
    """Per one-shot run: files opened under the store and document bytes parsed do not depend
    on how many runs the store holds (no scan of the run or session tables)."""
    _fill(local_root, stored)
    st = LocalStore(local_root, flush_interval_ms=60_000)  # no timer flush in the middle of a run
    asm_nb.run_once("true", provider="shell", store=st)
    asm_nb.run_once("true", provider="shell", store=st, session="named")
    opens = _Opens(monkeypatch, local_root)
    parsed: list[int] = []
    real_apply = _doclog.DocLog._apply
    monkeypatch.setattr(_doclog.DocLog, "_apply",
                        lambda self, chunk, base, docs=None: (parsed.append(0 if docs else len(chunk)),
                                                              real_apply(self, chunk, base, docs))[1])
    loads: list[int] = []
    real_loads = _doclog.loads
    monkeypatch.setattr(_doclog, "loads", lambda b: loads.append(len(b)) or real_loads(b))
    n = 5
    for _ in range(n):
        assert asm_nb.run_once("true", provider="shell", store=st).status == "completed"
        assert asm_nb.run_once("true", provider="shell", store=st, session="named").status == "completed"
    per_run = len(opens.paths) / (2 * n)
    # event log + its lock, twice per run (the run's burst, then its session's closing burst)
    assert per_run <= 4, opens.paths[:12]
    assert opens.count(lambda p: p.startswith("db")) == 0  # tables: one kept descriptor each
    assert sum(parsed) == 0  # nothing re-read from the tables: only this process appended
    assert sum(loads) < 2 * n * 6000, len(loads)  # a few documents parsed per run, not the table
    st.close()


def test_appends_to_a_long_trimmed_session_do_not_scan_its_log(local_root, monkeypatch):
    """A long session (a SessionServer's, a notebook's) outgrows its cache share and is trimmed;
    a new event appended to it (an audit record: not the pipeline's unshared path) must not
    read the whole log to check its id, which made each run slower than the one before. An id
    stored before the trim still resolves to the stored event."""
    from asm_nb.stores import local as local_mod

    from .contract import ev, sid

    st = LocalStore(local_root, flush_interval_ms=60_000, max_cache_bytes=64 * 1024)
    s = sid()
    first = st.append_event_with_sequence(ev(s))
    for _ in range(20):
        st.append_events([ev(s) for _ in range(50)])
        st.flush()
    assert not st._logs[s].complete  # trimmed
    scans: list[str] = []
    real = local_mod._SessionLog.find_stored
    monkeypatch.setattr(local_mod._SessionLog, "find_stored", lambda self, i: scans.append(i) or real(self, i))
    fresh = [st.append_event_with_sequence(ev(s)) for _ in range(30)]
    assert [e.sequence_number for e in fresh] == list(range(1002, 1032))
    assert scans == []  # was one scan of the whole file per append
    assert st.append_event_with_sequence(first).sequence_number == 1  # an old id: one scan, found
    assert scans == [first.id]
    st.close()


def test_flush_waits_for_a_write_the_timer_has_started(local_root, monkeypatch):
    """``flush()`` returns once every buffered event is in the file, also when the write-behind
    thread has already picked the session and is writing it at that moment (it used to take it
    off the list flush() walks first, so flush() could return before the write)."""
    from asm_nb.stores import local as local_mod

    from .contract import ev, sid

    st = LocalStore(local_root, flush_interval_ms=1)
    s = sid()
    started, go = threading.Event(), threading.Event()
    real = local_mod._SessionLog.write_buffer

    def slow_write(self):
        if threading.current_thread() is st._flusher and self.buf:
            started.set()
            go.wait(5)  # the timer's write is under way, not finished
        return real(self)

    monkeypatch.setattr(local_mod._SessionLog, "write_buffer", slow_write)
    st.append_events([ev(s) for _ in range(5)])
    assert started.wait(5)
    done = threading.Event()
    t = threading.Thread(target=lambda: (st.flush(), done.set()))
    t.start()
    assert not done.wait(0.3)  # flush() waits for the timer's write...
    go.set()
    t.join(5)
    assert done.is_set()
    other = LocalStore(local_root)  # ...so when it returns, the events are in the file
    assert len(other.get_events(s)) == 5
    other.close()
    st.close()


def test_a_one_shot_run_writes_its_session_twice(local_root, monkeypatch):
    """Created active (not pending, then active) and finished; the run's flush adds no session line
    when the session did not change. Was four session lines per one-shot run."""
    st = LocalStore(local_root)
    asm_nb.run_once("true", provider="shell", store=st)
    lines: list[tuple[str, str]] = []
    real = _doclog.DocLog.append

    def counting(self, docs, objs=None):
        lines.extend((self.path.name, d.get("status")) for d in docs)
        return real(self, docs, objs)

    monkeypatch.setattr(_doclog.DocLog, "append", counting)
    r = asm_nb.run_once("true", provider="shell", store=st)
    assert r.status == "completed"
    assert [s for n, s in lines if n == "sessions.jsonl"] == ["active", "completed"]
    assert [s for n, s in lines if n == "runs.jsonl"] == ["running", "completed"]  # started at once: no pending row
    types = [e.type.value for e in st.get_events(r.session_id)]
    assert types[:2] == ["session_created", "session_started"] and types[-1] == "session_completed"
    other = LocalStore(local_root)  # what another process reads
    assert other.get_session(r.session_id).status.value == "completed"
    other.close()
    st.close()
