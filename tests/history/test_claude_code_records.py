"""Claude Code 2.x transcripts as they are now written: the session-state records the harness
re-appends (``mode``, ``permission-mode``, ``ai-title``, ``custom-title``, ``last-prompt``,
``worktree-state``, ``atis-latch``, ``bridge-session``, ``file-history-delta`` …) are read or
skipped without a warning, the session is titled as the picker titles it, and the cache writes'
lifetime split (``usage.cache_creation.ephemeral_5m_input_tokens`` / ``ephemeral_1h_input_tokens``:
Claude Code writes mostly one-hour entries, which Anthropic bills at 2x input against 1.25x for
five-minute ones) is priced by lifetime."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from asm_nb import frames
from asm_nb.history import HistoryWarning, import_history
from asm_nb.stores import open_store

SID = "5a128faa-8253-489e-b935-6c08e8e670c0"
ENV = {"isSidechain": False, "userType": "external", "cwd": "/home/ada/proj", "sessionId": SID,
       "version": "2.1.246", "gitBranch": "main", "entrypoint": "cli"}


def _user(uuid: str, ts: str, text: str) -> dict:
    return {**ENV, "parentUuid": None, "type": "user", "uuid": uuid, "timestamp": ts, "promptSource": "typed",
            "origin": {"kind": "human"}, "message": {"role": "user", "content": text}}


def _assistant(uuid: str, ts: str, block: dict, out: int, *, five: int, hour: int) -> dict:
    return {**ENV, "parentUuid": "u1", "type": "assistant", "uuid": uuid, "timestamp": ts, "requestId": "req_011A",
            "effort": "high", "message": {
                "id": "msg_011A", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
                "content": [block], "stop_reason": None,
                "usage": {"input_tokens": 2, "cache_creation_input_tokens": five + hour,
                          "cache_read_input_tokens": 86802, "output_tokens": out,
                          "output_tokens_details": {"thinking_tokens": 117},
                          "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
                          "service_tier": "standard",
                          "cache_creation": {"ephemeral_1h_input_tokens": hour, "ephemeral_5m_input_tokens": five},
                          "inference_geo": "not_available", "speed": "standard"}}}


def _session(tmp: Path, titles: list[dict], five: int = 0, hour: int = 1557) -> Path:
    rows = [
        {"type": "mode", "mode": "normal", "sessionId": SID},
        {"type": "permission-mode", "permissionMode": "default", "sessionId": SID},
        {"type": "worktree-state", "worktreeSession": None, "sessionId": SID},
        _user("u1", "2026-08-07T04:05:00.000Z", "Consolidate the transcript usage report"),
        {"type": "file-history-snapshot", "messageId": "u1", "isSnapshotUpdate": False,
         "snapshot": {"messageId": "u1", "trackedFileBackups": {}, "timestamp": "2026-08-07T04:05:00.000Z"}},
        {**ENV, "parentUuid": "u1", "type": "attachment", "uuid": "a1", "timestamp": "2026-08-07T04:05:00.100Z",
         "attachment": {"type": "skill_listing", "content": "..."}},
        _assistant("u2", "2026-08-07T04:05:03.000Z", {"type": "thinking", "thinking": "", "signature": "EqQB"}, 12,
                   five=five, hour=hour),
        _assistant("u3", "2026-08-07T04:05:04.000Z", {"type": "text", "text": "Done: one report now."}, 612,
                   five=five, hour=hour),
        {"type": "last-prompt", "lastPrompt": "Consolidate the transcript usage report", "leafUuid": "u3",
         "sessionId": SID},
        {"type": "atis-latch", "atis": "v1.opaque", "sessionId": SID},
        {"type": "bridge-session", "bridgeSessionId": "b-1", "lastSequenceNum": 4, "sessionId": SID},
        {"type": "file-history-delta", "messageId": "u3", "sessionId": SID},
        *titles,
    ]
    path = tmp / "projects" / "-home-ada-proj" / f"{SID}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp


def _import(root: Path):
    st = open_store(root / "store")
    with warnings.catch_warnings():
        warnings.simplefilter("error", HistoryWarning)  # nothing here is unknown
        rep = import_history("claude-code", st, path=root / "projects")
    return st, rep


@pytest.mark.parametrize("titles, expected", [
    ([], "Consolidate the transcript usage report"),
    ([{"type": "summary", "summary": "Usage report cleanup", "leafUuid": "u3"}], "Usage report cleanup"),
    ([{"type": "ai-title", "aiTitle": "Consolidate transcript usage", "sessionId": SID},
      {"type": "summary", "summary": "Usage report cleanup", "leafUuid": "u3"}], "Consolidate transcript usage"),
    ([{"type": "custom-title", "customTitle": "usage-v2", "sessionId": SID},
      {"type": "ai-title", "aiTitle": "Consolidate transcript usage", "sessionId": SID}], "usage-v2"),
])
def test_session_state_records_are_read_or_skipped_quietly_and_title_the_session(tmp_path, titles, expected):
    st, rep = _import(_session(tmp_path, titles))
    assert rep.warning_count == 0 and rep.sessions_new == 1
    (s,) = st.list_sessions()
    assert s.metadata["title"] == expected
    (run,) = st.list_runs(s.id)
    assert run.input == "Consolidate the transcript usage report" and run.output == {"content": "Done: one report now."}
    st.close()


@pytest.mark.parametrize("five, hour", [(0, 1557), (400, 1157), (1557, 0)])
def test_one_hour_cache_writes_are_priced_at_twice_the_input_price(tmp_path, five, hour):
    """Sonnet 4.5: input $3, five-minute writes $3.75, one-hour writes $6 per million. The message
    is written over two lines repeating its usage: counted once, its final output count."""
    st, _ = _import(_session(tmp_path, [], five=five, hour=hour))
    (run,) = st.list_runs(None)
    expected = (2 * 3 + 612 * 15 + 86802 * 0.30 + five * 3.75 + hour * 6.00) / 1e6
    assert run.cost_usd == pytest.approx(expected, rel=1e-12)
    assert run.token_usage["cache_creation_tokens"] == five + hour
    assert run.token_usage.get("cache_creation_1h_tokens", 0) == hour
    usage = [e.data for e in st.get_events(run.session_id) if e.type.value == "token_usage_updated"]
    assert sum(d.get("cache_creation_1h_tokens", 0) for d in usage) == hour
    assert sum(d["cost_usd"] for d in usage) == pytest.approx(expected, rel=1e-12)
    assert float(frames.usage(st, by="model")["cost_usd"].sum()) == pytest.approx(expected, rel=1e-12)
    st.close()


# -- a resumed session -------------------------------------------------------------------------

# the resumed file sorts first by name: the older file must still be read first
A, B = "0a1b2c3d-0000-4000-8000-00000000000f", "0a1b2c3d-0000-4000-8000-00000000000a"


def _line(sid: str, uuid: str, ts: str, kind: str, message: dict, **extra) -> dict:
    return {**ENV, "sessionId": sid, "parentUuid": None, "type": kind, "uuid": uuid, "timestamp": ts,
            "message": message, **extra}


def _call(sid: str, n: int, ts: str, prompt: str, answer: str, out: int) -> list[dict]:
    """One turn: the prompt, a message with a tool call (two lines repeating its usage), the
    tool's result, the answer (a second message)."""
    usage = {"input_tokens": 3, "cache_creation_input_tokens": 500, "cache_read_input_tokens": 9000,
             "output_tokens": out}
    m1 = {"id": f"msg_{n}a", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
          "usage": usage}
    m2 = {**m1, "id": f"msg_{n}b"}
    return [
        _line(sid, f"p{n}", ts + ":00.000Z", "user", {"role": "user", "content": prompt}),
        _line(sid, f"p{n}-1", ts + ":02.000Z", "assistant", {**m1, "content": [{"type": "text", "text": "Looking."}]},
              requestId=f"req_{n}a"),
        _line(sid, f"p{n}-2", ts + ":02.100Z", "assistant", {**m1, "content": [
            {"type": "tool_use", "id": f"toolu_{n}", "name": "Bash", "input": {"command": "ls"}}]},
              requestId=f"req_{n}a"),
        _line(sid, f"p{n}-3", ts + ":03.000Z", "user", {"role": "user", "content": [
            {"tool_use_id": f"toolu_{n}", "type": "tool_result", "content": "a.py\nb.py", "is_error": False}]}),
        _line(sid, f"p{n}-4", ts + ":05.000Z", "assistant", {**m2, "content": [{"type": "text", "text": answer}]},
              requestId=f"req_{n}b"),
    ]


def _resumed(tmp: Path, newer_first: bool = False) -> tuple[Path, list[dict], list[dict]]:
    """Session A (two turns) and session B, which resumed it: B's file starts with A's second turn
    copied (same uuids, same times; the session id is B's), then B's own turn."""
    a = _call(A, 1, "2026-08-07T04:05", "List the files", "Two files.", 40) + \
        _call(A, 2, "2026-08-07T04:20", "Which one is larger?", "b.py is.", 30)
    b = [{**ln, "sessionId": B} for ln in a[5:]] + _call(B, 3, "2026-08-08T09:00", "Delete a.py", "Deleted.", 20)
    d = tmp / "projects" / "-home-ada-proj"
    d.mkdir(parents=True, exist_ok=True)
    for sid, rows, age in ((A, a, 1_000), (B, b, 2_000)):
        p = d / f"{sid}.jsonl"
        p.write_text("".join(json.dumps(r) + "\n" for r in rows))
        t = 1_700_000_000 + (3_000 - age if newer_first else age)
        import os

        os.utime(p, (t, t))
    return tmp, a, b


def _turns(st, sid: str) -> list:
    return [(r.input, r.token_usage["output_tokens"], r.metadata.get("tool_calls"))
            for r in sorted(st.list_runs(sid), key=lambda r: r.id)]


def test_a_resumed_sessions_copied_turns_are_imported_once(tmp_path):
    """Claude Code starts a resumed session's file with the conversation it resumes (same uuids
    and times): those turns stay the older session's; the resumed one holds its own turn, and the
    usage, runs and tool calls of the copy are not counted again."""
    root, _, _ = _resumed(tmp_path)
    st, rep = _import(root)
    assert rep.sessions_new == 2
    assert _turns(st, f"ses_cc_{A}") == [("List the files", 80, 1), ("Which one is larger?", 60, 1)]
    assert _turns(st, f"ses_cc_{B}") == [("Delete a.py", 40, 1)]
    # the resumed session starts when its own first line was written, not at the copy's times
    assert st.get_session(f"ses_cc_{B}").created_at.isoformat().startswith("2026-08-08T09:00:00")
    assert st.get_session(f"ses_cc_{A}").created_at.isoformat().startswith("2026-08-07T04:05:00")
    texts = [e.data.get("content") for e in st.get_events(f"ses_cc_{B}") if e.type.value.startswith("message")]
    assert texts == ["Delete a.py", "Looking.", "Deleted."]
    calls = frames.tool_calls(st)
    assert len(calls) == 3
    assert int(frames.usage(st, by="session")["output_tokens"].sum()) == 180
    st.close()


def test_a_resumed_session_read_in_a_later_import_or_first(tmp_path):
    """Read in a later import, the copy is recognised the same way; read first (its file is the
    older one on disk), the copied turns are the resumed session's and not the other's: each
    turn is still imported and counted once."""
    root, a, b = _resumed(tmp_path / "later")
    path_b = root / "projects" / "-home-ada-proj" / f"{B}.jsonl"
    text_b = path_b.read_text()
    path_b.unlink()
    st, _ = _import(root)
    path_b.write_text(text_b)
    with warnings.catch_warnings():
        warnings.simplefilter("error", HistoryWarning)
        import_history("claude-code", st, path=root / "projects")
    assert _turns(st, f"ses_cc_{B}") == [("Delete a.py", 40, 1)]
    assert len(_turns(st, f"ses_cc_{A}")) == 2
    st.close()
    root, _, _ = _resumed(tmp_path / "first", newer_first=True)
    st, _ = _import(root)
    turns = _turns(st, f"ses_cc_{A}") + _turns(st, f"ses_cc_{B}")
    assert sorted(t[0] for t in turns) == ["Delete a.py", "List the files", "Which one is larger?"]
    assert sum(t[1] for t in turns) == 180 and sum(t[2] for t in turns) == 3
    st.close()
