"""diff_runs alignment and deltas, %asm diff RUN_A RUN_B, and expect(run)."""

from __future__ import annotations

import re

import pytest

import asm_nb
from asm_nb.evaluation.rundiff import align_calls
from asm_nb.testing import build_cassette, example_cassette, expect


def call(name, **inp):
    return {"name": name, "input": inp}


def test_alignment_marks_same_changed_inserted_and_removed():
    a = [call("read", p="a"), call("edit", p="a"), call("bash", c="pytest"), call("done")]
    b = [call("read", p="a"), call("edit", p="b"), call("grep", q="x"), call("bash", c="pytest")]
    ops = [(r["op"], (r["a"] or {}).get("name"), (r["b"] or {}).get("name")) for r in align_calls(a, b)]
    assert ops == [("same", "read", "read"), ("args_differ", "edit", "edit"), ("only_b", None, "grep"),
                   ("same", "bash", "bash"), ("only_a", "done", None)]
    assert align_calls([], []) == []


def _replay(store, cassette, prompt="go"):
    return asm_nb.run_once(prompt, provider="replay", store=store, options={"cassette": cassette})


def test_diff_runs_from_the_store(tmp_path):
    store = str(tmp_path / "st")
    a = _replay(store, example_cassette("tools"))
    events = [("run_started", {"model": "claude-sonnet-4-5"}),
              ("tool_call_started", {"tool_call_id": "t1", "tool_name": "bash", "tool_input": {"command": "pytest -q tests/test_convert.py"}}),
              ("tool_call_completed", {"tool_call_id": "t1", "tool_name": "bash", "tool_output": "ok"}),
              ("tool_call_started", {"tool_call_id": "t2", "tool_name": "write_file", "tool_input": {"path": "x"}}),
              ("tool_call_completed", {"tool_call_id": "t2", "tool_name": "write_file", "tool_output": "ok"}),
              ("message_received", {"content": "Done differently."}),
              ("token_usage_updated", {"input_tokens": 10, "output_tokens": 5}),
              ("run_completed", {"stop_reason": "end_turn"})]
    cas = tmp_path / "b.jsonl"
    build_cassette(events, provider="claude", model="claude-sonnet-4-5").write(cas)
    b = _replay(store, cas)
    d = asm_nb.diff_runs(a.run_id, b.run_id, store=store)
    assert d.first_divergence == 1
    assert d.rows[0]["op"] == "same" and d.rows[0]["a"]["name"] == "bash"
    assert d.deltas["tool_calls"] == {"a": 5, "b": 2, "delta": -3}
    assert d.deltas["output_tokens"]["delta"] == 5 - a.token_usage["output_tokens"]
    assert d.deltas["cost_usd"]["delta"] == pytest.approx(b.cost_usd - a.cost_usd)
    assert not d.deltas["output"]["same"] and "+Done differently." in d.deltas["output"]["diff"]
    text = d.text()
    assert "first divergence at step 2" in text and text.splitlines()[5].startswith(">")
    html = d._repr_html_()
    assert "first divergence" in html and a.run_id in html
    same = asm_nb.diff_runs(a, a)
    assert same.first_divergence is None and same.deltas["output"]["same"]


def test_asm_diff_magic_with_two_runs(tmp_path, capsys):
    from asm_nb.notebook.diffview import diff_command

    store = str(tmp_path / "st")
    a = asm_nb.run_once("echo one", provider="shell", store=store)
    b = asm_nb.run_once("echo two", provider="shell", store=store)
    assert diff_command(None, [a.run_id, b.run_id, "--store", store, "--text"]) is None
    out = capsys.readouterr().out
    assert f"run A {a.run_id}" in out and "-one" in out and "+two" in out and "first divergence at step 1" in out
    view = diff_command(None, [a.run_id, b.run_id, "--store", store])
    assert "asm-rundiff" in view._repr_mimebundle_()["text/html"]
    from asm_nb.notebook.magics import UsageError

    with pytest.raises(UsageError, match="Run not found"):
        diff_command(None, [a.run_id, "run_nope", "--store", store])


def test_expect_passes_and_fails_with_the_trajectory_in_the_message():
    run = asm_nb.run_once("fix", provider="replay", store="memory://", options={"cassette": example_cassette("tools")})
    (expect(run).succeeded().called("bash", command=re.compile("pytest")).then("read_file").then("edit_file")
     .then("bash").never_called("write_file").max_tool_calls(5).cost_below(0.10).duration_below(60)
     .output_contains(run.output[:10]))
    expect(run).called("edit_file", times=2)
    with pytest.raises(AssertionError, match=r"expected no call to bash, but bash was called \(call #1, #5\) "
                                             r"in run run_\w+; tool calls: bash, read_file, edit_file, edit_file, bash"):
        expect(run).never_called("bash")
    with pytest.raises(AssertionError, match="expected read_file after edit_file"):
        expect(run).called("edit_file").then("read_file")
    with pytest.raises(AssertionError, match="at most 4 tool calls, got 5"):
        expect(run).max_tool_calls(4)
    with pytest.raises(AssertionError, match=r"cost below \$0.01"):
        expect(run).cost_below(0.01)
    with pytest.raises(AssertionError, match="expected a call to grep"):
        expect(run).called("grep")
    with pytest.raises(ValueError):
        expect(run).then("bash")
    failed = asm_nb.run_once("exit 3", provider="shell", store="memory://")
    with pytest.raises(AssertionError, match="expected the run to complete, it ended failed"):
        expect(failed).succeeded()
