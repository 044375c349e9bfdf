"""Runs as OpenTelemetry GenAI spans: live (``attach_otel(genai=True)``, the SDK's in-memory
exporter) and after the fact (``asm otel export`` to an OTLP/HTTP receiver on 127.0.0.1 that
decodes the protobuf body with opentelemetry-proto)."""

from __future__ import annotations

import http.server
import pathlib
import sys
import threading

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as G  # noqa: E402
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402

from asm_nb import config, run_once, telemetry_otel  # noqa: E402

AGENT = [sys.executable, str(pathlib.Path(__file__).parent / "providers" / "fake_acp_agent.py")]
SECRET = "sk-ant-api03-" + "Q7x9" * 12


@pytest.fixture
def genai():
    spans = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(spans))
    telemetry_otel.install(tp, genai=True, capture_content=True)
    try:
        with config.override(telemetry_enabled=True):
            yield spans
    finally:
        telemetry_otel.uninstall()


def _by_name(spans, prefix):
    return [s for s in spans if s.name.startswith(prefix)]


def test_live_acp_run_gives_invoke_agent_chat_and_execute_tool(genai, tmp_path):
    pytest.importorskip("acp")
    (tmp_path / "notes.txt").write_text("remember the milk\n")
    seen_live: list[str] = []

    def on_event(ev):
        if ev["type"] == "message_received":  # the run is still streaming: its tool span is already out
            seen_live.extend(s.name for s in genai.get_finished_spans())

    r = run_once("read", provider="acp", store="memory://", cwd=str(tmp_path), options={"command": AGENT},
                 on_event=on_event)
    assert r.status == "completed"
    assert "execute_tool Read notes.txt" in seen_live and not any(n.startswith("invoke_agent") for n in seen_live)
    finished = genai.get_finished_spans()
    [root] = _by_name(finished, "invoke_agent")
    [chat] = _by_name(finished, "chat")
    [tool] = _by_name(finished, "execute_tool")
    assert root.name == "invoke_agent fake-acp" and root.kind is SpanKind.CLIENT
    a = root.attributes
    assert a[G.GEN_AI_OPERATION_NAME] == "invoke_agent"
    assert a[G.GEN_AI_PROVIDER_NAME] == "acp" and a[G.GEN_AI_SYSTEM] == "acp"
    assert a[G.GEN_AI_AGENT_NAME] == "fake-acp"
    assert a[G.GEN_AI_CONVERSATION_ID] == r.session_id and a["asm.run_id"] == r.run_id
    assert a[G.GEN_AI_USAGE_INPUT_TOKENS] == 40 and a[G.GEN_AI_USAGE_OUTPUT_TOKENS] == 7
    assert tuple(a[G.GEN_AI_RESPONSE_FINISH_REASONS]) == ("end_turn",)
    assert root.status.status_code is StatusCode.OK
    assert chat.attributes[G.GEN_AI_OPERATION_NAME] == "chat"
    assert chat.attributes[G.GEN_AI_USAGE_INPUT_TOKENS] == 40
    assert tool.attributes[G.GEN_AI_OPERATION_NAME] == "execute_tool"
    assert tool.attributes[G.GEN_AI_TOOL_NAME] == "Read notes.txt" and tool.attributes[G.GEN_AI_TOOL_CALL_ID] == "t1"
    assert "remember the milk" in tool.attributes[G.GEN_AI_TOOL_CALL_RESULT]  # capture_content=True
    import json

    assert json.loads(root.attributes["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "read"}]}]
    assert json.loads(chat.attributes["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "notes say: remember the milk"}],
         "finish_reason": "end_turn"}]
    for child in (chat, tool):
        assert child.parent.span_id == root.context.span_id
        assert child.context.trace_id == root.context.trace_id
        assert root.start_time <= child.start_time <= child.end_time <= root.end_time


def test_secrets_are_redacted_in_exported_spans(genai):
    r = run_once(f"echo {SECRET}", provider="shell", store="memory://")
    assert r.status == "completed"
    finished = genai.get_finished_spans()
    [tool] = _by_name(finished, "execute_tool")
    values = [str(v) for s in finished for v in s.attributes.values()]
    values += [str(v) for s in finished for e in s.events for v in e.attributes.values()]
    assert not any(SECRET in v for v in values)
    assert "[REDACTED" in tool.attributes[G.GEN_AI_TOOL_CALL_ARGUMENTS]


def test_failed_run_sets_error_type(genai):
    r = run_once("exit 3", provider="shell", store="memory://")
    assert r.status == "failed"
    [root] = _by_name(genai.get_finished_spans(), "invoke_agent")
    assert root.status.status_code is StatusCode.ERROR
    assert root.attributes["error.type"] == "command_failed"
    [tool] = _by_name(genai.get_finished_spans(), "execute_tool")
    assert tool.status.status_code is StatusCode.ERROR


def test_without_genai_the_asm_run_span_is_unchanged():
    spans = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(spans))
    telemetry_otel.install(tp)
    try:
        with config.override(telemetry_enabled=True):
            run_once("echo hi", provider="shell", store="memory://")
    finally:
        telemetry_otel.uninstall()
    assert [s.name for s in spans.get_finished_spans()] == ["asm.run"]


class _Receiver:
    """An OTLP/HTTP traces receiver on 127.0.0.1: decodes each POST /v1/traces body."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        self.requests: list = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path != "/v1/traces" or self.headers.get("Content-Type") != "application/x-protobuf":
                    self.send_response(404)
                    self.end_headers()
                    return
                req = ExportTraceServiceRequest()
                req.ParseFromString(body)
                outer.requests.append((dict(self.headers), req))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def spans(self) -> list:
        out = []
        for _, req in self.requests:
            for rs in req.resource_spans:
                for ss in rs.scope_spans:
                    out.extend(ss.spans)
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _attrs(span) -> dict:
    out = {}
    for kv in span.attributes:
        v = kv.value
        out[kv.key] = getattr(v, v.WhichOneof("value"))
    return out


def test_asm_otel_export_sends_stored_runs_to_an_otlp_http_receiver(tmp_path, capsys):
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    from asm_nb.cli import main
    from asm_nb.stores import open_store

    store = str(tmp_path / ".asm")
    r1 = run_once(f"echo {SECRET}", provider="shell", store=store, session="one")
    r2 = run_once("echo two", provider="shell", store=store, session="two")
    rx = _Receiver()
    try:
        assert main(["otel", "export", "--store", store, "--endpoint", rx.url, "--session", r1.session_id,
                     "--capture-content", "--header", "x-team=asm", "--json"]) == 0
        got = rx.spans()
        headers = rx.requests[0][0]
    finally:
        rx.close()
    out = capsys.readouterr().out
    assert '"runs": 1' in out and '"spans": 2' in out
    assert headers.get("x-team") == "asm"
    assert sorted(s.name for s in got) == ["execute_tool bash", "invoke_agent shell"]  # a shell is no model: no chat
    root = next(s for s in got if s.name.startswith("invoke_agent"))
    tool = next(s for s in got if s.name.startswith("execute_tool"))
    ra, ta = _attrs(root), _attrs(tool)
    assert ra["gen_ai.operation.name"] == "invoke_agent" and ra["gen_ai.conversation.id"] == r1.session_id
    assert ra["asm.run_id"] == r1.run_id and ra["asm.status"] == "completed"
    assert ta["gen_ai.operation.name"] == "execute_tool" and ta["gen_ai.tool.name"] == "bash"
    assert tool.parent_span_id == root.span_id and tool.trace_id == root.trace_id
    assert SECRET not in str(got)
    # the spans carry the stored times, not the export time
    run = open_store(store).get_run(r1.run_id)
    assert abs(root.start_time_unix_nano - int(run.started_at.timestamp() * 1e9)) < 2_000_000
    assert r2.run_id not in str(got)


def test_otel_export_bad_input_is_one_line(tmp_path, capsys):
    from asm_nb.cli import main

    store = str(tmp_path / ".asm")
    run_once("echo hi", provider="shell", store=store)
    assert main(["otel", "export", "--store", store, "--since", "yesterday"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "[validation_error]" in err[0] and "--since" in err[0]
    assert main(["otel", "export", "--store", store, "--endpoint", "http://127.0.0.1:9/v1/traces",
                 "--timeout", "1"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "[provider_unavailable]" in err[0]
    assert main(["otel", "export", "--store", store, "--session", "ses_nope"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "session_not_found" in err[0]
