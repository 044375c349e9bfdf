"""What the Claude Code command line says on the user's behalf: the model (only one the user
chose) and the tools (an empty allow list means no tools at all, not every tool)."""

from __future__ import annotations

import pytest

import asm_nb
from asm_nb import config
from asm_nb.core.errors import AsmError
from asm_nb.providers.claude_code import ClaudeCodeAdapter
from asm_nb.testing.fake_cli import fake_cli_calls

from ._cli_support import install_fixture_cli


def _fake(tmp_path):
    return install_fixture_cli(tmp_path, "claude", "claude_code", "simple_text.jsonl", {})


def test_no_model_flag_unless_the_user_gives_one(tmp_path):
    exe = _fake(tmp_path)
    r = asm_nb.run_once("hi", provider="claude_code", store="memory://", cwd=str(tmp_path),
                        options={"cli_path": str(exe)})
    assert r.ok, r.error
    argv = fake_cli_calls(exe)[0]["argv"]
    assert "--model" not in argv  # the CLI keeps the user's own model (settings, /model, ANTHROPIC_MODEL)
    assert r.model == "claude-sonnet-4-5-20250929"  # what the CLI said it used (init line)
    r2 = asm_nb.run_once("hi", provider="claude_code", store="memory://", cwd=str(tmp_path), model="opus",
                         options={"cli_path": str(exe)})
    argv2 = fake_cli_calls(exe)[1]["argv"]
    assert argv2[argv2.index("--model") + 1] == "opus" and r2.ok


def test_configured_default_model_counts_as_given():
    with config.override(claude_default_model="claude-haiku-4-5"):
        argv = ClaudeCodeAdapter().build_argv(prompt="x")
    assert argv[argv.index("--model") + 1] == "claude-haiku-4-5"


def test_empty_tool_list_means_no_tools():
    argv = ClaudeCodeAdapter(tools=[]).build_argv(prompt="x")
    assert "--allowedTools" not in argv
    i = argv.index("--tools")
    assert argv[i + 1] == "" and "--strict-mcp-config" in argv
    with pytest.raises(AsmError, match="mcp_config"):
        ClaudeCodeAdapter(tools=[], sdk_opts={"mcp_config": {"mcpServers": {}}}).build_argv(prompt="x")
    # a non-empty list is still the allow list
    argv = ClaudeCodeAdapter(tools=["Read"]).build_argv(prompt="x")
    assert argv[argv.index("--allowedTools") + 1] == "Read" and "--tools" not in argv


def test_deny_all_policy_reaches_the_cli_as_no_tools(tmp_path):
    exe = _fake(tmp_path)
    # the adapter offers Read, the policy allows only Bash: nothing is left
    r = asm_nb.run_once("hi", provider="claude_code", store="memory://", cwd=str(tmp_path),
                        policy={"name": "only-bash", "tool_rules": [["allow", ["Bash"]]]},
                        options={"cli_path": str(exe), "tools": ["Read"]})
    assert r.ok, r.error
    argv = fake_cli_calls(exe)[0]["argv"]
    assert argv[argv.index("--tools") + 1] == "" and "--allowedTools" not in argv
