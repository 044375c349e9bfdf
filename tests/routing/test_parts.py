"""CapabilityMatcher, RoutingPolicy and CircuitBreaker (docs/runtime.md, routing and failover), without sleeping."""

from __future__ import annotations

import pytest

from asm_nb.core.capabilities import Capability
from asm_nb.routing import CircuitBreaker, RoutingPolicy, attempt_limit, order_candidates, score
from asm_nb.routing.matcher import matches_all, matches_requirement, normalize_requirement
from asm_nb.routing.policy import merge


class Clock:
    def __init__(self, t: float = 1_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


BASH = Capability.new("bash", "tool")
CHAT = Capability.new("chat", "tool")
OFF = Capability.new("bash", "tool", enabled=False)


@pytest.mark.parametrize("caps, req, ok", [
    ([BASH, CHAT], {"type": "tool", "name": "bash"}, True),
    ([CHAT], {"type": "tool", "name": None}, True),
    ([CHAT], {"type": "tool"}, True),
    ([CHAT], "tool", True),
    ([CHAT], {"type": "tool", "name": "bash"}, False),
    ([OFF], {"type": "tool", "name": "bash"}, False),
    ([OFF], "tool", False),
    ([BASH], 42, False),
    ([BASH], {"type": "sampling"}, False),
    ([{"name": "bash", "type": "tool", "enabled": True}], {"type": "tool", "name": "bash"}, True),
])
def test_matches_requirement(caps, req, ok):
    assert matches_requirement(caps, req) is ok


def test_matches_all_and_normalize():
    assert matches_all([BASH], []) is True
    assert matches_all([BASH, CHAT], ["tool", {"type": "tool", "name": "chat"}]) is True
    assert matches_all([BASH], ["tool", "sampling"]) is False
    assert matches_all("caps", []) is False and matches_all([BASH], "tool") is False
    assert normalize_requirement(3.5) == {"type": "unknown", "name": None}


IDS = [{"id": i} for i in ["codex", "claude", "amp", "other"]]


def ids(xs):
    return [x["id"] for x in xs]


def test_policy_normalization_and_merge():
    p = RoutingPolicy.new(prefer="amp", exclude=["a", "a", 1], max_attempts=-1,
                          weights={"amp": 2, 3: "x", "c": -1}, strategy="weird")
    assert p.to_dict() == {"prefer": [], "exclude": ["a"], "max_attempts": 3,
                           "weights": {"amp": 2.0, "3": 1.0, "c": 1.0}, "strategy": "prefer"}
    w = RoutingPolicy.new(strategy="weighted", prefer=["x"])
    assert merge(w, {"max_attempts": 2}).strategy == "weighted"
    assert merge(w, {"strategy": "prefer"}).strategy == "prefer"
    assert merge(w, {"prefer": ["y"]}).prefer == ["y"]
    assert RoutingPolicy.new([("max_attempts", 2)]).max_attempts == 2


def test_prefer_order_and_exclude():
    p = RoutingPolicy.new(prefer=["amp", "codex"], exclude=["claude"])
    assert ids(order_candidates(p, IDS)) == ["amp", "codex", "other"]
    assert ids(order_candidates(p, IDS + [{"id": 5}, {"name": "x"}])) == ["amp", "codex", "other"]


def test_weighted_order():
    p = RoutingPolicy.new(strategy="weighted", weights={"amp": 10, "codex": 5, "claude": 1})
    cands = [{"id": "claude"}, {"id": "codex"}, {"id": "amp"}]
    assert ids(order_candidates(p, cands)) == ["amp", "codex", "claude"]
    assert ids(order_candidates(p, cands, {"amp": {"failure_count": 20}})) == ["codex", "claude", "amp"]
    tie = RoutingPolicy.new(strategy="weighted", weights={"amp": 5, "codex": 5}, prefer=["codex", "amp"])
    assert ids(order_candidates(tie, [{"id": "amp"}, {"id": "codex"}])) == ["codex", "amp"]
    ex = RoutingPolicy.new(strategy="weighted", weights={"amp": 10}, exclude=["amp"])
    assert ids(order_candidates(ex, cands)) == ["claude", "codex"]
    half = RoutingPolicy.new(strategy="weighted", weights={"low": 0.5})
    assert ids(order_candidates(half, [{"id": "low"}, {"id": "unlisted"}])) == ["unlisted", "low"]


def test_score_and_limit():
    p = RoutingPolicy.new(weights={"a": 10, "b": 1}, max_attempts=2)
    assert score(p, "a", {"a": {"failure_count": 4}}) == 8.0
    assert score(p, "zzz") == 1.0
    assert score(p, "b", {"b": {"failure_count": 10}}) == -4.0
    assert score(p, "b", {"b": {"failure_count": "x"}}) == 1.0
    assert attempt_limit(p, 5) == 2 and attempt_limit(p, 1) == 1


def test_breaker_lifecycle_with_injected_clock():
    clock = Clock()
    b = CircuitBreaker.new(failure_threshold=2, cooldown_ms=60_000, clock=clock)
    assert b.state == "closed" and b.allowed()
    b = b.record_failure()
    assert b.state == "closed" and b.failure_count == 1
    b = b.record_failure()
    assert b.state == "open" and b.opened_at_ms == clock.t and not b.allowed()
    clock.t += 59_999
    assert b.check_state().state == "open" and not b.allowed()
    clock.t += 1
    assert b.allowed()  # cooldown expired: the probe
    h = b.check_state()
    assert h.state == "half_open" and h.half_open_probe_count == 0 and h.allowed()
    assert h.record_probe().allowed() is False  # max_probes 1
    assert h.record_success().to_dict() == {"state": "closed", "failure_count": 0, "failure_threshold": 2,
                                            "cooldown_ms": 60_000, "half_open_max_probes": 1,
                                            "half_open_probe_count": 0}
    again = h.record_failure()
    assert again.state == "open" and again.failure_count == 2 and again.opened_at_ms == clock.t
    # an open breaker that fails again restarts its cooldown
    clock.t += 10
    assert again.record_failure().opened_at_ms == clock.t


def test_breaker_option_fallbacks_and_probes():
    b = CircuitBreaker.new(failure_threshold=0, cooldown_ms=-1, half_open_max_probes=True)
    assert (b.failure_threshold, b.cooldown_ms, b.half_open_max_probes) == (5, 30_000, 1)
    clock = Clock()
    z = CircuitBreaker.new(failure_threshold=1, cooldown_ms=0, clock=clock).record_failure()
    assert z.state == "open" and z.allowed() and z.check_state().state == "half_open"
    two = CircuitBreaker.new(failure_threshold=1, cooldown_ms=0, half_open_max_probes=2, clock=clock)
    h = two.record_failure().check_state().record_probe()
    assert h.allowed() and not h.record_probe().allowed()
    assert CircuitBreaker.new().record_probe().half_open_probe_count == 0  # closed: no-op
