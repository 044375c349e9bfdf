"""Telemetry: a small in-process event bus mirroring Erlang's ``:telemetry``, and the emitters.

See docs/runtime.md, telemetry. Handlers are attached under an id to one or more event names (tuples such as
``("asm", "run", "start")``) and called synchronously, in the emitting thread and context, with
``(name, measurements, metadata, config)``. A handler that raises is logged and detached, so a
broken dashboard never breaks a run. ``system_time`` is ``time.time_ns()``; ``duration`` is in
nanoseconds (int).

Every ``emit_*`` helper is a no-op when ``telemetry_enabled`` is false in the current context
(**Deviation:** the reference persistence events ignore the flag). ``execute`` itself always
dispatches: it is the raw bus.

>>> seen = []
>>> attach("doc", ("asm", "usage", "report"), lambda n, m, md, c: seen.append(m))
>>> with config.override(telemetry_enabled=True):
...     emit_usage_metrics({"id": "ses_1", "agent_id": "a"}, {"input_tokens": 3})
>>> seen
[{'input_tokens': 3}]
>>> detach("doc")

Imports only ``core`` and ``config``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from datetime import datetime
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from . import config
from .core.errors import AsmError
from .core.serialization import utc_now

__all__ = [
    "TELEMETRY_PREFIX", "Handler", "attach", "attach_many", "detach", "execute", "list_handlers",
    "has_handlers", "has_any_handlers", "enabled", "set_enabled", "event_name", "emit_run_start", "emit_run_end",
    "emit_error", "emit_usage_metrics", "emit_adapter_event", "span", "span_call", "aspan_call",
    "attach_otel",
]

log = logging.getLogger(__name__)

TELEMETRY_PREFIX: tuple[str, ...] = ("asm",)

Handler = Callable[[Any, Mapping[str, Any], Mapping[str, Any], Any], Any]
EventName = tuple
_R = TypeVar("_R")

# Copy-on-write registry: ``execute`` reads ``_by_name`` without taking the lock, so the hot
# path (no handler attached) costs one dict lookup.
_lock = threading.Lock()
_by_id: dict[str, tuple[tuple[EventName, ...], Handler, Any]] = {}
_by_name: dict[EventName, tuple[tuple[str, Handler, Any], ...]] = {}


def _as_name(name: object) -> EventName:
    if isinstance(name, tuple) and name and all(isinstance(p, str) for p in name):
        return name
    if isinstance(name, list) and name and all(isinstance(p, str) for p in name):
        return tuple(name)
    raise ValueError(f"telemetry event name must be a non-empty tuple of str, got: {name!r}")


def _rebuild_index() -> None:
    global _by_name
    index: dict[EventName, list[tuple[str, Handler, Any]]] = {}
    for hid, (names, handler, cfg) in _by_id.items():
        for n in names:
            index.setdefault(n, []).append((hid, handler, cfg))
    _by_name = {n: tuple(hs) for n, hs in index.items()}


def event_name(*parts: str) -> EventName:
    """The full event name for ``parts`` under ``TELEMETRY_PREFIX``: ``("asm", *parts)``.

    A single dotted string is split: ``event_name("run.start") == ("asm", "run", "start")``.
    """
    if len(parts) == 1 and "." in parts[0]:
        parts = tuple(parts[0].split("."))
    return TELEMETRY_PREFIX + tuple(parts)


def attach(handler_id: str, event_name: object, handler: Handler, config: object = None) -> None:
    """Attach ``handler`` to one event name. A ``handler_id`` already attached → ``ValueError``."""
    attach_many(handler_id, [event_name], handler, config)


def attach_many(handler_id: str, names: Iterable[object], handler: Handler, config: object = None) -> None:
    """Attach ``handler`` to several event names under one id (detached together).

    >>> attach_many("h", [("asm", "run", "start"), ("asm", "run", "stop")], lambda *a: None)
    >>> detach("h")
    """
    if not callable(handler):
        raise ValueError("telemetry handler must be callable")
    event_names = tuple(dict.fromkeys(_as_name(n) for n in names))
    if not event_names:
        raise ValueError("attach_many needs at least one event name")
    with _lock:
        if handler_id in _by_id:
            raise ValueError(f"telemetry handler already attached: {handler_id!r}")
        _by_id[handler_id] = (event_names, handler, config)
        _rebuild_index()


def detach(handler_id: str) -> bool:
    """Detach every attachment of ``handler_id``. Idempotent; returns whether one was attached."""
    with _lock:
        if _by_id.pop(handler_id, None) is None:
            return False
        _rebuild_index()
        return True


def list_handlers(prefix: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Attached handlers whose event name starts with ``prefix``: ``{id, event_name, function, config}``."""
    prefix = tuple(prefix)
    with _lock:
        attached = list(_by_id.items())
    out = []
    for hid, (names, handler, cfg) in attached:
        for n in names:
            if n[: len(prefix)] == prefix:
                out.append({"id": hid, "event_name": n, "function": handler, "config": cfg})
    return out


def has_handlers(name: EventName) -> bool:
    """Whether any handler listens to ``name`` (emitters skip building payloads otherwise)."""
    return name in _by_name


def has_any_handlers() -> bool:
    """Whether any handler is attached at all (per-event emitters skip their work otherwise)."""
    return bool(_by_name)


def execute(name: EventName | list[str], measurements: Mapping[str, Any] | None = None,
            metadata: Mapping[str, Any] | None = None) -> None:
    """Call every handler attached to ``name``. A handler that raises is logged and detached."""
    if isinstance(name, list):  # a list is not hashable: look it up (and report it) as a tuple
        name = tuple(name)
    handlers = _by_name.get(name)
    if handlers is None:
        return
    m = measurements if measurements is not None else {}
    md = metadata if metadata is not None else {}
    for hid, handler, cfg in handlers:
        try:
            handler(name, m, md, cfg)
        except Exception:  # noqa: BLE001 - same contract as :telemetry: log and detach
            log.exception("telemetry handler %r failed on %r and was detached", hid, name)
            detach(hid)


# ---------------------------------------------------------------------------------------------
# Switch


def enabled() -> bool:
    """``config.get("telemetry_enabled")`` in the current context."""
    return bool(config.get("telemetry_enabled"))


def set_enabled(value: bool) -> None:
    """Context-local switch (``config.put("telemetry_enabled", value)``)."""
    config.put("telemetry_enabled", bool(value))


def _active(name: EventName) -> bool:
    # Handler lookup first: it is a dict probe, the config read is not.
    return name in _by_name and enabled()


# ---------------------------------------------------------------------------------------------
# Emitters

RUN_START = TELEMETRY_PREFIX + ("run", "start")
RUN_STOP = TELEMETRY_PREFIX + ("run", "stop")
RUN_EXCEPTION = TELEMETRY_PREFIX + ("run", "exception")
USAGE_REPORT = TELEMETRY_PREFIX + ("usage", "report")


def _get(obj: object, key: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _duration_ns(run: object) -> int:
    started, ended = _get(run, "started_at"), _get(run, "ended_at")
    if isinstance(started, datetime):
        end = ended if isinstance(ended, datetime) else utc_now()
        try:
            delta = end - started
        except TypeError:  # naive vs aware: not comparable, report 0 rather than crash a run
            return 0
        return max(0, (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000)
    return 0


def _run_meta(run: object, session: object) -> dict[str, Any]:
    return {"run_id": _get(run, "id"), "session_id": _get(session, "id", _get(run, "session_id")),
            "agent_id": _get(session, "agent_id")}


def emit_run_start(run: object, session: object) -> None:
    """``run.start`` ``{system_time}`` / ``{run_id, session_id, agent_id, run, session}``."""
    if not _active(RUN_START):
        return
    execute(RUN_START, {"system_time": time.time_ns()}, {**_run_meta(run, session), "run": run, "session": session})


def emit_run_end(run: object, session: object, result: object = None, *, duration: int | None = None) -> None:
    """``run.stop`` with ``duration`` (ns), ``system_time`` and, when numeric in ``result``,
    ``input_tokens``, ``output_tokens``, ``total_tokens`` (from ``token_usage``) and ``cost_usd``."""
    if not _active(RUN_STOP):
        return
    m: dict[str, Any] = {"duration": _duration_ns(run) if duration is None else int(duration),
                         "system_time": time.time_ns()}
    usage = _get(result, "token_usage") or {}
    if isinstance(usage, Mapping):
        for k in ("input_tokens", "output_tokens", "total_tokens"):
            if _is_number(usage.get(k)):
                m[k] = usage[k]
    cost = _get(result, "cost_usd")
    if _is_number(cost):
        m["cost_usd"] = cost
    md = {**_run_meta(run, session), "status": _get(run, "status"), "run": run, "session": session}
    execute(RUN_STOP, m, md)


def _error_fields(error: object) -> tuple[object, object]:
    if isinstance(error, AsmError):
        return error.code, error.message
    if isinstance(error, Mapping):
        return (error.get("code", error.get("error_code")), error.get("message", error.get("error_message")))
    if isinstance(error, BaseException):
        return "internal_error", str(error)
    return _get(error, "code"), _get(error, "message", None if error is None else str(error))


def emit_error(run: object, session: object, error: object, *, duration: int | None = None) -> None:
    """``run.exception`` ``{duration, system_time}`` / ``{run_id, session_id, agent_id,
    error_code, error_message, run, session, error}``."""
    if not _active(RUN_EXCEPTION):
        return
    code, message = _error_fields(error)
    m = {"duration": _duration_ns(run) if duration is None else int(duration), "system_time": time.time_ns()}
    md = {**_run_meta(run, session), "error_code": code, "error_message": message, "run": run,
          "session": session, "error": error}
    execute(RUN_EXCEPTION, m, md)


def emit_usage_metrics(session: object, metrics: Mapping[str, Any]) -> None:
    """``usage.report``: measurements = ``metrics`` as given; metadata ``{session_id, agent_id, session}``."""
    if not _active(USAGE_REPORT):
        return
    execute(USAGE_REPORT, dict(metrics or {}),
            {"session_id": _get(session, "id"), "agent_id": _get(session, "agent_id"), "session": session})


def emit_adapter_event(event: object, run: object, session: object) -> None:
    """``adapter.<event_type>`` for one adapter event (the manager callback, docs/runtime.md, the session manager).

    Measurements: every numeric (non-bool) value of ``event.data`` plus ``system_time``.
    Metadata: ``run_id, session_id, agent_id, provider, event_data`` (+ ``tool_name`` when present).
    ``event`` is an ``Event`` or a dict with ``type`` and ``data``.
    """
    etype = _get(event, "type")
    type_name = getattr(etype, "value", etype)
    if not isinstance(type_name, str):
        return
    name = TELEMETRY_PREFIX + ("adapter", type_name)
    if not _active(name):
        return
    data = _get(event, "data") or {}
    if not isinstance(data, Mapping):
        data = {}
    m = {k: v for k, v in data.items() if _is_number(v)}
    m["system_time"] = time.time_ns()
    md = {**_run_meta(run, session), "provider": _get(event, "provider", _get(run, "provider")), "event_data": data}
    if "tool_name" in data:
        md["tool_name"] = data["tool_name"]
    execute(name, m, md)


# ---------------------------------------------------------------------------------------------
# Spans


class _Span:
    """What ``span`` yields: set ``result`` (token usage, cost) before the block ends."""

    __slots__ = ("run", "session", "result", "started_ns")

    def __init__(self, run: object, session: object) -> None:
        self.run, self.session, self.result = run, session, None
        self.started_ns = time.monotonic_ns()


def _ended(run: Any) -> object:  # duck-typed: a Run (replace), a mapping or anything else
    if hasattr(run, "replace") and hasattr(run, "ended_at"):
        try:
            return run.replace(ended_at=utc_now())
        except Exception:  # noqa: BLE001 - telemetry must never break the run
            return run
    if isinstance(run, Mapping):
        return {**run, "ended_at": utc_now()}
    return run


@contextlib.contextmanager
def span(run: object, session: object) -> Iterator[_Span]:
    """Emit ``run.start``; on normal exit ``run.stop`` with the measured monotonic duration
    (``sp.result`` feeds the token/cost measurements); on an exception ``run.exception``
    (non-``AsmError`` exceptions report code ``internal_error``), then re-raise.

    >>> with span({"id": "run_1"}, {"id": "ses_1", "agent_id": "a"}) as sp:
    ...     sp.result = {"token_usage": {"input_tokens": 1}}
    """
    sp = _Span(run, session)
    emit_run_start(run, session)
    try:
        yield sp
    except BaseException as exc:
        if isinstance(exc, Exception):
            emit_error(_ended(run), session, exc, duration=time.monotonic_ns() - sp.started_ns)
        raise
    emit_run_end(_ended(run), session, sp.result, duration=time.monotonic_ns() - sp.started_ns)


def _span_result(run: object, session: object, result: _R, started: int) -> _R:
    """End a span: ``run.stop``, or ``run.exception`` for a returned ``AsmError``; ``result`` unchanged."""
    if isinstance(result, AsmError):
        emit_error(_ended(run), session, result, duration=time.monotonic_ns() - started)
    else:
        emit_run_end(_ended(run), session, result, duration=time.monotonic_ns() - started)
    return result


def span_call(run: object, session: object, fn: Callable[[], _R]) -> _R:
    """Run ``fn()`` inside a span and return its result. A returned ``AsmError`` is reported as
    ``run.exception`` and returned unchanged (the reference's ``{:error, e}`` result)."""
    started = time.monotonic_ns()
    emit_run_start(run, session)
    try:
        result = fn()
    except Exception as exc:
        emit_error(_ended(run), session, exc, duration=time.monotonic_ns() - started)
        raise
    return _span_result(run, session, result, started)


async def aspan_call(run: object, session: object, fn: Callable[[], Awaitable[_R]]) -> _R:
    """Async twin of ``span_call``: ``fn`` returns an awaitable."""
    started = time.monotonic_ns()
    emit_run_start(run, session)
    try:
        result = await fn()
    except Exception as exc:
        emit_error(_ended(run), session, exc, duration=time.monotonic_ns() - started)
        raise
    return _span_result(run, session, result, started)


def attach_otel(tracer_provider: Any = None, meter_provider: Any = None, *, genai: bool = False,
                capture_content: bool = False) -> Any:
    """Export the bus to OpenTelemetry (``pip install asm_nb[otel]``): one ``asm.run`` span per run,
    adapter events as span events, run/token/cost metrics. Providers default to the global
    OpenTelemetry ones, so an application that configured an OTLP exporter gets asm runs in its
    traces. Returns the exporter (``.uninstall()`` stops it). See ``asm_nb.telemetry_otel``.

    ``genai=True``: the OpenTelemetry GenAI conventions instead (``invoke_agent`` run span with
    ``gen_ai.*`` attributes, ``chat`` and ``execute_tool`` children, live; see
    ``asm_nb.telemetry_genai``); ``capture_content=True`` adds redacted tool arguments/results.

    >>> exporter = attach_otel(genai=True)      # doctest: +SKIP
    """
    from .telemetry_otel import install

    return install(tracer_provider=tracer_provider, meter_provider=meter_provider, genai=genai,
                   capture_content=capture_content)
