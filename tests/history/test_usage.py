"""frames.usage over imported history (and runs made here), 5-hour blocks, asm usage / asm import."""

from __future__ import annotations

import json
import warnings
from datetime import datetime, timezone
from pathlib import Path

import pytest

from asm_nb import frames
from asm_nb.cli import main
from asm_nb.core.run import Run, RunStatus
from asm_nb.core.session import Session
from asm_nb.history import HistoryWarning, import_history
from asm_nb.stores import open_store

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "history"
KEYS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens")


@pytest.fixture()
def store(tmp_path):
    st = open_store(tmp_path / "store")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HistoryWarning)
        import_history("claude-code", st, path=FIX / "claude")
        import_history("codex", st, path=FIX / "codex")
    yield st
    st.close()


def _event_usage(st) -> dict:
    tot = dict.fromkeys(KEYS, 0)
    cost = 0.0
    for s in st.list_sessions():
        for e in st.get_events(s.id, type="token_usage_updated"):
            for k in KEYS:
                tot[k] += e.data[k]
            cost += e.data["cost_usd"] or 0.0
    return {**tot, "cost_usd": cost}


@pytest.mark.parametrize("by", ["day", "week", "month", "session", "project", "model", "block"])
def test_usage_totals_equal_imported_per_message_usage(store, by):
    df = frames.usage(store, by=by, backend="polars")
    want = _event_usage(store)
    assert {k: df[k].sum() for k in KEYS} == {k: want[k] for k in KEYS}
    assert df["cost_usd"].sum() == pytest.approx(want["cost_usd"])
    assert df["records"].sum() == 15
    runs = store.list_runs(None)
    assert {k: sum(r.token_usage.get(k, 0) for r in runs) for k in KEYS} == {k: want[k] for k in KEYS}


def test_usage_by_model_and_day(store):
    pdf = frames.usage(store, by="model")  # pandas by default
    row = pdf.set_index("model").loc["gpt-5-codex"]
    assert (row["input_tokens"], row["output_tokens"], row["cache_read_tokens"]) == (2600, 180, 8000)
    day = frames.usage(store, by="day", backend="polars", source="codex")
    assert [d.date().isoformat() for d in day["day"].to_list()] == ["2025-09-05", "2025-10-29"]
    assert frames.usage(store, by="day", since="2025-11-01", backend="polars")["records"].sum() == 5


def _claude_at(tmp_path: Path, times: list[str]) -> Path:
    d = tmp_path / "logs" / "projects" / "-p"
    d.mkdir(parents=True)
    lines = []
    for i, ts in enumerate(times):
        lines.append({"type": "user", "sessionId": "s", "uuid": f"u{i}", "timestamp": ts, "cwd": "/p",
                      "message": {"role": "user", "content": f"prompt {i}"}})
        lines.append({"type": "assistant", "sessionId": "s", "uuid": f"a{i}", "timestamp": ts, "cwd": "/p",
                      "requestId": f"r{i}", "message": {"id": f"m{i}", "model": "claude-sonnet-4-5", "role": "assistant",
                                                         "content": [{"type": "text", "text": "ok"}],
                                                         "usage": {"input_tokens": 10, "output_tokens": 1}}})
    (d / "s.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return tmp_path / "logs"


def test_five_hour_blocks(tmp_path):
    root = _claude_at(tmp_path, ["2025-07-01T10:20:00Z", "2025-07-01T14:59:00Z", "2025-07-01T15:10:00Z",
                                 "2025-07-01T19:00:00Z", "2025-07-02T01:30:00Z"])
    st = open_store("memory://")
    import_history("claude-code", st, path=root)
    b = frames.usage(st, by="block", backend="polars")
    starts = [t.strftime("%d %H:%M") for t in b["block_start"].to_list()]
    # 10:20 opens 10:00-15:00; 15:10 is past it (15:00); 19:00 is inside 15:00-20:00; 01:30 after a gap
    assert starts == ["01 10:00", "01 15:00", "02 01:00"]
    assert b["records"].to_list() == [2, 2, 1]
    assert [t.strftime("%H:%M") for t in b["block_end"].to_list()] == ["15:00", "20:00", "06:00"]
    assert b["active"].to_list() == [False, False, False]


def test_runs_made_here_count_too(store):
    now = datetime(2025, 12, 1, 12, tzinfo=timezone.utc)
    store.save_session(Session.new("shell", id="ses_here"))
    store.save_run(Run(id="run_here", session_id="ses_here", status=RunStatus.COMPLETED, provider="claude",
                       token_usage={"input_tokens": 7, "output_tokens": 3, "cache_read_tokens": 0,
                                    "cache_creation_tokens": 0}, cost_usd=0.5, started_at=now, ended_at=now,
                       provider_metadata={"model": "claude-sonnet-4-5"}))
    df = frames.usage(store, by="day", backend="polars")
    last = df.row(-1, named=True)
    assert last["day"].date().isoformat() == "2025-12-01" and last["input_tokens"] == 7 and last["cost_usd"] == 0.5
    assert frames.usage(store, source="asm", backend="polars")["records"].sum() == 1


def test_bad_by_is_one_error(store):
    from asm_nb.core.errors import AsmError

    with pytest.raises(AsmError) as e:
        frames.usage(store, by="hour")
    assert e.value.code == "validation_error"


def test_cli_import_and_usage(tmp_path, capsys):
    st = str(tmp_path / "st")
    assert main(["import", "claude-code", "--path", str(FIX / "claude"), "--store", st, "--json"]) == 0
    out, err = capsys.readouterr()
    rep = json.loads(out)
    assert rep["sessions_new"] == 5 and rep["warning_count"] == 2
    assert err.count("asm: warning:") == 2 and "malformed JSON" in err and "x-future-record" in err
    assert main(["import", "claude-code", "--path", str(FIX / "claude"), "--store", st]) == 0
    out, _ = capsys.readouterr()
    assert "files_unchanged   5" in out
    assert main(["usage", "--store", st, "--by", "model", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["total"]["records"] == 10 and doc["total"]["cache_read_tokens"] == 50400
    assert main(["usage", "--store", st]) == 0
    table = capsys.readouterr().out
    assert "2025-06-02" in table and table.splitlines()[-1].startswith("total")
    assert main(["usage", "--store", st, "--by", "hour"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "invalid choice" in err
    assert main(["import", "codex", "--store", st, "--nope"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [err.strip()] and "unrecognized arguments" in err
    assert main(["import", "codex", "--store", st, "--path", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.startswith("asm: error: [not_found]")
    assert main(["usage", "--store", str(tmp_path / "absent")]) == 2
    capsys.readouterr()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["import", "codex", "--store", st, "--path", str(empty)]) == 0
    assert "asm: warning: no codex session logs found in" in capsys.readouterr().err


def test_dashboard_on_imported_history(store):
    import asm_nb

    text = asm_nb.dashboard(store).text()
    assert "claude_code/claude-sonnet-4-202" in text and "codex/gpt-5-codex" in text
    # 10 runs: the resumed session's copy of an earlier message is not a run of its own
    assert "runs 10" in text and "cost $0.1115" in text
