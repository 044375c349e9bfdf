"""Frames derived from the events of a conversation: messages, transcript and tool calls."""

from __future__ import annotations

from typing import Any, Mapping

from ...core.errors import AsmError
from ...core.events import is_audit
from ._common import (
    _as_list, _check_backend, _check_statuses, _Filters, _finish, _polars, _resolve_store, _to_utc, _TOOL_STATUSES,
    _utc, Backend,
)
from .event_log import _dump, _filtered_events


# --------------------------------------------------------------------------------------------
# messages, transcript


def _jp(col: str, key: str):
    pl = _polars()
    return pl.col(col).str.json_path_match(f"$.{key}")


_MESSAGE_TYPES = ["message_sent", "message_received"]


def messages(store: Any = None, *, session_id: Any = None, run_id: Any = None, provider: Any = None,
             model: Any = None, status: Any = None, since: Any = None, until: Any = None,
             include_streamed: bool = False, backend: Backend = "pandas") -> Any:
    """One row per message event (``message_sent``, ``message_received``; with
    ``include_streamed`` also each ``message_streamed`` chunk), in log order.

    Columns: ``session_id, run_id, sequence_number, timestamp, type, role`` (categorical;
    ``user`` for sent, ``assistant`` for received when the payload has none), ``kind`` (``text``
    / ``reasoning`` for chunks), ``content, chars, provider``.
    """
    _check_backend(backend)
    pl = _polars()
    types = _MESSAGE_TYPES + (["message_streamed"] if include_streamed else [])
    f = _Filters.of(session_id, run_id, provider, model, status, since, until)
    lf = _filtered_events(_resolve_store(store), f, types)
    t = pl.col("type").cast(pl.String)
    df = lf.select(
        "session_id", "run_id", "sequence_number", "timestamp", "type",
        pl.coalesce(_jp("data", "role"),
                    pl.when(t == "message_sent").then(pl.lit("user")).otherwise(pl.lit("assistant"))
                    ).cast(pl.Categorical).alias("role"),
        pl.when(t == "message_streamed").then(pl.coalesce(_jp("data", "kind"), pl.lit("text")))
        .otherwise(None).cast(pl.Categorical).alias("kind"),
        pl.when(t == "message_streamed").then(pl.coalesce(_jp("data", "delta"), _jp("data", "content")))
        .otherwise(_jp("data", "content")).alias("content"),
        "provider",
    ).with_columns(chars=pl.col("content").str.len_chars().cast(pl.Int64)).collect()
    return _finish(df, backend)


def transcript(store: Any, session_id: str, *, run_id: Any = None, include_tools: bool = False,
               backend: Backend = "pandas") -> Any:
    """The conversation of one session in order: ``sequence_number, timestamp, run_id, role,
    content, type``.

    Rows are user messages (``message_sent``) and assistant messages (``message_received``); a
    run whose stream ended without a ``message_received`` (cancelled, failed) gets one assistant
    row with its streamed text joined. ``include_tools`` adds a ``tool_call`` row per started call
    (content = the call summary) and a ``tool`` row per result (content = the output).
    """
    _check_backend(backend)
    pl = _polars()
    if not isinstance(session_id, str) or not session_id:
        raise AsmError("validation_error", "transcript needs a session_id (a non-empty string)")
    st = _resolve_store(store)
    evs = [e for e in st.get_events(session_id) if not is_audit(e)]
    run_filter = set(_as_list(run_id) or []) if run_id is not None else None
    rows: list[dict] = []
    pending: dict[Any, list] = {}  # run_id -> [first chunk event, [texts]]

    def close_stream(rid: Any) -> None:
        p = pending.pop(rid, None)
        if p and "".join(p[1]):
            e = p[0]
            rows.append({"sequence_number": e.sequence_number, "timestamp": e.timestamp, "run_id": rid,
                         "role": "assistant", "content": "".join(p[1]), "type": "message_streamed"})

    for e in evs:
        if run_filter is not None and e.run_id not in run_filter:
            continue
        t, d = e.type.value, e.data if isinstance(e.data, Mapping) else {}
        if t == "message_streamed":
            if d.get("kind", "text") == "text":
                chunk = d.get("delta") if d.get("delta") is not None else d.get("content")
                if isinstance(chunk, str):
                    pending.setdefault(e.run_id, [e, []])[1].append(chunk)
            continue
        if t == "message_received":
            pending.pop(e.run_id, None)
            rows.append({"sequence_number": e.sequence_number, "timestamp": e.timestamp, "run_id": e.run_id,
                         "role": str(d.get("role") or "assistant"), "content": _text(d.get("content")), "type": t})
        elif t == "message_sent":
            rows.append({"sequence_number": e.sequence_number, "timestamp": e.timestamp, "run_id": e.run_id,
                         "role": str(d.get("role") or "user"), "content": _text(d.get("content")), "type": t})
        elif t in ("run_completed", "run_failed", "run_cancelled", "run_timeout"):
            close_stream(e.run_id)
        elif include_tools and t == "tool_call_started":
            from ...rendering.studio import ToolSummary

            rows.append({"sequence_number": e.sequence_number, "timestamp": e.timestamp, "run_id": e.run_id,
                         "role": "tool_call", "type": t,
                         "content": ToolSummary.spinner_text({"name": d.get("tool_name"),
                                                              "input": d.get("tool_input")})})
        elif include_tools and t in ("tool_call_completed", "tool_call_failed"):
            rows.append({"sequence_number": e.sequence_number, "timestamp": e.timestamp, "run_id": e.run_id,
                         "role": "tool", "content": _text(d.get("tool_output")), "type": t})
    for rid in list(pending):
        close_stream(rid)
    rows.sort(key=lambda r: (r["sequence_number"] is None, r["sequence_number"] or 0))
    df = pl.DataFrame(rows, schema={"sequence_number": pl.Int64, "timestamp": _utc(pl), "run_id": pl.String,
                                    "role": pl.String, "content": pl.String, "type": pl.String})
    df = df.with_columns(pl.col("role").cast(pl.Categorical), pl.col("type").cast(pl.Categorical))
    return _finish(df, backend)


def _text(v: Any) -> str | None:
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, list):  # content blocks: join their text parts
        parts = [str(b["text"]) for b in v if isinstance(b, Mapping) and isinstance(b.get("text"), str)]
        if parts:
            return "".join(parts)
    return _dump(v)


# --------------------------------------------------------------------------------------------
# tool calls


def _summary_expr(pl):
    """Vectorized ``ToolSummary.spinner_text`` (docs/rendering.md) over ``tool_name`` / ``input``."""
    name = pl.col("tool_name").cast(pl.String)
    tool = (pl.when(name.is_in(["Bash", "bash"])).then(pl.lit("bash"))
            .when(name.is_null() | (name == "")).then(pl.lit("tool")).otherwise(name))

    def val(key: str):
        v = pl.col("input").str.json_path_match(f"$.{key}")
        return pl.when(v == "").then(None).otherwise(v)

    path = pl.coalesce(val("file_path"), val("path"), pl.lit("file"))
    cmd = val("command").str.strip_chars()
    cut_cmd = pl.when(cmd.str.len_chars() > 60).then(cmd.str.slice(0, 60) + pl.lit("...")).otherwise(cmd)
    host = val("url").str.extract(r"^[A-Za-z][A-Za-z0-9+.\-]*://(?:[^/?#@]*@)?(\[[^\]]*\]|[^/:?#]+)", 1) \
        .str.strip_chars("[]").str.to_lowercase()
    host = pl.when(host == "").then(None).otherwise(host)
    return (pl.when(tool == "bash").then(pl.when(cmd.is_null()).then(pl.lit("Running bash"))
                                         .otherwise(pl.lit("Running: ") + cut_cmd))
            .when(tool == "Read").then(pl.lit("Reading ") + path)
            .when(tool == "Write").then(pl.lit("Writing ") + path)
            .when(tool == "Edit").then(pl.lit("Editing ") + path)
            .when(tool == "Glob").then(pl.lit("Searching for ") + pl.coalesce(val("pattern"), pl.lit("files")))
            .when(tool == "Grep").then(pl.lit('Searching "') + pl.coalesce(val("pattern"), pl.lit("pattern"))
                                       + pl.lit('" in ') + pl.coalesce(val("path"), pl.lit(".")))
            .when(tool == "Task").then(pl.lit("Running task: ") + pl.coalesce(val("description"), pl.lit("task")))
            .when(tool == "WebFetch").then(pl.lit("Fetching ") + pl.coalesce(host, pl.lit("web resource")))
            .when(tool == "WebSearch").then(pl.lit('Searching: "') + pl.coalesce(val("query"), pl.lit(""))
                                            + pl.lit('"'))
            .otherwise(pl.lit("Using ") + tool))


_TOOL_TYPES = ["tool_call_started", "tool_call_completed", "tool_call_failed"]


def tool_calls(store: Any = None, *, session_id: Any = None, run_id: Any = None, provider: Any = None,
               model: Any = None, status: Any = None, run_status: Any = None, tool_name: Any = None,
               since: Any = None, until: Any = None, include_output: bool = False,
               backend: Backend = "pandas") -> Any:
    """One row per tool call (a ``tool_call_started`` joined with its ``tool_call_completed`` /
    ``tool_call_failed`` by ``tool_call_id`` within the run), ordered by start.

    Columns: ``session_id, run_id, tool_call_id, tool_name`` (categorical), ``summary`` (as the
    live view's spinner text: ``Running: pytest -q``, ``Reading src/app.py``), ``status``
    (``running`` / ``completed`` / ``failed``), ``started_at, finished_at, duration_ms``,
    ``input`` (JSON text), ``input_size, output_size`` (characters), ``reason`` (failure
    reason, e.g. ``permission_denied``), ``provider``, and ``output`` with ``include_output=True``.
    ``status`` is ``running`` / ``completed`` / ``failed``, or ``unfinished`` for a call the run
    ended without (its last record says ``status: "unfinished"``).

    ``status`` filters the call status, ``run_status`` the run's; ``since``/``until`` apply to
    the start time.
    """
    _check_backend(backend)
    pl = _polars()
    from ...core.run import RunStatus

    tool_status = _as_list(status)
    if tool_status is not None:
        for s in tool_status:
            if s not in _TOOL_STATUSES:
                raise AsmError("validation_error", f"status contains unsupported value: {s!r} "
                                                   f"(allowed: {_TOOL_STATUSES})")
    f = _Filters.of(session_id, run_id, provider, model, run_status, None, None)
    _check_statuses(f.status, RunStatus, "run_status")
    lf = _filtered_events(_resolve_store(store), f, _TOOL_TYPES)
    base = lf.select(
        "session_id", "run_id", "sequence_number", "timestamp", "provider",
        pl.col("type").cast(pl.String).alias("type"),
        _jp("data", "tool_call_id").alias("tool_call_id"),
        _jp("data", "tool_name").alias("tool_name"),
        _jp("data", "tool_input").alias("input"),
        _jp("data", "tool_output").alias("output"),
        _jp("data", "reason").alias("reason"),
        _jp("data", "status").alias("end_mark"),
    ).collect()
    keys = ["session_id", "run_id", "tool_call_id"]
    starts = (base.filter(pl.col("type") == "tool_call_started")
              .unique(subset=keys, keep="first", maintain_order=True)
              .select(*keys, "sequence_number", pl.col("timestamp").alias("started_at"), "tool_name", "input",
                      "provider"))
    ends = (base.filter(pl.col("type") != "tool_call_started")
            .unique(subset=keys, keep="last", maintain_order=True)
            .select(*keys, pl.col("timestamp").alias("finished_at"),
                    pl.when(pl.col("type") == "tool_call_completed").then(pl.lit("completed"))
                    .when(pl.col("end_mark") == "unfinished").then(pl.lit("unfinished"))
                    .otherwise(pl.lit("failed")).alias("end_status"),
                    pl.col("tool_name").alias("end_tool_name"), pl.col("input").alias("end_input"),
                    "output", "reason", pl.col("provider").alias("end_provider"),
                    pl.col("sequence_number").alias("end_sequence_number")))
    df = starts.join(ends, on=keys, how="full", coalesce=True, nulls_equal=True)
    df = df.with_columns(
        tool_name=pl.coalesce("tool_name", "end_tool_name").cast(pl.Categorical),
        input=pl.coalesce("input", "end_input"),
        provider=pl.coalesce(pl.col("provider").cast(pl.String), pl.col("end_provider").cast(pl.String))
        .cast(pl.Categorical),
        started_at=pl.coalesce("started_at", "finished_at"),
        sequence_number=pl.coalesce("sequence_number", "end_sequence_number"),
        status=pl.coalesce("end_status", pl.lit("running")).cast(pl.Enum(_TOOL_STATUSES)),
    ).with_columns(
        summary=_summary_expr(pl),
        duration_ms=(pl.col("finished_at") - pl.col("started_at")).dt.total_microseconds() / 1000.0,
        input_size=pl.col("input").str.len_chars().cast(pl.Int64),
        output_size=pl.col("output").str.len_chars().cast(pl.Int64),
    )
    exprs = []
    if tool_status is not None:
        exprs.append(pl.col("status").cast(pl.String).is_in(tool_status))
    tn = _as_list(tool_name)
    if tn is not None:
        exprs.append(pl.col("tool_name").cast(pl.String).is_in(tn))
    since_, until_ = _to_utc(since, "since"), _to_utc(until, "until")
    if since_ is not None:
        exprs.append(pl.col("started_at") >= since_)
    if until_ is not None:
        exprs.append(pl.col("started_at") < until_)
    if exprs:
        df = df.filter(*exprs)
    cols = ["session_id", "run_id", "tool_call_id", "tool_name", "summary", "status", "started_at", "finished_at",
            "duration_ms", "input", "input_size", "output_size", "reason", "provider"]
    if include_output:
        cols.append("output")
    df = df.sort("session_id", "sequence_number", nulls_last=True).select(cols)
    return _finish(df, backend)
