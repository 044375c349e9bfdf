"""Store work of a run its caller creates and starts at once (``run_once``, ``%%asm``), counted.

Such a run is written once, already ``running`` with this process as its owner, instead of saved
``pending``, read back and saved ``running`` (two run writes and two reads more per run). What
that must not change: a queued run (``start_run`` then ``execute_run``) is still ``pending`` until
it executes and only a pending run executes; a missing required capability still stores no run;
a run whose process died still ends ``interrupted`` (tests/stores/test_run_records.py kills a
``run_once`` child).
"""

from __future__ import annotations

import asyncio

import pytest

import asm_nb
from asm_nb.core.errors import AsmError
from asm_nb.runtime import manager
from asm_nb.stores import open_store
from asm_nb.stores._base import process_owner


class _Spy:
    """Records every run write (status; ``save_run`` and the run of a ``flush`` payload) and every
    run/session read of a store."""

    def __init__(self, store) -> None:
        self.store = store
        self.writes: list[tuple[str, object]] = []
        self.reads: list[str] = []
        save_run, get_run, get_session, flush = store.save_run, store.get_run, store.get_session, store.flush

        def saving(run):
            self.writes.append((run.status.value, (run.metadata or {}).get("owner")))
            return save_run(run)

        def flushing(payload=None):
            if payload is not None:  # the finished run is written by the run's flush
                self.writes.append((payload.run.status.value, (payload.run.metadata or {}).get("owner")))
            return flush(payload)

        def getting_run(run_id):
            self.reads.append("run")
            return get_run(run_id)

        def getting_session(session_id):
            self.reads.append("session")
            return get_session(session_id)

        store.save_run, store.get_run, store.get_session = saving, getting_run, getting_session
        store.flush = flushing


@pytest.mark.parametrize("target", ["memory://", "local"])
def test_a_run_started_at_once_is_written_once_running(tmp_path, target):
    store = open_store(str(tmp_path / "s") if target == "local" else target)
    spy = _Spy(store)
    r = asm_nb.run_once("true", provider="shell", store=store)
    assert r.status == "completed"
    # was [pending, running, completed], 5 session and 2 run reads
    assert [s for s, _ in spy.writes] == ["running", "completed"]
    assert spy.reads.count("run") == 1  # the result read back at the end
    assert spy.reads.count("session") == 3  # the run's start, its finalize (flush payload), the session's close
    running = store.get_run(r.run_id)
    assert running.status.value == "completed" and running.input == "true"
    store.close()


def test_the_running_row_carries_its_owner_on_disk(tmp_path):
    """The single row before the run ends is what kill -9 recovery reads: running + owner."""
    root = tmp_path / "s"
    store = open_store(str(root))
    seen: list[dict] = []

    def on_event(ev: dict) -> None:
        if ev["type"] == "tool_call_started":  # the command is running: read the table as another process would
            other = open_store(str(root))
            run = other.get_run(ev["run_id"])
            seen.append({"status": run.status.value, "owner": run.metadata.get("owner")})
            other.close()

    r = asm_nb.run_once("true", provider="shell", store=store, on_event=on_event)
    assert r.status == "completed"
    assert seen == [{"status": "running", "owner": process_owner()}]
    lines = (root / "db" / "runs.jsonl").read_text().splitlines()
    assert sum(r.run_id in ln for ln in lines) == 2  # running, completed (was pending, running, completed)
    store.close()


def test_a_queued_run_still_waits_pending_and_only_pending_runs_execute():
    store = open_store("memory://")
    from asm_nb.providers.shell import ShellAdapter

    adapter = ShellAdapter()

    async def go():
        s = await manager.astart_session(store, adapter, active=True)
        run = await manager.astart_run(store, adapter, s.id, "true")
        assert store.get_run(run.id).status.value == "pending"
        await manager.aexecute_run(store, adapter, run.id)
        assert store.get_run(run.id).status.value == "completed"
        with pytest.raises(AsmError) as err:
            await manager.aexecute_run(store, adapter, run.id)
        assert err.value.code == "invalid_operation"
        started = []
        res = await manager.astart_and_execute_run(store, adapter, s.id, "true", on_started=started.append)
        assert res.run_id is not None and [r.id for r in started] == [res.run_id]
        with pytest.raises(AsmError) as err:  # a run started at once is never pending: nobody else runs it
            await manager.aexecute_run(store, adapter, res.run_id)
        assert err.value.code == "invalid_operation"

    asyncio.run(go())
    store.close()


def test_a_missing_capability_stores_no_run_and_fails_the_one_shot_session():
    store = open_store("memory://")
    with pytest.raises(AsmError) as err:
        asm_nb.run_once("true", provider="shell", store=store, required_capabilities=["tool"])
    assert err.value.code == "missing_required_capability"
    assert store.list_runs(None) == []
    [s] = store.list_sessions()
    assert s.status.value == "failed"
    store.close()
