"""Policy model validation (exact messages of docs/policies.md, policies), merge and stack_merge."""

from __future__ import annotations

import pytest

from asm_nb.core.errors import AsmError
from asm_nb.policy import Policy, merge, stack_merge


def err(fn, *a, **kw) -> AsmError:
    with pytest.raises(AsmError) as ei:
        fn(*a, **kw)
    assert ei.value.code == "validation_error"
    return ei.value


@pytest.mark.parametrize("attrs, message", [
    ("not a policy", "Policy must be a keyword list or map"),
    (42, "Policy must be a keyword list or map"),
    ([1, 2], "Policy must be a keyword list or map"),
    ({"name": ""}, "policy name is required"),
    ({"name": 3}, "policy name is required"),
    ({"limits": "max_total_tokens"}, "limits must be a list"),
    ({"limits": 5}, "limits must be a list"),
    ({"limits": [("max_widgets", 1)]}, "invalid policy limit"),
    ({"limits": [("max_total_tokens", -1)]}, "invalid policy limit"),
    ({"limits": [("max_total_tokens", 1.5)]}, "invalid policy limit"),
    ({"limits": [("max_total_tokens", True)]}, "invalid policy limit"),
    ({"limits": [("max_duration_ms", "10")]}, "invalid policy limit"),
    ({"limits": [("max_tool_calls", -3)]}, "invalid policy limit"),
    ({"limits": [("max_cost_usd", -0.01)]}, "invalid policy limit"),
    ({"limits": [("max_cost_usd", float("nan"))]}, "invalid policy limit"),
    ({"limits": [("max_cost_usd", False)]}, "invalid policy limit"),
    ({"limits": [("max_total_tokens",)]}, "invalid policy limit"),
    ({"limits": {"max_total_tokens": 10, "bogus": 1}}, "invalid policy limit"),
    ({"tool_rules": "deny bash"}, "tool_rules must be a list"),
    ({"tool_rules": {"deny": ["bash"]}}, "tool_rules must be a list"),
    ({"tool_rules": [("block", ["bash"])]}, "invalid tool rule"),
    ({"tool_rules": ["deny"]}, "invalid tool rule"),
    ({"tool_rules": [("deny", ["bash"], "extra")]}, "invalid tool rule"),
    ({"tool_rules": [("deny", "bash")]}, "tool rule list must contain tool names"),
    ({"tool_rules": [("allow", None)]}, "tool rule list must contain tool names"),
    ({"on_violation": "block"}, 'on_violation must be "cancel", "request_approval", or "warn"'),
    ({"on_violation": None}, 'on_violation must be "cancel", "request_approval", or "warn"'),
    ({"metadata": ["a"]}, "metadata must be a map"),
])
def test_validation_messages(attrs, message):
    assert err(Policy.new, attrs).message == message


def test_checks_run_in_table_order():
    # a bad name is reported before bad limits, bad limits before bad rules, ...
    assert err(Policy.new, {"name": "", "limits": 5}).message == "policy name is required"
    assert err(Policy.new, {"limits": 5, "tool_rules": 5}).message == "limits must be a list"
    assert err(Policy.new, {"tool_rules": 5, "on_violation": "x"}).message == "tool_rules must be a list"
    assert err(Policy.new, {"on_violation": "x", "metadata": 1}).message.startswith("on_violation must be")


def test_every_limit_kind_and_value_form():
    p = Policy(limits=[("max_total_tokens", 10), ("max_duration_ms", 0), ("max_tool_calls", 3),
                       ("max_cost_usd", 1), ("max_total_tokens", 5)])
    assert p.limits == (("max_total_tokens", 10), ("max_duration_ms", 0), ("max_tool_calls", 3),
                        ("max_cost_usd", 1.0), ("max_total_tokens", 5))
    assert isinstance(p.limits[3][1], float)
    assert p.limit("max_total_tokens") == 5 and p.limit("max_cost_usd") == 1.0 and p.limit("nope") is None
    # a mapping keeps its order
    assert Policy(limits={"max_tool_calls": 1, "max_total_tokens": 2}).limits == \
        (("max_tool_calls", 1), ("max_total_tokens", 2))


def test_full_policy_round_trips_and_keyword_pairs():
    p = Policy.new([("name", "team"), ("limits", [("max_total_tokens", 500)]),
                    ("tool_rules", [("deny", ["bash", 3, "", "bash", "exec"]), ("allow", ["read"])]),
                    ("on_violation", "warn"), ("metadata", {"source": "test"})])
    assert p.name == "team" and p.on_violation == "warn" and p.metadata == {"source": "test"}
    assert p.tool_rules == (("deny", ("bash", "exec")), ("allow", ("read",)))  # non-strings dropped, deduped
    assert Policy.new(p.to_dict()) == p


@pytest.mark.parametrize("action", ["cancel", "request_approval", "warn"])
def test_actions_accepted(action):
    assert Policy(on_violation=action).on_violation == action


def test_merge_replaces_wholesale_and_invalid_returns_base():
    base = Policy(name="base", limits=[("max_total_tokens", 500)], tool_rules=[("deny", ["bash"])],
                  on_violation="warn", metadata={"source": "x"})
    m = merge(base, limits=[("max_total_tokens", 100)], on_violation="cancel")
    assert m.name == "base" and m.limits == (("max_total_tokens", 100),)
    assert m.tool_rules == (("deny", ("bash",)),) and m.on_violation == "cancel" and m.metadata == {"source": "x"}
    assert merge(base, on_violation="block") is base
    assert merge(base, {"name": "other"}).name == "other"


def test_stack_merge_rules():
    assert stack_merge([]) == Policy()
    one = Policy(name="solo")
    assert stack_merge([one]) is one
    org = Policy(name="org", limits={"max_total_tokens": 100_000, "max_tool_calls": 9},
                 tool_rules=[("deny", ["bash"])], on_violation="warn", metadata={"a": 1, "shared": "org"})
    team = Policy(name="team", limits={"max_total_tokens": 50_000, "max_cost_usd": 2},
                  tool_rules=[("deny", ["exec"])], metadata={"b": 2, "shared": "team"})
    user = Policy(name="user", on_violation="request_approval")
    p = stack_merge([org, team, user])
    assert p.name == "org + team + user"
    assert dict(p.limits) == {"max_total_tokens": 50_000, "max_tool_calls": 9, "max_cost_usd": 2.0}
    assert p.tool_rules == (("deny", ("bash",)), ("deny", ("exec",)))
    assert p.on_violation == "cancel"
    assert p.metadata == {"a": 1, "b": 2, "shared": "team"}
    assert stack_merge([Policy(name="x"), Policy(name="x")]).name == "x"


@pytest.mark.parametrize("a, b, winner", [
    ("warn", "cancel", "cancel"), ("cancel", "warn", "cancel"),
    ("warn", "request_approval", "request_approval"), ("request_approval", "warn", "request_approval"),
    ("request_approval", "cancel", "cancel"), ("cancel", "request_approval", "cancel"),
    ("warn", "warn", "warn"),
])
def test_stack_merge_strictest_action(a, b, winner):
    assert stack_merge([Policy(name="a", on_violation=a), Policy(name="b", on_violation=b)]).on_violation == winner


def test_stack_merge_accepts_attrs_and_validates_them():
    p = stack_merge([{"name": "org", "limits": {"max_tool_calls": 3}}, {"name": "me"}])
    assert p.name == "org + me" and p.limits == (("max_tool_calls", 3),)
    assert err(stack_merge, [{"name": "org"}, {"on_violation": "nope"}]).message.startswith("on_violation")


def test_public_name():
    import asm_nb

    assert asm_nb.Policy is Policy
    assert "Policy" in asm_nb.__all__
