"""One prompt, one run: the implementation behind ``asm_nb.run_once`` / ``arun_once``.

``resolve_adapter`` turns a provider name, a list of names (routed in order) or an adapter into
an adapter; ``resolve_session`` finds or creates the session a run belongs to; ``arun_once`` runs
the prompt through the manager and returns the public ``RunResult``. ``asm_nb.api`` re-exports
these; the rest of the runtime (stream, batch, server) calls them from here, so the runtime never
imports the facade above it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Callable

from .. import config
from ..core.errors import AsmError
from ..stores import resolve_store
from .options import check_run_options, public_options, timeout_ms
from .result import RunResult, result_from_store

__all__ = ["arun_once", "arun_tracked", "run_once", "resolve_adapter", "resolve_session", "close_session",
           "is_adapter", "RunResult"]


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
    from ..providers import create_adapter

    opts = {k: v for k, v in options.items() if v is not None}
    if provider is None:
        provider = config.get("default_provider") or "shell"
    if isinstance(provider, str) and "," in provider:
        provider = [p.strip() for p in provider.split(",") if p.strip()]
    if isinstance(provider, (list, tuple)):
        if len(provider) == 1:
            return resolve_adapter(provider[0], **opts)
        try:
            from ..routing.router import ProviderRouter
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


def is_adapter(obj: Any) -> bool:
    """True for an adapter instance (it has ``execute`` and a string ``name``)."""
    return callable(getattr(obj, "execute", None)) and isinstance(getattr(obj, "name", None), str)


async def resolve_session(store: Any, adapter: Any, session: Any, *, agent_id, metadata, tags, context):
    """Returns (session, owned): owned one-shot sessions are completed/failed with their run."""
    from . import manager

    if session is None:
        s = await manager.astart_session(store, adapter, {"agent_id": agent_id, "metadata": metadata,
                                                          "tags": tags, "context": context}, active=True)
        return s, True
    if not isinstance(session, str) or not session:
        raise AsmError("validation_error", "session must be a session id or a non-empty session name")
    try:
        existing = store.get_session(session)
    except AsmError as err:
        if err.code != "session_not_found":
            raise
        existing = None
        if not callable(getattr(store, "get_or_create_named_session", None)):
            # a store without the atomic lookup below: scan (its other stores find the name by index)
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
    from ..pubsub import PubSub, event_callback

    if publish is not True and not isinstance(publish, PubSub):
        raise AsmError("validation_error", f"publish must be True, False or an asm_nb.pubsub.PubSub, got {publish!r}")
    broadcast = event_callback(publish if isinstance(publish, PubSub) else None)
    if on_event is None:
        return broadcast

    def both(event: dict) -> Any:
        broadcast(event)
        return on_event(event)

    return both


@public_options
async def arun_once(prompt: Any, provider: Any = None, *, store: Any = None, model: str | None = None,
                    session: str | None = None, policy: Any = None, snapshot: bool | Mapping[str, Any] = False,
                    cwd: str | None = None, system: str | None = None, max_turns: int | None = None,
                    permission_mode: str | None = None, timeout: float | None = None,
                    on_event: Callable[[dict], Any] | None = None, metadata: Mapping[str, Any] | None = None,
                    tags: Sequence[str] | None = None, agent_id: str | None = None,
                    continuation: str | bool | None = "auto", continuation_opts: Mapping[str, Any] | None = None,
                    routing: Mapping[str, Any] | None = None, required_capabilities: Sequence[Any] | None = None,
                    publish: Any = False, options: Mapping[str, Any] | None = None) -> RunResult:
    """Run one prompt on a provider and return its ``RunResult`` (async version of ``run_once``;
    same options)."""
    return await arun_tracked(prompt, provider, None, **_checked(locals()))


def _checked(given: Mapping[str, Any]) -> dict[str, Any]:
    """The public options (seconds, ``options=``) as ``arun_tracked``'s keywords (milliseconds,
    adapter options spread), after validation."""
    kw = {k: v for k, v in given.items() if k not in ("prompt", "provider", "options")}
    adapter_options = check_run_options(timeout=kw["timeout"], max_turns=kw["max_turns"],
                                        permission_mode=kw["permission_mode"], metadata=kw["metadata"],
                                        tags=kw["tags"], snapshot=kw["snapshot"], continuation=kw["continuation"],
                                        options=given.get("options"))
    clash = sorted(set(adapter_options) & set(kw))
    if clash:
        raise AsmError("validation_error", f"options: {clash[0]!r} is a run option; pass it as {clash[0]}=...")
    kw["timeout"] = timeout_ms(kw["timeout"])
    return {**kw, **adapter_options}


async def arun_tracked(prompt: Any, provider: Any, state: dict | None, *, store: Any = None, model: str | None = None,
                    session: str | None = None, policy: Any = None, snapshot: bool | Mapping = False,
                    cwd: str | None = None, system: str | None = None, max_turns: int | None = None,
                    permission_mode: str | None = None, timeout: Any = "unbounded",
                    on_event: Callable[[dict], Any] | None = None, metadata: Mapping | None = None,
                    tags: Sequence[str] | None = None, agent_id: str | None = None,
                    continuation: Any = "auto", continuation_opts: Mapping | None = None,
                    routing: Mapping | None = None, required_capabilities: Sequence[Any] | None = None,
                    publish: Any = False, **adapter_options: Any) -> RunResult:
    """``arun_once``; ``state`` (when given) receives run_id, session_id, adapter and store as soon
    as the run exists, so a sync caller, a stream or a notebook cell can cancel it."""
    from . import manager

    on_event = _with_publish(on_event, publish)

    if prompt is None or (isinstance(prompt, str) and not prompt.strip()):
        raise AsmError("validation_error", "prompt must be a non-empty string (or a messages/command dict)")
    store = resolve_store(store)
    if is_adapter(provider) and not (model or system or max_turns or permission_mode or adapter_options):
        adapter = provider  # a ready adapter: ``cwd`` only locates the workspace snapshot
    else:
        adapter = resolve_adapter(provider, model=model, cwd=cwd, system=system, max_turns=max_turns,
                                  permission_mode=permission_mode, **adapter_options)
    route_opts, single_reqs = _routing_options(adapter, routing, required_capabilities)
    sess, owned = await resolve_session(store, adapter, session, agent_id=agent_id, metadata=metadata,
                                         tags=list(tags) if tags else None, context=None)
    workspace = None
    if snapshot:
        workspace = {"enabled": True, "path": cwd or ".", **(dict(snapshot) if isinstance(snapshot, Mapping) else {})}
    started: list = []

    def on_started(run: Any) -> None:
        started.append(run)
        if state is not None:
            state.update(run_id=run.id, session_id=sess.id, adapter=adapter, store=store)

    execution = None
    error: AsmError | None = None
    try:
        # created and started at once: the run is written once, running (no pending row)
        execution = await manager.astart_and_execute_run(
            store, adapter, sess.id, prompt, required_capabilities=single_reqs, on_started=on_started,
            event_callback=on_event, continuation=None if owned else continuation,
            continuation_opts=continuation_opts,
            policy=policy, workspace=workspace, timeout=timeout, adapter_opts=route_opts)
    except AsmError as err:
        if not started:  # the run was never stored (e.g. a missing capability)
            if owned:
                await close_session(store, sess.id, err)
            raise
        error = err
    except BaseException:
        if owned and started:  # hard cancellation: the run is finalized; close its one-shot session too
            await close_session(store, sess.id, AsmError("cancelled", "Run was cancelled"))
        raise
    final = store.get_run(started[0].id)
    result = result_from_store(store, final, error=error, extra=execution)
    if owned:
        await close_session(store, sess.id, result.error if not result.ok else None)
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
    from ..routing.router import ProviderRouter

    if isinstance(adapter, ProviderRouter):
        return {"routing": ropts}, []
    extra = sorted(set(ropts) - {"required_capabilities"})
    if extra:
        raise AsmError("validation_error", f"routing options {extra} need a list of providers (provider=[...])")
    types = [r.get("type") if isinstance(r, Mapping) else r for r in reqs]
    return {}, types


async def close_session(store: Any, session_id: str, error: AsmError | None) -> None:
    from . import manager

    try:
        if error is None:
            await manager.acomplete_session(store, session_id)
        else:
            await manager.afail_session(store, session_id, error)
    except AsmError:
        pass


@public_options
def run_once(prompt: Any, provider: Any = None, *, store: Any = None, model: str | None = None,
             session: str | None = None, policy: Any = None, snapshot: bool | Mapping[str, Any] = False,
             cwd: str | None = None, system: str | None = None, max_turns: int | None = None,
             permission_mode: str | None = None, timeout: float | None = None,
             on_event: Callable[[dict], Any] | None = None, metadata: Mapping[str, Any] | None = None,
             tags: Sequence[str] | None = None, agent_id: str | None = None,
             continuation: str | bool | None = "auto", continuation_opts: Mapping[str, Any] | None = None,
             routing: Mapping[str, Any] | None = None, required_capabilities: Sequence[Any] | None = None,
             publish: Any = False, options: Mapping[str, Any] | None = None) -> RunResult:
    """Run one prompt (for ``shell``: a command) on a provider, wait, and return its ``RunResult``.

    >>> r = run_once("echo hi", provider="shell", store="memory://")
    >>> (r.status, r.output)
    ('completed', 'hi\\n')

    Options: ``store`` (path, URL or store), ``model``, ``session`` (a name or id: later runs in
    the same session see the earlier turns), ``policy``, ``snapshot``, ``cwd``, ``system``,
    ``max_turns``, ``permission_mode``, ``timeout`` (seconds; default None: unbounded, stop with
    Ctrl-C),
    ``on_event`` (called with each event dict as it streams), ``metadata``, ``tags``,
    ``continuation`` (for ``session``: ``"auto"`` default, ``"replay"``, ``"native"`` or False),
    ``continuation_opts`` (transcript limits ``max_messages``, ``max_chars``,
    ``max_tokens_approx``), ``routing`` (for a provider list: ``{"required_capabilities": [...],
    "prefer": [...], ...}``), ``required_capabilities`` (capability types or ``{"type", "name"}``
    the provider must offer; none can: the run fails with ``provider_unavailable``), ``publish``
    (True: broadcast each event on ``asm_nb.pubsub.default_pubsub()`` under ``asm:session:<id>``;
    or a ``PubSub``), and ``options`` (a dict of adapter options, e.g. ``{"cassette": path}`` for
    ``replay``). A bad value raises ``AsmError("validation_error")`` naming the option.
    """
    kwargs = _checked(locals())  # first: locals() is exactly the options here
    from . import loop, manager

    state: dict[str, Any] = {}

    def on_interrupt() -> None:
        if state.get("run_id"):
            fut = loop.submit(manager.acancel_run(state["store"], state["adapter"], state["run_id"]))
            try:
                fut.result(timeout=15)
            except Exception:
                pass

    return loop.run_sync(arun_tracked(prompt, provider, state, **kwargs), on_interrupt=on_interrupt)
