"""``Registry``: an immutable map from manifest name to ``Manifest``.

Every operation returns a new registry, so one instance can be shared across threads without
locks. Pure standard library; imports only ``asm_nb.core``. See docs/event-model.md, capabilities, manifests, registry.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from ._checks import dict_or_empty
from .capabilities import Capability, CapabilityType, _cap_type, is_valid_type
from .errors import AsmError
from .manifest import Manifest
from .serialization import to_jsonable


def validate_manifest(manifest: object) -> None:
    """Raise ``validation_error`` unless ``manifest`` has a name, a version and valid capabilities.

    Checks the object as it is (a ``Manifest`` built field by field can bypass ``Manifest.new``).
    """
    if not isinstance(manifest, Manifest):
        raise AsmError("validation_error", "Invalid manifest")
    if not isinstance(manifest.name, str) or manifest.name == "":
        raise AsmError("validation_error", "Manifest name is required and cannot be empty")
    if not isinstance(manifest.version, str) or manifest.version == "":
        raise AsmError("validation_error", "Manifest version is required and cannot be empty")
    for cap in manifest.capabilities:
        name = getattr(cap, "name", None)
        ctype = getattr(cap, "type", None)
        if not isinstance(cap, Capability) or not isinstance(name, str) or name == "" or not is_valid_type(ctype):
            raise AsmError(
                "validation_error",
                "Manifest contains invalid capability: each capability must have a non-empty name and valid type",
            )


def _frozen(d: Mapping[str, Manifest]) -> Mapping[str, Manifest]:
    return MappingProxyType(dict(d))


@dataclass(frozen=True, slots=True)
class Registry:
    """Manifests by name. Immutable: ``register``/``update``/``unregister`` return a new registry.

    >>> r = Registry.new().register(Manifest.new("coder", "1.0"))
    >>> [m.name for m in r.list()], r.count()
    (['coder'], 1)
    """

    manifests: Mapping[str, Manifest] = field(default_factory=lambda: MappingProxyType({}))
    metadata: dict = field(default_factory=dict)

    @classmethod
    def new(cls, metadata: Mapping | None = None) -> "Registry":
        """An empty registry."""
        return cls(manifests=_frozen({}), metadata=dict_or_empty(metadata))

    def _with(self, manifests: Mapping[str, Manifest]) -> "Registry":
        return dataclasses.replace(self, manifests=_frozen(manifests))

    # -- changes -------------------------------------------------------------------------
    def register(self, manifest: Manifest) -> "Registry":
        """Add a validated manifest; a taken name → ``already_exists``."""
        validate_manifest(manifest)
        if manifest.name in self.manifests:
            raise AsmError("already_exists", f"Manifest '{manifest.name}' already exists in registry")
        return self._with({**self.manifests, manifest.name: manifest})

    def unregister(self, name: str) -> "Registry":
        """Remove ``name``; missing → ``not_found``."""
        self._require(name)
        return self._with({k: v for k, v in self.manifests.items() if k != name})

    def update(self, manifest: Manifest) -> "Registry":
        """Replace the manifest of the same name (``not_found`` is checked before validation)."""
        name = getattr(manifest, "name", None)
        if not isinstance(name, str) or name not in self.manifests:
            raise AsmError("not_found", f"Manifest '{name}' not found in registry")
        validate_manifest(manifest)
        return self._with({**self.manifests, manifest.name: manifest})

    # -- reads ---------------------------------------------------------------------------
    def _require(self, name: str) -> Manifest:
        try:
            return self.manifests[name]
        except (KeyError, TypeError):
            raise AsmError("not_found", f"Manifest '{name}' not found in registry") from None

    def get(self, name: str) -> Manifest:
        """The manifest called ``name``; missing → ``not_found``."""
        return self._require(name)

    def list(self) -> list[Manifest]:
        """All manifests, sorted by name."""
        return [self.manifests[k] for k in sorted(self.manifests)]

    def exists(self, name: str) -> bool:
        """True when a manifest called ``name`` is registered."""
        return isinstance(name, str) and name in self.manifests

    def count(self) -> int:
        """Number of registered manifests."""
        return len(self.manifests)

    def filter_by_provider(self, provider: str) -> list[Manifest]:
        """Manifests whose ``provider`` equals ``provider`` exactly, sorted by name."""
        return [m for m in self.list() if m.provider == provider]

    def filter_by_capability(self, capability_type: Any) -> list[Manifest]:
        """Manifests with at least one **enabled** capability of the given type, sorted by name."""
        t: CapabilityType = _cap_type(capability_type)
        return [m for m in self.list() if any(c.enabled and c.type is t for c in m.capabilities)]

    # -- serialization -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """``{"manifests": [manifest dicts sorted by name], "metadata": {...}}``."""
        return {"manifests": [m.to_dict() for m in self.list()], "metadata": to_jsonable(self.metadata)}

    @classmethod
    def from_dict(cls, d: object) -> "Registry":
        """Inverse of ``to_dict``. The first failing manifest aborts; a repeated name: last wins."""
        if not isinstance(d, Mapping):
            raise AsmError("validation_error", "Invalid registry map")
        raw = d.get("manifests") or []
        if not isinstance(raw, (list, tuple)):
            raw = []
        manifests: dict[str, Manifest] = {}
        for item in raw:
            m = item if isinstance(item, Manifest) else Manifest.from_dict(item)
            manifests[m.name] = m
        return cls(manifests=_frozen(manifests), metadata=dict_or_empty(d.get("metadata")))
