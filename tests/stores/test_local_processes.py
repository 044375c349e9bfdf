"""LocalStore across real processes: concurrent appenders stay gap-free and lose nothing;
``kill -9`` of a writer loses only its unflushed buffer and leaves a readable store; a normal
exit without ``close()`` still writes the buffer (docs/stores.md, store contract; docs/store-format.md)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from asm_nb.stores.local import LocalStore, LocalStoreWarning

from .contract import ev, seqs, sid

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uses POSIX signals")

WRITER = textwrap.dedent("""
    import os, sys, time
    from asm_nb.core.events import Event
    from asm_nb.stores.local import LocalStore

    root, session_id, tag, n, go = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    store = LocalStore(root, flush_interval_ms=int(os.environ.get("FLUSH_MS", "5")))
    print("ready", flush=True)
    deadline = time.monotonic() + 20
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.002)
    i = 0
    while i < n:
        if i % 7 == 0:
            batch = [Event.new("message_streamed", session_id, data={"content": f"{tag}{i + k}"}) for k in range(3)]
            store.append_events(batch)
            i += 3
        else:
            store.append_event(Event.new("message_streamed", session_id, data={"content": f"{tag}{i}"}))
            i += 1
        if i % 50 == 0:
            store.flush()
    store.close()
    print("done", flush=True)
""")


def _spawn(code: str, *args: str, env_extra: dict | None = None) -> subprocess.Popen:
    env = dict(os.environ, PYTHONWARNINGS="ignore", **(env_extra or {}))
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _expect_line(proc: subprocess.Popen, text: str) -> None:
    line = proc.stdout.readline().strip()
    assert line == text, f"expected {text!r}, got {line!r}; stderr: {proc.stderr.read()[-2000:]}"


def test_two_processes_append_to_one_session(tmp_path):
    root, s, go = tmp_path / "store", sid(), tmp_path / "go"
    n = 600
    procs = [_spawn(WRITER, root, s, tag, n, go) for tag in ("a", "b")]
    for p in procs:
        _expect_line(p, "ready")
    go.touch()  # both start appending at once
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err[-2000:]
    with LocalStore(root) as st:
        got = st.get_events(s)
    assert seqs(got) == list(range(1, len(got) + 1))  # unique and gap-free
    contents = [e.data["content"] for e in got]
    for tag in ("a", "b"):
        mine = [c for c in contents if c.startswith(tag)]
        assert len(mine) >= n  # nothing lost (a final batch may overshoot n)
        assert mine == [f"{tag}{i}" for i in range(len(mine))]  # each writer's order is kept
    lines = (root / "events" / f"{s}.jsonl").read_bytes().splitlines()
    assert [json.loads(x)["sequence_number"] for x in lines] == list(range(1, len(got) + 1))


KILLED = textwrap.dedent("""
    import sys
    from asm_nb.core.events import Event
    from asm_nb.stores.local import LocalStore

    root, session_id = sys.argv[1], sys.argv[2]
    store = LocalStore(root, flush_interval_ms=60_000)
    i = 0
    while True:
        store.append_event(Event.new("message_streamed", session_id, data={"content": f"x{i}"}))
        i += 1
        if i % 25 == 0:
            store.flush()
            print(i, flush=True)   # acknowledged: these i events are on disk
""")


def test_kill_9_keeps_flushed_events_and_store_opens(tmp_path):
    root, s = tmp_path / "store", sid()
    p = _spawn(KILLED, root, s)
    acked = 0
    deadline = time.monotonic() + 30
    while acked < 200 and time.monotonic() < deadline:
        line = p.stdout.readline()
        assert line, p.stderr.read()[-2000:]
        acked = int(line)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(10)
    log = root / "events" / f"{s}.jsonl"
    # the killed writer's torn last line (simulated: a kill mid-write leaves such bytes)
    with open(log, "ab") as f:
        f.write(b'{"id":"evt_torn","type":"message_str')
    with LocalStore(root, flush_interval_ms=5) as st:
        got = st.get_events(s)  # readable at once, torn bytes ignored
        assert len(got) >= acked
        assert seqs(got) == list(range(1, len(got) + 1))
        assert [e.data["content"] for e in got] == [f"x{i}" for i in range(len(got))]
        # the dead writer's lock is gone; the first append cuts the torn tail with a warning
        with pytest.warns(LocalStoreWarning, match="torn"):
            nxt = st.append_event_with_sequence(ev(s))
        assert nxt.sequence_number == len(got) + 1
    lines = log.read_bytes().splitlines()
    assert [json.loads(x)["sequence_number"] for x in lines] == list(range(1, len(got) + 2))


EXITS = textwrap.dedent("""
    import sys
    from asm_nb.core.events import Event
    from asm_nb.stores.local import LocalStore

    root, session_id = sys.argv[1], sys.argv[2]
    store = LocalStore(root, flush_interval_ms=60_000)
    store.append_events([Event.new("run_started", session_id) for _ in range(10)])
    # no close(): the atexit hook must write the buffer
""")


def test_normal_exit_without_close_flushes(tmp_path):
    root, s = tmp_path / "store", sid()
    p = _spawn(EXITS, root, s)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    with LocalStore(root) as st:
        assert seqs(st.get_events(s)) == list(range(1, 11))


WAITER = textwrap.dedent("""
    import sys, time
    from asm_nb.stores.local import LocalStore

    root, session_id = sys.argv[1], sys.argv[2]
    store = LocalStore(root)
    print("ready", flush=True)
    t0 = time.monotonic()
    events = store.get_events(session_id, after=1, wait_timeout_ms=10_000)
    print(len(events), events[0].sequence_number if events else None, round(time.monotonic() - t0, 3), flush=True)
""")


def test_long_poll_sees_other_process(tmp_path):
    root, s = tmp_path / "store", sid()
    with LocalStore(root, flush_interval_ms=5) as st:
        st.append_event(ev(s))
        st.flush()
        p = _spawn(WAITER, root, s)
        _expect_line(p, "ready")
        st.append_event(ev(s))  # seq 2: the waiter wants after=1
        st.flush()
        out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    count, first, elapsed = out.split()
    assert int(count) == 1 and int(first) == 2 and float(elapsed) < 5
