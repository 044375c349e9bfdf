"""Persistence event pipeline (docs/event-model.md, the persistence pipeline) against the real InMemoryStore."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from asm_nb import config, telemetry
from asm_nb.core.errors import AsmError
from asm_nb.core.events import Event, EventType
from asm_nb.persistence.pipeline import (
    EVENT_PERSISTED, EVENT_REDACTED, EVENT_REJECTED, EVENT_VALIDATION_WARNING, EventPipeline, PipelineContext,
    build_event,
)
from asm_nb.stores.memory import InMemoryStore

AWS = "AKIAIOSFODNN7EXAMPLE"


@pytest.fixture
def store():
    s = InMemoryStore()
    yield s
    s.close()


@pytest.fixture
def pipeline(store):
    return EventPipeline(store)


@pytest.fixture
def ctx():
    return PipelineContext("ses_1", run_id="run_1", provider="claude", correlation_id="corr_1")


@pytest.fixture
def tele():
    """Record the four persistence telemetry events (telemetry on in this context)."""
    seen: list[tuple] = []
    hid = f"test-pipe-{uuid.uuid4().hex}"
    telemetry.attach_many(hid, [EVENT_PERSISTED, EVENT_REDACTED, EVENT_REJECTED, EVENT_VALIDATION_WARNING],
                          lambda n, m, md, c: seen.append((n[-1], m, md)))
    with config.override(telemetry_enabled=True):
        yield seen
    telemetry.detach(hid)


def names(seen):
    return [s[0] for s in seen]


# -- build_event -------------------------------------------------------------------------------

def test_build_sets_context_fields_and_stays_unsequenced(ctx):
    ev = build_event({"type": "message_received", "data": {"content": "hi", "role": "assistant"},
                      "metadata": {"model": "m"}, "provider": "other", "sequence_number": 99}, ctx)
    assert isinstance(ev, Event)
    assert (ev.session_id, ev.run_id, ev.provider, ev.correlation_id) == ("ses_1", "run_1", "claude", "corr_1")
    assert ev.sequence_number is None
    assert ev.data == {"content": "hi", "role": "assistant"} and ev.metadata == {"model": "m"}
    assert "provider" not in ev.metadata
    assert ev.id.startswith("evt_") and len(ev.id) == 36


def test_correlation_id_none_overwrites(ctx):
    ev = build_event({"type": "run_started", "correlation_id": "raw"}, PipelineContext("ses_1"))
    assert ev.correlation_id is None and ev.provider is None and ev.run_id is None


def test_dict_context_is_accepted():
    ev = build_event({"type": "run_started"}, {"session_id": "s", "provider": "codex"})
    assert ev.provider == "codex"


@pytest.mark.parametrize("t", ["run_started", "message_streamed", "run_completed", EventType.TOOL_CALL_STARTED])
def test_types_resolve(ctx, t):
    assert build_event({"type": t}, ctx).type == EventType(t)


@pytest.mark.parametrize("t", ["bogus", "RunStarted", "", None, 42])
def test_unknown_type_becomes_error_occurred_with_original_type(ctx, t):
    ev = build_event({"type": t, "data": {"x": 1}}, ctx)
    assert ev.type is EventType.ERROR_OCCURRED
    assert ev.metadata["_original_type"] == str(t)
    assert ev.data == {"x": 1}


def test_real_error_occurred_has_no_original_type(ctx):
    ev = build_event({"type": "error_occurred", "data": {"error_message": "x"}}, ctx)
    assert "_original_type" not in ev.metadata and ev.metadata == {}


@pytest.mark.parametrize("bad", [None, [1, 2], "text", 5])
def test_non_dict_data_and_metadata_become_empty(ctx, bad):
    ev = build_event({"type": "run_started", "data": bad, "metadata": bad}, ctx)
    assert ev.data == {} and ev.metadata == {}


def test_adapter_timestamp_is_kept(ctx):
    ts = datetime(2025, 1, 27, 12, 0, 0, 123456, tzinfo=timezone.utc)
    assert build_event({"type": "run_started", "timestamp": ts}, ctx).timestamp == ts
    naive = datetime(2025, 1, 27, 12, 0, 0)
    assert build_event({"type": "run_started", "timestamp": naive}, ctx).timestamp == naive.replace(tzinfo=timezone.utc)
    iso = "2025-01-27T13:00:00+01:00"
    assert build_event({"type": "run_started", "timestamp": iso}, ctx).timestamp == datetime(
        2025, 1, 27, 12, 0, tzinfo=timezone.utc)
    before = datetime.now(timezone.utc)
    for junk in ("2025-01-27T12:00:00", "yesterday", 12345):
        got = build_event({"type": "run_started", "timestamp": junk}, ctx).timestamp
        assert got >= before - timedelta(seconds=1)


def test_raw_id_is_used_when_a_non_empty_string(ctx):
    assert build_event({"type": "run_started", "id": "evt_fixed"}, ctx).id == "evt_fixed"
    for bad in ("", None, 42):
        assert build_event({"type": "run_started", "id": bad}, ctx).id.startswith("evt_")


@pytest.mark.parametrize("sid,msg", [("", "session_id cannot be empty"), (None, "session_id is required"),
                                     (5, "session_id must be a string")])
def test_bad_session_id_is_a_validation_error(sid, msg):
    with pytest.raises(AsmError) as ei:
        build_event({"type": "run_started"}, PipelineContext(sid))
    assert (ei.value.code, ei.value.message) == ("validation_error", msg)


def test_non_dict_raw_rejected(ctx):
    with pytest.raises(AsmError) as ei:
        build_event(["type", "run_started"], ctx)
    assert ei.value.message == "raw event data must be a dict"


def test_shape_warnings_go_to_metadata_only_when_present(ctx):
    ev = build_event({"type": "message_streamed", "data": {"delta": "hi"}}, ctx)
    assert ev.metadata["_validation_warnings"] == ["missing required field 'content' for shape validation"]
    ok = build_event({"type": "message_streamed", "data": {"delta": "hi", "content": "hi"}}, ctx)
    assert "_validation_warnings" not in ok.metadata


def test_input_dicts_are_not_shared_or_mutated(ctx):
    data, meta = {"delta": "x"}, {"m": 1}
    ev = build_event({"type": "message_streamed", "data": data, "metadata": meta}, ctx)
    assert meta == {"m": 1} and ev.metadata is not meta and ev.data is not data
    data["delta"] = "changed"
    assert ev.data["delta"] == "x"


# -- redaction inside the builder ---------------------------------------------------------------

def test_redaction_on_by_default(ctx):
    ev = build_event({"type": "message_received", "data": {"content": f"key {AWS}", "role": "assistant"}}, ctx)
    assert ev.data["content"] == "key [REDACTED]"


def test_redaction_disabled_by_context_local_config(ctx):
    with config.override(redaction_enabled=False):
        ev = build_event({"type": "message_received", "data": {"content": AWS}}, ctx)
    assert ev.data["content"] == AWS


def test_context_override_enables_by_default_and_uses_redactor_defaults():
    raw = {"type": "message_received", "data": {"content": AWS, "extra": AWS}}
    with config.override(redaction_enabled=False, redaction_replacement="GLOBAL", redaction_deep_scan=False):
        ev = build_event(raw, PipelineContext("s", redaction={}))
        assert ev.data == {"content": "[REDACTED]", "extra": "[REDACTED]"}  # table defaults, not global
        ev = build_event(raw, PipelineContext("s", redaction={"replacement": "categorized", "deep_scan": False}))
        assert ev.data == {"content": "[REDACTED:aws_access_key]", "extra": AWS}
        assert build_event(raw, PipelineContext("s", redaction={"enabled": False})).data["content"] == AWS


def test_context_override_accepts_a_redaction_config_and_rejects_junk():
    from asm_nb.persistence.redaction import RedactionConfig

    raw = {"type": "message_received", "data": {"content": AWS}}
    ev = build_event(raw, PipelineContext("s", redaction=RedactionConfig(True, replacement="##")))
    assert ev.data["content"] == "##"
    with pytest.raises(AsmError) as ei:
        build_event(raw, PipelineContext("s", redaction="on"))
    assert ei.value.code == "validation_error"


def test_redaction_happens_before_validation(ctx):
    # a redacted value still satisfies the shape rule; warnings see the redacted payload
    ev = build_event({"type": "error_occurred", "data": {"error_message": f"bad {AWS}"}}, ctx)
    assert ev.data["error_message"] == "bad [REDACTED]" and "_validation_warnings" not in ev.metadata


def test_redacted_telemetry(ctx, tele):
    build_event({"type": "tool_call_completed", "data": {"tool_name": "t", "tool_input": {"k": f"password=x {AWS}"}}},
                ctx)
    build_event({"type": "tool_call_completed", "data": {"tool_name": "t", "tool_input": {"k": "clean"}}}, ctx)
    assert names(tele) == ["event_redacted"]
    _, m, md = tele[0]
    assert m == {"redaction_count": 2}
    assert md == {"session_id": "ses_1", "run_id": "run_1", "type": EventType.TOOL_CALL_COMPLETED,
                  "fields_redacted": ["tool_input"]}


# -- EventPipeline.process -----------------------------------------------------------------------

def test_sequential_process_gets_1_2_3(pipeline, store, ctx):
    got = [pipeline.process({"type": "message_streamed", "data": {"delta": str(i), "content": str(i)}}, ctx)
           for i in range(3)]
    assert [e.sequence_number for e in got] == [1, 2, 3]
    stored = store.get_events("ses_1")
    assert [e.data["delta"] for e in stored] == ["0", "1", "2"]
    assert [e.id for e in stored] == [e.id for e in got]


def test_process_preserves_data_metadata_and_adapter_timestamp(pipeline, store, ctx):
    ts = datetime(2024, 5, 1, 8, 30, tzinfo=timezone.utc)
    ev = pipeline.process({"type": "run_completed", "timestamp": ts, "data": {"stop_reason": "end_turn"},
                           "metadata": {"model": "x"}}, ctx)
    [stored] = store.get_events("ses_1")
    assert stored.timestamp == ts and stored.data == {"stop_reason": "end_turn"} and stored.metadata == {"model": "x"}
    assert stored.provider == "claude" and stored.correlation_id == "corr_1" and ev == stored


def test_process_emits_warning_then_persisted(pipeline, ctx, tele):
    pipeline.process({"type": "message_received", "data": {}}, ctx)
    assert names(tele) == ["event_validation_warning", "event_persisted"]
    _, wm, wmd = tele[0]
    assert wm == {"warning_count": 2}
    assert wmd["session_id"] == "ses_1" and wmd["type"] is EventType.MESSAGE_RECEIVED and len(wmd["warnings"]) == 2
    _, pm, pmd = tele[1]
    assert pm["sequence_number"] == 1 and isinstance(pm["system_time"], int)
    assert pmd == {"session_id": "ses_1", "run_id": "run_1", "type": EventType.MESSAGE_RECEIVED, "provider": "claude"}


def test_empty_session_id_rejected_with_telemetry(pipeline, store, tele):
    with pytest.raises(AsmError) as ei:
        pipeline.process({"type": "run_started"}, PipelineContext("", provider="claude"))
    assert ei.value.code == "validation_error"
    assert names(tele) == ["event_rejected"]
    _, m, md = tele[0]
    assert md == {"session_id": "", "reason": "session_id cannot be empty"} and "system_time" in m


def test_non_dict_raw_rejected_with_telemetry(pipeline, ctx, tele):
    with pytest.raises(AsmError):
        pipeline.process("nope", ctx)
    assert tele[0][2] == {"session_id": "ses_1", "reason": "raw event data must be a dict"}


def test_store_error_rejected_with_telemetry_and_store_usable(pipeline, store, ctx, tele):
    class Failing:
        def append_event_with_sequence(self, event):
            raise AsmError("storage_error", "Failed to append event: 'disk full'")

    with pytest.raises(AsmError):
        EventPipeline(Failing()).process({"type": "run_started"}, ctx)
    assert tele[-1][2]["reason"] == "Failed to append event: 'disk full'"
    assert pipeline.process({"type": "run_started"}, ctx).sequence_number == 1


def test_reprocessing_the_same_raw_id_is_idempotent(pipeline, store, ctx):
    raw = {"id": "evt_replay_1", "type": "message_streamed", "data": {"delta": "a", "content": "a"}}
    first = pipeline.process(raw, ctx)
    again = pipeline.process(raw, ctx)
    assert again.sequence_number == first.sequence_number == 1
    assert store.get_latest_sequence("ses_1") == 1


def test_telemetry_disabled_emits_nothing(pipeline, ctx, tele):
    with config.override(telemetry_enabled=False):
        pipeline.process({"type": "message_received", "data": {"content": AWS}}, ctx)
        with pytest.raises(AsmError):
            pipeline.process({"type": "run_started"}, PipelineContext(""))
    assert tele == []


def test_stored_order_equals_processing_order_mixed_types(pipeline, store, ctx):
    types = ["run_started", "message_streamed", "tool_call_started", "tool_call_completed", "run_completed"]
    for t in types:
        pipeline.process({"type": t, "data": {}}, ctx)
    assert [e.type.value for e in store.get_events("ses_1")] == types
    assert [e.sequence_number for e in store.get_events("ses_1")] == [1, 2, 3, 4, 5]


def test_secrets_never_reach_the_store(pipeline, store, ctx):
    pipeline.process({"type": "tool_call_completed", "data": {
        "tool_name": "bash", "tool_input": {"command": "cat .env"},
        "tool_output": f"AWS_KEY={AWS}\nDATABASE_URL=postgres://u:p@h/db"}}, ctx)
    [stored] = store.get_events("ses_1")
    text = repr(stored.to_dict())
    assert AWS not in text and "u:p@h" not in text


# -- process_batch -------------------------------------------------------------------------------

def test_batch_contiguous_numbers_and_persisted_per_event(pipeline, store, ctx, tele):
    got = pipeline.process_batch([{"type": "run_started"},
                                  {"type": "message_streamed", "data": {"delta": "a", "content": "a"}},
                                  {"type": "run_completed", "data": {"stop_reason": "end_turn"}}], ctx)
    assert [e.sequence_number for e in got] == [1, 2, 3]
    assert names(tele) == ["event_persisted"] * 3
    assert [t[1]["sequence_number"] for t in tele] == [1, 2, 3]


def test_batch_non_dict_in_middle_leaves_session_empty(pipeline, store, ctx, tele):
    with pytest.raises(AsmError):
        pipeline.process_batch([{"type": "run_started"}, "bad", {"type": "run_completed"}], ctx)
    assert store.get_events("ses_1") == []
    assert names(tele) == ["event_rejected"]


def test_batch_empty_and_not_a_list(pipeline, ctx):
    assert pipeline.process_batch([], ctx) == []
    with pytest.raises(AsmError) as ei:
        pipeline.process_batch({"type": "run_started"}, ctx)
    assert ei.value.message == "raw events must be a list"


def test_batch_warnings_per_event(pipeline, ctx, tele):
    pipeline.process_batch([{"type": "message_received", "data": {}}, {"type": "run_started"}], ctx)
    assert names(tele) == ["event_validation_warning", "event_persisted", "event_persisted"]


def test_batch_duplicate_ids_resolve_to_first(pipeline, store, ctx):
    got = pipeline.process_batch([{"id": "evt_a", "type": "run_started"}, {"id": "evt_a", "type": "run_started"},
                                  {"type": "run_completed"}], ctx)
    assert [e.sequence_number for e in got] == [1, 1, 2]


def test_batch_store_failure_rejects(ctx, tele):
    class Failing:
        def append_events(self, events):
            raise AsmError("storage_error", "Failed to append events: 'x'")

    with pytest.raises(AsmError):
        EventPipeline(Failing()).process_batch([{"type": "run_started"}], ctx)
    assert names(tele) == ["event_rejected"]


def test_pipeline_feeds_many_events_quickly(pipeline, store, ctx):
    # smoke check of the hot path (not a benchmark): 2 000 events, all stored in order
    raws = [{"type": "message_streamed", "data": {"delta": f"token {i} ", "content": f"token {i} "}} for i in range(2000)]
    for raw in raws[:1000]:
        pipeline.process(raw, ctx)
    pipeline.process_batch(raws[1000:], ctx)
    events = store.get_events("ses_1")
    assert len(events) == 2000 and events[-1].sequence_number == 2000


def test_fast_event_construction_equals_the_dataclass_constructor(ctx):
    from asm_nb.persistence import pipeline as pl

    assert pl._make_event is not pl._event_slow  # the fast path is active for the current Event
    ts = datetime(2025, 1, 1, tzinfo=timezone.utc)
    args = ("evt_1", EventType.RUN_STARTED, ts, "ses_1", "run_1", {"a": 1}, {"m": 2}, "claude", "c1")
    fast, slow = pl._make_event(*args), pl._event_slow(*args)
    assert fast == slow
    assert fast.to_dict() == slow.to_dict() and Event.from_dict(fast.to_dict()) == slow
    with pytest.raises(Exception):
        fast.id = "other"  # still frozen
