"""Provider routing (docs/runtime.md, routing and failover): capability matching, the routing policy, the circuit
breaker and ``ProviderRouter`` — a ``ProviderAdapter`` that delegates each run and fails over.

``run_once(prompt, provider=["claude", "codex"])`` (or ``%%asm -p claude,codex``) routes over
the listed providers in order; ``health_rows()`` reports every registered provider.
"""

from __future__ import annotations

from .circuit_breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from .matcher import CapabilityMatcher, matches_all, matches_requirement, normalize_requirement
from .policy import RoutingPolicy, attempt_limit, order_candidates, score
from .router import SHARED_STATE, ProviderRouter, RouterState

__all__ = ["CircuitBreaker", "CLOSED", "OPEN", "HALF_OPEN", "CapabilityMatcher", "matches_all",
           "matches_requirement", "normalize_requirement", "RoutingPolicy", "attempt_limit", "order_candidates",
           "score", "ProviderRouter", "RouterState", "SHARED_STATE", "health_rows"]


def health_rows(*args, **kwargs):
    """See ``asm_nb.routing.health.health_rows``."""
    from .health import health_rows as _rows

    return _rows(*args, **kwargs)
