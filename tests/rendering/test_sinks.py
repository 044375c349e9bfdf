"""Sinks and the pipeline (docs/rendering.md)."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest

from asm_nb import config
from asm_nb.core.errors import AsmError
from asm_nb.core.events import Event
from asm_nb.rendering import (
    CallbackSink, CompactRenderer, FileSink, JSONLSink, PassthroughRenderer, PubSubSink, StudioRenderer, TTYSink,
    astream, stream, strip_ansi,
)
from asm_nb.rendering.sinks import jsonl_compact_line, jsonl_full_line

from .events import RID, SID, T0, ev, scenario_events, spec_events


# -- TTYSink -------------------------------------------------------------------------------------

def test_tty_sink_writes_and_never_closes_device():
    dev = io.StringIO()
    sink = TTYSink(dev)
    sink.write("a")
    sink.write_event(ev("run_started"), "b")
    sink.flush()
    sink.close()
    assert dev.getvalue() == "ab" and not dev.closed


def test_tty_sink_defaults_to_current_stdout(capsys):
    sink = TTYSink()
    sink.write("hello")
    assert capsys.readouterr().out == "hello"


# -- FileSink ------------------------------------------------------------------------------------

def test_strip_ansi():
    assert strip_ansi("line one\r\x1b[2Kline two\n") == "line oneline two\n"
    assert strip_ansi("\x1b[0;31mred\x1b[0m \x1b[3A\r\n") == "red \r\n"


def test_file_sink_path_strips_ansi(tmp_path):
    path = tmp_path / "out.txt"
    sink = FileSink(path=path)
    sink.write_event(ev("run_started"), "\x1b[0;34mr+\x1b[0m")
    sink.write(" done\n")
    sink.flush()
    assert path.read_text() == "r+ done\n"
    sink.close()
    assert path.read_text() == "r+ done\n"


def test_file_sink_preopened_io_keeps_content_and_stays_open():
    buf = io.StringIO()
    buf.write("HEADER\n")
    sink = FileSink(io=buf, path="/ignored")
    sink.write("body\n")
    sink.flush()
    sink.close()
    assert buf.getvalue() == "HEADER\nbody\n" and not buf.closed


def test_file_sink_errors(tmp_path):
    with pytest.raises(AsmError) as exc:
        FileSink()
    assert exc.value.code == "validation_error" and exc.value.message == "path or io option is required"
    with pytest.raises(AsmError) as exc:
        FileSink(path=tmp_path / "missing" / "x.txt")
    assert exc.value.message.startswith(f"Failed to open {tmp_path / 'missing' / 'x.txt'}: ")


# -- JSONLSink -----------------------------------------------------------------------------------

def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_jsonl_full(tmp_path):
    path = tmp_path / "e.jsonl"
    sink = JSONLSink(path=path)
    sink.write("ignored text")
    sink.flush()
    assert path.read_text() == ""
    events = spec_events()[:3]
    for e in events:
        sink.write_event(e, "x")
    sink.flush()  # visible before close
    got = lines(path)
    assert [g["type"] for g in got] == ["run_started", "message_streamed", "message_streamed"]
    assert got[0] == {"ts": "2025-01-02T03:04:05.678000Z", "type": "run_started",
                      "data": {"model": "claude-sonnet-4-5-20250929"}, "session_id": SID, "run_id": RID}
    sink.close()


def test_jsonl_full_line_rules():
    line = jsonl_full_line({"type": "run_cancelled", "session_id": "", "run_id": None, "timestamp": "kept-as-is"})
    assert line == {"ts": "kept-as-is", "type": "run_cancelled", "data": {}}
    line = jsonl_full_line({"type": "run_cancelled"})
    assert isinstance(line["ts"], str) and line["ts"].endswith("Z")
    obj = Event.new("run_started", SID, run_id=RID, data={"model": "m"}, timestamp=T0)
    assert jsonl_full_line(obj)["ts"] == "2025-01-02T03:04:05.678000Z"


def test_jsonl_compact(tmp_path):
    path = tmp_path / "c.jsonl"
    sink = JSONLSink(path=path, mode="compact")
    for e in [ev("run_started", {"model": "claude-sonnet-4-5-20250929"}),
              ev("tool_call_started", {"tool_name": "Read"}),
              ev("tool_call_completed", {"tool_name": "Read", "tool_output": "héllo"})]:
        sink.write_event(e, "")
    sink.close()
    got = lines(path)
    assert all(isinstance(g["t"], int) for g in got)
    assert got[0]["e"] == {"t": "rs", "m": "sonnet-4-5"}
    assert got[1]["e"] == {"t": "ts", "n": "Read"}
    assert got[2]["e"] == {"t": "tc", "n": "Read", "l": 6}


@pytest.mark.parametrize("event, expected", [
    (ev("run_started", {}), {"t": "rs"}),
    (ev("message_streamed", {"delta": "é"}), {"t": "ms", "l": 2}),
    (ev("message_streamed", {}), {"t": "ms", "l": 0}),
    (ev("tool_call_completed", {"tool_output": {"a": 1}}), {"t": "tc", "l": 7}),
    (ev("token_usage_updated", {"input_tokens": 5}), {"t": "tu", "i": 5, "o": None}),
    (ev("token_usage_updated", {"input_tokens": 5, "output_tokens": 6, "cost_usd": 0.5}),
     {"t": "tu", "i": 5, "o": 6, "$": 0.5}),
    (ev("token_usage_updated", {"cost_usd": "0.5"}), {"t": "tu", "i": None, "o": None}),
    (ev("message_received", {"content": "x"}), {"t": "mr"}),
    (ev("run_completed", {"stop_reason": "END_TURN"}), {"t": "rc", "sr": "end"}),
    (ev("run_completed", {"stop_reason": ""}), {"t": "rc"}),
    (ev("run_failed", {"error_message": "e" * 130}), {"t": "rf", "x": "e" * 120 + "..."}),
    (ev("error_occurred", {"error_message": "bad"}), {"t": "er", "x": "bad"}),
    (ev("run_cancelled", {}), {"t": "rx"}),
    (ev("policy_violation", {"x": 1}), {"t": "policy_violation"}),
])
def test_jsonl_compact_codes(event, expected):
    assert jsonl_compact_line(event, now_ms=7) == {"t": 7, "e": expected}


def test_jsonl_errors(tmp_path):
    with pytest.raises(AsmError, match="path option is required"):
        JSONLSink()
    with pytest.raises(AsmError, match="Failed to open"):
        JSONLSink(path=tmp_path / "no" / "x.jsonl")
    with pytest.raises(AsmError, match="mode must be full or compact"):
        JSONLSink(path=tmp_path / "x.jsonl", mode="tiny")


# -- CallbackSink --------------------------------------------------------------------------------

def test_callback_sink_validation():
    with pytest.raises(AsmError, match="callback option is required"):
        CallbackSink()
    with pytest.raises(AsmError, match="callback must be a 2-arity function"):
        CallbackSink(lambda e: None)
    with pytest.raises(AsmError, match="callback must be a 2-arity function"):
        CallbackSink("not callable")
    CallbackSink(lambda *args: None)


def test_callback_sink_error_is_logged_and_pipeline_continues(caplog):
    seen = []

    def cb(event, text):
        if event["type"] == "message_streamed":
            raise RuntimeError("boom")
        seen.append(event["type"])

    sink = CallbackSink(cb)
    with caplog.at_level(logging.ERROR):
        stream(spec_events(), renderer=PassthroughRenderer(), sinks=[sink], redact=False)
    assert seen == ["run_started", "message_received", "token_usage_updated", "run_completed"]
    assert sink.error_count == 2 and "boom" in caplog.text


# -- PubSubSink ----------------------------------------------------------------------------------

class FakePubSub:
    def __init__(self, fail_topics=()):
        self.sent = []
        self.fail_topics = set(fail_topics)

    def broadcast(self, topic, message):
        if topic in self.fail_topics:
            raise RuntimeError("down")
        self.sent.append((topic, message))


def test_pubsub_sink_topics_and_counts():
    ps = FakePubSub()
    sink = PubSubSink(ps, scope="run")
    e = ev("run_started")
    sink.write_event(e, "txt")
    assert ps.sent == [(f"asm:session:{SID}:run:{RID}", ("asm_event", SID, e))]
    sink = PubSubSink(ps, topic_fn=lambda e: ["a", "b"], include_iodata=True, message_wrapper="agent_event")
    sink.write_event(e, "txt")
    assert ps.sent[-2:] == [("a", ("agent_event", SID, e, "txt")), ("b", ("agent_event", SID, e, "txt"))]
    assert sink.broadcast_count == 2
    bad = PubSubSink(FakePubSub(fail_topics={"x"}), topic="x")
    bad.write_event(e, "")
    assert (bad.broadcast_count, bad.error_count) == (0, 1)


def test_pubsub_sink_type_scope_and_validation():
    ps = FakePubSub()
    PubSubSink(ps, scope="type", prefix="myapp").write_event(ev("run_started"), "")
    assert ps.sent[0][0] == f"myapp:session:{SID}:type:run_started"
    for kwargs, msg in [({}, "pubsub option is required"),
                        ({"pubsub": ps, "topic": "t", "topic_fn": lambda e: "t"}, "mutually exclusive"),
                        ({"pubsub": ps, "topic_fn": lambda a, b: "t"}, "topic_fn must be a 1-arity function"),
                        ({"pubsub": ps, "scope": "global"}, "scope must be session, run, or type")]:
        with pytest.raises(AsmError, match=msg):
            PubSubSink(**kwargs)


# -- pipeline ------------------------------------------------------------------------------------

def test_stream_end_to_end_types_in_order_and_two_sinks():
    a, b = [], []
    stream(scenario_events(), renderer=PassthroughRenderer(),
           sinks=[CallbackSink(lambda e, t: a.append((e["type"], t))), CallbackSink(lambda e, t: b.append(e["type"]))],
           redact=False)
    assert [x[0] for x in a] == [e["type"] for e in scenario_events()] == b
    assert all(t == "" for _, t in a)


def test_stream_writes_final_text_then_flushes_and_closes(tmp_path):
    path = tmp_path / "o.txt"
    stream(spec_events(), renderer=CompactRenderer(color=True), sinks=[(FileSink, {"path": path})], redact=False)
    assert path.read_text() == "r+ sonnet-4-5 >> Hello world\nmsg Hello world tk:100/20 r-:end\n6 events, 0 tools\n"


def test_stream_empty_input_only_finishes():
    calls = []

    class Probe:
        def write(self, text): calls.append(("write", text))
        def write_event(self, e, t): calls.append(("event",))
        def flush(self): calls.append(("flush",))
        def close(self): calls.append(("close",))

    stream([], renderer=CompactRenderer(color=False), sinks=[Probe()])
    assert calls == [("write", "\n0 events, 0 tools\n"), ("flush",), ("close",)]


def test_stream_exception_still_flushes_and_closes():
    calls = []

    class Probe:
        def write(self, text): pass
        def write_event(self, e, t): raise ValueError("sink broke")
        def flush(self): calls.append("flush")
        def close(self): calls.append("close")

    with pytest.raises(ValueError, match="sink broke"):
        stream(spec_events(), renderer=PassthroughRenderer(), sinks=[Probe()], redact=False)
    assert calls == ["flush", "close"]


def test_stream_construction_error_closes_built_sinks(tmp_path):
    closed = []

    class Closable:
        def write(self, t): pass
        def write_event(self, e, t): pass
        def flush(self): pass
        def close(self): closed.append(True)

    with pytest.raises(AsmError) as exc:
        stream([], renderer=PassthroughRenderer(), sinks=[(Closable, {}), (JSONLSink, {})])
    assert exc.value.code == "validation_error" and "path option is required" in exc.value.message
    assert closed == [True]


def test_astream_async_iterable():
    got = []

    async def gen():
        for e in spec_events():
            yield e

    asyncio.run(astream(gen(), renderer=StudioRenderer(color=False, tty=False),
                        sinks=[CallbackSink(lambda e, t: got.append(t))], redact=False))
    assert "".join(got).startswith("\n  ● claude-sonnet-4-5-20250929 session started\n\n  Hello world")


def test_stream_redacts_by_default():
    pytest.importorskip("asm_nb.persistence.redaction")
    secret = "AKIAIOSFODNN7EXAMPLE"
    events = [ev("message_streamed", {"delta": f"key {secret}", "content": f"key {secret}"})]
    seen = []
    with config.override(redaction_enabled=True):
        stream(events, renderer=StudioRenderer(color=False, tty=False),
               sinks=[CallbackSink(lambda e, t: seen.append((e, t)))])
    assert secret not in seen[0][1] and "[REDACTED]" in seen[0][1]
    assert secret not in json.dumps(seen[0][0]["data"])
    seen.clear()
    stream(events, renderer=StudioRenderer(color=False, tty=False),
           sinks=[CallbackSink(lambda e, t: seen.append(t))], redact=False)
    assert secret in seen[0]
