"""``_codec.event_line`` (the bulk path's whole line, number included) is byte for byte the line
``event_line_parts`` splices the number into, on every case the parts are tested on."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asm_nb.core.events import Event, EventType
from asm_nb.stores import _codec

from .test_codec import CASES, _event, json_values, opt_text

UTC = timezone.utc


def _spliced(e: Event, seq: int) -> bytes:
    before, after = _codec.event_line_parts(e)
    return before + str(seq).encode() + after


@pytest.mark.parametrize("changes", CASES, ids=range(len(CASES)))
@pytest.mark.parametrize("seq", [1, 7, 10 ** 12])
def test_whole_line_equals_the_spliced_line(changes, seq):
    e = _event(**changes)
    assert _codec.event_line(e, seq) == _spliced(e, seq)
    assert _codec.event_line(e, seq) == _spliced(e, seq)  # again: from the timestamp memo


def test_a_remembered_timestamp_is_only_reused_for_the_same_instant():
    a = datetime(2026, 1, 2, 3, 4, 5, 0, tzinfo=UTC)
    b = datetime(2026, 1, 2, 3, 4, 5, 1, tzinfo=UTC)
    for ts in (a, b, a, b):
        e = _event(timestamp=ts)
        assert _codec.event_line(e, 3) == _spliced(e, 3)


def test_timestamp_memo_stays_bounded():
    for i in range(5000):
        _codec.event_line(_event(timestamp=datetime(2026, 1, 1, tzinfo=UTC).replace(microsecond=i)), 1)
    assert len(_codec._ts_parts) <= 4096


def test_unserializable_payload_raises_as_the_parts_do():
    with pytest.raises((TypeError, ValueError)):
        _codec.event_line(_event(data={"s": "\ud800"}), 1)


@settings(max_examples=200, deadline=None)
@given(data=st.dictionaries(st.text(max_size=8), json_values, max_size=5),
       metadata=st.dictionaries(st.text(max_size=8), json_values, max_size=3),
       ts=st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
       run_id=opt_text, provider=opt_text, correlation_id=opt_text,
       session_id=st.text(min_size=1, max_size=12), ev_id=st.text(min_size=1, max_size=40),
       etype=st.sampled_from(list(EventType)), seq=st.integers(1, 10 ** 9))
def test_whole_line_equals_the_spliced_line_generated(data, metadata, ts, run_id, provider, correlation_id,
                                                      session_id, ev_id, etype, seq):
    e = Event(id=ev_id, type=etype, timestamp=ts.replace(tzinfo=UTC), session_id=session_id, run_id=run_id,
              data=data, metadata=metadata, provider=provider, correlation_id=correlation_id)
    try:
        spliced = _spliced(e, seq)
    except (TypeError, ValueError):
        with pytest.raises((TypeError, ValueError)):
            _codec.event_line(e, seq)
        return
    assert _codec.event_line(e, seq) == spliced
