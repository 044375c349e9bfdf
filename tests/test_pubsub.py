"""PubSub topics, broker delivery, callbacks and the PubSubSink / SessionServer integrations."""

from __future__ import annotations

import asyncio
import queue
import threading

import pytest

from asm_nb.core.events import EventType, without_audit
from asm_nb.pubsub import (PubSub, build_topic, default_pubsub, event_callback, publish_server_events, run_topic,
                           session_topic, subscribe_events, type_topic)

EV = {"type": "run_started", "session_id": "ses_1", "run_id": "run_1", "data": {}}


def test_topic_strings():
    assert session_topic("ses_1") == "asm:session:ses_1"
    assert run_topic("ses_1", "run_1") == "asm:session:ses_1:run:run_1"
    assert type_topic("ses_1", "message_streamed") == "asm:session:ses_1:type:message_streamed"
    assert type_topic("ses_1", EventType.RUN_STARTED, prefix="myapp") == "myapp:session:ses_1:type:run_started"
    assert session_topic("s", prefix="myapp") == "myapp:session:s"
    assert build_topic(EV) == "asm:session:ses_1"
    assert build_topic(EV, scope="run") == "asm:session:ses_1:run:run_1"
    assert build_topic(EV, scope="type", prefix="myapp") == "myapp:session:ses_1:type:run_started"
    assert build_topic({"type": "x"}, scope="run") == "asm:session::run:"
    with pytest.raises(ValueError, match="invalid scope 'bogus'"):
        build_topic(EV, scope="bogus")


@pytest.mark.parametrize("scope,topic", [("session", "asm:session:ses_1"), ("run", "asm:session:ses_1:run:run_1"),
                                         ("type", "asm:session:ses_1:type:run_started")])
def test_callback_delivers_on_each_scope(scope, topic):
    ps = PubSub()
    got = []
    ps.subscribe(topic, got.append)
    event_callback(ps, scope=scope)(EV)
    assert got == [("asm_event", "ses_1", EV)]


def test_static_topic_custom_wrapper_and_invalid_scope():
    ps = PubSub()
    got = []
    ps.subscribe("mine", got.append)
    event_callback(ps, topic="mine", message_wrapper="agent_event")(EV)
    assert got == [("agent_event", "ses_1", EV)]
    with pytest.raises(ValueError):
        event_callback(ps, scope="nope")


def test_subscribe_events_and_unsubscribe():
    ps = PubSub()
    got_s, got_r = [], []
    hs = subscribe_events(ps, session_id="ses_1", handler=got_s.append)
    subscribe_events(ps, session_id="ses_1", run_id="run_1", handler=got_r.append)
    with pytest.raises(ValueError, match="session_id is required"):
        subscribe_events(ps, handler=print)
    event_callback(ps)(EV)
    event_callback(ps, scope="run")(EV)
    assert len(got_s) == 1 and len(got_r) == 1
    ps.unsubscribe(hs)
    ps.unsubscribe(hs)
    event_callback(ps)(EV)
    assert len(got_s) == 1 and ps.subscribers("asm:session:ses_1") == 0


def test_pattern_subscription_and_handler_errors():
    ps = PubSub()
    got = []

    def bad(msg):
        raise RuntimeError("subscriber bug")

    ps.subscribe("asm:session:ses_1", bad)
    ps.subscribe("asm:session:ses_1*", got.append)
    for scope in ("session", "run", "type"):
        event_callback(ps, scope=scope)(EV)
    event_callback(ps)({**EV, "session_id": "ses_2"})
    assert len(got) == 3


def test_queue_targets_across_threads():
    ps = PubSub()
    q: queue.Queue = queue.Queue()
    ps.subscribe("t", q)

    async def go():
        aq: asyncio.Queue = asyncio.Queue()
        ps.subscribe("t", aq)
        t = threading.Thread(target=lambda: ps.broadcast("t", "from-thread"))
        t.start()
        got = await asyncio.wait_for(aq.get(), 2)
        t.join()
        ps.broadcast("t", "same-loop")
        return got, await asyncio.wait_for(aq.get(), 2)

    assert asyncio.run(go()) == ("from-thread", "same-loop")
    assert q.get_nowait() == "from-thread" and q.get_nowait() == "same-loop"
    with pytest.raises(TypeError):
        ps.subscribe("t", 42)
    assert default_pubsub() is default_pubsub()


def test_pubsub_sink_uses_the_broker():
    from asm_nb.rendering.sinks import PubSubSink

    ps = PubSub()
    got = []
    ps.subscribe("asm:session:ses_1:run:run_1", got.append)
    sink = PubSubSink(ps, scope="run", include_iodata=True)
    sink.write_event(EV, "text")
    assert got == [("asm_event", "ses_1", EV, "text")] and sink.broadcast_count == 1


def test_server_events_reach_session_and_run_topics():
    from asm_nb.runtime.server import SessionServer
    from asm_nb.stores import open_store
    from asm_nb.testing import MockAdapter

    ps = PubSub()
    session_msgs, run_msgs = [], []

    async def go():
        server = await SessionServer.start(store=open_store("memory://"), adapter=MockAdapter(), session_opts={})
        ps.subscribe(session_topic(server.session_id), session_msgs.append)
        await publish_server_events(server, ps)
        run_id = await server.submit_run("hello")
        ps.subscribe(run_topic(server.session_id, run_id), run_msgs.append)
        await server.await_run(run_id, 5000)
        await server.aclose()  # final dispatch
        return server, run_id

    server, run_id = asyncio.run(go())
    stored = without_audit(server.store.get_events(server.session_id, run_id=run_id))  # audit: not sent
    assert [m[2].id for m in session_msgs if m[2].run_id == run_id] == [e.id for e in stored]
    assert run_msgs and all(m[2].run_id == run_id for m in run_msgs)
    assert run_msgs[-1][2].type.value == "run_completed"
