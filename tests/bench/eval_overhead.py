"""Benchmark: the overhead of ``asm_nb.evaluate`` (scoring, bookkeeping, resumable records) over
the same runs through ``asm_nb.batch``.

1,000 items x 2 agents, each agent a replayed cassette (provider ``replay``, as fast as possible),
concurrency 8, into the default store (a fresh LocalStore under ``$ASM_HOME`` per measurement):

- ``batch``: ``asm_nb.batch(prompts, provider="replay", cassette=A, concurrency=8)`` then the same
  for cassette B — the runs alone;
- ``evaluate``: ``asm_nb.evaluate(items, agents={A, B}, scorers=[contains, trajectory],
  concurrency=8)`` — the same 2,000 runs, each scored and its scores saved on the run.

The two ways alternate round by round (the machine is shared and noisy); the figure is the
median eval time over the median batch time.

    python tests/bench/eval_overhead.py [--items 1000] [--rounds 2]

Prints a table, then one JSON line of figures (last line).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import tempfile
import time
import warnings

import asm_nb
from asm_nb import api, stores
from asm_nb.evaluation import scorers as sc
from asm_nb.testing import cassettes as c


def cassettes(folder: str) -> tuple[str, str]:
    a = c.build_cassette([*c.start(model="claude-haiku-4-5", prompt="q"), *c.assistant_text("The answer is 4.", chunks=2),
                          c.usage(input_tokens=30, output_tokens=8), c.completed()],
                         provider="claude", model="claude-haiku-4-5")
    b = c.build_cassette([*c.start(model="claude-haiku-4-5", prompt="q"), *c.assistant_text("Maybe 5.", chunks=2),
                          c.usage(input_tokens=30, output_tokens=4), c.completed()],
                         provider="claude", model="claude-haiku-4-5")
    pa, pb = os.path.join(folder, "a.jsonl"), os.path.join(folder, "b.jsonl")
    a.write(pa)
    b.write(pb)
    return pa, pb


def fresh_home() -> str:
    home = tempfile.mkdtemp(prefix="asm-bench-eval-")
    os.environ["ASM_HOME"] = home
    for store in list(stores._default_stores.values()):
        store.close()
    stores._default_stores.clear()
    return home


def run_batch(prompts: list[str], pa: str, pb: str) -> float:
    home = fresh_home()
    t0 = time.perf_counter()
    for cas in (pa, pb):
        df = asm_nb.batch(prompts, provider="replay", concurrency=8, progress=False, options={"cassette": cas})
        assert (df["status"] == "completed").all()
    api.default_store().flush()
    elapsed = time.perf_counter() - t0
    shutil.rmtree(home, ignore_errors=True)
    return elapsed


def run_eval(prompts: list[str], pa: str, pb: str, n: int) -> float:
    home = fresh_home()
    items = [{"id": str(i), "input": p, "expected": "4"} for i, p in enumerate(prompts)]
    t0 = time.perf_counter()
    r = asm_nb.evaluate(items, agents={"a": {"provider": "replay", "cassette": pa},
                                       "b": {"provider": "replay", "cassette": pb}},
                        scorers=[sc.contains(), sc.trajectory().never_called("bash").max_tool_calls(3)],
                        concurrency=8, progress=False, name=f"bench-{n}")
    elapsed = time.perf_counter() - t0
    f = r.frame
    assert (f["status"] == "completed").all() and len(f) == 2 * len(prompts)
    assert list(r.summary["pass_rate"]) == [1.0, 0.0]
    shutil.rmtree(home, ignore_errors=True)
    return elapsed


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--items", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    folder = tempfile.mkdtemp(prefix="asm-bench-cas-")
    pa, pb = cassettes(folder)
    prompts = [f"What is 2+2? (variant {i})" for i in range(args.items)]
    run_batch(prompts[:20], pa, pb)  # warm-up: imports, loop thread, pricing tables
    run_eval(prompts[:20], pa, pb, -1)
    times: dict[str, list[float]] = {"batch": [], "evaluate": []}
    for n in range(args.rounds):
        times["batch"].append(run_batch(prompts, pa, pb))
        times["evaluate"].append(run_eval(prompts, pa, pb, n))
    med = {k: statistics.median(v) for k, v in times.items()}
    runs = 2 * args.items
    ratio = med["evaluate"] / med["batch"]
    print(f"{args.items} items x 2 agents = {runs} replayed runs, concurrency 8, default LocalStore, "
          f"median of {args.rounds} rounds\n")
    print(f"{'way':<9} {'total s':>9} {'ms/run':>8} {'runs/s':>8} {'vs batch':>9}")
    for k in ("batch", "evaluate"):
        print(f"{k:<9} {med[k]:>9.2f} {med[k] / runs * 1000:>8.2f} {runs / med[k]:>8.0f} {med[k] / med['batch']:>8.3f}x")
    print(f"\neval overhead: {(ratio - 1) * 100:+.1f}% (target <= +10%)")
    shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps({"bench": "eval_overhead", "items": args.items, "agents": 2, "runs": runs, "concurrency": 8,
                      "rounds": args.rounds, "batch_s": round(med["batch"], 3), "evaluate_s": round(med["evaluate"], 3),
                      "ratio": round(ratio, 4), "overhead_pct": round((ratio - 1) * 100, 2),
                      "target_met": ratio <= 1.10, "samples": {k: [round(x, 3) for x in v] for k, v in times.items()}}))


if __name__ == "__main__":
    main()
