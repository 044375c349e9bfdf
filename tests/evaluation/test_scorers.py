"""Every scorer kind on real runs: text, @scorer functions, trajectory, workspace, model-graded
(recorded once, then replayed offline)."""

from __future__ import annotations

import re

import pytest

import asm_nb
from asm_nb.core.errors import AsmError
from asm_nb.evaluation import scorers as sc
from asm_nb.evaluation.dataset import Item
from asm_nb.evaluation.scorers import Sample
from asm_nb.testing import ScriptedAdapter, example_cassette


def sample(output, expected=None, result=None):
    res = result or asm_nb.run_once(f"printf %s {output!r}", provider="shell", store="memory://")
    return Sample(item=Item(id="0", input="q", expected=expected), agent=None, repeat=0, result=res)


@pytest.fixture(scope="module")
def tools_run():
    return asm_nb.run_once("fix it", provider="replay", store="memory://",
                           options={"cassette": example_cassette("tools")})


def test_text_scorers_pass_and_fail_with_explanations():
    s = sample("The answer is 42.", expected="42")
    assert sc.contains()(s).passed and not sc.contains("43")(s).passed
    assert "missing '43'" in sc.contains("43")(s).explanation
    assert sc.contains(["answer", "42"])(s).value == 1.0
    assert sc.contains(["answer", "nope"])(s).value == 0.5
    assert not sc.exact()(s).passed and sc.exact("the answer IS 42.", ignore_case=True)(s).passed
    assert sc.regex(r"answer is \d+")(s).passed and not sc.regex(r"^\d+$")(s).passed
    assert sc.number(tolerance=0)(s).passed
    assert sc.number(40, tolerance=2)(s).passed and not sc.number(40, tolerance=1)(s).passed
    assert sc.number(40, tolerance=0.05, relative=True)(s).passed
    assert not sc.number(1)(sample("no digits")).passed


def test_json_match_exact_subset_and_fenced():
    s = sample('Here: ```json\n{"a": 1, "b": [2]}\n```')
    assert sc.json_match({"a": 1, "b": [2]})(s).passed
    assert not sc.json_match({"a": 1})(s).passed
    assert sc.json_match('{"a": 1}', subset=True)(s).passed
    assert sc.json_match({"a": 2}, subset=True)(s).explanation.startswith("JSON differs")
    assert sc.json_match({"a": 1})(sample("not json")).explanation == "output is not JSON"


def test_missing_expected_is_a_scorer_error_not_a_crash():
    s = sample("x")
    score = sc.exact()(s)
    assert score.value is None and not score.passed and "no expected value" in score.explanation


def test_function_scorers_take_parameters_by_name():
    @asm_nb.scorer
    def short(output):
        return len(output) < 10, f"{len(output)} chars"

    @asm_nb.scorer(threshold=0.5, name="half")
    def ratio(output, expected):
        return sum(c in output for c in expected) / len(expected)

    @asm_nb.scorer
    def whole(s):
        return {"value": 0.25, "passed": True, "explanation": s.output}

    @asm_nb.scorer
    def broken(output):
        raise RuntimeError("boom")

    s = sample("abc", expected="abxy")
    assert short(s).passed and short(s).explanation == "3 chars"
    r = ratio(s)
    assert r.name == "half" and r.value == 0.5 and r.passed
    assert whole(s).value == 0.25 and whole(s).explanation == "abc"
    b = broken(s)
    assert not b.passed and b.value is None and "boom" in b.explanation
    with pytest.raises(AsmError):
        asm_nb.scorer(lambda output, nonsense: True)


def test_trajectory_scorer_checks_calls_order_args_and_limits(tools_run):
    s = sample("", result=tools_run)
    ok = (sc.trajectory().called("bash", command=re.compile(r"pytest")).then("read_file").then("edit_file")
          .never_called("write_file").max_tool_calls(5).max_steps(10).cost_below(0.05).duration_below(60))
    score = ok(s)
    assert score.passed and score.value == 1.0, score.explanation
    bad = sc.trajectory().called("edit_file").then("read_file").never_called("bash").max_tool_calls(3)
    score = bad(s)
    assert not score.passed and score.value == pytest.approx(1 / 4)
    assert "no call matching read_file after edit_file" in score.explanation
    assert "bash was called (call #1, #5)" in score.explanation
    assert "tool calls 5 > 3" in score.explanation
    assert not sc.trajectory().called("bash", command="ls")(s).passed
    assert not sc.trajectory().cost_below(0.001)(s).passed


def test_model_graded_records_then_replays_offline(tmp_path):
    grader = ScriptedAdapter([{"content": "Looks right.\nGRADE: PASS\nSCORE: 0.8"}], name="claude")
    s = sample("Paris", expected="Paris")
    rubric = sc.model_graded("The answer names the capital of France.", provider=grader, cassettes=tmp_path)
    first = rubric(s)
    assert first.passed and first.value == 0.8 and first.explanation == "Looks right."
    assert len(grader.calls) == 1
    assert len(list(tmp_path.glob("grade-*.jsonl"))) == 1
    # offline: a grader that would fail is never called; the recorded grade replays
    failing = ScriptedAdapter([AsmError("provider_unavailable", "offline")], name="claude")
    replayed = sc.model_graded("The answer names the capital of France.", provider=failing, cassettes=tmp_path,
                               record="none")(s)
    assert replayed.passed and replayed.value == 0.8 and failing.calls == []
    # another answer has no recording: record="none" says so instead of calling the provider
    other = sc.model_graded("The answer names the capital of France.", provider=failing, cassettes=tmp_path,
                            record="none")(sample("Lyon", expected="Paris"))
    assert not other.passed and "no recorded grade" in other.explanation and failing.calls == []


def test_model_graded_fail_and_unparseable():
    s = sample("Lyon", expected="Paris")
    fail = sc.model_graded("capital", provider=ScriptedAdapter([{"content": "Wrong city. GRADE: FAIL"}]))(s)
    assert not fail.passed and fail.value == 0.0
    junk = sc.model_graded("capital", provider=ScriptedAdapter([{"content": "I think so"}]))(s)
    assert not junk.passed and junk.value is None and "no GRADE line" in junk.explanation


def test_scorer_specs():
    assert sc.scorer_from_spec({"type": "contains", "text": "x"}).kind == "text"
    t = sc.scorer_from_spec({"type": "trajectory", "called": ["a", "b"], "never_called": "c", "max_tool_calls": 3})
    assert t.kind == "trajectory" and len(t.checks) == 4
    assert sc.scorer_from_spec({"type": "command", "command": "true"}).kind == "workspace"
    with pytest.raises(AsmError):
        sc.scorer_from_spec({"type": "nope"})
    names = [s.name for s in sc.as_scorers([sc.contains("a"), sc.contains("b")])]
    assert names == ["contains", "contains_2"]
