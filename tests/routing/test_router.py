"""ProviderRouter (docs/runtime.md, routing and failover) with scripted adapters, an injected clock and the fake
Anthropic server; and routing through run_once."""

from __future__ import annotations

import asyncio

import pytest

import asm_nb
from asm_nb.core.errors import AsmError
from asm_nb.core.run import Run
from asm_nb.core.session import Session
from asm_nb.routing import ProviderRouter, RouterState
from asm_nb.testing import ScriptedAdapter


class Clock:
    def __init__(self) -> None:
        self.t = 5_000.0

    def __call__(self) -> float:
        return self.t


def new_run(prompt="hi"):
    s = Session.new("agent")
    return Run.new(s.id, input=prompt), s


def execute(router, **kw):
    run, session = new_run()
    events: list = []
    result = asyncio.run(router.execute(run, session, event_callback=events.append, **kw))
    return result, events


def fail(code):
    return AsmError(code, f"{code} happened")


def ok(text):
    return {"content": text}


def scripted(name, outcomes=None, caps=None):
    return ScriptedAdapter(outcomes or [ok(name)], name=name, capabilities=caps)


def test_capabilities_and_policy():
    amp = scripted("amp", caps=[("bash", "tool")])
    codex = scripted("codex", caps=[("bash", "tool")])
    claude = scripted("claude", caps=[("chat", "tool")])
    r = ProviderRouter(policy={"prefer": ["claude", "amp", "codex"], "exclude": ["claude"]})
    for n, a in (("claude", claude), ("amp", amp), ("codex", codex)):
        r.register_adapter(n, a)
    res, _ = execute(r, routing={"required_capabilities": [{"type": "tool", "name": "bash"}]})
    assert res.output["content"] == "amp" and len(amp.calls) == 1 and not codex.calls and not claude.calls
    assert res.routing == {"routed_provider": "amp", "routing_attempt": 1, "routing_candidates": ["amp", "codex"]}
    caps = asyncio.run(r.capabilities())
    assert sorted(c.name for c in caps) == ["bash", "chat"]


def test_failover_on_retryable_error_records_both_attempts():
    clock = Clock()
    primary = scripted("primary", [fail("provider_timeout")])
    primary.emit_on_error = True
    secondary = scripted("secondary")
    r = ProviderRouter(policy={"max_attempts": 2}, clock=clock)
    r.register_adapter("primary", primary)
    r.register_adapter("secondary", secondary)
    res, events = execute(r)
    assert res.output["content"] == "secondary" and len(primary.calls) == len(secondary.calls) == 1
    h = r.status()["health"]["primary"]
    assert h["failure_count"] == 1 and h["last_failure_at"] is not None
    assert r.status()["health"]["secondary"]["failure_count"] == 0
    assert res.routing["failover_from"] == "primary" and res.routing["failover_reason"] == "provider_timeout"
    first = [e for e in events if e["data"]["routing_attempt"] == 1]
    second = [e for e in events if e["data"]["routing_attempt"] == 2]
    assert first and second
    decision = [e for e in first if e["type"] == "error_occurred" and e["data"].get("failover_to")]
    assert decision and decision[0]["data"]["recoverable"] is True and decision[0]["data"]["failover_to"] == "secondary"
    assert [e["type"] for e in events].count("run_failed") == 0  # one terminal event: run_completed
    assert events[-1]["type"] == "run_completed" and events[-1]["data"]["failover_from"] == "primary"
    assert res.events == events
    assert [e["type"] for e in events].count("message_sent") == 1


def test_non_retryable_error_is_raised_without_failover():
    primary = scripted("primary", [fail("provider_authentication_failed")])
    secondary = scripted("secondary")
    r = ProviderRouter(policy={"max_attempts": 2})
    r.register_adapter("primary", primary)
    r.register_adapter("secondary", secondary)
    with pytest.raises(AsmError) as ei:
        execute(r)
    assert ei.value.code == "provider_authentication_failed" and not secondary.calls


def test_cooldown_skips_a_failed_provider_until_it_recovers():
    clock = Clock()
    primary = scripted("primary", [fail("provider_unavailable"), ok("primary")])
    secondary = scripted("secondary")
    r = ProviderRouter(policy={"max_attempts": 2}, cooldown_ms=200, clock=clock)
    r.register_adapter("primary", primary)
    r.register_adapter("secondary", secondary)
    assert execute(r)[0].output["content"] == "secondary"
    clock.t += 100
    assert execute(r)[0].output["content"] == "secondary"  # primary still cooling down
    clock.t += 150
    res, _ = execute(r)
    assert res.output["content"] == "primary"  # recovered
    assert len(primary.calls) == 2 and len(secondary.calls) == 2
    assert r.status()["health"]["primary"] == {"failure_count": 0, "last_failure_at": None}


def test_cancel_goes_to_the_bound_adapter():
    primary = scripted("primary", [("sleep", 2000, ok("late"))])
    other = scripted("other")
    r = ProviderRouter(policy={"max_attempts": 1})
    r.register_adapter("primary", primary)
    r.register_adapter("other", other)
    run, session = new_run()

    async def main():
        task = asyncio.ensure_future(r.execute(run, session))
        for _ in range(100):
            if run.id in r.status()["active_runs"]:
                break
            await asyncio.sleep(0.005)
        assert await r.cancel(run.id) == run.id
        with pytest.raises(AsmError) as ei:
            await task
        return ei.value

    err = asyncio.run(main())
    assert err.code == "cancelled" and primary.cancelled == [run.id] and other.cancelled == []
    assert r.status()["health"]["primary"]["failure_count"] == 0  # a cancel is not a health failure
    with pytest.raises(AsmError) as ei:
        asyncio.run(r.cancel("non-existent-run-id"))
    assert ei.value.code == "run_not_found"


def test_weighted_strategy():
    r = ProviderRouter(policy={"strategy": "weighted", "weights": {"amp": 1, "codex": 10}, "max_attempts": 1})
    r.register_adapter("amp", scripted("amp"))
    r.register_adapter("codex", scripted("codex"))
    assert execute(r)[0].routing["routed_provider"] == "codex"


def test_sticky_sessions_with_ttl():
    clock = Clock()
    r = ProviderRouter(policy={"prefer": ["amp", "codex"]}, sticky_ttl_ms=1000, clock=clock)
    amp = scripted("amp", [fail("provider_timeout"), ok("amp")])
    r.register_adapter("amp", amp)
    r.register_adapter("codex", scripted("codex"))
    first, _ = execute(r, routing={"sticky_session_id": "s1"})
    assert first.routing["routed_provider"] == "codex"
    clock.t += 500_000  # amp has cooled down and is preferred again...
    r.state.sticky_sessions["s1"]["expires_at_ms"] = clock.t + 10  # ...but the sticky binding holds
    assert execute(r, routing={"sticky_session_id": "s1"})[0].routing["routed_provider"] == "codex"
    assert "s1" in r.status()["sticky_sessions"]
    clock.t += 1_000_000  # expired
    assert execute(r, routing={"sticky_session_id": "s1"})[0].routing["routed_provider"] == "amp"


def test_breaker_opens_and_half_opens_with_the_clock():
    clock = Clock()
    primary = scripted("primary", [fail("provider_unavailable"), fail("provider_unavailable"), ok("primary")])
    secondary = scripted("secondary")
    r = ProviderRouter(policy={"max_attempts": 2}, cooldown_ms=0, circuit_breaker=True,
                       circuit_breaker_opts={"failure_threshold": 2, "cooldown_ms": 60_000}, clock=clock)
    r.register_adapter("primary", primary)
    r.register_adapter("secondary", secondary)
    for _ in range(2):
        assert execute(r)[0].output["content"] == "secondary"
    assert r.status()["circuit_breakers"]["primary"]["state"] == "open"
    assert execute(r)[0].output["content"] == "secondary"
    assert len(primary.calls) == 2  # run 3 skipped the open breaker
    clock.t += 60_000  # cooldown over: half-open, one probe goes through and closes it
    res, _ = execute(r)
    assert res.output["content"] == "primary" and len(primary.calls) == 3
    assert r.status()["circuit_breakers"]["primary"]["state"] == "closed"


def test_no_eligible_or_no_more_providers():
    r = ProviderRouter()
    with pytest.raises(AsmError) as ei:
        execute(r)
    assert ei.value.code == "provider_unavailable" and ei.value.message == "No eligible providers for this run"
    r.register_adapter("a", scripted("a", [fail("provider_rate_limited")]))
    r.register_adapter("b", scripted("b", [fail("provider_rate_limited")]))
    with pytest.raises(AsmError) as ei:
        execute(r, routing={"max_attempts": 2})
    assert ei.value.code == "provider_rate_limited"


def test_registry_rules():
    state = RouterState()
    r = ProviderRouter(circuit_breaker_enabled=True, state=state)
    r.register_adapter("", scripted("x"))
    r.register_adapter(5, scripted("x"))
    assert r.status()["adapters"] == []
    r.register_adapter("a", scripted("a"))
    state.health["a"]["failure_count"] = 3
    r.register_adapter("a", scripted("a2"))  # replaced, health kept
    assert r.status()["health"]["a"]["failure_count"] == 3 and "a" in r.status()["circuit_breakers"]
    r.unregister_adapter("a")
    assert r.status()["adapters"] == [] and "a" not in state.health
    r.validate_config({})
    with pytest.raises(AsmError):
        r.validate_config("nope")
    assert r.name == "router"


def test_routing_options_reach_the_router_through_run_once():
    r = ProviderRouter()
    r.register_adapter("a", scripted("a"))
    r.register_adapter("b", scripted("b"))
    from asm_nb.runtime import manager
    from asm_nb.stores import open_store

    res = manager.execute_once(open_store("memory://"), r, "hi", adapter_opts={"routing": {"prefer": ["b"]}})
    assert res.output["content"] == "b" and res.routing["routed_provider"] == "b"


def test_failover_from_the_fake_anthropic_529_to_a_second_provider(tmp_path):
    from asm_nb.routing.router import SHARED_STATE
    from asm_nb.testing import example_cassette
    from asm_nb.testing.fake_anthropic import FakeAnthropicServer, http_error

    SHARED_STATE.reset()
    try:
        with FakeAnthropicServer() as server:
            server.enqueue(http_error("overloaded_529"))
            res = asm_nb.run_once("hi", provider=["claude", "replay"], store="memory://",
                                  options={"api_key": "test-key", "base_url": server.base_url, "max_retries": 0,
                                           "cassette": str(example_cassette("hello"))})
            assert len(server.requests) == 1
        assert res.ok and "demo-project" in res.output
        attempts = {e.data.get("routing_attempt") for e in res.events if "routing_attempt" in e.data}
        assert attempts == {1, 2}
        failover = [e for e in res.events if e.type.value == "error_occurred" and e.data.get("failover_to")]
        assert failover[0].data["routed_provider"] == "claude" and failover[0].data["failover_to"] == "replay"
        assert failover[0].data["error_code"] == "provider_unavailable"
        done = res.events[-1]
        assert done.type.value == "run_completed" and done.data["routed_provider"] == "replay"
        assert done.data["failover_from"] == "claude" and done.data["failover_reason"] == "provider_unavailable"
        assert [e.type.value for e in res.events].count("run_failed") == 0
        # the shared health state remembers the failure (shown by `asm health`)
        assert SHARED_STATE.health["claude"]["failure_count"] == 1
        assert SHARED_STATE.recent_failures["claude"][-1]["code"] == "provider_unavailable"
    finally:
        SHARED_STATE.reset()


def test_comma_separated_names_route_in_order():
    from asm_nb.runtime.oneshot import resolve_adapter

    r = resolve_adapter("shell, replay")
    assert isinstance(r, ProviderRouter) and r.status()["adapters"] == ["shell", "replay"]
    assert r.policy.prefer == ["shell", "replay"] and r.policy.max_attempts == 2 and r.circuit_breaker_enabled
