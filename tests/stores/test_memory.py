"""InMemoryStore: the shared contract plus its own rules (docs/stores.md, InMemoryStore)."""

from __future__ import annotations

import pytest

from asm_nb.core.errors import AsmError
from asm_nb.stores.memory import InMemoryStore

from .contract import ArtifactRecordContract, StoreContract, ev, sid


class TestInMemoryContract(StoreContract, ArtifactRecordContract):
    @pytest.fixture
    def store(self, memory_store):
        return memory_store


def test_duplicate_id_lookup_is_global(memory_store):
    a, b = sid(), sid()
    e = ev(a)
    memory_store.append_event(e)
    stored = memory_store.append_event_with_sequence(e.replace(session_id=b))
    assert stored.session_id == a and stored.sequence_number == 1
    assert memory_store.get_events(b) == []
    assert memory_store.get_latest_sequence(b) == 0


def test_reads_return_stored_objects(memory_store):
    s = sid()
    stored = memory_store.append_event_with_sequence(ev(s))
    assert memory_store.get_events(s)[0] is stored


def test_inline_safe():
    assert InMemoryStore.inline_safe is True


def test_writes_after_close_raise(memory_store):
    memory_store.close()
    with pytest.raises(AsmError) as ei:
        memory_store.append_event(ev(sid()))
    assert ei.value.code == "storage_error"
    memory_store.close()  # idempotent


def test_list_session_ids(memory_store):
    from .contract import run_for, session

    s = session()
    memory_store.save_session(s)
    memory_store.save_run(run_for("ses_r"))
    memory_store.append_event(ev("ses_e"))
    assert memory_store.list_session_ids() == sorted([s.id, "ses_r", "ses_e"])
