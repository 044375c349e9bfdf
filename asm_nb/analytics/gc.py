"""``asm gc`` / :func:`gc`: a retention pass (soft delete of old sessions, hard delete of long
soft-deleted ones, event pruning, orphan clean-up) with the maintenance report; ``dry_run=True``
reports what would go without touching the store."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, Callable

from ..core.errors import AsmError
from .query import _store, maintenance

if TYPE_CHECKING:
    from ..persistence.retention import RetentionPolicy
    from ..ports import StoreRef

__all__ = ["gc", "retention_policy"]


def retention_policy(*, max_age_days: object = None, hard_delete_after_days: object = None,
                     max_events_per_session: object = None, keep_failed: bool = False) -> RetentionPolicy:
    """A ``RetentionPolicy`` from the config defaults with these overrides: ``max_age_days`` →
    ``max_completed_session_age_days`` (sessions not updated for that many days are soft
    deleted), ``hard_delete_after_days``, ``max_events_per_session``; ``keep_failed`` exempts
    sessions whose status is ``failed``. Invalid values → ``validation_error``."""
    from ..persistence.retention import RetentionPolicy

    kw: dict[str, Any] = {}
    if max_age_days is not None:
        kw["max_completed_session_age_days"] = max_age_days
    if hard_delete_after_days is not None:
        kw["hard_delete_after_days"] = hard_delete_after_days
    if max_events_per_session is not None:
        kw["max_events_per_session"] = max_events_per_session
    policy = RetentionPolicy.new(**kw)
    if keep_failed and "failed" not in policy.exempt_statuses:
        policy.exempt_statuses = [*policy.exempt_statuses, "failed"]
    try:
        policy.validate()
    except AsmError as exc:
        if exc.message.startswith("max_completed_session_age_days "):  # say it with the caller's name
            raise AsmError(exc.code, "max_age_days" + exc.message[len("max_completed_session_age_days"):]) from None
        raise
    return policy


def _inf(v: object) -> bool:
    return isinstance(v, float) and v == float("inf")


def _plan(store: Any, policy: Any) -> dict[str, Any]:
    """What ``Maintenance.execute(policy)`` would do, computed without writing (dry run)."""
    from ..core.serialization import utc_now
    from ..stores._maintenance import PROTECTED_EVENT_TYPES

    now = utc_now()
    sessions = list(store.list_sessions())
    soft: list[str] = []
    if not _inf(policy.max_completed_session_age_days):
        cutoff = now - timedelta(days=policy.max_completed_session_age_days)
        exempt_status, exempt_tags = set(policy.exempt_statuses or []), set(policy.exempt_tags or [])
        soft = [s.id for s in sessions
                if s.deleted_at is None and s.status.value not in exempt_status and s.updated_at < cutoff
                and not (exempt_tags & set(s.tags or []))]
    hard: list[str] = []
    if not _inf(policy.hard_delete_after_days):
        cutoff = now - timedelta(days=policy.hard_delete_after_days)
        hard = [s.id for s in sessions if s.deleted_at is not None and s.deleted_at < cutoff]
    gone = set(hard)
    pruned = 0
    if not _inf(policy.max_events_per_session):
        lister: Callable[..., Any] | None = getattr(store, "list_session_ids", None)
        ids = list(lister()) if callable(lister) else sorted({s.id for s in sessions})
        first = set(policy.prune_event_types_first or [])
        for sid in ids:
            if sid in gone:
                continue
            evs = list(store.get_events(sid))
            excess = len(evs) - policy.max_events_per_session
            if excess > 0:
                prunable = sum(1 for e in evs if e.type.value in first or e.type.value not in PROTECTED_EVENT_TYPES)
                pruned += min(excess, prunable)
    known = {s.id for s in sessions} - gone
    artifacts = None
    rec_lister: Callable[..., Any] | None = getattr(store, "list_artifact_records", None)
    if callable(rec_lister):
        artifacts = 0
        for rec in rec_lister():
            rec = rec if isinstance(rec, dict) else getattr(rec, "__dict__", {})
            if rec.get("session_id") and rec.get("session_id") not in known and rec.get("session_id") not in gone:
                artifacts += 1
    return {"sessions_soft_deleted": len(soft), "sessions_hard_deleted": len(hard), "events_pruned": pruned,
            "artifacts_cleaned": artifacts, "orphaned_sequences_cleaned": None, "duration_ms": 0, "errors": [],
            "soft_delete_session_ids": soft, "hard_delete_session_ids": hard}


def gc(store: StoreRef = None, *, max_age_days: object = None, hard_delete_after_days: object = None,
       max_events_per_session: object = None, keep_failed: bool = False, dry_run: bool = False) -> dict[str, Any]:
    """Apply retention to ``store`` and return the maintenance report: ``sessions_soft_deleted,
    sessions_hard_deleted, events_pruned, artifacts_cleaned, orphaned_sequences_cleaned,
    duration_ms, errors`` plus ``dry_run`` and ``policy`` (the limits used).

    Retention is two-phase (docs/stores.md, retention and maintenance): a session not updated for
    ``max_age_days`` (default: config ``retention_max_completed_age_days``) is soft deleted (``deleted_at`` set; active,
    paused, pinned — and with ``keep_failed`` failed — sessions are exempt); a session soft deleted
    more than ``hard_delete_after_days`` ago is deleted with its runs and events.
    ``max_events_per_session`` prunes the oldest streaming events beyond the limit.

    Then ``artifact_blobs_vacuumed``: artifact bytes no live record points at are removed
    (SqlStore; None for stores whose blobs are not vacuumed this way, see ``_vacuum``).

    ``dry_run=True`` changes nothing and also lists ``soft_delete_session_ids`` and
    ``hard_delete_session_ids`` (``orphaned_sequences_cleaned`` is None: not estimated).
    """
    policy = retention_policy(max_age_days=max_age_days, hard_delete_after_days=hard_delete_after_days,
                              max_events_per_session=max_events_per_session, keep_failed=keep_failed)
    st = _store(store)
    if dry_run:
        report = _plan(st, policy)
    else:
        report = dict(maintenance(st).execute(policy))
    report["artifact_blobs_vacuumed"] = _vacuum(st, report, dry_run=dry_run)
    report["dry_run"] = bool(dry_run)
    report["policy"] = {"max_age_days": _jsonable_limit(policy.max_completed_session_age_days),
                        "hard_delete_after_days": _jsonable_limit(policy.hard_delete_after_days),
                        "max_events_per_session": _jsonable_limit(policy.max_events_per_session),
                        "exempt_statuses": list(policy.exempt_statuses),
                        "exempt_tags": list(policy.exempt_tags)}
    return report


def _vacuum(store: Any, report: dict[str, Any], *, dry_run: bool) -> int | None:
    """After the retention pass: remove artifact bytes no live record points at, where the
    store's artifact storage keeps bytes apart from their records and can tell which are
    unreferenced (SqlStore: soft-deleted and orphaned patches). None where there is nothing to
    vacuum this way: a LocalStore's ``blobs/`` are content-addressed files that workspace
    snapshots also point at (kept file contents, not artifact records), so dropping the ones no
    record names would break the diffs of hash-backend runs; a deleted session's records go with
    it there. Dry run: how many would go now (before the planned deletions)."""
    from ..stores.artifacts import artifact_store_for

    try:
        arts = artifact_store_for(store)
    except Exception:  # noqa: BLE001 - no artifact storage: nothing to vacuum
        return None
    vacuum: Callable[..., Any] | None = getattr(arts, "vacuum", None)
    if not callable(vacuum):
        return None
    try:
        return int(vacuum(dry_run=True) if dry_run else vacuum())
    except Exception as exc:  # noqa: BLE001 - reported like any maintenance step
        report.setdefault("errors", []).append(exc.message if isinstance(exc, AsmError) else
                                               f"artifact vacuum: {type(exc).__name__}: {exc}")
        return 0


def _jsonable_limit(v: object) -> object:
    return "infinity" if _inf(v) else v
