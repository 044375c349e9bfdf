"""Layering rule: ``asm_nb/core/`` imports only the standard library and ``asm_nb.core`` itself."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import asm_nb.core

CORE_DIR = Path(asm_nb.core.__file__).parent
MODULES = sorted(CORE_DIR.glob("*.py"))
STDLIB = sys.stdlib_module_names


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``; relative imports resolved."""
    package = "asm_nb.core"
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                if node.module is None:  # ``from .. import config`` names modules in its aliases
                    found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
                    continue
                name = f"{base}.{node.module}"
            else:
                name = node.module or ""
            found.append((node.lineno, name))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in (
                "import_module", "__import__"):
            found.append((node.lineno, "<dynamic import>"))
    return found


def _allowed(name: str) -> bool:
    if name == "asm_nb.core" or name.startswith("asm_nb.core."):
        return True
    return name.split(".")[0] in STDLIB


def test_core_has_modules():
    names = {p.stem for p in MODULES}
    assert {"errors", "serialization", "events", "session", "run", "capabilities", "manifest", "registry",
            "transcript", "event_stream", "permission"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_module_imports_only_stdlib_and_core(path):
    bad = [(line, name) for line, name in _imports(path) if not _allowed(name)]
    assert bad == [], f"{path.name} imports outside stdlib/asm_nb.core: {bad}"


def test_checker_catches_violations(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import os\nimport pandas\nfrom .. import config\nfrom .events import Event\n"
                      "import importlib\nimportlib.import_module('x')\n")
    bad = [name for _, name in _imports(sample) if not _allowed(name)]
    assert bad == ["pandas", "asm_nb.config", "<dynamic import>"]


def test_importing_core_loads_no_third_party_or_upper_layer_module():
    # compare against what the interpreter already loaded (site .pth hooks may import packages)
    code = ("import sys\n"
            "before = set(sys.modules)\n"
            "import asm_nb.core\n"
            "new = sorted(set(sys.modules) - before)\n"
            "print([m for m in new if not (m.split('.')[0] in sys.stdlib_module_names or m == 'asm_nb'"
            " or m.startswith('asm_nb.core') or m.startswith('_'))])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
