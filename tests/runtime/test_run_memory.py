"""A run's events are held once: the store has them; the manager's tracker and the adapter keep
only what finalization needs, and the results read the events from the store when asked."""

from __future__ import annotations

import gc

import asm_nb
from asm_nb.core.events import Event, without_audit
from asm_nb.providers._base import BaseAdapter
from asm_nb.runtime import manager
from asm_nb.stores.local import LocalStore

N = 3000


def _live_deltas(run_id: str) -> int:
    """Objects in memory that are one ``message_streamed`` event of ``run_id`` (dicts or Events)."""
    gc.collect()
    n = 0
    for o in gc.get_objects():
        if type(o) is dict:
            if o.get("run_id") == run_id and o.get("type") == "message_streamed":
                n += 1
        elif isinstance(o, Event) and o.run_id == run_id and o.type.value == "message_streamed":
            n += 1
    return n


class Deltas(BaseAdapter):
    """Streams N text deltas, then counts what is still alive of them before returning."""

    name = "mem_deltas"

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.alive_at_end: int | None = None

    async def _execute(self, active, **opts):
        await active.emit("run_started", {"model": "m"})
        for i in range(self.n):
            await active.emit("message_streamed", {"delta": f"t{i} ", "content": f"t{i} "})
        await active.emit("run_completed", {"stop_reason": "end_turn"})
        self.alive_at_end = _live_deltas(active.run.id)
        return {"output": {"content": "done"}, "token_usage": {"input_tokens": 1, "output_tokens": self.n}}


def test_a_many_delta_run_keeps_no_copy_of_its_stream(tmp_path):
    # a small store cache and no write buffer, so what the store keeps in memory is a few events
    # whatever the timing (its buffer is otherwise written every 50 ms or 4 MiB); the rest must
    # hold nothing
    store = LocalStore(tmp_path / "st", max_cache_bytes=64 * 1024, max_buffer_bytes=1)
    adapter = Deltas(N)
    r = asm_nb.run_once("go", provider=adapter, store=store)
    assert r.ok and r.output == "done"
    # at the end of the stream neither the adapter nor the manager holds the N deltas
    assert adapter.alive_at_end is not None and adapter.alive_at_end < N // 10, adapter.alive_at_end
    # the result has not loaded them either, until asked
    assert _live_deltas(r.run_id) < N // 10
    events = r.events
    assert [e.type.value for e in events].count("message_streamed") == N
    assert events == without_audit(store.get_events(r.session_id, run_id=r.run_id))
    assert all(isinstance(e, Event) for e in events)
    assert "".join(e.data["delta"] for e in events if e.type.value == "message_streamed") == \
        "".join(f"t{i} " for i in range(N))
    store.close()


def test_the_execution_result_reads_its_events_from_the_store(tmp_path):
    store = LocalStore(tmp_path / "st")
    res = manager.execute_once(store, Deltas(5), "go")
    stored = [e.to_dict() for e in without_audit(store.get_events(res.session_id, run_id=res.run_id))]
    assert "run_started" in [e["type"] for e in stored]
    assert list(res.events) == stored and len(res.events) == len(stored) and res.events == stored
    assert [e["data"].get("delta") for e in res.events if e["type"] == "message_streamed"] == \
        [f"t{i} " for i in range(5)]
    assert res.events[-1]["type"] == "run_completed" and res.events[-1]["sequence_number"] is not None
    store.close()


def test_the_partial_text_of_a_long_stream_is_every_delta_in_order():
    from asm_nb.runtime.run_events import _RunTracker

    tracker = _RunTracker(run=None, session=None, adapter=None)  # type: ignore[arg-type]
    deltas = [f"d{i}," for i in range(10_000)]
    for d in deltas:
        tracker.observe("message_streamed", {"delta": d})
    tracker.observe("message_streamed", {"delta": "x", "kind": "thinking"})  # not answer text
    assert tracker.partial_text() == "".join(deltas)
    assert len(tracker.streamed_text) < 4096 and tracker.event_count == 10_001
