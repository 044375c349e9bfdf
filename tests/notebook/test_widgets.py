"""The live run widget (asm_nb/notebook/widgets.py): throttled redraws, exact final state,
tool rows, thread safety, cancel / approval wiring, text fallback, redaction, WidgetSink."""

from __future__ import annotations

import html
import json
import re
import threading
from datetime import datetime, timezone

import pytest

pytest.importorskip("ipywidgets")

import comm  # noqa: E402
from comm.base_comm import BaseComm  # noqa: E402

from asm_nb import config  # noqa: E402
from asm_nb.notebook.widgets import WIDGET_MIME, LiveRunView, RunWidget, WidgetSink  # noqa: E402

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def ev(type_, data=None):
    return {"type": type_, "timestamp": T0, "session_id": "ses_1", "run_id": "run_1", "data": data or {},
            "provider": "claude"}


class CountingComm(BaseComm):
    """A comm that records every message instead of sending it to a front end."""

    log: list = []

    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        CountingComm.log.append((msg_type, data))


@pytest.fixture
def comms(monkeypatch):
    CountingComm.log = []
    monkeypatch.setattr(comm, "create_comm", lambda *a, **k: CountingComm(*a, **k))
    return CountingComm.log


def updates(log):
    return [d for t, d in log if t == "comm_msg" and isinstance(d, dict) and d.get("method") == "update"]


class FakeClock:
    def __init__(self):
        self.t = 1000.0
        self.lock = threading.Lock()

    def __call__(self):
        with self.lock:
            return self.t

    def advance(self, dt):
        with self.lock:
            self.t += dt


def replay_run(n_deltas=5000, n_tools=20):
    """A long run: n_deltas streamed chunks (with paragraphs and HTML-special characters)
    and n_tools tool calls spread through it, alternating success and failure."""
    events, deltas = [ev("run_started", {"model": "claude-sonnet-4-5-20250929"})], []
    every = n_deltas // n_tools
    tool = 0
    for i in range(n_deltas):
        d = f"w{i} " + ("<b>&amp;</b> " if i % 97 == 0 else "") + ("\n\n" if i % 50 == 49 else "")
        deltas.append(d)
        events.append(ev("message_streamed", {"delta": d, "content": d}))
        if i % every == every - 1 and tool < n_tools:
            tid = f"toolu_{tool}"
            events.append(ev("tool_call_started", {"tool_call_id": tid, "tool_name": "Bash",
                                                   "tool_input": {"command": f"step {tool}"}}))
            fail = tool % 2 == 1
            events.append(ev("tool_call_completed", {"tool_call_id": tid, "tool_name": "Bash",
                                                     "tool_output": f"out {tool}\n", "exit_code": 1 if fail else 0}))
            tool += 1
    events.append(ev("token_usage_updated", {"input_tokens": 1200, "output_tokens": 5000, "cost_usd": 0.25}))
    events.append(ev("run_completed", {"stop_reason": "end_turn"}))
    return events, deltas


def visible_text(values):
    text = "".join(values)
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def text_rows(w):
    return [x.value for x, seg in zip(w._seg_widgets, w.state.segments) if seg.kind == "text"]


def test_replay_is_throttled_and_final_state_exact(comms):
    clock = FakeClock()
    w = RunWidget(provider="claude", clock=clock, max_fps=20)
    opened = len(comms)
    comms.clear()
    events, deltas = replay_run()
    for e in events:
        clock.advance(0.0001)  # 5,000+ events in about half a second: a fast stream
        w.handle_event(e)
    w.finish({"status": "completed", "token_usage": {"input_tokens": 1200, "output_tokens": 5000}, "cost_usd": 0.25})

    sent = updates(comms)
    assert len(sent) < 150, f"{len(sent)} front-end updates"
    assert w.redraw_count <= 0.55 / 0.05 + 3
    assert max(len(json.dumps(u)) for u in sent) < 16_000  # deltas, never the whole transcript
    assert opened > 0

    full = "".join(deltas)
    assert w.text == full
    assert visible_text(text_rows(w)) == full.replace("\n", "")
    rows = w.tool_rows()
    assert [r["id"] for r in rows] == [f"toolu_{i}" for i in range(20)]
    assert [r["status"] for r in rows] == ["completed", "failed"] * 10
    assert rows[0]["summary"] == "Ran: step 0 (exit 0, 6 chars)"
    assert rows[1]["summary"] == "Bash failed: step 1 (exit 1, 6 chars)"
    assert "in 1,200 · out 5,000 · $0.25 · 20 tools" in w._counters.value
    assert "completed" in w._header.value
    # every row widget shows its final state
    tool_html = [x.value for x, seg in zip(w._seg_widgets, w.state.segments) if seg.kind == "tool"]
    assert len(tool_html) == 20 and all("◐" not in h for h in tool_html)
    assert sum("✗" in h for h in tool_html) == 10
    assert len(w._body.children) == len(w.state.segments)


def test_without_throttle_every_event_would_redraw(comms):
    """The control for the test above: at max_fps=0 each event redraws."""
    w = RunWidget(max_fps=0)
    comms.clear()
    for i in range(200):
        w.handle_event(ev("message_streamed", {"delta": f"x{i} "}))
    assert len(updates(comms)) >= 200


def test_trailing_redraw_lands_without_more_events(comms):
    w = RunWidget(max_fps=20)
    w.flush()
    landed = threading.Event()
    w._body.observe(lambda change: landed.set(), names="children")
    w.handle_event(ev("message_streamed", {"delta": "late"}))  # inside the 50 ms window: deferred
    assert landed.wait(5), "the timer never delivered the trailing redraw"
    assert "late" in w._seg_widgets[0].value
    w.finish()


def test_events_from_another_thread(comms):
    w = RunWidget(max_fps=50)
    events, deltas = replay_run(2000, 10)
    errors = []

    def produce():
        try:
            for e in events:
                w.handle_event(e)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    th = threading.Thread(target=produce)
    th.start()
    while th.is_alive():  # the main thread keeps reading and redrawing meanwhile
        w.poll()
        w.plain_text()
        w.tool_rows()
        th.join(0.001)
    w.finish()
    assert not errors
    assert w.text == "".join(deltas)
    assert len(w.tool_rows()) == 10
    assert visible_text(text_rows(w)) == "".join(deltas).replace("\n", "")


def test_two_producer_threads_keep_every_row(comms):
    w = RunWidget()
    barrier = threading.Barrier(2)

    def produce(prefix):
        barrier.wait(5)
        for i in range(100):
            tid = f"{prefix}{i}"
            w.handle_event(ev("tool_call_started", {"tool_call_id": tid, "tool_name": "Read",
                                                    "tool_input": {"file_path": tid}}))
            w.handle_event(ev("tool_call_completed", {"tool_call_id": tid, "tool_name": "Read", "tool_output": "a"}))

    threads = [threading.Thread(target=produce, args=(p,)) for p in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    w.finish()
    rows = w.tool_rows()
    assert len(rows) == 200 and all(r["status"] == "completed" for r in rows)
    assert len(w._body.children) == 200


def test_cancel_button_calls_back_once(comms):
    calls = []
    w = RunWidget(on_cancel=lambda widget: calls.append(("ctor", widget)))
    w.on_cancel(lambda widget: calls.append(("later", widget)))
    w.handle_event(ev("run_started", {"model": "m"}))
    w._cancel_btn.click()
    w._cancel_btn.click()
    assert calls == [("ctor", w), ("later", w)]
    assert w._cancel_btn.disabled and "cancelling" in w._header.value
    w.handle_event(ev("run_cancelled", {}))
    w.finish({"status": "cancelled"})
    assert w._cancel_btn.layout.display == "none" and "cancelled" in w._header.value
    w._cancel_btn.click()
    assert len(calls) == 2


def test_cancel_callback_error_is_contained(comms, caplog):
    w = RunWidget(on_cancel=lambda widget: 1 / 0)
    w.cancel()
    assert "on_cancel callback raised" in caplog.text


def test_approval_buttons(comms):
    decisions = []
    w = RunWidget(on_approval=lambda d, req: decisions.append((d, req["tool_name"])))
    assert w._approval_box.layout.display == "none"
    w.handle_event(ev("tool_call_started", {"tool_call_id": "t1", "tool_name": "Bash", "tool_input": {"command": "rm -rf /tmp/x"}}))
    w.handle_event(ev("tool_approval_requested", {"tool_call_id": "t1", "tool_name": "Bash",
                                                  "tool_input": {"command": "rm -rf /tmp/x"}, "policy_name": "safe"}))
    w.flush()
    # the buttons sit on the waiting tool row itself, in the row's place in the transcript
    assert w._approval_box.layout.display == "none"
    assert w._body.children[0] is w._approval_row
    assert w._approve_btn not in w._approval_box.children  # one view of each button
    row_html, approve, deny, note = w._approval_row.children
    assert (approve, deny) == (w._approve_btn, w._deny_btn) and row_html is w._seg_widgets[0]
    assert "Waiting for approval" in row_html.value and "safe" in note.value
    assert "awaiting approval" in w._header.value
    w._approve_btn.click()
    assert decisions == [("approve", "Bash")]
    assert w._approval_box.layout.display == "none"
    assert w._body.children == (w._seg_widgets[0],) and w._approval_row.children == ()
    assert w.tool_rows()[0]["approval"] == "granted"
    w.handle_event(ev("tool_approval_requested", {"tool_call_id": "t1", "tool_name": "Bash"}))
    w.flush()
    w._deny_btn.click()
    w._deny_btn.click()  # nothing pending any more
    assert decisions == [("approve", "Bash"), ("deny", "Bash")]
    assert w.tool_rows()[0]["approval"] == "denied"


def test_approval_without_a_tool_row_uses_the_bar(comms):
    """A request naming no known tool row (a policy asking before any call): the bar below."""
    w = RunWidget()
    w.handle_event(ev("tool_approval_requested", {"tool_name": "Bash", "tool_input": {"command": "ls"}}))
    w.flush()
    assert w._approval_box.layout.display == "flex" and "Bash" in w._approval_html.value
    assert w._approve_btn in w._approval_box.children and w._deny_btn in w._approval_box.children
    assert w._approval_row not in w._body.children


def test_text_fallback_is_deterministic_and_bundle_complete(comms):
    events, _ = replay_run(300, 4)
    a = RunWidget(provider="claude", clock=FakeClock())
    b = RunWidget(provider="claude", deterministic=True)
    for e in events:
        a.handle_event(e)
        b.handle_event(e)
    before, meta = a._repr_mimebundle_()
    assert "text/html" not in before and before[WIDGET_MIME]["model_id"] == a.root.model_id
    # the output's metadata links it to the run (ids stay out of the text)
    assert meta == {"asm": {"run_id": events[0]["run_id"], "session_id": events[0]["session_id"]}}
    a.finish()
    b.finish()
    bundle, _ = a._repr_mimebundle_()
    assert bundle["text/plain"] == b.plain_text()
    assert bundle["text/plain"].startswith("\n  ● claude-sonnet-4-5-20250929 session started\n\n  w0 ")
    assert "Session complete (end_turn) — 1200/5000 tokens, 4 tools" in bundle["text/plain"]
    assert not re.search(r"ses_|run_1|\d\d:\d\d", bundle["text/plain"])
    assert a.static_html(deterministic=True) == b.static_html()
    assert "<button" not in bundle["text/html"]


def test_html_is_escaped(comms):
    w = RunWidget()
    w.handle_event(ev("message_streamed", {"delta": "<script>alert(1)</script>"}))
    w.handle_event(ev("tool_call_started", {"tool_call_id": "t", "tool_name": "<img src=x>",
                                            "tool_input": {"q": "<iframe>"}}))
    w.handle_event(ev("tool_call_completed", {"tool_call_id": "t", "tool_output": "</pre><script>x</script>"}))
    w.finish()
    page = w.static_html()
    assert "<script>" not in page and "<iframe>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_secrets_are_redacted_even_when_split_across_deltas(comms):
    secret = "AKIAIOSFODNN7EXAMPLE"
    with config.override(redaction_enabled=True):
        w = RunWidget()
        w.handle_event(ev("message_streamed", {"delta": "key " + secret[:9]}))
        w.handle_event(ev("message_streamed", {"delta": secret[9:] + " done"}))
        w.handle_event(ev("tool_call_started", {"tool_call_id": "t", "tool_name": "Bash",
                                                "tool_input": {"command": "echo password=hunter22"}}))
        w.handle_event(ev("tool_call_completed", {"tool_call_id": "t", "tool_output": f"got {secret}"}))
        w.finish()
        shown = [w.text, w.plain_text(), w.static_html(), *(x.value for x in w._seg_widgets)]
    for s in shown:
        assert secret not in s and "hunter22" not in s
    assert "[REDACTED]" in w.text


def test_message_received_without_chunks_is_shown_and_reasoning_separate(comms):
    w = RunWidget()
    w.handle_event(ev("message_streamed", {"delta": "thinking", "kind": "reasoning"}))
    w.handle_event(ev("message_received", {"content": "Codex says hi"}))
    w.handle_event(ev("message_streamed", {"delta": "chunk"}))
    w.handle_event(ev("message_received", {"content": "chunk"}))  # already streamed: not repeated
    w.finish()
    assert w.text == "Codex says hichunk"
    assert [s.kind for s in w.state.segments] == ["reasoning", "text", "text"]


def test_finish_marks_unfinished_rows_and_fail(comms):
    w = RunWidget()
    w.handle_event(ev("tool_call_started", {"tool_call_id": "t", "tool_name": "Read"}))

    class Err(Exception):
        code, message = "cancelled", "Run was cancelled"

    w.fail(Err())
    assert w.tool_rows()[0]["status"] == "unfinished"  # no result came: not a failure of the tool
    assert w.state.status == "cancelled" and "Run was cancelled" in w.plain_text()
    w.handle_event(ev("message_streamed", {"delta": "ignored after finish"}))
    assert "ignored" not in w.text


def test_widget_sink_in_the_pipeline(comms):
    from asm_nb.rendering import StudioRenderer, stream

    sink = WidgetSink(max_fps=20)
    events, deltas = replay_run(100, 2)
    stream(events, renderer=StudioRenderer(color=False, tty=False), sinks=[sink], redact=False)
    assert sink.view.finished and sink.view.text == "".join(deltas)
    assert "Session complete" in sink.text


def test_live_view_interface_used_by_the_magics(comms, monkeypatch):
    w = RunWidget()
    shown = []
    monkeypatch.setattr(w, "display", lambda: shown.append(True))
    view = LiveRunView(w)
    cancelled = []
    view.attach_cancel(lambda: cancelled.append(True))
    view.on_event(ev("message_streamed", {"delta": "hi"}))
    view.poll()
    view.poll()
    assert shown == [True]
    w.cancel()
    assert cancelled == [True]
    view.finish({"status": "completed"})
    assert view.result_display(None) is None and w.finished
