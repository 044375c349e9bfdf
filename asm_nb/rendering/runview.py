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

Imports ``asm_nb.core`` and the rest of ``asm_nb.rendering``; the redactor is imported lazily.
"""

from __future__ import annotations

import html
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..core.serialization import first_set
from ..core.usage import CACHE_CREATION_TOKENS, CACHE_READ_TOKENS, empty_usage
from .renderers import StudioRenderer, short_model
from .studio import (
    compact_json, event_view, format_number, is_number, normalize_output, truncate,
)

__all__ = ["RunState", "Segment", "ToolRow", "markdown_html", "make_redactor", "result_fields", "tool_line",
           "stop_reason_words", "size_words", "duration_words",
           "STYLE", "PLAIN_SKIP_TYPES"]

#: Event types the plain-text fallback does not print (Studio would print ``? message_sent``).
PLAIN_SKIP_TYPES = frozenset({"message_sent", "turn_completed"})
_IO_LIMIT = 4000  # characters of tool input/output shown in an expanded row

STYLE = (
    "<style>"
    ".asm-run{font-family:var(--jp-ui-font-family,system-ui,sans-serif);font-size:var(--jp-ui-font-size1,13px);"
    "line-height:1.4;color:var(--jp-content-font-color1,inherit)}"
    # ipywidgets' HTML rows default to the 28px widget line height: rows looked double-spaced
    ".asm-run .widget-html,.asm-run .widget-html-content{line-height:1.4;height:auto;min-height:0;margin:0}"
    ".asm-run .widget-html-content{display:block}"
    ".asm-run pre{background:var(--jp-layout-color2,#f5f5f5);color:var(--jp-content-font-color1,inherit);"
    "padding:4px 6px;margin:2px 0;white-space:pre-wrap;word-break:break-word;max-height:24em;overflow:auto;"
    "border-radius:3px;line-height:1.35}"
    ".asm-run code{font-family:var(--jp-code-font-family,monospace);font-size:.95em}"
    ".asm-head{font-weight:600}.asm-muted{color:var(--jp-ui-font-color2,#6e7781)}"
    ".asm-ok{color:var(--jp-success-color1,#1a7f37)}.asm-err{color:var(--jp-error-color1,#cf222e)}"
    ".asm-run-i{color:var(--jp-brand-color1,#0969da)}.asm-warn{color:var(--jp-warn-color1,#9a6700)}"
    ".asm-banner{border-left:3px solid var(--jp-error-color1,#cf222e);padding:2px 8px;margin:4px 0;"
    "background:var(--jp-layout-color2,#f6f8fa);color:var(--jp-content-font-color1,inherit)}"
    ".asm-spin{display:inline-block;animation:asm-spin 1s linear infinite}"
    "@keyframes asm-spin{to{transform:rotate(360deg)}}"
    ".asm-tool{margin:1px 0}.asm-tool summary{cursor:pointer;list-style-position:inside}"
    ".asm-tool-icon{display:inline-block;width:1.2em;text-align:center}"
    # ⏸ (U+23F8) is in few fonts (none of DejaVu's): the pause icon is drawn with two bars
    ".asm-pause::before{content:'';display:inline-block;box-sizing:border-box;width:.6em;height:.75em;"
    "border-left:.22em solid currentColor;border-right:.22em solid currentColor;vertical-align:-.05em}"
    # Approve / Deny on the waiting tool row (the live widget): the row text, then the buttons
    ".asm-approval-row>.widget-html{flex:1 1 auto;width:auto;min-width:0}"
    ".asm-approval-row>.widget-button{flex:0 0 auto;width:auto;margin-left:6px}"
    ".asm-run .widget-hbox>.widget-html+.widget-button{margin-left:10px}"  # counters, then Cancel
    ".asm-reasoning{color:var(--jp-ui-font-color2,#6e7781);font-style:italic}"
    ".asm-text p{margin:.25em 0}.asm-text ul,.asm-text ol{margin:.25em 0;padding-left:1.6em}"
    ".asm-text h3,.asm-text h4,.asm-text h5,.asm-text h6{margin:.4em 0 .2em}"
    ".asm-text table{border-collapse:collapse;margin:.3em 0}"
    ".asm-text th,.asm-text td{border:1px solid var(--jp-border-color2,#d0d7de);padding:2px 8px;text-align:left}"
    ".asm-text a{color:var(--jp-content-link-color,#0969da)}"
    "</style>"
)


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
# Markdown-ish HTML (escape first; then a small, safe subset)

_INLINE_CODE = re.compile(r"`([^`\n]+)`")
_BOLD = re.compile(r"\*\*([^*\n]+)\*\*|__([^_\n]+)__")
_ITALIC = re.compile(r"(?<![\w*])\*(?!\s)([^*\n]+?)(?<!\s)\*(?![\w*])|(?<![\w_])_(?!\s)([^_\n]+?)(?<!\s)_(?![\w_])")
_LINK = re.compile(r"\[([^\]\n]+)\]\(((?:https?://|mailto:)[^\s)\\\"'<>]+)\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_BULLET = re.compile(r"^\s*[-*+]\s+(.*)$")
_NUMBERED = re.compile(r"^\s*(\d{1,9})[.)]\s+(.*)$")
_TABLE_SEP = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")


def _emphasis(escaped: str) -> str:
    out = _BOLD.sub(lambda m: f"<b>{m.group(1) or m.group(2)}</b>", escaped)
    return _ITALIC.sub(lambda m: f"<i>{m.group(1) or m.group(2)}</i>", out)


def _inline(escaped: str) -> str:
    """Inline Markdown on already-escaped text: `` `code` ``, links (http/https/mailto only),
    ``**bold**``, ``*italic*`` / ``_italic_``."""
    parts = _INLINE_CODE.split(escaped)
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(f"<code>{part}</code>")
            continue
        pos, chunk = 0, []
        for m in _LINK.finditer(part):
            chunk.append(_emphasis(part[pos:m.start()]))
            href = m.group(2).replace('"', "&quot;")
            chunk.append(f'<a href="{href}" target="_blank" rel="noopener noreferrer">{_emphasis(m.group(1))}</a>')
            pos = m.end()
        chunk.append(_emphasis(part[pos:]))
        out.append("".join(chunk))
    return "".join(out)


def _table_cells(line: str) -> list[str]:
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|"):
        line = line[:-1]
    return [c.strip() for c in line.split("|")]


def markdown_html(text: str, in_fence: bool = False) -> str:
    """Render text as a small, safe Markdown subset (the subset the JupyterLab card shows):
    the text is HTML-escaped first, then fenced code blocks, ``#`` headings, ``-`` bullets,
    ``1.`` numbered lists, pipe tables, paragraphs, `` `code` ``, ``**bold**``, ``*italic*`` and
    ``[links](https://...)`` (http, https and mailto only). ``in_fence`` says the text starts inside
    an open code fence (a continuation segment). Raw HTML in the text stays text.

    >>> markdown_html("Hi <b>\\n\\n```\\nx < 1\\n```")
    '<p>Hi &lt;b&gt;</p><pre><code>x &lt; 1</code></pre>'
    """
    out: list[str] = []
    para: list[str] = []
    items: list[str] = []
    list_tag = "ul"
    code: list[str] | None = [] if in_fence else None
    lines = text.split("\n")

    def end_para() -> None:
        if para:
            out.append("<p>" + "<br>".join(_inline(p) for p in para) + "</p>")
            para.clear()
        if items:
            out.append(f"<{list_tag}>" + "".join(f"<li>{_inline(x)}</li>" for x in items) + f"</{list_tag}>")
            items.clear()

    i = 0
    while i < len(lines):
        raw = lines[i]
        i += 1
        line = html.escape(raw, quote=False)
        if raw.lstrip().startswith("```"):
            if code is None:
                end_para()
                code = []
            else:
                out.append("<pre><code>" + "\n".join(code) + "</code></pre>")
                code = None
            continue
        if code is not None:
            code.append(line)
            continue
        if raw.strip() == "":
            end_para()
            continue
        m = _HEADING.match(line)
        if m:
            end_para()
            n = len(m.group(1))
            out.append(f"<h{n + 2 if n < 5 else 6}>{_inline(m.group(2))}</h{n + 2 if n < 5 else 6}>")
            continue
        if "|" in raw and i < len(lines) and _TABLE_SEP.match(lines[i]) and "|" in lines[i]:
            end_para()
            head = _table_cells(line)
            i += 1
            rows = []
            while i < len(lines) and "|" in lines[i] and lines[i].strip():
                rows.append(_table_cells(html.escape(lines[i], quote=False)))
                i += 1
            th = "".join(f"<th>{_inline(c)}</th>" for c in head)
            body = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r[:len(head)])
                           + "<td></td>" * max(0, len(head) - len(r)) + "</tr>" for r in rows)
            out.append(f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>")
            continue
        m = _BULLET.match(line)
        n = None if m else _NUMBERED.match(line)
        if m or n:
            tag = "ul" if m else "ol"
            if para or (items and tag != list_tag):
                end_para()
            list_tag = tag
            items.append(m.group(1) if m else n.group(2))
            continue
        if items:
            end_para()
        para.append(line)
    end_para()
    if code is not None:
        out.append("<pre><code>" + "\n".join(code) + "</code></pre>")
    return "".join(out)


def _fence_lines(text: str) -> int:
    return sum(1 for line in text.split("\n") if line.lstrip().startswith("```"))


# ---------------------------------------------------------------------------------------------
# Plain-language wording (tool rows, stop reasons), shared by the live view and the saved card

#: Stop reasons as words (providers report ``end_turn``, ``exit_code_0``, ``max_tokens``...).
_STOP_WORDS = {
    "end_turn": "finished", "stop": "finished", "completed": "finished", "stop_sequence": "hit a stop sequence",
    "max_tokens": "hit the output token limit", "length": "hit the output token limit",
    "max_turns": "hit the turn limit", "tool_use": "stopped at a tool call", "refusal": "refused",
    "pause_turn": "paused", "cancelled": "cancelled", "timeout": "timed out", "budget_exceeded": "over budget",
    "content_filter": "blocked by a content filter",
}
_EXIT_CODE = re.compile(r"^exit_code_(-?\d+)$")


def stop_reason_words(reason: Any) -> str | None:
    """``end_turn`` -> ``finished``, ``exit_code_0`` -> ``exit 0``, ``max_tokens`` -> ``hit the
    output token limit``; an unknown reason reads with spaces for underscores."""
    if not isinstance(reason, str) or not reason:
        return None
    m = _EXIT_CODE.match(reason)
    if m:
        return f"exit {m.group(1)}"
    return _STOP_WORDS.get(reason, reason.replace("_", " "))


def size_words(n: int) -> str:
    """``17`` -> ``17 B``, ``1536`` -> ``1.5 KB``, ``3_000_000`` -> ``2.9 MB``."""
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{format_number(n / 1024, 1)} KB"
    return f"{format_number(n / (1024 * 1024), 1)} MB"


def duration_words(ms: Any) -> str:
    """``40`` -> ``40 ms``, ``200`` -> ``0.2 s``; ``65000`` -> ``1 min 5 s``; not a number -> ``""``."""
    if not isinstance(ms, (int, float)) or isinstance(ms, bool) or ms < 1:
        return ""  # 0 means "not measured" for most adapters: say nothing
    if ms < 100:
        return f"{int(ms)} ms"
    if ms < 60_000:
        return f"{format_number(ms / 1000, 1)} s"
    return f"{int(ms // 60_000)} min {int(ms % 60_000 // 1000)} s"


def cost_words(cost: float) -> str:
    """``0`` -> ``$0.00``, ``0.25`` -> ``$0.25``, ``0.000104`` -> ``$0.000104``."""
    if cost == 0:
        return "$0.00"
    return f"${format_number(cost, 4)}" if abs(cost) >= 0.01 else f"${format_number(cost, 6)}"


_VERBS = {"read": "Read", "write": "Wrote", "edit": "Edited", "bash": "Ran", "list": "Listed", "grep": "Searched",
          "glob": "Found", "fetch": "Fetched", "search": "Searched", "task": "Ran task"}


def _tool_kind(name: str) -> str:
    n = name.lower()
    for key, kind in (("bash", "bash"), ("shell", "bash"), ("exec", "bash"), ("read", "read"), ("write", "write"),
                      ("edit", "edit"), ("list", "list"), ("ls", "list"), ("grep", "grep"), ("glob", "glob"),
                      ("webfetch", "fetch"), ("fetch", "fetch"), ("websearch", "search"), ("task", "task")):
        if n == key or n.startswith(key) or n.endswith(key) or n.endswith("_" + key):
            return kind
    return ""


def tool_target(name: str, inp: Any) -> str:
    """What a call acts on, in a few words: the command, the path, the pattern, or a short
    rendering of its input."""
    inp = inp if isinstance(inp, Mapping) else {}
    command = inp.get("command")
    args = inp.get("args")
    if isinstance(args, (list, tuple)) and len(args) >= 2 and args[0] == "-c" and isinstance(args[1], str):
        command = args[1]  # the shell adapter's {command: "/bin/sh", args: ["-c", "..."]}
    for value in (command, inp.get("file_path"), inp.get("path"), inp.get("pattern"), inp.get("url"),
                  inp.get("query"), inp.get("description")):
        if isinstance(value, str) and value:
            return truncate(" ".join(value.split()), 80)
    if not inp:
        return ""
    return truncate(compact_json(inp), 60)


def tool_line(info: Mapping[str, Any], *, approval: str | None = None, reason: str | None = None,
              run_status: str | None = None, measured_ms: Any = None) -> tuple[str, str, str]:
    """``(icon, css class, text)`` of a tool row in plain language:

    ``✓ Read notes.txt · 17 B · 0.2 s`` / ``◐ Running bash sleep 3`` /
    ``⏸ Waiting for approval: bash sleep 3`` / ``⊘ Denied by you: bash rm -rf x`` /
    ``■ Cancelled: bash sleep 60`` / ``✗ Failed: exit 2 · bash false``.
    """
    name = str(info.get("name") or "tool")
    target = tool_target(name, info.get("input"))
    what = f"{name} {target}".strip()
    status = info.get("status")
    if status == "running":
        if approval == "requested":
            return "⏸", "asm-warn", f"Waiting for approval: {what}"
        if run_status == "cancelled":
            return "■", "asm-muted", f"Cancelled: {what}"
        return "◐", "asm-run-i", f"Running {what}"
    if approval == "denied" or reason in ("denied_by_callback",):
        return "⊘", "asm-muted", f"Denied by you: {what}"
    if reason == "declined":
        return "⊘", "asm-muted", f"Not allowed: {what}"
    if reason == "policy_denied":
        return "⊘", "asm-muted", f"Blocked by policy: {what}"
    if reason == "permission_denied":
        return "⊘", "asm-muted", f"Not allowed: {what}"
    if status in ("cancelled", "unfinished") and (reason in ("cancelled", "run_cancelled")
                                                  or run_status == "cancelled"):
        return "■", "asm-muted", f"Cancelled: {what}"
    if status == "unfinished":
        return "■", "asm-muted", f"Unfinished (no result): {what}"
    output = normalize_output(info.get("output"))
    ms = info.get("duration_ms")
    ms = ms if isinstance(ms, (int, float)) and not isinstance(ms, bool) else measured_ms
    if status == "failed":
        code = info.get("exit_code")
        why = f"exit {code}" if is_number(code) and code != 0 else (reason or "error")
        first = next((ln.strip() for ln in output.splitlines() if ln.strip()), "") if why == "error" else ""
        if first.startswith("{"):  # a JSON error object: its message, not its braces
            try:
                import json

                obj = json.loads(output)
                first = str(first_set(obj.get("error"), obj.get("message"), first)) if isinstance(obj, dict) else first
            except ValueError:
                pass
        if first:
            why = truncate(first, 80)
        parts = [f"Failed: {why}", what, duration_words(ms)]
        return "✗", "asm-err", " · ".join(p for p in parts if p)
    verb = _VERBS.get(_tool_kind(name))
    head = f"{verb} {target}".strip() if verb else what
    parts = [head, size_words(len(output.encode("utf-8"))) if output else "", duration_words(ms)]
    return "✓", "asm-ok", " · ".join(p for p in parts if p)


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
    to_dict = getattr(result, "to_dict", None)
    if callable(to_dict):
        try:
            return dict(to_dict())
        except Exception:
            pass
    keys = ("run_id", "session_id", "status", "output", "token_usage", "cost_usd", "error", "duration_ms",
            "provider", "model", "events")
    return {k: getattr(result, k) for k in keys if hasattr(result, k)}


class RunState:
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

    # -- HTML -------------------------------------------------------------------------------------

    def header_html(self) -> str:
        status = "refused" if self.status == "completed" and self.stop_reason == "refusal" else self.status
        cls = {"completed": "asm-ok", "failed": "asm-err", "cancelled": "asm-err",
               "refused": "asm-err"}.get(status, "asm-run-i")
        parts = [f"<b>{html.escape(str(self.provider or 'asm'))}</b>"]
        if self.model:
            parts.append(html.escape(short_model(self.model) or str(self.model)))
        parts.append(f'<span class="{cls}">{html.escape(status)}</span>')
        words = stop_reason_words(self.stop_reason)
        if words and status == "completed" and words != "finished":
            parts.append(f'<span class="asm-muted">{html.escape(words)}</span>')
        head = f'<div class="asm-head">{" · ".join(parts)}</div>'
        if self.error:
            head += f'<div class="asm-banner">✗ {html.escape(self.redact(self.error))}</div>'
        return head

    def counters_html(self, deterministic: bool = False) -> str:
        u = self.usage
        parts = [f"in {u['input_tokens']:,}", f"out {u['output_tokens']:,}"]
        cache = u[CACHE_READ_TOKENS] + u[CACHE_CREATION_TOKENS]
        if cache:
            parts.append(f"cache {cache:,}")
        if self.cost_usd is not None:
            parts.append(cost_words(self.cost_usd))
        n = len(self.tools)
        parts.append(f"{n} tool{'s' if n != 1 else ''}")
        dur = None if deterministic else self.duration_ms
        if dur is None and not deterministic and self.started_at is not None and self.ended_at is not None \
                and self.ended_at > self.started_at:
            dur = int((self.ended_at - self.started_at) * 1000)
        if dur is not None:
            parts.append(duration_words(dur))
        return f'<span class="asm-muted">tokens {" · ".join(parts)}</span>'

    def approval_html(self) -> str:
        a = self.approval
        if not a:
            return ""
        name = html.escape(str(first_set(a.get("tool_name"), "tool")))
        policy = a.get("policy_name")
        why = f" (policy <code>{html.escape(str(policy))}</code>)" if policy else ""
        inp = a.get("tool_input")
        body = f"<pre>{html.escape(truncate(_pretty(self.redact(inp)), _IO_LIMIT))}</pre>" if inp else ""
        return f"<div><b>Approval needed</b>: <code>{name}</code>{why}</div>{body}"

    def segment_html(self, idx: int, deterministic: bool = False) -> str:
        seg = self.segments[idx]
        if seg.kind == "tool":
            return self.tool_html(self.tools[seg.tool_id], deterministic)
        if seg.kind == "error":
            return f'<div class="asm-banner">✗ {html.escape(self.redact(seg.raw))}</div>'
        cls = "asm-text asm-reasoning" if seg.kind == "reasoning" else "asm-text"
        return f'<div class="{cls}">{markdown_html(self.redact(seg.raw), seg.in_fence)}</div>'

    def tool_line(self, row: ToolRow, deterministic: bool = False, measured: bool = True) -> tuple[str, str, str]:
        """``(icon, css class, text)`` of a tool row (see ``tool_line``), redacted. ``deterministic``:
        no duration at all; ``measured=False``: only the duration the provider reported."""
        measured = None if deterministic or not measured else row.measured_ms
        info = row.info()
        if deterministic:  # no wall-clock time at all, measured or reported by the provider
            info["duration_ms"] = None
        icon, cls, text = tool_line(info, approval=row.approval, reason=row.reason,
                                    run_status=self.status, measured_ms=measured)
        return icon, cls, self.redact(text)

    def tool_html(self, row: ToolRow, deterministic: bool = False) -> str:
        icon, cls, line = self.tool_line(row, deterministic)
        spin = " asm-spin" if icon == "◐" else ""
        glyph = html.escape(icon)
        if icon == "⏸":  # few fonts have U+23F8: the icon is drawn by CSS (.asm-pause)
            spin, glyph = ' asm-pause" role="img" aria-label="paused', ""
        io = ""
        if row.input:
            io += f'<div class="asm-muted">input</div><pre>{html.escape(truncate(_pretty(self.redact(row.input)), _IO_LIMIT))}</pre>'
        if row.output is not None and row.output != "":
            out = normalize_output(row.output)
            io += f'<div class="asm-muted">output</div><pre>{html.escape(truncate(self.redact(out), _IO_LIMIT))}</pre>'
        return (f'<details class="asm-tool"><summary><span class="asm-tool-icon {cls}{spin}">{glyph}</span> '
                f'{html.escape(line)}</summary>{io}</details>')

    def static_html(self, deterministic: bool = False) -> str:
        """The whole view as one self-contained HTML fragment (no buttons, no ids)."""
        segs = "".join(self.segment_html(i, deterministic) for i in range(len(self.segments)))
        appr = self.approval_html()
        appr = f'<div class="asm-approval">{appr}</div>' if appr else ""
        return (f'<div class="asm-run">{STYLE}{self.header_html()}<div class="asm-body">{segs}</div>{appr}'
                f"<div>{self.counters_html(deterministic)}</div></div>")


def _pretty(value: Any) -> str:
    if isinstance(value, str):
        return value
    return compact_json(value) if not isinstance(value, Mapping) else _json_indent(value)


def _json_indent(value: Mapping) -> str:
    import json

    try:
        return json.dumps(value, indent=2, ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        return repr(value)
