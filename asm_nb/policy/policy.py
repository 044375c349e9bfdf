"""The ``Policy`` model, ``merge`` and ``stack_merge`` (docs/policies.md, policies).

A policy is a frozen value: limits (token, duration, tool-call and cost budgets), tool rules
(allow / deny lists) and what to do on a violation (``cancel``, ``request_approval`` or
``warn``). Construction validates and normalizes; every problem is an
``AsmError("validation_error", <one line naming the bad part>)``.

Imports: ``asm_nb.core`` only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence, TypeGuard

from ..core.errors import AsmError

__all__ = ["Policy", "LIMIT_KINDS", "ACTIONS", "merge", "stack_merge", "coerce"]

#: limit kind -> the metric the evaluator compares (docs/policies.md, policies)
LIMIT_KINDS: dict[str, str] = {
    "max_total_tokens": "total_tokens",
    "max_duration_ms": "duration_ms",
    "max_tool_calls": "tool_calls",
    "max_cost_usd": "cost_usd",
}
#: ``on_violation`` values, strictest first
ACTIONS: tuple[str, ...] = ("cancel", "request_approval", "warn")
_FIELDS = ("name", "limits", "tool_rules", "on_violation", "metadata")

MSG_ATTRS = "Policy must be a keyword list or map"
MSG_NAME = "policy name is required"
MSG_LIMITS = "limits must be a list"
MSG_LIMIT = "invalid policy limit"
MSG_RULES = "tool_rules must be a list"
MSG_RULE = "invalid tool rule"
MSG_RULE_LIST = "tool rule list must contain tool names"
MSG_ACTION = 'on_violation must be "cancel", "request_approval", or "warn"'
MSG_METADATA = "metadata must be a map"


def _invalid(message: str, **details: Any) -> AsmError:
    return AsmError("validation_error", message, details=details or None)


def _is_seq(value: object) -> TypeGuard[list[Any] | tuple[Any, ...]]:
    return isinstance(value, (list, tuple))


def _limit(entry: object) -> tuple[str, int | float]:
    if not _is_seq(entry) or len(entry) != 2:
        raise _invalid(MSG_LIMIT, limit=repr(entry))
    kind, value = entry
    kind = getattr(kind, "value", kind)
    if kind not in LIMIT_KINDS or isinstance(value, bool):
        raise _invalid(MSG_LIMIT, limit=repr(entry))
    if kind == "max_cost_usd":
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise _invalid(MSG_LIMIT, limit=repr(entry))
        return kind, float(value)
    if not isinstance(value, int) or value < 0:
        raise _invalid(MSG_LIMIT, limit=repr(entry))
    return kind, value


def _normalize_limits(limits: object) -> tuple[tuple[str, int | float], ...]:
    if limits is None:
        return ()
    if isinstance(limits, Mapping):
        limits = list(limits.items())
    if not _is_seq(limits):
        raise _invalid(MSG_LIMITS)
    return tuple(_limit(e) for e in limits)


def _tool_names(names: Iterable[object]) -> tuple[str, ...]:
    out: list[str] = []
    for n in names:
        if isinstance(n, str) and n and n not in out:
            out.append(n)
    return tuple(out)


def _normalize_rules(rules: object) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if rules is None:
        return ()
    if not _is_seq(rules):
        raise _invalid(MSG_RULES)
    out = []
    for rule in rules:
        if not _is_seq(rule) or len(rule) != 2:
            raise _invalid(MSG_RULE, rule=repr(rule))
        action, names = rule
        action = getattr(action, "value", action)
        if action not in ("allow", "deny"):
            raise _invalid(MSG_RULE, rule=repr(rule))
        if not _is_seq(names):
            raise _invalid(MSG_RULE_LIST, rule=repr(rule))
        out.append((action, _tool_names(names)))
    return tuple(out)


@dataclass(frozen=True)
class Policy:
    """Limits, tool rules and the action taken on a violation (docs/policies.md, policies).

    ``limits``: ordered ``(kind, value)`` pairs or a mapping ``{kind: value}``; kinds are
    ``max_total_tokens``, ``max_duration_ms``, ``max_tool_calls`` (ints ≥ 0) and
    ``max_cost_usd`` (a number ≥ 0, stored as float). ``tool_rules``: ``("allow" | "deny",
    [tool names])`` pairs (non-string names are dropped, duplicates removed).
    ``on_violation``: ``"cancel"`` (default), ``"request_approval"`` or ``"warn"``.

    >>> p = Policy(name="team", limits={"max_total_tokens": 1000}, tool_rules=[("deny", ["bash"])])
    >>> p.limits, p.tool_rules, p.on_violation
    ((('max_total_tokens', 1000),), (('deny', ('bash',)),), 'cancel')
    >>> Policy(on_violation="block")
    Traceback (most recent call last):
    ...
    asm_nb.core.errors.AsmError: [validation_error] on_violation must be "cancel", "request_approval", or "warn"
    """

    name: str = "default"
    limits: tuple[tuple[str, int | float], ...] = ()
    tool_rules: tuple[tuple[str, tuple[str, ...]], ...] = ()
    on_violation: str = "cancel"
    metadata: Mapping[str, Any] = field(default_factory=dict)

    if TYPE_CHECKING:  # the constructor takes the wider inputs that __post_init__ normalizes
        def __init__(self, name: str = "default",
                     limits: Mapping[str, int | float] | Iterable[Sequence[Any]] = (),
                     tool_rules: Iterable[Sequence[Any]] = (), on_violation: str = "cancel",
                     metadata: Mapping[str, Any] | None = None) -> None: ...

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise _invalid(MSG_NAME)
        object.__setattr__(self, "limits", _normalize_limits(self.limits))
        object.__setattr__(self, "tool_rules", _normalize_rules(self.tool_rules))
        action = getattr(self.on_violation, "value", self.on_violation)
        if action not in ACTIONS:
            raise _invalid(MSG_ACTION)
        object.__setattr__(self, "on_violation", action)
        metadata = {} if self.metadata is None else self.metadata
        if not isinstance(metadata, Mapping):
            raise _invalid(MSG_METADATA)
        object.__setattr__(self, "metadata", dict(metadata))

    # -- construction ------------------------------------------------------------------
    @classmethod
    def new(cls, attrs: Any = None, **kw: Any) -> "Policy":
        """A policy from a mapping or ``(key, value)`` pairs (plus keyword overrides).

        Checks name, limits, tool rules, action and metadata, in that order; unknown keys are ignored.
        """
        if attrs is None:
            attrs = {}
        if isinstance(attrs, Policy):
            return attrs if not kw else merge(attrs, **kw)
        if isinstance(attrs, Mapping):
            items = dict(attrs)
        elif _is_seq(attrs) and all(_is_seq(p) and len(p) == 2 and isinstance(p[0], str) for p in attrs):
            items = dict(attrs)
        else:
            raise _invalid(MSG_ATTRS)
        items.update(kw)
        return cls(**{k: items[k] for k in _FIELDS if k in items})

    # -- helpers -----------------------------------------------------------------------
    def limit(self, kind: str) -> int | float | None:
        """The strictest (smallest) value of limit ``kind``, or None."""
        values = [v for k, v in self.limits if k == kind]
        return min(values) if values else None

    @property
    def allow_lists(self) -> list[tuple[str, ...]]:
        return [names for action, names in self.tool_rules if action == "allow"]

    @property
    def deny_lists(self) -> list[tuple[str, ...]]:
        return [names for action, names in self.tool_rules if action == "deny"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (limits and rules as lists); ``Policy.new`` reads it back."""
        return {"name": self.name, "limits": [[k, v] for k, v in self.limits],
                "tool_rules": [[a, list(n)] for a, n in self.tool_rules], "on_violation": self.on_violation,
                "metadata": {k: v for k, v in self.metadata.items() if not callable(v)}}

    def describe(self) -> str:
        """One line for people: ``team: max_total_tokens=1000, deny bash; on violation cancel``."""
        parts = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.limits]
        parts += [f"{a} {','.join(n) or '(none)'}" for a, n in self.tool_rules]
        return f"{self.name}: {', '.join(parts) or 'no limits'}; on violation {self.on_violation}"


def coerce(policy: object) -> Policy:
    """A ``Policy`` from a Policy, attrs (mapping / pairs) or a list of those (stack-merged)."""
    if isinstance(policy, Policy):
        return policy
    if isinstance(policy, Mapping):
        return Policy.new(policy)
    if _is_seq(policy) and policy and all(isinstance(p, (Policy, Mapping)) for p in policy):
        return stack_merge(list(policy))
    return Policy.new(policy)


def merge(base: Policy, overrides: Mapping[str, Any] | None = None, /, **kw: Any) -> Policy:
    """``base`` with each given field (``name, limits, tool_rules, on_violation, metadata``)
    replaced wholesale; an invalid result returns ``base`` unchanged (no error)."""
    changes = {**dict(overrides or {}), **kw}
    attrs = {f: getattr(base, f) for f in _FIELDS}
    attrs.update({k: v for k, v in changes.items() if k in _FIELDS})
    try:
        return Policy(**attrs)
    except AsmError:
        return base


def _strictest(a: str, b: str) -> str:
    return a if ACTIONS.index(a) <= ACTIONS.index(b) else b


def _merge_two(base: Policy, override: Policy) -> Policy:
    name = base.name if base.name == override.name else f"{base.name} + {override.name}"
    limits: dict[str, int | float] = {}
    for kind, value in base.limits:
        limits[kind] = value
    for kind, value in override.limits:
        limits[kind] = value
    try:
        return Policy(name=name, limits=tuple(limits.items()), tool_rules=base.tool_rules + override.tool_rules,
                      on_violation=_strictest(base.on_violation, override.on_violation),
                      metadata={**base.metadata, **override.metadata})
    except AsmError:
        return base


def stack_merge(policies: Sequence[Any]) -> Policy:
    """Fold an org → team → user stack into one policy (docs/policies.md, policies).

    Names join with ``" + "``; per limit kind the later policy wins; tool rules concatenate;
    the strictest action wins (``cancel`` > ``request_approval`` > ``warn``); metadata merges
    shallowly. ``[]`` → the default policy; ``[p]`` → ``p``. Attrs are validated
    (``validation_error`` on bad ones).

    >>> org = Policy(name="org", limits={"max_total_tokens": 100_000}, on_violation="warn")
    >>> user = Policy(name="user", limits={"max_total_tokens": 50_000})
    >>> p = stack_merge([org, user]); (p.name, p.limits, p.on_violation)
    ('org + user', (('max_total_tokens', 50000),), 'cancel')
    """
    items = [p if isinstance(p, Policy) else Policy.new(p) for p in (policies or [])]
    if not items:
        return Policy()
    result = items[0]
    for p in items[1:]:
        result = _merge_two(result, p)
    return result
