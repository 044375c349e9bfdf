"""SqlStore across real processes (docs/stores.md, store contract): concurrent appenders to one session
stay unique and gap-free and lose nothing (SQLite and PostgreSQL); 4 processes x 50 replayed
runs into one PostgreSQL store give 200 runs with gap-free sessions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from asm_nb.stores.sql import SqlStore

from .contract import seqs, session, sid


APPENDER = textwrap.dedent("""
    import os, sys, time
    from asm_nb.core.events import Event
    from asm_nb.stores.sql import SqlStore

    url, session_id, tag, n, go = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    store = SqlStore(url, flush_interval_ms=5)
    print("ready", flush=True)
    deadline = time.monotonic() + 30
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.002)
    i = 0
    while i < n:
        if i % 7 == 0:
            store.append_events([Event.new("message_streamed", session_id, data={"content": f"{tag}{i + k}"})
                                 for k in range(3)])
            i += 3
        else:
            store.append_event(Event.new("message_streamed", session_id, data={"content": f"{tag}{i}"}))
            i += 1
        if i % 40 == 0:
            store.flush()
    store.close()
    print("done", flush=True)
""")

RUNNER = textwrap.dedent("""
    import json, os, sys, time
    import asm_nb
    from asm_nb.testing import example_cassette

    url, sessions, n, go = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3]), sys.argv[4]
    store = asm_nb.open_store(url)
    cassette = example_cassette("hello")
    print("ready", flush=True)
    deadline = time.monotonic() + 30
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.002)
    out = {}
    for i in range(n):
        r = asm_nb.run_once("hi", provider="replay", options={"cassette": cassette}, store=store,
                            session=sessions[i % len(sessions)], continuation=False)
        assert r.status == "completed", r.error
        out[r.run_id] = len(r.events)
    store.close()
    print(json.dumps(out), flush=True)
""")


def _spawn(code: str, *args) -> subprocess.Popen:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _ready(proc: subprocess.Popen) -> None:
    line = proc.stdout.readline().strip()
    assert line == "ready", f"expected 'ready', got {line!r}; stderr: {proc.stderr.read()[-3000:]}"


def _finish(proc: subprocess.Popen, timeout: float = 90) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return out.strip().splitlines()[-1]


def _appenders(url: str, tmp_path, n_procs: int, n: int) -> None:
    s, go = sid(), tmp_path / "go"
    SqlStore(url).close()  # schema in place before the writers race
    tags = [chr(ord("a") + i) for i in range(n_procs)]
    procs = [_spawn(APPENDER, url, s, tag, n, go) for tag in tags]
    for p in procs:
        _ready(p)
    go.touch()
    for p in procs:
        assert _finish(p) == "done"
    with SqlStore(url) as st:
        got = st.get_events(s)
        assert st.get_latest_sequence(s) == len(got)
    assert seqs(got) == list(range(1, len(got) + 1))  # unique and gap-free
    contents = [e.data["content"] for e in got]
    for tag in tags:
        mine = [c for c in contents if c.startswith(tag)]
        assert len(mine) >= n  # nothing lost (a final batch may overshoot n)
        assert mine == [f"{tag}{i}" for i in range(len(mine))]  # each writer's order is kept


def test_sqlite_processes_append_to_one_session(tmp_path):
    _appenders(f"sqlite:///{tmp_path / 'asm.db'}", tmp_path, 2, 300)


def test_postgres_processes_append_to_one_session(pg_server, tmp_path):
    _appenders(pg_server.new_database(), tmp_path, 2, 300)


def test_postgres_four_processes_fifty_runs_each(pg_server, tmp_path):
    url, go = pg_server.new_database(), tmp_path / "go"
    shared = [session(agent_id="load").with_status("active") for _ in range(4)]
    with SqlStore(url) as st:
        for s in shared:
            st.save_session(s)
    ids = ",".join(s.id for s in shared)
    procs = [_spawn(RUNNER, url, ids, 50, go) for _ in range(4)]
    for p in procs:
        _ready(p)
    go.touch()
    reported: dict[str, int] = {}
    for p in procs:
        reported.update(json.loads(_finish(p, timeout=150)))
    assert len(reported) == 200
    with SqlStore(url) as st:
        runs = st.list_runs(None)
        assert len(runs) == 200 and {r.id for r in runs} == set(reported)
        assert all(r.status.value == "completed" for r in runs)
        total = 0
        for s in shared:
            events = st.get_events(s.id)
            total += len(events)
            assert seqs(events) == list(range(1, len(events) + 1)), s.id
            assert st.get_latest_sequence(s.id) == len(events)
            by_run: dict[str, int] = {}
            for e in events:
                if e.run_id:
                    by_run[e.run_id] = by_run.get(e.run_id, 0) + 1
            for rid, n in by_run.items():
                assert n >= reported[rid], rid  # every event the run returned is stored
        assert sum(reported.values()) <= total
        assert st.maintenance.health_check() == []
