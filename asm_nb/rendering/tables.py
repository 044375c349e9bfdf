"""Plain-text and HTML tables: the one place rows become fixed-width text (``asm sessions``,
``%asm runs``, ``asm health``, ``asm cost``) or a small HTML table (``%asm runs --live``).

Standard library only.
"""

from __future__ import annotations

import html
from typing import Any, Callable, Iterable, Mapping, Sequence

__all__ = ["text_table", "html_table", "cell_text", "format_cost_table", "COST_NUMBER_COLUMNS",
           "COST_COLUMNS_AFTER_KEYS", "Table"]

#: Summed token columns of a cost table (``asm cost``), in display order.
COST_NUMBER_COLUMNS = ("runs", "input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens",
                       "total_tokens")
#: The columns of a cost table that follow its group keys.
COST_COLUMNS_AFTER_KEYS = (*COST_NUMBER_COLUMNS, "cost_usd", "unpriced_runs")
_NUM_COLS = COST_NUMBER_COLUMNS
_COLUMNS_AFTER_KEYS = COST_COLUMNS_AFTER_KEYS


def cell_text(v: Any, width: int = 60) -> str:
    """One table cell: ``None`` empty, floats to 4 places, one line, at most ``width`` characters."""
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4f}"
    s = str(v).replace("\n", " ")
    return s if len(s) <= width else s[:width - 3] + "..."


def text_table(rows: Sequence[dict[str, Any]], columns: Sequence[str],
               cell: Callable[[Any], str] = cell_text) -> str:
    """A fixed-width table with a header and a dashed rule; ``(none)`` when there are no rows."""
    if not rows:
        return "(none)"
    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def html_table(rows: Sequence[dict[str, Any]], columns: Sequence[str],
               cell: Callable[[Any], str] = cell_text) -> str:
    """The same rows as an escaped HTML ``<table>``."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell(r.get(c)))}</td>" for c in columns) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def format_cost_table(rows: Sequence[dict], total: dict | None = None) -> str:
    """A fixed-width text table of :func:`cost_rows` output, numbers right-aligned, with a
    ``TOTAL`` line."""
    if not rows:
        return "(no runs)"
    keys = [k for k in rows[0] if k not in _COLUMNS_AFTER_KEYS]
    heads = {"input_tokens": "input", "output_tokens": "output", "cache_read_tokens": "cache_read",
             "cache_creation_tokens": "cache_write", "total_tokens": "total_tokens", "cost_usd": "cost_usd",
             "unpriced_runs": "unpriced"}
    cols = [*keys, *_COLUMNS_AFTER_KEYS]

    def cell(k: str, v: Any) -> str:
        if k == "cost_usd":
            return "n/a" if v is None else f"${v:,.4f}"
        if k in _NUM_COLS or k == "unpriced_runs":
            return f"{int(v or 0):,}"
        return "-" if v is None else str(v)

    body = [[cell(k, r.get(k)) for k in cols] for r in rows]
    if total is not None:
        body.append(["TOTAL" if i == 0 else "" for i in range(len(keys))] + [cell(k, total.get(k)) for k in
                                                                              _COLUMNS_AFTER_KEYS])
    titles = [str(heads.get(c, c)) for c in cols]
    widths = [max(len(t), *(len(row[i]) for row in body)) for i, t in enumerate(titles)]
    right = [c not in keys for c in cols]

    def line(vals: Iterable[str]) -> str:
        return "  ".join(v.rjust(w) if r else v.ljust(w) for v, w, r in zip(vals, widths, right)).rstrip()

    out = [line(titles), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in body[:len(rows)]]
    if total is not None:
        out.append("  ".join("-" * w for w in widths))
        out.append(line(body[-1]))
    return "\n".join(out)


# -- a displayable table (the line magics' ``%asm runs | sessions | events``) ----------------------

_STYLE = ("<style>.asm-table td,.asm-table th{text-align:left;white-space:nowrap;padding:2px 10px 2px 0}"
          ".asm-table td.asm-num{text-align:right;font-variant-numeric:tabular-nums}</style>")


def _table_cell(v: Any) -> str:
    """A cell of a displayed ``Table``: enum members as their value, up to 80 characters."""
    return cell_text(getattr(v, "value", v), width=80)


class Table:
    """Rows (dicts) shown under ``columns``; ``title`` is an optional caption. Displays as an HTML
    table in a notebook (DataFrame-like, so it sits well beside pandas outputs) and as aligned text
    in a terminal (``_repr_mimebundle_``: ``text/plain`` + ``text/html``)."""

    def __init__(self, rows: Iterable[Mapping[str, Any]], columns: Sequence[str], *, title: str | None = None,
                 empty: str = "(none)") -> None:
        self.rows = [dict(r) for r in rows]
        self.columns = list(columns)
        self.title = title
        self.empty = empty

    def text(self) -> str:
        """Aligned plain text (what a terminal shows)."""
        return text_table(self.rows, self.columns, cell=_table_cell) if self.rows else self.empty

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
                tds.append(f"<td class='asm-num'>{html.escape(_table_cell(v))}</td>" if num
                           else f"<td>{html.escape(_table_cell(v))}</td>")
            body.append("<tr>" + "".join(tds) + "</tr>")
        return (f"{_STYLE}<table class='dataframe asm-table'>{caption}<thead><tr>{head}</tr></thead>"
                f"<tbody>{''.join(body)}</tbody></table>")

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kwargs: Any) -> dict:
        return {"text/plain": self.text(), "text/html": self.html()}

    def __repr__(self) -> str:
        return self.text()

    def __len__(self) -> int:
        return len(self.rows)
