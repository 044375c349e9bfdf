"""Where a batch runs: locally, as runs of one session on a ``SessionServer`` with the shared
limiter (``_start_local`` / ``_run_local``), or on an executor (``concurrent.futures`` or a Dask
client: ``_start_on_executor`` / ``_run_executor``), each finished row recorded on the
``BatchRun`` handle and handed to ``on_result``.

Split out of ``runtime/batch.py``, which re-exports the names other modules use.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..core.errors import AsmError
from ..core.serialization import new_id
from .batch_rows import _row_error, _row_from_run, run_batch_item

if TYPE_CHECKING:
    from .batch import BatchRun, _Progress

log = logging.getLogger("asm_nb.runtime.batch")  # the logger keeps the name it had before the split


def _start_on_executor(handle: BatchRun, executor: Any, *, store: Any, provider: Any,
                       adapter_options: dict[str, Any], session: str | None, agent_id: str | None, policy: Any,
                       timeout: float | None, progress: _Progress, on_result: Callable | None) -> None:
    """Check the executor's conditions, open (or resume) the batch session, ship the items to the
    executor from a background thread; ``handle._future`` completes when every row is in."""
    from ..stores import resolve_store
    from . import loop
    from .oneshot import resolve_adapter

    items = handle.items
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

                run_executor(handle, executor, progress, on_result)
            else:
                _run_executor(handle, executor, progress, on_result)
        finally:
            progress.close()

    fut: concurrent.futures.Future = concurrent.futures.Future()

    def thread_main() -> None:
        try:
            runner()
            fut.set_result(None)
        except BaseException as exc:
            fut.set_exception(exc)

    threading.Thread(target=thread_main, name="asm-batch-executor", daemon=True).start()
    handle._future = fut


def _start_local(handle: BatchRun, *, store: Any, provider: Any, adapter_options: dict[str, Any], limiter: Any,
                 concurrency: int, session: str | None, agent_id: str | None, policy: Any, timeout: float | None,
                 progress: _Progress, on_result: Callable | None) -> None:
    """Run the batch on a session server on the runtime loop; ``handle._future`` is that task."""
    from ..stores import resolve_store
    from . import loop
    from .oneshot import resolve_adapter

    the_store = resolve_store(store)
    adapter = resolve_adapter(provider, **adapter_options)

    async def main() -> None:
        try:
            await _run_local(handle, store=the_store, adapter=adapter, concurrency=concurrency, limiter=limiter,
                             session=session, policy=policy, timeout=timeout, agent_id=agent_id,
                             progress=progress, on_result=on_result)
        finally:
            progress.close()

    handle._future = loop.submit(main())


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
