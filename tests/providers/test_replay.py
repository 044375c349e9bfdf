"""ReplayProvider, Recorder and the cassette format (asm_nb.providers.replay, asm_nb.testing.cassettes)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from asm_nb.core.errors import AsmError
from asm_nb.core.run import Run
from asm_nb.core.session import Session
from asm_nb.providers import create_adapter
from asm_nb.providers.replay import Recorder, ReplayProvider, load_cassette, rebuild_result
from asm_nb.providers.shell import ShellAdapter
from asm_nb.testing import cassettes as c
from asm_nb.testing.mock import MockAdapter


def arun(coro, timeout=20):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def new_run(inp="replay me", *, session_id=None, run_id=None):
    s = Session.new("test-agent", id=session_id)
    return Run.new(s.id, input=inp, id=run_id), s


async def execute(adapter, inp="replay me", **kw):
    run, session = new_run(inp, session_id=kw.pop("session_id", None), run_id=kw.pop("run_id", None))
    seen = []
    result = await adapter.execute(run, session, event_callback=seen.append, **kw)
    return run, session, result, seen


def types(events):
    return [e["type"] for e in events]


def slow_cassette(n=5, step=400):
    return c.build_cassette([*c.start(model="m"), *c.tool_call("Read", {"p": 1}, "x", id="t1", t_ms=10),
                             *[c.assistant_text(f"w{i}", t_ms=100 + i * step)[0] for i in range(n)],
                             c.completed(t_ms=100 + n * step)], provider="claude")


# -- format ------------------------------------------------------------------------------

def test_example_cassettes_load_and_rebuild():
    assert c.example_cassettes() == ["failure", "hello", "tools"]
    hello = load_cassette(c.example_cassette("hello"))
    assert hello.provider == "claude" and hello.model == "claude-sonnet-4-5"
    out, usage = hello.result()
    assert out["content"].startswith("README.md describes **demo-project**")
    assert [t["name"] for t in out["tool_calls"]] == ["Read"] and out["stop_reason"] == "end_turn"
    assert usage["output_tokens"] == 212 and usage["cache_read_tokens"] == 14_220
    tools = load_cassette(c.example_cassette("tools.jsonl"))
    out, usage = tools.result()
    assert len(out["tool_calls"]) == 5 and [t.get("is_error", False) for t in out["tool_calls"]].count(True) == 1
    assert usage["reasoning_output_tokens"] == 512
    assert load_cassette(c.example_cassette("failure")).error().code == "provider_rate_limited"
    with pytest.raises(AsmError) as ei:
        c.example_cassette("nope")
    assert ei.value.code == "not_found" and "hello" in ei.value.message


def test_rebuild_result_from_stream_only():
    out, usage = rebuild_result([{"type": "message_streamed", "data": {"delta": "a"}},
                                 {"type": "message_streamed", "data": {"delta": "think", "kind": "reasoning"}},
                                 {"type": "message_streamed", "data": {"delta": "b"}},
                                 {"type": "token_usage_updated", "data": {"input_tokens": 2, "output_tokens": 1}},
                                 {"type": "token_usage_updated", "data": {"input_tokens": 3, "output_tokens": 4}}])
    assert out == {"content": "ab", "tool_calls": []}
    assert usage == {"input_tokens": 5, "output_tokens": 5, "cache_read_tokens": 0, "cache_creation_tokens": 0}


def test_missing_and_corrupt_cassettes(tmp_path):
    with pytest.raises(AsmError) as ei:
        load_cassette(tmp_path / "missing.jsonl")
    assert ei.value.code == "not_found" and "missing.jsonl" in ei.value.message
    cases = {
        "empty": ("", "empty"),
        "badjson": ('{"asm_cassette":1,"provider":"x"}\n{"t_ms":1,"type":"run_started","data":{}}\n{oops\n', "line 3"),
        "noheader": ('{"t_ms":1,"type":"run_started"}\n', "line 1"),
        "newer": ('{"asm_cassette":2,"provider":"x"}\n', "newer"),
        "badtype": ('{"asm_cassette":1,"provider":"x"}\n\n{"t_ms":1,"type":"run_exploded"}\n', "line 3"),
        "baddata": ('{"asm_cassette":1,"provider":"x"}\n{"type":"run_started","data":[1]}\n', "line 2"),
        "badtime": ('{"asm_cassette":1,"provider":"x"}\n{"type":"run_started","t_ms":-5}\n', "line 2"),
        "noprovider": ('{"asm_cassette":1}\n', "provider"),
    }
    for name, (text, needle) in cases.items():
        p = tmp_path / f"{name}.jsonl"
        p.write_text(text)
        with pytest.raises(AsmError) as ei:
            load_cassette(p)
        assert ei.value.code == "invalid_format", name
        assert str(p) in ei.value.message and needle in ei.value.message, (name, ei.value.message)
    with pytest.raises(AsmError) as ei:
        ReplayProvider(cassette=tmp_path / "missing.jsonl")
    assert ei.value.code == "not_found"


def test_build_cassette_validation_and_roundtrip(tmp_path):
    with pytest.raises(AsmError, match="unknown event type"):
        c.build_cassette([{"type": "nope"}])
    with pytest.raises(AsmError, match="unexpected keys"):
        c.build_cassette([{"type": "run_started", "dta": {}}])
    envelope = {"type": "run_started", "data": {"model": "m"}, "session_id": "s", "run_id": "r",
                "provider": "claude", "timestamp": "2025-01-01T00:00:00Z"}
    cas = c.build_cassette([envelope, ("message_received", {"content": "hi", "role": "assistant"})], step_ms=10)
    assert [e.t_ms for e in cas.events] == [0, 10]
    p = c.write_cassette(tmp_path / "sub" / "x.jsonl", cas)
    again = load_cassette(p)
    assert again.events == cas.events and again.header == cas.header
    assert again.content_hash == cas.content_hash
    lines = p.read_text().splitlines()
    assert json.loads(lines[0])["asm_cassette"] == 1 and json.loads(lines[1])["type"] == "run_started"


# -- replay ------------------------------------------------------------------------------

def test_replay_emits_recorded_events_with_this_runs_ids():
    cas = load_cassette(c.example_cassette("hello"))
    a = create_adapter("replay", cassette=c.example_cassette("hello"))
    assert isinstance(a, ReplayProvider) and a.name == "replay"
    run, session, result, seen = arun(execute(a))
    assert result.events == seen
    assert types(seen) == [e.type for e in cas.events]
    assert [e["data"] for e in seen] == [e.data for e in cas.events]
    for e in seen:
        assert e["session_id"] == session.id and e["run_id"] == run.id and e["provider"] == "replay"
        assert "id" not in e and e["timestamp"].year >= 2025
    out, usage = cas.result()
    assert result.output == out and result.token_usage == usage
    assert result.token_usage["input_tokens"] == sum(e["data"]["input_tokens"] for e in seen
                                                     if e["type"] == "token_usage_updated")


def test_impersonate_and_per_execute_cassette():
    a = ReplayProvider(cassette=c.example_cassette("tools"), impersonate=True)
    assert a.name == "codex"
    _, _, _, seen = arun(execute(a))
    assert {e["provider"] for e in seen} == {"codex"}
    b = ReplayProvider()
    with pytest.raises(AsmError, match="needs a cassette"):
        arun(execute(b))
    _, _, result, _ = arun(execute(b, cassette=str(c.example_cassette("hello"))))
    assert result.output["tool_calls"][0]["name"] == "Read"


def test_deterministic_replays_are_byte_identical(tmp_path):
    from asm_nb.persistence.pipeline import EventPipeline
    from asm_nb.stores import open_store

    a = ReplayProvider(cassette=c.example_cassette("hello"), deterministic=True)
    logs = []
    for k in range(2):
        store = open_store(str(tmp_path / f"store{k}"))
        run, session, result, seen = arun(execute(a, session_id="ses_fixed", run_id="run_fixed"))
        pipe = EventPipeline(store)
        for ev in seen:
            pipe.process(ev, {"session_id": session.id, "run_id": run.id, "provider": a.name})
        store.flush()
        store.close()
        logs.append((tmp_path / f"store{k}" / "events").glob("*.jsonl"))
        assert seen[0]["timestamp"].isoformat() == "2025-01-01T00:00:00+00:00"
        assert seen[3]["timestamp"].isoformat() == "2025-01-01T00:00:00.640000+00:00"
        assert all(e["id"].startswith("evt_") for e in seen) and len({e["id"] for e in seen}) == len(seen)
    texts = [b"".join(p.read_bytes() for p in sorted(g)) for g in logs]
    assert texts[0] and texts[0] == texts[1]
    # another run id gives other ids
    _, _, _, other = arun(execute(a, session_id="ses_fixed", run_id="run_other"))
    assert other[0]["id"] != json.loads(texts[0].splitlines()[0])["id"]


def test_speed_paces_the_replay():
    cas = c.build_cassette([*c.start(), c.completed(t_ms=300)])
    t0 = time.monotonic()
    arun(execute(ReplayProvider(cassette=cas, speed=1.0)))
    assert time.monotonic() - t0 >= 0.3
    t0 = time.monotonic()
    arun(execute(ReplayProvider(cassette=slow_cassette(n=50, step=1000))))  # default: as fast as possible
    assert time.monotonic() - t0 < 1.0
    with pytest.raises(AsmError, match="speed"):
        ReplayProvider(cassette=cas, speed=-1)
    ReplayProvider(cassette=cas, speed=float("inf"))


def test_cancel_mid_replay_closes_tool_and_emits_run_cancelled():
    a = ReplayProvider(cassette=slow_cassette(), speed=1.0)

    async def main():
        run, session = new_run()
        seen = []
        got_tool = asyncio.Event()

        def cb(ev):
            seen.append(ev)
            if ev["type"] == "tool_call_completed":
                got_tool.set()

        task = asyncio.ensure_future(a.execute(run, session, event_callback=cb))
        await asyncio.wait_for(got_tool.wait(), 5)
        t0 = time.monotonic()
        await a.cancel(run.id)
        with pytest.raises(AsmError) as ei:
            await asyncio.wait_for(task, 2)
        return ei.value, seen, time.monotonic() - t0

    err, seen, elapsed = arun(main())
    assert err.code == "cancelled" and seen[-1]["type"] == "run_cancelled" and elapsed < 0.3
    assert "run_completed" not in types(seen) and types(seen).count("run_cancelled") == 1

    # a tool still open at cancel is closed first
    open_tool = c.build_cassette([*c.start(), c.tool_call("Bash", {}, None, id="t9", t_ms=0)[0],
                                  c.completed(t_ms=5000)])
    b = ReplayProvider(cassette=open_tool, speed=1.0)

    async def main2():
        run, session = new_run()
        seen = []

        async def cb(ev):
            seen.append(ev)
            if ev["type"] == "tool_call_started":
                await b.cancel(run.id)

        with pytest.raises(AsmError):
            await b.execute(run, session, event_callback=cb)
        return seen

    seen = arun(main2())
    assert types(seen)[-2:] == ["tool_call_failed", "run_cancelled"] and seen[-2]["data"]["reason"] == "cancelled"


def test_failure_cassette_raises_recorded_error():
    a = ReplayProvider(cassette=c.example_cassette("failure"))
    run, session = new_run()
    seen = []
    with pytest.raises(AsmError) as ei:
        arun(a.execute(run, session, event_callback=seen.append))
    err = ei.value
    assert err.code == "provider_rate_limited" and err.retryable
    assert err.provider_error["kind"] == "rate_limit"
    assert types(seen)[-2:] == ["error_occurred", "run_failed"] and types(seen).count("run_failed") == 1


def test_cancel_unknown_and_concurrent_replays():
    a = ReplayProvider(cassette=c.example_cassette("hello"))
    with pytest.raises(AsmError) as ei:
        arun(a.cancel("non-existent-run-id"))
    assert ei.value.code == "run_not_found"

    async def main():
        return await asyncio.gather(*[execute(a) for _ in range(3)])

    for run, _, result, seen in arun(main()):
        assert result.events == seen and {e["run_id"] for e in seen} == {run.id}


# -- recorder ----------------------------------------------------------------------------

def test_recorder_roundtrip(tmp_path):
    mock = MockAdapter(mode="streaming", chunk_delay_ms=1,
                       tool_calls=[{"name": "read_file", "input": {"path": "a"}, "output": "A"}])
    rec = Recorder(mock, tmp_path / "run.jsonl")
    assert rec.name == "mock" and rec.emits_input_messages and rec.model == "mock-model-v1"
    run, session, result, seen = arun(execute(rec, "hello there"))
    assert rec.recorded == [tmp_path / "run.jsonl"]
    cas = load_cassette(tmp_path / "run.jsonl")
    assert cas.provider == "mock" and cas.model == "mock-model-v1" and cas.header["input"] == "hello there"
    assert [e.type for e in cas.events] == types(seen)
    assert [e.t_ms for e in cas.events] == sorted(e.t_ms for e in cas.events)
    _, _, replayed, seen2 = arun(execute(ReplayProvider(cassette=cas)))
    assert [e["data"] for e in seen2] == [json.loads(json.dumps(e["data"])) for e in seen]
    assert replayed.output == result.output and replayed.token_usage == result.token_usage
    assert arun(rec.capabilities()) == arun(mock.capabilities())


def test_recorder_directory_template_and_errors(tmp_path):
    rec = Recorder(MockAdapter(mode="failing", error="provider_unavailable"), str(tmp_path / "cas") + "/")
    run, session = new_run()
    with pytest.raises(AsmError):
        arun(rec.execute(run, session))
    assert rec.recorded == [tmp_path / "cas" / f"{run.id}.jsonl"]
    cas = load_cassette(rec.recorded[0])
    assert cas.header["error"]["code"] == "provider_unavailable"
    with pytest.raises(AsmError) as ei:
        arun(execute(ReplayProvider(cassette=cas)))
    assert ei.value.code == "provider_unavailable"

    rec2 = Recorder(ShellAdapter(), str(tmp_path / "shell-{n}.jsonl"))
    arun(execute(rec2, "echo out; exit 3"))
    assert rec2.recorded == [tmp_path / "shell-1.jsonl"]
    _, _, result, seen = arun(execute(ReplayProvider(cassette=rec2.recorded[0])))
    assert result.output["exit_code"] == 3 and result.output["content"] == "out\n"
    assert seen[-1]["type"] == "run_failed" and seen[-1]["data"]["error_code"] == "command_failed"
    with pytest.raises(AsmError) as ei:
        arun(rec2.cancel("non-existent-run-id"))
    assert ei.value.code == "run_not_found"
