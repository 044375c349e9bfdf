"""The plain-type fast paths of ``to_jsonable``, ``token_count`` and ``TokenUsage.__bool__`` (the
history import calls them per record) give exactly what the general code gives."""

from __future__ import annotations

import dataclasses
import enum
import itertools
from collections import OrderedDict
from datetime import datetime, timezone

from asm_nb.core.serialization import to_jsonable
from asm_nb.core.usage import TokenUsage, token_count


class S(str, enum.Enum):
    A = "a"


class Num(enum.IntEnum):
    ONE = 1


def test_token_usage_truth_is_any_field():
    for values in itertools.product((0, 3), (0, 1), (0, 2), (0, 5), (None, 0, 7)):
        u = TokenUsage(*values)
        assert bool(u) == any(getattr(u, f.name) for f in dataclasses.fields(u))


def test_token_count_plain_ints_and_the_rest():
    assert [token_count(v) for v in (5, 0, -3, True, False, 2.9, -1.0, float("nan"), "7", None)] == \
        [5, 0, 0, 0, 0, 2, 0, 0, 0, 0]
    assert token_count(Num.ONE) == 1  # an int subclass takes the general path, same answer


def test_to_jsonable_plain_trees_and_enum_members():
    ts = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    value = {"s": S.A, S.A: [Num.ONE, True, 1.5, None, ("t", S.A)], 3: {"d": ts},
             "o": OrderedDict(x=S.A), "n": [[{"k": "v"}]]}
    out = to_jsonable(value)
    assert out == {"s": "a", "a": [1, True, 1.5, None, ["t", "a"]], "3": {"d": "2025-01-02T03:04:05.000000Z"},
                   "o": {"x": "a"}, "n": [[{"k": "v"}]]}
    assert type(out["s"]) is str and type(out["a"][0]) is int
    assert to_jsonable(S.A) == "a" and type(to_jsonable(S.A)) is str
    plain = {"a": [1, "b", {"c": None}]}
    assert to_jsonable(plain) == plain and to_jsonable(plain) is not plain  # still a copy
