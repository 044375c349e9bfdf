"""The built-in workspace tools of the Claude API adapter: ``bash`` (execute), ``read_file``,
``list_files``, ``grep`` (read), ``write_file``, ``edit_file`` (write); ``builtin_tools()`` picks them.

File tools are confined to the run's working directory by one rule (``_confine``): a path the
model names that resolves outside it (``..``, an absolute path elsewhere, a symlink out) is refused,
and what a walk finds (``list_files``, ``grep``) is skipped when it resolves outside. ``grep`` runs
its pattern in a child process killed on timeout or cancel (a catastrophic regex cannot hang the
run). ``bash`` runs with the working directory as
its cwd in its own process group (killed on cancel or timeout); it is not sandboxed, which is why
it needs approval outside ``full_auto``. The ``Tool`` type and ``@tool`` are in ``tools``.

Imports only the standard library, ``core``, ``config`` and ``tools``.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any, Iterable

from .. import config
from . import _confine
from ..core.errors import AsmError
from .tools import EXECUTE, READ, WRITE, Tool, ToolContext, ToolError, ToolOutput

__all__ = ["builtin_tools", "BUILTIN_TOOL_NAMES"]

_MAX_LIST = 1000
_MAX_MATCHES = _confine.MAX_MATCHES


def _max_bytes() -> int:
    try:
        return int(config.get("max_output_bytes"))
    except Exception:
        return 1_048_576


def _cap(text: str, limit: int | None = None) -> str:
    limit = limit or _max_bytes()
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    return raw[:limit].decode("utf-8", errors="ignore") + f"\n[output truncated at {limit} bytes]"


def _read_text(path: Path) -> str:
    if not path.exists():
        raise ToolError(f"file not found: {path.name}")
    if path.is_dir():
        raise ToolError(f"{path.name} is a directory; use list_files")
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        raise ToolError(f"{path.name} looks like a binary file; not shown")
    return data.decode("utf-8", errors="replace")


def _read_file(inp: dict, ctx: ToolContext) -> ToolOutput:
    path = ctx.resolve(inp.get("path"))
    text = _read_text(path)
    offset = inp.get("offset")
    limit = inp.get("limit")
    if offset is not None or limit is not None:
        lines = text.splitlines(keepends=True)
        start = max(int(offset or 1), 1) - 1
        end = start + int(limit) if limit is not None else len(lines)
        text = "".join(lines[start:end])
    return ToolOutput(_cap(text))


def _write_file(inp: dict, ctx: ToolContext) -> ToolOutput:
    path = ctx.resolve(inp.get("path"))
    content = inp.get("content")
    if not isinstance(content, str):
        raise ToolError("'content' must be a string")
    if path.is_dir():
        raise ToolError(f"{ctx.rel(path)} is a directory")
    path.parent.mkdir(parents=True, exist_ok=True)
    existed = path.exists()
    path.write_text(content, encoding="utf-8")
    n = len(content.encode("utf-8"))
    return ToolOutput(f"{'Overwrote' if existed else 'Created'} {ctx.rel(path)} ({n} bytes)")


def _edit_file(inp: dict, ctx: ToolContext) -> ToolOutput:
    path = ctx.resolve(inp.get("path"))
    old, new = inp.get("old_str"), inp.get("new_str", "")
    if not isinstance(old, str) or old == "":
        raise ToolError("'old_str' must be a non-empty string")
    if not isinstance(new, str):
        raise ToolError("'new_str' must be a string")
    text = _read_text(path)
    count = text.count(old)
    if count == 0:
        raise ToolError(f"old_str not found in {ctx.rel(path)}")
    if count > 1 and not inp.get("replace_all"):
        raise ToolError(f"old_str occurs {count} times in {ctx.rel(path)}; give more context or set replace_all")
    text = text.replace(old, new) if inp.get("replace_all") else text.replace(old, new, 1)
    path.write_text(text, encoding="utf-8")
    return ToolOutput(f"Edited {ctx.rel(path)} ({count if inp.get('replace_all') else 1} replacement(s))")


def _list_files(inp: dict, ctx: ToolContext) -> ToolOutput:
    base = ctx.resolve(inp.get("path") or ".")
    pattern = inp.get("pattern") or "**/*"
    if not base.is_dir():
        raise ToolError(f"{ctx.rel(base)} is not a directory")
    out = []
    for p in _confine.walk(ctx.cwd.resolve(), base):
        rel = str(p.relative_to(base))
        if fnmatch.fnmatch(rel, pattern) or (pattern.startswith("**/") and fnmatch.fnmatch(rel, pattern[3:])):
            out.append(ctx.rel(p))
            if len(out) >= _MAX_LIST:
                out.append(f"[stopped after {_MAX_LIST} files]")
                break
    return ToolOutput("\n".join(out) if out else "(no files match)")


async def _grep(inp: dict, ctx: ToolContext) -> ToolOutput:
    from ..process.managed import ManagedProcess

    pattern = inp.get("pattern")
    if not isinstance(pattern, str) or not pattern:
        raise ToolError("'pattern' must be a non-empty regular expression")
    try:
        re.compile(pattern, re.IGNORECASE if inp.get("ignore_case") else 0)
    except re.error as exc:
        raise ToolError(f"invalid regular expression: {exc}") from None
    glob = inp.get("glob")
    if glob is not None and not isinstance(glob, str):
        raise ToolError("'glob' must be a string")
    root = ctx.cwd.resolve()
    base = ctx.resolve(inp.get("path") or ".")
    timeout_ms = int(ctx.timeout_ms or int(config.get("command_timeout_ms")))
    request = json.dumps({"root": str(root), "base": str(base), "pattern": pattern,
                          "ignore_case": bool(inp.get("ignore_case")), "glob": glob,
                          "max_matches": _MAX_MATCHES})
    # The pattern runs in a child process: a catastrophic backtrack holds the GIL in-process, but
    # a child is killed on the run's cancel (leaving this block) or on the timeout.
    buf = bytearray()
    async with ManagedProcess.start([sys.executable, "-I", "-S", _confine.__file__], cwd=str(root),
                                    stdin_text=request, timeout_ms=timeout_ms, label="grep",
                                    signals=(signal.SIGKILL,), grace_ms=100) as proc:
        async for chunk in proc.byte_chunks():
            buf.extend(chunk)
        res = await proc.wait()
    if res.timed_out:
        return ToolOutput(f"[grep timed out after {timeout_ms} ms: simplify the pattern or narrow the path]",
                          is_error=True, details={"timed_out": True})
    if res.exit_code != 0:
        return ToolOutput(f"grep failed: {res.stderr.strip()[-500:] or res.describe()}", is_error=True)
    out = json.loads(buf.decode("utf-8", errors="replace") or "[]")
    return ToolOutput(_cap("\n".join(out)) if out else "(no matches)")


async def _bash(inp: dict, ctx: ToolContext) -> ToolOutput:
    from ..process.managed import ManagedProcess  # the shared process layer: own group, killed on cancel/timeout

    command = inp.get("command")
    if not isinstance(command, str) or not command.strip():
        raise ToolError("'command' must be a non-empty string")
    timeout_ms = int(inp.get("timeout_ms") or ctx.timeout_ms or int(config.get("command_timeout_ms")))
    shell = "/bin/bash" if os.path.exists("/bin/bash") else str(config.get("default_shell"))
    limit = _max_bytes()
    buf = bytearray()
    from .sandbox import sandboxed_argv  # opt-in: config command_sandbox = "bwrap" | "bwrap_no_network"

    try:
        argv = sandboxed_argv([shell, "-c", command], ctx.cwd, config.get("command_sandbox"))
    except AsmError as err:
        raise ToolError(err.message) from None
    async with ManagedProcess.start(argv, cwd=str(ctx.cwd), env=ctx.env, merge_stderr=True,
                                    timeout_ms=timeout_ms, label="bash", signals=(signal.SIGTERM, signal.SIGKILL),
                                    grace_ms=300) as proc:
        async for chunk in proc.byte_chunks():
            if len(buf) <= limit:
                buf.extend(chunk)
        res = await proc.wait()
    text = _cap(buf.decode("utf-8", errors="replace"), limit)
    if res.timed_out:
        return ToolOutput(f"{text}\n[command timed out after {timeout_ms} ms]".lstrip(), is_error=True,
                          details={"timed_out": True})
    if res.exit_code != 0:
        code = res.exit_code if res.exit_code is not None else res.returncode
        return ToolOutput(f"{text}\n[exit code {code}]".lstrip(), is_error=True, details={"exit_code": code})
    return ToolOutput(text, details={"exit_code": 0})


def _obj(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required}


_PATH = {"type": "string", "description": "File path, relative to the working directory"}

_BUILTINS: list[Tool] = [
    Tool("bash", "Run a shell command (bash -c) in the working directory and return its combined "
         "stdout/stderr. A non-zero exit code is reported as an error.",
         _obj({"command": {"type": "string", "description": "The command line to run"},
               "timeout_ms": {"type": "integer", "description": "Kill the command after this many ms"}},
              ["command"]), _bash, EXECUTE),
    Tool("read_file", "Read a UTF-8 text file from the working directory.",
         _obj({"path": _PATH, "offset": {"type": "integer", "description": "First line to return (1-based)"},
               "limit": {"type": "integer", "description": "Number of lines to return"}}, ["path"]),
         _read_file, READ),
    Tool("write_file", "Create or overwrite a text file in the working directory (parent folders are created).",
         _obj({"path": _PATH, "content": {"type": "string", "description": "The full new file content"}},
              ["path", "content"]), _write_file, WRITE),
    Tool("edit_file", "Replace an exact string in a text file. old_str must occur exactly once unless "
         "replace_all is true.",
         _obj({"path": _PATH, "old_str": {"type": "string", "description": "Exact text to replace"},
               "new_str": {"type": "string", "description": "Replacement text"},
               "replace_all": {"type": "boolean", "description": "Replace every occurrence"}},
              ["path", "old_str", "new_str"]), _edit_file, WRITE),
    Tool("list_files", "List files under a directory of the working directory matching a glob pattern "
         "(default '**/*'); .git and similar folders are skipped.",
         _obj({"pattern": {"type": "string", "description": "Glob such as '**/*.py' or '*.md'"},
               "path": {"type": "string", "description": "Directory to search (default: working directory)"}},
              []), _list_files, READ, run_in_thread=True),
    Tool("grep", "Search file contents with a regular expression; returns 'path:line: text' lines.",
         _obj({"pattern": {"type": "string", "description": "Python regular expression"},
               "path": {"type": "string", "description": "File or directory (default: working directory)"},
               "glob": {"type": "string", "description": "Only files matching this glob, e.g. '*.py'"},
               "ignore_case": {"type": "boolean"}}, ["pattern"]), _grep, READ),
]

BUILTIN_TOOL_NAMES: tuple[str, ...] = tuple(t.name for t in _BUILTINS)


def builtin_tools(names: Iterable[str] | None = None) -> list[Tool]:
    """The built-in workspace tools (all, or those named)."""
    if names is None:
        return list(_BUILTINS)
    wanted = list(names)
    unknown = [n for n in wanted if n not in BUILTIN_TOOL_NAMES]
    if unknown:
        raise AsmError("validation_error",
                       f"Unknown built-in tool(s) {unknown}; available: {list(BUILTIN_TOOL_NAMES)}")
    return [t for t in _BUILTINS if t.name in wanted]
