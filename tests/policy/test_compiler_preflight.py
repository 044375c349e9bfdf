"""AdapterCompiler and Preflight (docs/policies.md, how a policy is applied)."""

from __future__ import annotations

import pytest

from asm_nb.core.errors import AsmError
from asm_nb.policy import Policy, check, compile, compile_for_adapter


@pytest.mark.parametrize("policy, expected", [
    (Policy(tool_rules=[("deny", ["bash", "exec"])]), {"denied_tools": ["bash", "exec"]}),
    (Policy(tool_rules=[("deny", ["bash"]), ("deny", ["exec", "bash"])]), {"denied_tools": ["bash", "exec"]}),
    (Policy(tool_rules=[("allow", ["search", "read"])]), {"allowed_tools": ["read", "search"]}),
    (Policy(tool_rules=[("allow", ["search", "read", "write"]), ("allow", ["search", "read"]), ("deny", ["read"])]),
     {"allowed_tools": ["search"]}),
    (Policy(limits={"max_total_tokens": 4000}), {"max_tokens": 4000}),
    (Policy(limits=[("max_total_tokens", 0)]), {}),
    (Policy(limits={"max_duration_ms": 10}), {}),
    (Policy(limits={"max_cost_usd": 1, "max_tool_calls": 3}), {}),
    (None, {}),
])
def test_compile(policy, expected):
    assert compile(policy, "claude") == expected
    assert compile(policy, "codex") == expected  # the provider name does not change it


def _adapter(name, **opts):
    from asm_nb.providers import create_adapter

    return create_adapter(name, **opts)


def test_claude_code_gets_cli_tool_flags(tmp_path):
    a = _adapter("claude_code", disallowed_tools=["WebFetch"])
    opts = compile_for_adapter(Policy(tool_rules=[("deny", ["Bash"])]), a)
    assert opts == {"disallowed_tools": ["WebFetch", "Bash"]}
    argv = a.build_argv({**a.options, **opts}, prompt="hi")
    assert argv[argv.index("--disallowedTools") + 1] == "WebFetch,Bash"
    opts = compile_for_adapter(Policy(tool_rules=[("allow", ["Read", "Grep"])]), a)
    argv = a.build_argv({**a.options, **opts}, prompt="hi")
    assert argv[argv.index("--allowedTools") + 1] == "Grep,Read"


def test_amp_gets_reject_rules_first(tmp_path):
    a = _adapter("amp", cwd=str(tmp_path), permissions=[{"tool": "Bash", "action": "allow"}])
    opts = compile_for_adapter(Policy(tool_rules=[("deny", ["Bash"])]), a)
    assert opts["permissions"][0] == {"tool": "Bash", "action": "reject"}
    assert opts["permissions"][-1] == {"tool": "Bash", "action": "allow"}
    opts = compile_for_adapter(Policy(tool_rules=[("allow", ["Read"])]), a)
    assert opts["permissions"][:2] == [{"tool": "Read", "action": "allow"}, {"tool": "*", "action": "reject"}]


def test_codex_denied_writes_mean_read_only_sandbox(tmp_path):
    a = _adapter("codex", cwd=str(tmp_path))
    assert compile_for_adapter(Policy(tool_rules=[("deny", ["file_change"])]), a) == \
        {"sdk_opts": {"sandbox": "read-only"}}
    assert compile_for_adapter(Policy(tool_rules=[("deny", ["web_search"])]), a) == {}


def test_claude_api_and_custom_adapters_get_the_spec_hints():
    p = Policy(limits={"max_total_tokens": 100}, tool_rules=[("deny", ["bash"])])
    assert compile_for_adapter(p, _adapter("claude", api_key="k")) == {"denied_tools": ["bash"], "max_tokens": 100}
    assert compile_for_adapter(p, _adapter("shell")) == {"denied_tools": ["bash"], "max_tokens": 100}
    assert compile_for_adapter(None, _adapter("shell")) == {}


@pytest.mark.parametrize("policy, message, details", [
    (Policy(tool_rules=[("allow", [])]), "Policy has an empty allow list: no tools can ever be used",
     {"check": "empty_allow_list"}),
    (Policy(limits=[("max_duration_ms", 5), ("max_tool_calls", 0), ("max_total_tokens", 0)]),
     "Policy has zero budget for max_tool_calls: run cannot produce useful output",
     {"check": "zero_budget", "kind": "max_tool_calls"}),
    (Policy(limits=[("max_total_tokens", 0)]),
     "Policy has zero budget for max_total_tokens: run cannot produce useful output",
     {"check": "zero_budget", "kind": "max_total_tokens"}),
    (Policy(tool_rules=[("allow", ["a", "b", "c"]), ("deny", ["b"]), ("deny", ["a", "z"])]),
     "Policy has contradictory tool rules: b, a appear in both allow and deny",
     {"check": "contradictory_rules", "tools": ["b", "a"]}),
    # first failing check wins: empty allow list before zero budget
    (Policy(limits={"max_total_tokens": 0}, tool_rules=[("allow", [])]),
     "Policy has an empty allow list: no tools can ever be used", {"check": "empty_allow_list"}),
])
def test_preflight_failures(policy, message, details):
    with pytest.raises(AsmError) as ei:
        check(policy)
    assert ei.value.code == "policy_violation" and ei.value.message == message and ei.value.details == details


@pytest.mark.parametrize("policy", [None, Policy(), Policy(limits={"max_duration_ms": 0, "max_cost_usd": 0}),
                                    Policy(tool_rules=[("allow", ["a"]), ("deny", ["b"])])])
def test_preflight_ok(policy):
    assert check(policy) is None
