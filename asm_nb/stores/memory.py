"""``InMemoryStore``: the SessionStore held in dicts of one process (docs/stores.md, InMemoryStore).

One ``threading.RLock`` guards every table; a ``Condition`` on the same lock serves long-poll.
Nothing survives the process. ``open_store("memory://")`` returns a fresh instance.
"""

from __future__ import annotations

import threading
from typing import Any

from ..core.errors import AsmError
from ..core.events import Event
from ..core.run import Run
from ..core.session import Session
from ._base import (EventQuery, StoreBase, check_event, check_events, check_run, check_session, check_session_id, filter_runs,
                    filter_sessions, merge_session, parse_payload, pick_active_run, set_sequence_in_place,
                    with_sequence)

__all__ = ["InMemoryStore"]


class InMemoryStore(StoreBase):
    """A thread-safe, process-local SessionStore.

    >>> from asm_nb.core.events import Event
    >>> store = InMemoryStore()
    >>> store.append_event_with_sequence(Event.new("run_started", "ses_1")).sequence_number
    1
    """

    inline_safe = True
    lazy_result_events = True  # reads work after close: RunResult.events may load on demand


    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._closed = False
        self.sessions: dict[str, Session] = {}
        self.runs: dict[str, Run] = {}
        self.events_by_session: dict[str, list[Event]] = {}
        self.event_index: dict[str, Event] = {}  # global across sessions, as the reference
        self.last_seq: dict[str, int] = {}
        self.artifacts: dict[str, dict] = {}  # artifact metadata records by id

    def __repr__(self) -> str:
        return f"InMemoryStore(sessions={len(self.sessions)}, events={len(self.event_index)})"

    # -- sessions ---------------------------------------------------------------------------
    def save_session(self, session: Session) -> None:
        """Upsert by id (the whole row is replaced)."""
        check_session(session)
        with self._lock:
            self._check_open()
            self.sessions[session.id] = session

    def get_or_create_named_session(self, name: str, session: Session) -> tuple[Session, bool]:
        """``(newest session whose metadata name is name, False)`` or ``(session saved, True)``, atomically."""
        check_session(session)
        with self._lock:
            self._check_open()
            named = [s for s in self.sessions.values() if s.metadata.get("name") == name]
            if named:
                return max(named, key=lambda s: (s.created_at, s.id)), False
            self.sessions[session.id] = session
            return session, True

    def get_session(self, session_id: str) -> Session:
        with self._lock:
            s = self.sessions.get(session_id)
        if s is None:
            raise AsmError("session_not_found", f"Session not found: {session_id}")
        return s

    def list_sessions(self, *, status: Any = None, agent_id: str | None = None, limit: int | None = None,
                      offset: int = 0) -> list[Session]:
        """All sessions (soft-deleted included) by ``created_at`` then id."""
        with self._lock:
            rows = list(self.sessions.values())
        return filter_sessions(rows, status=status, agent_id=agent_id, limit=limit, offset=offset)

    def list_session_ids(self) -> list[str]:
        """Ids of every session with a row, a run or an event, sorted."""
        with self._lock:
            ids = set(self.sessions) | set(self.events_by_session) | {r.session_id for r in self.runs.values()}
        return sorted(ids)

    def delete_session(self, session_id: str) -> None:
        """Idempotent; removes the session, its runs, its events and its counter at once."""
        with self._lock:
            self._check_open()
            self.sessions.pop(session_id, None)
            for rid in [rid for rid, r in self.runs.items() if r.session_id == session_id]:
                del self.runs[rid]
            for e in self.events_by_session.pop(session_id, []):
                if self.event_index.get(e.id) is e:
                    del self.event_index[e.id]
            self.last_seq.pop(session_id, None)
            for aid in [aid for aid, a in self.artifacts.items() if a.get("session_id") == session_id]:
                del self.artifacts[aid]

    # -- artifact records -----------------------------------------------------------------------
    def save_artifact_record(self, record: dict) -> None:
        """Upsert an artifact metadata record (a dict with a string ``id``)."""
        if not isinstance(record, dict) or not isinstance(record.get("id"), str) or not record["id"]:
            raise AsmError("validation_error", "artifact record must be a dict with a non-empty string id")
        with self._lock:
            self._check_open()
            self.artifacts[record["id"]] = dict(record)

    def list_artifact_records(self, session_id: str | None = None) -> list[dict]:
        """Artifact records (all, or of one session), by ``created_at`` then id; copies."""
        with self._lock:
            rows = [dict(a) for a in self.artifacts.values() if session_id is None or a.get("session_id") == session_id]
        rows.sort(key=lambda r: (str(r.get("created_at") or ""), str(r.get("id"))))
        return rows

    def delete_artifact_record(self, record_id: str) -> None:
        """Remove an artifact record (idempotent)."""
        with self._lock:
            self.artifacts.pop(record_id, None)

    # -- runs -------------------------------------------------------------------------------
    def save_run(self, run: Run) -> None:
        """Upsert by id."""
        check_run(run)
        with self._lock:
            self._check_open()
            self.runs[run.id] = run

    def get_run(self, run_id: str) -> Run:
        with self._lock:
            r = self.runs.get(run_id)
        if r is None:
            raise AsmError("run_not_found", f"Run not found: {run_id}")
        return r

    def list_runs(self, session_id: str | None, *, status: Any = None, limit: int | None = None) -> list[Run]:
        """Runs of one session (``None``: of every session) by ``started_at`` then id."""
        with self._lock:
            rows = [r for r in self.runs.values() if session_id is None or r.session_id == session_id]
        return filter_runs(rows, status=status, limit=limit)

    def get_active_run(self, session_id: str) -> Run | None:
        with self._lock:
            return pick_active_run(r for r in self.runs.values() if r.session_id == session_id)

    # -- events -----------------------------------------------------------------------------
    def _append_locked(self, events: list[Event], in_place: bool = False) -> list[Event]:
        out: list[Event] = []
        index = self.event_index
        for e in events:
            stored = index.get(e.id)
            if stored is None:
                seq = self.last_seq.get(e.session_id, 0) + 1
                self.last_seq[e.session_id] = seq
                if in_place:
                    set_sequence_in_place(e, seq)
                    stored = e
                else:
                    stored = with_sequence(e, seq)
                index[e.id] = stored
                self.events_by_session.setdefault(e.session_id, []).append(stored)
            out.append(stored)
        return out

    def _append(self, events: list[Event], single: bool, in_place: bool = False) -> list[Event]:
        with self._lock:
            self._check_open()
            # Nothing below can fail half-way (plain dict/list operations on validated events),
            # so a batch is all-or-nothing without an undo log.
            out = self._append_locked(events, in_place)
            if self._waiters:
                self._cond.notify_all()
        return out

    def _append_events_unshared(self, events: list[Event]) -> list[Event]:
        """``append_events`` for events nobody else holds (``EventPipeline.process_batch``):
        numbered in place instead of copied."""
        events = check_events(events)
        if not events:
            return []
        return self._append(events, single=False, in_place=True)

    def _append_unshared(self, event: Event) -> Event:
        """``append_event_with_sequence`` for an event nobody else holds (the pipeline's freshly
        built ones): its number is set on it in place instead of on a copy."""
        check_event(event)
        with self._lock:
            self._check_open()
            stored = self.event_index.get(event.id)
            if stored is None:
                sid = event.session_id
                seq = self.last_seq.get(sid, 0) + 1
                self.last_seq[sid] = seq
                set_sequence_in_place(event, seq)
                stored = self.event_index[event.id] = event
                events = self.events_by_session.get(sid)
                if events is None:
                    events = self.events_by_session[sid] = []
                events.append(event)
            if self._waiters:
                self._cond.notify_all()
        return stored

    def _query(self, session_id: str, query: EventQuery) -> list[Event]:
        with self._lock:
            events = self.events_by_session.get(session_id)
            return query.apply(events) if events else []

    def get_latest_sequence(self, session_id: str) -> int:
        """Highest sequence ever assigned for the session (0 when none)."""
        check_session_id(session_id)
        with self._lock:
            return self.last_seq.get(session_id, 0)

    def flush(self, payload: Any = None) -> None:
        """Without a payload: nothing to do. With one: append its events, merge its session and
        upsert its run, atomically (docs/stores.md, store contract); waiters are woken afterwards."""
        if payload is None:
            return
        session, run, events = parse_payload(payload)
        with self._lock:
            self._check_open()
            self._append_locked(events)
            self.sessions[session.id] = merge_session(self.sessions.get(session.id), session)
            self.runs[run.id] = run
            if self._waiters:
                self._cond.notify_all()

    def close(self) -> None:
        """Mark the store closed and wake every waiter with ``[]``. Later writes raise."""
        with self._lock:
            self._closed = True
            self._cond.notify_all()
