"""AuditLogger (docs/runtime.md, audit) against the real InMemoryStore."""

from __future__ import annotations

from datetime import timedelta

import pytest

from asm_nb import config, telemetry
from asm_nb.core.errors import AsmError
from asm_nb.core.events import EventType
from asm_nb.core.run import Run, RunStatus
from asm_nb.core.session import Session
from asm_nb.persistence import audit
from asm_nb.stores.memory import InMemoryStore


@pytest.fixture
def store():
    s = InMemoryStore()
    yield s
    s.close()


@pytest.fixture
def rs():
    session = Session.new("agent-7")
    return Run.new(session.id).with_status(RunStatus.RUNNING), session


@pytest.fixture
def attached(store):
    audit.attach_telemetry_handlers(store)
    with config.override(telemetry_enabled=True):
        yield store
    audit.detach_telemetry_handlers()


def test_log_functions_append_in_order(store, rs):
    run, session = rs
    assert audit.log_run_started(store, run, session) is None
    audit.log_usage_metrics(store, session, {"input_tokens": 5, "output_tokens": 2}, run_id=run.id)
    audit.log_error(store, run, session, AsmError("tool_error", "tool broke"))
    audit.log_run_completed(store, run, session, {"token_usage": {"input_tokens": 5}})
    audit.log_run_failed(store, run, session, {"code": "provider_error", "message": "nope"})
    events = audit.get_audit_log(store, session.id)
    assert [e.type for e in events] == [EventType.RUN_STARTED, EventType.TOKEN_USAGE_UPDATED,
                                        EventType.ERROR_OCCURRED, EventType.RUN_COMPLETED, EventType.RUN_FAILED]
    assert [e.sequence_number for e in events] == [1, 2, 3, 4, 5]
    assert all(e.metadata == {"source": "audit"} and e.run_id == run.id for e in events)
    ts = [e.timestamp for e in events]
    assert ts == sorted(ts)
    assert events[0].data == {"agent_id": "agent-7", "run_status": "running"}
    assert events[1].data == {"input_tokens": 5, "output_tokens": 2}
    assert events[2].data == {"agent_id": "agent-7", "error_code": "tool_error", "error_message": "tool broke"}
    assert events[3].data == {"agent_id": "agent-7", "token_usage": {"input_tokens": 5}}
    assert events[4].data == {"agent_id": "agent-7", "error_code": "provider_error", "error_message": "nope"}


def test_run_completed_defaults_token_usage(store, rs):
    run, session = rs
    audit.log_run_completed(store, run, session, {})
    assert audit.get_audit_log(store, session.id)[0].data["token_usage"] == {}


def test_filters(store, rs):
    run, session = rs
    other = Run.new(session.id)
    audit.log_run_started(store, run, session)
    audit.log_run_started(store, other, session)
    audit.log_run_completed(store, run, session, {})
    assert [e.run_id for e in audit.get_audit_log(store, session.id, run_id=other.id)] == [other.id]
    assert len(audit.get_audit_log(store, session.id, type=EventType.RUN_COMPLETED)) == 1
    all_events = audit.get_audit_log(store, session.id)
    since = all_events[1].timestamp
    assert [e.id for e in audit.get_audit_log(store, session.id, since=since)] == [e.id for e in all_events
                                                                                   if e.timestamp >= since]
    future = all_events[-1].timestamp + timedelta(days=1)
    assert audit.get_audit_log(store, session.id, since=future) == []


def test_disabled_is_a_noop(store, rs):
    run, session = rs
    with config.override(audit_logging_enabled=False):
        assert audit.enabled() is False
        audit.log_run_started(store, run, session)
        audit.log_usage_metrics(store, session, {"input_tokens": 1})
    assert audit.get_audit_log(store, session.id) == []


def test_set_enabled_is_context_local(store, rs):
    import contextvars

    run, session = rs

    def inner():
        audit.set_enabled(False)
        audit.log_run_started(store, run, session)

    contextvars.copy_context().run(inner)
    assert audit.enabled() is True and audit.get_audit_log(store, session.id) == []


def test_store_failures_are_swallowed(rs):
    run, session = rs

    class Broken:
        def append_event_with_sequence(self, event):
            raise AsmError("storage_connection_failed", "down")

    assert audit.log_run_started(Broken(), run, session) is None
    assert audit.log_run_started(object(), run, session) is None
    assert audit.log_run_started(InMemoryStore(), run, {"id": ""}) is None  # invalid session id


def test_error_messages_are_redacted(store, rs):
    run, session = rs
    audit.log_run_failed(store, run, session, AsmError("provider_error", "bad key AKIAIOSFODNN7EXAMPLE"))
    assert audit.get_audit_log(store, session.id)[0].data["error_message"] == "bad key [REDACTED]"


def test_telemetry_driven_entries(attached, rs):
    store = attached
    run, session = rs
    with telemetry.span(run, session) as sp:
        sp.result = {"token_usage": {"input_tokens": 3, "output_tokens": 4, "cache_read_tokens": 9}}
    with pytest.raises(AsmError):
        with telemetry.span(run, session):
            raise AsmError("provider_timeout", "slow")
    telemetry.emit_usage_metrics(session, {"input_tokens": 1, "cost_usd": 0.5})
    events = audit.get_audit_log(store, session.id)
    assert [e.type.value for e in events] == ["run_started", "run_completed", "run_started", "run_failed",
                                              "token_usage_updated"]
    assert events[1].data["token_usage"] == {"input_tokens": 3, "output_tokens": 4}
    assert events[3].data == {"agent_id": "agent-7", "error_code": "provider_timeout", "error_message": "slow"}
    assert events[4].data == {"input_tokens": 1, "cost_usd": 0.5} and events[4].run_id is None


def test_handler_id_reattach_replaces_store_and_detach_is_idempotent(rs):
    run, session = rs
    first, second = InMemoryStore(), InMemoryStore()
    with config.override(telemetry_enabled=True):
        audit.attach_telemetry_handlers(first)
        audit.attach_telemetry_handlers(second)
        assert [h["id"] for h in telemetry.list_handlers(("asm", "run"))].count("asm_audit_logger") == 3
        telemetry.emit_run_start(run, session)
        audit.detach_telemetry_handlers()
        audit.detach_telemetry_handlers()
        telemetry.emit_run_start(run, session)
    assert first.get_events(session.id) == [] and len(second.get_events(session.id)) == 1


def test_metadata_without_run_or_session_is_ignored(attached):
    telemetry.execute(("asm", "run", "start"), {"system_time": 1}, {"run_id": "r"})
    telemetry.execute(("asm", "usage", "report"), {"input_tokens": 1}, {"session_id": "s"})
    assert attached.get_events("s") == []
    assert any(h["id"] == "asm_audit_logger" for h in telemetry.list_handlers())
