"""One prompt on several providers at once, side by side: ``compare`` / ``acompare``,
``CompareResult``, the ``CompareView`` widget, and the ``%%asm --compare`` glue.

>>> r = compare("echo hi", providers=["shell", "mock"], store="memory://")   # doctest: +SKIP
>>> r.frame[["provider", "status", "output"]]                               # doctest: +SKIP

Each provider gets an independent run (``arun_once``, its own one-shot session unless
``session=`` names one); all runs start together on the runtime loop. A provider whose run
fails (or whose adapter raises) only fails its own row; an unknown provider name or a bad
option raises ``AsmError`` before anything starts. Ctrl-C (the notebook's stop button) cancels
every run, waits for the cancellations to be recorded, and re-raises ``KeyboardInterrupt``.

``CompareResult``: ``.results`` (label → ``RunResult``, in the order given), ``.frame`` (one
row per provider, columns ``FRAME_COLUMNS``), ``result[label]``, and a rich display:
``text/plain`` is deterministic (each column's Studio text under a header, then a table
without ids or timings), ``text/html`` the columns side by side plus a summary table.

``CompareView``: one ``RunWidget`` per provider in an ``ipywidgets.HBox`` (one column each, fed
its own run's events; its Cancel button cancels that run only) and a summary row filled in
when the comparison ends. Without a widget front end it shows the same deterministic text.

Imports ``asm_nb.api`` and the runtime loop lazily; pandas / polars / ipywidgets / IPython
only in the functions that need them.

The module runs the comparison (targets resolved before anything starts, the runs, ``compare`` /
``acompare``); the result is in ``compare_result.py``, the live views in ``compare_view.py`` and the
``%%asm --compare`` glue in ``compare_cell.py``; their public names are re-exported here.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..core.errors import AsmError
from ..core.usage import TOKEN_KEYS
from ..runtime.options import check_run_options, public_options, timeout_ms
from .compare_cell import _ComparePlan as _ComparePlan
from .compare_cell import _model_option as _model_option
from .compare_cell import _wait_cell as _wait_cell
from .compare_cell import compare_cell as compare_cell
from .compare_result import _TEXT_COLUMNS as _TEXT_COLUMNS
from .compare_result import FRAME_COLUMNS as FRAME_COLUMNS
from .compare_result import OUTPUT_CHARS as OUTPUT_CHARS
from .compare_result import CompareResult as CompareResult
from .compare_result import _column_block as _column_block
from .compare_result import _column_state as _column_state
from .compare_result import _cut as _cut
from .compare_result import _error_text as _error_text
from .compare_result import _header as _header
from .compare_result import _redact as _redact
from .compare_result import _text_table as _text_table
from .compare_result import summary_html as summary_html
from .compare_view import CompareView as CompareView
from .compare_view import _CompareTextView as _CompareTextView

__all__ = ["compare", "acompare", "CompareResult", "CompareView", "FRAME_COLUMNS", "OUTPUT_CHARS",
           "compare_cell"]

#: ``arun_once`` options that concern the run, not the adapter.
_RUN_OPTIONS = frozenset({"policy", "snapshot", "metadata", "tags", "agent_id", "continuation",
                          "continuation_opts"})
_BACKENDS = ("pandas", "polars", "records")


# ---------------------------------------------------------------------------------------------
# Targets: labels and adapters, resolved before anything runs


@dataclass
class _Target:
    label: str
    adapter: Any
    model: str | None
    session: str | None
    run_options: dict = field(default_factory=dict)  # per-run overrides (the magic's policy stack)


def _provider_list(providers: Any) -> list[tuple[str | None, Any]]:
    """``(label or None, provider)`` pairs from a list, a comma-separated string or a mapping."""
    if isinstance(providers, str):
        providers = [p.strip() for p in providers.split(",") if p.strip()]
    if isinstance(providers, Mapping):
        pairs: list[tuple[str | None, Any]] = []
        for k, v in providers.items():
            if not isinstance(k, str) or not k:
                raise AsmError("validation_error", f"compare: provider labels must be non-empty strings, got {k!r}")
            pairs.append((k, v))
        return pairs
    if providers is None or not isinstance(providers, Iterable):
        raise AsmError("validation_error", "compare needs providers: a list of names (or adapters), "
                                           "a comma-separated string, or a {label: provider} dict")
    return [(None, p) for p in providers]


def _per_label(value: Any, labels: Sequence[str], what: str) -> dict[str, Any]:
    """``value`` for every label: a mapping is looked up per label (unknown keys are an error)."""
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(labels))
        if unknown:
            raise AsmError("validation_error", f"compare: {what} names unknown provider(s) {unknown}; "
                                               f"the providers are {list(labels)}")
        return {label: value.get(label) for label in labels}
    return {label: value for label in labels}


def _labels(pairs: Sequence[tuple[str | None, Any]]) -> list[str]:
    """A label per provider: its given label, else its name (a repeated name gets ``#2``…)."""
    from ..runtime.oneshot import is_adapter as _is_adapter

    if not pairs:
        raise AsmError("validation_error", "compare needs at least one provider")
    labels: list[str] = []
    seen: dict[str, int] = {}
    for label, p in pairs:
        if label is None:
            if isinstance(p, str) and p.strip():
                label = p.strip()
            elif not isinstance(p, str) and _is_adapter(p):
                label = p.name
            else:
                raise AsmError("validation_error", f"compare: a provider must be a registered name or an adapter "
                                                   f"instance, got {p!r}")
        n = seen[label] = seen.get(label, 0) + 1
        labels.append(label if n == 1 else f"{label}#{n}")
    return labels


def _targets(providers: Any, *, model: Any, session: Any, provider_options: Mapping | None,
             adapter_options: Mapping[str, Any]) -> list[_Target]:
    from ..runtime.oneshot import is_adapter as _is_adapter, resolve_adapter

    pairs = _provider_list(providers)
    labels = _labels(pairs)
    if len(set(labels)) != len(labels):
        raise AsmError("validation_error", f"compare: provider labels must be unique, got {labels}")
    models = _per_label(model, labels, "model")
    sessions = _per_label(session, labels, "session")
    per_opts = _per_label(provider_options or {}, labels, "provider_options") if provider_options else {}
    out = []
    for label, (_, p) in zip(labels, pairs):
        opts = {**adapter_options, **dict(per_opts.get(label) or {})}
        m = models[label]
        if _is_adapter(p) and not m and not {k: v for k, v in opts.items() if v is not None and k != "cwd"}:
            adapter = p
        else:
            adapter = resolve_adapter(p, model=m, **opts)
        s = sessions[label]
        if isinstance(s, str) and not isinstance(session, Mapping) and len(labels) > 1:
            s = f"{s}:{label}"  # one conversation per provider
        out.append(_Target(label, adapter, m or getattr(adapter, "model", None), s))
    return out


# ---------------------------------------------------------------------------------------------
# Running


def _failed_result(target: _Target, state: Mapping[str, Any], store: Any, error: AsmError, status: str) -> Any:
    """The row of a provider whose ``arun_once`` raised: the stored run when one was created."""
    from ..runtime.result import RunResult, result_from_store as _result_from_store

    run_id = state.get("run_id")
    if run_id:
        try:
            res = _result_from_store(store, store.get_run(run_id), error=error)
            if res.status in ("pending", "running"):
                res.status = status
            return res
        except Exception:
            pass
    return RunResult(run_id=run_id or "", session_id=state.get("session_id") or "", status=status, error=error,
                     provider=getattr(target.adapter, "name", target.label), model=target.model, store=store,
                     token_usage=dict.fromkeys(TOKEN_KEYS, 0))


async def _run_one(target: _Target, prompt: Any, state: dict, store: Any, on_event: Callable | None,
                   run_kwargs: Mapping[str, Any]) -> Any:
    from ..runtime.oneshot import arun_tracked

    callback: Callable[[dict], Any] | None = None
    if on_event is not None:
        def forward(ev: dict, _label: str = target.label) -> Any:
            return on_event(_label, ev)

        callback = forward
    try:
        return await arun_tracked(prompt, target.adapter, state, store=store, session=target.session,
                                  on_event=callback, **{**run_kwargs, **target.run_options})
    except asyncio.CancelledError:
        return _failed_result(target, state, store, AsmError("cancelled", "Run was cancelled"), "cancelled")
    except Exception as exc:  # one provider's failure stays in its row
        err = exc if isinstance(exc, AsmError) else AsmError(
            "internal_error", f"{target.label}: {type(exc).__name__}: {exc}")
        return _failed_result(target, state, store, err, "failed")


class _Comparison:
    """The runs of one comparison: targets, per-run state (run ids once known) and tasks."""

    def __init__(self, prompt: Any, targets: list[_Target], store: Any, run_kwargs: dict,
                 on_event: Callable | None, backend: str) -> None:
        self.prompt, self.targets, self.store = prompt, targets, store
        self.run_kwargs, self.on_event, self.backend = run_kwargs, on_event, backend
        self.states: dict[str, dict] = {t.label: {} for t in targets}
        self.tasks: dict[str, asyncio.Task] = {}
        self.loop: asyncio.AbstractEventLoop | None = None

    async def run(self) -> "CompareResult":
        self.loop = asyncio.get_running_loop()
        for t in self.targets:
            self.tasks[t.label] = asyncio.ensure_future(
                _run_one(t, self.prompt, self.states[t.label], self.store, self.on_event, self.run_kwargs))
        done = await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        results = {}
        for t, res in zip(self.targets, done):
            if isinstance(res, BaseException):  # a task cancelled from outside before it started
                res = _failed_result(t, self.states[t.label], self.store,
                                     AsmError("cancelled", "Run was cancelled"), "cancelled")
            results[t.label] = res
        return CompareResult(prompt=self.prompt, results=results, backend=self.backend, store=self.store)

    def cancel(self, label: str | None = None, *, wait: bool = False) -> None:
        """Cancel one run (``label``) or all, from any thread other than the runtime loop's.
        A run not started yet is stopped outright; a started one is cancelled through the
        runtime, which records ``run_cancelled``. ``wait``: until the cancellations are recorded."""
        from ..runtime import loop, manager

        futs = []
        for t in self.targets:
            if label is not None and t.label != label:
                continue
            st = self.states[t.label]
            if st.get("run_id"):
                futs.append(loop.submit(manager.acancel_run(st["store"], st["adapter"], st["run_id"])))
            else:
                task = self.tasks.get(t.label)
                if task is not None and self.loop is not None:
                    self.loop.call_soon_threadsafe(task.cancel)
        if wait:
            for f in futs:
                try:
                    f.result(timeout=15)
                except Exception:
                    pass


def _run_and_adapter_options(given: Mapping[str, Any]) -> dict[str, Any]:
    """The per-run and adapter options of ``compare`` as one dict (``_prepare`` splits them),
    validated like ``run_once``'s."""
    adapter = check_run_options(timeout=given.get("timeout"), max_turns=given.get("max_turns"),
                                permission_mode=given.get("permission_mode"), metadata=given.get("metadata"),
                                tags=given.get("tags"), snapshot=given.get("snapshot", False),
                                continuation=given.get("continuation", "auto"), options=given.get("options"))
    named = {k: given[k] for k in ("policy", "metadata", "tags", "agent_id", "system", "max_turns",
                                   "permission_mode", "cwd") if given.get(k) is not None}
    if given.get("snapshot"):
        named["snapshot"] = given["snapshot"]
    if given.get("continuation", "auto") != "auto":
        named["continuation"] = given["continuation"]
    return {**adapter, **named}


def _prepare(prompt: Any, providers: Any, *, store: Any, session: Any, model: Any, timeout: Any,
             on_event: Callable | None, backend: str, provider_options: Mapping | None,
             options: dict[str, Any]) -> _Comparison:
    from ..stores import resolve_store

    if prompt is None or (isinstance(prompt, str) and not prompt.strip()):
        raise AsmError("validation_error", "prompt must be a non-empty string (or a messages/command dict)")
    if backend not in _BACKENDS:
        raise AsmError("validation_error", f"backend must be one of {', '.join(_BACKENDS)}, got {backend!r}")
    if "on_event" in options or "_state" in options:
        raise AsmError("validation_error", "compare: pass on_event as a keyword (called as on_event(label, event))")
    run_kwargs = {k: v for k, v in options.items() if k in _RUN_OPTIONS}
    adapter_options = {k: v for k, v in options.items() if k not in _RUN_OPTIONS}
    if adapter_options.get("cwd") is not None:
        run_kwargs["cwd"] = adapter_options["cwd"]  # the run's workspace too (snapshots)
    run_kwargs["timeout"] = timeout_ms(timeout)  # seconds in, the manager's milliseconds out
    targets = _targets(providers, model=model, session=session, provider_options=provider_options,
                       adapter_options=adapter_options)
    return _Comparison(prompt, targets, resolve_store(store), run_kwargs, on_event, backend)


def _combine(view: Any, on_event: Callable | None) -> Callable | None:
    if view is None:
        return on_event
    if on_event is None:
        return view.on_event

    def both(label: str, ev: dict) -> None:
        view.on_event(label, ev)
        on_event(label, ev)

    return both


@public_options
async def acompare(prompt: Any, providers: Any, *, store: Any = None, session: Any = None, model: Any = None,
                   timeout: float | None = None, on_event: Callable[[str, dict], Any] | None = None,
                   backend: str = "pandas", provider_options: Mapping[str, Mapping] | None = None,
                   policy: Any = None, snapshot: bool | Mapping[str, Any] = False,
                   metadata: Mapping[str, Any] | None = None, tags: Sequence[str] | None = None,
                   agent_id: str | None = None, continuation: str | bool | None = "auto", system: str | None = None,
                   max_turns: int | None = None, permission_mode: str | None = None, cwd: str | None = None,
                   options: Mapping[str, Any] | None = None) -> "CompareResult":
    """Async ``compare``: the runs go on the running event loop; options as ``compare``."""
    opts = _run_and_adapter_options(locals())
    cmp = _prepare(prompt, providers, store=store, session=session, model=model, timeout=timeout,
                   on_event=on_event, backend=backend, provider_options=provider_options, options=opts)
    return await cmp.run()


@public_options
def compare(prompt: Any, providers: Any, *, store: Any = None, session: Any = None, model: Any = None,
            timeout: float | None = None, on_event: Callable[[str, dict], Any] | None = None,
            backend: str = "pandas", provider_options: Mapping[str, Mapping] | None = None,
            view: Any = None, policy: Any = None, snapshot: bool | Mapping[str, Any] = False,
            metadata: Mapping[str, Any] | None = None, tags: Sequence[str] | None = None,
            agent_id: str | None = None, continuation: str | bool | None = "auto", system: str | None = None,
            max_turns: int | None = None, permission_mode: str | None = None, cwd: str | None = None,
            options: Mapping[str, Any] | None = None) -> "CompareResult":
    """Run one prompt on several providers at once and return a ``CompareResult``.

    Args:
        prompt: the prompt (for ``shell``: the command), sent unchanged to every provider.
        providers: names or adapter instances (``["claude", "codex"]``), a comma-separated
            string (``"claude,codex"``), or ``{label: provider}``. A repeated name gets a
            ``#2``, ``#3``… label (``replay``, ``replay#2``).
        store: path, URL or store (default: the default store); every run goes there.
        session: None (a one-shot session per run), a name (each provider continues its own
            session ``"<name>:<label>"``), or ``{label: session}``.
        model: one model for all, or ``{label: model}``.
        timeout: per run, in seconds, as ``run_once`` (default None: unbounded, stop with Ctrl-C).
        on_event: ``on_event(label, event_dict)`` for every event of every run (any thread).
        backend: ``"pandas"`` (default), ``"polars"`` or ``"records"`` for ``.frame``.
        provider_options: ``{label: {adapter option: value}}`` for one provider only
            (e.g. ``{"replay#2": {"cassette": path}}``).
        view: ``True`` shows a live ``CompareView`` while the runs stream (in a notebook; end
            the line with ``;`` so the returned result is not shown a second time), or an
            object with ``on_event(label, event)``, ``poll()``, ``finish(result)`` and
            optionally ``attach_cancel(label, fn)``.
        policy, snapshot, metadata, tags, agent_id, continuation: for every run, as ``run_once``.
        system, max_turns, permission_mode, cwd: for every adapter, as ``run_once``.
        options: other adapter options for every provider (``{"cassette": path}``, ...).

    Raises ``AsmError`` for caller mistakes (unknown provider, bad option) before any run starts;
    a run that fails is a row with status ``failed`` and its ``error``.
    """
    opts = _run_and_adapter_options(locals())
    from ..runtime import loop

    if loop.in_loop_thread():
        raise RuntimeError("compare() called from the asm runtime loop thread; await acompare() instead")
    cmp = _prepare(prompt, providers, store=store, session=session, model=model, timeout=timeout,
                   on_event=on_event, backend=backend, provider_options=provider_options, options=opts)
    if view is True:
        view = CompareView([t.label for t in cmp.targets], models={t.label: t.model for t in cmp.targets})
    if view:
        cmp.on_event = _combine(view, on_event)
    if view and hasattr(view, "attach_cancel"):
        for t in cmp.targets:
            view.attach_cancel(t.label, lambda _l=t.label: cmp.cancel(_l))
    fut = loop.submit(cmp.run())
    result = loop.wait(fut, poll=getattr(view, "poll", None) if view else None,
                       on_interrupt=lambda: cmp.cancel(wait=True), interrupt_grace_s=15)
    if view:
        view.finish(result)
    return result
