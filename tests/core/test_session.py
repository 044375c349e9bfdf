"""Session: construction rules, status machine, (de)serialization (docs/event-model.md, session)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import pytest

from asm_nb.core.errors import AsmError
from asm_nb.core.session import Session, SessionStatus, can_transition

STATUSES = ["pending", "active", "paused", "completed", "failed", "cancelled"]
INTENDED = {("pending", "active"), ("active", "paused"), ("active", "completed"), ("active", "failed"),
            ("active", "cancelled"), ("paused", "active")}


def test_statuses():
    assert [s.value for s in SessionStatus] == STATUSES
    assert f"{SessionStatus.ACTIVE}" == "active"


def test_new_defaults():
    s = Session.new("agent-1")
    assert re.fullmatch(r"ses_[0-9a-f]{32}", s.id)
    assert s.agent_id == "agent-1" and s.status is SessionStatus.PENDING
    assert s.parent_session_id is None and s.metadata == {} and s.context == {} and s.tags == []
    assert s.created_at == s.updated_at and s.created_at.tzinfo is not None
    assert s.deleted_at is None
    assert Session.new("a").id != s.id


def test_new_with_attributes_and_attrs_dict():
    s = Session.new("a", id="ses_custom", parent_session_id="ses_parent", metadata={"m": 1},
                    context={"system_prompt": "be brief"}, tags=["x"])
    assert (s.id, s.parent_session_id, s.metadata, s.context, s.tags) == \
        ("ses_custom", "ses_parent", {"m": 1}, {"system_prompt": "be brief"}, ["x"])
    d = Session.new({"agent_id": "b", "id": "ses_d", "tags": ["t"], "metadata": None})
    assert (d.agent_id, d.id, d.tags, d.metadata, d.status) == ("b", "ses_d", ["t"], {}, SessionStatus.PENDING)
    assert Session.new("a", id="").id.startswith("ses_")


@pytest.mark.parametrize("agent_id,message", [(None, "agent_id is required"), ("", "agent_id cannot be empty"),
                                              (5, "agent_id must be a string")])
def test_new_rejects_bad_agent_ids(agent_id, message):
    with pytest.raises(AsmError) as ei:
        Session.new(agent_id)
    assert (ei.value.code, ei.value.message) == ("validation_error", message)
    with pytest.raises(AsmError, match=re.escape(message)):
        Session.new({"agent_id": agent_id})


def test_with_status_returns_a_new_session_and_touches_updated_at():
    s = Session.new("a")
    active = s.with_status("active")
    assert s.status is SessionStatus.PENDING  # original unchanged
    assert active.status is SessionStatus.ACTIVE and active.updated_at >= s.updated_at
    assert active.created_at == s.created_at
    # parity: no transition is enforced
    assert active.with_status(SessionStatus.COMPLETED).with_status("pending").status is SessionStatus.PENDING


@pytest.mark.parametrize("bad", ["bogus", 3, None, "ACTIVE"])
def test_with_status_rejects_unknown_statuses(bad):
    with pytest.raises(AsmError) as ei:
        Session.new("a").with_status(bad)
    assert ei.value.code == "invalid_status"
    assert ei.value.message == f"Invalid status: {bad!r}. Valid statuses: {STATUSES}"


@pytest.mark.parametrize("a", STATUSES)
@pytest.mark.parametrize("b", STATUSES)
def test_can_transition_table(a, b):
    assert can_transition(a, b) is ((a, b) in INTENDED)
    assert can_transition(SessionStatus(a), SessionStatus(b)) is ((a, b) in INTENDED)


def test_can_transition_rejects_unknown_statuses():
    with pytest.raises(AsmError) as ei:
        can_transition("pending", "bogus")
    assert ei.value.code == "invalid_status"


def test_is_terminal():
    for status in STATUSES:
        assert Session.new("a").with_status(status).is_terminal is (status in {"completed", "failed", "cancelled"})


def test_to_dict_keys_and_round_trip():
    s = Session.new("a", parent_session_id="ses_p", metadata={"provider": "shell"}, context={"k": [1]},
                    tags=["t"]).with_status("active")
    d = s.to_dict()
    assert list(d) == ["id", "agent_id", "status", "parent_session_id", "metadata", "context", "tags",
                       "created_at", "updated_at", "deleted_at"]
    assert d["status"] == "active" and d["deleted_at"] is None
    back = Session.from_dict(json.loads(json.dumps(d)))
    assert back == s
    deleted = s.replace(deleted_at=datetime(2025, 1, 1, tzinfo=timezone.utc))
    assert Session.from_dict(json.loads(json.dumps(deleted.to_dict()))) == deleted


def test_to_dict_leaves_out_the_runtime_transcript_object():
    s = Session.new("a", context={"system_prompt": "p", "transcript": object()})
    assert s.to_dict()["context"] == {"system_prompt": "p"}


def _valid() -> dict:
    return Session.new("a").to_dict()


@pytest.mark.parametrize("change,code,message", [
    ({"id": None}, "validation_error", "id is required"),
    ({"id": ""}, "validation_error", "id cannot be empty"),
    ({"id": 1}, "validation_error", "id must be a string"),
    ({"agent_id": None}, "validation_error", "agent_id is required"),
    ({"agent_id": ""}, "validation_error", "agent_id cannot be empty"),
    ({"agent_id": []}, "validation_error", "agent_id must be a string"),
    ({"status": None}, "validation_error", "status is required"),
    ({"status": "bogus"}, "invalid_status", "Invalid status: bogus"),
    ({"status": 3}, "validation_error", "status must be a string"),
    ({"created_at": None}, "validation_error", "datetime is required"),
    ({"created_at": "not a date"}, "validation_error", "Invalid datetime format"),
    ({"created_at": "2025-01-27T12:00:00"}, "validation_error", "Invalid datetime format"),
    ({"updated_at": 5}, "validation_error", "datetime must be a string"),
])
def test_from_dict_errors(change, code, message):
    d = {**_valid(), **change}
    with pytest.raises(AsmError) as ei:
        Session.from_dict(d)
    assert (ei.value.code, ei.value.message) == (code, message)


def test_from_dict_first_failure_wins():
    with pytest.raises(AsmError, match="id is required"):
        Session.from_dict({"agent_id": None, "status": "bogus"})
    with pytest.raises(AsmError, match="agent_id is required"):
        Session.from_dict({"id": "x", "status": "bogus"})


def test_from_dict_rejects_non_dicts():
    with pytest.raises(AsmError, match="Invalid session map"):
        Session.from_dict(["not", "a", "dict"])


def test_from_dict_optional_fields_default():
    d = _valid()
    for k in ("metadata", "context", "tags", "parent_session_id", "deleted_at"):
        d.pop(k)
    s = Session.from_dict(d)
    assert (s.metadata, s.context, s.tags, s.parent_session_id, s.deleted_at) == ({}, {}, [], None, None)
    assert Session.from_dict({**_valid(), "deleted_at": "garbage", "metadata": None}).deleted_at is None
