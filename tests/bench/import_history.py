"""Benchmark: ``asm import`` of agent CLI session logs into the default store, against reading
the same files with a bare ``json.loads`` loop, in one run.

Run:  python tests/bench/import_history.py [--lines N] [--source claude-code|codex|both]

Target (issue: history import): importing N = 100,000 log lines at >= 0.3x the rate of the bare
``json.loads`` loop over the same files. The logs are synthetic but in the real formats
(``asm_nb.testing.history_logs``: streamed assistant messages split over lines, tool calls and
results, token counts). The import goes through everything a user's import does: the default
store (a LocalStore in a fresh ``ASM_HOME``), redaction of every event, per-message pricing, runs
and the per-file incremental state. A second import of the unchanged files is timed too (it must
add nothing). A second baseline, the same loop plus the redactor on exactly the event payloads
the import stored, gets its own row (the import must redact everything before it reaches the
disk; the bare loop does not): the target stays against the bare loop. The same ratio by CPU time
(``time.process_time`` of each phase) gets a row too: on a machine shared with other work the
wall-clock ratio swings with what else runs during the short ``json.loads`` phase; the target is
judged on the wall-clock ratio. The two sources are imported one after the other in this
process, as a notebook does: the second import uses the worker the first one kept
(``workers_kept``). Prints a table, then (last line) one JSON object with the figures.

Not collected by pytest (no ``test_`` prefix).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

TARGET_RATIO = 0.3


def json_loop(files: list[Path]) -> tuple[float, int, float]:
    """The baseline: every line of every file through ``json.loads``. Returns (wall seconds,
    lines, CPU seconds)."""
    c0 = time.process_time()
    t0 = time.perf_counter()
    n = 0
    loads = json.loads
    for f in files:
        with open(f, "rb") as fh:
            for line in fh:
                loads(line)
                n += 1
    return time.perf_counter() - t0, n, time.process_time() - c0


def json_redact_loop(files: list[Path], payloads: list[tuple]) -> float:
    """A second, stricter baseline (a row of its own; the target stays against ``json_loop``):
    the same ``json.loads`` loop, plus the redactor run on exactly the event payloads the import
    stored (``redact_payload``, the store's settings, one call per stored event, as the import
    makes them). The import must redact everything before it reaches the disk; the bare loop does
    not. What the import costs beyond this is building events and runs and writing them."""
    from asm_nb.persistence.redaction import RedactionConfig, redact_payload

    cfg = RedactionConfig.from_config()
    t0 = time.perf_counter()
    loads = json.loads
    for f in files:
        with open(f, "rb") as fh:
            for line in fh:
                loads(line)
    for etype, data, metadata in payloads:
        redact_payload(etype, data, metadata, cfg)
    return time.perf_counter() - t0


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--source", choices=("claude-code", "codex", "both"), default="both")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="asm-bench-hist-") as tmp:
        tmp_p = Path(tmp)
        os.environ["ASM_HOME"] = str(tmp_p / "asm-home")  # the default store, fresh
        from asm_nb.history import HistoryWarning, _workers, import_history
        from asm_nb.stores import open_store, resolve_store
        from asm_nb.testing.history_logs import write_claude_code_logs, write_codex_logs

        sources = ["claude-code", "codex"] if args.source == "both" else [args.source]
        share = args.lines // len(sources)
        gen = {}
        for src in sources:
            if src == "claude-code":
                gen[src] = write_claude_code_logs(tmp_p / "claude", lines=share, sessions=max(share // 500, 1))
            else:
                gen[src] = write_codex_logs(tmp_p / "codex", lines=share, sessions=max(share // 500, 1))
        files = [f for g in gen.values() for f in g["files"]]
        n_lines = sum(g["lines"] for g in gen.values())
        size_mb = sum(f.stat().st_size for f in files) / 1e6

        # warm both paths' imports outside the timings (module import is not the rate)
        import asm_nb.history._driver  # noqa: F401
        import asm_nb.persistence.redaction  # noqa: F401
        import asm_nb.stores.local  # noqa: F401

        processes: list[int] = []  # per import: the processes reading its files
        reused: list[int] = []  # per import: its workers kept from the import before
        real_start = _workers.start_pool

        def counting_start(*a, **kw):
            pool = real_start(*a, **kw)
            processes.append(1 + (pool.n_workers if pool is not None else 0))
            reused.append(pool.reused if pool is not None else 0)
            return pool

        _workers.start_pool = counting_start
        t_json, n_read, c_json = json_loop(files)
        store = resolve_store(None)
        store_w1 = open_store(tmp_p / "asm-home-w1")
        with warnings.catch_warnings():
            warnings.simplefilter("error", HistoryWarning)  # a synthetic line that fails is a bug
            c0, k0 = time.process_time(), _children_cpu()
            t0 = time.perf_counter()
            reports = [import_history(src, None, path=gen[src]["root"]) for src in sources]
            store.flush()
            t_import = time.perf_counter() - t0
            # a worker kept for a next import is still running: ended (and reaped) here, outside
            # the timing, so that its CPU time is counted
            _workers.close_spares()
            c_import = time.process_time() - c0 + _children_cpu() - k0
            used = max(processes, default=1)
            kept = sum(reused)
            c0 = time.process_time()
            t0 = time.perf_counter()
            reports_w1 = [import_history(src, store_w1, path=gen[src]["root"], workers=1) for src in sources]
            store_w1.flush()
            t_w1 = time.perf_counter() - t0
            c_w1 = time.process_time() - c0
            t0 = time.perf_counter()
            again = [import_history(src, None, path=gen[src]["root"]) for src in sources]
            t_again = time.perf_counter() - t0
        _workers.start_pool = real_start
        events = sum(r.events for r in reports)
        assert events == sum(r.events for r in reports_w1)
        store_w1.close()
        assert n_read == n_lines, (n_read, n_lines)
        assert sum(r.lines_read for r in reports) == n_lines
        assert all(r.events == 0 for r in again), "the second import added events"
        runs = store.list_runs(None)
        for key in ("input_tokens", "output_tokens", "cache_read_tokens"):
            assert sum(r.token_usage.get(key, 0) for r in runs) == sum(g["usage"][key] for g in gen.values())
        payloads = [(e.type, e.data, e.metadata) for s in store.list_sessions() for e in store.get_events(s.id)]
        store.close()
        t_jred = json_redact_loop(files, payloads)

    rate_json = n_lines / t_json
    rate_import = n_lines / t_import
    ratio = rate_import / rate_json
    ratio_cpu = c_json / c_import  # same lines: the rate ratio is the inverse time ratio
    rate_w1 = n_lines / t_w1
    ratio_w1 = rate_w1 / rate_json
    ratio_cpu_w1 = c_json / c_w1
    rate_jred = n_lines / t_jred
    ratio_jred = rate_import / rate_jred
    rows = [
        ("log lines", f"{n_lines:,}", f"{size_mb:.1f} MB in {len(files)} files"),
        ("json.loads loop", f"{t_json:.2f} s", f"{rate_json:,.0f} lines/s"),
        ("asm import (default store)", f"{t_import:.2f} s",
         f"{rate_import:,.0f} lines/s, {events:,} events, {used} process(es) reading (the default), "
         f"{kept} worker(s) kept from the import before"),
        ("second import (unchanged)", f"{t_again:.3f} s", "0 events added"),
        ("ratio import / json.loads", f"{ratio:.3f}",
         f"target >= {TARGET_RATIO} {'met' if ratio >= TARGET_RATIO else 'MISSED'} "
         f"({used} process(es) vs a one-process json.loads loop)"),
        ("same ratio by CPU time", f"{ratio_cpu:.3f}",
         f"json.loads {c_json:.2f} s, import {c_import:.2f} s of CPU in all its processes"),
        ("asm import, workers=1", f"{t_w1:.2f} s", f"{rate_w1:,.0f} lines/s, one process"),
        ("ratio workers=1 / json.loads", f"{ratio_w1:.3f}", f"by CPU time {ratio_cpu_w1:.3f} ({c_w1:.2f} s of CPU)"),
        ("json.loads + redaction loop", f"{t_jred:.2f} s", f"{rate_jred:,.0f} lines/s (second baseline, no target)"),
        ("ratio import / that loop", f"{ratio_jred:.3f}", ""),
    ]
    w = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{w}}  {value:>10}  {note}")
    print(json.dumps({"bench": "import_history", "lines": n_lines, "bytes_mb": round(size_mb, 1),
                      "files": len(files), "sources": sources, "events": events,
                      "json_loads_s": round(t_json, 3), "import_s": round(t_import, 3),
                      "reimport_s": round(t_again, 3), "json_lines_per_s": round(rate_json),
                      "import_lines_per_s": round(rate_import), "ratio": round(ratio, 3),
                      "target_ratio": TARGET_RATIO, "met": ratio >= TARGET_RATIO,
                      "json_redact_s": round(t_jred, 3), "json_redact_lines_per_s": round(rate_jred),
                      "ratio_vs_json_redact": round(ratio_jred, 3), "json_loads_cpu_s": round(c_json, 3),
                      "import_cpu_s": round(c_import, 3), "ratio_cpu": round(ratio_cpu, 3),
                      "processes": used, "workers_kept": kept, "import_w1_s": round(t_w1, 3), "ratio_w1": round(ratio_w1, 3),
                      "import_w1_cpu_s": round(c_w1, 3), "ratio_cpu_w1": round(ratio_cpu_w1, 3),
                      "python": sys.version.split()[0]}))


if __name__ == "__main__":
    main()
