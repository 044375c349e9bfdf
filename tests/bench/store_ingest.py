"""Benchmark: event ingest into LocalStore through the full persistence pipeline, against
baselines measured in the same run (raw JSON-lines appends, plain TinyDB inserts).

Run:  python tests/bench/store_ingest.py [--events N]

Targets (foundation issue, docs/store-format.md): LocalStore through ``EventPipeline.process`` at
>= 50,000 events/s and >= 0.3x raw JSONL appends of the same dicts; ``import asm_nb`` < 150 ms.
Prints a table, then (last line) one JSON object with the figures.

Not collected by pytest (no ``test_`` prefix).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_EVENTS_PER_S = 50_000
TARGET_RATIO = 0.3
TARGET_IMPORT_MS = 150


def make_raw_events(n: int, seed: int = 7) -> list[dict]:
    """A realistic stream: ~90% message_streamed deltas, tool call pairs, token usage updates."""
    rng = random.Random(seed)
    words = ["the", "agent", "reads", "README.md", "and", "runs", "tests", "—", "ok", "fix", "für", "数据",
             "def", "return", "async", "cell", "value", "error", "passed", "\n"]
    out: list[dict] = []
    content = ""
    tool_n = 0
    while len(out) < n:
        r = rng.random()
        if r < 0.90:
            delta = " ".join(rng.choice(words) for _ in range(rng.randint(1, 4)))
            content = (content + delta)[-200:]
            out.append({"type": "message_streamed", "data": {"delta": delta, "content": delta}})
        elif r < 0.96:
            tool_n += 1
            tid = f"toolu_{tool_n:06d}"
            out.append({"type": "tool_call_started",
                        "data": {"tool_name": "bash", "tool_use_id": tid,
                                 "tool_input": {"command": f"pytest -q tests/test_{tool_n % 17}.py", "timeout": 60}}})
            out.append({"type": "tool_call_completed",
                        "data": {"tool_name": "bash", "tool_use_id": tid,
                                 "tool_output": {"exit_code": 0, "stdout": f"{tool_n} passed in 0.{tool_n % 9}s"}}})
        else:
            out.append({"type": "token_usage_updated",
                        "data": {"input_tokens": rng.randint(100, 5000), "output_tokens": rng.randint(1, 800),
                                 "cache_read_tokens": 0, "cache_creation_tokens": 0}})
    return out[:n]


def bench_pipeline_local(raws: list[dict], root: Path) -> tuple[float, int]:
    """Seconds to push every raw dict through EventPipeline.process into a LocalStore, including
    close() (everything on disk)."""
    from asm_nb.persistence.pipeline import EventPipeline, PipelineContext
    from asm_nb.stores.local import LocalStore

    store = LocalStore(root)
    pipeline = EventPipeline(store)
    ctx = PipelineContext("ses_bench", run_id="run_bench", provider="claude")
    t0 = time.perf_counter()
    process = pipeline.process
    for raw in raws:
        process(raw, ctx)
    store.close()
    elapsed = time.perf_counter() - t0
    lines = sum(1 for _ in open(root / "events" / "ses_bench.jsonl", "rb"))
    return elapsed, lines


def bench_pipeline_batches(raws: list[dict], root: Path, batch: int = 100) -> float:
    from asm_nb.persistence.pipeline import EventPipeline, PipelineContext
    from asm_nb.stores.local import LocalStore

    store = LocalStore(root)
    pipeline = EventPipeline(store)
    ctx = PipelineContext("ses_bench", run_id="run_bench", provider="claude")
    t0 = time.perf_counter()
    for i in range(0, len(raws), batch):
        pipeline.process_batch(raws[i:i + batch], ctx)
    store.close()
    return time.perf_counter() - t0


def bench_store_direct(raws: list[dict], root: Path) -> float:
    """LocalStore.append_event_with_sequence on prebuilt events (the store's own cost)."""
    from asm_nb.core.events import Event
    from asm_nb.stores.local import LocalStore

    events = [Event.new(r["type"], "ses_bench", run_id="run_bench", data=r["data"], provider="claude")
              for r in raws]
    store = LocalStore(root)
    t0 = time.perf_counter()
    append = store.append_event_with_sequence
    for e in events:
        append(e)
    store.close()
    return time.perf_counter() - t0


def bench_raw_jsonl(raws: list[dict], path: Path, dumps) -> float:
    """The baseline: append each dict as one JSON line to a buffered file, then close."""
    t0 = time.perf_counter()
    with open(path, "ab") as f:
        write = f.write
        for raw in raws:
            write(dumps(raw) + b"\n")
    return time.perf_counter() - t0


def bench_tinydb(raws: list[dict], path: Path) -> tuple[float, float]:
    """Plain TinyDB inserts (each rewrites the whole file). Returns (events/s measured over
    len(raws), extrapolated seconds for 100,000 from a quadratic fit of the cumulative time)."""
    from tinydb import TinyDB

    db = TinyDB(path)
    half = len(raws) // 2
    t0 = time.perf_counter()
    for raw in raws[:half]:
        db.insert(raw)
    t_half = time.perf_counter() - t0
    for raw in raws[half:]:
        db.insert(raw)
    t_full = time.perf_counter() - t0
    db.close()
    n1, n2 = half, len(raws)
    # cumulative time T(n) = a*n + b*n^2 through both points
    b = (t_full / n2 - t_half / n1) / (n2 - n1)
    a = t_half / n1 - b * n1
    extrapolated = a * 100_000 + b * 100_000 ** 2
    return n2 / t_full, max(extrapolated, 100_000 * t_full / n2)


def time_import(stmt: str = "import asm_nb", repeat: int = 5) -> float:
    """Median wall time of ``stmt`` in a fresh interpreter, in ms."""
    code = f"import time; t = time.perf_counter(); {stmt}; print((time.perf_counter() - t) * 1000)"
    samples = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        samples.append(float(out.stdout.strip()))
    return statistics.median(samples)


def best_of(k: int, fn):
    return min(fn(i) for i in range(k))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--tinydb-events", type=int, default=1_000)
    ap.add_argument("--repeat", type=int, default=2, help="best of N for the timed runs")
    args = ap.parse_args()
    n = args.events

    import orjson

    from asm_nb.stores._codec import HAVE_ORJSON

    raws = make_raw_events(n)
    std_dumps = lambda d: json.dumps(d, ensure_ascii=False, separators=(",", ":")).encode("utf-8")  # noqa: E731

    with tempfile.TemporaryDirectory(prefix="asm-bench-") as tmp:
        tmp = Path(tmp)
        counter = iter(range(10_000))

        def fresh(name: str) -> Path:
            return tmp / f"{name}-{next(counter)}"

        lines_seen = []

        def run_pipeline(_):
            elapsed, lines = bench_pipeline_local(raws, fresh("pipe"))
            lines_seen.append(lines)
            return elapsed

        t_pipe = best_of(args.repeat, run_pipeline)
        t_raw = best_of(args.repeat, lambda _: bench_raw_jsonl(raws, fresh("raw") .with_suffix(".jsonl"), std_dumps))
        t_raw_or = best_of(args.repeat, lambda _: bench_raw_jsonl(raws, fresh("raw").with_suffix(".jsonl"),
                                                                  orjson.dumps))
        t_batch = best_of(args.repeat, lambda _: bench_pipeline_batches(raws, fresh("batch")))
        t_direct = best_of(args.repeat, lambda _: bench_store_direct(raws, fresh("direct")))
        tiny_rate, tiny_100k_s = bench_tinydb(raws[:args.tinydb_events], fresh("tiny").with_suffix(".json"))
    import_ms = time_import()
    import_local_ms = time_import("import asm_nb; asm_nb.open_store; import asm_nb.stores.local")

    assert all(x == n for x in lines_seen), f"LocalStore wrote {lines_seen} lines, expected {n}"
    rate = lambda t: n / t  # noqa: E731
    pipe, raw, raw_or = rate(t_pipe), rate(t_raw), rate(t_raw_or)
    figures = {
        "bench": "store_ingest",
        "events": n,
        "localstore_pipeline_events_per_s": round(pipe),
        "raw_jsonl_events_per_s": round(raw),
        "ratio_vs_jsonl": round(pipe / raw, 3),
        "localstore_pipeline_us_per_event": round(1e6 / pipe, 2),
        "raw_jsonl_us_per_event": round(1e6 / raw, 2),
        "raw_jsonl_orjson_events_per_s": round(raw_or),
        "ratio_vs_orjson_jsonl": round(pipe / raw_or, 3),
        "localstore_pipeline_batch100_events_per_s": round(rate(t_batch)),
        "localstore_direct_events_per_s": round(rate(t_direct)),
        "tinydb_events_per_s": round(tiny_rate),
        "tinydb_events_measured": args.tinydb_events,
        "tinydb_100k_extrapolated_s": round(tiny_100k_s, 1),
        "import_asm_nb_ms": round(import_ms, 1),
        "import_localstore_ms": round(import_local_ms, 1),
        "orjson": HAVE_ORJSON,
        "targets": {"localstore_pipeline_events_per_s": TARGET_EVENTS_PER_S, "ratio_vs_jsonl": TARGET_RATIO,
                    "import_asm_nb_ms": TARGET_IMPORT_MS},
        "targets_met": {"events_per_s": pipe >= TARGET_EVENTS_PER_S, "ratio": pipe / raw >= TARGET_RATIO,
                        "import": import_ms < TARGET_IMPORT_MS},
    }

    rows = [
        ("LocalStore via EventPipeline.process", pipe, f"target >= {TARGET_EVENTS_PER_S:,}/s"),
        ("LocalStore via process_batch(100)", rate(t_batch), ""),
        ("LocalStore.append_event_with_sequence", rate(t_direct), "prebuilt events, no pipeline"),
        ("raw JSONL (json.dumps + write)", raw, f"ratio {pipe / raw:.2f}x (target >= {TARGET_RATIO}x)"),
        ("raw JSONL (orjson.dumps + write)", raw_or, f"ratio {pipe / raw_or:.2f}x"),
        (f"plain TinyDB insert ({args.tinydb_events:,})", tiny_rate, f"100k extrapolated: {tiny_100k_s:,.0f} s"),
    ]
    print(f"store_ingest: {n:,} events, best of {args.repeat}, cpus={os.cpu_count()}, orjson={HAVE_ORJSON}")
    print(f"{'path':<40} {'events/s':>12}  note")
    print("-" * 90)
    for name, r, note in rows:
        print(f"{name:<40} {r:>12,.0f}  {note}")
    print(f"{'import asm_nb (median of 5)':<40} {import_ms:>10.1f}ms  target < {TARGET_IMPORT_MS} ms")
    print(f"{'  + open_store + stores.local (tinydb)':<40} {import_local_ms:>10.1f}ms")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
