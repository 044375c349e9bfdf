"""WorkflowBridge: runs as steps of an outside workflow engine (docs/runtime.md, workflows).

``step_execute`` runs one step — one-shot (a new session per step, failed with the step) or
multi-run (a step inside a session the workflow owns: ``setup_workflow_session`` …
``complete_workflow_session``) — and returns a ``StepResult``: the output, the final text, the
stop reason, tool calls, usage and ids, in a flat frozen shape an engine can store.
``classify_error`` tells the engine what to do with a failure: ``retry``, ``wait_and_retry``,
``failover`` (another provider), ``cancel`` or ``abort``.

>>> classify_error(AsmError("provider_rate_limited", "slow down")).recommended_action
'wait_and_retry'
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Coroutine, Mapping, TypeVar

from .core.errors import AsmError, category, is_retryable

if TYPE_CHECKING:
    from .ports import ProviderAdapter, SessionStore

_R = TypeVar("_R")

__all__ = ["StepResult", "step_result", "step_execute", "astep_execute", "setup_workflow_session",
           "asetup_workflow_session", "complete_workflow_session", "acomplete_workflow_session",
           "ErrorClassification", "RecommendedAction", "classify_error", "ACTIONS"]


@dataclass(frozen=True)
class StepResult:
    """The outcome of one workflow step (spec defaults)."""

    output: dict[str, Any] = field(default_factory=dict)
    content: str | None = None
    token_usage: dict[str, Any] = field(default_factory=dict)
    session_id: str | None = None
    run_id: str | None = None
    events: list[Any] = field(default_factory=list)
    stop_reason: str | None = None
    tool_calls: list[Any] = field(default_factory=list)
    has_tool_calls: bool = False
    persistence_failures: int = 0
    workspace: dict[str, Any] | None = None
    policy: dict[str, Any] | None = None
    retryable: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _get(raw: object, key: str) -> Any:
    if isinstance(raw, Mapping):
        return raw.get(key)
    return getattr(raw, key, None)


def step_result(raw: object, *, session_id: str | None = None, run_id: str | None = None) -> StepResult:
    """A ``StepResult`` from an ``ExecutionResult`` or a dict of the same keys."""
    output = _get(raw, "output")
    output = dict(output) if isinstance(output, Mapping) else {}
    content = output.get("content") if isinstance(output.get("content"), str) else None
    stop = output.get("stop_reason")
    stop = getattr(stop, "value", stop)
    stop = stop if isinstance(stop, str) else None
    calls = output.get("tool_calls")
    calls = list(calls) if isinstance(calls, list) else []
    usage = _get(raw, "token_usage")
    events = _get(raw, "events")
    pf = _get(raw, "persistence_failures")
    ws, pol = _get(raw, "workspace"), _get(raw, "policy")
    return StepResult(output=output, content=content, token_usage=dict(usage) if isinstance(usage, Mapping) else {},
                      session_id=session_id or _get(raw, "session_id"), run_id=run_id or _get(raw, "run_id"),
                      events=list(events) if isinstance(events, Sequence) and not isinstance(events, (str, bytes)) else [], stop_reason=stop, tool_calls=calls,
                      has_tool_calls=bool(calls),
                      persistence_failures=pf if isinstance(pf, int) and not isinstance(pf, bool) and pf >= 0 else 0,
                      workspace=dict(ws) if isinstance(ws, Mapping) else None,
                      policy=dict(pol) if isinstance(pol, Mapping) else None, retryable=False)


_EXEC_KEYS = ("event_callback", "continuation", "continuation_opts", "adapter_opts", "policy", "workspace")


async def astep_execute(store: SessionStore, adapter: ProviderAdapter, params: Mapping[str, Any]) -> StepResult:
    """Run one step. ``params``: ``input`` (required), ``session_id`` (→ multi-run: the session is
    not failed on error), ``agent_id``, ``context``, ``metadata``, ``tags``, ``continuation``,
    ``continuation_opts``, ``adapter_opts``, ``policy``, ``workspace``, ``event_callback``.
    ``continuation`` / ``continuation_opts`` are also copied into ``adapter_opts``."""
    from .runtime import manager

    if not isinstance(params, Mapping) or params.get("input") is None:
        raise AsmError("validation_error", "step_execute requires params with an input")
    opts = {k: params[k] for k in _EXEC_KEYS if params.get(k) is not None}
    adapter_opts = dict(opts.get("adapter_opts") or {})
    for k in ("continuation", "continuation_opts"):
        if k in opts:
            adapter_opts[k] = opts[k]
    if adapter_opts:
        opts["adapter_opts"] = adapter_opts
    session_id = params.get("session_id")
    if session_id:
        run = await manager.astart_run(store, adapter, session_id, params["input"])
        raw = await manager.aexecute_run(store, adapter, run.id, **opts)
        return step_result(raw, session_id=session_id, run_id=run.id)
    raw = await manager.aexecute_once(store, adapter, params["input"], agent_id=params.get("agent_id"),
                                  metadata=params.get("metadata"), context=params.get("context"),
                                  tags=params.get("tags"), **opts)
    return step_result(raw)


async def asetup_workflow_session(store: SessionStore, adapter: ProviderAdapter, attrs: Mapping[str, Any] | None = None) -> str:
    """Start and activate a session for a workflow (``agent_id`` default ``"workflow-agent"``)."""
    from .runtime import manager

    attrs = dict(attrs or {})
    session = await manager.astart_session(store, adapter, {"agent_id": attrs.get("agent_id") or "workflow-agent",
                                                            "context": attrs.get("context"),
                                                            "metadata": attrs.get("metadata"),
                                                            "tags": attrs.get("tags")})
    await manager.aactivate_session(store, session.id)
    return session.id


async def acomplete_workflow_session(store: SessionStore, session_id: str, *, status: str = "completed",
                                     error: object = None) -> None:
    """``"failed"`` → fail the session (with ``error`` or ``internal_error`` "Workflow failed");
    any other status → complete it."""
    from .runtime import manager

    if status == "failed":
        await manager.afail_session(store, session_id, error or AsmError("internal_error", "Workflow failed"))
    else:
        await manager.acomplete_session(store, session_id)


def _sync(afn: Callable[..., Coroutine[Any, Any, _R]]) -> Callable[..., _R]:
    def wrapper(*args: Any, **kwargs: Any) -> _R:
        from .runtime.loop import run_sync

        return run_sync(afn(*args, **kwargs))

    wrapper.__name__ = afn.__name__[1:]
    wrapper.__doc__ = afn.__doc__
    return wrapper


step_execute = _sync(astep_execute)
setup_workflow_session = _sync(asetup_workflow_session)
complete_workflow_session = _sync(acomplete_workflow_session)


class RecommendedAction(str, enum.Enum):
    """What a workflow engine should do with a failed step."""

    RETRY = "retry"
    FAILOVER = "failover"
    WAIT_AND_RETRY = "wait_and_retry"
    ABORT = "abort"
    CANCEL = "cancel"

    def __str__(self) -> str:
        return self.value


ACTIONS = tuple(a.value for a in RecommendedAction)

_ACTION_BY_CODE = {
    "provider_timeout": RecommendedAction.RETRY,
    "storage_connection_failed": RecommendedAction.RETRY,
    "timeout": RecommendedAction.RETRY,
    "provider_rate_limited": RecommendedAction.WAIT_AND_RETRY,
    "max_runs_exceeded": RecommendedAction.WAIT_AND_RETRY,
    "provider_unavailable": RecommendedAction.FAILOVER,
    "cancelled": RecommendedAction.CANCEL,
    "policy_violation": RecommendedAction.CANCEL,
}


@dataclass(frozen=True)
class ErrorClassification:
    """``error``, ``retryable`` (taxonomy), ``category`` and ``recommended_action`` (a str value)."""

    error: AsmError | None = None
    retryable: bool = False
    category: str | None = None
    recommended_action: str | None = None


def classify_error(error: object) -> ErrorClassification:
    """Classify a step failure; a non-``AsmError`` is wrapped as ``internal_error`` first."""
    err = error if isinstance(error, AsmError) else AsmError("internal_error", repr(error))
    action = _ACTION_BY_CODE.get(str(err.code), RecommendedAction.ABORT)
    return ErrorClassification(error=err, retryable=bool(is_retryable(err.code)), category=category(err.code),
                               recommended_action=action.value)
