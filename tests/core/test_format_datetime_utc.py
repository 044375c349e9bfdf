"""``format_datetime``'s UTC fast path (run and session documents format two datetimes each) writes
the text the general path writes: ISO-8601, microseconds, ``Z``."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from asm_nb.core import serialization
from asm_nb.core.serialization import format_datetime

UTC = timezone.utc


def _reference(dt: datetime) -> str:
    return serialization.ensure_aware(dt).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


class Sub(datetime):
    pass


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)), st.sampled_from([0, 1]))
def test_utc_fast_path_equals_the_general_text(dt, fold):
    aware = dt.replace(tzinfo=UTC, fold=fold)
    assert format_datetime(aware) == _reference(aware)


def test_other_zones_naive_and_subclasses_take_the_general_path(monkeypatch):
    calls = []
    real = serialization.ensure_aware
    monkeypatch.setattr(serialization, "ensure_aware", lambda dt: calls.append(dt) or real(dt))
    plus2 = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=2)))
    assert format_datetime(plus2) == "2026-01-02T01:04:05.000006Z"
    assert format_datetime(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05.000000Z"
    assert format_datetime(Sub(2026, 1, 2, tzinfo=UTC)) == "2026-01-02T00:00:00.000000Z"
    assert len(calls) == 3
    assert format_datetime(datetime(999, 1, 2, tzinfo=UTC)) == "0999-01-02T00:00:00.000000Z"
    assert len(calls) == 3  # the UTC one did not convert
