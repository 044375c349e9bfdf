"""``frames.search`` / ``asm search``: full-text search over prompts, outputs, tool inputs and tool
outputs as a ranked DataFrame (docs/search.md). The index itself lives with each store
(``stores/search.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Sequence

from ..core.errors import AsmError

if TYPE_CHECKING:
    from ..ports import StoreRef

__all__ = ["search", "search_rows", "SEARCH_COLUMNS", "split_marks"]

#: Columns of :func:`search`, in order.
SEARCH_COLUMNS = ("rank", "score", "kind", "session_id", "run_id", "sequence_number", "timestamp", "snippet",
                  "event_id")


def _check_mark(mark: object) -> tuple[str, str]:
    if (not isinstance(mark, (tuple, list)) or len(mark) != 2
            or not all(isinstance(m, str) for m in mark)):
        raise AsmError("validation_error", f"mark must be a pair of strings like ('**', '**'), got {mark!r}")
    return mark[0], mark[1]


def split_marks(snippet: str) -> list[tuple[str, bool]]:
    """A raw snippet as ``[(text, highlighted), ...]`` (for front ends that style matches)."""
    from ..stores.search import MARK_END, MARK_START

    parts: list[tuple[str, bool]] = []
    hit = False
    buf = ""
    for ch in snippet:
        if ch in (MARK_START, MARK_END):
            if buf:
                parts.append((buf, hit))
            buf = ""
            hit = ch == MARK_START
        else:
            buf += ch
    if buf:
        parts.append((buf, hit))
    return parts


def search_rows(store: StoreRef, text: str, *, kind: Any = None, session_id: str | None = None, limit: int = 20,
                mark: Sequence[str] | None = ("**", "**")) -> list[dict[str, Any]]:
    """The hits of :func:`search` as dicts, best first; ``mark=None`` keeps the raw markers
    (``stores.search.MARK_START`` / ``MARK_END``)."""
    from ..stores import resolve_store
    from ..stores.search import MARK_END, MARK_START, search_events

    start, end = (MARK_START, MARK_END) if mark is None else _check_mark(mark)
    hits = search_events(resolve_store(store), text, kind=kind, session_id=session_id, limit=limit)
    return [{"rank": i, "score": h.score, "kind": h.kind, "session_id": h.session_id, "run_id": h.run_id,
             "sequence_number": h.sequence_number, "timestamp": h.timestamp,
             "snippet": h.snippet.replace(MARK_START, start).replace(MARK_END, end), "event_id": h.event_id}
            for i, h in enumerate(hits, 1)]


def search(store: StoreRef = None, text: str = "", *, kind: Any = None, session_id: str | None = None, limit: int = 20,
           mark: Sequence[str] = ("**", "**"), backend: Literal["pandas", "polars"] = "pandas") -> Any:
    """Events whose prompt, output, tool input or tool output matches ``text``, best first.

    Columns: ``rank`` (1 = best), ``score`` (higher is better: -bm25 on SQLite and LocalStore,
    ``ts_rank_cd`` on PostgreSQL), ``kind`` (``prompt`` / ``output`` / ``tool_input`` /
    ``tool_output``), ``session_id``, ``run_id``, ``sequence_number``, ``timestamp`` (UTC),
    ``snippet`` (the matching passage, each match between the ``mark`` pair, ``**`` by default)
    and ``event_id``.

    ``text``: plain words (all must occur; ``README.md`` and ``foo-bar`` are fine) or FTS5 syntax
    (``"exact phrase"``, ``a OR b``, ``a NOT b``, ``pre*``); a syntax error → ``validation_error``.
    ``kind`` restricts to one kind or a list; ``session_id`` to one session; ``limit`` (20) caps
    the rows. Snippets went through the redactor.

    >>> import asm_nb
    >>> st = asm_nb.open_store("memory://")
    >>> _ = asm_nb.run_once("echo the quick brown fox", provider="shell", store=st)
    >>> asm_nb.frames.search(st, "fox", kind="output", backend="polars")["snippet"].to_list()
    ['the quick brown **fox**\\n']
    """
    from .frames import _check_backend, _finish, _polars, _utc

    _check_backend(backend)
    pl = _polars()
    rows = search_rows(store, text, kind=kind, session_id=session_id, limit=limit, mark=mark)
    schema = {"rank": pl.Int64, "score": pl.Float64, "kind": pl.String, "session_id": pl.String,
              "run_id": pl.String, "sequence_number": pl.Int64, "timestamp": _utc(pl), "snippet": pl.String,
              "event_id": pl.String}
    df = pl.DataFrame(rows, schema=schema)
    df = df.with_columns(pl.col("kind").cast(pl.Categorical))
    return _finish(df, backend)
