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


def test_lines_of_a_run_of_events_equal_each_event_line():
    """Shared objects (one timestamp, run id, provider for several events) and changes between
    them, incl. events the fast path leaves to the general one in the middle of the row."""
    ts = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    whole = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    rows = [{}, {}, {"timestamp": whole}, {"timestamp": whole, "run_id": None}, {"data": {"n": 2 ** 70}},
            {"run_id": "run_2"}, {"run_id": "run_2", "provider": None}, *[dict(c) for c in CASES],
            {"schema_version": True}, {"schema_version": 1}, {"session_id": "ses_2"}, {}]
    events = [_event(**({"timestamp": ts} | r)) for r in rows]
    lines, size = _codec.event_lines(events, 41)
    assert lines == [_codec.event_line(e, 42 + i) for i, e in enumerate(events)]
    assert size == sum(map(len, lines))


@settings(max_examples=150, deadline=None)
@given(picks=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 2), st.integers(0, len(CASES) - 1)),
                      min_size=1, max_size=12), first=st.integers(0, 10 ** 6))
def test_lines_of_generated_rows_equal_each_event_line(picks, first):
    stamps = [datetime(2026, 1, 2, tzinfo=UTC), datetime(2026, 1, 2, 0, 0, 0, 5, tzinfo=UTC),
              datetime(2026, 1, 2, tzinfo=UTC)]  # the first and last equal but not the same object
    runs, provs = ["run_a", None, "run_b"], ["p", None, "q"]
    events = []
    for t, r, p, c in picks:
        changes = dict(CASES[c])
        changes.setdefault("timestamp", stamps[t])
        changes.setdefault("run_id", runs[r])
        changes.setdefault("provider", provs[p])
        events.append(_event(**changes))
    try:
        expected = [_codec.event_line(e, first + 1 + i) for i, e in enumerate(events)]
    except (TypeError, ValueError):
        with pytest.raises((TypeError, ValueError)):
            _codec.event_lines(events, first)
        return
    assert _codec.event_lines(events, first)[0] == expected


def test_lines_reuse_the_parts_shared_with_the_line_before(monkeypatch):
    """The work the row saves: one session/run part and one tail part per change, not per event."""
    calls = {"session": 0, "tail": 0}
    real_s, real_t = _codec._session_part, _codec._tail_part

    def s_part(*a):
        calls["session"] += 1
        return real_s(*a)

    def t_part(*a):
        calls["tail"] += 1
        return real_t(*a)

    monkeypatch.setattr(_codec, "_session_part", s_part)
    monkeypatch.setattr(_codec, "_tail_part", t_part)
    ts = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    events = [_event(timestamp=ts, run_id=r) for r in ["run_1"] * 5 + ["run_2"] * 5]
    _codec.event_lines(events, 0)
    assert calls == {"session": 2, "tail": 1}
