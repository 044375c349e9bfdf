"""Generic Maintenance (docs/stores.md, retention and maintenance) on InMemoryStore (and LocalStore where it can
delete)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from asm_nb import telemetry
from asm_nb.core.errors import AsmError
from asm_nb.core.events import Event
from asm_nb.core.run import Run
from asm_nb.core.serialization import utc_now
from asm_nb.core.session import Session, SessionStatus
from asm_nb.persistence.retention import RetentionPolicy
from asm_nb.stores._maintenance import GenericMaintenance, maintenance

KEYS = {"sessions_soft_deleted", "sessions_hard_deleted", "events_pruned", "artifacts_cleaned",
        "orphaned_sequences_cleaned", "duration_ms", "errors"}


@pytest.fixture(params=["memory", "local"])
def store(request):
    return request.getfixturevalue(f"{request.param}_store")


def _session(sid, *, days_ago=0, status=SessionStatus.COMPLETED, tags=(), deleted_days_ago=None):
    now = utc_now()
    return Session(id=sid, agent_id="a", status=status, created_at=now - timedelta(days=days_ago + 1),
                   updated_at=now - timedelta(days=days_ago), tags=list(tags),
                   deleted_at=None if deleted_days_ago is None else now - timedelta(days=deleted_days_ago))


def test_report_shape_and_invalid_policy(store):
    seen = []
    telemetry.attach("maint-test", ("asm", "maintenance", "complete"), lambda n, m, md, c: seen.append(m))
    try:
        report = GenericMaintenance(store).execute(RetentionPolicy())
    finally:
        telemetry.detach("maint-test")
    assert set(report) == KEYS and isinstance(report["errors"], list)
    assert all(isinstance(report[k], int) for k in KEYS - {"errors"})
    assert seen and "duration_ms" in seen[0]
    with pytest.raises(AsmError) as ei:
        GenericMaintenance(store).execute(RetentionPolicy(batch_size=0))
    assert ei.value.code == "validation_error"


def test_soft_delete_rules(store):
    store.save_session(_session("ses_old", days_ago=100))
    store.save_session(_session("ses_fresh", days_ago=1))
    store.save_session(_session("ses_active", days_ago=100, status=SessionStatus.ACTIVE))
    store.save_session(_session("ses_pinned", days_ago=100, tags=["pinned"]))
    store.save_session(_session("ses_failed", days_ago=100, status=SessionStatus.FAILED))
    m = GenericMaintenance(store)
    assert m.soft_delete_expired_sessions(RetentionPolicy(max_completed_session_age_days=90)) == 2
    assert store.get_session("ses_old").deleted_at is not None
    assert store.get_session("ses_failed").deleted_at is not None
    for sid in ("ses_fresh", "ses_active", "ses_pinned"):
        assert store.get_session(sid).deleted_at is None
    assert m.soft_delete_expired_sessions(RetentionPolicy(max_completed_session_age_days="infinity")) == 0


def test_recent_update_prevents_soft_delete(store):
    s = _session("ses_x", days_ago=100)
    store.save_session(s)
    store.save_session(s.replace(updated_at=utc_now()))
    assert GenericMaintenance(store).soft_delete_expired_sessions(RetentionPolicy()) == 0


def test_hard_delete_cascades(store):
    store.save_session(_session("ses_gone", days_ago=100, deleted_days_ago=60))
    store.save_session(_session("ses_recent", days_ago=100, deleted_days_ago=5))
    store.save_run(Run.new("ses_gone", id="run_g"))
    store.append_event(Event.new("run_started", "ses_gone", run_id="run_g"))
    m = GenericMaintenance(store)
    assert m.hard_delete_expired_sessions(RetentionPolicy(hard_delete_after_days=30)) == 1
    with pytest.raises(AsmError) as ei:
        store.get_session("ses_gone")
    assert ei.value.code == "session_not_found"
    assert store.get_events("ses_gone") == [] and store.list_runs("ses_gone") == []
    store.get_session("ses_recent")


def test_hard_delete_failure_is_a_maintenance_error(memory_store):
    memory_store.save_session(_session("ses_gone", deleted_days_ago=60))

    class Failing(GenericMaintenance):
        pass

    m = Failing(memory_store)
    memory_store.delete_session = lambda sid: (_ for _ in ()).throw(RuntimeError("locked"))
    with pytest.raises(AsmError) as ei:
        m.hard_delete_expired_sessions(RetentionPolicy())
    assert ei.value.code == "maintenance_error" and "locked" in ei.value.message
    report = m.execute(RetentionPolicy())
    assert report["sessions_hard_deleted"] == 0 and any("locked" in e for e in report["errors"])


def _fill(store, sid, types):
    for i, t in enumerate(types):
        store.append_event(Event.new(t, sid, run_id="r1", data={"i": i}))


def test_prune_streamed_first_and_protected_types(memory_store):
    store = memory_store
    _fill(store, "s1", ["message_streamed"] * 10)
    m = GenericMaintenance(store)
    assert m.prune_session_events("s1", RetentionPolicy(max_events_per_session=5)) == 5
    left = store.get_events("s1")
    assert [e.data["i"] for e in left] == [5, 6, 7, 8, 9]
    assert m.prune_session_events("s1", RetentionPolicy(max_events_per_session=50)) == 0

    _fill(store, "s2", ["run_started", "message_received", "tool_call_started", "message_streamed",
                        "message_received", "run_completed"])
    assert m.prune_session_events("s2", RetentionPolicy(max_events_per_session=2)) == 4
    assert [e.type.value for e in store.get_events("s2")] == ["run_started", "run_completed"]

    _fill(store, "s3", ["run_started", "error_occurred", "run_failed", "session_created", "run_completed"])
    assert m.prune_session_events("s3", RetentionPolicy(max_events_per_session=1)) == 0


def test_execute_prunes_and_health_stays_clean(memory_store):
    store = memory_store
    store.save_session(Session.new("a", id="s1").replace(status=SessionStatus.ACTIVE))
    _fill(store, "s1", ["message_streamed"] * 8)
    m = maintenance(store)
    report = m.execute(RetentionPolicy(max_events_per_session=3))
    assert report["events_pruned"] == 5 and report["errors"] == []
    assert m.health_check() == []
    # numbering continues after pruning
    assert store.append_event_with_sequence(Event.new("message_streamed", "s1")).sequence_number == 9


def test_prune_without_hook_is_reported(local_store):
    if callable(getattr(local_store, "delete_events", None)):
        pytest.skip("LocalStore implements delete_events")
    _fill(local_store, "s1", ["message_streamed"] * 4)
    m = GenericMaintenance(local_store)
    with pytest.raises(AsmError) as ei:
        m.prune_session_events("s1", RetentionPolicy(max_events_per_session=2))
    assert ei.value.code == "maintenance_error"
    report = m.execute(RetentionPolicy(max_events_per_session=2))
    assert report["events_pruned"] == 0 and report["errors"]


def test_health_check_finds_orphans_and_mismatch(memory_store):
    store = memory_store
    store.save_session(Session.new("a", id="s_ok"))
    _fill(store, "s_orphan", ["run_started", "run_completed"])
    store.save_run(Run.new("s_missing"))
    issues = GenericMaintenance(store).health_check()
    assert "2 events reference non-existent sessions" in issues
    assert "1 runs reference non-existent sessions" in issues
    store.last_seq["s_orphan"] = 1  # corrupt the counter below the stored max
    assert "Sequence mismatch for s_orphan: counter=1, max_sequence=2" in GenericMaintenance(store).health_check()


def test_orphaned_sequences(memory_store):
    store = memory_store
    _fill(store, "s_has_events", ["run_started"])
    store.last_seq["s_ghost"] = 4  # a counter with neither a row nor events
    m = GenericMaintenance(store)
    assert m.clean_orphaned_sequences() == 1
    assert "s_ghost" not in store.last_seq and store.last_seq["s_has_events"] == 1
