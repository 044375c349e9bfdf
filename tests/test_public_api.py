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
