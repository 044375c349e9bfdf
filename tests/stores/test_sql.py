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


# -- SQLite specifics, schema and migrations ------------------------------------------------------
import sqlalchemy as sa  # noqa: E402

from asm_nb.core.errors import AsmError  # noqa: E402
from asm_nb.stores import _sql_schema as S  # noqa: E402
from asm_nb.stores import open_store  # noqa: E402
from asm_nb.stores.sql import downgrade, migrate, normalize_url  # noqa: E402

from .contract import ev, seqs, sid  # noqa: E402


def test_open_store_and_url_mapping(sqlite_url):
    st = open_store(sqlite_url)
    try:
        assert isinstance(st, SqlStore) and st.inline_safe is False and SqlStore.inline_safe is False
    finally:
        st.close()
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    with pytest.raises(AsmError) as ei:
        SqlStore("sqlite://")
    assert ei.value.code == "validation_error"


def test_wal_mode_and_migrations_recorded(sqlite_url):
    with SqlStore(sqlite_url) as st:
        with st._reader.connect() as c:
            assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            rows = c.execute(sa.select(S.schema_migrations.c.version, S.schema_migrations.c.name)).all()
        assert [tuple(r) for r in rows] == [(m.version, m.name) for m in S.MIGRATIONS]


def test_new_migration_applied_on_open_and_newer_db_refused(sqlite_url):
    SqlStore(sqlite_url).close()
    extra = S.Migration(len(S.MIGRATIONS) + 1, "add_test_table",
                        lambda c: c.exec_driver_sql("CREATE TABLE asm_test_extra (x INTEGER)"))
    with SqlStore(sqlite_url, migrations=[*S.MIGRATIONS, extra]) as st:
        with st._reader.connect() as c:
            assert c.exec_driver_sql("SELECT count(*) FROM asm_test_extra").scalar() == 0
    with pytest.raises(AsmError) as ei:  # the database is now newer than the code
        SqlStore(sqlite_url)
    assert ei.value.code == "migration_required" and "newer" in ei.value.message


def test_never_migrate_checks_columns(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    with pytest.raises(AsmError) as ei:
        SqlStore(url, migrate="never")
    assert ei.value.code == "migration_required"
    assert ei.value.details == {"missing_column": "asm_sessions.deleted_at"}
    assert migrate(url) == ["create_asm_tables", "create_asm_artifact_blobs", "create_asm_search_index"] and migrate(url) == []
    SqlStore(url, migrate="never").close()
    downgrade(url)
    eng = sa.create_engine(url)
    names = sa.inspect(eng).get_table_names()
    eng.dispose()
    assert not any(n.startswith("asm_") for n in names)


def test_batch_of_3000_gets_contiguous_numbers(sqlite_url):
    with SqlStore(sqlite_url) as st:
        s = sid()
        out = st.append_events([ev(s) for _ in range(3000)])
        assert seqs(out) == list(range(1, 3001))
        st.flush()
        assert seqs(st.get_events(s)) == list(range(1, 3001))


def test_write_behind_one_transaction_per_flush(sqlite_url):
    """Appends stay in memory until the flush (visible in-process at once), then commit together."""
    with SqlStore(sqlite_url, flush_interval_ms=60_000) as st, SqlStore(sqlite_url) as other:
        s = sid()
        for _ in range(5):
            st.append_event(ev(s))
        assert seqs(st.get_events(s)) == [1, 2, 3, 4, 5]
        assert other.get_events(s) == []  # not committed yet
        st.flush()
        assert seqs(other.get_events(s)) == [1, 2, 3, 4, 5]
        assert other.append_event_with_sequence(ev(s)).sequence_number == 6  # continues from the counter


def test_reopened_store_resolves_duplicates(sqlite_url):
    s = sid()
    e = ev(s)
    with SqlStore(sqlite_url) as st:
        first = st.append_event_with_sequence(e)
    with SqlStore(sqlite_url) as st:
        again = st.append_event_with_sequence(e.replace(data={"changed": True}))
        assert again.sequence_number == first.sequence_number == 1 and again.data == first.data
        assert st.get_latest_sequence(s) == 1


def test_artifact_records(sqlite_url):
    with SqlStore(sqlite_url) as st:
        st.save_artifact_record({"id": "art_1", "session_id": "ses_a", "key": "k1", "byte_size": 3,
                                 "created_at": "2024-01-02T00:00:00.000000Z"})
        [rec] = st.list_artifact_records("ses_a")
        assert rec["key"] == "k1" and rec["byte_size"] == 3 and rec["created_at"] == "2024-01-02T00:00:00.000000Z"
        st.delete_session("ses_a")
        assert st.list_artifact_records() == []


def test_run_once_appends_without_a_thread_hop_per_event(tmp_path, monkeypatch):
    """On the user path SqlStore events go to its write-behind buffer from the runtime's loop:
    no ``asyncio.to_thread`` per event (a 300-event run makes a handful of hops, for the rows)."""
    import asyncio

    import asm_nb
    from asm_nb.providers._base import BaseAdapter
    from asm_nb.stores.sql import SqlStore

    class Deltas(BaseAdapter):
        name = "deltas"

        async def _execute(self, active, **opts):
            await active.emit("run_started", {})
            for _ in range(300):
                await active.emit("message_streamed", {"delta": "x", "content": "x"})
            await active.emit("run_completed", {"stop_reason": "end_turn"})
            return {"output": {"content": "x" * 300}, "token_usage": {}}

    store = SqlStore(f"sqlite:///{tmp_path}/s.db")
    hops = []
    real = asyncio.to_thread

    async def counting(fn, *a, **kw):
        hops.append(getattr(fn, "__name__", fn))
        return await real(fn, *a, **kw)

    monkeypatch.setattr(asyncio, "to_thread", counting)
    r = asm_nb.run_once("go", provider=Deltas(), store=store)
    assert r.status == "completed"
    assert len([e for e in store.get_events(r.session_id, run_id=r.run_id) if e.type.value == "message_streamed"]) == 300
    assert len(hops) < 30, hops
    store.close()


def _run_after_close_leaves_no_pooled_connection(store):
    import asm_nb

    r = asm_nb.run_once("echo hi", provider="shell", store=store)
    store.close()
    assert [e.type.value for e in r.events][-1] == "run_completed"  # loaded lazily, after close
    assert store._reader.pool.checkedin() == 0 and store._reader.pool.checkedout() == 0


def test_a_lazy_read_after_close_leaves_no_pooled_connection(tmp_path):
    """``RunResult.events`` of a SqlStore loads after the store is closed; the connection that
    read must be closed then, not left in a pool until garbage collection."""
    from asm_nb.stores.sql import SqlStore

    _run_after_close_leaves_no_pooled_connection(SqlStore(f"sqlite:///{tmp_path}/s.db"))
