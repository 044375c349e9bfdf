"""Shared fixtures: every test gets its own ASM_HOME and a clean default-store cache."""

from __future__ import annotations

import pathlib

import pytest

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared"
if not SHARED.exists():  # CI clones main with shared/ beside it
    SHARED = pathlib.Path(__file__).resolve().parents[1].parent / "shared"
FIXTURES = SHARED / "fixtures" / "providers"


@pytest.fixture(autouse=True)
def _isolated_asm_home(tmp_path, monkeypatch):
    home = tmp_path / "asm_home"
    monkeypatch.setenv("ASM_HOME", str(home))
    try:
        from asm_nb import stores
    except Exception:  # pragma: no cover - collection of a broken tree
        yield home
        return
    stores._default_stores.clear()
    yield home
    for store in list(stores._default_stores.values()):
        try:
            store.close()
        except Exception:
            pass
    stores._default_stores.clear()


@pytest.fixture
def fixtures_dir() -> pathlib.Path:
    """``../shared/fixtures/providers`` (recorded provider streams with manifests)."""
    if not FIXTURES.exists():
        pytest.fail(f"provider fixtures not found at {FIXTURES}")
    return FIXTURES
