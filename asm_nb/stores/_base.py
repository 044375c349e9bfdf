"""Rules every SessionStore shares: argument checks, event filters, the flush payload and the
session-merge rule, row ordering, ``StoreBase`` (long-poll loop, context manager), and the
write-behind machinery of the buffering stores (``flusher_loop``, ``start_flusher``,
``track_open_stores``: LocalStore and SqlStore).

Stores differ only in where rows live; everything a test can observe about filtering and
validation is decided here, once (docs/stores.md, store contract). Imports only ``core``.
"""

from __future__ import annotations

import atexit
import bisect
import logging
import os
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import datetime, timezone
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeGuard

from ..core.errors import AsmError
from ..core.events import Event, EventType, NormalizedEvent, to_event_type
from ..core.run import Run, RunStatus
from ..core.session import Session, SessionStatus, _status

__all__ = [
    "EventQuery", "StoreBase", "check_event", "check_events", "check_limit", "check_offset", "check_session_id",
    "filter_runs", "filter_sessions", "merge_session", "parse_payload", "pick_active_run", "with_sequence",
    "flusher_loop", "start_flusher", "track_open_stores",
]


# --------------------------------------------------------------------------------------------
# argument checks


def _is_int(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def check_limit(limit: Any) -> int | None:
    """None → no limit; a positive int → itself; anything else → ``validation_error``."""
    if limit is None:
        return None
    if not _is_int(limit) or limit <= 0:
        raise AsmError("validation_error", "limit must be a positive integer")
    return limit


def check_offset(offset: Any) -> int:
    """None or 0 → 0; a non-negative int → itself; anything else → ``validation_error``."""
    if offset is None:
        return 0
    if not _is_int(offset) or offset < 0:
        raise AsmError("validation_error", "offset must be a non-negative integer")
    return offset


def _check_cursor(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if not _is_int(value) or value < 0:
        raise AsmError("validation_error", f"{name} must be a non-negative integer")
    return value


def _check_since(since: Any) -> datetime | None:
    if since is None:
        return None
    if not isinstance(since, datetime) or since.tzinfo is None or since.utcoffset() is None:
        raise AsmError("validation_error", "since must be a timezone-aware datetime")
    return since


def _check_types(type_: Any) -> frozenset[EventType] | None:
    """An ``EventType``, its string value, or a list/tuple/set of them (Python addition)."""
    if type_ is None:
        return None
    if isinstance(type_, (str, EventType)):
        return frozenset((to_event_type(type_),))
    if isinstance(type_, (list, tuple, set, frozenset)):
        return frozenset(to_event_type(t) for t in type_)
    raise AsmError("validation_error",
                   f"type must be an EventType, its string value or a list of them, got: {type_!r}")


def check_session_id(session_id: Any) -> str:
    """Session ids passed to store methods are non-empty strings."""
    if not isinstance(session_id, str) or not session_id:
        raise AsmError("validation_error", f"session_id must be a non-empty string, got: {session_id!r}")
    return session_id


def check_status(status: Any, enum: type) -> Any:
    """None → no filter; an enum member or its string value → the member (else ``invalid_status``)."""
    return None if status is None else _status(status, enum)


_UTC = timezone.utc


def check_event(event: Any) -> Event:
    """The store-boundary check of docs/stores.md, store contract (the store stays usable after a failure)."""
    # fast path for the shape every pipeline-built event has; anything else takes the full check
    if type(event) is Event and type(event.id) is str and event.id and type(event.session_id) is str \
            and event.session_id and type(event.type) is EventType and type(event.timestamp) is datetime \
            and event.timestamp.tzinfo is _UTC:
        return event
    if not isinstance(event, Event):
        raise AsmError("validation_error", "event must be an Event")
    if isinstance(event, NormalizedEvent):  # in flight: its parent / provider event ids would be lost
        raise AsmError("validation_error", "event must be an Event: store a NormalizedEvent as event.to_event()")
    for name in ("id", "session_id"):
        v = getattr(event, name)
        if v is None or v == "":
            raise AsmError("validation_error", f"event.{name} is required")
        if not isinstance(v, str):
            raise AsmError("validation_error", f"event.{name} is invalid")
    if event.type is None:
        raise AsmError("validation_error", "event.type is required")
    if not isinstance(event.type, EventType):
        raise AsmError("validation_error", "event.type is invalid")
    ts = event.timestamp
    if ts is None:
        raise AsmError("validation_error", "event.timestamp is required")
    if not isinstance(ts, datetime) or ts.tzinfo is None or ts.utcoffset() is None:
        raise AsmError("validation_error", "event.timestamp is invalid")
    return event


def check_events(events: Any) -> list[Event]:
    """A batch: every element an ``Event`` (else "events must be Event instances"), each valid."""
    if not isinstance(events, (list, tuple)):
        raise AsmError("validation_error", "events must be a list of Event instances")
    for e in events:
        if not isinstance(e, Event):
            raise AsmError("validation_error", "events must be Event instances")
    for e in events:
        check_event(e)
    return list(events)


def with_sequence(e: Event, seq: int) -> Event:
    """A copy of ``e`` carrying ``seq`` (positional constructor: several times faster than
    ``dataclasses.replace`` on the append hot path)."""
    return Event(e.id, e.type, e.timestamp, e.session_id, e.run_id, e.data, e.metadata, seq,
                 e.schema_version, e.provider, e.correlation_id)


def _sequence_setter() -> Any:
    slot = Event.__dict__.get("sequence_number") if "__slots__" in Event.__dict__ else None
    if slot is not None and hasattr(slot, "__set__"):
        return slot.__set__  # the slot descriptor: what the frozen dataclass's __init__ uses
    return lambda e, seq: object.__setattr__(e, "sequence_number", seq)  # pragma: no cover


#: ``set_sequence_in_place(event, seq)``: number an event that nobody else holds yet (the stores'
#: ``_append_unshared``, used by the persistence pipeline) without copying it; bypasses the frozen
#: dataclass guard.
set_sequence_in_place = _sequence_setter()


# --------------------------------------------------------------------------------------------
# event filters (docs/stores.md, store contract)


def _seq_key(e: Event) -> int:
    return e.sequence_number or 0  # stored events always carry one


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Validated ``get_events`` filters; ``apply`` runs them over one session's ascending events."""

    run_id: str | None = None
    types: frozenset | None = None
    since: datetime | None = None
    after: int | None = None
    before: int | None = None
    limit: int | None = None

    @classmethod
    def build(cls, *, run_id: Any = None, type: Any = None, since: Any = None, after: Any = None,
              before: Any = None, limit: Any = None) -> "EventQuery":
        return cls(run_id=run_id, types=_check_types(type), since=_check_since(since),
                   after=_check_cursor("after", after), before=_check_cursor("before", before),
                   limit=check_limit(limit))

    def apply(self, events: Sequence[Event]) -> list[Event]:
        """Filter an ascending-by-sequence list: run_id, type, since, after, before, then limit."""
        start = 0
        if self.after is not None:
            start = bisect.bisect_right(events, self.after, key=_seq_key)
        end = len(events)
        if self.before is not None:
            end = bisect.bisect_left(events, self.before, key=_seq_key, lo=start)
        run_id, types, since, limit = self.run_id, self.types, self.since, self.limit
        if run_id is None and types is None and since is None:
            out = list(events[start:end]) if limit is None else list(events[start:min(end, start + limit)])
            return out
        out = []
        for i in range(start, end):
            e = events[i]
            if run_id is not None and e.run_id != run_id:
                continue
            if types is not None and e.type not in types:
                continue
            if since is not None and e.timestamp < since:
                continue
            out.append(e)
            if limit is not None and len(out) >= limit:
                break
        return out


# --------------------------------------------------------------------------------------------
# sessions and runs (docs/stores.md, store contract)


def _session_key(s: Session) -> tuple:
    return (s.created_at, s.id)


def _run_key(r: Run) -> tuple:
    return (r.started_at, r.id)


def filter_sessions(sessions: Iterable[Session], *, status: Any = None, agent_id: Any = None, limit: Any = None,
                    offset: Any = 0) -> list[Session]:
    """Status / agent filters, ordered by ``created_at`` then ``id``, then offset and limit."""
    status = check_status(status, SessionStatus)
    limit = check_limit(limit)
    offset = check_offset(offset)
    rows = [s for s in sessions
            if (status is None or s.status is status) and (agent_id is None or s.agent_id == agent_id)]
    rows.sort(key=_session_key)
    rows = rows[offset:]
    return rows if limit is None else rows[:limit]


def filter_runs(runs: Iterable[Run], *, status: Any = None, limit: Any = None) -> list[Run]:
    """Status filter, ordered by ``started_at`` then ``id``, then limit."""
    status = check_status(status, RunStatus)
    limit = check_limit(limit)
    rows = [r for r in runs if status is None or r.status is status]
    rows.sort(key=_run_key)
    return rows if limit is None else rows[:limit]


def pick_active_run(runs: Iterable[Run]) -> Run | None:
    """The ``running`` run with the latest ``started_at`` (ties: greatest id), or None."""
    running = [r for r in runs if r.status is RunStatus.RUNNING]
    return max(running, key=_run_key) if running else None


def merge_session(stored: Session | None, given: Session) -> Session:
    """The session write inside ``flush``: insert as given, or keep the stored status, deleted_at,
    created_at, agent_id and parent_session_id and take the rest from the payload (docs/stores.md, store contract)."""
    if stored is None:
        return given
    return given.replace(status=stored.status, deleted_at=stored.deleted_at, created_at=stored.created_at,
                         agent_id=stored.agent_id, parent_session_id=stored.parent_session_id)


def parse_payload(payload: Any) -> tuple[Session, Run, list[Event]]:
    """``(session, run, events)`` from a mapping or an ``ExecutionPayload``-like object, each checked
    (events, then ``check_session``, then ``check_run``)."""
    def bad() -> AsmError:  # made only when raised (an error object costs ~5 us per flush)
        return AsmError("validation_error", "invalid execution_result payload")

    if isinstance(payload, Mapping):
        if not all(k in payload for k in ("session", "run", "events")):
            raise bad()
        session, run, events = payload["session"], payload["run"], payload["events"]
        meta = payload.get("provider_metadata")
    elif all(hasattr(payload, k) for k in ("session", "run", "events")):
        session, run, events = payload.session, payload.run, payload.events
        meta = getattr(payload, "provider_metadata", None)
    else:
        raise bad()
    if not isinstance(session, Session) or not isinstance(run, Run) or not isinstance(events, list):
        raise bad()
    if meta is not None and not isinstance(meta, Mapping):
        raise bad()
    for e in events:
        if not isinstance(e, Event):
            raise AsmError("validation_error", "events must be Event instances")
    for e in events:
        check_event(e)
    check_session(session)
    check_run(run)
    return session, run, events


def check_session(session: Any) -> Session:
    if not isinstance(session, Session):
        raise AsmError("validation_error", "session must be a Session")
    if not isinstance(session.id, str) or not session.id:
        raise AsmError("validation_error", "session.id is required")
    if not isinstance(session.status, SessionStatus):
        raise AsmError("validation_error", "session.status is invalid")
    return session


def check_run(run: Any) -> Run:
    if not isinstance(run, Run):
        raise AsmError("validation_error", "run must be a Run")
    for name in ("id", "session_id"):
        v = getattr(run, name)
        if not isinstance(v, str) or not v:
            raise AsmError("validation_error", f"run.{name} is required")
    if not isinstance(run.status, RunStatus):
        raise AsmError("validation_error", "run.status is invalid")
    return run


# --------------------------------------------------------------------------------------------
# StoreBase


class StoreBase:
    """Shared surface: ``append_event*`` on top of ``append_events``, the long-poll loop of
    ``get_events`` (docs/stores.md, store contract), and the context manager.

    Subclasses provide ``_cond`` (a ``threading.Condition`` notified after every commit),
    ``_poll_s`` (None, or a poll interval for changes made by other processes), ``_closed``,
    ``_query(session_id, query)`` and ``_append(events, single)``.
    """

    inline_safe = True
    _poll_s: float | None = None
    _closed: bool = False
    _waiters: int = 0
    _cond: threading.Condition

    # -- appends ---------------------------------------------------------------------------
    def append_event(self, event: Event) -> None:
        """Store one event (result discarded)."""
        self.append_event_with_sequence(event)

    def append_event_with_sequence(self, event: Event) -> Event:
        """Store one event and return it with its assigned ``sequence_number`` (or, for an id
        already stored, the originally stored event)."""
        check_event(event)
        return self._append([event], single=True)[0]

    def append_events(self, events: Sequence[Event]) -> list[Event]:
        """Store a batch all-or-nothing; one stored event per input element, same order."""
        events = check_events(events)
        if not events:
            return []
        return self._append(events, single=False)

    def _append(self, events: list[Event], single: bool) -> list[Event]:  # pragma: no cover
        raise NotImplementedError

    def _query(self, session_id: str, query: EventQuery) -> list[Event]:  # pragma: no cover
        raise NotImplementedError

    # -- reads ------------------------------------------------------------------------------
    def get_events(self, session_id: str, *, run_id: str | None = None, type: Any = None, since: Any = None,
                   after: int | None = None, before: int | None = None, limit: int | None = None,
                   wait_timeout_ms: int = 0) -> list[Event]:
        """Events of one session in ascending sequence, filtered (docs/stores.md, store contract). With
        ``wait_timeout_ms``
        > 0 and nothing matching yet, block until a matching event arrives, the timeout passes
        (→ ``[]``) or the store closes (→ ``[]``)."""
        check_session_id(session_id)
        query = EventQuery.build(run_id=run_id, type=type, since=since, after=after, before=before, limit=limit)
        result = self._query(session_id, query)
        if result or not _is_int(wait_timeout_ms) or wait_timeout_ms <= 0 or self._closed:
            return result
        deadline = time.monotonic() + wait_timeout_ms / 1000.0
        with self._cond:
            # Registered before the re-check below: a commit either lands before that query (and
            # is seen) or after it, and then sees ``_waiters > 0`` and notifies.
            self._waiters += 1
            try:
                while True:
                    if self._closed:
                        return []
                    result = self._query(session_id, query)
                    if result:
                        return result
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return []
                    self._cond.wait(remaining if self._poll_s is None else min(remaining, self._poll_s))
            finally:
                self._waiters -= 1

    def _notify(self) -> None:
        """Wake long-poll waiters after a commit (skipped, cheaply, when nobody waits)."""
        if self._waiters:
            with self._cond:
                self._cond.notify_all()

    def _check_open(self) -> None:
        if self._closed:
            raise AsmError("storage_error", f"{type(self).__name__} is closed")

    # -- context manager ---------------------------------------------------------------------
    def close(self) -> None:  # pragma: no cover - overridden
        self._closed = True
        self._notify()

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()



# --------------------------------------------------------------------------------------------
# write-behind (LocalStore, SqlStore)


def flusher_loop(store_ref: "weakref.ref[Any]", cond: threading.Condition) -> None:
    """Body of a store's flusher thread: write what is due ``flush_interval`` after it was opened,
    until the store is closed or collected. Holds the store only weakly (never across a wait).

    The store provides ``_closed``, ``_due() -> (due, seconds until the next or None)`` (called
    holding ``cond``), ``_flush_due(due) -> bool`` (True: some were busy, try again shortly) and
    ``_notify()``."""
    while True:
        store = store_ref()
        if store is None or store._closed:
            return
        with cond:
            due, wait = store._due()
            if not due:
                wait = 1.0 if wait is None else wait
                # read by start_flusher (under cond): a new deadline after this one needs no wake-up
                store._flusher_wake_at = time.monotonic() + wait
                del store
                cond.wait(wait)
                continue
        retry = store._flush_due(due)
        store._notify()
        del store
        if retry:
            time.sleep(0.001)


def start_flusher(store: Any, name: str, due_at: float | None = None) -> None:
    """Start ``store``'s flusher thread if it is not running, else wake it (something new is
    scheduled) unless it already sleeps until ``due_at`` (monotonic) or earlier: a wake-up
    costs a thread switch per scheduled write, and the flusher re-reads every deadline whenever
    it wakes. The caller holds ``store._timer_cond``."""
    if store._flusher is None or not store._flusher.is_alive():
        store._flusher_wake_at = None
        store._flusher = threading.Thread(target=flusher_loop, args=(weakref.ref(store), store._timer_cond),
                                          name=name, daemon=True)
        store._flusher.start()
    else:
        wake_at = getattr(store, "_flusher_wake_at", None)
        if due_at is not None and wake_at is not None and wake_at <= due_at:
            return
        store._timer_cond.notify()


def track_open_stores(log: logging.Logger, label: str, describe: Callable[[Any], str]) -> "weakref.WeakSet[Any]":
    """A weak set for the open stores of one kind (``label``: "LocalStore", ...): each is flushed
    (``_flush_all``) at interpreter exit and reset (``_after_fork``) in a forked child.
    ``describe(store)`` names a store whose flush at exit failed."""
    stores: "weakref.WeakSet[Any]" = weakref.WeakSet()

    def flush_open_stores() -> None:
        for store in list(stores):
            try:
                store._flush_all()
            except Exception as exc:  # pragma: no cover - exit path
                log.error("%s: flush at exit failed for %s: %s", label, describe(store), exc)

    def after_fork_in_child() -> None:
        for store in list(stores):
            store._after_fork()

    atexit.register(flush_open_stores)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=after_fork_in_child)
    return stores


# --------------------------------------------------------------------------------------------
# run owners: a pending/running run names the process writing it; runs whose owner is gone are
# marked failed ("interrupted") when a store is opened or listed (LocalStore, SqlStore)

_OWNER: dict[int, dict] = {}


def _host() -> str:
    import socket

    return socket.gethostname()


def _boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip() or None
    except OSError:
        return None


def process_start(pid: int) -> str | None:
    """A stable token for when process ``pid`` started (``None``: unknown or no such process):
    Linux ``/proc/<pid>/stat`` start time (clock ticks since boot), else psutil's create time."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return stat[stat.rindex(b")") + 2:].split()[19].decode()
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil  # optional

        return repr(psutil.Process(pid).create_time())
    except Exception:
        return None


def process_owner() -> dict:
    """``{"pid", "host", "boot", "start"}`` of this process (cached per pid: forks get their own)."""
    pid = os.getpid()
    owner = _OWNER.get(pid)
    if owner is None:
        owner = {"pid": pid, "host": _host(), "boot": _boot_id(), "start": process_start(pid)}
        _OWNER.clear()
        _OWNER[pid] = owner
    return owner


def owner_alive(owner: Any) -> bool | None:
    """True/False when it can be told whether the owner process still runs; None when not (another
    host, a malformed owner)."""
    if not isinstance(owner, Mapping) or not _is_int(owner.get("pid")):
        return None
    me = process_owner()
    if owner.get("host") != me["host"]:
        return None
    if owner.get("boot") and me["boot"] and owner["boot"] != me["boot"]:
        return False  # the machine rebooted since
    pid = owner["pid"]
    if pid == me["pid"]:
        return owner.get("start") in (None, me["start"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except OSError:
        return None
    start = process_start(pid)
    if start is None:
        return True  # the pid exists but its start time cannot be read: assume it is the owner
    return owner.get("start") in (None, start)


def stamp_owner(doc: dict) -> dict:
    """A run document as written: pending/running rows carry ``metadata.owner`` (this process),
    finished rows keep what they had."""
    if doc.get("status") in ("pending", "running"):
        md = doc.get("metadata")
        md = dict(md) if isinstance(md, Mapping) else {}
        md["owner"] = process_owner()
        doc = {**doc, "metadata": md}
    return doc


def with_owner(run: Run) -> Run:
    """``run`` as written: a pending/running one carries ``metadata.owner`` (this process)."""
    if run.status in (RunStatus.PENDING, RunStatus.RUNNING):
        return run.replace(metadata={**(run.metadata or {}), "owner": process_owner()})
    return run


INTERRUPTED_MESSAGE = "The process running this run ended before the run did (interrupted)"


def interrupted_runs(store: Any, runs: Iterable[Run]) -> list[Run]:
    """Mark each pending/running run whose owner process is gone as failed with error code
    ``interrupted`` and append its ``run_failed`` event (events already stored stay). Returns
    the runs marked. Errors are logged, never raised (this runs inside reads)."""
    from ..core.serialization import utc_now

    marked = []
    for run in runs:
        if run.status not in (RunStatus.PENDING, RunStatus.RUNNING):
            continue
        if owner_alive((run.metadata or {}).get("owner")) is not False:
            continue
        try:
            fresh = store.get_run(run.id)  # re-check: it may have finished meanwhile
            if fresh.status not in (RunStatus.PENDING, RunStatus.RUNNING) or \
                    owner_alive((fresh.metadata or {}).get("owner")) is not False:
                continue
            err = {"code": "interrupted", "message": INTERRUPTED_MESSAGE,
                   "details": {"owner": (fresh.metadata or {}).get("owner")}}
            store.append_event_with_sequence(Event.new(
                "run_failed", fresh.session_id, run_id=fresh.id, provider=fresh.provider,
                data={"error_code": "interrupted", "error_message": INTERRUPTED_MESSAGE}))
            done = fresh.replace(status=RunStatus.FAILED, error=err, ended_at=utc_now())
            store.save_run(done)
            marked.append(done)
        except Exception as exc:  # pragma: no cover - best effort
            logging.getLogger(__name__).warning("marking run %s interrupted failed: %r", run.id, exc)
    return marked
