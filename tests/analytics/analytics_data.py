"""Realistic analytics data for the frames / plots / query tests: sessions, runs and events
appended straight into a store, plus the raw lists to check frames against."""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from asm_nb.core.events import Event
from asm_nb.core.run import Run, RunStatus
from asm_nb.core.session import Session, SessionStatus

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)

# (provider, model, status, reported cost or None, stored cost?)
RUN_PLAN = [
    ("claude", "claude-sonnet-4-5-20250929", "completed", None, True),
    ("claude", "claude-opus-4-6", "failed", None, True),
    ("codex", "gpt-5-codex", "completed", None, True),
    ("codex", "o3", "completed", None, False),            # stored without cost → priced post hoc
    ("amp", None, "completed", 0.42, True),                # provider-reported cost
    ("claude", "mystery-model-x", "completed", None, True),  # unknown model → unpriced
    ("claude", "claude-haiku-4-5-20251001", "cancelled", None, True),
]


@dataclass
class Dataset:
    sessions: list = field(default_factory=list)
    runs: list = field(default_factory=list)
    events: list = field(default_factory=list)   # as stored (with sequence numbers)
    tool_calls: list = field(default_factory=list)  # (session_id, run_id, tool_call_id, status, duration_ms)


def build(store, *, seed: int = 7, warn_ok: bool = True) -> Dataset:
    """Fill ``store`` with 3 sessions and the runs of ``RUN_PLAN`` (spread over 3 days)."""
    from asm_nb.cost.calculator import price_run

    rnd = random.Random(seed)
    ds = Dataset()
    sessions = []
    for i in range(3):
        s = Session.new(f"agent-{i % 2}", tags=["pinned"] if i == 0 else []).replace(
            status=[SessionStatus.ACTIVE, SessionStatus.COMPLETED, SessionStatus.FAILED][i],
            created_at=T0 + timedelta(days=i), updated_at=T0 + timedelta(days=i, hours=1))
        store.save_session(s)
        sessions.append(s)
    ds.sessions = sessions
    for n, (provider, model, status, reported, stored_cost) in enumerate(RUN_PLAN):
        sess = sessions[n % 3]
        start = T0 + timedelta(days=n % 3, minutes=10 * n)
        t = start
        run = Run.new(sess.id).replace(provider=provider, started_at=start,
                                       provider_metadata={"model": model} if model else {})
        evs = []

        def ev(etype, dt_ms, **data):
            nonlocal t
            t = t + timedelta(milliseconds=dt_ms)
            evs.append(Event.new(etype, sess.id, run_id=run.id, provider=provider, timestamp=t, data=data))

        ev("run_started", 0, model=model)
        ev("message_sent", 5, role="user", content=f"task {n}: fix the tests ✓")
        usage = {"input_tokens": 0, "output_tokens": 0, "cache_read_tokens": 0, "cache_creation_tokens": 0}
        for turn in range(1, 3):
            for c in range(rnd.randint(2, 4)):
                ev("message_streamed", 20, delta=f"chunk{c} ", content=f"chunk{c} ", kind="text")
            ev("message_streamed", 5, delta="thinking", content="thinking", kind="reasoning")
            for k in range(rnd.randint(1, 2)):
                tc = f"toolu_{n}_{turn}_{k}"
                name, tin = rnd.choice([("Bash", {"command": "pytest -q tests/"}),
                                        ("Read", {"file_path": "src/app.py"}),
                                        ("Grep", {"pattern": "def main", "path": "src/"})])
                ev("tool_call_started", 10, tool_call_id=tc, tool_name=name, tool_input=tin)
                dur = rnd.randint(50, 3000)
                if status == "cancelled" and turn == 2:
                    ds.tool_calls.append((sess.id, run.id, tc, "running", None))
                    continue
                failed = (k == 1)
                if failed:
                    ev("tool_call_failed", dur, tool_call_id=tc, tool_name=name, tool_output="boom",
                       is_error=True, reason="declined")
                else:
                    ev("tool_call_completed", dur, tool_call_id=tc, tool_name=name, tool_output="ok\n" * (k + 3))
                ds.tool_calls.append((sess.id, run.id, tc, "failed" if failed else "completed", float(dur)))
            inc = {"input_tokens": rnd.randint(100, 2000), "output_tokens": rnd.randint(10, 800),
                   "cache_read_tokens": rnd.randint(0, 5000), "cache_creation_tokens": rnd.randint(0, 500)}
            for k2, v in inc.items():
                usage[k2] += v
            ev("token_usage_updated", 5, **inc)
            if status == "cancelled" and turn == 2:
                break
            ev("message_received", 5, role="assistant", content=f"answer {n}.{turn}")
            ev("turn_completed", 1, turn=turn, stop_reason="end_turn")
        if status == "completed":
            data = {"stop_reason": "end_turn", "token_usage": usage}
            if reported:
                data["total_cost_usd"] = reported
            ev("run_completed", 5, **data)
        elif status == "failed":
            ev("error_occurred", 5, error_code="provider_error", error_message="overloaded")
            ev("run_failed", 1, error_code="provider_error", error_message="overloaded")
        else:
            ev("tool_call_failed", 1, tool_call_id=f"toolu_{n}_2_0", tool_name="Bash", tool_output="",
               reason="cancelled")
            ds.tool_calls = [x if x[2] != f"toolu_{n}_2_0" else (*x[:3], "failed", None) for x in ds.tool_calls]
            ev("run_cancelled", 1, reason="user")
        stored = store.append_events(evs)
        ds.events.extend(stored)
        run = run.replace(status=RunStatus(status), ended_at=t, token_usage=usage, turn_count=2,
                          error={"code": "provider_error", "message": "overloaded"} if status == "failed" else None,
                          output={"stop_reason": "end_turn", "content": "done"} if status == "completed" else None)
        if stored_cost:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                info = price_run(run, reported_cost_usd=reported)
            run = run.replace(cost_usd=info["cost_usd"],
                              metadata={**run.metadata, **{k: v for k, v in info.items() if k != "cost_usd"}})
        if n == 2:
            run = run.replace(metadata={**run.metadata, "workspace": {
                "backend": "git", "before_ref": "abc", "after_ref": "def",
                "diff": {"files_changed": 2, "insertions": 10, "deletions": 3,
                         "changed_paths": ["a.py", "b.py"], "patch": "diff --git ..."}}})
        store.save_run(run)
        ds.runs.append(run)
    return ds


class LogDirStore:
    """A store wrapper exposing ``event_log_paths()``: the frames fast path over JSONL logs in
    the LocalStore line format, with events buffered until ``flush()`` (as LocalStore does)."""

    def __init__(self, inner, root):
        self.inner = inner
        self.root = root
        self.flushes = 0
        os.makedirs(os.path.join(root, "events"), exist_ok=True)

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def flush(self, payload=None):
        self.flushes += 1
        for sid in self.inner.list_session_ids():
            path = os.path.join(self.root, "events", f"{sid}.jsonl")
            with open(path, "w", encoding="utf-8") as fh:
                for e in self.inner.get_events(sid):
                    fh.write(json.dumps(e.to_dict(), ensure_ascii=False, separators=(",", ":")) + "\n")
        return self.inner.flush(payload)

    def event_log_paths(self):
        d = os.path.join(self.root, "events")
        return [os.path.join(d, n) for n in sorted(os.listdir(d)) if n.endswith(".jsonl")]
