"""Registry (docs/event-model.md, capabilities, manifests, registry)."""

from __future__ import annotations

import json

import pytest

from asm_nb.core.capabilities import Capability
from asm_nb.core.errors import AsmError
from asm_nb.core.manifest import Manifest
from asm_nb.core.registry import Registry, validate_manifest


def _m(name, provider=None, caps=(), version="1.0") -> Manifest:
    return Manifest.new(name, version, provider=provider, capabilities=list(caps))


A = _m("alpha", "claude", [{"name": "bash", "type": "code_execution"}])
B = _m("beta", "codex", [{"name": "web", "type": "network_access", "enabled": False}])
C = _m("gamma", "claude", [{"name": "fs", "type": "file_access"}, {"name": "web", "type": "network_access"}])


def _reg() -> Registry:
    return Registry.new().register(C).register(A).register(B)


def test_register_get_list_exists_count():
    r = _reg()
    assert [m.name for m in r.list()] == ["alpha", "beta", "gamma"]  # sorted by name
    assert r.get("beta") is B and r.exists("alpha") and not r.exists("delta") and r.count() == 3
    assert Registry.new().count() == 0 and Registry.new().list() == []


def test_register_is_pure():
    empty = Registry.new(metadata={"team": "x"})
    one = empty.register(A)
    assert empty.count() == 0 and one.count() == 1
    assert one.metadata == {"team": "x"}
    with pytest.raises(TypeError):
        one.manifests["zzz"] = B  # the map itself is read-only


def test_determinism():
    assert _reg() == Registry.new().register(A).register(B).register(C)
    assert _reg().to_dict() == _reg().to_dict()


def test_register_duplicate_name():
    with pytest.raises(AsmError) as ei:
        _reg().register(_m("alpha", version="2"))
    assert (ei.value.code, ei.value.message) == ("already_exists", "Manifest 'alpha' already exists in registry")


@pytest.mark.parametrize("call", ["get", "unregister"])
def test_missing_names(call):
    with pytest.raises(AsmError) as ei:
        getattr(_reg(), call)("delta")
    assert (ei.value.code, ei.value.message) == ("not_found", "Manifest 'delta' not found in registry")


def test_unregister_and_update():
    r = _reg()
    assert [m.name for m in r.unregister("beta").list()] == ["alpha", "gamma"]
    assert r.count() == 3
    newer = _m("alpha", "amp", version="2.0")
    assert r.update(newer).get("alpha") is newer and r.get("alpha") is A
    with pytest.raises(AsmError) as ei:
        r.update(_m("delta"))
    assert ei.value.code == "not_found"
    # not_found is checked before validation
    bad_missing = Manifest(name="delta", version="")
    with pytest.raises(AsmError) as ei:
        r.update(bad_missing)
    assert ei.value.code == "not_found"
    with pytest.raises(AsmError) as ei:
        r.update(Manifest(name="alpha", version=""))
    assert ei.value.message == "Manifest version is required and cannot be empty"


INVALID_CAP = "Manifest contains invalid capability: each capability must have a non-empty name and valid type"


@pytest.mark.parametrize("manifest,message", [
    (Manifest(name="", version="1"), "Manifest name is required and cannot be empty"),
    (Manifest(name=None, version="1"), "Manifest name is required and cannot be empty"),
    (Manifest(name="n", version=None), "Manifest version is required and cannot be empty"),
    (Manifest(name="n", version=""), "Manifest version is required and cannot be empty"),
    (Manifest(name="n", version="1", capabilities=[Capability(name="", type="tool")]), INVALID_CAP),
    (Manifest(name="n", version="1", capabilities=[Capability(name="x", type="bogus")]), INVALID_CAP),
    (Manifest(name="n", version="1", capabilities=["not a capability"]), INVALID_CAP),
])
def test_validate_manifest(manifest, message):
    for call in (lambda: validate_manifest(manifest), lambda: Registry.new().register(manifest)):
        with pytest.raises(AsmError) as ei:
            call()
        assert (ei.value.code, ei.value.message) == ("validation_error", message)
    assert validate_manifest(A) is None


def test_filters():
    r = _reg()
    assert [m.name for m in r.filter_by_provider("claude")] == ["alpha", "gamma"]
    assert r.filter_by_provider("Claude") == []
    assert [m.name for m in r.filter_by_capability("network_access")] == ["gamma"]  # beta's is disabled
    assert [m.name for m in r.filter_by_capability("code_execution")] == ["alpha"]
    assert r.filter_by_capability("sampling") == []
    with pytest.raises(AsmError):
        r.filter_by_capability("bogus")


def test_round_trip():
    r = Registry.new(metadata={"v": 1}).register(B).register(A).register(C)
    d = r.to_dict()
    assert list(d) == ["manifests", "metadata"]
    assert [m["name"] for m in d["manifests"]] == ["alpha", "beta", "gamma"]
    assert Registry.from_dict(json.loads(json.dumps(d))) == r
    assert Registry.from_dict({"manifests": None}) == Registry.new()
    assert Registry.from_dict({"manifests": []}).count() == 0


def test_from_dict_last_duplicate_wins_and_first_failure_aborts():
    r = Registry.from_dict({"manifests": [A.to_dict(), {**A.to_dict(), "version": "9"}]})
    assert r.count() == 1 and r.get("alpha").version == "9"
    with pytest.raises(AsmError) as ei:
        Registry.from_dict({"manifests": [A.to_dict(), {"name": "x"}, {"version": "1"}]})
    assert ei.value.message == "version is required"
    with pytest.raises(AsmError, match="Invalid registry map"):
        Registry.from_dict("nope")
