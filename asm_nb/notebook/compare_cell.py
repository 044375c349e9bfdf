"""``%%asm -p a,b --compare``: the cell magic's glue around ``compare`` (options from the magic's
arguments, a ``CompareView`` or the text view, the kernel budget and policy per run, Approve / Deny
buttons per Claude column), run in the foreground on the kernel's loop (``_ComparePlan``) or waited
for in a plain IPython shell (``_wait_cell``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ..core.errors import AsmError
from .compare_view import CompareView, _CompareTextView

if TYPE_CHECKING:
    from .compare import _Comparison
    from .compare_result import CompareResult


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
    from .compare import _labels, _prepare, _provider_list

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
