"""Write test cassettes by hand, and find the example cassettes that ship with asm_nb.

A cassette (format: ``asm_nb.providers.replay``) is a recorded run that ``provider="replay"``
plays back offline. Build one from event dicts, or from the small event builders below::

    from asm_nb.testing import cassettes as c

    cas = c.build_cassette([
        *c.start(model="claude-sonnet-4-5", prompt="Say hi"),
        *c.assistant_text("Hello there!", chunks=3),
        c.usage(input_tokens=12, output_tokens=4),
        c.completed(),
    ], provider="claude", model="claude-sonnet-4-5")
    cas.write(tmp_path / "hi.jsonl")

Events without ``t_ms`` get ``index * step_ms``. Packaged examples: ``example_cassette("hello")``
(streamed answer, one ``Read`` tool call, claude-sonnet-4-5 usage), ``"tools"`` (several tool
calls, one failing) and ``"failure"`` (a rate-limited run).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..core.errors import AsmError
from ..core.events import is_valid_type
from ..core.serialization import to_jsonable
from ..providers.replay import CASSETTE_VERSION, Cassette, CassetteEvent, load_cassette

__all__ = ["build_cassette", "write_cassette", "load_cassette", "example_cassette", "example_cassettes",
           "EXAMPLES_DIR", "start", "assistant_text", "tool_call", "usage", "completed", "failed"]

EXAMPLES_DIR = Path(__file__).with_name("cassettes")
_ENVELOPE = {"session_id", "run_id", "provider", "timestamp", "sequence_number", "id", "correlation_id",
             "schema_version"}


def build_cassette(events: Iterable[Mapping[str, Any] | tuple], *, provider: str = "claude",
                   model: str | None = None, input: Any = None, output: Mapping[str, Any] | None = None,
                   error: AsmError | Mapping[str, Any] | None = None, recorded_at: str | None = None,
                   step_ms: int = 50) -> Cassette:
    """A ``Cassette`` from event dicts (``{"type", "data", "t_ms"?, "metadata"?}``; full event
    envelopes are accepted and stripped) or ``(type, data)`` tuples.

    ``error`` makes the replay raise that error after the events; ``output`` is laid over the
    output rebuilt from the events.
    """
    header: dict[str, Any] = {"asm_cassette": CASSETTE_VERSION, "provider": provider, "model": model,
                              "recorded_at": recorded_at or "2025-01-01T00:00:00.000000Z"}
    if input is not None:
        header["input"] = to_jsonable(input)
    if output is not None:
        header["output"] = to_jsonable(dict(output))
    if isinstance(error, AsmError):
        header["error"] = {k: v for k, v in {"code": str(error.code), "message": error.message,
                                             "details": to_jsonable(error.details) or None,
                                             "provider_error": to_jsonable(error.provider_error)}.items()
                           if v is not None}
    elif isinstance(error, Mapping):
        header["error"] = to_jsonable(dict(error))
    out: list[CassetteEvent] = []
    last_t = 0
    for i, ev in enumerate(events):
        if isinstance(ev, tuple):
            etype, data = ev[0], (ev[1] if len(ev) > 1 else {})
            t_ms, meta = None, None
        elif isinstance(ev, Mapping):
            etype, data = ev.get("type"), ev.get("data") or {}
            t_ms, meta = ev.get("t_ms"), ev.get("metadata")
            extra = set(ev) - _ENVELOPE - {"type", "data", "t_ms", "metadata"}
            if extra:
                raise AsmError("validation_error", f"event {i}: unexpected keys {sorted(extra)}")
        else:
            raise AsmError("validation_error", f"event {i}: expected a dict or a (type, data) tuple, got {ev!r}")
        etype = getattr(etype, "value", etype)
        if not is_valid_type(etype):
            raise AsmError("validation_error", f"event {i}: unknown event type {etype!r}")
        if not isinstance(data, Mapping):
            raise AsmError("validation_error", f"event {i}: data must be a dict")
        t = int(t_ms) if isinstance(t_ms, (int, float)) and not isinstance(t_ms, bool) else i * step_ms
        last_t = max(last_t, t)
        out.append(CassetteEvent(t_ms=last_t, type=etype, data=to_jsonable(dict(data)),
                                 metadata=to_jsonable(dict(meta)) if isinstance(meta, Mapping) and meta else None))
    return Cassette(header=header, events=tuple(out))


def write_cassette(path: str | os.PathLike, events: Iterable[Mapping[str, Any] | tuple] | Cassette,
                   **header: Any) -> Path:
    """``build_cassette(events, **header).write(path)``; a ``Cassette`` is written as is."""
    cas = events if isinstance(events, Cassette) else build_cassette(events, **header)
    return cas.write(path)


def example_cassettes() -> list[str]:
    """Names of the packaged example cassettes."""
    return sorted(p.stem for p in EXAMPLES_DIR.glob("*.jsonl"))


def example_cassette(name: str) -> Path:
    """Path of a packaged example cassette (``"hello"``, ``"tools"``, ``"failure"``)."""
    p = EXAMPLES_DIR / f"{name.removesuffix('.jsonl')}.jsonl"
    if not p.is_file():
        raise AsmError("not_found", f"No example cassette named {name!r}; available: {', '.join(example_cassettes())}")
    return p


# -- event builders: each returns event dicts ready for build_cassette ------------------------


def start(*, model: str | None = None, prompt: str | None = None, t_ms: int | None = None,
          **data: Any) -> list[dict]:
    """``run_started`` (with ``model`` and any extra data) and, with ``prompt``, a ``message_sent``."""
    started = {**({"model": model} if model else {}), **data}
    evs = [_ev("run_started", started, t_ms)]
    if prompt is not None:
        evs.append(_ev("message_sent", {"role": "user", "content": prompt}, t_ms))
    return evs


def assistant_text(text: str, *, chunks: int | Sequence[str] = 1, t_ms: int | None = None,
                   step_ms: int | None = None) -> list[dict]:
    """``message_streamed`` chunks of ``text`` followed by its ``message_received``."""
    if isinstance(chunks, int):
        n = max(1, chunks)
        size = -(-len(text) // n) or 1
        parts = [text[i:i + size] for i in range(0, len(text), size)] or [""]
    else:
        parts = list(chunks)
    evs = []
    for k, part in enumerate(parts):
        t = None if t_ms is None else t_ms + k * (step_ms or 0)
        evs.append(_ev("message_streamed", {"content": part, "delta": part}, t))
    t_end = None if t_ms is None else t_ms + len(parts) * (step_ms or 0)
    evs.append(_ev("message_received", {"content": text, "role": "assistant"}, t_end))
    return evs


def tool_call(name: str, input: Mapping[str, Any] | None = None, output: Any = None, *, id: str,
              is_error: bool = False, t_ms: int | None = None, duration_ms: int = 0) -> list[dict]:
    """``tool_call_started`` then ``tool_call_completed`` (or ``tool_call_failed`` with ``is_error``)."""
    tin = dict(input or {})
    end = {"tool_call_id": id, "tool_name": name, "tool_input": tin, "tool_output": output}
    if is_error:
        end["is_error"] = True
    return [_ev("tool_call_started", {"tool_call_id": id, "tool_name": name, "tool_input": tin}, t_ms),
            _ev("tool_call_failed" if is_error else "tool_call_completed", end,
                None if t_ms is None else t_ms + duration_ms)]


def usage(input_tokens: int = 0, output_tokens: int = 0, cache_read_tokens: int = 0,
          cache_creation_tokens: int = 0, *, t_ms: int | None = None, **extra: Any) -> dict:
    """A ``token_usage_updated`` increment."""
    return _ev("token_usage_updated", {"input_tokens": input_tokens, "output_tokens": output_tokens,
                                       "cache_read_tokens": cache_read_tokens,
                                       "cache_creation_tokens": cache_creation_tokens, **extra}, t_ms)


def completed(stop_reason: str = "end_turn", *, t_ms: int | None = None, **data: Any) -> dict:
    """``run_completed``."""
    return _ev("run_completed", {"stop_reason": stop_reason, **data}, t_ms)


def failed(code: str, message: str, *, t_ms: int | None = None, **data: Any) -> list[dict]:
    """``error_occurred`` + ``run_failed`` with ``error_code`` / ``error_message``."""
    d = {"error_code": code, "error_message": message, **data}
    return [_ev("error_occurred", dict(d), t_ms), _ev("run_failed", dict(d), t_ms)]


def _ev(etype: str, data: Mapping[str, Any], t_ms: int | None) -> dict:
    ev: dict[str, Any] = {"type": etype, "data": dict(data)}
    if t_ms is not None:
        ev["t_ms"] = t_ms
    return ev
