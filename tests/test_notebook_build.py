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


def test_html_outputs_show_placeholders_as_text_and_still_compare_equal():
    """A run card's HTML names the store folder and the run: written raw, ``<STORE>`` would be an
    unknown tag (shown as nothing). It is written escaped, and nbval, applying sanitize.cfg to the
    committed output and to a fresh one, still sees the two as equal."""
    b = _build_module()
    rules = b._sanitize_rules()

    def card(tmp: str, run_hex: str) -> dict:
        return {"output_type": "display_data", "metadata": {},
                "data": {"text/html": [f"<div class=\"asm-run\"><pre>{tmp}/store</pre>\n",
                                       f"<b>run_{run_hex * 4}</b></div>"],
                         "text/plain": f"run_{run_hex * 4} in {tmp}/store"}}

    committed = b._sanitize(card("/tmp/asm-build-ab12/asm-eval-x9", "0ee7b562"), rules)
    html = "".join(committed["data"]["text/html"])
    assert "&lt;STORE&gt;/store" in html and "<b>&lt;RUN_ID&gt;</b>" in html
    assert "<STORE>" not in html and "<RUN_ID>" not in html
    assert committed["data"]["text/plain"] == "<RUN_ID> in <STORE>/store"  # plain text stays as it was

    def nbval_view(text: str) -> str:  # what nbval compares: every rule, in the file's order
        for rx, rep in rules:
            text = rx.sub(rep, text)
        return text

    fresh = card("/tmp/asm-nbval-zz99/asm-eval-q1", "792ffc6e")
    assert nbval_view("".join(fresh["data"]["text/html"])) == nbval_view(html)
    assert nbval_view(fresh["data"]["text/plain"]) == nbval_view(committed["data"]["text/plain"])
