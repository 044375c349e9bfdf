"""Extras mean what they say: every third-party package asm_nb imports is a core dependency or
in a user extra (so `pip install asm_nb[all]` runs every feature without the test tools), `all`
is exactly the user extras, and the test tools live only in `test` / `dev`."""

from __future__ import annotations

import ast
import pathlib
import re
import sys
from importlib.metadata import packages_distributions

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

REPO = pathlib.Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
EXTRAS = PROJECT["optional-dependencies"]
USER_EXTRAS = {"notebook", "claude", "sql", "s3", "dask", "otel", "lab", "eval", "acp", "images"}


def _name(req: str) -> str:
    return re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0].lower().replace("_", "-")


def _expand(reqs: list[str]) -> set[str]:
    out: set[str] = set()
    for r in reqs:
        m = re.fullmatch(r"asm_nb\[([^\]]+)\]", r.replace(" ", ""))
        if m:
            for extra in m.group(1).split(","):
                out |= _expand(EXTRAS[extra])
        else:
            out.add(_name(r))
    return out


def _third_party_imports() -> set[str]:
    mods: set[str] = set()
    for path in (REPO / "asm_nb").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                mods |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods.add(node.module.split(".")[0])
    return {m for m in mods if m not in sys.stdlib_module_names and m not in ("asm_nb", "__future__")}


def test_all_is_exactly_the_user_features_and_dev_adds_the_test_tools():
    assert set(EXTRAS) >= USER_EXTRAS | {"all", "test", "dev"}
    assert _expand(EXTRAS["all"]) == _expand([f"asm_nb[{','.join(sorted(USER_EXTRAS))}]"])
    assert not ({"pytest", "nbval", "moto", "playwright", "hypothesis"} & _expand(EXTRAS["all"]))
    assert _expand(EXTRAS["dev"]) >= _expand(EXTRAS["all"]) | _expand(EXTRAS["test"])


def _closure(names: set[str], extras_of: dict[str, set[str]]) -> set[str]:
    """``names`` and everything they require (installed metadata; requested extras followed)."""
    from importlib.metadata import PackageNotFoundError, requires

    seen: set[str] = set()
    todo = [(n, frozenset(extras_of.get(n, ()))) for n in names]
    while todo:
        name, extras = todo.pop()
        key = f"{name}{sorted(extras)}"
        if key in seen:
            continue
        seen.add(key)
        try:
            reqs = requires(name) or []
        except PackageNotFoundError:
            continue
        for r in reqs:
            req, _, marker = r.partition(";")
            m = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
            if m and m.group(1) not in extras:
                continue
            sub = re.search(r"\[([^\]]+)\]", req)
            todo.append((_name(req), frozenset(x.strip() for x in sub.group(1).split(",")) if sub else frozenset()))
    return {k.split("[")[0] for k in seen}


def _declared_with_extras(reqs: list[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in reqs:
        m = re.fullmatch(r"asm_nb\[([^\]]+)\]", r.replace(" ", ""))
        if m:
            for extra in m.group(1).split(","):
                for k, v in _declared_with_extras(EXTRAS[extra]).items():
                    out.setdefault(k, set()).update(v)
            continue
        sub = re.search(r"\[([^\]]+)\]", r)
        out.setdefault(_name(r), set()).update(x.strip() for x in sub.group(1).split(",")) if sub else \
            out.setdefault(_name(r), set())
    return out


def test_every_package_asm_nb_imports_is_declared_outside_the_test_tools():
    user = _declared_with_extras(PROJECT["dependencies"] + EXTRAS["all"])
    declared = _closure(set(user), user)
    dists = packages_distributions()
    # asm_nb.testing is public and may use the test tools only where a test framework is the point
    allowed_test_only = {"pytest"}
    missing = {}
    for mod in sorted(_third_party_imports()):
        names = {d.lower().replace("_", "-") for d in dists.get(mod, [])}
        if not names:
            continue  # not installed here: optional import guarded at run time
        if not names & declared and not names & allowed_test_only:
            missing[mod] = sorted(names)
    assert not missing, f"imported by asm_nb but only in test/dev or nowhere: {missing}"
