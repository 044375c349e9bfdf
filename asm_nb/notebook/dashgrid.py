"""The dashboard's run grid: a small anywidget (``RunGrid``) showing one page of runs as a table.

Columns: status dot, prompt, provider / model, started (relative time), duration, tokens, cost.
A header click sorts by that column (again: the other direction; an arrow marks it); a row
click (or Enter / Space on the focused row) picks the run; the pager (or PageUp / PageDown)
turns pages. The front end (``rungrid.js``, ``rungrid.css`` next to this file, inlined: nothing
is fetched) draws what Python sends and sends the user's intents back as messages; the sorting,
paging and picking happen here, on the full frame of filtered runs, so 5,000 runs cost one
polars sort and one page of row dicts (``page_size`` rows) per change.

``RunGrid`` is imported when a dashboard is built (it needs ``anywidget``, in the ``notebook``
extra), never at ``import asm_nb``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import anywidget
import traitlets as t

from ..core.errors import AsmError
from ..rendering.renderers import short_model
from ..rendering.runview import cost_words, duration_words

__all__ = ["RunGrid", "LIVE_COLUMNS", "DEFAULT_SORT", "PAGE_SIZE", "next_sort", "parse_sort", "relative_time",
           "sort_frame"]

_HERE = Path(__file__).parent
#: The live grid's columns: key (also the sort key), label, kind (how it formats and aligns), title.
LIVE_COLUMNS: list[dict[str, str]] = [
    {"key": "status", "label": "", "kind": "status", "title": "Status"},
    {"key": "prompt", "label": "Prompt", "kind": "text", "title": "Prompt"},
    {"key": "provider_model", "label": "Provider / model", "kind": "text", "title": "Provider / model"},
    {"key": "started_at", "label": "Started", "kind": "time", "title": "Started"},
    {"key": "duration_s", "label": "Duration", "kind": "seconds", "title": "Duration"},
    {"key": "total_tokens", "label": "Tokens", "kind": "int", "title": "Tokens"},
    {"key": "cost_usd", "label": "Cost", "kind": "usd", "title": "Cost"},
]
_KEYS = [c["key"] for c in LIVE_COLUMNS]
DEFAULT_SORT = "-started_at"  # newest first
PAGE_SIZE = 25
_PROMPT_TITLE_CHARS = 600


def parse_sort(spec: str) -> tuple[str, bool]:
    """``"-cost_usd"`` → ``("cost_usd", True)`` (descending); unknown column → ``validation_error``."""
    descending = spec.startswith("-")
    key = spec[1:] if descending else spec
    if key not in _KEYS:
        raise AsmError("validation_error", f"cannot sort the runs by {key!r}; expected one of {', '.join(_KEYS)}")
    return key, descending


def next_sort(current: str, key: str) -> str:
    """The sort after a click on ``key``'s header: the same column flips its direction; another
    column starts ascending, except *Started*, which starts newest first (as the saved grid)."""
    cur_key, cur_desc = parse_sort(current)
    parse_sort(key)
    descending = (not cur_desc) if key == cur_key else key == "started_at"
    return f"-{key}" if descending else key


def relative_time(when: Any, now: datetime | None = None) -> str:
    """``"just now"``, ``"5 min ago"``, ``"3 h ago"``, ``"2 d ago"``, then the date; None → ``"-"``.
    (``rungrid.js`` has the same rules: it re-words the shown times every 30 s.)"""
    if not isinstance(when, datetime):
        return "-"
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    s = (now - when).total_seconds()
    if s < -60:
        return when.strftime("%Y-%m-%d")
    if s < 45:
        return "just now"
    if s < 3600:
        return f"{max(1, round(s / 60))} min ago"
    if s < 86400:
        return f"{int(s // 3600)} h ago"
    if s < 7 * 86400:
        return f"{int(s // 86400)} d ago"
    return when.strftime("%Y-%m-%d")


def sort_frame(df: Any, spec: str) -> Any:
    """The runs in ``spec``'s order (see :func:`parse_sort`): empty values last in both
    directions, ties newest first. Text sorts ignore case; provider / model sorts by provider, then model."""
    import polars as pl

    key, descending = parse_sort(spec)
    if key == "started_at":
        keys, desc = [pl.col("started_at"), pl.col("run_id")], [descending, descending]
    else:
        if key == "prompt":
            first = [pl.col("prompt").str.to_lowercase()]
        elif key == "provider_model":
            first = [pl.col("provider").cast(pl.String).str.to_lowercase(),
                     pl.col("model").cast(pl.String).str.to_lowercase()]
        elif key == "status":
            first = [pl.col("status").cast(pl.String)]
        else:
            first = [pl.col(key)]
        keys = [*first, pl.col("started_at"), pl.col("run_id")]
        desc = [descending] * len(first) + [True, True]
    return df.sort(keys, descending=desc, nulls_last=True, maintain_order=True)


def _row(r: dict, now: datetime) -> dict:
    """One grid row, display-ready: ``run_id``, ``status``, ``cells`` and ``titles`` by column key."""
    status = str(r.get("status") or "")
    provider = str(r.get("provider") or "?")
    model = r.get("model")
    pm = f"{provider} / {short_model(model) or model}" if model else provider
    prompt = r.get("prompt") or ""
    started = r.get("started_at")
    dur = r.get("duration_s")
    cost = r.get("cost_usd")
    err = " ".join(str(x) for x in (r.get("error_code"), r.get("error_message")) if x)
    cells = {
        "status": status,
        "prompt": " ".join(prompt.split()) or "(no prompt)",
        "provider_model": pm,
        "started_at": relative_time(started, now),
        "duration_s": (duration_words(dur * 1000) or "0 ms") if dur is not None else "-",
        "total_tokens": f"{int(r.get('total_tokens') or 0):,}",
        "cost_usd": "n/a" if cost is None else cost_words(float(cost)),
    }
    titles = {
        "status": status + (f": {err[:300]}" if err else ""),
        "prompt": prompt[:_PROMPT_TITLE_CHARS] + ("…" if len(prompt) > _PROMPT_TITLE_CHARS else ""),
        "provider_model": f"{provider} / {model}" if model else provider,
        "started_at": started.strftime("%Y-%m-%d %H:%M:%S UTC") if isinstance(started, datetime) else "",
        "cost_usd": "" if cost is not None else "no price for this model",
    }
    return {"run_id": r["run_id"], "status": status, "cells": cells, "titles": {k: v for k, v in titles.items() if v},
            # the start time for the view, which re-words "5 min ago" as time passes (same rules)
            "started": started.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            if isinstance(started, datetime) and started.tzinfo else None}


def _read(name: str) -> str:
    return (_HERE / name).read_text(encoding="utf-8")


class RunGrid(anywidget.AnyWidget):
    """The run grid widget. ``set_frame(df)`` gives it the (filtered) runs frame; ``value`` is
    the picked run id (None: none); ``sort`` the order (``"-started_at"``: newest first);
    ``page`` the page shown. ``on_pick(run_id)`` is called when the pick changes.

    What the front end does, Python can do: :meth:`click_header`, :meth:`click_row`,
    :meth:`show_page` (the messages the view sends call these)."""

    _esm = _read("rungrid.js")
    _css = _read("rungrid.css")

    columns = t.List(t.Dict()).tag(sync=True)
    rows = t.List(t.Dict()).tag(sync=True)
    sort = t.Unicode(DEFAULT_SORT).tag(sync=True)
    value = t.Unicode(None, allow_none=True).tag(sync=True)
    page = t.Int(0).tag(sync=True)
    pages = t.Int(1).tag(sync=True)
    total = t.Int(0).tag(sync=True)
    page_size = t.Int(PAGE_SIZE).tag(sync=True)

    def __init__(self, *, page_size: int = PAGE_SIZE, on_pick: Callable[[str | None], None] | None = None,
                 **kwargs: Any) -> None:
        if not isinstance(page_size, int) or isinstance(page_size, bool) or page_size <= 0:
            raise AsmError("validation_error", f"page_size must be a positive integer, got {page_size!r}")
        super().__init__(columns=[dict(c) for c in LIVE_COLUMNS], page_size=page_size, **kwargs)
        self._source: Any = None  # the runs as given (filtered, any order)
        self.frame: Any = None  # the runs in the grid's order
        self.run_ids: list[str] = []
        self._pos: dict[str, int] = {}
        self._on_pick = on_pick
        self._quiet = False
        self.on_msg(self._on_front)
        self.observe(self._on_sort, names="sort")
        self.observe(self._on_page, names="page")
        self.observe(self._on_value, names="value")

    # -- data -----------------------------------------------------------------------------------
    def set_frame(self, df: Any) -> None:
        """Show these runs (the filtered frame): sorted by ``sort``, first page. The picked run
        stays picked when it is still there; otherwise the pick clears (``on_pick(None)``)."""
        self._source = df
        self._resort(page=0)
        if self.value is not None and self.value not in self._pos:
            self.value = None

    def _resort(self, page: int) -> None:
        self.frame = sort_frame(self._source, self.sort) if self._source is not None else None
        self.run_ids = [] if self.frame is None else self.frame["run_id"].to_list()
        self._pos = {rid: i for i, rid in enumerate(self.run_ids)}
        n = len(self.run_ids)
        self._quiet = True
        try:
            self.total = n
            self.pages = max(1, -(-n // self.page_size))
            self.page = min(page, self.pages - 1)
        finally:
            self._quiet = False
        self._draw()

    def _draw(self) -> None:
        if self.frame is None:
            self.rows = []
            return
        now = datetime.now(timezone.utc)
        shown = self.frame.slice(self.page * self.page_size, self.page_size)
        self.rows = [_row(r, now) for r in shown.iter_rows(named=True)]

    def page_of(self, run_id: str) -> int:
        """The page (0-based) holding ``run_id``; a run not in the grid → ``validation_error``."""
        if run_id not in self._pos:
            raise AsmError("validation_error", f"run {run_id!r} is not in the run table (check the filters)")
        return self._pos[run_id] // self.page_size

    # -- what the user does (the front end's messages) -------------------------------------------
    def click_header(self, key: str) -> None:
        """A click on ``key``'s header: sort by it (again: the other direction), first page."""
        self.sort = next_sort(self.sort, key)

    def click_row(self, run_id: str) -> None:
        """A click on a row: pick that run (a run not on the current page → ``validation_error``)."""
        if run_id not in {r["run_id"] for r in self.rows}:
            raise AsmError("validation_error", f"run {run_id!r} is not on the grid's page")
        self.pick(run_id)

    def show_page(self, page: int) -> None:
        """Turn to ``page`` (0-based; clamped to the pages there are)."""
        self.page = max(0, min(int(page), self.pages - 1))

    def pick(self, run_id: str | None) -> None:
        """Pick ``run_id`` (None clears), turning to its page; ``on_pick`` runs even when the run
        was already picked (a redraw)."""
        if run_id is not None:
            self.show_page(self.page_of(run_id))
        if self.value == run_id:
            if self._on_pick is not None:
                self._on_pick(run_id)
        else:
            self.value = run_id

    def _on_front(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        event = content.get("event")
        try:
            if event == "sort":
                self.click_header(str(content.get("key")))
            elif event == "pick":
                self.click_row(str(content.get("run_id")))
            elif event == "page":
                self.show_page(int(content.get("page", 0)))
        except (AsmError, TypeError, ValueError):
            self._draw()  # a stale click (the page changed meanwhile): redraw what is true

    # -- trait observers ------------------------------------------------------------------------
    @t.validate("sort")
    def _check_sort(self, proposal: Any) -> str:
        parse_sort(proposal["value"])  # an unknown column → validation_error, the sort unchanged
        return proposal["value"]

    def _on_sort(self, _change: Any) -> None:
        self._resort(page=0)

    def _on_page(self, _change: Any) -> None:
        if not self._quiet:
            self._draw()

    def _on_value(self, change: Any) -> None:
        if self._on_pick is not None:
            self._on_pick(change["new"])
