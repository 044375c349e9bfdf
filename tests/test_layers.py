"""Layers point one way, checked without import-linter: an AST walk over every module of asm_nb/
finds each import (at module top, inside functions, relative or absolute, ``from asm_nb import
<lazy name>`` and ``importlib.import_module("asm_nb....")``) and fails on any that reaches a higher
layer. The layer order is the one in pyproject.toml ``[tool.importlinter]``."""

from __future__ import annotations

import ast
import pathlib
import sys

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PKG = ROOT / "asm_nb"


def _layers() -> dict[str, int]:
    """Top-level subpackage/module name -> layer rank (0 = lowest)."""
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = next(c for c in conf if c["type"] == "layers")["layers"]
    rank: dict[str, int] = {}
    for i, layer in enumerate(reversed(layers)):
        for name in layer.replace("|", " ").replace(":", " ").split():
            rank[name.strip("()")] = i
    return rank


def _lazy_targets() -> dict[str, str]:
    """``asm_nb.<name>`` lazy public names -> the module that defines them."""
    tree = ast.parse((PKG / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "_LAZY":
            table = ast.literal_eval(node.value)  # type: ignore[arg-type]
            return {k: v.partition(":")[0] for k, v in table.items()}
    raise AssertionError("asm_nb/__init__.py has no _LAZY table")


def _module_name(path: pathlib.Path) -> tuple[str, str]:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    is_pkg = parts[-1] == "__init__"
    if is_pkg:
        parts = parts[:-1]
    name = ".".join(parts)
    return name, name if is_pkg else name.rpartition(".")[0]


def imports_of(source: str, module: str, package: str, lazy: dict[str, str]) -> list[tuple[str, int]]:
    """Every asm_nb module ``source`` imports, with its line number."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "asm_nb":  # from asm_nb import x: a submodule or a lazy public name
                for a in node.names:
                    found.append((lazy.get(a.name, f"asm_nb.{a.name}"), node.lineno))
            else:
                found.append((target, node.lineno))
                found += [(f"{target}.{a.name}", node.lineno) for a in node.names]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
              == "import_module" and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str) and node.args[0].value.startswith("asm_nb.")):
            found.append((node.args[0].value, node.lineno))
    return [(t, ln) for t, ln in found if t == "asm_nb" or t.startswith("asm_nb.")]


def upward_imports(rank: dict[str, int], lazy: dict[str, str]) -> list[str]:
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        module, package = _module_name(path)
        parts = module.split(".")
        if len(parts) < 2 or parts[1] not in rank:
            continue  # the root package (lazy re-exports) and modules outside the layers
        mine = rank[parts[1]]
        for target, line in imports_of(path.read_text(), module, package, lazy):
            tparts = target.split(".")
            if len(tparts) < 2 or tparts[1] not in rank:
                continue
            if rank[tparts[1]] > mine:
                bad.append(f"{path.relative_to(ROOT)}:{line}: {module} imports {target} (a higher layer)")
    return sorted(set(bad))


def test_every_top_level_module_is_in_a_layer():
    rank = _layers()
    names = {p.stem for p in PKG.glob("*.py") if p.stem not in ("__init__", "__main__")}
    names |= {p.parent.name for p in PKG.glob("*/__init__.py")}
    assert sorted(names - set(rank)) == []


def test_no_module_imports_a_higher_layer():
    assert upward_imports(_layers(), _lazy_targets()) == []


@pytest.mark.parametrize("source, expected", [
    ("from ..api import run_once", ["asm_nb.api", "asm_nb.api.run_once"]),
    ("def f():\n    from asm_nb.notebook import magics", ["asm_nb.notebook", "asm_nb.notebook.magics"]),
    ("import asm_nb.cli", ["asm_nb.cli"]),
    ("from asm_nb import frames", ["asm_nb.analytics.frames"]),
    ("import importlib\nimportlib.import_module('asm_nb.notebook.magics')", ["asm_nb.notebook.magics"]),
])
def test_the_walk_sees_every_import_form(source, expected):
    got = [t for t, _ in imports_of(source, "asm_nb.runtime.x", "asm_nb.runtime", _lazy_targets())]
    assert got == expected
