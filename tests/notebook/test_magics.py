"""%%asm and %asm through a real IPython shell (text view; the widget has its own tests)."""

from __future__ import annotations

import pytest

pytest.importorskip("IPython")

from IPython import get_ipython  # noqa: E402
from IPython.testing.globalipapp import start_ipython  # noqa: E402


@pytest.fixture(scope="module")
def ip():
    shell = start_ipython() or get_ipython()  # another module may have started it already
    shell.run_line_magic("load_ext", "asm_nb")
    return shell


@pytest.fixture
def cell(ip, tmp_path, capsys):
    ip.run_line_magic("asm", f"store {tmp_path / 'store'}")
    ip.run_line_magic("asm", "config renderer=studio provider=shell")
    capsys.readouterr()

    def run(line, body):
        ip.run_cell_magic("asm", line, body)
        return capsys.readouterr()

    yield run
    from asm_nb.notebook import magics

    magics._KERNEL_DEFAULTS.clear()


def test_cell_runs_shell_and_binds_result(ip, cell):
    out = cell("--out res", "echo hello-from-cell")
    assert "hello-from-cell" in out.out
    res = ip.user_ns["res"]
    assert res is ip.user_ns["_"]
    assert res.status == "completed" and res.output == "hello-from-cell\n"


def test_text_output_is_deterministic(cell):
    a = cell("", "echo same")
    b = cell("", "echo same")
    assert a.out == b.out and "same" in a.out
    assert "run_" not in a.out and "ses_" not in a.out  # no ids in the default text


def test_interpolation_and_escape(ip, cell):
    ip.user_ns["who"] = "world"
    cell("--out r", "echo hello {who} {{braces}}")
    assert ip.user_ns["r"].output == "hello world {braces}\n"
    # the interpolated prompt is what gets stored
    sent = [e for e in ip.user_ns["r"].events if e.type.value == "message_sent"]
    assert "hello world {braces}" in sent[0].data["content"]


def test_undefined_name_is_a_one_line_error(ip, cell):
    out = cell("", "echo {not_defined_anywhere}")
    assert "not_defined_anywhere" in out.err and "Traceback" not in out.err


def test_magics_are_split_by_domain_and_usage_error_is_ipythons():
    """AsmMagics mixes the cell and the line commands; the one-line UsageError is IPython's own
    (a caller catching IPython's UsageError also catches ours), still printed as one line."""
    from IPython.core.error import UsageError as IPythonUsageError

    from asm_nb.notebook import magics
    from asm_nb.notebook.cell_magic import CellCommands
    from asm_nb.notebook.line_magic import LineCommands

    assert issubclass(magics.AsmMagics, CellCommands) and issubclass(magics.AsmMagics, LineCommands)
    assert issubclass(magics.UsageError, IPythonUsageError)
    assert magics.AsmMagics.magics == {"line": {"asm": "asm"}, "cell": {"asm": "asm"}}


def test_bad_option_is_a_one_line_error(cell):
    out = cell("--no-such-option", "echo x")
    assert "UsageError" in out.err and "Traceback" not in out.err
    out = cell("--renderer fancy", "echo x")
    assert "UsageError" in out.err


def test_failed_run_is_shown_not_raised(ip, cell):
    cell("--out bad", "exit 7")
    assert ip.user_ns["bad"].status == "failed"


def test_session_continuity_across_cells(ip, cell):
    cell("--session diary --out a", "echo one")
    cell("--session diary --out b", "echo two")
    assert ip.user_ns["a"].session_id == ip.user_ns["b"].session_id


def test_line_magic_subcommands(ip, cell, capsys):
    cell("--out r", "echo listed")
    ip.run_line_magic("asm", "sessions")
    ip.run_line_magic("asm", "runs")
    out = capsys.readouterr().out
    assert ip.user_ns["r"].run_id in out and ip.user_ns["r"].session_id in out
    events = ip.run_line_magic("asm", f"events {ip.user_ns['r'].run_id}")
    assert [e.type.value for e in events][-1] == "run_completed"
    shown = ip.run_line_magic("asm", f"show {ip.user_ns['r'].run_id}")
    assert shown.output == "listed\n"
    ip.run_line_magic("asm", "frobnicate")
    err = capsys.readouterr().err
    assert "unknown %asm subcommand" in err and "Traceback" not in err
    ip.run_line_magic("asm", "events run_missing")
    assert "run_not_found" in capsys.readouterr().err


def test_background_run_binds_when_done(ip, cell):
    cell("--background --out bg", "echo later")
    from asm_nb.notebook.magics import _BACKGROUND

    for fut, _state in list(_BACKGROUND.values()):
        fut.result(timeout=30)
    import time

    deadline = time.monotonic() + 10
    while "bg" not in ip.user_ns and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ip.user_ns["bg"].output == "later\n"


def test_acp_agent_command_option(ip, cell, tmp_path):
    pytest.importorskip("acp")
    import pathlib
    import shlex
    import sys

    agent = pathlib.Path(__file__).parents[1] / "providers" / "fake_acp_agent.py"
    cmd = shlex.join([sys.executable, str(agent)])
    out = cell(f"-p acp --agent-command '{cmd}' --cwd {tmp_path} --out res", "hello")
    assert "Hello world" in out.out
    assert ip.user_ns["res"].status == "completed" and ip.user_ns["res"].output == "Hello world"
    err = cell("-p shell --agent-command x", "echo hi")
    assert "--agent-command goes with -p acp" in err.err
