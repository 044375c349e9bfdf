"""The audit log written by the runtime (``audit_logging_enabled``, on by default), read through
``asm_nb.frames.audit`` and ``asm audit``; kept out of the run's own events."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import asm_nb
from asm_nb import config
from asm_nb.core.events import is_audit


def test_runs_write_audit_records_read_with_frames_audit():
    store = asm_nb.open_store("memory://")
    ok = asm_nb.run_once("echo hi", provider="shell", store=store)
    bad = asm_nb.run_once("exit 3", provider="shell", store=store)
    df = asm_nb.frames.audit(store)
    rows = df[["run_id", "type", "agent_id"]].values.tolist()
    assert rows == [[ok.run_id, "run_started", "shell"], [ok.run_id, "run_completed", "shell"],
                    [bad.run_id, "run_started", "shell"], [bad.run_id, "run_failed", "shell"]]
    failed = df[df["type"] == "run_failed"].iloc[0]
    assert failed["error_code"] == "command_failed" and "code 3" in failed["error_message"]
    assert asm_nb.frames.audit(store, run_id=ok.run_id, type="run_completed")["total_tokens"].tolist() == [0]
    # the run's own story is unchanged: one terminal event, no audit records in results or frames
    assert [e.type.value for e in ok.events].count("run_completed") == 1
    assert not any(is_audit(e) for e in ok.events)
    ev = asm_nb.frames.events(store, run_id=ok.run_id)
    assert ev["type"].astype(str).tolist().count("run_completed") == 1
    # the records themselves are in the session's event log, marked as audit
    stored = store.get_events(ok.session_id, run_id=ok.run_id)
    assert [e.type.value for e in stored if is_audit(e)] == ["run_started", "run_completed"]


def test_audit_logging_disabled_writes_nothing():
    store = asm_nb.open_store("memory://")
    with config.override(audit_logging_enabled=False):
        asm_nb.run_once("echo hi", provider="shell", store=store)
    assert len(asm_nb.frames.audit(store)) == 0


def test_interrupted_run_is_audited_as_cancelled():
    import threading
    from concurrent.futures import ThreadPoolExecutor

    store = asm_nb.open_store("memory://")
    started, seen = threading.Event(), {}

    def on_event(ev):
        if ev["type"] == "run_started":
            seen["run_id"] = ev["run_id"]
            started.set()

    with ThreadPoolExecutor(1) as pool:
        fut = pool.submit(asm_nb.run_once, "sleep 30", "shell", store=store, on_event=on_event)
        assert started.wait(10)
        asm_nb.interrupt(seen["run_id"])
        r = fut.result(30)
    assert r.status == "cancelled"
    assert asm_nb.frames.audit(store, run_id=r.run_id)["type"].tolist() == ["run_started", "run_cancelled"]


def test_asm_audit_command(tmp_path):
    env = {**os.environ, "ASM_HOME": str(tmp_path / "h")}

    def asm(*args):
        return subprocess.run([sys.executable, "-m", "asm_nb.cli", *args], capture_output=True, text=True,
                              cwd=tmp_path, env=env, timeout=60)

    run = json.loads(asm("run", "echo hi", "--json").stdout.strip().splitlines()[-1])
    assert asm("run", "exit 4").returncode == 1
    p = asm("audit")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["timestamp", "type", "run_id", "session_id", "agent_id", "detail"]
    assert sum("run_started" in ln for ln in lines) == 2 and sum("run_failed" in ln for ln in lines) == 1
    assert any("[command_failed] Command exited with code 4" in ln for ln in lines)
    js = json.loads(asm("audit", "--run", run["run_id"], "--json").stdout)
    assert [r["type"] for r in js] == ["run_started", "run_completed"] and js[1]["input_tokens"] == 0
