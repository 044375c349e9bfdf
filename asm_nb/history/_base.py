"""The import machinery shared by every history source, in three modules:

- here, the vocabulary: :class:`ImportReport`, :class:`HistoryWarning`, :class:`FileJob` (one log
  file and the session it becomes), timestamps (:func:`parse_ts`, :func:`to_utc`) and the saved
  usage keys;
- ``_builder.py``: :class:`SessionBuilder`, which turns one file's records into a session, runs
  (one per user turn) and normalized events in memory, with per-message pricing and redaction;
- ``_driver.py``: :func:`run_import`, the incremental driver (which files changed, from which
  offset to read, line by line, and the writes into the store).

A source (``claude_code.py``, ``codex.py``) knows where its files are and how one parsed line maps
to builder calls; everything else is in these modules. Nothing here knows a log format.

Incremental import: each imported file becomes one asm session whose ``context["history_import"]``
remembers the byte offset after the last complete line read and the builder's open state (the
current turn, open tool calls, cumulative counters). A second import reads only the bytes after
that offset; an unchanged file is skipped without being opened. Usage keys already counted
(Claude Code repeats a streamed message's usage on every line of it, and a resumed session copies
earlier messages into its new file) are kept with the session, so they are never counted twice.

``SessionBuilder`` and ``run_import`` are still importable from here (their old home).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..core.errors import AsmError
from ..core.events import EventType
from ..core.serialization import new_id

if TYPE_CHECKING:
    from ._builder import SessionBuilder
    from ._driver import run_import

__all__ = ["HistoryWarning", "ImportReport", "SessionBuilder", "FileJob", "run_import", "parse_ts", "to_utc"]

STATE_KEY = "history_import"
_TYPES = {t.value: t for t in EventType}
STATE_VERSION = 1
_UTC = timezone.utc
_MAX_WARNINGS = 200  # kept in the report; the count is exact

class HistoryWarning(UserWarning):
    """A log line that could not be imported (malformed JSON, unknown record type, bad field):
    the line is skipped and the import goes on."""


@dataclass
class ImportReport:
    """What one :func:`asm_nb.import_history` call did."""

    source: str
    files_seen: int = 0
    files_read: int = 0
    files_unchanged: int = 0
    lines_read: int = 0
    sessions_new: int = 0
    sessions_updated: int = 0
    runs: int = 0
    events: int = 0
    usage_records: int = 0
    warning_count: int = 0
    warnings: list = field(default_factory=list)
    duration_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready counts and the (first 200) warnings."""
        return {k: getattr(self, k) for k in ("source", "files_seen", "files_read", "files_unchanged",
                                              "lines_read", "sessions_new", "sessions_updated", "runs",
                                              "events", "usage_records", "warning_count", "warnings",
                                              "duration_s")}

    def warn(self, text: str) -> None:
        self.warning_count += 1
        if len(self.warnings) < _MAX_WARNINGS:
            self.warnings.append(text)


def parse_ts(value: Any) -> datetime | None:
    """A log timestamp (ISO-8601, ``Z`` or offset; naive = UTC) as an aware UTC datetime, or None."""
    if type(value) is str:
        hit = _ts_cache.get(value)
        if hit is not None:
            return hit
        dt = _parse_ts(value)
        if dt is not None:
            if len(_ts_cache) >= 4096:  # consecutive records often share a timestamp
                _ts_cache.clear()
            _ts_cache[value] = dt
        return dt
    return _parse_ts(value)


_ts_cache: dict[str, datetime] = {}


def _parse_ts(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    s = value[:-1] + "+00:00" if value[-1] in "Zz" else value
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        return None
    if dt.tzinfo is None:
        return dt.replace(tzinfo=_UTC)
    return dt if dt.tzinfo is _UTC else dt.astimezone(_UTC)


def to_utc(value: Any, name: str = "since") -> datetime | None:
    """``since=`` given as a datetime (naive = UTC), a date, or an ISO string (``2025-06-01``)."""
    if value is None:
        return None
    from datetime import date

    if isinstance(value, datetime):
        return value.replace(tzinfo=_UTC) if value.tzinfo is None else value.astimezone(_UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=_UTC)
    if isinstance(value, str):
        dt = parse_ts(value.strip() if "T" in value else value.strip() + "T00:00:00")
        if dt is not None:
            return dt
    raise AsmError("validation_error", f"{name} must be a date, a datetime or an ISO date string, got {value!r}")


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt is not None else None


def _ended(run: Mapping) -> datetime | None:
    """When a run state's last record was (the in-memory datetime, else the saved ISO text)."""
    dt = run.get("_ended_dt")
    return dt if isinstance(dt, datetime) else parse_ts(run.get("ended"))


def _now() -> datetime:
    return datetime.now(_UTC)

@dataclass
class FileJob:
    """One log file to import and the session it becomes."""

    path: Path
    source: str            # "claude-code" / "codex"
    provider: str          # "claude_code" / "codex"
    agent_id: str
    key: str               # stable id part from the file (session uuid, agent id)
    id_prefix: str         # "cc_" / "cx_"
    project: str | None = None
    parent_session_id: str | None = None

    @property
    def session_id(self) -> str:
        return f"ses_{self.id_prefix}{self.key}"

_ABSENT = object()


def _keys(value: Any) -> dict[str, Any]:
    """The saved usage keys: ``{key: [input, output, cache_read, cache_creation]}`` (a list of
    keys from an earlier layout: counted, with no figures to grow from)."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (list, tuple)):
        return dict.fromkeys((k for k in value if isinstance(k, str)), None)
    return {}



def new_key() -> str:
    """A fresh id part for a file without an id of its own."""
    return new_id("")[:16]


_MOVED = {"SessionBuilder": "_builder", "_Pricer": "_builder", "_new_run_state": "_builder",
          "run_import": "_driver", "LineHandler": "_driver", "_write": "_driver", "_lines": "_driver",
          "_size": "_driver", "_loads": "_driver", "_NoBar": "_driver", "_progress": "_driver"}


def __getattr__(name: str) -> Any:
    """The names that moved to ``_builder`` / ``_driver`` (imported on first use: no cycle)."""
    mod = _MOVED.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__package__}.{mod}"), name)
