"""Benchmark: SessionServer scheduling overhead per run, against calling the provider directly.

1,000 short replayed runs (a cassette of five events, replayed as fast as possible) into an
InMemoryStore, measured four ways in the same process, interleaved round by round (the
machine is noisy):

- ``direct``: ``adapter.execute(run, session)`` — the provider alone, no manager, no store;
- ``manager``: ``start_run`` + ``execute_run`` — what every run costs (persistence pipeline,
  finalization, pricing);
- ``server``: ``submit_run`` + ``await_run`` one at a time through a SessionServer (queue, slot,
  limiter slot, result bookkeeping, telemetry, subscriber signal);
- ``server_c8``: all runs submitted at once, 8 slots, then ``drain``.

The figure of interest is the server's own scheduling overhead: ``server − manager`` per run.

Then the same server on the default store (a LocalStore in a temporary folder), all runs in its
one session: the per-run time of the first 100 runs against the last 100 (target: <= 1.2x, the
cost of a run does not grow with the session; it used to, tenfold by run 1,000).

    python tests/bench/server_overhead.py [--runs 1000] [--rounds 3]

Prints a table, then one JSON line of figures (last line).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import time
import warnings

from asm_nb.core.run import Run
from asm_nb.core.session import Session
from asm_nb.providers.replay import ReplayProvider
from asm_nb.runtime import manager
from asm_nb.runtime.limiter import ConcurrencyLimiter
from asm_nb.runtime.server import SessionServer
from asm_nb.stores import open_store
from asm_nb.testing import cassettes as c


def cassette():
    return c.build_cassette([*c.start(model="claude-haiku-4-5", prompt="hi"), *c.assistant_text("ok", chunks=1),
                             c.usage(input_tokens=3, output_tokens=1), c.completed()],
                            provider="claude", model="claude-haiku-4-5")


async def direct(adapter, n: int) -> float:
    session = Session.new("bench")
    t0 = time.perf_counter()
    for i in range(n):
        await adapter.execute(Run.new(session.id, input=f"q{i}"), session)
    return time.perf_counter() - t0


async def via_manager(adapter, n: int) -> float:
    store = open_store("memory://")
    s = await manager.astart_session(store, adapter, {"agent_id": "bench"})
    await manager.aactivate_session(store, s.id)
    t0 = time.perf_counter()
    for i in range(n):
        run = await manager.astart_run(store, adapter, s.id, f"q{i}")
        await manager.aexecute_run(store, adapter, run.id)
    return time.perf_counter() - t0


async def via_server(adapter, n: int) -> float:
    server = await SessionServer.start(store=open_store("memory://"), adapter=adapter, session_opts={},
                                       max_queued_runs=n, limiter=ConcurrencyLimiter(max_parallel_runs=8))
    t0 = time.perf_counter()
    for i in range(n):
        await server.await_run(await server.submit_run(f"q{i}"))
    dt = time.perf_counter() - t0
    await server.aclose()
    return dt


async def via_server_concurrent(adapter, n: int) -> float:
    server = await SessionServer.start(store=open_store("memory://"), adapter=adapter, session_opts={},
                                       max_concurrent_runs=8, max_queued_runs=n,
                                       limiter=ConcurrencyLimiter(max_parallel_runs=8), limiter_wait=True)
    t0 = time.perf_counter()
    for i in range(n):
        await server.submit_run(f"q{i}")
    await server.drain(600_000)
    dt = time.perf_counter() - t0
    await server.aclose()
    return dt


async def server_local_growth(adapter, n: int) -> dict:
    """SessionServer into a LocalStore: mean ms per run over the first and the last 100 runs."""
    import tempfile

    from asm_nb.stores.local import LocalStore

    with tempfile.TemporaryDirectory(prefix="asm-bench-server-") as tmp:
        store = LocalStore(tmp)
        server = await SessionServer.start(store=store, adapter=adapter, session_opts={}, max_queued_runs=n,
                                           limiter=ConcurrencyLimiter(max_parallel_runs=8))
        times = []
        for i in range(n):
            t0 = time.perf_counter()
            await server.await_run(await server.submit_run(f"q{i}"))
            times.append(time.perf_counter() - t0)
        await server.aclose()
        store.close()
    k = min(100, n // 2)
    first, last = statistics.mean(times[:k]) * 1e3, statistics.mean(times[-k:]) * 1e3
    return {"runs": n, "first_ms": round(first, 2), "last_ms": round(last, 2), "growth": round(last / first, 2)}


async def main_async(runs: int, rounds: int) -> dict:
    adapter = ReplayProvider(cassette=cassette())
    ways = {"direct": direct, "manager": via_manager, "server": via_server, "server_c8": via_server_concurrent}
    for fn in ways.values():  # warm-up: imports, caches
        await fn(adapter, 20)
    times: dict[str, list[float]] = {k: [] for k in ways}
    for _ in range(rounds):
        for name, fn in ways.items():
            times[name].append(await fn(adapter, runs))
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    med = asyncio.run(main_async(args.runs, args.rounds))
    local = asyncio.run(server_local_growth(ReplayProvider(cassette=cassette()), args.runs))
    per = {k: v / args.runs * 1e6 for k, v in med.items()}  # µs per run
    print(f"{args.runs} replayed runs, median of {args.rounds} rounds (InMemoryStore)\n")
    print(f"{'way':<11} {'total s':>9} {'µs/run':>9} {'vs direct':>10}")
    for k in med:
        print(f"{k:<11} {med[k]:>9.3f} {per[k]:>9.1f} {per[k] / per['direct']:>9.2f}x")
    overhead = per["server"] - per["manager"]
    print(f"\nserver scheduling overhead: {overhead:.1f} µs/run "
          f"({overhead / per['manager'] * 100:.1f}% of a managed run)")
    ok = local["growth"] <= 1.2
    print(f"SessionServer -> LocalStore, one session: first 100 runs {local['first_ms']} ms/run, last 100 "
          f"{local['last_ms']} ms/run: {local['growth']}x (target <= 1.2x) {'ok' if ok else 'MISS'}")
    print(json.dumps({"bench": "server_overhead", "runs": args.runs, "rounds": args.rounds, "local_store": local,
                      "local_growth_ok": ok,
                      "direct_us_per_run": round(per["direct"], 1), "manager_us_per_run": round(per["manager"], 1),
                      "server_us_per_run": round(per["server"], 1),
                      "server_c8_us_per_run": round(per["server_c8"], 1),
                      "server_overhead_us_per_run": round(overhead, 1),
                      "server_vs_direct": round(per["server"] / per["direct"], 2),
                      "server_vs_manager": round(per["server"] / per["manager"], 3)}))


if __name__ == "__main__":
    main()
