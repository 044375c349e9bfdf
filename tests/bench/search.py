"""Benchmark: full-text search (``frames.search``) against the scan a user writes without it, and
what the SQLite index costs on the write path.

Runs go through ``run_once`` (replay cassettes: prompts, outputs, tool calls) into a LocalStore
and into SqlStores on SQLite with and without the search migration (interleaved, same cassettes).

- query: ``frames.search(store, WORD, limit=20)`` on an up-to-date index vs the baseline
  ``frames.events(store)`` + ``data.str.contains(WORD)`` (the same events, no ranking) — best of
  ``--rounds``; target: search faster than the scan.
- LocalStore sidecar: the first search (builds the index from the logs) and the search after one
  more run (reads only the new bytes).
- write path: ``run_once`` time per run on SQLite with the index triggers vs without (migrations
  1-2 only); reported as a ratio.

    python tests/bench/search.py [--runs 150] [--rounds 5]

Prints a table, then one JSON line of figures (last line).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import asm_nb
from asm_nb.stores import _sql_schema as S
from asm_nb.stores.sql import SqlStore

CASSETTES = ("hello", "tools", "failure")


def fill(store, runs: int) -> float:
    """``runs`` replay runs into ``store``; returns seconds."""
    t0 = time.perf_counter()
    for i in range(runs):
        name = CASSETTES[i % len(CASSETTES)]
        asm_nb.run_once(f"replay {name}", provider="replay", store=store,
                        options={"cassette": asm_nb.testing.example_cassette(name)})
    return time.perf_counter() - t0


def best(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def scan(store, word: str) -> int:
    import polars as pl

    ev = asm_nb.frames.events(store, backend="polars")
    return ev.filter(pl.col("data").str.to_lowercase().str.contains(word, literal=True)).height


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=150)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="asm-bench-search-"))
    word = "readme"

    local = asm_nb.open_store(tmp / "local")
    fill(local, args.runs)
    t0 = time.perf_counter()
    n_hits = len(asm_nb.frames.search(local, word, limit=20, backend="polars"))
    first = time.perf_counter() - t0
    fill(local, 1)
    t0 = time.perf_counter()
    asm_nb.frames.search(local, word, limit=20, backend="polars")
    after_one = time.perf_counter() - t0
    q_local = best(lambda: asm_nb.frames.search(local, word, limit=20, backend="polars"), args.rounds)
    s_local = best(lambda: scan(local, word), args.rounds)
    assert n_hits == 20 and scan(local, word) >= 20, (n_hits, scan(local, word))

    with_ix = SqlStore(f"sqlite:///{tmp / 'with.db'}")
    without = SqlStore(f"sqlite:///{tmp / 'without.db'}", migrations=S.MIGRATIONS[:2])
    w_with = w_without = 0.0
    chunk = max(1, args.runs // 5)
    for _ in range(5):  # interleaved: the machine is noisy
        w_without += fill(without, chunk)
        w_with += fill(with_ix, chunk)
    q_sql = best(lambda: asm_nb.frames.search(with_ix, word, limit=20, backend="polars"), args.rounds)
    s_sql = best(lambda: scan(with_ix, word), args.rounds)
    events = len(asm_nb.frames.events(local, backend="polars"))
    for st in (local, with_ix, without):
        st.close()

    rows = [
        ("LocalStore search (indexed)", q_local * 1000, "ms"),
        ("LocalStore scan baseline", s_local * 1000, "ms"),
        ("LocalStore first search (builds index)", first * 1000, "ms"),
        ("LocalStore search after one more run", after_one * 1000, "ms"),
        ("SQLite search (FTS5)", q_sql * 1000, "ms"),
        ("SQLite scan baseline", s_sql * 1000, "ms"),
        ("SQLite run_once with index", w_with / (5 * chunk) * 1000, "ms/run"),
        ("SQLite run_once without index", w_without / (5 * chunk) * 1000, "ms/run"),
    ]
    print(f"{args.runs + 1} runs, {events} events in the LocalStore")
    for name, v, unit in rows:
        print(f"{name:<42} {v:>10.1f} {unit}")
    figures = {"bench": "search", "runs": args.runs, "events": events,
               "local_search_ms": round(q_local * 1000, 2), "local_scan_ms": round(s_local * 1000, 2),
               "local_speedup_vs_scan": round(s_local / q_local, 2),
               "local_first_search_ms": round(first * 1000, 1), "local_after_one_run_ms": round(after_one * 1000, 1),
               "sqlite_search_ms": round(q_sql * 1000, 2), "sqlite_scan_ms": round(s_sql * 1000, 2),
               "sqlite_speedup_vs_scan": round(s_sql / q_sql, 2),
               "sqlite_write_ratio_with_index": round(w_with / w_without, 3)}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
