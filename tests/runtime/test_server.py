"""SessionServer, RunQueue, SessionRegistry and SessionRuntime (docs/runtime.md, streams, batches, the session
server) driven with the
mock, scripted, replay and shell providers against the real InMemoryStore."""

from __future__ import annotations

import asyncio
import sys

import pytest

from asm_nb import telemetry
from asm_nb.core.errors import AsmError
from asm_nb.core.events import without_audit
from asm_nb.runtime import manager
from asm_nb.runtime.control import ControlOperations
from asm_nb.runtime.limiter import ConcurrencyLimiter
from asm_nb.runtime.server import RunQueue, SessionRegistry, SessionRuntime, SessionServer
from asm_nb.stores import open_store
from asm_nb.testing import MockAdapter, ReplayProvider, ScriptedAdapter, example_cassette

TERMINAL = {"run_completed", "run_failed", "run_cancelled"}


def arun(coro, timeout: float = 20):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def start(adapter, store=None, **kw):
    store = store or open_store("memory://")
    return await SessionServer.start(store=store, adapter=adapter, session_opts={"agent_id": "t"}, **kw)


def sleeper(ms: float = 40, n: int = 1):
    return ScriptedAdapter([("sleep", ms, {"content": "done"})] * n)


def max_overlap(store, session_id) -> int:
    """Largest number of runs whose [run_started, terminal] intervals overlap, from event timestamps."""
    spans = {}
    for ev in store.get_events(session_id):
        if ev.run_id is None:
            continue
        if ev.type.value == "run_started":
            spans.setdefault(ev.run_id, [ev.timestamp, None])[0] = ev.timestamp
        elif ev.type.value in TERMINAL:
            spans.setdefault(ev.run_id, [None, None])[1] = ev.timestamp
    points = []
    for s, e in spans.values():
        assert s is not None and e is not None
        points += [(s, 1), (e, -1)]
    points.sort(key=lambda p: (p[0], p[1]))  # an end at the same instant frees the slot first
    cur = best = 0
    for _, d in points:
        cur += d
        best = max(best, cur)
    return best


# -- RunQueue -----------------------------------------------------------------------------------

def test_run_queue_fifo_bound_and_remove():
    q = RunQueue.new(2)
    q.enqueue("a")
    q.enqueue("b")
    with pytest.raises(AsmError) as e:
        q.enqueue("c")
    assert e.value.code == "max_runs_exceeded" and "(2)" in e.value.message
    assert q.to_list() == ["a", "b"] and q.size == 2
    q.remove("a")
    with pytest.raises(AsmError) as e:
        q.remove("zzz")
    assert e.value.code == "run_not_found"
    assert q.dequeue() == "b" and q.dequeue() is None
    with pytest.raises(AsmError):
        RunQueue.new(-1)


# -- construction ----------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "2"])
def test_start_rejects_bad_max_concurrent_runs(bad):
    with pytest.raises(AsmError, match="max_concurrent_runs must be a positive integer"):
        arun(start(MockAdapter(), max_concurrent_runs=bad))


def test_start_requires_session_and_parts():
    store = open_store("memory://")
    with pytest.raises(AsmError, match="requires session_id"):
        arun(SessionServer.start(store=store, adapter=MockAdapter()))
    with pytest.raises(AsmError) as e:
        arun(SessionServer.start(store=store, adapter=MockAdapter(), session_id="ses_missing"))
    assert e.value.code == "session_not_found"
    with pytest.raises(AsmError):
        arun(SessionServer.start(store=None, adapter=MockAdapter(), session_opts={}))


def test_existing_active_session_is_not_reactivated():
    store = open_store("memory://")
    adapter = MockAdapter()

    async def go():
        s = await manager.astart_session(store, adapter, {"agent_id": "a"})
        await manager.aactivate_session(store, s.id)
        server = await SessionServer.start(store=store, adapter=adapter, session_id=s.id)
        await server.aclose()
        return s.id

    sid = arun(go())
    types = [e.type.value for e in store.get_events(sid)]
    assert types.count("session_started") == 1


# -- scheduling ------------------------------------------------------------------------------------

def test_slots_never_exceeded_and_fifo_start_order():
    adapter = sleeper(40)

    async def go():
        server = await start(adapter, max_concurrent_runs=2)
        ids = [await server.submit_run(f"p{i}") for i in range(5)]
        st = server.status()
        assert st["in_flight_count"] == 2 and st["queued_count"] == 3
        assert st["in_flight_runs"] == ids[:2] and st["queued_runs"] == ids[2:]
        assert "active_run_id" not in st
        await server.drain(5000)
        return server, ids

    server, ids = arun(go())
    store = server.store
    assert adapter.calls == ids  # started in submission order
    assert max_overlap(store, server.session_id) == 2
    assert all(store.get_run(r).status.value == "completed" for r in ids)


def test_admission_rejects_when_slots_busy_and_queue_full():
    adapter = sleeper(200)

    async def go():
        server = await start(adapter, max_concurrent_runs=1, max_queued_runs=1)
        a = await server.submit_run("a")
        b = await server.submit_run("b")
        runs_before = len(server.store.list_runs(server.session_id))
        with pytest.raises(AsmError) as e:
            await server.submit_run("c")
        assert e.value.code == "max_runs_exceeded"
        assert len(server.store.list_runs(server.session_id)) == runs_before  # nothing written
        await server.aclose()
        return a, b

    arun(go())


def test_max_queued_zero_still_runs_when_a_slot_is_free():
    async def go():
        server = await start(MockAdapter(), max_queued_runs=0)
        res = await server.execute_run("hi", timeout_ms=5000)
        await server.aclose()
        return res

    assert arun(go()).output["content"] == "Mock response: hi"


def test_cancel_queued_run_leaves_in_flight_alone():
    adapter = sleeper(80)

    async def go():
        server = await start(adapter, max_concurrent_runs=1)
        a = await server.submit_run("a")
        b = await server.submit_run("b")
        await server.cancel_run(b)
        with pytest.raises(AsmError) as e:
            await server.await_run(b, 1000)
        assert e.value.code == "cancelled"
        res = await server.await_run(a, 5000)
        await server.cancel_run(b)  # finished → no-op
        with pytest.raises(AsmError) as e:
            await server.cancel_run("run_unknown")
        assert e.value.code == "run_not_found"
        return server, a, b, res

    server, a, b, res = arun(go())
    assert res.output["content"] == "done"
    assert server.store.get_run(b).status.value == "cancelled"
    assert [e.type.value for e in server.store.get_events(server.session_id, run_id=b)] == ["run_cancelled"]
    assert adapter.calls == [a]


def test_cancel_running_run_lets_the_next_start():
    adapter = ScriptedAdapter([("sleep", 10_000, {"content": "never"}), {"content": "second"}])

    async def go():
        server = await start(adapter, max_concurrent_runs=1)
        a = await server.submit_run("a")
        b = await server.submit_run("b")
        while not adapter.calls:
            await asyncio.sleep(0.005)
        await server.cancel_run(a)
        with pytest.raises(AsmError) as e:
            await server.await_run(a, 5000)
        assert e.value.code == "cancelled"
        return server, a, await server.await_run(b, 5000)

    server, a, res_b = arun(go())
    assert res_b.output["content"] == "second"
    assert server.store.get_run(a).status.value == "cancelled"
    terminal = [e.type.value for e in without_audit(server.store.get_events(server.session_id, run_id=a))
                if e.type.value in TERMINAL]
    assert terminal == ["run_cancelled"]


def test_failing_and_crashing_runs_do_not_stop_the_queue(monkeypatch):
    adapter = ScriptedAdapter([AsmError("provider_error", "boom"), {"content": "ok"}])

    async def go():
        server = await start(adapter, max_concurrent_runs=1)
        a = await server.submit_run("a")
        b = await server.submit_run("b")
        with pytest.raises(AsmError) as e:
            await server.await_run(a, 5000)
        assert e.value.code == "provider_error"
        assert (await server.await_run(b, 5000)).output["content"] == "ok"
        return server

    arun(go())

    real = manager.aexecute_run

    async def crashing(store, adapter, run_id, **opts):
        if crashing.first:
            crashing.first = False
            raise RuntimeError("manager exploded")
        return await real(store, adapter, run_id, **opts)

    crashing.first = True
    monkeypatch.setattr(manager, "aexecute_run", crashing)

    async def go2():
        server = await start(MockAdapter(), max_concurrent_runs=1)
        a = await server.submit_run("a")
        b = await server.submit_run("b")
        with pytest.raises(AsmError) as e:
            await server.await_run(a, 5000)
        assert e.value.code == "internal_error" and "Run task crashed" in e.value.message
        assert (await server.await_run(b, 5000)).output["content"] == "Mock response: b"

    arun(go2())


def test_await_unknown_run_fails_fast_and_timeout_keeps_run_going():
    adapter = sleeper(150)

    async def go():
        server = await start(adapter)
        with pytest.raises(AsmError) as e:
            await server.await_run("run_nope", 10_000)
        assert e.value.code == "run_not_found"
        r = await server.submit_run("x")
        with pytest.raises(AsmError) as e:
            await server.await_run(r, 10)
        assert e.value.code == "timeout"
        return (await server.await_run(r, 5000)).output["content"]

    assert arun(go()) == "done"


def test_drain_waits_and_times_out():
    adapter = sleeper(100)

    async def go():
        server = await start(adapter, max_concurrent_runs=2)
        await server.drain(10)  # nothing to do → immediately
        for i in range(3):
            await server.submit_run(f"{i}")
        with pytest.raises(AsmError) as e:
            await server.drain(10)
        assert e.value.code == "timeout" and "Drain timed out after 10ms" in e.value.message
        await server.drain(5000)
        st = server.status()
        assert st["in_flight_count"] == 0 and st["queued_count"] == 0

    arun(go())


def test_aclose_cancels_queued_and_in_flight():
    adapter = ScriptedAdapter([("sleep", 10_000, {"content": "never"})])

    async def go():
        server = await start(adapter, max_concurrent_runs=1)
        a = await server.submit_run("a")
        b = await server.submit_run("b")
        while not adapter.calls:
            await asyncio.sleep(0.005)
        await server.aclose()
        with pytest.raises(AsmError):
            await server.submit_run("c")
        return server, a, b

    server, a, b = arun(go())
    assert {server.store.get_run(r).status.value for r in (a, b)} == {"cancelled"}


# -- limiter and control -----------------------------------------------------------------------------

def test_limiter_slot_held_during_run_and_released_after():
    lim = ConcurrencyLimiter(max_parallel_runs=5)
    seen = []

    def on_event(ev):
        if ev["type"] == "message_received":
            seen.append(lim.get_status()["active_runs"])

    async def go():
        server = await start(MockAdapter(), limiter=lim)
        await server.execute_run("x", timeout_ms=5000, event_callback=on_event)
        await server.aclose()

    arun(go())
    assert seen == [1] and lim.get_status()["active_runs"] == 0


def test_limiter_refusal_fails_the_run_in_the_store():
    lim = ConcurrencyLimiter(max_parallel_runs=0)

    async def go():
        server = await start(MockAdapter(), limiter=lim)
        r = await server.submit_run("x")
        with pytest.raises(AsmError) as e:
            await server.await_run(r, 5000)
        assert e.value.code == "max_runs_exceeded"
        return server, r

    server, r = arun(go())
    run = server.store.get_run(r)
    assert run.status.value == "failed" and run.error["code"] == "max_runs_exceeded"


def test_limiter_wait_shares_a_global_bound_across_servers():
    lim = ConcurrencyLimiter(max_parallel_runs=2)
    store = open_store("memory://")
    adapter = ScriptedAdapter([("sleep", 30, {"content": "ok"})])

    async def go():
        servers = [await start(adapter, store=store, max_concurrent_runs=3, limiter=lim, limiter_wait=True)
                   for _ in range(2)]
        for s in servers:
            for i in range(3):
                await s.submit_run(f"{i}")
        for s in servers:
            await s.drain(5000)
        return servers

    servers = arun(go())
    assert lim.peak_active_runs == 2 and lim.get_status()["active_runs"] == 0
    assert sum(len(store.list_runs(s.session_id, status="completed")) for s in servers) == 6


def test_interrupt_with_control_ops():
    adapter = ScriptedAdapter([("sleep", 10_000, {"content": "never"})])
    ops = ControlOperations(adapter)

    async def go():
        server = await start(adapter, control_ops=ops)
        r = await server.submit_run("x")
        while not adapter.calls:
            await asyncio.sleep(0.005)
        assert await server.interrupt_run(r) == r
        with pytest.raises(AsmError) as e:
            await server.await_run(r, 5000)
        assert e.value.code == "cancelled"
        with pytest.raises(AsmError) as e:
            await server.interrupt_run(r)
        assert e.value.code == "run_not_found"
        return r

    r = arun(go())
    assert ops.get_operation_status(r)["state"] == "interrupted"


# -- subscriptions ---------------------------------------------------------------------------------

def test_subscribe_filters_backfill_and_live():
    async def go():
        server = await start(MockAdapter())
        r1 = await server.submit_run("one")
        await server.await_run(r1, 5000)
        latest = server.store.get_latest_sequence(server.session_id)
        only = await server.subscribe(from_sequence=0, run_id=r1, type="message_received")
        items = [await only.get(1)]
        assert items[0][1].type.value == "message_received" and items[0][1].run_id == r1
        assert all(ev.sequence_number > 0 for _, ev in items)
        live = await server.subscribe(from_sequence=latest + 1)
        assert live._queue.empty()  # no backfill
        r2 = await server.submit_run("two")
        await server.await_run(r2, 5000)
        got = []
        while True:
            sid, ev = await live.get(1)
            assert sid == server.session_id
            got.append(ev)
            if ev.type.value in TERMINAL:
                break
        assert all(ev.sequence_number > latest for ev in got)
        stored = server.store.get_events(server.session_id, after=latest)
        assert [e.id for e in got] == [e.id for e in without_audit(stored)]  # audit records are not sent
        again = await server.subscribe(from_sequence=got[-1].sequence_number + 1)
        assert again._queue.empty()
        assert only._queue.empty()  # the second run did not match run_id=r1
        with pytest.raises(AsmError):
            await server.subscribe(from_sequence=-1)
        assert server.status()["subscribers"] == 3
        await server.unsubscribe(live)
        await server.unsubscribe(live)  # idempotent
        assert server.status()["subscribers"] == 2
        await server.aclose()
        assert [x async for x in again] == []  # closed subscriptions end

    arun(go())


def test_subscriber_joining_mid_run_gets_every_event_once_in_order():
    adapter = MockAdapter(mode="streaming", chunks=30, chunk_delay_ms=3)

    async def go():
        server = await start(adapter)
        early = await server.subscribe()  # a live subscriber from the start
        r = await server.submit_run("stream me please " * 5)
        while len(server.store.get_events(server.session_id, type="message_streamed")) < 5:
            await asyncio.sleep(0.002)
        received, via_cb = [], []
        late = await server.subscribe(from_sequence=0, callback=lambda sid, ev: via_cb.append(ev.sequence_number))
        assert r in server.in_flight  # joined mid-run: part backfill, part live
        backfilled = late.delivered
        await server.await_run(r, 5000)
        while True:
            _, ev = await late.get(2)
            received.append(ev.sequence_number)
            if ev.type.value in TERMINAL:
                break
        early_seqs = []
        while True:
            _, ev = await early.get(2)
            early_seqs.append(ev.sequence_number)
            if ev.type.value in TERMINAL:
                break
        assert 0 < backfilled < len(received)
        return server, received, via_cb, early_seqs

    server, received, via_cb, early_seqs = arun(go())
    stored = [e.sequence_number for e in without_audit(server.store.get_events(server.session_id))]
    stored_to_terminal = stored[:stored.index(received[-1]) + 1]
    assert received == stored_to_terminal  # every event, once, in order (backfill + live)
    assert via_cb[:len(received)] == received
    assert early_seqs == stored_to_terminal


def test_subscriber_callback_errors_are_ignored():
    async def go():
        server = await start(MockAdapter())

        def bad(sid, ev):
            raise RuntimeError("subscriber bug")

        sub = await server.subscribe(callback=bad)
        await server.execute_run("x", timeout_ms=5000)
        await asyncio.sleep(0)
        assert sub.delivered > 0
        await server.aclose()

    arun(go())


# -- providers ------------------------------------------------------------------------------------

def test_replay_runs_through_the_server():
    adapter = ReplayProvider(cassette=example_cassette("hello"))

    async def go():
        server = await start(adapter, max_concurrent_runs=4)
        ids = [await server.submit_run(f"q{i}") for i in range(8)]
        results = [await server.await_run(r, 5000) for r in ids]
        await server.aclose()
        return server, results

    server, results = arun(go())
    assert len(results) == 8 and all(r.token_usage["output_tokens"] > 0 for r in results)
    assert max_overlap(server.store, server.session_id) <= 4


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX shell")
def test_shell_runs_through_the_server():
    from asm_nb.providers import create_adapter

    async def go():
        server = await start(create_adapter("shell"), max_concurrent_runs=2)
        ids = [await server.submit_run(f"echo run{i}") for i in range(3)]
        outs = [(await server.await_run(r, 10_000)).output for r in ids]
        await server.aclose()
        return outs

    outs = arun(go())
    assert [o.get("content", o.get("stdout")) for o in outs] == ["run0\n", "run1\n", "run2\n"]


def test_telemetry_events_of_the_server():
    seen = []
    names = [("asm", "runtime", "session_server", *s.split(".")) for s in
             ("start", "queue.enqueue", "queue.dequeue", "run.start", "run.stop", "subscribe", "unsubscribe",
              "cancel.queued")]
    telemetry.attach_many("test-server", names, lambda n, m, md, c: seen.append((n[3:], dict(m), dict(md))))
    try:
        async def go():
            server = await start(sleeper(30))
            sub = await server.subscribe()
            a = await server.submit_run("a")
            b = await server.submit_run("b")
            await server.cancel_run(b)
            await server.await_run(a, 5000)
            await server.unsubscribe(sub)
            await server.aclose()
            return server.session_id, a, b

        sid, a, b = arun(go())
    finally:
        telemetry.detach("test-server")
    kinds = [n for n, _, _ in seen]
    for k in [("start",), ("subscribe",), ("queue", "enqueue"), ("queue", "dequeue"), ("run", "start"),
              ("run", "stop"), ("cancel", "queued"), ("unsubscribe",)]:
        assert k in kinds, k
    assert all(md["session_id"] == sid for _, _, md in seen)
    assert ("cancel", "queued") in [n for n, _, md in seen if md.get("run_id") == b]


# -- registry / runtime ------------------------------------------------------------------------------

def test_registry_and_runtime():
    store = open_store("memory://")
    rt = SessionRuntime(store=store, adapter=MockAdapter())

    async def go():
        server = await rt.start_session(session_opts={"agent_id": "x"})
        assert server.max_concurrent_runs == 1
        assert rt.whereis(server.session_id) is server
        with pytest.raises(AsmError) as e:
            await rt.start_session(session_id=server.session_id)
        assert e.value.code == "already_exists"
        await server.execute_run("hi", timeout_ms=5000)
        await rt.stop_session(server.session_id)
        assert rt.whereis(server.session_id) is None
        other = await rt.start_session(session_id=server.session_id)  # restart on the same session
        await rt.aclose()
        assert rt.whereis(other.session_id) is None

    arun(go())
    reg = SessionRegistry()
    reg.register("s", object())  # type: ignore[arg-type]
    with pytest.raises(AsmError):
        reg.register("s", object())  # type: ignore[arg-type]
    reg.unregister("s")
    assert reg.lookup("s") is None


def test_sync_twins_on_the_runtime_loop():
    server = SessionServer.open(store=open_store("memory://"), adapter=MockAdapter(), session_opts={},
                                max_concurrent_runs=2)
    ids = [server.submit(f"q{i}") for i in range(3)]
    server.wait_drained(5000)
    assert [server.wait(r).output["content"] for r in ids] == [f"Mock response: q{i}" for i in range(3)]
    server.close()
    assert server.closed
