"""Issue 18 items 1-2: one confinement rule for every file tool (symlinks to files and folders
outside, ``..``, absolute paths), and a model-chosen regex that cannot hang a run."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from asm_nb.providers.tools import ToolContext, ToolOutput, builtin_tools

SECRET = "TOP-SECRET-CONTENT"


def run(name: str, inp: dict, cwd: Path, **ctx) -> ToolOutput:
    tool = builtin_tools([name])[0]
    return asyncio.run(tool.run(inp, ToolContext(cwd=cwd, **ctx)))


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A workspace holding symlinks out: ``passwd -> ../secret.txt`` (file), ``outdir -> ../outside``
    (folder), ``abs -> /abs path of secret``, plus an inside link ``ok -> real.txt``."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "inner.txt").write_text(f"{SECRET} inner\n")
    (tmp_path / "secret.txt").write_text(f"{SECRET}\n")
    w = tmp_path / "ws"
    w.mkdir()
    (w / "real.txt").write_text("hello inside\n")
    (w / "sub").mkdir()
    (w / "sub" / "deep.txt").write_text("hello deep\n")
    os.symlink("../secret.txt", w / "passwd")
    os.symlink(str(tmp_path / "secret.txt"), w / "sub" / "abs")
    os.symlink("../outside", w / "outdir")
    os.symlink("real.txt", w / "ok")
    os.symlink("loop", w / "loop")
    return w


ESCAPES = ["passwd", "sub/abs", "outdir/inner.txt", "outdir", "../secret.txt", "sub/../../secret.txt",
           "/etc/hostname", "ABS_SECRET", "loop"]


def _path(ws: Path, p: str) -> str:
    return str(ws.parent / "secret.txt") if p == "ABS_SECRET" else p


@pytest.mark.parametrize("path", ESCAPES)
@pytest.mark.parametrize("name", ["read_file", "write_file", "edit_file", "list_files", "grep"])
def test_every_file_tool_refuses_a_named_path_outside(ws, name, path):
    inp = {"read_file": {}, "write_file": {"content": "pwned"}, "edit_file": {"old_str": SECRET, "new_str": "x"},
           "list_files": {}, "grep": {"pattern": "SECRET"}}[name] | {"path": _path(ws, path)}
    out = run(name, inp, ws)
    assert out.is_error, (name, path, out.content)
    assert "access refused" in out.content
    assert SECRET not in out.content
    assert (ws.parent / "secret.txt").read_text() == f"{SECRET}\n"
    assert (ws.parent / "outside" / "inner.txt").read_text() == f"{SECRET} inner\n"


def test_grep_walk_skips_symlinks_that_resolve_outside(ws):
    out = run("grep", {"pattern": "SECRET|hello"}, ws)
    assert not out.is_error
    assert SECRET not in out.content
    assert out.content.splitlines() == ["ok:1: hello inside", "real.txt:1: hello inside", "sub/deep.txt:1: hello deep"]
    assert SECRET not in run("grep", {"pattern": ".", "path": "sub"}, ws).content
    assert SECRET not in run("grep", {"pattern": ".", "glob": "*abs*"}, ws).content


def test_list_files_skips_symlinks_that_resolve_outside(ws):
    out = run("list_files", {}, ws).content.splitlines()
    assert out == ["ok", "real.txt", "sub/deep.txt"]
    assert run("list_files", {"pattern": "**/*abs*"}, ws).content == "(no files match)"


def test_inside_symlinks_still_work(ws):
    assert run("read_file", {"path": "ok"}, ws).content == "hello inside\n"
    assert not run("edit_file", {"path": "ok", "old_str": "hello", "new_str": "bye"}, ws).is_error
    assert (ws / "real.txt").read_text() == "bye inside\n"


def test_write_through_a_dangling_link_out_is_refused(ws):
    os.symlink("../created-outside.txt", ws / "dangling")
    out = run("write_file", {"path": "dangling", "content": "x"}, ws)
    assert out.is_error and "access refused" in out.content
    assert not (ws.parent / "created-outside.txt").exists()


def test_nul_byte_in_a_path_is_a_tool_error(ws):
    out = run("read_file", {"path": "real\x00.txt"}, ws)
    assert out.is_error and "NUL" in out.content


# -- item 2: a catastrophic regex ----------------------------------------------------------------

EVIL = "(a+)+$"


@pytest.fixture
def evil_ws(tmp_path: Path) -> Path:
    (tmp_path / "long.txt").write_text("a" * 60 + "!\n")
    return tmp_path


def test_catastrophic_grep_times_out(evil_ws):
    t0 = time.monotonic()
    out = run("grep", {"pattern": EVIL}, evil_ws, timeout_ms=500)
    elapsed = time.monotonic() - t0
    assert out.is_error and "timed out" in out.content and out.details == {"timed_out": True}
    assert elapsed < 5, elapsed


def test_catastrophic_grep_is_cancelled_and_the_loop_stays_responsive(evil_ws):
    async def go() -> tuple[float, int]:
        task = asyncio.ensure_future(builtin_tools(["grep"])[0].run({"pattern": EVIL}, ToolContext(cwd=evil_ws)))
        ticks = 0
        for _ in range(30):  # the event loop keeps running while the pattern backtracks
            await asyncio.sleep(0.01)
            ticks += 1
        t0 = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - t0, ticks

    took, ticks = asyncio.run(asyncio.wait_for(go(), 20))
    assert ticks == 30
    assert took < 2, took


def test_grep_results_unchanged_for_ordinary_patterns(evil_ws):
    (evil_ws / "b.py").write_text("x = 1\nY = 2\n")
    assert run("grep", {"pattern": "^y", "ignore_case": True}, evil_ws).content == "b.py:2: Y = 2"
