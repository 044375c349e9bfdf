"""JSON-Lines framing shared by the CLI adapters (Codex, Amp, Claude Code).

Pure standard library, no I/O. Holds:

- ``LineSplitter``: incremental ``bytes`` -> numbered text lines (split on ``\\n`` only, a trailing
  ``\\r`` stripped, no line-length limit, a final line without newline reported as *torn*);
- ``parse_line``: one text line -> ``ParsedLine`` (a JSON object, or the reason it is not one);
- ``parse_error_data``: the ``error_occurred`` payload for an unparsable line (docs/providers.md, ordering rules,
  rule 8: ``provider_error.kind = "parse_error"``, ``recoverable = True``, the raw line kept in
  ``details``).

Nothing here raises on bad input: every byte sequence yields lines and every line yields a
``ParsedLine``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..core.provider_errors import normalize_provider_error

#: how many characters of a bad line are kept in ``details.line`` (docs/providers.md, ordering rules, rule 8)
RAW_LINE_CHARS = 200


@dataclass(frozen=True, slots=True)
class ParsedLine:
    """One stdout line. ``obj`` is the decoded JSON object, or ``None`` with ``error`` saying why:
    ``"not_json"`` (does not start with ``{``), ``"invalid_json"``, ``"not_object"`` or
    ``"torn"`` (final line without newline: the process died mid-write)."""

    line_no: int
    raw: str
    obj: dict | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.obj is not None


class LineSplitter:
    """Split a byte stream into lines as chunks arrive.

    >>> s = LineSplitter()
    >>> s.feed(b'{"a": 1}\\r\\n{"b"')
    [(1, '{"a": 1}')]
    >>> s.feed(b': 2}\\n')
    [(2, '{"b": 2}')]
    >>> s.close() is None
    True
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self.line_no = 0

    def feed(self, chunk: bytes) -> list[tuple[int, str]]:
        """Add ``chunk``; return the complete lines it finished as ``(line_no, text)``."""
        if not chunk:
            return []
        self._buf += chunk
        out: list[tuple[int, str]] = []
        start = 0
        while True:
            nl = self._buf.find(b"\n", start)
            if nl < 0:
                break
            out.append(self._line(bytes(self._buf[start:nl])))
            start = nl + 1
        if start:
            del self._buf[:start]
        return out

    def close(self) -> tuple[int, str] | None:
        """End of stream: the trailing bytes after the last newline (a torn line), if any."""
        if not self._buf:
            return None
        rest = bytes(self._buf)
        self._buf.clear()
        return self._line(rest)

    def _line(self, raw: bytes) -> tuple[int, str]:
        self.line_no += 1
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        return self.line_no, raw.decode("utf-8", errors="replace")


def parse_line(line_no: int, text: str, *, torn: bool = False) -> ParsedLine | None:
    """Decode one line. Blank lines give ``None`` (skipped); anything else a ``ParsedLine``."""
    if not isinstance(text, str):
        text = bytes(text).decode("utf-8", errors="replace") if isinstance(text, (bytes, bytearray)) else str(text)
    stripped = text.strip()
    if not stripped:
        return None
    if torn:
        # A final line without newline is torn even if it happens to parse (docs/providers.md, ordering rules, rule 8).
        return ParsedLine(line_no, text, None, "torn")
    if not stripped.startswith("{"):
        return ParsedLine(line_no, text, None, "not_json")
    try:
        obj = json.loads(stripped)
    except (ValueError, RecursionError):
        return ParsedLine(line_no, text, None, "invalid_json")
    if not isinstance(obj, dict):
        return ParsedLine(line_no, text, None, "not_object")
    return ParsedLine(line_no, text, obj, None)


_REASONS = {
    "not_json": "line is not JSON",
    "invalid_json": "line is not valid JSON",
    "not_object": "line is JSON but not an object",
    "torn": "stream ended in the middle of a line",
}


def parse_error_data(provider: str, parsed: ParsedLine) -> dict[str, Any]:
    """``error_occurred`` data for an unparsable line (recoverable; the run continues)."""
    reason = _REASONS.get(parsed.error or "", "unparsable line")
    message = f"Unparsable {provider} output at line {parsed.line_no}: {reason}"
    details = {"line_no": parsed.line_no, "line": parsed.raw[:RAW_LINE_CHARS], "reason": parsed.error}
    pe, _ = normalize_provider_error(provider, {"kind": "parse_error", "message": message})
    return {"error_code": "provider_error", "error_message": message, "provider_error": pe,
            "recoverable": True, "details": details}


def as_dict(x: Any) -> dict:
    """``x`` if it is a dict, else ``{}`` (native fields are never trusted to have their type)."""
    return x if isinstance(x, dict) else {}


def as_list(x: Any) -> list:
    return x if isinstance(x, list) else []


def as_str(x: Any) -> str | None:
    return x if isinstance(x, str) else None


def as_int(x: Any) -> int:
    """A non-negative int from a native number field (junk and negatives -> 0)."""
    if isinstance(x, bool):
        return 0
    if isinstance(x, int):
        return max(x, 0)
    if isinstance(x, float) and x == x and x not in (float("inf"), float("-inf")):
        return max(int(x), 0)
    return 0


__all__ = ["ParsedLine", "LineSplitter", "parse_line", "parse_error_data", "as_dict", "as_list", "as_str",
           "as_int", "RAW_LINE_CHARS"]
