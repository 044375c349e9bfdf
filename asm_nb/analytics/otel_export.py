"""Stored runs as OpenTelemetry GenAI traces, after the fact (``asm otel export``).

``export_runs(store, ...)`` replays each selected run's events through
``asm_nb.telemetry_genai.GenAISpans`` (an ``invoke_agent`` span per run with ``chat`` and
``execute_tool`` children, the events' own times) and sends the spans to an OTLP/HTTP endpoint
(``opentelemetry-exporter-otlp-proto-http``, in the ``otel`` extra), or to the tracer provider
given.

>>> export_runs("memory://", endpoint="http://127.0.0.1:4318/v1/traces")  # doctest: +SKIP
{'runs': 0, 'spans': 0, 'endpoint': 'http://127.0.0.1:4318/v1/traces'}
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Sequence

from ..core.errors import AsmError

if TYPE_CHECKING:
    from ..ports import SessionStore, StoreRef

__all__ = ["export_runs", "select_runs", "default_endpoint"]

DEFAULT_ENDPOINT = "http://localhost:4318/v1/traces"
_BATCH = 512


def default_endpoint() -> str:
    """``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, else ``OTEL_EXPORTER_OTLP_ENDPOINT`` + ``/v1/traces``,
    else ``http://localhost:4318/v1/traces`` (the OpenTelemetry defaults)."""
    url = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if url:
        return url
    base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if base:
        return base.rstrip("/") + "/v1/traces"
    return DEFAULT_ENDPOINT


def _since(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise AsmError("validation_error", f"--since must be an ISO date or date-time, got {value!r}") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def select_runs(store: SessionStore, *, run_ids: Sequence[str] | None = None, session_id: str | None = None,
                since: Any = None) -> list[Any]:
    """The runs to export: the given ids, a session's runs, or every run (started at or after
    ``since`` when given), oldest first."""
    cutoff = _since(since)
    if run_ids:
        runs = [store.get_run(r) for r in run_ids]
    elif session_id:
        store.get_session(session_id)  # session_not_found: one clear line
        runs = list(store.list_runs(session_id))
    else:
        runs = [r for s in store.list_sessions() for r in store.list_runs(s.id)]
    if cutoff is not None:
        runs = [r for r in runs if r.started_at is not None and
                (r.started_at if r.started_at.tzinfo else r.started_at.replace(tzinfo=timezone.utc)) >= cutoff]
    return sorted(runs, key=lambda r: (r.started_at, r.id))


def export_runs(store: StoreRef, *, run_ids: Sequence[str] | None = None, session_id: str | None = None,
                since: Any = None, endpoint: str | None = None, tracer_provider: Any = None,
                capture_content: bool = False, headers: dict[str, str] | None = None,
                timeout_s: float = 10.0) -> dict[str, Any]:
    """Export stored runs as GenAI spans. With ``tracer_provider`` the spans go to it (its
    processors export them); otherwise to the OTLP/HTTP ``endpoint`` (default
    ``default_endpoint()``), and a failed export raises ``AsmError("provider_unavailable")``.
    Returns ``{"runs", "spans", "endpoint"}``."""
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    except ImportError as exc:
        raise AsmError("dependency_not_available",
                       "asm otel export needs the 'otel' extra: pip install 'asm_nb[otel]'") from exc
    from ..stores import resolve_store
    from ..telemetry_genai import GenAISpans, export_events

    st = resolve_store(store)  # a store as is; a path (str or PathLike) / URL opened; None → default
    runs = select_runs(st, run_ids=run_ids, session_id=session_id, since=since)
    memory = None
    provider = tracer_provider
    if provider is None:
        from opentelemetry.sdk.resources import Resource

        memory = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": "asm_nb"}))
        provider.add_span_processor(SimpleSpanProcessor(memory))
    spans = GenAISpans(provider.get_tracer("asm_nb"), capture_content=capture_content)
    sessions: dict[str, Any] = {}
    for run in runs:
        sid = run.session_id
        if sid not in sessions:
            sessions[sid] = st.get_session(sid)
        export_events(spans, run, sessions[sid], st.get_events(sid, run_id=run.id))
    if memory is None:
        return {"runs": len(runs), "spans": None, "endpoint": None}
    finished = list(memory.get_finished_spans())
    url = endpoint or default_endpoint()
    if finished:
        _send(finished, url, headers, timeout_s)
    provider.shutdown()
    return {"runs": len(runs), "spans": len(finished), "endpoint": url}


def _send(spans: list, url: str, headers: dict[str, str] | None, timeout_s: float) -> None:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import SpanExportResult
    except ImportError as exc:
        raise AsmError("dependency_not_available",
                       "OTLP export needs opentelemetry-exporter-otlp-proto-http: pip install 'asm_nb[otel]'") from exc
    import logging

    exporter = OTLPSpanExporter(endpoint=url, headers=headers, timeout=timeout_s)
    # the exporter logs each failed attempt with a traceback; the AsmError below says it once
    log = logging.getLogger("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        for i in range(0, len(spans), _BATCH):
            if exporter.export(spans[i:i + _BATCH]) is not SpanExportResult.SUCCESS:
                raise AsmError("provider_unavailable", f"the OTLP endpoint {url} did not accept the spans "
                                                       "(is a collector listening there?)")
    finally:
        log.setLevel(level)
        exporter.shutdown()
