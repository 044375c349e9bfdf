"""RedactionConfig.from_config answers "nothing configured" without resolving each key; every
way of setting a ``redaction_*`` key must still be seen."""

from __future__ import annotations

import contextvars

import pytest

from asm_nb import config
from asm_nb.persistence import redaction
from asm_nb.persistence.redaction import RedactionConfig

KEYS = ("redaction_enabled", "redaction_patterns", "redaction_replacement", "redaction_deep_scan",
        "redaction_scan_metadata")
VALUES = {"redaction_enabled": False, "redaction_patterns": [r"zz\d+"], "redaction_replacement": "categorized",
          "redaction_deep_scan": False, "redaction_scan_metadata": True}
ENV = {"redaction_enabled": "false", "redaction_patterns": '["zz\\\\d+"]', "redaction_replacement": "categorized",
       "redaction_deep_scan": "false", "redaction_scan_metadata": "true"}


def _slow() -> RedactionConfig:
    """What from_config must return: the five keys resolved one by one."""
    v = [config.get(k) for k in KEYS]
    if not v[0]:
        return RedactionConfig(enabled=False)
    return RedactionConfig(True, v[1], v[2], bool(v[3]), bool(v[4]))


def test_defaults_without_any_setting():
    assert redaction._config_values() is redaction._DEFAULT_VALUES
    assert RedactionConfig.from_config() == _slow()
    assert RedactionConfig.from_config().enabled is True


@pytest.mark.parametrize("key", KEYS)
def test_context_override_is_seen(key):
    def inner():
        with config.override(**{key: VALUES[key]}):
            assert RedactionConfig.from_config() == _slow()
            assert RedactionConfig.from_config() != redaction._DEFAULT_CFG
        config.put(key, VALUES[key])
        assert RedactionConfig.from_config() == _slow() != redaction._DEFAULT_CFG

    contextvars.copy_context().run(inner)
    assert RedactionConfig.from_config() == redaction._DEFAULT_CFG


def test_unrelated_overrides_keep_the_defaults():
    with config.override(telemetry_enabled=True):
        assert redaction._config_values() is redaction._DEFAULT_VALUES


@pytest.mark.parametrize("key", KEYS)
def test_global_setting_is_seen(key):
    config.set_global(key, VALUES[key])
    try:
        assert RedactionConfig.from_config() == _slow() != redaction._DEFAULT_CFG
    finally:
        config.clear_global(key)
    assert RedactionConfig.from_config() == redaction._DEFAULT_CFG


@pytest.mark.parametrize("key", KEYS)
def test_environment_variable_is_seen(key, monkeypatch):
    monkeypatch.setenv("ASM_" + key.upper(), ENV[key])
    assert RedactionConfig.from_config() == _slow() != redaction._DEFAULT_CFG
    monkeypatch.delenv("ASM_" + key.upper())
    assert RedactionConfig.from_config() == redaction._DEFAULT_CFG


# -- the unrolled trigger check ------------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_TRIGGER_TEXT = st.lists(st.sampled_from(["akia", "aiza", "eyj", "bearer", "secret", "passw", "pwd", "api", "access",
                                          "auth", "://", "sk-", "glpat-", "-----begin ", "ghp_", "gho_", "ghs_",
                                          "ghr_", "github_pat_", "_url", "_key", ":", "=", "-", "_", "key", "token",
                                          " ", "x", "zz9"]), max_size=8).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=_TRIGGER_TEXT | st.text(max_size=30))
def test_unrolled_candidates_equal_the_loop(text):
    low = text.lower()
    for cfg in (redaction._DEFAULT_CFG, RedactionConfig(True, [r"zz\d+"], "categorized"),
                RedactionConfig(True, {"replace": [("mine", r"x+")]})):
        c = redaction._compiled(cfg)
        assert c._candidates(low) == c._candidates_loop(low)
