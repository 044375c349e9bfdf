"""Renderers (docs/rendering.md): reference goldens inline, scenario goldens under golden/.

Regenerate the files with ``ASM_UPDATE_GOLDEN=1`` and review the diff.
"""

from __future__ import annotations

import os
import pathlib

import pytest

from asm_nb.core.events import Event, EventType
from asm_nb.rendering import CompactRenderer, PassthroughRenderer, StudioRenderer, VerboseRenderer, renderer_for
from asm_nb.core.errors import AsmError

from .events import RID, SID, ev, scenario_events, spec_events

GOLDEN = pathlib.Path(__file__).parent / "golden"


def render(renderer, events) -> str:
    return "".join(renderer.render_event(e) for e in events) + renderer.finish()


def pieces(renderer, events) -> list[str]:
    return [renderer.render_event(e) for e in events]


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("ASM_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8", newline="")
    with open(path, encoding="utf-8", newline="") as fh:
        assert fh.read() == text


# -- spec goldens ------------------------------------------------------------------------------

def test_compact_spec_golden():
    assert render(CompactRenderer(color=False), spec_events()) == \
        "r+ sonnet-4-5 >> Hello world\nmsg Hello world tk:100/20 r-:end\n6 events, 0 tools\n"


def test_verbose_spec_golden():
    assert render(VerboseRenderer(color=False), spec_events()) == (
        "[run_started] model=claude-sonnet-4-5-20250929 session_id=ses_test_123\nHello world\n"
        "[message_received] role=assistant content=Hello world\n[token_usage] input=100 output=20\n"
        "[run_completed] stop_reason=end_turn tokens=100/50\n--- 6 events, 0 tools ---\n")


def test_studio_spec_golden():
    assert render(StudioRenderer(color=False, tty=False), spec_events()) == (
        "\n  ● claude-sonnet-4-5-20250929 session started\n\n  Hello world\n\n"
        "  ● Session complete (end_turn) — 100/20 tokens, 0 tools\n")


def test_event_objects_and_enum_types_render_like_dicts():
    objs = [Event.new(e["type"], SID, run_id=RID, data=e["data"]) for e in spec_events()]
    assert render(CompactRenderer(color=False), objs) == render(CompactRenderer(color=False), spec_events())
    enum_typed = [{**e, "type": EventType(e["type"])} for e in spec_events()]
    assert render(StudioRenderer(color=False, tty=False), enum_typed) == \
        render(StudioRenderer(color=False, tty=False), spec_events())


# -- scenario goldens (files) -----------------------------------------------------------------

@pytest.mark.parametrize("name, factory", [
    ("compact.txt", lambda: CompactRenderer(color=False)),
    ("compact_color.txt", lambda: CompactRenderer(color=True)),
    ("verbose.txt", lambda: VerboseRenderer(color=False)),
    ("verbose_color.txt", lambda: VerboseRenderer(color=True)),
    ("studio.txt", lambda: StudioRenderer(color=False, tty=False)),
    ("studio_color_tty.txt", lambda: StudioRenderer(color=True, tty=True)),
    ("studio_preview.txt", lambda: StudioRenderer(color=False, tty=False, tool_output="preview")),
    ("studio_full.txt", lambda: StudioRenderer(color=False, tty=False, tool_output="full")),
])
def test_scenario_goldens(name, factory):
    check_golden(name, render(factory(), scenario_events()))


def test_passthrough_renders_nothing():
    r = PassthroughRenderer()
    assert pieces(r, scenario_events()) == [""] * len(scenario_events())
    assert r.finish() == ""


# -- CompactRenderer ----------------------------------------------------------------------------

def test_compact_costs_are_rounded_half_up():
    r = CompactRenderer(color=False)
    assert r.render_event(ev("token_usage_updated", {"input_tokens": 1, "output_tokens": 2, "cost_usd": 0.01234})) \
        == "tk:1/2 $0.0123"
    assert r.render_event(ev("run_completed", {"stop_reason": "tool_use", "cost_usd": 0.11111})) == " r-:tool $0.1111"


def test_compact_reason_and_model():
    r = CompactRenderer(color=False)
    assert r.render_event(ev("run_started", {"model": "claude-opus-4-1-20250805"})) == "r+ opus-4-1"
    assert r.render_event(ev("run_completed", {})) == " r-"
    assert CompactRenderer(color=False).render_event(ev("run_started", {})) == "r+"


def test_compact_ansi_by_default_and_not_without_color(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert "\x1b[" in render(CompactRenderer(), spec_events())
    assert "\x1b[" not in render(CompactRenderer(color=False), spec_events())
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b[" not in render(CompactRenderer(), spec_events())


def test_compact_counts_tools_and_ignores_legacy_ids():
    r = CompactRenderer(color=False)
    r.render_event(ev("tool_call_started", {"tool_name": "Read", "tool_use_id": "legacy"}))
    assert r.current_tool == "Read" and r.current_tool_id is None
    r.render_event(ev("tool_call_completed", {"tool_name": "Read", "tool_output": ""}))
    assert r.current_tool is None
    r.render_event(ev("tool_call_started", {"tool_call_id": "t2"}))
    assert r.current_tool == "unknown" and r.current_tool_id == "t2"
    assert r.finish() == "\n3 events, 2 tools\n"


def test_compact_tool_output_value_forms():
    r = CompactRenderer(color=False)
    assert r.render_event(ev("tool_call_completed", {"tool_name": "X", "tool_output": {"a": "é"}})) == 't-X tr:{"a":"é"}'
    assert r.render_event(ev("tool_call_completed", {"tool_name": "X", "tool_output": 42})) == " t-X tr:42"
    assert r.render_event(ev("tool_call_completed", {"tool_name": "X", "tool_output": "y" * 2001})) == \
        " t-X tr:" + "y" * 2000 + "..."


def test_compact_unknown_and_errors():
    r = CompactRenderer(color=False)
    assert r.render_event(ev("policy_violation", {})) == "?policy_violation"
    assert r.render_event(ev("run_failed", {})) == " ! unknown error"
    assert r.render_event(ev("run_cancelled", {})) == " ! cancelled"


# -- VerboseRenderer ---------------------------------------------------------------------------

def test_verbose_costs_and_chunks():
    r = VerboseRenderer(color=False)
    assert r.render_event(ev("message_streamed", {"delta": "Hello"})) == "Hello"
    assert r.render_event(ev("message_streamed", {"delta": " world"})) == " world"
    assert r.render_event(ev("token_usage_updated", {"input_tokens": 1, "output_tokens": 2, "cost_usd": 0.012345})) \
        == "\n[token_usage] input=1 output=2 cost=$0.012345"[0:] + "\n"
    assert "cost=$0.111111" in r.render_event(ev("token_usage_updated", {"cost_usd": 0.1111111}))


def test_verbose_tool_lines_ignore_legacy_ids():
    r = VerboseRenderer(color=False)
    assert r.render_event(ev("tool_call_started", {"tool_name": "Read", "tool_use_id": "legacy",
                                                   "tool_input": {"path": "a"}})) == \
        '[tool_call_started] name=Read id= input={"path":"a"}\n'
    assert r.render_event(ev("tool_call_completed", {"tool_name": "Read", "tool_output": {"ok": True}})) == \
        '[tool_call_completed] name=Read output={"ok":true}\n'
    assert r.render_event(ev("run_failed", {"error_code": "timeout"})) == \
        "[run_failed] error_code=timeout error_message=unknown error\n"


# -- StudioRenderer ----------------------------------------------------------------------------

def studio(**kw):
    kw.setdefault("color", False)
    kw.setdefault("tty", False)
    return StudioRenderer(**kw)


def test_studio_chunks():
    r = studio()
    assert r.render_event(ev("message_streamed", {"delta": "Hello"})) == "\n  Hello"
    assert r.render_event(ev("message_streamed", {"delta": " world"})) == " world"


def test_studio_text_then_tool():
    r = studio()
    out = r.render_event(ev("message_streamed", {"delta": "Thinking..."}))
    out += r.render_event(ev("tool_call_started", {"tool_name": "Read", "tool_input": {"file_path": "lib/sink.ex"}}))
    assert out == "\n  Thinking...\n  ◐ Reading lib/sink.ex\n"


def test_studio_tty_tool_lines():
    r = studio(tty=True)
    r.render_event(ev("message_streamed", {"delta": "x"}))
    start = r.render_event(ev("tool_call_started", {"tool_name": "Bash", "tool_input": {"command": "mix test"}}))
    assert start.startswith("\n") and "◐" in start and not start.endswith("\n")
    done = r.render_event(ev("tool_call_completed", {"tool_name": "Bash", "tool_output": "o" * 156, "exit_code": 0}))
    assert done.startswith("\r\x1b[2K") and "✓ Ran: mix test (exit 0, 156 chars)" in done and done.endswith("\n")


def test_studio_non_tty_has_no_clear():
    r = studio()
    start = r.render_event(ev("tool_call_started", {"tool_name": "Bash", "tool_input": {"command": "ls"}}))
    assert start.endswith("\n")
    done = r.render_event(ev("tool_call_completed", {"tool_name": "Bash", "tool_output": "a"}))
    assert "\r" not in done and "\x1b" not in done


def test_studio_completion_while_text_closes_block_instead_of_clearing():
    r = studio(tty=True)
    r.render_event(ev("message_streamed", {"delta": "streaming"}))
    done = r.render_event(ev("tool_call_completed", {"tool_name": "Edit", "tool_input": {"file_path": "a.py"}}))
    assert done == "\n  ✓ Edited a.py\n"


def test_studio_failed_bash():
    r = studio()
    r.render_event(ev("tool_call_started", {"tool_name": "Bash", "tool_input": {"command": "mix compile"}}))
    done = r.render_event(ev("tool_call_completed", {"tool_name": "Bash", "exit_code": 1, "status": "failed"}))
    assert "✗ Bash failed: mix compile" in done


def test_studio_uses_started_name_and_input_and_output_dict_fields():
    r = studio()
    r.render_event(ev("tool_call_started", {"tool_name": "Bash", "tool_input": {"command": "make"}}))
    done = r.render_event(ev("tool_call_completed", {"tool_output": {"output": "boom\n", "exit_code": 2}}))
    assert done == "  ✗ Bash failed: make (exit 2, 5 chars)\n"


def test_studio_preview_and_full():
    out = "line1\nline2\nline3\nline4\n"
    r = studio(tool_output="preview")
    done = r.render_event(ev("tool_call_completed", {"tool_name": "Read", "tool_output": out}))
    assert done.splitlines()[1:] == ["    │ line2", "    │ line3", "    │ line4"]
    r = studio(tool_output="full")
    done = r.render_event(ev("tool_call_completed", {"tool_name": "Read", "tool_output": "line1\n\nline2"}))
    assert done.splitlines()[1:] == ["    ┊ line1", "    ┊ line2"]
    assert studio(tool_output="bogus").tool_output == "summary"


def test_studio_usage_is_silent_and_feeds_the_footer():
    r = studio()
    r.render_event(ev("tool_call_started", {"tool_name": "Read"}))
    r.render_event(ev("tool_call_completed", {"tool_name": "Read"}))
    assert r.render_event(ev("token_usage_updated", {"input_tokens": 847, "output_tokens": 312})) == ""
    assert (r.total_input_tokens, r.total_output_tokens) == (847, 312)
    done = r.render_event(ev("run_completed", {"stop_reason": "end_turn"}))
    assert "Session complete (end_turn)" in done and "847/312 tokens, 1 tool" in done


def test_studio_text_tool_text():
    r = studio()
    r.render_event(ev("message_streamed", {"delta": "First"}))
    r.render_event(ev("tool_call_started", {"tool_name": "Read"}))
    r.render_event(ev("tool_call_completed", {"tool_name": "Read"}))
    assert r.render_event(ev("message_streamed", {"delta": "Second block"})) == "\n  Second block"


def test_studio_show_spinner_false_and_failures():
    r = studio(show_spinner=False)
    assert r.render_event(ev("tool_call_started", {"tool_name": "Read"})) == "  ● Reading file\n"
    assert r.render_event(ev("run_failed", {"error_message": "boom"})) == "\n  ✗ boom\n"
    assert r.render_event(ev("run_cancelled")) == "\n  ✗ cancelled\n"
    assert r.render_event(ev("error_occurred", {})) == "  ✗ unknown error\n"
    assert r.render_event(ev("policy_violation")) == "  ? policy_violation\n"


def test_studio_skip_types_and_tool_call_failed():
    r = studio(skip_types={"message_sent"})
    assert r.render_event(ev("message_sent", {"content": "x"})) == ""
    r.render_event(ev("tool_call_started", {"tool_name": "Read", "tool_input": {"file_path": "a"}}))
    assert r.render_event(ev("tool_call_failed", {"tool_name": "Read", "reason": "cancelled"})) == \
        "  ✗ Read a (0 lines)\n"


def test_renderer_for():
    assert isinstance(renderer_for("studio", color=False), StudioRenderer)
    with pytest.raises(AsmError) as exc:
        renderer_for("nope")
    assert exc.value.code == "validation_error"


def test_footers_count_in_words_singular_and_plural():
    """"1 tool" / "1 event", never "1 tools" (the footers of compact, verbose and studio)."""
    from asm_nb.rendering.renderers import VerboseRenderer

    c = CompactRenderer(color=False)
    c.render_event(ev("tool_call_started", {"tool_name": "Read", "tool_call_id": "t1"}))
    assert c.finish() == "\n1 event, 1 tool\n"
    v = VerboseRenderer(color=False)
    assert v.finish().endswith("--- 0 events, 0 tools ---\n")
    s = studio()
    s.render_event(ev("tool_call_started", {"tool_name": "Read", "tool_call_id": "t1"}))
    s.render_event(ev("tool_call_completed", {"tool_name": "Read", "tool_call_id": "t1"}))
    done = s.render_event(ev("run_completed", {"stop_reason": "end_turn"}))
    assert done.rstrip().endswith("tokens, 1 tool") and "1 tools" not in done
    s.render_event(ev("tool_call_started", {"tool_name": "Bash", "tool_call_id": "t2"}))
    assert s.render_event(ev("run_completed", {"stop_reason": "refusal"})).rstrip().endswith("2 tools")
