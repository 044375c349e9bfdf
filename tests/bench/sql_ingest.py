"""Benchmark: SqlStore ingest through the persistence pipeline on PostgreSQL and SQLite, against
a bare batched ``executemany`` of the same rows into the same table, measured in the same run.

Run:  python tests/bench/sql_ingest.py [--events N] [--repeat K]

Pipeline = ``EventPipeline.process`` per raw event (build → redact → validate → SqlStore
``append_event_with_sequence``: numbered in memory, written by the write-behind buffer, one
transaction per flush), then ``close()`` (everything committed). Baseline = the same raw dicts
turned into rows (ids, timestamps, JSON text, sequence numbers) and inserted with the driver's
``executemany`` in transactions of ``--batch`` rows. Target: pipeline >= 0.5x the baseline.
PostgreSQL is a throwaway cluster from ``tests/pg.py`` (fsync off, the same for both sides).
Prints a table, then (last line) one JSON object. Not collected by pytest (no ``test_`` prefix).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET_RATIO = 0.5


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def bench_pipeline(url: str, raws: list[dict], sid: str) -> float:
    from asm_nb.persistence.pipeline import EventPipeline, PipelineContext
    from asm_nb.stores.sql import SqlStore

    store = SqlStore(url)
    pipeline = EventPipeline(store)
    ctx = PipelineContext(sid, run_id="run_bench", provider="claude")
    process = pipeline.process
    t0 = time.perf_counter()
    for raw in raws:
        process(raw, ctx)
    store.close()
    elapsed = time.perf_counter() - t0
    with SqlStore(url) as check:
        got = check.get_events(sid)
        assert [e.sequence_number for e in got] == list(range(1, len(raws) + 1)), "pipeline lost events"
    return elapsed


def bench_bare(url: str, raws: list[dict], sid: str, batch: int) -> float:
    """Same rows, the driver's executemany, one transaction per ``batch`` rows, with SqlStore's
    durability settings (SQLite: WAL, ``synchronous=NORMAL``; the default ``FULL`` would fsync
    every commit and make the baseline slower than the work it stands for)."""
    import sqlalchemy as sa

    from asm_nb.core.serialization import new_id, utc_now
    from asm_nb.stores import _codec
    from asm_nb.stores._sql_rows import _ts_text  # the row encoding SqlStore writes
    from asm_nb.stores.sql import normalize_url

    url = normalize_url(url)
    pg = url.startswith("postgresql")
    engine = sa.create_engine(url)
    cols = "id, type, timestamp, session_id, run_id, sequence_number, data, metadata, schema_version, provider, " \
           "correlation_id"
    marks = "%s, %s, %s, %s, %s, %s, %s::json, %s::json, %s, %s, %s" if pg else ", ".join("?" * 11)
    sql = f"INSERT INTO asm_events ({cols}) VALUES ({marks})"
    dumps = _codec.dumps
    raw_conn = engine.raw_connection()
    if not pg:  # the durability SqlStore runs SQLite with (WAL, synchronous=NORMAL): same work
        cur = raw_conn.cursor()
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.close()
    try:
        t0 = time.perf_counter()
        seq = 0
        for i in range(0, len(raws), batch):
            rows = []
            for raw in raws[i:i + batch]:
                seq += 1
                ts = utc_now()
                rows.append((new_id("evt_"), raw["type"], ts if pg else _ts_text(ts), sid, "run_bench", seq,
                             dumps(raw.get("data") or {}).decode(), "{}", 1, "claude", None))
            cur = raw_conn.cursor()
            if not pg:
                cur.execute("BEGIN")
            cur.executemany(sql, rows)
            cur.close()
            raw_conn.commit()
        elapsed = time.perf_counter() - t0
    finally:
        raw_conn.close()
        engine.dispose()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=1_000, help="rows per transaction in the baseline")
    ap.add_argument("--repeat", type=int, default=2, help="best of K")
    ap.add_argument("--skip-postgres", action="store_true")
    args = ap.parse_args()
    n = args.events
    raws = _load(HERE / "store_ingest.py", "asm_bench_store_ingest").make_raw_events(n)
    from asm_nb.stores.sql import migrate

    backends: dict[str, callable] = {}
    tmp = tempfile.TemporaryDirectory(prefix="asm-sql-bench-")
    counter = iter(range(1000))

    def sqlite_url() -> str:
        url = f"sqlite:///{tmp.name}/b{next(counter)}.db"
        migrate(url)
        return url

    backends["sqlite"] = sqlite_url
    if not args.skip_postgres:
        pg = _load(HERE.parent / "pg.py", "asm_bench_pg").server()
        backends["postgresql"] = pg.new_database
    results = {}
    for name, fresh in backends.items():
        t_pipe = min(bench_pipeline(fresh(), raws, f"ses_bench_{k}") for k in range(args.repeat))
        t_bare = min(bench_bare(fresh(), raws, f"ses_bare_{k}", args.batch) for k in range(args.repeat))
        results[name] = {"pipeline_events_per_s": round(n / t_pipe), "bare_executemany_rows_per_s": round(n / t_bare),
                         "ratio": round(t_bare / t_pipe, 3)}
    tmp.cleanup()

    print(f"SqlStore ingest, {n} events (best of {args.repeat}); baseline: executemany, {args.batch} rows/transaction")
    print(f"{'backend':<12}{'pipeline ev/s':>16}{'bare rows/s':>16}{'ratio':>8}{'target':>8}")
    for name, r in results.items():
        ok = "ok" if r["ratio"] >= TARGET_RATIO else "MISS"
        print(f"{name:<12}{r['pipeline_events_per_s']:>16,}{r['bare_executemany_rows_per_s']:>16,}{r['ratio']:>8.2f}"
              f"{ok:>8}")
    print(json.dumps({"bench": "sql_ingest", "events": n, "target_ratio": TARGET_RATIO, **results,
                      "ok": all(r["ratio"] >= TARGET_RATIO for r in results.values())}))


if __name__ == "__main__":
    main()
