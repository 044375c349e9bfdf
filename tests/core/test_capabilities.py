"""Capability, CapabilityResolver and NegotiationResult (docs/event-model.md, capabilities, manifests, registry)."""

from __future__ import annotations

import json

import pytest

from asm_nb.core import capabilities as caps_mod
from asm_nb.core.capabilities import Capability, CapabilityResolver, CapabilityType, NegotiationResult
from asm_nb.core.errors import AsmError

TYPES = ["tool", "resource", "prompt", "sampling", "file_access", "network_access", "code_execution"]


def test_types():
    assert [t.value for t in caps_mod.all_types()] == TYPES
    for t in TYPES:
        assert caps_mod.is_valid_type(t) and caps_mod.is_valid_type(CapabilityType(t))
    for bad in ("", "TOOL", "shell", None, 1):
        assert caps_mod.is_valid_type(bad) is False


def test_new_defaults_and_attrs():
    c = Capability.new("bash", "code_execution")
    assert (c.name, c.type, c.enabled, c.description, c.config, c.permissions) == \
        ("bash", CapabilityType.CODE_EXECUTION, True, None, {}, [])
    d = Capability.new({"name": "web", "type": CapabilityType.NETWORK_ACCESS, "enabled": False,
                        "description": "fetch", "config": {"t": 1}, "permissions": ["network:read"]})
    assert (d.enabled, d.description, d.config, d.permissions) == (False, "fetch", {"t": 1}, ["network:read"])
    assert Capability.new("x", "tool", enabled=None).enabled is True  # None = missing


@pytest.mark.parametrize("name,type_,code,message", [
    (None, "tool", "validation_error", "name is required"),
    ("", "tool", "validation_error", "name cannot be empty"),
    ("x", None, "validation_error", "type is required"),
    ("x", "shell", "invalid_capability_type", "Invalid capability type: 'shell'"),
    ("x", 7, "invalid_capability_type", "Invalid capability type: 7"),
])
def test_new_errors(name, type_, code, message):
    with pytest.raises(AsmError) as ei:
        Capability.new(name, type_)
    assert (ei.value.code, ei.value.message) == (code, message)


def test_enable_disable_return_copies():
    c = Capability.new("x", "tool")
    off = c.disable()
    assert (c.enabled, off.enabled, off.enable().enabled) == (True, False, True)


def test_round_trip():
    c = Capability.new("web", "network_access", enabled=False, description="d", config={"a": [1]},
                       permissions=["network:read"])
    d = c.to_dict()
    assert list(d) == ["name", "type", "enabled", "description", "config", "permissions"]
    assert Capability.from_dict(json.loads(json.dumps(d))) == c
    assert Capability.from_dict({"name": "n", "type": "tool"}).enabled is True


@pytest.mark.parametrize("d,code,message", [
    ("x", "validation_error", "Invalid capability map"),
    ({"type": "tool"}, "validation_error", "name is required"),
    ({"name": "", "type": "tool"}, "validation_error", "name cannot be empty"),
    ({"name": 3, "type": "tool"}, "validation_error", "name must be a string"),
    ({"name": "n"}, "validation_error", "type is required"),
    ({"name": "n", "type": "nope"}, "invalid_capability_type", "Invalid capability type: 'nope'"),
    ({"name": "n", "type": 3}, "validation_error", "type must be a string"),
])
def test_from_dict_errors(d, code, message):
    with pytest.raises(AsmError) as ei:
        Capability.from_dict(d)
    assert (ei.value.code, ei.value.message) == (code, message)


PROVIDER = [Capability.new("bash", "code_execution"), Capability.new("read", "file_access"),
            Capability.new("write", "file_access"), Capability.new("web", "network_access", enabled=False)]


def test_resolver_new_stores_frozensets_and_validates():
    r = CapabilityResolver.new(required=["tool", CapabilityType.PROMPT], optional=("tool",))
    assert r.required == frozenset({CapabilityType.TOOL, CapabilityType.PROMPT})
    assert r.optional == frozenset({CapabilityType.TOOL})  # overlap allowed
    assert CapabilityResolver.new("tool").required == frozenset({CapabilityType.TOOL})
    with pytest.raises(AsmError) as ei:
        CapabilityResolver.new(required=["tool", "bad1"], optional=["bad2"])
    assert (ei.value.code, ei.value.message) == ("invalid_capability_type", "Invalid capability type: 'bad1'")


def test_negotiate_full():
    res = CapabilityResolver.new(required=["code_execution"], optional=["file_access"]).negotiate(PROVIDER)
    assert res == NegotiationResult(status="full",
                                    supported=frozenset({CapabilityType.CODE_EXECUTION, CapabilityType.FILE_ACCESS}),
                                    unsupported=frozenset(), warnings=[])


def test_negotiate_degraded_with_sorted_warnings_and_disabled_never_counting():
    res = CapabilityResolver.new(optional=["network_access", "file_access", "prompt"]).negotiate(PROVIDER)
    assert res.status == "degraded"
    assert res.supported == frozenset({CapabilityType.FILE_ACCESS})
    assert res.unsupported == frozenset({CapabilityType.NETWORK_ACCESS, CapabilityType.PROMPT})
    assert res.warnings == ["Optional capability 'network_access' is not supported by the provider",
                            "Optional capability 'prompt' is not supported by the provider"]


def test_negotiate_missing_required_lists_sorted_names():
    with pytest.raises(AsmError) as ei:
        CapabilityResolver.new(required=["tool", "network_access", "code_execution"]).negotiate(PROVIDER)
    assert ei.value.code == "missing_required_capability"
    assert ei.value.message == "Missing required capability types: network_access, tool"


def test_negotiate_empty_requirements_is_full():
    res = CapabilityResolver.new().negotiate([])
    assert (res.status, res.supported, res.unsupported, res.warnings) == ("full", frozenset(), frozenset(), [])
    assert NegotiationResult().status == "unknown"


def test_helpers_consider_enabled_only():
    assert [c.name for c in caps_mod.capabilities_of_type(PROVIDER, "file_access")] == ["read", "write"]
    assert caps_mod.capabilities_of_type(PROVIDER, CapabilityType.NETWORK_ACCESS) == []
    assert caps_mod.has_capability_type(PROVIDER, "code_execution")
    assert not caps_mod.has_capability_type(PROVIDER, "network_access")
