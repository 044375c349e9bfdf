"""Line magics show tables: HTML (DataFrame-like) in a notebook kernel, aligned text in a terminal;
``%asm events`` stays a list of events; ``%asm runs --live`` has a text fallback, not a widget repr."""

from __future__ import annotations

import queue
import time

import pytest

from asm_nb.notebook.tables import EventList, Table


def test_table_text_and_html_are_escaped_and_aligned():
    t = Table([{"run_id": "run_1", "status": "completed", "cost_usd": 0.5},
               {"run_id": "<b>x</b>", "status": None, "cost_usd": None}], ["run_id", "status", "cost_usd"])
    assert t.text().splitlines() == ["run_id    status     cost_usd", "--------  ---------  --------",
                                     "run_1     completed  0.5000", "<b>x</b>"]
    page = t._repr_mimebundle_()["text/html"]
    assert "<table class='dataframe asm-table'>" in page and "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x" not in page
    assert "<td class='asm-num'>0.5000</td>" in page
    assert Table([], ["a"]).text() == "(none)"


def test_event_list_is_a_list_shown_as_a_table():
    events = EventList([{"type": "run_started", "sequence": 1, "data": {"model": "m"}},
                        {"type": "tool_call_started", "sequence": 2, "data": {"tool_name": "bash"}}])
    assert isinstance(events, list) and len(events) == 2
    text = repr(events)
    assert "Event(" not in text and "run_started" in text and "tool_name=bash" in text
    assert "<table" in events._repr_mimebundle_()["text/html"]


def _run_cells(cells: list[str], cwd) -> list[tuple[str, dict]]:
    pytest.importorskip("jupyter_client")
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", cwd=str(cwd))
    out: list[tuple[str, dict]] = []
    try:
        for code in cells:
            msg_id = kc.execute(code)
            deadline = time.monotonic() + 60
            while True:
                try:
                    msg = kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
                except queue.Empty:
                    pytest.fail(f"cell never finished: {code}")
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                t = msg["msg_type"]
                assert t != "error", msg["content"].get("traceback")
                if t in ("display_data", "execute_result", "stream"):
                    out.append((code, msg["content"]))
                if t == "status" and msg["content"]["execution_state"] == "idle":
                    break
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return out


@pytest.mark.kernel
def test_line_magics_show_html_tables_in_a_kernel(tmp_path):
    outs = _run_cells([
        f"%load_ext asm_nb\n%asm store {tmp_path / 'store'}\n%asm config renderer=studio",
        "%%asm -p shell --out r\necho tabled",
        "%asm runs",
        "%asm sessions",
        "%asm events {r.run_id}",
        "%asm runs --live --for 0.2",
    ], tmp_path)

    def data(prefix: str) -> list[dict]:
        return [c.get("data", {}) for code, c in outs if code.startswith(prefix) and "data" in c]

    runs = data("%asm runs\n") or data("%asm runs")
    assert runs and "<table class='dataframe asm-table'>" in runs[0]["text/html"] and "run_" in runs[0]["text/html"]
    assert "completed" in runs[0]["text/plain"]
    sessions = data("%asm sessions")
    assert sessions and "<table" in sessions[0]["text/html"]
    events = data("%asm events")
    assert events and "run_completed" in events[0]["text/html"] and "Event(" not in events[0]["text/plain"]
    live = data("%asm runs --live")
    assert live and not live[0]["text/plain"].startswith("HTML(")
    assert "no runs in flight" in live[0]["text/plain"]


# ---------------------------------------------------------------------------------- %%asm --replay


def test_replay_speed_and_prompt_mismatch_note(tmp_path, capsys):
    pytest.importorskip("IPython")
    from IPython import get_ipython
    from IPython.testing.globalipapp import start_ipython

    from asm_nb.testing import example_cassette

    ip = start_ipython() or get_ipython()
    ip.run_line_magic("load_ext", "asm_nb")
    ip.run_line_magic("asm", f"store {tmp_path / 'store'}")
    cassette = example_cassette("tools")
    recorded = "Fix the failing test in tests/test_convert.py"
    capsys.readouterr()
    ip.run_cell_magic("asm", f"--replay {cassette} --renderer none --out same", recorded)
    assert "differs" not in capsys.readouterr().err
    ip.run_cell_magic("asm", f"--replay {cassette} --renderer none --out other", "Write a poem")
    err = capsys.readouterr().err
    assert "note: this cell's prompt differs from the recording's ('Fix the failing test" in err
    assert ip.user_ns["other"].status == "completed"
    # --speed: 20x the recorded pace takes a measurable part of the recording; instant is fast
    from asm_nb.providers.replay import load_cassette

    recorded_s = load_cassette(cassette).duration_ms / 1000
    t0 = time.monotonic()
    ip.run_cell_magic("asm", f"--replay {cassette} --speed 20 --renderer none --out paced", recorded)
    paced = time.monotonic() - t0
    assert ip.user_ns["paced"].status == "completed"
    assert paced >= recorded_s / 20 * 0.9, (paced, recorded_s)
    ip.run_cell_magic("asm", "--speed 2 --renderer none", "echo hi")
    assert "--speed goes with --replay FILE" in capsys.readouterr().err
    ip.run_cell_magic("asm", f"--replay {cassette} --speed -1 --renderer none", recorded)
    assert "--speed must be a number >= 0" in capsys.readouterr().err
