"""``import_history(..., workers=N)``: files read in worker processes store exactly what one
process stores (same bytes, events, runs, sessions, offsets, warnings, counts), usage keys shared
across files are still counted once, progress moves, bad values raise, and an interrupted import
leaves no worker behind."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import warnings
from datetime import datetime, timezone
from pathlib import Path

import pytest

from asm_nb.core.errors import AsmError
from asm_nb.history import HistoryWarning, _driver, _workers, import_history
from asm_nb.stores import _codec, open_store
from asm_nb.testing.history_logs import write_claude_code_logs

sys.path.insert(0, str(Path(__file__).parent))
from test_import_bulk import _logs, _snapshot, _stepwise  # noqa: E402

pytestmark = pytest.mark.skipif(os.name != "posix", reason="worker processes are used on POSIX only")

FIXED = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)


@pytest.fixture
def fixed_clock(tmp_path, monkeypatch):
    """Records without a time get the import's clock: fixed here and, through a
    ``sitecustomize`` on the workers' path, in the worker processes too."""
    from asm_nb.history import _base, _builder

    for mod in (_base, _builder):
        monkeypatch.setattr(mod, "_now", lambda: FIXED)
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(textwrap.dedent(f"""
        from datetime import datetime, timezone
        from asm_nb.history import _base, _builder
        _fixed = datetime.fromisoformat({FIXED.isoformat()!r})
        _base._now = _builder._now = lambda: _fixed
    """))
    old = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", str(site) + (os.pathsep + old if old else ""))


def _import(source, store, path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HistoryWarning)
        rep = import_history(source, store, path=path, **kw)
    d = rep.to_dict()
    d.pop("duration_s")
    return d


@pytest.mark.parametrize("source", ["claude-code", "codex"])
def test_two_processes_store_exactly_what_one_stores(tmp_path, fixed_clock, pools, source):
    """First halves, then whole files (the logs have lines already: numbers put in under the
    lock), then nothing new, then a file that grew: reports (warnings for malformed lines
    included), sessions, runs, events and the bytes of every table, summary and log are the same
    with workers=1 and workers=2, and the workers did read files."""
    logs = _logs(tmp_path, source)
    stores = {1: open_store(tmp_path / "s1"), 2: open_store(tmp_path / "s2")}
    reports = _stepwise(tmp_path, logs, stores, lambda n, st, cur: _import(source, st, cur, workers=n))
    assert reports[2] == reports[1]
    assert reports[2][0]["warning_count"] > 0 and reports[2][0]["warnings"]
    assert reports[2][1]["events"] > 0 and reports[2][1]["sessions_updated"] > 0
    assert reports[2][2]["events"] == 0 and reports[2][2]["files_unchanged"] > 0  # nothing new: no pool
    assert len(pools) >= 2 and all(p.stats["worker"] > 0 for p in pools), [p.stats for p in pools]
    snaps = {n: _snapshot(st, Path(st.root)) for n, st in stores.items()}
    assert snaps[2]["events"] and snaps[2]["runs"]
    for key in ("sessions", "runs", "events", "files"):
        assert snaps[2][key] == snaps[1][key], key
    for st in stores.values():
        st.close()


def _resumed(tmp_path: Path) -> Path:
    """Claude Code logs where later files repeat earlier files' messages (a resumed session
    copies them; the last copy's output count grew): each usage key is counted once."""
    gen = write_claude_code_logs(tmp_path / "gen", lines=1200, sessions=6)
    files = sorted(gen["files"])
    first = files[0].read_bytes().splitlines(keepends=True)
    copied = [ln for ln in first if b'"usage"' in ln][:8]
    for k, f in enumerate(files[1:], 1):
        extra = copied if k % 2 else [ln.replace(b'"output_tokens": ', b'"output_tokens": 1') for ln in copied]
        f.write_bytes(f.read_bytes() + b"".join(extra))
    return gen["root"]


def test_usage_keys_shared_across_files_are_counted_once_as_in_one_process(tmp_path, fixed_clock, pools):
    root = _resumed(tmp_path)
    stores = {n: open_store(tmp_path / f"s{n}") for n in (1, 2)}
    reps = {n: _import("claude-code", st, root, workers=n) for n, st in stores.items()}
    assert reps[2] == reps[1]
    (pool,) = pools
    assert pool.stats["again"] > 0, pool.stats  # stale worker results were read again here
    snaps = {n: _snapshot(st, Path(st.root)) for n, st in stores.items()}
    for key in ("sessions", "runs", "events", "files"):
        assert snaps[2][key] == snaps[1][key], key
    for st in stores.values():
        st.close()


def test_a_worker_that_dies_leaves_its_files_to_the_others(tmp_path, fixed_clock, pools, monkeypatch):
    gen = write_claude_code_logs(tmp_path / "logs", lines=1500, sessions=6)
    real = _workers._Worker.__init__

    def dying(self, code):
        real(self, code)
        self.proc.kill()  # before it reads anything

    monkeypatch.setattr(_workers._Worker, "__init__", dying)
    stores = {n: open_store(tmp_path / f"s{n}") for n in (1, 2)}
    reps = {n: _import("claude-code", st, gen["root"], workers=n) for n, st in stores.items()}
    assert reps[2] == reps[1] and reps[2]["events"] > 1000
    (pool,) = pools
    assert pool.stats["lost_workers"] == 1 and pool.stats["worker"] == 0
    snaps = {n: _snapshot(st, Path(st.root)) for n, st in stores.items()}
    assert snaps[2]["files"] == snaps[1]["files"]
    for st in stores.values():
        st.close()


def test_progress_moves_by_every_byte_read_with_workers(tmp_path, pools, monkeypatch):
    gen = write_claude_code_logs(tmp_path / "logs", lines=1500, sessions=5)

    class Bar:
        updates: list = []

        def update(self, n):
            self.updates.append(n)

        def close(self):
            pass

    bar = Bar()
    monkeypatch.setattr(_driver, "_progress", lambda enabled, total, source: bar)
    st = open_store(tmp_path / "store")
    rep = _import("claude-code", st, gen["root"], workers=2, progress=True)
    st.close()
    assert pools and rep["lines_read"] == gen["lines"]
    assert len(bar.updates) >= len(gen["files"]) and sum(bar.updates) == sum(f.stat().st_size for f in gen["files"])


def test_an_interrupted_import_leaves_no_worker_and_keeps_what_was_written(tmp_path, pools, monkeypatch,
                                                                           interrupt_at):
    gen = write_claude_code_logs(tmp_path / "logs", lines=3000, sessions=8)
    spawned: list = []
    real_init = _workers._Worker.__init__

    def spy(self, code):
        real_init(self, code)
        spawned.append(self.proc)

    monkeypatch.setattr(_workers._Worker, "__init__", spy)
    real_add = _workers.EncodedBatch.add_encoded
    interrupt_at(4)
    st = open_store(tmp_path / "store")
    with pytest.raises(KeyboardInterrupt):
        _import("claude-code", st, gen["root"], workers=2)
    assert spawned and all(p.returncode is not None for p in spawned)  # killed and reaped
    for p in spawned:
        with pytest.raises(ProcessLookupError):
            os.kill(p.pid, 0)
    assert not os.path.exists(pools[0].dir)
    assert len(st.list_sessions()) == 3  # the files taken before the interrupt are kept
    monkeypatch.setattr(_workers.EncodedBatch, "add_encoded", real_add)
    rep = _import("claude-code", st, gen["root"], workers=2)  # and the next import completes it
    assert rep["sessions_new"] == len(gen["files"]) - 3
    st.close()


@pytest.mark.parametrize("bad", [0, -1, 65, True, 1.5, "2"])
def test_a_bad_workers_value_raises_validation_error(tmp_path, bad):
    with pytest.raises(AsmError) as ei:
        import_history("claude-code", open_store(tmp_path / "s"), path=tmp_path, workers=bad)
    assert ei.value.code == "validation_error" and "workers" in str(ei.value)


def test_the_default_uses_a_second_process_for_large_imports_on_an_idle_machine_only(tmp_path, pools, monkeypatch):
    """Where the system keeps no CPU stall times, the cores are sampled before the import."""
    gen = write_claude_code_logs(tmp_path / "logs", lines=1200, sessions=4)
    monkeypatch.setattr(_workers, "_cpus", lambda: 4)
    monkeypatch.setattr(_workers, "_cpu_stall_us", lambda: None)
    monkeypatch.setattr(_workers, "_idle_cores", lambda: 3.9)

    def run(name):
        st = open_store(tmp_path / name)
        _import("claude-code", st, gen["root"])
        st.close()

    run("s1")  # ~1 MB: one process
    assert pools == []
    monkeypatch.setattr(_workers, "AUTO_MIN_BYTES", 1)
    run("s2")
    assert len(pools) == 1 and pools[0].n_workers == 1  # 2 processes: this one + 1
    assert pools[0].probe is None and pools[0].stats["worker"] > 0
    monkeypatch.setattr(_workers, "_idle_cores", lambda: 1.2)  # another job keeps a core busy
    run("s3")
    monkeypatch.setattr(_workers, "_idle_cores", lambda: 3.9)
    monkeypatch.setattr(_workers, "_cpus", lambda: 1)
    run("s4")  # one core: one process
    assert len(pools) == 1


@pytest.mark.parametrize("stalled", [False, True])
def test_the_automatic_second_process_is_ended_when_it_contends(tmp_path, fixed_clock, pools, monkeypatch, stalled):
    """Where the system keeps CPU stall times the worker starts at once (no sampling before the
    import); once the probe's window has passed, a stall share above its limit (another job
    makes tasks wait for a core) ends it, its files are read here and the store holds what one
    process stores."""
    gen = write_claude_code_logs(tmp_path / "logs", lines=1500, sessions=6)
    ref = open_store(tmp_path / "ref")
    _import("claude-code", ref, gen["root"], workers=1)
    monkeypatch.setattr(_workers, "AUTO_MIN_BYTES", 1)
    monkeypatch.setattr(_workers, "_cpus", lambda: 2)
    monkeypatch.setattr(_workers, "_idle_cores", lambda: pytest.fail("cores sampled before the import"))
    clock = {"us": 0}

    def stall():  # every reading: 0 (idle) or a second more (a task always waiting)
        clock["us"] += 1_000_000 if stalled else 0
        return clock["us"]

    monkeypatch.setattr(_workers, "_cpu_stall_us", stall)
    monkeypatch.setattr(_workers._Probe, "WINDOW", 0.0)
    st = open_store(tmp_path / "auto")
    _import("claude-code", st, gen["root"])
    (pool,) = pools
    assert pool.n_workers == 1 and pool.probe is None and pool.stall_share is not None
    if stalled:
        assert pool.stall_share > _workers._Probe.LIMIT
        assert pool.stats["contended"] == 1 and pool.stats["worker"] == 0 and pool.stats["lost_workers"] == 0
    else:
        assert pool.stall_share == 0.0 and pool.stats["contended"] == 0
    assert _snapshot(st, tmp_path / "auto") == _snapshot(ref, tmp_path / "ref")
    st.close()
    ref.close()


def test_cpu_stall_times_are_read_from_the_machine():
    got = _workers._cpu_stall_us()
    if os.path.exists("/proc/pressure/cpu"):
        assert isinstance(got, int) and got >= 0
        probe = _workers._Probe.start()
        assert probe is not None and probe.contended() is None  # before its window
    else:
        assert got is None and _workers._Probe.start() is None


def test_idle_cores_reads_the_machine(monkeypatch):
    idle = _workers._idle_cores(0.02)
    assert 0.0 <= idle <= (os.cpu_count() or 1) + 1e-9


def test_another_store_is_written_in_process(tmp_path, pools):
    gen = write_claude_code_logs(tmp_path / "logs", lines=800, sessions=3)
    rep = _import("claude-code", open_store("memory://"), gen["root"], workers=2)
    assert rep["events"] > 0 and pools == []


def test_renumber_puts_numbers_after_the_logs_last():
    from asm_nb.core.events import Event

    evs = [Event.new("message_sent", "ses_x", run_id="run_1", data={"content": 'a ,"sequence_number":7, b'})
           for _ in range(3)]
    one, _ = _codec.event_lines(evs[:2], 0)
    two, _ = _codec.event_lines(evs[2:], 0)
    lines, size = _codec.renumber([b"".join(one), b"".join(two)], 41)
    assert lines == _codec.event_lines(evs, 41)[0]
    assert size == sum(map(len, lines)) and [json.loads(x)["sequence_number"] for x in lines] == [42, 43, 44]
    with pytest.raises(ValueError):
        _codec.renumber([b"".join(one)[:-1]], 0)


def test_workers_import_this_asm_nb_whatever_the_working_folder_holds(tmp_path, pools, monkeypatch):
    """A working folder with another ``asm_nb`` (a clone of an older version) does not change
    what the workers import."""
    gen = write_claude_code_logs(tmp_path / "logs", lines=800, sessions=3)
    other = tmp_path / "cwd" / "asm_nb"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("raise ImportError('the wrong asm_nb')\n")
    monkeypatch.chdir(tmp_path / "cwd")
    st = open_store(tmp_path / "st")
    _import("claude-code", st, gen["root"], workers=2)
    st.close()
    (pool,) = pools
    assert pool.stats["lost_workers"] == 0 and pool.stats["worker"] > 0, pool.stats


def test_cli_import_workers(tmp_path, capsys, pools):
    from asm_nb.cli import main

    gen = write_claude_code_logs(tmp_path / "logs", lines=800, sessions=3)
    st = str(tmp_path / "st")
    assert main(["import", "claude-code", "--path", str(gen["root"]), "--store", st, "--workers", "0"]) == 2
    assert capsys.readouterr().err.startswith("asm: error: [validation_error] workers must be")
    assert main(["import", "claude-code", "--path", str(gen["root"]), "--store", st, "--workers", "2",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sessions_new"] == len(gen["files"]) and len(pools) == 1


def test_row_lines_are_the_lines_of_the_events_the_rows_make():
    """``_codec.row_lines`` (an import's events as rows, never built as ``Event``) gives the bytes
    ``event_lines`` gives for the same events; a row that needs the general path gives None."""
    from datetime import timedelta

    from asm_nb.core.events import EventType
    from asm_nb.persistence.pipeline import _make_event

    t0 = datetime(2025, 6, 1, 1, 2, 3, tzinfo=timezone.utc)
    t1 = t0 + timedelta(microseconds=5)
    rows = [("evt_1", EventType.RUN_STARTED, t0, "ses_a", "run_1", {"imported_from": "codex"},
             {"imported_from": "codex"}, "codex", None),
            ("evt_2", EventType.MESSAGE_SENT, t0, "ses_a", "run_1", {"role": "user", "content": "é \"q\" \n x"},
             {}, "codex", None),
            ("evt_3", EventType.TOKEN_USAGE_UPDATED, t1, "ses_a", None, {"input_tokens": 3, "cost_usd": 0.5},
             {"imported_from": "codex"}, None, "corr"),
            ("evt_4", EventType.TOOL_CALL_STARTED, t1, "ses_a", "run_2", {"tool_input": [1, {"a": None}]},
             {"k": [True]}, "codex", None)]
    events = [_make_event(*r) for r in rows]
    for first in (0, 9):
        got = _codec.row_lines(rows, first)
        assert got is not None and got == _codec.event_lines(events, first)
    assert _codec.row_lines([], 0) == ([], 0)
    odd = [
        (rows[0][0], rows[0][1], t0.astimezone(timezone(timedelta(hours=2))), *rows[0][3:]),  # not UTC
        (*rows[1][:5], {"at": t0}, *rows[1][6:]),  # a value orjson is not given as is
        (*rows[1][:5], {1: "int key"}, *rows[1][6:]),
        ("", *rows[1][1:]),  # no id
        (*rows[1][:3], "ses_a", 7, *rows[1][5:]),  # a run id that is not a string
        (rows[1][0], "message_sent", *rows[1][2:]),  # a type that is not an EventType
    ]
    for row in odd:
        assert _codec.row_lines([rows[0], row], 0) is None, row


def test_with_no_room_to_read_ahead_this_process_waits_for_the_workers(tmp_path, fixed_clock, pools, monkeypatch):
    gen = write_claude_code_logs(tmp_path / "logs", lines=1500, sessions=6)
    monkeypatch.setattr(_workers, "_AHEAD_BYTES", 1)  # nothing read ahead here: only in order
    stores = {n: open_store(tmp_path / f"s{n}") for n in (1, 2)}
    reps = {n: _import("claude-code", st, gen["root"], workers=n) for n, st in stores.items()}
    assert reps[2] == reps[1]
    (pool,) = pools
    assert pool.stats["worker"] > 0 and pool.stats["worker"] + pool.stats["here"] == len(gen["files"])
    snaps = {n: _snapshot(st, Path(st.root)) for n, st in stores.items()}
    assert snaps[2]["files"] == snaps[1]["files"]
    for st in stores.values():
        st.close()


def test_runs_handed_over_by_workers_come_back_equal():
    """``pack_upserts`` / ``unpack_upserts`` (runs as field tuples through the pickle): every run
    of every shape comes back equal, field by field, and other groups as they were."""
    import pickle

    from asm_nb.core.run import Run, RunStatus
    from asm_nb.core.session import Session
    from test_import_bulk import _runs_of_every_shape

    runs = list(_runs_of_every_shape())
    runs.append(Run(id="run_x", session_id="ses_1", status=RunStatus.FAILED, error={"code": "e", "message": "m"},
                    started_at=datetime(2025, 1, 1, tzinfo=timezone.utc)))
    sessions = [Session(id="ses_1", agent_id="a")]

    def picklable(r):
        try:
            pickle.dumps(r)
        except Exception:  # a test-local enum class
            return False
        return True

    for group, through_pickle in ((runs, False), ([r for r in runs if picklable(r)], True)):
        packed = _workers.pack_upserts([group, sessions, []])
        if through_pickle:
            packed = pickle.loads(pickle.dumps(packed, protocol=5))
        assert [is_runs for is_runs, _ in packed] == [True, False, False]
        back = _workers.unpack_upserts(packed)
        assert back[1] == sessions and back[2] == []
        assert len(back[0]) == len(group) > 5
        for a, b in zip(back[0], group):  # (a NaN read back from a pickle is another NaN: repr)
            assert type(a) is Run and repr(a) == repr(b) and (through_pickle or a == b)
