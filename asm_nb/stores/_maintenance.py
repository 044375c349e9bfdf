"""Generic Maintenance: retention (soft delete, hard delete, event pruning), clean-up of
orphans and a health check over any store (docs/stores.md, retention and maintenance). SqlStore overrides it with SQL.

Row-level operations use the SessionStore surface (``list_sessions``, ``save_session``,
``delete_session``, ``list_runs(None)``, ``get_events``, ``get_latest_sequence``). Deleting
events and sequence counters needs store hooks, used when present:

- ``delete_events(session_id, event_ids) -> int`` — remove stored events (pruning; LocalStore
  rewrites the log and keeps its high-water mark in ``meta.json``);
- ``sequence_counters() -> dict[session_id, int]`` and ``delete_sequence_counter(session_id)``;
- ``list_artifact_records(session_id=None)`` and ``delete_artifact_record(record_id)``.

For ``InMemoryStore`` these are provided here over its tables (under its lock). A store
without ``delete_events`` reports pruning as an error in the ``execute`` report (and
``prune_session_events`` raises ``maintenance_error``). Imports ``core``, ``config``,
``persistence.retention`` and ``telemetry``.
"""

from __future__ import annotations

import math
import time
from datetime import timedelta
from typing import Any, Callable, Iterable

from ..core.errors import AsmError
from ..core.serialization import utc_now
from ..persistence.retention import RetentionPolicy

__all__ = ["GenericMaintenance", "maintenance", "PROTECTED_EVENT_TYPES"]

#: Event types pruning never deletes (every instance).
PROTECTED_EVENT_TYPES = frozenset({"session_created", "run_started", "run_completed", "error_occurred",
                                   "run_failed"})


def _inf(v: Any) -> bool:
    return isinstance(v, float) and math.isinf(v)


class _MemoryHooks:
    """Event/counter deletion over ``InMemoryStore``'s tables, under its lock."""

    def __init__(self, store: Any) -> None:
        self.s = store

    @staticmethod
    def supports(store: Any) -> bool:
        return all(hasattr(store, a) for a in ("events_by_session", "event_index", "last_seq", "_lock"))

    def delete_events(self, session_id: str, event_ids: Iterable[str]) -> int:
        ids = set(event_ids)
        with self.s._lock:
            evs = self.s.events_by_session.get(session_id, [])
            keep = [e for e in evs if e.id not in ids]
            n = len(evs) - len(keep)
            for e in evs:
                if e.id in ids and self.s.event_index.get(e.id) is e:
                    del self.s.event_index[e.id]
            if keep:
                self.s.events_by_session[session_id] = keep
            else:
                self.s.events_by_session.pop(session_id, None)
            return n

    def sequence_counters(self) -> dict[str, int]:
        with self.s._lock:
            return dict(self.s.last_seq)

    def delete_sequence_counter(self, session_id: str) -> None:
        with self.s._lock:
            if not self.s.events_by_session.get(session_id):
                self.s.last_seq.pop(session_id, None)


class GenericMaintenance:
    """The scan implementation of the Maintenance protocol over ``store``.

    >>> from asm_nb.stores.memory import InMemoryStore
    >>> sorted(GenericMaintenance(InMemoryStore()).execute())[:3]
    ['artifacts_cleaned', 'duration_ms', 'errors']
    """

    def __init__(self, store: Any) -> None:
        self.store = store
        self._hooks = _MemoryHooks(store) if _MemoryHooks.supports(store) else None

    def __repr__(self) -> str:
        return f"GenericMaintenance({self.store!r})"

    def _hook(self, name: str) -> Any:
        fn = getattr(self.store, name, None)
        if callable(fn):
            return fn
        if self._hooks is not None:
            return getattr(self._hooks, name, None)
        return None

    # -- the whole pass ---------------------------------------------------------------------
    def execute(self, policy: RetentionPolicy | None = None) -> dict[str, Any]:
        """Soft delete → hard delete → prune every session → clean orphaned artifacts → clean
        orphaned sequences. A failing step counts 0 and adds its message to ``errors``. Invalid
        policy → ``validation_error``. Emits telemetry ``("asm", "maintenance", "complete")``."""
        policy = policy if policy is not None else RetentionPolicy.new()
        if not isinstance(policy, RetentionPolicy):
            raise AsmError("validation_error", f"policy must be a RetentionPolicy, got {type(policy).__name__}")
        policy.validate()
        t0 = time.monotonic()
        errors: list[str] = []

        def step(fn, *args) -> int:
            try:
                return int(fn(*args))
            except Exception as exc:  # noqa: BLE001 - each step's failure is reported, not raised
                errors.append(exc.message if isinstance(exc, AsmError) else f"{type(exc).__name__}: {exc}")
                return 0

        report: dict[str, Any] = {
            "sessions_soft_deleted": step(self.soft_delete_expired_sessions, policy),
            "sessions_hard_deleted": step(self.hard_delete_expired_sessions, policy),
            "events_pruned": step(self._prune_all, policy),
            "artifacts_cleaned": step(self.clean_orphaned_artifacts),
            "orphaned_sequences_cleaned": step(self.clean_orphaned_sequences),
        }
        report["duration_ms"] = int((time.monotonic() - t0) * 1000)
        report["errors"] = errors
        try:
            from .. import telemetry

            if telemetry.enabled():
                telemetry.execute(("asm", "maintenance", "complete"), {"duration_ms": report["duration_ms"]}, {})
        except Exception:  # pragma: no cover - telemetry never breaks maintenance
            pass
        return report

    # -- sessions ---------------------------------------------------------------------------
    def soft_delete_expired_sessions(self, policy: RetentionPolicy) -> int:
        """Set ``deleted_at`` on sessions not updated for ``max_completed_session_age_days``
        (not deleted, status not exempt, no exempt tag). Returns the count."""
        days = policy.max_completed_session_age_days
        if _inf(days):
            return 0
        now = utc_now()
        cutoff = now - timedelta(days=days)
        exempt_status = set(policy.exempt_statuses or [])
        exempt_tags = set(policy.exempt_tags or [])
        n = 0
        try:
            for s in self.store.list_sessions():
                if s.deleted_at is not None or s.status.value in exempt_status or s.updated_at >= cutoff:
                    continue
                if exempt_tags & set(s.tags or []):
                    continue
                self.store.save_session(s.replace(deleted_at=now))
                n += 1
        except AsmError as exc:
            raise AsmError("maintenance_error", f"soft delete failed: {exc.message}") from exc
        return n

    def hard_delete_expired_sessions(self, policy: RetentionPolicy) -> int:
        """Delete (with the store's cascade) sessions soft-deleted more than
        ``hard_delete_after_days`` ago, one at a time; the first failure raises
        ``maintenance_error``."""
        days = policy.hard_delete_after_days
        if _inf(days):
            return 0
        cutoff = utc_now() - timedelta(days=days)
        n = 0
        for s in self.store.list_sessions():
            if s.deleted_at is None or s.deleted_at >= cutoff:
                continue
            try:
                self.store.delete_session(s.id)
            except Exception as exc:
                msg = exc.message if isinstance(exc, AsmError) else repr(exc)
                raise AsmError("maintenance_error", f"hard delete of session {s.id} failed: {msg}") from exc
            n += 1
        return n

    # -- events -----------------------------------------------------------------------------
    def prune_session_events(self, session_id: str, policy: RetentionPolicy) -> int:
        """Delete the oldest events beyond ``max_events_per_session``: first those of
        ``prune_event_types_first``, then any type except the protected five. Returns the
        number deleted (may be less than the excess)."""
        limit = policy.max_events_per_session
        if _inf(limit):
            return 0
        events = list(self.store.get_events(session_id))
        excess = len(events) - limit
        if excess <= 0:
            return 0
        first = set(policy.prune_event_types_first or [])
        chosen: list[str] = []
        for e in events:  # ascending sequence
            if len(chosen) >= excess:
                break
            if e.type.value in first:
                chosen.append(e.id)
        picked = set(chosen)
        for e in events:
            if len(chosen) >= excess:
                break
            if e.id not in picked and e.type.value not in PROTECTED_EVENT_TYPES:
                chosen.append(e.id)
        if not chosen:
            return 0
        delete = self._hook("delete_events")
        if delete is None:
            raise AsmError("maintenance_error",
                           f"{type(self.store).__name__} cannot delete events (no delete_events hook)")
        deleted = 0
        size = policy.batch_size
        try:
            for i in range(0, len(chosen), size):
                deleted += int(delete(session_id, chosen[i:i + size]))
        except AsmError as exc:
            raise AsmError("maintenance_error", f"pruning session {session_id} failed: {exc.message}") from exc
        return deleted

    def _prune_all(self, policy: RetentionPolicy) -> int:
        if _inf(policy.max_events_per_session):
            return 0
        total, errors = 0, []
        for sid in self._session_ids():
            try:
                total += self.prune_session_events(sid, policy)
            except AsmError as exc:  # a failing session counts 0
                errors.append(exc.message)
        if errors and total == 0:
            raise AsmError("maintenance_error", errors[0])
        return total

    def _session_ids(self) -> list[str]:
        lister: Callable[..., Any] | None = getattr(self.store, "list_session_ids", None)
        if callable(lister):
            return list(lister())
        ids = {s.id for s in self.store.list_sessions()} | {r.session_id for r in self.store.list_runs(None)}
        return sorted(ids)

    # -- orphans ----------------------------------------------------------------------------
    def clean_orphaned_artifacts(self, *, artifact_store: Any = None) -> int:
        """Delete artifact records whose ``session_id`` is set but has no session row (and,
        with ``artifact_store``, their blobs). Stores without artifact records → 0."""
        lister, deleter = self._hook("list_artifact_records"), self._hook("delete_artifact_record")
        if lister is None or deleter is None:
            return 0
        known = {s.id for s in self.store.list_sessions()}
        n = 0
        for rec in lister():
            rec = rec if isinstance(rec, dict) else getattr(rec, "__dict__", {})
            sid = rec.get("session_id")
            if sid and sid not in known:
                if artifact_store is not None and rec.get("key"):
                    try:
                        artifact_store.delete(rec["key"])
                    except Exception:  # noqa: BLE001 - the record goes anyway
                        pass
                deleter(rec.get("id"))
                n += 1
        return n

    def clean_orphaned_sequences(self) -> int:
        """Delete sequence counters of sessions with neither a row nor any event (a counter of
        a session that still has events is kept: deleting it would restart numbering)."""
        counters, deleter = self._hook("sequence_counters"), self._hook("delete_sequence_counter")
        if counters is None or deleter is None:
            return 0
        known = {s.id for s in self.store.list_sessions()}
        n = 0
        for sid in list(counters()):
            if sid in known or self.store.get_events(sid, limit=1):
                continue
            deleter(sid)
            n += 1
        return n

    def health_check(self) -> list[str]:
        """Problems found, ``[]`` when healthy: events / runs referencing sessions without a
        row, and ``Sequence mismatch for <sid>: counter=<c>, max_sequence=<m>`` when a counter
        is below the highest stored sequence (``counter > max`` after pruning is normal)."""
        known = {s.id for s in self.store.list_sessions()}
        issues: list[str] = []
        orphan_events = 0
        mismatches = []
        for sid in self._session_ids():
            events = self.store.get_events(sid)
            if sid not in known:
                orphan_events += len(events)
            if events:
                mx = max(e.sequence_number or 0 for e in events)
                counter = self.store.get_latest_sequence(sid)
                if counter < mx:
                    mismatches.append(f"Sequence mismatch for {sid}: counter={counter}, max_sequence={mx}")
        orphan_runs = sum(1 for r in self.store.list_runs(None) if r.session_id not in known)
        if orphan_events:
            issues.append(f"{orphan_events} events reference non-existent sessions")
        if orphan_runs:
            issues.append(f"{orphan_runs} runs reference non-existent sessions")
        return issues + mismatches


def maintenance(store: Any) -> Any:
    """``store.maintenance`` when the store has its own, else a ``GenericMaintenance``."""
    m = getattr(store, "maintenance", None)
    if m is not None and callable(getattr(m, "health_check", None)):
        return m
    return GenericMaintenance(store)
