"""``Manifest``: what an agent or provider declares about itself (name, version, capabilities).

Pure standard library; imports only ``asm_nb.core``. See docs/event-model.md, capabilities, manifests, registry.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from ._checks import dict_or_empty, require_non_empty, require_str
from .capabilities import Capability
from .errors import AsmError
from .serialization import to_jsonable


def _capability(item: object) -> Capability:
    """A ``Capability`` as is, or one built from an attribute dict (its errors propagate)."""
    if isinstance(item, Capability):
        return item
    if isinstance(item, Mapping):
        return Capability.new(dict(item))
    raise AsmError("validation_error", "Invalid capability")


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class Manifest:
    """A named, versioned list of capabilities with free-form ``config`` and ``metadata``.

    Frozen: ``add_capability`` / ``remove_capability`` return a new manifest.

    >>> m = Manifest.new("coder", "1.0", capabilities=[{"name": "bash", "type": "code_execution"}])
    >>> [c.name for c in m.enabled_capabilities()]
    ['bash']
    """

    name: str
    version: str
    description: str | None = None
    provider: str | None = None
    capabilities: list = field(default_factory=list)
    config: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)

    @classmethod
    def new(cls, name: Any = None, version: Any = None, *, description: str | None = None,
            provider: str | None = None, capabilities: Any = None, config: Mapping | None = None,
            metadata: Mapping | None = None) -> "Manifest":
        """Validated constructor; ``name`` may also be one dict of these attributes.

        ``capabilities`` items are ``Capability`` objects or attribute dicts; any other item →
        ``validation_error`` "Invalid capability"; a non-list value is taken as ``[]``.
        Duplicate capability names are not checked here (only by ``add_capability``).
        """
        if isinstance(name, Mapping):
            a = dict(name)
            return cls.new(a.get("name"), a.get("version"), description=a.get("description"),
                           provider=a.get("provider"), capabilities=a.get("capabilities"),
                           config=a.get("config"), metadata=a.get("metadata"))
        require_non_empty(name, "name")
        require_non_empty(version, "version")
        caps = [_capability(c) for c in capabilities] if isinstance(capabilities, (list, tuple)) else []
        return cls(name=name, version=version, description=description, provider=provider,
                   capabilities=caps, config=dict_or_empty(config), metadata=dict_or_empty(metadata))

    # -- capabilities --------------------------------------------------------------------
    def _index(self, name: str) -> int:
        for i, cap in enumerate(self.capabilities):
            if cap.name == name:
                return i
        raise AsmError("capability_not_found", f"Capability '{name}' not found")

    def add_capability(self, capability: Any) -> "Manifest":
        """Append a ``Capability`` (or attribute dict); a taken name → ``duplicate_capability``."""
        cap = _capability(capability)
        if any(c.name == cap.name for c in self.capabilities):
            raise AsmError("duplicate_capability", f"Capability '{cap.name}' already exists")
        return dataclasses.replace(self, capabilities=[*self.capabilities, cap])

    def remove_capability(self, name: str) -> "Manifest":
        """Drop the capability called ``name``; missing → ``capability_not_found``."""
        i = self._index(name)
        return dataclasses.replace(self, capabilities=self.capabilities[:i] + self.capabilities[i + 1:])

    def get_capability(self, name: str) -> Capability:
        """The capability called ``name``; missing → ``capability_not_found``."""
        return self.capabilities[self._index(name)]

    def enabled_capabilities(self) -> list[Capability]:
        """Enabled capabilities, in manifest order."""
        return [c for c in self.capabilities if c.enabled]

    def replace(self, **changes: Any) -> "Manifest":
        """A copy with ``changes`` applied (no validation)."""
        return dataclasses.replace(self, **changes)

    # -- serialization -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict; capabilities use ``Capability.to_dict``."""
        return {
            "name": self.name, "version": self.version, "description": self.description,
            "provider": self.provider, "capabilities": [c.to_dict() for c in self.capabilities],
            "config": to_jsonable(self.config), "metadata": to_jsonable(self.metadata),
        }

    @classmethod
    def from_dict(cls, d: object) -> "Manifest":
        """Inverse of ``to_dict``. Requires ``name`` and ``version`` strings; the first bad
        capability's error wins; not a dict → ``validation_error`` "Invalid manifest map"."""
        if not isinstance(d, Mapping):
            raise AsmError("validation_error", "Invalid manifest map")
        name = require_str(d, "name")
        version = require_str(d, "version")
        raw_caps = d.get("capabilities") or []
        if not isinstance(raw_caps, (list, tuple)):
            raw_caps = []
        caps = [c if isinstance(c, Capability) else Capability.from_dict(c) for c in raw_caps]
        return cls(name=name, version=version, description=_optional_str(d.get("description")),
                   provider=_optional_str(d.get("provider")), capabilities=caps,
                   config=dict_or_empty(d.get("config")), metadata=dict_or_empty(d.get("metadata")))
