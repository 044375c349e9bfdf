"""PolicyRuntime (docs/policies.md, policies) and the manager-facing RunPolicy, with an injected clock."""

from __future__ import annotations

import asyncio

import pytest

from asm_nb.core.errors import AsmError
from asm_nb.policy import Policy, PolicyRuntime, start


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def usage(i, o, total=None):
    d = {"input_tokens": i, "output_tokens": o}
    if total is not None:
        d["total_tokens"] = total
    return {"type": "token_usage_updated", "data": d}


BASH = {"type": "tool_call_started", "data": {"tool_name": "bash", "tool_call_id": "t1"}}


def test_cancel_latches():
    rt = PolicyRuntime(Policy(tool_rules=[("deny", ["bash"])]))
    d1 = rt.observe(BASH)
    assert d1.cancel is True and len(d1.violations) == 1 and d1.request_approval is False
    d2 = rt.observe(BASH)
    assert d2.cancel is False and rt.cancel_requested is True


def test_warn_reports_a_budget_once():
    rt = PolicyRuntime({"limits": {"max_total_tokens": 10}, "on_violation": "warn"})
    assert rt.observe(usage(8, 0)).violations == []
    d = rt.observe(usage(0, 8))
    assert len(d.violations) == 1 and d.cancel is False
    assert rt.observe(usage(5, 5)).violations == []  # reported once per run
    s = rt.status()
    assert s["violated"] is True and s["cancel_requested"] is False and len(s["violations"]) == 1
    assert s["usage"]["total_tokens"] == 26 and s["usage"]["input_tokens"] == 13


def test_request_approval_only_first_time_and_never_in_other_modes():
    rt = PolicyRuntime(Policy(tool_rules=[("deny", ["bash"])], on_violation="request_approval"))
    assert rt.observe({"type": "message_streamed", "data": {}}).request_approval is False
    assert rt.observe(BASH).request_approval is True
    assert rt.observe(BASH).request_approval is False
    for action in ("cancel", "warn"):
        rt = PolicyRuntime(Policy(tool_rules=[("deny", ["bash"])], on_violation=action))
        assert rt.observe(BASH).request_approval is False


def test_total_tokens_max_of_reported_else_running_sum():
    rt = PolicyRuntime(Policy())
    rt.observe(usage(10, 5, total=40))
    assert rt.total_tokens == 40
    rt.observe(usage(1, 1, total=30))
    assert rt.total_tokens == 40
    rt2 = PolicyRuntime(Policy())
    rt2.observe(usage(10.9, 5))
    rt2.observe(usage(-3, "x"))
    assert (rt2.input_tokens, rt2.output_tokens, rt2.total_tokens) == (10, 5, 15)


def test_tiny_token_budget_cancels():
    rt = PolicyRuntime(Policy(limits={"max_total_tokens": 20}))
    d = rt.observe(usage(10, 5, total=40))
    assert d.cancel and d.violations[0]["details"] == {"metric": "total_tokens", "actual": 40, "limit": 20}


def test_tool_calls_counted_on_started_only():
    rt = PolicyRuntime(Policy(limits={"max_tool_calls": 1}))
    assert rt.observe(BASH).violations == []
    assert rt.observe({"type": "tool_call_completed", "data": {"tool_name": "bash"}}).violations == []
    d = rt.observe(BASH)
    assert d.cancel and d.violations[0]["details"]["metric"] == "tool_calls"


def test_duration_uses_the_clock():
    clock = Clock()
    rt = PolicyRuntime(Policy(limits={"max_duration_ms": 500}), clock=clock)
    clock.t += 0.5
    assert rt.observe({"type": "message_streamed", "data": {}}).violations == []
    clock.t += 0.002
    d = rt.observe({"type": "message_streamed", "data": {}})
    assert d.cancel and d.violations[0]["details"]["metric"] == "duration_ms"
    assert d.violations[0]["details"]["actual"] == 502


RATES = {"claude": {"default": {"input": 3e-6, "output": 15e-6},
                    "models": {"claude-opus-4-6": {"input": 15e-6, "output": 75e-6}}}}


def test_model_aware_cost():
    rt = PolicyRuntime(Policy(limits={"max_cost_usd": 10}), provider="claude", cost_rates=RATES)
    rt.observe({"type": "run_started", "data": {"model": "claude-opus-4-6"}})
    rt.observe(usage(1000, 500))
    assert rt.accumulated_cost_usd == pytest.approx(0.0525)
    rt = PolicyRuntime(Policy(limits={"max_cost_usd": 10}), provider="claude", cost_rates=RATES)
    rt.observe(usage(1000, 500))
    assert rt.accumulated_cost_usd == pytest.approx(0.0105)
    legacy = {"claude": {"input": 3e-6, "output": 15e-6}}
    rt = PolicyRuntime(Policy(limits={"max_cost_usd": 10}), provider="claude", cost_rates=legacy)
    rt.observe(usage(1000, 500))
    assert rt.accumulated_cost_usd == pytest.approx(0.0105) and rt.cost_supported is True


def test_missing_rates_warns_once_and_skips_cost_limit():
    rt = PolicyRuntime(Policy(limits={"max_cost_usd": 0.0}), provider="nobody", cost_rates=RATES)
    assert rt.cost_supported is False
    assert rt.observe(usage(1000, 1000)).violations == []
    rt.observe(usage(1000, 1000))
    s = rt.status()
    assert s["metadata"] == {"warnings": ["missing_cost_rates"], "cost_supported": False}
    assert PolicyRuntime(Policy()).cost_supported is True  # no cost limit → nothing to support


def test_default_rates_come_from_the_pricing_table():
    rt = PolicyRuntime(Policy(limits={"max_cost_usd": 0.001}), provider="claude")
    rt.observe({"type": "run_started", "data": {"model": "claude-sonnet-4-5"}})
    d = rt.observe({"type": "token_usage_updated",
                    "data": {"input_tokens": 100, "output_tokens": 100, "cache_read_tokens": 1000}})
    assert rt.cost_supported and d.cancel
    # sonnet 4.5: 3/15 per million, cache reads 0.30 per million
    assert rt.accumulated_cost_usd == pytest.approx(100 * 3e-6 + 100 * 15e-6 + 1000 * 0.3e-6)


def test_event_provider_prices_routed_events():
    rt = PolicyRuntime(Policy(limits={"max_cost_usd": 1}), provider="router", cost_rates=RATES)
    rt.observe({**usage(1000, 500), "provider": "claude"})
    assert rt.accumulated_cost_usd == pytest.approx(0.0105)


# -- RunPolicy: what the manager drives -----------------------------------------------------

def test_start_resolves_stack_and_preflights():
    assert start(policy=None) is None
    rp = start(policy={"limits": {"max_total_tokens": 5}}, policies=[{"name": "org", "on_violation": "warn"},
                                                                     {"name": "me", "limits": {"max_tool_calls": 2}}])
    assert rp.policy.name == "org + me" and rp.policy.limits == (("max_tool_calls", 2),)
    assert start(policy=[Policy(name="a"), Policy(name="b")]).policy.name == "a + b"
    with pytest.raises(AsmError) as ei:
        start(policy={"tool_rules": [("allow", [])]})
    assert ei.value.code == "policy_violation"
    with pytest.raises(AsmError) as ei:
        start(policy={"on_violation": "nope"})
    assert ei.value.code == "validation_error"


def test_run_policy_verdicts():
    rp = start(policy=Policy(name="p", limits={"max_total_tokens": 10}))
    out = rp.observe(usage(20, 5))
    assert out["cancel"] is True and out["approval"] is None and out["violations"][0]["kind"] == "budget_exceeded"
    v = rp.final_verdict()
    err = v["error"]
    assert err.code == "policy_violation" and err.message == "Policy 'p' stopped the run: max_total_tokens 10 exceeded at 25"
    assert err.details["limit"] == "max_total_tokens" and err.details["limit_value"] == 10
    assert err.details["observed"] == 25 and err.details["exceeded_by"] == 15 and err.details["policy"] == "p"

    warn = start(policy=Policy(limits={"max_total_tokens": 10}, on_violation="warn"))
    warn.observe(usage(20, 5))
    v = warn.final_verdict()
    assert v["error"] is None and v["policy"]["action"] == "warn" and len(v["policy"]["violations"]) == 1

    clean = start(policy=Policy(limits={"max_total_tokens": 10}))
    assert clean.final_verdict() == {"error": None, "policy": None}


def test_approval_request_and_callback_decisions():
    seen = []

    def deny(req):
        seen.append(req)
        return "deny"

    rp = start(policy=Policy(tool_rules=[("deny", ["bash"])], on_violation="request_approval"),
               approval_callback=deny)
    out = rp.observe({"type": "tool_call_started", "data": {"tool_name": "bash", "tool_call_id": "t9",
                                                              "tool_input": {"cmd": "ls"}}})
    req = out["approval"]
    assert out["cancel"] is False
    assert {k: req[k] for k in ("tool_name", "tool_call_id", "tool_input", "policy_name", "violation_kind")} == \
        {"tool_name": "bash", "tool_call_id": "t9", "tool_input": {"cmd": "ls"}, "policy_name": "default",
         "violation_kind": "tool_denied"}
    assert asyncio.run(rp.await_approval(req)) == "deny" and seen == [req]
    assert rp.stopped and rp.final_verdict()["error"].details["approval"] == "denied"

    async def approve(req):
        return True

    rp = start(policy=Policy(tool_rules=[("deny", ["bash"])], on_violation="request_approval",
                             metadata={"approval_callback": approve}))
    out = rp.observe(BASH)
    assert asyncio.run(rp.await_approval(out["approval"])) == "approve"
    v = rp.final_verdict()
    assert v["error"] is None and v["policy"]["action"] == "request_approval"
    # no callback: the run goes on (spec behaviour)
    rp = start(policy=Policy(tool_rules=[("deny", ["bash"])], on_violation="request_approval"))
    assert asyncio.run(rp.await_approval(rp.observe(BASH)["approval"])) is None


def test_deadline_follows_the_clock():
    clock = Clock()
    rp = start(policy=Policy(limits={"max_duration_ms": 1000}), clock=clock)
    assert 1.0 < rp.deadline_s() < 1.01
    clock.t += 0.4
    assert 0.6 < rp.deadline_s() < 0.61
    clock.t += 1
    assert rp.deadline_s() == 0.0
    assert rp.observe({"type": "policy_timer", "data": {}})["cancel"] is True
    assert rp.deadline_s() is None  # reported
    assert start(policy=Policy(limits={"max_total_tokens": 5})).deadline_s() is None
