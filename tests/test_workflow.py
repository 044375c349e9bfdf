"""WorkflowBridge (docs/runtime.md, workflows): step results, one-shot and multi-run steps, error classification."""

from __future__ import annotations

import pytest

from asm_nb.core.errors import AsmError, all_codes, category
from asm_nb.runtime.manager import ExecutionResult
from asm_nb.stores import open_store
from asm_nb.testing import MockAdapter, ScriptedAdapter
from asm_nb.workflow import (ACTIONS, StepResult, classify_error, complete_workflow_session, setup_workflow_session,
                             step_execute, step_result)


def test_step_result_defaults_and_mapping():
    assert step_result({}) == StepResult()
    raw = ExecutionResult(output={"content": "hi", "stop_reason": "end_turn", "tool_calls": [{"id": "t"}]},
                          token_usage={"input_tokens": 1}, events=[{"type": "x"}], persistence_failures=2,
                          session_id="s", run_id="r", workspace={"diff": 1})
    sr = step_result(raw)
    assert (sr.content, sr.stop_reason, sr.has_tool_calls, sr.persistence_failures) == ("hi", "end_turn", True, 2)
    assert (sr.session_id, sr.run_id, sr.workspace, sr.policy, sr.retryable) == ("s", "r", {"diff": 1}, None, False)
    odd = step_result({"output": "text", "persistence_failures": -1, "tool_calls": "x", "events": None},
                      session_id="over", run_id="ride")
    assert odd.output == {} and odd.persistence_failures == 0 and odd.events == [] and odd.run_id == "ride"


def test_one_shot_step():
    store = open_store("memory://")
    sr = step_execute(store, MockAdapter(), {"input": "hello"})
    assert sr.content == "Mock response: hello" and sr.session_id and sr.run_id
    assert store.get_session(sr.session_id).status.value == "completed"
    with pytest.raises(AsmError):
        step_execute(store, MockAdapter(mode="failing"), {"input": "x"})
    failed = [s for s in store.list_sessions() if s.status.value == "failed"]
    assert len(failed) == 1
    with pytest.raises(AsmError):
        step_execute(store, MockAdapter(), {})


def test_multi_run_steps_keep_the_session_on_error():
    store = open_store("memory://")
    adapter = ScriptedAdapter([{"content": "one"}, AsmError("provider_error", "boom")])
    sid = setup_workflow_session(store, adapter, {"metadata": {"wf": "x"}})
    session = store.get_session(sid)
    assert session.agent_id == "workflow-agent" and session.status.value == "active"
    first = step_execute(store, adapter, {"input": "a", "session_id": sid, "continuation": "auto"})
    assert first.content == "one" and first.session_id == sid
    with pytest.raises(AsmError):
        step_execute(store, adapter, {"input": "b", "session_id": sid})
    assert store.get_session(sid).status.value == "active"
    complete_workflow_session(store, sid, status="failed")
    s = store.get_session(sid)
    assert s.status.value == "failed"
    ev = [e for e in store.get_events(sid) if e.type.value == "session_failed"][-1]
    assert ev.data["error_message"] == "Workflow failed"
    sid2 = setup_workflow_session(store, adapter)
    complete_workflow_session(store, sid2)
    assert store.get_session(sid2).status.value == "completed"


def test_continuation_is_copied_into_adapter_opts():
    store = open_store("memory://")
    adapter = MockAdapter()
    step_execute(store, adapter, {"input": "x", "continuation": "auto", "adapter_opts": {"custom": 1}})
    opts = adapter.executions[-1]["opts"]
    assert opts["continuation"] == "auto" and opts["custom"] == 1


def test_every_code_classifies():
    expected = {"provider_timeout": "retry", "storage_connection_failed": "retry", "timeout": "retry",
                "provider_rate_limited": "wait_and_retry", "max_runs_exceeded": "wait_and_retry",
                "provider_unavailable": "failover", "cancelled": "cancel", "policy_violation": "cancel",
                "provider_error": "abort", "validation_error": "abort", "session_not_found": "abort"}
    for code in all_codes():
        c = classify_error(AsmError(code, "x"))
        assert isinstance(c.retryable, bool) and c.category == category(code) and c.recommended_action in ACTIONS
        if code in expected:
            assert c.recommended_action == expected[code], code
    wrapped = classify_error(ValueError("plain"))
    assert wrapped.error.code == "internal_error" and wrapped.recommended_action == "abort"
    assert classify_error(AsmError("provider_timeout", "t")).retryable is True
