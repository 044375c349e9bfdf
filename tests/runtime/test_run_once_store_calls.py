"""Store work of a one-shot run, counted (not timed): what a ``run_once`` asks of its store.

- A one-shot session starts active with ``session_created`` and ``session_started`` appended
  together (one ``append_events``: one lock round and one store call, off the loop or not)
  instead of one append each. Same events, numbers, provider and a failure stores neither.
- The run's end (``flush`` with the session the run's end just read, unchanged) writes no
  session line and does not serialize the session to find that out.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import asm_nb
from asm_nb.core.errors import AsmError
from asm_nb.core.session import Session
from asm_nb.runtime import manager
from asm_nb.providers import create_adapter
from asm_nb.stores.local import LocalStore
from asm_nb.stores.memory import InMemoryStore


class _Counting:
    def __init__(self, store: Any, monkeypatch: Any) -> None:
        self.calls: list[tuple[str, int]] = []
        for name in ("append_event_with_sequence", "append_events", "_append_unshared", "_append_built",
                     "_append_events_unshared"):
            real = getattr(store, name, None)
            if real is None:
                continue

            def spy(arg: Any, _real: Any = real, _name: str = name) -> Any:
                self.calls.append((_name, len(arg) if isinstance(arg, list) else 1))
                return _real(arg)

            monkeypatch.setattr(store, name, spy)


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_an_active_session_starts_with_one_append(tmp_path: Any, monkeypatch: Any, kind: str) -> None:
    store = LocalStore(tmp_path) if kind == "local" else InMemoryStore()
    adapter = create_adapter("shell")
    try:
        spy = _Counting(store, monkeypatch)
        s = asyncio.run(manager.astart_session(store, adapter, {"metadata": {"x": 1}}, active=True))
        assert len(spy.calls) == 1 and spy.calls[0][1] == 2, spy.calls
        evs = store.get_events(s.id)
        assert [(e.type.value, e.sequence_number, e.provider, e.run_id, e.data) for e in evs] == [
            ("session_created", 1, "shell", None, {"provider": "shell"}), ("session_started", 2, "shell", None, {})]
        assert store.get_session(s.id).status.value == "active"
        # not active: session_created alone, as before
        s2 = asyncio.run(manager.astart_session(store, adapter, {}))
        assert [e.type.value for e in store.get_events(s2.id)] == ["session_created"]
    finally:
        store.close()


def test_a_failed_session_start_append_stores_neither_event(tmp_path: Any, monkeypatch: Any) -> None:
    store = LocalStore(tmp_path)
    adapter = create_adapter("shell")
    try:
        def broken(events: Any) -> Any:
            raise AsmError("storage_error", "disk full")

        monkeypatch.setattr(store, "_append_events_unshared", broken)
        with pytest.raises(AsmError, match="disk full"):
            asyncio.run(manager.astart_session(store, adapter, {}, active=True))
        (sess,) = store.list_sessions()
        assert store.get_events(sess.id) == []
    finally:
        store.close()


def test_the_runs_end_does_not_serialize_an_unchanged_session(tmp_path: Any, monkeypatch: Any) -> None:
    store = LocalStore(tmp_path)
    try:
        asm_nb.run_once("true", provider="shell", store=store)  # warm-up
        flushed: list[Any] = []
        real_flush = store.flush

        def flush(payload: Any = None) -> None:
            flushed.append(payload)
            return real_flush(payload)

        monkeypatch.setattr(store, "flush", flush)
        dumped = []
        real_to_dict = Session.to_dict

        def to_dict(self: Session) -> dict:
            dumped.append(self.id)
            return real_to_dict(self)

        before = (tmp_path / "db" / "sessions.jsonl").read_bytes().count(b"\n")
        with monkeypatch.context() as m:
            m.setattr(Session, "to_dict", to_dict)
            r = asm_nb.run_once("true", provider="shell", store=store)
        assert r.status == "completed"
        (payload,) = [p for p in flushed if p is not None]
        assert payload.session is store.get_session(r.session_id) or payload.session.id == r.session_id
        # saved active, then completed: the flush in between wrote (and serialized) nothing for it
        after = (tmp_path / "db" / "sessions.jsonl").read_bytes().count(b"\n")
        assert after - before == 2
        assert dumped.count(r.session_id) == 2, dumped
    finally:
        store.close()


def test_a_flush_with_a_changed_session_still_merges_it(tmp_path: Any) -> None:
    store = LocalStore(tmp_path)
    try:
        s = Session.new("a", metadata={"k": 1})
        store.save_session(s)
        stored = store.get_session(s.id)
        from asm_nb.core.run import Run

        run = Run.new(s.id, input="x")
        store.flush({"session": stored, "run": run, "events": []})
        n = (tmp_path / "db" / "sessions.jsonl").read_bytes().count(b"\n")
        changed = stored.replace(metadata={"k": 2}, agent_id="other")
        store.flush({"session": changed, "run": run, "events": []})
        got = store.get_session(s.id)
        assert got.metadata == {"k": 2} and got.agent_id == "a"  # merged: stored agent_id kept
        assert (tmp_path / "db" / "sessions.jsonl").read_bytes().count(b"\n") == n + 1
    finally:
        store.close()
