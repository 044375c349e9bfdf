"""ControlOperations (docs/runtime.md, cancel, interrupt, pause, resume): operation states, history, capability
checks."""

from __future__ import annotations

import asyncio

import pytest

from asm_nb.core.capabilities import Capability
from asm_nb.core.errors import AsmError
from asm_nb.runtime.control import ControlOperations, terminal_state


class FakeAdapter:
    name = "fake"

    def __init__(self, caps=(), fail_cancel=()):
        self.caps = list(caps)
        self.fail_cancel = set(fail_cancel)
        self.calls = []

    async def capabilities(self):
        return self.caps

    async def cancel(self, run_id):
        self.calls.append(("cancel", run_id))
        if run_id in self.fail_cancel:
            raise AsmError("provider_error", f"cannot cancel {run_id}")
        return run_id


class PausableAdapter(FakeAdapter):
    async def pause(self, run_id):
        self.calls.append(("pause", run_id))
        return run_id

    async def resume(self, run_id):
        self.calls.append(("resume", run_id))
        return run_id


def arun(coro):
    return asyncio.run(asyncio.wait_for(coro, 5))


def test_interrupt_twice_and_history():
    ad = FakeAdapter()
    ops = ControlOperations(ad)

    async def go():
        assert await ops.interrupt("r1") == "r1"
        assert await ops.interrupt("r1") == "r1"  # already interrupted: no adapter call

    arun(go())
    assert ad.calls == [("cancel", "r1")]
    st = ops.get_operation_status("r1")
    assert st["state"] == "interrupted" and st["last_operation"] == "interrupt"
    assert [h["result"] for h in st["history"]] == ["ok"]


def test_cancel_then_resume_is_invalid():
    ops = ControlOperations(PausableAdapter(caps=[Capability.new("resume", "tool")]))

    async def go():
        await ops.cancel("r")
        await ops.cancel("r")
        with pytest.raises(AsmError) as e:
            await ops.resume("r")
        assert e.value.code == "invalid_operation" and "terminal state: cancelled" in e.value.message

    arun(go())
    assert [h["operation"] for h in ops.get_operation_history("r")] == ["cancel"]


def test_pause_needs_the_capability_and_the_method():
    async def go():
        no_cap = ControlOperations(PausableAdapter())
        with pytest.raises(AsmError) as e:
            await no_cap.pause("r")
        assert e.value.code == "capability_not_supported" and "'pause'" in e.value.message
        assert no_cap.get_operation_history("r") == []
        disabled = ControlOperations(PausableAdapter(caps=[Capability.new("pause", "tool", enabled=False)]))
        with pytest.raises(AsmError):
            await disabled.pause("r")
        no_method = ControlOperations(FakeAdapter(caps=[Capability.new("pause", "tool")]))
        with pytest.raises(AsmError) as e:
            await no_method.pause("r")
        assert e.value.code == "provider_error" and "does not support pause" in e.value.message
        assert len(no_method.get_operation_history("r")) == 1
        ok = ControlOperations(PausableAdapter(caps=[Capability.new("pause", "tool"),
                                                     Capability.new("resume", "tool")]))
        await ok.pause("r")
        await ok.pause("r")
        assert ok.get_operation_status("r")["state"] == "paused"
        await ok.resume("r")
        assert ok.get_operation_status("r")["state"] == "running"
        assert [c for c in ok.adapter.calls] == [("pause", "r"), ("resume", "r")]

    arun(go())


def test_cancel_all_and_interrupt_session_report_per_id():
    ad = FakeAdapter(fail_cancel={"bad"})
    ops = ControlOperations(ad)

    async def go():
        out = await ops.cancel_all(["a", "bad", "c"])
        assert out["a"] == "ok" and out["c"] == "ok" and isinstance(out["bad"], AsmError)
        ops.register_run("s1", "x")
        ops.register_run("s1", "bad")
        res = await ops.interrupt_session("s1")
        assert res["x"] == "ok" and isinstance(res["bad"], AsmError)
        assert await ops.interrupt_session("unknown") == {}

    arun(go())
    hist = ops.get_operation_history("bad")
    assert [h["operation"] for h in hist] == ["cancel", "interrupt"]
    assert all(isinstance(h["result"], AsmError) for h in hist)
    assert ops.get_operation_status("bad")["state"] == "unknown"


def test_terminal_states():
    assert all(terminal_state(s) for s in ("cancelled", "completed", "failed", "timeout"))
    assert not any(terminal_state(s) for s in ("paused", "running", "interrupted", "unknown"))
