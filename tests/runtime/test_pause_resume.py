"""Pause / resume from the public surface: ``asm_nb.pause`` / ``asm_nb.resume``, ``%asm pause|resume``
and ``SessionServer.pause_run`` / ``resume_run``, on the Claude API adapter (it waits between the
turns of its tool loop) against the fake Anthropic server."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("anthropic")

import asm_nb  # noqa: E402
from asm_nb.core.errors import AsmError  # noqa: E402
from asm_nb.providers import ClaudeAdapter  # noqa: E402
from asm_nb.providers.tools import tool  # noqa: E402
from asm_nb.testing.fake_anthropic import FakeAnthropicServer, text_stream, tool_use_stream  # noqa: E402


@pytest.fixture
def server():
    with FakeAnthropicServer() as s:
        yield s


def gated_adapter(server, gate: threading.Event) -> ClaudeAdapter:
    """A Claude adapter whose one tool returns only once ``gate`` is set."""

    @tool
    async def lookup(q: str) -> str:
        """Look something up.

        Args:
            q: What to look up.
        """
        await asyncio.to_thread(gate.wait, 10)
        return "found"

    server.enqueue(tool_use_stream("lookup", {"q": "x"}, id="toolu_1"), text_stream("Done."))
    return ClaudeAdapter(api_key="test-key", base_url=server.base_url, max_retries=0, tools=[lookup])


class Watcher:
    """``on_event`` for a run: the run id once its tool starts, and whether it parked."""

    def __init__(self) -> None:
        self.tool_started, self.paused, self.run_id, self.types = threading.Event(), threading.Event(), None, []

    def __call__(self, ev: dict) -> None:
        self.types.append(ev["type"])
        if ev["type"] == "tool_call_started":
            self.run_id = ev["run_id"]
            self.tool_started.set()
        elif ev["type"] == "session_paused":
            self.paused.set()


def pause_hold_resume(server, watcher, gate, pause, resume):
    assert watcher.tool_started.wait(15)
    assert pause(watcher.run_id) == watcher.run_id
    gate.set()  # the tool returns; the loop reaches its next turn and must wait there
    assert watcher.paused.wait(10)
    time.sleep(0.4)
    assert len(server.requests) == 1  # paused: the second request is not sent
    assert resume(watcher.run_id) == watcher.run_id


def check_resumed_run(result, server):
    assert result.ok, result.error
    assert result.output == "Done."
    types = [e.type.value for e in result.events]
    i_tool, i_paused, i_resumed = (types.index("tool_call_completed"), types.index("session_paused"),
                                   types.index("session_resumed"))
    assert i_tool < i_paused < i_resumed < types.index("message_received", i_resumed)
    assert len(server.requests) == 2


def test_asm_nb_pause_and_resume_hold_the_claude_tool_loop_between_turns(server):
    gate, watcher = threading.Event(), Watcher()
    adapter = gated_adapter(server, gate)
    with ThreadPoolExecutor(1) as pool:
        fut = pool.submit(asm_nb.run_once, "look it up", adapter, store="memory://", on_event=watcher)
        pause_hold_resume(server, watcher, gate, asm_nb.pause, asm_nb.resume)
        result = fut.result(20)
    check_resumed_run(result, server)


def test_pause_magic_and_resume_magic(server, capsys):
    from IPython import get_ipython
    from IPython.testing.globalipapp import start_ipython

    ip = start_ipython() or get_ipython()
    ip.run_line_magic("load_ext", "asm_nb")
    gate, watcher = threading.Event(), Watcher()
    adapter = gated_adapter(server, gate)

    def magic(word):
        def call(run_id):
            ip.run_line_magic("asm", f"{word} {run_id}")
            return run_id
        return call

    with ThreadPoolExecutor(1) as pool:
        fut = pool.submit(asm_nb.run_once, "look it up", adapter, store="memory://", on_event=watcher)
        pause_hold_resume(server, watcher, gate, magic("pause"), magic("resume"))
        result = fut.result(20)
    check_resumed_run(result, server)
    out = capsys.readouterr().out
    assert f"pausing {watcher.run_id}" in out and f"resumed {watcher.run_id}" in out


def test_session_server_pauses_through_its_default_control_operations(server):
    from asm_nb.runtime.server import SessionRuntime

    gate, watcher = threading.Event(), Watcher()
    adapter = gated_adapter(server, gate)
    rt = SessionRuntime(store=asm_nb.open_store("memory://"), adapter=adapter)
    from asm_nb.runtime import loop

    srv = loop.run_sync(rt.start_session(session_opts={}))
    assert srv.control_ops is not None  # built by default
    run_id = srv.submit("look it up", event_callback=watcher)
    pause_hold_resume(server, watcher, gate, srv.pause, srv.resume)
    res = srv.wait(run_id, 20000)
    assert res.output["content"] == "Done."
    assert srv.control_ops.get_operation_status(run_id)["state"] == "running"
    assert [h["operation"] for h in srv.control_ops.get_operation_history(run_id)] == ["pause", "resume"]
    loop.run_sync(rt.aclose())


def test_pause_of_a_provider_that_cannot_pause_and_of_an_unknown_run():
    started = threading.Event()
    seen = {}

    def on_event(ev):
        if ev["type"] == "run_started":
            seen["run_id"] = ev["run_id"]
            started.set()

    with ThreadPoolExecutor(1) as pool:
        fut = pool.submit(asm_nb.run_once, "sleep 1", "shell", store="memory://", on_event=on_event)
        assert started.wait(10)
        with pytest.raises(AsmError) as info:
            asm_nb.pause(seen["run_id"])
        assert info.value.code == "capability_not_supported"
        assert fut.result(20).ok
    with pytest.raises(AsmError) as info:
        asm_nb.resume("run_nope")
    assert info.value.code == "run_not_found"
