"""Sinks: where rendered text and raw events go (docs/rendering.md).

- ``TTYSink``: writes text to a terminal / stdout (never closes it).
- ``FileSink``: writes text with ANSI sequences stripped to a path or an open text stream.
- ``JSONLSink``: one JSON line per event, ``mode="full"`` or ``"compact"``; ignores text.
- ``CallbackSink``: calls ``callback(event, text)`` per event; a raising callback is logged.
- ``PubSubSink``: broadcasts ``(wrapper, session_id, event)`` tuples to topics.

Every sink has ``write(text)``, ``write_event(event, text)``, ``flush()``, ``close()``.
Construction problems raise ``AsmError("validation_error", <reason>)``. The notebook's
``WidgetSink`` lives in ``asm_nb.notebook.widgets`` (it needs ipywidgets).

Standard library only; imports ``asm_nb.core`` and ``rendering.studio`` / ``renderers``.
"""

from __future__ import annotations

import inspect
import io as _io
import json
import logging
import os
import re
import sys
import threading
import time
from datetime import datetime
from typing import Any, Callable, Mapping, TextIO

from ..core.errors import AsmError
from ..core.serialization import first_set, format_datetime, to_jsonable, utc_now
from .renderers import short_model, short_reason
from .studio import compact_json, event_view, is_number, truncate

__all__ = ["TTYSink", "FileSink", "JSONLSink", "CallbackSink", "PubSubSink", "strip_ansi", "ANSI_RE",
           "jsonl_full_line", "jsonl_compact_line"]

log = logging.getLogger(__name__)

ANSI_RE = re.compile(r"\x1b\[[0-9;]*[mABCDHJK]|\r(?!\n)")


def strip_ansi(text: str) -> str:
    """Remove colours, cursor moves, erase-line and a carriage return not followed by ``\\n``.

    >>> strip_ansi("line one\\r\\x1b[2Kline two\\n")
    'line oneline two\\n'
    """
    return ANSI_RE.sub("", text)


def _fsync(stream: Any) -> None:
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError, _io.UnsupportedOperation):
        return
    try:
        os.fsync(fd)
    except OSError:  # pipes and ttys cannot be fsynced
        pass


def _open(path: Any) -> TextIO:
    try:
        return open(os.fspath(path), "w", encoding="utf-8")
    except (OSError, TypeError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise AsmError("validation_error", f"Failed to open {path}: {reason}") from exc


class TTYSink:
    """Writes text to ``device`` (default: the *current* ``sys.stdout``, looked up at each
    write so it follows the active Jupyter cell). ``close`` never closes the device."""

    def __init__(self, device: TextIO | None = None) -> None:
        self._device = device

    @property
    def device(self) -> TextIO:
        return self._device if self._device is not None else sys.stdout

    def write(self, text: str) -> None:
        """Write ``text`` as is."""
        if text:
            self.device.write(text)

    def write_event(self, event: Any, text: str) -> None:
        """Write the rendered ``text`` (the event itself is not used)."""
        self.write(text)

    def flush(self) -> None:
        """Flush the device."""
        try:
            self.device.flush()
        except (AttributeError, ValueError):
            pass

    def close(self) -> None:
        """Nothing: the device is not ours."""


class FileSink:
    """Writes text with ANSI sequences stripped. ``io`` (an open text stream, not owned,
    ``path`` ignored) or ``path`` (opened for writing, truncated, UTF-8, owned)."""

    def __init__(self, path: str | os.PathLike | None = None, io: TextIO | None = None) -> None:
        if io is not None:
            self._io, self._owned = io, False
        elif path is not None:
            self._io, self._owned = _open(path), True
        else:
            raise AsmError("validation_error", "path or io option is required")
        self.path = path if io is None else None

    def write(self, text: str) -> None:
        """Strip ANSI and write."""
        if text:
            self._io.write(strip_ansi(text))

    def write_event(self, event: Any, text: str) -> None:
        """Strip ANSI from the rendered text and write it."""
        self.write(text)

    def flush(self) -> None:
        """Flush, then ``fsync`` when the stream has a file descriptor."""
        if self._io.closed:
            return
        self._io.flush()
        _fsync(self._io)

    def close(self) -> None:
        """Close the file when this sink opened it."""
        if self._owned and not self._io.closed:
            self._io.close()


def _ts(ev: Mapping[str, Any]) -> str:
    ts = ev.get("timestamp")
    if isinstance(ts, str):
        return ts
    if isinstance(ts, datetime):
        return format_datetime(ts)
    return format_datetime(utc_now())


def jsonl_full_line(event: Any) -> dict:
    """The ``mode="full"`` record: ``ts``, ``type``, ``data``, ``session_id``, ``run_id``
    (top-level None / ``""`` values dropped; ``data`` always kept)."""
    t, d, ev = event_view(event)
    rec = {"ts": _ts(ev), "type": t, "data": to_jsonable(d), "session_id": ev.get("session_id"),
           "run_id": ev.get("run_id")}
    return {k: v for k, v in rec.items() if k == "data" or (v is not None and v != "")}


def _blen(v: Any) -> int:
    if not isinstance(v, str):
        v = compact_json(v)
    return len(v.encode("utf-8"))


def jsonl_compact_line(event: Any, now_ms: int | None = None) -> dict:
    """The ``mode="compact"`` record ``{"t": epoch ms, "e": {"t": code, …fields}}``."""
    t, d, _ = event_view(event)
    e: dict[str, Any] = {}
    optional: dict[str, Any] = {}
    if t == "run_started":
        code = "rs"
        model = d.get("model")
        optional["m"] = short_model(model) if isinstance(model, str) else (None if model is None else str(model))
    elif t == "message_streamed":
        code = "ms"
        e["l"] = _blen(first_set(d.get("delta"), d.get("content"), ""))
    elif t == "tool_call_started":
        code = "ts"
        optional["n"] = d.get("tool_name")
    elif t == "tool_call_completed":
        code = "tc"
        optional["n"] = d.get("tool_name")
        out = d.get("tool_output")
        optional["l"] = None if out is None else _blen(out)
    elif t == "token_usage_updated":
        code = "tu"
        e["i"], e["o"] = d.get("input_tokens"), d.get("output_tokens")
        if is_number(d.get("cost_usd")):
            e["$"] = d["cost_usd"]
    elif t == "message_received":
        code = "mr"
    elif t == "run_completed":
        code = "rc"
        sr = d.get("stop_reason")
        optional["sr"] = short_reason(sr) if isinstance(sr, str) else (None if sr is None else str(sr))
    elif t in ("run_failed", "error_occurred"):
        code = "rf" if t == "run_failed" else "er"
        msg = d.get("error_message")
        optional["x"] = None if msg is None else truncate(str(msg), 120)
    elif t == "run_cancelled":
        code = "rx"
    else:
        code = t
    e = {"t": code, **e, **{k: v for k, v in optional.items() if v is not None and v != ""}}
    return {"t": int(time.time() * 1000) if now_ms is None else now_ms, "e": to_jsonable(e)}


class JSONLSink:
    """One JSON line per event at ``path`` (``mode="full"`` default, or ``"compact"``).
    ``write(text)`` is ignored: rendered text does not belong in the log."""

    def __init__(self, path: str | os.PathLike | None = None, mode: str = "full") -> None:
        if path is None:
            raise AsmError("validation_error", "path option is required")
        if mode not in ("full", "compact"):
            raise AsmError("validation_error", f"mode must be full or compact, got {mode!r}")
        self.path, self.mode = path, mode
        self._io = _open(path)
        self._lock = threading.Lock()

    def write(self, text: str) -> None:
        """Ignored."""

    def write_event(self, event: Any, text: str) -> None:
        """Append the event's JSON line."""
        rec = jsonl_full_line(event) if self.mode == "full" else jsonl_compact_line(event)
        line = json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n"
        with self._lock:
            self._io.write(line)

    def flush(self) -> None:
        """Flush and ``fsync`` so the lines are on disk."""
        with self._lock:
            if not self._io.closed:
                self._io.flush()
                _fsync(self._io)

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            if not self._io.closed:
                self._io.close()


class CallbackSink:
    """Calls ``callback(event, text)`` for every event. (Python note, part 1 decision 3) a
    callback that raises is logged and the pipeline continues."""

    def __init__(self, callback: Callable[[Any, str], Any] | None = None) -> None:
        if callback is None:
            raise AsmError("validation_error", "callback option is required")
        if not callable(callback) or not _accepts_n(callback, 2):
            raise AsmError("validation_error", "callback must be a 2-arity function")
        self.callback = callback
        self.error_count = 0

    def write(self, text: str) -> None:
        """Ignored."""

    def write_event(self, event: Any, text: str) -> None:
        """``callback(event, text)``; exceptions are logged, counted and swallowed."""
        try:
            self.callback(event, text)
        except Exception:
            self.error_count += 1
            log.exception("CallbackSink callback raised; continuing")

    def flush(self) -> None:
        """Nothing to flush."""

    def close(self) -> None:
        """Nothing to close."""


def _build_topic(event: Mapping[str, Any], prefix: str, scope: str) -> str:
    try:
        from ..pubsub import build_topic  # the broker's own topic rules when present
    except ImportError:
        build_topic = None
    if build_topic is not None:
        return build_topic(event, prefix=prefix, scope=scope)
    sid = first_set(event.get("session_id"), "")
    base = f"{prefix}:session:{sid}"
    if scope == "run":
        return f"{base}:run:{first_set(event.get('run_id'), '')}"
    if scope == "type":
        t = event.get("type")
        return f"{base}:type:{getattr(t, 'value', first_set(t, ''))}"
    return base


class PubSubSink:
    """Broadcasts each event to PubSub topics as ``(wrapper, session_id, event)`` (plus the
    rendered text when ``include_iodata``). Failures are counted, never raised."""

    def __init__(self, pubsub: Any = None, topic: str | None = None, topic_fn: Callable | None = None,
                 prefix: str = "asm", scope: str = "session", message_wrapper: str = "asm_event",
                 include_iodata: bool = False, dispatcher: Any = None) -> None:
        if pubsub is None:
            raise AsmError("validation_error", "pubsub option is required")
        if topic is not None and topic_fn is not None:
            raise AsmError("validation_error", "topic and topic_fn are mutually exclusive")
        if topic_fn is not None and (not callable(topic_fn) or not _accepts_n(topic_fn, 1)):
            raise AsmError("validation_error", "topic_fn must be a 1-arity function")
        if scope not in ("session", "run", "type"):
            raise AsmError("validation_error", "scope must be session, run, or type")
        self.pubsub, self.topic, self.topic_fn = pubsub, topic, topic_fn
        self.prefix, self.scope, self.message_wrapper = prefix, scope, message_wrapper
        self.include_iodata, self.dispatcher = include_iodata, dispatcher
        self.broadcast_count = 0
        self.error_count = 0

    def _topics(self, event: Mapping[str, Any]) -> list[str]:
        if self.topic is not None:
            return [self.topic]
        if self.topic_fn is not None:
            out = self.topic_fn(event)
            return [out] if isinstance(out, str) else list(out)
        return [_build_topic(event, self.prefix, self.scope)]

    def write(self, text: str) -> None:
        """Ignored."""

    def write_event(self, event: Any, text: str) -> None:
        """Broadcast to every topic; count successes and failures."""
        ev = event if isinstance(event, Mapping) else event_view(event)[2]
        msg: tuple = (self.message_wrapper, ev.get("session_id"), event)
        if self.include_iodata:
            msg = (*msg, text)
        try:
            topics = self._topics(ev)
        except Exception:
            self.error_count += 1
            log.exception("PubSubSink topic_fn raised")
            return
        for topic in topics:
            try:
                if self.dispatcher is not None:
                    result = self.dispatcher.broadcast(self.pubsub, topic, msg)
                else:
                    result = self.pubsub.broadcast(topic, msg)
            except Exception:
                self.error_count += 1
                log.exception("PubSubSink broadcast to %s raised", topic)
                continue
            if _is_error(result):
                self.error_count += 1
            else:
                self.broadcast_count += 1

    def flush(self) -> None:
        """Nothing to flush."""

    def close(self) -> None:
        """Nothing to close."""


def _is_error(result: Any) -> bool:
    return (result is False or isinstance(result, BaseException)
            or (isinstance(result, tuple) and len(result) >= 1 and result[0] == "error"))


def _accepts_n(fn: Callable, n: int) -> bool:
    try:
        inspect.signature(fn).bind(*([None] * n))
    except TypeError:
        return False
    except ValueError:  # builtins without a signature: trust them
        return True
    return True
