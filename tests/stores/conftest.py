"""Fixtures for the store tests: fresh stores of each kind (closed afterwards)."""

from __future__ import annotations

import pytest

from asm_nb.stores.memory import InMemoryStore


@pytest.fixture
def memory_store():
    store = InMemoryStore()
    yield store
    store.close()


@pytest.fixture
def local_root(tmp_path):
    """An empty folder for a LocalStore."""
    return tmp_path / "asm"


@pytest.fixture
def local_store(local_root):
    from asm_nb.stores.local import LocalStore

    store = LocalStore(local_root)
    yield store
    store.close()
