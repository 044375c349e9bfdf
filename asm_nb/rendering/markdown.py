"""A small, safe Markdown subset as HTML (the subset the JupyterLab card shows): the text is
HTML-escaped first, then fenced code blocks, ``#`` headings, ``-`` / ``1.`` lists, pipe tables,
paragraphs, `` `code` ``, ``**bold**``, ``*italic*`` and ``[links](https://...)`` (http, https and
mailto only). Raw HTML in the text stays text. Used by the run view's text segments.
"""

from __future__ import annotations

import html
import re

_INLINE_CODE = re.compile(r"`([^`\n]+)`")
_BOLD = re.compile(r"\*\*([^*\n]+)\*\*|__([^_\n]+)__")
_ITALIC = re.compile(r"(?<![\w*])\*(?!\s)([^*\n]+?)(?<!\s)\*(?![\w*])|(?<![\w_])_(?!\s)([^_\n]+?)(?<!\s)_(?![\w_])")
_LINK = re.compile(r"\[([^\]\n]+)\]\(((?:https?://|mailto:)[^\s)\\\"'<>]+)\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_BULLET = re.compile(r"^\s*[-*+]\s+(.*)$")
_NUMBERED = re.compile(r"^\s*(\d{1,9})[.)]\s+(.*)$")
_TABLE_SEP = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")


def _emphasis(escaped: str) -> str:
    out = _BOLD.sub(lambda m: f"<b>{m.group(1) or m.group(2)}</b>", escaped)
    return _ITALIC.sub(lambda m: f"<i>{m.group(1) or m.group(2)}</i>", out)


def _inline(escaped: str) -> str:
    """Inline Markdown on already-escaped text: `` `code` ``, links (http/https/mailto only),
    ``**bold**``, ``*italic*`` / ``_italic_``."""
    parts = _INLINE_CODE.split(escaped)
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(f"<code>{part}</code>")
            continue
        pos, chunk = 0, []
        for m in _LINK.finditer(part):
            chunk.append(_emphasis(part[pos:m.start()]))
            href = m.group(2).replace('"', "&quot;")
            chunk.append(f'<a href="{href}" target="_blank" rel="noopener noreferrer">{_emphasis(m.group(1))}</a>')
            pos = m.end()
        chunk.append(_emphasis(part[pos:]))
        out.append("".join(chunk))
    return "".join(out)


def _table_cells(line: str) -> list[str]:
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|"):
        line = line[:-1]
    return [c.strip() for c in line.split("|")]


def markdown_html(text: str, in_fence: bool = False) -> str:
    """Render text as a small, safe Markdown subset (the subset the JupyterLab card shows):
    the text is HTML-escaped first, then fenced code blocks, ``#`` headings, ``-`` bullets,
    ``1.`` numbered lists, pipe tables, paragraphs, `` `code` ``, ``**bold**``, ``*italic*`` and
    ``[links](https://...)`` (http, https and mailto only). ``in_fence`` says the text starts inside
    an open code fence (a continuation segment). Raw HTML in the text stays text.

    >>> markdown_html("Hi <b>\\n\\n```\\nx < 1\\n```")
    '<p>Hi &lt;b&gt;</p><pre><code>x &lt; 1</code></pre>'
    """
    out: list[str] = []
    para: list[str] = []
    items: list[str] = []
    list_tag = "ul"
    code: list[str] | None = [] if in_fence else None
    lines = text.split("\n")

    def end_para() -> None:
        if para:
            out.append("<p>" + "<br>".join(_inline(p) for p in para) + "</p>")
            para.clear()
        if items:
            out.append(f"<{list_tag}>" + "".join(f"<li>{_inline(x)}</li>" for x in items) + f"</{list_tag}>")
            items.clear()

    i = 0
    while i < len(lines):
        raw = lines[i]
        i += 1
        line = html.escape(raw, quote=False)
        if raw.lstrip().startswith("```"):
            if code is None:
                end_para()
                code = []
            else:
                out.append("<pre><code>" + "\n".join(code) + "</code></pre>")
                code = None
            continue
        if code is not None:
            code.append(line)
            continue
        if raw.strip() == "":
            end_para()
            continue
        m = _HEADING.match(line)
        if m:
            end_para()
            n = len(m.group(1))
            out.append(f"<h{n + 2 if n < 5 else 6}>{_inline(m.group(2))}</h{n + 2 if n < 5 else 6}>")
            continue
        if "|" in raw and i < len(lines) and _TABLE_SEP.match(lines[i]) and "|" in lines[i]:
            end_para()
            table, i = _table(line, lines, i + 1)
            out.append(table)
            continue
        m = _BULLET.match(line)
        n = None if m else _NUMBERED.match(line)
        if m or n:
            tag = "ul" if m else "ol"
            if para or (items and tag != list_tag):
                end_para()
            list_tag = tag
            items.append(m.group(1) if m else n.group(2) if n else "")
            continue
        if items:
            end_para()
        para.append(line)
    end_para()
    if code is not None:
        out.append("<pre><code>" + "\n".join(code) + "</code></pre>")
    return "".join(out)


def _table(head_line: str, lines: list[str], i: int) -> tuple[str, int]:
    """A pipe table: its escaped header line, then the body rows from ``lines[i]`` on (up to a line
    without ``|`` or a blank one). Returns the HTML and the index after the table."""
    head = _table_cells(head_line)
    rows = []
    while i < len(lines) and "|" in lines[i] and lines[i].strip():
        rows.append(_table_cells(html.escape(lines[i], quote=False)))
        i += 1
    th = "".join(f"<th>{_inline(c)}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r[:len(head)])
                   + "<td></td>" * max(0, len(head) - len(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>", i


def _fence_lines(text: str) -> int:
    return sum(1 for line in text.split("\n") if line.lstrip().startswith("```"))
