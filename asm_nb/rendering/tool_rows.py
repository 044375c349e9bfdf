"""Plain-language wording shared by the live run view and the saved card: tool rows
(``tool_line``: ``✓ Read notes.txt · 17 B · 0.2 s``, ``⏸ Waiting for approval: bash sleep 3`` ...),
what a call acts on (``tool_target``), stop reasons, sizes, durations and costs as words.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from ..core.serialization import first_set
from .studio import compact_json, format_number, is_number, normalize_output, truncate

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
