"""SqlStore on a real PostgreSQL server (a throwaway cluster from ``tests/pg.py``): the shared
contract, LISTEN/NOTIFY wake-ups and the psycopg 3 URL mapping. Each test gets its own database."""

from __future__ import annotations

import pytest

from asm_nb.stores.sql import SqlStore

from .contract import StoreContract


@pytest.fixture
def pg_url(pg_server):
    return pg_server.new_database()


class TestPostgresContract(StoreContract):
    @pytest.fixture
    def store(self, pg_url):
        s = SqlStore(pg_url)
        yield s
        s.close()


def test_listen_notify_wakes_waiter_in_other_store(pg_url):
    """A waiter on one store is woken by another store's commit (LISTEN/NOTIFY), not by polling."""
    import threading
    import time

    from .contract import ev, sid

    with SqlStore(pg_url) as reader, SqlStore(pg_url, flush_interval_ms=0) as writer:
        s = sid()
        box = {}

        def wait():
            t0 = time.monotonic()
            box["r"] = reader.get_events(s, wait_timeout_ms=5000)
            box["t"] = time.monotonic() - t0

        th = threading.Thread(target=wait)
        th.start()
        deadline = time.monotonic() + 5
        while reader._listener is None and time.monotonic() < deadline:
            time.sleep(0.005)
        reader._poll_s = 10.0  # only a notification can wake it now
        e = writer.append_event_with_sequence(ev(s))
        writer.flush()
        th.join(6)
        assert [x.id for x in box["r"]] == [e.id] and box["t"] < 3


def test_newer_database_refused(pg_url):
    import sqlalchemy as sa

    from asm_nb.core.errors import AsmError
    from asm_nb.stores import _sql_schema as S

    eng = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    with eng.begin() as c:
        c.execute(S.schema_migrations.insert().values(version=999, name="future", applied_at="x"))
    eng.dispose()
    with pytest.raises(AsmError) as ei:
        SqlStore(pg_url)
    assert ei.value.code == "migration_required"


def test_close_while_a_waiter_is_starting_the_listener(pg_url, monkeypatch):
    """close() from one thread while a long-poll waiter on another is starting the LISTEN thread:
    close waits for the start and joins a started thread (it used to join the thread object
    before its start(): "cannot join thread before it is started"), the waiter gets [] and no
    listener is left running."""
    import threading
    import time

    from .contract import sid

    starting, real_start = threading.Event(), threading.Thread.start

    def slow_start(self):
        if self.name == "asm-sqlstore-listen":
            starting.set()
            time.sleep(0.3)  # the window a loaded machine can leave between creating and starting
        return real_start(self)

    monkeypatch.setattr(threading.Thread, "start", slow_start)
    store = SqlStore(pg_url)
    box = {}
    waiter = threading.Thread(target=lambda: box.update(r=store.get_events(sid(), wait_timeout_ms=10_000)))
    waiter.start()
    assert starting.wait(10)
    t0 = time.monotonic()
    store.close()
    waiter.join(5)
    assert not waiter.is_alive() and box["r"] == []
    assert store._listener is not None and not store._listener.is_alive()
    assert time.monotonic() - t0 < 5


def test_a_lazy_read_after_close_leaves_no_connection_open(pg_url):
    """The run's events read after ``close()`` (``RunResult.events`` is lazy) do not keep a
    server connection open until garbage collection."""
    import sqlalchemy as sa

    import asm_nb

    store = SqlStore(pg_url)
    r = asm_nb.run_once("echo hi", provider="shell", store=store)
    store.close()
    assert [e.type.value for e in r.events][-1] == "run_completed"
    db = sa.make_url(pg_url).database
    probe = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    try:
        with probe.connect() as c:
            n = c.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = :d AND pid <> pg_backend_pid()"),
                          {"d": db}).scalar()
    finally:
        probe.dispose()
    assert n == 0
