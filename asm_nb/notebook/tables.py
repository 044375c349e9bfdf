"""Tables for the line magics (``%asm runs | sessions | events``): an HTML table in a notebook
(DataFrame-like, so it sits well beside pandas outputs) and aligned text in a terminal.

``Table(rows, columns)`` has ``_repr_mimebundle_`` (``text/plain`` + ``text/html``) and a text
``__repr__``; ``EventList`` is a ``list`` of events (what ``%asm events`` returns, usable as
data) that displays as such a table instead of raw ``Event(...)`` reprs.
"""

from __future__ import annotations

import html
from typing import Any, Iterable, Mapping, Sequence

__all__ = ["Table", "EventList", "show_table"]

_STYLE = ("<style>.asm-table td,.asm-table th{text-align:left;white-space:nowrap;padding:2px 10px 2px 0}"
          ".asm-table td.asm-num{text-align:right;font-variant-numeric:tabular-nums}</style>")


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4f}"
    s = str(getattr(v, "value", v)).replace("\n", " ")
    return s if len(s) <= 80 else s[:77] + "..."


class Table:
    """Rows (dicts) shown under ``columns``; ``title`` is an optional caption."""

    def __init__(self, rows: Iterable[Mapping[str, Any]], columns: Sequence[str], *, title: str | None = None,
                 empty: str = "(none)") -> None:
        self.rows = [dict(r) for r in rows]
        self.columns = list(columns)
        self.title = title
        self.empty = empty

    def text(self) -> str:
        """Aligned plain text (what a terminal shows)."""
        if not self.rows:
            return self.empty
        cells = [[_cell(r.get(c)) for c in self.columns] for r in self.rows]
        widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(self.columns)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(self.columns, widths)).rstrip(),
                 "  ".join("-" * w for w in widths)]
        lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
        return "\n".join(lines)

    def html(self) -> str:
        """An escaped HTML table with the ``dataframe`` class (styled like pandas output)."""
        caption = f"<caption>{html.escape(self.title)}</caption>" if self.title else ""
        if not self.rows:
            return f"<div class='asm-table'>{caption}<i>{html.escape(self.empty)}</i></div>"
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = []
        for r in self.rows:
            tds = []
            for c in self.columns:
                v = r.get(c)
                num = isinstance(v, (int, float)) and not isinstance(v, bool)
                tds.append(f"<td class='asm-num'>{html.escape(_cell(v))}</td>" if num
                           else f"<td>{html.escape(_cell(v))}</td>")
            body.append("<tr>" + "".join(tds) + "</tr>")
        return (f"{_STYLE}<table class='dataframe asm-table'>{caption}<thead><tr>{head}</tr></thead>"
                f"<tbody>{''.join(body)}</tbody></table>")

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kwargs: Any) -> dict:
        return {"text/plain": self.text(), "text/html": self.html()}

    def __repr__(self) -> str:
        return self.text()

    def __len__(self) -> int:
        return len(self.rows)


def event_rows(events: Iterable[Any]) -> list[dict[str, Any]]:
    """``seq, time, type, summary`` per event (an ``Event`` or its dict)."""
    from ..rendering.studio import event_view

    rows = []
    for i, e in enumerate(events):
        t, d, ev = event_view(e)
        ts = ev.get("timestamp")
        summary = ""
        for key in ("tool_name", "delta", "content", "error_message", "stop_reason", "model"):
            v = d.get(key) if isinstance(d, Mapping) else None
            if v:
                summary = f"{key}={v}" if key in ("tool_name", "stop_reason", "model") else str(v)
                break
        rows.append({"seq": ev.get("sequence", i + 1), "time": str(ts)[11:23] if ts else "", "type": t,
                     "summary": summary})
    return rows


class EventList(list):
    """A list of a run's events that displays as a table (``seq, time, type, summary``)."""

    def table(self) -> Table:
        return Table(event_rows(self), ["seq", "time", "type", "summary"], empty="(no events)")

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kwargs: Any) -> dict:
        return self.table()._repr_mimebundle_()

    def __repr__(self) -> str:
        return self.table().text()

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # IPython's terminal pretty printer
        p.text(self.table().text())


def show_table(table: Table) -> None:
    """Display ``table`` in a notebook (HTML + text), print its text elsewhere."""
    try:
        from IPython.core.getipython import get_ipython

        ip = get_ipython()
    except ImportError:  # pragma: no cover - the magics need IPython
        ip = None
    if ip is not None and type(ip).__name__ == "ZMQInteractiveShell":
        from IPython.display import display

        display(table)
    else:
        print(table.text())
