"""EventValidator: structural checks and shape warnings (docs/event-model.md, the persistence pipeline)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from asm_nb.core.errors import AsmError
from asm_nb.core.events import Event, EventType, all_types
from asm_nb.core.serialization import utc_now
from asm_nb.persistence.validation import validate_shape, validate_structural


def ns(**kw):
    base = {"type": EventType.RUN_STARTED, "session_id": "ses_1", "timestamp": utc_now(), "data": {}}
    base.update(kw)
    return SimpleNamespace(**base)


def err(fn, *args):
    with pytest.raises(AsmError) as ei:
        fn(*args)
    return ei.value.code, ei.value.message


# -- structural --------------------------------------------------------------------------------

@pytest.mark.parametrize("t", all_types())
def test_every_type_passes(t):
    assert validate_structural(Event.new(t, "ses_1")) is None


def test_string_type_and_none_data_pass():
    assert validate_structural(ns(type="message_streamed", data=None)) is None


def test_checks_in_order_first_failure_wins():
    assert err(validate_structural, ns(type=None, session_id=None, timestamp=None)) == (
        "validation_error", "type is required")
    assert err(validate_structural, ns(session_id=None, timestamp=None)) == (
        "validation_error", "session_id is required")
    assert err(validate_structural, ns(timestamp=None, data=5)) == ("validation_error", "timestamp is required")


def test_unknown_string_type_is_invalid_event_type():
    assert err(validate_structural, ns(type="bogus")) == ("invalid_event_type", "Invalid event type: 'bogus'")


def test_non_string_type_is_validation_error():
    assert err(validate_structural, ns(type=42)) == ("validation_error", "type must be an EventType, got: 42")


def test_data_must_be_dict_or_none():
    assert err(validate_structural, ns(data=[1])) == ("validation_error", "data must be a dict, got: [1]")


def test_mapping_input_is_accepted():
    assert validate_structural({"type": "run_started", "session_id": "s", "timestamp": utc_now()}) is None
    with pytest.raises(AsmError):
        validate_structural({"type": "run_started", "session_id": "s"})


# -- shape ---------------------------------------------------------------------------------------

def shape(t, data):
    return validate_shape(ns(type=t, data=data))


def test_message_received_empty_gives_two_warnings_in_order():
    assert shape(EventType.MESSAGE_RECEIVED, {}) == [
        "missing required field 'content' for shape validation",
        "missing required field 'role' for shape validation",
    ]


def test_role_only_mentions_content():
    ws = shape(EventType.MESSAGE_RECEIVED, {"role": "assistant"})
    assert len(ws) == 1 and "content" in ws[0]


def test_wrong_type_text():
    assert shape(EventType.TOKEN_USAGE_UPDATED, {"input_tokens": "x", "output_tokens": 2}) == [
        "field 'input_tokens' expected integer, got 'x'"]
    assert shape(EventType.MESSAGE_STREAMED, {"content": 5}) == ["field 'content' expected string, got 5"]


def test_bool_is_not_an_integer():
    assert shape(EventType.TOKEN_USAGE_UPDATED, {"input_tokens": True, "output_tokens": 1}) == [
        "field 'input_tokens' expected integer, got True"]


def test_null_counts_as_missing_and_none_data_as_empty():
    assert shape(EventType.RUN_COMPLETED, {"stop_reason": None}) == [
        "missing required field 'stop_reason' for shape validation"]
    assert shape(EventType.ERROR_OCCURRED, None) == [
        "missing required field 'error_message' for shape validation"]


def test_policy_violation_empty_two_warnings():
    assert len(shape(EventType.POLICY_VIOLATION, {})) == 2


@pytest.mark.parametrize("t", [EventType.TOOL_APPROVAL_REQUESTED, EventType.TOOL_APPROVAL_GRANTED,
                               EventType.TOOL_APPROVAL_DENIED, EventType.TOOL_CALL_STARTED,
                               EventType.TOOL_CALL_COMPLETED, EventType.TOOL_CALL_FAILED])
def test_tool_events_warn_about_tool_name(t):
    ws = shape(t, {})
    assert ws and "tool_name" in ws[0]


def test_approval_requested_needs_policy_name():
    assert shape(EventType.TOOL_APPROVAL_REQUESTED, {"tool_name": "bash"}) == [
        "missing required field 'policy_name' for shape validation"]


def test_delta_only_stream_event_warns():
    assert shape(EventType.MESSAGE_STREAMED, {"delta": "hi"}) == [
        "missing required field 'content' for shape validation"]


def test_types_without_rules_and_well_formed_payloads_give_nothing():
    assert shape(EventType.RUN_STARTED, {}) == []
    assert shape("session_created", {}) == []
    assert shape("not_a_type", {}) == []
    assert shape(EventType.MESSAGE_RECEIVED, {"content": "c", "role": "user"}) == []
    assert shape("token_usage_updated", {"input_tokens": 1, "output_tokens": 0}) == []
