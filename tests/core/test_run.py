"""Run: construction, status machine, token usage, (de)serialization (docs/event-model.md, run)."""

from __future__ import annotations

import json
import re

import pytest

from asm_nb.core import run as run_mod
from asm_nb.core.errors import AsmError
from asm_nb.core.run import Run, RunStatus, can_transition

STATUSES = ["pending", "running", "completed", "failed", "cancelled", "timeout"]
TERMINAL = {"completed", "failed", "cancelled", "timeout"}
INTENDED = {("pending", "running"), ("pending", "cancelled")} | {("running", t) for t in TERMINAL}


def test_new_defaults():
    r = Run.new("ses_1")
    assert re.fullmatch(r"run_[0-9a-f]{32}", r.id)
    assert (r.session_id, r.status, r.input, r.output, r.error) == ("ses_1", RunStatus.PENDING, None, None, None)
    assert (r.metadata, r.turn_count, r.token_usage, r.cost_usd) == ({}, 0, {}, None)
    assert r.started_at.tzinfo is not None and r.ended_at is None  # started_at = creation time
    assert (r.provider, r.provider_metadata) == (None, {})
    assert r.duration_ms is None


def test_new_with_attributes():
    r = Run.new("ses_1", id="run_x", input={"prompt": "hi"}, metadata={"k": 1})
    assert (r.id, r.input, r.metadata) == ("run_x", {"prompt": "hi"}, {"k": 1})
    assert Run.new({"session_id": "s", "input": "x"}).input == "x"


@pytest.mark.parametrize("sid,message", [(None, "session_id is required"), ("", "session_id cannot be empty")])
def test_new_rejects_bad_session_ids(sid, message):
    with pytest.raises(AsmError) as ei:
        Run.new(sid)
    assert (ei.value.code, ei.value.message) == ("validation_error", message)


@pytest.mark.parametrize("status", STATUSES)
def test_with_status_sets_ended_at_only_for_terminal_statuses(status):
    r = Run.new("s").with_status(status)
    assert r.status is RunStatus(status)
    assert (r.ended_at is not None) is (status in TERMINAL)
    assert r.is_terminal is (status in TERMINAL) and run_mod.is_terminal(status) is (status in TERMINAL)


def test_non_terminal_status_keeps_a_stale_ended_at():
    done = Run.new("s").with_status("completed")
    again = done.with_status("running")
    assert again.ended_at == done.ended_at


def test_with_status_rejects_unknown():
    with pytest.raises(AsmError) as ei:
        Run.new("s").with_status("finished")
    assert ei.value.code == "invalid_status"
    assert ei.value.message == f"Invalid status: 'finished'. Valid statuses: {STATUSES}"


@pytest.mark.parametrize("a", STATUSES)
@pytest.mark.parametrize("b", STATUSES)
def test_can_transition_table(a, b):
    assert can_transition(a, b) is ((a, b) in INTENDED)


def test_with_output_and_with_error():
    r = Run.new("s")
    ok = r.with_output({"text": "hi"})
    assert (ok.output, ok.status) == ({"text": "hi"}, RunStatus.COMPLETED) and ok.ended_at is not None
    assert ok.duration_ms is not None and ok.duration_ms >= 0
    bad = r.with_error({"code": "timeout", "message": "slow"})
    assert (bad.error["code"], bad.status) == ("timeout", RunStatus.FAILED) and bad.ended_at is not None
    assert r.status is RunStatus.PENDING and r.output is None  # original untouched


def test_increment_turn():
    r = Run.new("s")
    assert r.increment_turn().increment_turn().turn_count == 2
    assert r.turn_count == 0


def test_add_token_usage_merges_key_wise():
    r = Run.new("s").add_token_usage({"input_tokens": 100, "output_tokens": 50})
    r = r.add_token_usage({"input_tokens": 20, "output_tokens": 30})
    assert r.token_usage == {"input_tokens": 120, "output_tokens": 80}
    r = r.add_token_usage({"cost": 0.5, "model": "m"}).add_token_usage({"cost": 0.25, "model": "n"})
    assert r.token_usage == {"input_tokens": 120, "output_tokens": 80, "cost": 0.75, "model": "n"}
    assert r.add_token_usage({"output_tokens": "n/a"}).token_usage["output_tokens"] == "n/a"  # non-number replaces
    assert r.add_token_usage({"flag": True}).add_token_usage({"flag": True}).token_usage["flag"] is True
    assert r.add_token_usage(None).token_usage == r.token_usage


def test_to_dict_keys_and_round_trip():
    r = (Run.new("s", input={"prompt": "p"}, metadata={"m": 1}).with_status("running").increment_turn()
         .add_token_usage({"input_tokens": 3}).with_output({"text": "t"})
         .replace(provider="shell", cost_usd=0.01, provider_metadata={"model": "x"}))
    d = r.to_dict()
    assert list(d) == ["id", "session_id", "status", "input", "output", "error", "metadata", "turn_count",
                       "token_usage", "started_at", "ended_at", "provider", "cost_usd", "provider_metadata"]
    assert Run.from_dict(json.loads(json.dumps(d))) == r
    fresh = Run.new("s")
    assert fresh.to_dict()["cost_usd"] is None
    assert Run.from_dict(json.loads(json.dumps(fresh.to_dict()))) == fresh
    failed = Run.new("s").with_error({"code": "x", "message": "y", "details": {"a": 1}})
    assert Run.from_dict(json.loads(json.dumps(failed.to_dict()))) == failed


@pytest.mark.parametrize("cost,expected", [(0.5, 0.5), (2, 2.0), ("0.5", None), (True, None), (None, None)])
def test_from_dict_cost_usd(cost, expected):
    r = Run.from_dict({**Run.new("s").to_dict(), "cost_usd": cost})
    assert r.cost_usd == expected
    assert expected is None or type(r.cost_usd) is float


def _valid() -> dict:
    return Run.new("s").to_dict()


@pytest.mark.parametrize("change,code,message", [
    ({"id": None}, "validation_error", "id is required"),
    ({"id": ""}, "validation_error", "id cannot be empty"),
    ({"session_id": None}, "validation_error", "session_id is required"),
    ({"session_id": 4}, "validation_error", "session_id must be a string"),
    ({"status": None}, "validation_error", "status is required"),
    ({"status": "bogus"}, "invalid_status", "Invalid status: bogus"),
    ({"status": 1}, "validation_error", "status must be a string"),
    ({"started_at": None}, "validation_error", "datetime is required"),
    ({"started_at": "x"}, "validation_error", "Invalid datetime format"),
    ({"started_at": 1.0}, "validation_error", "datetime must be a string"),
])
def test_from_dict_errors(change, code, message):
    with pytest.raises(AsmError) as ei:
        Run.from_dict({**_valid(), **change})
    assert (ei.value.code, ei.value.message) == (code, message)


def test_from_dict_defaults_and_non_dict():
    with pytest.raises(AsmError, match="Invalid run map"):
        Run.from_dict("x")
    d = _valid()
    for k in ("turn_count", "token_usage", "metadata", "provider_metadata", "ended_at"):
        d.pop(k)
    r = Run.from_dict(d)
    assert (r.turn_count, r.token_usage, r.metadata, r.provider_metadata, r.ended_at) == (0, {}, {}, {}, None)
    assert Run.from_dict({**_valid(), "ended_at": "bad", "turn_count": "3"}).ended_at is None
