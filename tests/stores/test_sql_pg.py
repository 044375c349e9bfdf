"""SqlStore on a real PostgreSQL server (a throwaway cluster from ``tests/pg.py``): the shared
contract, LISTEN/NOTIFY wake-ups and the psycopg 3 URL mapping. Each test gets its own database."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from asm_nb.stores.sql import SqlStore

from .contract import StoreContract


def _load_pg():
    name = "asm_tests_pg_helper"
    mod = sys.modules.get(name)
    if mod is None:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "pg.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return mod


_pg = _load_pg()


@pytest.fixture(scope="session")
def pg_server():
    return _pg.require()


@pytest.fixture
def pg_url(pg_server):
    return pg_server.new_database()


class TestPostgresContract(StoreContract):
    @pytest.fixture
    def store(self, pg_url):
        s = SqlStore(pg_url)
        yield s
        s.close()
