"""AuditLogger: run lifecycle and usage records appended to a session's event log.

See docs/runtime.md, audit. Every ``log_*`` function is a no-op when
``audit_logging_enabled`` is false in the current context, returns None, and swallows store or
validation failures (auditing must never break a run; failures are logged at debug level).

Audit events are appended with ``append_event_with_sequence`` (so the store contract of docs/stores.md applies) and
carry ``metadata["source"] = "audit"``, which separates them from the adapter's lifecycle
events of the same type. (Python note) They pass through the redactor with the effective
config first: an error message can quote a secret, and secrets must never reach the log.

``attach_telemetry_handlers(store)`` records runs automatically from the ``run.start``,
``run.stop``, ``run.exception`` and ``usage.report`` telemetry events (one global store).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .. import config, telemetry
from ..core.errors import AsmError
from ..core.events import Event, EventType
from .pipeline import _unshared_appender
from .redaction import redact

if TYPE_CHECKING:
    from ..ports import SessionStore

__all__ = ["HANDLER_ID", "enabled", "set_enabled", "log_run_started", "log_run_completed", "log_run_failed",
           "log_run_cancelled", "log_error", "log_usage_metrics", "get_audit_log", "attach_telemetry_handlers",
           "detach_telemetry_handlers"]

log = logging.getLogger(__name__)

HANDLER_ID = "asm_audit_logger"
_store: SessionStore | None = None


def enabled() -> bool:
    """``config.get("audit_logging_enabled")`` in the current context."""
    return bool(config.get("audit_logging_enabled"))


def set_enabled(value: bool) -> None:
    """Context-local switch (``config.put("audit_logging_enabled", value)``)."""
    config.put("audit_logging_enabled", bool(value))


def _get(obj: object, key: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _value(v: object) -> object:
    return getattr(v, "value", v)  # enums (RunStatus, ErrorCode) as their string value


def _provider(run: object, session: object) -> str | None:
    prov = _get(run, "provider")
    if prov is None:
        prov = _get(_get(session, "metadata"), "provider")
    return prov if isinstance(prov, str) else None


def _append(store: SessionStore, etype: EventType, session_id: object, run_id: object, data: dict[str, Any],
            provider: str | None = None) -> None:
    if not enabled():
        return
    try:
        event = Event.new(etype, session_id, run_id=run_id, data=data, metadata={"source": "audit"},
                          provider=provider)
        event = redact(event, None).event
        # built here and held by nobody else: numbered in place where the store can (no copy)
        (_unshared_appender(store) or store.append_event_with_sequence)(event)
    except Exception as exc:  # noqa: BLE001 - documented: audit failures never propagate
        log.debug("audit log append of %s failed: %r", etype.value, exc)


def _session_id(run: object, session: object) -> object:
    sid = _get(session, "id")
    return sid if sid is not None else _get(run, "session_id")


def log_run_started(store: SessionStore, run: object, session: object) -> None:
    """Append ``run_started`` ``{agent_id, run_status}``."""
    _append(store, EventType.RUN_STARTED, _session_id(run, session), _get(run, "id"),
            {"agent_id": _get(session, "agent_id"), "run_status": _value(_get(run, "status"))},
            _provider(run, session))


def log_run_completed(store: SessionStore, run: object, session: object, result: object = None) -> None:
    """Append ``run_completed`` ``{agent_id, token_usage}`` (``result["token_usage"]``, default ``{}``)."""
    usage = _get(result, "token_usage", {})
    _append(store, EventType.RUN_COMPLETED, _session_id(run, session), _get(run, "id"),
            {"agent_id": _get(session, "agent_id"), "token_usage": usage if usage is not None else {}},
            _provider(run, session))


def _error_fields(error: object) -> tuple[object, object]:
    if isinstance(error, AsmError):
        return _value(error.code), error.message
    return _value(_get(error, "code")), _get(error, "message")


def log_run_failed(store: SessionStore, run: object, session: object, error: object) -> None:
    """Append ``run_failed`` ``{agent_id, error_code, error_message}`` (from ``error.code`` /
    ``.message`` or the dict keys ``code`` / ``message``)."""
    code, message = _error_fields(error)
    _append(store, EventType.RUN_FAILED, _session_id(run, session), _get(run, "id"),
            {"agent_id": _get(session, "agent_id"), "error_code": code, "error_message": message},
            _provider(run, session))


def log_run_cancelled(store: SessionStore, run: object, session: object, reason: object = None) -> None:
    """(Python addition) Append ``run_cancelled`` ``{agent_id, reason?}``: a cancelled run is
    neither completed nor failed, and its audit trail still needs an end."""
    data = {"agent_id": _get(session, "agent_id")}
    if reason is not None:
        data["reason"] = reason
    _append(store, EventType.RUN_CANCELLED, _session_id(run, session), _get(run, "id"), data,
            _provider(run, session))


def log_error(store: SessionStore, run: object, session: object, error: object) -> None:
    """Append ``error_occurred`` ``{agent_id, error_code, error_message}``."""
    code, message = _error_fields(error)
    _append(store, EventType.ERROR_OCCURRED, _session_id(run, session), _get(run, "id"),
            {"agent_id": _get(session, "agent_id"), "error_code": code, "error_message": message},
            _provider(run, session))


def log_usage_metrics(store: SessionStore, session: object, metrics: Mapping[str, Any], run_id: str | None = None) -> None:
    """Append ``token_usage_updated`` with ``data = metrics``."""
    _append(store, EventType.TOKEN_USAGE_UPDATED, _get(session, "id"), run_id,
            dict(metrics) if isinstance(metrics, Mapping) else {})


def get_audit_log(store: SessionStore, session_id: str, **filters: Any) -> list[Event]:
    """``store.get_events(session_id, run_id=?, type=?, since=?)`` in append order; only the
    filters given are passed on."""
    kwargs = {k: filters[k] for k in ("run_id", "type", "since") if filters.get(k) is not None}
    return list(store.get_events(session_id, **kwargs))


# ---------------------------------------------------------------------------------------------
# Telemetry attachment

_EVENTS = (telemetry.event_name("run", "start"), telemetry.event_name("run", "stop"),
           telemetry.event_name("run", "exception"), telemetry.event_name("usage", "report"))
_USAGE_KEYS = ("input_tokens", "output_tokens", "total_tokens")


def _handle(name: tuple, measurements: Mapping[str, Any], metadata: Mapping[str, Any], _cfg: object) -> None:
    store = _store
    if store is None:
        return
    kind = name[-2:]
    session = metadata.get("session")
    if kind == ("usage", "report"):
        if session is not None:
            log_usage_metrics(store, session, measurements)
        return
    run = metadata.get("run")
    if run is None or session is None:
        return
    if kind == ("run", "start"):
        log_run_started(store, run, session)
    elif kind == ("run", "stop"):
        usage = {k: measurements[k] for k in _USAGE_KEYS if k in measurements}
        log_run_completed(store, run, session, {"token_usage": usage})
    elif kind == ("run", "exception"):
        log_run_failed(store, run, session, {"code": metadata.get("error_code"),
                                             "message": metadata.get("error_message")})


def attach_telemetry_handlers(store: SessionStore) -> None:
    """Record run start/stop/exception and usage reports into ``store`` (handler id
    ``"asm_audit_logger"``). Attaching again replaces the store."""
    global _store
    telemetry.detach(HANDLER_ID)
    _store = store
    telemetry.attach_many(HANDLER_ID, _EVENTS, _handle)


def detach_telemetry_handlers() -> None:
    """Stop recording from telemetry. Idempotent."""
    global _store
    telemetry.detach(HANDLER_ID)
    _store = None
