"""The run widget in a real Jupyter kernel: events from a thread reach the front end as a few
coalesced comm updates, and finish() replaces the output with the final bundle."""

from __future__ import annotations

import collections
import queue
import time

import pytest

pytest.importorskip("jupyter_client")
pytest.importorskip("ipywidgets")
pytestmark = pytest.mark.kernel

CODE = r'''
import threading
from asm_nb.notebook.widgets import RunWidget
w = RunWidget(provider="claude", model="claude-sonnet-4-5-20250929")
w.display()
def produce():
    w.handle_event({"type": "run_started", "data": {"model": "claude-sonnet-4-5-20250929"}})
    for i in range(3000):
        w.handle_event({"type": "message_streamed", "data": {"delta": f"w{i} "}})
    w.handle_event({"type": "tool_call_started", "data": {"tool_call_id": "t", "tool_name": "Read",
                                                          "tool_input": {"file_path": "a.py"}}})
    w.handle_event({"type": "tool_call_completed", "data": {"tool_call_id": "t", "tool_name": "Read",
                                                            "tool_output": "x\ny\n"}})
    w.handle_event({"type": "run_completed", "data": {"stop_reason": "end_turn"}})
th = threading.Thread(target=produce)
th.start()
th.join()
w.finish({"status": "completed"})
'''


def test_widget_in_a_kernel(tmp_path):
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    try:
        msg_id = kc.execute(CODE)
        counts: collections.Counter = collections.Counter()
        final = None
        deadline = time.monotonic() + 60
        while True:
            try:
                msg = kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail("cell never finished")
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            t = msg["msg_type"]
            assert t != "error", msg["content"].get("traceback")
            counts[msg["content"]["data"].get("method") if t == "comm_msg" else t] += 1
            if t == "update_display_data":
                final = msg["content"]["data"]
            if t == "status" and msg["content"]["execution_state"] == "idle":
                break
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert counts["display_data"] == 1
    assert 1 <= counts["update"] < 60, counts
    assert final is not None
    assert final["text/plain"].endswith("  ● Session complete (end_turn) — 0/0 tokens, 1 tool\n")
    assert "w2999" in final["text/plain"] and "Read a.py · 4 B" in final["text/html"]
    # the finished output is the static run bundle (the card), never the widget: a saved
    # notebook reopens without "model not found"; the widget models are closed
    assert "application/vnd.asm.run+json" in final
    assert "application/vnd.jupyter.widget-view+json" not in final
    assert counts["comm_close"] >= 1
