"""The response side of ``FakeAnthropicServer``: Messages API event streams built programmatically
(``StreamBuilder``, ``text_stream``, ``tool_use_stream``) or read from a recorded ``.sse`` body
(``SSEResponse``), plain JSON answers (``JSONResponse``), and ``fold_stream``, the ``Message`` a
non-streaming request gets. Standard library only.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence


def sse_event(name: str, data: Any) -> bytes:
    """One SSE frame: ``event: <name>\\ndata: <json>\\n\\n`` (compact JSON like the API)."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"event: {name}\ndata: {payload}\n\n".encode("utf-8")


@dataclass
class SSEResponse:
    """A ``text/event-stream`` response body, sent as one HTTP chunk per frame.

    - ``delay``: seconds to wait before each frame (for cancellation and live-view tests);
    - ``cut``: close the connection without the chunked terminator after the last frame (the
      client sees ``RemoteProtocolError``), instead of ending the body cleanly;
    - ``hang``: after the last frame keep the connection open until the client disconnects or the
      server stops (the server's ``disconnects`` counter records a client that went away);
    - ``chunked=False``: send the whole body at once with a ``Content-Length`` (fastest).
    """

    frames: list[bytes]
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    cut: bool = False
    hang: bool = False
    chunked: bool = True

    @classmethod
    def from_bytes(cls, body: bytes, **kw: Any) -> "SSEResponse":
        """Split a raw SSE body into frames (at blank lines); a torn final frame is kept as is."""
        body = body.replace(b"\r\n", b"\n")
        parts = body.split(b"\n\n")
        frames = [p + b"\n\n" for p in parts[:-1] if p.strip()]
        if parts[-1]:
            frames.append(parts[-1])  # no trailing blank line: a torn event, served verbatim
        return cls(frames=frames, **kw)

    @classmethod
    def from_file(cls, path: str | os.PathLike, **kw: Any) -> "SSEResponse":
        """Serve a recorded ``.sse`` file byte for byte."""
        return cls.from_bytes(Path(path).read_bytes(), **kw)

    def body(self) -> bytes:
        return b"".join(self.frames)

    def events(self) -> list[tuple[str | None, Any]]:
        """The frames decoded as ``(event_name, json_data)``; undecodable data stays a string."""
        out = []
        for frame in self.frames:
            name, data_lines = None, []
            for line in frame.decode("utf-8", errors="replace").split("\n"):
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data_lines.append(line[5:].lstrip())
            data: Any = "\n".join(data_lines)
            try:
                data = json.loads(data)
            except ValueError:
                pass
            out.append((name, data))
        return out

    def to_message(self) -> dict[str, Any]:
        """Fold the stream into the ``Message`` object a non-streaming request would return."""
        return fold_stream(self.events())


@dataclass
class JSONResponse:
    """Any JSON response (status, headers, body)."""

    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)



_ids = itertools.count(1)


def _fake_id(prefix: str) -> str:
    return f"{prefix}_fake{next(_ids):08d}"


class StreamBuilder:
    """Build a Messages API event stream for one request.

    Call ``thinking`` / ``text`` / ``tool_use`` for content blocks, then exactly one of ``end``
    (``message_delta`` + ``message_stop``), ``error`` (an in-band ``event: error``), ``cut``
    (connection dropped) or ``stop_without_message_stop`` (clean EOF, no ``message_stop``).
    ``hang()`` keeps the connection open after the last frame (cancellation tests).

    >>> s = StreamBuilder(input_tokens=10).text("Hello").end(output_tokens=3)
    >>> [name for name, _ in s.build().events()][:2]
    ['message_start', 'content_block_start']
    """

    def __init__(self, *, model: str = "claude-haiku-4-5-20251001", message_id: str | None = None,
                 input_tokens: int = 10, output_tokens: int = 1, cache_read_tokens: int = 0,
                 cache_creation_tokens: int = 0, cache_1h_tokens: int = 0, ping: bool = True,
                 delay: float = 0.0, chunked: bool = True) -> None:
        self.model = model
        self.message_id = message_id or _fake_id("msg")
        self.usage = {"input_tokens": int(input_tokens), "cache_creation_input_tokens": int(cache_creation_tokens),
                      "cache_read_input_tokens": int(cache_read_tokens),
                      "cache_creation": {"ephemeral_5m_input_tokens": int(cache_creation_tokens) - int(cache_1h_tokens),
                                         "ephemeral_1h_input_tokens": int(cache_1h_tokens)},
                      "output_tokens": int(output_tokens), "service_tier": "standard"}
        self._frames: list[bytes] = [sse_event("message_start", {
            "type": "message_start",
            "message": {"model": model, "id": self.message_id, "type": "message", "role": "assistant",
                        "content": [], "stop_reason": None, "stop_sequence": None, "usage": self.usage}})]
        self._index = 0
        self._ping = ping
        self._closed = False
        self._cut = False
        self._hang = False
        self._delay = delay
        self._chunked = chunked
        self._headers: dict[str, str] = {}

    # -- content blocks -----------------------------------------------------------------
    def _block(self, start: dict, deltas: Iterable[dict]) -> "StreamBuilder":
        i = self._index
        self._index += 1
        self._frames.append(sse_event("content_block_start",
                                      {"type": "content_block_start", "index": i, "content_block": start}))
        if self._ping and i == 0:
            self._frames.append(sse_event("ping", '{"type": "ping"}'))
        for d in deltas:
            self._frames.append(sse_event("content_block_delta", {"type": "content_block_delta", "index": i,
                                                                  "delta": d}))
        self._frames.append(sse_event("content_block_stop", {"type": "content_block_stop", "index": i}))
        return self

    def text(self, text: str | Sequence[str], *, chunk_size: int | None = None) -> "StreamBuilder":
        """A text block; ``text`` as a list gives the exact deltas, else ``chunk_size`` splits it
        (default: one delta per word)."""
        return self._block({"type": "text", "text": ""},
                           [{"type": "text_delta", "text": c} for c in _chunks(text, chunk_size)])

    def thinking(self, thinking: str | Sequence[str], *, signature: str = "fake-signature",
                 chunk_size: int | None = None) -> "StreamBuilder":
        """A thinking block (``thinking_delta``s then one ``signature_delta``)."""
        deltas = [{"type": "thinking_delta", "thinking": c} for c in _chunks(thinking, chunk_size)]
        deltas.append({"type": "signature_delta", "signature": signature})
        return self._block({"type": "thinking", "thinking": "", "signature": ""}, deltas)

    def tool_use(self, name: str, input: Any = None, *, id: str | None = None, chunks: int = 3,
                 raw_json: str | None = None) -> "StreamBuilder":
        """A ``tool_use`` block whose input arrives as ``input_json_delta`` pieces (the first one
        empty, as the API does). ``raw_json`` sends that text instead (e.g. a truncated object)."""
        text = raw_json if raw_json is not None else json.dumps(input if input is not None else {})
        n = max(1, int(chunks))
        step = max(1, -(-len(text) // n))
        parts = [""] + [text[i:i + step] for i in range(0, len(text), step)]
        return self._block({"type": "tool_use", "id": id or _fake_id("toolu"), "name": name, "input": {}},
                           [{"type": "input_json_delta", "partial_json": p} for p in parts])

    def raw(self, name: str, data: Any) -> "StreamBuilder":
        """Append any frame (``data`` as a str is sent verbatim, e.g. malformed JSON)."""
        self._frames.append(sse_event(name, data))
        return self

    # -- endings ---------------------------------------------------------------------------
    def end(self, stop_reason: str = "end_turn", *, output_tokens: int | None = None,
            usage: Mapping[str, Any] | None = None, repeat_input_usage: bool = True) -> "StreamBuilder":
        """``message_delta`` (stop reason + cumulative usage) and ``message_stop``."""
        u: dict[str, Any] = {}
        if repeat_input_usage:
            u.update({k: self.usage[k] for k in ("input_tokens", "cache_creation_input_tokens",
                                                 "cache_read_input_tokens")})
        u["output_tokens"] = int(output_tokens if output_tokens is not None else max(1, 5 * self._index))
        u.update(dict(usage or {}))
        self._frames.append(sse_event("message_delta", {"type": "message_delta", "delta": {
            "stop_reason": stop_reason, "stop_sequence": None}, "usage": u}))
        self._frames.append(sse_event("message_stop", {"type": "message_stop"}))
        self._closed = True
        return self

    def error(self, error_type: str = "overloaded_error", message: str = "Overloaded") -> "StreamBuilder":
        """An in-band ``event: error`` (the stream ends after it)."""
        self._frames.append(sse_event("error", json.dumps({"type": "error", "error": {
            "type": error_type, "message": message}})))
        self._closed = True
        return self

    def cut(self) -> "StreamBuilder":
        """Drop the connection here (no ``message_stop``, no chunked terminator)."""
        self._cut = True
        self._closed = True
        return self

    def stop_without_message_stop(self) -> "StreamBuilder":
        """End the body cleanly here, without ``message_delta`` / ``message_stop``."""
        self._closed = True
        return self

    def hang(self) -> "StreamBuilder":
        """Keep the connection open after the frames so far, until the client goes away."""
        self._hang = True
        self._closed = True
        return self

    def headers(self, **headers: str) -> "StreamBuilder":
        self._headers.update({k.replace("_", "-"): v for k, v in headers.items()})
        return self

    def build(self) -> SSEResponse:
        return SSEResponse(frames=list(self._frames), headers=dict(self._headers), delay=self._delay,
                           cut=self._cut, hang=self._hang, chunked=self._chunked)


def _chunks(text: str | Sequence[str], size: int | None) -> list[str]:
    if not isinstance(text, str):
        return [str(t) for t in text]
    if size:
        return [text[i:i + size] for i in range(0, len(text), size)] or [""]
    out, cur = [], ""
    for ch in text:
        cur += ch
        if ch == " ":
            out.append(cur)
            cur = ""
    if cur or not out:
        out.append(cur)
    return out


def text_stream(text: str, **kw: Any) -> StreamBuilder:
    """A complete one-text-block answer (``end_turn``)."""
    stop = kw.pop("stop_reason", "end_turn")
    return StreamBuilder(**kw).text(text).end(stop)


def tool_use_stream(name: str, input: Any, *, text: str | None = None, id: str | None = None,
                    **kw: Any) -> StreamBuilder:
    """Optional text, then one ``tool_use`` block; ``stop_reason == "tool_use"``."""
    s = StreamBuilder(**kw)
    if text:
        s.text(text)
    return s.tool_use(name, input, id=id).end("tool_use")


def fold_stream(events: Iterable[tuple[str | None, Any]]) -> dict[str, Any]:
    """Accumulate stream events into a ``Message`` dict (what a non-streaming call returns)."""
    msg: dict[str, Any] = {}
    partial: dict[int, str] = {}
    for name, data in events:
        if not isinstance(data, dict):
            continue
        t = data.get("type", name)
        if t == "message_start":
            msg = copy.deepcopy(data.get("message") or {})
            msg.setdefault("content", [])
        elif t == "content_block_start":
            msg.setdefault("content", []).append(copy.deepcopy(data.get("content_block") or {}))
        elif t == "content_block_delta":
            block = msg["content"][-1]
            d = data.get("delta") or {}
            if d.get("type") == "text_delta":
                block["text"] = block.get("text", "") + d.get("text", "")
            elif d.get("type") == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + d.get("thinking", "")
            elif d.get("type") == "signature_delta":
                block["signature"] = d.get("signature", "")
            elif d.get("type") == "input_json_delta":
                partial[data.get("index", len(msg["content"]) - 1)] = (
                    partial.get(data.get("index", 0), "") + d.get("partial_json", ""))
        elif t == "content_block_stop":
            i = data.get("index", 0)
            if i in partial and i < len(msg.get("content", [])):
                try:
                    msg["content"][i]["input"] = json.loads(partial[i] or "{}")
                except ValueError:
                    pass
        elif t == "message_delta":
            msg.update({k: v for k, v in (data.get("delta") or {}).items()})
            msg.setdefault("usage", {}).update({k: v for k, v in (data.get("usage") or {}).items()
                                                 if v is not None})
    return msg
