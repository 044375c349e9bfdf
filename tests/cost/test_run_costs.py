"""Run costs are true or absent: the model a CLI run used is found (flag, config file, the CLI's
own session file, the stream) and recorded with where it came from; a run whose model cannot be
known is unpriced with one warning, never priced from a placeholder row. ``frames.costs`` agrees
with the stored runs."""

from __future__ import annotations

import json
import warnings

import pytest

import asm_nb
from asm_nb.cost import calculator as calc
from asm_nb.cost.calculator import UnpricedModelWarning
from asm_nb.analytics import frames

from ..providers._cli_support import install_fixture_cli, manifest

THREAD = "019ab4a9-8581-7122-9283-5271c1f38f8f"  # codex/simple_text.jsonl's thread id


@pytest.fixture(autouse=True)
def _fresh(monkeypatch, tmp_path):
    calc._reset_warnings()
    home = tmp_path / "codex-home"
    home.mkdir()
    monkeypatch.setenv("CODEX_HOME", str(home))
    yield home
    calc._reset_warnings()


def _codex(tmp_path, store, sdk_opts=None, **kw):
    exe = install_fixture_cli(tmp_path, "codex", "codex", "simple_text.jsonl", {})
    opts = {"cli_path": str(exe), **({} if sdk_opts is None else {"sdk_opts": sdk_opts})}
    return asm_nb.run_once("capital of France?", provider="codex", store=store, cwd=str(tmp_path), **kw, options=opts)


def _usage():
    return manifest("codex")["simple_text.jsonl"]["expect"]


def test_codex_without_any_model_is_unpriced_with_one_warning(tmp_path):
    store = asm_nb.open_store(f"{tmp_path}/store")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        r1 = _codex(tmp_path, store)
        r2 = _codex(tmp_path, store)
    assert r1.ok and r1.token_usage["input_tokens"] > 0
    assert r1.cost_usd is None and r2.cost_usd is None and r1.model is None
    assert len([x for x in w if issubclass(x.category, UnpricedModelWarning)]) == 1
    run = store.get_run(r1.run_id)
    assert run.metadata["unpriced"] is True and run.metadata["price_key"] is None
    df = frames.costs(store, backend="polars")
    assert df["cost_usd"].to_list() == [None, None] and df["unpriced"].to_list() == [True, True]


def test_codex_model_from_the_config_file_is_priced_at_cache_rates(tmp_path, _fresh):
    (_fresh / "config.toml").write_text('model = "gpt-5-codex"\n[profiles.fast]\nmodel = "gpt-5-mini"\n')
    store = asm_nb.open_store(f"{tmp_path}/store")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnpricedModelWarning)
        r = _codex(tmp_path, store)
    assert r.model == "gpt-5-codex"
    run = store.get_run(r.run_id)
    assert run.metadata["model_source"] == f"config_file:{_fresh / 'config.toml'}"
    assert run.metadata["price_key"] == "codex/gpt-5-codex"
    u = r.token_usage
    expected = (u["input_tokens"] * 1.25 + u["output_tokens"] * 10 + u["cache_read_tokens"] * 0.125
                + u["cache_creation_tokens"] * 1.25) / 1e6
    assert r.cost_usd == pytest.approx(expected)
    df = frames.costs(store, backend="polars")
    assert df["cost_usd"].to_list() == [pytest.approx(expected)] and df["model"].to_list() == ["gpt-5-codex"]
    # the active profile's model wins over the top-level one
    r2 = _codex(tmp_path, store, sdk_opts={"config": {"profile": "fast"}})
    assert r2.model == "gpt-5-mini"
    assert store.get_run(r2.run_id).metadata["model_source"].endswith("[profiles.fast]")


def test_codex_session_file_says_what_the_thread_really_ran(tmp_path, _fresh):
    (_fresh / "config.toml").write_text('model = "gpt-5-codex"\n')
    day = _fresh / "sessions" / "2025" / "11" / "20"
    day.mkdir(parents=True)
    rollout = day / f"rollout-2025-11-20T10-00-00-{THREAD}.jsonl"
    rollout.write_text("\n".join(json.dumps(x) for x in [
        {"timestamp": "2025-11-20T10:00:00Z", "type": "session_meta", "payload": {"id": THREAD, "cwd": "/w"}},
        {"timestamp": "2025-11-20T10:00:01Z", "type": "turn_context", "payload": {"model": "gpt-5.1-codex-mini"}},
    ]) + "\n")
    store = asm_nb.open_store(f"{tmp_path}/store")
    r = _codex(tmp_path, store)
    assert r.model == "gpt-5.1-codex-mini"
    run = store.get_run(r.run_id)
    assert run.metadata["model_source"] == f"session_file:{rollout}"
    assert run.metadata["price_key"] == "codex/gpt-5.1-codex-mini"


def test_codex_model_flag(tmp_path):
    store = asm_nb.open_store(f"{tmp_path}/store")
    r = _codex(tmp_path, store, model="gpt-5")
    run = store.get_run(r.run_id)
    assert r.model == "gpt-5" and run.metadata["model_source"] == "flag" and r.cost_usd is not None


def test_amp_without_a_model_is_unpriced_and_with_one_uses_its_family_rates(tmp_path):
    exe = install_fixture_cli(tmp_path, "amp", "amp", "large_usage.jsonl", {})
    store = asm_nb.open_store(f"{tmp_path}/store")
    with pytest.warns(UnpricedModelWarning):
        r = asm_nb.run_once("review", provider="amp", store=store, cwd=str(tmp_path), options={"cli_path": str(exe)})
    assert r.ok and r.cost_usd is None and r.token_usage["cache_read_tokens"] > 0
    r2 = asm_nb.run_once("review", provider="amp", store=store, cwd=str(tmp_path), model="claude-sonnet-4-5",
                         options={"cli_path": str(exe)})
    u = r2.token_usage
    expected = (u["input_tokens"] * 3 + u["output_tokens"] * 15 + u["cache_read_tokens"] * 0.30
                + u["cache_creation_tokens"] * 3.75) / 1e6
    assert r2.cost_usd == pytest.approx(expected)
    assert store.get_run(r2.run_id).metadata["model_source"] == "option"
    df = frames.costs(store, backend="polars").sort("started_at")
    assert df["cost_usd"].to_list() == [None, pytest.approx(expected)]
