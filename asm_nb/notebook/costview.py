"""The ``%asm cost``, ``%asm dashboard`` and ``%asm search`` line commands.

Importing this module registers them with :mod:`asm_nb.notebook.magics` (the extension imports
it on ``%load_ext asm_nb``). The table itself is :func:`asm_nb.analytics.cost.cost_table`,
shared with ``asm cost``.

    %asm cost                              # by provider and model, with a TOTAL line
    %asm cost --by day --since 2026-03-01  # per UTC day
    %asm dashboard                         # filters, KPIs, charts, runs, transcript
    %asm search "connection refused" --kind tool_output   # full-text search (docs/search.md)
"""

from __future__ import annotations

import argparse
from typing import Any

from ..analytics.cost import COST_GROUPS, cost_rows
from ..rendering.tables import format_cost_table

__all__ = ["cost_command", "dashboard_command", "search_command"]


# --------------------------------------------------------------------------------------------
# %asm cost / %asm dashboard


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one-line usage error instead of SystemExit
        from .magics import UsageError

        raise UsageError(f"{self.prog}: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> Any:  # --help
        from .magics import UsageError

        if status:
            raise UsageError(message or f"{self.prog}: bad arguments")
        raise _HelpShown()


class _HelpShown(Exception):
    pass


def _cost_parser() -> _Parser:
    p = _Parser(prog="%asm cost", description="USD and tokens by provider and model.", add_help=True)
    p.add_argument("--by", default="provider,model", help=f"comma-separated groups: {', '.join(COST_GROUPS)}")
    p.add_argument("--provider", action="append")
    p.add_argument("--model", action="append")
    p.add_argument("--session")
    p.add_argument("--status", action="append")
    p.add_argument("--since", help="ISO date/time (inclusive)")
    p.add_argument("--until", help="ISO date/time (exclusive)")
    p.add_argument("--store", help="store path or URL (default: the kernel's store)")
    return p


def _magic_store(magics: Any, target: str | None) -> Any:
    if target:
        from ..stores import resolve_store

        return resolve_store(target)
    return magics._store()


def cost_command(magics: Any, args: list[str]) -> None:
    """``%asm cost [--by provider,model] [--provider P] [--since DATE] ...``: print the cost table."""
    p = _cost_parser()
    try:
        ns = p.parse_args(args)
    except _HelpShown:
        print(p.format_help())
        return None
    rows, total = cost_rows(_magic_store(magics, ns.store), by=ns.by, provider=ns.provider, model=ns.model,
                            session_id=ns.session, status=ns.status, since=ns.since, until=ns.until)
    print(format_cost_table(rows, total))
    return None


def dashboard_command(magics: Any, args: list[str]) -> Any:
    """``%asm dashboard [--store PATH|URL]``: show the analytics dashboard."""
    p = _Parser(prog="%asm dashboard", description="Filters, KPIs, charts and runs of the store.")
    p.add_argument("--store", help="store path or URL (default: the kernel's store)")
    try:
        ns = p.parse_args(args)
    except _HelpShown:
        print(p.format_help())
        return None
    from .dashboard import dashboard

    return dashboard(_magic_store(magics, ns.store))


def search_command(magics: Any, args: list[str]) -> Any:
    """``%asm search TEXT [--kind K] [--session ID] [--limit N] [--store PATH|URL]``: the ranked
    hits as a DataFrame (``asm_nb.frames.search``), the matches between ``**``."""
    p = _Parser(prog="%asm search", description="Full-text search over prompts, outputs, tool inputs and outputs.")
    p.add_argument("text", nargs="+", help='words (all must match), or FTS5 syntax: "a phrase", a OR b, pre*')
    p.add_argument("--kind", action="append", choices=("prompt", "output", "tool_input", "tool_output"))
    p.add_argument("--session")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--store", help="store path or URL (default: the kernel's store)")
    try:
        ns = p.parse_args(args)
    except _HelpShown:
        print(p.format_help())
        return None
    from ..analytics.search import search

    return search(_magic_store(magics, ns.store), " ".join(ns.text), kind=ns.kind, session_id=ns.session,
                  limit=ns.limit)


def _register() -> None:
    from .magics import register_line_command

    register_line_command("cost", cost_command)
    register_line_command("dashboard", dashboard_command)
    register_line_command("search", search_command)


_register()
