"""Claude stream mapping: one streamed Messages API request folded into content blocks, each raw SSE
event mapped to the normalized streaming events (docs/providers.md, Claude), plus the run state the
tool loop carries across requests and the cancellation helpers a turn is read under.

``_Turn.handle`` dispatches on the raw event's type (``_ON``): ``message_start`` (``run_started``
and the input ``message_sent`` events on the run's first request), ``content_block_start`` /
``_delta`` / ``_stop`` (``message_streamed`` per text or thinking delta, ``tool_call_started`` when a
tool_use block's input is complete), ``message_delta`` (stop reason, cumulative usage) and
``message_stop``. Used by ``providers/claude.py``; needs no SDK import.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping

from ..core.usage import CACHE_CREATION_1H_TOKENS, TokenUsage, cache_creation_1h, empty_usage
from ._base import ActiveRun

class _Cancelled(Exception):
    """Internal: the run was cancelled through ``cancel()``."""


class _StreamError(Exception):
    """Internal: wraps an exception raised while reading the SDK stream."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class _Block:
    type: str
    text: list = field(default_factory=list)  # text / thinking pieces
    json_parts: list = field(default_factory=list)
    id: str | None = None
    name: str | None = None
    signature: str = ""
    data: Any = None  # redacted_thinking payload / unknown block dump
    input: Any = None  # parsed tool input (None until parsed; _INCOMPLETE when unparsable)
    stopped: bool = False


_INCOMPLETE = object()


@dataclass
class _RunState:
    model: str
    tools_offered: list[str]
    cwd: Path
    input_messages: list[dict]
    started: bool = False
    usage: dict = field(default_factory=empty_usage)
    tool_calls: list = field(default_factory=list)
    confirmed_model: str | None = None
    message_ids: list = field(default_factory=list)



class _Turn:
    """One streamed request: folds raw events into blocks and emits the streaming events."""

    __slots__ = ("active", "rs", "blocks", "text_parts", "usage", "stop_reason", "message_id", "saw_stop",
                 "reading", "k")

    def __init__(self, active: ActiveRun, rs: _RunState, k: int) -> None:
        self.active = active
        self.rs = rs
        self.k = k
        self.blocks: dict[int, _Block] = {}
        self.text_parts: list[str] = []
        self.usage: dict[str, Any] = {}
        self.stop_reason: str | None = None
        self.message_id: str | None = None
        self.saw_stop = False
        self.reading = False

    async def handle(self, ev: Any) -> None:
        """Fold one raw SSE event (unknown types are ignored)."""
        on = _ON.get(ev.type)
        if on is not None:
            await on(self, ev)

    def text_delta(self, index: Any, text: Any) -> Any:
        """Fold one text delta of block ``index`` and emit its ``message_streamed`` without a
        coroutine (``ActiveRun.stream_delta``): None when done, else an awaitable to await."""
        if not text:
            return None
        self.text_parts.append(text)
        b = self.blocks.get(index)
        if b is not None:
            b.text.append(text)
        return self.active.stream_delta({"content": text, "delta": text})

    async def _block_delta(self, ev: Any) -> None:
        d = ev.delta
        dt = d.type
        if dt == "text_delta":
            res = self.text_delta(ev.index, d.text)
            if res is not None:
                await res
        elif dt == "input_json_delta":
            b = self.blocks.get(ev.index)
            if b is not None:
                b.json_parts.append(d.partial_json or "")
        elif dt == "thinking_delta":
            text = d.thinking
            b = self.blocks.get(ev.index)
            if b is not None:
                b.text.append(text)
            if text:
                await self.active.emit("message_streamed", {"content": text, "delta": text, "kind": "reasoning"})
        elif dt == "signature_delta":
            b = self.blocks.get(ev.index)
            if b is not None:
                b.signature += d.signature or ""
        # citations_delta and future delta types: ignored

    async def _block_start(self, ev: Any) -> None:
        cb = ev.content_block
        bt = cb.type
        b = _Block(type=bt)
        if bt == "text":
            if cb.text:
                b.text.append(cb.text)
                self.text_parts.append(cb.text)
                await self.active.emit("message_streamed", {"content": cb.text, "delta": cb.text})
        elif bt == "tool_use":
            b.id, b.name = cb.id, cb.name
        elif bt == "thinking":
            if cb.thinking:
                b.text.append(cb.thinking)
            b.signature = getattr(cb, "signature", "") or ""
        elif bt == "redacted_thinking":
            b.data = getattr(cb, "data", None)
        else:
            b.data = _dump(cb)
        self.blocks[ev.index] = b

    async def _block_stop(self, ev: Any) -> None:
        b = self.blocks.get(ev.index)
        if b is None or b.stopped:
            return
        b.stopped = True
        if b.type == "tool_use":
            raw = "".join(b.json_parts)
            try:
                parsed = json.loads(raw) if raw.strip() else {}
                b.input = parsed if isinstance(parsed, dict) else {"value": parsed}
                shown = b.input
            except ValueError:
                b.input = _INCOMPLETE
                shown = {}
            await self.active.emit("tool_call_started", {"tool_call_id": b.id, "tool_name": b.name,
                                                         "tool_input": shown})

    async def _message_start(self, ev: Any) -> None:
        msg = ev.message
        self.message_id = msg.id
        self.usage = _dump(msg.usage)
        self.rs.message_ids.append(msg.id)
        if not self.rs.started:
            self.rs.started = True
            self.rs.confirmed_model = msg.model
            await self.active.emit("run_started", {
                "model": msg.model, "model_source": "stream", "configured_model": self.rs.model, "backend": "api",
                "message_id": msg.id, "cwd": str(self.rs.cwd), "tools": list(self.rs.tools_offered)})
            for m in self.rs.input_messages:
                await self.active.emit("message_sent", m)

    async def _message_delta(self, ev: Any) -> None:
        self.stop_reason = getattr(ev.delta, "stop_reason", None) or self.stop_reason
        u = getattr(ev, "usage", None)
        if u is not None:
            self.usage.update(_dump(u))  # cumulative for this request: later fields win

    async def _message_stop(self, ev: Any) -> None:
        self.saw_stop = True

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    def assistant_content(self) -> list[dict]:
        """The assistant message to send back before tool results (thinking blocks included)."""
        out = []
        for i in sorted(self.blocks):
            b = self.blocks[i]
            if b.type == "text":
                txt = "".join(b.text)
                if txt:
                    out.append({"type": "text", "text": txt})
            elif b.type == "thinking":
                out.append({"type": "thinking", "thinking": "".join(b.text), "signature": b.signature})
            elif b.type == "redacted_thinking":
                out.append({"type": "redacted_thinking", "data": b.data})
            elif b.type == "tool_use":
                out.append({"type": "tool_use", "id": b.id, "name": b.name,
                            "input": b.input if isinstance(b.input, dict) else {}})
            elif isinstance(b.data, dict) and b.data.get("type"):
                out.append(b.data)  # server tool blocks etc.: echo as received
        return out

    def tool_blocks(self) -> list[_Block]:
        return [self.blocks[i] for i in sorted(self.blocks) if self.blocks[i].type == "tool_use"]

# raw SSE event type -> the _Turn step that folds it
_ON: dict[str, Callable[[_Turn, Any], Awaitable[None]]] = {
    "content_block_delta": _Turn._block_delta,
    "content_block_start": _Turn._block_start,
    "content_block_stop": _Turn._block_stop,
    "message_start": _Turn._message_start,
    "message_delta": _Turn._message_delta,
    "message_stop": _Turn._message_stop,
}

def _plain_items(stream: Any) -> Callable[[dict], Any] | None:
    """Let an unread SDK stream (``anthropic.AsyncStream``) yield each event as the plain dict it
    parsed from the SSE line, skipping the typed event the SDK builds per event (~10 us, mostly
    pydantic's union validation: more than the rest of a delta's path); returns the function
    that builds, from such a dict, exactly the typed event the SDK would have yielded (the same
    ``_process_response_data`` call), or None when the stream is left as it is: not the SDK's
    stream, already being read, an SDK without these parts, or an item observer attached (the
    SDK's tracing reads typed events). The SDK still reads, decodes and closes the stream and
    raises its errors (``error`` events included)."""
    try:
        from anthropic import AsyncStream
    except ImportError:  # pragma: no cover - the adapter requires the SDK
        return None
    if type(stream) is not AsyncStream or "_iterator" in vars(stream):  # a subclass may read differently
        return None
    cast_to = getattr(stream, "_cast_to", None)
    process = getattr(getattr(stream, "_client", None), "_process_response_data", None)
    response = getattr(stream, "response", None)
    if cast_to is None or cast_to is object or process is None or response is None:
        return None
    try:
        if getattr(stream, "_observer", None) is not None:
            return None
    except Exception:
        return None
    stream._cast_to = object  # the SDK's ``_process_response_data`` returns the parsed dict as is

    def typed(data: dict) -> Any:
        return process(data=data, cast_to=cast_to, response=response)

    return typed


def _dump(obj: Any) -> dict[str, Any]:
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return {k: v for k, v in obj.items() if v is not None}
    dump = getattr(obj, "model_dump", None)
    if dump is not None:
        return dump(exclude_none=True)
    return {k: v for k, v in vars(obj).items() if v is not None}


def normalize_usage(raw: Mapping[str, Any]) -> dict[str, int]:
    """Anthropic usage → the four normalized counters (``input_tokens`` excludes cache, docs/providers.md, token
    usage), plus ``cache_creation_1h_tokens`` when part of the cache writes has a one-hour lifetime
    (priced at its own rate)."""
    d = TokenUsage.from_anthropic(raw).to_dict()
    hour = cache_creation_1h(raw)
    if hour:
        d[CACHE_CREATION_1H_TOKENS] = hour
    return d


async def _partial_usage(active: ActiveRun, rs: _RunState, turn: _Turn) -> None:
    """A request that broke off after ``message_start`` was still billed for its input: report what
    is known (``partial: True``) so usage summed from events stays honest."""
    if not turn.usage or active.terminal_emitted:
        return
    incr = normalize_usage(turn.usage)
    for key, v in incr.items():
        rs.usage[key] = rs.usage.get(key, 0) + v
    await active.emit("token_usage_updated", {
        **incr, "total_tokens": rs.usage["input_tokens"] + rs.usage["output_tokens"], "raw_usage": dict(turn.usage),
        "request_index": turn.k, "message_id": turn.message_id, "partial": True})


async def _interruptible(active: ActiveRun, aw: Any) -> Any:
    """Await ``aw`` unless the run is cancelled first (then cancel it and raise ``_Cancelled``)."""
    task = asyncio.ensure_future(aw)
    if active.cancelled:
        task.cancel()
        raise _Cancelled()
    waiter = asyncio.ensure_future(active.cancel_event.wait())
    try:
        await asyncio.wait((task, waiter), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        waiter.cancel()
        raise
    if task.done():
        waiter.cancel()
        return task.result()
    task.cancel()
    await asyncio.wait((task,), timeout=5)
    raise _Cancelled()


async def _close_stream(stream: Any) -> None:
    try:
        await asyncio.wait_for(stream.close(), 2.0)
    except BaseException:  # best effort: the connection is being dropped anyway
        pass

