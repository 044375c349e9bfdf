"""Fixtures for the search tests: one store of each kind (LocalStore, SqlStore on SQLite and on a
throwaway PostgreSQL from ``tests/pg.py``, InMemoryStore)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest


def _load_pg():
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


@pytest.fixture(params=["local", "sqlite", "memory", "postgresql"])
def any_store(request, tmp_path):
    """A fresh store of each kind."""
    from asm_nb.stores.local import LocalStore
    from asm_nb.stores.memory import InMemoryStore
    from asm_nb.stores.sql import SqlStore

    kind = request.param
    if kind == "local":
        store = LocalStore(tmp_path / "asm")
    elif kind == "sqlite":
        store = SqlStore(f"sqlite:///{tmp_path / 'asm.db'}")
    elif kind == "memory":
        store = InMemoryStore()
    else:
        store = SqlStore(request.getfixturevalue("pg_server").new_database())
    yield store
    store.close()
