"""The eval matrix in a real Jupyter kernel: a static HTML table (items x agents) with score
badges, the disagreement filter and each cell's run card, plus a deterministic text/plain."""

from __future__ import annotations

import os
import queue
import time

import pytest

jupyter_client = pytest.importorskip("jupyter_client")
pytestmark = pytest.mark.kernel

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CODE = """
import asm_nb
from asm_nb.evaluation import scorers as sc
items = [{"id": "same", "input": "echo ok", "expected": "ok"},
         {"id": "split", "input": "echo $ANSWER", "expected": "ok"}]
result = asm_nb.evaluate(items, agents={"good": {"provider": "shell", "env": {"ANSWER": "ok"}},
                                        "bad": {"provider": "shell", "env": {"ANSWER": "nope"}}},
                         scorers=[sc.contains(), sc.trajectory().called("bash")], name="kernel-matrix",
                         progress=False)
result.matrix()
"""


@pytest.fixture
def kernel(tmp_path):
    from jupyter_client.manager import start_new_kernel

    env = {**os.environ, "ASM_HOME": str(tmp_path / "home"), "PYTHONPATH": ROOT}
    km, kc = start_new_kernel(kernel_name="python3", env=env, cwd=str(tmp_path))
    try:
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def run_cell(kc, code, timeout=90):
    msg_id = kc.execute(code)
    outputs, errors = [], []
    deadline = time.monotonic() + timeout
    while True:
        try:
            msg = kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            pytest.fail("kernel did not go idle")
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        t = msg["msg_type"]
        if t in ("execute_result", "display_data"):
            outputs.append(msg["content"]["data"])
        elif t == "error":
            errors.append("\n".join(msg["content"]["traceback"]))
        elif t == "status" and msg["content"]["execution_state"] == "idle":
            return outputs, errors


def test_matrix_view_renders_static_html_in_a_kernel(kernel):
    _, kc = kernel
    outputs, errors = run_cell(kc, CODE)
    assert not errors, errors
    data = outputs[-1]
    text, page = data["text/plain"], data["text/html"]
    assert text.splitlines()[0] == "eval kernel-matrix: 2 item(s) x 2 agent(s), 1 disagreement(s)"
    split = next(line for line in text.splitlines() if line.startswith("split"))
    assert split.split()[1:] == ["pass", "1", "[P", "P]", "FAIL", "0.5", "[F", "P]"]
    # rows are items, columns agents; the disagreeing row is marked for the CSS filter
    assert page.count('<tr class="agree">') == 1 and page.count('<tr class="dis">') == 1
    assert "<th>good</th><th>bad</th>" in page
    assert 'type="checkbox" class="toggle"' in page and ".toggle:checked ~ table tr.agree{display:none}" in page
    # each cell opens its run card (the same static card a finished %%asm cell shows)
    assert page.count("<details data-run-id=\"run_") == 4
    assert page.count('<div class="asm-run">') == 4
    assert 'class="b ko" title="missing &#x27;ok&#x27;"' in page
    # only the disagreements, from the kernel again
    outputs, errors = run_cell(kc, "result.matrix(only_disagreements=True)")
    assert not errors, errors
    assert outputs[-1]["text/html"].count("<tr class=") == 1
