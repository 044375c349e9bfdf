"""The redactor's fast prechecks must never skip a text a pattern matches: the character-run
prechecks of ``aws_secret_key_bare`` and ``discord_bot_token`` and the ASCII-only lower-casing
used for the literal gates (both exist for speed: asm import redacts every stored text)."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asm_nb.persistence import redaction
from asm_nb.persistence.redaction import RedactionConfig, default_patterns

from .secret_formats import BENIGN, FORMATS


def naive_scan(text, patterns, repl_for):
    """The definition: every pattern in order on the current string, counting matches."""
    count = 0
    for category, pat in patterns:
        text, n = pat.subn(lambda m, c=category: repl_for(c), text)
        count += n
    return text, count

_PATS = dict(default_patterns())
_PRE = {c: redaction._PRECHECKS[c] for c in ("aws_secret_key_bare", "discord_bot_token")}
# non-ASCII letters that str.lower() folds to ASCII (Kelvin sign -> k, dotted I -> i + mark) or
# that Unicode case folding ties to ASCII (long s), a lone surrogate (json.loads lets it through)
_ODD = ["\u212a", "\u0130", "\u017f", "\u0131", "\ud800", "é", "→", "🙂"]


def _passes(category: str, text: str) -> bool:
    table, needle = _PRE[category]
    return needle in text.encode("utf-8", "surrogatepass").translate(table)


def _all_texts() -> list[str]:
    return [t for _, t, _ in FORMATS] + list(BENIGN)


def test_prechecks_are_attached_to_their_default_rules():
    rules = redaction._compiled(RedactionConfig(True)).rules
    cats = [c for c, _ in default_patterns()]
    with_pre = {cats[i] for i, r in enumerate(rules) if r[5] is not None}
    assert with_pre == set(_PRE)


def test_every_default_pattern_is_ascii_and_every_gate_literal_ascii():
    # the ASCII-only lower-casing of the gates is sound only under these two conditions
    for _, pat in default_patterns():
        assert pat.flags & re.ASCII
    for (triggers, all_of, any_of) in redaction._GATES.values():
        assert all(k.isascii() and k == k.lower() for k in (*triggers, *all_of, *any_of))


@pytest.mark.parametrize("category", sorted(_PRE))
def test_precheck_passes_every_secret_format_its_pattern_matches(category):
    hits = 0
    for text in _all_texts():
        for variant in (text, f'{{"content": "{text}"}}', "für → " + text + " ✓"):
            if _PATS[category].search(variant):
                hits += 1
                assert _passes(category, variant), (category, variant)
    assert hits  # the formats include real matches of both rules


# the patterns without their lookarounds (from_regex cannot satisfy those without filtering)
_CORES = {"aws_secret_key_bare": r"[A-Za-z0-9/+]{0,37}A[A-Za-z0-9/+]{0,37}a[A-Za-z0-9/+]{0,37}1[A-Za-z0-9/+]{0,37}",
          "discord_bot_token": r"[MNO][A-Za-z0-9_-]{23,25}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,38}"}
_noise = st.text(alphabet=st.sampled_from(list("ab Z9/+_-.=:\n\"") + _ODD), max_size=6)


@pytest.mark.parametrize("category", sorted(_PRE))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_precheck_never_rejects_a_generated_match(category, data):
    core = data.draw(st.from_regex(_CORES[category], fullmatch=True))
    text = data.draw(_noise) + core + data.draw(_noise)
    if _PATS[category].search(text):
        assert _passes(category, text)
    if category == "discord_bot_token" or len(core) == 40:  # a real match in isolation
        assert _PATS[category].fullmatch(core) and _passes(category, core)


def test_precheck_rejects_ordinary_text():
    # what makes it fast: prose, paths and hex ids do not reach the regex
    for text in ["The quick brown fox jumps over the lazy dog 1234567890 times.", "x" * 39 + " " + "y" * 30,
                 "/home/user/project/src/module.py:12: in test_it", "see README.md and docs/history.md."]:
        assert not _passes("aws_secret_key_bare", text) and not _passes("discord_bot_token", text)
    assert _passes("aws_secret_key_bare", "commit 3f2a9c1d4b5e6f708192a3b4c5d6e7f809a1b2c3")  # necessary, not sufficient
    assert not _passes("aws_secret_key_bare", "a" * 39 + "é" + "b" * 39)
    assert not _passes("discord_bot_token", "M" + "a" * 22 + ".abcdef." + "c" * 30)
    assert _passes("discord_bot_token", "M" + "a" * 23 + ".abcdef." + "c" * 30)


_texts = st.lists(st.one_of(st.sampled_from(_all_texts()),
                            st.sampled_from([p for _, p in default_patterns()]).flatmap(st.from_regex),
                            st.sampled_from(_ODD + ["api_key=", "PASSWORD: ", " "])),
                  min_size=1, max_size=4).map("".join)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_texts)
def test_scan_with_prechecks_equals_every_pattern_in_order(text):
    compiled = redaction._compiled(RedactionConfig(True, replacement="categorized"))
    assert compiled.scan(text) == naive_scan(text, default_patterns(), lambda c: f"[REDACTED:{c}]")


@pytest.mark.parametrize("text", _all_texts())
def test_every_format_scans_as_every_pattern_in_order(text):
    compiled = redaction._compiled(RedactionConfig(True, replacement="categorized"))
    for variant in (text, "\u212a\u0130 " + text, text + " \ud800"):
        assert compiled.scan(variant) == naive_scan(variant, default_patterns(), lambda c: f"[REDACTED:{c}]")


def test_ascii_lower_only_folds_ascii():
    assert redaction._ascii_lower("AbC \u212a \u0130 É") == "abc \u212a \u0130 É"
    assert redaction._ascii_lower("X\ud800Y") == "x\ud800y"
