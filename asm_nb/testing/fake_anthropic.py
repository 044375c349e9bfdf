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

Split: the responses (stream builder, SSE and JSON bodies, the fold) are in ``_anthropic_sse.py``,
the recorded errors in ``_anthropic_errors.py``; this module keeps the server and the request log
and re-exports every public name.
"""

from __future__ import annotations

import json
import os
import select
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable, Union

from ._anthropic_errors import _STATUS_ERROR_TYPES as _STATUS_ERROR_TYPES
from ._anthropic_errors import HTTP_ERRORS as HTTP_ERRORS
from ._anthropic_errors import _recorded_error as _recorded_error
from ._anthropic_errors import http_error as http_error
from ._anthropic_sse import JSONResponse as JSONResponse
from ._anthropic_sse import SSEResponse as SSEResponse
from ._anthropic_sse import StreamBuilder as StreamBuilder
from ._anthropic_sse import _chunks as _chunks
from ._anthropic_sse import _fake_id as _fake_id
from ._anthropic_sse import fold_stream as fold_stream
from ._anthropic_sse import sse_event as sse_event
from ._anthropic_sse import text_stream as text_stream
from ._anthropic_sse import tool_use_stream as tool_use_stream

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
