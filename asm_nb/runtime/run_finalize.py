"""The end of a run: usage, cost, provider metadata and the one terminal event persisted, the
store flushed, and the manager's ``ExecutionResult`` assembled (``_finalize_success``), or the
failed/cancelled run persisted with what it reached (``_finalize_failure``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from collections.abc import Mapping, Sequence
from typing import Any

from ..core.errors import AsmError
from ..core.events import resolve_type
from ..core.run import Run, RunStatus
from ..core.serialization import utc_now
from ..core.usage import CACHE_CREATION_1H_TOKENS, CACHE_CREATION_TOKENS, TokenUsage, token_count
from ..persistence.execution_state import ExecutionState
from ..ports import AdapterResult
from .manager_io import _audit, _error_payload, _for_store, _internal_event, _store, _telemetry
from .result import RunEvents
from .run_events import TERMINAL_TYPES, _close_open_tools, _RunTracker

log = logging.getLogger("asm_nb.runtime.manager")


@dataclass(frozen=True)
class ExecutionResult:
    """What ``execute_run`` / ``execute_once`` return: the adapter's ``AdapterResult`` plus what the
    manager added (workspace, cost, ids, persistence failures). Users see ``asm_nb.RunResult``."""

    output: dict = field(default_factory=dict)
    token_usage: dict = field(default_factory=dict)
    events: Sequence[dict] = field(default_factory=list)  # a RunEvents: read from the store when asked
    routing: dict | None = None
    policy: dict | None = None
    workspace: dict | None = None
    cost_usd: float | None = None
    persistence_failures: int = 0
    session_id: str | None = None
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _run_usage(tracker: _RunTracker, result_usage: Mapping[str, Any] | None) -> dict:
    # the adapter's total wins where it is at least what the events said (it may add a final turn)
    usage = tracker.usage.at_least(TokenUsage.of(result_usage)).to_dict()
    # the one-hour part of the cache writes (priced at its own rate), never more than the writes
    hour = max(tracker.hour_writes, token_count(result_usage.get(CACHE_CREATION_1H_TOKENS))
               if isinstance(result_usage, Mapping) else 0)
    if hour:
        usage[CACHE_CREATION_1H_TOKENS] = min(hour, usage[CACHE_CREATION_TOKENS])
    return usage


def _price(run: Run, reported: float | None, routed: Any = None) -> dict[str, Any]:
    try:
        from ..cost.calculator import price_run
    except ImportError:
        return {"cost_usd": reported}
    try:
        priced = run.replace(provider=routed) if isinstance(routed, str) and routed else run
        return dict(price_run(priced, reported_cost_usd=reported))  # a PriceInfo is never empty
    except Exception:
        log.warning("pricing run %s failed", run.id, exc_info=True)
        return {"cost_usd": reported}


async def _finalize_success(store: Any, adapter: Any, tracker: _RunTracker, result: AdapterResult,
                            ws_result: Mapping[str, Any] | None, policy_info: Any) -> ExecutionResult:
    for ev in result.events:  # result wins on conflicts (docs/runtime.md, the session manager)
        if resolve_type(ev.get("type")).value == "run_started":
            tracker.capture_meta(ev.get("data") or {})
            break
    for ev in reversed(result.events):  # what the adapter learned by the end (e.g. a session file)
        if resolve_type(ev.get("type")).value in TERMINAL_TYPES:
            tracker.capture_model(ev.get("data") or {})
            break
    run, session = tracker.run, tracker.session
    prov_meta = {"provider": adapter.name}
    for k in ("provider_session_id", "model", "model_source"):
        if tracker.provider_meta.get(k) is not None:
            prov_meta[k] = tracker.provider_meta[k]
    if ws_result is not None:
        prov_meta["workspace"] = ws_result
    if tracker.model_usage:
        prov_meta["model_usage"] = {m: dict(u) for m, u in tracker.model_usage.items()}
    usage = _run_usage(tracker, result.token_usage)
    if tracker.terminal_seen is None:
        await _close_open_tools(store, tracker, "run_completed")
        await _internal_event(store, session, "run_completed",
                              {"stop_reason": result.output.get("stop_reason", "end_turn"), "token_usage": usage},
                              run_id=run.id, provider=adapter.name)
    # ``run.with_output(result.output)`` and the usage/provider fields in one copy
    changes: dict[str, Any] = {"output": dict(result.output or {}), "status": RunStatus.COMPLETED,
                               "ended_at": utc_now()}
    if tracker.terminal_seen == "run_failed":
        # The adapter reported the run failed but returned a result (shell: non-zero exit, timeout):
        # the command did run, so the output is kept, and the run is recorded as failed.
        fd = tracker.failed_data or {}
        err = {"code": fd.get("error_code") or "provider_error",
               "message": fd.get("error_message") or _soft_failure_message(fd, result.output)}
        for k in ("provider_error", "details"):
            if fd.get(k):
                err[k] = fd[k]
        changes.update(status=RunStatus.FAILED, error=err)
    run = run.replace(**changes, token_usage=usage, provider=adapter.name, provider_metadata=prov_meta,
                      metadata={**run.metadata, **prov_meta})
    pricing = _price(run, tracker.reported_cost, tracker.provider_meta.get("routed_provider"))
    run = run.replace(cost_usd=pricing.get("cost_usd"),
                      metadata={**run.metadata, **{k: v for k, v in pricing.items() if k != "cost_usd"}})
    session = await _store(store, "get_session", session.id, _operation="finalize_successful_run")
    if tracker.provider_meta.get("provider_session_id") or tracker.provider_meta.get("model"):
        md = dict(session.metadata)
        ps = dict(md.get("provider_sessions") or {})
        entry = dict(ps.get(adapter.name) or {})
        for k in ("provider_session_id", "model"):
            if tracker.provider_meta.get(k) is not None:
                entry[k] = tracker.provider_meta[k]
        ps[adapter.name] = entry
        md["provider_sessions"] = ps
        md.pop("provider_session_id", None)
        md.pop("model", None)
        session = session.replace(metadata=md, updated_at=utc_now())
    # the finished execution as the store port's flush payload (events were persisted as they streamed)
    payload = ExecutionState.new(session, _for_store(run)).cache_provider_metadata(tracker.provider_meta).to_result()
    await _store(store, "flush", payload, _operation="finalize_successful_run")
    tracker.run = run
    _telemetry("emit_run_end", run, session, {"token_usage": usage, "cost_usd": run.cost_usd})
    if run.status is RunStatus.FAILED:
        await _audit("log_run_failed", store, run, session, run.error or {})
    else:
        audit_usage = {**usage, "total_tokens": int(usage.get("input_tokens", 0)) + int(usage.get("output_tokens", 0))}
        await _audit("log_run_completed", store, run, session, {"token_usage": audit_usage})
    return ExecutionResult(output=dict(result.output), token_usage=usage, events=RunEvents(store, session.id, run.id),
                           routing=result.routing, policy=policy_info or result.policy,
                           workspace=dict(ws_result) if ws_result is not None else None,
                           cost_usd=run.cost_usd, persistence_failures=tracker.persistence_failures,
                           session_id=session.id, run_id=run.id)


def _soft_failure_message(data: Mapping[str, Any], output: Mapping[str, Any]) -> str:
    if output.get("timed_out"):
        return f"Command timed out after {data.get('duration_ms') or output.get('duration_ms')}ms"
    if output.get("exit_code") is not None:
        return f"Command exited with code {output.get('exit_code')}"
    return "Run failed"


async def _finalize_failure(store: Any, adapter: Any, tracker: _RunTracker, error: AsmError, *,
                            ws_result: Mapping[str, Any] | None = None) -> None:
    """Persist a failed or cancelled run (docs/runtime.md, the session manager) with the usage reached so far."""
    run, session = tracker.run, tracker.session
    error.with_context(run_id=run.id, session_id=session.id, provider=adapter.name)
    payload = _error_payload(error, hint=adapter.name)
    err_dict = {"code": payload["error_code"], "message": payload["error_message"]}
    if "provider_error" in payload:
        err_dict["provider_error"] = payload["provider_error"]
    if "details" in payload:
        err_dict["details"] = payload["details"]
    usage = _run_usage(tracker, None)
    cancelled = error.code == "cancelled"
    prov_meta = {"provider": adapter.name, **{k: v for k, v in tracker.provider_meta.items()
                                              if k in ("provider_session_id", "model", "model_source")}}
    if ws_result is not None:
        prov_meta["workspace"] = dict(ws_result)
    if tracker.model_usage:
        prov_meta["model_usage"] = {m: dict(u) for m, u in tracker.model_usage.items()}
    run = run.replace(error=err_dict, status=RunStatus.CANCELLED if cancelled else RunStatus.FAILED,
                      ended_at=utc_now(), token_usage=usage, provider=adapter.name, provider_metadata=prov_meta,
                      metadata={**run.metadata, **prov_meta})
    partial = tracker.partial_text()
    if partial and not (run.output or {}).get("content"):
        # the text streamed before the stop (policy, timeout, cancel, provider error) is kept
        run = run.replace(output={**(run.output or {}), "content": partial, "partial": True})
    pricing = _price(run, tracker.reported_cost, tracker.provider_meta.get("routed_provider"))
    run = run.replace(cost_usd=pricing.get("cost_usd"),
                      metadata={**run.metadata, **{k: v for k, v in pricing.items() if k != "cost_usd"}})
    tracker.run = run
    if tracker.terminal_seen is None:
        await _close_open_tools(store, tracker, "run_cancelled" if cancelled else "run_failed", err_dict["message"],
                                error)
        if cancelled:
            await _internal_event(store, session, "run_cancelled", {"token_usage": usage}, run_id=run.id,
                                  provider=adapter.name)
        else:
            await _internal_event(store, session, "run_failed", payload, run_id=run.id, provider=adapter.name)
        tracker.terminal_seen = "run_cancelled" if cancelled else "run_failed"
    try:  # the terminal event and everything before it are durable before the run says terminal
        await _store(store, "flush", None, _operation="finalize_failed_run")
    except TypeError:  # stores whose flush requires a payload
        pass
    await _store(store, "save_run", _for_store(run), _operation="finalize_failed_run")
    _telemetry("emit_error", run, session, error)
    if cancelled:
        await _audit("log_run_cancelled", store, run, session, error.message)
    else:
        await _audit("log_run_failed", store, run, session, error)
