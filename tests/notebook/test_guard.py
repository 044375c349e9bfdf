"""Kernel budget, %asm policy / health and the %%asm policy options, in a real IPython shell."""

from __future__ import annotations

import pytest

pytest.importorskip("IPython")

from IPython.testing.globalipapp import start_ipython  # noqa: E402

from asm_nb.testing import cassettes as c  # noqa: E402


@pytest.fixture(scope="module")
def ip():
    from IPython import get_ipython

    shell = start_ipython() or get_ipython()  # a process-wide singleton: another module may own it
    shell.run_line_magic("load_ext", "asm_nb")
    return shell


def spend_events():
    # each usage increment costs 1000 * 3e-6 + 100 * 15e-6 = 0.0045 on claude-sonnet-4-5
    return [*c.start(model="claude-sonnet-4-5"), *c.assistant_text("one"), c.usage(1000, 100),
            *c.tool_call("Read", {"path": "a"}, "text", id="t1"), c.usage(1000, 100),
            *c.assistant_text("two"), c.usage(1000, 100), *c.assistant_text("three"), c.usage(1000, 100),
            c.completed()]


@pytest.fixture
def asm(ip, tmp_path, capsys):
    from asm_nb.notebook import guard, magics
    from asm_nb.providers import _registry, register_provider
    from asm_nb.providers.replay import ReplayProvider

    cas = c.build_cassette(spend_events(), provider="claude", model="claude-sonnet-4-5").write(tmp_path / "s.jsonl")
    register_provider("priced_replay", lambda **o: ReplayProvider(cassette=cas, impersonate=True))
    ip.run_line_magic("asm", f"store {tmp_path / 'store'}")
    ip.run_line_magic("asm", "config renderer=studio provider=priced_replay")
    capsys.readouterr()

    class Asm:
        def line(self, text):
            ip.run_line_magic("asm", text)
            return capsys.readouterr()

        def cell(self, line, body="go"):
            ip.run_cell_magic("asm", line, body)
            return capsys.readouterr()

    yield Asm()
    _registry.pop("priced_replay", None)
    magics._KERNEL_DEFAULTS.clear()
    guard.BUDGET.budget_usd, guard.BUDGET.spent_usd, guard.BUDGET.runs = None, 0.0, 0
    guard._KERNEL_POLICY.clear()


def stored_runs(ip):
    from asm_nb.stores import resolve_store
    from asm_nb.notebook import magics

    return resolve_store(magics._KERNEL_DEFAULTS["store"]).list_runs(None)


def test_kernel_budget_stops_a_run_then_refuses_the_next(ip, asm):
    assert asm.line("budget 0.01").out.strip() == "spent $0.0000 / budget $0.0100"
    out = asm.cell("--out first")
    first = ip.user_ns["first"]
    # the remaining budget was the run's max_cost_usd: it stopped at the crossing (3rd usage)
    assert first.status == "failed" and first.error.code == "policy_violation"
    assert first.error.details["limit"] == "max_cost_usd" and first.error.details["policy"] == "kernel budget"
    assert first.cost_usd == pytest.approx(0.0135)
    assert "budget: spent $0.0135 / budget $0.0100" in out.out
    n = len(stored_runs(ip))

    out = asm.cell("--out second")
    assert "asm: [policy_violation] Kernel budget spent" in out.err and "%asm budget USD" in out.err
    assert "second" not in ip.user_ns and len(stored_runs(ip)) == n  # refused before any run started

    asm.line("budget 1")
    asm.cell("--out third")
    third = ip.user_ns["third"]
    assert third.ok and third.cost_usd == pytest.approx(0.018)
    assert asm.line("budget").out.strip() == "spent $0.0315 / budget $1.0000"


def test_budget_command_errors_and_off(asm):
    assert "budget must be an amount" in asm.line("budget lots").err
    asm.line("budget 0")
    assert "Kernel budget spent" in asm.cell("").err  # zero budget: nothing may run
    asm.line("budget off")
    assert asm.line("budget").out.strip() == "spent $0.0000 / budget none"


def test_cell_policy_options(ip, asm):
    asm.cell("--deny-tools Read,Bash --out r")
    r = ip.user_ns["r"]
    assert r.error.code == "policy_violation" and r.error.details["tool_name"] == "Read"
    assert [e.type.value for e in r.events][-3:] == ["policy_violation", "tool_call_failed", "run_failed"]
    assert r.tool_calls[-1]["reason"] == "policy_denied"  # the row is closed, not left running

    asm.cell("--max-tokens 1500 --on-violation warn --out w")
    w = ip.user_ns["w"]
    assert w.ok and w.policy["action"] == "warn" and w.policy["violations"][0]["details"]["metric"] == "total_tokens"

    asm.cell("--max-tool-calls 0 --out z")  # preflight: zero budget
    assert ip.user_ns["z"].error.details["check"] == "zero_budget"

    asm.cell("--budget 0.005 --out b")
    b = ip.user_ns["b"]
    assert b.error.details["limit"] == "max_cost_usd" and b.error.details["limit_value"] == 0.005

    err = asm.cell("--on-violation explode").err
    assert "UsageError" in err and "explode" in err


def test_policy_command_shows_the_stack(asm):
    assert asm.line("policy").out.startswith("no policy")
    asm.line("budget 2")
    out = asm.line("policy --max-tokens 500 --deny-tools Bash --on-violation warn").out
    assert "1. kernel: max_total_tokens=500, deny Bash; on violation warn" in out
    assert "2. kernel budget: max_cost_usd=2; on violation cancel" in out
    assert "effective: kernel + kernel budget: max_total_tokens=500, max_cost_usd=2, deny Bash; " \
           "on violation cancel" in out
    assert "kernel budget: spent $0.0000 / budget $2.0000" in out
    assert "bad %asm policy options" in asm.line("policy --max-tokens lots").err
    assert asm.line("policy clear").out.strip() == "kernel policy cleared"


def test_kernel_policy_applies_to_cells(ip, asm):
    asm.line("policy --deny-tools Read")
    asm.cell("--out r")
    assert ip.user_ns["r"].error.details["tool_name"] == "Read"


def test_health_table_never_prints_the_key(asm, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-very-secret-key-123")
    out = asm.line("health").out
    assert "sk-ant-very-secret-key-123" not in out
    from asm_nb.providers import available_providers

    lines = out.splitlines()
    assert lines[0].split() == ["provider", "available", "detail", "circuit", "failures", "last_failure"]
    for name in available_providers():
        assert any(line.split()[0] == name for line in lines[2:]), name
    claude = next(line for line in lines if line.startswith("claude "))
    assert "ANTHROPIC_API_KEY set" in claude and " closed " in claude


# -- the live widget: spent / budget in the footer, Approve / Deny answer the policy ----------

def _cell_args(**kw):
    import argparse

    base = dict(budget=None, max_tokens=None, max_tool_calls=None, timeout=None, deny_tools=None,
                allow_tools=None, on_violation=None)
    return argparse.Namespace(**{**base, **kw})


@pytest.fixture
def widget_run(tmp_path):
    pytest.importorskip("ipywidgets")
    import asm_nb
    from asm_nb.notebook import guard
    from asm_nb.notebook.widgets import make_live_view

    cas = c.build_cassette(spend_events(), provider="claude", model="claude-sonnet-4-5").write(tmp_path / "w.jsonl")

    def run(view, policy, on_event=None):
        return asm_nb.run_once("go", provider="replay", store="memory://",
                               policy=policy, on_event=on_event or view.on_event,
                               options={"cassette": str(cas), "impersonate": True})

    yield make_live_view, run
    guard.BUDGET.budget_usd, guard.BUDGET.spent_usd, guard.BUDGET.runs = None, 0.0, 0


def _footer_text(view):
    return " ".join(getattr(w, "value", "") for w in view.widget._footer.children)


def test_widget_footer_shows_spent_over_budget(widget_run):
    from asm_nb.notebook import guard

    make_view, run = widget_run
    guard.BUDGET.budget_usd = 1.0
    view = make_view(provider="claude")
    policy = guard.cell_policy(_cell_args(), view)
    assert "spent $0.0000 / budget $1.0000" in _footer_text(view)
    result = run(view, policy)
    view.finish(result)
    assert result.ok and "spent $0.0180 / budget $1.0000" in _footer_text(view)
    assert guard.BUDGET.spent_usd == pytest.approx(0.018)


@pytest.mark.parametrize("decision", ["approve", "deny"])
def test_widget_buttons_answer_the_policy_approval(widget_run, decision):
    import threading

    from asm_nb.notebook import guard

    make_view, run = widget_run
    view = make_view(provider="claude")
    policy = guard.cell_policy(_cell_args(deny_tools="Read", on_violation="ask"), view)
    clicked = threading.Event()

    def on_event(ev):
        view.on_event(ev)
        if ev["type"] == "tool_approval_requested":  # the approval bar is showing: click
            assert view.widget.state.approval["tool_name"] == "Read"
            threading.Thread(target=lambda: (getattr(view.widget, decision)(), clicked.set())).start()

    result = run(view, policy, on_event)
    assert clicked.wait(5)
    types = [e.type.value for e in result.events]
    if decision == "approve":
        assert result.ok and "tool_approval_granted" in types and "tool_call_completed" in types
    else:
        assert result.error.code == "policy_violation"
        assert types[-3:] == ["tool_approval_denied", "tool_call_failed", "run_failed"]
