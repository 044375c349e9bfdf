"""A small in-test adapter so manager tests do not depend on any real provider."""

from __future__ import annotations

import asyncio
from typing import Any

from asm_nb.core.capabilities import Capability
from asm_nb.core.errors import AsmError
from asm_nb.providers._base import BaseAdapter, input_text


class StubAdapter(BaseAdapter):
    """Echoes the prompt. Modes: ok, fail, hang (waits until cancelled), raise (internal crash),
    no_terminal (returns without run_completed), slow_stream (streams N chunks with a pause)."""

    name = "mock"

    def __init__(self, mode: str = "ok", *, chunks: int = 3, usage: dict | None = None,
                 reported_cost: float | None = None, model: str = "mock-model-v1", **kw: Any) -> None:
        super().__init__(**kw)
        self.mode = mode
        self.chunks = chunks
        self.usage = usage or {"input_tokens": 10, "output_tokens": 20}
        self.reported_cost = reported_cost
        self.model = model
        self.seen_opts: list[dict] = []
        self.seen_sessions: list = []

    async def capabilities(self):
        return [Capability.new("chat", "sampling"), Capability.new("tools", "tool", enabled=False)]

    async def _execute(self, active, **opts):
        self.seen_opts.append(opts)
        self.seen_sessions.append(active.session)
        text = input_text(active.run.input)
        await active.emit("run_started", {"provider_session_id": "mock-provider-session-123", "model": self.model})
        await active.emit("message_sent", {"role": "user", "content": text})
        if self.mode == "raise":
            raise RuntimeError("boom inside adapter")
        for i in range(self.chunks):
            if active.cancelled:
                raise AsmError("cancelled", "Run was cancelled")
            await active.emit("message_streamed", {"delta": f"c{i} ", "content": f"c{i} "})
            if self.mode in ("hang", "slow_stream"):
                await asyncio.sleep(0.01)
        await active.emit("token_usage_updated", {**{"cache_read_tokens": 0, "cache_creation_tokens": 0},
                                                  **self.usage})
        if self.mode == "hang":
            await active.cancel_event.wait()
            raise AsmError("cancelled", "Run was cancelled")
        if self.mode == "fail":
            raise self.provider_failure("provider_error", {"kind": "transport_exit", "exit_code": 2,
                                                          "stderr": "permission denied",
                                                          "message": "mock exited with status 2"},
                                        provider="codex")
        reply = f"echo: {text}"
        await active.emit("message_received", {"role": "assistant", "content": reply})
        if self.mode != "no_terminal":
            data = {"stop_reason": "end_turn", "token_usage": self.usage}
            if self.reported_cost is not None:
                data["total_cost_usd"] = self.reported_cost
            await active.emit("run_completed", data)
        return {"output": {"content": reply, "stop_reason": "end_turn"}, "token_usage": self.usage}


import pytest  # noqa: E402


@pytest.fixture
def StubAdapterCls():
    return StubAdapter
