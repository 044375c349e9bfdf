"""SqlStore on SQLite: the shared contract plus schema, migrations and write-behind rules."""

from __future__ import annotations

import pytest

from asm_nb.stores.sql import SqlStore

from .contract import StoreContract


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'asm.db'}"


class TestSqliteContract(StoreContract):
    @pytest.fixture
    def store(self, sqlite_url):
        s = SqlStore(sqlite_url)
        yield s
        s.close()
