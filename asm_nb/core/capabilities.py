"""Capabilities a provider offers, and negotiation of required/optional capability types.

Pure standard library. See docs/event-model.md, capabilities, manifests, registry.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Iterable, Mapping, TypeGuard

from ._checks import require_non_empty, require_str
from .errors import AsmError

log = logging.getLogger(__name__)


class CapabilityType(str, Enum):
    """The seven kinds of capability a provider may offer."""

    TOOL = "tool"
    RESOURCE = "resource"
    PROMPT = "prompt"
    SAMPLING = "sampling"
    FILE_ACCESS = "file_access"
    NETWORK_ACCESS = "network_access"
    CODE_EXECUTION = "code_execution"

    def __str__(self) -> str:
        return self.value


_BY_VALUE = {t.value: t for t in CapabilityType}


def is_valid_type(x: object) -> TypeGuard[CapabilityType | str]:
    """True for a ``CapabilityType`` or its exact string value."""
    return isinstance(x, CapabilityType) or (isinstance(x, str) and x in _BY_VALUE)


def all_types() -> list[CapabilityType]:
    """The capability types in declaration order."""
    return list(CapabilityType)


def _cap_type(x: object) -> CapabilityType:
    if isinstance(x, CapabilityType):
        return x
    if isinstance(x, str) and x in _BY_VALUE:
        return _BY_VALUE[x]
    raise AsmError("invalid_capability_type", f"Invalid capability type: {x!r}")


@dataclass(frozen=True, slots=True)
class Capability:
    """One named capability of a provider (``type`` is a ``CapabilityType``)."""

    name: str
    type: CapabilityType
    enabled: bool = True
    description: str | None = None
    config: dict = field(default_factory=dict)
    permissions: list = field(default_factory=list)

    @classmethod
    def new(cls, name: Any = None, type: Any = None, **attrs: Any) -> "Capability":
        """Validated constructor; ``name`` may also be one dict of attributes.

        >>> Capability.new("bash", "code_execution").enabled
        True
        """
        if isinstance(name, Mapping):
            a = dict(name)
            return cls.new(a.pop("name", None), a.pop("type", None), **a)
        require_non_empty(name, "name")
        if type is None:
            raise AsmError("validation_error", "type is required")
        enabled = attrs.get("enabled")
        return cls(name=name, type=_cap_type(type), enabled=True if enabled is None else bool(enabled),
                   description=attrs.get("description"), config=dict(attrs.get("config") or {}),
                   permissions=list(attrs.get("permissions") or []))

    def enable(self) -> "Capability":
        """A copy with ``enabled=True``."""
        return dataclasses.replace(self, enabled=True)

    def disable(self) -> "Capability":
        """A copy with ``enabled=False``."""
        return dataclasses.replace(self, enabled=False)

    def to_dict(self) -> dict[str, Any]:
        """The six fields, ``type`` as its string."""
        return {"name": self.name, "type": self.type.value, "enabled": self.enabled,
                "description": self.description, "config": dict(self.config), "permissions": list(self.permissions)}

    @classmethod
    def from_dict(cls, d: object) -> "Capability":
        """Inverse of ``to_dict``; requires ``name`` and ``type`` (``enabled`` defaults True)."""
        if not isinstance(d, Mapping):
            raise AsmError("validation_error", "Invalid capability map")
        name = require_str(d, "name")
        t = d.get("type")
        if t is None:
            raise AsmError("validation_error", "type is required")
        if not isinstance(t, (str, CapabilityType)):
            raise AsmError("validation_error", "type must be a string")
        enabled = d.get("enabled")
        return cls(name=name, type=_cap_type(t), enabled=True if enabled is None else bool(enabled),
                   description=d.get("description"), config=dict(d.get("config") or {}),
                   permissions=list(d.get("permissions") or []))


@dataclass(frozen=True, slots=True)
class NegotiationResult:
    """Outcome of ``CapabilityResolver.negotiate``: ``full``, ``degraded`` or ``unknown``."""

    status: str = "unknown"  # full | degraded | unknown
    supported: frozenset = frozenset()
    unsupported: frozenset = frozenset()
    warnings: list = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CapabilityResolver:
    """Required and optional capability types a run asks of a provider."""

    required: frozenset = frozenset()
    optional: frozenset = frozenset()

    @classmethod
    def new(cls, required: Iterable[Any] = (), optional: Iterable[Any] = ()) -> "CapabilityResolver":
        """Each item a ``CapabilityType`` or its string; a single type is taken as one item."""
        return cls(required=frozenset(_cap_type(x) for x in _items(required)),
                   optional=frozenset(_cap_type(x) for x in _items(optional)))

    def negotiate(self, capabilities: Iterable[Capability]) -> NegotiationResult:
        """Missing required types raise ``missing_required_capability``; optional misses degrade."""
        enabled = {c.type for c in capabilities if c.enabled}
        missing = self.required - enabled
        if missing:
            names = ", ".join(sorted(t.value for t in missing))
            raise AsmError("missing_required_capability", f"Missing required capability types: {names}")
        supported = (self.required | self.optional) & enabled
        unsupported = self.optional - enabled
        warnings = [f"Optional capability '{t.value}' is not supported by the provider"
                    for t in sorted(unsupported, key=lambda t: t.value)]
        return NegotiationResult(status="degraded" if unsupported else "full", supported=frozenset(supported),
                                 unsupported=frozenset(unsupported), warnings=warnings)


def _items(x: Any) -> Iterable[Any]:
    if x is None:
        return ()
    if isinstance(x, str):  # "tool" is one type, not four characters
        return (x,)
    return x


def capabilities_of_type(caps: Iterable[Capability], t: CapabilityType | str) -> list[Capability]:
    """The enabled capabilities of type ``t`` (order kept)."""
    ct = _cap_type(t)
    return [c for c in caps if c.enabled and c.type is ct]


def has_capability_type(caps: Iterable[Capability], t: CapabilityType | str) -> bool:
    """True when at least one enabled capability has type ``t``."""
    return bool(capabilities_of_type(caps, t))
