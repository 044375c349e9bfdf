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

The rows (input rows → items, a finished run → a result row, the frame join) are in
``batch_rows.py``; where a batch runs (a local session server, an executor) in ``batch_exec.py``.

>>> df = batch(["echo a", "echo b"], provider="shell", store="memory://", progress=False)  # doctest: +SKIP
>>> list(df["output"])                                                                      # doctest: +SKIP
['a\\n', 'b\\n']
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..core.errors import AsmError
from .options import check_run_options, public_options
# the rows (items in, result rows out) and where a batch runs (local server, executor) live in
# batch_rows / batch_exec; the names other modules and tests use are re-exported here
from .batch_exec import _deliver as _deliver
from .batch_exec import _record_row as _record_row
from .batch_exec import _run_executor as _run_executor
from .batch_exec import _start_local, _start_on_executor
from .batch_rows import RESULT_COLUMNS as RESULT_COLUMNS
from .batch_rows import _join, _rows
from .batch_rows import _row_error as _row_error
from .batch_rows import build_items as build_items
from .batch_rows import run_batch_item as run_batch_item

log = logging.getLogger(__name__)

__all__ = ["batch", "abatch", "BatchRun", "run_batch_item", "build_items", "RESULT_COLUMNS", "default_limiter"]

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
        _start_on_executor(handle, executor, store=store, provider=provider, adapter_options=adapter_options,
                           session=session, agent_id=agent_id, policy=policy, timeout=timeout, progress=prog,
                           on_result=on_result)
    else:
        _start_local(handle, store=store, provider=provider, adapter_options=adapter_options,
                     limiter=limiter if limiter is not None else default_limiter(), concurrency=concurrency,
                     session=session, agent_id=agent_id, policy=policy, timeout=timeout, progress=prog,
                     on_result=on_result)
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
_ACTIVE: "weakref.WeakSet[BatchRun]" = weakref.WeakSet()


def _register(handle: BatchRun) -> None:
    _ACTIVE.add(handle)


def active_batches() -> list[BatchRun]:
    """Batches of this process that are still running."""
    return [b for b in list(_ACTIVE) if not b.done]
