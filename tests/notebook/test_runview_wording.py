"""The run view's words and Markdown: plain-language tool rows and stop reasons, and the Markdown
subset the live view shares with the saved card (italics, links, lists, tables, code), escaped."""

from __future__ import annotations

from asm_nb.rendering.runview import STYLE

import pytest

from asm_nb.rendering.runview import (
    RunState, duration_words, markdown_html, size_words, stop_reason_words,
)
from asm_nb.rendering.mime import run_summary


def ev(t, **data):
    return {"type": t, "data": data}


def _row_texts(events, finish=None):
    st = RunState(clock=lambda: 0.0)
    for e in events:
        st.apply(e)
    if finish is not None:
        st.finish(finish)
    return [st.tool_line(row, measured=False)[::2] for row in st.tools.values()], st


def test_completed_read_reads_like_a_sentence():
    rows, _ = _row_texts([
        ev("tool_call_started", tool_call_id="t1", tool_name="read_file", tool_input={"path": "notes.txt"}),
        ev("tool_call_completed", tool_call_id="t1", tool_name="read_file", tool_output="buy milk\nfix bug\nok\n",
           duration_ms=200),
    ])
    assert rows == [("✓", "Read notes.txt · 20 B · 0.2 s")]


def test_waiting_for_approval_then_denied():
    events = [ev("tool_call_started", tool_call_id="b", tool_name="bash", tool_input={"command": "sleep 3"}),
              ev("tool_approval_requested", tool_call_id="b", tool_name="bash", tool_input={"command": "sleep 3"})]
    rows, st = _row_texts(events)
    assert rows == [("⏸", "Waiting for approval: bash sleep 3")]
    page = st.tool_html(st.tools["b"])
    assert "Running" not in page
    # no font on the test machine has U+23F8: the pause icon is two CSS bars, not the glyph
    assert 'class="asm-tool-icon asm-warn asm-pause" role="img" aria-label="paused"></span>' in page
    assert "⏸" not in page and ".asm-pause::before" in STYLE
    rows, _ = _row_texts(events + [
        ev("tool_approval_denied", tool_call_id="b", reason="denied_by_callback"),
        ev("tool_call_failed", tool_call_id="b", tool_name="bash", tool_output="Permission denied: the user declined bash.",
           reason="declined"),
    ])
    assert rows == [("⊘", "Denied by you: bash sleep 3")]


def test_failed_cancelled_and_running_rows():
    rows, _ = _row_texts([
        ev("tool_call_started", tool_call_id="f", tool_name="bash", tool_input={"command": "false"}),
        ev("tool_call_completed", tool_call_id="f", tool_name="bash", tool_output="", exit_code=2),
        ev("tool_call_started", tool_call_id="r", tool_name="bash", tool_input={"command": "sleep 60"}),
    ])
    assert rows == [("✗", "Failed: exit 2 · bash false"), ("◐", "Running bash sleep 60")]
    rows, st = _row_texts([
        ev("tool_call_started", tool_call_id="r", tool_name="bash", tool_input={"command": "sleep 60"}),
        ev("run_cancelled"),
    ], finish={"status": "cancelled"})
    assert rows == [("■", "Cancelled: bash sleep 60")]
    assert st.tools["r"].status == "unfinished"  # not "failed": nobody's tool failed


def test_unfinished_and_policy_rows():
    rows, _ = _row_texts([
        ev("tool_call_started", tool_call_id="u", tool_name="bash", tool_input={"command": "make"}),
        ev("tool_call_failed", tool_call_id="u", tool_name="bash", status="unfinished", reason="unfinished"),
        ev("tool_call_started", tool_call_id="p", tool_name="Bash", tool_input={"command": "rm x"}),
        ev("tool_call_failed", tool_call_id="p", tool_name="Bash", reason="policy_denied"),
    ])
    assert rows == [("■", "Unfinished (no result): bash make"), ("⊘", "Blocked by policy: Bash rm x")]


def test_a_json_error_reads_as_its_message():
    rows, _ = _row_texts([
        ev("tool_call_started", tool_call_id="e", tool_name="edit_file", tool_input={"path": "a.py"}),
        ev("tool_call_failed", tool_call_id="e", tool_name="edit_file",
           tool_output='{"error": "old string not found"}'),
    ])
    assert rows == [("✗", "Failed: old string not found · edit_file a.py")]


def test_the_shell_adapter_command_is_what_the_user_typed():
    rows, _ = _row_texts([
        ev("tool_call_started", tool_call_id="s", tool_name="bash",
           tool_input={"command": "/bin/sh", "args": ["-c", "echo hi"]}),
        ev("tool_call_completed", tool_call_id="s", tool_name="bash", tool_output="hi\n", exit_code=0),
    ])
    assert rows == [("✓", "Ran echo hi · 3 B")]


@pytest.mark.parametrize("reason,words", [("end_turn", "finished"), ("exit_code_0", "exit 0"),
                                          ("exit_code_2", "exit 2"), ("max_tokens", "hit the output token limit"),
                                          ("some_new_reason", "some new reason"), (None, None)])
def test_stop_reasons_in_words(reason, words):
    assert stop_reason_words(reason) == words


def test_header_and_counters_have_no_raw_codes_and_singular_tool():
    st = RunState(provider="shell", clock=lambda: 0.0)
    for e in [ev("tool_call_started", tool_call_id="s", tool_name="bash", tool_input={"command": "ls"}),
              ev("tool_call_completed", tool_call_id="s", tool_name="bash", tool_output="a\n", exit_code=0),
              ev("run_completed", stop_reason="exit_code_0")]:
        st.apply(e)
    st.finish({"status": "completed"})
    page = st.static_html(deterministic=True)
    assert "exit_code_0" not in page and "(end_turn)" not in page and "exit 0" in page
    assert "1 tool<" in page and "1 tools" not in page
    assert "$—" not in page  # no cost known: nothing shown rather than a dash
    summary = run_summary({"status": "completed", "events": [
        ev("tool_call_started", tool_call_id="s", tool_name="bash", tool_input={"command": "ls"}),
        ev("tool_call_completed", tool_call_id="s", tool_name="bash", tool_output="a\n", exit_code=0),
        ev("run_completed", stop_reason="end_turn")]})
    assert summary["tool_calls"][0]["summary"] == "Ran ls · 2 B" and summary["tool_calls"][0]["icon"] == "✓"
    assert summary["run"]["stop_reason_text"] == "finished"


def test_sizes_and_durations():
    assert [size_words(n) for n in (17, 1536, 3 * 1024 * 1024)] == ["17 B", "1.5 KB", "3.0 MB"]
    assert [duration_words(ms) for ms in (0, 40, 200, 12_300, 65_000, None)] == ["", "40 ms", "0.2 s", "12.3 s",
                                                                                "1 min 5 s", ""]


# ------------------------------------------------------------------------------------ Markdown


def test_markdown_inline_subset():
    out = markdown_html("Hi *there*, _you_ and **bold**; see [the docs](https://example.com/a?b=1&c=2).")
    assert out == ('<p>Hi <i>there</i>, <i>you</i> and <b>bold</b>; see <a href="https://example.com/a?b=1&amp;c=2" '
                   'target="_blank" rel="noopener noreferrer">the docs</a>.</p>')


def test_markdown_lists_table_and_code():
    out = markdown_html("1. one\n2. two\n\n- a\n- b\n\n| file | lines |\n|---|--:|\n| notes.txt | 2 |\n\n"
                        "```\nx = 1 < 2\n```\n\nuse `a*b*c` here")
    assert "<ol><li>one</li><li>two</li></ol>" in out
    assert "<ul><li>a</li><li>b</li></ul>" in out
    assert ("<table><thead><tr><th>file</th><th>lines</th></tr></thead>"
            "<tbody><tr><td>notes.txt</td><td>2</td></tr></tbody></table>") in out
    assert "<pre><code>x = 1 &lt; 2</code></pre>" in out
    assert "<code>a*b*c</code>" in out and "<i>" not in out


def test_markdown_keeps_html_and_bad_links_as_text():
    out = markdown_html('<img src=x onerror="alert(1)"> <script>alert(2)</script> [x](javascript:alert(3)) '
                        "snake_case_name 2*3*4")
    assert "<img" not in out and "<script" not in out and "href" not in out
    assert "&lt;img src=x onerror=\"alert(1)\"&gt;" in out
    assert "snake_case_name 2*3*4" in out  # no italics inside words


def test_live_view_and_card_share_the_markdown():
    """The live widget's text rows and the saved bundle's text/html render the same Markdown."""
    pytest.importorskip("ipywidgets")
    from asm_nb.rendering.mime import run_result_mimebundle
    from asm_nb.notebook.widgets import RunWidget

    events = [ev("message_streamed", delta="*a* [b](https://b.example)\n\n1. x\n"),
              ev("message_received", content="*a* [b](https://b.example)\n\n1. x\n")]
    w = RunWidget(deterministic=True)
    for e in events:
        w.handle_event(e)
    w.flush()
    live = "".join(x.value for x in w._seg_widgets)
    expected = '<i>a</i> <a href="https://b.example" target="_blank" rel="noopener noreferrer">b</a>'
    assert expected in live and "<ol><li>x</li></ol>" in live
    assert expected in run_result_mimebundle({"status": "completed", "events": events})["text/html"]
