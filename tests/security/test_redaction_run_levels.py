"""The redactor's token-run levels (speed: ``asm import`` redacts every stored text) must never
leave out a rule that could match: every match of a rule holds a run of at least ``runs[i]``
characters of ``_RUN_CHARS`` (``_min_run``, derived from the compiled pattern), and a text is
only checked against the rules its longest such run allows. Checked on every secret format, on
generated matches of every default pattern, and against the plain definition (every pattern in
order) on generated text around the level thresholds."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asm_nb.persistence import redaction, redaction_scan
from asm_nb.persistence.redaction import RedactionConfig, default_patterns

from .secret_formats import BENIGN, FORMATS
from .test_redaction_prechecks import _CORES, naive_scan

_RUN = re.compile("[" + re.escape("".join(sorted(redaction_scan._RUN_CHARS))) + "]+")
_ODD = ["\u212a", "\u0130", "\u017f", "\u0131", "\ud800", "é", "→", "🙂", "数据"]


def longest_run(text: str) -> int:
    """The reference: the longest run of ``_RUN_CHARS`` (plain regex, no byte table)."""
    return max((len(m) for m in _RUN.findall(text)), default=0)


def _compiled(replacement="[REDACTED]", patterns="default"):
    return redaction._compiled(RedactionConfig(True, patterns, replacement))


def _categorized(text):
    return naive_scan(text, default_patterns(), lambda c: f"[REDACTED:{c}]")


def test_run_table_is_the_run_characters_and_ascii_only():
    table = redaction_scan._RUN_TABLE
    assert {chr(i) for i in range(256) if table[i] == 0x61} == redaction_scan._RUN_CHARS
    assert all(c.isascii() for c in redaction_scan._RUN_CHARS)
    assert set(table) == {0x61, 0x20}


def test_min_run_of_small_patterns():
    m = redaction_scan._min_run
    A = re.ASCII
    assert m(re.compile(r"ab:cdef", A)) == 4
    assert m(re.compile(r"(?:xy|abc)[0-9]{5}", A)) == 7
    assert m(re.compile(r"\bkey-[a-f0-9]{32}\b", A)) == 36  # \b is zero-width: the run goes on
    assert m(re.compile(r"a[^b]{9}c", A)) == 1
    assert m(re.compile(r"(?:ab){0,3}x", A)) == 1  # an optional part guarantees nothing
    assert m(re.compile(r"(?:a:){3}", A)) == 1
    assert m(re.compile(r"x\sy\S+", A)) == 1
    assert m(re.compile(r"\w{10}", A)) == 10
    assert m(re.compile(r"\w{10}")) == 0  # not re.ASCII: \w holds non-ASCII letters
    assert m(re.compile(r"(?i)[a-z]{10}")) == 0  # not re.ASCII: [a-z] folds the Kelvin sign
    assert m(re.compile(r"(?u:[a-z]{10})", A)) == 0  # a local flag is not analysed


def test_long_token_rules_need_runs_and_labelled_rules_do_not():
    c = _compiled()
    runs = dict(zip((cat for cat, _ in default_patterns()), c.runs))
    assert runs["aws_secret_key_bare"] == 40 and runs["github_pat"] == 40 and runs["slack_app_token"] == 12
    assert runs["password"] < 12 and runs["url_credentials"] < 12 and runs["private_key"] < 12
    assert min(runs.values()) > 0


@pytest.mark.parametrize("category, pattern", default_patterns(), ids=[c for c, _ in default_patterns()])
def test_every_secret_format_match_holds_the_run_of_its_rule(category, pattern):
    need = _compiled().runs[[c for c, _ in default_patterns()].index(category)]
    for _, text, _ in FORMATS:
        for variant in (text, "für → " + text + " ✓", text.upper(), text.lower()):
            for m in pattern.finditer(variant):
                assert longest_run(m.group()) >= need, (category, m.group())


@pytest.mark.parametrize("category, pattern", default_patterns(), ids=[c for c, _ in default_patterns()])
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_every_generated_match_holds_the_run_of_its_rule(category, pattern, data):
    need = _compiled().runs[[c for c, _ in default_patterns()].index(category)]
    # (the bare AWS key's lookarounds: its core without them, which from_regex can satisfy)
    text = data.draw(st.from_regex(_CORES.get(category, pattern)))
    m = pattern.search(text)
    if m is not None:
        assert longest_run(m.group()) >= need, (category, m.group())


def test_the_level_check_finds_the_longest_run():
    c = _compiled()
    for text in ["plain words only", "x" * 11, "x" * 12, "a" * 19 + "é" + "b" * 19, "/home/dev/project-2/src",
                 "数据" * 30, "ab\ud800" * 10 + "c" * 40]:
        raw = text.encode("utf-8", "surrogatepass")
        low = redaction._ascii_lower(text)
        run = longest_run(text)
        expected = c._candidates
        for level in c._levels:
            if run < len(level[0]):
                expected = c._level_check(level)
                break
        assert c._gate(low, raw) == expected(low), text


def test_levels_leave_out_exactly_the_rules_that_need_a_longer_run():
    c = _compiled()
    assert c._levels  # the default rules give levels
    full = "password= api_key: sk- ghp_ token secret ://x@ -----begin private key " + "akia sk_ xox eyj."
    low = full.lower()
    for level in c._levels:
        needle = level[0]
        bits = c._level_check(level)(low)
        left_out = [i for i, m in enumerate(c.runs) if m >= len(needle)]
        assert left_out and all(not bits >> i & 1 for i in left_out)
        # what it keeps is the full check's answer for those rules
        keep = sum(1 << i for i, m in enumerate(c.runs) if m < len(needle))
        assert bits == c._candidates(low) & keep


def test_prose_without_a_token_run_checks_only_labelled_rules():
    c = _compiled()
    text = "Please refactor the parser and run tests für README.md; the task takes secrets from the vault"
    assert longest_run(text) < 12
    bits = c._gate(redaction._ascii_lower(text), text.encode())
    assert all(c.runs[i] < 12 for i in range(len(c.rules)) if bits >> i & 1)


def test_custom_patterns_are_never_left_out():
    # custom patterns (never gated by literals) get their run from the same analysis
    c = _compiled(patterns=[r"zz\d", r"mytok_[a-z]{20}"])
    assert c.runs[-2:] == (3, 26)
    assert c.scan("short zz1 text") == ("short [REDACTED] text", 1)
    assert c.scan("see mytok_" + "q" * 20 + " ok") == ("see [REDACTED] ok", 1)
    assert c.scan("see mytok_" + "q" * 19 + "é ok") == ("see mytok_" + "q" * 19 + "é ok", 0)
    c2 = redaction._compiled(RedactionConfig(True, {"replace": [("mine", re.compile(r"é+"))]}))
    assert c2.scan("ab éé") == ("ab [REDACTED]", 1)


def _near_threshold():
    # token-ish pieces whose joins land near every level length, broken by non-run characters
    piece = st.sampled_from(["a" * 11, "A1" * 6, "x" * 15, "ab_-+/.~=%&?" * 2, "sk-ant-api03-", "ghp_", "eyJ",
                             "AKIA", "xapp-1-", "Bearer ", "password=", "-----BEGIN PRIVATE KEY-----"])
    glue = st.sampled_from([" ", "\n", ":", "é", "\ud800", "数", "", "", ""] + _ODD)
    return st.lists(st.tuples(piece, glue), max_size=8).map(lambda xs: "".join(p + g for p, g in xs))


_generated = st.lists(st.one_of(_near_threshold(),
                                st.sampled_from([p for _, p in default_patterns()]).flatmap(st.from_regex),
                                st.sampled_from([t for _, t, _ in FORMATS] + list(BENIGN))),
                      min_size=1, max_size=4).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_generated)
def test_scan_with_levels_equals_every_pattern_in_order(text):
    assert _compiled("categorized").scan(text) == _categorized(text)


@pytest.mark.parametrize("text", [t for _, t, _ in FORMATS] + list(BENIGN))
def test_every_format_and_benign_text_scans_as_the_definition(text):
    for variant in (text, "für " + text, text.replace("-", "é", 1), text[: len(text) // 2]):
        assert _compiled("categorized").scan(variant) == _categorized(variant)


# -- the memo of short strings' results -------------------------------------------------------------


def test_short_strings_results_are_remembered_and_equal_the_scan():
    c = redaction._compiled(RedactionConfig(True, [r"memo_probe_[0-9]"], "categorized"))
    c._memo.clear()
    texts = ["assistant", "shell", "memo_probe_7", "ghp_" + "a1B2" * 9, "x" * redaction_scan._MEMO_LEN]
    firsts = [c.scan(t) for t in texts]
    assert firsts == [_compiled_result(c, t) for t in texts]
    assert set(c._memo) == set(texts)
    again = "".join(["assis", "tant"])  # equal, another object
    new, n = c.scan(again)
    assert n == 0 and new is again  # an unchanged text comes back as the caller's object
    assert c.scan("memo_probe_7") == ("[REDACTED:custom]", 1)
    long_text = "y" * (redaction_scan._MEMO_LEN + 1)
    c.scan(long_text)
    assert long_text not in c._memo


def _compiled_result(c, text):
    return c._scan(text)


def test_memo_is_bounded():
    c = redaction._compiled(RedactionConfig(True, [r"memo_bound_[0-9]"]))
    c._memo.clear()
    for i in range(redaction_scan._MEMO_MAX + 10):
        c.scan(f"word {i:06d}")
    assert len(c._memo) <= redaction_scan._MEMO_MAX


@settings(max_examples=200, deadline=None)
@given(text=st.lists(st.sampled_from(["ab", "sk-", "ghp_", "a1B2" * 5, "=", ":", " ", "é", "api_key=", "x"]),
                     max_size=10).map("".join))
def test_scanning_twice_gives_the_first_answer(text):
    c = _compiled("categorized")
    assert c.scan(text) == c.scan(text) == _categorized(text)
