"""In-process PubSub: topics per session, run and event type (docs/stores.md, pub/sub).

Topics are colon separated strings under a prefix (default ``"asm"``)::

    asm:session:<session_id>
    asm:session:<session_id>:run:<run_id>
    asm:session:<session_id>:type:<event_type>

Messages are tuples ``(wrapper, session_id, event)`` — wrapper default ``"asm_event"`` — or
``(wrapper, session_id, event, rendered_text)`` when a ``PubSubSink`` includes the text.

``PubSub`` is a thread-safe broker: ``subscribe(topic, target)`` where ``target`` is a callable
``handler(message)``, an ``asyncio.Queue`` (filled on its own loop, safe from any thread) or a
``queue.Queue``; a topic ending in ``*`` matches every topic with that prefix
(``"asm:session:ses_1*"`` gets the session topic and its run and type topics). A handler that
raises is logged and does not stop delivery. ``default_pubsub()`` is the process-wide broker
that ``run_once(..., publish=True)`` / ``%%asm --publish``, ``PubSubSink`` and
``publish_server_events`` broadcast to by default; subscribe to ``"asm:session:*"`` to see every
published run of the process (the notebook's own live view is fed by the run's callback, not by
PubSub).

>>> ps = PubSub()
>>> got = []
>>> h = subscribe_events(ps, session_id="ses_1", handler=got.append)
>>> event_callback(ps)({"type": "run_started", "session_id": "ses_1", "run_id": "run_1"})
>>> got[0][0], got[0][1]
('asm_event', 'ses_1')

Imports only the standard library and ``core``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue as _queue
import threading
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Union

__all__ = ["PubSub", "PubSubSubscription", "default_pubsub", "session_topic", "run_topic", "type_topic",
           "build_topic", "event_callback", "subscribe_events", "publish_server_events", "SCOPES"]

log = logging.getLogger(__name__)

SCOPES = ("session", "run", "type")

#: what ``subscribe`` delivers to: a callable (called with the message), an ``asyncio.Queue`` (also
#: from another thread: the put goes through the loop that subscribed) or a ``queue.Queue``
Subscriber = Union[Callable[[Any], object], "asyncio.Queue[Any]", "_queue.Queue[Any]"]


def _s(value: object) -> str:
    value = getattr(value, "value", value)
    return "" if value is None else str(value)


def session_topic(session_id: object, prefix: str = "asm") -> str:
    """``"<prefix>:session:<session_id>"``."""
    return f"{prefix}:session:{_s(session_id)}"


def run_topic(session_id: object, run_id: object, prefix: str = "asm") -> str:
    """``"<prefix>:session:<session_id>:run:<run_id>"``."""
    return f"{session_topic(session_id, prefix)}:run:{_s(run_id)}"


def type_topic(session_id: object, type: object, prefix: str = "asm") -> str:
    """``"<prefix>:session:<session_id>:type:<type>"`` (an EventType member → its value)."""
    return f"{session_topic(session_id, prefix)}:type:{_s(type)}"


def _field(event: object, key: str) -> Any:
    if isinstance(event, Mapping):
        return event.get(key)
    return getattr(event, key, None)


def build_topic(event: object, *, prefix: str = "asm", scope: str = "session") -> str:
    """The topic of ``event`` (a dict or an ``Event``) for ``scope`` session / run / type;
    a missing value interpolates as ``""``."""
    if scope not in SCOPES:
        raise ValueError(f"invalid scope {scope!r} (expected session, run, or type)")
    sid = _field(event, "session_id")
    if scope == "run":
        return run_topic(sid, _field(event, "run_id"), prefix)
    if scope == "type":
        return type_topic(sid, _field(event, "type"), prefix)
    return session_topic(sid, prefix)


_ids = itertools.count(1)


@dataclass(frozen=True)
class PubSubSubscription:
    """Handle returned by ``subscribe`` (pass it to ``unsubscribe``)."""

    id: int
    topic: str
    target: Subscriber
    loop: asyncio.AbstractEventLoop | None = None

    @property
    def is_pattern(self) -> bool:
        return self.topic.endswith("*")

    def matches(self, topic: str) -> bool:
        return topic.startswith(self.topic[:-1]) if self.is_pattern else topic == self.topic


class PubSub:
    """Thread-safe in-process broker."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._exact: dict[str, tuple[PubSubSubscription, ...]] = {}
        self._patterns: tuple[PubSubSubscription, ...] = ()

    def subscribe(self, topic: str, handler: Subscriber) -> PubSubSubscription:
        """Deliver the messages of ``topic`` to ``handler`` (callable, asyncio.Queue or queue.Queue)."""
        if not isinstance(topic, str) or not topic:
            raise ValueError("topic must be a non-empty string")
        loop = None
        if isinstance(handler, asyncio.Queue):
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
        elif not isinstance(handler, _queue.Queue) and not callable(handler):
            raise TypeError("handler must be callable, an asyncio.Queue or a queue.Queue")
        sub = PubSubSubscription(next(_ids), topic, handler, loop)
        with self._lock:
            if sub.is_pattern:
                self._patterns = (*self._patterns, sub)
            else:
                self._exact[topic] = (*self._exact.get(topic, ()), sub)
        return sub

    def unsubscribe(self, handle: PubSubSubscription) -> None:
        """Stop a subscription (idempotent)."""
        with self._lock:
            if handle.is_pattern:
                self._patterns = tuple(s for s in self._patterns if s.id != handle.id)
            else:
                subs = tuple(s for s in self._exact.get(handle.topic, ()) if s.id != handle.id)
                if subs:
                    self._exact[handle.topic] = subs
                else:
                    self._exact.pop(handle.topic, None)

    def subscribers(self, topic: str) -> int:
        """How many subscriptions a message on ``topic`` would reach."""
        exact, patterns = self._exact.get(topic, ()), self._patterns
        return len(exact) + sum(1 for p in patterns if p.matches(topic))

    def has_subscribers(self) -> bool:
        return bool(self._exact or self._patterns)

    def broadcast(self, topic: str, message: object) -> None:
        """Deliver ``message`` to every subscription of ``topic``, in subscription order."""
        subs = self._exact.get(topic, ())  # copy-on-write tuples: no lock on the hot path
        if self._patterns:
            subs = tuple(sorted((*subs, *(p for p in self._patterns if p.matches(topic))), key=lambda s: s.id))
        for sub in subs:
            self._deliver(sub, message)

    @staticmethod
    def _deliver(sub: PubSubSubscription, message: object) -> None:
        target = sub.target
        try:
            if isinstance(target, asyncio.Queue):
                loop = sub.loop
                if loop is None or loop.is_closed():
                    target.put_nowait(message)
                else:
                    try:
                        running = asyncio.get_running_loop()
                    except RuntimeError:
                        running = None
                    if running is loop:
                        target.put_nowait(message)
                    else:
                        loop.call_soon_threadsafe(target.put_nowait, message)
            elif isinstance(target, _queue.Queue):
                target.put_nowait(message)
            else:
                target(message)
        except Exception:
            log.exception("pubsub subscriber on %s raised (ignored)", sub.topic)


_default: PubSub | None = None
_default_lock = threading.Lock()


def default_pubsub() -> PubSub:
    """The process-wide broker."""
    global _default
    with _default_lock:
        if _default is None:
            _default = PubSub()
        return _default


def event_callback(pubsub: PubSub | None = None, *, prefix: str = "asm", scope: str = "session",
                   message_wrapper: str = "asm_event", topic: str | None = None) -> Callable[[object], None]:
    """An ``event_callback`` that broadcasts each event as ``(wrapper, session_id, event)`` to
    ``topic`` or to ``build_topic(event, prefix, scope)``."""
    if scope not in SCOPES:
        raise ValueError(f"invalid scope {scope!r} (expected session, run, or type)")
    ps = pubsub if pubsub is not None else default_pubsub()

    def callback(event: object) -> None:
        t = topic if topic is not None else build_topic(event, prefix=prefix, scope=scope)
        ps.broadcast(t, (message_wrapper, _field(event, "session_id"), event))

    return callback


def subscribe_events(pubsub: PubSub | None = None, *, session_id: str | None = None, run_id: str | None = None,
                     topic: str | None = None, prefix: str = "asm", handler: Subscriber) -> PubSubSubscription:
    """Subscribe ``handler`` to an explicit ``topic``, else to the run topic (with ``run_id``)
    or the session topic of ``session_id``."""
    ps = pubsub if pubsub is not None else default_pubsub()
    if topic is None:
        if not session_id:
            raise ValueError("session_id is required")
        topic = run_topic(session_id, run_id, prefix) if run_id else session_topic(session_id, prefix)
    return ps.subscribe(topic, handler)


async def publish_server_events(server: Any, pubsub: PubSub | None = None, *, prefix: str = "asm",
                                message_wrapper: str = "asm_event", from_sequence: int | None = None) -> Any:
    """Broadcast every stored event of a ``SessionServer`` session (from ``from_sequence``, default:
    new events only) to its session topic **and** its run topic. Returns the server
    subscription (``await server.unsubscribe(sub)`` to stop)."""
    ps = pubsub if pubsub is not None else default_pubsub()
    if from_sequence is None:
        from .persistence.store_call import call_store

        from_sequence = await call_store(server.store, "get_latest_sequence", server.session_id) + 1

    def forward(session_id: str, event: Any) -> None:
        msg = (message_wrapper, session_id, event)
        ps.broadcast(session_topic(session_id, prefix), msg)
        if getattr(event, "run_id", None):
            ps.broadcast(run_topic(session_id, event.run_id, prefix), msg)

    return await server.subscribe(from_sequence=from_sequence, callback=forward)
