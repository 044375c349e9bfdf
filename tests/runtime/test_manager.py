"""SessionManager end to end on the in-memory store (docs/runtime.md, the session manager) and its invariants."""

from __future__ import annotations

import asyncio
import threading

import pytest

from asm_nb import config
from asm_nb.core.errors import AsmError
from asm_nb.core.events import is_audit, without_audit
from asm_nb.runtime import manager
from asm_nb.stores.memory import InMemoryStore



@pytest.fixture(autouse=True)
def _stub(StubAdapterCls):
    global StubAdapter
    StubAdapter = StubAdapterCls


@pytest.fixture
def store():
    s = InMemoryStore()
    yield s
    s.close()


def types_of(events):
    return [e.type.value for e in events]


def test_run_once_persists_lifecycle_with_gap_free_sequences(store):
    adapter = StubAdapter()
    result = manager.execute_once(store, adapter, {"prompt": "hello"})
    assert result.output["content"] == "echo: hello"
    session = store.get_session(result.session_id)
    run = store.get_run(result.run_id)
    assert session.status.value == "completed" and run.status.value == "completed"
    assert session.agent_id == "mock"
    events = store.get_events(session.id)
    seqs = [e.sequence_number for e in events]
    assert seqs == list(range(1, len(events) + 1))
    assert events[0].type.value == "session_created" and events[-1].type.value == "session_completed"
    stamps = [e.timestamp for e in events]
    assert stamps == sorted(stamps)
    # one terminal event from the run; the audit log (on by default) adds its own record beside it
    assert types_of(without_audit(events)).count("run_completed") == 1
    assert [e.type.value for e in events if is_audit(e)] == ["run_started", "run_completed"]
    # adapter events carry the adapter's provider, internal ones and audit records too
    assert {e.provider for e in events} == {"mock"}


def test_usage_cost_and_provider_metadata_land_on_run_and_session(store):
    adapter = StubAdapter(reported_cost=0.01234)
    result = manager.execute_once(store, adapter, "hi")
    run = store.get_run(result.run_id)
    assert run.token_usage["input_tokens"] == 10 and run.token_usage["output_tokens"] == 20
    assert run.cost_usd == pytest.approx(0.01234) and result.cost_usd == pytest.approx(0.01234)
    assert run.metadata["provider"] == "mock"
    assert run.metadata["provider_session_id"] == "mock-provider-session-123"
    assert run.provider_metadata["model"] == "mock-model-v1"
    session = store.get_session(result.session_id)
    assert session.metadata["provider_sessions"]["mock"]["provider_session_id"] == "mock-provider-session-123"
    assert "provider_session_id" not in session.metadata and "model" not in session.metadata


def test_adapter_failure_fails_run_and_session_and_raises(store):
    with pytest.raises(AsmError) as info:
        manager.execute_once(store, StubAdapter("fail"), "hi")
    err = info.value
    assert err.code == "provider_error"
    runs = store.list_runs(None) if _lists_all(store) else []
    sessions = store.list_sessions()
    assert len(sessions) == 1 and sessions[0].status.value == "failed"
    run = store.list_runs(sessions[0].id)[0]
    assert run.status.value == "failed"
    assert run.error["code"] == "provider_error"
    assert run.error["provider_error"]["provider"] == "codex"
    assert run.error["provider_error"]["exit_code"] == 2
    events = without_audit(store.get_events(sessions[0].id, run_id=run.id))
    assert types_of(events).count("run_failed") == 1  # the adapter's; manager adds none
    assert types_of(events)[-1] == "run_failed"
    # usage reached before the failure is kept
    assert run.token_usage["input_tokens"] == 10
    del runs


def _lists_all(store):
    try:
        store.list_runs(None)
        return True
    except Exception:
        return False


def test_timeout_gives_provider_timeout_and_one_terminal_event(store):
    with config.override(execute_grace_timeout_ms=0):
        with pytest.raises(AsmError) as info:
            manager.execute_once(store, StubAdapter("hang", chunks=1), "hi", timeout=150)
    assert info.value.code == "provider_timeout"
    [session] = store.list_sessions()
    [run] = store.list_runs(session.id)
    assert session.status.value == "failed" and run.status.value == "failed"
    evs = types_of(without_audit(store.get_events(session.id, run_id=run.id)))
    assert evs.count("run_failed") == 1 and evs[-1] == "run_failed"


def test_internal_crash_is_isolated_and_adapter_stays_usable(store):
    adapter = StubAdapter("raise")
    with pytest.raises(AsmError) as info:
        manager.execute_once(store, adapter, "x")
    assert info.value.code == "internal_error"
    adapter.mode = "ok"
    assert manager.execute_once(store, adapter, "again").output["content"] == "echo: again"


def test_missing_required_capability_stores_no_run(store):
    adapter = StubAdapter()
    s = manager.start_session(store, adapter, {})
    with pytest.raises(AsmError) as info:
        manager.start_run(store, adapter, s.id, "x", required_capabilities=["tool"])
    assert info.value.code == "missing_required_capability"
    assert store.list_runs(s.id) == []
    run = manager.start_run(store, adapter, s.id, "x", optional_capabilities=["tool"])
    assert run.status.value == "pending"


def test_callback_sees_canonical_events_with_sequence_numbers_and_errors_are_contained(store):
    seen = []

    def cb(ev):
        seen.append(ev)
        raise ValueError("user callback bug")  # must not kill the run

    result = manager.execute_once(store, StubAdapter(), "hi", event_callback=cb)
    assert result.output["content"] == "echo: hi"
    types = [e["type"] for e in seen]
    assert types[0] == "run_started" and types[-1] == "run_completed"
    assert all(isinstance(e["sequence_number"], int) for e in seen)


def test_adapter_opts_reach_execute(store):
    adapter = StubAdapter()
    manager.execute_once(store, adapter, "hi", adapter_opts={"custom_flag": True})
    assert adapter.seen_opts[-1]["custom_flag"] is True


def test_executing_a_finished_run_is_refused(store):
    adapter = StubAdapter()
    result = manager.execute_once(store, adapter, "hi")
    with pytest.raises(AsmError) as info:
        manager.execute_run(store, adapter, result.run_id)
    assert info.value.code == "invalid_operation"


def test_custom_adapter_without_terminal_gets_run_completed(store):
    result = manager.execute_once(store, StubAdapter("no_terminal"), "hi")
    evs = types_of(without_audit(store.get_events(result.session_id, run_id=result.run_id)))
    assert evs.count("run_completed") == 1


def test_cancel_in_flight_run_persists_one_run_cancelled(store):
    adapter = StubAdapter("hang", chunks=1)
    from asm_nb.runtime import loop

    s = manager.start_session(store, adapter, {})
    run = manager.start_run(store, adapter, s.id, "wait")
    fut = loop.submit(manager.aexecute_run(store, adapter, run.id))
    # wait until the adapter has streamed, then cancel
    got = store.get_events(s.id, run_id=run.id, type="message_streamed", wait_timeout_ms=5000)
    assert got
    manager.cancel_run(store, adapter, run.id)
    with pytest.raises(AsmError) as info:
        fut.result(timeout=10)
    assert info.value.code == "cancelled"
    stored = store.get_run(run.id)
    assert stored.status.value == "cancelled"
    assert stored.token_usage.get("input_tokens") == 10  # usage reached so far
    evs = types_of(without_audit(store.get_events(s.id, run_id=run.id)))
    assert evs.count("run_cancelled") == 1 and evs[-1] == "run_cancelled"
    audit = [e for e in store.get_events(s.id, run_id=run.id) if is_audit(e)]
    assert [e.type.value for e in audit] == ["run_started", "run_cancelled"]


def test_cancel_of_a_stale_running_run_marks_it_cancelled(store):
    adapter = StubAdapter()
    s = manager.start_session(store, adapter, {})
    run = manager.start_run(store, adapter, s.id, "x")
    store.save_run(run.with_status("running"))  # e.g. left behind by a killed kernel
    manager.cancel_run(store, adapter, run.id)
    assert store.get_run(run.id).status.value == "cancelled"
    assert types_of(store.get_events(s.id, run_id=run.id)) == ["run_cancelled"]


def test_continuation_replays_prior_turns_into_the_session_context(store):
    adapter = StubAdapter()
    s = manager.start_session(store, adapter, {"context": {"system_prompt": "be brief"}})
    manager.activate_session(store, s.id)
    r1 = manager.start_run(store, adapter, s.id, "first")
    manager.execute_run(store, adapter, r1.id)
    r2 = manager.start_run(store, adapter, s.id, "second")
    manager.execute_run(store, adapter, r2.id, continuation="auto")
    ctx = adapter.seen_sessions[-1].context
    assert ctx["system_prompt"] == "be brief"
    msgs = [(m.role.value if hasattr(m.role, "value") else m.role, m.content) for m in ctx["transcript"].messages]
    assert ("user", "first") in msgs and ("assistant", "echo: first") in msgs
    assert all(c != "second" for _, c in msgs)  # only prior runs
    # without continuation there is no transcript
    r3 = manager.start_run(store, adapter, s.id, "third")
    manager.execute_run(store, adapter, r3.id)
    assert "transcript" not in adapter.seen_sessions[-1].context
    assert "transcript" not in store.get_session(s.id).context


@pytest.mark.parametrize("bad,code", [(True, "validation_error"), ("sometimes", "validation_error")])
def test_bad_continuation_values(store, bad, code):
    adapter = StubAdapter()
    s = manager.start_session(store, adapter, {})
    run = manager.start_run(store, adapter, s.id, "x")
    with pytest.raises(AsmError) as info:
        manager.execute_run(store, adapter, run.id, continuation=bad)
    assert info.value.code == code
    assert store.get_run(run.id).status.value == "failed"
    assert types_of(without_audit(store.get_events(s.id, run_id=run.id))) == ["run_failed"]


def test_store_failure_while_persisting_events_does_not_fail_the_run(store):
    class Flaky(InMemoryStore):
        def append_event_with_sequence(self, event):
            if event.type.value == "message_streamed":
                raise AsmError("storage_error", "disk full")
            return super().append_event_with_sequence(event)

    flaky = Flaky()
    result = manager.execute_once(flaky, StubAdapter(), "hi")
    assert result.persistence_failures == 3
    assert flaky.get_run(result.run_id).status.value == "completed"


def test_correlation_id_and_provider_on_internal_events(store):
    adapter = StubAdapter()
    s = manager.start_session(store, adapter, {"metadata": {"correlation_id": "corr_internal_1"}})
    [created] = store.get_events(s.id, type="session_created")
    assert created.provider == "mock" and created.correlation_id == "corr_internal_1"


def test_concurrent_runs_on_one_adapter(store):
    adapter = StubAdapter("slow_stream", chunks=5)
    results = []
    errors = []

    def go(i):
        try:
            results.append(manager.execute_once(store, adapter, f"p{i}"))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not errors and len(results) == 3
    assert sorted(r.output["content"] for r in results) == ["echo: p0", "echo: p1", "echo: p2"]


def test_async_api_from_a_running_loop(store):
    async def main():
        return await manager.aexecute_once(store, StubAdapter(), "async")

    # a foreign loop (as in user async code) may call the async API directly
    result = asyncio.run(main())
    assert result.output["content"] == "echo: async"


def test_extract_input_messages():
    ex = manager.extract_input_messages
    assert ex("hi") == [{"role": "user", "content": "hi"}]
    assert ex({"prompt": ""}) == []
    assert ex({"messages": [{"role": "System", "content": "s"}, "junk", {"content": None},
                            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}],
               "prompt": "ignored"}) == [{"role": "system", "content": "s"}, {"role": "user", "content": "a\nb"}]
    assert ex(None) == [] and ex(42) == []
