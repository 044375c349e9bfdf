"""SqlStore full-text search (docs/search.md): the index created by migration 3, kept in sync with
``asm_events`` by triggers, and the ranked query.

- **SQLite**: ``asm_search_docs`` (one row per searchable event: ids, kind, timestamp) and the FTS5
  table ``asm_search_fts`` (``rowid`` = ``asm_search_docs.id``, one column ``body``). An
  ``AFTER INSERT`` trigger on ``asm_events`` adds the document of a searchable event, an
  ``AFTER DELETE`` trigger removes it (session deletes, pruning). Ranked by bm25.
- **PostgreSQL**: ``asm_search_docs`` also holds ``body`` and ``tsv`` (``to_tsvector('simple',
  body)``, GIN index), filled by the trigger function ``asm_search_index()``; removed through a
  foreign key ``ON DELETE CASCADE``. Queries use ``websearch_to_tsquery('simple', …)``, ranked
  by ``ts_rank_cd``; snippets are cut in Python (``search.python_snippet``) around the
  query's words, as matches inside paths are not highlighted by ``ts_headline``.

The text of an event is the same as ``search.document_text`` computes (string leaves of the
field, tool name first for tool inputs, highlight control characters removed, 100,000
characters at most). Events are immutable, so there is no update trigger.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import OperationalError, ProgrammingError

from .search import (FTS_SCHEMA, MAX_TEXT_CHARS, SearchHit, _fts_error, _hit, fts5_query, fts5_select_sql,
                     python_snippet)

_TYPES = "('message_sent', 'message_received', 'tool_call_started', 'tool_call_completed', 'tool_call_failed')"
_KIND = ("CASE {e}.type WHEN 'message_sent' THEN 'prompt' WHEN 'message_received' THEN 'output' "
         "WHEN 'tool_call_started' THEN 'tool_input' ELSE 'tool_output' END")
_PATH = ("CASE {e}.type WHEN 'tool_call_started' THEN '$.tool_input' WHEN 'tool_call_completed' THEN "
         "'$.tool_output' WHEN 'tool_call_failed' THEN '$.tool_output' ELSE '$.content' END")


def _sqlite_body(e: str) -> str:
    """SQL for the indexed text of the event row aliased ``e`` (SQLite JSON1)."""
    leaves = (f"(SELECT group_concat(value, ' ') FROM json_tree({e}.data, {_PATH.format(e=e)}) "
              "WHERE type = 'text')")
    name = f"CASE WHEN {e}.type = 'tool_call_started' THEN coalesce(json_extract({e}.data, '$.tool_name'), '') ELSE NULL END"
    text = f"coalesce({name} || ' ', '') || coalesce({leaves}, '')"
    return f"substr(replace(replace({text}, char(2), ''), char(3), ''), 1, {MAX_TEXT_CHARS})"


def _sqlite_up(conn: sa.Connection) -> None:
    for stmt in FTS_SCHEMA:
        conn.exec_driver_sql(stmt)
    doc_cols = "event_id, session_id, run_id, sequence_number, kind, timestamp"
    conn.exec_driver_sql(
        "CREATE TRIGGER IF NOT EXISTS asm_search_events_ai AFTER INSERT ON asm_events "
        f"WHEN new.type IN {_TYPES} BEGIN "
        f"INSERT OR IGNORE INTO asm_search_docs ({doc_cols}) VALUES (new.id, new.session_id, new.run_id, "
        f"new.sequence_number, {_KIND.format(e='new')}, new.timestamp); "
        f"INSERT INTO asm_search_fts (rowid, body) SELECT d.id, {_sqlite_body('new')} FROM asm_search_docs d "
        "WHERE d.event_id = new.id AND NOT EXISTS (SELECT 1 FROM asm_search_fts f WHERE f.rowid = d.id); "
        "END")
    conn.exec_driver_sql(
        "CREATE TRIGGER IF NOT EXISTS asm_search_events_ad AFTER DELETE ON asm_events "
        f"WHEN old.type IN {_TYPES} BEGIN "
        "DELETE FROM asm_search_fts WHERE rowid IN (SELECT id FROM asm_search_docs WHERE event_id = old.id); "
        "DELETE FROM asm_search_docs WHERE event_id = old.id; "
        "END")
    # the events stored before this migration
    conn.exec_driver_sql(f"INSERT OR IGNORE INTO asm_search_docs ({doc_cols}) SELECT e.id, e.session_id, e.run_id, "
                         f"e.sequence_number, {_KIND.format(e='e')}, e.timestamp FROM asm_events e "
                         f"WHERE e.type IN {_TYPES} ORDER BY e.session_id, e.sequence_number")
    conn.exec_driver_sql(f"INSERT INTO asm_search_fts (rowid, body) SELECT d.id, {_sqlite_body('e')} "
                         "FROM asm_search_docs d JOIN asm_events e ON e.id = d.event_id")


_PG_TEXT_FN = f"""
CREATE OR REPLACE FUNCTION asm_search_text(etype text, data json) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $fn$
DECLARE
  j jsonb;
  body text;
BEGIN
  BEGIN
    j := data::jsonb;
    SELECT string_agg(v #>> '{{}}', ' ') INTO body
      FROM jsonb_path_query(j -> (CASE etype WHEN 'tool_call_started' THEN 'tool_input'
                                           WHEN 'tool_call_completed' THEN 'tool_output'
                                           WHEN 'tool_call_failed' THEN 'tool_output' ELSE 'content' END),
                            'strict $.**') AS v
     WHERE jsonb_typeof(v) = 'string';
    IF etype = 'tool_call_started' THEN
      body := coalesce((j ->> 'tool_name') || ' ', '') || coalesce(body, '');
    END IF;
  EXCEPTION WHEN others THEN  -- e.g. a \\u0000 escape jsonb refuses: index nothing, never fail the append
    body := '';
  END;
  RETURN left(replace(replace(coalesce(body, ''), chr(2), ''), chr(3), ''), {MAX_TEXT_CHARS});
END
$fn$
"""

_PG_SPLIT = "regexp_replace({x}, '[/.:@_=\\\\]+|(?<=\\w)-', ' ', 'g')"
_PG_SPLIT_BODY = _PG_SPLIT.format(x="body")

_PG_INDEX_FN = f"""
CREATE OR REPLACE FUNCTION asm_search_index() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
  body text;
BEGIN
  IF NEW.type IN {_TYPES} THEN
    body := asm_search_text(NEW.type, NEW.data);
    INSERT INTO asm_search_docs (event_id, session_id, run_id, sequence_number, kind, timestamp, body, tsv)
    VALUES (NEW.id, NEW.session_id, NEW.run_id, NEW.sequence_number, {_KIND.format(e='NEW')}, NEW.timestamp,
            body, to_tsvector('simple', {_PG_SPLIT_BODY}))
    ON CONFLICT (event_id) DO NOTHING;
  END IF;
  RETURN NULL;
END
$fn$
"""


def _pg_up(conn: sa.Connection) -> None:
    conn.exec_driver_sql(
        "CREATE TABLE IF NOT EXISTS asm_search_docs (id BIGSERIAL PRIMARY KEY, "
        "event_id VARCHAR(255) NOT NULL UNIQUE REFERENCES asm_events (id) ON DELETE CASCADE, "
        "session_id VARCHAR(255) NOT NULL, run_id VARCHAR(255), sequence_number INTEGER, kind VARCHAR(16) NOT NULL, "
        "timestamp TIMESTAMPTZ, body TEXT NOT NULL, tsv TSVECTOR NOT NULL)")
    conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS asm_search_docs_tsv ON asm_search_docs USING GIN (tsv)")
    conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS asm_search_docs_session ON asm_search_docs (session_id)")
    conn.exec_driver_sql(_PG_TEXT_FN)
    conn.exec_driver_sql(_PG_INDEX_FN)
    conn.exec_driver_sql("DROP TRIGGER IF EXISTS asm_search_events_ai ON asm_events")
    conn.exec_driver_sql("CREATE TRIGGER asm_search_events_ai AFTER INSERT ON asm_events "
                         "FOR EACH ROW EXECUTE FUNCTION asm_search_index()")
    conn.exec_driver_sql(
        "INSERT INTO asm_search_docs (event_id, session_id, run_id, sequence_number, kind, timestamp, body, tsv) "
        f"SELECT e.id, e.session_id, e.run_id, e.sequence_number, {_KIND.format(e='e')}, e.timestamp, t.body, "
        f"to_tsvector('simple', {_PG_SPLIT.format(x='t.body')}) FROM asm_events e, LATERAL (SELECT asm_search_text(e.type, e.data) AS body) t "
        f"WHERE e.type IN {_TYPES} ORDER BY e.session_id, e.sequence_number ON CONFLICT (event_id) DO NOTHING")


def create_search_index(conn: sa.Connection) -> None:
    """Migration 3: the search index and its triggers, filled from the events already stored."""
    if conn.dialect.name == "postgresql":
        _pg_up(conn)
    else:
        _sqlite_up(conn)


def drop_search_index(conn: sa.Connection) -> None:
    """Undo :func:`create_search_index` (``downgrade``)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("DROP TRIGGER IF EXISTS asm_search_events_ai ON asm_events")
        conn.exec_driver_sql("DROP TABLE IF EXISTS asm_search_docs")
        conn.exec_driver_sql("DROP FUNCTION IF EXISTS asm_search_index()")
        conn.exec_driver_sql("DROP FUNCTION IF EXISTS asm_search_text(text, json)")
    else:
        for stmt in ("DROP TRIGGER IF EXISTS asm_search_events_ai", "DROP TRIGGER IF EXISTS asm_search_events_ad",
                     "DROP TABLE IF EXISTS asm_search_fts", "DROP TABLE IF EXISTS asm_search_docs"):
            conn.exec_driver_sql(stmt)


#: Words split on the punctuation of paths, URLs and identifiers, so ``zebra`` finds
#: ``/srv/zebra-park`` (PostgreSQL's parser would keep a path as one token).
_PG_SELECT = (
    "SELECT d.event_id, d.session_id, d.run_id, d.sequence_number, d.kind, d.timestamp, "
    "ts_rank_cd(d.tsv, q.q) AS score, d.body "
    f"FROM asm_search_docs d, (SELECT websearch_to_tsquery('simple', {_PG_SPLIT.format(x=':q')}) AS q) q "
    "WHERE d.tsv @@ q.q{where} ORDER BY score DESC, d.timestamp DESC, d.id LIMIT :n")


def sql_search(store: Any, query: str, kinds: list[str] | None, session_id: str | None,
               limit: int) -> list[SearchHit]:
    """Ranked hits from a SqlStore (its buffered events are committed first)."""
    store.flush()
    params: dict[str, Any] = {"n": limit}
    for i, k in enumerate(kinds or []):
        params[f"k{i}"] = k
    if session_id is not None:
        params["sid"] = session_id

    if store._engine.dialect.name == "postgresql":
        where = ""
        if kinds:
            where += " AND d.kind IN (" + ", ".join(f":k{i}" for i in range(len(kinds))) + ")"
        if session_id is not None:
            where += " AND d.session_id = :sid"
        sql = _PG_SELECT.format(where=where)
        params["q"] = query
    else:
        sql = fts5_select_sql(kinds, session_id is not None, param=":")
        params["q"] = fts5_query(query)

    def run(conn: sa.Connection) -> list:
        return list(conn.execute(sa.text(sql), params).all())

    try:
        rows = store._read(run)
    except (OperationalError, ProgrammingError) as exc:
        raise _fts_error(exc.orig if isinstance(exc.orig, Exception) else exc, query) from None
    if store._engine.dialect.name == "postgresql":
        return [_hit((*r[:7], python_snippet(r[7], query))) for r in rows]
    return [_hit(tuple(r)) for r in rows]
