"""OpenTelemetry export of the telemetry bus, checked with the SDK's in-memory exporter and reader."""

from __future__ import annotations

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.trace import StatusCode  # noqa: E402

import asm_nb  # noqa: E402
from asm_nb import config, telemetry, telemetry_otel  # noqa: E402
from asm_nb.stores import open_store  # noqa: E402
from asm_nb.testing import MockAdapter  # noqa: E402


@pytest.fixture
def otel():
    spans = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    mp = MeterProvider(metric_readers=[reader])
    telemetry_otel.install(tp, mp)
    try:
        with config.override(telemetry_enabled=True):
            yield spans, reader
    finally:
        telemetry_otel.uninstall()


def metric_points(reader) -> dict[str, list]:
    out: dict[str, list] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                out.setdefault(m.name, []).extend(m.data.data_points)
    return out


def test_a_run_becomes_a_span_with_events_and_metrics(otel):
    spans, reader = otel
    store = open_store("memory://")
    adapter = MockAdapter(mode="streaming", chunks=3, chunk_delay_ms=0,
                          tool_calls=[{"name": "Read", "input": {"path": "x"}, "output": "ok"}])
    r = asm_nb.run_once("hello", provider=adapter, store=store)
    assert r.ok
    [span] = [s for s in spans.get_finished_spans() if s.name == "asm.run"]
    a = span.attributes
    assert a["asm.run_id"] == r.run_id and a["asm.session_id"] == r.session_id
    assert a["asm.status"] == "completed" and a["asm.provider"] == "mock"
    assert a["asm.input_tokens"] == 10 and a["asm.output_tokens"] == 20
    assert span.status.status_code == StatusCode.OK
    names = [e.name for e in span.events]
    assert names[0] == "run_started" and names.count("message_streamed") == 3 and "tool_call_started" in names
    tool = [e for e in span.events if e.name == "tool_call_started"][0]
    assert tool.attributes["tool_name"] == "Read"
    pts = metric_points(reader)
    assert sum(p.value for p in pts["asm.runs"]) == 1
    assert {dict(p.attributes)["kind"]: p.value for p in pts["asm.tokens"]} == {"input": 10, "output": 20}
    assert pts["asm.run.duration"][0].count == 1
    assert sum(p.value for p in pts["asm.events.persisted"]) >= len(r.events)


def test_a_failed_run_sets_error_status(otel):
    spans, reader = otel
    r = asm_nb.run_once("x", provider=MockAdapter(mode="failing"), store=open_store("memory://"))
    assert r.status == "failed"
    [span] = [s for s in spans.get_finished_spans() if s.name == "asm.run"]
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["asm.error_code"] == "provider_error" and span.attributes["asm.status"] == "failed"
    statuses = {dict(p.attributes)["status"]: p.value for p in metric_points(reader)["asm.runs"]}
    assert statuses == {"failed": 1}


def test_disabled_telemetry_exports_nothing_and_uninstall_detaches(otel):
    spans, _ = otel
    with config.override(telemetry_enabled=False):
        asm_nb.run_once("x", provider=MockAdapter(), store=open_store("memory://"))
    assert spans.get_finished_spans() == ()
    telemetry_otel.uninstall()
    assert not [h for h in telemetry.list_handlers() if h["id"] == telemetry_otel.HANDLER_ID]
    asm_nb.run_once("x", provider=MockAdapter(), store=open_store("memory://"))
    assert spans.get_finished_spans() == ()
