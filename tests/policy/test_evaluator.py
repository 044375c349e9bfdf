"""The pure evaluator (docs/policies.md, policies): every limit kind, every rule form, boundaries."""

from __future__ import annotations

import pytest

from asm_nb.policy import Policy, evaluate


def started(name, key="tool_name"):
    return {"type": "tool_call_started", "data": {key: name, "tool_call_id": "t1"}}


EMPTY = {"type": "message_streamed", "data": {}}


@pytest.mark.parametrize("kind, metric, state_key, limit, over, equal", [
    ("max_total_tokens", "total_tokens", "total_tokens", 100, 120, 100),
    ("max_duration_ms", "duration_ms", "elapsed_ms", 1000, 1001, 1000),
    ("max_tool_calls", "tool_calls", "tool_calls", 2, 3, 2),
    ("max_cost_usd", "cost_usd", "accumulated_cost_usd", 0.5, 0.5000001, 0.5),
    ("max_total_tokens", "total_tokens", "total_tokens", 0, 1, 0),
])
def test_each_limit_trips_only_above(kind, metric, state_key, limit, over, equal):
    p = Policy(name="p", limits=[(kind, limit)], on_violation="warn")
    state = {state_key: over, "cost_supported": True}
    [v] = evaluate(p, state, EMPTY)
    assert v == {"policy": "p", "kind": "budget_exceeded", "action": "warn",
                 "details": {"metric": metric, "actual": over, "limit": limit}}
    assert evaluate(p, {state_key: equal, "cost_supported": True}, EMPTY) == []
    assert evaluate(p, {}, EMPTY) == []  # missing state counts 0


def test_cost_limit_skipped_unless_cost_supported():
    p = Policy(limits={"max_cost_usd": 0.01})
    assert evaluate(p, {"accumulated_cost_usd": 5.0}, EMPTY) == []
    assert evaluate(p, {"accumulated_cost_usd": 5.0, "cost_supported": False}, EMPTY) == []
    assert evaluate(p, {"accumulated_cost_usd": 5.0, "cost_supported": True}, EMPTY)[0]["details"]["actual"] == 5.0


def test_deny_rule():
    p = Policy(tool_rules=[("deny", ["bash", "exec"])])
    [v] = evaluate(p, {}, started("bash"))
    assert v == {"policy": "default", "kind": "tool_denied", "action": "cancel",
                 "details": {"tool_name": "bash", "rule": "deny", "denied_tools": ["bash", "exec"]}}
    assert evaluate(p, {}, started("read")) == []


def test_allow_rule():
    p = Policy(tool_rules=[("allow", ["read", "search"])], on_violation="request_approval")
    [v] = evaluate(p, {}, started("write"))
    assert v["kind"] == "tool_denied" and v["action"] == "request_approval"
    assert v["details"] == {"tool_name": "write", "rule": "allow", "allowed_tools": ["read", "search"]}
    assert evaluate(p, {}, started("read")) == []


def test_several_rules_each_yield_and_tools_come_before_limits():
    p = Policy(limits={"max_tool_calls": 0}, tool_rules=[("deny", ["bash"]), ("allow", ["read"]), ("deny", ["bash"])])
    out = evaluate(p, {"tool_calls": 1}, started("bash"))
    assert [(v["kind"], v["details"].get("rule")) for v in out] == \
        [("tool_denied", "deny"), ("tool_denied", "allow"), ("tool_denied", "deny"), ("budget_exceeded", None)]


def test_tool_name_from_name_key_and_non_string_names_ignored():
    p = Policy(tool_rules=[("deny", ["bash"])])
    assert evaluate(p, {}, started("bash", key="name"))[0]["details"]["tool_name"] == "bash"
    assert evaluate(p, {}, {"type": "tool_call_started", "data": {"tool_name": 7}}) == []
    assert evaluate(p, {}, {"type": "tool_call_started"}) == []


def test_tool_event_types_filter():
    p = Policy(tool_rules=[("deny", ["bash"])])
    done = {"type": "tool_call_completed", "data": {"tool_name": "bash"}}
    assert len(evaluate(p, {}, done)) == 1  # reference: any event naming a tool
    assert evaluate(p, {}, done, tool_event_types=("tool_call_started",)) == []
    assert len(evaluate(p, {}, started("bash"), tool_event_types=("tool_call_started",))) == 1


@pytest.mark.parametrize("policy, state, event", [
    (None, {}, EMPTY), ({"name": "x"}, {}, EMPTY), (Policy(), None, EMPTY), (Policy(), {}, "event"),
])
def test_bad_inputs_give_nothing(policy, state, event):
    assert evaluate(policy, state, event) == []


def test_duplicate_limits_evaluated_in_order():
    p = Policy(limits=[("max_total_tokens", 50), ("max_total_tokens", 10)])
    assert [v["details"]["limit"] for v in evaluate(p, {"total_tokens": 60}, EMPTY)] == [50, 10]
