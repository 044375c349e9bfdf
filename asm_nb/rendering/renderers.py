"""Text renderers: events in, text out (docs/rendering.md).

- ``CompactRenderer``: one-line tokens (``r+ sonnet-4-5 >> Hello world``).
- ``VerboseRenderer``: one bracketed line per event (``[run_started] model=…``).
- ``StudioRenderer``: the CLI-grade view (``● model session started``, ``◐ Reading x`` → ``✓ Read x``).
- ``PassthroughRenderer``: renders nothing (for JSONL / callback / PubSub sinks).

Each renderer keeps its state on the instance: ``render_event(event) -> str`` and
``finish() -> str``. Events are dicts shaped like adapter callback events (``type``, ``data``,
optional ``timestamp``/``session_id``/``run_id``/``provider``) or ``Event`` objects; ``type``
may be an enum or a string. Colour defaults to on unless ``NO_COLOR`` is set.

Standard library only; imports ``asm_nb.core`` and ``studio``.
"""

from __future__ import annotations

from typing import Any, Collection, Mapping

from ..core.serialization import first_set
from . import studio
from .studio import (
    BLUE, DIM, GREEN, MAGENTA, RED, RESET, ToolSummary, compact_json, default_color, event_view,
    format_number, is_number, normalize_output, truncate,
)

__all__ = ["CompactRenderer", "VerboseRenderer", "StudioRenderer", "PassthroughRenderer",
           "short_model", "short_reason", "renderer_for"]

_PREVIEW = 120
_RESULT = 2000


def short_model(model: Any) -> str:
    """``claude-sonnet-4-5-20250929`` → ``sonnet-4-5``; None → ``""``."""
    if model is None:
        return ""
    s = model if isinstance(model, str) else str(getattr(model, "value", model))
    if s.startswith("claude-"):
        s = s[len("claude-"):]
    if s.startswith("anthropic."):
        s = s[len("anthropic."):]
    return "-".join([p for p in s.split("-") if p][:3])


def short_reason(reason: Any) -> str:
    """``tool_use`` → ``tool``, ``end_turn`` → ``end``, other reasons lower-cased; None → ``""``."""
    if reason is None:
        return ""
    s = (reason if isinstance(reason, str) else str(getattr(reason, "value", reason))).lower()
    return {"tool_use": "tool", "end_turn": "end"}.get(s, s)


def _value(v: Any, limit: int) -> str:
    if isinstance(v, str):
        return truncate(v, limit)
    if isinstance(v, (dict, list)):
        return truncate(compact_json(v), limit)
    return truncate(repr(v), limit)


def _int(v: Any) -> Any:
    return first_set(v, 0)


class _Painter:
    """Colour helper for Compact/Verbose: colours even ``""`` (reference behaviour)."""

    __slots__ = ("color",)

    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, code: str, text: str) -> str:
        return code + text + RESET if self.color else text


class CompactRenderer:
    """Compact single-line tokens (docs/rendering.md).

    Legend: ``r+``/``r-`` run started/completed, ``t+``/``t-`` tool started/completed,
    ``>>`` streamed text, ``tk:`` token usage, ``!`` error, ``?`` unknown event.
    """

    def __init__(self, *, color: bool | None = None) -> None:
        self.color = default_color(color)
        self._c = _Painter(self.color)
        self.streaming: str | None = None
        self.line_open = False
        self.in_text = False
        self.event_count = 0
        self.tool_count = 0
        self.current_tool: str | None = None
        self.current_tool_id: Any = None

    def _close(self) -> str:
        if self.streaming is None:
            return ""
        out = "\n" if self.line_open else ""
        self.streaming = None
        self.line_open = False
        return out

    def _token(self, token: str) -> str:
        closing = self._close()
        pre = " " if self.line_open else ""
        self.line_open = True
        return closing + pre + token

    def _cost(self, cost: Any) -> str:
        return f" ${format_number(cost, 4)}" if is_number(cost) else ""

    def _error(self, msg: Any) -> str:
        c = self._c
        return self._token(c(RED, "!") + " " + c(DIM, truncate(str(first_set(msg, "unknown error")), _PREVIEW)))

    def render_event(self, event: Any) -> str:
        """Render one event; returns the text to write (possibly ``""``)."""
        self.event_count += 1
        t, d, _ = event_view(event)
        c = self._c
        if t == "run_started":
            model = short_model(d.get("model"))
            return self._token(c(BLUE, "r+") + (" " + c(MAGENTA, model) if model else ""))
        if t == "message_streamed":
            text = first_set(d.get("delta"), d.get("content"), "")
            text = text if isinstance(text, str) else str(text)
            if self.streaming == "text":
                self.line_open = True
                self.in_text = True
                return text
            closing = self._close()
            pre = " " if self.line_open else ""
            self.streaming, self.line_open, self.in_text = "text", True, True
            return closing + pre + c(MAGENTA, ">>") + " " + text
        if t == "tool_call_started":
            name = first_set(d.get("tool_name"), "unknown")
            out = self._token(c(GREEN, f"t+{name}"))
            self.tool_count += 1
            self.current_tool = name
            self.current_tool_id = d.get("tool_call_id")
            return out
        if t == "tool_call_completed":
            name = first_set(d.get("tool_name"), "unknown")
            output = d.get("tool_output")
            result = ""
            if output is not None and output != "":
                result = " " + c(GREEN, "tr:") + c(DIM, _value(output, _RESULT))
            out = self._token(c(GREEN, f"t-{name}") + result)
            self.current_tool = None
            self.current_tool_id = None
            return out
        if t == "token_usage_updated":
            tin, tout = _int(d.get("input_tokens")), _int(d.get("output_tokens"))
            return self._token(c(DIM, f"tk:{tin}/{tout}{self._cost(d.get('cost_usd'))}"))
        if t == "message_received":
            content = first_set(d.get("content"), "")
            out = self._token(c(BLUE, "msg") + " " + c(DIM, truncate(str(content), _PREVIEW)))
            self.in_text = False
            return out
        if t == "run_completed":
            reason = short_reason(d.get("stop_reason"))
            label = "r-" if reason == "" else f"r-:{reason}"
            out = self._token(c(BLUE, label + self._cost(d.get("cost_usd"))))
            self.in_text = False
            return out
        if t in ("run_failed", "error_occurred"):
            return self._error(d.get("error_message"))
        if t == "run_cancelled":
            return self._token(c(RED, "!") + " " + c(DIM, "cancelled"))
        return self._token(c(DIM, "?") + c(DIM, truncate(t, _PREVIEW)))

    def finish(self) -> str:
        """Close an open stream and print the ``<n> events, <m> tools`` footer."""
        counts = f"{_count(self.event_count, 'event')}, {_count(self.tool_count, 'tool')}"
        return self._close() + "\n" + self._c(DIM, counts + "\n")


def _count(n: int, noun: str) -> str:
    """``1 tool``, ``0 tools``, ``3 tools``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _enum_value(v: Any) -> Any:
    return getattr(v, "value", v)


class VerboseRenderer:
    """One bracketed line per event with its key fields (docs/rendering.md)."""

    def __init__(self, *, color: bool | None = None) -> None:
        self.color = default_color(color)
        self._c = _Painter(self.color)
        self.in_text = False
        self.event_count = 0
        self.tool_count = 0

    def _brk(self) -> str:
        if self.in_text:
            self.in_text = False
            return "\n"
        return ""

    def render_event(self, event: Any) -> str:
        """Render one event; streamed text is returned verbatim."""
        self.event_count += 1
        t, d, ev = event_view(event)
        c = self._c
        if t == "message_streamed":
            self.in_text = True
            text = first_set(d.get("delta"), d.get("content"), "")
            return text if isinstance(text, str) else str(text)
        brk = self._brk()
        if t == "run_started":
            sid = first_set(ev.get("session_id"), d.get("session_id"), "")
            return (brk + c(BLUE, "[run_started]")
                    + f" model={first_set(d.get('model'), 'unknown')} session_id={sid}\n")
        if t == "tool_call_started":
            self.tool_count += 1
            name = first_set(d.get("tool_name"), "unknown")
            tid = first_set(d.get("tool_call_id"), "")
            inp = d.get("tool_input")
            if inp is None or inp == {}:
                inp_s = ""
            elif isinstance(inp, Mapping):
                inp_s = " input=" + truncate(compact_json(inp), _PREVIEW)
            else:
                inp_s = " input=" + truncate(repr(inp), _PREVIEW)
            return brk + c(GREEN, "[tool_call_started]") + f" name={name} id={tid}{inp_s}\n"
        if t == "tool_call_completed":
            name = first_set(d.get("tool_name"), "unknown")
            out = d.get("tool_output")
            if out is None or out == "":
                out_s = ""
            elif isinstance(out, (dict, list)):
                out_s = " output=" + truncate(compact_json(out), _RESULT)
            else:
                out_s = " output=" + truncate(str(out), _RESULT)
            return brk + c(GREEN, "[tool_call_completed]") + f" name={name}{out_s}\n"
        if t == "token_usage_updated":
            cost = d.get("cost_usd")
            cost_s = f" cost=${format_number(cost, 6)}" if is_number(cost) else ""
            return (brk + c(DIM, "[token_usage]")
                    + f" input={_int(d.get('input_tokens'))} output={_int(d.get('output_tokens'))}{cost_s}\n")
        if t == "message_received":
            self.in_text = False
            content = truncate(str(first_set(d.get("content"), "")), _RESULT)
            return (brk + c(BLUE, "[message_received]")
                    + f" role={first_set(d.get('role'), 'assistant')} content={content}\n")
        if t == "run_completed":
            usage = d.get("token_usage")
            usage_s = ""
            if isinstance(usage, Mapping):
                usage_s = f" tokens={_int(usage.get('input_tokens'))}/{_int(usage.get('output_tokens'))}"
            cost = d.get("cost_usd")
            cost_s = f" cost=${format_number(cost, 6)}" if is_number(cost) else ""
            return (brk + c(BLUE, "[run_completed]")
                    + f" stop_reason={first_set(d.get('stop_reason'), 'end_turn')}{usage_s}{cost_s}\n")
        if t in ("run_failed", "error_occurred"):
            tag = "[run_failed]" if t == "run_failed" else "[error]"
            code = _enum_value(first_set(d.get("error_code"), "unknown"))
            msg = truncate(str(first_set(d.get("error_message"), "unknown error")), _RESULT)
            return brk + c(RED, tag) + f" error_code={code} error_message={msg}\n"
        if t == "run_cancelled":
            return brk + c(RED, "[run_cancelled]") + "\n"
        return brk + c(DIM, "[event]") + f" type={t} data={truncate(compact_json(d), _PREVIEW)}\n"

    def finish(self) -> str:
        """The ``--- <n> events, <m> tools ---`` footer (after closing open text)."""
        closing = "\n" if self.in_text else ""
        counts = f"{_count(self.event_count, 'event')}, {_count(self.tool_count, 'tool')}"
        return closing + self._c(DIM, f"--- {counts} ---\n")


_TOOL_OUTPUT_MODES = ("summary", "preview", "full")


class StudioRenderer:
    """CLI-grade view (docs/rendering.md): indented text blocks, one status line per tool call, a footer.

    Options: ``color`` (default on unless ``NO_COLOR``), ``tool_output`` ("summary" | "preview"
    | "full"), ``show_spinner``, ``indent``, ``tty`` (default: stdout is a terminal; a tty start
    line has no newline so the completion line can overwrite it with ``\\r\\x1b[2K``).

    (Python additions, off by default so the spec goldens hold)
    - ``skip_types``: event types rendered as nothing (e.g. ``message_sent``, ``turn_completed``
      in the notebook fallback, which would otherwise print ``? message_sent``).
    - ``tool_call_failed`` renders like a failed ``tool_call_completed`` (``✗ …``) — the
      reference has no such event and would print ``? tool_call_failed``.

    Output has no timestamps and no ids: with ``tty=False`` it is deterministic for a given
    event list (the notebook text fallback, checked by nbval).
    """

    def __init__(self, *, color: bool | None = None, tool_output: str = "summary", show_spinner: bool = True,
                 indent: int = 2, tty: bool | None = None, skip_types: Collection[str] = ()) -> None:
        self.color = default_color(color)
        self.tool_output = tool_output if tool_output in _TOOL_OUTPUT_MODES else "summary"
        self.show_spinner = show_spinner
        self.indent = indent
        self.tty = studio.is_tty() if tty is None else bool(tty)
        self.skip_types = frozenset(skip_types)
        self.phase = "idle"
        self.current_tool: dict | None = None
        self.tool_count = 0
        self.event_count = 0
        self.total_input_tokens = 0
        self.total_output_tokens = 0
        self._last_error: str | None = None

    @property
    def _i(self) -> str:
        return " " * self.indent

    def _close_text(self) -> str:
        if self.phase == "text":
            self.phase = "idle"
            return "\n"
        return ""

    def _tool_info(self, d: Mapping[str, Any]) -> dict:
        cur = self.current_tool or {}
        output = d.get("tool_output")
        out_map = output if isinstance(output, Mapping) else {}
        exit_code = first_set(d.get("exit_code"), out_map.get("exit_code"))
        status = first_set(d.get("status"), out_map.get("status"))
        if status == "failed" or (isinstance(exit_code, int) and not isinstance(exit_code, bool) and exit_code != 0):
            status = "failed"
        else:
            status = "completed"
        return {
            "name": first_set(d.get("tool_name"), cur.get("name"), "tool"),
            "input": first_set(d.get("tool_input"), cur.get("input"), {}),
            "output": output,
            "exit_code": exit_code,
            "duration_ms": first_set(d.get("duration_ms"), out_map.get("duration_ms")),
            "status": status,
        }

    def _extras(self, info: Mapping[str, Any]) -> str:
        if self.tool_output == "summary":
            return ""
        if self.tool_output == "preview":
            lines, mark = ToolSummary.preview_lines(info, 3), "│"
        else:
            lines = [s for s in normalize_output(info.get("output")).split("\n") if s != ""]
            mark = "┊"
        pad = " " * (self.indent + 2)
        return "".join(pad + studio.dim(mark, self.color) + " " + studio.dim(line, self.color) + "\n"
                       for line in lines)

    def _completed(self, d: Mapping[str, Any], force_failed: bool = False) -> str:
        info = self._tool_info(d)
        if force_failed:
            info["status"] = "failed"
        col = self.color
        icon = studio.red("✗", col) if info["status"] == "failed" else studio.green("✓", col)
        if self.phase == "text":
            # (Python note) a clear here would erase the streamed line: close the block instead.
            prefix = self._close_text()
        else:
            prefix = studio.clear_line() if self.tty else ""
        self.phase = "idle"
        self.current_tool = None
        line = ToolSummary.summary_line(info)
        what = ToolSummary.spinner_text(info)
        what = what[len("Running: "):] if what.startswith("Running: ") else what
        if d.get("status") == "unfinished":
            line = f"{info['name']}: {what} [unfinished: no result]"
        elif d.get("reason") == "permission_denied":
            line = f"{info['name']}: {what} [permission denied]"
        elif d.get("reason") == "policy_denied":
            line = f"{info['name']}: {what} [blocked by policy]"
        return prefix + self._i + icon + " " + line + "\n" + self._extras(info)

    def render_event(self, event: Any) -> str:
        """Render one event (``""`` for silent ones such as usage updates)."""
        self.event_count += 1
        t, d, _ = event_view(event)
        if t in self.skip_types:
            return ""
        col, i = self.color, self._i
        if t == "run_started":
            self.phase = "idle"
            return "\n" + i + studio.blue("●", col) + " " + str(first_set(d.get("model"), "unknown")) \
                + " session started\n"
        if t == "message_streamed":
            text = first_set(d.get("delta"), d.get("content"), "")
            text = text if isinstance(text, str) else str(text)
            was_text = self.phase == "text"
            self.phase = "text"
            if text == "":
                return ""
            return text if was_text else "\n" + i + text
        if t == "tool_call_started":
            closing = self._close_text()
            name = first_set(d.get("tool_name"), "tool")
            inp = first_set(d.get("tool_input"), {})
            sym = studio.cyan("◐", col) if self.show_spinner else studio.blue("●", col)
            self.phase = "tool"
            self.current_tool = {"name": name, "id": d.get("tool_call_id"), "input": inp}
            self.tool_count += 1
            line = closing + i + sym + " " + ToolSummary.spinner_text({"name": name, "input": inp})
            return line if self.tty else line + "\n"
        if t == "tool_call_completed":
            return self._completed(d)
        if t == "tool_call_failed":
            return self._completed(d, force_failed=True)
        if t == "token_usage_updated":
            self.total_input_tokens = _int(d.get("input_tokens"))
            self.total_output_tokens = _int(d.get("output_tokens"))
            return ""
        if t == "message_received":
            return ""
        if t == "run_completed":
            closing = self._close_text()
            tin, tout = self.total_input_tokens, self.total_output_tokens
            if tin == 0 and tout == 0:
                usage = d.get("token_usage")
                usage = usage if isinstance(usage, Mapping) else {}
                tin, tout = _int(usage.get("input_tokens")), _int(usage.get("output_tokens"))
            self.phase = "idle"
            if d.get("stop_reason") == "refusal":
                return (closing + "\n" + i + studio.red("✗", col)
                        + f" Session refused (the model declined) — {tin}/{tout} tokens, "
                        + f"{_count(self.tool_count, 'tool')}\n")
            return (closing + "\n" + i + studio.blue("●", col)
                    + f" Session complete ({first_set(d.get('stop_reason'), 'unknown')}) — {tin}/{tout} tokens, "
                    + f"{_count(self.tool_count, 'tool')}\n")
        if t == "run_failed":
            closing = self._close_text()
            msg = str(first_set(d.get("error_message"), "unknown error"))
            if msg == self._last_error:  # already shown by its error_occurred: say it once
                return closing + "\n" + i + studio.red("✗", col) + " failed\n"
            return closing + "\n" + i + studio.red("✗", col) + " " + msg + "\n"
        if t == "run_cancelled":
            closing = self._close_text()
            return closing + "\n" + i + studio.red("✗", col) + " cancelled\n"
        if t == "error_occurred":
            closing = self._close_text()
            self._last_error = str(first_set(d.get("error_message"), "unknown error"))
            return closing + i + studio.red("✗", col) + " " + self._last_error + "\n"

        if t == "policy_violation" and d.get("kind"):
            closing = self._close_text()
            name = f" {d['policy']}" if d.get("policy") else ""
            return closing + i + studio.red("⚠", col) + f" policy{name}: {d['kind']}\n"
        closing = self._close_text()
        return closing + i + studio.dim(f"? {t}", col) + "\n"

    def finish(self) -> str:
        """Studio writes its footer on ``run_completed``; ``finish`` adds nothing."""
        return ""


class PassthroughRenderer:
    """Renders nothing; used when only the sinks' structured output matters (docs/rendering.md)."""

    def render_event(self, event: Any) -> str:
        """Always ``""``."""
        return ""

    def finish(self) -> str:
        """Always ``""``."""
        return ""


_BY_NAME = {"compact": CompactRenderer, "verbose": VerboseRenderer, "studio": StudioRenderer,
            "passthrough": PassthroughRenderer}


def _plugin_renderers() -> dict[str, Any]:
    """Entry points of the ``asm_nb.renderers`` group, by name (not loaded yet)."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group="asm_nb.renderers")}


def renderer_for(name: str, **opts: Any) -> Any:
    """Build a renderer by name: ``compact``, ``verbose``, ``studio``, ``passthrough``, or a name
    registered in the ``asm_nb.renderers`` entry-point group (a renderer class or factory)."""
    from ..core.errors import AsmError

    cls = _BY_NAME.get(name)
    if cls is None:
        plugins = _plugin_renderers()
        ep = plugins.get(name)
        if ep is None:
            raise AsmError("validation_error",
                           f"unknown renderer {name!r}; expected one of {sorted({*_BY_NAME, *plugins})}")
        try:
            cls = ep.load()
        except Exception as exc:
            raise AsmError("dependency_not_available",
                           f"renderer plugin {ep.value!r} could not be loaded: {exc}",
                           details={"entry_point": ep.value}) from None
    return cls(**opts)
