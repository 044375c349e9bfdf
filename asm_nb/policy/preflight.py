"""Preflight (docs/policies.md, policies): reject policies that can never let a run do anything useful.

``check(policy)`` raises ``AsmError("policy_violation", ...)`` for the first failing check —
an empty allow list, a zero token / tool-call budget, a tool both allowed and denied — and
returns None otherwise. ``max_duration_ms == 0`` is accepted (as the reference does).

Imports: ``asm_nb.core`` and ``asm_nb.policy.policy`` only.
"""

from __future__ import annotations


from ..core.errors import AsmError
from .policy import Policy, coerce

__all__ = ["check"]


def check(policy: object) -> None:
    """Raise ``AsmError("policy_violation")`` if ``policy`` cannot work; ``None`` → OK.

    >>> check(Policy(tool_rules=[("allow", [])]))
    Traceback (most recent call last):
    ...
    asm_nb.core.errors.AsmError: [policy_violation] Policy has an empty allow list: no tools can ever be used
    """
    if policy is None:
        return None
    p = policy if isinstance(policy, Policy) else coerce(policy)
    if any(action == "allow" and not names for action, names in p.tool_rules):
        raise AsmError("policy_violation", "Policy has an empty allow list: no tools can ever be used",
                       details={"check": "empty_allow_list"})
    for kind, value in p.limits:
        if kind in ("max_total_tokens", "max_tool_calls") and value == 0:
            raise AsmError("policy_violation",
                           f"Policy has zero budget for {kind}: run cannot produce useful output",
                           details={"check": "zero_budget", "kind": kind})
    allowed = {n for names in p.allow_lists for n in names}
    both: list[str] = []
    for names in p.deny_lists:
        for n in names:
            if n in allowed and n not in both:
                both.append(n)
    if both:
        raise AsmError("policy_violation",
                       f"Policy has contradictory tool rules: {', '.join(both)} appear in both allow and deny",
                       details={"check": "contradictory_rules", "tools": both})
    return None
