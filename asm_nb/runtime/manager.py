"""SessionManager: stateless orchestration of sessions and runs over a store and an adapter.

See docs/runtime.md, the session manager. Every function is async (``a…``); sync twins submit to the runtime loop.
The flow of one run: load → running → (policy preflight) → continuation transcript →
(workspace snapshot) → input ``message_sent`` → ``adapter.execute`` with the manager callback
(each event: persistence pipeline → policy observation → user callback → telemetry) →
finalize (usage, cost, provider metadata, one terminal event) → ``store.flush``.

Extension points used by later layers (imported lazily, only when asked for):
``asm_nb.policy.runtime`` (policies enforced while a run streams) and
``asm_nb.workspace.service`` (snapshots and diffs around a run).

The manager is split by step: ``manager_io`` (store, pipeline, audit, telemetry access),
``continuation`` (input messages, continuation transcript), ``run_events`` (the run tracker and
the callback with policy observation) and ``run_finalize`` (terminal event, cost, the
``ExecutionResult``). Their names are re-exported here: ``runtime.manager`` stays the import path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from .. import config
from ..core.capabilities import CapabilityResolver
from ..core.aio import within
from ..core.errors import AsmError
from ..core.run import Run, RunStatus
from ..core.session import Session, SessionStatus
from ..ports import AdapterResult, resolve_execute_timeout, resolve_execute_timeout_base
from .continuation import NATIVE_UNAVAILABLE as NATIVE_UNAVAILABLE
from .continuation import _continuation_transcript as _continuation_transcript
from .continuation import _native_resume_id as _native_resume_id
from .continuation import extract_input_messages as extract_input_messages
from .continuation import session_transcript as session_transcript
from .manager_io import _audit as _audit
from .manager_io import _check_store as _check_store
from .manager_io import _error_payload as _error_payload
from .manager_io import _for_store as _for_store
from .manager_io import _internal_event as _internal_event
from .manager_io import _internal_events as _internal_events
from .manager_io import _persist as _persist
from .manager_io import _store as _store
from .manager_io import _telemetry as _telemetry
from .run_events import _INFLIGHT as _INFLIGHT
from .run_events import TERMINAL_TYPES as TERMINAL_TYPES
from .run_events import _make_callback as _make_callback
from .run_events import _policy_watchdog as _policy_watchdog
from .run_events import _RunTracker as _RunTracker
from .run_finalize import ExecutionResult as ExecutionResult
from .run_finalize import _finalize_failure as _finalize_failure
from .run_finalize import _finalize_success as _finalize_success

log = logging.getLogger(__name__)

_PENDING_INPUTS: dict[str, Any] = {}


# ------------------------------------------------------------------------------------------
# session lifecycle (docs/runtime.md, the session manager)


async def astart_session(store: Any, adapter: Any, attrs: Mapping[str, Any] | None = None, *,
                         active: bool = False) -> Session:
    """Create a pending session for ``adapter`` and persist ``session_created``. ``active``: the
    session starts active (``session_created`` then ``session_started``), written once instead of
    saved pending and then again active (``aactivate_session``)."""
    attrs = dict(attrs or {})
    metadata = {**(attrs.get("metadata") or {}), "provider": adapter.name}
    session = Session.new(attrs.get("agent_id") or adapter.name, id=attrs.get("id"),
                          parent_session_id=attrs.get("parent_session_id"), metadata=metadata,
                          context=attrs.get("context"), tags=attrs.get("tags"))
    if active:
        session = session.with_status(SessionStatus.ACTIVE)
    await _store(store, "save_session", session, _operation="start_session")
    if active:  # both in one append (one lock round, one store call)
        await _internal_events(store, session, [("session_created", {"provider": adapter.name}),
                                                ("session_started", {})])
    else:
        await _internal_event(store, session, "session_created", {"provider": adapter.name})
    return session


async def astart_named_session(store: Any, adapter: Any, name: str,
                               attrs: Mapping[str, Any] | None = None) -> tuple[Session, bool]:
    """``(session, created)``: the store's newest session named ``name``, or a new one built as
    ``astart_session`` does (``session_created`` persisted), created atomically by the store's
    ``get_or_create_named_session``."""
    attrs = dict(attrs or {})
    metadata = {**(attrs.get("metadata") or {}), "name": name, "provider": adapter.name}
    session = Session.new(attrs.get("agent_id") or adapter.name, id=attrs.get("id"),
                          parent_session_id=attrs.get("parent_session_id"), metadata=metadata,
                          context=attrs.get("context"), tags=attrs.get("tags"))
    found, created = await _store(store, "get_or_create_named_session", name, session, _operation="start_session")
    if created:
        await _internal_event(store, found, "session_created", {"provider": adapter.name})
    return found, created


async def aget_session(store: Any, session_id: str) -> Session:
    return await _store(store, "get_session", session_id)


async def _set_session_status(store: Any, session_id: str, status: SessionStatus, event: str,
                              data: Mapping[str, Any] | None, op: str) -> Session:
    session = await _store(store, "get_session", session_id, _operation=op)
    session = session.with_status(status)
    await _store(store, "save_session", session, _operation=op)
    await _internal_event(store, session, event, data)
    return session


async def aactivate_session(store: Any, session_id: str) -> Session:
    return await _set_session_status(store, session_id, SessionStatus.ACTIVE, "session_started", {},
                                     "activate_session")


async def acomplete_session(store: Any, session_id: str) -> Session:
    return await _set_session_status(store, session_id, SessionStatus.COMPLETED, "session_completed", {},
                                     "complete_session")


async def apause_session(store: Any, session_id: str) -> Session:
    return await _set_session_status(store, session_id, SessionStatus.PAUSED, "session_paused", {},
                                     "pause_session")


async def aresume_session(store: Any, session_id: str) -> Session:
    return await _set_session_status(store, session_id, SessionStatus.ACTIVE, "session_resumed", {},
                                     "resume_session")


async def acancel_session(store: Any, session_id: str, reason: str | None = None) -> Session:
    return await _set_session_status(store, session_id, SessionStatus.CANCELLED, "session_cancelled",
                                     {"reason": reason} if reason else {}, "cancel_session")


async def afail_session(store: Any, session_id: str, error: Any) -> Session:
    err = AsmError.from_exception(error) if isinstance(error, BaseException) else error
    session = await _store(store, "get_session", session_id, _operation="fail_session")
    data = _error_payload(err, hint=session.metadata.get("provider"))
    session = session.with_status(SessionStatus.FAILED)
    await _store(store, "save_session", session, _operation="fail_session")
    await _internal_event(store, session, "session_failed", data)
    return session


# ------------------------------------------------------------------------------------------
# runs (docs/runtime.md, the session manager)


async def astart_run(store: Any, adapter: Any, session_id: str, input: Any, *, required_capabilities=(),
                     optional_capabilities=(), metadata: Mapping[str, Any] | None = None) -> Run:
    """Create a pending run after capability negotiation (missing required → nothing stored)."""
    await _store(store, "get_session", session_id, _operation="start_run")
    await _negotiate(adapter, required_capabilities, optional_capabilities)
    run = Run.new(session_id, input=input, metadata=metadata)
    await _store(store, "save_run", _for_store(run), _operation="start_run")
    _PENDING_INPUTS[run.id] = input  # the adapter gets the unredacted input (same process)
    return run


async def aexecute_run(store: Any, adapter: Any, run_id: str, *, event_callback: Callable | None = None,
                       continuation: Any = None, continuation_opts: Mapping[str, Any] | None = None,
                       adapter_opts: Mapping[str, Any] | None = None, policy: Any = None,
                       policies: list | None = None, workspace: Mapping[str, Any] | None = None,
                       timeout: Any = None) -> ExecutionResult:
    """Execute a pending run end to end (docs/runtime.md, the session manager). Raises the run's error on failure
    after persisting it (exactly one terminal event per run)."""
    run = await _store(store, "get_run", run_id, _operation="execute_run")
    if run.status is not RunStatus.PENDING:
        raise AsmError("invalid_operation",
                       f"Run {run.id} is {run.status.value}; only pending runs can be executed")
    session = await _store(store, "get_session", run.session_id, _operation="execute_run")
    if run.id in _PENDING_INPUTS:
        run = run.replace(input=_PENDING_INPUTS.pop(run.id))
    run = run.with_status(RunStatus.RUNNING)
    await _store(store, "save_run", _for_store(run), _operation="execute_run")
    return await _execute_running(store, adapter, run, session, event_callback=event_callback,
                                  continuation=continuation, continuation_opts=continuation_opts,
                                  adapter_opts=adapter_opts, policy=policy, policies=policies, workspace=workspace,
                                  timeout=timeout)


async def astart_and_execute_run(store: Any, adapter: Any, session_id: str, input: Any, *,
                                 required_capabilities=(), optional_capabilities=(),
                                 metadata: Mapping[str, Any] | None = None,
                                 on_started: Callable[[Run], Any] | None = None,
                                 event_callback: Callable | None = None, continuation: Any = None,
                                 continuation_opts: Mapping[str, Any] | None = None,
                                 adapter_opts: Mapping[str, Any] | None = None, policy: Any = None,
                                 policies: list | None = None, workspace: Mapping[str, Any] | None = None,
                                 timeout: Any = None) -> ExecutionResult:
    """``astart_run`` then ``aexecute_run`` for a run its caller starts at once (``run_once``, the
    ``%%asm`` cell): negotiated the same way (missing required capability → nothing stored), but
    written once, already ``running`` with this process as its owner (``metadata.owner``), instead
    of saved ``pending``, read back and saved ``running``. No pending row exists, so nothing else
    can pick the run up; a killed owner leaves it ``running`` and it is reaped as ``interrupted``,
    like any running run. ``on_started(run)`` is called once the run is stored, before the
    adapter starts (a caller that can cancel learns the run id there). Errors before the run is
    stored are raised without ``on_started`` having been called."""
    session = await _store(store, "get_session", session_id, _operation="start_run")
    await _negotiate(adapter, required_capabilities, optional_capabilities)
    run = Run.new(session_id, input=input, metadata=metadata).with_status(RunStatus.RUNNING)
    await _store(store, "save_run", _for_store(run), _operation="start_run")
    if on_started is not None:
        on_started(run)
    return await _execute_running(store, adapter, run, session, event_callback=event_callback,
                                  continuation=continuation, continuation_opts=continuation_opts,
                                  adapter_opts=adapter_opts, policy=policy, policies=policies, workspace=workspace,
                                  timeout=timeout)


async def _negotiate(adapter: Any, required_capabilities: Any, optional_capabilities: Any) -> None:
    if required_capabilities or optional_capabilities:
        caps = await adapter.capabilities()
        result = CapabilityResolver.new(required_capabilities, optional_capabilities).negotiate(caps)
        for w in result.warnings:
            log.warning("%s", w)


async def _execute_running(store: Any, adapter: Any, run: Run, session: Session, *,
                           event_callback: Callable | None, continuation: Any,
                           continuation_opts: Mapping[str, Any] | None, adapter_opts: Mapping[str, Any] | None,
                           policy: Any, policies: list | None, workspace: Mapping[str, Any] | None,
                           timeout: Any) -> ExecutionResult:
    """The run, already saved ``running``, end to end: adapter, events, finalize."""
    tracker = _RunTracker(run=run, session=session, adapter=adapter, task=asyncio.current_task(),
                          user_callback=event_callback)
    _INFLIGHT[run.id] = tracker
    ws_state = None
    watchdog: asyncio.Future | None = None
    try:
        exec_session, ws_state, adapter_opts = await _prepare(
            store, tracker, continuation=continuation, continuation_opts=continuation_opts,
            adapter_opts=adapter_opts, policy=policy, policies=policies, workspace=workspace)
        callback = _make_callback(store, tracker, event_callback)
        if tracker.policy_runtime is not None and callable(getattr(tracker.policy_runtime, "deadline_s", None)):
            watchdog = asyncio.ensure_future(_policy_watchdog(store, tracker, event_callback))
        _telemetry("emit_run_start", run, session)
        await _audit("log_run_started", store, run, session)
        result = await _call_adapter(tracker, exec_session, callback, adapter_opts, timeout)
        verdict = None
        if tracker.policy_runtime is not None:
            verdict = tracker.policy_runtime.final_verdict()
            if verdict and verdict.get("error") is not None:
                raise verdict["error"]
        ws_result = None
        if ws_state is not None:
            ws_result = await _workspace_finish(store, session, tracker.run, adapter, ws_state, success=True)
        return await _finalize_success(store, adapter, tracker, result, ws_result,
                                       verdict.get("policy") if verdict else None)
    except _PreExecuteFailure as pre:
        await _finalize_failure(store, adapter, tracker, pre.error)
        raise pre.error from None
    except AsmError as err:
        if tracker.policy_stopped and tracker.policy_runtime is not None and err.code != "policy_violation":
            # the adapter ended because the policy cancelled it: the run fails with the violation
            verdict = tracker.policy_runtime.final_verdict() or {}
            err = verdict.get("error") or err
        ws_failed = None
        if ws_state is not None:
            try:
                ws_failed = await _workspace_finish(store, session, tracker.run, adapter, ws_state, success=False)
            # a workspace error replaces the original one (docs/runtime.md, the session manager)
            except AsmError as ws_err:
                err = ws_err
        await _finalize_failure(store, adapter, tracker, err, ws_result=ws_failed)
        raise err
    except asyncio.CancelledError:
        # hard cancellation of the whole execute task: still leave one terminal event behind
        await asyncio.shield(_finalize_failure(store, adapter, tracker, AsmError("cancelled", "Run was cancelled")))
        raise
    finally:
        if watchdog is not None:
            watchdog.cancel()
        _INFLIGHT.pop(run.id, None)
        tracker.done.set()


async def _prepare(store: Any, tracker: _RunTracker, *, continuation: Any, continuation_opts: Mapping[str, Any] | None,
                   adapter_opts: Mapping[str, Any] | None, policy: Any, policies: list | None,
                   workspace: Mapping[str, Any] | None) -> tuple[Session, Any, dict[str, Any]]:
    """Before the adapter runs: start the policy runtime, inject the continuation transcript, take
    the workspace snapshot, record the input ``message_sent`` events and merge the policy's adapter
    options. Returns ``(session given to the adapter, workspace state, adapter options)``; an
    ``AsmError`` here is raised as ``_PreExecuteFailure`` (the run fails before it started)."""
    session, run, adapter = tracker.session, tracker.run, tracker.adapter
    opts = dict(adapter_opts or {})
    ws_state = None
    try:
        tracker.policy_runtime = _policy_runtime(policy, policies, adapter)
        transcript = _continuation_transcript(store, session, continuation, continuation_opts, adapter)
        exec_session = session
        if transcript is not None:
            exec_session = session.replace(context={**session.context, "transcript": transcript})
        if workspace and workspace.get("enabled"):
            ws_state = await _workspace_prepare(store, session, run, adapter, workspace)
        if not getattr(adapter, "emits_input_messages", False):
            for msg in extract_input_messages(run.input):
                await _internal_event(store, session, "message_sent", msg, run_id=run.id, provider=adapter.name)
        if tracker.policy_runtime is not None:
            opts = {**tracker.policy_runtime.compiled_options(), **opts}
    except AsmError as err:
        raise _PreExecuteFailure(err) from err
    return exec_session, ws_state, opts


async def _call_adapter(tracker: _RunTracker, exec_session: Session, callback: Callable,
                        adapter_opts: Mapping[str, Any], timeout: Any) -> AdapterResult:
    """``adapter.execute`` under the execute deadline; its failures become ``AsmError``s
    (``provider_timeout``, ``cancelled`` when asked to cancel, ``provider_error``)."""
    run, adapter = tracker.run, tracker.adapter
    base = resolve_execute_timeout_base(timeout)
    deadline_ms = resolve_execute_timeout(timeout)
    try:
        # the deadline on this task (3.11+): no second task and no extra loop turns per run
        result = await within(adapter.execute(run, exec_session, event_callback=callback, timeout=base,
                                              **adapter_opts), deadline_ms / 1000)
    except asyncio.TimeoutError:
        raise AsmError("provider_timeout", f"Provider execute call timed out after {deadline_ms}ms",
                       details={"operation": "execute", "adapter": repr(adapter), "timeout_ms": deadline_ms}) \
            from None
    except AsmError:
        raise
    except asyncio.CancelledError:
        if tracker.cancel_requested:
            raise AsmError("cancelled", "Run was cancelled") from None
        raise
    except Exception as exc:
        raise AsmError("provider_error", f"Provider execute call failed: {exc!r}",
                       details={"operation": "execute", "adapter": repr(adapter)}) from exc
    if not isinstance(result, AdapterResult):
        result = AdapterResult(**result) if isinstance(result, Mapping) else AdapterResult()
    return result


class _PreExecuteFailure(Exception):
    def __init__(self, error: AsmError) -> None:
        super().__init__(str(error))
        self.error = error


def _policy_runtime(policy: Any, policies: list | None, adapter: Any) -> Any:
    if not policy and not policies:
        return None
    try:
        from ..policy.runtime import start as start_policy_runtime
    except ImportError as exc:
        raise AsmError("dependency_not_available", "Policy enforcement is not available in this build") from exc
    return start_policy_runtime(policy=policy, policies=policies, adapter=adapter)


async def _workspace_prepare(store, session, run, adapter, workspace):
    try:
        from ..workspace import service
    except ImportError as exc:
        raise AsmError("dependency_not_available", "Workspace snapshots are not available in this build") from exc
    return await service.prepare(store, session, run, adapter, dict(workspace),
                                 persist=lambda t, d: _internal_event(store, session, t, d, run_id=run.id,
                                                                      provider=adapter.name))


async def _workspace_finish(store, session, run, adapter, state, *, success: bool):
    from ..workspace import service

    return await service.finish(store, session, run, adapter, state, success=success,
                                persist=lambda t, d: _internal_event(store, session, t, d, run_id=run.id,
                                                                     provider=adapter.name))


async def aexecute_once(store: Any, adapter: Any, input: Any, *, agent_id: str | None = None,
                    metadata: Mapping | None = None, context: Mapping | None = None, tags: list | None = None,
                    required_capabilities=(), optional_capabilities=(), **execute_opts: Any) -> ExecutionResult:
    """start_session → activate → start_run → execute_run → complete_session (docs/runtime.md, the
    session manager's ``run_once``). On failure the session is failed and the error re-raised;
    ``asm_nb.arun_once`` is the friendlier public version that returns a ``RunResult`` instead."""
    _check_store(store)
    session = await astart_session(store, adapter, {"agent_id": agent_id, "metadata": metadata,
                                                    "context": context, "tags": tags})
    await aactivate_session(store, session.id)
    try:
        run = await astart_run(store, adapter, session.id, input, required_capabilities=required_capabilities,
                               optional_capabilities=optional_capabilities)
        result = await aexecute_run(store, adapter, run.id, **execute_opts)
    except BaseException as exc:
        err = exc if isinstance(exc, AsmError) else (
            AsmError("cancelled", "Run was cancelled") if isinstance(exc, asyncio.CancelledError) else None)
        if err is not None:
            try:
                await afail_session(store, session.id, err)
            except Exception:
                log.debug("fail_session after run failure failed", exc_info=True)
        raise
    await acomplete_session(store, session.id)
    return result


async def acancel_run(store: Any, adapter: Any, run_id: str, *, wait_s: float = 10.0) -> str:
    """Cancel a run. In flight here: ask the adapter and let the execute path persist the single
    terminal event (waiting up to ``wait_s``); otherwise mark it cancelled in the store."""
    tracker = _INFLIGHT.get(run_id)
    if tracker is not None:
        tracker.cancel_requested = True
        try:
            await tracker.adapter.cancel(run_id)
        except AsmError as err:
            if err.code not in ("run_not_found", "provider_unavailable"):
                raise
        try:
            await asyncio.wait_for(tracker.done.wait(), wait_s)
        except asyncio.TimeoutError:
            if tracker.task is not None and not tracker.task.done():
                tracker.task.cancel()  # an adapter that ignores cancel: stop its task outright
                await asyncio.wait_for(tracker.done.wait(), 5.0)
        return run_id
    run = await _store(store, "get_run", run_id, _operation="cancel_run")
    if run.is_terminal:
        return run_id
    if run.status is RunStatus.RUNNING:
        try:
            await adapter.cancel(run_id)
        except AsmError as err:
            if err.code not in ("run_not_found", "provider_unavailable"):
                raise
    run = run.with_status(RunStatus.CANCELLED)
    await _store(store, "save_run", run, _operation="cancel_run")
    session = await _store(store, "get_session", run.session_id, _operation="cancel_run")
    await _internal_event(store, session, "run_cancelled", {}, run_id=run_id, provider=run.provider or adapter.name)
    return run_id


async def aget_session_events(store: Any, session_id: str, **filters: Any) -> list:
    return await _store(store, "get_events", session_id, **filters)


async def aget_session_runs(store: Any, session_id: str) -> list[Run]:
    return await _store(store, "list_runs", session_id)


async def astream_session_events(store: Any, session_id: str, *, after: int = 0, limit: int | None = None,
                                 poll_interval_ms: int | None = None, wait_timeout_ms: int = 0,
                                 follow: bool = True, **filters: Any):
    """Async generator over a session's events from ``after``; ``follow=False`` stops at the end."""
    limit = limit or config.get("default_event_query_limit")
    poll = (poll_interval_ms or config.get("event_stream_poll_interval_ms")) / 1000
    cursor = after
    while True:
        page = await _store(store, "get_events", session_id, after=cursor, limit=limit, **filters)
        if page:
            for ev in page:
                yield ev
                if isinstance(ev.sequence_number, int):
                    cursor = max(cursor, ev.sequence_number)
            continue
        if not follow:
            return
        if wait_timeout_ms > 0:
            page = await asyncio.to_thread(store.get_events, session_id, after=cursor, limit=limit,
                                           wait_timeout_ms=wait_timeout_ms, **filters)
            for ev in page:
                yield ev
                if isinstance(ev.sequence_number, int):
                    cursor = max(cursor, ev.sequence_number)
        else:
            await asyncio.sleep(poll)


# ------------------------------------------------------------------------------------------
# sync twins


def _sync(afn: Callable) -> Callable:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from .loop import run_sync

        return run_sync(afn(*args, **kwargs))

    wrapper.__name__ = afn.__name__[1:]
    wrapper.__doc__ = (afn.__doc__ or "") + "\n\nSynchronous twin: runs on the runtime loop and waits."
    return wrapper


start_session = _sync(astart_session)
get_session = _sync(aget_session)
activate_session = _sync(aactivate_session)
complete_session = _sync(acomplete_session)
fail_session = _sync(afail_session)
pause_session = _sync(apause_session)
resume_session = _sync(aresume_session)
cancel_session = _sync(acancel_session)
start_run = _sync(astart_run)
execute_run = _sync(aexecute_run)
execute_once = _sync(aexecute_once)
cancel_run = _sync(acancel_run)
get_session_events = _sync(aget_session_events)
get_session_runs = _sync(aget_session_runs)


class SessionManager:
    """Namespace object for the manager functions (``SessionManager.run_once(store, adapter, input)``
    is ``execute_once``)."""

    start_session = staticmethod(start_session)
    astart_session = staticmethod(astart_session)
    activate_session = staticmethod(activate_session)
    aactivate_session = staticmethod(aactivate_session)
    complete_session = staticmethod(complete_session)
    acomplete_session = staticmethod(acomplete_session)
    fail_session = staticmethod(fail_session)
    afail_session = staticmethod(afail_session)
    start_run = staticmethod(start_run)
    astart_run = staticmethod(astart_run)
    execute_run = staticmethod(execute_run)
    aexecute_run = staticmethod(aexecute_run)
    run_once = staticmethod(execute_once)  # the spec's name for it
    aexecute_once = staticmethod(aexecute_once)
    cancel_run = staticmethod(cancel_run)
    acancel_run = staticmethod(acancel_run)
    get_session_events = staticmethod(get_session_events)
    get_session_runs = staticmethod(get_session_runs)
    stream_session_events = staticmethod(astream_session_events)
