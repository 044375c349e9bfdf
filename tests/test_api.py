"""The public entry points: asm_nb.run_once / arun_once and RunResult."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest

import asm_nb
from asm_nb.core.errors import AsmError


def test_run_once_shell_default_store(tmp_path, _isolated_asm_home):
    result = asm_nb.run_once("echo hello", provider="shell", cwd=str(tmp_path))
    assert result.status == "completed" and result.ok
    assert result.output == "hello\n"
    types = [e.type.value for e in result.events]
    assert types[0] == "run_started" and types[-1] == "run_completed"
    assert "message_streamed" in types
    # it really landed in the default LocalStore under $ASM_HOME
    store = asm_nb.open_store(str(_isolated_asm_home))
    assert store.get_run(result.run_id).status.value == "completed"
    assert result.raise_for_status() is result


def test_failed_run_returns_result_not_exception(tmp_path):
    result = asm_nb.run_once("echo oops >&2; exit 3", provider="shell", store="memory://", cwd=str(tmp_path))
    assert result.status == "failed"
    assert result.error is not None
    assert "oops" in result.raw_output.get("content", "")
    with pytest.raises(AsmError):
        result.raise_for_status()


def test_caller_mistakes_raise():
    with pytest.raises(AsmError) as info:
        asm_nb.run_once("hi", provider="no-such-provider", store="memory://")
    assert "Unknown provider" in info.value.message and "shell" in info.value.message
    with pytest.raises(AsmError):
        asm_nb.run_once("", provider="shell", store="memory://")


def test_named_session_continues_across_runs(tmp_path):
    store = asm_nb.open_store(str(tmp_path / "s"))
    r1 = asm_nb.run_once("echo one", provider="shell", store=store, session="notes")
    r2 = asm_nb.run_once("echo two", provider="shell", store=store, session="notes")
    assert r1.session_id == r2.session_id
    session = store.get_session(r1.session_id)
    assert session.metadata["name"] == "notes" and session.status.value == "active"
    assert [r.id for r in store.list_runs(session.id)] == [r1.run_id, r2.run_id]


def test_secrets_never_reach_the_store(tmp_path):
    key = "sk-ant-api03-" + "a" * 40
    store = asm_nb.open_store(str(tmp_path / "st"))
    result = asm_nb.run_once(f"echo token {key}", provider="shell", store=store)
    store.flush()
    raw = "".join(p.read_text() for p in (tmp_path / "st").rglob("*.json*"))
    assert key not in raw and "[REDACTED]" in raw
    assert key not in result.output


def test_run_result_mimebundle_and_plain():
    r = asm_nb.run_once("echo hi", provider="shell", store="memory://")
    bundle = r._repr_mimebundle_()
    assert {"text/plain", "text/html", "application/vnd.asm.run+json"} <= set(bundle)
    assert "hi" in bundle["text/plain"] and "run_" not in bundle["text/plain"]  # deterministic text
    assert bundle["application/vnd.asm.run+json"]["output"] == "hi\n"
    assert "completed" in repr(r) and "hi" in repr(r)
    d = r.to_dict()
    assert d["status"] == "completed" and d["output"] == "hi\n"


def test_ctrl_c_cancels_the_run_and_persists_run_cancelled(tmp_path):
    home = tmp_path / "home"
    script = textwrap.dedent(f"""
        import sys, asm_nb
        from asm_nb.core.events import without_audit
        try:
            asm_nb.run_once("echo started; sleep 30", provider="shell", store={str(home)!r})
        except KeyboardInterrupt:
            print("INTERRUPTED", flush=True)
        store = asm_nb.open_store({str(home)!r})
        [run] = store.list_runs(None)
        print("STATUS", run.status.value, flush=True)
        # the run's own events; its audit records (which repeat run_started / run_cancelled) apart
        events = store.get_events(run.session_id, run_id=run.id)
        print("TYPES", ",".join(e.type.value for e in without_audit(events)), flush=True)
        print("AUDIT", ",".join(e.type.value for e in events if e not in without_audit(events)), flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=tmp_path)
    # wait until the run has started streaming (its log exists and has a message_streamed line)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        logs = list((home / "events").glob("*.jsonl")) if (home / "events").exists() else []
        if any("message_streamed" in p.read_text() for p in logs):
            break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("run never started streaming: " + proc.stderr.read())
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert time.monotonic() - t0 < 10
    assert "INTERRUPTED" in out, err
    assert "STATUS cancelled" in out
    types = out.split("TYPES ")[1].split("\n")[0].strip().split(",")
    assert types.count("run_cancelled") == 1 and types[-1] == "run_cancelled"
    # the cancelled one-shot session was closed: its audit records are on disk too
    assert out.split("AUDIT ")[1].split("\n")[0].strip().split(",") == ["run_started", "run_cancelled"]


def test_run_result_events_load_from_the_store_when_asked(tmp_path):
    """A result does not copy its run's events out of the store until they are asked for; then
    they are the stored events, kept; a pickled result carries them."""
    import pickle

    from asm_nb.stores.local import LocalStore

    store = LocalStore(tmp_path / "s")
    calls: list = []
    real = store.get_events
    store.get_events = lambda sid, **kw: calls.append(kw) or real(sid, **kw)  # type: ignore[method-assign]
    r = asm_nb.run_once("echo hi", provider="shell", store=store)
    assert not [c for c in calls if c.get("run_id") == r.run_id]
    events = r.events
    assert [c for c in calls if c.get("run_id") == r.run_id]
    from asm_nb.core.events import without_audit

    assert [e.id for e in events] == [e.id for e in without_audit(real(r.session_id, run_id=r.run_id))] and events
    assert r.events is events and r.tool_calls[0]["status"] == "completed"
    clone = pickle.loads(pickle.dumps(r.to_dict()))
    assert len(clone["events"]) == len(events)
    r2 = asm_nb.run_once("echo again", provider="shell", store=store)
    r2.__dict__.pop("store", None)
    again = pickle.loads(pickle.dumps(r2))
    assert [e.id for e in again.events] == [e.id for e in without_audit(real(r2.session_id, run_id=r2.run_id))]
    store.close()
