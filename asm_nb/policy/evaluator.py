"""The pure policy evaluator (docs/policies.md, policies): ``evaluate(policy, state, event)``.

Given a policy, a usage snapshot and one event, return the violations that event shows:
tool-rule violations first (``tool_denied``), then limit violations (``budget_exceeded``,
only when the actual value is strictly greater than the limit). No state is kept here; the
per-run runtime (``policy/runtime.py``) decides what is reported once.

Imports: ``asm_nb.core`` and ``asm_nb.policy.policy`` only.
"""

from __future__ import annotations

from typing import Any, Collection, Literal, Mapping, TypedDict

from .policy import LIMIT_KINDS, Policy

__all__ = ["evaluate", "tool_violations", "limit_violations", "STATE_KEYS"]

#: snapshot keys (missing → 0 / 0.0 / False)
STATE_KEYS = ("tool_calls", "total_tokens", "elapsed_ms", "accumulated_cost_usd", "cost_supported")
class Violation(TypedDict):
    """One policy violation: which policy, what kind, the action it asks for, and the figures."""

    policy: str
    kind: Literal["tool_denied", "budget_exceeded"]
    action: str
    details: dict[str, Any]


_STATE_FOR_METRIC = {"total_tokens": "total_tokens", "duration_ms": "elapsed_ms", "tool_calls": "tool_calls",
                     "cost_usd": "accumulated_cost_usd"}


def _num(v: object) -> int | float:
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else 0


def _tool_name(event: Mapping[str, Any]) -> str | None:
    data = event.get("data")
    if not isinstance(data, Mapping):
        return None
    name = data.get("tool_name")
    if name is None:
        name = data.get("name")
    return name if isinstance(name, str) else None


def _violation(policy: Policy, kind: Literal["tool_denied", "budget_exceeded"],
               details: dict[str, Any]) -> Violation:
    return {"policy": policy.name, "kind": kind, "action": policy.on_violation, "details": details}


def tool_violations(policy: Policy, event: Mapping[str, Any]) -> list[Violation]:
    """``tool_denied`` violations of ``event``'s tool (``data.tool_name`` or ``data.name``)."""
    if not policy.tool_rules:
        return []
    name = _tool_name(event)
    if name is None:
        return []
    out: list[Violation] = []
    for action, names in policy.tool_rules:
        if action == "deny" and name in names:
            out.append(_violation(policy, "tool_denied", {"tool_name": name, "rule": "deny",
                                                          "denied_tools": list(names)}))
        elif action == "allow" and name not in names:
            out.append(_violation(policy, "tool_denied", {"tool_name": name, "rule": "allow",
                                                          "allowed_tools": list(names)}))
    return out


def limit_violations(policy: Policy, state: Mapping[str, Any]) -> list[Violation]:
    """``budget_exceeded`` for every limit whose metric is strictly above it (``max_cost_usd``
    only while ``state["cost_supported"]`` is True)."""
    out: list[Violation] = []
    for kind, limit in policy.limits:
        if kind == "max_cost_usd" and state.get("cost_supported") is not True:
            continue
        metric = LIMIT_KINDS[kind]
        actual = _num(state.get(_STATE_FOR_METRIC[metric]))
        if kind == "max_cost_usd":
            actual = float(actual)
        if actual > limit:
            out.append(_violation(policy, "budget_exceeded", {"metric": metric, "actual": actual, "limit": limit}))
    return out


def evaluate(policy: object, state: object, event: object, *,
             tool_event_types: Collection[str] | None = None) -> list[Violation]:
    """Violations of ``policy`` shown by ``event`` given the usage ``state`` (docs/policies.md, policies).

    ``state``: ``{tool_calls, total_tokens, elapsed_ms, accumulated_cost_usd, cost_supported}``.
    A violation is ``{"policy", "kind": "tool_denied" | "budget_exceeded", "action", "details"}``.
    Tool rules apply to any event carrying a tool name (the reference behaviour), or only to
    events whose ``type`` is in ``tool_event_types`` when given. Non-Policy / non-mapping
    inputs give ``[]``.

    >>> p = Policy(limits=[("max_total_tokens", 100)], tool_rules=[("deny", ["bash"])])
    >>> [v["kind"] for v in evaluate(p, {"total_tokens": 120},
    ...                              {"type": "tool_call_started", "data": {"tool_name": "bash"}})]
    ['tool_denied', 'budget_exceeded']
    >>> evaluate(p, {"total_tokens": 100}, {"type": "message_streamed", "data": {}})
    []
    """
    if not isinstance(policy, Policy) or not isinstance(state, Mapping) or not isinstance(event, Mapping):
        return []
    out: list[Violation] = []
    etype = getattr(event.get("type"), "value", event.get("type"))
    if tool_event_types is None or etype in tool_event_types:
        out.extend(tool_violations(policy, event))
    out.extend(limit_violations(policy, state))
    return out
