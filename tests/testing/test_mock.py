"""MockAdapter and ScriptedAdapter: the in-process fakes of docs/providers.md, test doubles."""

from __future__ import annotations

import asyncio

import pytest

from asm_nb.core.errors import AsmError
from asm_nb.core.run import Run
from asm_nb.core.session import Session
from asm_nb.providers import create_adapter
from asm_nb.testing.mock import MockAdapter, ScriptedAdapter


def arun(coro, timeout=20):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def new_run(inp="hello"):
    s = Session.new("test-agent")
    return Run.new(s.id, input=inp), s


async def execute(adapter, inp="hello", **kw):
    run, session = new_run(inp)
    seen = []
    result = await adapter.execute(run, session, event_callback=seen.append, **kw)
    return run, session, result, seen


def types(events):
    return [e["type"] for e in events]


def test_registered_as_mock():
    a = create_adapter("mock", mode="streaming")
    assert isinstance(a, MockAdapter) and a.name == "mock" and a.mode == "streaming"
    with pytest.raises(AsmError, match="Unknown mock mode"):
        MockAdapter(mode="bogus")


def test_instant_sequence_and_envelope():
    run, session, result, seen = arun(execute(MockAdapter(), "hello"))
    assert types(seen) == ["run_started", "message_sent", "message_received", "token_usage_updated",
                           "run_completed"]
    assert result.events == seen
    for e in seen:
        assert e["provider"] == "mock" and e["session_id"] == session.id and e["run_id"] == run.id
    assert seen[0]["data"] == {"provider_session_id": "mock-provider-session-123", "model": "mock-model-v1"}
    assert seen[1]["data"] == {"role": "user", "content": "hello"}
    assert seen[2]["data"] == {"content": "Mock response: hello", "role": "assistant"}
    usage = seen[3]["data"]
    assert (usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]) == (10, 20, 30)
    assert seen[4]["data"]["stop_reason"] == "end_turn"
    assert result.output["content"] == "Mock response: hello"
    assert result.token_usage == {"input_tokens": 10, "output_tokens": 20, "cache_read_tokens": 0,
                                  "cache_creation_tokens": 0}


def test_streaming_chunks_then_received():
    a = MockAdapter(mode="streaming", response="one two three four", chunk_delay_ms=1)
    _, _, result, seen = arun(execute(a))
    streamed = [e["data"]["delta"] for e in seen if e["type"] == "message_streamed"]
    assert streamed == ["one ", "two ", "three ", "four"]
    assert all(e["data"]["content"] == e["data"]["delta"] for e in seen if e["type"] == "message_streamed")
    assert types(seen).index("message_received") > types(seen).index("message_streamed")
    assert "".join(streamed) == result.output["content"]
    _, _, _, seen = arun(execute(MockAdapter(mode="streaming", chunks=["a", "b"], response="ab")))
    assert [e["data"]["delta"] for e in seen if e["type"] == "message_streamed"] == ["a", "b"]


def test_tool_calls_and_cost_and_messages_input():
    a = MockAdapter(tool_calls=[{"name": "read_file", "input": {"path": "a.txt"}, "output": "text"},
                                {"name": "bash", "input": {"command": "x"}, "output": "err", "is_error": True}],
                    total_cost_usd=0.25, response=lambda p: p.upper())
    inp = {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "go"}]}
    _, _, result, seen = arun(execute(a, inp))
    assert types(seen)[:3] == ["run_started", "message_sent", "message_sent"]
    assert types(seen)[3:7] == ["tool_call_started", "tool_call_completed", "tool_call_started", "tool_call_failed"]
    assert seen[4]["data"]["tool_output"] == "text" and seen[6]["data"]["is_error"] is True
    assert seen[-1]["data"]["total_cost_usd"] == 0.25
    assert result.output["content"] == "GO"
    assert [c["name"] for c in result.output["tool_calls"]] == ["read_file", "bash"]


def test_delayed_can_be_cancelled():
    a = MockAdapter(mode="delayed", delay_ms=10_000)

    async def main():
        run, session = new_run()
        seen = []
        task = asyncio.ensure_future(a.execute(run, session, event_callback=seen.append))
        while not seen:
            await asyncio.sleep(0.005)
        await a.cancel(run.id)
        with pytest.raises(AsmError) as ei:
            await asyncio.wait_for(task, 2)
        return ei.value, seen

    err, seen = arun(main())
    assert err.code == "cancelled" and seen[-1]["type"] == "run_cancelled"
    assert types(seen).count("run_cancelled") == 1


def test_streaming_cancel_from_callback():
    a = MockAdapter(mode="streaming", response=" ".join(["w"] * 50), chunk_delay_ms=1)

    async def main():
        run, session = new_run()
        seen = []

        async def cb(ev):
            seen.append(ev)
            if ev["type"] == "message_streamed" and len(seen) == 4:
                await a.cancel(run.id)

        with pytest.raises(AsmError) as ei:
            await a.execute(run, session, event_callback=cb)
        return ei.value, seen

    err, seen = arun(main())
    assert err.code == "cancelled" and seen[-1]["type"] == "run_cancelled"
    assert types(seen).count("message_streamed") < 50


def test_failing_mode_emits_error_events_and_raises():
    _, session = new_run()
    for error, code in [(None, "provider_error"), ("provider_rate_limited", "provider_rate_limited"),
                        (AsmError("provider_authentication_failed", "bad key"), "provider_authentication_failed")]:
        run, session = new_run()
        seen = []
        with pytest.raises(AsmError) as ei:
            arun(MockAdapter(mode="failing", error=error).execute(run, session, event_callback=seen.append))
        assert ei.value.code == code
        assert types(seen) == ["run_started", "message_sent", "error_occurred", "run_failed"]
        assert seen[-1]["data"]["error_code"] == code


def test_timeout_mode_uses_execute_timeout():
    run, session = new_run()
    seen = []
    with pytest.raises(AsmError) as ei:
        arun(MockAdapter(mode="timeout").execute(run, session, event_callback=seen.append, timeout=100))
    assert ei.value.code == "provider_timeout" and ei.value.retryable
    assert seen[-1]["type"] == "run_failed"


def test_three_concurrent_and_unknown_cancel():
    a = MockAdapter(mode="streaming", chunk_delay_ms=2)

    async def main():
        return await asyncio.gather(*[execute(a, f"p{i}") for i in range(3)])

    outs = arun(main())
    assert sorted(r.output["content"] for _, _, r, _ in outs) == [f"Mock response: p{i}" for i in range(3)]
    for run, _, result, seen in outs:
        assert result.events == seen and {e["run_id"] for e in seen} == {run.id}
    with pytest.raises(AsmError) as ei:
        arun(a.cancel("non-existent-run-id"))
    assert ei.value.code == "run_not_found"


def test_emit_input_messages_off():
    a = MockAdapter(emit_input_messages=False)
    assert a.emits_input_messages is False
    _, _, _, seen = arun(execute(a))
    assert "message_sent" not in types(seen)


def test_scripted_outcomes_in_order():
    a = ScriptedAdapter([AsmError("provider_timeout", "slow"), {"content": "second"},
                         {"output": {"content": "third"}, "token_usage": {"input_tokens": 3}}], name="primary")
    assert a.name == "primary"
    run, session = new_run()
    seen = []
    with pytest.raises(AsmError) as ei:
        arun(a.execute(run, session, event_callback=seen.append))
    assert ei.value.code == "provider_timeout" and seen == []
    _, _, r2, seen2 = arun(execute(a))
    assert r2.output == {"content": "second"} and seen2[-1]["type"] == "run_completed"
    assert seen2[-1]["data"]["stop_reason"] == "end_turn"
    _, _, r3, _ = arun(execute(a))
    assert r3.output["content"] == "third" and r3.token_usage["input_tokens"] == 3
    _, _, r4, _ = arun(execute(a))  # the last outcome repeats
    assert r4.output["content"] == "third"
    assert len(a.calls) == 4


def test_scripted_sleep_honours_cancel():
    a = ScriptedAdapter([("sleep", 2000, {"content": "late"})])

    async def main():
        run, session = new_run()
        seen = []
        task = asyncio.ensure_future(a.execute(run, session, event_callback=seen.append))
        while not seen:
            await asyncio.sleep(0.005)
        assert await a.cancel(run.id) == run.id
        with pytest.raises(AsmError) as ei:
            await asyncio.wait_for(task, 1)
        return run, ei.value, seen

    run, err, seen = arun(main())
    assert err.code == "cancelled" and a.cancelled == [run.id] and seen[-1]["type"] == "run_cancelled"
    _, _, r, _ = arun(execute(ScriptedAdapter([("sleep", 5, {"content": "done"})])))
    assert r.output["content"] == "done"


def test_scripted_callable_and_crash_isolation():
    calls = []

    async def outcome(run, session):
        calls.append(run.id)
        return {"content": f"for {run.input}"}

    _, _, r, _ = arun(execute(ScriptedAdapter([outcome]), "x"))
    assert r.output["content"] == "for x" and len(calls) == 1
    a = ScriptedAdapter([RuntimeError("bug"), {"content": "fine"}])
    run, session = new_run()
    with pytest.raises(AsmError) as ei:
        arun(a.execute(run, session))
    assert ei.value.code == "internal_error"
    assert arun(execute(a))[2].output["content"] == "fine"


def test_scripted_emit_on_error():
    a = ScriptedAdapter([AsmError("provider_unavailable", "down")], emit_on_error=True)
    run, session = new_run()
    seen = []
    with pytest.raises(AsmError):
        arun(a.execute(run, session, event_callback=seen.append))
    assert types(seen) == ["run_started", "message_sent", "error_occurred", "run_failed"]


def test_testing_package_exports_resolve():
    import asm_nb.testing as testing

    for name in testing.__all__:
        assert getattr(testing, name) is not None, name
    with pytest.raises(AttributeError):
        testing.NotAThing  # noqa: B018
