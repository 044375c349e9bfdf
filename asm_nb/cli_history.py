"""``asm import`` and ``asm usage``: agent CLI session history into a store, and the usage
reports over it (``asm_nb.history``, ``asm_nb.analytics.usage``; docs/history.md).

    asm import claude-code [--since DATE] [--project TEXT] [--path DIR|FILE] [--no-progress]
    asm import codex       [...same...]
    (both: [--workers N] processes reading the files; default: 2 for 16 MB or more, a core idle)
    asm usage [--by day|week|month|session|project|model|block] [--since] [--until] [--source S]
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .core.usage import TOKEN_KEYS

__all__ = ["add_history_subcommands", "cmd_import", "cmd_usage"]

_TOKENS = [*TOKEN_KEYS, "total_tokens", "cost_usd"]
_USAGE_COLUMNS = {
    "block": ["block_start", "block_end", "active", "records", "models", *_TOKENS],
    "model": ["model", "records", "sessions", *_TOKENS],
}
_SHOWN_WARNINGS = 10
_WHERE = {"claude-code": "$CLAUDE_CONFIG_DIR, ~/.config/claude/projects or ~/.claude/projects",
          "codex": "$CODEX_HOME/sessions or ~/.codex/sessions"}
_KEY = {"day": "day", "week": "week", "month": "month", "session": "session_id", "project": "project"}


def cmd_import(args: argparse.Namespace) -> int:
    from .cli import _store, _table
    from .history import import_history

    progress = not args.no_progress and not args.json and sys.stderr.isatty()
    import warnings

    from .history import HistoryWarning

    with warnings.catch_warnings():  # the skipped lines are listed below, one line each
        warnings.simplefilter("ignore", HistoryWarning)
        report = import_history(args.source, _store(args, create=True), since=args.since, project=args.project,
                                path=args.path, progress=progress, workers=args.workers)
    d = report.to_dict()
    for w in report.warnings[:_SHOWN_WARNINGS]:
        print(f"asm: warning: {w}", file=sys.stderr)
    if report.warning_count > _SHOWN_WARNINGS:
        print(f"asm: warning: {report.warning_count - _SHOWN_WARNINGS} more line(s) skipped (--json lists the first "
              f"{len(report.warnings)})", file=sys.stderr)
    if report.files_seen == 0:
        where = args.path or _WHERE[args.source]
        print(f"asm: warning: no {args.source} session logs found in {where}", file=sys.stderr)
    if args.json:
        print(json.dumps(d, ensure_ascii=False, default=str))
        return 0
    rows = [{"what": k, "count": d[k]} for k in ("files_seen", "files_read", "files_unchanged", "lines_read",
                                                 "sessions_new", "sessions_updated", "runs", "events",
                                                 "usage_records", "warning_count")]
    print(f"imported {args.source} history in {d['duration_s']} s")
    print(_table(rows, ["what", "count"]))
    return 0


def _fmt(v: Any, col: str) -> Any:
    if v is None:
        return "n/a" if col == "cost_usd" else ""
    if col == "cost_usd":
        return f"${v:,.4f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    if isinstance(v, bool):
        return "yes" if v else ""
    return v


def cmd_usage(args: argparse.Namespace) -> int:
    from .analytics.usage import usage_rows
    from .cli import _store, _table

    sources = args.source or None
    rows, total = usage_rows(_store(args), by=args.by, since=args.since, until=args.until, source=sources)
    if args.json:
        print(json.dumps({"by": args.by, "rows": rows, "total": total}, ensure_ascii=False, default=str))
        return 0
    cols = _USAGE_COLUMNS.get(args.by) or [_KEY[args.by], "records", "sessions", "models", *_TOKENS]
    shown = [{c: _fmt(r.get(c), c) for c in cols} for r in rows]
    shown.append({cols[0]: "total", **{c: _fmt(total.get(c), c) for c in cols[1:] if c in total}})
    print(_table(shown, cols))
    if total.get("unpriced_records"):
        print(f"{total['unpriced_records']} record(s) have no price (unknown model): their cost is not in the total",
              file=sys.stderr)
    return 0


def add_history_subcommands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``asm import`` and ``asm usage`` on the ``asm`` parser."""
    from .history import SOURCES

    im = sub.add_parser("import", parents=[common],
                        help="import Claude Code / Codex session logs into the store (incremental)")
    im.add_argument("source", choices=SOURCES, help="whose logs: claude-code (~/.claude) or codex (~/.codex)")
    im.add_argument("--since", help="only records at or after this ISO date/time (UTC)")
    im.add_argument("--project", help="only projects whose path contains this text")
    im.add_argument("--path", help="read this folder or file instead of the default location")
    im.add_argument("--no-progress", action="store_true", help="no progress bar")
    im.add_argument("--workers", type=int, default=None, metavar="N",
                    help="processes reading the files (default: 2 when 16 MB or more are to be read and a second "
                         "core is idle, else 1; 1: this process only)")
    im.set_defaults(fn=cmd_import)

    from .analytics.usage import USAGE_GROUPS

    us = sub.add_parser("usage", parents=[common], help="tokens and USD by day, week, month, session, project, "
                                                        "model or 5-hour block")
    us.add_argument("--by", choices=USAGE_GROUPS, default="day", help="grouping (default: day)")
    us.add_argument("--since", help="ISO date/time (inclusive)")
    us.add_argument("--until", help="ISO date/time (exclusive)")
    us.add_argument("--source", action="append", choices=("claude-code", "codex", "asm"),
                    help="only records from this source (repeatable)")
    us.set_defaults(fn=cmd_usage)
