"""The public entry points: ``run_once`` / ``arun_once`` and the friendly ``RunResult``.

``asm_nb.run_once`` does not raise when the *run* fails (non-zero exit, provider error, policy
cancel): it returns a ``RunResult`` with ``status`` failed/cancelled and ``error`` set. It raises
``AsmError`` for caller mistakes (unknown provider, bad option). Ctrl-C (the notebook's stop
button) while it waits cancels the run, persists ``run_cancelled`` and re-raises
``KeyboardInterrupt``.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from . import config
from .core.errors import AsmError
from .core.events import Event
from .core.run import Run, RunStatus

_store_lock = threading.Lock()
_default_stores: dict[str, Any] = {}


def default_store() -> Any:
    """The store used when none is given: config ``default_store`` (path/URL), else LocalStore at
    ``$ASM_HOME`` or ``./.asm`` (one instance per resolved location per process)."""
    import os

    from .stores import open_store

    target = config.get("default_store")
    if target is not None and not isinstance(target, str):
        return target
    key = target or os.path.abspath(os.environ.get("ASM_HOME") or ".asm")
    with _store_lock:
        store = _default_stores.get(key)
        if store is None:
            store = open_store(target)
            _default_stores[key] = store
        return store


def resolve_store(store: Any = None) -> Any:
    """A store object from ``None`` (default store), a path/URL string, or a store instance."""
    if store is None:
        return default_store()
    if isinstance(store, str) or hasattr(store, "__fspath__"):
        from .stores import open_store

        target = str(store)
        if target == "memory://":
            return open_store(target)
        with _store_lock:
            cached = _default_stores.get(target)
            if cached is None:
                cached = open_store(target)
                _default_stores[target] = cached
            return cached
    return store


_CWD_REQUIRED = ("codex", "amp")  # adapters whose spec requires a working directory


def _with_cwd(name: str, opts: Mapping[str, Any]) -> dict:
    """``opts`` plus ``cwd`` = the current directory for the adapters that need a working directory
    (the notebook's directory, as a user running the CLI there would)."""
    import os

    out = dict(opts)
    if name.strip() in _CWD_REQUIRED and "cwd" not in out and "working_directory" not in out:
        out["cwd"] = os.getcwd()
    return out


def resolve_adapter(provider: Any = None, **options: Any) -> Any:
    """An adapter from a registered name, a list of names (routed in order), or an instance."""
    from .providers import create_adapter

    opts = {k: v for k, v in options.items() if v is not None}
    if provider is None:
        provider = config.get("default_provider") or "shell"
    if isinstance(provider, str) and "," in provider:
        provider = [p.strip() for p in provider.split(",") if p.strip()]
    if isinstance(provider, (list, tuple)):
        if len(provider) == 1:
            return resolve_adapter(provider[0], **opts)
        try:
            from .routing.router import ProviderRouter
        except ImportError as exc:
            raise AsmError("dependency_not_available", "Routing over several providers is not available") from exc
        names = [p.strip() if isinstance(p, str) else p for p in provider]
        # each provider gets the options as it would alone (codex/amp: the working directory default)
        return ProviderRouter.from_names(names, per_adapter={n: _with_cwd(n, opts) for n in names
                                                             if isinstance(n, str)}, **opts)
    if isinstance(provider, str):
        return create_adapter(provider, **_with_cwd(provider, opts))
    if callable(getattr(provider, "execute", None)) and isinstance(getattr(provider, "name", None), str):
        if opts:
            raise AsmError("validation_error",
                           f"options {sorted(opts)} cannot be applied to an adapter instance; "
                           "pass them to its constructor")
        return provider
    raise AsmError("validation_error",
                   f"provider must be a registered name, a list of names or an adapter instance, got {provider!r}")


def _is_adapter(obj: Any) -> bool:
    return callable(getattr(obj, "execute", None)) and isinstance(getattr(obj, "name", None), str)


@dataclass
class RunResult:
    """The outcome of one run, as users see it.

    ``output`` is the final text; ``events`` the persisted events of the run (read from the store
    the first time they are asked for, then kept); ``token_usage`` has ``input_tokens``,
    ``output_tokens``, ``cache_read_tokens`` and ``cache_creation_tokens``.
    """

    run_id: str
    session_id: str
    status: str
    output: str = ""
    events: list = field(default_factory=list)
    token_usage: dict = field(default_factory=dict)
    cost_usd: float | None = None
    error: AsmError | None = None
    duration_ms: int | None = None
    provider: str | None = None
    model: str | None = None
    raw_output: dict = field(default_factory=dict)
    store: Any = field(default=None, repr=False, compare=False)
    policy: dict | None = None
    workspace: dict | None = None

    @property
    def ok(self) -> bool:
        return self.status == RunStatus.COMPLETED.value

    @property
    def tool_calls(self) -> list[dict]:
        """One dict per tool call: id, name, input, output, status (``completed``, ``failed``, or
        ``unfinished`` when the run ended before the call returned) and reason (why it failed, e.g.
        ``permission_denied``; None otherwise). The last outcome of a call wins."""
        calls: dict[str, dict] = {}
        for ev in self.events:
            t = ev.type.value
            if t not in ("tool_call_started", "tool_call_completed", "tool_call_failed"):
                continue
            tcid = ev.data.get("tool_call_id") or ev.id
            c = calls.setdefault(tcid, {"id": tcid, "name": ev.data.get("tool_name"),
                                        "input": ev.data.get("tool_input"), "output": None, "status": "running",
                                        "reason": None})
            if t != "tool_call_started":
                if ev.data.get("tool_output") is not None or c["output"] is None:
                    c["output"] = ev.data.get("tool_output")
                c["status"] = ("completed" if t == "tool_call_completed"
                               else "unfinished" if ev.data.get("status") == "unfinished" else "failed")
                c["reason"] = ev.data.get("reason")
        return list(calls.values())

    @property
    def partial(self) -> bool:
        """True when ``output`` is the text a stopped run had streamed (policy, timeout, cancel,
        provider error), not a finished answer."""
        return bool(self.raw_output.get("partial"))

    @property
    def stop_reason(self) -> str | None:
        """Why the run stopped: the provider's stop reason for a completed run (``end_turn``,
        ``max_tokens``, ``refusal``…), else ``cancelled`` or the error code (``policy_violation``,
        ``provider_timeout``…)."""
        if self.ok:
            sr = self.raw_output.get("stop_reason")
            if not isinstance(sr, str):
                sr = next((e.data.get("stop_reason") for e in reversed(self.events)
                           if e.type.value == "run_completed" and isinstance(e.data.get("stop_reason"), str)), None)
            return sr or "end_turn"
        if self.status == RunStatus.CANCELLED.value:
            return "cancelled"
        return self.error.code if self.error is not None else self.status

    @property
    def refused(self) -> bool:
        """The model declined to answer (stop reason ``refusal``)."""
        return self.stop_reason == "refusal"

    def event_stream(self, *, after: int = 0, limit: int | None = None, wait_timeout_ms: int = 0) -> Any:
        """The run's stored events after sequence ``after`` as a cursor (``core.EventStream``):
        ``take(n)`` / ``peek(n)`` / iteration read from the cursor, ``cursor`` is the next
        sequence to read. ``wait_timeout_ms`` long-polls the store when nothing is there yet (a
        run still going in the background), so a reader can loop ``after = stream.cursor - 1``.

        >>> r = run_once("echo hi", provider="shell", store="memory://")
        >>> first, rest = r.event_stream().take(1)
        >>> first[0].type.value, rest.remaining() > 0
        ('run_started', True)
        """
        from .core.event_stream import EventStream
        from .core.events import without_audit

        if self.store is None:
            raise AsmError("invalid_operation", "this RunResult has no store to read events from")
        import time

        deadline = time.monotonic() + max(wait_timeout_ms, 0) / 1000
        cursor = after
        while True:
            kw: dict[str, Any] = {"run_id": self.run_id, "after": cursor}
            if limit is not None:
                kw["limit"] = limit
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms > 0:
                kw["wait_timeout_ms"] = left_ms
            raw = self.store.get_events(self.session_id, **kw)
            events = without_audit(raw)
            if events or not raw or left_ms <= 0:
                break
            cursor = max(e.sequence_number for e in raw)  # only audit records came: wait past them
        stream = EventStream.new(self.session_id, self.run_id, buffer_size=max(len(events), 1))
        return stream.push_batch(events).advance_cursor(after + 1)

    def raise_for_status(self) -> "RunResult":
        """Raise the run's ``AsmError`` unless it completed; returns self for chaining."""
        if self.error is not None:
            raise self.error
        if not self.ok:
            raise AsmError("internal_error", f"run {self.run_id} ended {self.status}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "session_id": self.session_id, "status": self.status, "output": self.output,
            "token_usage": dict(self.token_usage), "cost_usd": self.cost_usd,
            "error": self.error.to_dict() if self.error else None, "duration_ms": self.duration_ms,
            "provider": self.provider, "model": self.model, "tool_calls": self.tool_calls,
            "stop_reason": self.stop_reason, "partial": self.partial,
            "events": [e.to_dict() for e in self.events],
        }

    def __str__(self) -> str:
        return self.output

    def _repr_mimebundle_(self, include=None, exclude=None):
        try:
            from .notebook.display import run_result_mimebundle
        except ImportError:
            return {"text/plain": self._plain()}
        return run_result_mimebundle(self)

    def _plain(self) -> str:
        usage = self.token_usage or {}
        cost = "n/a" if self.cost_usd is None else f"${self.cost_usd:.4f}"
        status = "refused" if self.refused else self.status
        head = (f"RunResult({self.provider or '?'}: {status}, {usage.get('input_tokens', 0)} in / "
                f"{usage.get('output_tokens', 0)} out tokens, cost {cost})")
        if self.error is not None:
            head += f"\nerror: [{self.error.code}] {self.error.message}"
        if self.output and self.partial:
            return head + "\npartial output (the run stopped):\n" + self.output
        return head + ("\n" + self.output if self.output else "")

    def __repr__(self) -> str:
        return self._plain()


class _StoredEvents:
    """Where a result's events are, until someone asks for them (``RunResult.events``)."""

    __slots__ = ("store", "session_id", "run_id")

    def __init__(self, store: Any, session_id: str, run_id: str) -> None:
        self.store, self.session_id, self.run_id = store, session_id, run_id

    def load(self) -> list:
        from .core.events import without_audit

        return list(without_audit(self.store.get_events(self.session_id, run_id=self.run_id)))


def _get_events(self: RunResult) -> list:
    v = self.__dict__.get("_events")
    if isinstance(v, _StoredEvents):
        v = self.__dict__["_events"] = v.load()
    return [] if v is None else v


def _set_events(self: RunResult, value: Any) -> None:
    self.__dict__["_events"] = value


def _getstate(self: RunResult) -> dict:
    _get_events(self)  # a pickled result carries its events, not a store handle
    return dict(self.__dict__)


RunResult.events = property(_get_events, _set_events,  # type: ignore[assignment]
                            doc="The run's stored events (``Event`` objects, ascending sequence).")
RunResult.__getstate__ = _getstate  # type: ignore[attr-defined]


def _result_from_store(store: Any, run: Run, *, error: AsmError | None = None, extra: Any = None) -> RunResult:
    from .core.events import without_audit

    # stores whose reads keep working after the run (LocalStore, memory) hand the events over
    # lazily: a million-event run is not copied into the result unless someone looks at it
    events: Any = _StoredEvents(store, run.session_id, run.id) if getattr(store, "lazy_result_events", False) \
        else without_audit(store.get_events(run.session_id, run_id=run.id))
    out = run.output or {}
    content = out.get("content")
    if not isinstance(content, str):
        content = "" if content is None else str(content)
    model = (run.provider_metadata or {}).get("model") or (run.metadata or {}).get("model")
    if error is None and run.error:
        try:
            error = AsmError(run.error.get("code"), run.error.get("message"),
                             provider_error=run.error.get("provider_error"), details=run.error.get("details"),
                             context={"run_id": run.id, "session_id": run.session_id, "provider": run.provider})
        except Exception:
            error = None
    policy = getattr(extra, "policy", None)
    if policy is None and error is not None and error.code == "policy_violation" and error.details:
        policy = dict(error.details)  # which limit, its value, what was observed, the violations
    return RunResult(run_id=run.id, session_id=run.session_id, status=run.status.value, output=content,
                     events=events, token_usage=dict(run.token_usage), cost_usd=run.cost_usd, error=error,
                     duration_ms=run.duration_ms, provider=run.provider, model=model, raw_output=dict(out),
                     store=store, policy=policy, workspace=getattr(extra, "workspace", None))


async def _resolve_session(store: Any, adapter: Any, session: Any, *, agent_id, metadata, tags, context):
    """Returns (session, owned): owned one-shot sessions are completed/failed with their run."""
    from .runtime import manager

    if session is None:
        s = await manager.astart_session(store, adapter, {"agent_id": agent_id, "metadata": metadata,
                                                          "tags": tags, "context": context})
        s = await manager.aactivate_session(store, s.id)
        return s, True
    if not isinstance(session, str) or not session:
        raise AsmError("validation_error", "session must be a session id or a non-empty session name")
    try:
        existing = store.get_session(session)
    except AsmError as err:
        if err.code != "session_not_found":
            raise
        existing = None
        named = [s for s in store.list_sessions() if s.metadata.get("name") == session]
        if named:
            existing = max(named, key=lambda s: (s.created_at, s.id))
    if existing is None:
        attrs = {"agent_id": agent_id, "metadata": {**(metadata or {}), "name": session}, "tags": tags,
                 "context": context}
        if callable(getattr(store, "get_or_create_named_session", None)):
            # atomic across processes: two kernels starting the same new name share one session
            s, created = await manager.astart_named_session(store, adapter, session, attrs)
        else:
            s, created = await manager.astart_session(store, adapter, attrs), True
        if created:
            s = await manager.aactivate_session(store, s.id)
            return s, False
        existing = s
    if existing.status.value != "active":
        existing = await manager.aresume_session(store, existing.id) if existing.status.value == "paused" else \
            await manager.aactivate_session(store, existing.id)
    return existing, False


def _with_publish(on_event: Callable[[dict], Any] | None, publish: Any) -> Callable[[dict], Any] | None:
    """``on_event`` plus broadcasting each event on a PubSub (``publish=True``: the process-wide
    ``asm_nb.pubsub.default_pubsub()``; a ``PubSub``: that one) under its session topic."""
    if publish is False or publish is None:
        return on_event
    from .pubsub import PubSub, event_callback

    if publish is not True and not isinstance(publish, PubSub):
        raise AsmError("validation_error", f"publish must be True, False or an asm_nb.pubsub.PubSub, got {publish!r}")
    broadcast = event_callback(publish if isinstance(publish, PubSub) else None)
    if on_event is None:
        return broadcast

    def both(event: dict) -> Any:
        broadcast(event)
        return on_event(event)

    return both


async def arun_once(prompt: Any, provider: Any = None, *, store: Any = None, model: str | None = None,
                    session: str | None = None, policy: Any = None, snapshot: bool | Mapping = False,
                    cwd: str | None = None, system: str | None = None, max_turns: int | None = None,
                    permission_mode: str | None = None, timeout: Any = "unbounded",
                    on_event: Callable[[dict], Any] | None = None, metadata: Mapping | None = None,
                    tags: Sequence[str] | None = None, agent_id: str | None = None,
                    continuation: Any = "auto", continuation_opts: Mapping | None = None,
                    routing: Mapping | None = None, required_capabilities: Sequence[Any] | None = None,
                    publish: Any = False, _state: dict | None = None, **adapter_options: Any) -> RunResult:
    """Run one prompt on a provider and return its ``RunResult`` (async version of ``run_once``)."""
    from .runtime import manager

    on_event = _with_publish(on_event, publish)

    if prompt is None or (isinstance(prompt, str) and not prompt.strip()):
        raise AsmError("validation_error", "prompt must be a non-empty string (or a messages/command dict)")
    store = resolve_store(store)
    if _is_adapter(provider) and not (model or system or max_turns or permission_mode or adapter_options):
        adapter = provider  # a ready adapter: ``cwd`` only locates the workspace snapshot
    else:
        adapter = resolve_adapter(provider, model=model, cwd=cwd, system=system, max_turns=max_turns,
                                  permission_mode=permission_mode, **adapter_options)
    route_opts, single_reqs = _routing_options(adapter, routing, required_capabilities)
    sess, owned = await _resolve_session(store, adapter, session, agent_id=agent_id, metadata=metadata,
                                         tags=list(tags) if tags else None, context=None)
    try:
        run = await manager.astart_run(store, adapter, sess.id, prompt, required_capabilities=single_reqs)
    except AsmError as err:
        if owned:
            await _close_session(store, sess.id, err)
        raise
    if _state is not None:
        _state.update(run_id=run.id, session_id=sess.id, adapter=adapter, store=store)
    workspace = None
    if snapshot:
        workspace = {"enabled": True, "path": cwd or ".", **(dict(snapshot) if isinstance(snapshot, Mapping) else {})}
    execution = None
    error: AsmError | None = None
    try:
        execution = await manager.aexecute_run(
            store, adapter, run.id, event_callback=on_event, continuation=None if owned else continuation,
            continuation_opts=continuation_opts,
            policy=policy, workspace=workspace, timeout=timeout, adapter_opts=route_opts)
    except AsmError as err:
        error = err
    except BaseException:
        if owned:  # hard cancellation: the run is finalized; close its one-shot session too
            await _close_session(store, sess.id, AsmError("cancelled", "Run was cancelled"))
        raise
    final = store.get_run(run.id)
    result = _result_from_store(store, final, error=error, extra=execution)
    if owned:
        await _close_session(store, sess.id, result.error if not result.ok else None)
    return result


def _routing_options(adapter: Any, routing: Mapping | None, required: Sequence[Any] | None) -> tuple[dict, list]:
    """``(execute options, required capability types for a single adapter)``.

    A router gets ``routing`` (with ``required_capabilities`` merged in) as its execute option, so
    a run no registered provider can serve fails with ``provider_unavailable``; a single adapter
    has its capabilities checked when the run starts (``missing_required_capability``)."""
    if routing is not None and not isinstance(routing, Mapping):
        raise AsmError("validation_error", f"routing must be a dict like {{'required_capabilities': [...]}}, "
                                           f"got {routing!r}")
    if required is not None and (isinstance(required, (str, Mapping)) or not isinstance(required, Sequence)):
        raise AsmError("validation_error", "required_capabilities must be a list")
    ropts = dict(routing or {})
    reqs = list(ropts.get("required_capabilities") or []) + list(required or [])
    if reqs:
        ropts["required_capabilities"] = reqs
    if not ropts:
        return {}, []
    from .routing.router import ProviderRouter

    if isinstance(adapter, ProviderRouter):
        return {"routing": ropts}, []
    extra = sorted(set(ropts) - {"required_capabilities"})
    if extra:
        raise AsmError("validation_error", f"routing options {extra} need a list of providers (provider=[...])")
    types = [r.get("type") if isinstance(r, Mapping) else r for r in reqs]
    return {}, types


async def _close_session(store: Any, session_id: str, error: AsmError | None) -> None:
    from .runtime import manager

    try:
        if error is None:
            await manager.acomplete_session(store, session_id)
        else:
            await manager.afail_session(store, session_id, error)
    except AsmError:
        pass


def run_once(prompt: Any, provider: Any = None, **kwargs: Any) -> RunResult:
    """Run one prompt (for ``shell``: a command) on a provider, wait, and return its ``RunResult``.

    >>> r = run_once("echo hi", provider="shell", store="memory://")
    >>> (r.status, r.output)
    ('completed', 'hi\\n')

    Options: ``store`` (path, URL or store), ``model``, ``session`` (a name or id: later runs in
    the same session see the earlier turns), ``policy``, ``snapshot``, ``cwd``, ``system``,
    ``max_turns``, ``permission_mode``, ``timeout`` (default unbounded: stop with Ctrl-C),
    ``on_event`` (called with each event dict as it streams), ``metadata``, ``tags``,
    ``continuation`` (for ``session``: ``"auto"`` default, ``"replay"``, ``"native"`` or False),
    ``continuation_opts`` (transcript limits ``max_messages``, ``max_chars``,
    ``max_tokens_approx``), ``routing`` (for a provider list: ``{"required_capabilities": [...],
    "prefer": [...], ...}``), ``required_capabilities`` (capability types or ``{"type", "name"}``
    the provider must offer; none can: the run fails with ``provider_unavailable``), ``publish``
    (True: broadcast each event on ``asm_nb.pubsub.default_pubsub()`` under ``asm:session:<id>``;
    or a ``PubSub``), and any adapter option.
    """
    from .runtime import loop, manager

    state: dict[str, Any] = {}

    def on_interrupt() -> None:
        if state.get("run_id"):
            fut = loop.submit(manager.acancel_run(state["store"], state["adapter"], state["run_id"]))
            try:
                fut.result(timeout=15)
            except Exception:
                pass

    return loop.run_sync(arun_once(prompt, provider, _state=state, **kwargs), on_interrupt=on_interrupt)
