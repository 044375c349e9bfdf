"""Batch runs on one machine: many prompts through a SessionServer and a ConcurrencyLimiter.

``asm_nb.batch(prompts_or_rows, provider=..., concurrency=8)`` runs every prompt as one run of
a *batch session* (no continuation between them), at most ``concurrency`` at a time, shows one
progress bar (``tqdm.auto``: a widget in a notebook, text elsewhere), keeps going when a run
fails, and returns a DataFrame: the input rows joined with one result row each (``run_id``,
``status``, ``output``, ``error_code``, ``error_message``, tokens, ``cost_usd``,
``duration_ms``, ...). Input: a list of prompts, a list of dicts, or a pandas / polars
DataFrame; ``prompt=`` names the column holding the prompt or is a ``{column}`` template.

Scale-out hook: ``executor=`` takes any object with ``submit(fn, item) -> future`` (a
``concurrent.futures`` executor, or a Dask ``distributed.Client``). Each item is then run by the
picklable top-level ``run_batch_item(item_dict) -> row_dict``, which opens the store by its
URL/path in the worker, so the store must be shared (a LocalStore folder on a shared disk, or
an SQL URL).

>>> df = batch(["echo a", "echo b"], provider="shell", store="memory://", progress=False)  # doctest: +SKIP
>>> list(df["output"])                                                                      # doctest: +SKIP
['a\\n', 'b\\n']
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import string
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from ..core.errors import AsmError
from .options import check_run_options, public_options
from ..core.serialization import new_id

log = logging.getLogger(__name__)

__all__ = ["batch", "abatch", "BatchRun", "run_batch_item", "build_items", "RESULT_COLUMNS", "default_limiter"]

RESULT_COLUMNS = ["prompt", "run_id", "session_id", "status", "output", "error_code", "error_message",
                  "input_tokens", "output_tokens", "cost_usd", "duration_ms", "provider", "model"]

_default_limiter = None
_default_limiter_lock = threading.Lock()


def default_limiter() -> Any:
    """The process-wide limiter batches share (config ``max_parallel_runs`` / ``_sessions``)."""
    global _default_limiter
    with _default_limiter_lock:
        if _default_limiter is None:
            from .limiter import ConcurrencyLimiter

            _default_limiter = ConcurrencyLimiter()
        return _default_limiter


# ------------------------------------------------------------------------------------------
# input rows → items


def _rows(prompts_or_rows: Any) -> tuple[list[dict[str, Any]], Any, str]:
    """(row dicts, the original frame or None, kind) for a list / pandas / polars input."""
    mod = type(prompts_or_rows).__module__
    if mod.startswith("pandas"):
        import pandas as pd

        if isinstance(prompts_or_rows, pd.Series):
            return [{"prompt": v} for v in prompts_or_rows.tolist()], prompts_or_rows.to_frame("prompt"), "pandas"
        return [dict(r) for r in prompts_or_rows.to_dict("records")], prompts_or_rows, "pandas"
    if mod.startswith("polars"):
        import polars as pl

        if isinstance(prompts_or_rows, pl.Series):
            return [{"prompt": v} for v in prompts_or_rows.to_list()], prompts_or_rows.to_frame("prompt"), "polars"
        return prompts_or_rows.to_dicts(), prompts_or_rows, "polars"
    if isinstance(prompts_or_rows, (str, bytes)) or not isinstance(prompts_or_rows, Iterable):
        raise AsmError("validation_error", "batch needs a list of prompts, a list of dicts or a DataFrame, "
                                           f"got {type(prompts_or_rows).__name__}")
    out = []
    for x in prompts_or_rows:
        if isinstance(x, Mapping):
            out.append(dict(x))
        elif isinstance(x, str):
            out.append({"prompt": x})
        else:
            raise AsmError("validation_error", f"batch items must be prompts (str) or dicts, got {x!r}")
    return out, None, "list"


def _prompt_of(row: Mapping[str, Any], prompt: Any) -> Any:
    if callable(prompt):
        return prompt(row)
    if isinstance(prompt, str) and "{" in prompt:
        fields = [f for _, f, _, _ in string.Formatter().parse(prompt) if f]
        missing = [f for f in fields if f.split(".")[0].split("[")[0] not in row]
        if missing:
            raise AsmError("validation_error", f"prompt template refers to missing column(s) {missing}; "
                                               f"row has {sorted(row)}")
        return prompt.format_map(row)
    if isinstance(prompt, str):
        if prompt not in row:
            raise AsmError("validation_error", f"prompt column {prompt!r} not in row {sorted(row)}")
        return row[prompt]
    if "prompt" in row:
        return row["prompt"]
    if len(row) == 1:
        return next(iter(row.values()))
    raise AsmError("validation_error", "say which column holds the prompt: prompt='column' or a '{column}' template")


def build_items(prompts_or_rows: Any, *, prompt: Any = None,
                row_options: Callable[[Any], Mapping[str, Any] | None] | str | None = None,
                base: Mapping[str, Any] | None = None) -> tuple[list[dict[str, Any]], Any, str]:
    """The picklable item dicts of a batch: ``{index, prompt, options, **base}``."""
    rows, frame, kind = _rows(prompts_or_rows)
    items = []
    for i, row in enumerate(rows):
        p = _prompt_of(row, prompt)
        if p is None or (isinstance(p, str) and not p.strip()):
            raise AsmError("validation_error", f"row {i} has an empty prompt")
        if callable(row_options):
            opts = dict(row_options(row) or {})
        elif isinstance(row_options, str):
            opts = dict(row.get(row_options) or {})
        elif row_options is None:
            opts = {}
        else:
            raise AsmError("validation_error", "row_options must be a callable(row) -> dict or a column name")
        items.append({**(base or {}), "index": i, "prompt": p, "options": opts})
    return items, frame, kind


# ------------------------------------------------------------------------------------------
# one item → one row


def _row_from_run(run: Any, prompt: Any, error: AsmError | None = None) -> dict[str, Any]:
    out = run.output or {}
    content = out.get("content")
    if content is not None and not isinstance(content, str):
        content = str(content)
    err = run.error or {}
    if error is not None and not err:
        err = {"code": error.code, "message": error.message}
    usage = run.token_usage or {}
    return {"prompt": prompt, "run_id": run.id, "session_id": run.session_id, "status": run.status.value,
            "output": content, "error_code": err.get("code"), "error_message": err.get("message"),
            "input_tokens": usage.get("input_tokens"), "output_tokens": usage.get("output_tokens"),
            "cost_usd": run.cost_usd, "duration_ms": run.duration_ms, "provider": run.provider,
            "model": (run.provider_metadata or {}).get("model")}


def _row_error(prompt: Any, error: BaseException, **ids: Any) -> dict[str, Any]:
    err = error if isinstance(error, AsmError) else AsmError.from_exception(error)
    row: dict[str, Any] = {c: None for c in RESULT_COLUMNS}
    row.update(prompt=prompt, status="cancelled" if err.code == "cancelled" else "failed", error_code=err.code,
               error_message=err.message, **ids)
    return row


def run_batch_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """Run one batch item and return its result row (the unit of work an executor ships).

    ``item``: ``index``, ``prompt``, ``provider`` (a registered name), ``adapter_options``,
    ``options`` (per-row adapter options), ``store`` (a path or URL: opened here, in the
    worker), ``session_id`` (the batch session), ``policy``, ``timeout``. Never raises for a
    failed run: the row says ``status`` failed with the error.
    """
    from ..stores import resolve_store
    from .oneshot import run_once

    prompt = item.get("prompt")
    try:
        store = resolve_store(item["store"])
        opts = {**(item.get("adapter_options") or {}), **(item.get("options") or {})}
        kwargs: dict[str, Any] = {"store": store, "continuation": False}
        if item.get("session_id"):
            kwargs["session"] = item["session_id"]
        if item.get("policy") is not None:
            kwargs["policy"] = item["policy"]
        if item.get("timeout") is not None:
            kwargs["timeout"] = item["timeout"]
        result = run_once(prompt, provider=item.get("provider"), **kwargs, options=opts)
        row = _row_from_run(store.get_run(result.run_id), prompt, result.error)
    except Exception as exc:  # a caller mistake or a broken store: reported in the row
        row = _row_error(prompt, exc, session_id=item.get("session_id"))
    row["index"] = item.get("index")
    return row


# ------------------------------------------------------------------------------------------
# progress


class _Progress:
    def __init__(self, total: int, enabled: bool, desc: str) -> None:
        self.bar = None
        self.counts = {"completed": 0, "failed": 0, "cancelled": 0, "running": 0}
        if enabled:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, desc=desc, unit="run")
            except Exception:  # tqdm missing or no display: counts only
                self.bar = None

    def started(self) -> None:
        self.counts["running"] += 1
        self._post()

    def finished(self, status: str, was_running: bool = True) -> None:
        if was_running and self.counts["running"] > 0:
            self.counts["running"] -= 1
        key = status if status in ("completed", "cancelled") else "failed"
        self.counts[key] += 1
        if self.bar is not None:
            self.bar.update(1)
        self._post()

    def _post(self) -> None:
        if self.bar is not None:
            self.bar.set_postfix({"ok": self.counts["completed"], "failed": self.counts["failed"],
                                  "running": self.counts["running"]}, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ------------------------------------------------------------------------------------------
# the batch


@dataclass(eq=False)
class BatchRun:
    """A running batch: ``status()`` per item, ``cancel()`` the whole batch, ``result()`` the frame."""

    items: list[dict[str, Any]]
    frame: Any
    kind: str
    backend: str
    rows: dict[int, dict[str, Any]] = field(default_factory=dict)
    states: dict[int, str] = field(default_factory=dict)  # index -> queued/running/completed/failed/cancelled
    run_ids: dict[int, str | None] = field(default_factory=dict)
    session_id: str | None = None
    server: Any = None
    _future: Any = None
    _executor_futures: list = field(default_factory=list)
    _cancelled: bool = False
    started_at: float = field(default_factory=time.monotonic)

    def status(self) -> list[dict[str, Any]]:
        """One ``{index, prompt, run_id, state}`` per item."""
        return [{"index": it["index"], "prompt": it["prompt"], "run_id": self.run_ids.get(it["index"]),
                 "state": self.states.get(it["index"], "queued")} for it in self.items]

    def summary(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for it in self.items:
            s = self.states.get(it["index"], "queued")
            out[s] = out.get(s, 0) + 1
        return out

    @property
    def done(self) -> bool:
        return self._future is not None and self._future.done()

    def cancel(self) -> None:
        """Cancel every queued and running item; finished rows are kept."""
        self._cancelled = True
        for f in self._executor_futures:
            try:
                f.cancel()
            except Exception:
                pass
        if self.server is not None:
            from . import loop

            fut = loop.submit(self.server.aclose(cancel_in_flight=True))
            try:
                fut.result(timeout=30)
            except Exception:
                log.debug("batch cancel did not finish cleanly", exc_info=True)

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the batch (Ctrl-C cancels it) and return the result frame."""
        from . import loop

        if timeout is None:
            loop.wait(self._future, on_interrupt=self.cancel)
        else:
            self._future.result(timeout=timeout)
        return self.to_frame()

    def to_frame(self) -> Any:
        """Input rows joined with their result rows (so far)."""
        rows = []
        for it in self.items:
            r: dict[str, Any] | None = self.rows.get(it["index"])
            if r is None:
                r = {c: None for c in RESULT_COLUMNS}
                r.update(prompt=it["prompt"], status=self.states.get(it["index"], "queued"),
                         run_id=self.run_ids.get(it["index"]), session_id=self.session_id)
            rows.append({c: r.get(c) for c in RESULT_COLUMNS})
        return _join(self.frame, self.kind, rows, self.backend, self.items)


def _join(frame: Any, kind: str, rows: list[dict[str, Any]], backend: str, items: list[dict]) -> Any:
    if backend == "records":
        return rows
    import pandas as pd

    results = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    if kind == "pandas":
        base = frame.reset_index(drop=True) if not frame.index.equals(pd.RangeIndex(len(frame))) else frame
        results.index = base.index
        if "prompt" in base.columns:
            results = results.drop(columns=["prompt"])
        out = base.join(results, rsuffix="_result")
        if base is not frame:
            out.index = frame.index
    elif kind == "polars":
        base = frame.to_pandas()
        out = base.join(results.drop(columns=["prompt"]) if "prompt" in base.columns else results, rsuffix="_result")
    else:
        inputs = pd.DataFrame([{k: v for k, v in _original(it).items()} for it in items])
        if "prompt" in inputs.columns:
            inputs = inputs.drop(columns=["prompt"])
        out = inputs.join(results, rsuffix="_result") if len(inputs.columns) else results
    if backend == "polars":
        import polars as pl

        return pl.from_pandas(out)
    return out


def _original(item: Mapping[str, Any]) -> dict[str, Any]:
    return dict(item.get("row") or {})


async def _run_local(handle: BatchRun, *, store: Any, adapter: Any, concurrency: int, limiter: Any,
                     session: Any, policy: Any, timeout: Any, agent_id: str | None, progress: _Progress,
                     on_result: Callable | None) -> None:
    from .server import SessionServer

    items = handle.items
    index_of: dict[str, int] = {}

    def on_event(ev: Mapping[str, Any]) -> None:
        if ev.get("type") == "run_started":
            i = index_of.get(ev.get("run_id"))  # type: ignore[arg-type]
            if i is not None and handle.states.get(i) == "queued":
                handle.states[i] = "running"
                progress.started()

    session_opts = None
    session_id = None
    if isinstance(session, str) and session:
        from .oneshot import resolve_session

        s, _ = await resolve_session(store, adapter, session, agent_id=agent_id, metadata={"batch": True},
                                      tags=None, context=None)
        session_id = s.id
    else:
        session_opts = {"agent_id": agent_id or adapter.name,
                        "metadata": {"name": f"batch-{new_id('b')[2:10]}", "batch": True, "batch_size": len(items)}}
    default_opts: dict[str, Any] = {"continuation": False, "event_callback": on_event}
    if policy is not None:
        default_opts["policy"] = policy
    if timeout is not None:
        from .options import timeout_ms

        default_opts["timeout"] = timeout_ms(timeout)
    server = await SessionServer.start(store=store, adapter=adapter, session_id=session_id, session_opts=session_opts,
                                       max_concurrent_runs=concurrency, max_queued_runs=max(len(items), 1),
                                       limiter=limiter, limiter_wait=True, default_execute_opts=default_opts)
    handle.server, handle.session_id = server, server.session_id
    try:
        from .oneshot import close_session as _close_session

        async def one(item: dict[str, Any]) -> None:
            i = item["index"]
            if handle._cancelled or server.closed:
                handle.states[i] = "cancelled"
                handle.rows[i] = _row_error(item["prompt"], AsmError("cancelled", "Batch cancelled"),
                                            session_id=server.session_id)
                progress.finished("cancelled", was_running=False)
                return
            opts = {"adapter_opts": item["options"]} if item["options"] else {}
            run_id = await server.submit_run(item["prompt"], **opts)
            index_of[run_id] = i
            handle.run_ids[i] = run_id
            try:
                await server.await_run(run_id, timeout_ms=10 ** 12)
                err = None
            except AsmError as e:
                err = e
            run = await _get_run(store, run_id)
            row = _row_from_run(run, item["prompt"], err)
            if err is not None and err.code == "cancelled":
                row["status"] = "cancelled"
            handle.rows[i] = row
            was_running = handle.states.get(i) == "running"
            handle.states[i] = row["status"]
            progress.finished(row["status"], was_running=was_running)
            _deliver(on_result, row)

        # submit in input order (FIFO start order = input order); await them together
        tasks = []
        for item in items:
            tasks.append(asyncio.ensure_future(one(item)))
            await asyncio.sleep(0)
        await asyncio.gather(*tasks, return_exceptions=False)
        if session_opts is not None:
            await _close_session(store, server.session_id, None)
    finally:
        await server.aclose(cancel_in_flight=True)


async def _get_run(store: Any, run_id: str) -> Any:
    from ..persistence.store_call import call_store as _store

    return await _store(store, "get_run", run_id)


def _is_dask_client(executor: Any) -> bool:
    return type(executor).__name__ == "Client" and type(executor).__module__.startswith("distributed")


def _run_executor(handle: BatchRun, executor: Any, progress: _Progress, on_result: Callable | None) -> None:
    kw = {"pure": False} if _is_dask_client(executor) else {}
    futures = []
    for item in handle.items:
        f = executor.submit(run_batch_item, item, **kw)
        futures.append((item, f))
        handle.states[item["index"]] = "running"
        progress.started()
    handle._executor_futures = [f for _, f in futures]
    pending = dict(enumerate(futures))
    while pending:
        progressed = False
        for k, (item, f) in list(pending.items()):
            if not f.done():
                continue
            progressed = True
            del pending[k]
            try:
                row = f.result()
            except BaseException as exc:  # cancelled future or worker crash
                if isinstance(exc, KeyboardInterrupt):
                    raise
                row = _row_error(item["prompt"], AsmError("cancelled", "Batch cancelled")
                                 if handle._cancelled else exc, session_id=handle.session_id)
                row["index"] = item["index"]
            _record_row(handle, item["index"], row, progress, on_result)
        if not progressed:
            time.sleep(0.02)


def _record_row(handle: BatchRun, i: int, row: dict, progress: _Progress, on_result: Callable | None) -> None:
    """An executor's finished row ``i``: into ``handle`` (row, run id, state) and ``progress``,
    then to ``on_result`` (the thread and Dask executor paths)."""
    handle.rows[i] = row
    handle.run_ids[i] = row.get("run_id")
    handle.states[i] = row["status"]
    progress.finished(row["status"])
    _deliver(on_result, row)


def _deliver(on_result: Callable | None, row: dict) -> None:
    """Hand a finished row to the caller's ``on_result``; what it raises is logged and ignored."""
    if on_result is not None:
        try:
            on_result(row)
        except Exception:
            log.exception("batch on_result raised (ignored)")


@public_options
def batch(prompts_or_rows: Any, provider: Any = None, *, prompt: Any = None, concurrency: int = 8,
          policy: Any = None, store: Any = None, session: str | None = None, executor: Any = None,
          limiter: Any = None, row_options: Any = None, timeout: float | None = None, progress: bool = True,
          backend: str = "pandas", agent_id: str | None = None, on_result: Callable[[dict], Any] | None = None,
          wait: bool = True, model: str | None = None, options: Mapping[str, Any] | None = None) -> Any:
    """Run many prompts and return one result row per input row.

    Args:
        prompts_or_rows: a list of prompts, a list of dicts, or a pandas/polars DataFrame/Series.
        provider: a registered provider name (or, without ``executor``, an adapter instance).
        prompt: the prompt column, a ``"... {column} ..."`` template, or ``callable(row)``
            (default: the ``prompt`` column, or the only column).
        concurrency: runs at a time (the batch server's slots).
        policy: a ``Policy`` enforced on every run; ``timeout``: seconds per run (None: no limit).
        store: path/URL or store (default store); with ``executor`` it must be a path or URL.
        session: a session name/id to run in (default: a new ``batch-…`` session).
        executor: ``concurrent.futures`` executor or Dask client; items go through
            ``run_batch_item`` there instead of the local server.
        limiter: a ``ConcurrencyLimiter`` (default: the process-wide one): runs wait for a slot.
        row_options: ``callable(row) -> dict`` or a column of dicts: per-row adapter options.
        progress: show a ``tqdm.auto`` progress bar. ``backend``: pandas, polars or records.
        on_result: called with each result row as it finishes.
        wait: False → return the ``BatchRun`` handle at once (``.status()``, ``.cancel()``,
            ``.result()``).
        model: the model for every run. options: adapter options (``cwd``, ``cassette``, ...).

    A failing run never stops the batch: its row has ``status`` failed and the error. Ctrl-C
    (the notebook's stop button) cancels the whole batch and re-raises.
    """
    from ..stores import resolve_store
    from . import loop
    from .oneshot import resolve_adapter

    adapter_options = check_run_options(timeout=timeout, options=options)
    if model is not None:
        adapter_options["model"] = model
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise AsmError("validation_error", f"concurrency must be a positive integer, got: {concurrency!r}")
    if backend not in ("pandas", "polars", "records"):
        raise AsmError("validation_error", f"backend must be pandas, polars or records, got: {backend!r}")
    items, frame, kind = build_items(prompts_or_rows, prompt=prompt, row_options=row_options)
    if kind == "list":
        rows, _, _ = _rows(prompts_or_rows)
        for it, row in zip(items, rows):
            it["row"] = row
    handle = BatchRun(items=items, frame=frame, kind=kind, backend=backend)
    for it in items:
        handle.states[it["index"]] = "queued"
    prog = _Progress(len(items), progress and bool(items), desc=f"batch ({provider if isinstance(provider, str) else 'runs'})")

    if executor is not None:
        if not isinstance(store, str) and not hasattr(store, "__fspath__"):
            raise AsmError("validation_error", "with an executor, store must be a path or URL the workers can open")
        if not isinstance(provider, str):
            raise AsmError("validation_error", "with an executor, provider must be a registered provider name")
        if str(store).strip() in ("memory://", "memory"):
            raise AsmError("validation_error", "memory:// stores cannot be shared with executor workers")
        the_store = resolve_store(str(store))
        adapter = resolve_adapter(provider, **adapter_options)
        from . import manager

        async def make_session() -> str:
            if session:
                from .oneshot import resolve_session

                s, _ = await resolve_session(the_store, adapter, session, agent_id=agent_id,
                                              metadata={"batch": True}, tags=None, context=None)
                return s.id
            s = await manager.astart_session(the_store, adapter, {
                "agent_id": agent_id or adapter.name,
                "metadata": {"name": f"batch-{new_id('b')[2:10]}", "batch": True, "batch_size": len(items)}})
            s = await manager.aactivate_session(the_store, s.id)
            return s.id

        handle.session_id = loop.run_sync(make_session())
        the_store.flush()  # workers in other processes read the session from disk
        for it in items:
            it.update(provider=provider, adapter_options=dict(adapter_options), store=str(store),
                      session_id=handle.session_id, policy=policy, timeout=timeout)

        def runner() -> None:
            try:
                if _is_dask_client(executor):  # client.map + as_completed, workers' stores flushed
                    from .dask_exec import run_executor

                    run_executor(handle, executor, prog, on_result)
                else:
                    _run_executor(handle, executor, prog, on_result)
            finally:
                prog.close()

        fut: concurrent.futures.Future = concurrent.futures.Future()

        def thread_main() -> None:
            try:
                runner()
                fut.set_result(None)
            except BaseException as exc:
                fut.set_exception(exc)

        threading.Thread(target=thread_main, name="asm-batch-executor", daemon=True).start()
        handle._future = fut
    else:
        the_store = resolve_store(store)
        adapter = resolve_adapter(provider, **adapter_options)
        lim = limiter if limiter is not None else default_limiter()

        async def main() -> None:
            try:
                await _run_local(handle, store=the_store, adapter=adapter, concurrency=concurrency, limiter=lim,
                                 session=session, policy=policy, timeout=timeout, agent_id=agent_id,
                                 progress=prog, on_result=on_result)
            finally:
                prog.close()

        handle._future = loop.submit(main())
    _register(handle)
    if not wait:
        return handle
    return handle.result()


async def abatch(prompts_or_rows: Any, provider: Any = None, **kwargs: Any) -> Any:
    """Async twin of ``batch`` (awaits the batch without blocking the caller's loop)."""
    kwargs["wait"] = False
    handle = batch(prompts_or_rows, provider, **kwargs)
    try:
        await asyncio.wrap_future(handle._future)
    except asyncio.CancelledError:
        await asyncio.to_thread(handle.cancel)
        raise
    return handle.to_frame()


# batches the live view can show (weakly: finished batches drop out when collected)
import weakref  # noqa: E402

_ACTIVE: "weakref.WeakSet[BatchRun]" = weakref.WeakSet()


def _register(handle: BatchRun) -> None:
    _ACTIVE.add(handle)


def active_batches() -> list[BatchRun]:
    """Batches of this process that are still running."""
    return [b for b in list(_ACTIVE) if not b.done]
