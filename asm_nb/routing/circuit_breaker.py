"""CircuitBreaker (docs/runtime.md, routing and failover): a pure, immutable value object.

``closed`` → (``failure_threshold`` failures) → ``open`` → (``cooldown_ms`` later,
``check_state``) → ``half_open`` → success → ``closed`` / failure → ``open`` again. Every
transition returns a new breaker. Time comes from ``clock`` (milliseconds, monotonic), which
tests replace so no test sleeps.

Imports: ``asm_nb.config`` only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

__all__ = ["CircuitBreaker", "CLOSED", "OPEN", "HALF_OPEN", "monotonic_ms"]

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


def monotonic_ms() -> float:
    """Default clock: monotonic milliseconds."""
    return time.monotonic() * 1000


def _pos_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _nonneg_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


@dataclass(frozen=True)
class CircuitBreaker:
    """Breaker state for one provider (see module docstring).

    >>> now = [0.0]
    >>> b = CircuitBreaker.new(failure_threshold=2, cooldown_ms=1000, clock=lambda: now[0])
    >>> b = b.record_failure().record_failure(); b.state, b.allowed()
    ('open', False)
    >>> now[0] = 1000.0; b = b.check_state(); b.state, b.allowed()
    ('half_open', True)
    >>> b.record_success().state
    'closed'
    """

    state: str = CLOSED
    failure_count: int = 0
    failure_threshold: int = 5
    cooldown_ms: int = 30_000
    half_open_max_probes: int = 1
    half_open_probe_count: int = 0
    opened_at_ms: float | None = None
    clock: Callable[[], float] = field(default=monotonic_ms, repr=False, compare=False)

    @classmethod
    def new(cls, *, failure_threshold: Any = None, cooldown_ms: Any = None, half_open_max_probes: Any = None,
            clock: Callable[[], float] | None = None, **_ignored: Any) -> "CircuitBreaker":
        """A closed breaker; invalid options fall back to the config defaults (never an error)."""
        from .. import config

        return cls(
            failure_threshold=failure_threshold if _pos_int(failure_threshold)
            else config.get("circuit_breaker_failure_threshold"),
            cooldown_ms=cooldown_ms if _nonneg_int(cooldown_ms) else config.get("circuit_breaker_cooldown_ms"),
            half_open_max_probes=half_open_max_probes if _pos_int(half_open_max_probes)
            else config.get("circuit_breaker_half_open_max_probes"),
            clock=clock or monotonic_ms)

    def _cooled(self) -> bool:
        return self.opened_at_ms is None or self.clock() - self.opened_at_ms >= self.cooldown_ms

    def allowed(self) -> bool:
        """May a call go through now? (open: only once the cooldown expired — the probe)."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN:
            return self._cooled()
        return self.half_open_probe_count < self.half_open_max_probes

    def check_state(self) -> "CircuitBreaker":
        """``open`` whose cooldown expired → ``half_open`` (probe count 0); else unchanged."""
        if self.state == OPEN and self._cooled():
            return replace(self, state=HALF_OPEN, half_open_probe_count=0)
        return self

    def record_success(self) -> "CircuitBreaker":
        return replace(self, state=CLOSED, failure_count=0, opened_at_ms=None, half_open_probe_count=0)

    def record_failure(self) -> "CircuitBreaker":
        now = self.clock()
        if self.state == HALF_OPEN:
            return replace(self, state=OPEN, opened_at_ms=now, half_open_probe_count=0)
        count = self.failure_count + 1
        if self.state == OPEN:
            return replace(self, failure_count=count, opened_at_ms=now)
        if count >= self.failure_threshold:
            return replace(self, state=OPEN, failure_count=count, opened_at_ms=now)
        return replace(self, failure_count=count)

    def record_probe(self) -> "CircuitBreaker":
        """One more probe in flight (half_open only)."""
        if self.state != HALF_OPEN:
            return self
        return replace(self, half_open_probe_count=self.half_open_probe_count + 1)

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "failure_count": self.failure_count, "failure_threshold": self.failure_threshold,
                "cooldown_ms": self.cooldown_ms, "half_open_max_probes": self.half_open_max_probes,
                "half_open_probe_count": self.half_open_probe_count}
