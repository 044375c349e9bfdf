"""Issue 18 items 9-12: bad input to ``asm`` and ``%%asm`` is one clear line (no traceback, exit
status 2 for the CLI), names the option and suggests the closest valid one; failed cells show
their error; read-only commands never create a store."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from asm_nb.cli import main


def asm(capsys, *argv):
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def one_line(err: str) -> bool:
    return err.strip().count("\n") == 0 and "Traceback" not in err and err.strip() != ""


@pytest.fixture
def store(tmp_path, capsys):
    path = str(tmp_path / "store")
    assert main(["run", "true", "--store", path, "-q"]) == 0
    capsys.readouterr()
    return path


CASES = [
    (["run", "-o", "cwd=5", "true"], "use --cwd"),
    (["run", "-o", 'success_exit_codes="abc"', "true"], "success_exit_codes must be a list of integers"),
    (["run", "-o", "nosuchopt=1", "true"], "Unknown shell option 'nosuchopt'"),
    (["run", "-o", "timout_ms=5", "true"], "did you mean 'timeout_ms'"),
    (["run", "-o", "novalue", "true"], "expects KEY=VALUE"),
    (["run", "-o", "timeout_ms=NaN", "true"], "NaN"),
    (["run", "--timeout", "nan", "true"], "--timeout"),
    (["run", "--timeout", "-1", "true"], "--timeout"),
    (["run", "--budget", "abc", "true"], "--budget"),
    (["run", "--allow-tools", "bash", "--deny-tools", "bash", "true"], "both allowed and denied"),
    (["run", "echo a\x00b"], "NUL"),
    (["run", "-p", "shel", "true"], "did you mean 'shell'"),
    (["run", "--budgte", "1", "true"], "did you mean '--budget'"),
    (["rnu", "true"], "did you mean 'run'"),
    (["runs", "--limit", "-1"], "--limit"),
    (["sessions", "--limit", "x"], "--limit"),
]


@pytest.mark.parametrize("argv,expected", CASES, ids=[" ".join(c[0]).replace("\x00", "NUL") for c in CASES])
def test_bad_cli_input_is_one_line(store, capsys, argv, expected):
    rc, out, err = asm(capsys, *argv, "--store", store)
    assert rc == 2, (rc, out, err)
    assert one_line(err), err
    assert expected in err, err


def test_export_to_proc_and_to_an_unwritable_folder(store, tmp_path, capsys):
    rc, _, err = asm(capsys, "export", "/proc/x", "--store", store, "--format", "jsonl")
    assert rc == 2 and one_line(err) and "/proc/x" in err
    if os.geteuid() == 0:
        target = "/proc/1/nope"  # root ignores folder permissions; /proc refuses everyone
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
        target = str(ro / "out")
    rc, _, err = asm(capsys, "export", target, "--store", store, "--format", "jsonl")
    assert rc == 2 and one_line(err) and "storage_error" in err


def test_a_store_file_replaced_by_a_folder(store, capsys):
    runs = next(str(p) for p in sorted(Path(store, "db").iterdir()) if p.name.startswith("runs"))
    os.replace(runs, runs + ".bak")
    os.mkdir(runs)
    rc, _, err = asm(capsys, "runs", "--store", store)
    assert rc == 2 and one_line(err), err


def test_runs_limit_zero_and_positive(store, capsys):
    assert main(["run", "true", "--store", store, "-q"]) == 0
    capsys.readouterr()
    rc, out, _ = asm(capsys, "runs", "--store", store, "--limit", "1", "--json")
    assert rc == 0 and out.count("\"run_id\"") == 1
    rc, out, _ = asm(capsys, "runs", "--store", store, "--limit", "0", "--json")
    assert rc == 0 and out.strip() == "[]"


# -- item 12: read-only commands never create a store ------------------------------------------

@pytest.mark.parametrize("cmd", [["runs"], ["sessions"], ["cost"], ["events", "run_x"], ["gc", "--dry-run"],
                                 ["export", "OUT"]])
def test_read_only_commands_do_not_create_a_store(tmp_path, capsys, cmd):
    typo = tmp_path / "typo" / "path"
    argv = [str(tmp_path / "out") if a == "OUT" else a for a in cmd]
    rc, _, err = asm(capsys, *argv, "--store", str(typo))
    assert rc == 2 and one_line(err) and str(typo) in err
    assert not (tmp_path / "typo").exists()


def test_copy_from_a_typo_creates_nothing(tmp_path, capsys):
    rc, _, err = asm(capsys, "copy", str(tmp_path / "typo"), str(tmp_path / "dst"), "--no-progress")
    assert rc == 2 and one_line(err) and "typo" in err
    assert not (tmp_path / "typo").exists() and not (tmp_path / "dst").exists()


def test_a_folder_that_is_not_a_store_is_named_not_converted(tmp_path, capsys):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    rc, _, err = asm(capsys, "runs", "--store", str(tmp_path / "notes"))
    assert rc == 2 and "not an asm_nb store" in err
    assert sorted(p.name for p in (tmp_path / "notes").iterdir()) == ["a.txt"]


def test_sidebar_endpoint_on_a_non_store_asm_folder(tmp_path):
    from asm_nb.server_ext import list_sessions

    folder = tmp_path / ".asm"
    folder.mkdir()
    (folder / "mine.txt").write_text("not a store")
    answer = list_sessions(folder)
    assert answer["exists"] is False and str(folder) in answer["error"]
    assert sorted(p.name for p in folder.iterdir()) == ["mine.txt"]


# -- the magics (items 9-11) ----------------------------------------------------------------------

@pytest.fixture
def cell(tmp_path, capsys):
    pytest.importorskip("IPython")
    from IPython import get_ipython
    from IPython.testing.globalipapp import start_ipython

    ip = start_ipython() or get_ipython()
    ip.run_line_magic("load_ext", "asm_nb")
    ip.run_line_magic("asm", f"store {tmp_path / 'mstore'}")
    ip.run_line_magic("asm", "config renderer=studio provider=shell")
    capsys.readouterr()

    def run(line, body):
        ip.run_cell_magic("asm", line, body)
        return capsys.readouterr()

    yield run
    from asm_nb.notebook import magics

    magics._KERNEL_DEFAULTS.clear()


MAGIC_CASES = [
    ("--timeout nan", "echo hi", "--timeout"),
    ("--timeout -1", "echo hi", "--timeout"),
    ("--max-turns -3", "echo hi", "--max-turns"),
    ("-p replay", "hi", "needs a cassette"),
    ("--allow-tools bash --deny-tools bash", "echo hi", "both allowed and denied"),
    ("--rollback-on-failure", "false", "needs --snapshot"),
    ("", "echo a\x00b", "NUL"),
    ("--timout 1", "echo hi", "did you mean '--timeout'"),
    ("-p shel", "echo hi", "did you mean 'shell'"),
]


@pytest.mark.parametrize("line,body,expected", MAGIC_CASES, ids=[c[0] or "nul" for c in MAGIC_CASES])
def test_bad_magic_input_is_one_line(cell, line, body, expected):
    out = cell(line, body)
    assert one_line(out.err), out.err
    assert expected in out.err


def test_every_failed_cell_shows_its_error(cell, tmp_path):
    out = cell(f"--snapshot --rollback-on-failure --cwd {tmp_path}", "false")  # not a git repo
    assert one_line(out.err) and "rollback_on_failure" in out.err
    out = cell("", "exit 3")
    assert "asm: [" in out.err and out.err.strip().count("\n") == 0
