"""An eval's rows: the task (item x agent x repeat) and the metadata a run carries, one result
row per task (``BASE_COLUMNS`` plus ``score_/pass_/why_<scorer>``), the scored runs already in
the store (resume), the ``RunResult`` built from a run's events, and the writer that saves scored
runs in small groups.

Split out of ``evaluation/runner.py``, which re-exports these names.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..core.errors import AsmError
from .agents import Agent
from .dataset import Item
from .scorers import Sample, Score, Scorer

log = logging.getLogger("asm_nb.evaluation.runner")  # the logger keeps the name it had before the split

BASE_COLUMNS = ["eval", "item_id", "item_hash", "agent", "agent_hash", "repeat", "input", "expected", "output",
                "status", "error_code", "error_message", "passed", "score", "input_tokens", "output_tokens",
                "cost_usd", "duration_ms", "files_changed", "insertions", "deletions", "run_id", "session_id",
                "workspace", "resumed"]


@dataclass
class _Task:
    item: Item
    agent: Agent
    repeat: int

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.item.hash, self.agent.hash, self.repeat)


def _eval_meta(name: str, t: _Task, ws: str | None) -> dict[str, Any]:
    return {"name": name, "item_id": t.item.id, "item_hash": t.item.hash, "agent": t.agent.name,
            "agent_hash": t.agent.hash, "repeat": t.repeat, "workspace": ws, "fixture": t.item.workspace,
            "expected": _jsonable(t.item.expected)}


def _jsonable(v: Any) -> Any:
    try:
        from ..core.serialization import to_jsonable

        return to_jsonable(v)
    except Exception:
        return repr(v)


def _row(name: str, t: _Task, run: Any, scores: Sequence[Score], ws: str | None, *, resumed: bool,
         error: AsmError | None = None) -> dict[str, Any]:
    from ..workspace.rollback import workspace_record

    out = (run.output or {}) if run is not None else {}
    content = out.get("content")
    if content is not None and not isinstance(content, str):
        content = str(content)
    err = (run.error or {}) if run is not None else {}
    if error is not None and not err:
        err = {"code": error.code, "message": error.message}
    usage = (run.token_usage or {}) if run is not None else {}
    rec = workspace_record(run) if run is not None else None
    status = run.status.value if run is not None else ("cancelled" if error and error.code == "cancelled" else "failed")
    values = [s.value for s in scores if s.value is not None]
    row: dict[str, Any] = {
        "eval": name, "item_id": t.item.id, "item_hash": t.item.hash, "agent": t.agent.name,
        "agent_hash": t.agent.hash, "repeat": t.repeat, "input": t.item.input, "expected": t.item.expected,
        "output": content, "status": status, "error_code": err.get("code"), "error_message": err.get("message"),
        "passed": status == "completed" and all(s.passed for s in scores),
        "score": (sum(values) / len(values)) if values else None,
        "input_tokens": usage.get("input_tokens"), "output_tokens": usage.get("output_tokens"),
        "cost_usd": run.cost_usd if run is not None else None,
        "duration_ms": run.duration_ms if run is not None else None,
        "files_changed": rec.get("files_changed") if rec else None,
        "insertions": rec.get("insertions") if rec else None, "deletions": rec.get("deletions") if rec else None,
        "run_id": run.id if run is not None else None, "session_id": run.session_id if run is not None else None,
        "workspace": ws, "resumed": resumed}
    for s in scores:
        row[f"score_{s.name}"] = s.value
        row[f"pass_{s.name}"] = s.passed
        row[f"why_{s.name}"] = s.explanation
    row["_scores"] = list(scores)
    return row


def _skipped_row(name: str, t: _Task, code: str, message: str) -> dict[str, Any]:
    row: dict[str, Any] = {c: None for c in BASE_COLUMNS}
    row.update({"eval": name, "item_id": t.item.id, "item_hash": t.item.hash, "agent": t.agent.name,
                "agent_hash": t.agent.hash, "repeat": t.repeat, "input": t.item.input, "expected": t.item.expected,
                "status": "skipped", "error_code": code, "error_message": message, "passed": False,
                "resumed": False, "_scores": []})
    return row


def _done_runs(store: Any, name: str) -> dict[tuple[str, str, int], Any]:
    """Scored runs of eval ``name`` in ``store``, by (item hash, agent hash, repeat)."""
    done: dict[tuple[str, str, int], Any] = {}
    try:
        store.flush()
    except Exception:
        pass
    for run in store.list_runs(None):
        ev = (run.metadata or {}).get("eval")
        if not isinstance(ev, Mapping) or ev.get("name") != name or not ev.get("scored"):
            continue
        key = (str(ev.get("item_hash")), str(ev.get("agent_hash")), int(ev.get("repeat") or 0))
        prev = done.get(key)
        if prev is None or (run.ended_at or run.started_at, run.id) > (prev.ended_at or prev.started_at, prev.id):
            done[key] = run
    return done


def _result_from_events(store: Any, run: Any, events: list) -> Any:
    """The run's ``RunResult`` from the events the manager handed back (no event-log read: a
    session of a thousand runs would be re-read for each); None when they do not convert."""
    from ..runtime.result import result_from_store as _result_from_store
    from ..core.events import Event, to_event_type
    from ..core.serialization import parse_datetime, utc_now

    class _NoEvents:
        def get_events(self, *_a: Any, **_k: Any) -> list:
            return []

    try:
        out = []
        for ev in events:
            ts = ev.get("timestamp")
            out.append(Event(id=str(ev.get("id") or ""), type=to_event_type(ev.get("type")),
                             timestamp=parse_datetime(ts) if isinstance(ts, str) else (ts or utc_now()),
                             session_id=run.session_id, run_id=run.id, data=dict(ev.get("data") or {}),
                             metadata=dict(ev.get("metadata") or {}), sequence_number=ev.get("sequence_number"),
                             schema_version=1, provider=ev.get("provider") or run.provider))
    except Exception:
        return None
    result = _result_from_store(_NoEvents(), run)
    result.events = out
    result.store = store
    return result


def _redacted(scores: list[dict]) -> list[dict]:
    """Scores as stored: explanations go through the redaction config like everything persisted."""
    try:
        from ..persistence.redaction import redact_map
    except ImportError:  # pragma: no cover
        return scores
    return [redact_map(s) for s in scores]


def _save_runs(store: Any, runs: list) -> None:
    many = getattr(store, "save_runs", None)
    if callable(many):
        many(runs)
    else:
        for run in runs:
            store.save_run(run)


class _ScoreWriter:
    """Saves scored runs in small groups (every ``every_s`` or ``max_batch`` runs, and at the end),
    so recording the scores costs one store write per group instead of one per run."""

    def __init__(self, store: Any, *, every_s: float = 0.25, max_batch: int = 64) -> None:
        self.store = store
        self.every_s = every_s
        self.max_batch = max_batch
        self.pending: list = []
        self._lock = asyncio.Lock()
        self._ticker = asyncio.ensure_future(self._tick())

    async def put(self, run: Any) -> None:
        self.pending.append(run)
        if len(self.pending) >= self.max_batch:
            await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            runs, self.pending = self.pending, []
            if runs:
                await asyncio.to_thread(_save_runs, self.store, runs)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            try:
                await self.flush()
            except Exception:
                log.exception("saving eval scores failed (retried at the end)")

    async def close(self) -> None:
        self._ticker.cancel()
        try:
            await self._ticker
        except BaseException:
            pass
        await asyncio.shield(self.flush())


def _score_sample(scorers: Sequence[Scorer], sample: Sample) -> list[Score]:
    return [s(sample) for s in scorers]
