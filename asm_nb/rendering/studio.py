"""Studio helpers: ANSI colour helpers and symbols, shared number/text formatting, and
``ToolSummary`` (the human one-line summaries of tool calls, "Reading src/app.py",
"Ran: pytest -q (exit 0, 156 chars)").

Pure standard library; imports only ``asm_nb.core``. See docs/rendering.md.
"""

from __future__ import annotations

import json
import os
import sys
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Mapping, TypeGuard
from urllib.parse import urlsplit

from ..core.serialization import first_set

__all__ = [
    "RED", "GREEN", "BLUE", "MAGENTA", "CYAN", "DIM", "BOLD", "RESET",
    "SUCCESS", "FAILURE", "INFO", "RUNNING",
    "red", "green", "blue", "cyan", "magenta", "dim", "bold", "clear_line", "cursor_up", "is_tty",
    "default_color", "round_half_up", "format_number", "truncate", "compact_json", "type_name",
    "event_view", "normalize_output", "ToolSummary", "spinner_text", "summary_line", "preview_lines",
    "format_size", "shorten_path",
]

# ---------------------------------------------------------------------------------------------
# ANSI codes and symbols (docs/rendering.md)

RED = "\x1b[0;31m"
GREEN = "\x1b[0;32m"
BLUE = "\x1b[0;34m"
MAGENTA = "\x1b[0;35m"
CYAN = "\x1b[0;36m"
DIM = "\x1b[2m"
BOLD = "\x1b[1m"
RESET = "\x1b[0m"

SUCCESS = "✓"
FAILURE = "✗"
INFO = "●"
RUNNING = "◐"


def _paint(code: str, text: str, enabled: bool) -> str:
    # Studio helpers leave "" alone (Compact/Verbose colour even "", see renderers.py).
    if text == "":
        return ""
    if not enabled:
        return text
    return code + text + RESET


def red(text: str, enabled: bool = True) -> str:
    """``text`` in red (``""`` stays ``""``; ``enabled=False`` → plain text)."""
    return _paint(RED, text, enabled)


def green(text: str, enabled: bool = True) -> str:
    """``text`` in green."""
    return _paint(GREEN, text, enabled)


def blue(text: str, enabled: bool = True) -> str:
    """``text`` in blue."""
    return _paint(BLUE, text, enabled)


def cyan(text: str, enabled: bool = True) -> str:
    """``text`` in cyan."""
    return _paint(CYAN, text, enabled)


def magenta(text: str, enabled: bool = True) -> str:
    """``text`` in magenta."""
    return _paint(MAGENTA, text, enabled)


def dim(text: str, enabled: bool = True) -> str:
    """``text`` dimmed."""
    return _paint(DIM, text, enabled)


def bold(text: str, enabled: bool = True) -> str:
    """``text`` in bold."""
    return _paint(BOLD, text, enabled)


def clear_line() -> str:
    """Carriage return + erase the whole line."""
    return "\r\x1b[2K"


def cursor_up(n: int = 1) -> str:
    """Move the cursor up ``n`` lines."""
    return f"\x1b[{n}A"


def is_tty(stream: Any = None) -> bool:
    """Whether ``stream`` (default ``sys.stdout``) is a terminal. False inside a Jupyter kernel."""
    stream = sys.stdout if stream is None else stream
    try:
        return bool(stream.isatty())
    except Exception:  # closed or exotic streams
        return False


def default_color(color: bool | None) -> bool:
    """``color`` when given, else True unless ``NO_COLOR`` is set to a non-empty value."""
    if color is None:
        return not os.environ.get("NO_COLOR")
    return bool(color)


# ---------------------------------------------------------------------------------------------
# Shared formatting


def round_half_up(x: float | int, n: int) -> float:
    """Round half away from zero on the decimal value (``round_half_up(0.01235, 4) == 0.0124``);
    Python's ``round`` rounds half to even on the binary value."""
    q = Decimal(1).scaleb(-n)
    return float(Decimal(repr(float(x))).quantize(q, rounding=ROUND_HALF_UP))


def format_number(x: float | int, n: int) -> str:
    """``round_half_up`` printed with Python's shortest float repr (``0.0123``, ``2.0``)."""
    return repr(round_half_up(x, n))


def is_number(v: Any) -> TypeGuard[int | float]:
    """True for ints and floats, never for bools."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def truncate(text: str, limit: int) -> str:
    """More than ``limit`` characters → the first ``limit`` plus ``"..."``."""
    if len(text) > limit:
        return text[:limit] + "..."
    return text


def compact_json(value: Any) -> str:
    """Compact JSON (``separators=(",", ":")``, non-ASCII kept); ``repr`` when not encodable."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        try:
            from ..core.serialization import to_jsonable

            return json.dumps(to_jsonable(value), separators=(",", ":"), ensure_ascii=False)
        except (TypeError, ValueError):
            return repr(value)


def type_name(t: Any) -> str:
    """An event type as its plain string (enums → value)."""
    value = getattr(t, "value", t)
    return value if isinstance(value, str) else str(value)


def event_view(event: Any) -> tuple[str, dict, dict]:
    """``(type string, data dict, event dict)`` for an event dict or an ``Event``-like object
    (read through ``to_dict()``). Missing or non-dict ``data`` → ``{}``."""
    if not isinstance(event, Mapping):
        to_dict = getattr(event, "to_dict", None)
        event = to_dict() if callable(to_dict) else {}
    data = event.get("data")
    if not isinstance(data, Mapping):
        data = {}
    return type_name(event.get("type")), dict(data), dict(event)


def normalize_output(output: Any) -> str:
    """Tool output as text: None → ``""``; str as is; a dict with ``"output"`` → that
    (recursively); another dict → compact JSON; anything else → ``str``."""
    if output is None:
        return ""
    if isinstance(output, str):
        return output
    if isinstance(output, Mapping):
        if "output" in output:
            return normalize_output(output["output"])
        return compact_json(output)
    return str(output)


# ---------------------------------------------------------------------------------------------
# ToolSummary (docs/rendering.md)


def format_size(n: int | None) -> str:
    """``None`` → ``""``; ``999`` → ``"999 chars"``; ``1500`` → ``"1.5k chars"``;
    ``15000`` → ``"15k chars"``."""
    if n is None:
        return ""
    if n < 1000:
        return f"{n} chars"
    if n < 10_000:
        return f"{format_number(n / 1000, 1)}k chars"
    return f"{n // 1000}k chars"


def shorten_path(path: Any, max_len: int = 60) -> str:
    """Keep the first component and the last two when ``path`` is longer than ``max_len``.

    >>> shorten_path("lib/agent_session_manager/deep/nested/rendering/sink.ex", 20)
    'lib/.../rendering/sink.ex'
    """
    if not isinstance(path, str):
        return "file"
    if len(path) <= max_len:
        return path
    parts = [p for p in path.split("/") if p]
    if path.startswith("/"):
        parts = ["/", *parts]
    if len(parts) >= 1 and len(parts) - 1 > 2:
        first, last_two = parts[0], "/".join(parts[-2:])
        if first == "/":
            return "/.../" + last_two
        return f"{first}/.../{last_two}"
    return path


def _tool(name: Any) -> str:
    if name in ("Bash", "bash"):
        return "bash"
    if isinstance(name, str) and name != "":
        return name
    return "tool"


def _input(info: Mapping[str, Any]) -> Mapping[str, Any]:
    value = info.get("input")
    return value if isinstance(value, Mapping) else {}


def _val(inp: Mapping[str, Any], key: str) -> str | None:
    value = inp.get(key)
    if value is None or value == "":
        return None
    return str(value)


def _cut(s: str, n: int) -> str:
    return truncate(s.strip(), n)


def _path(inp: Mapping[str, Any]) -> str:
    return first_set(_val(inp, "file_path"), _val(inp, "path"), "file")


def _lines(text: str | None) -> int:
    if not text:
        return 0
    return sum(1 for seg in text.split("\n") if seg != "")


def _host(url: str | None) -> str | None:
    if url is None:
        return None
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return host or None


def _failed(info: Mapping[str, Any]) -> bool:
    code = info.get("exit_code")
    return info.get("status") == "failed" or (is_number(code) and isinstance(code, int) and code != 0)


def _duration(ms: Any) -> str:
    if isinstance(ms, int) and not isinstance(ms, bool) and ms > 2000:
        return f"{format_number(ms / 1000, 1)}s"
    return ""


def _suffix(value: str) -> str:
    return f" ({value})" if value else ""


def _shell_command(inp: Any) -> Any:
    """The command a user typed: ``{command: "/bin/sh", args: ["-c", "pytest -q"]}`` (the shell
    adapter's tool input) reads as ``pytest -q``."""
    command = _val(inp, "command")
    args = inp.get("args") if isinstance(inp, Mapping) else None
    if isinstance(args, (list, tuple)) and len(args) >= 2 and args[0] == "-c" and isinstance(args[1], str):
        return args[1]
    return command


class ToolSummary:
    """Human summaries of one tool call. ``info`` is a dict with ``name``, ``input``,
    ``output``, ``exit_code``, ``duration_ms``, ``status`` (all optional).

    >>> ToolSummary.spinner_text({"name": "Read", "input": {"file_path": "src/app.py"}})
    'Reading src/app.py'
    >>> ToolSummary.spinner_text({"name": "Bash", "input": {"command": "pytest -q"}})
    'Running: pytest -q'
    """

    format_size = staticmethod(format_size)
    shorten_path = staticmethod(shorten_path)

    @staticmethod
    def spinner_text(info: Mapping[str, Any]) -> str:
        """The text shown while the tool runs."""
        if "name" not in info:
            return "Using tool"
        tool, inp = _tool(info.get("name")), _input(info)
        if tool == "bash":
            command = _shell_command(inp)
            return "Running bash" if command is None else f"Running: {_cut(command, 60)}"
        if tool == "Read":
            return f"Reading {_path(inp)}"
        if tool == "Write":
            return f"Writing {_path(inp)}"
        if tool == "Edit":
            return f"Editing {_path(inp)}"
        if tool == "Glob":
            return f"Searching for {first_set(_val(inp, 'pattern'), 'files')}"
        if tool == "Grep":
            pattern = first_set(_val(inp, "pattern"), "pattern")
            return f'Searching "{pattern}" in {first_set(_val(inp, "path"), ".")}'
        if tool == "Task":
            return f"Running task: {first_set(_val(inp, 'description'), 'task')}"
        if tool == "WebFetch":
            return f"Fetching {first_set(_host(_val(inp, 'url')), 'web resource')}"
        if tool == "WebSearch":
            return f'Searching: "{first_set(_val(inp, "query"), "")}"'
        return f"Using {tool}"

    @staticmethod
    def summary_line(info: Mapping[str, Any]) -> str:
        """The one-line result shown when the tool has finished."""
        if "name" not in info:
            return "tool complete"
        tool, inp = _tool(info.get("name")), _input(info)
        output = normalize_output(info.get("output"))
        failed = _failed(info)
        duration = _duration(info.get("duration_ms"))
        size = format_size(len(output)) if output != "" else ""
        if tool == "bash":
            command = _cut(first_set(_shell_command(inp), "bash"), 60)
            code = info.get("exit_code")
            if code is None:
                code = 1 if failed else 0
            prefix = "Bash failed:" if failed else "Ran:"
            details = ", ".join(p for p in (f"exit {code}", size, duration) if p)
            return f"{prefix} {command} ({details})"
        if tool == "Read":
            return f"Read {shorten_path(_path(inp))} ({_lines(output)} lines)"
        if tool == "Write":
            return f"Wrote {shorten_path(_path(inp))} ({_lines(first_set(_val(inp, 'content'), ''))} lines)"
        if tool == "Edit":
            return f"Edited {shorten_path(_path(inp))}"
        if tool == "Glob":
            return f"Found {_lines(output)} files matching {first_set(_val(inp, 'pattern'), '*')}"
        if tool == "Grep":
            return f'Found {_lines(output)} matches for "{first_set(_val(inp, "pattern"), "pattern")}"'
        if tool == "Task":
            return f"Task complete: {first_set(_val(inp, 'description'), 'task')}{_suffix(duration)}"
        return f"{tool} complete{_suffix(size)}"

    @staticmethod
    def preview_lines(info: Mapping[str, Any], n: int = 3) -> list[str]:
        """The last ``n`` non-empty (stripped) lines of the normalized output."""
        lines = [s.strip() for s in normalize_output(info.get("output")).split("\n")]
        lines = [s for s in lines if s != ""]
        return lines[-n:] if n > 0 else []

    @staticmethod
    def is_failed(info: Mapping[str, Any]) -> bool:
        """``status == "failed"`` or an int ``exit_code`` other than 0."""
        return _failed(info)


spinner_text = ToolSummary.spinner_text
summary_line = ToolSummary.summary_line
preview_lines = ToolSummary.preview_lines
