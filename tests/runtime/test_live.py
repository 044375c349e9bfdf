"""``%asm runs --live``: the rows of runs in flight and of running batches, text and widget views."""

from __future__ import annotations

import time

import pytest

import asm_nb
from asm_nb.notebook.live import LiveRunsView, batch_rows, render_html, render_text, running_rows
from asm_nb.stores import open_store
from asm_nb.testing import ScriptedAdapter


def wait_until(cond, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.005)


def test_rows_of_runs_and_batches_in_flight():
    store = open_store("memory://")
    adapter = ScriptedAdapter([("sleep", 10_000, {"content": "never"})])
    handle = asm_nb.batch([f"p{i}" for i in range(4)], provider=adapter, store=store, concurrency=2,
                          progress=False, wait=False)
    try:
        wait_until(lambda: len(adapter.calls) == 2)
        rows = running_rows(store)
        assert sorted(r["status"] for r in rows) == ["pending", "pending", "running", "running"]
        assert {r["run_id"] for r in rows if r["status"] == "running"} == set(adapter.calls)
        assert running_rows(store, "ses_other") == []
        [b] = [b for b in batch_rows() if b["session"] == handle.session_id]
        assert (b["total"], b["running"], b["queued"], b["done"]) == (4, 2, 2, 0)
        text = render_text(rows, batch_rows())
        assert adapter.calls[0] in text and "running" in text
        page = render_html(rows, batch_rows())
        assert "Runs in flight: 4" in page and "<table>" in page
    finally:
        handle.cancel()
    handle.result(timeout=10)
    assert running_rows(store) == []
    assert "no runs in flight" in render_text([], [])


def test_widget_view_refreshes():
    pytest.importorskip("ipywidgets")
    store = open_store("memory://")
    view = LiveRunsView(store, interval_s=0.1, duration_s=5).start()
    try:
        wait_until(lambda: view.refreshes >= 2)
        assert "Runs in flight: 0" in view.widget.value
    finally:
        view.stop()


def test_magic_runs_live_prints_without_a_widget_front_end(tmp_path, capsys):
    pytest.importorskip("IPython")
    from IPython import get_ipython
    from IPython.core.error import UsageError
    from IPython.testing.globalipapp import start_ipython

    ip = start_ipython() or get_ipython()
    ip.run_line_magic("load_ext", "asm_nb")
    ip.run_line_magic("asm", f"store {tmp_path / 'store'}")
    capsys.readouterr()
    ip.run_line_magic("asm", "runs --live --interval 0.5")
    assert "no runs in flight" in capsys.readouterr().out
    with pytest.raises(UsageError):
        ip.run_line_magic("asm", "runs --live --bogus")
