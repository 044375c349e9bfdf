"""Helpers shared by the CLI adapter tests (Codex, Amp, Claude Code): fixture manifests, running an
adapter against a fake executable, and the generic event-stream checks of docs/providers.md (ordering rules)."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import time
from typing import Any

import pytest

from asm_nb.core.errors import AsmError
from asm_nb.core.run import Run
from asm_nb.core.session import Session
from asm_nb.testing.fake_cli import install_fake_cli

_here = pathlib.Path(__file__).resolve()
FIXTURES = _here.parents[1] / "fixtures" / "providers"

TERMINAL = {"run_completed", "run_failed", "run_cancelled"}
FORBIDDEN_TOOL_KEYS = {"tool_use_id", "call_id", "arguments", "input", "output"}
#: ``install_fake_cli`` keywords (how the fake behaves); a test's other keywords go to the adapter
FAKE_BEHAVIOUR = ("hang", "ignore_signals", "spawn_child", "line_delay_ms", "stdout", "hang_ms", "exit_code", "stderr",
                  "signal")


def manifest(provider: str) -> dict[str, dict]:
    data = json.loads((FIXTURES / provider / "manifest.json").read_text())
    return {f["file"]: f for f in data["fixtures"]}


def fixture(provider: str, name: str) -> pathlib.Path:
    return FIXTURES / provider / name


def install_fixture_cli(tmp_path: pathlib.Path, exe_name: str, provider: str, name: str | None,
                        kw: dict[str, Any]) -> pathlib.Path:
    """A fake ``exe_name`` in ``tmp_path/bin`` replaying fixture ``name`` of ``provider`` (None: no
    fixture); takes the ``FAKE_BEHAVIOUR`` keywords out of ``kw`` (the rest are adapter options)."""
    return install_fake_cli(tmp_path / "bin", exe_name, fixture(provider, name) if name else None,
                            **{k: kw.pop(k) for k in list(kw) if k in FAKE_BEHAVIOUR})


async def run_adapter(adapter: Any, run_input: Any = "hello", *, session: Session | None = None,
                      callback: Any = None, **opts: Any) -> tuple[Any, AsmError | None, list[dict], Run, Session]:
    """Execute once; return ``(result | None, error | None, callback_events, run, session)``."""
    session = session or Session.new("agent-1")
    run = Run.new(session.id, input=run_input)
    events: list[dict] = []

    def cb(ev: dict) -> Any:
        events.append(ev)
        if callback is not None:
            return callback(ev)
        return None

    try:
        result = await adapter.execute(run, session, event_callback=cb, **opts)
        return result, None, events, run, session
    except AsmError as err:
        return None, err, events, run, session


def cancel_when_a_tool_runs(adapter: Any, run_input: Any) -> tuple[AsmError, list[dict], float, Run, Session, Any]:
    """Execute ``run_input``, cancel once a tool call has started, expect the run to raise.
    → ``(error, events, seconds from the cancel to the end, run, session, what cancel() returned)``."""

    async def scenario():
        session = Session.new("a")
        run = Run.new(session.id, input=run_input)
        events: list = []
        task = asyncio.ensure_future(adapter.execute(run, session, event_callback=events.append))
        await wait_for(lambda: any(e["type"] == "tool_call_started" for e in events))
        t0 = time.monotonic()
        cancelled = await adapter.cancel(run.id)
        with pytest.raises(AsmError) as ei:
            await task
        return ei.value, events, time.monotonic() - t0, run, session, cancelled

    return arun(scenario())


def check_generic(events: list[dict], run: Run, session: Session, provider: str) -> None:
    """The envelope and ordering rules of docs/providers.md that every CLI run must satisfy."""
    assert events, "no events emitted"
    for ev in events:
        assert ev["provider"] == provider
        assert ev["session_id"] == session.id
        assert ev["run_id"] == run.id
        assert ev["timestamp"].tzinfo is not None
    types = [e["type"] for e in events]
    assert sum(t in TERMINAL for t in types) == 1, types
    assert types[-1] in TERMINAL, types
    if "run_started" in types:
        assert types[0] == "run_started"
        assert types.count("run_started") == 1
    started: set = set()
    ended: set = set()
    for ev in events:
        d = ev["data"]
        if ev["type"].startswith("tool_call"):
            assert not (FORBIDDEN_TOOL_KEYS & set(d)), d.keys()
            assert isinstance(d.get("tool_call_id"), str) and d.get("tool_name") is not None
        if ev["type"] == "tool_call_started":
            assert isinstance(d["tool_input"], dict)
            started.add(d["tool_call_id"])
        elif ev["type"] in ("tool_call_completed", "tool_call_failed"):
            assert d["tool_call_id"] in started, f"end without start: {d['tool_call_id']}"
            ended.add(d["tool_call_id"])
    assert started == ended, f"tool calls left open: {started - ended}"
    if "run_failed" in types:
        assert "error_occurred" in types[: types.index("run_failed")]
        failed = events[types.index("run_failed")]["data"]
        assert failed["error_code"] and failed["error_message"]
    for ev in events:
        if ev["type"] == "token_usage_updated":
            for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens"):
                assert isinstance(ev["data"][k], int) and ev["data"][k] >= 0
        if ev["type"] == "message_streamed":
            assert ev["data"]["delta"] == ev["data"]["content"]
        if ev["type"] in ("run_failed", "error_occurred") and "provider_error" in ev["data"]:
            assert set(ev["data"]["provider_error"]) == {"provider", "kind", "message", "exit_code", "stderr",
                                                         "truncated"}


def usage_sum(events: list[dict]) -> dict[str, int]:
    total = {"input_tokens": 0, "output_tokens": 0, "cache_read_tokens": 0, "cache_creation_tokens": 0}
    for ev in events:
        if ev["type"] == "token_usage_updated":
            for k in total:
                total[k] += ev["data"][k]
    return total


def tool_outcomes(events: list[dict]) -> dict[str, str]:
    out = {}
    for ev in events:
        if ev["type"] == "tool_call_completed":
            out[ev["data"]["tool_call_id"]] = "completed"
        elif ev["type"] == "tool_call_failed":
            out[ev["data"]["tool_call_id"]] = "failed"
    return out


def of_type(events: list[dict], t: str) -> list[dict]:
    return [e for e in events if e["type"] == t]


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid``."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            out.append(int(name))
    return out


def group_gone_within(pgid: int, seconds: float) -> list[int]:
    """Members of ``pgid`` still alive after waiting up to ``seconds`` (SIGKILL is delivered
    asynchronously: a just-killed process can be listed for a few ms on a loaded machine)."""
    deadline = time.monotonic() + max(0.0, seconds)
    while True:
        left = group_members(pgid)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.01)


def arun(coro: Any, timeout: float = 30) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def wait_for(predicate: Any, timeout: float = 5.0, interval: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)
