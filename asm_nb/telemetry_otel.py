"""Optional OpenTelemetry export of the telemetry bus (``pip install asm_nb[otel]``:
``opentelemetry-sdk``).

``install()`` attaches handlers to the bus of ``asm_nb.telemetry`` and turns its events into
OpenTelemetry data:

- one span ``asm.run`` per run (``run.start`` → ``run.stop`` / ``run.exception``) with the run's
  ids, provider, model, status, token usage and cost as attributes; an exception sets the span
  status to ERROR with ``asm.error_code``;
- each adapter event (``adapter.<type>``) and each router attempt becomes a span event of its
  run's span (numeric data as attributes, plus ``tool_name``);
- metrics: ``asm.runs`` (counter, by status and provider), ``asm.run.duration`` (histogram, ms),
  ``asm.tokens`` (counter, by kind), ``asm.cost_usd`` (counter), ``asm.events.persisted``
  (counter, by type) and ``asm.session_server.queue_length`` (histogram).

Providers default to the global OpenTelemetry ones, so an application that configured an OTLP
exporter gets asm runs in its traces without more code.

With ``genai=True`` the run span follows the OpenTelemetry GenAI conventions instead
(``asm_nb.telemetry_genai``): it is named ``invoke_agent {agent}``, carries the ``gen_ai.*``
attributes next to the ``asm.*`` ones, and gets ``chat {model}`` and ``execute_tool {tool}``
children, live as the run streams (``capture_content=True`` adds redacted tool arguments and
results).

>>> exporter = install()          # doctest: +SKIP
>>> exporter.uninstall()          # doctest: +SKIP
"""

from __future__ import annotations

import threading
from typing import Any, Mapping, TypeGuard

from . import telemetry
from .core.errors import AsmError


__all__ = ["OtelExporter", "install", "uninstall", "HANDLER_ID"]

HANDLER_ID = "asm_otel_exporter"
_P = telemetry.TELEMETRY_PREFIX


def _require() -> None:
    # the extra: only the API is needed here; the SDK provides exporters and readers
    try:
        import opentelemetry.metrics  # noqa: F401
        import opentelemetry.trace  # noqa: F401
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise AsmError("dependency_not_available",
                       "OpenTelemetry export needs the 'otel' extra: pip install 'asm_nb[otel]' (opentelemetry-sdk)"
                       ) from None


def _num(v: object) -> TypeGuard[int | float]:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _attr(v: object) -> str | bool | int | float | None:
    """An OpenTelemetry attribute value (str/bool/int/float), or None to skip it."""
    v = getattr(v, "value", v)
    if isinstance(v, (str, bool, int, float)):
        return v
    return None if v is None else str(v)


def _clean(attrs: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in attrs.items():
        a = _attr(v)
        if a is not None:
            out[k] = a
    return out


def _get(obj: object, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


class OtelExporter:
    """Bridges the asm telemetry bus to an OpenTelemetry tracer and meter."""

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None, *,
                 handler_id: str = HANDLER_ID, genai: bool = False, capture_content: bool = False) -> None:
        _require()
        from opentelemetry import metrics, trace

        self.handler_id = handler_id
        self.tracer = (tracer_provider.get_tracer("asm_nb") if tracer_provider is not None
                       else trace.get_tracer("asm_nb"))
        meter = (meter_provider.get_meter("asm_nb") if meter_provider is not None
                 else metrics.get_meter("asm_nb"))
        self.runs = meter.create_counter("asm.runs", unit="1", description="Runs finished, by status")
        self.duration = meter.create_histogram("asm.run.duration", unit="ms", description="Run duration")
        self.tokens = meter.create_counter("asm.tokens", unit="1", description="Tokens, by kind")
        self.cost = meter.create_counter("asm.cost_usd", unit="USD", description="Run cost")
        self.persisted = meter.create_counter("asm.events.persisted", unit="1", description="Events stored")
        self.queue_length = meter.create_histogram("asm.session_server.queue_length", unit="1",
                                                   description="SessionServer queue length at enqueue/dequeue")
        self._spans: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._attached = False
        self.genai: Any = None
        if genai:
            from .telemetry_genai import GenAISpans

            self.genai = GenAISpans(self.tracer, capture_content=capture_content)

    # -- wiring --------------------------------------------------------------------------------
    def names(self) -> list[tuple]:
        from .core.events import all_types

        names = [_P + ("run", "start"), _P + ("run", "stop"), _P + ("run", "exception"),
                 _P + ("usage", "report"), _P + ("persistence", "event_persisted"),
                 _P + ("router", "attempt", "start"), _P + ("router", "attempt", "stop"),
                 _P + ("router", "attempt", "exception"),
                 _P + ("runtime", "session_server", "queue", "enqueue"),
                 _P + ("runtime", "session_server", "queue", "dequeue")]
        names += [_P + ("adapter", getattr(t, "value", t)) for t in all_types()]
        return names

    def attach(self) -> "OtelExporter":
        telemetry.attach_many(self.handler_id, self.names(), self.handle)
        self._attached = True
        return self

    def uninstall(self) -> None:
        """Detach from the bus and end spans still open."""
        telemetry.detach(self.handler_id)
        self._attached = False
        with self._lock:
            spans, self._spans = self._spans, {}
        if self.genai is not None:
            self.genai.abandon()
            return
        for span in spans.values():
            span.end()

    # -- handler ---------------------------------------------------------------------------------
    def handle(self, name: tuple, measurements: Mapping[str, Any], metadata: Mapping[str, Any], config: Any) -> None:
        kind = name[len(_P):]
        if kind == ("run", "start"):
            self._run_start(measurements, metadata)
        elif kind in (("run", "stop"), ("run", "exception")):
            self._run_end(kind[1], measurements, metadata)
        elif kind[0] == "adapter":
            if self.genai is not None:
                self.genai.event(metadata.get("run_id"), kind[1], metadata.get("event_data") or {},
                                 measurements.get("system_time") if _num(measurements.get("system_time")) else None,
                                 provider=metadata.get("provider"))
            self._span_event(metadata.get("run_id"), kind[1], {
                **{k: v for k, v in measurements.items() if _num(v) and k != "system_time"},
                **({"tool_name": metadata["tool_name"]} if metadata.get("tool_name") is not None else {})})
        elif kind[0] == "router":
            self._span_event(metadata.get("run_id"), "router.attempt." + kind[2], {
                "adapter_id": metadata.get("adapter_id"), "attempt": metadata.get("attempt"),
                "error_code": metadata.get("error_code"),
                **({"duration_ms": measurements["duration"] / 1e6} if _num(measurements.get("duration")) else {})})
        elif kind == ("usage", "report"):
            for k in ("input_tokens", "output_tokens"):
                if _num(measurements.get(k)):
                    self.tokens.add(measurements[k], {"kind": k.split("_")[0]})
            if _num(measurements.get("cost_usd")):
                self.cost.add(measurements["cost_usd"])
        elif kind == ("persistence", "event_persisted"):
            self.persisted.add(1, _clean({"type": metadata.get("type"), "provider": metadata.get("provider")}))
        elif kind[:2] == ("runtime", "session_server"):
            if _num(measurements.get("queue_length")):
                self.queue_length.record(measurements["queue_length"], {"op": kind[-1]})

    def _run_start(self, m: Mapping[str, Any], md: Mapping[str, Any]) -> None:
        run = md.get("run")
        attrs = _clean({"asm.run_id": md.get("run_id"), "asm.session_id": md.get("session_id"),
                        "asm.agent_id": md.get("agent_id"),
                        "asm.provider": _get(run, "provider") or (_get(run, "metadata") or {}).get("provider")})
        start = m.get("system_time") if _num(m.get("system_time")) else None
        run_id = str(md.get("run_id"))
        if self.genai is not None:
            session = md.get("session")
            span = self.genai.start_run(run_id, session_id=md.get("session_id"), provider=attrs.get("asm.provider"),
                                        agent_name=_get(session, "agent_id"), start_ns=start, attributes=attrs)
        else:
            span = self.tracer.start_span("asm.run", attributes=attrs, start_time=start)
        with self._lock:
            old = self._spans.pop(run_id, None)
            self._spans[run_id] = span
        if old is not None:
            old.end()

    def _run_end(self, how: str, m: Mapping[str, Any], md: Mapping[str, Any]) -> None:
        run_id = str(md.get("run_id"))
        with self._lock:
            span = self._spans.pop(run_id, None)
        run = md.get("run")
        provider = _get(run, "provider") or (_get(run, "metadata") or {}).get("provider")
        model = (_get(run, "provider_metadata") or {}).get("model")
        status = _attr(md.get("status")) or ("failed" if how == "exception" else "completed")
        if how == "exception" and md.get("error_code") == "cancelled":
            status = "cancelled"
        attrs = {"asm.status": status, "asm.provider": provider, "asm.model": model}
        for k in ("input_tokens", "output_tokens", "total_tokens", "cost_usd"):
            if _num(m.get(k)):
                attrs[f"asm.{k}"] = m[k]
        labels = _clean({"status": status, "provider": provider})
        self.runs.add(1, labels)
        if _num(m.get("duration")):
            self.duration.record(m["duration"] / 1e6, labels)
        for k in ("input_tokens", "output_tokens"):
            if _num(m.get(k)):
                self.tokens.add(m[k], _clean({"kind": k.split("_")[0], "provider": provider}))
        if _num(m.get("cost_usd")):
            self.cost.add(m["cost_usd"], _clean({"provider": provider}))
        if span is None:
            return
        from opentelemetry.trace import Status, StatusCode

        span.set_attributes(_clean(attrs))
        if self.genai is not None:
            end = m.get("system_time") if _num(m.get("system_time")) else None
            if how == "exception":
                span.set_attribute("asm.error_code", str(md.get("error_code")))
            err = _get(run, "error") or {}
            err = err if isinstance(err, Mapping) else {}
            self.genai.end_run(run_id, status=status, usage={k: m[k] for k in ("input_tokens", "output_tokens")
                                                              if _num(m.get(k))},
                               cost_usd=m.get("cost_usd"), model=model,
                               error_code=md.get("error_code") or err.get("code") or err.get("error_code"),
                               error_message=md.get("error_message") or err.get("message") or err.get("error_message"),
                               end_ns=end)
            return
        if how == "exception":
            span.set_attributes(_clean({"asm.error_code": md.get("error_code"),
                                        "asm.error_message": md.get("error_message")}))
            if status != "cancelled":
                span.set_status(Status(StatusCode.ERROR, str(md.get("error_message") or md.get("error_code"))))
        else:
            span.set_status(Status(StatusCode.OK))
        span.end(end_time=m.get("system_time") if _num(m.get("system_time")) else None)

    def _span_event(self, run_id: Any, name: str, attrs: Mapping[str, Any]) -> None:
        with self._lock:
            span = self._spans.get(run_id)
        if span is not None:
            span.add_event(name, _clean(attrs))


_installed: OtelExporter | None = None


def install(tracer_provider: Any = None, meter_provider: Any = None, *, genai: bool = False,
            capture_content: bool = False) -> OtelExporter:
    """Attach the OpenTelemetry exporter (replacing one installed before); returns it.
    ``genai=True``: GenAI-convention spans (see the module doc)."""
    global _installed
    _require()
    if _installed is not None:
        _installed.uninstall()
    _installed = OtelExporter(tracer_provider, meter_provider, genai=genai, capture_content=capture_content).attach()
    return _installed


def uninstall() -> None:
    """Detach the installed exporter (idempotent)."""
    global _installed
    if _installed is not None:
        _installed.uninstall()
        _installed = None
