"""The session manager's access to the outside: the store (off the loop, runs written redacted),
the persistence pipeline, the audit log and telemetry; error payloads of failed runs/sessions.

Used by ``runtime.manager`` and the modules it is split into (``run_events``, ``run_finalize``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from .. import config
from ..core.errors import AsmError
from ..core.run import Run
from ..core.session import Session
from .. import telemetry
from ..persistence import audit
from ..persistence.pipeline import EventPipeline, PipelineContext
from ..persistence.redaction import redact_map
from ..persistence.store_call import call_store

log = logging.getLogger("asm_nb.runtime.manager")


_store = call_store  # the manager's store access: off the loop, sessions written redacted


def _redact_value(value: Any) -> Any:
    if value is None:
        return None
    return redact_map({"v": value}, None)["v"]


def _for_store(run: Run) -> Run:
    """The copy of ``run`` that is written: input, output and error go through the redactor
    (events are redacted by the pipeline; runs must not leak what events hide)."""
    return run.replace(input=_redact_value(run.input), output=_redact_value(run.output),
                       error=_redact_value(run.error))


def _check_store(store: Any) -> None:
    for name in ("get_session", "save_session", "save_run", "get_run", "append_event_with_sequence", "get_events"):
        if not callable(getattr(store, name, None)):
            raise AsmError("validation_error", f"Unsupported store reference for run_once: {store!r}")


def _pipeline(store: Any) -> Any:
    cache = getattr(store, "_asm_pipeline", None)
    if cache is None:
        cache = EventPipeline(store)
        try:
            store._asm_pipeline = cache
        except Exception:  # stores with __slots__: no caching
            pass
    return cache


def _ctx(session_id: str, run_id: str | None, provider: str | None, correlation_id: str | None) -> Any:
    return PipelineContext(session_id=session_id, run_id=run_id, provider=provider, correlation_id=correlation_id)


async def _persist(store: Any, raw: Mapping[str, Any], *, session_id: str, run_id: str | None,
                   provider: str | None, correlation_id: str | None) -> Any:
    pipe = _pipeline(store)
    ctx = _ctx(session_id, run_id, provider, correlation_id)
    if getattr(store, "inline_safe", False) or getattr(store, "inline_append_safe", False):
        return pipe.process(dict(raw), ctx)  # buffered appends: no thread hop per event
    return await asyncio.to_thread(pipe.process, dict(raw), ctx)


def _persister(store: Any, *, session_id: str, run_id: str | None, provider: str | None,
               correlation_id: str | None) -> tuple[Any, Any]:
    """What ``_persist`` does for one run, resolved once instead of per event: ``(process, ctx)``
    where ``process(raw)`` is the pipeline's ``process`` bound to ``ctx`` (``EventPipeline.bind``;
    called inline: its ``raw`` is not copied, the pipeline copies what it keeps) or None when the
    store must be called off the loop (then use ``_persist``)."""
    ctx = _ctx(session_id, run_id, provider, correlation_id)
    if getattr(store, "inline_safe", False) or getattr(store, "inline_append_safe", False):
        return _pipeline(store).bind(ctx), ctx
    return None, ctx


async def _audit(fn_name: str, store: Any, *args: Any) -> None:
    """Write one audit record (``persistence.audit``) for a run this manager executes.

    The audit log is on by default (config ``audit_logging_enabled``); its records are events
    with ``metadata["source"] == "audit"`` in the run's session, read back with
    ``asm_nb.frames.audit(store)`` or ``asm audit``. Audit failures never break a run."""
    if not config.get("audit_logging_enabled"):
        return
    fn = getattr(audit, fn_name)
    try:
        if getattr(store, "inline_safe", False):
            fn(store, *args)
        else:
            await asyncio.to_thread(fn, store, *args)  # to_thread keeps the config context
    except Exception:  # noqa: BLE001 - documented: auditing never breaks a run
        log.debug("audit %s failed", fn_name, exc_info=True)


def _telemetry(fn_name: str, *args: Any) -> None:
    fn = getattr(telemetry, fn_name, None)
    if fn is None:
        return
    try:
        fn(*args)
    except Exception:
        log.debug("telemetry %s failed", fn_name, exc_info=True)


async def _internal_event(store: Any, session: Session, type: str, data: Mapping[str, Any] | None = None, *,
                          run_id: str | None = None, provider: str | None = None) -> Any:
    prov = provider or session.metadata.get("provider") or "session_manager"
    return await _persist(store, {"type": type, "data": dict(data or {})}, session_id=session.id, run_id=run_id,
                          provider=prov, correlation_id=session.metadata.get("correlation_id"))


async def _internal_events(store: Any, session: Session, items: list[tuple[str, Mapping[str, Any] | None]]) -> list:
    """``_internal_event`` for several session events at once (``[(type, data), ...]``, no run):
    built by the pipeline's ``process_batch`` and stored with one ``append_events`` (one lock
    round and one call of the store, off the loop or not, instead of one per event). Same events,
    numbers, redaction and telemetry; a failure stores none of them."""
    prov = session.metadata.get("provider") or "session_manager"
    ctx = _ctx(session.id, None, prov, session.metadata.get("correlation_id"))
    raws = [{"type": t, "data": dict(d or {})} for t, d in items]
    pipe: EventPipeline = _pipeline(store)
    if getattr(store, "inline_safe", False) or getattr(store, "inline_append_safe", False):
        return pipe.process_batch(raws, ctx)
    return await asyncio.to_thread(pipe.process_batch, raws, ctx)


def _error_payload(err: AsmError, *, hint: str | None = None) -> dict[str, Any]:
    """``{error_code, error_message, provider_error?, details?}`` with provider-error normalization."""
    from ..core.errors import category
    from ..core.provider_errors import normalize_provider_error, normalize_provider_name

    details = dict(err.details or {})
    provider_error = None
    if isinstance(err.provider_error, Mapping) or category(err.code) == "provider":
        attrs = dict(err.provider_error or {})
        attrs.setdefault("message", err.message)
        attrs.setdefault("details", details)
        prov = attrs.get("provider")
        if normalize_provider_name(prov) == "unknown":
            prov = hint
        provider_error, pdetails = normalize_provider_error(prov, attrs)
        details = {**details, **pdetails}
    data: dict[str, Any] = {"error_code": str(err.code), "error_message": err.message}
    if provider_error is not None:
        data["provider_error"] = provider_error
    if details:
        data["details"] = details
    return data
