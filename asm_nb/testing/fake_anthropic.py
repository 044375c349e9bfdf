"""``FakeAnthropicServer``: a loopback HTTP server that speaks the Anthropic Messages API.

Test code that uses the real ``anthropic`` client (or ``asm_nb``'s Claude adapter) offline:
point the client's ``base_url`` at the server, script one response per request, and read back
what the client sent.

    from asm_nb.testing.fake_anthropic import FakeAnthropicServer, StreamBuilder, http_error

    with FakeAnthropicServer() as server:
        server.enqueue(
            StreamBuilder().tool_use("read_file", {"path": "notes.txt"}).end("tool_use"),
            StreamBuilder().text("The notes say hello.").end(),
        )
        client = anthropic.Anthropic(api_key="test", base_url=server.base_url, max_retries=0)
        ...
        server.requests[1].body["messages"]     # the tool_result the client sent back

Responses, served in request order (one per ``POST /v1/messages``):

- a ``StreamBuilder`` (built programmatically: text, thinking, tool_use with ``input_json_delta``,
  usage with cache tokens, a mid-stream ``error`` event, a cut connection, a hung stream);
- ``SSEResponse.from_file(path)``: a recorded ``.sse`` body served byte for byte
  (``cut=True`` drops the connection without the chunked terminator);
- ``http_error(name)``: an HTTP error with the status, headers and JSON body of a recorded API
  error (``"rate_limit_429"``, ``"overloaded_529"``, ``"api_error_500"``, ...; see
  ``HTTP_ERRORS``), or ``http_error(status=..., error_type=..., message=...)``;
- ``JSONResponse``: any status and JSON body;
- a callable ``fn(request) -> response`` for dynamic answers.

Requests whose body lacks ``"stream": true`` get the scripted stream folded into one
``Message`` JSON object. A request with nothing scripted gets HTTP 500 with
``x-should-retry: false`` (so a test never hangs) and is counted in ``unexpected_requests``.
``POST /v1/messages/count_tokens`` answers ``{"input_tokens": <len(body)//4>}``.

The server runs in a background thread on ``127.0.0.1`` with a free port. It is standard library
only (``http.server``), so it can be used without ``anthropic`` installed (e.g. from ``httpx``).
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, Union

__all__ = [
    "FakeAnthropicServer",
    "RecordedRequest",
    "StreamBuilder",
    "SSEResponse",
    "JSONResponse",
    "http_error",
    "sse_event",
    "text_stream",
    "tool_use_stream",
    "HTTP_ERRORS",
]

def _recorded_error(status: int, request_id: str, error_type: str, message: str, *, retry: bool,
                    retry_after: str | None = None, ratelimit: Mapping[str, str] | None = None,
                    details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One recorded API error response: ``{"status", "headers", "body"}``."""
    headers = {"content-type": "application/json", "request-id": request_id}
    if retry_after is not None:
        headers["retry-after"] = retry_after
    headers["x-should-retry"] = "true" if retry else "false"
    headers.update(ratelimit or {})
    error: dict[str, Any] = {"type": error_type, "message": message}
    if details is not None:
        error["details"] = dict(details)
    return {"status": status, "headers": headers, "body": {"type": "error", "error": error, "request_id": request_id}}


# Recorded API error responses (same content as fixtures/providers/anthropic/http_errors.json).
# ``x-should-retry`` is explicit so SDK retry behaviour is deterministic.
HTTP_ERRORS: dict[str, dict[str, Any]] = {
    "overloaded_529": _recorded_error(529, "req_011Cf6ynFvWiA22xme6yzKBp", "overloaded_error", "Overloaded", retry=True),
    "rate_limit_429": _recorded_error(
        429, "req_011CEXZdzUJseJKDsHgK3dFB", "rate_limit_error",
        "This request would exceed the rate limit for your organization of 50 requests per minute. "
        "For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the response "
        "headers for current usage. Please reduce the prompt length or the maximum tokens requested, "
        "or try again later.", retry=True,
        retry_after="3",
        ratelimit={"anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "0",
                   "anthropic-ratelimit-requests-reset": "2025-11-24T07:00:03Z",
                   "anthropic-ratelimit-output-tokens-limit": "8000",
                   "anthropic-ratelimit-output-tokens-remaining": "0",
                   "anthropic-ratelimit-output-tokens-reset": "2025-11-24T07:00:03Z"}),
    "invalid_request_400": _recorded_error(400, "req_011Cqnudn1KA83EmdJ7NWVed", "invalid_request_error",
                                           "messages.1.content.0.tool_use.id: Field required", retry=False),
    "authentication_401": _recorded_error(401, "req_011CNFYhhJVrnNRPYMyoAhIk", "authentication_error",
                                          "invalid x-api-key", retry=False),
    "not_found_404": _recorded_error(404, "req_011CUfULlbxVUEcfSPwD6MuU", "not_found_error",
                                     "model: claude-sonnet-9", retry=False),
    "request_too_large_413": _recorded_error(413, "req_011C9eDOBuYJ1mJSbctN61KW", "request_too_large",
                                             "Request exceeds the maximum allowed number of bytes.", retry=False),
    "api_error_500": _recorded_error(500, "req_011COyxFa8hiGou62VpMGi70", "api_error", "Internal server error",
                                     retry=True),
    "spend_limit_429": _recorded_error(
        429, "req_011CcJNCiAdgKQH7ozix6ETH", "rate_limit_error",
        "You have reached your specified API usage limits. You will regain access on 2025-12-01 at 00:00 UTC.",
        retry=False, details={"error_code": "enforced_spend_limit_reached"}),
}

_STATUS_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
                       403: "permission_error", 404: "not_found_error", 413: "request_too_large",
                       429: "rate_limit_error", 500: "api_error", 504: "timeout_error", 529: "overloaded_error"}


# ---------------------------------------------------------------------------------------------
# Recorded requests
# ---------------------------------------------------------------------------------------------

@dataclass
class RecordedRequest:
    """One request the server received: ``body`` is the parsed JSON (``None`` if it was not JSON),
    ``headers`` a dict with lower-cased names."""

    index: int
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw_body: bytes = b""

    @property
    def messages(self) -> list:
        """``body["messages"]`` (``[]`` when absent)."""
        return list((self.body or {}).get("messages") or []) if isinstance(self.body, dict) else []

    def tool_results(self) -> list[dict]:
        """Every ``tool_result`` block in the request's messages, in order."""
        out = []
        for m in self.messages:
            content = m.get("content") if isinstance(m, dict) else None
            if isinstance(content, list):
                out.extend(b for b in content if isinstance(b, dict) and b.get("type") == "tool_result")
        return out


# ---------------------------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------------------------

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


def http_error(name: str | None = None, *, status: int | None = None, error_type: str | None = None,
               message: str | None = None, headers: Mapping[str, str] | None = None,
               retry_after_ms: int | None = None, should_retry: bool | None = None) -> JSONResponse:
    """An API error response: a recorded one by ``name`` (keys of ``HTTP_ERRORS``), or built from
    ``status`` / ``error_type`` / ``message``. ``retry_after_ms`` sets ``retry-after-ms`` (and drops
    ``retry-after``) so SDK retries stay fast; ``should_retry`` sets ``x-should-retry``."""
    if name is not None:
        if name not in HTTP_ERRORS:
            raise KeyError(f"unknown recorded error {name!r}; known: {sorted(HTTP_ERRORS)}")
        tpl = copy.deepcopy(HTTP_ERRORS[name])
        st, hdrs, body = tpl["status"], tpl["headers"], tpl["body"]
        if error_type:
            body["error"]["type"] = error_type
        if message:
            body["error"]["message"] = message
    else:
        st = int(status or 500)
        rid = f"req_fake_{st}"
        hdrs = {"content-type": "application/json", "request-id": rid}
        body = {"type": "error", "error": {"type": error_type or _STATUS_ERROR_TYPES.get(st, "api_error"),
                                           "message": message or f"Fake error {st}"}, "request_id": rid}
    if retry_after_ms is not None:
        hdrs.pop("retry-after", None)
        hdrs["retry-after-ms"] = str(int(retry_after_ms))
    if should_retry is not None:
        hdrs["x-should-retry"] = "true" if should_retry else "false"
    hdrs.update(dict(headers or {}))
    return JSONResponse(body=body, status=st, headers=hdrs)


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


Response = Union[StreamBuilder, SSEResponse, JSONResponse, Callable[[RecordedRequest], Any]]


# ---------------------------------------------------------------------------------------------
# Server
# ---------------------------------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    @property
    def _fake(self) -> "FakeAnthropicServer":
        """The FakeAnthropicServer this request belongs to (its queue and request log)."""
        server = self.server
        assert isinstance(server, _Server)
        return server.fake

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        self._record(b"")
        self._send_json(JSONResponse({"type": "error", "error": {"type": "not_found_error",
                                                                 "message": f"Not found: {self.path}"}}, 404))

    def do_POST(self) -> None:
        n = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(n) if n else b""
        req = self._record(raw)
        fake = self._fake
        path = self.path.split("?", 1)[0].rstrip("/")
        if path.endswith("/v1/messages/count_tokens"):
            self._send_json(JSONResponse({"input_tokens": max(1, len(raw) // 4)}))
            return
        if not path.endswith("/v1/messages"):
            self._send_json(JSONResponse({"type": "error", "error": {"type": "not_found_error",
                                                                     "message": f"Not found: {self.path}"}}, 404))
            return
        resp = fake._next_response(req)
        if callable(resp) and not isinstance(resp, (StreamBuilder, SSEResponse, JSONResponse)):
            resp = resp(req)
        if isinstance(resp, StreamBuilder):
            resp = resp.build()
        if isinstance(resp, JSONResponse):
            self._send_json(resp)
        elif isinstance(resp, SSEResponse):
            if isinstance(req.body, dict) and not req.body.get("stream"):
                self._send_json(JSONResponse(resp.to_message(), resp.status, {
                    k: v for k, v in resp.headers.items() if k.lower() != "content-type"}))
            else:
                self._send_sse(resp)
        else:
            self._send_json(JSONResponse({"type": "error", "error": {
                "type": "api_error", "message": f"FakeAnthropicServer: bad scripted response {resp!r}"}}, 500,
                {"x-should-retry": "false"}))

    def _record(self, raw: bytes) -> RecordedRequest:
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        fake = self._fake
        with fake._lock:
            req = RecordedRequest(index=len(fake.requests), method=self.command, path=self.path,
                                  headers={k.lower(): v for k, v in self.headers.items()}, body=body, raw_body=raw)
            fake.requests.append(req)
            fake._cond.notify_all()
        return req

    def _request_id(self) -> str:
        return f"req_fake{len(self._fake.requests):06d}"

    def _send_json(self, resp: JSONResponse) -> None:
        data = json.dumps(resp.body).encode("utf-8")
        self.send_response(resp.status)
        headers = {"content-type": "application/json", "request-id": self._request_id(), **resp.headers}
        for k, v in headers.items():
            if k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _send_sse(self, resp: SSEResponse) -> None:
        fake = self._fake
        self.send_response(resp.status)
        headers = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache",
                   "request-id": self._request_id(), **resp.headers}
        for k, v in headers.items():
            if k.lower() not in ("content-length", "transfer-encoding"):
                self.send_header(k, v)
        try:
            if not resp.chunked and not resp.delay and not resp.hang:
                body = resp.body()
                # a cut body promises more bytes than it sends: the client sees the socket close early
                self.send_header("Content-Length", str(len(body) + (64 if resp.cut else 0)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
            else:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for frame in resp.frames:
                    if resp.delay and fake._stopping.wait(resp.delay):
                        break
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
                    self.wfile.flush()
                if resp.hang:
                    self._hold_open()
                    return
                if not resp.cut:
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            with fake._lock:
                fake.disconnects += 1
                fake._cond.notify_all()
            self.close_connection = True
            return
        if resp.cut:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _hold_open(self) -> None:
        """Wait until the client closes its side (counted in ``disconnects``) or the server stops."""
        fake = self._fake
        self.close_connection = True
        while not fake._stopping.is_set():
            try:
                readable, _, _ = select.select([self.connection], [], [], 0.05)
            except (OSError, ValueError):
                readable = [self.connection]
            if readable:
                try:
                    data = self.connection.recv(1024)
                except OSError:
                    data = b""
                if not data:
                    with fake._lock:
                        fake.disconnects += 1
                        fake._cond.notify_all()
                    return


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: "FakeAnthropicServer"


class FakeAnthropicServer:
    """A Messages API server on ``127.0.0.1`` (free port) in a background thread.

    ``responses`` (or later ``enqueue(...)``) are served one per ``POST /v1/messages`` in order;
    ``default`` (optional) answers every request once the queue is empty. Use as a context
    manager, or call ``start()`` / ``stop()``.

    Attributes: ``base_url`` (give it to ``anthropic.Anthropic(base_url=...)``), ``requests``
    (``RecordedRequest`` list, in arrival order), ``disconnects`` (clients that dropped a hung or
    still-streaming response), ``unexpected_requests`` (requests with nothing scripted).
    """

    def __init__(self, responses: Iterable[Response] = (), *, default: Response | None = None) -> None:
        self._queue: list[Response] = list(responses)
        self.default = default
        self.requests: list[RecordedRequest] = []
        self.disconnects = 0
        self.unexpected_requests = 0
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> "FakeAnthropicServer":
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="FakeAnthropicServer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; hung responses are released."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    close = stop

    def __enter__(self) -> "FakeAnthropicServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeAnthropicServer is not running; call start() or use it as a context manager")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` (the client appends ``/v1/messages``)."""
        return f"http://127.0.0.1:{self.port}"

    # -- scripting -----------------------------------------------------------------------------
    def enqueue(self, *responses: Response) -> "FakeAnthropicServer":
        """Append responses to serve, in order."""
        with self._lock:
            self._queue.extend(responses)
        return self

    def enqueue_files(self, *paths: str | os.PathLike, **kw: Any) -> "FakeAnthropicServer":
        """Append recorded ``.sse`` files (``kw`` as for ``SSEResponse``)."""
        return self.enqueue(*(SSEResponse.from_file(p, **kw) for p in paths))

    @property
    def pending(self) -> int:
        """Scripted responses not served yet."""
        with self._lock:
            return len(self._queue)

    def _next_response(self, req: RecordedRequest) -> Response:
        with self._lock:
            if self._queue:
                return self._queue.pop(0)
            if self.default is not None:
                return self.default
            self.unexpected_requests += 1
        return JSONResponse({"type": "error", "error": {
            "type": "api_error",
            "message": f"FakeAnthropicServer: no scripted response for request #{req.index}"}}, 500,
            {"x-should-retry": "false"})

    # -- waiting ---------------------------------------------------------------------------
    def wait_for_requests(self, n: int, timeout: float = 5.0) -> bool:
        """Block until at least ``n`` requests arrived (True) or ``timeout`` seconds passed (False)."""
        return self._wait_until(lambda: len(self.requests) >= n, timeout)

    def wait_for_disconnects(self, n: int = 1, timeout: float = 5.0) -> bool:
        """Block until at least ``n`` clients dropped a streaming response (True) or timeout (False)."""
        return self._wait_until(lambda: self.disconnects >= n, timeout)

    def _wait_until(self, done: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not done():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True
