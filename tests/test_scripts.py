"""The set-up and quickstart scripts: a failing quickstart cell is printed with its error and the
script exits non-zero; set-up refuses an old Node.js with instructions; the scripts never fall
back to the system Python."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import nbformat
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def _notebook(path: pathlib.Path, *sources: str) -> pathlib.Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)
    return path


def _quickstart(tmp_path: pathlib.Path, notebook: pathlib.Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "ASM_QUICKSTART_NOTEBOOK": str(notebook),
           "ASM_QUICKSTART_OUT": str(tmp_path / "out")}
    return subprocess.run(["bash", str(REPO / "scripts" / "quickstart.sh"), "--no-setup"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=240)


@pytest.mark.kernel
def test_a_failing_quickstart_cell_is_printed_with_its_error_and_fails_the_script(tmp_path):
    nb = _notebook(tmp_path / "broken.ipynb", "print('first cell ran')", "ratio = 1 / 0  # the broken cell",
                   "print('never reached')")
    p = _quickstart(tmp_path, nb)
    assert p.returncode != 0, p.stdout + p.stderr
    assert "code cell 2:" in p.stderr and ">>> ratio = 1 / 0  # the broken cell" in p.stderr
    assert "ZeroDivisionError: division by zero" in p.stderr
    assert "first cell ran" in p.stdout and "never reached" not in p.stdout + p.stderr
    assert (tmp_path / "out" / "broken.executed.ipynb").is_file()  # the partial run is kept


@pytest.mark.kernel
def test_a_passing_notebook_prints_its_cells_and_outputs(tmp_path):
    nb = _notebook(tmp_path / "fine.ipynb", "x = 6 * 7\nprint('answer', x)")
    p = _quickstart(tmp_path, nb)
    assert p.returncode == 0, p.stderr
    assert ">>> x = 6 * 7\n... print('answer', x)" in p.stdout and "answer 42" in p.stdout
    assert (tmp_path / "out" / "fine.executed.html").is_file()


def _tools(tmp_path: pathlib.Path, *names: str) -> pathlib.Path:
    """A bin folder with only the named system tools (so node/npm are absent unless faked)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for n in names:
        found = shutil.which(n)
        if found:
            (bin_dir / n).symlink_to(found)
    return bin_dir


BASIC = ("bash", "date", "dirname", "cat", "sed", "awk", "grep", "id", "env", "basename", "head")


def test_setup_refuses_node_18_and_says_how_to_get_20(tmp_path):
    bin_dir = _tools(tmp_path, *BASIC)
    node = bin_dir / "node"
    node.write_text("#!/bin/sh\ncase \"$1\" in -p) echo 18;; *) echo v18.19.0;; esac\n")
    node.chmod(0o755)
    (bin_dir / "npm").write_text("#!/bin/sh\necho 9.2.0\n")
    (bin_dir / "npm").chmod(0o755)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "PYTHON": sys.executable, "ASM_SKIP_APT": "1"}
    p = subprocess.run(["bash", str(REPO / "scripts" / "setup.sh")], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "Node.js >= 20" in p.stderr and "found: v18.19.0" in p.stderr
    assert "NodeSource" in p.stderr and "Ubuntu 24.04" in p.stderr
    assert "pip install" not in p.stdout  # stopped before touching the Python environment


def test_scripts_never_fall_back_to_the_system_python(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHON"}
    p = subprocess.run(["bash", "-c", f". {REPO}/scripts/_python.sh; asm_use_python; echo $PY"], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "run: bash scripts/setup.sh" in p.stderr and "PYTHON=" in p.stderr
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").symlink_to(sys.executable)
    p = subprocess.run(["bash", "-c", f". {REPO}/scripts/_python.sh; asm_use_python; echo $PY; echo $PATH"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    py, path = p.stdout.splitlines()
    assert py == f"{tmp_path}/.venv/bin/python" and path.startswith(f"{tmp_path}/.venv/bin:")
    p = subprocess.run(["bash", "-c", f". {REPO}/scripts/_python.sh; asm_use_python; echo $PY"], cwd=tmp_path,
                       env={**env, "PYTHON": sys.executable}, capture_output=True, text=True, timeout=30)
    assert p.stdout.strip() == sys.executable  # a developer's PYTHON wins over .venv
