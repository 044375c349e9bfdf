"""CostCalculator (docs/policies.md, cost): reference cases with hand-computed USD, plus price_run."""

from __future__ import annotations

import json
import warnings

import pytest

from asm_nb import config
from asm_nb.core.run import Run
from asm_nb.cost import calculator as calc
from asm_nb.cost.calculator import (NoRatesError, UnpricedModelWarning, calculate, calculate_run_cost,
                                    normalize_legacy_rates, price_run, resolve_rates, try_resolve_rates)
from asm_nb.cost.pricing import PRICING_VERSION, default_pricing_table

TABLE = default_pricing_table()


def tok(i=0, o=0, cr=0, cc=0):
    return {"input_tokens": i, "output_tokens": o, "cache_read_tokens": cr, "cache_creation_tokens": cc}


@pytest.fixture(autouse=True)
def _fresh_warnings():
    calc._reset_warnings()
    yield
    calc._reset_warnings()


# ---- the reference cases ---------------------------------------------------------------------------

def test_opus_1000_500():
    assert calculate(tok(1000, 500), "claude", "claude-opus-4-6", TABLE) == pytest.approx(0.0525)


def test_sonnet_dated_id_uses_prefix():
    assert calculate(tok(1000, 500), "claude", "claude-sonnet-4-5-20250929", TABLE) == pytest.approx(0.0105)


@pytest.mark.parametrize("model", [None, "claude-unknown-model"])
def test_model_none_or_unknown_falls_back_to_default(model):
    assert calculate(tok(1000, 500), "claude", model, TABLE) == pytest.approx(0.0105)


def test_unknown_provider_has_no_rates():
    with pytest.raises(NoRatesError):
        calculate(tok(1000, 500), "nope", None, TABLE)
    assert try_resolve_rates("nope", "x", TABLE) is None


def test_opus_with_cache_tokens():
    got = calculate(tok(1000, 500, cr=800, cc=200), "claude", "claude-opus-4-6", TABLE)
    assert got == pytest.approx(0.0525 + 0.0012 + 0.00375)


def test_o3_cache_read_priced_at_the_cached_input_rate():
    got = calculate(tok(1000, 500, cr=800), "codex", "o3", TABLE)
    assert got == pytest.approx(0.03 + 800 * 2.5e-6)  # not 800 * 10e-6 (the full input rate)


def test_zero_tokens_and_empty_dict():
    assert calculate(tok(), "claude", "claude-opus-4-6", TABLE) == 0.0
    assert calculate({}, "claude", "claude-opus-4-6", TABLE) == 0.0


def test_only_output():
    assert calculate({"output_tokens": 500}, "claude", "claude-opus-4-6", TABLE) == pytest.approx(0.0375)


def test_run_cost_uses_provider_and_model():
    run = Run.new("ses_1").replace(provider="claude", provider_metadata={"model": "claude-sonnet-4-5"},
                                   token_usage=tok(2000, 1000))
    assert calculate_run_cost(run, TABLE) == pytest.approx(0.021)


def test_run_without_provider_has_no_rates():
    run = Run.new("ses_1").replace(token_usage=tok(10, 10))
    with pytest.raises(NoRatesError):
        calculate_run_cost(run, TABLE)


def test_flat_legacy_table_converts():
    flat = {"claude": {"input": 1, "output": 2}, "junk": {"x": 1}}
    assert normalize_legacy_rates(flat) == {"claude": {"default": {"input": 1, "output": 2}, "models": {}},
                                            "junk": {"x": 1}}
    r = resolve_rates("claude", "anything", flat)
    assert (r.input, r.output) == (1.0, 2.0) and isinstance(r.input, float)


def test_structured_table_passes_through_unchanged():
    assert normalize_legacy_rates(TABLE) is TABLE


def test_default_table_has_the_three_providers():
    assert {"claude", "codex", "amp"} <= set(calc.default_pricing_table())


def test_longest_prefix_wins():
    r = resolve_rates("codex", "gpt-4o-mini-2024-07-18", TABLE)
    assert r.input == pytest.approx(0.15e-6)


def test_broken_model_entry_does_not_fall_back():
    table = {"claude": {"default": {"input": 1e-6, "output": 2e-6}, "models": {"m": {"input": "x"}}}}
    with pytest.raises(NoRatesError):
        resolve_rates("claude", "m-1", table)


def test_token_values_are_sanitised():
    table = {"p": {"default": {"input": 1.0, "output": 10.0}, "models": {}}}
    assert calculate({"input_tokens": 2.9, "output_tokens": -5, "cache_read_tokens": "7",
                      "cache_creation_tokens": True}, "p", None, table) == 2.0


@pytest.mark.parametrize("tokens,provider,table", [([], "claude", TABLE), (tok(1), 3, TABLE), (tok(1), "claude", [])])
def test_non_mapping_inputs_have_no_rates(tokens, provider, table):
    with pytest.raises(NoRatesError):
        calculate(tokens, provider, None, table)


def test_claude_code_fixture_usage_matches_reported_model_cost():
    # fixtures/providers/claude_code manifest: sonnet main loop usage and its costUSD 0.3157359
    got = calculate(tok(6, 1750, cr=523318, cc=35326), "claude", "claude-sonnet-4-5-20250929", TABLE)
    assert got == pytest.approx(0.3157359, abs=1e-9)


def test_newer_models_are_priced():
    # opus 4.5: 5/25, cache 0.50/6.25 per 1M
    got = calculate(tok(1_000_000, 100_000, cr=1_000_000, cc=100_000), "claude", "claude-opus-4-5-20251101", TABLE)
    assert got == pytest.approx(5.0 + 2.5 + 0.5 + 0.625)
    # gpt-5-codex: 1.25/10, cached 0.125; cache writes at the input rate
    got = calculate(tok(1_000_000, 1_000_000, cr=1_000_000, cc=1_000_000), "codex", "gpt-5-codex", TABLE)
    assert got == pytest.approx(1.25 + 10 + 0.125 + 1.25)


# ---- price_run ----------------------------------------------------------------------------------

def _run(provider="claude", model="claude-sonnet-4-5", usage=None):
    pm = {"model": model} if model is not None else {}
    return Run.new("ses_1").replace(provider=provider, provider_metadata=pm,
                                   token_usage=usage if usage is not None else tok(2000, 1000))


def test_price_run_computed():
    info = price_run(_run())
    assert info["cost_usd"] == pytest.approx(0.021)
    assert info["computed_cost_usd"] == pytest.approx(0.021)
    assert info["reported_cost_usd"] is None
    assert info["unpriced"] is False
    assert info["price_key"] == "claude/claude-sonnet-4-5"
    assert info["pricing_version"] == PRICING_VERSION
    assert info["cost_source"] == "computed"


def test_price_run_reported_wins_and_computed_is_kept():
    info = price_run(_run(), reported_cost_usd=0.05)
    assert info["cost_usd"] == 0.05 and info["cost_source"] == "reported"
    assert info["computed_cost_usd"] == pytest.approx(0.021)


@pytest.mark.parametrize("reported", [0, 0.0, -1, "0.3", True, None])
def test_price_run_ignores_non_positive_reported(reported):
    info = price_run(_run(), reported_cost_usd=reported)
    assert info["reported_cost_usd"] is None and info["cost_source"] == "computed"


def test_unknown_model_is_none_with_one_warning():
    run = _run(model="claude-unknown-model")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        first = price_run(run)
        second = price_run(run)
    assert first["cost_usd"] is None and first["unpriced"] is True and first["price_key"] is None
    assert second["cost_usd"] is None
    assert len([x for x in w if issubclass(x.category, UnpricedModelWarning)]) == 1


def test_unknown_model_with_reported_cost_is_priced():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        info = price_run(_run(model="mystery"), reported_cost_usd=0.2)
    assert info["cost_usd"] == 0.2 and info["computed_cost_usd"] is None and info["unpriced"] is False


def test_unknown_provider_is_none():
    with pytest.warns(UnpricedModelWarning):
        info = price_run(_run(provider="someone", model="x"))
    assert info["cost_usd"] is None


def test_model_none_is_unpriced_not_priced_from_the_placeholder_default():
    calc._reset_warnings()
    with pytest.warns(UnpricedModelWarning, match="model is unknown") as w:
        info = price_run(_run(model=None))
        again = price_run(_run(model=None))
    assert info["cost_usd"] is None and info["unpriced"] is True and info["price_key"] is None
    assert again["cost_usd"] is None
    assert len([x for x in w if issubclass(x.category, UnpricedModelWarning)]) == 1  # one warning


def test_zero_tokens_cost_zero_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        info = price_run(_run(provider="shell", model=None, usage=tok()))
    assert info["cost_usd"] == 0.0 and info["unpriced"] is False and info["cost_source"] == "no_tokens"


def test_aliases_and_provider_aliases():
    assert price_run(_run(provider="claude_code", model="sonnet"))["price_key"] == "claude/claude-sonnet-4-5"
    key = price_run(_run(model="us.anthropic.claude-opus-4-1-20250805-v1:0"))["price_key"]
    assert key == "claude/claude-opus-4-1"


def test_family_matching_across_providers():
    info = price_run(_run(provider="amp", model="claude-sonnet-4-5-20250929"))
    assert info["price_key"] == "claude/claude-sonnet-4-5" and info["cost_usd"] == pytest.approx(0.021)


def test_price_run_with_config_override_records_version():
    custom = {"version": "team-2026-01", "source": "finance", "unit": "per_million",
              "providers": {"claude": {"default": {"input": 1, "output": 2}, "models": {}}}}
    with config.override(pricing_table=custom):
        info = price_run(_run(model=None))
    assert info["cost_usd"] == pytest.approx(2000e-6 + 2000e-6)
    assert info["pricing_version"] == "team-2026-01" and info["pricing_source"] == "finance"


def test_price_run_with_file_override(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"unit": "per_million", "extends": "default",
                                "providers": {"claude": {"models": {"my-model": {"input": 10, "output": 20}}}}}))
    with config.override(pricing_table=str(path)):
        info = price_run(_run(model="my-model-v2"))
        builtin = price_run(_run())
    assert info["cost_usd"] == pytest.approx(2000 * 10e-6 + 1000 * 20e-6)
    assert info["price_key"] == "claude/my-model"
    assert info["pricing_version"].endswith("+" + PRICING_VERSION)
    assert builtin["cost_usd"] == pytest.approx(0.021)


def test_apply_price_and_session_cost():
    priced = calc.apply_price(_run())
    assert priced.cost_usd == pytest.approx(0.021) and priced.metadata["price_key"] == "claude/claude-sonnet-4-5"
    with pytest.warns(UnpricedModelWarning):
        unpriced = calc.apply_price(_run(model="nope-model"))
    s = calc.session_cost([priced, unpriced, priced])
    assert s == {"cost_usd": pytest.approx(0.042), "run_count": 3, "priced_runs": 2, "unpriced_runs": 1}
    assert calc.session_cost([])["cost_usd"] is None


def test_provider_with_only_a_default_prices_every_model():
    table = {"claude": {"input": 1e-6, "output": 2e-6}}  # flat legacy table
    info = price_run(_run(model="anything-at-all"), table=table)
    assert info["price_key"] == "claude/default" and info["cost_usd"] == pytest.approx(2000e-6 + 2000e-6)
    # the built-in amp row is a placeholder: an amp model without a price is unpriced
    with pytest.warns(UnpricedModelWarning):
        assert price_run(_run(provider="amp", model="some-amp-model"))["cost_usd"] is None


def test_cached_tokens_are_priced_at_cache_rates_for_every_builtin_model():
    table = default_pricing_table()
    for prov in ("claude", "codex"):
        for name, rates in table[prov]["models"].items():
            assert "cache_read" in rates and "cache_creation" in rates, (prov, name)
            assert rates["cache_read"] < rates["input"], (prov, name)
    # gpt-4o: 1M cached tokens cost the cached rate ($1.25), not the input rate ($2.50)
    info = price_run(_run(provider="codex", model="gpt-4o", usage=tok(0, 0, cr=1_000_000)))
    assert info["cost_usd"] == pytest.approx(1.25)


def test_model_source_is_recorded():
    run = _run(provider="codex", model="gpt-5-codex")
    run = run.replace(provider_metadata={**run.provider_metadata, "model_source": "config_file:/h/.codex/config.toml"})
    assert price_run(run)["model_source"] == "config_file:/h/.codex/config.toml"
