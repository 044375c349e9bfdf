"""Full-text search (``frames.search``, ``asm search``, ``stores.search``) on every store kind:
ranking, highlights, kinds, incremental index updates, bad queries, redaction."""

from __future__ import annotations

import pytest

import asm_nb
from asm_nb.core.errors import AsmError
from asm_nb.core.events import Event
from asm_nb.core.serialization import new_id
from asm_nb.stores.search import LocalSearchIndex, search_events

SECRET = "sk-ant-api03-" + "Q" * 40


def _sid() -> str:
    return new_id("ses_")


def _conversation(store, prompt: str, answer: str, *, tool_input=None, tool_output=None, session_id=None):
    """One run's worth of events: a prompt, an answer, optionally a tool call."""
    sid = session_id or _sid()
    rid = new_id("run_")
    evs = [Event.new("message_sent", sid, run_id=rid, data={"role": "user", "content": prompt}),
           Event.new("message_streamed", sid, run_id=rid, data={"delta": answer, "content": answer})]
    if tool_input is not None:
        evs.append(Event.new("tool_call_started", sid, run_id=rid,
                             data={"tool_call_id": "tc1", "tool_name": "bash", "tool_input": tool_input}))
        evs.append(Event.new("tool_call_completed", sid, run_id=rid,
                             data={"tool_call_id": "tc1", "tool_name": "bash", "tool_input": tool_input,
                                   "tool_output": tool_output}))
    evs.append(Event.new("message_received", sid, run_id=rid, data={"role": "assistant", "content": answer}))
    store.append_events(evs)
    store.flush()
    return sid, rid


def _filler(store, n=6):
    for i in range(n):
        _conversation(store, f"unrelated question number {i}", f"an unrelated answer about topic {i}")


def test_ranking_highlights_and_kinds(any_store):
    """The document that mentions the word most densely comes first; snippets mark the match;
    ``kind`` filters; the streamed chunks are not indexed (one hit per message, not two)."""
    st = any_store
    _filler(st)
    _, weak = _conversation(st, "tell me a story", "a long story about many things, once a zebra walked by "
                            "and then the story went on about other animals and places for a while")
    _, strong = _conversation(st, "zebra zebra", "zebra stripes: a zebra is a zebra")
    _, tool = _conversation(st, "list files", "done", tool_input={"command": "ls /srv/zebra-park"},
                            tool_output={"output": "README.md\nzoo.txt\n", "exit_code": 0})

    df = asm_nb.frames.search(st, "zebra", backend="polars")
    assert df["rank"].to_list() == list(range(1, df.height + 1))
    assert df["score"].to_list() == sorted(df["score"].to_list(), reverse=True)
    top = df.row(0, named=True)
    assert top["run_id"] == strong and top["kind"] in ("output", "prompt")
    assert "**zebra**" in top["snippet"]
    outputs = asm_nb.frames.search(st, "zebra", kind="output", backend="polars")
    assert outputs["kind"].cast(str).unique().to_list() == ["output"]
    assert outputs["run_id"].to_list() == [strong, weak]  # density first; one row per message
    ti = asm_nb.frames.search(st, "zebra", kind="tool_input", backend="polars")
    assert ti["run_id"].to_list() == [tool]
    assert "bash" in ti["snippet"][0] and "**zebra**" in ti["snippet"][0]
    to = asm_nb.frames.search(st, "README.md", kind=["tool_output"], backend="polars")
    assert to["run_id"].to_list() == [tool] and "**README" in to["snippet"][0]
    # custom marks, pandas backend, limit
    pdf = asm_nb.frames.search(st, "zebra", mark=("<b>", "</b>"), limit=2)
    assert len(pdf) == 2 and "<b>zebra</b>" in pdf["snippet"].iloc[0]
    assert str(pdf["timestamp"].dtype) == "datetime64[us, UTC]"
    assert asm_nb.frames.search(st, "nonexistentword", backend="polars").height == 0


def test_phrase_or_and_session_filter(any_store):
    st = any_store
    _filler(st)
    s1, r1 = _conversation(st, "compare apples", "red apples and green pears")
    s2, r2 = _conversation(st, "pears only", "green pears are ripe")
    hits = search_events(st, '"green pears"')
    assert {h.run_id for h in hits} == {r1, r2}
    hits = search_events(st, "apples OR ripe", kind="output")
    assert {h.run_id for h in hits} == {r1, r2}
    hits = search_events(st, "pears", session_id=s2)
    assert hits and {h.session_id for h in hits} == {s2}


@pytest.mark.parametrize("query", ['"unterminated', "fox AND", "NEAR(", "(a OR b"])
def test_bad_query_is_one_validation_error(query, tmp_path):
    """FTS5 syntax errors become one ``validation_error`` line, on the SQL store and the local
    index alike."""
    from asm_nb.stores.local import LocalStore
    from asm_nb.stores.sql import SqlStore

    for st in (LocalStore(tmp_path / "l"), SqlStore(f"sqlite:///{tmp_path / 's.db'}")):
        with st:
            _conversation(st, "fox", "fox")
            with pytest.raises(AsmError) as ei:
                search_events(st, query)
            assert ei.value.code == "validation_error"
            assert "not valid full-text syntax" in str(ei.value) and "\n" not in str(ei.value)


@pytest.mark.parametrize("bad", [dict(text=""), dict(text="   "), dict(text="x", kind="bogus"),
                                 dict(text="x", limit=0), dict(text="x", limit=True), dict(text="a\x00b")])
def test_bad_arguments(bad):
    st = asm_nb.open_store("memory://")
    with pytest.raises(AsmError) as ei:
        asm_nb.frames.search(st, **bad)
    assert ei.value.code == "validation_error"


def test_local_index_is_incremental(tmp_path):
    """The sidecar reads only what the logs gained since the last search; a pruned (rewritten) log
    is indexed again; a deleted session's documents go."""
    from asm_nb.stores.local import LocalStore

    st = LocalStore(tmp_path / "asm")
    s1, r1 = _conversation(st, "first walrus", "walrus one")
    assert [h.run_id for h in search_events(st, "walrus", kind="prompt")] == [r1]
    index = LocalSearchIndex(st.root)
    assert index.path.exists()
    assert index.update(st.event_log_paths()) == {"documents": 0, "bytes": 0, "reindexed": 0}

    s2, r2 = _conversation(st, "second walrus", "walrus two")
    _, r3 = _conversation(st, "third walrus", "walrus three", session_id=s1)
    size_before = sum(p.stat().st_size for p in st.event_log_paths().values())
    stats = index.update(st.event_log_paths())
    assert stats["documents"] == 4 and stats["reindexed"] == 0
    assert 0 < stats["bytes"] < size_before  # only the new bytes
    assert {h.run_id for h in search_events(st, "walrus", kind="prompt")} == {r1, r2, r3}

    # pruning rewrites the log: the session is indexed again, without the pruned events
    first_prompt = [e for e in st.get_events(s1) if e.type.value == "message_sent"][0]
    st.delete_events(s1, [first_prompt.id])
    assert {h.run_id for h in search_events(st, "walrus", kind="prompt")} == {r2, r3}
    st.delete_session(s2)
    assert {h.run_id for h in search_events(st, "walrus", kind="prompt")} == {r3}
    st.close()


def test_local_index_for_a_store_without_one_and_a_stale_one(tmp_path):
    """A store written before search existed has no sidecar: the first search builds it; a sidecar
    of another index version is rebuilt; a deleted sidecar is rebuilt."""
    import sqlite3

    from asm_nb.stores.local import LocalStore

    root = tmp_path / "asm"
    with LocalStore(root) as st:
        _, r1 = _conversation(st, "old narwhal", "narwhal")
    assert not (root / LocalSearchIndex.FILENAME).exists()
    with LocalStore(root) as st:
        assert [h.run_id for h in search_events(st, "narwhal", kind="prompt")] == [r1]
    conn = sqlite3.connect(root / LocalSearchIndex.FILENAME)
    conn.execute("UPDATE asm_search_meta SET value = '0' WHERE key = 'version'")
    conn.execute("DELETE FROM asm_search_docs")
    conn.commit()
    conn.close()
    with LocalStore(root) as st:
        assert [h.run_id for h in search_events(st, "narwhal", kind="prompt")] == [r1]
    for p in root.glob(LocalSearchIndex.FILENAME + "*"):
        p.unlink()
    with LocalStore(root) as st:
        assert [h.run_id for h in search_events(st, "narwhal", kind="prompt")] == [r1]


def test_local_index_skips_a_torn_last_line(tmp_path):
    """An unterminated last line (a writer killed mid-line) is not indexed until it is whole."""
    import json

    from asm_nb.stores.local import LocalStore

    with LocalStore(tmp_path / "asm") as st:
        sid, _ = _conversation(st, "okapi", "okapi")
        path = st.event_log_paths()[sid]
        line = json.dumps(Event.new("message_sent", sid, sequence_number=99,
                                    data={"role": "user", "content": "okapi torn"}).to_dict())
        with open(path, "ab") as fh:
            fh.write(line[:30].encode())
        assert len(search_events(st, "okapi", kind="prompt")) == 1
        index = LocalSearchIndex(st.root)
        with open(path, "ab") as fh:
            fh.write(line[30:].encode() + b"\n")
        assert index.update({sid: path})["documents"] == 1


def test_sql_index_follows_appends_and_deletes(tmp_path):
    """The FTS5 table is kept in sync by triggers: new runs are found without any rebuild, a deleted
    session's documents are gone."""
    import sqlalchemy as sa

    from asm_nb.stores.sql import SqlStore

    url = f"sqlite:///{tmp_path / 'asm.db'}"
    with SqlStore(url) as st:
        s1, r1 = _conversation(st, "capybara", "capybara")
        assert [h.run_id for h in search_events(st, "capybara", kind="prompt")] == [r1]
        s2, r2 = _conversation(st, "capybara again", "capybara")
        assert {h.run_id for h in search_events(st, "capybara", kind="prompt")} == {r1, r2}
        st.delete_session(s1)
        assert [h.run_id for h in search_events(st, "capybara", kind="prompt")] == [r2]
    eng = sa.create_engine(url)
    with eng.connect() as c:
        assert c.exec_driver_sql("SELECT count(*) FROM asm_search_docs").scalar() == 2  # prompt + output of s2
        assert c.exec_driver_sql("SELECT count(*) FROM asm_search_fts").scalar() == 2
    eng.dispose()


def _old_sql_store_with_events(url):
    """A database migrated only up to version 2 (before search), holding a conversation."""
    from asm_nb.stores import _sql_schema as S
    from asm_nb.stores.sql import SqlStore

    with SqlStore(url, migrations=S.MIGRATIONS[:2]) as old:
        return _conversation(old, "pangolin scales", "pangolin")


def test_sql_migration_indexes_events_already_stored(tmp_path):
    from asm_nb.stores.sql import SqlStore

    url = f"sqlite:///{tmp_path / 'asm.db'}"
    _, rid = _old_sql_store_with_events(url)
    with SqlStore(url) as st:
        assert [h.run_id for h in search_events(st, "pangolin", kind="prompt")] == [rid]


def test_postgres_migration_indexes_events_already_stored(pg_server):
    from asm_nb.stores.sql import SqlStore

    url = pg_server.new_database(migrated=False)
    _, rid = _old_sql_store_with_events(url)
    with SqlStore(url) as st:
        assert [h.run_id for h in search_events(st, "pangolin", kind="prompt")] == [rid]
        s2, r2 = _conversation(st, "pangolin two", "x")
        assert {h.run_id for h in search_events(st, "pangolin", kind="prompt")} == {rid, r2}
        st.delete_session(s2)
        assert [h.run_id for h in search_events(st, "pangolin", kind="prompt")] == [rid]


def test_postgres_nul_escape_does_not_break_appends(pg_server):
    """A payload PostgreSQL's jsonb refuses (``\\u0000``) is stored; it is just not searchable."""
    from asm_nb.stores.sql import SqlStore

    with SqlStore(pg_server.new_database()) as st:
        sid, rid = _conversation(st, "tapir \x00 nul", "tapir")
        assert len(st.get_events(sid)) == 3
        assert [h.kind for h in search_events(st, "tapir")] == ["output"]


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_index_and_snippets_hold_no_secret(kind, tmp_path):
    """A secret stored unredacted (a store written before the pattern existed) never comes out of
    search, and the LocalStore's index file does not hold it."""
    st = asm_nb.open_store(str(tmp_path / "asm") if kind == "local" else "memory://")
    _filler(st, 2)
    _conversation(st, "use the key", f"the key is {SECRET} ok")  # appended directly: not redacted
    rows = asm_nb.frames.search(st, "key", backend="polars")["snippet"].to_list()
    assert rows and all(SECRET not in r for r in rows)
    assert any("[REDACTED]" in r for r in rows)
    assert asm_nb.frames.search(st, SECRET, backend="polars").height == 0
    if kind == "local":
        st.close()
        for p in (tmp_path / "asm").glob(LocalSearchIndex.FILENAME + "*"):
            assert SECRET.encode() not in p.read_bytes()


def test_sql_snippets_hold_no_secret(tmp_path):
    from asm_nb.stores.sql import SqlStore

    with SqlStore(f"sqlite:///{tmp_path / 'a.db'}") as st:
        _conversation(st, "use the key", f"the key is {SECRET} ok")
        rows = asm_nb.frames.search(st, "key", backend="polars")["snippet"].to_list()
        assert rows and all(SECRET not in r for r in rows) and any("[REDACTED]" in r for r in rows)


def test_run_once_runs_are_found(tmp_path):
    """End to end: a real (shell) run, then search finds its prompt, output and tool call."""
    st = asm_nb.open_store(tmp_path / "asm")
    r = asm_nb.run_once("echo kinkajou", provider="shell", store=st)
    df = asm_nb.frames.search(st, "kinkajou", backend="polars")
    assert set(df["kind"].cast(str).to_list()) == {"prompt", "output", "tool_input", "tool_output"}
    assert set(df["run_id"].to_list()) == {r.run_id}
    st.close()


def test_cli_search(tmp_path, capsys):
    import json

    from asm_nb.cli import main

    store = str(tmp_path / "asm")
    with asm_nb.open_store(store) as st:
        _filler(st, 3)
        _, rid = _conversation(st, "where is the axolotl", "the axolotl is in the tank")
    assert main(["search", "axolotl", "--store", store, "--kind", "output"]) == 0
    out = capsys.readouterr().out
    assert rid in out and "**axolotl**" in out and "output" in out
    assert main(["search", "axolotl", "--store", store, "--json", "--limit", "1"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1 and rows[0]["run_id"] == rid and "**axolotl**" in rows[0]["snippet"]
    assert main(["search", '"axolotl', "--store", store]) == 2
    err = capsys.readouterr().err
    assert err.startswith("asm: error: [validation_error] search query") and err.count("\n") == 1
    assert main(["search", "axolotl", "--store", store, "--kind", "nope"]) == 2
    assert main(["search", "axolotl", "--store", store, "--limit", "0"]) == 2
    assert main(["search", "zzzunknown", "--store", store]) == 0
    assert "no matches" in capsys.readouterr().err


def test_server_search_endpoint_data(tmp_path):
    """``GET asm-nb/search`` (the sidebar's search box): hits with the snippet split at its
    matches; a missing store is empty and not created; a bad query is an AsmError (400)."""
    from asm_nb import server_ext

    d = tmp_path / ".asm"
    with asm_nb.open_store(d) as st:
        _filler(st, 3)
        _, rid = _conversation(st, "where is the quokka", "the quokka smiles")
    out = server_ext.search(d, "quokka", kind="output")
    assert out["exists"] is True and [h["run_id"] for h in out["hits"]] == [rid]
    hit = out["hits"][0]
    assert hit["parts"] == [["the ", False], ["quokka", True], [" smiles", False]]
    assert hit["kind"] == "output" and hit["timestamp"].endswith("Z") and hit["rank"] == 1
    import json

    json.dumps(out)  # JSON-ready
    assert server_ext.search(tmp_path / "nope", "x") == {"store": str(tmp_path / "nope"), "exists": False,
                                                         "hits": []}
    assert not (tmp_path / "nope").exists()
    for where in (d, tmp_path / "nope"):  # a bad query is an error with or without a store
        with pytest.raises(AsmError) as ei:
            server_ext.search(where, '"quokka')
        assert ei.value.code == "validation_error"
    assert not (tmp_path / "nope").exists()


def test_sql_database_before_migration_3_says_so(tmp_path):
    """A database opened without migrating (``migrate="never"``) that predates the search index:
    one ``migration_required`` error naming the fix."""
    from asm_nb.stores.sql import SqlStore

    url = f"sqlite:///{tmp_path / 'old.db'}"
    _old_sql_store_with_events(url)
    with SqlStore(url, migrate="never") as st:
        with pytest.raises(AsmError) as ei:
            search_events(st, "pangolin")
        assert ei.value.code == "migration_required" and "migrate" in str(ei.value)
