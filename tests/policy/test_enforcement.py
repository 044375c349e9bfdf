"""Policies enforced while a replayed run streams (run_once → manager → policy runtime)."""

from __future__ import annotations

import time

import pytest

import asm_nb
from asm_nb import Policy
from asm_nb.testing import cassettes as c

SONNET_IN, SONNET_OUT = 3e-6, 15e-6


def write(tmp_path, events, name="c.jsonl"):
    return str(c.build_cassette(events, provider="claude", model="claude-sonnet-4-5").write(tmp_path / name))


def spend_cassette(tmp_path):
    # each usage increment costs 1000*3e-6 + 100*15e-6 = 0.0045
    return write(tmp_path, [
        *c.start(model="claude-sonnet-4-5", prompt="hi"),
        *c.assistant_text("Hello", chunks=2),
        c.usage(input_tokens=1000, output_tokens=100),
        *c.assistant_text("More", chunks=1),
        c.usage(input_tokens=1000, output_tokens=100),      # 0.009 > 0.005: the crossing event
        *c.tool_call("Read", {"path": "x"}, "data", id="t1"),
        c.usage(input_tokens=1000, output_tokens=100),
        *c.assistant_text("Done"),
        c.completed(),
    ])


def run(cassette, speed=None, **kw):
    opts = {"cassette": cassette, "impersonate": True, **({} if speed is None else {"speed": speed})}
    return asm_nb.run_once("hi", provider="replay", store="memory://", **kw, options=opts)


def types(result):
    return [e.type.value for e in result.events]


def test_overspend_stops_at_the_crossing_event(tmp_path):
    r = run(spend_cassette(tmp_path), policy=Policy(name="budget", limits={"max_cost_usd": 0.005}))
    assert r.status == "failed" and r.error.code == "policy_violation"
    t = types(r)
    crossing = [i for i, e in enumerate(r.events) if e.type.value == "token_usage_updated"][1]
    # nothing the adapter emitted after the crossing event was persisted
    assert t[crossing + 1:] == ["policy_violation", "run_failed"]
    assert "tool_call_started" not in t and "run_cancelled" not in t and "run_completed" not in t
    assert t.count("run_failed") == 1
    violation = r.events[crossing + 1].data
    assert violation["kind"] == "budget_exceeded" and violation["policy"] == "budget"
    assert violation["details"]["metric"] == "cost_usd" and violation["details"]["limit"] == 0.005
    # usage and cost are those of the events up to the crossing point
    usage_events = [e.data for e in r.events if e.type.value == "token_usage_updated"]
    assert r.token_usage["input_tokens"] == sum(u["input_tokens"] for u in usage_events) == 2000
    assert r.token_usage["output_tokens"] == 200
    assert r.cost_usd == pytest.approx(2000 * SONNET_IN + 200 * SONNET_OUT)
    # the result says which limit and by how much
    d = r.error.details
    assert d["limit"] == "max_cost_usd" and d["limit_value"] == 0.005
    assert d["observed"] == pytest.approx(0.009) and d["exceeded_by"] == pytest.approx(0.004)
    assert r.policy["limit"] == "max_cost_usd"
    assert r.events[-1].data["error_code"] == "policy_violation"
    # the store agrees with the result
    run_row = r.store.get_run(r.run_id)
    assert run_row.status.value == "failed" and run_row.error["code"] == "policy_violation"


def test_under_budget_completes(tmp_path):
    r = run(spend_cassette(tmp_path), policy=Policy(limits={"max_cost_usd": 1.0}))
    assert r.ok and "policy_violation" not in types(r) and r.policy is None


def test_denied_tool_never_runs(tmp_path):
    cas = write(tmp_path, [
        *c.start(model="claude-sonnet-4-5"),
        *c.assistant_text("Let me look."),
        c.usage(input_tokens=10, output_tokens=5),
        *c.tool_call("Bash", {"command": "rm -rf /"}, "gone", id="t1"),
        *c.assistant_text("Done"),
        c.completed(),
    ])
    r = run(cas, policy=Policy(tool_rules=[("deny", ["Bash"])]))
    t = types(r)
    assert r.status == "failed" and r.error.code == "policy_violation"
    # the denied call is closed (failed, policy_denied) before the run fails; it never completed
    assert t[-4:] == ["tool_call_started", "policy_violation", "tool_call_failed", "run_failed"]
    assert "tool_call_completed" not in t
    assert r.events[-2].data["reason"] == "policy_denied" and r.events[-2].data["tool_name"] == "Bash"
    assert r.events[-3].data["kind"] == "tool_denied" and r.events[-3].data["details"]["tool_name"] == "Bash"
    assert r.error.details["limit"] == "tool_rules" and r.error.details["tool_name"] == "Bash"
    assert r.token_usage["input_tokens"] == 10  # partial usage kept


def test_tool_call_limit(tmp_path):
    cas = write(tmp_path, [*c.start(), *c.tool_call("Read", id="a"), *c.tool_call("Read", id="b"),
                           *c.tool_call("Read", id="c"), c.completed()])
    r = run(cas, policy=Policy(limits={"max_tool_calls": 1}))
    assert r.error.code == "policy_violation" and r.error.details["limit"] == "max_tool_calls"
    assert [e.data.get("tool_call_id") for e in r.events if e.type.value == "tool_call_started"] == ["a", "b"]
    assert r.error.details["observed"] == 2


def test_token_limit(tmp_path):
    r = run(spend_cassette(tmp_path), policy=Policy(limits={"max_total_tokens": 1500}))
    assert r.error.details["limit"] == "max_total_tokens" and r.error.details["observed"] == 2200
    assert r.token_usage["input_tokens"] == 2000


def test_duration_limit_ends_the_run_within_a_second(tmp_path):
    cas = write(tmp_path, [
        {"type": "run_started", "data": {"model": "claude-sonnet-4-5"}, "t_ms": 0},
        {"type": "message_streamed", "data": {"delta": "a", "content": "a"}, "t_ms": 20},
        {"type": "token_usage_updated", "data": {"input_tokens": 7, "output_tokens": 3}, "t_ms": 40},
        {"type": "message_streamed", "data": {"delta": "b", "content": "b"}, "t_ms": 30_000},
        {"type": "run_completed", "data": {"stop_reason": "end_turn"}, "t_ms": 30_001},
    ])
    t0 = time.monotonic()
    r = run(cas, speed=1.0, policy=Policy(limits={"max_duration_ms": 300}))
    elapsed = time.monotonic() - t0
    assert r.error.code == "policy_violation" and r.error.details["limit"] == "max_duration_ms"
    assert r.error.details["observed"] > 300
    assert elapsed < 0.3 + 1.0
    t = types(r)
    assert t[-2:] == ["policy_violation", "run_failed"] and t.count("message_streamed") == 1
    assert r.token_usage["input_tokens"] == 7


def test_warn_records_and_goes_on(tmp_path):
    r = run(spend_cassette(tmp_path), policy=Policy(limits={"max_cost_usd": 0.005}, on_violation="warn"))
    assert r.ok and r.output == "Done"
    t = types(r)
    assert t.count("policy_violation") == 1 and t[-1] == "run_completed"
    assert r.policy["action"] == "warn" and r.policy["violations"][0]["details"]["metric"] == "cost_usd"


def test_request_approval_denied_stops_the_run(tmp_path):
    asked = []

    def decide(request):
        asked.append(request)
        return "deny"

    cas = write(tmp_path, [*c.start(), *c.tool_call("Bash", {"command": "ls"}, "out", id="t1"),
                           *c.assistant_text("after"), c.completed()])
    r = run(cas, policy=Policy(tool_rules=[("deny", ["Bash"])], on_violation="request_approval",
                               metadata={"approval_callback": decide}))
    t = types(r)
    assert [a["tool_name"] for a in asked] == ["Bash"]
    assert t[-6:] == ["tool_call_started", "policy_violation", "tool_approval_requested", "tool_approval_denied",
                      "tool_call_failed", "run_failed"]
    assert r.error.code == "policy_violation" and r.error.details["approval"] == "denied"


def test_request_approval_granted_goes_on(tmp_path):
    seen = []
    cas = write(tmp_path, [*c.start(), *c.tool_call("Bash", {"command": "ls"}, "out", id="t1"),
                           *c.assistant_text("after"), c.completed()])
    r = run(cas, on_event=lambda ev: seen.append(ev["type"]),
            policy=Policy(tool_rules=[("deny", ["Bash"])], on_violation="request_approval",
                          metadata={"approval_callback": lambda req: True}))
    assert r.ok and r.output == "after"
    assert "tool_approval_granted" in types(r) and "tool_call_completed" in types(r)
    # live views see the policy events too
    assert "policy_violation" in seen and "tool_approval_requested" in seen


def test_preflight_failure_never_calls_the_adapter(tmp_path):
    r = run(spend_cassette(tmp_path), policy=Policy(tool_rules=[("allow", [])]))
    assert r.error.code == "policy_violation" and r.error.details["check"] == "empty_allow_list"
    assert "run_started" not in types(r)


def test_stack_given_as_a_list_picks_the_strictest_action(tmp_path):
    org = Policy(name="org", limits={"max_total_tokens": 100_000}, on_violation="warn")
    team = Policy(name="team", tool_rules=[("deny", ["Read"])], on_violation="cancel")
    r = run(spend_cassette(tmp_path), policy=[org, team])
    assert r.error.code == "policy_violation" and r.error.details["policy"] == "org + team"


# -- the shell provider runs its own tool: a policy's decision on tool_call_started comes first


def test_shell_command_denied_by_a_tool_rule_never_starts(tmp_path, monkeypatch):
    from asm_nb.process import exec as wexec

    started = []
    real_run = wexec.run

    def spy(*args, **kwargs):
        started.append(args)
        return real_run(*args, **kwargs)

    monkeypatch.setattr(wexec, "run", spy)
    marker = tmp_path / "ran"
    r = asm_nb.run_once(f"touch {marker}", provider="shell", store="memory://",
                        policy=Policy(tool_rules=[("deny", ["bash"])]))
    t = types(r)
    assert r.status == "failed" and r.error.code == "policy_violation"
    assert started == [] and not marker.exists()  # no process at all, not one killed early
    assert t[-4:] == ["tool_call_started", "policy_violation", "tool_call_failed", "run_failed"]
    assert r.events[-2].data["reason"] == "policy_denied" and r.events[-2].data["tool_name"] == "bash"


def test_shell_command_waits_for_the_approval_and_a_refusal_stops_it(tmp_path):
    marker = tmp_path / "ran"
    seen = []

    def decide(request):
        time.sleep(0.3)  # a person reading the request: a command started early would be done by now
        seen.append((request["tool_name"], marker.exists()))
        return "deny"

    r = asm_nb.run_once(f"touch {marker}", provider="shell", store="memory://",
                        policy=Policy(tool_rules=[("deny", ["bash"])], on_violation="request_approval",
                                      metadata={"approval_callback": decide}))
    assert seen == [("bash", False)]
    assert r.status == "failed" and r.error.details["approval"] == "denied"
    time.sleep(0.2)
    assert not marker.exists()
    assert types(r)[-6:] == ["tool_call_started", "policy_violation", "tool_approval_requested",
                             "tool_approval_denied", "tool_call_failed", "run_failed"]


def test_shell_command_approved_runs_once(tmp_path):
    marker = tmp_path / "ran"
    r = asm_nb.run_once(f"echo x >> {marker}", provider="shell", store="memory://",
                        policy=Policy(tool_rules=[("deny", ["bash"])], on_violation="request_approval",
                                      metadata={"approval_callback": lambda request: "approve"}))
    assert r.status == "completed" and marker.read_text() == "x\n"
    assert "tool_approval_granted" in types(r) and "tool_call_completed" in types(r)
