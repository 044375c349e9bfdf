"""Batch runs on a Dask distributed cluster: ``asm_nb.batch(..., executor=dask_client)``.

Each batch item goes to a worker as ``run_batch_item(item_dict) -> row_dict`` (``client.map``,
``pure=False``: every item runs even when two prompts are equal). The worker opens the shared
store by its URL (PostgreSQL, or SQLite/LocalStore on a shared disk) and writes the run there.
Results are collected with ``distributed.as_completed`` under a tqdm progress bar; when all are
in, every worker commits its stores' write-behind buffers (``client.run``), so the store is
complete when the call returns.

``run_on_dask(items, client)`` is the standalone entry (items as ``batch.build_items`` makes
them, plus ``provider``/``store``/``session_id``...); ``batch()`` calls ``run_executor`` with its
``BatchRun`` handle when the executor is a Dask ``Client``. ``distributed`` is imported only here.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterable, Mapping

from ..core.errors import AsmError

__all__ = ["is_dask_client", "run_on_dask", "run_executor", "flush_worker_stores"]

log = logging.getLogger(__name__)


def is_dask_client(executor: Any) -> bool:
    """True for a ``distributed.Client`` (checked by type name: no import of distributed)."""
    t = type(executor)
    return t.__name__ == "Client" and t.__module__.startswith("distributed")


def flush_worker_stores() -> int:
    """Commit the buffers of every store open in this process (runs on each worker)."""
    n = 0
    try:
        from .. import stores as _stores

        stores = list(_stores._default_stores.values())
    except Exception:  # noqa: BLE001
        stores = []
    try:
        from ..stores import sql

        stores += [s for s in list(sql._OPEN_STORES) if s not in stores]
    except Exception:  # noqa: BLE001
        pass
    for s in stores:
        try:
            s.flush()
            n += 1
        except Exception as exc:  # noqa: BLE001 - reported, not raised on the worker
            log.error("asm: flushing %r on a Dask worker failed: %s", s, exc)
    return n


def _collect(items: list[dict], client: Any, *, on_row: Callable[[dict, dict], None],
             on_submit: Callable[[list], None] | None = None) -> None:
    from distributed import as_completed

    from .batch import _row_error, run_batch_item

    futures = client.map(run_batch_item, items, pure=False, key=[f"asm-batch-item-{it['index']}-{id(it):x}"
                                                                  for it in items])
    if on_submit is not None:
        on_submit(futures)
    by_key = {f.key: it for f, it in zip(futures, items)}
    for fut in as_completed(futures):
        item = by_key[fut.key]
        try:
            row = fut.result()
        except BaseException as exc:  # cancelled future or a worker that died
            if isinstance(exc, KeyboardInterrupt):
                raise
            row = _row_error(item.get("prompt"), exc if isinstance(exc, Exception) else
                             AsmError("cancelled", "Batch cancelled"), session_id=item.get("session_id"))
            row["index"] = item.get("index")
        on_row(item, row)
    try:
        client.run(flush_worker_stores)
    except Exception as exc:  # noqa: BLE001 - the runs are done; buffers commit on their own within 50 ms
        log.warning("asm: could not flush the workers' stores: %s", exc)


def run_executor(handle: Any, client: Any, progress: Any, on_result: Callable | None) -> None:
    """The Dask path of ``batch()``: fills ``handle`` (rows, states, run ids) and ``progress``
    as results arrive (same contract as ``batch._run_executor``)."""
    from .batch import _record_row

    for item in handle.items:
        handle.states[item["index"]] = "running"
        progress.started()

    def on_submit(futures: list) -> None:
        handle._executor_futures = list(futures)

    def on_row(item: dict, row: dict) -> None:
        if handle._cancelled and row.get("status") == "failed" and row.get("run_id") is None:
            row.update(status="cancelled", error_code="cancelled", error_message="Batch cancelled")
        _record_row(handle, item["index"], row, progress, on_result)

    _collect(handle.items, client, on_row=on_row, on_submit=on_submit)


def run_on_dask(items: Iterable[Mapping[str, Any]], client: Any, *, progress: bool = True,
                backend: str = "pandas") -> Any:
    """Run batch items on a Dask cluster; returns a DataFrame (``backend`` pandas or polars, or
    ``"records"``) with one result row per item, in item order.

    Every item needs ``prompt``, ``provider`` (a registered name) and ``store`` (a URL/path the
    workers can open); ``index`` defaults to the position. A run that fails gives a row with
    ``status`` failed; it never stops the others.
    """
    if not is_dask_client(client):
        raise AsmError("validation_error", f"run_on_dask needs a distributed.Client, got: {client!r}")
    todo = []
    for i, it in enumerate(items):
        it = dict(it)
        it.setdefault("index", i)
        if not isinstance(it.get("provider"), str) or not it.get("store"):
            raise AsmError("validation_error", "each item needs a provider name and a store URL/path")
        todo.append(it)
    rows: dict[int, dict] = {}
    from tqdm.auto import tqdm

    bar = tqdm(total=len(todo), desc="batch (dask)", unit="run", disable=not progress)
    try:
        def on_row(item: dict, row: dict) -> None:
            rows[item["index"]] = row
            bar.update(1)

        _collect(todo, client, on_row=on_row)
    finally:
        bar.close()
    ordered = [rows[it["index"]] for it in todo]
    if backend == "records":
        return ordered
    if backend == "polars":
        import polars as pl

        return pl.DataFrame(ordered, infer_schema_length=None)
    if backend != "pandas":
        raise AsmError("validation_error", f"backend must be pandas, polars or records, got: {backend!r}")
    import pandas as pd

    return pd.DataFrame(ordered)
