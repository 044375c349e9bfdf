"""``asm_nb.evaluate``: run every item x agent x repeat through the batch machinery (a session
server per agent, the process-wide limiter, a progress bar, an optional executor), score each
finished run, and keep the scores on the run itself (``run.metadata["eval"]``) so an eval
resumes: re-running with the same ``name`` skips every (item hash, agent hash, repeat) already
scored and runs only the rest.

Each item with a workspace fixture gets a fresh copy of it per agent and repeat (agents that edit
files never share a tree); the run snapshots that copy, so its diff is recorded like any
``--snapshot`` run, and workspace scorers (files changed, diff contains, a command that must
pass) look at it after the run.

Recording: ``cassettes=DIR`` writes one cassette per run (``DIR/<agent>/<item>-r<repeat>.jsonl``,
with the files the run changed in its workspace) and, on a later run, replays it instead of
calling the provider (``record="once"``, the default; ``"none"``: replay only, a missing cassette
fails the row; ``"all"``: call the provider and re-record). So an eval recorded once replays
offline, workspace changes included.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..core.errors import AsmError
from .agents import Agent, as_agents
from .dataset import Item, as_dataset, canonical_hash
from .scorers import Sample, Score, Scorer, as_scorers

log = logging.getLogger(__name__)

__all__ = ["evaluate", "EvalRun", "EvalResult", "EvalComparison", "run_eval_item", "load_eval"]

BASE_COLUMNS = ["eval", "item_id", "item_hash", "agent", "agent_hash", "repeat", "input", "expected", "output",
                "status", "error_code", "error_message", "passed", "score", "input_tokens", "output_tokens",
                "cost_usd", "duration_ms", "files_changed", "insertions", "deletions", "run_id", "session_id",
                "workspace", "resumed"]


# ---------------------------------------------------------------------------------------------- workspaces
def _copy_fixture(src: str, dest: str) -> str:
    if os.path.exists(dest):
        shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(src, dest, symlinks=True)
    return dest


def _changed_files(fixture: str, ws: str) -> dict[str, Any]:
    """``{relative path: {"text"|"b64": content} | None (deleted)}`` of ``ws`` against ``fixture``
    (``.git`` excluded): what a recorded run did to its workspace."""
    def files(root: str) -> dict[str, str]:
        out = {}
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d != ".git"]
            for n in filenames:
                p = os.path.join(dirpath, n)
                if os.path.isfile(p) and not os.path.islink(p):
                    out[os.path.relpath(p, root)] = p
        return out
    before, after = files(fixture), files(ws)
    changes: dict[str, Any] = {}
    for rel, p in after.items():
        data = Path(p).read_bytes()
        if rel in before and Path(before[rel]).read_bytes() == data:
            continue
        try:
            changes[rel] = {"text": data.decode("utf-8")}
        except UnicodeDecodeError:
            changes[rel] = {"b64": base64.b64encode(data).decode("ascii")}
    for rel in before:
        if rel not in after:
            changes[rel] = None
    return changes


def _apply_files(ws: str, changes: Mapping[str, Any]) -> None:
    root = Path(ws).resolve()
    for rel, content in changes.items():
        target = (root / rel).resolve()
        if root not in target.parents:
            raise AsmError("invalid_format", f"cassette workspace file {rel!r} points outside the workspace")
        if content is None:
            if target.exists():
                target.unlink()
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if "text" in content:
            target.write_text(content["text"], encoding="utf-8")
        else:
            target.write_bytes(base64.b64decode(content["b64"]))


# ---------------------------------------------------------------------------------------------- adapter
class _EvalAdapter:
    """The session server's adapter for one agent: per run, the agent's adapter working in the
    run's workspace copy; replays / records cassettes (workspace changes included)."""

    def __init__(self, agent: Agent, *, cassettes: str | None, record: str,
                 meta: Mapping[str, Any] | None = None) -> None:
        from .. import api

        self.agent = agent
        self._meta = dict(meta or {})  # an executor worker's one run (its record has no eval metadata yet)
        self.cassettes = cassettes
        self.record = record
        self._probe = self._build(None) if isinstance(agent.provider, str) else agent.provider
        self.name = self._probe.name
        self.emits_input_messages = bool(getattr(self._probe, "emits_input_messages", False))
        self._inner: dict[str, Any] = {}
        self._cassette_cache: dict[str, Any] = {}
        self._api = api

    def _build(self, cwd: str | None) -> Any:
        from .. import api

        a = self.agent
        opts = dict(a.options)
        if cwd is not None:
            opts["cwd"] = cwd
        return api.resolve_adapter(a.provider, model=a.model, system=a.system, **opts)

    def __getattr__(self, item: str) -> Any:  # model, options... of the agent's adapter
        if item.startswith("_"):
            raise AttributeError(item)
        return getattr(self._probe, item)

    async def capabilities(self) -> list:
        return await self._probe.capabilities()

    def validate_config(self, config: Mapping[str, Any]) -> None:
        return self._probe.validate_config(config)

    def cassette_path(self, meta: Mapping[str, Any]) -> str | None:
        if self.cassettes is None:
            return None
        return os.path.join(self.cassettes, _safe(self.agent.name),
                            f"{_safe(str(meta.get('item_id')))}-{str(meta.get('item_hash'))[:12]}-r{meta.get('repeat', 0)}.jsonl")

    async def execute(self, run: Any, session: Any, *, event_callback: Any = None, timeout: Any = None,
                      **opts: Any) -> Any:
        meta = (run.metadata or {}).get("eval") or self._meta
        ws = meta.get("workspace")
        path = self.cassette_path(meta)
        if path is not None and self.record != "all" and os.path.exists(path):
            from ..providers.replay import ReplayProvider, load_cassette

            cas = load_cassette(path)
            inner: Any = ReplayProvider(cassette=cas, name=self.name)
            self._inner[run.id] = inner
            try:
                result = await inner.execute(run, session, event_callback=event_callback, timeout=timeout)
            finally:
                self._inner.pop(run.id, None)
                files = cas.header.get("workspace_files")
                if ws and isinstance(files, Mapping):
                    await asyncio.to_thread(_apply_files, ws, files)
            return result
        if path is not None and self.record == "none":
            raise AsmError("not_found", f"no recorded cassette for this item at {path} (record='none')")
        if isinstance(self.agent.provider, str):
            inner = self._build(ws) if ws else self._probe
        else:  # an adapter instance: the agent's settings and the workspace go in per run
            inner = self.agent.provider
            opts = {**instance_options(self.agent, cwd=ws), **opts}
        if path is not None:
            from ..providers.replay import Recorder

            inner = Recorder(inner, path)
        self._inner[run.id] = inner
        try:
            return await inner.execute(run, session, event_callback=event_callback, timeout=timeout, **opts)
        finally:
            self._inner.pop(run.id, None)
            if path is not None and ws and meta.get("fixture") and os.path.exists(path):
                await asyncio.to_thread(_add_files_to_cassette, path, meta["fixture"], ws)
            if inner is not self._probe and ws and isinstance(self.agent.provider, str):
                try:
                    await (inner.adapter if hasattr(inner, "recorded") else inner).aclose()
                except Exception:
                    pass

    async def cancel(self, run_id: str) -> str:
        inner = self._inner.get(run_id)
        if inner is None:
            return "not_found"
        return await inner.cancel(run_id)

    async def aclose(self) -> None:
        try:
            await self._probe.aclose()
        except Exception:
            pass


def instance_options(agent: Agent, *, cwd: str | None = None) -> dict[str, Any]:
    """The execute options an adapter-instance agent gets per run: its ``options``, ``model``,
    ``system`` (as ``system_prompt`` for adapters that name it so) and the run's workspace as
    ``cwd``."""
    inst = agent.provider
    out = dict(agent.options)
    if agent.model is not None:
        out["model"] = agent.model
    if agent.system is not None:
        accepted = getattr(inst, "execute_overrides", None)
        key = "system_prompt" if isinstance(accepted, frozenset) and "system_prompt" in accepted else "system"
        out[key] = agent.system
    if cwd:
        out["cwd"] = cwd
    return out


def check_instance_agent(agent: Agent, *, needs_cwd: bool) -> None:
    """Refuse, before anything runs, an adapter-instance agent whose settings its adapter would
    silently drop at execute time (adapters that list what a run may override, in
    ``execute_overrides``), above all a workspace it would not work in."""
    inst = agent.provider
    accepted = getattr(inst, "execute_overrides", None)
    if isinstance(agent.provider, str) or not isinstance(accepted, frozenset):
        return  # a registered name (built per run), or an adapter taking any execute option
    wanted = set(instance_options(agent, cwd="x" if needs_cwd else None))
    dropped = sorted(wanted - accepted)
    if dropped:
        what = ("the item workspaces (cwd)" if dropped == ["cwd"] else
                f"option(s) {dropped}" + (" and the item workspaces" if "cwd" in dropped else ""))
        raise AsmError("validation_error",
                       f"agent {agent.name!r}: a {getattr(inst, 'name', type(inst).__name__)} adapter instance "
                       f"cannot take {what} per run (it takes {sorted(accepted) or 'none'}); name the "
                       f"provider instead: Agent({agent.name!r}, provider={getattr(inst, 'name', '...')!r}, "
                       "options={...}) builds one adapter per run in its workspace")


def _add_files_to_cassette(path: str, fixture: str, ws: str) -> None:
    from ..providers.replay import Cassette, load_cassette

    cas = load_cassette(path)
    header = {**cas.header, "workspace_files": _changed_files(fixture, ws)}
    Cassette(header=header, events=cas.events).write(path)


def _safe(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in s)[:80] or "_"


# ---------------------------------------------------------------------------------------------- rows
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
    row = {c: None for c in BASE_COLUMNS}
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


# ---------------------------------------------------------------------------------------------- the run
@dataclass(eq=False)
class EvalRun:
    """A running evaluation: ``rows`` so far, ``cancel()``, ``result()`` (waits; Ctrl-C cancels)."""

    name: str
    tasks: list
    scorers: list
    agents: list
    dataset: Any
    store: Any
    rows: dict = field(default_factory=dict)
    spent_usd: float = 0.0
    stopped: str | None = None
    servers: list = field(default_factory=list)
    _future: Any = None
    _cancelled: bool = False

    def cancel(self) -> None:
        """Stop: queued items are skipped, in-flight runs cancelled (and not marked done)."""
        self._cancelled = True
        if self.stopped is None:
            self.stopped = "cancelled"
        from ..runtime import loop

        async def close() -> None:
            for s in list(self.servers):
                try:
                    await s.aclose(cancel_in_flight=True)
                except Exception:
                    log.debug("eval cancel: server close failed", exc_info=True)

        try:
            loop.submit(close()).result(timeout=30)
        except Exception:
            log.debug("eval cancel did not finish cleanly", exc_info=True)

    @property
    def done(self) -> bool:
        return self._future is not None and self._future.done()

    def result(self, timeout: float | None = None) -> "EvalResult":
        from ..runtime import loop

        if timeout is None:
            loop.wait(self._future, on_interrupt=self.cancel)
        else:
            self._future.result(timeout=timeout)
        return self.to_result()

    def to_result(self) -> "EvalResult":
        rows = [self.rows.get(t.key) or _skipped_row(self.name, t, "not_run", "not run") for t in self.tasks]
        return EvalResult(name=self.name, rows=rows, agents=list(self.agents), scorers=[s.name for s in self.scorers],
                          store=self.store, stopped=self.stopped, spent_usd=self.spent_usd)


async def _run_tasks(handle: EvalRun, todo: list[_Task], *, store: Any, concurrency: int, limiter: Any,
                     budget: float | None, timeout: Any, workdir: str, keep_workspaces: bool, cassettes: str | None,
                     record: str, executor: Any, progress: Any, on_result: Callable | None) -> None:
    from ..runtime.oneshot import close_session as _close_session
    from ..runtime.result import result_from_store as _result_from_store
    from ..runtime import manager
    from ..runtime.server import SessionServer

    name = handle.name
    servers: dict[str, Any] = {}
    sessions: dict[str, str] = {}
    for agent in handle.agents:
        if not any(t.agent is agent for t in todo):
            continue
        session_opts = {"agent_id": agent.name,
                        "metadata": {"name": f"eval-{name}-{agent.name}", "eval": name, "eval_agent": agent.name,
                                     "agent_hash": agent.hash, "agent": _jsonable(agent.to_dict())}}
        if executor is None:
            default_opts: dict[str, Any] = {"continuation": False}
            if agent.policy is not None:
                default_opts["policy"] = agent.policy
            if timeout is not None:
                from ..runtime.options import timeout_ms

                default_opts["timeout"] = timeout_ms(timeout)  # seconds, as run_once
            server = await SessionServer.start(store=store, adapter=_EvalAdapter(agent, cassettes=cassettes, record=record),
                                               session_opts=session_opts, max_concurrent_runs=concurrency,
                                               max_queued_runs=max(len(todo), 1), limiter=limiter, limiter_wait=True,
                                               default_execute_opts=default_opts)
            servers[agent.name] = server
            handle.servers.append(server)
            sessions[agent.name] = server.session_id
        else:
            probe = _EvalAdapter(agent, cassettes=None, record="none")
            s = await manager.astart_session(store, probe, session_opts)
            s = await manager.aactivate_session(store, s.id)
            sessions[agent.name] = s.id
    if executor is not None:
        await asyncio.to_thread(store.flush)
    sem = asyncio.Semaphore(concurrency)
    writer = _ScoreWriter(store)

    score_sem = asyncio.Semaphore(concurrency)
    from ..runtime.manager import _store as store_call  # inline for inline-safe stores, else a thread

    async def one(t: _Task) -> None:
        async with sem:  # the run: at most ``concurrency`` at a time over all agents
            if handle._cancelled:
                return
            if budget is not None and handle.spent_usd >= budget:
                handle.stopped = handle.stopped or "budget"
                handle.rows[t.key] = _skipped_row(name, t, "budget_exceeded",
                                                  f"eval budget ${budget:g} spent (${handle.spent_usd:.4f})")
                progress.finished("cancelled", was_running=False)
                return
            ws = None
            if t.item.workspace:
                dest = os.path.join(workdir, _safe(t.agent.name), f"{_safe(t.item.id)}-r{t.repeat}")
                ws = await asyncio.to_thread(_copy_fixture, t.item.workspace, dest)
            meta = _eval_meta(name, t, ws)
            progress.started()
            err: AsmError | None = None
            run_id: str | None = None
            events: list | None = None  # the run's events as it emitted them (None: read the store)
            try:
                if executor is None:
                    server = servers[t.agent.name]
                    opts: dict[str, Any] = {"metadata": {"eval": meta}}
                    if ws:
                        opts["workspace"] = {"enabled": True, "path": ws}
                    run_id = await server.submit_run(t.item.input, **opts)
                    try:
                        execution = await server.await_run(run_id, timeout_ms=10 ** 12)
                        events = getattr(execution, "events", None)
                    except AsmError as e:
                        err = e
                else:
                    payload = {"store": str(store_url), "session_id": sessions[t.agent.name],
                               "agent": t.agent.to_dict() | {"policy": t.agent.policy}, "input": t.item.input,
                               "workspace": ws, "metadata": {"eval": meta}, "timeout": timeout,
                               "cassettes": cassettes, "record": record}
                    fut = executor.submit(run_eval_item, payload)
                    out = await asyncio.to_thread(fut.result)
                    run_id = out.get("run_id")
                    if out.get("error"):
                        err = AsmError(out["error"]["code"], out["error"]["message"])
                run = await store_call(store, "get_run", run_id) if run_id else None
            except AsmError as e:
                err, run = e, None
            if run is not None and isinstance(run.cost_usd, (int, float)):
                handle.spent_usd += float(run.cost_usd)
        if handle._cancelled and (run is None or not run.is_terminal or run.status.value == "cancelled"):
            progress.finished("cancelled")
            return  # interrupted: not recorded as done, runs again on resume
        if run is not None and run.status.value == "cancelled" and err is not None and err.code == "cancelled":
            progress.finished("cancelled")
            return
        async with score_sem:  # scoring overlaps the next runs
            scores: list[Score] = []
            if run is not None:
                from ..workspace.rollback import workspace_record

                def score() -> list[Score]:
                    result = _result_from_events(store, run, events) if events is not None else None
                    if result is None:
                        result = _result_from_store(store, run)
                    result.workspace = workspace_record(run)
                    sample = Sample(item=t.item, agent=t.agent, repeat=t.repeat, result=result, workspace=ws,
                                    store=store)
                    return _score_sample(handle.scorers, sample)

                if all(getattr(sc_, "inline", False) for sc_ in handle.scorers):
                    scores = score()  # pure-Python checks on data in memory: no thread hop
                else:
                    scores = await asyncio.to_thread(score)
                ev = {**meta, "scored": True, "scores": _redacted([s.to_dict() for s in scores])}
                updated = run.replace(metadata={**(run.metadata or {}), "eval": ev})
                await writer.put(updated)
                run = updated
            row = _row(name, t, run, scores, ws if keep_workspaces else None, resumed=False, error=err)
            handle.rows[t.key] = row
            progress.finished(row["status"])
            if ws and not keep_workspaces:
                await asyncio.to_thread(shutil.rmtree, ws, True)
            if on_result is not None:
                try:
                    on_result(row)
                except Exception:
                    log.exception("evaluate on_result raised (ignored)")

    store_url = getattr(handle, "_store_url", None)
    try:
        tasks = []
        for t in todo:
            tasks.append(asyncio.ensure_future(one(t)))
        await asyncio.gather(*tasks)
    finally:
        await writer.close()
        for server in servers.values():
            try:
                await server.aclose(cancel_in_flight=True)
            except Exception:
                log.debug("eval server close failed", exc_info=True)
        for sid in sessions.values():
            await _close_session(store, sid, None)
        try:
            await asyncio.to_thread(store.flush)
        except Exception:
            pass


def run_eval_item(payload: Mapping[str, Any]) -> dict[str, Any]:
    """One eval run in an executor worker (picklable): opens the store by URL, runs the agent in
    the item's workspace copy with a snapshot, returns ``{"run_id", "error"}``. With
    ``payload["cassettes"]`` the run replays its cassette or records it (``record``), workspace
    files included, exactly as the local runner does. Scoring happens back in the caller's
    process."""
    from .. import api

    a = payload["agent"]
    kwargs: dict[str, Any] = {"store": api.resolve_store(payload["store"]), "session": payload["session_id"],
                              "continuation": False, "metadata": payload.get("metadata")}
    ws = payload.get("workspace")
    if ws:
        kwargs["snapshot"] = {"path": ws}
    if a.get("policy") is not None:
        kwargs["policy"] = a["policy"]
    if payload.get("timeout") is not None:
        kwargs["timeout"] = payload["timeout"]
    try:
        if payload.get("cassettes"):
            # the local runner's adapter: replays / records, builds the agent's adapter in ``ws``
            agent = Agent(name=a["name"], provider=a["provider"], model=a.get("model"),
                          options=dict(a.get("options") or {}), system=a.get("system"), policy=a.get("policy"))
            adapter = _EvalAdapter(agent, cassettes=payload["cassettes"], record=payload.get("record") or "once",
                                   meta=(payload.get("metadata") or {}).get("eval"))
            try:
                res = api.run_once(payload["input"], provider=adapter, **kwargs)
            finally:
                _close_adapter(adapter)
        else:
            if ws:
                kwargs["cwd"] = ws
            res = api.run_once(payload["input"], provider=a["provider"], model=a.get("model"),
                               system=a.get("system"), **kwargs, options=a.get("options") or None)
        kwargs["store"].flush()
        return {"run_id": res.run_id, "error": None}
    except AsmError as err:
        return {"run_id": None, "error": {"code": err.code, "message": err.message}}


def _close_adapter(adapter: Any) -> None:
    """Close an adapter from synchronous code (a worker), on the package's event loop."""
    from ..runtime import loop

    try:
        loop.run_sync(adapter.aclose())
    except Exception:  # noqa: BLE001 - closing a finished adapter is best effort
        pass


def evaluate(dataset: Any, agents: Any = None, scorers: Any = None, *, repeats: int = 1, concurrency: int = 4,
             budget: float | None = None, name: str | None = None, store: Any = None, limiter: Any = None,
             executor: Any = None, timeout: Any = None, cassettes: str | os.PathLike | None = None,
             record: str = "once", workdir: str | os.PathLike | None = None, keep_workspaces: bool = False,
             progress: bool = True, on_result: Callable[[dict], Any] | None = None, wait: bool = True,
             **dataset_options: Any) -> Any:
    """Run every item of ``dataset`` on every agent ``repeats`` times, score each run, and return
    an :class:`EvalResult` (``.frame``, ``.summary``, ``.compare(baseline=...)``, ``.matrix()``).

    Args:
        dataset: a :class:`Dataset`, a list (prompts or dicts), a pandas/polars DataFrame, or a
            ``.jsonl`` / ``.csv`` path; ``dataset_options`` (``input=``, ``expected=``,
            ``workspace=``, ``id=``) build it.
        agents: provider names, dicts or :class:`Agent` (a list, or ``{name: spec}``).
        scorers: scorers (``asm_nb.evaluation.scorers``), ``@asm_nb.scorer`` functions or spec dicts.
        repeats: runs per item and agent. ``concurrency``: runs at a time (all agents together).
        budget: USD; once the eval's new runs have cost that much, no new run starts (the rest
            are ``skipped`` with ``budget_exceeded`` and run on a later call).
        name: the eval's name: results are stored under it and a re-run resumes (default: a
            name derived from the dataset, agents and scorers).
        store: path/URL or store (default store). With ``executor`` it must be a path or URL.
        executor: a ``concurrent.futures`` executor or a Dask client: runs go through
            :func:`run_eval_item` there (agents must be provider names; scoring stays here).
        cassettes: a folder: record each run as a cassette and replay it later (``record``:
            ``"once"`` default, ``"none"`` replay only, ``"all"`` re-record).
        workdir: where workspace copies go (default a temporary folder); ``keep_workspaces``
            keeps them (their path is in the frame's ``workspace`` column).
        wait: False returns the :class:`EvalRun` handle at once.
    """
    from .. import api
    from ..runtime import loop
    from ..runtime.batch import _Progress, default_limiter

    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise AsmError("validation_error", f"repeats must be a positive integer, got {repeats!r}")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise AsmError("validation_error", f"concurrency must be a positive integer, got {concurrency!r}")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget < 0):
        raise AsmError("validation_error", f"budget must be a non-negative number of USD, got {budget!r}")
    if record not in ("once", "none", "all"):
        raise AsmError("validation_error", f"record must be once, none or all, got {record!r}")
    ds = as_dataset(dataset, **dataset_options)
    agent_list = as_agents(agents)
    needs_cwd = any(item.workspace for item in ds)
    for a in agent_list:
        check_instance_agent(a, needs_cwd=needs_cwd)
    scorer_list = as_scorers(scorers)
    if name is None:
        name = "eval-" + canonical_hash({"dataset": ds.hash, "agents": [a.hash for a in agent_list],
                                         "scorers": [s.name for s in scorer_list]})[:10]
    if executor is not None:
        if not isinstance(store, (str, os.PathLike)) or str(store).startswith("memory"):
            raise AsmError("validation_error", "with an executor, store must be a path or URL the workers can open")
        if any(not isinstance(a.provider, str) for a in agent_list):
            raise AsmError("validation_error", "with an executor, agents must name a registered provider")
    the_store = api.resolve_store(store)
    tasks = [_Task(item, agent, r) for item in ds for r in range(repeats) for agent in agent_list]
    handle = EvalRun(name=name, tasks=tasks, scorers=scorer_list, agents=agent_list, dataset=ds, store=the_store)
    handle._store_url = os.fspath(store) if executor is not None else None  # type: ignore[attr-defined]
    done = _done_runs(the_store, name)
    todo = []
    for t in tasks:
        run = done.get(t.key)
        if run is None:
            todo.append(t)
            continue
        scores = [Score.from_dict(d) for d in (run.metadata["eval"].get("scores") or [])]
        handle.rows[t.key] = _row(name, t, run, scores, None, resumed=True)
    prog = _Progress(len(todo), progress and bool(todo), desc=f"eval {name}")
    wd = os.fspath(workdir) if workdir is not None else tempfile.mkdtemp(prefix="asm-eval-")
    lim = limiter if limiter is not None else default_limiter()

    async def main() -> None:
        try:
            if todo:
                await _run_tasks(handle, todo, store=the_store, concurrency=concurrency, limiter=lim, budget=budget,
                                 timeout=timeout, workdir=wd, keep_workspaces=keep_workspaces,
                                 cassettes=os.fspath(cassettes) if cassettes is not None else None, record=record,
                                 executor=executor, progress=prog, on_result=on_result)
        finally:
            prog.close()
            if workdir is None and not keep_workspaces:
                shutil.rmtree(wd, ignore_errors=True)

    handle._future = loop.submit(main())
    if not wait:
        return handle
    return handle.result()


# ---------------------------------------------------------------------------------------------- results
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         12: 2.179, 15: 2.131, 20: 2.086, 25: 2.060, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}


def _t975(df: int) -> float:
    if df <= 0:
        return float("nan")
    keys = sorted(_T975)
    for k in keys:
        if df <= k:
            return _T975[k]
    return 1.960


def mean_ci(values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, low, high): the 95% t interval of the mean (NaN bounds for fewer than 2 values)."""
    vals = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return (float("nan"),) * 3  # type: ignore[return-value]
    m = sum(vals) / len(vals)
    if len(vals) < 2:
        return m, float("nan"), float("nan")
    sd = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1))
    half = _t975(len(vals) - 1) * sd / math.sqrt(len(vals))
    return m, m - half, m + half


def _pct(values: Sequence[float], q: float) -> float | None:
    vals = sorted(float(v) for v in values if v is not None)
    if not vals:
        return None
    k = (len(vals) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return vals[lo] + (vals[hi] - vals[lo]) * (k - lo)


@dataclass
class EvalResult:
    """The outcome of :func:`evaluate`: one row per item x agent x repeat."""

    name: str
    rows: list
    agents: list
    scorers: list
    store: Any = None
    stopped: str | None = None
    spent_usd: float = 0.0

    @property
    def frame(self) -> Any:
        """pandas DataFrame: item, agent, repeat, input, expected, output, status, passed, score
        (mean of the scorers' values), ``score_<name>`` / ``pass_<name>`` / ``why_<name>`` per
        scorer, tokens, cost, duration, diff stats, run and session ids."""
        import pandas as pd

        cols = list(BASE_COLUMNS)
        for s in self.scorers:
            cols += [f"score_{s}", f"pass_{s}", f"why_{s}"]
        return pd.DataFrame([{c: r.get(c) for c in cols} for r in self.rows], columns=cols)

    def _agent_rows(self, agent: str) -> list[dict]:
        return [r for r in self.rows if r["agent"] == agent and r["status"] != "skipped"]

    @property
    def summary(self) -> Any:
        """Per agent: runs, mean score with its 95% confidence interval, pass rate, errors, total
        and per-item cost, p50/p95 duration."""
        import pandas as pd

        out = []
        for a in self.agents:
            rows = self._agent_rows(a.name)
            m, lo, hi = mean_ci([r["score"] for r in rows if r.get("score") is not None])
            costs = [r["cost_usd"] for r in rows if isinstance(r.get("cost_usd"), (int, float))]
            items = {r["item_id"] for r in rows}
            out.append({"agent": a.name, "runs": len(rows), "items": len(items),
                        "skipped": sum(1 for r in self.rows if r["agent"] == a.name and r["status"] == "skipped"),
                        "mean_score": m, "ci_low": lo, "ci_high": hi,
                        "pass_rate": (sum(1 for r in rows if r["passed"]) / len(rows)) if rows else float("nan"),
                        "errors": sum(1 for r in rows if r["status"] != "completed"),
                        "cost_usd": sum(costs) if costs else None,
                        "cost_per_item": (sum(costs) / len(items)) if costs and items else None,
                        "p50_duration_ms": _pct([r.get("duration_ms") for r in rows], 0.5),
                        "p95_duration_ms": _pct([r.get("duration_ms") for r in rows], 0.95)})
        return pd.DataFrame(out)

    def item_scores(self) -> dict[tuple[str, str], dict]:
        """``{(item_id, agent): {"score": mean over repeats, "passed": all repeats passed}}``."""
        acc: dict[tuple[str, str], list[dict]] = {}
        for r in self.rows:
            if r["status"] == "skipped":
                continue
            acc.setdefault((r["item_id"], r["agent"]), []).append(r)
        out = {}
        for k, rs in acc.items():
            vals = [r["score"] for r in rs if r.get("score") is not None]
            out[k] = {"score": sum(vals) / len(vals) if vals else None, "passed": all(r["passed"] for r in rs),
                      "rows": rs}
        return out

    def disagreements(self) -> list[str]:
        """Item ids where the agents do not all pass or all fail."""
        by_item: dict[str, set] = {}
        for (item, _agent), v in self.item_scores().items():
            by_item.setdefault(item, set()).add(v["passed"])
        return [i for i, s in by_item.items() if len(s) > 1]

    def compare(self, baseline: str | None = None, *, tolerance: float = 1e-9) -> "EvalComparison":
        """Per-item score deltas of each agent against ``baseline`` (default the first agent), and
        wins / losses / ties."""
        names = [a.name for a in self.agents]
        base = baseline or names[0]
        if base not in names:
            raise AsmError("validation_error", f"baseline {base!r} is not an agent of this eval ({names})")
        scores = self.item_scores()
        items = list(dict.fromkeys(r["item_id"] for r in self.rows))
        rows = []
        for a in names:
            if a == base:
                continue
            for i in items:
                b, x = scores.get((i, base)), scores.get((i, a))
                if b is None or x is None or b["score"] is None or x["score"] is None:
                    continue
                d = x["score"] - b["score"]
                rows.append({"item_id": i, "agent": a, "baseline": base, "baseline_score": b["score"],
                             "score": x["score"], "delta": d, "baseline_passed": b["passed"], "passed": x["passed"],
                             "outcome": "win" if d > tolerance else "loss" if d < -tolerance else "tie"})
        return EvalComparison(baseline=base, rows=rows, agents=[n for n in names if n != base])

    def matrix(self, *, only_disagreements: bool = False, max_items: int = 200, excerpt_chars: int = 160,
               deterministic: bool = False) -> Any:
        """The matrix view (rows = items, columns = agents): output excerpt, score badges, cost;
        each cell opens its run card; a checkbox filters to disagreements. Static HTML (it stays
        in a saved notebook); needs ``asm_nb.notebook``. ``deterministic=True``: run cards
        without ids and timings (for notebooks checked by nbval)."""
        from . import _views

        return _views.matrix(self, only_disagreements=only_disagreements, max_items=max_items,
                             excerpt_chars=excerpt_chars, deterministic=deterministic)

    def thresholds(self, **limits: float) -> list[str]:
        """Failed thresholds, one message each (empty: all met). Limits per agent:
        ``pass_rate`` / ``mean_score`` (minimums), ``max_cost_usd`` (maximum)."""
        failures = []
        summ = self.summary.to_dict("records")
        for row in summ:
            for key, limit in limits.items():
                if limit is None:
                    continue
                if key in ("pass_rate", "mean_score"):
                    v = row[key]
                    if v is None or (isinstance(v, float) and math.isnan(v)) or v < float(limit):
                        failures.append(f"{row['agent']}: {key} {v:.3f} < {float(limit):g}")
                elif key == "max_cost_usd":
                    v = row["cost_usd"] or 0.0
                    if v > float(limit):
                        failures.append(f"{row['agent']}: cost ${v:.4f} > ${float(limit):g}")
                else:
                    raise AsmError("validation_error", f"unknown threshold {key!r} (pass_rate, mean_score, "
                                                       "max_cost_usd)")
        if self.stopped == "budget":
            failures.append(f"eval stopped by its budget after ${self.spent_usd:.4f}")
        return failures

    def __repr__(self) -> str:
        n = len(self.rows)
        done = sum(1 for r in self.rows if r["status"] != "skipped")
        stop = f", stopped: {self.stopped}" if self.stopped else ""
        return f"<EvalResult {self.name!r}: {done}/{n} runs, agents {[a.name for a in self.agents]}{stop}>"

    def _repr_html_(self) -> str:
        import html

        cols = ["agent", "runs", "skipped", "mean_score", "ci_low", "ci_high", "pass_rate", "errors", "cost_usd"]
        stop = f" (stopped: {html.escape(self.stopped)})" if self.stopped else ""
        return (f"<p><b>eval {html.escape(self.name)}</b>{stop}</p>"  # no timings: a saved notebook stays stable
                + self.summary[cols].to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep=""))


@dataclass
class EvalComparison:
    """Per-item deltas against a baseline agent: ``frame`` and ``summary`` (wins/losses/ties)."""

    baseline: str
    rows: list
    agents: list

    @property
    def frame(self) -> Any:
        import pandas as pd

        cols = ["item_id", "agent", "baseline", "baseline_score", "score", "delta", "baseline_passed", "passed",
                "outcome"]
        return pd.DataFrame(self.rows, columns=cols)

    @property
    def summary(self) -> Any:
        import pandas as pd

        out = []
        for a in self.agents:
            rs = [r for r in self.rows if r["agent"] == a]
            out.append({"agent": a, "baseline": self.baseline, "items": len(rs),
                        "wins": sum(r["outcome"] == "win" for r in rs),
                        "losses": sum(r["outcome"] == "loss" for r in rs),
                        "ties": sum(r["outcome"] == "tie" for r in rs),
                        "mean_delta": (sum(r["delta"] for r in rs) / len(rs)) if rs else float("nan")})
        return pd.DataFrame(out)

    def __repr__(self) -> str:
        return f"<EvalComparison vs {self.baseline}>\n{self.summary.to_string(index=False)}"

    def _repr_html_(self) -> str:
        return self.summary.to_html(index=False, float_format=lambda v: f"{v:.3f}")


def load_eval(name: str, store: Any = None) -> EvalResult:
    """The stored results of eval ``name`` (every scored run, latest per item x agent x repeat), no
    dataset needed: for a kernel restarted after the eval ran."""
    from .. import api
    from .dataset import Item as _Item

    st = api.resolve_store(store)
    done = _done_runs(st, name)
    if not done:
        raise AsmError("not_found", f"no stored results for eval {name!r}")
    agents: dict[str, Agent] = {}
    rows = []
    scorer_names: list[str] = []
    for (ih, ah, rep), run in sorted(done.items(), key=lambda kv: (kv[1].started_at, kv[1].id)):
        ev = run.metadata["eval"]
        agent = agents.get(ev["agent"]) or agents.setdefault(ev["agent"], Agent(name=ev["agent"], provider=run.provider))
        item = _Item(id=str(ev.get("item_id")), input=run.input, expected=ev.get("expected"))
        scores = [Score.from_dict(d) for d in ev.get("scores") or []]
        for s in scores:
            if s.name not in scorer_names:
                scorer_names.append(s.name)
        row = _row(name, _Task(item, agent, rep), run, scores, None, resumed=True)
        row["item_hash"], row["agent_hash"] = ih, ah
        rows.append(row)
    return EvalResult(name=name, rows=rows, agents=list(agents.values()), scorers=scorer_names, store=st)
