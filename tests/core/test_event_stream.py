"""EventStream: the immutable cursor over one run's normalized events (docs/event-model.md, normalized events and
event streams)."""

from __future__ import annotations

import dataclasses

import pytest

from asm_nb import config
from asm_nb.core.errors import AsmError
from asm_nb.core.event_stream import EventStream, StreamStatus
from asm_nb.core.events import EventType, NormalizedEvent


def _ev(seq=None, type_="message_streamed", sid="s", rid="r", **kw) -> NormalizedEvent:
    return NormalizedEvent.new(type_, sid, rid, sequence_number=seq, **kw)


def _filled(n: int, **kw) -> EventStream:
    s = EventStream.new("s", "r", **kw)
    for _ in range(n):
        s = s.push(_ev())
    return s


def test_new_defaults():
    s = EventStream.new("s", "r")
    assert (s.session_id, s.run_id, s.events, s.cursor, s.buffer_size, s.status, s.next_sequence) == \
        ("s", "r", (), 0, 1000, StreamStatus.OPEN, 0)
    assert not s.closed and s.count() == 0 and s.remaining() == 0 and list(s) == []
    assert EventStream.new({"session_id": "s", "run_id": "r", "buffer_size": 5}).buffer_size == 5


def test_default_buffer_size_comes_from_config():
    with config.override(event_buffer_size=2):
        assert EventStream.new("s", "r").buffer_size == 2
    assert EventStream.new("s", "r", buffer_size=7).buffer_size == 7


@pytest.mark.parametrize("sid,rid,message", [(None, "r", "session_id is required"),
                                             ("", "r", "session_id cannot be empty"),
                                             ("s", None, "run_id is required"), ("s", "", "run_id cannot be empty")])
def test_new_errors(sid, rid, message):
    with pytest.raises(AsmError) as ei:
        EventStream.new(sid, rid)
    assert (ei.value.code, ei.value.message) == ("validation_error", message)


@pytest.mark.parametrize("size", [0, -1, "10", 1.5, True])
def test_buffer_size_must_be_a_positive_int(size):
    with pytest.raises(AsmError, match="buffer_size must be a positive integer"):
        EventStream.new("s", "r", buffer_size=size)


def test_push_assigns_sequence_numbers_and_is_immutable():
    s0 = EventStream.new("s", "r")
    s1 = s0.push(_ev())
    s2 = s1.push(_ev())
    assert s0.count() == 0 and s1.count() == 1 and s2.count() == 2
    assert [e.sequence_number for e in s2.get_events()] == [0, 1]
    assert s2.next_sequence == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        s2.cursor = 5


def test_push_keeps_explicit_sequences_and_next_sequence_follows_the_max():
    s = EventStream.new("s", "r").push(_ev(5)).push(_ev(2)).push(_ev())
    assert [e.sequence_number for e in s.get_events()] == [2, 5, 6]
    assert s.next_sequence == 7


def test_buffer_keeps_the_highest_sequences():
    s = EventStream.new("s", "r", buffer_size=3)
    for seq in [1, 2, 3, 4, 5]:
        s = s.push(_ev(seq))
    assert [e.sequence_number for e in s.get_events()] == [3, 4, 5]
    s = EventStream.new("s", "r", buffer_size=2).push(_ev(9)).push(_ev(1)).push(_ev(4))
    assert [e.sequence_number for e in s.get_events()] == [4, 9]


@pytest.mark.parametrize("event,code,message", [
    (_ev(sid="other"), "session_mismatch", "Event session_id does not match stream session_id"),
    (_ev(rid="other"), "run_mismatch", "Event run_id does not match stream run_id"),
])
def test_push_rejects_other_contexts(event, code, message):
    with pytest.raises(AsmError) as ei:
        EventStream.new("s", "r").push(event)
    assert (ei.value.code, ei.value.message) == (code, message)


def test_closed_stream_rejects_pushes_but_stays_readable():
    s = _filled(2).close()
    assert s.closed and s.status is StreamStatus.CLOSED
    for call in (lambda: s.push(_ev()), lambda: s.push_batch([_ev()]), lambda: s.push_batch([])):
        with pytest.raises(AsmError) as ei:
            call()
        assert (ei.value.code, ei.value.message) == ("stream_closed", "Cannot push to a closed stream")
    assert s.count() == 2 and len(s.get_events()) == 2


def test_push_batch_is_atomic():
    s = EventStream.new("s", "r").push(_ev())
    bad = _ev(rid="elsewhere", id="nevt_bad")
    with pytest.raises(AsmError) as ei:
        s.push_batch([_ev(), _ev(), bad])
    assert (ei.value.code, ei.value.message) == ("context_mismatch", "Event nevt_bad has mismatched context")
    assert s.count() == 1
    ok = s.push_batch([_ev(), _ev(10), _ev()])
    assert [e.sequence_number for e in ok.get_events()] == [0, 1, 10, 11]


def test_get_events_filters_then_limits():
    s = EventStream.new("s", "r")
    for t in ["run_started", "message_streamed", "message_streamed", "tool_call_started", "run_completed"]:
        s = s.push(_ev(type_=t))
    s = s.advance_cursor(2)
    assert [e.sequence_number for e in s.get_events(from_cursor=True)] == [2, 3, 4]
    assert [e.type for e in s.get_events(type="message_streamed")] == [EventType.MESSAGE_STREAMED] * 2
    assert [e.sequence_number for e in s.get_events(type=["run_started", EventType.RUN_COMPLETED])] == [0, 4]
    assert [e.sequence_number for e in s.get_events(from_cursor=True, type="message_streamed")] == [2]
    assert [e.sequence_number for e in s.get_events(limit=2)] == [0, 1]
    assert s.get_events(limit=0) == []
    with pytest.raises(AsmError):
        s.get_events(limit=-1)


def test_advance_cursor_only_moves_forward():
    s = _filled(3).advance_cursor(2)
    assert s.cursor == 2 and s.advance_cursor(2).cursor == 2 and s.advance_cursor(100).cursor == 100
    for pos in (1, -1):
        with pytest.raises(AsmError) as ei:
            s.advance_cursor(pos)
        assert (ei.value.code, ei.value.message) == ("invalid_cursor", "Cannot move cursor backwards")


def test_peek_does_not_move_the_cursor():
    s = _filled(5)
    assert s.peek(2) == s.peek(2)
    assert [e.sequence_number for e in s.peek(2)] == [0, 1]
    assert s.cursor == 0


def test_take_returns_disjoint_batches():
    s = _filled(5)
    first, s = s.take(2)
    second, s = s.take(2)
    assert [e.sequence_number for e in first] == [0, 1]
    assert [e.sequence_number for e in second] == [2, 3]
    assert not {e.id for e in first} & {e.id for e in second}
    assert s.cursor == 4 and s.remaining() == 1 and s.count() == 5
    rest, s = s.take(10)
    assert len(rest) == 1 and s.cursor == 5
    none, same = s.take(3)
    assert none == [] and same.cursor == 5


def test_close_moves_cursor_past_the_highest_sequence():
    s = _filled(10).close()
    assert s.cursor == 10 and s.remaining() == 0 and list(s) == []
    # an empty buffer closes at 0, even when the cursor had advanced
    assert EventStream.new("s", "r").advance_cursor(7).close().cursor == 0


def test_iteration_reads_from_the_cursor():
    s = _filled(4).advance_cursor(1)
    assert [e.sequence_number for e in s] == [1, 2, 3]
    assert s.remaining() == 3
