"""Models registry: default model, built-in table, overrides (dict, JSON, TOML, env), aliases."""

from __future__ import annotations

import json

import pytest

from asm_nb import config
from asm_nb.core.errors import AsmError
from asm_nb.cost import pricing


def test_default_model():
    assert pricing.default_model("claude") == "claude-haiku-4-5-20251001"
    assert pricing.default_model("codex") is None and pricing.default_model("amp") is None
    with config.override(claude_default_model="claude-opus-4-6"):
        assert pricing.default_model("claude") == "claude-opus-4-6"


def test_spec_rows_are_per_token():
    t = pricing.default_pricing_table()
    assert t["claude"]["default"] == {"input": pytest.approx(3e-6), "output": pytest.approx(15e-6),
                                      "placeholder": True}  # never prices a run
    opus = t["claude"]["models"]["claude-opus-4-6"]
    # one-hour cache writes at Anthropic's 2x input (five-minute ones: the cache_creation rate)
    assert opus == {"input": pytest.approx(15e-6), "output": pytest.approx(75e-6),
                    "cache_read": pytest.approx(1.5e-6), "cache_creation": pytest.approx(18.75e-6),
                    "cache_creation_1h": pytest.approx(30e-6)}
    assert all(e["cache_creation_1h"] == pytest.approx(2 * e["input"]) for e in t["claude"]["models"].values())
    assert not any("cache_creation_1h" in e for e in t["codex"]["models"].values())  # OpenAI has no such write
    assert t["claude"]["models"]["claude-haiku-4-5"]["cache_read"] == pytest.approx(0.08e-6)
    assert t["codex"]["models"]["o3-mini"] == {"input": pytest.approx(1.1e-6), "output": pytest.approx(4.4e-6),
                                               "cache_read": pytest.approx(0.55e-6),
                                               "cache_creation": pytest.approx(1.1e-6)}
    assert t["amp"] == {"default": {"input": pytest.approx(3e-6), "output": pytest.approx(15e-6),
                                    "placeholder": True}, "models": {}}


def test_one_hour_cache_writes_are_priced_at_their_own_rate():
    from asm_nb.cost.calculator import calculate

    t = pricing.default_pricing_table()
    base = {"input_tokens": 10, "output_tokens": 100, "cache_read_tokens": 1000, "cache_creation_tokens": 4000}
    five = calculate(base, "claude", "claude-sonnet-4-5", t)
    assert five == pytest.approx(10 * 3e-6 + 100 * 15e-6 + 1000 * 0.3e-6 + 4000 * 3.75e-6)
    hour = calculate({**base, "cache_creation_1h_tokens": 3000}, "claude", "claude-sonnet-4-5", t)
    assert hour == pytest.approx(five + 3000 * (6e-6 - 3.75e-6))
    # never more than the cache writes; a table without the rate prices them as other writes
    assert calculate({**base, "cache_creation_1h_tokens": 9000}, "claude", "claude-sonnet-4-5", t) == \
        pytest.approx(five + 4000 * (6e-6 - 3.75e-6))
    plain = {"claude": {"default": {"input": 3e-6, "output": 15e-6, "cache_read": 0.3e-6, "cache_creation": 3.75e-6}}}
    assert calculate({**base, "cache_creation_1h_tokens": 3000}, "claude", None, plain) == pytest.approx(five)


def test_default_table_is_a_fresh_copy():
    t = pricing.default_pricing_table()
    t["claude"]["default"]["input"] = 99
    assert pricing.default_pricing_table()["claude"]["default"]["input"] == pytest.approx(3e-6)
    pricing.pricing_table()["claude"]["default"]["input"] = 99
    assert pricing.pricing_table()["claude"]["default"]["input"] == pytest.approx(3e-6)


def test_model_names_sorted_and_include_spec_and_current_models():
    names = pricing.model_names()
    assert names == sorted(names)
    spec = ["claude-haiku-4-5", "claude-opus-4-6", "claude-sonnet-4-5", "gpt-4o", "gpt-4o-mini", "o3", "o3-mini"]
    assert set(spec) <= set(names)
    assert {"claude-opus-4-5", "claude-opus-4-1", "claude-sonnet-4", "claude-3-5-haiku", "gpt-5", "gpt-5-codex",
            "gpt-4.1", "o4-mini"} <= set(names)


def test_pricing_table_config_dict_is_used_as_is():
    custom = {"claude": {"default": {"input": 1, "output": 1}, "models": {}}}
    with config.override(pricing_table=custom):
        assert pricing.pricing_table() == custom
        info = pricing.active_pricing()
        assert info.version.startswith("custom-") and info.source == "config:pricing_table"
    assert pricing.active_pricing().version == pricing.PRICING_VERSION


def test_toml_file_per_million(tmp_path):
    p = tmp_path / "p.toml"
    p.write_text('version = "v7"\nunit = "per_million"\n'
                 '[providers.codex.default]\ninput = 2.0\noutput = 8.0\n'
                 '[providers.codex.models."gpt-x"]\ninput = 1.0\noutput = 4.0\ncache_read = 0.5\n')
    info = pricing.load_pricing_file(p)
    assert info.version == "v7" and info.source == f"file:{p}"
    assert info.table["codex"]["models"]["gpt-x"]["cache_read"] == pytest.approx(0.5e-6)
    assert "claude" not in info.table  # no "extends": replaces the table


def test_env_var_path(tmp_path, monkeypatch):
    p = tmp_path / "prices.json"
    p.write_text(json.dumps({"amp": {"default": {"input": 1e-6, "output": 2e-6}, "models": {}}}))
    monkeypatch.setenv("ASM_PRICING_TABLE", str(p))
    assert pricing.pricing_table() == {"amp": {"default": {"input": 1e-6, "output": 2e-6}, "models": {}}}
    assert pricing.active_pricing().source == f"file:{p}"


def test_file_reloads_when_changed(tmp_path):
    p = tmp_path / "prices.json"
    p.write_text(json.dumps({"version": "a", "providers": {}}))
    assert pricing.load_pricing_file(p).version == "a"
    p.write_text(json.dumps({"version": "bb", "providers": {}}))
    assert pricing.load_pricing_file(p).version == "bb"


@pytest.mark.parametrize("content", ["not json", "[1, 2]", '{"providers": 3}', '{"unit": "per_year", "providers": {}}'])
def test_bad_files_raise_validation_error(tmp_path, content):
    p = tmp_path / "bad.json"
    p.write_text(content)
    with pytest.raises(AsmError) as ei:
        pricing.load_pricing_file(p)
    assert ei.value.code == "validation_error"


def test_missing_file_and_bad_config_type():
    with pytest.raises(AsmError):
        pricing.load_pricing_file("/nonexistent/prices.json")
    with config.override(pricing_table=42):
        with pytest.raises(AsmError):
            pricing.pricing_table()


def test_aliases():
    assert pricing.canonical_model("opus") == "claude-opus-4-6"
    assert pricing.canonical_model("anthropic/claude-3-5-haiku-latest") == "claude-3-5-haiku"
    assert pricing.canonical_model("openai/gpt-5") == "gpt-5"
    assert pricing.canonical_model(None) is None
    assert pricing.canonical_provider("claude_code") == "claude"
    assert pricing.canonical_provider("claude") == "claude"
    assert pricing.canonical_provider("shell") == "shell"


def test_merge_tables():
    base = pricing.default_pricing_table()
    merged = pricing.merge_tables(base, {"claude": {"models": {"x": {"input": 1, "output": 2}}},
                                         "new": {"default": {"input": 1, "output": 1}, "models": {}}})
    assert "claude-opus-4-6" in merged["claude"]["models"] and "x" in merged["claude"]["models"]
    assert merged["new"]["default"]["input"] == 1
    assert "x" not in base["claude"]["models"]
