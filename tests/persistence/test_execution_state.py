"""ExecutionState and ExecutionPayload (docs/stores.md, flush)."""

from __future__ import annotations

import pytest

from asm_nb.core.errors import AsmError
from asm_nb.core.events import Event
from asm_nb.core.run import Run, RunStatus
from asm_nb.core.session import Session
from asm_nb.persistence.execution_state import ExecutionPayload, ExecutionState
from asm_nb.stores.memory import InMemoryStore


@pytest.fixture
def seeded():
    session = Session.new("agent")
    run = Run.new(session.id)
    return session, run, ExecutionState.new(session, run)


def test_new_seeds_session_and_run_only(seeded):
    session, run, st = seeded
    assert st.session is session and st.run is run
    assert st.events == [] and st.provider_metadata == {} and st.sequence_counter == 0


def test_append_event_counts_but_never_sequences(seeded):
    session, _, st = seeded
    evs = [Event.new("message_streamed", session.id, data={"delta": str(i)}) for i in range(3)]
    for e in evs:
        st.append_event(e)
    assert st.sequence_counter == 3
    assert st.finalized_events() == evs
    assert all(e.sequence_number is None for e in st.finalized_events())


def test_finalized_events_is_a_copy(seeded):
    session, _, st = seeded
    st.append_event(Event.new("run_started", session.id))
    st.finalized_events().clear()
    assert len(st.events) == 1


def test_cache_provider_metadata_shallow_merge(seeded):
    _, _, st = seeded
    st.cache_provider_metadata({"model": "a", "nested": {"x": 1}})
    st.cache_provider_metadata({"model": "b", "nested": {"y": 2}})
    assert st.provider_metadata == {"model": "b", "nested": {"y": 2}}


@pytest.mark.parametrize("bad", [None, ["model"], "model", 3])
def test_cache_provider_metadata_rejects_non_dict(seeded, bad):
    with pytest.raises(AsmError) as ei:
        seeded[2].cache_provider_metadata(bad)
    assert (ei.value.code, ei.value.message) == ("validation_error", "provider metadata must be a dict")


def test_update_session_and_run(seeded):
    _, _, st = seeded
    st.update_run(lambda r: r.with_status(RunStatus.RUNNING)).update_session(lambda s: s.replace(tags=["t"]))
    assert st.run.status is RunStatus.RUNNING and st.session.tags == ["t"]


def test_to_result(seeded):
    session, run, st = seeded
    e = Event.new("run_started", session.id, run_id=run.id)
    st.append_event(e).cache_provider_metadata({"provider_session_id": "p1"})
    payload = st.to_result()
    assert payload == ExecutionPayload(session, run, [e], {"provider_session_id": "p1"})
    st.cache_provider_metadata({"late": True})
    assert payload.provider_metadata == {"provider_session_id": "p1"}  # a snapshot


def test_payload_coerce_forms(seeded):
    session, run, _ = seeded
    p = ExecutionPayload(session, run)
    assert ExecutionPayload.coerce(p) is p
    d = ExecutionPayload.coerce({"session": session, "run": run})
    assert d.events == [] and d.provider_metadata == {}
    assert ExecutionPayload.coerce(p.to_dict()) == p
    with pytest.raises(AsmError):
        ExecutionPayload.coerce("nope")


def test_payload_flushes_into_a_store(seeded):
    session, run, st = seeded
    st.append_event(Event.new("run_started", session.id, run_id=run.id))
    st.append_event(Event.new("run_completed", session.id, run_id=run.id, data={"stop_reason": "end_turn"}))
    store = InMemoryStore()
    store.flush(st.to_result())
    assert [e.sequence_number for e in store.get_events(session.id)] == [1, 2]
    assert store.get_run(run.id).id == run.id
