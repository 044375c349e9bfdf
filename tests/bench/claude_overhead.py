"""Benchmark: ClaudeAdapter overhead per streamed delta, against the bare ``anthropic`` client.

Both consume the same stream (N text deltas) from one FakeAnthropicServer in the same process and
run, interleaved round by round (the machine is noisy). The bare baseline is
``AsyncAnthropic.messages.create(stream=True)`` iterated to the end; the adapter does the same plus
event normalization, the envelope, RunResult bookkeeping and a (no-op) event callback.
Target: adapter time <= 1.5x bare time.

    python tests/bench/claude_overhead.py [--deltas 4000] [--rounds 7]

Prints a table, then one JSON line of figures (last line).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import anthropic

from asm_nb.core.run import Run
from asm_nb.core.session import Session
from asm_nb.providers.claude import ClaudeAdapter
from asm_nb.testing.fake_anthropic import FakeAnthropicServer, StreamBuilder


async def bare(base_url: str, n: int) -> float:
    t0 = time.perf_counter()
    client = anthropic.AsyncAnthropic(api_key="bench", base_url=base_url, max_retries=0)
    stream = await client.messages.create(model="claude-haiku-4-5", max_tokens=16,
                                          messages=[{"role": "user", "content": "go"}], stream=True)
    deltas = 0
    async for ev in stream:
        if ev.type == "content_block_delta":
            deltas += 1
    await client.close()
    dt = time.perf_counter() - t0
    assert deltas == n, deltas
    return dt


async def adapted(base_url: str, n: int) -> float:
    adapter = ClaudeAdapter(api_key="bench", base_url=base_url, max_retries=0, builtin_tools=False)
    session = Session.new("bench")
    run = Run.new(session.id, input="go")
    seen = 0

    def callback(ev: dict) -> None:
        nonlocal seen
        seen += 1

    t0 = time.perf_counter()
    result = await adapter.execute(run, session, event_callback=callback)
    dt = time.perf_counter() - t0
    streamed = sum(1 for e in result.events if e["type"] == "message_streamed")
    assert streamed == n and seen == len(result.events), (streamed, seen)
    return dt


async def main(n: int, rounds: int) -> dict:
    stream = StreamBuilder(chunked=False).text([f"tok{i} " for i in range(n)]).end(output_tokens=n)
    with FakeAnthropicServer(default=stream) as server:
        await bare(server.base_url, n)  # warm-up: imports, pydantic caches, connection setup
        await adapted(server.base_url, n)
        b, a = [], []
        for _ in range(rounds):
            b.append(await bare(server.base_url, n))
            a.append(await adapted(server.base_url, n))
    bare_s, adapter_s = statistics.median(b), statistics.median(a)
    return {"bench": "claude_overhead", "deltas": n, "rounds": rounds,
            "bare_ms": round(bare_s * 1000, 2), "adapter_ms": round(adapter_s * 1000, 2),
            "bare_us_per_delta": round(bare_s / n * 1e6, 2), "adapter_us_per_delta": round(adapter_s / n * 1e6, 2),
            "overhead_us_per_delta": round((adapter_s - bare_s) / n * 1e6, 2),
            "ratio_vs_bare": round(adapter_s / bare_s, 3), "target_ratio": 1.5,
            "within_target": adapter_s / bare_s <= 1.5}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--deltas", type=int, default=4000)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    fig = asyncio.run(main(args.deltas, args.rounds))
    print(f"{'':28}{'median ms':>12}{'us/delta':>12}")
    print(f"{'bare anthropic client':28}{fig['bare_ms']:>12.2f}{fig['bare_us_per_delta']:>12.2f}")
    print(f"{'ClaudeAdapter.execute':28}{fig['adapter_ms']:>12.2f}{fig['adapter_us_per_delta']:>12.2f}")
    print(f"overhead per delta: {fig['overhead_us_per_delta']:.2f} us; ratio {fig['ratio_vs_bare']:.3f} "
          f"(target <= {fig['target_ratio']}) -> {'OK' if fig['within_target'] else 'ABOVE TARGET'}")
    print(json.dumps(fig))
