"""``codex._json`` (tool call arguments and tool outputs, JSON inside a JSON string) gives what
``json.loads`` gives, value for value, or fails as it fails: orjson parses only where it agrees."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from asm_nb.history import codex


def _same(text: str) -> None:
    try:
        want = ("ok", repr(json.loads(text)))
    except ValueError:
        want = ("ValueError", None)
    try:
        got = ("ok", repr(codex._json(text)))
    except ValueError:
        got = ("ValueError", None)
    assert got == want, text  # repr: 1 vs 1.0, -0.0, nan, key order, big ints all count


EDGES = [
    '{"a":1,"b":2,"a":3}', '{"x":1e400}', '{"x":-1e400}', '{"x":1.7976931348623157e309}',
    '{"x":123456789012345678901234567890}', '{"x":18446744073709551615}', '{"x":18446744073709551616}',
    '{"x":-9223372036854775808}', '{"x":-9223372036854775809}', '{"x":9999999999999999999}', '{"x":0.1e-400}',
    '{"x":"\\ud800"}', '{"x":"\\udc00\\ud800"}', '{"x":NaN}', '{"x":Infinity}', '{"x":-Infinity}', ' {"a":[1,2]} \n',
    '{"x":2.2250738585072011e-308}', '{"x":1E5}', '{"x":-0.0}', '{"x":-0}', '{"x":1.0}', '{"x":0.30000000000000004}',
    '{"x":123456789012345678}', '{"x":1234567890123456789}', '{"x":"1234567890123456789012"}',
    '\ufeff{"a":1}', '{"a":1} x', '{"a":', '{"a":1,}', '{"a":"\x01"}', '{"a":"\t"}', '{}', '{"a":{"b":[[[]]]}}',
    '{"a":"é ☃ 𝄞 \\u00e9 \\ud834\\udd1e"}', '{"metadata":{"exit_code":1},"output":"x"}', '"str"', '[1]', 'true',
    'null', '01', '{"a":01}', '{"a":.5}', '{"a":5.}', '{"a":1e}', '{"a":+1}', '{"a":"\\x41"}', "{'a':1}",
    '{"a":1}\x00', '{"a"  :  1 ,  "b" : [ 1 , 2 ] }', '{"a":1}\r\n\t ',
]


@pytest.mark.parametrize("text", EDGES)
def test_edge_cases_match_json_loads(text):
    _same(text)


_scalars = (hs.none() | hs.booleans() | hs.integers(min_value=-(10 ** 30), max_value=10 ** 30)
            | hs.floats(allow_nan=True, allow_infinity=True) | hs.text(max_size=20))
_values = hs.recursive(_scalars, lambda kids: hs.lists(kids, max_size=4)
                       | hs.dictionaries(hs.text(max_size=8), kids, max_size=4), max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(_values, hs.booleans())
def test_any_dumped_value_matches_json_loads(value, ascii_only):
    _same(json.dumps({"v": value}, ensure_ascii=ascii_only))


@settings(max_examples=400, deadline=None)
@given(_values, hs.integers(min_value=0, max_value=200), hs.text(max_size=3))
def test_broken_texts_fail_or_parse_as_json_loads_does(value, cut, glue):
    text = json.dumps({"v": value})
    cut = min(cut, len(text))
    _same(text[:cut] + glue + text[cut:])


def test_tool_outputs_and_arguments_go_through_it(monkeypatch):
    calls = []
    real = codex._json
    monkeypatch.setattr(codex, "_json", lambda t: calls.append(t) or real(t))
    out, failed = codex._tool_output('{"output":"hi","metadata":{"exit_code":2}}')
    assert (out, failed) == ("hi", True) and len(calls) == 1


@settings(max_examples=300, deadline=None)
@given(hs.lists(hs.one_of(hs.text(alphabet="0123456789", min_size=0, max_size=25),
                          hs.text(min_size=0, max_size=4),
                          hs.sampled_from(["٠١٢٣٤٥٦٧٨٩", "０１２", "\ud800", "\udfff", "é", "𝄞", "-", "."])),
                max_size=8))
def test_the_digit_run_check_is_the_regex(parts):
    """``_long_digits`` (bytes translate) answers as ``[0-9]{19}`` does, also around non-ASCII
    digits, other scripts and lone surrogates."""
    text = "".join(parts)
    assert codex._long_digits(text) == (codex._LONG_DIGITS.search(text) is not None)


def test_the_digit_run_check_at_the_edges():
    for text in ("1" * 18, "1" * 19, "a" + "1" * 19 + "b", "1" * 18 + "é" + "1", "1" * 9 + "\ud800" + "1" * 10,
                 "٠" * 30, "x" * 1000 + "9" * 19):
        assert codex._long_digits(text) == (codex._LONG_DIGITS.search(text) is not None), text


def test_json_checks_digit_runs_without_the_regex(monkeypatch):
    class NoRegex:
        def search(self, text):
            raise AssertionError("the regex search is the slow path this check replaces")

    monkeypatch.setattr(codex, "_LONG_DIGITS", NoRegex())
    assert codex._json('{"a": 1, "b": "x"}') == {"a": 1, "b": "x"}
    assert codex._json('{"x":123456789012345678901234567890}') == {"x": 123456789012345678901234567890}
