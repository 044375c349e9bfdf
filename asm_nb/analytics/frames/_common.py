"""What every frame shares: the backend (polars built, pandas at the end), typed dtypes, argument
checks and the common filters (``_Filters``)."""

from __future__ import annotations

import enum
import logging
import os
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from typing import TYPE_CHECKING, Any, Iterable, Literal

from ...core.errors import AsmError
from ...core.usage import TOKEN_KEYS

if TYPE_CHECKING:  # pragma: no cover
    import polars as pl


log = logging.getLogger("asm_nb.analytics.frames")

Backend = Literal["pandas", "polars"]

#: Columns of the raw event log (docs/store-format.md), in on-disk order.
EVENT_COLUMNS = ("id", "type", "timestamp", "session_id", "run_id", "sequence_number", "data", "metadata",
                 "schema_version", "provider", "correlation_id")

_TS_FORMAT = "%Y-%m-%dT%H:%M:%S%.fZ"
_TOKEN_KEYS = TOKEN_KEYS


# --------------------------------------------------------------------------------------------
# helpers: imports, dtypes, arguments


def _polars():
    try:
        import polars as pl
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise AsmError("dependency_not_available",
                       "asm_nb.frames needs polars and pyarrow: pip install 'asm_nb[notebook]'") from exc
    return pl


def _utc(pl):
    return pl.Datetime("us", "UTC")


def _run_status_dtype(pl):
    from ...core.run import RunStatus

    return pl.Enum([s.value for s in RunStatus])


def _session_status_dtype(pl):
    from ...core.session import SessionStatus

    return pl.Enum([s.value for s in SessionStatus])


_TOOL_STATUSES = ["running", "completed", "failed", "unfinished"]


def _raw_event_schema(pl) -> dict:
    return {"id": pl.String, "type": pl.String, "timestamp": pl.String, "session_id": pl.String,
            "run_id": pl.String, "sequence_number": pl.Int64, "data": pl.String, "metadata": pl.String,
            "schema_version": pl.Int64, "provider": pl.String, "correlation_id": pl.String}


def _check_backend(backend: Any) -> str:
    if backend not in ("pandas", "polars"):
        raise AsmError("validation_error", f"backend must be 'pandas' or 'polars', got {backend!r}")
    return backend


def _finish(df: "pl.DataFrame", backend: str) -> Any:
    """Return ``df`` as polars, or as pandas through Arrow (list columns become Python lists)."""
    if backend == "polars":
        return df
    pl = _polars()
    try:
        import pandas as pd
        import pyarrow as pa

        ints = {pa.int64(): pd.Int64Dtype(), pa.int32(): pd.Int32Dtype()}
        pdf = df.to_pandas(types_mapper=ints.get)  # integer columns stay integers when nullable
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise AsmError("dependency_not_available",
                       "backend='pandas' needs pandas and pyarrow: pip install 'asm_nb[notebook]'") from exc
    for name, dtype in df.schema.items():
        if isinstance(dtype, pl.List):
            pdf[name] = [list(v) if v is not None else None for v in pdf[name]]
    return pdf


def _as_list(value: Any) -> list | None:
    """None → None; a str/enum/scalar → [value]; an iterable → list (enum members → values)."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        value = [value]
    out = []
    for v in value:
        out.append(getattr(v, "value", v))
    return out


def _to_utc(value: Any, name: str) -> datetime | None:
    """datetime (naive = UTC), ``date`` (midnight UTC), ISO string, or None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=timezone.utc)
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise AsmError("validation_error",
                           f"{name} must be a datetime or an ISO-8601 string, got {value!r}") from None
        return _to_utc(dt, name)
    raise AsmError("validation_error", f"{name} must be a datetime, a date or an ISO-8601 string, got {value!r}")


def _resolve_store(store: Any) -> Any:
    if store is None or isinstance(store, (str, os.PathLike)):
        from ...stores import open_store

        return open_store(store)
    return store


@dataclass
class _Filters:
    session_id: list | None = None
    run_id: list | None = None
    provider: list | None = None
    model: list | None = None
    status: list | None = None
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def of(cls, session_id=None, run_id=None, provider=None, model=None, status=None, since=None,
           until=None) -> "_Filters":
        return cls(_as_list(session_id), _as_list(run_id), _as_list(provider), _as_list(model),
                   _as_list(status), _to_utc(since, "since"), _to_utc(until, "until"))

    @property
    def needs_runs(self) -> bool:
        """Whether event rows must be matched against the runs table (model / run status)."""
        return self.model is not None or self.status is not None

    def time_expr(self, pl, col: str):
        exprs = []
        if self.since is not None:
            exprs.append(pl.col(col) >= self.since)
        if self.until is not None:
            exprs.append(pl.col(col) < self.until)
        return exprs


def _check_statuses(values: list | None, enum_cls: type[enum.Enum], field: str) -> None:
    if values is None:
        return
    allowed = {m.value for m in enum_cls}
    for v in values:
        if v not in allowed:
            raise AsmError("validation_error",
                           f"{field} contains unsupported value: {v!r} (allowed: {sorted(allowed)})")
