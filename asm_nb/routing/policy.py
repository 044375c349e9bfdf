"""RoutingPolicy (docs/runtime.md, routing and failover): which providers to try, in which order, how often.

Fields: ``prefer`` / ``exclude`` (provider ids), ``max_attempts`` (default 3), ``weights``
(id → number ≥ 0, default 1.0) and ``strategy`` (``"prefer"`` or ``"weighted"``). Inputs are
normalized, never rejected.

Imports: standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence, TypeVar

__all__ = ["RoutingPolicy", "merge", "order_candidates", "score", "attempt_limit", "FIELDS"]

_C = TypeVar("_C")  # a candidate: a mapping or an object with an ``id``

FIELDS = ("prefer", "exclude", "max_attempts", "weights", "strategy")


def _ids(v: object) -> list[str]:
    if not isinstance(v, (list, tuple)):
        return []
    out: list[str] = []
    for x in v:
        if isinstance(x, str) and x not in out:
            out.append(x)
    return out


def _weights(v: object) -> dict[str, float]:
    if not isinstance(v, Mapping):
        return {}
    out = {}
    for k, w in v.items():
        ok = isinstance(w, (int, float)) and not isinstance(w, bool) and w >= 0 and w == w
        out[str(k)] = float(w) if ok else 1.0
    return out


@dataclass(frozen=True)
class RoutingPolicy:
    """Normalized routing preferences (see module docstring).

    >>> p = RoutingPolicy.new(prefer=["amp", "codex", "amp", 3], max_attempts=0, strategy="random")
    >>> p.prefer, p.max_attempts, p.strategy
    (['amp', 'codex'], 3, 'prefer')
    """

    prefer: list = field(default_factory=list)
    exclude: list = field(default_factory=list)
    max_attempts: int = 3
    weights: dict = field(default_factory=dict)
    strategy: str = "prefer"

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefer", _ids(self.prefer))
        object.__setattr__(self, "exclude", _ids(self.exclude))
        ma = self.max_attempts
        object.__setattr__(self, "max_attempts", ma if isinstance(ma, int) and not isinstance(ma, bool) and ma > 0
                           else 3)
        object.__setattr__(self, "weights", _weights(self.weights))
        object.__setattr__(self, "strategy", self.strategy if self.strategy in ("prefer", "weighted") else "prefer")

    @classmethod
    def new(cls, attrs: Any = None, **kw: Any) -> "RoutingPolicy":
        """From a mapping, ``(key, value)`` pairs, a RoutingPolicy, and/or keywords."""
        if isinstance(attrs, RoutingPolicy):
            base = attrs.to_dict()
        elif isinstance(attrs, Mapping):
            base = dict(attrs)
        elif isinstance(attrs, (list, tuple)):
            base = {p[0]: p[1] for p in attrs if isinstance(p, (list, tuple)) and len(p) == 2}
        else:
            base = {}
        base.update(kw)
        return cls(**{k: base[k] for k in FIELDS if k in base})

    def to_dict(self) -> dict[str, Any]:
        return {"prefer": list(self.prefer), "exclude": list(self.exclude), "max_attempts": self.max_attempts,
                "weights": dict(self.weights), "strategy": self.strategy}


def merge(base: RoutingPolicy, overrides: Mapping[str, Any] | RoutingPolicy | None) -> RoutingPolicy:
    """Each key present in ``overrides`` replaces the base value wholesale, then re-normalize."""
    over = overrides.to_dict() if isinstance(overrides, RoutingPolicy) else dict(overrides or {})
    return RoutingPolicy.new({**base.to_dict(), **{k: v for k, v in over.items() if k in FIELDS}})


def _failures(health: object, cid: str) -> int:
    if not isinstance(health, Mapping):
        return 0
    h = health.get(cid)
    n = h.get("failure_count") if isinstance(h, Mapping) else None
    return n if isinstance(n, int) and not isinstance(n, bool) and n >= 0 else 0


def score(policy: RoutingPolicy, cid: str, health: object = None) -> float:
    """``weights.get(id, 1.0) − 0.5 × failure_count`` (may go negative)."""
    return policy.weights.get(cid, 1.0) - 0.5 * _failures(health, cid)


def _cid(c: object) -> Any:
    return c.get("id") if isinstance(c, Mapping) else getattr(c, "id", None)


def order_candidates(policy: RoutingPolicy, candidates: Sequence[_C], health: object = None) -> list[_C]:
    """Drop excluded / id-less candidates, then order by ``prefer`` or by weighted score.

    >>> order_candidates(RoutingPolicy.new(prefer=["amp", "codex"], exclude=["claude"]),
    ...                  [{"id": i} for i in ["codex", "claude", "amp", "other"]])
    [{'id': 'amp'}, {'id': 'codex'}, {'id': 'other'}]
    """
    kept = [c for c in candidates if isinstance(_cid(c), str) and _cid(c) not in policy.exclude]
    if policy.strategy == "weighted":
        n = len(policy.prefer)
        rank = {cid: i for i, cid in enumerate(policy.prefer)}
        return sorted(kept, key=lambda c: (-score(policy, _cid(c), health), rank.get(_cid(c), n)))
    by_id = {}
    for c in kept:
        by_id.setdefault(_cid(c), c)
    first = [by_id[p] for p in policy.prefer if p in by_id]
    return first + [c for c in kept if _cid(c) not in policy.prefer]


def attempt_limit(policy: RoutingPolicy, n: int) -> int:
    """``min(max_attempts, n)``."""
    return min(policy.max_attempts, n)
