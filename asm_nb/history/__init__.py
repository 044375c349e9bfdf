"""Import the session history coding-agent CLIs keep on disk into any asm store.

>>> report = import_history("claude-code", store="memory://", path="tests/fixtures/history/claude")  # doctest: +SKIP

Sources: ``"claude-code"`` (``~/.claude/projects/<project>/<session>.jsonl``, honours
``CLAUDE_CONFIG_DIR``) and ``"codex"`` (``~/.codex/sessions/YYYY/MM/DD/rollout-*.jsonl``, honours
``CODEX_HOME``). Each log file becomes a session, each user prompt a run, each record normalized
events (messages, tool calls and results, one ``token_usage_updated`` per billed model call with
its model and USD), and each run its tokens, per-model usage and cost with the pricing table's
version and source. Importing again reads only what was appended since (see ``docs/history.md``).
"""

from __future__ import annotations

import os
from datetime import date, datetime
from typing import Any, Literal

from ..core.errors import AsmError
from ._base import HistoryWarning, ImportReport

__all__ = ["import_history", "ImportReport", "HistoryWarning", "SOURCES"]

#: The sources :func:`import_history` reads.
SOURCES = ("claude-code", "codex")
Source = Literal["claude-code", "codex"]
_ALIASES = {"claude-code": "claude-code", "claude_code": "claude-code", "claude": "claude-code",
            "codex": "codex"}


def import_history(source: Source | str, store: Any = None, *, since: datetime | date | str | None = None,
                   project: str | None = None, path: str | os.PathLike | None = None,
                   progress: bool = False, workers: int | None = None) -> ImportReport:
    """Import ``source``'s session logs into ``store`` (a store, a path or URL; None → the
    default store) and return an :class:`ImportReport`.

    - ``since``: only records at or after this time (a datetime, date or ISO string; naive = UTC).
      Records before it are passed over for good in this store (the file offset moves on).
    - ``project``: only projects whose path contains this text (Claude Code: the project folder
      name, i.e. the slugged path; Codex: the session's ``cwd``).
    - ``path``: read this folder or file instead of the default location.
    - ``progress``: a progress bar (tqdm) on stderr.
    - ``workers``: processes reading the files. None (default): 2 when the files to read hold
      16 MB or more and a second core is idle (the worker is ended if it turns out to contend with
      other work), else 1; 1: everything in this process. Workers are
      fresh interpreters (no fork), used with the default store (a ``LocalStore``) on POSIX;
      what is stored is the same with any number (see ``docs/history.md``).

    Idempotent and incremental: a file already imported is read from where the last import
    stopped, an unchanged one not at all. A malformed or unknown line is skipped with a warning
    (:class:`HistoryWarning`, and listed in ``report.warnings``); it never stops the import.
    Raises ``AsmError`` (``validation_error``) for an unknown source, a bad ``since`` or
    ``workers`` (not None or an integer from 1 to 64), and
    (``not_found``) for a ``path`` that does not exist.
    """
    from ._base import to_utc
    from ._driver import run_import
    from ._workers import resolve_workers

    if not isinstance(source, str) or source not in _ALIASES:
        raise AsmError("validation_error", f"unknown history source {source!r} (choose from {', '.join(SOURCES)})")
    if project is not None and (not isinstance(project, str) or not project):
        raise AsmError("validation_error", "project must be a non-empty string")
    resolve_workers(workers)
    src = _ALIASES[source]
    since_dt = to_utc(since)
    if src == "claude-code":
        from . import claude_code as mod
    else:
        from . import codex as mod
    jobs = mod.discover(path, project)
    handler, first, finish = _source(src)
    if since_dt is not None:  # a file last written before ``since`` holds nothing newer
        jobs = [j for j in jobs if _mtime(j.path) >= since_dt.timestamp()]
    from ..stores import resolve_store

    st = resolve_store(store)
    report = run_import(src, jobs, handler, store=st, since=since_dt, progress=progress,
                        finish=finish, first_line=first, workers=workers, worker_source=src)
    flush = getattr(st, "flush", None)
    if callable(flush):
        flush()
    return report


def _source(src: str) -> tuple[Any, Any, Any]:
    """``(handler, first_line, finish)`` of a source (also what the worker processes use)."""
    if src == "claude-code":
        from . import claude_code

        return claude_code.handle_line, None, _finish
    from . import codex

    return codex.handle_line, codex.first_line, _finish


def _finish(b: Any) -> None:
    """After a file's last line: a run is left open (the agent may still be writing); its events
    and totals are saved and the next import continues it."""


def _mtime(p: Any) -> float:
    try:
        return os.stat(p).st_mtime
    except OSError:
        return 0.0
