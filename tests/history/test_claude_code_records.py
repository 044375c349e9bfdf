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
