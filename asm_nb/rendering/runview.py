"""The live-run view *model*: run state built from normalized events, and its HTML / plain-text
renderings. No ipywidgets here: ``notebook/widgets.py`` binds this model to widgets (with a
redraw throttle) and ``mime.py`` renders finished runs from the same code.

State: header (provider, model, status), a transcript of *segments* (streamed text split into
bounded, sealed pieces; one segment per tool call; errors), tool rows keyed by
``tool_call_id``, usage and cost counters, a pending approval request. ``apply(event)``
records which segments changed (``dirty``) so a view re-renders only those.

Text is kept raw and redacted when rendered (``asm_nb.persistence.redaction.redact_map``,
effective config): a secret split across two deltas is still caught, and nothing shown in a
notebook carries it. Sealed segments end on a newline (a ``\\n\\n`` when there is one), so a
secret, which never spans lines, is never cut in two.

Split: the Markdown subset is in ``markdown.py``, the plain-language tool rows and stop-reason /
size / duration / cost words in ``tool_rows.py``, the HTML card sections (``RunHtml``, mixed into
``RunState``, and ``STYLE``) in ``runview_html.py``; this module keeps the state and re-exports
their names.

Imports ``asm_nb.core`` and the rest of ``asm_nb.rendering``; the redactor is imported lazily.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..core.serialization import first_set
from ..core.usage import empty_usage
from .markdown import _fence_lines as _fence_lines
from .markdown import markdown_html as markdown_html
from .renderers import StudioRenderer
from .runview_html import _IO_LIMIT as _IO_LIMIT
from .runview_html import STYLE as STYLE
from .runview_html import RunHtml
from .runview_html import _json_indent as _json_indent
from .runview_html import _pretty as _pretty
from .studio import event_view, is_number
from .tool_rows import _STOP_WORDS as _STOP_WORDS
from .tool_rows import _VERBS as _VERBS
from .tool_rows import cost_words as cost_words
from .tool_rows import duration_words as duration_words
from .tool_rows import size_words as size_words
from .tool_rows import stop_reason_words as stop_reason_words
from .tool_rows import tool_line as tool_line
from .tool_rows import tool_target as tool_target

__all__ = ["RunState", "Segment", "ToolRow", "markdown_html", "make_redactor", "result_fields", "tool_line",
           "stop_reason_words", "size_words", "duration_words",
           "STYLE", "PLAIN_SKIP_TYPES"]

#: Event types the plain-text fallback does not print (Studio would print ``? message_sent``).
PLAIN_SKIP_TYPES = frozenset({"message_sent", "turn_completed"})

# ---------------------------------------------------------------------------------------------
# Redaction


def make_redactor(redact: Any = None) -> Callable[[Any], Any]:
    """A function redacting any value (str, dict, list): ``redact`` None/True → effective global
    config, a dict → that redaction config, False → identity. Missing redactor → identity."""
    if redact is False:
        return lambda v: v
    try:
        from ..persistence.redaction import redact_map
    except ImportError:  # pragma: no cover - the redactor ships with asm_nb
        return lambda v: v
    cfg = redact if isinstance(redact, Mapping) else None

    def apply(value: Any) -> Any:
        if value is None or isinstance(value, (bool, int, float)):
            return value
        return redact_map({"v": value}, cfg)["v"]

    return apply


# ---------------------------------------------------------------------------------------------
# State


@dataclass
class ToolRow:
    """One tool call as the view shows it."""

    id: str
    name: str = "tool"
    input: Any = field(default_factory=dict)
    output: Any = None
    status: str = "running"  # running | completed | failed | cancelled
    exit_code: Any = None
    reason: str | None = None
    started_at: float | None = None
    duration_ms: int | None = None  # from the event (deterministic)
    measured_ms: int | None = None  # wall clock between start and end events
    approval: str | None = None  # requested | granted | denied

    def info(self) -> dict:
        out = self.output if isinstance(self.output, Mapping) else {}
        return {"name": self.name, "input": self.input if isinstance(self.input, Mapping) else {},
                "output": self.output, "exit_code": first_set(self.exit_code, out.get("exit_code")),
                "duration_ms": self.duration_ms, "status": self.status}


@dataclass
class Segment:
    """A piece of the transcript: text (``text``/``reasoning``/``error``) or a tool row."""

    kind: str
    chunks: list = field(default_factory=list)
    length: int = 0
    in_fence: bool = False
    sealed: bool = False
    tool_id: str | None = None

    @property
    def raw(self) -> str:
        if len(self.chunks) > 1:
            self.chunks[:] = ["".join(self.chunks)]
        return self.chunks[0] if self.chunks else ""


def result_fields(result: Any) -> dict:
    """A run result (``RunResult``, its ``to_dict()``, an ``ExecutionResult`` dict…) as a dict."""
    if result is None:
        return {}
    if isinstance(result, Mapping):
        return dict(result)
    to_dict: Callable[[], Any] | None = getattr(result, "to_dict", None)
    if callable(to_dict):
        try:
            return dict(to_dict())
        except Exception:
            pass
    keys = ("run_id", "session_id", "status", "output", "token_usage", "cost_usd", "error", "duration_ms",
            "provider", "model", "events")
    return {k: getattr(result, k) for k in keys if hasattr(result, k)}


class RunState(RunHtml):
    """Run state built from events. Not thread-safe on its own (``RunWidget`` locks around it).

    ``seal_chars``: a streamed text segment is sealed (never re-sent) once it holds at least this
    many characters and a newline to cut at; the open tail stays small, so each redraw is too.
    """

    def __init__(self, *, provider: str | None = None, model: str | None = None, session_id: str | None = None,
                 run_id: str | None = None, seal_chars: int = 2000, redact: Any = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.provider, self.model = provider, model
        self.session_id, self.run_id = session_id, run_id
        self.status = "waiting"
        self.stop_reason: str | None = None
        self.error: str | None = None
        self.seal_chars = max(64, int(seal_chars))
        self.clock = clock
        self.redact = make_redactor(redact)
        self.segments: list[Segment] = []
        self.tools: dict[str, ToolRow] = {}
        self.usage = empty_usage()
        self.cost_usd: float | None = None
        self.approval: dict | None = None
        self.event_count = 0
        self.finished = False
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.duration_ms: int | None = None
        self.dirty: set[int] = set()
        self.header_dirty = True
        self.counters_dirty = True
        self.approval_dirty = True
        self._open_text: int | None = None  # index of the open text segment
        self._streamed_since_received = False
        self._studio = StudioRenderer(color=False, tty=False, skip_types=PLAIN_SKIP_TYPES)
        self._plain: list[str] = []
        self._tool_seq = 0

    # -- events ---------------------------------------------------------------------------------

    def apply(self, event: Any) -> None:
        """Fold one normalized event into the state."""
        t, d, ev = event_view(event)
        self.event_count += 1
        if t == "run_started" and not d.get("model") and (ev.get("provider") or self.provider):
            # "● shell session started", not "● unknown session started" (as the text view)
            event = {**ev, "data": {**d, "model": ev.get("provider") or self.provider}}
        self._plain.append(self._studio.render_event(event))
        if self.started_at is None:
            self.started_at = self.clock()
        if self.provider is None and ev.get("provider"):
            self.provider = ev.get("provider")
            self.header_dirty = True
        if self.session_id is None and ev.get("session_id"):
            self.session_id = ev.get("session_id")
        if self.run_id is None and ev.get("run_id"):
            self.run_id = ev.get("run_id")
        if self.status == "waiting":
            self.status = "running"
            self.header_dirty = True
        handler = getattr(self, "_on_" + t, None)
        if handler is not None:
            handler(d)

    def _on_run_started(self, d: dict) -> None:
        model = first_set(d.get("confirmed_model"), d.get("model"))
        if model is not None and model != self.model:
            self.model = str(model)
            self.header_dirty = True

    def _on_message_streamed(self, d: dict) -> None:
        text = first_set(d.get("delta"), d.get("content"), "")
        text = text if isinstance(text, str) else str(text)
        if text == "":
            return
        if d.get("kind") in ("reasoning", "plan"):  # thinking and plans are not the reply text
            self._append_text("reasoning", text)
        else:
            self._append_text("text", text)
            self._streamed_since_received = True

    def _on_message_received(self, d: dict) -> None:
        if not self._streamed_since_received:
            content = d.get("content")
            if isinstance(content, str) and content:
                self._append_text("text", content)
        self._streamed_since_received = False
        self._close_text()

    def _on_tool_call_started(self, d: dict) -> None:
        row = self._row(d)
        row.status = "running"
        row.started_at = self.clock()
        self.counters_dirty = True

    def _on_tool_call_completed(self, d: dict, failed: bool = False) -> None:
        row = self._row(d)
        if "tool_output" in d:
            row.output = d.get("tool_output")
        out = row.output if isinstance(row.output, Mapping) else {}
        row.exit_code = first_set(d.get("exit_code"), out.get("exit_code"), row.exit_code)
        dur = first_set(d.get("duration_ms"), out.get("duration_ms"))
        row.duration_ms = dur if isinstance(dur, int) and not isinstance(dur, bool) else row.duration_ms
        if row.started_at is not None:
            row.measured_ms = int((self.clock() - row.started_at) * 1000)
        status = first_set(d.get("status"), out.get("status"))
        code = row.exit_code
        bad_code = isinstance(code, int) and not isinstance(code, bool) and code != 0
        row.status = ("unfinished" if d.get("status") == "unfinished"
                      else "failed" if failed or status == "failed" or bad_code else "completed")
        row.reason = d.get("reason") if isinstance(d.get("reason"), str) else row.reason
        self.counters_dirty = True

    def _on_tool_call_failed(self, d: dict) -> None:
        self._on_tool_call_completed(d, failed=True)

    def _on_token_usage_updated(self, d: dict) -> None:
        for key in self.usage:
            v = d.get(key)
            if is_number(v):
                self.usage[key] += int(v)
        if is_number(d.get("cost_usd")):
            self.cost_usd = (self.cost_usd or 0.0) + float(d["cost_usd"])
        self.counters_dirty = True

    def _on_run_completed(self, d: dict) -> None:
        self._close_text()
        self.status = "completed"
        self.stop_reason = d.get("stop_reason") if isinstance(d.get("stop_reason"), str) else None
        usage = d.get("token_usage")
        if isinstance(usage, Mapping):  # the run total is exact
            for key in self.usage:
                if is_number(usage.get(key)):
                    self.usage[key] = int(usage[key])
        for key in ("total_cost_usd", "cost_usd"):
            if is_number(d.get(key)) and d[key] > 0:
                self.cost_usd = float(d[key])
                break
        if isinstance(d.get("duration_ms"), int):
            self.duration_ms = d["duration_ms"]
        self.header_dirty = self.counters_dirty = True

    def _on_run_failed(self, d: dict) -> None:
        self._close_text()
        self.status = "failed"
        self.error = str(first_set(d.get("error_message"), "unknown error"))
        self.header_dirty = True

    def _on_run_cancelled(self, d: dict) -> None:
        self._close_text()
        self.status = "cancelled"
        self.header_dirty = True
        if self.approval is not None and d.get("reason") != "approval_requested":
            self.approval = None
            self.approval_dirty = True

    def _on_error_occurred(self, d: dict) -> None:
        self._close_text()
        msg = str(first_set(d.get("error_message"), "unknown error"))
        code = d.get("error_code")
        seg = Segment("error", [f"{getattr(code, 'value', code)}: {msg}" if code else msg], sealed=True)
        seg.length = len(seg.chunks[0])
        self._add(seg)

    def _on_tool_approval_requested(self, d: dict) -> None:
        self.approval = {k: d.get(k) for k in ("tool_name", "tool_call_id", "tool_input", "policy_name",
                                                "violation_kind")}
        if d.get("tool_call_id") is not None:
            row = self.tools.get(str(d["tool_call_id"]))
            if row is not None:
                row.approval = "requested"
                self._mark_tool(row.id)
        self.status = "awaiting approval"
        self.header_dirty = self.approval_dirty = True

    def _on_tool_approval_granted(self, d: dict, decision: str = "granted") -> None:
        tcid = first_set(d.get("tool_call_id"), (self.approval or {}).get("tool_call_id"))
        if tcid is not None and str(tcid) in self.tools:
            self.tools[str(tcid)].approval = decision
            self._mark_tool(str(tcid))
        self.approval = None
        if self.status == "awaiting approval":
            self.status = "running"
        self.header_dirty = self.approval_dirty = True

    def _on_tool_approval_denied(self, d: dict) -> None:
        self._on_tool_approval_granted(d, decision="denied")

    # -- finishing --------------------------------------------------------------------------------

    def finish(self, result: Any = None) -> None:
        """Final state from the run result (status, exact usage and cost); rows still running
        are shown as not finished."""
        r = result_fields(result)
        status = r.get("status")
        status = getattr(status, "value", status)
        err = r.get("error")
        if isinstance(status, str) and status:
            self.status = status
        elif err:
            self.status = "failed"
        elif self.status in ("waiting", "running", "awaiting approval"):
            self.status = "completed"
        if err and not self.error:
            self.error = str(err.get("message", err)) if isinstance(err, Mapping) else str(getattr(err, "message", err))
        usage = r.get("token_usage")
        if isinstance(usage, Mapping):
            for key in self.usage:
                if is_number(usage.get(key)):
                    self.usage[key] = int(usage[key])
        if is_number(r.get("cost_usd")):
            self.cost_usd = float(r["cost_usd"])
        if isinstance(r.get("duration_ms"), int):
            self.duration_ms = r["duration_ms"]
        for k in ("provider", "model"):
            if isinstance(r.get(k), str) and r[k] and getattr(self, k) is None:
                setattr(self, k, r[k])
        for row in self.tools.values():
            if row.status == "running":
                row.status = "unfinished"  # no result came: not a failure of the tool
                row.reason = row.reason or ("cancelled" if self.status == "cancelled" else "no result")
                self._mark_tool(row.id)
        self._close_text()
        if self.approval is not None and self.status not in ("awaiting approval",):
            self.approval = None
            self.approval_dirty = True
        self.finished = True
        self.ended_at = self.clock()
        self.header_dirty = self.counters_dirty = True

    # -- transcript helpers -----------------------------------------------------------------------

    def _add(self, seg: Segment) -> int:
        self.segments.append(seg)
        idx = len(self.segments) - 1
        self.dirty.add(idx)
        return idx

    def _close_text(self) -> None:
        if self._open_text is not None:
            self.segments[self._open_text].sealed = True
            self.dirty.add(self._open_text)
            self._open_text = None

    def _append_text(self, kind: str, text: str) -> None:
        idx = self._open_text
        if idx is not None and self.segments[idx].kind != kind:
            self._close_text()
            idx = None
        if idx is None:
            idx = self._add(Segment(kind))
            self._open_text = idx
        seg = self.segments[idx]
        seg.chunks.append(text)
        seg.length += len(text)
        self.dirty.add(idx)
        if seg.length >= self.seal_chars:
            self._maybe_seal(idx)

    def _maybe_seal(self, idx: int) -> None:
        seg = self.segments[idx]
        raw = seg.raw
        lo = self.seal_chars // 2
        cut = raw.rfind("\n\n", lo)
        cut = cut + 2 if cut >= 0 else raw.rfind("\n", lo) + 1
        if cut <= 0:
            if seg.length < 4 * self.seal_chars:
                return  # one long line: wait for a newline a while longer
            sp = raw.rfind(" ", lo)
            cut = sp + 1 if sp >= 0 else len(raw)
        head, tail = raw[:cut], raw[cut:]
        seg.chunks[:] = [head]
        seg.length = len(head)
        seg.sealed = True
        nxt = Segment(seg.kind, [tail] if tail else [], len(tail),
                      in_fence=seg.in_fence ^ (_fence_lines(head) % 2 == 1))
        self._open_text = self._add(nxt)

    def _row(self, d: dict) -> ToolRow:
        tcid = d.get("tool_call_id")
        if tcid is None:
            self._tool_seq += 1
            tcid = f"_anon{self._tool_seq}"
        tcid = str(tcid)
        row = self.tools.get(tcid)
        if row is None:
            self._close_text()
            row = ToolRow(tcid)
            self.tools[tcid] = row
            self._add(Segment("tool", tool_id=tcid))
        if d.get("tool_name") is not None:
            row.name = str(d["tool_name"])
        if isinstance(d.get("tool_input"), Mapping) and (d["tool_input"] or not row.input):
            row.input = d["tool_input"]
        self._mark_tool(tcid)
        return row

    def _mark_tool(self, tcid: str) -> None:
        for i in range(len(self.segments) - 1, -1, -1):
            if self.segments[i].tool_id == tcid:
                self.dirty.add(i)
                return

    # -- readings ---------------------------------------------------------------------------------

    @property
    def text(self) -> str:
        """The assistant's streamed text so far (redacted), across all text segments."""
        return self.redact("".join(s.raw for s in self.segments if s.kind == "text"))

    def take_dirty(self) -> list[int]:
        """Indices of segments changed since the last call (ascending); clears the set."""
        out = sorted(self.dirty)
        self.dirty.clear()
        return out

    def plain_text(self) -> str:
        """Deterministic plain text (Studio renderer, no colours, no ids, no timings), redacted."""
        body = "".join(self._plain)
        if self.finished and self.status in ("failed", "cancelled") and self.error is not None \
                and self.error not in body:
            body += f"\n  ✗ {self.error}\n"
        if not body.strip():
            body = f"asm run: {self.status}"
        return self.redact(body)
