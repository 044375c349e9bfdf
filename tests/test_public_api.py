"""The public surface is pinned, and importing asm_nb stays light."""

from __future__ import annotations

import json
import subprocess
import sys

import asm_nb

HEAVY = ["pandas", "polars", "plotly", "anthropic", "ipywidgets", "sqlalchemy", "boto3", "pyarrow", "IPython"]


def test_exported_members_resolve():
    for name in asm_nb.__all__:
        assert getattr(asm_nb, name) is not None, name


def test_core_names_are_public():
    for name in ["run_once", "arun_once", "open_store", "AsmError", "Event", "EventType", "RunResult"]:
        assert name in asm_nb.__all__


def test_import_asm_nb_imports_no_heavy_library():
    code = ("import sys, json, asm_nb; print(json.dumps(sorted(m for m in " + repr(HEAVY) +
            " if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


def test_all_is_exactly_the_lazy_table_and_each_name_is_visible_to_type_checkers():
    import ast
    import pathlib

    assert sorted(asm_nb.__all__) == sorted(["__version__", *asm_nb._LAZY])
    tree = ast.parse(pathlib.Path(asm_nb.__file__).read_text())
    checked = set()
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for imp in node.body:
                checked |= {a.asname or a.name for a in imp.names}  # type: ignore[attr-defined]
    assert sorted(set(asm_nb._LAZY) - checked) == []
