"""Token usage and USD over time, the reports people read their agent logs for
(``asm_nb.frames.usage``, ``asm usage``).

The unit is one billed model call: an imported history run (``asm import``) contributes one
record per ``token_usage_updated`` event (its model, tokens and USD as priced at import); any
other run contributes one record with its totals at its start time. Records are then summed
``by`` ``"day"``, ``"week"`` (weeks start on Monday), ``"month"``, ``"session"``, ``"project"``,
``"model"``, or cut into ``"block"``\\s: the rolling 5-hour windows Claude plans bill by (as
ccusage's ``blocks``): a window starts at the hour its first record falls in and lasts five hours;
the next record after it, or after a 5-hour pause, starts a new one. Times are UTC.

Polars loads inside the functions.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal, Mapping

from ..core.errors import AsmError
from ..core.usage import TOKEN_KEYS

if TYPE_CHECKING:
    from ..core.run import Run
    from ..core.session import Session
    from ..ports import StoreRef

__all__ = ["usage", "usage_records", "usage_rows", "USAGE_GROUPS", "BLOCK_HOURS"]

UsageBy = Literal["day", "week", "month", "session", "project", "model", "block"]
#: The ``by`` values of :func:`usage`.
USAGE_GROUPS = ("day", "week", "month", "session", "project", "model", "block")
#: Length of one billing window (``by="block"``), in hours.
BLOCK_HOURS = 5


def _project(run: Run, sessions: Mapping[str, Session]) -> str | None:
    md = run.metadata if isinstance(run.metadata, Mapping) else {}
    p = md.get("project")
    if isinstance(p, str) and p:
        return p
    s = sessions.get(run.session_id)
    smd = s.metadata if s is not None and isinstance(s.metadata, Mapping) else {}
    for k in ("project", "cwd"):
        if isinstance(smd.get(k), str) and smd[k]:
            return smd[k]
    ctx = s.context if s is not None and isinstance(s.context, Mapping) else {}
    return ctx.get("cwd") if isinstance(ctx.get("cwd"), str) else None


def usage_records(store: StoreRef = None, *, since: Any = None, until: Any = None, source: Any = None) -> Any:
    """One row per usage record (polars): ``timestamp, session_id, run_id, project,
    provider, model, source`` (``claude-code`` / ``codex`` for imported history, ``asm`` for
    runs made here), the four token counts, ``cost_usd`` (null when unpriced) and ``call``
    (False for the growth of a streamed message already counted: the same model call)."""
    import polars as pl

    from . import frames as fr

    f = fr._Filters.of(since=since, until=until)
    st = fr._resolve_store(store)
    runs = fr._all_runs(st)
    sessions = {s.id: s for s in st.list_sessions()}
    imported: dict[str, Any] = {}
    rows: dict[str, list] = {k: [] for k in ("timestamp", "session_id", "run_id", "project", "provider", "model",
                                             "source", *TOKEN_KEYS, "cost_usd", "call")}
    for r in runs:
        md = r.metadata if isinstance(r.metadata, Mapping) else {}
        if md.get("imported_from"):
            imported[r.id] = r
            continue
        tu = r.token_usage if isinstance(r.token_usage, Mapping) else {}
        model = fr._model_of(r)
        rows["timestamp"].append(r.started_at)
        rows["session_id"].append(r.session_id)
        rows["run_id"].append(r.id)
        rows["project"].append(_project(r, sessions))
        rows["provider"].append(r.provider)
        rows["model"].append(model if isinstance(model, str) else None)
        rows["source"].append("asm")
        for k in TOKEN_KEYS:
            rows[k].append(fr._int_or_none(tu.get(k)) or 0)
        rows["cost_usd"].append(fr._float_or_none(r.cost_usd))
        rows["call"].append(True)
    schema = {"timestamp": fr._utc(pl), "session_id": pl.String, "run_id": pl.String, "project": pl.String,
              "provider": pl.String, "model": pl.String, "source": pl.String,
              **{k: pl.Int64 for k in TOKEN_KEYS}, "cost_usd": pl.Float64, "call": pl.Boolean}
    own = pl.DataFrame(rows, schema=schema)
    parts = [own]
    if imported:
        sids = sorted({r.session_id for r in imported.values()})
        meta = pl.DataFrame({"run_id": list(imported),
                             "project": [_project(r, sessions) for r in imported.values()],
                             "source": [r.metadata.get("imported_from") for r in imported.values()]},
                            schema={"run_id": pl.String, "project": pl.String, "source": pl.String})
        ev = fr._events_lazy(st, sids).filter(pl.col("type").cast(pl.String) == "token_usage_updated",
                                              pl.col("run_id").is_in(list(imported))).select(
            "timestamp", "session_id", "run_id", pl.col("provider").cast(pl.String),
            fr._jp("data", "model").alias("model"),
            *[fr._jp("data", k).cast(pl.Int64, strict=False).fill_null(0).alias(k) for k in TOKEN_KEYS],
            fr._jp("data", "cost_usd").cast(pl.Float64, strict=False).alias("cost_usd"),
            fr._jp("data", "update").is_null().alias("call"),  # a streamed message's growth: same call
        ).collect()
        ev = ev.join(meta, on="run_id", how="left").select(list(schema))
        parts.append(ev.cast(schema))  # type: ignore[arg-type]
    df = pl.concat(parts, how="vertical")
    sources = fr._as_list(source)
    if sources is not None:
        df = df.filter(pl.col("source").is_in(sources))
    if f.since is not None:
        df = df.filter(pl.col("timestamp") >= f.since)
    if f.until is not None:
        df = df.filter(pl.col("timestamp") < f.until)
    return df.sort("timestamp", "run_id")


def _blocks(df: Any) -> Any:
    """Label each record (sorted by time) with the start of its 5-hour window."""
    import polars as pl

    span = timedelta(hours=BLOCK_HOURS)
    starts: list[datetime | None] = []
    start: datetime | None = None
    last: datetime | None = None
    for ts in df["timestamp"].to_list():
        if start is None or last is None or ts - start >= span or ts - last >= span:
            start = ts.replace(minute=0, second=0, microsecond=0)
        last = ts
        starts.append(start)
    return df.with_columns(block_start=pl.Series(starts, dtype=df.schema["timestamp"]))


def usage(store: StoreRef = None, *, by: UsageBy | str = "day", since: Any = None, until: Any = None,
          source: Any = None, backend: Literal["pandas", "polars"] = "pandas") -> Any:
    """Tokens and USD summed ``by`` ``"day"`` (default), ``"week"``, ``"month"``, ``"session"``,
    ``"project"``, ``"model"`` or ``"block"`` (5-hour billing windows), oldest first.

    Columns: the key (``day`` / ``week`` / ``month`` as the UTC start of the period, a tz-aware
    datetime; ``session_id``; ``project``; ``model``; for blocks ``block_start, block_end,
    first_record, last_record, active``), then ``records`` (model calls), ``sessions, models`` (comma-separated,
    except by model), ``input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens,
    total_tokens`` (all four counters), ``cost_usd`` (sum of the priced records; null when none
    is) and ``unpriced_records``. ``since`` / ``until`` bound the record times; ``source`` keeps
    ``"claude-code"``, ``"codex"`` and/or ``"asm"`` records. Totals equal the sums of
    :func:`usage_records`.
    """
    import polars as pl

    from . import frames as fr

    fr._check_backend(backend)
    if by not in USAGE_GROUPS:
        raise AsmError("validation_error", f"by must be one of {', '.join(USAGE_GROUPS)}, got {by!r}")
    df = usage_records(store, since=since, until=until, source=source)
    if by == "block":
        df = _blocks(df)
    key = {"day": "day", "week": "week", "month": "month", "session": "session_id", "project": "project",
           "model": "model", "block": "block_start"}[by]
    if by in ("day", "week", "month"):
        every = {"day": "1d", "week": "1w", "month": "1mo"}[by]
        df = df.with_columns(pl.col("timestamp").dt.truncate(every).alias(key))
    aggs = [pl.col("call").sum().cast(pl.Int64).alias("records"), pl.col("session_id").n_unique().cast(pl.Int64).alias("sessions")]
    if by != "model":
        aggs.append(pl.col("model").drop_nulls().unique().sort().str.join(", ").alias("models"))
    aggs += [pl.col(k).sum().cast(pl.Int64).alias(k) for k in TOKEN_KEYS]
    aggs += [pl.when(pl.col("cost_usd").is_not_null().any()).then(pl.col("cost_usd").sum()).otherwise(None)
             .cast(pl.Float64).alias("cost_usd"),
             pl.col("cost_usd").is_null().sum().cast(pl.Int64).alias("unpriced_records")]
    if by == "block":
        aggs += [pl.col("timestamp").min().alias("first_record"), pl.col("timestamp").max().alias("last_record")]
    out = df.group_by(key).agg(*aggs).with_columns(
        total_tokens=sum((pl.col(k) for k in TOKEN_KEYS), pl.lit(0, dtype=pl.Int64))).sort(key, nulls_last=True)
    cols = [key]
    if by == "block":
        now = datetime.now(timezone.utc)
        out = out.with_columns(block_end=pl.col("block_start") + pl.duration(hours=BLOCK_HOURS))
        out = out.with_columns(active=(pl.col("block_end") > now)
                               & (pl.lit(now) - pl.col("last_record") < pl.duration(hours=BLOCK_HOURS)))
        cols += ["block_end", "first_record", "last_record", "active"]
    cols += ["records", "sessions"] + (["models"] if by != "model" else [])
    cols += [*TOKEN_KEYS, "total_tokens", "cost_usd", "unpriced_records"]
    return fr._finish(out.select(cols), backend)


def _plain(v: object, times: bool = False) -> Any:  # a row value: a date string or v itself
    if isinstance(v, datetime):
        if not times and (v.hour, v.minute, v.second, v.microsecond) == (0, 0, 0, 0):
            return v.date().isoformat()
        return v.strftime("%Y-%m-%d %H:%M")
    return v


def usage_rows(store: StoreRef = None, **kwargs: Any) -> tuple[list[dict], dict]:
    """``(rows, total)``: :func:`usage` as JSON-ready dicts and the column sums (``asm usage``)."""
    df = usage(store, backend="polars", **kwargs)
    times = kwargs.get("by") == "block"
    rows = [{k: _plain(v, times) for k, v in r.items()} for r in df.iter_rows(named=True)]
    total: dict[str, Any] = {k: sum(r[k] or 0 for r in rows)
                             for k in ("records", *TOKEN_KEYS, "total_tokens", "unpriced_records")}
    priced = [r["cost_usd"] for r in rows if r["cost_usd"] is not None]
    total["cost_usd"] = sum(priced) if priced else None
    return rows, total
