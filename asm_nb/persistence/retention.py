"""RetentionPolicy: how long sessions and events are kept (docs/stores.md, retention and maintenance).

A plain value object validated by :meth:`RetentionPolicy.validate`; the generic
``Maintenance`` (``asm_nb/stores/_maintenance.py``) applies it. ``INFINITY`` (``math.inf``; the
string ``"infinity"`` is accepted) switches a limit off. Imports only ``core`` and ``config``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from .. import config
from ..core.errors import AsmError

__all__ = ["INFINITY", "RetentionPolicy"]

INFINITY = math.inf

_LIMIT_FIELDS = ("max_session_age_days", "max_completed_session_age_days", "hard_delete_after_days",
                 "max_events_per_session", "max_total_events")


def _norm_inf(v: object) -> object:
    if isinstance(v, str) and v.strip().lower() in ("infinity", "inf"):
        return INFINITY
    return v


def _limit_ok(v: object) -> bool:
    if v == INFINITY and isinstance(v, float):
        return True
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


@dataclass
class RetentionPolicy:
    """Retention limits (days, event counts) and exemptions. Fields as in docs/stores.md, retention and maintenance.

    >>> RetentionPolicy(max_events_per_session=1000).validate()
    >>> RetentionPolicy.new(max_completed_session_age_days="infinity").max_completed_session_age_days
    inf
    """

    max_session_age_days: Any = INFINITY
    max_completed_session_age_days: Any = 90
    max_events_per_session: Any = INFINITY
    max_total_events: Any = INFINITY
    hard_delete_after_days: Any = 30
    archive_before_prune: bool = False
    archive_store: Any = None
    exempt_statuses: list = field(default_factory=lambda: ["active", "paused"])
    exempt_tags: list = field(default_factory=lambda: ["pinned"])
    prune_event_types_first: list = field(default_factory=lambda: ["message_streamed", "token_usage_updated"])
    batch_size: Any = 100

    def __post_init__(self) -> None:
        for name in _LIMIT_FIELDS:
            setattr(self, name, _norm_inf(getattr(self, name)))

    @classmethod
    def new(cls, **kw: Any) -> "RetentionPolicy":
        """Defaults from config (``retention_*`` keys), overridden by ``kw``; an unknown keyword
        → ``validation_error`` "unknown retention option: <name>"."""
        names = {f.name for f in dataclasses.fields(cls)}
        for k in kw:
            if k not in names:
                raise AsmError("validation_error", f"unknown retention option: {k}")
        base = {
            "max_completed_session_age_days": config.get("retention_max_completed_age_days"),
            "hard_delete_after_days": config.get("retention_hard_delete_after_days"),
            "batch_size": config.get("retention_batch_size"),
            "exempt_statuses": list(config.get("retention_exempt_statuses")),
            "exempt_tags": list(config.get("retention_exempt_tags")),
            "prune_event_types_first": list(config.get("retention_prune_event_types_first")),
        }
        return cls(**{**base, **kw})

    def validate(self) -> None:
        """None when valid, else ``validation_error`` with the first problem (spec order)."""
        for name in _LIMIT_FIELDS:
            if not _limit_ok(getattr(self, name)):
                raise AsmError("validation_error", f"{name} must be a positive integer or infinity")
        b = self.batch_size
        if isinstance(b, bool) or not isinstance(b, int) or b <= 0:
            raise AsmError("validation_error", "batch_size must be a positive integer")
        if self.archive_before_prune is True and self.archive_store is None:
            raise AsmError("validation_error", "archive_store is required when archive_before_prune is true")

    def is_valid(self) -> bool:
        try:
            self.validate()
        except AsmError:
            return False
        return True

    def replace(self, **changes: Any) -> "RetentionPolicy":
        return dataclasses.replace(self, **changes)
