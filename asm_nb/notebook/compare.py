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
"""

from __future__ import annotations

import asyncio
import html
import queue
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..core.errors import AsmError
from ..core.usage import CACHE_CREATION_TOKENS, CACHE_READ_TOKENS, TOKEN_KEYS
from ..runtime.options import check_run_options, public_options, timeout_ms

__all__ = ["compare", "acompare", "CompareResult", "CompareView", "FRAME_COLUMNS", "OUTPUT_CHARS",
           "compare_cell"]

#: Columns of ``CompareResult.frame``, in order.
FRAME_COLUMNS = ["provider", "status", "output", "tool_calls", "input_tokens", "output_tokens",
                 "cache_read_tokens", "cache_creation_tokens", "cost_usd", "duration_ms", "error",
                 "model", "run_id"]
#: ``output`` in the frame is cut to this many characters (the full text is in ``.results``).
OUTPUT_CHARS = 200
_TEXT_COLUMNS = ["provider", "status", "tools", "in", "out", "cache", "cost_usd", "error"]
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
            elif _is_adapter(p):
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

    callback = None
    if on_event is not None:
        def callback(ev: dict, _label: str = target.label) -> Any:
            return on_event(_label, ev)
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


# ---------------------------------------------------------------------------------------------
# The result


def _error_text(err: Any) -> str | None:
    if err is None:
        return None
    code = getattr(err, "code", None)
    msg = getattr(err, "message", None) or str(err)
    return f"{code}: {msg}" if code else str(msg)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _column_state(result: Any, redact: Any = None) -> Any:
    """The run view model (``RunState``) of a finished run, rebuilt from its events."""
    from ..rendering.runview import RunState, result_fields

    r = result_fields(result)
    st = RunState(provider=r.get("provider"), model=r.get("model"), session_id=r.get("session_id"),
                  run_id=r.get("run_id"), redact=redact, clock=lambda: 0.0)
    for e in r.get("events") or []:
        st.apply(e)
    st.finish(r)
    return st


def _header(label: str, status: str) -> str:
    return f"── {label} · {status} ──"


def _column_block(label: str, status: str, body: str, output: str | None) -> str:
    """One column of the text view: a header, the run's rendered text, and its final output
    when the rendering did not show it (a provider that sends its answer in one message)."""
    body = body.rstrip("\n")
    out = (output or "").strip()
    if out and " ".join(out.split()) not in " ".join(body.split()):
        body += ("\n\n" if body else "") + "\n".join("  " + line for line in _redact(out).splitlines())
    return _header(label, status) + ("\n" + body if body else "") + "\n"


def _text_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    def cell(v: Any) -> str:
        if v is None:
            return ""
        if isinstance(v, float):
            return f"{v:.4f}"
        return _cut(str(v).replace("\n", " "), 60)

    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


@dataclass
class CompareResult:
    """The outcome of ``compare``: ``results`` (label → ``RunResult``, in the order given) and
    ``frame`` (a DataFrame, one row per provider: ``FRAME_COLUMNS``)."""

    prompt: Any
    results: dict = field(default_factory=dict)
    backend: str = "pandas"
    store: Any = field(default=None, repr=False, compare=False)
    _frame: Any = field(default=None, init=False, repr=False, compare=False)

    @property
    def providers(self) -> list[str]:
        """The provider labels, in order."""
        return list(self.results)

    @property
    def ok(self) -> bool:
        """True when every run completed."""
        return all(r.ok for r in self.results.values())

    def __getitem__(self, label: str) -> Any:
        try:
            return self.results[label]
        except KeyError:
            raise KeyError(f"no provider {label!r} in this comparison; providers: {self.providers}") from None

    def __iter__(self):
        return iter(self.results.values())

    def __len__(self) -> int:
        return len(self.results)

    def rows(self) -> list[dict[str, Any]]:
        """One dict per provider with the ``FRAME_COLUMNS`` keys."""
        out = []
        for label, r in self.results.items():
            usage = r.token_usage or {}
            out.append({
                "provider": label, "status": r.status, "output": _cut(r.output or "", OUTPUT_CHARS),
                "tool_calls": len(r.tool_calls),
                **{k: int(usage.get(k) or 0) for k in TOKEN_KEYS},
                "cost_usd": r.cost_usd, "duration_ms": r.duration_ms, "error": _error_text(r.error),
                "model": r.model, "run_id": r.run_id or None,
            })
        return out

    @property
    def frame(self) -> Any:
        """The outcome as a DataFrame (``backend``: pandas, polars, or a list of dicts)."""
        if self._frame is None:
            rows = self.rows()
            if self.backend == "records":
                self._frame = rows
            elif self.backend == "polars":
                import polars as pl

                self._frame = pl.DataFrame(rows, infer_schema_length=None).select(FRAME_COLUMNS)
            else:
                import pandas as pd

                self._frame = pd.DataFrame(rows, columns=FRAME_COLUMNS)
        return self._frame

    def to_dict(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "results": {k: r.to_dict() for k, r in self.results.items()}}

    # -- display ----------------------------------------------------------------------------------

    def table_text(self) -> str:
        """The deterministic summary table (no ids, no timings)."""
        rows = []
        for row in self.rows():
            rows.append({"provider": row["provider"], "status": row["status"], "tools": row["tool_calls"],
                         "in": row["input_tokens"], "out": row["output_tokens"],
                         "cache": row[CACHE_READ_TOKENS] + row[CACHE_CREATION_TOKENS],
                         "cost_usd": row["cost_usd"], "error": row["error"]})
        return _redact(_text_table(rows, _TEXT_COLUMNS))

    def plain_text(self) -> str:
        """Deterministic text: each provider's Studio text under a header, then the table."""
        parts = []
        for label, r in self.results.items():
            parts.append(_column_block(label, r.status, _column_state(r).plain_text(), r.output))
        return "\n".join(parts) + "\n" + self.table_text() + "\n"

    def table_html(self) -> str:
        """The summary table as HTML (with durations)."""
        return summary_html(self.rows())

    def _repr_html_(self) -> str:
        cols = []
        for r in self.results.values():
            cols.append(f'<div class="asm-compare-col" style="flex:1 1 0;min-width:0">'
                        f'{_column_state(r).static_html(deterministic=True)}</div>')
        return (f'<div class="asm-compare"><div style="display:flex;gap:12px;align-items:flex-start">'
                f'{"".join(cols)}</div>{self.table_html()}</div>')

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict:
        return {"text/plain": self.plain_text(), "text/html": self._repr_html_()}

    def __repr__(self) -> str:
        return self.plain_text()


def _redact(text: str) -> str:
    from ..rendering.runview import make_redactor

    return make_redactor(None)(text)


def summary_html(rows: list[dict[str, Any]]) -> str:
    """An HTML table of ``CompareResult.rows()``: provider, model, status, tools, tokens, cost,
    duration, error (escaped and redacted)."""
    from ..rendering.runview import make_redactor

    redact = make_redactor(None)
    head = ["provider", "model", "status", "tools", "in", "out", "cache", "cost", "duration", "error"]
    body = []
    for r in rows:
        cost = "—" if r["cost_usd"] is None else f"${r['cost_usd']:.4f}"
        dur = "" if r["duration_ms"] is None else f"{r['duration_ms'] / 1000:.1f}s"
        cls = "asm-ok" if r["status"] == "completed" else "asm-err"
        cells = [f"<b>{html.escape(str(r['provider']))}</b>", html.escape(str(r.get("model") or "")),
                 f'<span class="{cls}">{html.escape(str(r["status"]))}</span>', str(r["tool_calls"]),
                 f"{r['input_tokens']:,}", f"{r['output_tokens']:,}",
                 f"{r['cache_read_tokens'] + r['cache_creation_tokens']:,}", cost, dur,
                 html.escape(redact(r["error"] or ""))]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return ('<table class="asm-compare-summary"><thead><tr>' + "".join(f"<th>{h}</th>" for h in head)
            + "</tr></thead><tbody>" + "".join(body) + "</tbody></table>")


# ---------------------------------------------------------------------------------------------
# The live widget


class CompareView:
    """Live side-by-side view: one ``RunWidget`` per provider in an ``HBox``, then a summary row.

    The view protocol ``compare`` / the magic drive: ``on_event(label, event)`` (any thread),
    ``poll()`` (main thread; displays the view on the first call), ``attach_cancel(label, fn)``,
    ``finish(compare_result)``, ``result_display(result)``, ``plain_text()``.
    """

    def __init__(self, labels: Sequence[str], *, models: Mapping[str, Any] | None = None,
                 max_fps: float = 20.0, **widget_options: Any) -> None:
        import ipywidgets as W

        from .widgets import LiveRunView, RunWidget

        models = dict(models or {})
        self.labels = list(labels)
        self.columns: dict[str, Any] = {
            label: LiveRunView(RunWidget(provider=label, model=models.get(label), max_fps=max_fps, **widget_options))
            for label in self.labels}
        for col in self.columns.values():
            col._shown = True  # the compare view displays them; a column never displays itself
            col.widget.close_on_finish = False  # the compare view replaces and closes them all
            col.widget.root.layout.flex = "1 1 0%"
            col.widget.root.layout.min_width = "0"
        self.summary = W.HTML(value=f'<span class="asm-muted">comparing {len(self.labels)} providers…</span>')
        self.row = W.HBox([c.widget.root for c in self.columns.values()],
                          layout=W.Layout(width="100%", align_items="flex-start", grid_gap="12px"))
        self.root = W.VBox([self.row, self.summary])
        self.root.add_class("asm-compare")
        self.result: CompareResult | None = None
        self._shown = False
        self._handle: Any = None
        self._lock = threading.Lock()

    @property
    def widgets(self) -> dict[str, Any]:
        """label → ``RunWidget``."""
        return {label: col.widget for label, col in self.columns.items()}

    def on_event(self, label: str, event: dict) -> None:
        col = self.columns.get(label)
        if col is not None:
            col.on_event(event)

    def poll(self) -> None:
        if not self._shown:
            self._shown = True
            self.display()
        for col in self.columns.values():
            col.widget.poll()

    def display(self) -> Any:
        from IPython.display import display

        self._shown = True
        self._handle = display(self, display_id=True)
        return self._handle

    def attach_cancel(self, label: str, fn: Callable[[], Any]) -> None:
        col = self.columns.get(label)
        if col is not None:
            col.attach_cancel(fn)

    def finish(self, result: CompareResult) -> None:
        """Finish every column from its ``RunResult`` and fill in the summary row."""
        with self._lock:
            self.result = result
        for label, col in self.columns.items():
            r = result.results.get(label)
            if r is not None:
                col.finish(r)
            else:
                col.fail(AsmError("cancelled", "Run was cancelled"))
        self.summary.value = result.table_html()
        if self._handle is not None:
            # the output becomes the static comparison (panes + table): a saved notebook keeps it
            try:
                self._handle.update(result)
            except Exception:  # the output may be gone
                pass
            self.close()

    def close(self) -> None:
        """Close every widget model of the view (its panes' too)."""
        for col in self.columns.values():
            col.widget.close()
        for w in (self.summary, self.row, self.root):
            try:
                w.close()
            except Exception:
                pass

    def fail(self, exc: BaseException) -> None:
        for col in self.columns.values():
            col.fail(exc)

    def result_display(self, result: Any) -> Any:
        if self._shown:
            return None
        self._shown = True
        return self

    def live_display(self) -> Any:
        self._shown = True
        return self

    def plain_text(self) -> str:
        """Deterministic text: each column's text under a header, then (when finished) the table."""
        parts = []
        for label, col in self.columns.items():
            w = col.widget
            r = self.result.results.get(label) if self.result is not None else None
            parts.append(_column_block(label, w.state.status, w.plain_text(), r.output if r is not None else None))
        text = "\n".join(parts)
        if self.result is not None:
            text += "\n" + self.result.table_text() + "\n"
        return text

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kwargs: Any) -> dict:
        from .widgets import WIDGET_MIME

        if self.result is not None:  # finished: the static comparison, no widget
            return self.result._repr_mimebundle_()
        data: dict[str, Any] = {"text/plain": self.plain_text()}
        data[WIDGET_MIME] = {"version_major": 2, "version_minor": 0, "model_id": self.root.model_id}
        return data

    def __repr__(self) -> str:
        return f"<CompareView {', '.join(self.labels)}>"


class _CompareTextView:
    """The text view of ``%%asm --compare`` outside a widget front end: each run's events are
    rendered into its own buffer (the same text a single ``%%asm`` cell prints), then printed
    column after column under a header, followed by the table. Deterministic."""

    def __init__(self, labels: Sequence[str], renderer: str, *, budget: Any = None) -> None:
        from .magics import _TextView

        self.renderer = renderer
        self.budget = budget  # the kernel budget (guard.BUDGET): every run's cost counts
        self.columns = {label: _TextView(renderer) for label in labels}

    def on_event(self, label: str, event: dict) -> None:
        col = self.columns.get(label)
        if col is not None:
            col.on_event(event)

    def poll(self) -> None:
        pass

    def attach_cancel(self, label: str, fn: Callable[[], Any]) -> None:
        pass

    def text(self, result: CompareResult) -> str:
        parts = []
        for label, col in self.columns.items():
            chunks = []
            while True:
                try:
                    chunks.append(col.pending.get_nowait())
                except queue.Empty:
                    break
            if col.renderer is not None:
                chunks.append(col.renderer.finish() or "")
            r = result.results.get(label)
            status = r.status if r is not None else "cancelled"
            parts.append(_column_block(label, status, "".join(chunks), r.output if r is not None else None))
        return "\n".join(parts) + "\n" + result.table_text() + "\n"

    def finish(self, result: CompareResult) -> None:
        if self.budget is not None:
            for r in result.results.values():
                self.budget.record(r.cost_usd)
        if self.renderer == "none":
            return
        text = self.text(result)
        if self.budget is not None and self.budget.budget_usd is not None:
            text += f"budget: {self.budget.label()}\n"
        sys.stdout.write(text)
        sys.stdout.flush()

    def fail(self, exc: BaseException) -> None:
        print(f"compare failed: {exc}", file=sys.stderr)

    def result_display(self, result: Any) -> Any:
        return None

    def live_display(self) -> Any:
        return None


# ---------------------------------------------------------------------------------------------
# %%asm --compare


def _model_option(value: str | None) -> Any:
    """``-m sonnet`` (all) or ``-m claude=sonnet,codex=gpt-5`` (per provider)."""
    if not value or "=" not in value:
        return value
    out = {}
    for part in value.split(","):
        k, sep, v = part.partition("=")
        if not sep or not k.strip() or not v.strip():
            raise AsmError("validation_error", f"--model with --compare: expected NAME=MODEL,..., got {value!r}")
        out[k.strip()] = v.strip()
    return out


class _ComparePlan:
    """A prepared ``%%asm --compare`` cell, run by ``arun_cell_magic`` on the kernel's loop."""

    foreground_plan = True

    def __init__(self, magics: Any, cmp: _Comparison, view: Any, out: str | None) -> None:
        self.magics, self.cmp, self.view, self.out = magics, cmp, view, out

    async def run(self) -> None:
        from ..runtime import loop

        afut = asyncio.wrap_future(loop.submit(self.cmp.run()))
        interrupted = False
        while True:
            try:
                await asyncio.wait({afut}, timeout=0.05)
                self.view.poll()
            except (asyncio.CancelledError, KeyboardInterrupt):
                if not interrupted:  # the stop button: cancel every run, wait for them to end
                    interrupted = True
                    self.cmp.cancel()  # does not block: the runs record their cancellation
                continue
            if afut.done():
                break
        self.magics._complete(afut.result(), self.view, self.out)


def compare_cell(magics: Any, args: Any, prompt: str, *, _async: bool = False) -> Any:
    """``%%asm -p a,b --compare``: run ``prompt`` on each provider side by side; bind ``_`` (and
    ``--out``) to the ``CompareResult`` (its ``.frame`` is the DataFrame)."""
    from . import magics as M

    for opt, flag in (("background", "--background"), ("record", "--record"), ("replay", "--replay")):
        if getattr(args, opt, None):
            raise M.UsageError(f"{flag} cannot be combined with --compare")
    provider = args.provider or M._default("provider")
    if not provider:
        raise M.UsageError("--compare needs providers: -p claude,codex")
    renderer = args.renderer or M._default("renderer") or M.config.get("default_renderer") or "auto"
    if renderer not in M.RENDERERS:
        raise M.UsageError(f"unknown renderer {renderer!r}; expected one of {', '.join(M.RENDERERS)}")
    if args.quiet:
        renderer = "none"
    widget = M._want_widget(renderer)
    pairs = _provider_list(provider)
    bridges: dict[str, Any] = {}
    if widget:  # a Claude column's Approve / Deny buttons answer its adapter's tool approvals
        bridges = {label: M.ApprovalBridge() for label, (_, p) in zip(_labels(pairs), pairs)
                   if p in M.APPROVAL_PROVIDERS}
    snapshot: Any = {"rollback_on_failure": True} if args.rollback_on_failure else args.snapshot
    options = dict(system=args.system, max_turns=args.max_turns, permission_mode=args.permission_mode,
                   cwd=args.cwd, snapshot=snapshot)
    cmp = _prepare(prompt, provider, store=args.store or M._default("store"), session=args.session,
                   model=_model_option(args.model) or M._default("model"),
                   timeout=args.timeout or None, on_event=None,
                   backend="pandas", options=options,
                   provider_options={k: {"approval_callback": b} for k, b in bridges.items()} or None)
    labels = [t.label for t in cmp.targets]
    guard = M._guard()
    view: Any
    if widget:
        view = CompareView(labels, models={t.label: t.model for t in cmp.targets})
        for t in cmp.targets:
            column = view.columns[t.label]
            if t.label in bridges:
                column.widget.on_approval(bridges[t.label].decide)
            t.run_options["policy"] = guard.cell_policy(args, column)  # kernel budget + policy options
    else:
        view = _CompareTextView(labels, "studio" if renderer in ("auto", "widget", "card") else renderer,
                                budget=guard.BUDGET)
        for t in cmp.targets:
            t.run_options["policy"] = guard.cell_policy(args, None)
    cmp.on_event = view.on_event
    for t in cmp.targets:
        view.attach_cancel(t.label, lambda _l=t.label: cmp.cancel(_l))
    if _async:
        return _ComparePlan(magics, cmp, view, args.out)
    result = _wait_cell(cmp, view)
    magics._complete(result, view, args.out)
    return None


def _wait_cell(cmp: _Comparison, view: Any) -> CompareResult:
    """Run and wait in a plain IPython shell; Ctrl-C cancels every run and shows them cancelled."""
    from ..runtime import loop

    fut = loop.submit(cmp.run())
    try:
        return loop.wait(fut, poll=view.poll, on_interrupt=lambda: cmp.cancel(wait=True), interrupt_grace_s=15)
    except KeyboardInterrupt:
        if fut.done() and not fut.cancelled() and fut.exception() is None:
            return fut.result()
        raise
