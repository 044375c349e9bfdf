"""The line magics' tables in a notebook: ``EventList`` is a ``list`` of events (what ``%asm events``
returns, usable as data) that displays as a table instead of raw ``Event(...)`` reprs, and
``show_table`` displays a table (HTML in a notebook, text elsewhere). ``Table`` itself is
formatting and lives in ``asm_nb.rendering.tables`` (re-exported here).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from ..rendering.tables import Table

__all__ = ["Table", "EventList", "show_table"]

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
