"""Ids, UTC time and ``to_jsonable`` (docs/event-model.md, conventions)."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import datetime, timedelta, timezone
from enum import Enum

import pytest

from asm_nb.core.events import EventType
from asm_nb.core.serialization import (
    ensure_aware, first_set, format_datetime, new_id, parse_datetime, to_jsonable, utc_now,
)


@pytest.mark.parametrize("prefix", ["ses_", "run_", "evt_", "nevt_"])
def test_new_id_is_prefix_plus_32_lowercase_hex(prefix):
    ids = {new_id(prefix) for _ in range(50)}
    assert len(ids) == 50
    for i in ids:
        assert re.fullmatch(re.escape(prefix) + "[0-9a-f]{32}", i)


def test_utc_now_is_aware_utc():
    now = utc_now()
    assert now.utcoffset() == timedelta(0)


def test_format_datetime_writes_z_with_microseconds():
    dt = datetime(2025, 1, 27, 12, 0, 0, 123456, tzinfo=timezone.utc)
    assert format_datetime(dt) == "2025-01-27T12:00:00.123456Z"
    assert format_datetime(datetime(2025, 1, 27, 12)) == "2025-01-27T12:00:00.000000Z"  # naive = UTC
    plus2 = datetime(2025, 1, 27, 14, tzinfo=timezone(timedelta(hours=2)))
    assert format_datetime(plus2) == "2025-01-27T12:00:00.000000Z"
    assert format_datetime(datetime(5, 1, 1, tzinfo=timezone.utc)) == "0005-01-01T00:00:00.000000Z"
    assert format_datetime(None) is None


@pytest.mark.parametrize("text,expected", [
    ("2025-01-27T12:00:00.123456Z", datetime(2025, 1, 27, 12, 0, 0, 123456, tzinfo=timezone.utc)),
    ("2025-01-27T12:00:00Z", datetime(2025, 1, 27, 12, tzinfo=timezone.utc)),
    ("2025-01-27T14:00:00+02:00", datetime(2025, 1, 27, 12, tzinfo=timezone.utc)),
    ("2025-01-27T07:00:00-05:00", datetime(2025, 1, 27, 12, tzinfo=timezone.utc)),
    ("2025-01-27T12:00:00.123Z", datetime(2025, 1, 27, 12, 0, 0, 123000, tzinfo=timezone.utc)),
])
def test_parse_datetime_reads_z_and_offsets(text, expected):
    got = parse_datetime(text)
    assert got == expected
    assert got.utcoffset() == timedelta(0)


@pytest.mark.parametrize("bad", ["2025-01-27T12:00:00", "2025-01-27", "yesterday", "", 12, None])
def test_parse_datetime_rejects_strings_without_offset_and_garbage(bad):
    with pytest.raises(ValueError):
        parse_datetime(bad)


def test_format_parse_round_trip():
    dt = utc_now()
    assert parse_datetime(format_datetime(dt)) == dt


def test_ensure_aware():
    assert ensure_aware(datetime(2025, 1, 1)).tzinfo is timezone.utc
    assert ensure_aware(datetime(2025, 1, 1, 2, tzinfo=timezone(timedelta(hours=2)))) == \
        datetime(2025, 1, 1, tzinfo=timezone.utc)


class Color(Enum):
    RED = "red"


class Num(int, Enum):
    ONE = 1


@dataclasses.dataclass
class Point:
    x: int
    when: datetime


class HasToDict:
    def to_dict(self):
        return {"k": EventType.RUN_STARTED}


def test_to_jsonable_converts_every_kind():
    when = datetime(2025, 1, 27, 12, tzinfo=timezone.utc)
    value = {
        "none": None, "bool": True, "int": 3, "float": 1.5, "str": "s",
        "enum": Color.RED, "str_enum": EventType.RUN_STARTED, "int_enum": Num.ONE,
        "list": [1, (2, 3)], "tuple": (when,), "set": {3, 1, 2}, "mixed_set": {1, "a"},
        "bytes": b"\x00\x01", "dc": Point(1, when), "obj": HasToDict(), "other": object,
        Color.RED: 1, EventType.RUN_FAILED: 2, 7: "seven",
    }
    out = to_jsonable(value)
    assert out["none"] is None and out["bool"] is True and out["int"] == 3 and out["float"] == 1.5
    assert out["enum"] == "red"
    assert type(out["str_enum"]) is str and out["str_enum"] == "run_started"
    assert type(out["int_enum"]) is int and out["int_enum"] == 1
    assert out["list"] == [1, [2, 3]]
    assert out["tuple"] == ["2025-01-27T12:00:00.000000Z"]
    assert out["set"] == [1, 2, 3]
    assert sorted(map(str, out["mixed_set"])) == ["1", "a"]
    assert out["bytes"] == "AAE="
    assert out["dc"] == {"x": 1, "when": "2025-01-27T12:00:00.000000Z"}
    assert out["obj"] == {"k": "run_started"}
    assert out["other"] == repr(object)
    assert out["red"] == 1 and out["run_failed"] == 2 and out["7"] == "seven"
    assert all(type(k) is str for k in out)
    json.dumps(out)  # plain JSON all the way down


def test_first_set_skips_none_and_false_only():
    assert first_set(None, False, 0) == 0
    assert first_set(None, "", "x") == ""
    assert first_set(None, False) is None
    assert first_set() is None
