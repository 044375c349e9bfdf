"""FakeAnthropicServer: the public loopback fake of the Messages API, checked with the real
``anthropic`` client and with raw HTTP."""

from __future__ import annotations

import http.client
import json
import threading

import anthropic
import pytest

from asm_nb.testing.fake_anthropic import (HTTP_ERRORS, FakeAnthropicServer, JSONResponse, SSEResponse,
                                           StreamBuilder, http_error, text_stream, tool_use_stream)

MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture
def server():
    with FakeAnthropicServer() as s:
        yield s


def client(server, **kw) -> anthropic.Anthropic:
    kw.setdefault("max_retries", 0)
    return anthropic.Anthropic(api_key="k", base_url=server.base_url, **kw)


def raw_post(server, path="/v1/messages", body=None) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    data = json.dumps(body if body is not None else {"stream": True, "messages": MSG}).encode()
    conn.request("POST", path, body=data, headers={"content-type": "application/json"})
    resp = conn.getresponse()
    payload = resp.read()
    headers = {k.lower(): v for k, v in resp.getheaders()}
    conn.close()
    return resp.status, headers, payload


@pytest.mark.parametrize("name", ["simple_text.sse", "multi_tool.turn1.sse", "thinking.sse", "large_usage_cache.sse",
                                  "malformed_json.sse", "max_tokens_incomplete_tool.sse",
                                  "error_overloaded_midstream.sse", "truncated_midevent.sse"])
def test_fixture_files_are_served_byte_for_byte(server, fixtures_dir, name):
    path = fixtures_dir / "anthropic" / name
    server.enqueue(SSEResponse.from_file(path))
    status, headers, body = raw_post(server)
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    assert headers["request-id"].startswith("req_")
    assert body == path.read_bytes()


def test_real_client_streams_a_fixture_and_requests_are_recorded(server, fixtures_dir):
    server.enqueue_files(fixtures_dir / "anthropic" / "simple_text.sse")
    c = client(server)
    with c.messages.stream(model="claude-haiku-4-5", max_tokens=50, messages=MSG, system="S") as stream:
        final = stream.get_final_message()
    assert final.content[0].text.startswith("The capital of France is **Paris**")
    assert final.usage.output_tokens == 31 and final.stop_reason == "end_turn"
    req = server.requests[0]
    assert req.method == "POST" and req.path == "/v1/messages"
    assert req.body["model"] == "claude-haiku-4-5" and req.body["system"] == "S" and req.body["stream"] is True
    assert req.headers["authorization"] == "Bearer k" and "anthropic-version" in req.headers
    assert req.messages == MSG


def test_stream_builder_content_blocks_round_trip(server):
    server.enqueue(StreamBuilder(model="claude-opus-4-6", input_tokens=100, cache_read_tokens=80,
                                 cache_creation_tokens=20, cache_1h_tokens=5)
                   .thinking("Let me think.", signature="sig")
                   .text("Reading the file.")
                   .tool_use("read_file", {"path": "a.txt", "n": [1, 2]}, id="toolu_x", chunks=4)
                   .end("tool_use", output_tokens=42))
    with client(server).messages.stream(model="m", max_tokens=10, messages=MSG) as stream:
        final = stream.get_final_message()
    kinds = [b.type for b in final.content]
    assert kinds == ["thinking", "text", "tool_use"]
    assert final.content[0].thinking == "Let me think." and final.content[0].signature == "sig"
    assert final.content[1].text == "Reading the file."
    assert final.content[2].id == "toolu_x" and final.content[2].input == {"path": "a.txt", "n": [1, 2]}
    assert final.stop_reason == "tool_use" and final.model == "claude-opus-4-6"
    u = final.usage
    assert (u.input_tokens, u.output_tokens, u.cache_read_input_tokens, u.cache_creation_input_tokens) == (100, 42, 80, 20)
    assert u.cache_creation.ephemeral_1h_input_tokens == 5 and u.cache_creation.ephemeral_5m_input_tokens == 15


def test_text_is_split_into_deltas():
    events = StreamBuilder().text("one two three").end().build().events()
    deltas = [d["delta"]["text"] for n, d in events if n == "content_block_delta"]
    assert deltas == ["one ", "two ", "three"]
    exact = StreamBuilder().text(["a", "b"]).end().build().events()
    assert [d["delta"]["text"] for n, d in exact if n == "content_block_delta"] == ["a", "b"]
    tool = StreamBuilder().tool_use("t", {"k": "v"}, chunks=3).end("tool_use").build().events()
    parts = [d["delta"]["partial_json"] for n, d in tool if n == "content_block_delta"]
    assert parts[0] == "" and json.loads("".join(parts)) == {"k": "v"}


def test_non_streaming_request_gets_the_folded_message(server):
    server.enqueue(tool_use_stream("get_weather", {"city": "Paris"}, text="Checking."))
    msg = client(server).messages.create(model="m", max_tokens=10, messages=MSG)
    assert [b.type for b in msg.content] == ["text", "tool_use"]
    assert msg.content[1].input == {"city": "Paris"} and msg.stop_reason == "tool_use"


def test_http_errors_match_the_recorded_fixture(fixtures_dir):
    recorded = json.loads((fixtures_dir / "anthropic" / "http_errors.json").read_text())
    assert {e["name"] for e in recorded} == set(HTTP_ERRORS)
    for e in recorded:
        mine = HTTP_ERRORS[e["name"]]
        assert (mine["status"], mine["headers"], mine["body"]) == (e["status"], e["headers"], e["body"])


@pytest.mark.parametrize("name,exc", [("rate_limit_429", anthropic.RateLimitError),
                                      ("overloaded_529", anthropic.InternalServerError),
                                      ("authentication_401", anthropic.AuthenticationError),
                                      ("invalid_request_400", anthropic.BadRequestError),
                                      ("spend_limit_429", anthropic.RateLimitError)])
def test_http_errors_raise_the_sdk_exception(server, name, exc):
    server.enqueue(http_error(name))
    with pytest.raises(exc) as ei:
        client(server).messages.create(model="m", max_tokens=10, messages=MSG, stream=True)
    assert ei.value.status_code == HTTP_ERRORS[name]["status"]
    assert ei.value.body == HTTP_ERRORS[name]["body"]


def test_retry_headers_make_sdk_retries_fast_and_observable(server):
    server.enqueue(http_error("rate_limit_429", retry_after_ms=1), http_error(status=500, retry_after_ms=1),
                   text_stream("ok"))
    events = list(client(server, max_retries=2).messages.create(model="m", max_tokens=5, messages=MSG, stream=True))
    assert events[-1].type == "message_stop"
    assert [r.headers["x-stainless-retry-count"] for r in server.requests] == ["0", "1", "2"]
    custom = http_error(status=503, message="down", should_retry=False)
    assert custom.status == 503 and custom.body["error"] == {"type": "api_error", "message": "down"}
    assert custom.headers["x-should-retry"] == "false"


def test_mid_stream_error_event(server):
    server.enqueue(StreamBuilder().text("partial").error("overloaded_error", "Overloaded"))
    with pytest.raises(anthropic.APIStatusError) as ei:
        list(client(server).messages.create(model="m", max_tokens=5, messages=MSG, stream=True))
    assert ei.value.body["error"]["type"] == "overloaded_error"


def test_cut_stream_raises_protocol_error(server):
    server.enqueue(StreamBuilder().text("partial").cut())
    with pytest.raises(Exception) as ei:
        list(client(server).messages.create(model="m", max_tokens=5, messages=MSG, stream=True))
    assert "RemoteProtocolError" in {c.__name__ for c in type(ei.value).__mro__}


def test_clean_eof_without_message_stop(server):
    server.enqueue(StreamBuilder().text("partial").stop_without_message_stop())
    events = list(client(server).messages.create(model="m", max_tokens=5, messages=MSG, stream=True))
    assert [e.type for e in events][-1] == "content_block_stop"


def test_hung_stream_counts_the_client_disconnect(server):
    server.enqueue(StreamBuilder().text("partial").hang())
    stream = client(server).messages.create(model="m", max_tokens=5, messages=MSG, stream=True)
    it = iter(stream)
    assert next(it).type == "message_start"
    stream.close()
    assert server.wait_for_disconnects(1, timeout=5)


def test_stop_releases_a_hung_stream():
    server = FakeAnthropicServer([StreamBuilder().text("x").hang()]).start()
    got = []

    def consume():
        try:
            for ev in client(server).messages.create(model="m", max_tokens=5, messages=MSG, stream=True):
                got.append(ev.type)
        except Exception as exc:
            got.append(type(exc).__name__)

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    assert server.wait_for_requests(1, timeout=5)
    server.stop()
    t.join(10)
    assert not t.is_alive() and got[0] == "message_start"


def test_unscripted_requests_fail_fast_and_are_counted(server):
    with pytest.raises(anthropic.InternalServerError) as ei:
        client(server, max_retries=2).messages.create(model="m", max_tokens=5, messages=MSG, stream=True)
    assert "no scripted response" in str(ei.value)
    assert server.unexpected_requests == 1 and len(server.requests) == 1  # x-should-retry: false


def test_default_callable_json_and_other_paths(server):
    server.default = lambda req: text_stream(f"echo {req.messages[-1]['content']}")
    server.enqueue(JSONResponse({"type": "error", "error": {"type": "api_error", "message": "x"}}, status=418,
                                headers={"x-should-retry": "false"}))
    with pytest.raises(anthropic.APIStatusError):
        client(server).messages.create(model="m", max_tokens=5, messages=MSG, stream=True)
    with client(server).messages.stream(model="m", max_tokens=5, messages=[{"role": "user", "content": "yo"}]) as s:
        assert s.get_final_text() == "echo yo"
    assert server.pending == 0
    status, _, body = raw_post(server, "/v1/messages/count_tokens", {"messages": MSG})
    assert status == 200 and json.loads(body)["input_tokens"] > 0
    status, _, _ = raw_post(server, "/v1/other")
    assert status == 404
    assert not server.wait_for_requests(99, timeout=0.05)


def test_not_running_has_no_base_url():
    with pytest.raises(RuntimeError):
        FakeAnthropicServer().base_url


def test_reexport_from_asm_nb_testing():
    testing = pytest.importorskip("asm_nb.testing")
    if not hasattr(testing, "FakeAnthropicServer"):
        pytest.skip("asm_nb.testing does not re-export FakeAnthropicServer yet")
    assert testing.FakeAnthropicServer is FakeAnthropicServer
