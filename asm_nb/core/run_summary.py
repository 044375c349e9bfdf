"""One flat row per run: the columns the runs and costs frames show, computed from a ``Run`` the
same way for every store. LocalStore also keeps these rows, one JSON line per saved run document,
in ``db/runs.summary.jsonl`` so a frame reads them without parsing run documents
(docs/store-format.md, run summaries).

Times are integer microseconds since the Unix epoch (UTC); every other value is a string, an
integer, a float or None. Pure standard library.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from collections.abc import Mapping
from typing import Any

from .usage import TOKEN_KEYS

__all__ = ["SUMMARY_COLUMNS", "summary_row", "epoch_us"]

#: the row's keys after ``id``, in order (``started_at``/``ended_at``: epoch microseconds)
SUMMARY_COLUMNS: tuple[str, ...] = (
    "session_id", "status", "provider", "model", "started_at", "ended_at", "turn_count",
    *TOKEN_KEYS, "reasoning_output_tokens", "cost_usd", "reported_cost_usd", "computed_cost_usd",
    "cost_source", "price_key", "pricing_version", "error_code", "error_message", "stop_reason",
)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)


def epoch_us(dt: object) -> int | None:
    """A datetime as integer microseconds since the epoch (a naive one is taken as UTC); else None."""
    if not isinstance(dt, datetime):
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return (dt - _EPOCH) // _US


def _int_or_none(v: object) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v == v and abs(v) != float("inf"):
        return int(v)
    return None


def _float_or_none(v: object) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def _str_or_none(v: object) -> str | None:
    return v if isinstance(v, str) else None


def summary_row(run: Any) -> dict[str, Any]:
    """``{"id": run.id, <SUMMARY_COLUMNS>...}`` for a ``Run`` (or anything with its attributes)."""
    tu = run.token_usage if isinstance(run.token_usage, Mapping) else {}
    md = run.metadata if isinstance(run.metadata, Mapping) else {}
    pm = run.provider_metadata if isinstance(run.provider_metadata, Mapping) else {}
    err = run.error if isinstance(run.error, Mapping) else {}
    out = run.output if isinstance(run.output, Mapping) else {}
    model = pm.get("model") if pm.get("model") is not None else md.get("model")
    cost = _float_or_none(run.cost_usd)
    src = md.get("cost_source")
    code = err.get("code")
    msg = err.get("message")
    row: dict[str, Any] = {
        "id": run.id,
        "session_id": run.session_id,
        "status": getattr(run.status, "value", run.status),
        "provider": run.provider if run.provider is not None else md.get("provider"),
        "model": _str_or_none(model),
        "started_at": epoch_us(run.started_at),
        "ended_at": epoch_us(run.ended_at),
        "turn_count": _int_or_none(run.turn_count),
    }
    for k in (*TOKEN_KEYS, "reasoning_output_tokens"):
        row[k] = _int_or_none(tu.get(k))
    row["cost_usd"] = cost
    row["reported_cost_usd"] = _float_or_none(md.get("reported_cost_usd"))
    row["computed_cost_usd"] = _float_or_none(md.get("computed_cost_usd"))
    row["cost_source"] = src if isinstance(src, str) else ("stored" if run.cost_usd is not None else None)
    row["price_key"] = _str_or_none(md.get("price_key"))
    row["pricing_version"] = _str_or_none(md.get("pricing_version"))
    row["error_code"] = str(code) if code is not None else None
    row["error_message"] = str(msg) if msg is not None else None
    row["stop_reason"] = _str_or_none(out.get("stop_reason"))
    return row
