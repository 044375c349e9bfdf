"""In-process fake adapters for tests and offline demos (docs/providers.md, test doubles).

- ``MockAdapter(mode=...)``: a well-behaved provider with five modes — ``instant``,
  ``streaming``, ``delayed``, ``failing``, ``timeout`` — emitting the same event sequence a real
  adapter does (``run_started``, ``message_sent``, ``message_streamed``…, tool calls,
  ``message_received``, ``token_usage_updated``, ``run_completed``), registered as provider
  ``"mock"``.
- ``ScriptedAdapter(outcomes=[...])``: each ``execute`` plays the next outcome — a success dict,
  an ``AsmError`` (raised), ``("sleep", ms, outcome)`` (honours ``cancel``) or a callable — the
  equivalent of the reference router test adapter. It records what it saw (``calls``,
  ``cancelled``) for assertions.

Both subclass ``BaseAdapter``, so envelopes, ``AdapterResult.events`` and ``cancel`` behave like the
built-in adapters.

>>> import asyncio
>>> from asm_nb.core.session import Session
>>> from asm_nb.core.run import Run
>>> s = Session.new("demo"); r = Run.new(s.id, input="hi")
>>> asyncio.run(MockAdapter().execute(r, s)).output["content"]
'Mock response: hi'
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..core.capabilities import Capability
from ..core.errors import AsmError
from ..ports import AdapterResult, resolve_execute_timeout_base
from ..core.usage import TokenUsage, empty_usage
from ..providers._base import ActiveRun, BaseAdapter, input_text
from ..core.provider_errors import normalize_provider_error

__all__ = ["MockAdapter", "ScriptedAdapter", "MODES"]

MODES = ("instant", "streaming", "delayed", "failing", "timeout")
DEFAULT_USAGE = TokenUsage(input_tokens=10, output_tokens=20).to_dict()


def _capabilities(spec: Iterable[Any] | None, default: Sequence[tuple[str, str]]) -> list[Capability]:
    if spec is None:
        return [Capability.new(n, t) for n, t in default]
    out = []
    for c in spec:
        if isinstance(c, Capability):
            out.append(c)
        elif isinstance(c, Mapping):
            out.append(Capability.new(dict(c)))
        else:
            out.append(Capability.new(*c))
    return out


def _input_messages(run_input: Any) -> list[dict]:
    """User-facing input messages, as ``message_sent`` payloads."""
    if isinstance(run_input, Mapping) and isinstance(run_input.get("messages"), list):
        out = []
        for m in run_input["messages"]:
            if isinstance(m, Mapping) and m.get("content") not in (None, ""):
                c = m["content"]
                out.append({"role": str(m.get("role") or "user").lower(), "content": c if isinstance(c, str) else str(c)})
        return out
    text = input_text(run_input)
    return [{"role": "user", "content": text}] if text else []


async def _sleep_or_cancel(active: ActiveRun, ms: float) -> None:
    """Sleep ``ms`` unless the run is cancelled first; on cancel close tools, emit
    ``run_cancelled`` and raise ``cancelled``."""
    if active.cancelled:
        raise await active.emit_cancelled()
    if ms and ms > 0:
        try:
            await asyncio.wait_for(active.cancel_event.wait(), ms / 1000)
        except asyncio.TimeoutError:
            pass
    if active.cancelled:
        raise await active.emit_cancelled()


def _split_chunks(text: str, chunks: Any) -> list[str]:
    if isinstance(chunks, (list, tuple)):
        return [str(c) for c in chunks]
    parts = re.findall(r"\S+\s*|\s+", text) or ([text] if text else [])
    if isinstance(chunks, int) and chunks > 0 and len(parts) > chunks:
        size = -(-len(parts) // chunks)
        parts = ["".join(parts[i:i + size]) for i in range(0, len(parts), size)]
    return parts


class MockAdapter(BaseAdapter):
    """A fake provider with predictable output.

    Args:
        mode: ``instant`` (answer at once), ``streaming`` (stream the answer in chunks,
            ``chunk_delay_ms`` apart), ``delayed`` (wait ``delay_ms``, then answer),
            ``failing`` (start, then fail with ``error``), ``timeout`` (hang until cancelled, or
            fail with ``provider_timeout`` once the execute ``timeout`` has passed).
        response: the answer text, or ``callable(prompt) -> str``
            (default ``"Mock response: <prompt>"``).
        chunks: number of streamed chunks, or the exact list of chunks (streaming mode).
        chunk_delay_ms / delay_ms: pauses (defaults 10 / 100 ms); cancel interrupts them.
        usage: token usage reported (default 10 in / 20 out).
        model / provider_session_id: reported in ``run_started``.
        tool_calls: ``[{"name", "input", "output", "is_error"?, "id"?}]`` emitted before the answer.
        total_cost_usd: provider-reported cost put on ``run_completed``.
        error: ``AsmError`` or error code for ``failing`` mode.
        capabilities: list of ``Capability`` / dicts / ``(name, type)`` (default chat, streaming, tool_use).
        emit_input_messages: emit ``message_sent`` for the input (default True).
        name: provider name (default ``"mock"``).
    """

    name = "mock"

    def __init__(self, mode: str = "instant", *, response: str | Callable[[str], str] | None = None,
                 chunks: int | Sequence[str] | None = None, chunk_delay_ms: float | None = None,
                 delay_ms: float = 100, usage: Mapping[str, int] | None = None, model: str | None = "mock-model-v1",
                 provider_session_id: str | None = "mock-provider-session-123",
                 tool_calls: Sequence[Mapping[str, Any]] | None = None, total_cost_usd: float | None = None,
                 error: AsmError | str | None = None, capabilities: Iterable[Any] | None = None,
                 emit_input_messages: bool = True, name: str | None = None, **options: Any) -> None:
        if mode not in MODES:
            raise AsmError("validation_error", f"Unknown mock mode {mode!r}; expected one of {', '.join(MODES)}")
        super().__init__(mode=mode, **options)
        if name:
            self.name = name
        self.mode = mode
        self.response = response
        self.chunks = chunks
        self.chunk_delay_ms = (10 if mode == "streaming" else 0) if chunk_delay_ms is None else chunk_delay_ms
        self.delay_ms = delay_ms
        self.usage = {**empty_usage(), **(dict(usage) if usage is not None else DEFAULT_USAGE)}
        self.model = model
        self.provider_session_id = provider_session_id
        self.tool_calls = [dict(t) for t in (tool_calls or [])]
        self.total_cost_usd = total_cost_usd
        self.error = error
        self._caps = _capabilities(capabilities, [("chat", "sampling"), ("streaming", "sampling"),
                                                  ("tool_use", "tool")])
        self.emits_input_messages = bool(emit_input_messages)
        self.executions: list[dict[str, Any]] = []  # what each execute received (run id, input, opts)

    async def capabilities(self) -> list[Capability]:
        return list(self._caps)

    def _reply(self, prompt: str) -> str:
        if callable(self.response):
            return str(self.response(prompt))
        if self.response is not None:
            return str(self.response)
        return f"Mock response: {prompt}"

    def _error(self) -> AsmError:
        if isinstance(self.error, AsmError):
            return self.error
        code = self.error if isinstance(self.error, str) else "provider_error"
        message = "Mock provider failure"
        pe, details = normalize_provider_error("unknown", {"kind": "unknown", "message": message})
        return AsmError(code, message, provider_error=pe, details=details)

    async def _execute(self, active: ActiveRun, **opts: Any) -> Mapping[str, Any]:
        t0 = time.monotonic()
        self.executions.append({"run_id": active.run.id, "input": active.run.input, "opts": dict(opts)})
        prompt = input_text(active.run.input)
        if active.cancelled:
            raise await active.emit_cancelled()
        started: dict[str, Any] = {}
        if self.provider_session_id:
            started["provider_session_id"] = self.provider_session_id
        if self.model:
            started["model"] = self.model
        await active.emit("run_started", started)
        if self.emits_input_messages:
            for m in _input_messages(active.run.input):
                await active.emit("message_sent", m)

        if self.mode == "failing":
            await _sleep_or_cancel(active, 0)
            raise self._error()
        if self.mode == "timeout":
            limit = resolve_execute_timeout_base(opts.get("timeout"))
            await _sleep_or_cancel(active, limit)
            raise AsmError("provider_timeout", f"Mock provider timed out after {limit}ms",
                           details={"timeout_ms": limit})
        if self.mode == "delayed":
            await _sleep_or_cancel(active, self.delay_ms)

        calls = []
        for i, tc in enumerate(self.tool_calls):
            await _sleep_or_cancel(active, self.chunk_delay_ms)
            tcid = str(tc.get("id") or f"mock_tool_{i + 1}")
            tname = str(tc.get("name") or "tool")
            tinput = dict(tc.get("input") or {})
            await active.emit("tool_call_started", {"tool_call_id": tcid, "tool_name": tname, "tool_input": tinput})
            await _sleep_or_cancel(active, self.chunk_delay_ms)
            end = "tool_call_failed" if tc.get("is_error") else "tool_call_completed"
            data = {"tool_call_id": tcid, "tool_name": tname, "tool_input": tinput, "tool_output": tc.get("output")}
            if tc.get("is_error"):
                data["is_error"] = True
            await active.emit(end, data)
            calls.append({"id": tcid, "name": tname, "input": tinput, "output": tc.get("output"),
                          **({"is_error": True} if tc.get("is_error") else {})})

        reply = self._reply(prompt)
        if self.mode == "streaming":
            for chunk in _split_chunks(reply, self.chunks):
                await _sleep_or_cancel(active, self.chunk_delay_ms)
                await active.emit("message_streamed", {"content": chunk, "delta": chunk})
        await _sleep_or_cancel(active, 0)
        await active.emit("message_received", {"content": reply, "role": "assistant"})
        await active.emit("token_usage_updated", {**self.usage,
                                                  "total_tokens": self.usage["input_tokens"] + self.usage["output_tokens"]})
        done: dict[str, Any] = {"stop_reason": "end_turn", "token_usage": dict(self.usage), "num_turns": 1,
                                "duration_ms": int((time.monotonic() - t0) * 1000)}
        if self.total_cost_usd is not None:
            done["total_cost_usd"] = self.total_cost_usd
        await active.emit("run_completed", done)
        return {"output": {"content": reply, "stop_reason": "end_turn", "tool_calls": calls},
                "token_usage": dict(self.usage)}


class ScriptedAdapter(BaseAdapter):
    """Plays one scripted outcome per ``execute`` (the last one repeats once the list runs out).

    Outcomes:
        - a dict: success. ``{"output": {...}, "token_usage": {...}}``, or just the output dict
          (``{"content": "ok"}``);
        - an ``AsmError`` (or any exception): raised — without events unless ``emit_on_error``;
        - ``("sleep", ms, outcome)``: wait ``ms`` (a ``cancel`` interrupts it: ``run_cancelled`` +
          ``AsmError("cancelled")``), then play ``outcome``;
        - a callable ``(run, session) -> outcome`` (may be async).

    ``calls`` lists the run ids executed; ``cancelled`` the run ids that received ``cancel``.
    """

    name = "scripted"

    def __init__(self, outcomes: Sequence[Any] = ({"content": "ok"},), *, name: str | None = None,
                 capabilities: Iterable[Any] | None = None, emit_on_error: bool = False,
                 model: str | None = None, **options: Any) -> None:
        super().__init__(**options)
        if name:
            self.name = name
        if not outcomes:
            raise AsmError("validation_error", "ScriptedAdapter needs at least one outcome")
        self.outcomes = list(outcomes)
        self.emit_on_error = emit_on_error
        self.model = model
        self._caps = _capabilities(capabilities, [("chat", "sampling")])
        self.calls: list[str] = []
        self.cancelled: list[str] = []

    async def capabilities(self) -> list[Capability]:
        return list(self._caps)

    async def cancel(self, run_id: str) -> str:
        res = await super().cancel(run_id)
        self.cancelled.append(run_id)
        return res

    def _next(self) -> Any:
        i = len(self.calls) - 1
        return self.outcomes[min(i, len(self.outcomes) - 1)]

    async def _execute(self, active: ActiveRun, **opts: Any) -> Mapping[str, Any] | AdapterResult:
        self.calls.append(active.run.id)
        outcome = self._next()
        started = False
        while True:
            if callable(outcome) and not isinstance(outcome, (AsmError, BaseException)):
                outcome = outcome(active.run, active.session)
                if asyncio.iscoroutine(outcome):
                    outcome = await outcome
                continue
            if isinstance(outcome, tuple) and len(outcome) == 3 and outcome[0] == "sleep":
                if not started:
                    await self._start(active)
                    started = True
                await _sleep_or_cancel(active, float(outcome[1]))
                outcome = outcome[2]
                continue
            break
        if isinstance(outcome, BaseException):
            if self.emit_on_error and not started:
                await self._start(active)
            raise outcome
        if not isinstance(outcome, Mapping):
            raise AsmError("validation_error", f"Unsupported scripted outcome: {outcome!r}")
        if not started:
            await self._start(active)
        if "output" in outcome or "token_usage" in outcome:
            output = dict(outcome.get("output") or {})
            usage = {**empty_usage(), **dict(outcome.get("token_usage") or {})}
        else:
            output, usage = dict(outcome), empty_usage()
        content = output.get("content")
        if isinstance(content, str):
            await active.emit("message_received", {"content": content, "role": "assistant"})
        if any(usage.values()):
            await active.emit("token_usage_updated", dict(usage))
        await active.emit("run_completed", {"stop_reason": output.get("stop_reason", "end_turn"),
                                            "token_usage": dict(usage)})
        return {"output": output, "token_usage": usage}

    async def _start(self, active: ActiveRun) -> None:
        data = {"model": self.model} if self.model else {}
        await active.emit("run_started", data)
        for m in _input_messages(active.run.input):
            await active.emit("message_sent", m)
