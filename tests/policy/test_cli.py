"""``asm run`` policy options and ``asm health``."""

from __future__ import annotations

import json

import pytest

from asm_nb.cli import main
from asm_nb.testing import cassettes as c


@pytest.fixture
def cassette(tmp_path):
    return str(c.build_cassette([
        *c.start(model="claude-sonnet-4-5"), *c.assistant_text("one"), c.usage(1000, 100),
        *c.tool_call("Bash", {"command": "ls"}, "x", id="t1"), c.usage(1000, 100), *c.assistant_text("two"),
        c.completed()], provider="claude", model="claude-sonnet-4-5").write(tmp_path / "c.jsonl"))


def run(cassette, tmp_path, *extra):
    return main(["run", "-p", "replay", "-o", f"cassette={json.dumps(cassette)}", "-o", "impersonate=true",
                 "--store", str(tmp_path / "store"), "-q", *extra, "hi"])


def test_budget_stops_the_run_and_says_which_limit(cassette, tmp_path, capsys):
    assert run(cassette, tmp_path, "--budget", "0.004") == 1
    err = capsys.readouterr().err
    assert "[policy_violation]" in err and "max_cost_usd 0.004, observed 0.0045" in err


def test_deny_tools_and_warn(cassette, tmp_path, capsys):
    assert run(cassette, tmp_path, "--deny-tools", "Bash,Write") == 1
    assert "tool_rules Bash" in capsys.readouterr().err
    assert run(cassette, tmp_path, "--deny-tools", "Bash", "--on-violation", "warn") == 0
    assert run(cassette, tmp_path, "--max-tokens", "100000", "--max-tool-calls", "5", "--timeout", "30") == 0


def test_ask_without_a_terminal_denies(cassette, tmp_path, capsys):
    assert run(cassette, tmp_path, "--deny-tools", "Bash", "--on-violation", "ask") == 1
    assert "approval request was denied" in capsys.readouterr().err


def test_bad_policy_option_is_a_usage_error(cassette, tmp_path, capsys):
    assert run(cassette, tmp_path, "--max-tool-calls", "-1") == 2
    err = capsys.readouterr().err
    assert "argument --max-tool-calls: expected a whole number >= 0, got '-1'" in err
    assert err.strip().count("\n") == 0


def test_health_lists_every_provider(capsys, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-cli-secret")
    assert main(["health", "--json"]) == 0
    out = capsys.readouterr().out
    assert "sk-ant-cli-secret" not in out
    rows = {r["provider"]: r for r in json.loads(out)}
    from asm_nb.providers import available_providers

    assert set(rows) == set(available_providers())
    assert rows["replay"]["available"] == "yes" and rows["claude"]["circuit"] == "closed"
