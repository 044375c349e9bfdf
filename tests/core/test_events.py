"""EventType and categories, Event, NormalizedEvent and the normalizer (docs/event-model.md, event)."""

from __future__ import annotations

import json
import random
import re
from datetime import datetime, timedelta, timezone

import pytest

from asm_nb.core import events as ev
from asm_nb.core.errors import AsmError, BatchNormalizationError
from asm_nb.core.events import Event, EventType, NormalizedEvent

CATEGORIES = {
    "session": ["session_created", "session_started", "session_paused", "session_resumed", "session_completed",
                "session_failed", "session_cancelled"],
    "run": ["run_started", "run_completed", "run_failed", "run_cancelled", "run_timeout"],
    "message": ["message_sent", "message_received", "message_streamed"],
    "tool": ["tool_call_started", "tool_call_completed", "tool_call_failed"],
    "error": ["error_occurred", "error_recovered"],
    "usage": ["token_usage_updated", "turn_completed"],
    "workspace": ["workspace_snapshot_taken", "workspace_diff_computed"],
    "policy": ["policy_violation"],
    "approval": ["tool_approval_requested", "tool_approval_granted", "tool_approval_denied"],
}
ALL = [t for types in CATEGORIES.values() for t in types]
T0 = datetime(2025, 1, 27, 12, tzinfo=timezone.utc)

# ---------------------------------------------------------------------------------------------
# types


def test_28_types_in_spec_order():
    assert len(ALL) == 28
    assert [t.value for t in ev.all_types()] == ALL
    assert {t.value for t in EventType} == set(ALL)


@pytest.mark.parametrize("category,types", CATEGORIES.items())
def test_categories(category, types):
    fn = getattr(ev, f"{category}_events")
    assert [t.value for t in fn()] == types
    for t in types:
        assert EventType(t).category == category
        assert Event.new(t, "s").category == category


@pytest.mark.parametrize("t", ALL)
def test_is_valid_type_accepts_names_and_members(t):
    assert ev.is_valid_type(t) and ev.is_valid_type(EventType(t))
    assert str(EventType(t)) == f"{EventType(t)}" == t


@pytest.mark.parametrize("bad", ["", "assistant_message", "RUN_STARTED", None, 1, ["run_started"]])
def test_is_valid_type_rejects_everything_else(bad):
    assert ev.is_valid_type(bad) is False


def test_terminal_run_events():
    assert {t.value for t in ev.TERMINAL_RUN_EVENTS} == {"run_completed", "run_failed", "run_cancelled",
                                                         "run_timeout"}

# ---------------------------------------------------------------------------------------------
# Event


def test_event_new_defaults():
    e = Event.new("run_started", "ses_1")
    assert re.fullmatch(r"evt_[0-9a-f]{32}", e.id)
    assert e.type is EventType.RUN_STARTED and e.session_id == "ses_1"
    assert (e.run_id, e.data, e.metadata, e.sequence_number, e.schema_version, e.provider, e.correlation_id) == \
        (None, {}, {}, None, 1, None, None)
    assert e.timestamp.tzinfo is not None


def test_event_new_with_attributes():
    e = Event.new(EventType.MESSAGE_RECEIVED, "s", id="evt_x", run_id="r", data={"content": "c"},
                  metadata={"m": 1}, sequence_number=3, provider="claude", correlation_id="c1",
                  timestamp=T0, schema_version=2)
    assert (e.id, e.run_id, e.data, e.metadata, e.sequence_number, e.provider, e.correlation_id, e.timestamp,
            e.schema_version) == ("evt_x", "r", {"content": "c"}, {"m": 1}, 3, "claude", "c1", T0, 2)
    assert Event.new("run_started", "s", timestamp="2025-01-27T14:00:00+02:00").timestamp == T0
    assert Event.new("run_started", "s", timestamp=datetime(2025, 1, 27, 12)).timestamp == T0  # naive = UTC
    assert Event.new("run_started", "s", id="").id.startswith("evt_")
    assert Event.new("run_started", "s", data=None, metadata=None).data == {}


@pytest.mark.parametrize("kwargs,code,message", [
    ({"type": None, "session_id": "s"}, "validation_error", "type is required"),
    ({"type": "bogus", "session_id": "s"}, "invalid_event_type", "Invalid event type: 'bogus'"),
    ({"type": 5, "session_id": "s"}, "validation_error", "type must be a string"),
    ({"type": "run_started", "session_id": None}, "validation_error", "session_id is required"),
    ({"type": "run_started", "session_id": ""}, "validation_error", "session_id cannot be empty"),
    ({"type": "run_started", "session_id": "s", "schema_version": 0}, "validation_error",
     "schema_version must be an integer greater than or equal to 1"),
    ({"type": "run_started", "session_id": "s", "timestamp": "noon"}, "validation_error", "Invalid datetime format"),
    ({"type": "run_started", "session_id": "s", "bogus_field": 1}, "validation_error",
     "unknown event fields: ['bogus_field']"),
])
def test_event_new_errors(kwargs, code, message):
    with pytest.raises(AsmError) as ei:
        Event.new(**kwargs)
    assert (ei.value.code, ei.value.message) == (code, message)


def test_event_to_dict_has_all_11_fields_and_round_trips():
    e = Event.new("tool_call_started", "s", run_id="r", data={"tool_name": "bash", "tool_input": {"cmd": "ls"}},
                  metadata={"k": EventType.RUN_STARTED}, sequence_number=7, provider="codex", correlation_id="c")
    d = e.to_dict()
    assert list(d) == ["id", "type", "timestamp", "session_id", "run_id", "sequence_number", "data", "metadata",
                       "schema_version", "provider", "correlation_id"]
    assert d["type"] == "tool_call_started" and d["timestamp"].endswith("Z") and d["schema_version"] == 1
    back = Event.from_dict(json.loads(json.dumps(d)))
    assert back.to_dict() == d
    assert back == e.replace(metadata={"k": "run_started"})
    assert Event._from_stored(d) == back


def _event_dict(**change):
    return {**Event.new("run_started", "s").to_dict(), **change}


@pytest.mark.parametrize("change,code,message", [
    ({"id": None}, "validation_error", "id is required"),
    ({"id": ""}, "validation_error", "id cannot be empty"),
    ({"id": 3}, "validation_error", "id must be a string"),
    ({"type": None}, "validation_error", "type is required"),
    ({"type": "nope"}, "invalid_event_type", "Invalid event type: 'nope'"),
    ({"type": 3}, "validation_error", "type must be a string"),
    ({"session_id": None}, "validation_error", "session_id is required"),
    ({"session_id": ""}, "validation_error", "session_id cannot be empty"),
    ({"timestamp": None}, "validation_error", "timestamp is required"),
    ({"timestamp": "later"}, "validation_error", "Invalid datetime format"),
    ({"timestamp": "2025-01-27T12:00:00"}, "validation_error", "Invalid datetime format"),
    ({"timestamp": 17}, "validation_error", "timestamp must be a string"),
    ({"schema_version": None}, "validation_error", "schema_version is required"),
    ({"schema_version": "1"}, "validation_error", "schema_version must be an integer greater than or equal to 1"),
    ({"schema_version": 0}, "validation_error", "schema_version must be an integer greater than or equal to 1"),
    ({"schema_version": True}, "validation_error", "schema_version must be an integer greater than or equal to 1"),
])
def test_event_from_dict_errors(change, code, message):
    with pytest.raises(AsmError) as ei:
        Event.from_dict(_event_dict(**change))
    assert (ei.value.code, ei.value.message) == (code, message)


def test_event_from_dict_defaults_and_non_dict():
    with pytest.raises(AsmError, match="Invalid event map"):
        Event.from_dict(None)
    d = _event_dict(data=None, metadata=None)
    del d["run_id"], d["provider"]
    e = Event.from_dict(d)
    assert (e.data, e.metadata, e.run_id, e.provider) == ({}, {}, None, None)
    assert Event.from_dict(_event_dict(schema_version=3)).schema_version == 3

# ---------------------------------------------------------------------------------------------
# NormalizedEvent


def test_normalized_event_new_and_validity():
    n = NormalizedEvent.new("message_streamed", "s", "r", data={"delta": "x"})
    assert re.fullmatch(r"nevt_[0-9a-f]{32}", n.id)
    assert n.is_valid()
    assert (n.sequence_number, n.parent_event_id, n.provider, n.provider_event_id, n.metadata) == \
        (None, None, None, None, {})


@pytest.mark.parametrize("args,message", [
    ((None, "s", "r"), "type is required"),
    (("run_started", None, "r"), "session_id is required"),
    (("run_started", "", "r"), "session_id cannot be empty"),
    (("run_started", "s", None), "run_id is required"),
    (("run_started", "s", ""), "run_id cannot be empty"),
])
def test_normalized_event_new_errors(args, message):
    with pytest.raises(AsmError) as ei:
        NormalizedEvent.new(*args)
    assert (ei.value.code, ei.value.message) == ("validation_error", message)


def test_normalized_event_new_rejects_unknown_types_and_fields():
    with pytest.raises(AsmError) as ei:
        NormalizedEvent.new("bogus", "s", "r")
    assert (ei.value.code, ei.value.message) == ("invalid_event_type", "Invalid event type: 'bogus'")
    with pytest.raises(AsmError, match="unknown event fields"):
        NormalizedEvent.new("run_started", "s", "r", colour="red")


def test_is_valid_checks_ids():
    import dataclasses

    n = NormalizedEvent.new("run_started", "s", "r")
    assert not dataclasses.replace(n, run_id="").is_valid()
    assert not dataclasses.replace(n, session_id="").is_valid()
    assert not dataclasses.replace(n, id="").is_valid()


def test_same_context():
    a = NormalizedEvent.new("run_started", "s", "r")
    assert ev.same_context(a, NormalizedEvent.new("run_completed", "s", "r"))
    assert not ev.same_context(a, NormalizedEvent.new("run_started", "s", "r2"))
    assert not ev.same_context(a, NormalizedEvent.new("run_started", "s2", "r"))


def test_normalized_event_round_trip():
    n = NormalizedEvent.new("tool_call_completed", "s", "r", sequence_number=4, parent_event_id="nevt_p",
                            data={"tool_output": [1, 2]}, metadata={"model": "m"}, provider="claude",
                            provider_event_id="msg_1")
    d = n.to_dict()
    assert len(d) == 11 and d["provider"] == "claude"
    assert NormalizedEvent.from_dict(json.loads(json.dumps(d))) == n
    custom = NormalizedEvent.from_dict({**d, "provider": "my_provider"})
    assert custom.provider == "my_provider"  # unknown providers keep their string


@pytest.mark.parametrize("change,code,message", [
    ({"id": None}, "validation_error", "id is required"),
    ({"type": None}, "validation_error", "type is required"),
    ({"type": "x"}, "invalid_event_type", "Invalid event type: 'x'"),
    ({"type": 1}, "validation_error", "type must be a string"),
    ({"session_id": ""}, "validation_error", "session_id cannot be empty"),
    ({"run_id": None}, "validation_error", "run_id is required"),
    ({"timestamp": None}, "validation_error", "timestamp is required"),
    ({"timestamp": "bad"}, "validation_error", "Invalid datetime format"),
])
def test_normalized_event_from_dict_errors(change, code, message):
    d = {**NormalizedEvent.new("run_started", "s", "r").to_dict(), **change}
    with pytest.raises(AsmError) as ei:
        NormalizedEvent.from_dict(d)
    assert (ei.value.code, ei.value.message) == (code, message)
    with pytest.raises(AsmError, match="Invalid event map"):
        NormalizedEvent.from_dict(3)


def test_normalized_event_is_an_event_with_a_documented_conversion():
    """One event model: a NormalizedEvent is an Event (same fields, category, replace) plus the two
    in-flight ids; to_event() is the persisted form, from_event() its inverse."""
    n = NormalizedEvent.new("tool_call_completed", "s", "r", sequence_number=4, parent_event_id="nevt_p",
                            data={"tool_output": "ok"}, metadata={"model": "m"}, provider="claude",
                            provider_event_id="msg_1")
    assert isinstance(n, Event) and n.category == "tool" and n.replace(data={}).data == {}
    e = n.to_event()
    assert type(e) is Event and e.id == n.id and e.to_dict()["type"] == "tool_call_completed"
    assert list(e.to_dict()) == ["id", "type", "timestamp", "session_id", "run_id", "sequence_number", "data",
                                 "metadata", "schema_version", "provider", "correlation_id"]
    assert (e.run_id, e.sequence_number, e.provider, e.data) == ("r", 4, "claude", {"tool_output": "ok"})
    assert e.metadata == {"model": "m", "parent_event_id": "nevt_p", "provider_event_id": "msg_1"}
    assert Event.from_dict(json.loads(json.dumps(e.to_dict()))) == e  # persists like any Event
    back = NormalizedEvent.from_event(e)
    assert back == n and back.metadata == {"model": "m"}
    assert NormalizedEvent.from_event(n) is n
    plain = NormalizedEvent.new("run_started", "s", "r").to_event()
    assert plain.metadata == {} and NormalizedEvent.from_event(plain).parent_event_id is None
    with pytest.raises(AsmError, match="run_id is required"):
        NormalizedEvent.from_event(Event.new("run_started", "s"))
    with pytest.raises(AsmError, match="from_event needs an Event"):
        NormalizedEvent.from_event({"id": "x"})

# ---------------------------------------------------------------------------------------------
# normalizer


@pytest.mark.parametrize("raw,expected", [
    ("run_started", EventType.RUN_STARTED), (EventType.MESSAGE_SENT, EventType.MESSAGE_SENT),
    ("message_streamed", EventType.MESSAGE_STREAMED),
    # no alias table
    ("assistant_message", EventType.ERROR_OCCURRED), ("delta", EventType.ERROR_OCCURRED),
    ("tool_use", EventType.ERROR_OCCURRED), ("", EventType.ERROR_OCCURRED), (None, EventType.ERROR_OCCURRED),
    (3, EventType.ERROR_OCCURRED),
])
def test_resolve_type(raw, expected):
    assert ev.resolve_type(raw) is expected


CTX = {"session_id": "ses_1", "run_id": "run_1"}


def test_normalize_copies_known_fields():
    raw = {"type": "tool_call_started", "id": "toolu_1", "name": "bash", "tool_input": {"cmd": "ls"},
           "content": "c", "delta": "d", "role": "assistant", "tool_output": "o", "model": "m",
           "stop_reason": "end_turn", "metadata": {"x": 1}, "extra": "ignored"}
    n = ev.normalize(raw, {**CTX, "provider": "claude", "sequence_number": 9})
    assert n.type is EventType.TOOL_CALL_STARTED
    assert n.data == {"raw": raw, "content": "c", "delta": "d", "role": "assistant", "tool_name": "bash",
                      "tool_input": {"cmd": "ls"}, "tool_output": "o"}
    assert n.metadata == {"x": 1, "model": "m", "stop_reason": "end_turn"}
    assert (n.provider, n.provider_event_id, n.sequence_number) == ("claude", "toolu_1", 9)
    assert (n.session_id, n.run_id) == ("ses_1", "run_1")


def test_normalize_prefers_tool_name_and_message_id_fallback():
    n = ev.normalize({"type": "tool_call_completed", "tool_name": "grep", "name": "other", "message_id": "m1"}, CTX)
    assert n.data["tool_name"] == "grep" and n.provider_event_id == "m1"
    assert n.provider == "generic" and n.sequence_number is None
    assert "original_type" not in n.data


def test_normalize_skips_none_values():
    n = ev.normalize({"type": "message_received", "content": None, "role": None, "model": None}, CTX)
    assert n.data == {"raw": {"type": "message_received", "content": None, "role": None, "model": None}}
    assert n.metadata == {}


@pytest.mark.parametrize("raw_type,original", [("assistant_message", "assistant_message"), ("", None),
                                               (None, None), ("error_occurred", "error_occurred")])
def test_normalize_unknown_types_become_error_occurred_with_original_type(raw_type, original):
    n = ev.normalize({"type": raw_type}, CTX)
    assert n.type is EventType.ERROR_OCCURRED
    assert n.data.get("original_type") == original


@pytest.mark.parametrize("raw,ctx,message", [
    ("x", CTX, "Invalid raw event or context"),
    ({}, None, "Invalid raw event or context"),
    ({}, {"run_id": "r"}, "session_id is required in context"),
    ({}, {"session_id": "", "run_id": "r"}, "session_id cannot be empty"),
    ({}, {"session_id": "s"}, "run_id is required in context"),
    ({}, {"session_id": "s", "run_id": ""}, "run_id cannot be empty"),
])
def test_normalize_errors(raw, ctx, message):
    with pytest.raises(AsmError) as ei:
        ev.normalize(raw, ctx)
    assert (ei.value.code, ei.value.message) == ("validation_error", message)


def test_normalize_batch_types_sequences_and_unique_ids():
    raws = [{"type": "message_received", "content": "a"}, {"content": "no type"},
            {"type": "message_received", "content": "b"}]
    out = ev.normalize_batch(raws, CTX)
    assert [n.type.value for n in out] == ["message_received", "error_occurred", "message_received"]
    assert [n.sequence_number for n in out] == [0, 1, 2]
    assert [n.data["raw"] for n in out] == raws  # order preserved
    assert len({n.id for n in out}) == 3
    off = ev.normalize_batch(raws[:2], {**CTX, "sequence_offset": 10})
    assert [n.sequence_number for n in off] == [10, 11]
    assert ev.normalize_batch([], CTX) == []


def test_normalize_batch_failure_reports_errors_and_successes():
    raws = [{"type": "run_started"}, "not a dict", {"type": "run_completed"}, 5]
    with pytest.raises(BatchNormalizationError) as ei:
        ev.normalize_batch(raws, {**CTX, "sequence_offset": 3})
    err = ei.value
    assert isinstance(err, AsmError) and err.code == "validation_error"
    assert [(seq, raw) for seq, raw, _ in err.errors] == [(4, "not a dict"), (6, 5)]
    assert all(e.message == "Invalid raw event or context" for _, _, e in err.errors)
    assert [n.sequence_number for n in err.successful] == [3, 5]


def _n(seq, ts_offset, id_):
    return NormalizedEvent.new("run_started", "s", "r", id=id_, sequence_number=seq,
                               timestamp=T0 + timedelta(seconds=ts_offset))


def test_sort_events_is_deterministic_for_any_input_order():
    events = [_n(2, 0, "a"), _n(1, 5, "b"), _n(None, 0, "c"), _n(None, 0, "b2"), _n(None, -1, "z"),
              _n(1, 5, "a1"), _n(3, -9, "q")]
    expected = ["a1", "b", "a", "q", "z", "b2", "c"]
    rng = random.Random(7)
    for _ in range(20):
        shuffled = events[:]
        rng.shuffle(shuffled)
        assert [e.id for e in ev.sort_events(shuffled)] == expected


def test_filters():
    a = NormalizedEvent.new("run_started", "s1", "r1")
    b = NormalizedEvent.new("message_received", "s1", "r2")
    c = NormalizedEvent.new("error_occurred", "s2", "r1")
    evs = [a, b, c]
    assert ev.filter_by_run(evs, "r1") == [a, c]
    assert ev.filter_by_session(evs, "s1") == [a, b]
    assert ev.filter_by_type(evs, "message_received") == [b]
    assert ev.filter_by_type(evs, EventType.RUN_STARTED) == [a]
    assert ev.filter_by_type(evs, ["run_started", EventType.ERROR_OCCURRED]) == [a, c]
    assert ev.filter_by_type(evs, {"message_received"}) == [b]
    assert ev.filter_by_type(evs, "not_a_type") == []  # exact names only
    assert ev.filter_by_type(evs, []) == []

# ---------------------------------------------------------------------------------------------
# properties

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                     max_leaves=8)


@settings(max_examples=60, deadline=None)
@given(type_=st.sampled_from(ALL), data=st.dictionaries(st.text(max_size=6), _json, max_size=4),
       seq=st.none() | st.integers(min_value=1, max_value=10**9), micros=st.integers(0, 10**12))
def test_event_round_trip_property(type_, data, seq, micros):
    e = Event.new(type_, "ses_p", run_id="run_p", data=data, sequence_number=seq,
                  timestamp=T0 + timedelta(microseconds=micros))
    assert Event.from_dict(json.loads(json.dumps(e.to_dict()))) == e


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.none() | st.integers(0, 5), st.integers(0, 3)), max_size=8), st.randoms())
def test_sort_events_property_is_order_independent(specs, rnd):
    events = [_n(seq, ts, f"id{i}") for i, (seq, ts) in enumerate(specs)]
    shuffled = events[:]
    rnd.shuffle(shuffled)
    assert [e.id for e in ev.sort_events(shuffled)] == [e.id for e in ev.sort_events(events)]
