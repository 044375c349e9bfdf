"""Benchmark: loading analytics frames from a LocalStore-format folder.

Not collected by pytest (no ``test_`` prefix). Run it as a script::

    python tests/bench/frames_load.py                 # 1,000,000 events over 2,000 runs
    python tests/bench/frames_load.py --events 100000 --runs 200 --repeat 2

It writes a LocalStore folder (``store.json``, TinyDB ``db/sessions.json`` / ``db/runs.json``,
``events/<session_id>.jsonl`` with one ``Event.to_dict()`` per line) with realistic runs
(streamed chunks, tool calls, usage updates, terminal events), then times, in the same process
and on warm files:

- ``bare``: ``polars.read_ndjson`` of the same log files (schema inferred, nothing else);
- ``frames.events`` with the polars and pandas backends (target: polars <= 1.5x bare);
- ``frames.runs`` / ``frames.costs`` (target: < 1 s each) and the pandas backend;
- ``frames.sessions`` and ``frames.tool_calls`` for reference.

Prints a readable table; the last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone

try:
    import orjson

    def _dumps(obj) -> bytes:
        return orjson.dumps(obj)
except ImportError:  # pragma: no cover
    def _dumps(obj) -> bytes:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=timezone.utc)
MODELS = [("claude", "claude-sonnet-4-5-20250929"), ("claude", "claude-opus-4-6"), ("codex", "gpt-5-codex"),
          ("codex", "o3"), ("amp", None), ("claude", "claude-haiku-4-5-20251001")]
TOOLS = [("Bash", {"command": "pytest -q tests/"}), ("Read", {"file_path": "src/app/models.py"}),
         ("Grep", {"pattern": "def main", "path": "src/"}), ("Edit", {"file_path": "src/app/views.py",
                                                                     "old_string": "a", "new_string": "b"})]


def _ts(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def generate(root: str, n_events: int, n_runs: int, n_sessions: int, seed: int = 1) -> dict:
    """Write the folder; returns counts."""
    rnd = random.Random(seed)
    os.makedirs(os.path.join(root, "events"), exist_ok=True)
    os.makedirs(os.path.join(root, "db"), exist_ok=True)
    with open(os.path.join(root, "store.json"), "wb") as fh:
        fh.write(b'{"format":"asm-local","version":1}\n')
    per_run = n_events // n_runs
    runs_per_session = max(1, n_runs // n_sessions)
    sessions, runs = {}, {}
    written = 0
    run_no = 0
    for s in range(n_sessions):
        sid = f"ses_{s:032x}"
        created = T0 + timedelta(hours=s)
        sessions[sid] = {"id": sid, "agent_id": f"agent-{s % 5}", "status": "completed", "parent_session_id": None,
                         "metadata": {}, "context": {}, "tags": [], "created_at": _ts(created),
                         "updated_at": _ts(created + timedelta(minutes=30)), "deleted_at": None}
        lines = []
        seq = 0
        n_here = runs_per_session if s < n_sessions - 1 else n_runs - run_no
        for _ in range(n_here):
            rid = f"run_{run_no:032x}"
            provider, model = MODELS[run_no % len(MODELS)]
            status = "completed" if run_no % 10 else "failed"
            t = created + timedelta(minutes=run_no % 60)
            start = t
            usage = {"input_tokens": 0, "output_tokens": 0, "cache_read_tokens": 0, "cache_creation_tokens": 0}
            evs = 0

            def add(etype, data, dt_ms):
                nonlocal t, seq, evs
                t = t + timedelta(milliseconds=dt_ms)
                seq += 1
                evs += 1
                lines.append(_dumps({"id": f"evt_{run_no:08x}{seq:024x}", "type": etype, "timestamp": _ts(t),
                                     "session_id": sid, "run_id": rid, "sequence_number": seq, "data": data,
                                     "metadata": {}, "schema_version": 1, "provider": provider,
                                     "correlation_id": None}))

            add("run_started", {"model": model}, 0)
            add("message_sent", {"role": "user", "content": f"Fix the failing test number {run_no}"}, 3)
            turn, tc = 0, 0
            while evs < per_run - 2:
                turn += 1
                for _c in range(min(rnd.randint(5, 30), per_run - 2 - evs)):
                    chunk = rnd.choice(["The ", "test ", "fails ", "because ", "the ", "fixture ", "is stale. "])
                    add("message_streamed", {"delta": chunk, "content": chunk, "kind": "text"}, rnd.randint(5, 40))
                if evs >= per_run - 6:
                    break
                name, tin = TOOLS[tc % len(TOOLS)]
                tc += 1
                tcid = f"toolu_{run_no}_{tc}"
                add("tool_call_started", {"tool_call_id": tcid, "tool_name": name, "tool_input": tin}, 5)
                add("tool_call_completed", {"tool_call_id": tcid, "tool_name": name,
                                            "tool_output": "ok\n" * rnd.randint(1, 40)}, rnd.randint(50, 4000))
                inc = {"input_tokens": rnd.randint(200, 4000), "output_tokens": rnd.randint(20, 900),
                       "cache_read_tokens": rnd.randint(0, 20000), "cache_creation_tokens": rnd.randint(0, 2000)}
                for k, v in inc.items():
                    usage[k] += v
                add("token_usage_updated", inc, 2)
            add("message_received", {"role": "assistant", "content": "Done."}, 5)
            if status == "completed":
                add("run_completed", {"stop_reason": "end_turn", "token_usage": usage}, 3)
            else:
                add("run_failed", {"error_code": "provider_error", "error_message": "overloaded"}, 3)
            written += evs
            runs[rid] = {"id": rid, "session_id": sid, "status": status, "input": {"prompt": "fix"},
                         "output": {"content": "Done.", "stop_reason": "end_turn"} if status == "completed" else None,
                         "error": None if status == "completed" else {"code": "provider_error",
                                                                      "message": "overloaded"},
                         "metadata": {}, "turn_count": turn, "token_usage": usage, "started_at": _ts(start),
                         "ended_at": _ts(t), "provider": provider,
                         "cost_usd": None,
                         "provider_metadata": {"model": model} if model else {}}
            run_no += 1
        with open(os.path.join(root, "events", f"{sid}.jsonl"), "wb") as fh:
            fh.write(b"\n".join(lines) + b"\n")
    # price the runs as the runtime would at run end (flat keys in metadata)
    import warnings

    from asm_nb.core.run import Run
    from asm_nb.cost.calculator import price_run

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for doc in runs.values():
            info = price_run(Run.from_dict(doc))
            doc["cost_usd"] = info["cost_usd"]
            doc["metadata"] = {k: v for k, v in info.items() if k != "cost_usd"}
    with open(os.path.join(root, "db", "sessions.json"), "wb") as fh:
        fh.write(_dumps({"sessions": sessions}))
    with open(os.path.join(root, "db", "runs.json"), "wb") as fh:
        fh.write(_dumps({"runs": runs}))
    return {"events": written, "runs": len(runs), "sessions": len(sessions)}


def timed(fn, repeat: int) -> tuple[float, object]:
    """Best wall time of ``repeat`` calls (after a collection), and the last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        out = None
        gc.collect()
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=2_000)
    ap.add_argument("--sessions", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=None, help="folder to write (default: a temp folder, removed afterwards)")
    ap.add_argument("--keep", action="store_true", help="keep the generated folder")
    args = ap.parse_args(argv)

    import polars as pl

    from asm_nb.analytics import frames
    from asm_nb.stores.local import LocalStore

    root = args.dir or tempfile.mkdtemp(prefix="asm-frames-bench-")
    t = time.perf_counter()
    counts = generate(root, args.events, args.runs, args.sessions)
    gen_s = time.perf_counter() - t
    size_mb = sum(os.path.getsize(os.path.join(root, "events", n))
                  for n in os.listdir(os.path.join(root, "events"))) / 1e6
    store = LocalStore(root)
    try:
        paths = [str(p) for p in store.event_log_paths().values()]
        pl.read_ndjson(paths)  # warm the page cache
        rows: list[tuple[str, float, int]] = []
        results: dict[str, float] = {}

        def bench(name, fn):
            secs, out = timed(fn, args.repeat)
            rows.append((name, secs, len(out)))
            results[name] = round(secs, 4)
            return out

        bare = bench("bare polars.read_ndjson", lambda: pl.read_ndjson(paths))
        ev = bench("frames.events polars", lambda: frames.events(store, backend="polars"))
        bench("frames.events pandas", lambda: frames.events(store, backend="pandas"))
        bench("frames.runs polars", lambda: frames.runs(store, backend="polars"))
        bench("frames.runs pandas", lambda: frames.runs(store, backend="pandas"))
        bench("frames.costs polars", lambda: frames.costs(store, backend="polars"))
        bench("frames.costs pandas", lambda: frames.costs(store, backend="pandas"))
        bench("frames.costs by day+model", lambda: frames.costs(store, by=["day", "model"], backend="polars"))
        bench("frames.sessions polars", lambda: frames.sessions(store, backend="polars"))
        bench("frames.tool_calls polars", lambda: frames.tool_calls(store, backend="polars"))
        bench("frames.events one session", lambda: frames.events(store, session_id=next(iter(
            store.event_log_paths())), backend="polars"))
        assert len(ev) == len(bare) == counts["events"], (len(ev), len(bare), counts)
    finally:
        store.close()
        if not args.keep and args.dir is None:
            shutil.rmtree(root, ignore_errors=True)

    ratio = results["frames.events polars"] / results["bare polars.read_ndjson"]
    print(f"LocalStore folder: {counts['events']:,} events, {counts['runs']:,} runs, {counts['sessions']:,} "
          f"sessions, {size_mb:.0f} MB of logs (generated in {gen_s:.1f}s); best of {args.repeat}")
    print(f"{'measurement':32s} {'seconds':>9s} {'rows':>10s}")
    for name, secs, n in rows:
        print(f"{name:32s} {secs:9.3f} {n:10,d}")
    print(f"events(polars) / bare read_ndjson = {ratio:.2f}x (target <= 1.5x); "
          f"runs {results['frames.runs polars']:.3f}s, costs {results['frames.costs polars']:.3f}s (target < 1s)")
    summary = {
        "benchmark": "frames_load", "events": counts["events"], "runs": counts["runs"],
        "sessions": counts["sessions"], "log_mb": round(size_mb, 1), "repeat": args.repeat,
        "seconds": results, "events_vs_bare_ratio": round(ratio, 3),
        "events_ratio_ok": ratio <= 1.5,
        "runs_ok": results["frames.runs polars"] < 1.0, "costs_ok": results["frames.costs polars"] < 1.0,
        "python": sys.version.split()[0], "polars": pl.__version__,
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(summary, separators=(",", ":")))
    return 0 if summary["events_ratio_ok"] and summary["runs_ok"] and summary["costs_ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
