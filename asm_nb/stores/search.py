"""Full-text search over a store's prompts, outputs, tool inputs and tool outputs (docs/search.md).

One entry point, :func:`search_events`, answers for every store kind:

- **SqlStore on SQLite**: the FTS5 table ``asm_search_fts`` (with ``asm_search_docs``), created by
  migration 3 and kept in sync by triggers on ``asm_events`` (``_sql_search.py``); ranked by bm25.
- **SqlStore on PostgreSQL**: ``asm_search_docs.tsv`` (a ``tsvector``, GIN index) kept by a trigger;
  ``websearch_to_tsquery('simple', …)``, ranked by ``ts_rank_cd``, snippets by ``ts_headline``.
- **LocalStore**: a sidecar SQLite FTS5 file, ``search.sqlite3`` in the store folder, brought up to
  date from the append-only event logs before each search (only the bytes appended since the last
  search are read; a rewritten log is re-indexed); a cache: deleting it only costs a rebuild.
- **any other store** (memory, a plugin store): a throwaway in-memory FTS5 index over
  ``get_events``.

What is indexed, one document per event:

========= ==================================================== =======================
kind      event                                                text
========= ==================================================== =======================
prompt    ``message_sent``                                     ``data.content``
output    ``message_received``                                 ``data.content``
tool_input ``tool_call_started``                               ``data.tool_name`` + ``data.tool_input``
tool_output ``tool_call_completed`` / ``tool_call_failed``     ``data.tool_output``
========= ==================================================== =======================

The text of a JSON value is its string leaves joined by spaces, at most 100,000 characters.
Stored events are already redacted; the LocalStore and in-memory indexes also pass each text
through the redactor before indexing, and every snippet goes through it again on the way out, so
a store written before a pattern existed does not leak through search.

Queries: plain words match documents holding all of them (each word is quoted, so ``README.md``
or ``foo-bar`` are fine). A query with FTS5 syntax (``"a phrase"``, ``OR``, ``NOT``, ``AND``,
``NEAR(…)``, ``prefix*``, parentheses) is passed to FTS5 as is; a syntax error is one
``validation_error``. PostgreSQL reads the query with ``websearch_to_tsquery`` (quotes, ``OR``,
``-word``), which never fails.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..core.errors import AsmError
from ..core.serialization import parse_datetime

__all__ = ["KINDS", "EVENT_KINDS", "SearchHit", "search_events", "document_text", "fts5_query", "MARK_START",
           "MARK_END", "LocalSearchIndex", "MAX_TEXT_CHARS"]

#: The searchable kinds, in display order.
KINDS = ("prompt", "output", "tool_input", "tool_output")
#: Event type → kind.
EVENT_KINDS = {"message_sent": "prompt", "message_received": "output", "tool_call_started": "tool_input",
               "tool_call_completed": "tool_output", "tool_call_failed": "tool_output"}
#: Event data field holding each kind's text.
KIND_FIELD = {"prompt": "content", "output": "content", "tool_input": "tool_input", "tool_output": "tool_output"}
#: Longest text indexed per event (characters).
MAX_TEXT_CHARS = 100_000
#: Highlight markers inside raw snippets (control characters removed from indexed text).
MARK_START, MARK_END = "\x02", "\x03"

#: Snippet size (FTS5 tokens) for SQLite-based indexes.
_SNIPPET_TOKENS = 16


@dataclass(frozen=True)
class SearchHit:
    """One matching event: where it is, its kind, a relevance ``score`` (higher is better) and a
    ``snippet`` with the matched terms between :data:`MARK_START` and :data:`MARK_END`."""

    event_id: str
    session_id: str
    run_id: str | None
    sequence_number: int | None
    kind: str
    timestamp: datetime | None
    score: float
    snippet: str


# --------------------------------------------------------------------------------------------
# what is indexed


def _leaves(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, Mapping):
        for v in value.values():
            _leaves(v, out)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _leaves(v, out)


def _clean(text: str) -> str:
    return text.replace(MARK_START, "").replace(MARK_END, "")[:MAX_TEXT_CHARS]


def document_text(event_type: str, data: Any) -> tuple[str, str] | None:
    """``(kind, text)`` indexed for an event of ``event_type`` with payload ``data``, or None when
    the event type is not searchable."""
    kind = EVENT_KINDS.get(event_type)
    if kind is None:
        return None
    d = data if isinstance(data, Mapping) else {}
    parts: list[str] = []
    if kind == "tool_input":
        name = d.get("tool_name")
        parts.append(name if isinstance(name, str) else "")
    _leaves(d.get(KIND_FIELD[kind]), parts)
    return kind, _clean(" ".join(parts))


def _redact(text: str) -> str:
    from ..persistence.redaction import scan_text

    return scan_text(text, None)[0]


# --------------------------------------------------------------------------------------------
# queries and arguments

_FTS_SYNTAX = re.compile(r'["()*^:+]|\b(AND|OR|NOT|NEAR)\b')


def fts5_query(text: str) -> str:
    """The FTS5 MATCH expression for a user query: FTS5 syntax as is, plain words each quoted."""
    if _FTS_SYNTAX.search(text):
        return text
    return " ".join('"' + w.replace('"', '""') + '"' for w in text.split())


def _check_args(query: Any, kinds: Any, limit: Any) -> tuple[str, list[str] | None, int]:
    if not isinstance(query, str) or not query.strip():
        raise AsmError("validation_error", "search needs some text to look for (a non-empty string)")
    if "\x00" in query:
        raise AsmError("validation_error", "the search text contains a NUL byte (\\x00)")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else list(kinds)
        bad = [k for k in kinds if k not in KINDS]
        if bad:
            raise AsmError("validation_error", f"kind must be one of {', '.join(KINDS)}, got {bad[0]!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise AsmError("validation_error", f"limit must be a positive integer, got {limit!r}")
    return query.strip(), kinds, limit


def _fts_error(exc: Exception, query: str) -> AsmError:
    msg = str(exc)
    if "no such table: asm_search" in msg or ('"asm_search_docs" does not exist' in msg):
        return AsmError("migration_required", "this database has no search index yet (schema before migration 3); "
                                              "run asm_nb.stores.sql.migrate(url) or open it with migrate='auto'")
    if "fts5" in msg or "syntax error" in msg or "unterminated" in msg or "no such column" in msg:
        return AsmError("validation_error", f"search query {query!r} is not valid full-text syntax ({msg}); "
                                            "quote words with special characters, e.g. \"foo.py\"")
    return AsmError("storage_error", f"search failed: {msg}")


# --------------------------------------------------------------------------------------------
# SQLite FTS5 (LocalStore sidecar, in-memory fallback; SqlStore on SQLite shares the query)

FTS_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS asm_search_docs (id INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, "
    "session_id TEXT NOT NULL, run_id TEXT, sequence_number INTEGER, kind TEXT NOT NULL, timestamp TEXT)",
    "CREATE INDEX IF NOT EXISTS asm_search_docs_session ON asm_search_docs (session_id)",
    "CREATE VIRTUAL TABLE IF NOT EXISTS asm_search_fts USING fts5(body, tokenize='unicode61 remove_diacritics 2')",
)


def fts5_select_sql(kinds: Sequence[str] | None, session: bool, param: str = "?") -> str:
    """The ranked FTS5 query over ``asm_search_docs`` / ``asm_search_fts``; parameters: the MATCH
    expression, then the kinds, the session id, the limit (``param`` is ``?`` or ``:name``)."""
    p = (lambda name: "?") if param == "?" else (lambda name: ":" + name)
    where = ""
    if kinds:
        where += " AND d.kind IN (" + ", ".join(p(f"k{i}") for i in range(len(kinds))) + ")"
    if session:
        where += f" AND d.session_id = {p('sid')}"
    return ("SELECT d.event_id, d.session_id, d.run_id, d.sequence_number, d.kind, d.timestamp, "
            "-bm25(asm_search_fts) AS score, "
            f"snippet(asm_search_fts, 0, char(2), char(3), '…', {_SNIPPET_TOKENS}) AS snippet "
            "FROM asm_search_fts JOIN asm_search_docs d ON d.id = asm_search_fts.rowid "
            f"WHERE asm_search_fts MATCH {p('q')}{where} "
            f"ORDER BY bm25(asm_search_fts), d.timestamp DESC, d.id LIMIT {p('n')}")


_WORD = re.compile(r"\w+")


def python_snippet(body: str, query: str, words: int = _SNIPPET_TOKENS) -> str:
    """A snippet of ``body`` around the first word of ``query`` found (case-insensitive; a word
    ending in ``*`` matches as a prefix), every match between the markers; the start of ``body``
    when none is found. For backends without an FTS5 ``snippet()``."""
    terms = {t.lower() for t in _WORD.findall(re.sub(r"\b(AND|OR|NOT|NEAR)\b|(?<!\w)-\w+", " ", query))}
    prefixes = {t.lower() for t in re.findall(r"(\w+)\*", query)}
    spans = [m.span() for m in _WORD.finditer(body)]
    if not spans:
        return body[:200]

    def hit(w: str) -> bool:
        w = w.lower()
        return w in terms or any(w.startswith(p) for p in prefixes)

    first = next((i for i, (a, b) in enumerate(spans) if hit(body[a:b])), 0)
    lo = max(0, first - words // 4)
    hi = min(len(spans), lo + words)
    out, pos = [], spans[lo][0]
    for a, b in spans[lo:hi]:
        out.append(body[pos:a])
        out.append(MARK_START + body[a:b] + MARK_END if hit(body[a:b]) else body[a:b])
        pos = b
    return ("…" if lo > 0 else "") + "".join(out) + ("…" if hi < len(spans) else "")


def _ts(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        return parse_datetime(value)
    except Exception:  # noqa: BLE001 - a bad timestamp does not hide the hit
        return None


def _hit(row: Sequence[Any]) -> SearchHit:
    return SearchHit(event_id=row[0], session_id=row[1], run_id=row[2], sequence_number=row[3], kind=row[4],
                     timestamp=_ts(row[5]), score=float(row[6] or 0.0), snippet=row[7] or "")


def _fts5_search(conn: sqlite3.Connection, query: str, kinds: list[str] | None, session_id: str | None,
                 limit: int) -> list[SearchHit]:
    params: list[Any] = [fts5_query(query), *(kinds or [])]
    if session_id is not None:
        params.append(session_id)
    params.append(limit)
    try:
        rows = conn.execute(fts5_select_sql(kinds, session_id is not None), params).fetchall()
    except sqlite3.OperationalError as exc:
        raise _fts_error(exc, query) from None
    return [_hit(r) for r in rows]


def _index_rows(conn: sqlite3.Connection, rows: Iterable[tuple[str, str, Any, Any, str, Any, str]]) -> int:
    """Insert ``(event_id, session_id, run_id, seq, kind, timestamp, text)`` rows; returns how many
    were new (an event id already indexed is skipped)."""
    n = 0
    for eid, sid, rid, seq, kind, ts, text in rows:
        cur = conn.execute("INSERT OR IGNORE INTO asm_search_docs (event_id, session_id, run_id, sequence_number, "
                           "kind, timestamp) VALUES (?, ?, ?, ?, ?, ?)", (eid, sid, rid, seq, kind, ts))
        if cur.rowcount:
            conn.execute("INSERT INTO asm_search_fts (rowid, body) VALUES (?, ?)", (cur.lastrowid, _redact(text)))
            n += 1
    return n


def _event_row(d: Mapping[str, Any]) -> tuple | None:
    t = d.get("type")
    if not isinstance(t, str):
        return None
    doc = document_text(t, d.get("data"))
    eid, sid = d.get("id"), d.get("session_id")
    if doc is None or not isinstance(eid, str) or not isinstance(sid, str):
        return None
    ts = d.get("timestamp")
    if isinstance(ts, datetime):
        from ..core.serialization import format_datetime

        ts = format_datetime(ts)
    return (eid, sid, d.get("run_id"), d.get("sequence_number"), doc[0], ts, doc[1])


class LocalSearchIndex:
    """The LocalStore sidecar index ``<store>/search.sqlite3`` (docs/store-format.md).

    Table ``asm_search_logs`` remembers, per session log, its inode and how many bytes are
    indexed. :meth:`update` reads only what was appended since; a log with another inode or fewer
    bytes (pruned, rewritten) is indexed again from the start; a log that is gone (deleted session)
    takes its documents with it. Several processes may update it at once (one SQLite write
    transaction each)."""

    FILENAME = "search.sqlite3"
    VERSION = "1"

    def __init__(self, root: str | os.PathLike) -> None:
        self.path = Path(root) / self.FILENAME

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("CREATE TABLE IF NOT EXISTS asm_search_meta (key TEXT PRIMARY KEY, value TEXT)")
        row = conn.execute("SELECT value FROM asm_search_meta WHERE key = 'version'").fetchone()
        if row is None or row[0] != self.VERSION:  # none yet, or written by another version: rebuild
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute("SELECT value FROM asm_search_meta WHERE key = 'version'").fetchone()
            if row is not None and row[0] == self.VERSION:  # another process rebuilt it meanwhile
                conn.execute("COMMIT")
                return conn
            for t in ("asm_search_fts", "asm_search_docs", "asm_search_logs"):
                conn.execute(f"DROP TABLE IF EXISTS {t}")
            for stmt in FTS_SCHEMA:
                conn.execute(stmt)
            conn.execute("CREATE TABLE asm_search_logs (session_id TEXT PRIMARY KEY, inode INTEGER, "
                         "offset INTEGER NOT NULL)")
            conn.execute("INSERT OR REPLACE INTO asm_search_meta VALUES ('version', ?)", (self.VERSION,))
            conn.execute("COMMIT")
        return conn

    def _drop_session(self, conn: sqlite3.Connection, sid: str) -> None:
        conn.execute("DELETE FROM asm_search_fts WHERE rowid IN (SELECT id FROM asm_search_docs WHERE session_id = ?)",
                     (sid,))
        conn.execute("DELETE FROM asm_search_docs WHERE session_id = ?", (sid,))
        conn.execute("DELETE FROM asm_search_logs WHERE session_id = ?", (sid,))

    def update(self, logs: Mapping[str, Any], conn: sqlite3.Connection | None = None) -> dict[str, int]:
        """Bring the index up to date with ``logs`` (``session_id → path``); returns counts
        ``{"documents": new documents, "bytes": bytes read, "reindexed": logs read again}``."""
        own = conn is None
        conn = conn or self._connect()
        stats = {"documents": 0, "bytes": 0, "reindexed": 0}
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                known = {r[0]: (r[1], r[2]) for r in conn.execute("SELECT session_id, inode, offset FROM asm_search_logs")}
                for sid in set(known) - set(logs):
                    self._drop_session(conn, sid)
                for sid, path in logs.items():
                    try:
                        st = os.stat(path)
                    except FileNotFoundError:
                        if sid in known:
                            self._drop_session(conn, sid)
                        continue
                    inode, offset = known.get(sid, (None, 0))
                    if sid in known and (inode != st.st_ino or st.st_size < offset):
                        self._drop_session(conn, sid)
                        stats["reindexed"] += 1
                        offset = 0
                    if st.st_size == offset:
                        continue
                    new_offset, docs = self._read(path, offset, st.st_size)
                    if new_offset == offset:
                        continue
                    stats["bytes"] += new_offset - offset
                    stats["documents"] += _index_rows(conn, docs)
                    conn.execute("INSERT OR REPLACE INTO asm_search_logs VALUES (?, ?, ?)", (sid, st.st_ino, new_offset))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        finally:
            if own:
                conn.close()
        return stats

    @staticmethod
    def _read(path: Any, offset: int, size: int) -> tuple[int, list[tuple]]:
        """Whole lines between ``offset`` and ``size``: ``(offset after the last full line, rows)``.
        An unreadable line is skipped (the log readers warn about it)."""
        with open(path, "rb") as fh:
            fh.seek(offset)
            chunk = fh.read(size - offset)
        end = chunk.rfind(b"\n")
        if end < 0:
            return offset, []
        rows = []
        for line in chunk[: end + 1].splitlines():
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except ValueError:
                continue
            if isinstance(d, dict):
                row = _event_row(d)
                if row is not None:
                    rows.append(row)
        return offset + end + 1, rows

    def search(self, logs: Mapping[str, Any], query: str, kinds: list[str] | None, session_id: str | None,
               limit: int) -> list[SearchHit]:
        conn = self._connect()
        try:
            self.update(logs, conn)
            return _fts5_search(conn, query, kinds, session_id, limit)
        finally:
            conn.close()


_MEM_LOCK = threading.Lock()


def _generic_search(store: Any, query: str, kinds: list[str] | None, session_id: str | None,
                    limit: int) -> list[SearchHit]:
    """Any store: index its events in a throwaway in-memory FTS5 table, then query it."""
    if session_id is not None:
        sids = [session_id]
    elif callable(getattr(store, "list_session_ids", None)):
        sids = list(store.list_session_ids())
    else:
        sids = sorted({s.id for s in store.list_sessions()} | {r.session_id for r in store.list_runs(None)})
    conn = sqlite3.connect(":memory:")
    try:
        for stmt in FTS_SCHEMA:
            conn.execute(stmt)
        for sid in sids:
            _index_rows(conn, (r for r in (_event_row({"id": e.id, "type": e.type.value, "session_id": e.session_id,
                                                        "run_id": e.run_id, "sequence_number": e.sequence_number,
                                                        "timestamp": e.timestamp, "data": e.data})
                                           for e in store.get_events(sid)) if r is not None))
        return _fts5_search(conn, query, kinds, session_id, limit)
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------
# the entry point


def _safe_snippet(snippet: str) -> str:
    """The snippet through the redactor: unchanged when it holds no secret; otherwise the redacted
    text without highlight markers (a marker inside a secret would hide it from the patterns)."""
    plain = snippet.replace(MARK_START, "").replace(MARK_END, "")
    red = _redact(plain)
    return snippet if red == plain else red


def _is_sql(store: Any) -> bool:
    """A SqlStore? (without importing SQLAlchemy: if ``stores.sql`` is not loaded, it is not one)"""
    import sys

    mod = sys.modules.get(__name__.rsplit(".", 1)[0] + ".sql")
    return mod is not None and isinstance(store, mod.SqlStore)


def _inner(store: Any) -> Any:
    """The store holding the events (a CompositeSessionStore keeps them in its session store)."""
    for attr in ("session_store", "_sessions_store", "sessions"):
        inner = getattr(store, attr, None)
        if inner is not None and callable(getattr(inner, "get_events", None)):
            return inner
    return store


def search_events(store: Any, query: str, *, kind: Any = None, session_id: str | None = None,
                  limit: int = 20) -> list[SearchHit]:
    """The events of ``store`` matching ``query``, best first (at most ``limit``), restricted to
    ``kind`` (one of :data:`KINDS` or a list) and ``session_id`` when given."""
    query, kinds, limit = _check_args(query, kind, limit)
    if session_id is not None and (not isinstance(session_id, str) or not session_id):
        raise AsmError("validation_error", "session_id must be a non-empty string")
    st = store
    if not _is_sql(st) and not callable(getattr(st, "event_log_paths", None)):
        st = _inner(st)
    if _is_sql(st):
        from ._sql_search import sql_search

        hits = sql_search(st, query, kinds, session_id, limit)
    elif callable(getattr(st, "event_log_paths", None)) and getattr(st, "root", None) is not None:
        hits = LocalSearchIndex(st.root).search(st.event_log_paths(), query, kinds, session_id, limit)
    else:
        hits = _generic_search(st, query, kinds, session_id, limit)
    return [_with_safe(h) for h in hits]


def _with_safe(h: SearchHit) -> SearchHit:
    s = _safe_snippet(h.snippet)
    if s is h.snippet:
        return h
    return SearchHit(h.event_id, h.session_id, h.run_id, h.sequence_number, h.kind, h.timestamp, h.score, s)
