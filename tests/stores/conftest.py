"""Fixtures for the store tests: fresh stores of each kind (closed afterwards) and the throwaway
PostgreSQL cluster of ``tests/pg.py``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

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


def _load_pg():
    """``tests/pg.py``, loaded by file path (``tests/`` is not a package)."""
    name = "asm_tests_pg_helper"
    mod = sys.modules.get(name)
    if mod is None:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "pg.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def pg_server():
    """The test PostgreSQL cluster (skipped without binaries; FAILS in CI if it cannot start)."""
    return _load_pg().require()
