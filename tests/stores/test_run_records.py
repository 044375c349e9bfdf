"""Store-level trust on the user path (real processes): a run is final only after its events are
durable; runs whose process died are marked ``interrupted``; a named session is created once even
when four processes ask for the same new name at the same time (LocalStore, SQLite, PostgreSQL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import asm_nb
from asm_nb.core.errors import AsmError
from asm_nb.core.events import without_audit
from asm_nb.stores.local import LocalStore

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uses POSIX signals")


def _spawn(code: str, *args: str, **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kw)


def _terminal_events(store, run) -> list[str]:
    """The run's terminal events (its audit records, which repeat the type, left out)."""
    return [e.type.value for e in without_audit(store.get_events(run.session_id, run_id=run.id))
            if e.type.value in ("run_completed", "run_failed", "run_cancelled")]


# -- a run is final only after its events ------------------------------------------------------------
@pytest.mark.parametrize("command", ["echo ok", "echo no; exit 3"])
def test_second_reader_sees_a_finished_run_with_all_its_events(tmp_path, command):
    """The write-behind timer is far away (60 s): only the run's own finalization can make its
    events durable. A second store on the same folder (another kernel) must see them."""
    store = LocalStore(tmp_path / "s", flush_interval_ms=60_000)
    r = asm_nb.run_once(command, provider="shell", store=store)
    assert r.status in ("completed", "failed")
    other = LocalStore(tmp_path / "s")
    run = other.get_run(r.run_id)
    assert run.status.value == r.status
    seen = [e.id for e in without_audit(other.get_events(r.session_id, run_id=r.run_id))]
    assert seen == [e.id for e in r.events] and len(_terminal_events(other, run)) == 1
    # the one-shot session is closed: its last events (audit record, session_completed) are on
    # disk too, not waiting for the 60 s timer
    tail = [(e.type.value, e.metadata.get("source")) for e in other.get_events(r.session_id)][-2:]
    assert tail == [(r.status == "completed" and "run_completed" or "run_failed", "audit"),
                    ("session_completed" if r.status == "completed" else "session_failed", None)]
    other.close()
    store.close()


class _Boom:
    """An adapter whose execute fails after streaming a little (the manager's failure path)."""

    name = "boom"

    async def execute(self, run, session, *, event_callback=None, **kw):
        await event_callback({"type": "run_started", "data": {}})
        await event_callback({"type": "message_streamed", "data": {"delta": "par", "content": "par"}})
        raise AsmError("provider_error", "the provider went away")


def test_failed_run_is_final_only_after_its_events(tmp_path):
    store = LocalStore(tmp_path / "s", flush_interval_ms=60_000)
    r = asm_nb.run_once("go", provider=_Boom(), store=store)
    assert r.status == "failed"
    other = LocalStore(tmp_path / "s")
    assert other.get_run(r.run_id).status.value == "failed"
    assert _terminal_events(other, other.get_run(r.run_id)) == ["run_failed"]
    assert "message_streamed" in [e.type.value for e in other.get_events(r.session_id, run_id=r.run_id)]
    other.close()
    store.close()


KILLED_AFTER_RUN = """
    import os, signal, sys
    import asm_nb
    from asm_nb.stores.local import LocalStore
    store = LocalStore(sys.argv[1], flush_interval_ms=60_000)
    for cmd in ("echo a", "echo b; exit 2", "echo c"):
        asm_nb.run_once(cmd, provider="shell", store=store)
    os.kill(os.getpid(), signal.SIGKILL)   # right after the runs: nothing else gets to flush
"""


def test_kill_right_after_runs_leaves_no_terminal_run_without_events(tmp_path):
    p = _spawn(KILLED_AFTER_RUN, tmp_path / "s")
    p.communicate(timeout=120)
    assert p.returncode == -signal.SIGKILL
    store = LocalStore(tmp_path / "s")
    runs = store.list_runs(None)
    assert len(runs) == 3
    for run in runs:
        assert run.status.value in ("completed", "failed")
        assert len(_terminal_events(store, run)) == 1, run
    store.close()


# -- runs whose process died ----------------------------------------------------------------------
LONG_RUN = """
    import sys
    import asm_nb
    asm_nb.run_once("sleep 60", provider="shell", store=sys.argv[1])
"""


def _wait_running(open_store, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        store = open_store()
        try:
            runs = [r for r in store.list_runs(None) if r.status.value == "running"]
            if runs and any(e.type.value == "tool_call_started" for e in store.get_events(runs[0].session_id)):
                return runs[0]
        finally:
            store.close()
        time.sleep(0.1)
    raise AssertionError("the child never started its run")


@pytest.mark.parametrize("kind", ["local", "sqlite"])
def test_run_of_a_killed_process_is_marked_interrupted(tmp_path, kind):
    target = str(tmp_path / "s") if kind == "local" else f"sqlite:///{tmp_path}/s.db"

    def open_store():
        return asm_nb.open_store(target)

    if kind == "sqlite":
        open_store().close()  # created (and migrated) before the child starts
    p = _spawn(LONG_RUN, target, start_new_session=True)
    try:
        run = _wait_running(open_store)  # its owner is alive: listing leaves it running
        store = open_store()
        assert store.get_run(run.id).status.value == "running"
        store.close()
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate(timeout=30)
    store = open_store()  # opening the store repairs it
    got = store.get_run(run.id)
    assert got.status.value == "failed" and got.error["code"] == "interrupted", got
    types = [e.type.value for e in store.get_events(run.session_id, run_id=run.id)]
    assert types[0] in ("message_sent", "run_started") and "tool_call_started" in types  # partial events stay
    assert types[-1] == "run_failed" and types.count("run_failed") == 1
    store.close()
    store = open_store()
    assert store.get_run(run.id).error["code"] == "interrupted"  # once
    assert [e.type.value for e in store.get_events(run.session_id, run_id=run.id)].count("run_failed") == 1
    store.close()


# -- named sessions -------------------------------------------------------------------------------
NAMED = """
    import os, sys, time
    import asm_nb
    target, go = sys.argv[1], sys.argv[2]
    store = asm_nb.open_store(target)
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.002)
    for i in range(6):
        # a barrier per name: the four processes ask for each new name at the same moment
        open(f"{go}.{i}.{os.getpid()}", "w").close()
        folder = os.path.dirname(go)
        while sum(n.startswith(os.path.basename(go) + f".{i}.") for n in os.listdir(folder)) < 4:
            time.sleep(0.001)
        r = asm_nb.run_once("true", provider="shell", store=store, session=f"chat-{i}")
        assert r.status == "completed", r
    store.close()
    print("done", flush=True)
"""


def _named_sessions_once(target: str, go) -> None:
    procs = [_spawn(NAMED, target, go) for _ in range(4)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
    go.write_text("go")
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0 and out.strip() == "done", err[-2000:]
    store = asm_nb.open_store(target)
    try:
        names = [s.metadata.get("name") for s in store.list_sessions()]
        assert sorted(names) == sorted(f"chat-{i}" for i in range(6)), names
        for s in store.list_sessions():
            assert len(store.list_runs(s.id)) == 4  # every process's turn landed in the one session
    finally:
        store.close()


def test_named_session_is_created_once_by_four_processes_local(tmp_path):
    _named_sessions_once(str(tmp_path / "s"), tmp_path / "go")


def test_named_session_is_created_once_by_four_processes_sqlite(tmp_path):
    target = f"sqlite:///{tmp_path}/s.db"
    asm_nb.open_store(target).close()
    _named_sessions_once(target, tmp_path / "go")


def test_named_session_is_created_once_by_four_processes_postgresql(tmp_path, pg_server):
    _named_sessions_once(pg_server.new_database(), tmp_path / "go")
