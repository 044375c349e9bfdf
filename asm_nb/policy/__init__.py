"""Guard rails for runs: the ``Policy`` model, stacking, the pure evaluator, preflight, the
adapter compiler and the per-run runtime (spec part 2 §8).

>>> from asm_nb.policy import Policy, stack_merge
>>> stack_merge([Policy(name="org", on_violation="warn"), Policy(name="user")]).on_violation
'cancel'

``asm_nb.run_once(prompt, provider, policy=Policy(...))`` enforces a policy while the run
streams; see ``policy/runtime.py``.
"""

from __future__ import annotations

from typing import Any

from .compiler import compile, compile_for_adapter
from .evaluator import evaluate
from .policy import ACTIONS, LIMIT_KINDS, Policy, coerce, merge, stack_merge
from .preflight import check
from .runtime import Decision, PolicyRuntime, RunPolicy, start

__all__ = ["Policy", "LIMIT_KINDS", "ACTIONS", "merge", "stack_merge", "coerce", "evaluate", "check", "compile",
           "compile_for_adapter", "PolicyRuntime", "RunPolicy", "Decision", "start", "from_options"]


def from_options(*, budget_usd: float | None = None, max_tokens: int | None = None,
                 max_tool_calls: int | None = None, timeout_s: float | None = None,
                 deny_tools: Any = None, allow_tools: Any = None, on_violation: str | None = None,
                 name: str = "options") -> Policy | None:
    """A policy from the ``%%asm`` / ``asm run`` options (None when none is set).

    ``deny_tools`` / ``allow_tools``: a list or a comma-separated string; ``on_violation``:
    ``cancel`` | ``warn`` | ``ask`` (= ``request_approval``).

    >>> from_options(budget_usd=0.5, deny_tools="bash,exec").describe()
    'options: max_cost_usd=0.5, deny bash,exec; on violation cancel'
    """
    def names(v: Any) -> list[str]:
        if isinstance(v, str):
            return [s.strip() for s in v.split(",") if s.strip()]
        return list(v or [])

    limits: list[tuple[str, Any]] = []
    if budget_usd is not None:
        limits.append(("max_cost_usd", budget_usd))
    if max_tokens is not None:
        limits.append(("max_total_tokens", max_tokens))
    if max_tool_calls is not None:
        limits.append(("max_tool_calls", max_tool_calls))
    if timeout_s is not None:
        limits.append(("max_duration_ms", int(round(timeout_s * 1000))))
    rules: list[tuple[str, list[str]]] = []
    if allow_tools is not None:
        rules.append(("allow", names(allow_tools)))
    if deny_tools is not None:
        rules.append(("deny", names(deny_tools)))
    if not limits and not rules and on_violation is None:
        return None
    action = {"ask": "request_approval", "approve": "request_approval"}.get(on_violation or "cancel",
                                                                            on_violation or "cancel")
    return Policy(name=name, limits=limits, tool_rules=rules, on_violation=action)

