"""Rich display of finished runs: ``run_result_mimebundle(result)`` → a MIME bundle with
``text/plain``, ``text/html`` and ``application/vnd.asm.run+json``. ``RunResult`` calls it
from ``_repr_mimebundle_``.

Input: ``RunResult.to_dict()`` (or the ``RunResult`` itself, or an execution-result dict):
``run_id``, ``session_id``, ``status``, ``output``, ``token_usage``, ``cost_usd``, ``error``,
``duration_ms``, ``provider``, ``model``, ``tool_calls``, ``events`` (event dicts).

``text/plain`` is the Studio rendering of the events (no colours, ids, timestamps or timings:
deterministic, so nbval can compare it); ``text/html`` the same view as the live widget's static
snapshot. Every string is redacted with the effective redaction config.

``application/vnd.asm.run+json`` schema (``version`` 1)::

    {
      "schema": "asm.run", "version": 1,
      "run": {"run_id": str|null, "session_id": str|null, "provider": str|null, "model": str|null,
              "status": str, "stop_reason": str|null, "stop_reason_text": str|null,
              "duration_ms": int|null,
              "error": {"code": str|null, "message": str}|null},
      "output": str,                                   # final assistant text
      "transcript": [                                  # in event order
        {"role": "user"|"assistant", "content": str},
        {"role": "tool", "tool_call_id": str, "tool_name": str, "content": str, "status": str}
      ],
      "tool_calls": [{"id": str, "name": str, "input": object, "output": any, "status":
                      "running"|"completed"|"failed", "exit_code": int|null, "duration_ms": int|null,
                      "summary": str, "icon": str, "approval": str|null}],
                                                       # summary: the plain-language row text
                                                       # ("Read notes.txt · 17 B · 0.2 s")
      "usage": {"input_tokens": int, "output_tokens": int, "cache_read_tokens": int,
                "cache_creation_tokens": int, "total_tokens": int},
      "cost_usd": float|null
    }

With ``deterministic=True`` the ids (``run_id``, ``session_id``, ``tool_calls[].id``,
``transcript[].tool_call_id``) are null, ``duration_ms`` values null (also inside tool outputs,
and no durations in the rows' text), so a replayed run gives byte-identical outputs.

Imports ``asm_nb.core`` and the rest of ``asm_nb.rendering`` (``runview``); no ipywidgets, so
the API, the Lab server extension and the notebook all render runs through it.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..core.serialization import first_set, to_jsonable
from ..core.usage import TOKEN_KEYS
from .studio import ToolSummary, event_view, is_number, normalize_output
from .runview import RunState, make_redactor, result_fields, stop_reason_words

__all__ = ["RUN_MIME", "run_result_mimebundle", "run_summary"]

RUN_MIME = "application/vnd.asm.run+json"
SCHEMA_VERSION = 1


def _events(r: Mapping[str, Any]) -> list:
    events = r.get("events") or []
    return [e if isinstance(e, Mapping) else (e.to_dict() if hasattr(e, "to_dict") else e) for e in events]


def _state(r: Mapping[str, Any], redact: Any) -> RunState:
    st = RunState(provider=r.get("provider"), model=r.get("model"), session_id=r.get("session_id"),
                  run_id=r.get("run_id"), redact=redact, clock=lambda: 0.0)
    for e in _events(r):
        st.apply(e)
    st.finish(r)
    return st


def _transcript(events: list, deterministic: bool) -> list[dict]:
    out: list[dict] = []
    streamed: list[str] = []

    def flush_streamed() -> None:
        if streamed:
            out.append({"role": "assistant", "content": "".join(streamed)})
            streamed.clear()

    for e in events:
        t, d, _ = event_view(e)
        if t == "message_sent":
            flush_streamed()
            out.append({"role": str(first_set(d.get("role"), "user")), "content": str(first_set(d.get("content"), ""))})
        elif t == "message_streamed" and d.get("kind") not in ("reasoning", "plan"):
            streamed.append(str(first_set(d.get("delta"), d.get("content"), "")))
        elif t == "message_received":
            streamed.clear()  # the full message supersedes its chunks
            out.append({"role": str(first_set(d.get("role"), "assistant")), "content": str(first_set(d.get("content"), ""))})
        elif t in ("tool_call_completed", "tool_call_failed"):
            flush_streamed()
            out.append({"role": "tool", "tool_call_id": None if deterministic else d.get("tool_call_id"),
                        "tool_name": d.get("tool_name"), "content": normalize_output(d.get("tool_output")),
                        "status": "failed" if t == "tool_call_failed" or ToolSummary.is_failed(d) else "completed"})
    flush_streamed()
    return out


def run_summary(result: Any, *, deterministic: bool = False, redact: Any = None) -> dict:
    """The ``application/vnd.asm.run+json`` payload (see the module docstring)."""
    r = result_fields(result)
    st = _state(r, redact)
    events = _events(r)
    usage = dict.fromkeys(TOKEN_KEYS, 0)
    usage.update({k: v for k, v in st.usage.items() if k in usage})
    usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
    err = r.get("error")
    error = None
    if err:
        if isinstance(err, Mapping):
            error = {"code": err.get("code"), "message": str(first_set(err.get("message"), ""))}
        else:
            error = {"code": getattr(err, "code", None), "message": str(getattr(err, "message", err))}
    tool_calls = []
    for row in st.tools.values():
        icon, _cls, line = st.tool_line(row, deterministic=deterministic, measured=False)
        output = row.output
        if deterministic and isinstance(output, Mapping) and "duration_ms" in output:
            output = {k: v for k, v in output.items() if k != "duration_ms"}
        tool_calls.append({"id": None if deterministic or row.id.startswith("_anon") else row.id, "name": row.name,
                           "input": row.input, "output": output, "status": row.status,
                           "exit_code": row.exit_code if is_number(row.exit_code) else None,
                           "duration_ms": None if deterministic else row.duration_ms, "summary": line,
                           "icon": icon, "approval": row.approval})
    output = r.get("output")
    if isinstance(output, Mapping):
        output = first_set(output.get("content"), "")
    payload = {
        "schema": "asm.run", "version": SCHEMA_VERSION,
        "run": {"run_id": None if deterministic else r.get("run_id"),
                "session_id": None if deterministic else r.get("session_id"),
                "provider": st.provider, "model": st.model, "status": st.status, "stop_reason": st.stop_reason,
                "stop_reason_text": stop_reason_words(st.stop_reason),
                "duration_ms": None if deterministic else st.duration_ms, "error": error},
        "output": output if isinstance(output, str) else ("" if output is None else str(output)),
        "transcript": _transcript(events, deterministic),
        "tool_calls": tool_calls,
        "usage": usage,
        "cost_usd": st.cost_usd,
    }
    return make_redactor(redact)(to_jsonable(payload))


def run_result_mimebundle(result: Any, *, deterministic: bool = False, redact: Any = None) -> dict:
    """``{"text/plain", "text/html", "application/vnd.asm.run+json"}`` for a finished run.

    >>> b = run_result_mimebundle({"status": "completed", "events": []})
    >>> sorted(b)
    ['application/vnd.asm.run+json', 'text/html', 'text/plain']
    """
    r = result_fields(result)
    st = _state(r, redact)
    return {
        "text/plain": st.plain_text(),
        "text/html": st.static_html(deterministic=True if deterministic else False),
        RUN_MIME: run_summary(r, deterministic=deterministic, redact=redact),
    }
