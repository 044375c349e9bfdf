"""QueryAPI and Maintenance of SqlStore in SQL (docs/stores.md, queries; docs/stores.md, retention and maintenance):
the generic suites of
``test_query.py`` and ``test_maintenance.py`` run unchanged against ``store.query`` /
``store.maintenance`` on SQLite and PostgreSQL, plus SQL-specific checks."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path

import pytest

from asm_nb.core.events import Event
from asm_nb.core.session import Session
from asm_nb.persistence.retention import RetentionPolicy
from asm_nb.stores._maintenance import GenericMaintenance
from asm_nb.stores._query import GenericQueryAPI
from asm_nb.stores._sql_query import SqlMaintenance, SqlQueryAPI
from asm_nb.stores.sql import SqlStore

HERE = Path(__file__).resolve().parent


def _load(path: Path, name: str):
    mod = sys.modules.get(name)
    if mod is None:
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return mod


_gq = _load(HERE / "test_query.py", "asm_tests_generic_query")
_gm = _load(HERE / "test_maintenance.py", "asm_tests_generic_maintenance")

# the generic suites build GenericQueryAPI(store) / GenericMaintenance(store): on a SqlStore,
# hand them the store's SQL implementations instead
_gq.GenericQueryAPI = lambda store: store.query if isinstance(store, SqlStore) else GenericQueryAPI(store)
_gm.GenericMaintenance = lambda store: store.maintenance if isinstance(store, SqlStore) else GenericMaintenance(store)


def _store_tests(mod) -> list[str]:
    return sorted(n for n, f in vars(mod).items()
                  if n.startswith("test_") and callable(f) and list(inspect.signature(f).parameters)[:1] == ["store"])


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'q.db'}"
    else:
        url = request.getfixturevalue("pg_server").new_database()
    s = SqlStore(url)
    yield s
    s.close()


@pytest.mark.parametrize("name", _store_tests(_gq))
def test_generic_query_suite(name, sql_store):
    assert isinstance(sql_store.query, SqlQueryAPI)
    getattr(_gq, name)(sql_store)


@pytest.mark.parametrize("name", _store_tests(_gm))
def test_generic_maintenance_suite(name, sql_store):
    assert isinstance(sql_store.maintenance, SqlMaintenance)
    getattr(_gm, name)(sql_store)


def _fill(store, sid, types):
    for i, t in enumerate(types):
        store.append_event(Event.new(t, sid, run_id="r1", data={"i": i}))


def test_prune_protected_and_health(sql_store):
    store, m = sql_store, sql_store.maintenance
    store.save_session(Session.new("a", id="s1").with_status("active"))
    _fill(store, "s1", ["message_streamed"] * 8)
    report = m.execute(RetentionPolicy(max_events_per_session=3))
    assert report["events_pruned"] == 5 and report["errors"] == []
    assert m.health_check() == []
    assert store.append_event_with_sequence(Event.new("message_streamed", "s1")).sequence_number == 9
    _fill(store, "s2", ["run_started", "message_received", "tool_call_started", "message_streamed",
                        "message_received", "run_completed"])
    assert m.prune_session_events("s2", RetentionPolicy(max_events_per_session=2)) == 4
    assert [e.type.value for e in store.get_events("s2")] == ["run_started", "run_completed"]


def test_orphans_and_mismatch(sql_store):
    store, m = sql_store, sql_store.maintenance
    store.save_session(Session.new("a", id="s_ok"))
    _fill(store, "s_orphan", ["run_started", "run_completed"])
    store.save_artifact_record({"id": "art_1", "session_id": "s_gone", "key": "k1"})
    store.save_artifact_record({"id": "art_2", "session_id": "s_ok", "key": "k2"})
    issues = m.health_check()
    assert issues == ["2 events reference non-existent sessions"]
    store.flush()
    store._write(lambda c: c.exec_driver_sql("UPDATE asm_session_sequences SET last_sequence = 1 "
                                             "WHERE session_id = 's_orphan'"), "test")
    assert "Sequence mismatch for s_orphan: counter=1, max_sequence=2" in m.health_check()
    assert m.clean_orphaned_artifacts() == 1
    assert [r["id"] for r in store.list_artifact_records()] == ["art_2"]
    store._write(lambda c: c.exec_driver_sql("INSERT INTO asm_session_sequences (session_id, last_sequence) "
                                             "VALUES ('s_ghost', 4)"), "test")
    assert m.clean_orphaned_sequences() == 1
    assert set(store.sequence_counters()) == {"s_orphan"}


def test_reads_see_buffered_writes(sql_store):
    """Queries commit the write-behind buffer first (read-your-writes)."""
    s = Session.new("a")
    sql_store.save_session(s)
    sql_store.append_events([Event.new("run_started", s.id), Event.new("run_completed", s.id)])
    assert sql_store.query.count_events(session_ids=[s.id]) == 2
    assert sql_store.query.get_session_stats(s.id)["event_count"] == 2
