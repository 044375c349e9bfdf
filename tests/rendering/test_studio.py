"""ToolSummary, ANSI helpers and number formatting (docs/rendering.md)."""

from __future__ import annotations

import pytest

from asm_nb.rendering import studio
from asm_nb.rendering.studio import (
    ToolSummary, format_number, format_size, preview_lines, round_half_up, shorten_path, spinner_text, summary_line,
)


@pytest.mark.parametrize("info, expected", [
    ({"name": "Bash", "input": {"command": "mix test test/pubsub_test.exs"}}, "Running: mix test test/pubsub_test.exs"),
    ({"name": "Read", "input": {"file_path": "lib/rendering/sink.ex"}}, "Reading lib/rendering/sink.ex"),
    ({"name": "Glob", "input": {"pattern": "**/*.ex"}}, "Searching for **/*.ex"),
    ({"name": "Grep", "input": {"pattern": "defmodule.*Sink", "path": "lib/"}}, 'Searching "defmodule.*Sink" in lib/'),
    ({"name": "Task", "input": {"description": "Explore codebase"}}, "Running task: Explore codebase"),
    ({"name": "WebFetch", "input": {"url": "https://github.com/elixir-lang/elixir"}}, "Fetching github.com"),
    ({"name": "WebFetch", "input": {"url": "github.com/x"}}, "Fetching web resource"),
    ({"name": "WebSearch", "input": {"query": "elixir pubsub"}}, 'Searching: "elixir pubsub"'),
    ({"name": "custom_tool", "input": {}}, "Using custom_tool"),
    ({"name": "bash", "input": None}, "Running bash"),
    ({"name": "Read", "input": {}}, "Reading file"),
    ({"name": "Write", "input": {"path": "a.txt"}}, "Writing a.txt"),
    ({"name": "Edit", "input": {"file_path": "src/app.py"}}, "Editing src/app.py"),
    ({"name": "Grep", "input": {}}, 'Searching "pattern" in .'),
    ({"name": None}, "Using tool"),
    ({}, "Using tool"),
])
def test_spinner_text(info, expected):
    assert spinner_text(info) == expected


def test_spinner_long_command_is_cut_to_60_chars():
    cmd = "x" * 61
    assert spinner_text({"name": "Bash", "input": {"command": "  " + cmd + "  "}}) == "Running: " + "x" * 60 + "..."


@pytest.mark.parametrize("info, expected", [
    ({"name": "Bash", "input": {"command": "mix test"}, "output": "x" * 156, "exit_code": 0}, "Ran: mix test (exit 0, 156 chars)"),
    ({"name": "Bash", "input": {"command": "mix compile"}, "output": "e" * 2400, "exit_code": 1, "status": "failed"},
     "Bash failed: mix compile (exit 1, 2.4k chars)"),
    ({"name": "Bash", "input": {"command": "ls"}, "status": "failed"}, "Bash failed: ls (exit 1)"),
    ({"name": "Bash", "input": {}}, "Ran: bash (exit 0)"),
    ({"name": "Read", "input": {"file_path": "lib/sink.ex"}, "output": "l\n" * 72}, "Read lib/sink.ex (72 lines)"),
    ({"name": "Write", "input": {"file_path": "test/pubsub_sink_test.exs", "content": "l\n" * 138}},
     "Wrote test/pubsub_sink_test.exs (138 lines)"),
    ({"name": "Edit", "input": {"file_path": "lib/session_manager.ex"}}, "Edited lib/session_manager.ex"),
    ({"name": "Glob", "input": {"pattern": "**/*.ex"}, "output": "\n".join(f"f{i}.ex" for i in range(24))},
     "Found 24 files matching **/*.ex"),
    ({"name": "Glob", "input": {}}, "Found 0 files matching *"),
    ({"name": "Grep", "input": {"pattern": "defmodule.*Sink"}, "output": "m\n" * 8}, 'Found 8 matches for "defmodule.*Sink"'),
    ({"name": "Task", "input": {"description": "Explore codebase"}, "duration_ms": 45200},
     "Task complete: Explore codebase (45.2s)"),
    ({"name": "Task", "input": {"description": "Explore codebase"}, "duration_ms": 2000},
     "Task complete: Explore codebase"),
    ({"name": "custom_tool", "output": "y" * 234}, "custom_tool complete (234 chars)"),
    ({"name": "custom_tool", "output": None}, "custom_tool complete"),
    ({"name": "custom_tool", "output": ""}, "custom_tool complete"),
    ({"name": "WebFetch", "input": {"url": "https://x.org"}, "output": "abc"}, "WebFetch complete (3 chars)"),
    ({"input": {}}, "tool complete"),
])
def test_summary_line(info, expected):
    assert summary_line(info) == expected


def test_summary_bash_duration_shown_above_two_seconds():
    line = summary_line({"name": "Bash", "input": {"command": "sleep 3"}, "duration_ms": 3200, "exit_code": 0})
    assert line == "Ran: sleep 3 (exit 0, 3.2s)"
    assert "3.2s" in line


def test_summary_structured_bash_output():
    out = {"output": "10:  version: \"0.8.0\",\n", "exit_code": 0}
    line = summary_line({"name": "bash", "input": {"command": 'rg -n "version:" mix.exs'}, "output": out,
                         "exit_code": None})
    n = len(out["output"])
    assert line == f'Ran: rg -n "version:" mix.exs (exit 0, {n} chars)'


def test_summary_dict_output_without_output_key_is_json():
    line = summary_line({"name": "custom_tool", "output": {"result": "success"}})
    assert line == "custom_tool complete (20 chars)"  # len('{"result":"success"}')


def test_nonzero_exit_code_means_failed():
    assert summary_line({"name": "Bash", "input": {"command": "false"}, "exit_code": 2}) == "Bash failed: false (exit 2)"
    assert ToolSummary.is_failed({"exit_code": 2})
    assert not ToolSummary.is_failed({"exit_code": 0})
    assert not ToolSummary.is_failed({"exit_code": True})


def test_preview_lines():
    assert preview_lines({"output": "\nline1\n\nline2\nline3\nline4\n"}, 3) == ["line2", "line3", "line4"]
    assert preview_lines({"output": "a\nb\n"}, 3) == ["a", "b"]
    assert preview_lines({"output": None}, 3) == []
    assert preview_lines({"output": {"output": "  x  \ny"}}, 1) == ["y"]


@pytest.mark.parametrize("n, expected", [
    (None, ""), (0, "0 chars"), (999, "999 chars"), (1000, "1.0k chars"), (1500, "1.5k chars"),
    (2000, "2.0k chars"), (1250, "1.3k chars"), (9999, "10.0k chars"), (15_000, "15k chars"), (15_999, "15k chars"),
])
def test_format_size(n, expected):
    assert format_size(n) == expected


@pytest.mark.parametrize("path, max_len, expected", [
    ("lib/agent_session_manager/deep/nested/rendering/sink.ex", 20, "lib/.../rendering/sink.ex"),
    ("/usr/local/lib/python/site.py", 10, "/.../python/site.py"),
    ("a/b/c", 2, "a/b/c"),
    ("short.ex", 60, "short.ex"),
    (None, 60, "file"),
    (42, 60, "file"),
])
def test_shorten_path(path, max_len, expected):
    assert shorten_path(path, max_len) == expected


def test_long_read_path_is_shortened_in_summary():
    path = "lib/" + "very_long_directory_name/" * 3 + "rendering/sink.ex"
    assert summary_line({"name": "Read", "input": {"file_path": path}, "output": "a"}) == \
        "Read lib/.../rendering/sink.ex (1 lines)"


def test_round_half_up_is_decimal_half_away_from_zero():
    assert round_half_up(0.01234, 4) == 0.0123
    assert round_half_up(0.11111, 4) == 0.1111
    assert round_half_up(0.00005, 4) == 0.0001   # Python's round gives 0.0001 or 0.0 depending on binary value
    assert round_half_up(2.5, 0) == 3.0          # round(2.5) == 2
    assert round_half_up(-2.5, 0) == -3.0
    assert format_number(2, 1) == "2.0"
    assert format_number(0.012345, 6) == "0.012345"
    assert format_number(12.5, 1) == "12.5"


def test_ansi_helpers():
    assert studio.red("x") == "\x1b[0;31mx\x1b[0m"
    assert studio.green("x") == "\x1b[0;32mx\x1b[0m"
    assert studio.blue("x") == "\x1b[0;34mx\x1b[0m"
    assert studio.magenta("x") == "\x1b[0;35mx\x1b[0m"
    assert studio.cyan("x") == "\x1b[0;36mx\x1b[0m"
    assert studio.dim("x") == "\x1b[2mx\x1b[0m"
    assert studio.bold("x") == "\x1b[1mx\x1b[0m"
    assert studio.red("") == ""
    assert studio.red("x", False) == "x"
    assert studio.clear_line() == "\r\x1b[2K"
    assert studio.cursor_up(3) == "\x1b[3A"
    assert (studio.SUCCESS, studio.FAILURE, studio.INFO, studio.RUNNING) == ("✓", "✗", "●", "◐")


def test_is_tty_false_for_non_terminals(tmp_path):
    import io
    assert studio.is_tty(io.StringIO()) is False
    with open(tmp_path / "f", "w") as fh:
        assert studio.is_tty(fh) is False


def test_no_color_env(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    assert studio.default_color(None) is False
    assert studio.default_color(True) is True
    monkeypatch.setenv("NO_COLOR", "")
    assert studio.default_color(None) is True
