"""PermissionMode (docs/policies.md, permission modes)."""

from __future__ import annotations

import pytest

from asm_nb.core.errors import AsmError
from asm_nb.core.permission import PermissionMode

MODES = ["default", "accept_edits", "plan", "full_auto", "dangerously_skip_permissions"]


def test_all_in_order():
    assert [m.value for m in PermissionMode.all()] == MODES
    assert f"{PermissionMode.PLAN}" == "plan"


@pytest.mark.parametrize("mode", MODES)
def test_is_valid_only_for_members(mode):
    assert PermissionMode.is_valid(PermissionMode(mode)) is True
    assert PermissionMode.is_valid(mode) is False  # strings normalize; they are not members


@pytest.mark.parametrize("bad", [None, 42, "yolo", []])
def test_is_valid_rejects_other_values(bad):
    assert PermissionMode.is_valid(bad) is False


@pytest.mark.parametrize("mode", MODES)
def test_normalize_members_and_exact_strings(mode):
    assert PermissionMode.normalize(mode) is PermissionMode(mode)
    assert PermissionMode.normalize(PermissionMode(mode)) is PermissionMode(mode)


def test_normalize_none():
    assert PermissionMode.normalize(None) is None


@pytest.mark.parametrize("bad,suffix", [
    ("yolo", f"expected one of {MODES}"), ("bypass_permissions", f"expected one of {MODES}"),
    ("FULL_AUTO", f"expected one of {MODES}"), (42, "expected an atom or string"),
    ([], "expected an atom or string"),
])
def test_normalize_rejects(bad, suffix):
    with pytest.raises(AsmError) as ei:
        PermissionMode.normalize(bad)
    assert ei.value.code == "validation_error"
    assert ei.value.message == f"invalid permission mode: {bad!r}, {suffix}"
