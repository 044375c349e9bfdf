"""StreamSession and ``asm_nb.stream`` (docs/runtime.md, streams, batches, the session server)."""

from __future__ import annotations

import asyncio
import time

import pytest

import asm_nb
from asm_nb.core.errors import AsmError
from asm_nb.runtime.stream import StreamSession
from asm_nb.stores import open_store
from asm_nb.testing import MockAdapter, ScriptedAdapter, example_cassette


def wait_until(cond, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.005)


def test_events_in_order_and_success_ends_without_extra_item():
    store = open_store("memory://")
    s = StreamSession.start(adapter=MockAdapter(mode="streaming", chunks=4, chunk_delay_ms=1), input="hello there",
                            store=store)
    items = list(s)
    types = [e["type"] for e in items]
    assert types[0] == "run_started" and types[-1] == "run_completed"
    assert types.count("message_streamed") == 4 and "error_occurred" not in types
    seqs = [e["sequence_number"] for e in items]
    assert seqs == sorted(seqs)
    assert list(s) == []  # single-use
    run = store.get_run(items[0]["run_id"])
    assert run.status.value == "completed"


def test_failure_yields_one_final_error_item_with_provider_error():
    err = AsmError("provider_error", "codex exited", provider_error={"provider": "codex", "kind": "transport_exit",
                                                                      "exit_code": 2, "stderr": "bad"})
    items = list(StreamSession.start(adapter=MockAdapter(mode="failing", error=err), input="x"))
    last = items[-1]
    assert last["type"] == "error_occurred" and last["data"]["error_code"] == "provider_error"
    pe = last["data"]["provider_error"]
    assert pe["provider"] == "codex" and pe["kind"] == "transport_exit" and pe["exit_code"] == 2
    assert last["run_id"] and last["session_id"]
    assert items[-2]["type"] == "run_failed"  # the adapter's terminal event, then the synthetic item


def test_provider_timeout_surfaces_as_error_item():
    items = list(StreamSession.start(adapter=MockAdapter(mode="timeout"), input="x", run_opts={"timeout": 30}))
    assert items[-1]["type"] == "error_occurred" and items[-1]["data"]["error_code"] == "provider_timeout"


def test_idle_timeout_ends_the_stream_and_cancels_the_run():
    store = open_store("memory://")
    adapter = ScriptedAdapter([("sleep", 10_000, {"content": "never"})])
    s = StreamSession.start(adapter=adapter, input="x", store=store, idle_timeout_ms=60)
    items = list(s)
    assert items[-1] == {"type": "error_occurred", "data": {"error_message": "stream idle timeout after 60ms"},
                         "session_id": s.session_id, "run_id": s.run_id}
    wait_until(lambda: store.get_run(s.run_id).status.value == "cancelled")
    assert adapter.cancelled == [s.run_id]


def test_break_early_cancels_and_close_is_idempotent():
    store = open_store("memory://")
    adapter = MockAdapter(mode="streaming", chunks=200, chunk_delay_ms=5)
    s = StreamSession.start(adapter=adapter, input="long " * 200, store=store)
    for ev in s:
        if ev["type"] == "message_streamed":
            break
    assert s.done
    run = store.get_run(s.run_id)
    assert run.status.value == "cancelled"
    s.close()
    s.close()
    s.close()
    # borrowed store and adapter still work
    again = list(StreamSession.start(adapter=adapter, input="short", store=store))
    assert again[-1]["type"] == "run_completed"


def test_close_before_consuming_and_owned_resources():
    closed = []

    class Owned(MockAdapter):
        async def aclose(self):
            closed.append(True)
            await super().aclose()

    s = StreamSession.start(adapter=(Owned, {"mode": "delayed", "delay_ms": 5000}), input="x")
    assert s.meta == {"adapter": Owned}
    s.close()
    assert closed == [True] and s.done
    items = list(s)  # what was buffered before the close: the run was cancelled, or its task shut down
    assert items[-1]["type"] == "error_occurred"
    assert items[-1]["data"].get("error_code") == "cancelled" or \
        items[-1]["data"]["error_message"] == "session task shutdown"


def test_named_adapter_and_validation():
    s = StreamSession.start(adapter="mock", input="x")
    assert s.meta == "mock" and [e["type"] for e in s][-1] == "run_completed"
    with pytest.raises(AsmError, match="missing option: adapter"):
        StreamSession.start(input="x")
    with pytest.raises(AsmError, match="missing option: input"):
        StreamSession.start(adapter=MockAdapter())
    with pytest.raises(AsmError, match="adapter must be"):
        StreamSession.start(adapter=42, input="x")
    stream, close, meta = StreamSession.start(adapter=MockAdapter(), input="x").parts()
    assert callable(close) and isinstance(meta, MockAdapter)
    close()


def test_user_callback_still_called_and_errors_swallowed():
    seen = []

    def cb(ev):
        seen.append(ev["type"])
        raise RuntimeError("callback bug")

    items = list(StreamSession.start(adapter=MockAdapter(), input="x", run_opts={"event_callback": cb}))
    assert seen == [e["type"] for e in items]


def test_async_iteration():
    async def go():
        s = StreamSession.start(adapter=MockAdapter(mode="streaming", chunks=3, chunk_delay_ms=1), input="a b c")
        return [ev["type"] async for ev in s], [ev async for ev in s]

    types, second = asyncio.run(go())
    assert types[0] == "run_started" and types[-1] == "run_completed" and second == []


def test_top_level_stream_with_replay_and_session():
    store = open_store("memory://")
    s = asm_nb.stream("summarise", provider="replay", store=store, session="streams",
                      options={"cassette": str(example_cassette("hello"))})
    items = list(s)
    types = [ev.type.value for ev in items]
    assert types[-1] == "run_completed" and "tool_call_started" in types
    assert s.result.ok and s.result.session_id == s.session_id
    assert store.get_session(s.session_id).metadata["name"] == "streams"
    # the stream hands out the same Event objects the run stored (RunResult.events)
    assert all(isinstance(ev, asm_nb.Event) for ev in items)
    assert items == s.result.events
    failed = list(asm_nb.stream("exit 3", provider="shell", store=store))
    assert isinstance(failed[-1], asm_nb.Event)
    assert failed[-1].type.value == "error_occurred" and failed[-1].data["error_code"]
