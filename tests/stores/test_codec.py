"""The event line codec: the orjson fast path writes byte for byte the line of the general path,
which is ``Event.to_dict()`` as compact JSON (docs/store-format.md)."""

from __future__ import annotations

import dataclasses
import enum
import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asm_nb.core.events import Event, EventType
from asm_nb.stores import _codec

pytestmark = pytest.mark.skipif(not _codec.HAVE_ORJSON, reason="the fast path needs orjson")

UTC = timezone.utc
TS = datetime(2026, 1, 2, 3, 4, 5, 123, tzinfo=UTC)


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int = 1


def _event(**kw) -> Event:
    base = dict(id="evt_1", type=EventType.MESSAGE_STREAMED, timestamp=TS, session_id="ses_1", run_id="run_1",
                provider="claude")
    base.update(kw)
    return Event(**base)


def _line(e: Event, seq: int, parts) -> bytes:
    before, after = parts(e)
    return before + str(seq).encode() + after


def _both(e: Event, seq: int = 7) -> tuple[bytes, bytes]:
    return _line(e, seq, _codec.event_line_parts), _line(e, seq, _codec._line_parts)


def _as_to_dict(line: bytes, e: Event, seq: int) -> None:
    """The line parses to ``to_dict()`` of the event with ``seq``, keys in that order."""
    expected = dataclasses.replace(e, sequence_number=seq).to_dict()
    parsed = json.loads(line)
    assert list(parsed) == list(expected)
    assert parsed == json.loads(json.dumps(expected))


CASES = [
    {},
    {"data": {"delta": "für 数据 — \"q\" \\ \n", "content": "x"}},
    {"data": {"tool_input": {"command": "ls", "timeout": 60, "args": [1, 2.5, None, True]}}},
    {"metadata": {"_validation_warnings": ["w"]}},
    {"run_id": None, "provider": None, "correlation_id": 'c"q'},
    {"run_id": "r\u2028\\", "provider": "p\x00", "schema_version": 3},
    {"id": 'evt_"odd\\\n'},
    {"type": EventType.TOOL_CALL_COMPLETED},
    # values that need to_jsonable: the general path decides
    {"data": {"n": 2 ** 70}},
    {"data": {1: "int key"}},
    {"data": {"at": TS, "naive": datetime(2020, 1, 1)}},
    {"data": {"e": Color.RED, "dc": Point(), "s": {2, 1}, "b": b"xx", "f": 1e16}},
    {"metadata": {"at": TS}},
    # timestamps the fast path leaves alone
    {"timestamp": datetime(2026, 1, 2, 3, 4, 5, 0, tzinfo=UTC)},
    {"timestamp": datetime(2026, 1, 2, 3, 4, 5, 7, tzinfo=timezone(timedelta(hours=2)))},
    {"timestamp": datetime(5, 1, 2, 3, 4, 5, 6, tzinfo=UTC)},
]


@pytest.mark.parametrize("changes", CASES, ids=range(len(CASES)))
def test_fast_line_equals_general_line(changes):
    e = _event(**changes)
    fast, general = _both(e)
    assert fast == general
    assert fast.endswith(b"}\n") and fast.count(b"\n") == 1
    _as_to_dict(fast, e, 7)


def test_uuid_payload_same_line_on_both_paths():
    # orjson writes a UUID as its string on both paths (to_dict() would give its repr)
    fast, general = _both(_event(data={"u": uuid.UUID(int=5)}))
    assert fast == general


def test_timestamp_text_has_microseconds_and_z():
    for ts in (TS, datetime(2026, 1, 2, 3, 4, 5, 0, tzinfo=UTC), datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)):
        line, _ = _both(_event(timestamp=ts))
        text = json.loads(line)["timestamp"]
        assert text == ts.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def test_unserializable_payload_still_raises():
    with pytest.raises((TypeError, ValueError)):
        _codec.event_line_parts(_event(data={"s": "\ud800"}))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2 ** 63), 2 ** 63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
opt_text = st.none() | st.text(max_size=12)


@settings(max_examples=200, deadline=None)
@given(data=st.dictionaries(st.text(max_size=8), json_values, max_size=5),
       metadata=st.dictionaries(st.text(max_size=8), json_values, max_size=3),
       ts=st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
       run_id=opt_text, provider=opt_text, correlation_id=opt_text,
       session_id=st.text(min_size=1, max_size=12), ev_id=st.text(min_size=1, max_size=40),
       etype=st.sampled_from(list(EventType)), seq=st.integers(1, 10 ** 9))
def test_fast_line_equals_general_line_generated(data, metadata, ts, run_id, provider, correlation_id, session_id,
                                                 ev_id, etype, seq):
    e = Event(id=ev_id, type=etype, timestamp=ts.replace(tzinfo=UTC), session_id=session_id, run_id=run_id,
              data=data, metadata=metadata, provider=provider, correlation_id=correlation_id)
    try:
        general = _line(e, seq, _codec._line_parts)
    except (TypeError, ValueError):  # e.g. lone surrogates: both paths refuse
        with pytest.raises((TypeError, ValueError)):
            _codec.event_line_parts(e)
        return
    assert _line(e, seq, _codec.event_line_parts) == general


def test_equal_but_differently_encoded_values_do_not_share_a_cached_part():
    for version in (1, True, 1.0, 1):
        fast, general = _both(_event(schema_version=version))
        assert fast == general


def test_part_caches_stay_bounded():
    for i in range(_codec._CACHE_MAX + 10):
        _codec.event_line_parts(_event(session_id=f"ses_{i}", provider=f"p{i}"))
    assert len(_codec._session_parts) <= _codec._CACHE_MAX
    assert len(_codec._tail_parts) <= _codec._CACHE_MAX


def test_whole_second_timestamps_take_the_fast_path(monkeypatch):
    # log imports carry whole-second times ("...T07:46:07.000Z"): orjson drops the zero fraction,
    # the fast path puts ".000000" back instead of falling to the general path
    whole = [TS.replace(microsecond=0), datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC),
             datetime(2, 1, 1, tzinfo=UTC)]
    expected = [_codec._line_parts(_event(timestamp=ts)) for ts in whole]

    def general(e):
        raise AssertionError("general path taken")

    monkeypatch.setattr(_codec, "_line_parts", general)
    for ts, want in zip(whole, expected):
        got = _codec.event_line_parts(_event(timestamp=ts))
        assert got == want
        assert b'"timestamp":"' + ts.replace(tzinfo=None).isoformat(timespec="microseconds").encode() + b'Z"' in got[0]
