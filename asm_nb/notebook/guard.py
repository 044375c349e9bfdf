"""Guard rails in the notebook: the kernel budget, kernel-wide policy defaults, ``%asm health``.

Line commands (registered on ``%load_ext asm_nb``):

- ``%asm budget`` shows ``spent / budget``; ``%asm budget USD`` sets a budget for the whole
  kernel (cumulative over every ``%%asm`` run of the notebook); ``%asm budget off`` removes it;
  ``%asm budget reset`` zeroes what was spent. Once the budget is spent new runs are refused
  until it is raised; a run never spends more than what is left (the remaining budget is its
  ``max_cost_usd``, enforced while it streams).
- ``%asm policy`` shows the effective policy stack (kernel policy → kernel budget → the cell's
  options) and the merged result; ``%asm policy --max-tokens N --deny-tools a,b ...`` sets
  kernel-wide defaults (the ``%%asm`` policy options); ``%asm policy clear`` drops them.
- ``%asm health`` prints every registered provider: available (binary and version, API key
  present — never printed), circuit breaker state, recent failures.

``cell_policy(args, view)`` is what ``%%asm`` calls: it builds the run's policy stack from the
cell options, refuses the run when the kernel budget is spent, hooks the widget's Approve /
Deny buttons to ``--on-violation ask``, shows ``spent / budget`` in the run's view and records
what the run cost when it finishes.
"""

from __future__ import annotations

import argparse
import threading
from dataclasses import dataclass
from typing import Any

from ..core.errors import AsmError
from ..policy import Policy, from_options, stack_merge
from ._approval import ButtonAnswers
from ..policy.options import ON_VIOLATION, add_policy_arguments

__all__ = ["KernelBudget", "BUDGET", "cell_policy", "policy_stack", "register", "ON_VIOLATION"]

@dataclass
class KernelBudget:
    """What this kernel may spend over all its runs (None = no budget) and what it spent."""

    budget_usd: float | None = None
    spent_usd: float = 0.0
    runs: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    @property
    def remaining_usd(self) -> float | None:
        if self.budget_usd is None:
            return None
        return max(0.0, self.budget_usd - self.spent_usd)

    @property
    def exhausted(self) -> bool:
        return self.budget_usd is not None and self.spent_usd >= self.budget_usd

    def record(self, cost_usd: Any) -> None:
        """Add one finished run's cost (None / non-numbers add nothing)."""
        with self._lock:
            self.runs += 1
            if isinstance(cost_usd, (int, float)) and not isinstance(cost_usd, bool) and cost_usd > 0:
                self.spent_usd += float(cost_usd)

    def label(self) -> str:
        """``spent $0.0123 / budget $0.5000``."""
        budget = "none" if self.budget_usd is None else f"${self.budget_usd:.4f}"
        return f"spent ${self.spent_usd:.4f} / budget {budget}"

    def layer(self) -> Policy | None:
        """The budget as a policy layer: ``max_cost_usd`` = what is left."""
        remaining = self.remaining_usd
        if remaining is None:  # no budget set
            return None
        return Policy(name="kernel budget", limits={"max_cost_usd": remaining})


BUDGET = KernelBudget()
_KERNEL_POLICY: dict[str, Policy] = {}


# ------------------------------------------------------------------------------------------
# the %%asm side


def _cell_layer(args: Any, name: str = "cell") -> Policy | None:
    on_violation = getattr(args, "on_violation", None)
    try:
        return from_options(budget_usd=getattr(args, "budget", None), max_tokens=getattr(args, "max_tokens", None),
                            max_tool_calls=getattr(args, "max_tool_calls", None),
                            timeout_s=getattr(args, "timeout", None), deny_tools=getattr(args, "deny_tools", None),
                            allow_tools=getattr(args, "allow_tools", None),
                            on_violation=ON_VIOLATION.get(on_violation, on_violation)
                            if isinstance(on_violation, str) else on_violation, name=name)
    except AsmError as err:
        raise AsmError(err.code, f"bad policy options: {err.message}", details=err.details) from None


def policy_stack(args: Any = None) -> list[Policy]:
    """The layers a ``%%asm`` run gets: kernel policy, kernel budget, the cell's options."""
    layers = [p for p in (_KERNEL_POLICY.get("kernel"), BUDGET.layer(),
                          _cell_layer(args) if args is not None else None) if p is not None]
    return layers


def cell_policy(args: Any, view: Any = None) -> list[Policy] | None:
    """The policy stack of one ``%%asm`` run (None when there is nothing to enforce).

    Raises ``AsmError("policy_violation")`` when the kernel budget is already spent.
    """
    if BUDGET.exhausted:
        raise AsmError("policy_violation",
                       f"Kernel budget spent ({BUDGET.label()}): raise it with %asm budget USD to run more",
                       details={"check": "kernel_budget", "budget_usd": BUDGET.budget_usd,
                                "spent_usd": BUDGET.spent_usd})
    layers = policy_stack(args)
    if view is not None:
        _attach(view, layers)
    if not layers:
        return None
    if stack_merge(layers).on_violation == "request_approval" and view is not None and hasattr(view, "widget"):
        bridge = PolicyApproval()
        view.widget.on_approval(bridge.decide)
        last = layers[-1]
        layers[-1] = Policy(name=last.name, limits=last.limits, tool_rules=last.tool_rules,
                            on_violation=last.on_violation, metadata={**last.metadata, "approval_callback": bridge})
    return layers



class PolicyApproval(ButtonAnswers):
    """The policy runtime's approval callback, answered by the widget's Approve / Deny
    (``"approve"`` | ``"deny"``)."""


def _attach(view: Any, layers: list[Policy]) -> None:
    """Show ``spent / budget`` in the view and count the run's cost when it finishes."""
    label = None
    widget = getattr(view, "widget", None)
    if BUDGET.budget_usd is not None and widget is not None and hasattr(widget, "_footer"):
        try:
            import ipywidgets as W

            label = W.HTML(value=f'<span class="asm-muted">{BUDGET.label()}</span>')
            widget._footer.children = tuple(widget._footer.children) + (label,)
        except Exception:  # the widget layout changed: the budget is still enforced
            label = None
    finish = view.finish

    def finish_and_record(result: Any) -> Any:
        BUDGET.record(getattr(result, "cost_usd", None))
        out = finish(result)
        if BUDGET.budget_usd is not None:
            if label is not None:
                label.value = f'<span class="asm-muted">{BUDGET.label()}</span>'
            elif widget is None and getattr(view, "renderer", None) is not None:
                print(f"budget: {BUDGET.label()}")
        return out

    view.finish = finish_and_record


# ------------------------------------------------------------------------------------------
# %asm budget | policy | health


def _out(text: str) -> None:
    print(text)


def cmd_budget(magics: Any, rest: list[str]) -> None:
    """``%asm budget [USD | off | reset]``."""
    if not rest:
        _out(BUDGET.label())
        return None
    if len(rest) != 1:
        raise AsmError("validation_error", "usage: %asm budget [USD | off | reset]")
    arg = rest[0].lstrip("$")
    if arg == "off":
        BUDGET.budget_usd = None
    elif arg == "reset":
        BUDGET.spent_usd = 0.0
    else:
        try:
            value = float(arg)
        except ValueError:
            raise AsmError("validation_error", f"budget must be an amount in USD (e.g. 0.50), got {rest[0]!r}") \
                from None
        if not value >= 0 or value == float("inf"):
            raise AsmError("validation_error", f"budget must be a finite amount >= 0, got {rest[0]!r}")
        BUDGET.budget_usd = value
    _out(BUDGET.label())
    return None


def _policy_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="%asm policy", add_help=False, exit_on_error=False)
    add_policy_arguments(p)
    return p


def cmd_policy(magics: Any, rest: list[str]) -> None:
    """``%asm policy`` (show) | ``%asm policy clear`` | ``%asm policy --max-tokens N ...``."""
    if rest == ["clear"]:
        _KERNEL_POLICY.clear()
        _out("kernel policy cleared")
        return None
    if rest:
        try:
            args = _policy_parser().parse_args(rest)
        except (argparse.ArgumentError, SystemExit) as exc:
            raise AsmError("validation_error", f"bad %asm policy options: {exc}") from None
        layer = _cell_layer(args, name="kernel")
        if layer is None:
            raise AsmError("validation_error", "usage: %asm policy [clear | --budget USD --max-tokens N ...]")
        _KERNEL_POLICY["kernel"] = layer
    layers = policy_stack()
    if not layers:
        _out("no policy: runs are not limited (set one with %%asm --budget ..., %asm budget USD or %asm policy ...)")
        return None
    for i, layer in enumerate(layers, 1):
        _out(f"{i}. {layer.describe()}")
    _out(f"effective: {stack_merge(layers).describe()}")
    if BUDGET.budget_usd is not None:
        _out(f"kernel budget: {BUDGET.label()}")
    return None


def cmd_health(magics: Any, rest: list[str]) -> None:
    """``%asm health``: the provider table."""
    from ..routing.health import health_table

    _out(health_table())
    return None


def register(magics_module: Any = None) -> None:
    """Add ``budget``, ``policy`` and ``health`` to ``%asm``."""
    if magics_module is None:
        from . import magics as magics_module
    magics_module.register_line_command("budget", cmd_budget)
    magics_module.register_line_command("policy", cmd_policy)
    magics_module.register_line_command("health", cmd_health)


register()  # importing this module (the extension does) adds the commands
