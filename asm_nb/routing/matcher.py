"""CapabilityMatcher (docs/runtime.md, routing and failover): does a provider offer what a run requires?

Requirements are ``{"type": t, "name": n}`` (``name`` optional / None: any named capability of
that type) or a bare type ``t``; anything else never matches. Capabilities are
``core.capabilities.Capability`` objects or dicts with ``name``, ``type``, ``enabled``.

Imports: ``asm_nb.core`` only.
"""

from __future__ import annotations

from typing import Any, Mapping

__all__ = ["normalize_requirement", "matches_requirement", "matches_all", "CapabilityMatcher"]


def _value(x: object) -> object:
    return getattr(x, "value", x)


def normalize_requirement(req: object) -> dict[str, Any]:
    """``{"type", "name"}``; unusable input → type ``"unknown"`` (never matches)."""
    if isinstance(req, Mapping):
        t, name = _value(req.get("type")), req.get("name")
        return {"type": t if isinstance(t, str) else "unknown", "name": name if isinstance(name, str) else None}
    t = _value(req)
    return {"type": t if isinstance(t, str) else "unknown", "name": None}


def _cap(cap: object) -> tuple[object, object, bool]:
    if isinstance(cap, Mapping):
        return _value(cap.get("type")), cap.get("name"), cap.get("enabled", True) is True
    return _value(getattr(cap, "type", None)), getattr(cap, "name", None), getattr(cap, "enabled", True) is True


def matches_requirement(capabilities: object, requirement: object) -> bool:
    """Some enabled capability has the requirement's type and (when given) its name.

    >>> from asm_nb.core.capabilities import Capability
    >>> caps = [Capability.new("bash", "tool"), Capability.new("chat", "sampling")]
    >>> matches_requirement(caps, {"type": "tool", "name": "bash"}), matches_requirement(caps, "prompt")
    (True, False)
    """
    req = normalize_requirement(requirement)
    if req["type"] == "unknown" or not isinstance(capabilities, (list, tuple)):
        return False
    for cap in capabilities:
        t, name, enabled = _cap(cap)
        if not enabled or t != req["type"]:
            continue
        if req["name"] is None and isinstance(name, str):
            return True
        if req["name"] is not None and req["name"] == name:
            return True
    return False


def matches_all(capabilities: object, requirements: object) -> bool:
    """Every requirement matches; no requirements → True; non-sequence arguments → False."""
    if not isinstance(capabilities, (list, tuple)) or not isinstance(requirements, (list, tuple)):
        return False
    return all(matches_requirement(capabilities, r) for r in requirements)


class CapabilityMatcher:
    """Namespace with the spec's names."""

    normalize_requirement = staticmethod(normalize_requirement)
    matches_requirement = staticmethod(matches_requirement)
    matches_all = staticmethod(matches_all)
