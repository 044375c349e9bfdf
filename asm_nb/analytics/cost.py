"""Cost rows: runs, tokens and USD by provider and model (``%asm cost``, ``asm cost``).

:func:`cost_table` is a DataFrame; :func:`cost_rows` the same as JSON-ready dicts plus totals,
which ``asm_nb.rendering.tables.format_cost_table`` prints. Polars loads inside the functions.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterable

from ..core.errors import AsmError
from ..rendering.tables import COST_COLUMNS_AFTER_KEYS, COST_NUMBER_COLUMNS

if TYPE_CHECKING:
    from ..ports import StoreRef

__all__ = ["cost_table", "cost_rows", "COST_GROUPS"]

COST_GROUPS = ("provider", "model", "day", "session")
_NUM_COLS = COST_NUMBER_COLUMNS
_COLUMNS_AFTER_KEYS = COST_COLUMNS_AFTER_KEYS


def _groups(by: str | Iterable[str] | None) -> list[str]:
    if by is None:
        return ["provider", "model"]
    groups = [g.strip() for g in by.split(",")] if isinstance(by, str) else list(by)
    groups = [g for g in groups if g]
    if not groups:
        raise AsmError("validation_error", f"by must name at least one of {', '.join(COST_GROUPS)}")
    for g in groups:
        if g not in COST_GROUPS:
            raise AsmError("validation_error", f"by contains unsupported value: {g!r} (allowed: {', '.join(COST_GROUPS)})")
    if len(set(groups)) != len(groups):
        raise AsmError("validation_error", f"by names a column twice: {groups}")
    return groups


def cost_table(store: StoreRef = None, *, by: str | Iterable[str] | None = ("provider", "model"), backend: str = "pandas",
               **filters: Any) -> Any:
    """Runs, tokens and USD per group (default: per provider and model), most expensive first.

    Columns: the ``by`` keys (``session`` is shown as ``session_id``), ``runs, input_tokens,
    output_tokens, cache_read_tokens, cache_creation_tokens, total_tokens, cost_usd`` (sum over
    priced runs; null when none is priced) and ``unpriced_runs``. ``filters`` are those of
    :func:`asm_nb.frames.costs` (``session_id``, ``provider``, ``model``, ``status``, ``since``,
    ``until``, ``pricing_table``). Costs are the runs' stored costs; a finished run stored without
    one is priced post hoc with the active pricing table.
    """
    import polars as pl

    from . import frames

    groups = _groups(by)
    df = frames.costs(store, by=groups, backend="polars", **filters)
    keys = ["session_id" if g == "session" else g for g in groups]
    df = df.rename({"run_count": "runs"}).select(*keys, *_COLUMNS_AFTER_KEYS)
    df = df.sort([pl.col("cost_usd").fill_null(-1.0), *keys], descending=[True] + [False] * len(keys),
                 nulls_last=True)
    if backend == "polars":
        return df
    if backend != "pandas":
        raise AsmError("validation_error", f"backend must be 'pandas' or 'polars', got {backend!r}")
    return frames._finish(df, "pandas")


def _plain(v: object) -> Any:  # a row value: a date string or v itself
    if isinstance(v, datetime):
        return v.date().isoformat() if (v.hour, v.minute, v.second, v.microsecond) == (0, 0, 0, 0) else v.isoformat()
    return v


def cost_rows(store: StoreRef = None, *, by: str | Iterable[str] | None = ("provider", "model"), **filters: Any) -> tuple[list[dict], dict]:
    """``(rows, total)``: :func:`cost_table` as JSON-ready dicts (days as ``YYYY-MM-DD``) and the
    column sums (``cost_usd`` None when no run is priced)."""
    df = cost_table(store, by=by, backend="polars", **filters)
    rows = [{k: _plain(v) for k, v in r.items()} for r in df.iter_rows(named=True)]
    total: dict[str, Any] = {k: sum(r[k] or 0 for r in rows) for k in (*_NUM_COLS, "unpriced_runs")}
    priced = [r["cost_usd"] for r in rows if r["cost_usd"] is not None]
    total["cost_usd"] = sum(priced) if priced else None
    return rows, total
