"""``PermissionMode``: how much an agent may do without asking (docs/policies.md, permission modes)."""

from __future__ import annotations

from enum import Enum

from .errors import AsmError


class PermissionMode(str, Enum):
    """How much an agent may do without asking; adapters map it to provider options."""

    DEFAULT = "default"
    ACCEPT_EDITS = "accept_edits"
    PLAN = "plan"
    FULL_AUTO = "full_auto"
    DANGEROUSLY_SKIP_PERMISSIONS = "dangerously_skip_permissions"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def all(cls) -> list["PermissionMode"]:
        """The five modes in order."""
        return list(cls)

    @classmethod
    def is_valid(cls, x: object) -> bool:
        """True only for enum members (plain strings are not valid modes)."""
        return isinstance(x, cls)

    @classmethod
    def normalize(cls, x: object) -> "PermissionMode | None":
        """None → None; a member or its exact string value → the member; else ``validation_error``."""
        if x is None:
            return None
        if isinstance(x, cls):
            return x
        valid = [m.value for m in cls]
        if isinstance(x, str):
            for m in cls:
                if m.value == x:
                    return m
            raise AsmError("validation_error", f"invalid permission mode: {x!r}, expected one of {valid}")
        raise AsmError("validation_error", f"invalid permission mode: {x!r}, expected an atom or string")
