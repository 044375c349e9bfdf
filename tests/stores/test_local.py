"""LocalStore: the shared contract plus its file layout, write-behind buffer and repair rules
(docs/store-format.md). Two-process behaviour lives in ``test_local_processes.py``."""

from __future__ import annotations

import json
import os
import threading
import time
import warnings

import pytest

from asm_nb.core.errors import AsmError
from asm_nb.stores.local import LocalStore, LocalStoreWarning, decode_session_id, encode_session_id

from .contract import ArtifactRecordContract, StoreContract, ev, run_for, seqs, session, sid

KEYS = ["id", "type", "timestamp", "session_id", "run_id", "sequence_number", "data", "metadata",
        "schema_version", "provider", "correlation_id"]


def wait_until(pred, timeout=5.0):
    """Poll ``pred`` until true or ``timeout`` seconds pass; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(0.005)


def log_lines(store: LocalStore, session_id: str) -> list[bytes]:
    p = store.root / "events" / f"{encode_session_id(session_id)}.jsonl"
    return p.read_bytes().splitlines() if p.exists() else []


class TestLocalContract(StoreContract, ArtifactRecordContract):
    @pytest.fixture
    def store(self, local_store):
        return local_store


class TestLocalContractReopened(StoreContract):
    """The same contract against a store whose files were written by another instance."""

    @pytest.fixture
    def store(self, local_root):
        LocalStore(local_root).close()
        s = LocalStore(local_root, flush_interval_ms=5)
        yield s
        s.close()


# -- layout ------------------------------------------------------------------------------------
def test_layout_and_marker(local_store):
    root = local_store.root
    assert json.loads((root / "store.json").read_text()) == {"format": "asm-local", "version": 2}
    assert (root / "events").is_dir() and (root / "db").is_dir()
    s = session()
    local_store.save_session(s)
    r = run_for(s.id)
    local_store.save_run(r)
    local_store.save_run(r)
    [line] = (root / "db" / "sessions.jsonl").read_text().splitlines()
    assert json.loads(line)["id"] == s.id
    lines = (root / "db" / "runs.jsonl").read_text().splitlines()
    assert [json.loads(x)["id"] for x in lines] == [r.id, r.id]  # appended, the last one wins
    assert not (root / "db" / "runs.json").exists()


def test_newer_major_version_refused(local_root):
    local_root.mkdir(parents=True)
    (local_root / "store.json").write_text('{"format": "asm-local", "version": 3}')
    with pytest.raises(AsmError) as ei:
        LocalStore(local_root)
    assert ei.value.code == "migration_required"
    assert "version 3" in ei.value.message


def test_foreign_folder_refused(local_root):
    local_root.mkdir(parents=True)
    (local_root / "store.json").write_text('{"format": "something-else", "version": 1}')
    with pytest.raises(AsmError) as ei:
        LocalStore(local_root)
    assert ei.value.code == "storage_error"


def test_event_line_format(local_store):
    s = sid()
    e = ev(s, run_id="r1", data={"content": "héllo ✓", "role": "user", "n": [1, None]}, provider="shell")
    local_store.append_event(e)
    local_store.flush()
    [line] = log_lines(local_store, s)
    expected = json.dumps(e.replace(sequence_number=1).to_dict(), ensure_ascii=False, separators=(",", ":"))
    assert line.decode("utf-8") == expected
    assert list(json.loads(line)) == KEYS
    assert "héllo ✓".encode() in line


def test_event_line_format_odd_values(local_store):
    from datetime import datetime, timezone

    s = sid()
    when = datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=timezone.utc)
    e = ev(s, data={"when": when, 1: "int key", "tags": {"b", "a"}, "raw": b"\x00\x01"}, metadata={"t": (1, 2)})
    local_store.append_event(e)
    local_store.flush()
    [line] = log_lines(local_store, s)
    assert json.loads(line) == e.replace(sequence_number=1).to_dict()


def test_session_ids_are_encoded_in_file_names(local_store):
    odd = "team/a b%ü"
    local_store.append_event(ev(odd))
    paths = local_store.event_log_paths()
    assert list(paths) == [odd]
    assert paths[odd].name == "team%2Fa%20b%25%C3%BC.jsonl"
    assert decode_session_id(encode_session_id(odd)) == odd
    assert encode_session_id("ses_abc.1-2") == "ses_abc.1-2"


# -- persistence across instances ----------------------------------------------------------------------
def test_reopen_keeps_everything_and_continues_numbering(local_root):
    s = session()
    with LocalStore(local_root) as a:
        a.save_session(s)
        a.save_run(run_for(s.id, status="running"))
        a.append_events([ev(s.id), ev(s.id)])
    with LocalStore(local_root) as b:
        assert b.get_session(s.id).id == s.id
        assert b.get_active_run(s.id) is not None
        assert seqs(b.get_events(s.id)) == [1, 2]
        assert b.append_event_with_sequence(ev(s.id)).sequence_number == 3
        assert b.get_latest_sequence(s.id) == 3


def test_two_instances_share_rows_immediately(local_root):
    with LocalStore(local_root) as a, LocalStore(local_root) as b:
        r = run_for("ses_x", status="running")
        a.save_run(r)
        assert b.get_active_run("ses_x").id == r.id
        a.save_run(r.with_status("completed"))
        assert b.get_active_run("ses_x") is None
        s = session()
        b.save_session(s)
        a.save_session(session())
        assert s.id in {x.id for x in a.list_sessions()} and len(b.list_sessions()) == 2


def test_two_instances_interleave_gap_free(local_root):
    """Two instances hold separate OS locks (like two processes) on one session's log."""
    s = sid()
    with LocalStore(local_root, flush_interval_ms=2) as a, LocalStore(local_root, flush_interval_ms=2) as b:
        def writer(store, tag):
            for i in range(60):
                store.append_event(ev(s, data={"content": f"{tag}{i}", "role": "user"}))
                if i % 10 == 0:
                    store.append_events([ev(s), ev(s)])

        ta = threading.Thread(target=writer, args=(a, "a"))
        tb = threading.Thread(target=writer, args=(b, "b"))
        ta.start()
        tb.start()
        ta.join(20)
        tb.join(20)
        a.flush()
        b.flush()
        got = a.get_events(s)
        assert seqs(got) == list(range(1, 145))
        assert seqs(b.get_events(s)) == list(range(1, 145))
        a_contents = [e.data["content"] for e in got if e.data["content"].startswith("a")]
        assert a_contents == [f"a{i}" for i in range(60)]


def test_duplicate_from_other_instance(local_root):
    s = sid()
    e = ev(s)
    with LocalStore(local_root) as a, LocalStore(local_root) as b:
        first = a.append_event_with_sequence(e)
        a.flush()
        again = b.append_event_with_sequence(e)
        assert again.sequence_number == first.sequence_number == 1
        assert b.get_latest_sequence(s) == 1


# -- write-behind buffer ---------------------------------------------------------------------------
def test_buffered_events_visible_in_process_before_write(local_root):
    s = sid()
    with LocalStore(local_root, flush_interval_ms=60_000) as st:
        st.append_event(ev(s))
        assert seqs(st.get_events(s)) == [1]
        assert log_lines(st, s) == []  # still buffered
        st.flush()
        assert len(log_lines(st, s)) == 1


def test_timer_writes_buffer(local_root):
    s = sid()
    with LocalStore(local_root, flush_interval_ms=20) as st:
        st.append_events([ev(s), ev(s)])
        assert wait_until(lambda: len(log_lines(st, s)) == 2, timeout=5)
        # the lock was released: another instance can append without waiting for close()
        with LocalStore(local_root, flush_interval_ms=20) as other:
            assert other.append_event_with_sequence(ev(s)).sequence_number == 3


def test_buffer_size_limit_writes_at_once(local_root):
    s = sid()
    with LocalStore(local_root, flush_interval_ms=60_000, max_buffer_bytes=2000) as st:
        for _ in range(10):
            st.append_event(ev(s, data={"content": "x" * 300, "role": "user"}))
        assert len(log_lines(st, s)) >= 5


def test_close_flushes(local_root):
    s = sid()
    st = LocalStore(local_root, flush_interval_ms=60_000)
    st.append_events([ev(s) for _ in range(5)])
    st.close()
    assert len(log_lines(st, s)) == 5
    with pytest.raises(AsmError) as ei:
        st.append_event(ev(s))
    assert ei.value.code == "storage_error"
    assert seqs(st.get_events(s)) == [1, 2, 3, 4, 5]  # reads still work
    st.close()  # idempotent


def test_fsync_durability(local_root):
    s = sid()
    with LocalStore(local_root, durability="fsync") as st:
        st.append_event(ev(s))
        st.save_session(session())
    assert len(log_lines(st, s)) == 1


def test_bad_options(local_root):
    with pytest.raises(AsmError):
        LocalStore(local_root, durability="never")
    with pytest.raises(AsmError):
        LocalStore(local_root, flush_interval_ms=-1)
    with pytest.raises(AsmError):
        LocalStore(local_root, max_buffer_bytes=0)


def test_flush_interval_from_config(local_root):
    from asm_nb import config

    with config.override(local_flush_interval_ms=7):
        st = LocalStore(local_root)
    try:
        assert st.flush_interval_s == pytest.approx(0.007)
    finally:
        st.close()


# -- repair -------------------------------------------------------------------------------------
def _write_log(root, session_id, events, tail=b""):
    d = root / "events"
    d.mkdir(parents=True, exist_ok=True)
    body = b"".join(json.dumps(e.to_dict(), separators=(",", ":")).encode() + b"\n" for e in events)
    (d / f"{session_id}.jsonl").write_bytes(body + tail)
    return d / f"{session_id}.jsonl"


def test_torn_tail_skipped_then_truncated_with_warning(local_root):
    LocalStore(local_root).close()
    s = sid()
    good = [ev(s).replace(sequence_number=i) for i in (1, 2)]
    path = _write_log(local_root, s, good, tail=b'{"id":"evt_torn","type":"mess')
    with LocalStore(local_root) as st:
        assert seqs(st.get_events(s)) == [1, 2]  # reader: torn bytes ignored
        with pytest.warns(LocalStoreWarning, match="torn"):
            assert st.append_event_with_sequence(ev(s)).sequence_number == 3
        st.flush()
    lines = path.read_bytes().splitlines()
    assert [json.loads(x)["sequence_number"] for x in lines] == [1, 2, 3]


def test_unreadable_line_skipped_with_one_warning(local_root):
    LocalStore(local_root).close()
    s = sid()
    e1, e2 = ev(s).replace(sequence_number=1), ev(s).replace(sequence_number=3)
    d = local_root / "events"
    body = (json.dumps(e1.to_dict()) + "\nnot json at all\n{\"also\": \"bad\"}\n" + json.dumps(e2.to_dict()) + "\n")
    (d / f"{s}.jsonl").write_text(body)
    with LocalStore(local_root) as st:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert seqs(st.get_events(s)) == [1, 3]
            st.get_events(s)
        assert len([w for w in caught if issubclass(w.category, LocalStoreWarning)]) == 1
        assert st.append_event_with_sequence(ev(s)).sequence_number == 4


def test_meta_high_water_mark(local_root):
    LocalStore(local_root).close()
    s = sid()
    _write_log(local_root, s, [ev(s).replace(sequence_number=1)])
    (local_root / "events" / f"{s}.meta.json").write_text('{"last_sequence": 9}')
    with LocalStore(local_root) as st:
        assert st.get_latest_sequence(s) == 9
        assert st.append_event_with_sequence(ev(s)).sequence_number == 10


def test_log_rewritten_elsewhere_is_reloaded(local_root):
    """A prune (temp file + os.replace) by another process: readers reload, writers continue."""
    s = sid()
    with LocalStore(local_root) as st:
        st.append_events([ev(s) for _ in range(3)])
        st.flush()
        path = st.event_log_paths()[s]
        kept = path.read_bytes().splitlines()[2:]
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(b"\n".join(kept) + b"\n")
        (path.parent / f"{s}.meta.json").write_text('{"last_sequence": 3}')
        os.replace(tmp, path)
        assert seqs(st.get_events(s)) == [3]
        assert st.append_event_with_sequence(ev(s)).sequence_number == 4


# -- delete, flush, listing -------------------------------------------------------------------------
def test_delete_removes_files(local_store):
    s = session()
    local_store.save_session(s)
    local_store.append_event(ev(s.id))
    local_store.flush()
    events_dir = local_store.root / "events"
    assert (events_dir / f"{s.id}.jsonl").exists()
    local_store.delete_session(s.id)
    assert not (events_dir / f"{s.id}.jsonl").exists()
    assert not (events_dir / f"{s.id}.lock").exists()
    assert local_store.event_log_paths() == {}


def test_delete_seen_by_other_instance(local_root):
    s = sid()
    with LocalStore(local_root) as a, LocalStore(local_root) as b:
        a.append_events([ev(s), ev(s)])
        a.flush()
        assert len(b.get_events(s)) == 2
        a.delete_session(s)
        assert b.get_events(s) == []
        assert b.append_event_with_sequence(ev(s)).sequence_number == 1


def test_flush_payload_rolls_back_when_rows_fail(local_store, monkeypatch):
    s = session()
    local_store.append_event(ev(s.id))
    r = run_for(s.id)
    from asm_nb.stores import _doclog

    def boom(self, docs):
        raise OSError("disk full")

    monkeypatch.setattr(_doclog.DocLog, "append", boom)
    with pytest.raises(AsmError) as ei:
        local_store.flush({"session": s, "run": r, "events": [ev(s.id), ev(s.id)]})
    assert ei.value.code == "storage_error" and "flush failed" in ei.value.message
    monkeypatch.undo()
    assert seqs(local_store.get_events(s.id)) == [1]
    assert len(log_lines(local_store, s.id)) == 1
    with pytest.raises(AsmError):
        local_store.get_session(s.id)
    assert local_store.append_event_with_sequence(ev(s.id)).sequence_number == 2


def test_save_failure_is_storage_error(local_store, monkeypatch):
    from asm_nb.stores import _doclog

    monkeypatch.setattr(_doclog.DocLog, "append", lambda self, docs: (_ for _ in ()).throw(OSError("ro")))
    with pytest.raises(AsmError) as ei:
        local_store.save_run(run_for("ses_1"))
    assert ei.value.code == "storage_error" and "save_run failed" in ei.value.message


def test_list_runs_all_and_session_ids(local_store):
    local_store.save_session(session(id="ses_a"))
    local_store.save_run(run_for("ses_b"))
    local_store.append_event(ev("ses_c"))
    assert local_store.list_session_ids() == ["ses_a", "ses_b", "ses_c"]
    assert [r.session_id for r in local_store.list_runs(None)] == ["ses_b"]


def test_artifact_records_open_with_tinydb(local_store):
    from tinydb import TinyDB

    from asm_nb.stores._tinydb import StrIdTable

    local_store.save_artifact_record({"id": "art_1", "session_id": "ses_x", "key": "k"})
    db = TinyDB(local_store.root / "db" / "artifacts.json")
    db.table_class = StrIdTable
    [doc] = db.table("artifacts").all()
    assert doc.doc_id == "art_1" and doc["key"] == "k"
    db.close()


def test_inline_safe_and_root(local_store, local_root):
    assert LocalStore.inline_safe is True
    assert local_store.root == local_root.absolute()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_does_not_inherit_the_parent_buffer(local_root):
    s = sid()
    with LocalStore(local_root, flush_interval_ms=60_000) as st:
        st.append_events([ev(s) for _ in range(3)])  # buffered, parent holds the session lock
        r, w = os.pipe()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
            pid = os.fork()
        if pid == 0:  # child: must wait for the parent's lock, then continue its numbering
            code = 1
            try:
                os.close(r)
                seq = st.append_event_with_sequence(ev(s)).sequence_number
                st.flush()
                os.write(w, str(seq).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        st.flush()  # releases the lock the child is waiting for
        _, status = os.waitpid(pid, 0)
        child_seq = int(os.read(r, 100) or b"0")
        os.close(r)
        assert os.waitstatus_to_exitcode(status) == 0
        assert child_seq == 4
        assert seqs(st.get_events(s)) == [1, 2, 3, 4]
    assert len(log_lines(st, s)) == 4


# -- maintenance hooks --------------------------------------------------------------------------------
def test_delete_events_rewrites_log_and_keeps_high_water_mark(local_root):
    s = sid()
    with LocalStore(local_root) as st, LocalStore(local_root) as other:
        stored = st.append_events([ev(s) for _ in range(5)])
        assert st.delete_events(s, [stored[1].id, stored[4].id, "evt_unknown"]) == 2
        assert st.delete_events(s, ["evt_unknown"]) == 0
        assert seqs(st.get_events(s)) == [1, 3, 4]
        assert [json.loads(x)["sequence_number"] for x in log_lines(st, s)] == [1, 3, 4]
        meta = json.loads((local_root / "events" / f"{s}.meta.json").read_text())
        assert meta == {"last_sequence": 5}
        assert seqs(other.get_events(s)) == [1, 3, 4]  # another instance reloads the rewritten log
        assert other.get_latest_sequence(s) == 5
        assert st.append_event_with_sequence(ev(s)).sequence_number == 6
        assert st.sequence_counters() == {s: 6}


def test_delete_sequence_counter_only_when_empty(local_store):
    s = sid()
    stored = local_store.append_events([ev(s), ev(s)])
    local_store.delete_sequence_counter(s)
    assert local_store.get_latest_sequence(s) == 2
    local_store.delete_events(s, [e.id for e in stored])
    assert local_store.get_events(s) == [] and local_store.get_latest_sequence(s) == 2
    local_store.delete_sequence_counter(s)
    assert local_store.get_latest_sequence(s) == 0
    assert local_store.sequence_counters() == {}
    assert local_store.append_event_with_sequence(ev(s)).sequence_number == 1


def test_generic_maintenance_prunes_local_store(local_store):
    maintenance = pytest.importorskip("asm_nb.stores._maintenance")
    retention = pytest.importorskip("asm_nb.persistence.retention")
    s = session()
    local_store.save_session(s)
    local_store.append_events([ev(s.id, "message_streamed", data={"content": str(i)}) for i in range(30)])
    policy = retention.RetentionPolicy.new(max_events_per_session=10)
    pruned = maintenance.GenericMaintenance(local_store).prune_session_events(s.id, policy)
    assert pruned == 20
    assert len(local_store.get_events(s.id)) == 10
    assert local_store.get_latest_sequence(s.id) == 30


# -- bounded memory --------------------------------------------------------------------------------
def test_trimmed_log_keeps_every_guarantee(local_root):
    """A log whose parsed events outgrow the cache share is trimmed after a write: appends go on
    without re-reading the file, queries reaching into the trimmed part read it, an id stored
    before the trim still resolves to the stored event, maintenance sees every event."""
    st = LocalStore(local_root, flush_interval_ms=60_000, max_cache_bytes=64 * 1024)
    s = sid()
    first = ev(s)
    stored = [st.append_event_with_sequence(first)]
    for _round in range(40):
        stored += st.append_events([ev(s) for _ in range(50)])
        st.flush()
        slog = st._logs[s]
        assert slog.cached_bytes * 4 <= 64 * 1024 // 8 + 50 * 400  # never more than one batch over
    assert not st._logs[s].complete  # it was trimmed
    assert seqs(st.get_events(s)) == list(range(1, 2002))
    assert [e.id for e in st.get_events(s)] == [e.id for e in stored]
    assert seqs(st.get_events(s, after=1990)) == list(range(1991, 2002))
    assert st.append_event_with_sequence(first).sequence_number == 1  # dedupe reaches the file
    assert st.append_event_with_sequence(ev(s)).sequence_number == 2002
    other = LocalStore(local_root)
    assert seqs(other.get_events(s)) == list(range(1, 2002))  # 2002 is still buffered
    st.flush()
    assert other.get_latest_sequence(s) == 2002
    other.close()
    assert st.delete_events(s, [first.id]) == 1
    assert seqs(st.get_events(s))[:2] == [2, 3]
    st.close()


def test_many_sessions_do_not_keep_their_events_or_descriptors(local_root):
    st = LocalStore(local_root, max_cache_bytes=256 * 1024)
    before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    for _ in range(400):
        s = sid()
        st.append_events([ev(s) for _ in range(20)])
        st.flush()
    assert len(st._logs) < 100  # older parsed logs were let go
    assert sum(sl.cached_bytes for sl in st._logs.values()) * 4 <= 256 * 1024 + 32 * 1024
    assert seqs(st.get_events(st.list_session_ids()[0])) == list(range(1, 21))  # re-read on demand
    if before is not None:
        assert len(os.listdir("/proc/self/fd")) <= before + 4  # no lock descriptor per session
    st.close()


def test_a_new_store_folder_keeps_itself_out_of_git(tmp_path):
    """The store writes ``.gitignore`` (``*``) into a folder it creates, so ``./.asm`` beside a
    notebook in a git repository is never committed; a folder that already existed is left alone."""
    import shutil
    import subprocess

    from asm_nb.stores.local import LocalStore

    repo = tmp_path / "project"
    repo.mkdir()
    git = shutil.which("git")
    if git:
        subprocess.run([git, "init", "-q", str(repo)], check=True)
    store = LocalStore(repo / ".asm")
    store.close()
    assert (repo / ".asm" / ".gitignore").read_text().splitlines()[-1] == "*"
    if git:
        status = subprocess.run([git, "status", "--porcelain", "--untracked-files=all"], cwd=repo,
                                capture_output=True, text=True, check=True).stdout
        assert status == "", status  # nothing of the store shows up as untracked
    own = tmp_path / "mine"
    own.mkdir()
    (own / "notes.txt").write_text("keep me visible")
    LocalStore(own).close()
    assert not (own / ".gitignore").exists()


def test_a_save_touches_one_line_whatever_the_store_holds(local_root):
    """Per-run cost does not depend on the store's size: with hundreds of runs stored, saving a
    run appends one line and parses only that line (no table rewritten or re-read)."""
    from asm_nb.stores import _doclog

    st = LocalStore(local_root)
    s = session()
    st.save_session(s)
    runs = [run_for(s.id) for _ in range(300)]
    for r in runs:
        st.save_run(r)
    path = local_root / "db" / "runs.jsonl"
    size = path.stat().st_size
    parsed: list[int] = []
    real = _doclog.DocLog._apply
    _doclog.DocLog._apply = lambda self, chunk, base, *a: parsed.append(len(chunk)) or real(self, chunk, base, *a)
    try:
        st.save_run(runs[7].with_status("running"))
        assert st.get_run(runs[7].id).status.value == "running"
        assert st.get_run(runs[250].id).id == runs[250].id
    finally:
        _doclog.DocLog._apply = real
    line = path.stat().st_size - size
    assert 0 < line < 2000 and sum(parsed) == line  # one line written, one line parsed
    st.close()
