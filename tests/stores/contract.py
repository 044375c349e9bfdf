"""The SessionStore contract suite (docs/stores.md, store contract): every store must pass it.

Use it by subclassing ``StoreContract`` in a ``test_*.py`` module and providing a ``store``
fixture that yields a fresh, empty store (closed afterwards):

    class TestMyStoreContract(StoreContract):
        @pytest.fixture
        def store(self, tmp_path):
            s = MyStore(tmp_path)
            yield s
            s.close()

This module has no ``test_`` prefix, so pytest collects it only through such subclasses.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest

from asm_nb.core.errors import AsmError
from asm_nb.core.events import Event, EventType
from asm_nb.core.run import Run, RunStatus
from asm_nb.core.session import Session, SessionStatus
from asm_nb.core.serialization import new_id


def ev(session_id: str, type: str | EventType = "message_received", run_id: str | None = None, **kw) -> Event:
    """A valid event with a fresh id."""
    kw.setdefault("data", {"content": "hi", "role": "assistant"})
    return Event.new(type, session_id, run_id=run_id, **kw)


def sid() -> str:
    return new_id("ses_")


def session(**kw) -> Session:
    return Session.new(kw.pop("agent_id", "agent"), **kw)


def run_for(session_id: str, **kw) -> Run:
    status = kw.pop("status", None)
    r = Run.new(session_id, **kw)
    return r.with_status(status) if status else r


def seqs(events) -> list[int]:
    return [e.sequence_number for e in events]


def run_threads(n: int, fn, workers: int = 16) -> list:
    """Run ``fn(i)`` for i in range(n) on a thread pool, starting them together; results in order."""
    barrier = threading.Barrier(min(n, workers))

    def call(i):
        if i < workers:
            try:
                barrier.wait(timeout=5)
            except threading.BrokenBarrierError:
                pass
        return fn(i)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(call, range(n)))


class StoreContract:
    """One parametrized contract; subclasses provide the ``store`` fixture."""

    # -- sessions -------------------------------------------------------------------------------
    def test_inline_safe_attribute_exists(self, store):
        assert isinstance(store.inline_safe, bool)

    def test_save_and_get_session(self, store):
        s = session(metadata={"k": "v"}, tags=["a"])
        store.save_session(s)
        got = store.get_session(s.id)
        assert got.id == s.id and got.agent_id == "agent"
        assert got.metadata == {"k": "v"} and got.tags == ["a"]
        assert got.status is SessionStatus.PENDING
        assert got.created_at == s.created_at

    def test_get_missing_session(self, store):
        with pytest.raises(AsmError) as ei:
            store.get_session("ses_missing")
        assert ei.value.code == "session_not_found"
        assert ei.value.message == "Session not found: ses_missing"

    def test_update_session_replaces_row(self, store):
        s = session()
        store.save_session(s)
        store.save_session(s.with_status("active"))
        assert store.get_session(s.id).status is SessionStatus.ACTIVE

    def test_idempotent_save_three_times(self, store):
        s = session()
        for _ in range(3):
            store.save_session(s)
        assert [x.id for x in store.list_sessions()] == [s.id]

    def test_list_sessions_ordered_and_filtered(self, store):
        base = datetime(2024, 1, 1, tzinfo=timezone.utc)
        a = session(agent_id="a").replace(created_at=base + timedelta(seconds=2))
        b = session(agent_id="b").replace(created_at=base + timedelta(seconds=1), status=SessionStatus.ACTIVE)
        c = session(agent_id="a").replace(created_at=base + timedelta(seconds=3), status=SessionStatus.ACTIVE)
        for s in (a, b, c):
            store.save_session(s)
        assert [s.id for s in store.list_sessions()] == [b.id, a.id, c.id]
        assert [s.id for s in store.list_sessions(status="active")] == [b.id, c.id]
        assert [s.id for s in store.list_sessions(status=SessionStatus.PENDING)] == [a.id]
        assert [s.id for s in store.list_sessions(agent_id="a")] == [a.id, c.id]
        assert [s.id for s in store.list_sessions(limit=2)] == [b.id, a.id]
        assert [s.id for s in store.list_sessions(offset=1, limit=1)] == [a.id]
        assert store.list_sessions(offset=5) == []

    def test_list_sessions_includes_soft_deleted(self, store):
        s = session().replace(deleted_at=datetime.now(timezone.utc))
        store.save_session(s)
        assert [x.id for x in store.list_sessions()] == [s.id]

    @pytest.mark.parametrize("limit", [0, -1, True, 1.5, "2"])
    def test_bad_limit_rejected(self, store, limit):
        with pytest.raises(AsmError) as ei:
            store.list_sessions(limit=limit)
        assert ei.value.code == "validation_error"
        assert ei.value.message == "limit must be a positive integer"
        with pytest.raises(AsmError):
            store.list_runs("ses_x", limit=limit)
        with pytest.raises(AsmError):
            store.get_events("ses_x", limit=limit)

    def test_bad_status_filter(self, store):
        with pytest.raises(AsmError) as ei:
            store.list_sessions(status="bogus")
        assert ei.value.code == "invalid_status"

    def test_delete_session_cascades(self, store):
        s = session()
        store.save_session(s)
        r = run_for(s.id)
        store.save_run(r)
        store.append_events([ev(s.id), ev(s.id)])
        other = sid()
        store.append_event(ev(other))
        store.delete_session(s.id)
        with pytest.raises(AsmError) as ei:
            store.get_session(s.id)
        assert ei.value.code == "session_not_found"
        with pytest.raises(AsmError):
            store.get_run(r.id)
        assert store.list_runs(s.id) == []
        assert store.get_events(s.id) == []
        assert store.get_latest_sequence(s.id) == 0
        assert len(store.get_events(other)) == 1
        # a fresh start after the cascade: the counter was removed with the session
        assert store.append_event_with_sequence(ev(s.id)).sequence_number == 1

    def test_delete_twice_is_idempotent(self, store):
        s = session()
        store.save_session(s)
        store.delete_session(s.id)
        store.delete_session(s.id)
        store.delete_session("ses_never_existed")
        assert store.list_sessions() == []

    # -- runs -----------------------------------------------------------------------------------
    def test_save_get_run(self, store):
        r = run_for("ses_1", input={"prompt": "x"})
        store.save_run(r)
        got = store.get_run(r.id)
        assert got.id == r.id and got.session_id == "ses_1" and got.input == {"prompt": "x"}
        assert got.status is RunStatus.PENDING

    def test_get_missing_run(self, store):
        with pytest.raises(AsmError) as ei:
            store.get_run("run_missing")
        assert ei.value.code == "run_not_found"
        assert ei.value.message == "Run not found: run_missing"

    def test_update_run(self, store):
        r = run_for("ses_1")
        store.save_run(r)
        store.save_run(r.with_output({"text": "done"}))
        got = store.get_run(r.id)
        assert got.status is RunStatus.COMPLETED and got.output == {"text": "done"}
        assert len(store.list_runs("ses_1")) == 1

    def test_list_runs_ordered_filtered(self, store):
        base = datetime(2024, 1, 1, tzinfo=timezone.utc)
        r1 = run_for("ses_a").replace(started_at=base + timedelta(seconds=2))
        r2 = run_for("ses_a", status="running").replace(started_at=base + timedelta(seconds=1))
        r3 = run_for("ses_b").replace(started_at=base)
        for r in (r1, r2, r3):
            store.save_run(r)
        assert [r.id for r in store.list_runs("ses_a")] == [r2.id, r1.id]
        assert [r.id for r in store.list_runs("ses_a", status="running")] == [r2.id]
        assert [r.id for r in store.list_runs("ses_a", limit=1)] == [r2.id]
        assert [r.id for r in store.list_runs(None)] == [r3.id, r2.id, r1.id]

    def test_list_runs_unknown_session_empty(self, store):
        assert store.list_runs("ses_unknown") == []

    def test_active_run(self, store):
        base = datetime(2024, 1, 1, tzinfo=timezone.utc)
        assert store.get_active_run("ses_1") is None
        old = run_for("ses_1", status="running").replace(started_at=base)
        new = run_for("ses_1", status="running").replace(started_at=base + timedelta(seconds=5))
        done = run_for("ses_1", status="running").replace(started_at=base + timedelta(seconds=9))
        store.save_run(old)
        store.save_run(new)
        store.save_run(done.with_status("completed"))
        assert store.get_active_run("ses_1").id == new.id
        store.save_run(new.with_status("completed"))
        store.save_run(old.with_status("failed"))
        assert store.get_active_run("ses_1") is None

    def test_active_run_read_after_write_from_other_thread(self, store):
        r = run_for("ses_1", status="running")
        store.save_run(r)
        box = []
        t = threading.Thread(target=lambda: box.append(store.get_active_run("ses_1")))
        t.start()
        t.join(5)
        assert box and box[0].id == r.id

    # -- appends ----------------------------------------------------------------------------------
    def test_append_and_get(self, store):
        s = sid()
        e = ev(s, run_id="run_1", data={"content": "hello", "role": "assistant"}, metadata={"m": 1},
               provider="shell", correlation_id="c1")
        assert store.append_event(e) is None
        [got] = store.get_events(s)
        assert got.id == e.id and got.type is EventType.MESSAGE_RECEIVED and got.run_id == "run_1"
        assert got.data == {"content": "hello", "role": "assistant"} and got.metadata == {"m": 1}
        assert got.provider == "shell" and got.correlation_id == "c1"
        assert got.timestamp == e.timestamp and got.sequence_number == 1

    def test_append_order(self, store):
        s = sid()
        events = [ev(s, data={"content": str(i), "role": "user"}) for i in range(20)]
        for e in events:
            store.append_event(e)
        got = store.get_events(s)
        assert [e.id for e in got] == [e.id for e in events]
        assert seqs(got) == list(range(1, 21))

    def test_sequence_and_latest(self, store):
        s = sid()
        assert store.append_event_with_sequence(ev(s)).sequence_number == 1
        assert store.append_event_with_sequence(ev(s)).sequence_number == 2
        assert store.get_latest_sequence(s) == 2

    def test_caller_sequence_is_ignored(self, store):
        s = sid()
        e = ev(s, sequence_number=99)
        assert store.append_event_with_sequence(e).sequence_number == 1
        assert seqs(store.get_events(s)) == [1]

    def test_sequences_are_per_session(self, store):
        a, b = sid(), sid()
        store.append_event(ev(a))
        store.append_event(ev(a))
        assert store.append_event_with_sequence(ev(b)).sequence_number == 1
        assert store.get_latest_sequence(a) == 2

    def test_duplicate_id_returns_original(self, store):
        s = sid()
        e = ev(s, data={"content": "first", "role": "user"})
        first = store.append_event_with_sequence(e)
        again = store.append_event_with_sequence(e.replace(data={"content": "changed", "role": "user"}))
        assert again.sequence_number == first.sequence_number == 1
        assert again.data == {"content": "first", "role": "user"}
        assert len(store.get_events(s)) == 1
        assert store.get_latest_sequence(s) == 1

    def test_batch_append(self, store):
        s = sid()
        out = store.append_events([ev(s), ev(s)])
        assert seqs(out) == [1, 2]
        assert seqs(store.get_events(s)) == [1, 2]

    def test_batch_with_same_event_twice(self, store):
        s = sid()
        e = ev(s)
        out = store.append_events([e, e])
        assert seqs(out) == [1, 1] and out[0].id == out[1].id == e.id
        assert len(store.get_events(s)) == 1
        assert store.get_latest_sequence(s) == 1

    def test_batch_resolves_already_stored_ids(self, store):
        s = sid()
        e1 = store.append_event_with_sequence(ev(s))
        out = store.append_events([ev(s), e1, ev(s)])
        assert seqs(out) == [2, 1, 3]

    def test_batch_mixing_sessions(self, store):
        a, b = sid(), sid()
        out = store.append_events([ev(a), ev(b), ev(a), ev(b), ev(b)])
        assert seqs(out) == [1, 1, 2, 2, 3]
        assert seqs(store.get_events(b)) == [1, 2, 3]

    def test_empty_batch(self, store):
        assert store.append_events([]) == []

    def test_batch_with_non_event_writes_nothing(self, store):
        s = sid()
        with pytest.raises(AsmError) as ei:
            store.append_events([ev(s), {"type": "run_started"}])
        assert ei.value.code == "validation_error"
        assert ei.value.message == "events must be Event instances"
        assert store.get_events(s) == []
        assert store.get_latest_sequence(s) == 0

    def test_batch_with_invalid_event_writes_nothing(self, store):
        s = sid()
        bad = ev(s).replace(session_id="")
        with pytest.raises(AsmError) as ei:
            store.append_events([ev(s), bad])
        assert ei.value.message == "event.session_id is required"
        assert store.get_events(s) == []

    @pytest.mark.parametrize("field,value,message", [
        ("id", None, "event.id is required"),
        ("id", "", "event.id is required"),
        ("id", 5, "event.id is invalid"),
        ("session_id", None, "event.session_id is required"),
        ("type", None, "event.type is required"),
        ("type", "bogus", "event.type is invalid"),
        ("timestamp", None, "event.timestamp is required"),
        ("timestamp", datetime(2024, 1, 1), "event.timestamp is invalid"),
        ("timestamp", "2024-01-01T00:00:00Z", "event.timestamp is invalid"),
    ])
    def test_invalid_event_rejected_and_store_stays_usable(self, store, field, value, message):
        s = sid()
        bad = ev(s).replace(**{field: value})
        with pytest.raises(AsmError) as ei:
            store.append_event_with_sequence(bad)
        assert ei.value.code == "validation_error" and ei.value.message == message
        assert store.append_event_with_sequence(ev(s)).sequence_number == 1

    def test_non_event_rejected(self, store):
        with pytest.raises(AsmError) as ei:
            store.append_event({"id": "x"})
        assert ei.value.message == "event must be an Event"

    def test_in_flight_event_is_stored_through_to_event(self, store):
        """A NormalizedEvent is an Event in flight: the store refuses it as is (its parent /
        provider event ids would be lost) and keeps them from ``to_event()`` in metadata."""
        from asm_nb.core.events import NormalizedEvent

        s = sid()
        n = NormalizedEvent.new("message_received", s, "run_x", provider_event_id="msg_1", data={"content": "hi"})
        with pytest.raises(AsmError) as ei:
            store.append_event(n)
        assert ei.value.code == "validation_error" and "to_event()" in ei.value.message
        assert store.get_events(s) == []
        stored = store.append_event_with_sequence(n.to_event())
        got = store.get_events(s)
        assert [type(e) for e in got] == [Event] and got[0].id == n.id == stored.id
        assert got[0].metadata["provider_event_id"] == "msg_1" and got[0].data == {"content": "hi"}
        assert NormalizedEvent.from_event(got[0]).provider_event_id == "msg_1"

    def test_stored_fields_immutable(self, store):
        s = sid()
        e = ev(s, data={"content": "orig", "role": "user"})
        stored = store.append_event_with_sequence(e)
        with pytest.raises(Exception):
            stored.sequence_number = 5  # frozen dataclass
        store.append_event_with_sequence(e.replace(run_id="run_other"))
        [got] = store.get_events(s)
        assert got.run_id is None and got.data["content"] == "orig" and got.sequence_number == 1

    def test_latest_zero_for_empty_session(self, store):
        assert store.get_latest_sequence("ses_empty") == 0
        assert store.get_events("ses_empty") == []

    def test_unicode_and_nested_data_round_trip(self, store):
        s = sid()
        data = {"content": "héllo — ✓ 日本", "role": "user", "nested": {"list": [1, 2.5, None, True], "x": "y"}}
        store.append_event(ev(s, data=data))
        [got] = store.get_events(s)
        assert got.data == data

    # -- filters ----------------------------------------------------------------------------------
    def _three(self, store):
        s = sid()
        store.append_events([ev(s), ev(s), ev(s)])
        return s

    def test_after_before(self, store):
        s = self._three(store)
        assert seqs(store.get_events(s, after=1)) == [2, 3]
        assert seqs(store.get_events(s, before=3)) == [1, 2]
        assert seqs(store.get_events(s, after=1, before=3)) == [2]
        assert seqs(store.get_events(s, after=0)) == [1, 2, 3]
        assert store.get_events(s, after=3) == []
        assert seqs(store.get_events(s, limit=2)) == [1, 2]

    @pytest.mark.parametrize("name", ["after", "before"])
    @pytest.mark.parametrize("value", [-1, True, 1.0, "1"])
    def test_bad_cursor(self, store, name, value):
        with pytest.raises(AsmError) as ei:
            store.get_events("ses_1", **{name: value})
        assert ei.value.code == "validation_error"
        assert ei.value.message == f"{name} must be a non-negative integer"

    def test_composed_filters(self, store):
        s = sid()
        types = ["run_started", "message_received", "message_received", "message_received", "message_received"]
        runs = ["r1", "r1", "r2", "r1", "r1"]
        store.append_events([ev(s, t, run_id=r) for t, r in zip(types, runs)])
        assert seqs(store.get_events(s, after=1, run_id="r1", type="message_received", limit=2)) == [2, 4]
        assert seqs(store.get_events(s, after=1, before=4, limit=1)) == [2]

    def test_run_id_filter(self, store):
        s = sid()
        store.append_events([ev(s, run_id="r1"), ev(s, run_id="r2"), ev(s), ev(s, run_id="r1")])
        assert seqs(store.get_events(s, run_id="r1")) == [1, 4]
        assert seqs(store.get_events(s, run_id="r2")) == [2]

    def test_type_filter_forms(self, store):
        s = sid()
        store.append_events([ev(s, "run_started"), ev(s, "message_streamed", data={"content": "x"}),
                             ev(s, "tool_call_started", data={"tool_name": "bash"}), ev(s, "run_completed")])
        assert seqs(store.get_events(s, type="message_streamed")) == [2]
        assert seqs(store.get_events(s, type=EventType.RUN_STARTED)) == [1]
        assert seqs(store.get_events(s, type=["run_started", EventType.RUN_COMPLETED])) == [1, 4]
        with pytest.raises(AsmError) as ei:
            store.get_events(s, type="bogus")
        assert ei.value.code == "invalid_event_type"

    def test_since_inclusive(self, store):
        s = sid()
        base = datetime(2024, 5, 1, 12, 0, 0, 500, tzinfo=timezone.utc)
        store.append_events([ev(s, timestamp=base + timedelta(seconds=i)) for i in range(3)])
        assert seqs(store.get_events(s, since=base + timedelta(seconds=1))) == [2, 3]
        assert seqs(store.get_events(s, since=base)) == [1, 2, 3]
        other_tz = (base + timedelta(seconds=2)).astimezone(timezone(timedelta(hours=5)))
        assert seqs(store.get_events(s, since=other_tz)) == [3]
        with pytest.raises(AsmError) as ei:
            store.get_events(s, since=datetime(2024, 1, 1))
        assert ei.value.message == "since must be a timezone-aware datetime"

    # -- long-poll ----------------------------------------------------------------------------------
    def _wait_in_thread(self, store, session_id, **kw):
        box: dict = {}

        def target():
            t0 = time.monotonic()
            box["result"] = store.get_events(session_id, **kw)
            box["elapsed"] = time.monotonic() - t0

        t = threading.Thread(target=target, daemon=True)
        t.start()
        return t, box

    def test_wait_returns_immediately_when_data_exists(self, store):
        s = self._three(store)
        t0 = time.monotonic()
        assert seqs(store.get_events(s, wait_timeout_ms=5000)) == [1, 2, 3]
        assert time.monotonic() - t0 < 1.0

    def test_no_wait_option_returns_at_once(self, store):
        t0 = time.monotonic()
        assert store.get_events("ses_nothing") == []
        assert time.monotonic() - t0 < 0.1

    def test_wait_timeout_returns_empty(self, store):
        t0 = time.monotonic()
        assert store.get_events("ses_nothing", wait_timeout_ms=100) == []
        assert time.monotonic() - t0 >= 0.08

    def test_wait_woken_by_append(self, store):
        s = self._three(store)
        t, box = self._wait_in_thread(store, s, after=3, wait_timeout_ms=5000)
        e = store.append_event_with_sequence(ev(s))
        t.join(5)
        assert [x.id for x in box["result"]] == [e.id]
        assert box["elapsed"] < 2.0

    def test_wait_woken_by_batch_and_flush(self, store):
        s = sid()
        t, box = self._wait_in_thread(store, s, wait_timeout_ms=5000)
        sess = session(id=s)
        store.flush({"session": sess, "run": run_for(s), "events": [ev(s), ev(s)]})
        t.join(5)
        assert seqs(box["result"]) == [1, 2]  # one commit: both visible at once

    def test_wait_not_woken_by_other_session(self, store):
        s, other = sid(), sid()
        t, box = self._wait_in_thread(store, s, wait_timeout_ms=300)
        store.append_event(ev(other))
        t.join(5)
        assert box["result"] == [] and box["elapsed"] >= 0.25

    def test_wait_not_woken_by_other_type(self, store):
        s = sid()
        t, box = self._wait_in_thread(store, s, type="run_completed", wait_timeout_ms=300)
        store.append_event(ev(s, "message_received"))
        t.join(5)
        assert box["result"] == [] and box["elapsed"] >= 0.25

    def test_wait_not_woken_by_other_run(self, store):
        s = sid()
        t, box = self._wait_in_thread(store, s, run_id="r1", wait_timeout_ms=300)
        store.append_event(ev(s, run_id="r2"))
        store.append_event(ev(s))
        t.join(5)
        assert box["result"] == [] and box["elapsed"] >= 0.25

    def test_wait_filters_then_matching_append_wakes(self, store):
        s = sid()
        t, box = self._wait_in_thread(store, s, type="run_completed", wait_timeout_ms=5000)
        store.append_event(ev(s, "message_received"))
        done = store.append_event_with_sequence(ev(s, "run_completed"))
        t.join(5)
        assert [e.id for e in box["result"]] == [done.id]

    def test_close_wakes_waiters_with_empty(self, store):
        t, box = self._wait_in_thread(store, "ses_w", wait_timeout_ms=10_000)
        # the waiter may or may not have started waiting yet; either way it must return [] promptly
        store.close()
        t.join(5)
        assert not t.is_alive()
        assert box["result"] == [] and box["elapsed"] < 5

    # -- flush ------------------------------------------------------------------------------------
    def test_flush_without_payload(self, store):
        assert store.flush() is None

    def test_flush_ok(self, store):
        s = session()
        r = run_for(s.id, status="running")
        events = [ev(s.id, run_id=r.id), ev(s.id, run_id=r.id)]
        assert store.flush({"session": s, "run": r, "events": events, "provider_metadata": {"x": 1}}) is None
        assert store.get_session(s.id).id == s.id
        assert store.get_run(r.id).status is RunStatus.RUNNING
        assert [e.id for e in store.get_events(s.id)] == [e.id for e in events]
        assert store.get_latest_sequence(s.id) == 2

    def test_flush_accepts_payload_object(self, store):
        class Payload:
            def __init__(self, session, run, events):
                self.session, self.run, self.events, self.provider_metadata = session, run, events, {}

        s = session()
        store.flush(Payload(s, run_for(s.id), [ev(s.id)]))
        assert len(store.get_events(s.id)) == 1

    def test_flush_session_merge_rule(self, store):
        s = session(agent_id="orig", metadata={"a": 1}, parent_session_id="ses_parent").with_status("active")
        store.save_session(s)
        given = s.replace(status=SessionStatus.PENDING, agent_id="other", parent_session_id=None,
                          created_at=s.created_at + timedelta(days=1), metadata={"b": 2}, tags=["t"],
                          context={"c": 3}, updated_at=s.updated_at + timedelta(hours=1))
        store.flush({"session": given, "run": run_for(s.id), "events": []})
        got = store.get_session(s.id)
        assert got.status is SessionStatus.ACTIVE and got.agent_id == "orig"
        assert got.parent_session_id == "ses_parent" and got.created_at == s.created_at
        assert got.metadata == {"b": 2} and got.tags == ["t"] and got.context == {"c": 3}
        assert got.updated_at == given.updated_at

    def test_flush_rollback_on_bad_event(self, store):
        s = session()
        r = run_for(s.id)
        with pytest.raises(AsmError) as ei:
            store.flush({"session": s, "run": r, "events": [ev(s.id), "not an event"]})
        assert ei.value.code == "validation_error"
        assert ei.value.message == "events must be Event instances"
        with pytest.raises(AsmError) as e1:
            store.get_session(s.id)
        assert e1.value.code == "session_not_found"
        with pytest.raises(AsmError) as e2:
            store.get_run(r.id)
        assert e2.value.code == "run_not_found"
        assert store.get_events(s.id) == []

    @pytest.mark.parametrize("payload", [
        {}, {"session": None, "run": None, "events": []}, "x", 5,
    ])
    def test_flush_bad_payload_shape(self, store, payload):
        with pytest.raises(AsmError) as ei:
            store.flush(payload)
        assert ei.value.code == "validation_error"
        assert ei.value.message == "invalid execution_result payload"

    def test_flush_events_not_a_list(self, store):
        s = session()
        with pytest.raises(AsmError) as ei:
            store.flush({"session": s, "run": run_for(s.id), "events": (ev(s.id),)})
        assert ei.value.message == "invalid execution_result payload"

    def test_flush_events_keep_idempotency(self, store):
        s = session()
        e = ev(s.id)
        store.append_event(e)
        store.flush({"session": s, "run": run_for(s.id), "events": [e, ev(s.id)]})
        assert seqs(store.get_events(s.id)) == [1, 2]

    def test_context_manager_closes(self, store):
        with store as st:
            assert st is store

    # -- concurrency (threads) ----------------------------------------------------------------------
    def test_concurrent_session_saves(self, store):
        sessions = [session() for _ in range(100)]
        run_threads(100, lambda i: store.save_session(sessions[i]))
        assert sorted(s.id for s in store.list_sessions()) == sorted(s.id for s in sessions)

    def test_concurrent_reads_writes_one_session(self, store):
        s = session()
        store.save_session(s)

        def work(i):
            if i % 2:
                store.save_session(s.replace(metadata={"i": i}))
            return store.get_session(s.id).id

        assert run_threads(40, work) == [s.id] * 40

    def test_concurrent_deletes(self, store):
        sessions = [session() for _ in range(100)]
        for x in sessions:
            store.save_session(x)
        run_threads(100, lambda i: store.delete_session(sessions[i].id))
        assert store.list_sessions() == []

    def test_concurrent_appends(self, store):
        s = sid()
        events = [ev(s, sequence_number=7) for _ in range(100)]
        run_threads(100, lambda i: store.append_event(events[i]))
        got = store.get_events(s)
        assert len(got) == 100 and seqs(got) == list(range(1, 101))
        assert {e.id for e in got} == {e.id for e in events}

    def test_concurrent_append_with_sequence(self, store):
        s = sid()
        out = run_threads(50, lambda i: store.append_event_with_sequence(ev(s)))
        assert sorted(seqs(out)) == list(range(1, 51))
        assert store.get_latest_sequence(s) == 50

    def test_concurrent_batches(self, store):
        s = sid()
        batches = [[ev(s, data={"content": f"{b}-{i}", "role": "user"}) for i in range(5)] for b in range(10)]
        outs = run_threads(10, lambda i: store.append_events(batches[i]))
        got = store.get_events(s)
        assert seqs(got) == list(range(1, 51))
        for out in outs:  # each batch got contiguous numbers in input order
            ns = seqs(out)
            assert ns == list(range(ns[0], ns[0] + 5))


class ArtifactRecordContract:
    """Artifact metadata records (the registry's table): upsert, list, delete, cascade."""

    def test_artifact_records(self, store):
        a = {"id": "art_1", "session_id": "ses_a", "key": "k1", "created_at": "2024-01-02T00:00:00.000000Z"}
        b = {"id": "art_2", "session_id": "ses_b", "key": "k2", "created_at": "2024-01-01T00:00:00.000000Z"}
        store.save_artifact_record(a)
        store.save_artifact_record(b)
        store.save_artifact_record({**a, "key": "k1b"})
        assert [r["id"] for r in store.list_artifact_records()] == ["art_2", "art_1"]
        assert store.list_artifact_records("ses_a") == [{**a, "key": "k1b"}]
        store.delete_artifact_record("art_2")
        store.delete_artifact_record("art_2")
        assert [r["id"] for r in store.list_artifact_records()] == ["art_1"]
        store.delete_session("ses_a")
        assert store.list_artifact_records() == []
        with pytest.raises(AsmError):
            store.save_artifact_record({"key": "no id"})
