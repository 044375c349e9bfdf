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
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..core.errors import AsmError
from .agents import Agent, as_agents
from .dataset import as_dataset, canonical_hash
from .scorers import Sample, Score, as_scorers
# the run's adapter, its rows and its results live in eval_adapter / eval_rows / results; the
# public names are re-exported here (``evaluation.runner`` stays their import path)
from .eval_adapter import _copy_fixture, _EvalAdapter, _safe
from .eval_adapter import check_instance_agent as check_instance_agent
from .eval_adapter import instance_options as instance_options
from .eval_rows import BASE_COLUMNS as BASE_COLUMNS
from .eval_rows import (_done_runs, _eval_meta, _jsonable, _redacted, _result_from_events, _row, _score_sample,
                        _ScoreWriter, _skipped_row, _Task)
from .results import EvalComparison as EvalComparison
from .results import EvalResult as EvalResult
from .results import load_eval as load_eval
from .results import mean_ci as mean_ci

log = logging.getLogger(__name__)

__all__ = ["evaluate", "EvalRun", "EvalResult", "EvalComparison", "run_eval_item", "load_eval"]


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

@dataclass(eq=False)
class _Tasks:
    """What every task of one :func:`_run_tasks` shares."""

    handle: EvalRun
    store: Any
    store_url: str | None
    servers: dict[str, Any]
    sessions: dict[str, str]
    budget: float | None
    timeout: Any
    workdir: str
    keep_workspaces: bool
    cassettes: str | None
    record: str
    executor: Any
    progress: Any
    on_result: Callable | None
    writer: _ScoreWriter


async def _open_sessions(handle: EvalRun, todo: list[_Task], *, store: Any, concurrency: int, limiter: Any,
                         timeout: Any, cassettes: str | None, record: str, executor: Any
                         ) -> tuple[dict[str, Any], dict[str, str]]:
    """One session per agent with work to do: a session server (local runs) or a started session
    the executor's workers append to. Returns ``(servers, sessions)`` by agent name."""
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
    return servers, sessions


async def _run_task(c: _Tasks, t: _Task) -> tuple[Any, AsmError | None, list | None, str | None, dict] | None:
    """Run one task (caller holds the run semaphore): its workspace copy, the run on the agent's
    session server or in the executor, the stored run. ``(run, error, events, workspace, eval
    metadata)``, or None when it was not run (cancelled, or the budget is spent: a skipped row)."""
    from ..runtime.manager import _store as store_call  # inline for inline-safe stores, else a thread

    handle, name, budget = c.handle, c.handle.name, c.budget
    if handle._cancelled:
        return None
    if budget is not None and handle.spent_usd >= budget:
        handle.stopped = handle.stopped or "budget"
        handle.rows[t.key] = _skipped_row(name, t, "budget_exceeded",
                                          f"eval budget ${budget:g} spent (${handle.spent_usd:.4f})")
        c.progress.finished("cancelled", was_running=False)
        return None
    ws = None
    if t.item.workspace:
        dest = os.path.join(c.workdir, _safe(t.agent.name), f"{_safe(t.item.id)}-r{t.repeat}")
        ws = await asyncio.to_thread(_copy_fixture, t.item.workspace, dest)
    meta = _eval_meta(name, t, ws)
    c.progress.started()
    err: AsmError | None = None
    run_id: str | None = None
    events: list | None = None  # the run's events as it emitted them (None: read the store)
    try:
        if c.executor is None:
            server = c.servers[t.agent.name]
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
            payload = {"store": str(c.store_url), "session_id": c.sessions[t.agent.name],
                       "agent": t.agent.to_dict() | {"policy": t.agent.policy}, "input": t.item.input,
                       "workspace": ws, "metadata": {"eval": meta}, "timeout": c.timeout,
                       "cassettes": c.cassettes, "record": c.record}
            fut = c.executor.submit(run_eval_item, payload)
            out = await asyncio.to_thread(fut.result)
            run_id = out.get("run_id")
            if out.get("error"):
                err = AsmError(out["error"]["code"], out["error"]["message"])
        run = await store_call(c.store, "get_run", run_id) if run_id else None
    except AsmError as e:
        err, run = e, None
    if run is not None and isinstance(run.cost_usd, (int, float)):
        handle.spent_usd += float(run.cost_usd)
    return run, err, events, ws, meta


async def _score_task(c: _Tasks, t: _Task, run: Any, err: AsmError | None, events: list | None, ws: str | None,
                      meta: dict) -> None:
    """Score a finished run (caller holds the scoring semaphore), keep the scores on the run, record
    its row, remove its workspace copy and tell ``on_result``."""
    handle, store = c.handle, c.store
    scores: list[Score] = []
    if run is not None:
        from ..runtime.result import result_from_store as _result_from_store
        from ..workspace.rollback import workspace_record

        finished = run  # the closure reads this, not the reassigned ``run``

        def score() -> list[Score]:
            result = _result_from_events(store, finished, events) if events is not None else None
            if result is None:
                result = _result_from_store(store, finished)
            result.workspace = workspace_record(finished)
            sample = Sample(item=t.item, agent=t.agent, repeat=t.repeat, result=result, workspace=ws,
                            store=store)
            return _score_sample(handle.scorers, sample)

        if all(getattr(sc_, "inline", False) for sc_ in handle.scorers):
            scores = score()  # pure-Python checks on data in memory: no thread hop
        else:
            scores = await asyncio.to_thread(score)
        ev = {**meta, "scored": True, "scores": _redacted([s.to_dict() for s in scores])}
        updated = run.replace(metadata={**(run.metadata or {}), "eval": ev})
        await c.writer.put(updated)
        run = updated
    row = _row(handle.name, t, run, scores, ws if c.keep_workspaces else None, resumed=False, error=err)
    handle.rows[t.key] = row
    c.progress.finished(row["status"])
    if ws and not c.keep_workspaces:
        await asyncio.to_thread(shutil.rmtree, ws, True)
    if c.on_result is not None:
        try:
            c.on_result(row)
        except Exception:
            log.exception("evaluate on_result raised (ignored)")


async def _run_tasks(handle: EvalRun, todo: list[_Task], *, store: Any, concurrency: int, limiter: Any,
                     budget: float | None, timeout: Any, workdir: str, keep_workspaces: bool, cassettes: str | None,
                     record: str, executor: Any, progress: Any, on_result: Callable | None) -> None:
    """Run, score and record every task: at most ``concurrency`` runs at a time over all agents;
    scoring a finished run overlaps the next runs."""
    from ..runtime.oneshot import close_session as _close_session

    servers, sessions = await _open_sessions(handle, todo, store=store, concurrency=concurrency, limiter=limiter,
                                             timeout=timeout, cassettes=cassettes, record=record, executor=executor)
    sem = asyncio.Semaphore(concurrency)
    score_sem = asyncio.Semaphore(concurrency)
    c = _Tasks(handle=handle, store=store, store_url=getattr(handle, "_store_url", None), servers=servers,
               sessions=sessions, budget=budget, timeout=timeout, workdir=workdir, keep_workspaces=keep_workspaces,
               cassettes=cassettes, record=record, executor=executor, progress=progress, on_result=on_result,
               writer=_ScoreWriter(store))

    async def one(t: _Task) -> None:
        async with sem:  # the run: at most ``concurrency`` at a time over all agents
            ran = await _run_task(c, t)
        if ran is None:
            return
        run, err, events, ws, meta = ran
        if handle._cancelled and (run is None or not run.is_terminal or run.status.value == "cancelled"):
            progress.finished("cancelled")
            return  # interrupted: not recorded as done, runs again on resume
        if run is not None and run.status.value == "cancelled" and err is not None and err.code == "cancelled":
            progress.finished("cancelled")
            return
        async with score_sem:  # scoring overlaps the next runs
            await _score_task(c, t, run, err, events, ws, meta)

    try:
        tasks = []
        for t in todo:
            tasks.append(asyncio.ensure_future(one(t)))
        await asyncio.gather(*tasks)
    finally:
        await c.writer.close()
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
