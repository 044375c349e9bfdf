"""The tool layer: ``@tool`` schemas from hints and docstrings, ``Tool.run`` error handling, and the
built-in workspace tools (confined to the working directory)."""

from __future__ import annotations

import asyncio
import enum
import os
from pathlib import Path
from typing import Annotated, Literal

import pytest

from asm_nb.core.errors import AsmError
from asm_nb.providers.tools import (BUILTIN_TOOL_NAMES, EXECUTE, READ, WRITE, Tool, ToolContext, ToolError,
                                    ToolOutput, as_tool, builtin_tools, parse_docstring, tool)


def run(t: Tool, inp: dict, cwd: Path) -> ToolOutput:
    return asyncio.run(t.run(inp, ToolContext(cwd=cwd)))


def builtin(name: str) -> Tool:
    return builtin_tools([name])[0]


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


def test_schema_from_hints_and_google_docstring():
    @tool
    def search(query: str, limit: int = 10, ratio: float = 0.5, exact: bool = False,
               tags: list[str] | None = None, mode: Literal["fast", "slow"] = "fast", color: Color = Color.RED,
               extra: dict[str, int] | None = None, note: Annotated[str, "A note"] = "") -> list:
        """Search the index.

        Longer explanation.

        Args:
            query: What to look for,
                over two lines.
            limit (int): Max hits.
        Returns:
            hits
        """
        return []

    s = search.input_schema
    assert search.name == "search" and search.description == "Search the index.\n\nLonger explanation."
    assert s["type"] == "object" and s["required"] == ["query"]
    p = s["properties"]
    assert p["query"] == {"type": "string", "description": "What to look for, over two lines."}
    assert p["limit"] == {"type": "integer", "description": "Max hits.", "default": 10}
    assert p["ratio"]["type"] == "number" and p["exact"]["type"] == "boolean"
    assert p["tags"]["type"] == "array" and p["tags"]["items"] == {"type": "string"}
    assert p["mode"]["enum"] == ["fast", "slow"] and p["mode"]["type"] == "string"
    assert p["color"]["enum"] == ["red", "blue"] and p["color"]["default"] == "red"
    assert p["extra"]["additionalProperties"] == {"type": "integer"}
    assert p["note"]["description"] == "A note"
    assert search.access == READ
    assert search("x") == []  # still callable as the function


def test_decorator_options_and_sphinx_docstring():
    @tool(name="do_it", description="Custom.", access="execute")
    def f(a: int) -> int:
        """Ignored.

        :param a: the number
        """
        return a

    assert f.name == "do_it" and f.description == "Custom." and f.access == EXECUTE and f.mutates
    assert parse_docstring(f.__wrapped__.__doc__)[1] == {"a": "the number"}
    with pytest.raises(AsmError):
        tool(f.__wrapped__, access="bogus")
    with pytest.raises(AsmError):
        tool(f.__wrapped__, name="bad name!")


def test_run_sync_async_context_and_errors(tmp_path):
    seen = {}

    @tool
    def sync_tool(x: int, ctx: ToolContext) -> dict:
        """Sync."""
        seen["cwd"] = ctx.cwd
        return {"double": x * 2}

    @tool
    async def async_tool(text: str) -> str:
        """Async."""
        await asyncio.sleep(0)
        return text.upper()

    @tool
    def raises_tool_error() -> None:
        """Fails politely."""
        raise ToolError("nope")

    @tool
    def raises() -> None:
        """Fails."""
        raise RuntimeError("boom")

    assert "ctx" not in sync_tool.input_schema["properties"]
    assert run(sync_tool, {"x": 2}, tmp_path) == ToolOutput('{"double": 4}')
    assert seen["cwd"] == tmp_path
    assert run(async_tool, {"text": "hi"}, tmp_path).content == "HI"
    assert run(raises_tool_error, {}, tmp_path) == ToolOutput("nope", is_error=True)
    out = run(raises, {}, tmp_path)
    assert out.is_error and out.content == "RuntimeError: boom"
    bad = run(sync_tool, {"x": 1, "y": 2}, tmp_path)
    assert bad.is_error and "unexpected argument" in bad.content
    missing = run(sync_tool, {}, tmp_path)
    assert missing.is_error and "missing required" in missing.content
    assert run(tool(lambda: None, name="nothing"), {}, tmp_path).content == ""


def test_as_tool_forms():
    def plain(a: str) -> str:
        return a

    t = as_tool(plain)
    assert t.name == "plain" and t.description == "Call the Python function plain."
    d = as_tool({"name": "x", "handler": lambda i, c: "ok", "access": "write"})
    assert d.access == WRITE and d.input_schema == {"type": "object", "properties": {}}
    assert as_tool(d) is d
    with pytest.raises(AsmError):
        as_tool(42)
    with pytest.raises(AsmError):
        as_tool({"name": "x"})


def test_builtin_catalogue():
    access = {t.name: t.access for t in builtin_tools()}
    assert access == {"bash": EXECUTE, "read_file": READ, "write_file": WRITE, "edit_file": WRITE,
                      "list_files": READ, "grep": READ}
    assert set(BUILTIN_TOOL_NAMES) == set(access)
    for t in builtin_tools():
        api = t.to_api()
        assert set(api) == {"name", "description", "input_schema"} and api["input_schema"]["type"] == "object"
    with pytest.raises(AsmError):
        builtin_tools(["nope"])


def test_read_write_edit(tmp_path):
    out = run(builtin("write_file"), {"path": "sub/a.txt", "content": "one\ntwo\nthree\n"}, tmp_path)
    assert not out.is_error and "Created sub/a.txt" in out.content
    assert (tmp_path / "sub/a.txt").read_text() == "one\ntwo\nthree\n"
    assert run(builtin("read_file"), {"path": "sub/a.txt"}, tmp_path).content == "one\ntwo\nthree\n"
    assert run(builtin("read_file"), {"path": "sub/a.txt", "offset": 2, "limit": 1}, tmp_path).content == "two\n"
    assert run(builtin("edit_file"), {"path": "sub/a.txt", "old_str": "two", "new_str": "2"}, tmp_path).content \
        == "Edited sub/a.txt (1 replacement(s))"
    assert (tmp_path / "sub/a.txt").read_text() == "one\n2\nthree\n"
    missing = run(builtin("edit_file"), {"path": "sub/a.txt", "old_str": "zzz", "new_str": "y"}, tmp_path)
    assert missing.is_error and "not found" in missing.content
    (tmp_path / "dup.txt").write_text("x x")
    dup = run(builtin("edit_file"), {"path": "dup.txt", "old_str": "x", "new_str": "y"}, tmp_path)
    assert dup.is_error and "2 times" in dup.content
    assert not run(builtin("edit_file"), {"path": "dup.txt", "old_str": "x", "new_str": "y", "replace_all": True},
                   tmp_path).is_error
    assert (tmp_path / "dup.txt").read_text() == "y y"
    assert run(builtin("read_file"), {"path": "nope.txt"}, tmp_path).is_error
    (tmp_path / "bin").write_bytes(b"\x00\x01")
    assert "binary" in run(builtin("read_file"), {"path": "bin"}, tmp_path).content


@pytest.mark.parametrize("name,inp", [
    ("read_file", {"path": "../outside.txt"}),
    ("read_file", {"path": "/etc/hostname"}),
    ("write_file", {"path": "../outside.txt", "content": "x"}),
    ("edit_file", {"path": "../outside.txt", "old_str": "a", "new_str": "b"}),
    ("list_files", {"path": ".."}),
    ("grep", {"pattern": "a", "path": ".."}),
    ("read_file", {"path": "link/outside.txt"}),
])
def test_path_escapes_are_refused(tmp_path, name, inp):
    ws = tmp_path / "ws"
    ws.mkdir()
    (tmp_path / "outside.txt").write_text("a secret")
    os.symlink(tmp_path, ws / "link")
    out = run(builtin(name), inp, ws)
    assert out.is_error and "outside the working directory" in out.content
    assert (tmp_path / "outside.txt").read_text() == "a secret"


def test_list_files_and_grep(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src/a.py").write_text("import os\nprint('Hello')\n")
    (tmp_path / "src/b.txt").write_text("hello world\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git/config").write_text("hello")
    listing = run(builtin("list_files"), {}, tmp_path).content.splitlines()
    assert listing == ["src/a.py", "src/b.txt"]
    assert run(builtin("list_files"), {"pattern": "**/*.py"}, tmp_path).content == "src/a.py"
    assert run(builtin("grep"), {"pattern": "hello"}, tmp_path).content == "src/b.txt:1: hello world"
    assert run(builtin("grep"), {"pattern": "hello", "ignore_case": True, "glob": "*.py"}, tmp_path).content \
        == "src/a.py:2: print('Hello')"
    assert run(builtin("grep"), {"pattern": "("}, tmp_path).is_error
    assert run(builtin("grep"), {"pattern": "zzz"}, tmp_path).content == "(no matches)"


def test_bash_runs_in_cwd_with_exit_codes_and_timeout(tmp_path):
    ok = run(builtin("bash"), {"command": "echo hi; pwd"}, tmp_path)
    assert not ok.is_error and ok.content == f"hi\n{tmp_path.resolve()}\n" and ok.details["exit_code"] == 0
    bad = run(builtin("bash"), {"command": "echo err >&2; exit 4"}, tmp_path)
    assert bad.is_error and bad.content == "err\n\n[exit code 4]" and bad.details["exit_code"] == 4
    slow = run(builtin("bash"), {"command": "sleep 10", "timeout_ms": 200}, tmp_path)
    assert slow.is_error and "timed out" in slow.content


def test_bash_cancel_kills_the_process_group(tmp_path):
    marker = tmp_path / "pid"

    async def go():
        task = asyncio.ensure_future(builtin("bash").run(
            {"command": f"sleep 30 & echo $! > {marker}; wait"}, ToolContext(cwd=tmp_path)))
        for _ in range(500):
            if marker.exists() and marker.read_text().strip():
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return int(marker.read_text())

    pid = asyncio.run(asyncio.wait_for(go(), 10))
    for _ in range(200):  # the background sleep died with its group
        if not _alive(pid):
            break
        asyncio.run(asyncio.sleep(0.01))
    else:
        pytest.fail("background process survived the cancel")


def _alive(pid: int) -> bool:
    """Running, not a zombie: the orphaned sleep is reparented to PID 1, which may not reap it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:].split()[0] not in ("Z", "X")
