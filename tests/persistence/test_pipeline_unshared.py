"""The pipeline's in-place append (``_append_unshared``): stores built on StoreBase number the
freshly built event itself; overrides of ``append_event_with_sequence`` are still honoured."""

from __future__ import annotations

import pytest

from asm_nb.core.errors import AsmError
from asm_nb.core.events import Event
from asm_nb.persistence.pipeline import EventPipeline, PipelineContext, _unshared_appender
from asm_nb.stores.local import LocalStore
from asm_nb.stores.memory import InMemoryStore


@pytest.fixture(params=["memory", "local"])
def store(request, tmp_path):
    s = InMemoryStore() if request.param == "memory" else LocalStore(tmp_path / "store")
    yield s
    s.close()


CTX = PipelineContext("ses_1", run_id="run_1", provider="claude")


def test_process_numbers_and_stores_the_built_event(store):
    pipe = EventPipeline(store)
    assert _unshared_appender(store) is not None
    out = [pipe.process({"type": "message_streamed", "data": {"delta": "d", "content": f"c{i}"}}, CTX)
           for i in range(5)]
    assert [e.sequence_number for e in out] == [1, 2, 3, 4, 5]
    stored = store.get_events("ses_1")
    assert [e.id for e in stored] == [e.id for e in out]
    assert [e.sequence_number for e in stored] == [1, 2, 3, 4, 5]
    assert [e.data["content"] for e in stored] == [f"c{i}" for i in range(5)]


def test_replayed_id_returns_the_stored_event_unchanged(store):
    pipe = EventPipeline(store)
    first = pipe.process({"type": "run_started", "id": "evt_fixed", "data": {"prompt": "a"}}, CTX)
    pipe.process({"type": "run_completed", "data": {"stop_reason": "end"}}, CTX)
    again = pipe.process({"type": "run_started", "id": "evt_fixed", "data": {"prompt": "b"}}, CTX)
    assert again == first and again.sequence_number == 1 and again.data == {"prompt": "a"}
    assert [e.sequence_number for e in store.get_events("ses_1")] == [1, 2]


def test_public_append_still_copies_the_callers_event(store):
    e = Event.new("run_started", "ses_1")
    stored = store.append_event_with_sequence(e)
    assert stored.sequence_number == 1 and e.sequence_number is None


def test_subclass_override_of_append_event_with_sequence_is_called():
    calls = []

    class Counting(InMemoryStore):
        def append_event_with_sequence(self, event):
            calls.append(event.id)
            return super().append_event_with_sequence(event)

    store = Counting()
    assert _unshared_appender(store) is None
    ev = EventPipeline(store).process({"type": "run_started"}, CTX)
    assert calls == [ev.id] and ev.sequence_number == 1


def test_instance_attribute_replacing_the_method_is_called(tmp_path):
    store = LocalStore(tmp_path / "s")
    try:
        def failing(event):
            raise AsmError("storage_error", "disk full")

        store.append_event_with_sequence = failing
        assert _unshared_appender(store) is None
        with pytest.raises(AsmError, match="disk full"):
            EventPipeline(store).process({"type": "run_started"}, CTX)
    finally:
        store.close()


def test_stores_without_the_hook_use_the_public_method():
    class Plain:
        def __init__(self):
            self.got = []

        def append_event_with_sequence(self, event):
            self.got.append(event)
            return event.replace(sequence_number=len(self.got))

    plain = Plain()
    assert _unshared_appender(plain) is None
    assert EventPipeline(plain).process({"type": "run_started"}, CTX).sequence_number == 1


def test_closed_local_store_rejects(tmp_path):
    store = LocalStore(tmp_path / "s")
    store.close()
    with pytest.raises(AsmError) as info:
        EventPipeline(store).process({"type": "run_started"}, CTX)
    assert info.value.code == "storage_error"


def test_local_log_line_has_the_assigned_number(tmp_path):
    store = LocalStore(tmp_path / "s")
    pipe = EventPipeline(store)
    evs = [pipe.process({"type": "run_started"}, CTX) for _ in range(3)]
    store.close()
    reopened = LocalStore(tmp_path / "s")
    try:
        assert reopened.get_events("ses_1") == evs
    finally:
        reopened.close()


# -- process_batch ------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [1, 7])
def test_batch_numbers_and_stores_the_built_events(store, size):
    pipe = EventPipeline(store)
    assert _unshared_appender(store, "_append_events_unshared", "append_events") is not None
    pipe.process({"type": "run_started"}, CTX)
    out = pipe.process_batch([{"type": "message_streamed", "data": {"delta": "d", "content": f"c{i}"}}
                              for i in range(size)], CTX)
    assert [e.sequence_number for e in out] == list(range(2, size + 2))
    assert store.get_events("ses_1")[1:] == out


def test_batch_with_a_repeated_id_resolves_to_the_first(store):
    out = EventPipeline(store).process_batch(
        [{"type": "run_started", "id": "evt_same", "data": {"prompt": "a"}},
         {"type": "run_completed", "data": {"stop_reason": "end"}},
         {"type": "run_started", "id": "evt_same", "data": {"prompt": "b"}}], CTX)
    assert [e.sequence_number for e in out] == [1, 2, 1]
    assert out[2] is out[0] or out[2] == out[0]
    assert [e.data for e in store.get_events("ses_1")] == [{"prompt": "a"}, {"stop_reason": "end"}]


def test_batch_subclass_override_of_append_events_is_called():
    calls = []

    class Counting(InMemoryStore):
        def append_events(self, events):
            calls.append(len(events))
            return super().append_events(events)

    store = Counting()
    assert _unshared_appender(store, "_append_events_unshared", "append_events") is None
    out = EventPipeline(store).process_batch([{"type": "run_started"}, {"type": "run_completed"}], CTX)
    assert calls == [2] and [e.sequence_number for e in out] == [1, 2]


def test_batch_rejects_as_a_whole_when_one_raw_is_bad(store):
    with pytest.raises(AsmError):
        EventPipeline(store).process_batch([{"type": "run_started"}, "not a dict"], CTX)
    assert store.get_events("ses_1") == []
