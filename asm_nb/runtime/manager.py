"""SessionManager: stateless orchestration of sessions and runs over a store and an adapter.

See docs/runtime.md, the session manager. Every function is async (``a…``); sync twins submit to the runtime loop.
The flow of one run: load → running → (policy preflight) → continuation transcript →
(workspace snapshot) → input ``message_sent`` → ``adapter.execute`` with the manager callback
(each event: persistence pipeline → policy observation → user callback → telemetry) →
finalize (usage, cost, provider metadata, one terminal event) → ``store.flush``.

Extension points used by later layers (imported lazily, only when asked for):
``asm_nb.policy.runtime`` (policies enforced while a run streams) and
``asm_nb.workspace.service`` (snapshots and diffs around a run).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .. import config
from ..core.capabilities import CapabilityResolver
from ..core.errors import AsmError
from ..core.events import resolve_type
from ..core.run import Run, RunStatus
from ..core.serialization import utc_now
from ..core.session import Session, SessionStatus
from ..persistence.store_call import call_store
from ..ports import RunResult, resolve_execute_timeout, resolve_execute_timeout_base
from ..core.usage import TokenUsage

log = logging.getLogger(__name__)

TERMINAL_TYPES = frozenset({"run_completed", "run_failed", "run_cancelled", "run_timeout"})


@dataclass(frozen=True)
class ExecutionResult:
    """What ``execute_run`` / ``execute_once`` return: the adapter result plus what the manager added."""

    output: dict = field(default_factory=dict)
    token_usage: dict = field(default_factory=dict)
    events: list = field(default_factory=list)
    routing: dict | None = None
    policy: dict | None = None
    workspace: dict | None = None
    cost_usd: float | None = None
    persistence_failures: int = 0
    session_id: str | None = None
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


# ------------------------------------------------------------------------------------------
# store access


_store = call_store  # the manager's store access: off the loop, sessions written redacted


def _redact_value(value: Any) -> Any:
    if value is None:
        return None
    from ..persistence.redaction import redact_map

    return redact_map({"v": value}, None)["v"]


def _for_store(run: Run) -> Run:
    """The copy of ``run`` that is written: input, output and error go through the redactor
    (events are redacted by the pipeline; runs must not leak what events hide)."""
    return run.replace(input=_redact_value(run.input), output=_redact_value(run.output),
                       error=_redact_value(run.error))


_PENDING_INPUTS: dict[str, Any] = {}


def _check_store(store: Any) -> None:
    for name in ("get_session", "save_session", "save_run", "get_run", "append_event_with_sequence", "get_events"):
        if not callable(getattr(store, name, None)):
            raise AsmError("validation_error", f"Unsupported store reference for run_once: {store!r}")


def _pipeline(store: Any) -> Any:
    from ..persistence.pipeline import EventPipeline

    cache = getattr(store, "_asm_pipeline", None)
    if cache is None:
        cache = EventPipeline(store)
        try:
            store._asm_pipeline = cache
        except Exception:  # stores with __slots__: no caching
            pass
    return cache


def _ctx(session_id: str, run_id: str | None, provider: str | None, correlation_id: str | None) -> Any:
    from ..persistence.pipeline import PipelineContext

    return PipelineContext(session_id=session_id, run_id=run_id, provider=provider, correlation_id=correlation_id)


async def _persist(store: Any, raw: Mapping[str, Any], *, session_id: str, run_id: str | None,
                   provider: str | None, correlation_id: str | None) -> Any:
    pipe = _pipeline(store)
    ctx = _ctx(session_id, run_id, provider, correlation_id)
    if getattr(store, "inline_safe", False) or getattr(store, "inline_append_safe", False):
        return pipe.process(dict(raw), ctx)  # buffered appends: no thread hop per event
    return await asyncio.to_thread(pipe.process, dict(raw), ctx)


async def _audit(fn_name: str, store: Any, *args: Any) -> None:
    """Write one audit record (``persistence.audit``) for a run this manager executes.

    The audit log is on by default (config ``audit_logging_enabled``); its records are events
    with ``metadata["source"] == "audit"`` in the run's session, read back with
    ``asm_nb.frames.audit(store)`` or ``asm audit``. Audit failures never break a run."""
    if not config.get("audit_logging_enabled"):
        return
    from ..persistence import audit

    fn = getattr(audit, fn_name)
    try:
        if getattr(store, "inline_safe", False):
            fn(store, *args)
        else:
            await asyncio.to_thread(fn, store, *args)  # to_thread keeps the config context
    except Exception:  # noqa: BLE001 - documented: auditing never breaks a run
        log.debug("audit %s failed", fn_name, exc_info=True)


def _telemetry(fn_name: str, *args: Any) -> None:
    try:
        from .. import telemetry
    except ImportError:  # pragma: no cover - telemetry ships with the package
        return
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


# ------------------------------------------------------------------------------------------
# session lifecycle (docs/runtime.md, the session manager)


async def astart_session(store: Any, adapter: Any, attrs: Mapping[str, Any] | None = None) -> Session:
    """Create a pending session for ``adapter`` and persist ``session_created``."""
    attrs = dict(attrs or {})
    metadata = {**(attrs.get("metadata") or {}), "provider": adapter.name}
    session = Session.new(attrs.get("agent_id") or adapter.name, id=attrs.get("id"),
                          parent_session_id=attrs.get("parent_session_id"), metadata=metadata,
                          context=attrs.get("context"), tags=attrs.get("tags"))
    await _store(store, "save_session", session, _operation="start_session")
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


# ------------------------------------------------------------------------------------------
# runs (docs/runtime.md, the session manager)


async def astart_run(store: Any, adapter: Any, session_id: str, input: Any, *, required_capabilities=(),
                     optional_capabilities=(), metadata: Mapping[str, Any] | None = None) -> Run:
    """Create a pending run after capability negotiation (missing required → nothing stored)."""
    await _store(store, "get_session", session_id, _operation="start_run")
    if required_capabilities or optional_capabilities:
        caps = await adapter.capabilities()
        result = CapabilityResolver.new(required_capabilities, optional_capabilities).negotiate(caps)
        for w in result.warnings:
            log.warning("%s", w)
    run = Run.new(session_id, input=input, metadata=metadata)
    await _store(store, "save_run", _for_store(run), _operation="start_run")
    _PENDING_INPUTS[run.id] = input  # the adapter gets the unredacted input (same process)
    return run


def extract_input_messages(input: Any) -> list[dict[str, str]]:
    """The user/system messages of a run input (docs/runtime.md, the session manager)."""
    if isinstance(input, str):
        input = {"prompt": input}
    if not isinstance(input, Mapping):
        return []
    raw: list[Any]
    if isinstance(input.get("messages"), list):
        raw = [m for m in input["messages"] if isinstance(m, Mapping)]
    elif isinstance(input.get("prompt"), str) and input["prompt"]:
        raw = [{"role": "user", "content": input["prompt"]}]
    else:
        return []
    out = []
    for m in raw:
        role = m.get("role")
        role = getattr(role, "value", role)
        role = role.lower() if isinstance(role, str) and role else "user"
        content = m.get("content")
        if content is None:
            content = ""
        elif isinstance(content, list):
            texts = [b.get("text") for b in content if isinstance(b, Mapping) and b.get("type") == "text"]
            content = "\n".join(t for t in texts if isinstance(t, str)) if texts else json.dumps(content, default=str)
        elif not isinstance(content, str):
            content = str(content)
        if content:
            out.append({"role": role, "content": content})
    return out


_INFLIGHT: dict[str, "_RunTracker"] = {}


@dataclass
class _RunTracker:
    """Per-execute state owned by ``aexecute_run`` (the manager callback writes into it)."""

    run: Run
    session: Session
    adapter: Any
    events: list = field(default_factory=list)
    persistence_failures: int = 0
    terminal_seen: str | None = None
    usage: TokenUsage = field(default_factory=TokenUsage)
    provider_meta: dict = field(default_factory=dict)
    reported_cost: float | None = None
    policy_runtime: Any = None
    cancel_requested: bool = False
    policy_stopped: bool = False  # a policy stopped the run: later adapter events are dropped
    task: asyncio.Task | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    user_callback: Callable | None = None
    open_tools: dict = field(default_factory=dict)  # tool_call_id -> (tool_name, tool_input)
    streamed_text: list = field(default_factory=list)  # text deltas, for the partial output of a stopped run
    received_text: list = field(default_factory=list)  # message_received contents (adapters that do not stream)
    model_usage: dict = field(default_factory=dict)  # model -> usage, when the provider reports it per model

    def observe(self, etype: str, data: Mapping[str, Any]) -> None:
        """Keep what finalization needs from one event: open tool calls and the text so far."""
        if etype == "tool_call_started":
            self.open_tools[data.get("tool_call_id")] = (data.get("tool_name"), data.get("tool_input"))
        elif etype in ("tool_call_completed", "tool_call_failed"):
            self.open_tools.pop(data.get("tool_call_id"), None)
        elif etype == "message_streamed" and data.get("kind") in (None, "text"):
            if isinstance(data.get("delta"), str):
                self.streamed_text.append(data["delta"])
        elif etype == "message_received" and isinstance(data.get("content"), str):
            self.received_text.append(data["content"])

    def partial_text(self) -> str:
        """The answer text a stopped run had produced so far."""
        if self.streamed_text:
            return "".join(self.streamed_text)
        return "\n\n".join(t for t in self.received_text if t)

    def add_model_usage(self, per_model: Mapping[str, Any]) -> None:
        """Per-model usage a provider reported (Claude Code ``modelUsage``), summed per model."""
        for model, u in per_model.items():
            if not isinstance(u, Mapping):
                continue
            row = self.model_usage.setdefault(str(model), {})
            for k, v in u.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    row[k] = row.get(k, 0) + v

    def add_usage(self, data: Mapping[str, Any]) -> None:
        self.usage = self.usage + TokenUsage.of(data)

    def capture_meta(self, data: Mapping[str, Any]) -> None:
        psid = data.get("provider_session_id") or data.get("session_id") or data.get("thread_id")
        for key, val in (("provider_session_id", psid), ("model", data.get("model")), ("tools", data.get("tools"))):
            if val is not None:
                self.provider_meta[key] = val
        self.capture_model(data)

    def capture_route(self, data: Mapping[str, Any]) -> None:
        """A router's run is priced as the provider that served it."""
        if isinstance(data.get("routed_provider"), str):
            self.provider_meta["routed_provider"] = data["routed_provider"]

    def capture_model(self, data: Mapping[str, Any]) -> None:
        """The model a run used and where that is known from (``model_source``); a later, surer
        statement (the terminal event's, from a session file) replaces an earlier one."""
        if isinstance(data.get("model"), str) and data["model"]:
            self.provider_meta["model"] = data["model"]
            self.provider_meta["model_source"] = data.get("model_source") or "adapter"


async def _record(store: Any, tracker: _RunTracker, type_: str, data: Mapping[str, Any]) -> None:
    """Persist an event the manager adds to a run and show it to the user callback (live views)."""
    try:
        stored = await _internal_event(store, tracker.session, type_, data, run_id=tracker.run.id,
                                       provider=tracker.adapter.name)
    except AsmError as err:
        tracker.persistence_failures += 1
        log.warning("Event persistence failed for run %s: [%s] %s", tracker.run.id, err.code, err.message)
        stored = None
    shown = {"type": type_, "data": dict(data), "session_id": tracker.session.id, "run_id": tracker.run.id,
             "provider": tracker.adapter.name, "timestamp": utc_now(),
             "sequence_number": getattr(stored, "sequence_number", None)}
    if stored is not None:
        shown["id"] = getattr(stored, "id", None)
    tracker.events.append(shown)
    tracker.observe(type_, data)
    if tracker.user_callback is not None:
        try:
            res = tracker.user_callback(shown)
            if inspect.isawaitable(res):
                await res
        except Exception:
            log.exception("event_callback raised for run %s (ignored)", tracker.run.id)


#: why a tool call was left without a result, by the run's terminal event
_UNFINISHED_REASON = {"run_completed": "unfinished", "run_cancelled": "cancelled", "run_failed": "unfinished",
                      "run_timeout": "unfinished"}


async def _close_open_tools(store: Any, tracker: _RunTracker, terminal: str, why: str | None = None,
                            error: AsmError | None = None) -> None:
    """Close the tool calls that never got a result before the run's terminal event: each gets a
    ``tool_call_failed`` with ``status: "unfinished"`` (no tool call stays running in an ended run).
    The call a tool policy stopped the run for is ``failed`` with reason ``policy_denied``."""
    details = error.details if error is not None and isinstance(error.details, Mapping) else {}
    for tcid, (name, tinput) in list(tracker.open_tools.items()):
        if error is not None and error.code == "policy_violation" and details.get("limit") == "tool_rules" \
                and details.get("tool_name") == name:
            await _record(store, tracker, "tool_call_failed", {
                "tool_call_id": tcid, "tool_name": name, "tool_input": tinput if tinput is not None else {},
                "tool_output": None, "is_error": True, "reason": "policy_denied", "error_message": why})
            tracker.open_tools.pop(tcid, None)
            continue
        ended = {"run_completed": "completed", "run_cancelled": "was cancelled", "run_failed": "failed",
                 "run_timeout": "timed out"}.get(terminal, "ended")
        message = f"no result: the run {ended} before {name or 'the tool'} returned" + (f" ({why})" if why else "")
        await _record(store, tracker, "tool_call_failed", {
            "tool_call_id": tcid, "tool_name": name, "tool_input": tinput if tinput is not None else {},
            "tool_output": None, "is_error": True, "status": "unfinished",
            "reason": _UNFINISHED_REASON.get(terminal, "unfinished"), "error_message": message})
        tracker.open_tools.pop(tcid, None)


NATIVE_UNAVAILABLE = ('Native continuation is not available for this provider. '
                      'Use continuation: "auto" to fall back to transcript replay.')


def _native_resume_id(session: Session, adapter: Any) -> str | None:
    """The provider's own session/thread id recorded for ``adapter`` by an earlier run, if any."""
    ps = session.metadata.get("provider_sessions")
    entry = ps.get(getattr(adapter, "name", None)) if isinstance(ps, Mapping) else None
    psid = entry.get("provider_session_id") if isinstance(entry, Mapping) else None
    return psid if isinstance(psid, str) and psid else None


def _continuation_transcript(store: Any, session: Session, mode: Any, opts: Mapping[str, Any] | None,
                             adapter: Any = None) -> Any:
    """The transcript to inject for continuation mode ``mode`` (docs/runtime.md, continuation), or None.

    ``"native"`` needs an adapter with ``supports_native_continuation`` (it then resumes from
    ``session.metadata["provider_sessions"][adapter.name]`` itself); ``"auto"`` prefers native
    resume when the adapter supports it and a provider session id is recorded, else replays.
    ``opts``: store query keys and truncation keys (``max_messages``, ``max_chars``,
    ``max_tokens_approx``; docs/event-model.md, transcripts)."""
    mode = getattr(mode, "value", mode)
    if mode is None or mode is False:
        return None
    if mode is True:
        raise AsmError("validation_error",
                       'Boolean continuation is not supported. Use continuation: "auto", "replay", "native", or False.')
    if mode not in ("auto", "replay", "native"):
        raise AsmError("validation_error",
                       f'Invalid continuation value: {mode!r}. Use continuation: "auto", "replay", "native", or False.')

    opts = dict(opts or {})
    native = bool(getattr(adapter, "supports_native_continuation", False))
    if mode == "native":
        if not native:
            raise AsmError("invalid_operation", NATIVE_UNAVAILABLE)
        return None  # the adapter resumes from provider_sessions in the session metadata
    if mode == "auto" and native and _native_resume_id(session, adapter) is not None:
        return None
    return session_transcript(store, session.id, opts)


_TRANSCRIPTS: "weakref.WeakKeyDictionary[Any, OrderedDict[str, Any]]" = weakref.WeakKeyDictionary()
_TRANSCRIPTS_PER_STORE = 16


def session_transcript(store: Any, session_id: str, opts: Mapping[str, Any] | None = None) -> Any:
    """The session's transcript for continuation, kept per store with its last sequence number:
    a follow-up turn reads only the events stored since (``update_from_store``), not the whole
    session. Truncation options apply to the returned copy; store query options bypass the cache."""
    from ..core.transcript import STORE_QUERY_KEYS, from_store, maybe_truncate, update_from_store

    opts = dict(opts or {})
    if any(k in opts for k in STORE_QUERY_KEYS):
        return from_store(store, session_id, **opts)
    try:
        cache = _TRANSCRIPTS.setdefault(store, OrderedDict())
    except TypeError:  # a store that cannot be weakly referenced: no cache
        return from_store(store, session_id, **opts)
    cached = cache.pop(session_id, None)
    if cached is not None and isinstance(cached.last_sequence, int):
        latest = getattr(store, "get_latest_sequence", None)
        try:
            if callable(latest) and latest(session_id) < cached.last_sequence:
                cached = None  # events were deleted meanwhile (session deleted, pruned): rebuild
        except AsmError:
            cached = None
    elif cached is not None:
        cached = None
    full = update_from_store(store, cached) if cached is not None else from_store(store, session_id)
    cache[session_id] = full
    while len(cache) > _TRANSCRIPTS_PER_STORE:
        cache.popitem(last=False)
    return maybe_truncate(full, **opts) if opts else full


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
    tracker = _RunTracker(run=run, session=session, adapter=adapter, task=asyncio.current_task(),
                          user_callback=event_callback)
    _INFLIGHT[run.id] = tracker
    adapter_opts = dict(adapter_opts or {})
    ws_state = None
    watchdog: asyncio.Future | None = None
    try:
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
                adapter_opts = {**tracker.policy_runtime.compiled_options(), **adapter_opts}
        except AsmError as err:
            raise _PreExecuteFailure(err) from err

        callback = _make_callback(store, tracker, event_callback)
        if tracker.policy_runtime is not None and callable(getattr(tracker.policy_runtime, "deadline_s", None)):
            watchdog = asyncio.ensure_future(_policy_watchdog(store, tracker, event_callback))
        _telemetry("emit_run_start", run, session)
        await _audit("log_run_started", store, run, session)
        base = resolve_execute_timeout_base(timeout)
        deadline_ms = resolve_execute_timeout(timeout)
        try:
            result = await asyncio.wait_for(
                adapter.execute(run, exec_session, event_callback=callback, timeout=base, **adapter_opts),
                deadline_ms / 1000)
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
        if not isinstance(result, RunResult):
            result = RunResult(**result) if isinstance(result, Mapping) else RunResult()
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


def _make_callback(store: Any, tracker: _RunTracker, user_callback: Callable | None) -> Callable:
    session, run, adapter = tracker.session, tracker.run, tracker.adapter
    correlation_id = session.metadata.get("correlation_id")

    async def callback(event: Mapping[str, Any]) -> None:
        if tracker.policy_stopped and _type_name(event.get("type")) != "token_usage_updated":
            # after a policy stopped the run nothing more is recorded (not even the adapter's
            # terminal event: finalization persists the single run_failed with the violation),
            # except usage: a request cut by the stop was still billed (e.g. its message_start)
            log.debug("dropping %s of run %s after the policy stopped it", event.get("type"), run.id)
            return
        ev = dict(event)
        etype = resolve_type(ev.get("type")).value
        ev["type"] = etype
        data = ev.get("data") if isinstance(ev.get("data"), Mapping) else {}
        if etype in TERMINAL_TYPES:
            if tracker.open_tools:
                why = data.get("error_message") if etype == "run_failed" else None
                await _close_open_tools(store, tracker, etype, why if isinstance(why, str) else None)
            tracker.terminal_seen = etype
            tracker.capture_model(data)
        elif etype == "token_usage_updated":
            tracker.add_usage(data)
            if isinstance(data.get("model_usage"), Mapping):
                tracker.add_model_usage(data["model_usage"])
        elif etype == "run_started":
            tracker.capture_meta(data)
        if etype == "run_completed" and isinstance(data.get("total_cost_usd"), (int, float)) \
                and not isinstance(data.get("total_cost_usd"), bool) and data["total_cost_usd"] > 0:
            if tracker.reported_cost is None:
                tracker.reported_cost = float(data["total_cost_usd"])
        try:
            stored = await _persist(store, ev, session_id=session.id, run_id=run.id, provider=adapter.name,
                                    correlation_id=correlation_id)
            ev["sequence_number"] = stored.sequence_number
            ev["id"] = stored.id
        except AsmError as err:
            tracker.persistence_failures += 1
            log.warning("Event persistence failed for run %s in session %s: [%s] %s", run.id, session.id,
                        err.code, err.message)
        except Exception as exc:
            tracker.persistence_failures += 1
            log.warning("Event persistence failed because the SessionStore became unavailable: %r", exc)
        tracker.events.append(ev)
        tracker.observe(etype, data)
        tracker.capture_route(data)
        if tracker.policy_runtime is not None and etype not in TERMINAL_TYPES and not tracker.policy_stopped:
            await _apply_policy(store, tracker, ev, user_callback)
        if user_callback is not None:
            try:
                res = user_callback(ev)
                if inspect.isawaitable(res):
                    await res
            except Exception:
                log.exception("event_callback raised for run %s (ignored)", run.id)
        _telemetry("emit_adapter_event", ev, tracker.run, tracker.session)

    return callback


def _type_name(t: Any) -> Any:
    """An event's type as its string value (``EventType`` members and strings alike)."""
    return getattr(t, "value", t)


_POLICY_STOP_GRACE_S = 5.0


async def _apply_policy(store: Any, tracker: _RunTracker, ev: Mapping[str, Any],
                        user_callback: Callable | None = None) -> None:
    """Policy observation (docs/runtime.md, the session manager, step 6); the runtime object decides.
    Policy events are persisted and shown to the user callback too (live views)."""
    rt = tracker.policy_runtime
    outcome = rt.observe(ev)
    cancel = bool(outcome.get("cancel"))
    if cancel:
        tracker.policy_stopped = True  # before any await: events arriving meanwhile are dropped

    async def record(type_: str, data: Mapping[str, Any]) -> None:
        try:
            stored = await _internal_event(store, tracker.session, type_, data, run_id=tracker.run.id,
                                           provider=tracker.adapter.name)
        except AsmError as err:
            tracker.persistence_failures += 1
            log.warning("Event persistence failed for run %s: [%s] %s", tracker.run.id, err.code, err.message)
            stored = None
        if user_callback is not None:
            shown = {"type": type_, "data": dict(data), "session_id": tracker.session.id, "run_id": tracker.run.id,
                     "provider": tracker.adapter.name, "timestamp": utc_now(),
                     "sequence_number": getattr(stored, "sequence_number", None)}
            try:
                res = user_callback(shown)
                if inspect.isawaitable(res):
                    await res
            except Exception:
                log.exception("event_callback raised for run %s (ignored)", tracker.run.id)

    for violation in outcome.get("violations", ()):
        await record("policy_violation", violation)
    approval = outcome.get("approval")
    if approval:
        await record("tool_approval_requested", approval)
        ask = getattr(rt, "await_approval", None)
        decision = await ask(approval) if ask is not None else None
        if decision is not None:
            await record("tool_approval_granted" if decision == "approve" else "tool_approval_denied",
                         {**approval, "decision": decision})
            if decision != "approve":
                tracker.policy_stopped = cancel = True
    if cancel and not tracker.cancel_requested:
        tracker.cancel_requested = True
        try:
            await tracker.adapter.cancel(tracker.run.id)
        except AsmError as err:
            log.debug("policy cancel of %s: %s", tracker.run.id, err)

        def force_stop() -> None:  # an adapter that ignores cancel: stop its task outright
            if not tracker.done.is_set() and tracker.task is not None and not tracker.task.done():
                tracker.task.cancel()

        asyncio.get_running_loop().call_later(_POLICY_STOP_GRACE_S, force_stop)


async def _policy_watchdog(store: Any, tracker: _RunTracker, user_callback: Callable | None) -> None:
    """Check the policy when its duration limit comes due, even if the provider is silent."""
    rt = tracker.policy_runtime
    while not tracker.policy_stopped and not tracker.done.is_set():
        delay = rt.deadline_s()
        if delay is None:
            return
        await asyncio.sleep(max(delay, 0.001))
        if tracker.done.is_set() or tracker.policy_stopped:
            return
        await _apply_policy(store, tracker, {"type": "policy_timer", "data": {}, "run_id": tracker.run.id},
                            user_callback)


def _run_usage(tracker: _RunTracker, result_usage: Mapping[str, Any] | None) -> dict:
    # the adapter's total wins where it is at least what the events said (it may add a final turn)
    return tracker.usage.at_least(TokenUsage.of(result_usage)).to_dict()


def _price(run: Run, reported: float | None, routed: Any = None) -> dict[str, Any]:
    try:
        from ..cost.calculator import price_run
    except ImportError:
        return {"cost_usd": reported}
    try:
        priced = run.replace(provider=routed) if isinstance(routed, str) and routed else run
        return price_run(priced, reported_cost_usd=reported) or {"cost_usd": reported}
    except Exception:
        log.warning("pricing run %s failed", run.id, exc_info=True)
        return {"cost_usd": reported}


async def _finalize_success(store: Any, adapter: Any, tracker: _RunTracker, result: RunResult,
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
    run = run.with_output(result.output)
    if tracker.terminal_seen == "run_failed":
        # The adapter reported the run failed but returned a result (shell: non-zero exit, timeout):
        # the command did run, so the output is kept, and the run is recorded as failed.
        failed = next((e for e in reversed(tracker.events) if e.get("type") == "run_failed"), {})
        fd = failed.get("data") or {}
        err = {"code": fd.get("error_code") or "provider_error",
               "message": fd.get("error_message") or _soft_failure_message(fd, result.output)}
        for k in ("provider_error", "details"):
            if fd.get(k):
                err[k] = fd[k]
        run = run.replace(status=RunStatus.FAILED, error=err)
    run = run.replace(token_usage=usage, provider=adapter.name, provider_metadata=prov_meta,
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
    from ..persistence.execution_state import ExecutionState

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
    return ExecutionResult(output=dict(result.output), token_usage=usage, events=list(tracker.events),
                           routing=result.routing, policy=policy_info or result.policy, workspace=ws_result,
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
