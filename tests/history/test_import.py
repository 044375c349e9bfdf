"""asm import: Claude Code and Codex session logs into a store (fixtures in tests/fixtures/history
follow the real formats, including old and new versions)."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest

from asm_nb.core.errors import AsmError
from asm_nb.history import HistoryWarning, import_history
from asm_nb.stores import open_store

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "history"
CC = FIX / "claude"
CX = FIX / "codex"
S1 = "ses_cc_0b6f0c1e-5a3c-4d47-9d3e-1f2a3b4c5d01"


def _import(source: str, store, path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HistoryWarning)
        return import_history(source, store, path=path, **kw)


def _runs(store, sid):
    return sorted(store.list_runs(sid), key=lambda r: r.id)


def _reference_claude_usage(root: Path) -> dict:
    """Independent sum over the fixture files: per (message.id, requestId) the last (final)
    snapshot, no synthetic messages."""
    final: dict = {}
    anon = []
    for f in sorted(root.rglob("*.jsonl")):
        for line in f.read_text().splitlines():
            try:
                d = json.loads(line)
            except ValueError:
                continue
            m = d.get("message") if d.get("type") == "assistant" else None
            if not m or m.get("model") == "<synthetic>" or "usage" not in m:
                continue
            if m.get("id"):
                final[(m["id"], d.get("requestId"))] = m["usage"]
            else:
                anon.append(m["usage"])
    tot = {"input_tokens": 0, "output_tokens": 0, "cache_read_tokens": 0, "cache_creation_tokens": 0}
    for u in [*final.values(), *anon]:
        tot["input_tokens"] += u["input_tokens"]
        tot["output_tokens"] += u["output_tokens"]
        tot["cache_read_tokens"] += u["cache_read_input_tokens"]
        tot["cache_creation_tokens"] += u["cache_creation_input_tokens"]
    return tot


def test_claude_code_sessions_runs_and_events():
    st = open_store("memory://")
    with pytest.warns(HistoryWarning, match="2 line"):
        rep = import_history("claude-code", st, path=CC)
    assert rep.sessions_new == 5 and rep.files_read == 5 and rep.warning_count == 2
    assert any("malformed JSON" in w for w in rep.warnings)
    assert any("x-future-record" in w for w in rep.warnings)
    s = st.get_session(S1)
    assert s.agent_id == "claude_code" and s.metadata["title"] == "Fix failing date parser tests"
    assert s.metadata["project"] == "/home/ada/proj-alpha" and s.metadata["git_branch"] == "main"
    r1, r2 = _runs(st, S1)
    assert r1.input == "The date parser tests fail. Fix them." and r1.status.value == "completed"
    assert r2.input == "Now add a test for time zones." and r2.status.value == "cancelled"  # interrupted
    # the streamed message (two lines repeating one usage, output_tokens growing 3 -> 120) counts
    # once with its final figures: 4+6+5 input tokens, 120+210+40 output tokens
    assert r1.token_usage == {"input_tokens": 15, "output_tokens": 370, "cache_read_tokens": 34300,
                              "cache_creation_tokens": 2400}
    assert r1.output == {"content": "Fixed: the parser now accepts a time part. Tests pass."}
    assert r1.provider_metadata["model"] == "claude-sonnet-4-20250514"
    assert r1.cost_usd == pytest.approx(15 * 3e-6 + 370 * 15e-6 + 34300 * 0.3e-6 + 2400 * 3.75e-6)
    assert r1.metadata["cost_source"] == "computed" and r1.metadata["price_key"] == "claude/claude-sonnet-4"
    assert r1.metadata["pricing_version"] and r1.metadata["pricing_source"]
    types = [e.type.value for e in st.get_events(S1, run_id=r1.id)]
    assert types == ["run_started", "message_sent", "message_received", "token_usage_updated", "tool_call_started",
                     "token_usage_updated", "tool_call_failed", "tool_call_started", "token_usage_updated", "tool_call_completed",
                     "message_received", "token_usage_updated", "run_completed"]
    grow = [e.data for e in st.get_events(S1, run_id=r1.id) if e.type.value == "token_usage_updated"][:2]
    assert (grow[0]["output_tokens"], grow[1]["output_tokens"], grow[1]["input_tokens"]) == (3, 117, 0)
    assert grow[1]["update"] is True and grow[1]["message_id"] == "msg_01AAA"
    tools = [e.data for e in st.get_events(S1, run_id=r1.id) if e.type.value.startswith("tool_call_")]
    assert tools[0]["tool_name"] == "Bash" and tools[0]["tool_input"]["command"].startswith("pytest")
    assert tools[1]["tool_name"] == "Bash" and "FAILED" in tools[1]["tool_output"]
    # an old version's costUSD is the reported cost
    old = st.list_runs("ses_cc_7c1d2e3f-0000-4000-8000-00000000aa02")[0]
    assert old.cost_usd == pytest.approx(0.0048) and old.metadata["cost_source"] == "reported"
    # the sub-agent transcript is its own session under the one that started it
    sub = st.get_session("ses_cc_c3a4b5c6-d7e8-4f90-a1b2-c3d4e5f60003_agent-a1b2c3d4")
    assert sub.parent_session_id == "ses_cc_c3a4b5c6-d7e8-4f90-a1b2-c3d4e5f60003"
    # the API error (synthetic message) fails that turn and bills nothing
    beta = st.list_runs("ses_cc_c3a4b5c6-d7e8-4f90-a1b2-c3d4e5f60003")[0]
    assert beta.status.value == "failed" and "529" in beta.error["message"]


def test_claude_usage_deduped_across_resumed_sessions():
    st = open_store("memory://")
    _import("claude-code", st, CC)
    total = dict.fromkeys(("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens"), 0)
    for r in st.list_runs(None):
        for k in total:
            total[k] += r.token_usage.get(k, 0)
    assert total == _reference_claude_usage(CC)
    # the resumed session's copy of msg_01N4 was not billed again, nor imported again as a run
    # or as events: the resumed session holds its own turn only
    resumed = _runs(st, "ses_cc_d4e5f6a7-0000-4000-8000-0000000000d4")
    assert [(r.input, r.token_usage["output_tokens"]) for r in resumed] == [("Add a --verbose flag to cli.", 60)]
    texts = [e.data.get("content") for e in st.get_events("ses_cc_d4e5f6a7-0000-4000-8000-0000000000d4")
             if e.type.value.startswith("message")]
    assert texts == ["Add a --verbose flag to cli.", "Done: cli now takes --verbose."]


def test_codex_versions():
    st = open_store("memory://")
    with pytest.warns(HistoryWarning):
        rep = import_history("codex", st, path=CX)
    assert rep.sessions_new == 3 and rep.warning_count == 1
    new = _runs(st, "ses_cx_019a2d7a-41c4-78b1-b7cc-a45d62a89cd5")
    assert [r.input for r in new] == ["Count the lines of code in src/", "Now delete the build folder"]
    # last_token_usage per call, the repeated report not counted twice, cached input apart
    assert new[0].token_usage == {"input_tokens": 2600, "output_tokens": 180, "cache_read_tokens": 8000,
                                  "cache_creation_tokens": 0, "reasoning_output_tokens": 64}
    assert new[0].provider_metadata["model"] == "gpt-5-codex" and new[1].provider_metadata["model"] == "gpt-5"
    assert new[1].status.value == "cancelled"
    assert new[0].cost_usd == pytest.approx(2600 * 1.25e-6 + 180 * 10e-6 + 8000 * 0.125e-6)
    ev = st.get_events(new[1].session_id, run_id=new[1].id)
    failed = [e for e in ev if e.type.value == "tool_call_failed"]
    assert failed and failed[0].data["tool_name"] == "apply_patch"
    # one prompt recorded twice (response_item + event_msg) is one turn with one message_sent
    assert sum(e.type.value == "message_sent" for e in st.get_events(new[0].session_id, run_id=new[0].id)) == 1
    # 0.30-era rollout: only total_token_usage, usage is the growth between reports
    mid = _runs(st, "ses_cx_01990c4e-1111-7222-8333-944455556666")[0]
    assert mid.token_usage["input_tokens"] == 6500 - 2800 and mid.token_usage["cache_read_tokens"] == 2800
    assert mid.token_usage["output_tokens"] == 90
    # legacy rollout (no envelope, no token counts): a run, no invented cost
    legacy = _runs(st, "ses_cx_5973b6c0-94b8-487b-a530-2aeb6098ae0e")[0]
    assert legacy.input == "hello codex" and legacy.output == {"content": "Hello! How can I help?"}
    assert legacy.cost_usd is None


def test_second_import_adds_nothing_few_thousand_lines(tmp_path):
    from asm_nb.testing.history_logs import write_claude_code_logs, write_codex_logs

    cc = write_claude_code_logs(tmp_path / "cc", lines=3000, sessions=6)
    cx = write_codex_logs(tmp_path / "cx", lines=2000, sessions=4)
    assert cc["lines"] + cx["lines"] >= 5000
    st = open_store(tmp_path / "store")
    a = _import("claude-code", st, cc["root"])
    b = _import("codex", st, cx["root"])
    assert a.warning_count == b.warning_count == 0
    sids = [s.id for s in st.list_sessions()]
    counts = {sid: len(st.get_events(sid)) for sid in sids}
    runs = {r.id: (r.token_usage, r.cost_usd) for r in st.list_runs(None)}
    again = [_import("claude-code", st, cc["root"]), _import("codex", st, cx["root"])]
    assert all(r.events == 0 and r.runs == 0 and r.files_unchanged == r.files_seen for r in again)
    assert {sid: len(st.get_events(sid)) for sid in sids} == counts
    assert {r.id: (r.token_usage, r.cost_usd) for r in st.list_runs(None)} == runs
    # totals equal the generated per-message usage
    total = dict.fromkeys(cc["usage"], 0)
    for r in st.list_runs(None):
        for k in total:
            total[k] += r.token_usage.get(k, 0)
    assert total == {k: cc["usage"][k] + cx["usage"][k] for k in total}
    st.close()


def test_incremental_appends_and_a_line_being_written(tmp_path):
    root = tmp_path / "projects" / "-home-ada-proj-alpha"
    root.mkdir(parents=True)
    src = CC / "projects" / "-home-ada-proj-alpha" / "0b6f0c1e-5a3c-4d47-9d3e-1f2a3b4c5d01.jsonl"
    lines = src.read_text().splitlines(keepends=True)
    f = root / src.name
    f.write_text("".join(lines[:5]) + lines[5][:40])  # the 6th line is half written
    st = open_store("memory://")
    first = _import("claude-code", st, tmp_path)
    assert first.lines_read == 5
    run = _runs(st, S1)[0]
    assert run.token_usage["output_tokens"] == 120
    n1 = len(st.get_events(S1))
    f.write_text("".join(lines))  # the rest arrives, the half line completed
    second = _import("claude-code", st, tmp_path)
    assert second.lines_read == len(lines) - 5 and second.sessions_updated == 1 and second.sessions_new == 0
    r1, r2 = _runs(st, S1)
    assert r1.token_usage["output_tokens"] == 370  # the open turn continued, not restarted
    evs = st.get_events(S1)
    assert len(evs) > n1 and len({e.id for e in evs}) == len(evs)
    assert sum(e.type.value == "run_started" for e in evs) == 2
    third = _import("claude-code", st, tmp_path)
    assert third.events == 0 and len(st.get_events(S1)) == len(evs)


def test_since_and_project_filters(tmp_path):
    st = open_store("memory://")
    _import("claude-code", st, CC, project="proj-beta")
    assert {s.metadata["project"] for s in st.list_sessions()} == {"/home/ada/proj-beta"}
    st2 = open_store("memory://")
    copy = tmp_path / "claude"
    shutil.copytree(CC, copy)
    _import("claude-code", st2, copy, since="2025-11-04")
    runs = st2.list_runs(None)
    assert runs and all(r.started_at.isoformat() >= "2025-11-04" for r in runs if r.input)
    st3 = open_store("memory://")
    _import("codex", st3, CX, project="proj-gamma")
    assert [s.metadata["cwd"] for s in st3.list_sessions()] == ["/home/ada/proj-gamma"]


def test_default_locations_honour_env(tmp_path, monkeypatch):
    from asm_nb.history import claude_code, codex

    cfg = tmp_path / "cfg"
    shutil.copytree(CC, cfg)
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", f"{tmp_path / 'missing'}, {cfg}")
    jobs = claude_code.discover()
    assert len(jobs) == 5 and all(str(j.path).startswith(str(cfg)) for j in jobs)
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "missing"))
    with pytest.raises(AsmError, match="CLAUDE_CONFIG_DIR"):
        claude_code.discover()
    monkeypatch.setenv("CODEX_HOME", str(CX))
    assert len(codex.discover()) == 3
    st = open_store("memory://")
    rep = _import("codex", st, None)
    assert rep.sessions_new == 3


def test_bad_arguments_are_one_error():
    st = open_store("memory://")
    with pytest.raises(AsmError) as e:
        import_history("cursor", st)
    assert e.value.code == "validation_error"
    with pytest.raises(AsmError) as e:
        import_history("codex", st, path="/definitely/not/here")
    assert e.value.code == "not_found"
    with pytest.raises(AsmError) as e:
        import_history("codex", st, path=CX, since="last week")
    assert e.value.code == "validation_error"


def test_into_sqlite_store(tmp_path):
    st = open_store(f"sqlite:///{tmp_path / 'h.db'}")
    a = _import("claude-code", st, CC)
    again = _import("claude-code", st, CC)
    assert a.events > 0 and again.events == 0
    assert len(st.list_runs(None)) == a.runs
    st.close()


def test_secrets_in_logs_are_redacted(tmp_path):
    d = tmp_path / "projects" / "-p"
    d.mkdir(parents=True)
    key = "sk-ant-api03-" + "A1b2C3d4" * 12
    line = {"type": "user", "sessionId": "s", "uuid": "u", "timestamp": "2025-06-01T00:00:00Z", "cwd": "/p",
            "message": {"role": "user", "content": f"use the key {key} please"}}
    (d / "s.jsonl").write_text(json.dumps(line) + "\n")
    st = open_store(tmp_path / "store")
    _import("claude-code", st, tmp_path)
    st.flush()
    raw = b"".join(p.read_bytes() for p in (tmp_path / "store").rglob("*") if p.is_file())
    assert key.encode() not in raw
    st.close()


def test_events_numbered_in_place_on_disk_and_through_an_override(tmp_path):
    """The import appends its fresh events through the store's unshared (number-in-place) path:
    on disk, after an incremental append and a reopen, every session's events are numbered 1..n
    once each; a store subclass that overrides ``append_events`` is still called through it."""
    from asm_nb.stores.local import LocalStore

    root = tmp_path / "projects" / "-home-ada-proj-alpha"
    root.mkdir(parents=True)
    src = CC / "projects" / "-home-ada-proj-alpha" / "0b6f0c1e-5a3c-4d47-9d3e-1f2a3b4c5d01.jsonl"
    lines = src.read_text().splitlines(keepends=True)
    f = root / src.name
    f.write_text("".join(lines[:5]))
    st = open_store(tmp_path / "store")
    first = _import("claude-code", st, tmp_path)
    f.write_text("".join(lines))
    second = _import("claude-code", st, tmp_path)
    st.close()
    st = open_store(tmp_path / "store")
    evs = st.get_events(S1)
    assert len(evs) == first.events + second.events
    assert [e.sequence_number for e in evs] == list(range(1, len(evs) + 1))
    assert len({e.id for e in evs}) == len(evs)
    st.close()

    seen = []

    class Counting(LocalStore):
        def append_events(self, events):
            seen.append(len(events))
            return super().append_events(events)

    st2 = Counting(tmp_path / "store2")
    rep = _import("claude-code", st2, tmp_path)
    assert sum(seen) == rep.events > 0
    assert [e.sequence_number for e in st2.get_events(S1)] == list(range(1, rep.events + 1))
    st2.close()


def test_session_metadata_follows_the_records_fields_as_they_change(tmp_path):
    """cwd / gitBranch / version follow the latest record that has them (also when a value comes
    back after another one), the first sessionId names the session; repeated records change nothing."""
    d = tmp_path / "projects" / "-p"
    d.mkdir(parents=True)
    fields = [("/a", "main", "2.0.1", "s1"), ("/a", "main", "2.0.1", "s1"), ("/b", "dev", "2.0.1", "s2"),
              ("/b", "dev", "2.0.1", "s2"), ("/a", "main", "2.0.2", "s1"), ("/a", "main", "2.0.3", "s1"), ("/a", None, 7, None),
              ("/a", None, 7, None)]
    lines = [{"type": "user", "sessionId": sid, "uuid": f"u{i}", "timestamp": f"2025-06-01T00:00:0{i}Z", "cwd": cwd,
              "gitBranch": br, "version": ver, "message": {"role": "user", "content": f"prompt {i}"}}
             for i, (cwd, br, ver, sid) in enumerate(fields)]
    st = open_store(tmp_path / "store")
    for upto in (3, 7, 8):  # incremental: each import continues from the last one's state
        (d / "s.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines[:upto]))
        _import("claude-code", st, tmp_path)
        md = st.list_sessions()[0].metadata
        last = {k: next(v for v in (f[j] for f in reversed(fields[:upto])) if isinstance(v, str))
                for j, k in ((0, "cwd"), (1, "git_branch"), (2, "cli_version"))}
        assert {k: md[k] for k in last} == last
        assert md["external_id"] == "s1"
    st.close()
