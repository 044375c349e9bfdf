"""Tolerant reads shared by the stores: one bad record (a run row whose status or date does
not parse, a session row with a bad field) is skipped with a warning naming the file or table
and the row, instead of making every listing fail.

``parse_rows(rows, parse, what=..., where=...)`` parses what it can; ``parse_row`` returns None
for a bad row. The warning (``BadRecordWarning``) is given once per row.
"""

from __future__ import annotations

import logging
import threading
import warnings
from typing import Any, Callable, Iterable

from ..core.errors import AsmError

__all__ = ["BadRecordWarning", "parse_row", "parse_rows"]

log = logging.getLogger("asm_nb.stores")

_BAD = (AsmError, ValueError, TypeError, KeyError, AttributeError)
_warned: set[tuple[str, str]] = set()
_lock = threading.Lock()


class BadRecordWarning(UserWarning):
    """A stored record could not be read and was skipped."""


def _row_id(row: Any) -> str:
    try:
        v = row["id"]
    except Exception:  # noqa: BLE001 - no id to name: say so
        return "?"
    return str(v)


def parse_row(row: Any, parse: Callable[[Any], Any], *, what: str, where: Any) -> Any | None:
    """``parse(row)``, or None (with a warning naming ``where`` and the row's id) when it fails."""
    try:
        return parse(row)
    except _BAD as exc:
        rid = _row_id(row)
        key = (str(where), rid)
        with _lock:
            first = key not in _warned
            if first:
                if len(_warned) > 10_000:
                    _warned.clear()
                _warned.add(key)
        if first:
            msg = (f"skipped the {what} row {rid!r} in {where}: "
                   f"{exc.message if isinstance(exc, AsmError) else exc} (the other rows are listed)")
            log.debug(msg)
            warnings.warn(msg, BadRecordWarning, stacklevel=3)
        return None


def parse_rows(rows: Iterable[Any], parse: Callable[[Any], Any], *, what: str, where: Any) -> list[Any]:
    """The rows that parse, in order; each bad one skipped with a warning."""
    out = []
    for row in rows:
        obj = parse_row(row, parse, what=what, where=where)
        if obj is not None:
            out.append(obj)
    return out
