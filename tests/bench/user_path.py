"""Benchmark: the path users take (``asm_nb.run_once`` into the default LocalStore), against honest
baselines, each row side by side in one run.

Not collected by pytest (no ``test_`` prefix). Run it as a script::

    python tests/bench/user_path.py            # full size (a few minutes on 2 cores)
    python tests/bench/user_path.py --quick    # smaller sizes, same rows
    python tests/bench/user_path.py --skip-postgres
    python tests/bench/user_path.py --quick --only claude   # one row (repeatable)

Rows (targets from the store-at-scale issue):

- ``run_once("true", provider="shell")`` per run vs ``subprocess.run(["sh", "-c", "true"])``, in a
  LocalStore holding 100 and 50,000 runs (the big store is filled through the store API: sessions,
  runs and their events as a one-shot run leaves them; the timed runs go through ``run_once``);
  and the ratio of the two per-run costs.
- Claude deltas through ``run_once`` -> LocalStore vs the bare ``anthropic`` client, both against
  ``asm_nb.testing.FakeAnthropicServer``.
- SqlStore (SQLite, PostgreSQL) events/s through ``run_once`` (an adapter streaming N deltas) vs
  a bare ``executemany`` of the same rows.
- peak RSS of a 1M-delta ``run_once`` over the process baseline, and what stays after it (child
  process).
- one-shot ``run_once`` calls in one process under ``ulimit -n 256`` (child process).
- a follow-up turn (``session=NAME``) in a session of 200,000 events: its time minus the same turn
  in a small session (store/transcript work).
- the first ``run_once`` of a new process on the 50,000-run store (no target: what a new kernel
  pays once), and its second run.
- cold ``frames.runs`` / ``frames.costs`` on the 50,000-run store (each in a fresh process; the
  figure includes importing polars and pandas, shown apart as the baseline column).

Prints a table (row, figure, baseline, target, verdict), then one JSON line (last line).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _child(code: str, *args: str, timeout: float = 1800) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON line last."""
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=_child_env(),
                         timeout=timeout)
    lines = [ln for ln in out.stdout.splitlines() if ln.strip()]
    if out.returncode != 0 or not lines:
        return {"error": (out.stderr.strip().splitlines() or ["exit %d" % out.returncode])[-1][:300]}
    return json.loads(lines[-1])


# ---------------------------------------------------------------------------------------------
# filling a store through its API


def fill(root: str, n: int, chunk: int = 2000) -> None:
    """``n`` one-shot sessions, each with one completed run and its events, written through the
    store API (``save_session``, ``save_run``, ``append_events``). Stores whose run table is one
    rewritten TinyDB file (format 1) get their rows in one transaction per chunk instead (saving
    them one by one is quadratic there, which is what this benchmark shows on the user path)."""
    from asm_nb.core.events import Event
    from asm_nb.core.run import Run, RunStatus
    from asm_nb.core.session import Session, SessionStatus
    from asm_nb.stores.local import LocalStore

    done = 0
    while done < n:
        store = LocalStore(root)
        k = min(chunk, n - done)
        sessions, runs = [], []
        for _ in range(k):
            s = Session.new("shell", metadata={"provider": "shell"}).replace(status=SessionStatus.COMPLETED)
            r = Run.new(s.id, input="true").with_status(RunStatus.RUNNING)
            r = r.replace(status=RunStatus.COMPLETED, output={"content": "", "exit_code": 0, "stderr": "",
                                                             "duration_ms": 1, "timed_out": False, "tool_calls": []},
                          provider="shell", token_usage={"input_tokens": 0, "output_tokens": 0},
                          metadata={"provider": "shell"}, cost_usd=0.0)
            sessions.append(s)
            runs.append(r)
            evs = [Event.new(t, s.id, run_id=None if t.startswith("session") else r.id, data=d, provider="shell")
                   for t, d in (("session_created", {"provider": "shell"}), ("session_started", {}),
                                ("message_sent", {"role": "user", "content": "true"}),
                                ("run_started", {"command": "true"}),
                                ("run_completed", {"stop_reason": "exit_code_0", "exit_code": 0}),
                                ("session_completed", {}))]
            store.append_events(evs)
        tables = getattr(store, "_tables", None)
        if tables is not None and "runs" in getattr(tables, "tables", {}):
            with tables.transaction() as t:
                t["sessions"].update(lambda rows: rows.update({s.id: s.to_dict() for s in sessions}) or True)
                t["runs"].update(lambda rows: rows.update({r.id: r.to_dict() for r in runs}) or True)
        else:
            for s, r in zip(sessions, runs):
                store.save_session(s)
                store.save_run(r)
        store.close()
        done += k


# ---------------------------------------------------------------------------------------------
# rows


def per_run(root: str, count: int, budget_s: float) -> tuple[float, float, int]:
    """(median run_once s, median subprocess.run s, runs timed), interleaved one by one."""
    import asm_nb
    from asm_nb.stores.local import LocalStore

    store = LocalStore(root)
    asm_nb.run_once("true", provider="shell", store=store)  # warm-up: imports, the runtime loop
    subprocess.run(["sh", "-c", "true"])
    a, b = [], []
    t_end = time.monotonic() + budget_s
    for i in range(count):
        t0 = time.perf_counter()
        subprocess.run(["sh", "-c", "true"])
        b.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        r = asm_nb.run_once("true", provider="shell", store=store)
        a.append(time.perf_counter() - t0)
        assert r.status == "completed", r
        if i >= 2 and time.monotonic() > t_end:
            break
    store.close()
    return statistics.median(a), statistics.median(b), len(a)


def claude_row(n: int, rounds: int) -> dict:
    import anthropic

    import asm_nb
    from asm_nb.stores.local import LocalStore
    from asm_nb.testing import FakeAnthropicServer
    from asm_nb.testing.fake_anthropic import StreamBuilder

    async def bare(url: str, untyped: bool = False) -> float:
        t0 = time.perf_counter()
        client = anthropic.AsyncAnthropic(api_key="bench", base_url=url, max_retries=0)
        stream = await client.messages.create(model="claude-haiku-4-5", max_tokens=16,
                                              messages=[{"role": "user", "content": "go"}], stream=True)
        k = 0
        if untyped:  # information only: the SDK's parsed dicts, no typed event per SSE event
            plain: Any = stream
            plain._cast_to = object
            async for ev in plain:
                k += ev["type"] == "content_block_delta"
        else:
            async for ev in stream:
                k += ev.type == "content_block_delta"
        await client.close()
        assert k == n
        return time.perf_counter() - t0

    stream = StreamBuilder(chunked=False).text([f"tok{i} " for i in range(n)]).end(output_tokens=n)
    with tempfile.TemporaryDirectory(prefix="asm-bench-claude-") as tmp, FakeAnthropicServer(default=stream) as srv:
        store = LocalStore(tmp)

        def ours() -> float:
            t0 = time.perf_counter()
            r = asm_nb.run_once("go", provider="claude", store=store, model="claude-haiku-4-5",
                                options={"api_key": "bench", "base_url": srv.base_url, "max_retries": 0,
                                         "builtin_tools": False})
            dt = time.perf_counter() - t0
            assert r.status == "completed", r
            return dt

        asyncio.run(bare(srv.base_url))
        asyncio.run(bare(srv.base_url, True))
        ours()
        a, b, u = [], [], []
        for _ in range(rounds):
            b.append(asyncio.run(bare(srv.base_url)))
            a.append(ours())
            u.append(asyncio.run(bare(srv.base_url, True)))
        store.close()
    # the target compares with the bare client as users write it (typed events); ``bare_untyped_ms``
    # (the same stream read as the SDK's parsed dicts, as the adapter reads text deltas) shows how
    # much of the path is our own work
    return {"deltas": n, "run_once_ms": round(statistics.median(a) * 1000, 1),
            "bare_ms": round(statistics.median(b) * 1000, 1),
            "ratio": round(statistics.median(a) / statistics.median(b), 3),
            "bare_untyped_ms": round(statistics.median(u) * 1000, 1),
            "ratio_vs_untyped": round(statistics.median(a) / statistics.median(u), 3)}


_GEN_ADAPTER = r'''
from asm_nb.providers._base import BaseAdapter

class Deltas(BaseAdapter):
    """Streams N text deltas (what a chatty model does), through the adapters' shared bookkeeping."""
    name = "bench_deltas"

    def __init__(self, n):
        super().__init__()
        self.n = n

    async def _execute(self, active, **opts):
        await active.emit("run_started", {"model": "bench"})
        emit = active.emit
        for i in range(self.n):
            await emit("message_streamed", {"delta": "tok ", "content": "tok "})
        await active.emit("run_completed", {"stop_reason": "end_turn"})
        return {"output": {"content": "tok " * 4}, "token_usage": {"input_tokens": 1, "output_tokens": self.n}}
'''


def sql_row(url: str, n: int, bare_fn) -> dict:
    ns: dict = {}
    exec(_GEN_ADAPTER, ns)
    import asm_nb
    from asm_nb.stores.sql import SqlStore

    store = SqlStore(url)
    asm_nb.run_once("go", provider=ns["Deltas"](10), store=store)  # warm-up
    t0 = time.perf_counter()
    r = asm_nb.run_once("go", provider=ns["Deltas"](n), store=store)
    elapsed = time.perf_counter() - t0
    stored = len(store.get_events(r.session_id, run_id=r.run_id))
    store.close()
    assert stored >= n, stored
    t_bare = bare_fn(stored)
    return {"events": stored, "run_once_events_per_s": round(stored / elapsed),
            "bare_rows_per_s": round(stored / t_bare), "ratio": round(t_bare / elapsed, 3)}


_RSS_CHILD = _GEN_ADAPTER + r'''
import gc, json, resource, sys, tempfile
import asm_nb
from asm_nb.stores.local import LocalStore

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20

n = int(sys.argv[1])
tmp = tempfile.mkdtemp(prefix="asm-bench-rss-")
store = LocalStore(tmp)
asm_nb.run_once("go", provider=Deltas(10), store=store)
gc.collect()
base = rss_mb()
r = asm_nb.run_once("go", provider=Deltas(n), store=store)
assert r.status == "completed", r
# the peak of this process's own memory: VmHWM (ru_maxrss keeps the forking parent's RSS across
# exec on Linux, so a big bench process showed as this child's peak)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
try:
    with open("/proc/self/status") as f:
        peak = next(int(ln.split()[1]) for ln in f if ln.startswith("VmHWM:")) / 1024
except (OSError, StopIteration, ValueError):
    pass
n_events = len(r.events)
del r
gc.collect()
after = rss_mb()
print(json.dumps({"deltas": n, "events": n_events, "baseline_mb": round(base, 1), "peak_over_mb": round(peak - base, 1),
                  "after_over_mb": round(after - base, 1)}))
'''

_FD_CHILD = r'''
import json, resource, sys, tempfile
resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
import asm_nb
from asm_nb.stores.local import LocalStore
n = int(sys.argv[1])
store = LocalStore(tempfile.mkdtemp(prefix="asm-bench-fd-"))
done, err = 0, None
for i in range(n):
    try:
        r = asm_nb.run_once("true", provider="shell", store=store)
        if r.status != "completed":
            err = f"run {i}: {r.status} {r.error}"
            break
    except Exception as exc:
        err = f"run {i}: {exc!r}"[:200]
        break
    done += 1
print(json.dumps({"runs": n, "done": done, "error": err}))
'''

_FIRST_CHILD = r'''
import json, sys, tempfile, time
import asm_nb
from asm_nb.stores.local import LocalStore
asm_nb.run_once("true", provider="shell", store=LocalStore(tempfile.mkdtemp(prefix="asm-bench-warm-")))  # imports, loop
t0 = time.perf_counter()
store = LocalStore(sys.argv[1])
asm_nb.run_once("true", provider="shell", store=store)
t1 = time.perf_counter()
asm_nb.run_once("true", provider="shell", store=store)
t2 = time.perf_counter()
print(json.dumps({"first_ms": round((t1 - t0) * 1e3, 1), "second_ms": round((t2 - t1) * 1e3, 1)}))
'''


_FRAMES_CHILD = r'''
import json, sys, time
t_imp = time.perf_counter()
import asm_nb
from asm_nb.stores.local import LocalStore
fn = getattr(asm_nb.frames, sys.argv[2])
t0 = time.perf_counter()
import polars, pandas, pyarrow  # what the frame imports on first use (timed: part of a cold frame)
t1 = time.perf_counter()
store = LocalStore(sys.argv[1])
df = fn(store)
t2 = time.perf_counter()
print(json.dumps({"frame": sys.argv[2], "rows": len(df), "s": round(t2 - t0, 3), "libs_s": round(t1 - t0, 3),
                  "store_and_frame_s": round(t2 - t1, 3)}))
'''


def followup_row(n_events: int) -> dict:
    """A follow-up ``run_once(..., session=NAME)`` in a session of ``n_events`` events minus the
    same turn in a small session (both with a warm store, as in a kernel that ran turns before)."""
    import asm_nb
    from asm_nb.core.events import Event
    from asm_nb.stores.local import LocalStore

    with tempfile.TemporaryDirectory(prefix="asm-bench-follow-") as tmp:
        store = LocalStore(tmp)
        asm_nb.run_once("true", provider="shell", store=store, session="small")
        r = asm_nb.run_once("true", provider="shell", store=store, session="big")
        sid = r.session_id
        batch = 10_000
        k = 0
        while k < n_events:
            evs = []
            for i in range(min(batch, n_events - k)):
                j = k + i
                t = ("message_sent", {"role": "user", "content": f"question {j}"}) if j % 50 == 0 else \
                    ("message_streamed", {"delta": "word ", "content": "word "}) if j % 50 < 48 else \
                    ("message_received", {"role": "assistant", "content": "answer " * 4})
                evs.append(Event.new(t[0], sid, run_id=r.run_id, data=t[1], provider="shell"))
            store.append_events(evs)
            k += len(evs)
        store.flush()

        def turn(name: str) -> float:
            t0 = time.perf_counter()
            res = asm_nb.run_once("true", provider="shell", store=store, session=name)
            assert res.status == "completed", res
            return time.perf_counter() - t0

        first_big = turn("big")
        small = statistics.median([turn("small") for _ in range(3)])
        big = statistics.median([turn("big") for _ in range(3)])
        store.close()
        store2 = LocalStore(tmp)  # a restarted kernel: cold store
        t0 = time.perf_counter()
        asm_nb.run_once("true", provider="shell", store=store2, session="big")
        cold = time.perf_counter() - t0
        store2.close()
    return {"session_events": n_events, "first_turn_ms": round(first_big * 1000, 1),
            "turn_ms": round(big * 1000, 1), "small_session_turn_ms": round(small * 1000, 1),
            "extra_ms": round((big - small) * 1000, 1), "cold_store_turn_ms": round(cold * 1000, 1)}


# ---------------------------------------------------------------------------------------------


ROWS = ("per_run", "first_run", "frames", "claude", "sql", "rss", "fd", "followup")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes (big store 5,000 runs, 100k deltas ...)")
    ap.add_argument("--big", type=int, default=None, help="runs in the big store (default 50,000)")
    ap.add_argument("--skip-postgres", action="store_true")
    ap.add_argument("--only", choices=ROWS, action="append", default=None,
                    help="run only this row (repeatable); verdicts cover the rows run")
    args = ap.parse_args()
    only = set(args.only or ROWS)
    q = args.quick
    big_n = args.big or (5_000 if q else 50_000)
    sizes = {"small_store_runs": 100, "big_store_runs": big_n, "timed_runs": 15 if q else 30,
             "claude_deltas": 2000, "sql_events": 5_000 if q else 20_000, "rss_deltas": 100_000 if q else 1_000_000,
             "fd_runs": 1000 if q else 5000, "followup_events": 20_000 if q else 200_000}
    rows: list[dict] = []
    res: dict = {"bench": "user_path", "sizes": sizes}

    def row(name, figure, baseline, target, ok):
        rows.append({"row": name, "figure": figure, "baseline": baseline, "target": target,
                     "verdict": "n/a" if ok is None else ("ok" if ok else "MISS")})
        print("  ..", rows[-1], file=sys.stderr, flush=True)

    tmp = tempfile.TemporaryDirectory(prefix="asm-bench-user-")
    small_root, big_root = os.path.join(tmp.name, "small"), os.path.join(tmp.name, "big")
    if only & {"per_run", "first_run", "frames"}:
        t0 = time.perf_counter()
        fill(small_root, sizes["small_store_runs"])
        fill(big_root, big_n)
        res["fill_s"] = round(time.perf_counter() - t0, 1)

    if "per_run" in only:
        a_small, b_small, n_small = per_run(small_root, sizes["timed_runs"], 60)
        a_big, b_big, n_big = per_run(big_root, sizes["timed_runs"], 60)
        res["per_run"] = {"small": {"run_once_ms": round(a_small * 1e3, 2), "subprocess_ms": round(b_small * 1e3, 2),
                                    "ratio": round(a_small / b_small, 2), "timed": n_small},
                          "big": {"run_once_ms": round(a_big * 1e3, 2), "subprocess_ms": round(b_big * 1e3, 2),
                                  "ratio": round(a_big / b_big, 2), "timed": n_big},
                          "big_over_small": round(a_big / a_small, 2)}
        row(f"run_once(true) @ {sizes['small_store_runs']} runs", f"{a_small * 1e3:.1f} ms",
            f"subprocess {b_small * 1e3:.1f} ms", "<= 3x", a_small / b_small <= 3)
        row(f"run_once(true) @ {big_n} runs", f"{a_big * 1e3:.1f} ms", f"subprocess {b_big * 1e3:.1f} ms", "<= 3x",
            a_big / b_big <= 3)
        row(f"per-run cost {big_n} / {sizes['small_store_runs']}", f"{a_big / a_small:.2f}x", "", "<= 1.2x",
            a_big / a_small <= 1.2)

    if "first_run" in only:
        f = _child(_FIRST_CHILD, big_root)  # a new kernel's first run on the big store (no target)
        res["first_run"] = f
        row(f"first run_once of a new process @ {big_n} runs", f"{f.get('first_ms')} ms",
            f"its second run {f.get('second_ms')} ms", "", None)

    if "frames" in only:
        for frame in ("runs", "costs"):
            f = _child(_FRAMES_CHILD, big_root, frame)
            res[f"frames_{frame}"] = f
            row(f"cold frames.{frame} @ {big_n} runs", f"{f['s']:.2f} s" if "s" in f else f.get("error"),
                f"of which importing polars+pandas {f['libs_s']:.2f} s" if "libs_s" in f else "", "< 1 s",
                f.get("s", 99) < 1)

    if "claude" in only:
        try:
            c = claude_row(sizes["claude_deltas"], 3 if q else 5)
            res["claude"] = c
            row(f"Claude {c['deltas']} deltas run_once->LocalStore", f"{c['run_once_ms']} ms",
                f"bare client {c['bare_ms']} ms (reading parsed dicts: {c['bare_untyped_ms']} ms)", "<= 1.5x", c["ratio"] <= 1.5)
        except Exception as exc:
            res["claude"] = {"error": repr(exc)[:300]}
            row("Claude deltas run_once->LocalStore", "error", repr(exc)[:60], "<= 1.5x", False)

    if "sql" in only:
        sqlb = _load(HERE / "sql_ingest.py", "asm_bench_sql_ingest")
        from asm_nb.stores.sql import migrate

        backends = {"sqlite": lambda i: f"sqlite:///{tmp.name}/s{i}.db"}
        if not args.skip_postgres:
            try:
                pg = _load(HERE.parent / "pg.py", "asm_bench_pg").server()
                backends["postgresql"] = lambda i: pg.new_database()
            except Exception as exc:
                res["postgresql"] = {"error": repr(exc)[:200]}
        for name, mk in backends.items():
            try:
                url_a, url_b = mk(1), mk(2)
                migrate(url_a)
                migrate(url_b)
                raws = [{"type": "message_streamed", "data": {"delta": "tok ", "content": "tok "}}]

                def bare(k, url=url_b):
                    return sqlb.bench_bare(url, raws * k, "ses_bare", 1000)

                s = sql_row(url_a, sizes["sql_events"], bare)
                res[name] = s
                row(f"SqlStore {name} ev/s run_once", f"{s['run_once_events_per_s']:,}/s",
                    f"executemany {s['bare_rows_per_s']:,}/s", ">= 0.5x", s["ratio"] >= 0.5)
            except Exception as exc:
                res[name] = {"error": repr(exc)[:300]}
                row(f"SqlStore {name} ev/s run_once", "error", repr(exc)[:60], ">= 0.5x", False)

    if "rss" in only:
        m = _child(_RSS_CHILD, str(sizes["rss_deltas"]))
        res["rss"] = m
        row(f"peak RSS, {sizes['rss_deltas']:,}-delta run", f"+{m.get('peak_over_mb')} MB", f"base {m.get('baseline_mb')} MB",
            "<= 300 MB", m.get("peak_over_mb", 1e9) <= 300)
        row("RSS after that run", f"+{m.get('after_over_mb')} MB", "", "<= 50 MB", m.get("after_over_mb", 1e9) <= 50)

    if "fd" in only:
        f = _child(_FD_CHILD, str(sizes["fd_runs"]))
        res["ulimit_256"] = f
        row("one-shot runs under ulimit -n 256", f"{f.get('done')} of {f.get('runs')}", str(f.get("error") or "")[:40],
            f"{sizes['fd_runs']:,} ok", f.get("done") == sizes["fd_runs"])

    if "followup" in only:
        try:
            fu = followup_row(sizes["followup_events"])
            res["followup"] = fu
            row(f"follow-up turn, {sizes['followup_events']:,}-event session", f"+{fu['extra_ms']} ms",
                f"small-session turn {fu['small_session_turn_ms']} ms; cold store {fu['cold_store_turn_ms']} ms",
                "< 100 ms", fu["extra_ms"] < 100)
        except Exception as exc:
            res["followup"] = {"error": repr(exc)[:300]}
            row("follow-up turn", "error", repr(exc)[:60], "< 100 ms", False)
    tmp.cleanup()

    res["verdicts"] = {r["row"]: r["verdict"] for r in rows}
    res["ok"] = all(r["verdict"] in ("ok", "n/a") for r in rows)  # n/a: a row without a target
    w = max(len(r["row"]) for r in rows)
    print(f"{'row':<{w}}  {'figure':>14}  {'target':>10}  {'verdict':>7}  baseline")
    for r in rows:
        print(f"{r['row']:<{w}}  {r['figure']:>14}  {r['target']:>10}  {r['verdict']:>7}  {r['baseline']}")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
