"""Manifest (docs/event-model.md, capabilities, manifests, registry)."""

from __future__ import annotations

import json

import pytest

from asm_nb.core.capabilities import Capability, CapabilityType
from asm_nb.core.errors import AsmError
from asm_nb.core.manifest import Manifest


def _m(**kw) -> Manifest:
    return Manifest.new("coder", "1.0", **kw)


def test_new_defaults():
    m = _m()
    assert (m.name, m.version, m.description, m.provider, m.capabilities, m.config, m.metadata) == \
        ("coder", "1.0", None, None, [], {}, {})


def test_new_builds_capabilities_from_objects_and_dicts():
    bash = Capability.new("bash", "code_execution")
    m = _m(capabilities=[bash, {"name": "web", "type": "network_access", "enabled": False}],
           description="d", provider="claude", config={"c": 1}, metadata={"m": 2})
    assert m.capabilities[0] is bash
    assert m.capabilities[1] == Capability.new("web", "network_access", enabled=False)
    assert (m.description, m.provider, m.config, m.metadata) == ("d", "claude", {"c": 1}, {"m": 2})
    same = Manifest.new({"name": "coder", "version": "1.0", "capabilities": [bash.to_dict()]})
    assert same.capabilities == [bash]


def test_non_list_capabilities_become_empty_and_duplicates_are_allowed_at_construction():
    assert _m(capabilities="bash").capabilities == []
    assert _m(capabilities={"name": "x"}).capabilities == []
    dup = _m(capabilities=[{"name": "a", "type": "tool"}, {"name": "a", "type": "prompt"}])
    assert [c.type for c in dup.capabilities] == [CapabilityType.TOOL, CapabilityType.PROMPT]


@pytest.mark.parametrize("args,kw,code,message", [
    ((None, "1"), {}, "validation_error", "name is required"),
    (("", "1"), {}, "validation_error", "name cannot be empty"),
    (("n", None), {}, "validation_error", "version is required"),
    (("n", ""), {}, "validation_error", "version cannot be empty"),
    (("n", "1"), {"capabilities": ["bash"]}, "validation_error", "Invalid capability"),
    (("n", "1"), {"capabilities": [{"name": "x", "type": "bad"}]}, "invalid_capability_type",
     "Invalid capability type: 'bad'"),
    (("n", "1"), {"capabilities": [{"type": "tool"}]}, "validation_error", "name is required"),
])
def test_new_errors(args, kw, code, message):
    with pytest.raises(AsmError) as ei:
        Manifest.new(*args, **kw)
    assert (ei.value.code, ei.value.message) == (code, message)


def test_add_remove_get():
    m = _m(capabilities=[{"name": "a", "type": "tool"}])
    m2 = m.add_capability({"name": "b", "type": "prompt"}).add_capability(Capability.new("c", "tool"))
    assert [c.name for c in m2.capabilities] == ["a", "b", "c"]  # appended at the end
    assert [c.name for c in m.capabilities] == ["a"]  # original unchanged
    assert m2.get_capability("b").type is CapabilityType.PROMPT
    assert [c.name for c in m2.remove_capability("b").capabilities] == ["a", "c"]
    with pytest.raises(AsmError) as ei:
        m2.add_capability({"name": "a", "type": "sampling"})
    assert (ei.value.code, ei.value.message) == ("duplicate_capability", "Capability 'a' already exists")
    for call in (lambda: m2.remove_capability("zz"), lambda: m2.get_capability("zz")):
        with pytest.raises(AsmError) as ei:
            call()
        assert (ei.value.code, ei.value.message) == ("capability_not_found", "Capability 'zz' not found")
    with pytest.raises(AsmError, match="Invalid capability"):
        m.add_capability(42)


def test_enabled_capabilities_keep_order():
    m = _m(capabilities=[{"name": "a", "type": "tool"}, {"name": "b", "type": "tool", "enabled": False},
                         {"name": "c", "type": "prompt"}])
    assert [c.name for c in m.enabled_capabilities()] == ["a", "c"]


def test_round_trip():
    m = _m(capabilities=[{"name": "a", "type": "tool", "permissions": ["fs:read"]},
                         {"name": "b", "type": "sampling", "enabled": False}],
           description="d", provider="codex", config={"k": [1, 2]}, metadata={"owner": "me"})
    d = m.to_dict()
    assert list(d) == ["name", "version", "description", "provider", "capabilities", "config", "metadata"]
    assert d["capabilities"][0]["type"] == "tool"
    assert Manifest.from_dict(json.loads(json.dumps(d))) == m
    assert Manifest.from_dict({"name": "n", "version": "1", "capabilities": None}).capabilities == []
    assert Manifest.from_dict({"name": "n", "version": "1", "capabilities": []}).capabilities == []


@pytest.mark.parametrize("d,code,message", [
    (["x"], "validation_error", "Invalid manifest map"),
    ({"version": "1"}, "validation_error", "name is required"),
    ({"name": "", "version": "1"}, "validation_error", "name cannot be empty"),
    ({"name": 1, "version": "1"}, "validation_error", "name must be a string"),
    ({"name": "n"}, "validation_error", "version is required"),
    ({"name": "n", "version": 2}, "validation_error", "version must be a string"),
    ({"name": "n", "version": "1", "capabilities": [{"name": "a", "type": "nope"}, {"type": "tool"}]},
     "invalid_capability_type", "Invalid capability type: 'nope'"),
    ({"name": "n", "version": "1", "capabilities": [{"type": "tool"}, {"name": "a", "type": "nope"}]},
     "validation_error", "name is required"),
])
def test_from_dict_errors_first_bad_capability_wins(d, code, message):
    with pytest.raises(AsmError) as ei:
        Manifest.from_dict(d)
    assert (ei.value.code, ei.value.message) == (code, message)
