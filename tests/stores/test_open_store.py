"""``open_store``: every accepted target form, and clear errors for the rest."""

from __future__ import annotations

import sys

import pytest

from asm_nb.core.errors import AsmError
from asm_nb.stores import default_root, open_store
from asm_nb.stores.local import LocalStore
from asm_nb.stores.memory import InMemoryStore


def test_none_opens_local_store_at_asm_home(tmp_path, monkeypatch):
    monkeypatch.setenv("ASM_HOME", str(tmp_path / "home"))
    with open_store() as st:
        assert isinstance(st, LocalStore)
        assert st.root == (tmp_path / "home").absolute()
        assert (tmp_path / "home" / "store.json").exists()


def test_none_without_asm_home_uses_dot_asm(tmp_path, monkeypatch):
    monkeypatch.delenv("ASM_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_root() == tmp_path / ".asm"
    with open_store() as st:
        assert st.root == tmp_path / ".asm"


def test_memory_url_gives_fresh_stores():
    a, b = open_store("memory://"), open_store("memory://")
    assert isinstance(a, InMemoryStore) and a is not b


@pytest.mark.parametrize("form", ["str", "path", "file_url"])
def test_paths_open_local_store(tmp_path, form):
    target = {"str": str(tmp_path / "s"), "path": tmp_path / "s", "file_url": f"file://{tmp_path / 's'}"}[form]
    with open_store(target) as st:
        assert isinstance(st, LocalStore) and st.root == tmp_path / "s"


def test_options_reach_local_store(tmp_path):
    with open_store(tmp_path / "s", durability="fsync", flush_interval_ms=10) as st:
        assert st.durability == "fsync" and st.flush_interval_s == pytest.approx(0.01)
    with pytest.raises(AsmError):
        open_store("memory://", durability="fsync")


def test_store_objects_pass_through():
    st = InMemoryStore()
    assert open_store(st) is st


@pytest.mark.parametrize("url", ["sqlite:///x.db", "postgresql://u@127.0.0.1/asm", "postgresql+psycopg://u@h/db"])
def test_sql_urls_go_to_sql_store(url, monkeypatch):
    import types

    seen = {}

    class FakeSqlStore:
        def __init__(self, u, **opts):
            seen["url"], seen["opts"] = u, opts

    monkeypatch.setitem(sys.modules, "asm_nb.stores.sql", types.SimpleNamespace(SqlStore=FakeSqlStore))
    st = open_store(url, pool_size=2)
    assert isinstance(st, FakeSqlStore) and seen == {"url": url, "opts": {"pool_size": 2}}


def test_sql_url_without_sql_module_is_clear(monkeypatch):
    monkeypatch.setitem(sys.modules, "asm_nb.stores.sql", None)  # import raises ModuleNotFoundError
    with pytest.raises(AsmError) as ei:
        open_store("sqlite:///runs.db")
    assert ei.value.code == "dependency_not_available"
    assert "SqlStore" in ei.value.message


@pytest.mark.parametrize("target", [42, object(), "s3://bucket/x", "", ["memory://"]])
def test_anything_else_is_rejected_with_the_accepted_forms(target):
    with pytest.raises(AsmError) as ei:
        open_store(target)
    assert ei.value.code == "validation_error"
    assert "memory://" in ei.value.message and "sqlite:///" in ei.value.message


def test_public_name():
    import asm_nb

    assert asm_nb.open_store is open_store


def test_stores_satisfy_the_port(tmp_path):
    from asm_nb.ports import SessionStore

    with open_store(tmp_path / "s") as local, open_store("memory://") as memory:
        assert isinstance(local, SessionStore) and isinstance(memory, SessionStore)
        assert local.inline_safe is True and memory.inline_safe is True
