"""notebooks/_build.py writes the same file on every rebuild: outputs are passed through the
sanitize.cfg rules nbval uses (ids, short plot-label ids, times, temporary paths), cell ids are
fixed, and the temporary folders the notebooks make are removed."""

from __future__ import annotations

import importlib.util
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[1]


def _build_module():
    spec = importlib.util.spec_from_file_location("asm_notebooks_build", REPO / "notebooks" / "_build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _output(run_hex: str, when: str, tmp: str) -> dict:
    return {"output_type": "execute_result",
            "data": {"text/plain": f"run_{run_hex * 4} stored in {tmp}/store at {when}",
                     "application/vnd.plotly.v1+json": {"data": [{"y": [f"run_{run_hex} claude/x", when]}]}},
            "metadata": {}}


def test_two_rebuilds_write_the_same_outputs():
    b = _build_module()
    rules = b._sanitize_rules()
    first = b._sanitize(_output("0ee7b562", "2025-10-06T09:12:44.123456Z", "/tmp/asm-build-ab12/asm-costs-x9"), rules)
    second = b._sanitize(_output("792ffc6e", "2026-12-03T00:51:02Z", "/tmp/asm-build-zz99/asm-costs-q1"), rules)
    assert first == second
    assert "run_<ID> claude/x" in first["data"]["application/vnd.plotly.v1+json"]["data"][0]["y"]
    assert first["data"]["text/plain"] == "<RUN_ID> stored in <STORE>/store at <TIMESTAMP>"
