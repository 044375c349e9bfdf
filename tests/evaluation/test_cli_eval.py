"""``asm eval SPEC``: a real subprocess; exit 0 when thresholds are met, 1 when one fails, 2 for a
bad spec (one line, no traceback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def asm(*args, cwd):
    env = {**os.environ, "PYTHONPATH": ROOT, "ASM_HOME": str(cwd / "home")}
    return subprocess.run([sys.executable, "-m", "asm_nb.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=120)


SPEC = """
name = "cli-eval"
concurrency = 2
store = "evalstore"

[dataset]
path = "items.jsonl"
workspace = "fixtures/{{fixture}}"

[agents.fixer]
provider = "shell"

[agents.lazy]
provider = "shell"
options = {{ env = {{ LAZY = "1" }} }}

[[scorers]]
type = "command"
command = "grep -q fixed bug.txt"

[[scorers]]
type = "trajectory"
called = ["bash"]
never_called = ["edit_file"]

[thresholds]
pass_rate = {pass_rate}
"""


def write_project(tmp_path, pass_rate):
    (tmp_path / "fixtures" / "p").mkdir(parents=True)
    (tmp_path / "fixtures" / "p" / "bug.txt").write_text("broken\n")
    cmd = 'if [ -z "$LAZY" ]; then echo fixed > bug.txt; fi; echo done'
    (tmp_path / "items.jsonl").write_text("\n".join(json.dumps({"id": f"b{n}", "input": cmd, "fixture": "p"})
                                                    for n in range(2)) + "\n")
    (tmp_path / "eval.toml").write_text(SPEC.format(pass_rate=pass_rate))


def test_thresholds_met_exit_0_and_failed_exit_1(tmp_path):
    write_project(tmp_path, 0.0)
    ok = asm("eval", "eval.toml", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "thresholds: met" in ok.stdout and "fixer" in ok.stdout and "lazy" in ok.stdout
    (tmp_path / "eval.toml").write_text(SPEC.format(pass_rate=0.9))
    bad = asm("eval", "eval.toml", "--json", cwd=tmp_path)
    assert bad.returncode == 1, bad.stderr
    out = json.loads(bad.stdout.strip().splitlines()[-1])
    assert out["failures"] == ["lazy: pass_rate 0.000 < 0.9"]
    rates = {r["agent"]: r["pass_rate"] for r in out["summary"]}
    assert rates == {"fixer": 1.0, "lazy": 0.0}
    # the second run resumed from the spec's store: nothing ran again
    assert (tmp_path / "evalstore").is_dir()


def test_yaml_spec(tmp_path):
    write_project(tmp_path, 0.0)
    (tmp_path / "eval.yaml").write_text(
        "name: y\ndataset:\n  items:\n    - {input: 'echo hi', expected: hi}\nagents:\n  a: shell\n"
        "scorers:\n  - {type: contains}\nthresholds:\n  mean_score: 1.0\n")
    p = asm("eval", "eval.yaml", cwd=tmp_path)
    assert p.returncode == 0, p.stderr + p.stdout


def test_bad_specs_exit_2_with_one_line(tmp_path):
    (tmp_path / "broken.toml").write_text("name = [\n")
    (tmp_path / "nodataset.toml").write_text('name = "x"\n[agents.a]\nprovider = "shell"\n')
    (tmp_path / "typo.toml").write_text('nmae = "x"\n')
    for f, needle in [("broken.toml", "invalid TOML"), ("nodataset.toml", "needs a [dataset]"),
                      ("typo.toml", "unknown key(s) ['nmae']"), ("missing.toml", "not found")]:
        p = asm("eval", f, cwd=tmp_path)
        assert p.returncode == 2, (f, p.stdout, p.stderr)
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("asm: error:") and needle in lines[0], (f, p.stderr)


def test_asm_eval_magic_runs_the_spec_resumes_and_shows_the_matrix(tmp_path, capsys, monkeypatch):
    """``%asm eval SPEC`` in a real IPython shell: the thresholds line, the matrix (an HTML view
    whose ``result`` is the EvalResult), a resumed second run, one-line errors."""
    from IPython import get_ipython
    from IPython.testing.globalipapp import start_ipython

    from asm_nb.notebook.evalview import MatrixView

    write_project(tmp_path, 0.9)
    monkeypatch.chdir(tmp_path)
    ip = start_ipython() or get_ipython()
    ip.run_line_magic("load_ext", "asm_nb")
    capsys.readouterr()
    view = ip.run_line_magic("asm", "eval eval.toml")
    out = capsys.readouterr().out
    assert "FAIL lazy: pass_rate 0.000 < 0.9" in out and "thresholds: failed" in out
    assert isinstance(view, MatrixView) and "asm-evm" in view._repr_mimebundle_()["text/html"]
    result = view.result
    assert {r["agent"]: r["passed"] for r in result.rows} == {"fixer": True, "lazy": False}
    assert str(result.store.root) == str(tmp_path / "evalstore")  # the spec's store
    ip.run_line_magic("asm", "eval eval.toml --text --disagreements")
    text = capsys.readouterr().out
    assert "2 item(s) x 2 agent(s), 2 disagreement(s)" in text and "FAIL" in text
    again = ip.run_line_magic("asm", "eval eval.toml")
    assert all(r["resumed"] for r in again.result.rows)  # nothing ran twice
    capsys.readouterr()
    assert ip.run_line_magic("asm", "eval missing.toml") is None
    err = capsys.readouterr().err
    assert err.startswith("UsageError: %asm eval: eval spec not found") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    ip.run_line_magic("asm", "eval eval.toml --concurrency 0")
    assert "--concurrency must be a positive integer" in capsys.readouterr().err
