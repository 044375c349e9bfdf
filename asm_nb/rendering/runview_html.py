"""The run view's HTML card sections, mixed into ``RunState`` (``RunHtml``): the header (provider,
model, status, error banner), the counters line, the approval request, each transcript segment
(Markdown text, reasoning, error banner, a tool row as ``<details>`` with its input and output) and
``static_html``, the whole card. ``STYLE`` is the card's CSS. Every text is redacted when rendered.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..core.serialization import first_set
from ..core.usage import CACHE_CREATION_TOKENS, CACHE_READ_TOKENS
from .markdown import markdown_html
from .renderers import short_model
from .studio import compact_json, normalize_output, truncate
from .tool_rows import cost_words, duration_words, stop_reason_words, tool_line

if TYPE_CHECKING:
    from .runview import Segment, ToolRow

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


class RunHtml:
    """HTML renderings of a ``RunState`` (its fields are declared here for the type checker)."""

    provider: str | None
    model: str | None
    status: str
    stop_reason: str | None
    error: str | None
    redact: Callable[[Any], Any]
    segments: list[Segment]
    tools: dict[str, ToolRow]
    usage: dict[str, int]
    cost_usd: float | None
    approval: dict | None
    started_at: float | None
    ended_at: float | None
    duration_ms: int | None

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
        if seg.kind == "tool" and seg.tool_id is not None:
            return self.tool_html(self.tools[seg.tool_id], deterministic)
        if seg.kind == "error":
            return f'<div class="asm-banner">✗ {html.escape(self.redact(seg.raw))}</div>'
        cls = "asm-text asm-reasoning" if seg.kind == "reasoning" else "asm-text"
        return f'<div class="{cls}">{markdown_html(self.redact(seg.raw), seg.in_fence)}</div>'

    def tool_line(self, row: ToolRow, deterministic: bool = False, measured: bool = True) -> tuple[str, str, str]:
        """``(icon, css class, text)`` of a tool row (see ``tool_line``), redacted. ``deterministic``:
        no duration at all; ``measured=False``: only the duration the provider reported."""
        measured_ms = None if deterministic or not measured else row.measured_ms
        info = row.info()
        if deterministic:  # no wall-clock time at all, measured or reported by the provider
            info["duration_ms"] = None
        icon, cls, text = tool_line(info, approval=row.approval, reason=row.reason,
                                    run_status=self.status, measured_ms=measured_ms)
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
