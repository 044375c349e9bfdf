"""The tool layer of the Claude API adapter: ``Tool``, the ``@tool`` decorator, built-in workspace tools.

A ``Tool`` is what the model may call: a name, a description, a JSON schema for its input, an
async-or-sync handler ``(input: dict, ctx: ToolContext) -> ToolOutput | Any``, and its ``access``
(``"read"``, ``"write"`` or ``"execute"``) which permission modes use to decide whether it runs
without asking (spec part 2 §3.3, §9.3).

``@tool`` turns a plain Python function into a ``Tool``; the schema comes from its type hints and
the ``Args:`` section of its docstring::

    @asm_nb.tool
    def get_weather(city: str, unit: Literal["c", "f"] = "c") -> str:
        \"\"\"Current weather for a city.

        Args:
            city: City name, e.g. "Paris".
            unit: Temperature unit.
        \"\"\"
        ...

Built-ins (``builtin_tools()``): ``bash`` (execute), ``read_file``, ``list_files``, ``grep`` (read),
``write_file``, ``edit_file`` (write). File tools are confined to the run's working directory:
a path that resolves outside it (``..``, an absolute path elsewhere, a symlink out) is refused.
``bash`` runs with the working directory as its cwd in its own process group (killed on cancel or
timeout); it is not sandboxed, which is why it needs approval outside ``full_auto``.

Imports only the standard library, ``core`` and ``config``.
"""

from __future__ import annotations

import asyncio
import enum
import fnmatch
import inspect
import json
import os
import re
import signal
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, Union

from .. import config
from ..core.errors import AsmError

__all__ = [
    "Tool", "ToolSpec", "ToolOutput", "ToolContext", "ToolError", "tool", "as_tool", "as_tools",
    "builtin_tools", "BUILTIN_TOOL_NAMES", "READ", "WRITE", "EXECUTE",
]

READ, WRITE, EXECUTE = "read", "write", "execute"
_ACCESS = (READ, WRITE, EXECUTE)


class ToolError(Exception):
    """Raise from a tool handler to report a failure to the model (``is_error`` tool result)
    without a traceback; any other exception is reported as ``"<Type>: <message>"``."""


@dataclass(frozen=True)
class ToolOutput:
    """What a tool returns to the model: text ``content`` and whether it is an error."""

    content: str
    is_error: bool = False
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ToolContext:
    """Where and for whom a tool runs: ``cwd`` (an absolute, resolved path) and the run's ids."""

    cwd: Path
    run_id: str | None = None
    session_id: str | None = None
    tool_call_id: str | None = None
    timeout_ms: int | None = None
    env: Mapping[str, str] | None = None

    def resolve(self, path: Any) -> Path:
        """``path`` resolved against ``cwd``; raises ``ToolError`` if it escapes ``cwd``."""
        if not isinstance(path, str) or not path.strip():
            raise ToolError("a non-empty 'path' string is required")
        root = self.cwd.resolve()
        p = Path(path)
        target = (p if p.is_absolute() else root / p).resolve()
        if target != root and root not in target.parents:
            raise ToolError(f"path {path!r} is outside the working directory {str(root)!r}; access refused")
        return target

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.cwd.resolve())) or "."
        except ValueError:
            return str(path)


Handler = Callable[[dict, ToolContext], Any]


@dataclass(frozen=True)
class Tool:
    """A tool the model can call. ``handler(input, ctx)`` may be sync or async and returns a
    ``ToolOutput`` or any value (strings pass through, ``None`` → ``""``, others → JSON)."""

    name: str
    description: str
    input_schema: dict
    handler: Handler
    access: str = READ
    run_in_thread: bool = False  # sync handlers of user functions run off the event loop

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.name):
            raise AsmError("validation_error",
                           f"Invalid tool name {self.name!r}: use 1-64 letters, digits, '_' or '-'")
        if self.access not in _ACCESS:
            raise AsmError("validation_error", f"Invalid tool access {self.access!r}, expected one of {_ACCESS}")
        if not callable(self.handler):
            raise AsmError("validation_error", f"Tool {self.name!r} has no callable handler")

    @property
    def mutates(self) -> bool:
        """True for tools that write files or execute commands."""
        return self.access != READ

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """A tool made with ``@tool`` stays callable as the original function."""
        fn = self.__dict__.get("__wrapped__")
        if fn is None:
            raise TypeError(f"tool {self.name!r} is not a plain function; use await tool.run(input, ctx)")
        return fn(*args, **kwargs)

    def to_api(self) -> dict[str, Any]:
        """The Messages API ``tools`` entry."""
        return {"name": self.name, "description": self.description, "input_schema": self.input_schema}

    async def run(self, tool_input: Mapping[str, Any], ctx: ToolContext) -> ToolOutput:
        """Run the handler; never raises for handler failures (they become ``is_error`` outputs)."""
        try:
            if self.run_in_thread and not inspect.iscoroutinefunction(self.handler):
                res = await asyncio.to_thread(self.handler, dict(tool_input), ctx)
            else:
                res = self.handler(dict(tool_input), ctx)
            if inspect.isawaitable(res):
                res = await res
        except ToolError as exc:
            return ToolOutput(str(exc) or "tool failed", is_error=True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return ToolOutput(f"{type(exc).__name__}: {exc}", is_error=True,
                              details={"exception": type(exc).__name__})
        return _to_output(res)


ToolSpec = Tool  # the spec's name (part 2 §3.3)


def _to_output(res: Any) -> ToolOutput:
    if isinstance(res, ToolOutput):
        return res
    if res is None:
        return ToolOutput("")
    if isinstance(res, str):
        return ToolOutput(res)
    if isinstance(res, bytes):
        return ToolOutput(res.decode("utf-8", errors="replace"))
    try:
        return ToolOutput(json.dumps(res, ensure_ascii=False, default=str))
    except (TypeError, ValueError):
        return ToolOutput(str(res))


# ---------------------------------------------------------------------------------------------
# @tool: schema from type hints and docstring
# ---------------------------------------------------------------------------------------------

_SIMPLE = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object", list: "array",
           tuple: "array", set: "array", type(None): "null"}


def _schema_for(tp: Any) -> dict[str, Any]:
    if tp is inspect.Parameter.empty or tp is Any:
        return {}
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        inner = _schema_for(args[0])
        desc = next((a for a in args[1:] if isinstance(a, str)), None)
        return {**inner, "description": desc} if desc else inner
    if origin in (Union, types.UnionType):
        non_null = [a for a in args if a is not type(None)]
        if len(non_null) == 1:
            return _schema_for(non_null[0])
        return {"anyOf": [_schema_for(a) for a in args]}
    if origin is Literal:
        vals = list(args)
        s: dict[str, Any] = {"enum": vals}
        kinds = {_SIMPLE.get(type(v)) for v in vals}
        if len(kinds) == 1 and None not in kinds:
            s["type"] = kinds.pop()
        return s
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"enum": [m.value for m in tp]}
    if origin in (list, tuple, set, frozenset, typing.Sequence, typing.Iterable) or tp in (list, tuple, set):
        s = {"type": "array"}
        if args and args[0] is not Ellipsis:
            s["items"] = _schema_for(args[0])
        return s
    if origin in (dict, typing.Mapping) or tp is dict:
        s = {"type": "object"}
        if len(args) == 2:
            s["additionalProperties"] = _schema_for(args[1])
        return s
    if tp in _SIMPLE:
        return {"type": _SIMPLE[tp]}
    if hasattr(tp, "__annotations__") and getattr(tp, "__total__", None) is not None:  # TypedDict
        hints = typing.get_type_hints(tp)
        return {"type": "object", "properties": {k: _schema_for(v) for k, v in hints.items()},
                "required": sorted(getattr(tp, "__required_keys__", hints))}
    return {}


_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Params|Returns?|Raises|Yields|Examples?|Notes?)\s*:\s*$")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """``(description, {param: text})`` from a Google-style (``Args:``) or Sphinx (``:param x:``)
    docstring."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    desc_lines: list[str] = []
    params: dict[str, str] = {}
    section = None
    current = None
    indent = None
    for line in lines:
        m = _SECTION.match(line)
        if m:
            section = m.group(1).lower()
            current, indent = None, None
            continue
        sphinx = re.match(r"^\s*:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$", line)
        if sphinx:
            current = sphinx.group(1)
            params[current] = sphinx.group(2).strip()
            section = "sphinx"
            continue
        if section is None:
            desc_lines.append(line)
        elif section in ("args", "arguments", "parameters", "params"):
            stripped = line.strip()
            if not stripped:
                continue
            lead = len(line) - len(line.lstrip())
            pm = re.match(r"^(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$", stripped)
            if pm and (indent is None or lead <= indent):
                indent = lead
                current = pm.group(1).lstrip("*")
                params[current] = pm.group(2).strip()
            elif current:
                params[current] = (params[current] + " " + stripped).strip()
        elif section == "sphinx" and current and line.strip() and not line.strip().startswith(":"):
            params[current] = (params[current] + " " + line.strip()).strip()
    description = "\n".join(desc_lines).strip()
    return description, params


def _wants_ctx(p: inspect.Parameter, hints: Mapping[str, Any]) -> bool:
    return hints.get(p.name) is ToolContext or p.annotation is ToolContext or p.annotation == "ToolContext"


def _build_tool(fn: Callable[..., Any], name: str | None, description: str | None, access: str) -> Tool:
    sig = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception:  # unresolvable forward references: fall back to raw annotations
        hints = {}
    doc_desc, doc_params = parse_docstring(inspect.getdoc(fn))
    props: dict[str, Any] = {}
    required: list[str] = []
    ctx_param = None
    accepts_kwargs = False
    enums: dict[str, type] = {}
    for p in sig.parameters.values():
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            accepts_kwargs = True
            continue
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        if _wants_ctx(p, hints):
            ctx_param = p.name
            continue
        s = dict(_schema_for(hints.get(p.name, p.annotation)))
        if doc_params.get(p.name) and "description" not in s:
            s["description"] = doc_params[p.name]
        hint = hints.get(p.name, p.annotation)
        if isinstance(hint, type) and issubclass(hint, enum.Enum):
            enums[p.name] = hint
        if p.default is not inspect.Parameter.empty:
            default = p.default.value if isinstance(p.default, enum.Enum) else p.default
            try:
                json.dumps(default)
                s["default"] = default
            except (TypeError, ValueError):
                pass
        else:
            required.append(p.name)
        props[p.name] = s
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        schema["required"] = required
    tool_name = name or fn.__name__
    desc = description or doc_desc or f"Call the Python function {tool_name}."
    known = set(props)
    is_async = inspect.iscoroutinefunction(fn)

    def _kwargs(tool_input: dict, ctx: ToolContext) -> dict:
        unknown = set(tool_input) - known
        if unknown and not accepts_kwargs:
            raise ToolError(f"unexpected argument(s) for {tool_name}: {', '.join(sorted(unknown))}")
        missing = [r for r in required if r not in tool_input]
        if missing:
            raise ToolError(f"missing required argument(s) for {tool_name}: {', '.join(missing)}")
        kw = dict(tool_input)
        for k, enum_type in enums.items():  # the model sends enum values; the function wants members
            if k in kw and not isinstance(kw[k], enum_type):
                try:
                    kw[k] = enum_type(kw[k])
                except ValueError:
                    raise ToolError(f"invalid value {kw[k]!r} for {k}; expected one of "
                                    f"{[m.value for m in enum_type]}") from None
        if ctx_param:
            kw[ctx_param] = ctx
        return kw

    if is_async:
        async def handler(tool_input: dict, ctx: ToolContext) -> Any:
            return await fn(**_kwargs(tool_input, ctx))
    else:
        def handler(tool_input: dict, ctx: ToolContext) -> Any:
            return fn(**_kwargs(tool_input, ctx))

    t = Tool(name=tool_name, description=desc, input_schema=schema, handler=handler, access=access,
             run_in_thread=not is_async)
    object.__setattr__(t, "__wrapped__", fn)
    return t


def tool(fn: Callable[..., Any] | None = None, *, name: str | None = None, description: str | None = None,
         access: str = READ) -> Any:
    """Make a ``Tool`` from a function (use as ``@tool`` or ``@tool(name=..., access="write")``).

    The input schema comes from the parameters' type hints (``str``, ``int``, ``float``, ``bool``,
    ``list[X]``, ``dict``, ``Optional[X]``, ``Literal[...]``, ``Enum``, ``Annotated[X, "doc"]``);
    parameters without a default are required. The description is the docstring's first part;
    per-parameter descriptions come from its ``Args:`` section. A parameter annotated
    ``ToolContext`` receives the run context instead of model input. ``access`` says what the
    function does (``"read"``, ``"write"``, ``"execute"``) for permission modes; user tools
    default to ``"read"`` (they run without approval) — declare ``"write"``/``"execute"`` for
    functions with side effects you want gated.

    >>> @tool
    ... def add(a: int, b: int = 1) -> int:
    ...     '''Add two numbers.
    ...
    ...     Args:
    ...         a: First number.
    ...     '''
    ...     return a + b
    >>> add.input_schema["required"], add.description
    (['a'], 'Add two numbers.')
    """
    if fn is None:
        return lambda f: _build_tool(f, name, description, access)
    return _build_tool(fn, name, description, access)


def as_tool(obj: Any) -> Tool:
    """A ``Tool`` from a ``Tool``, a plain callable (via ``@tool``) or a dict with ``name``,
    ``description``, ``input_schema``, ``handler`` (and optional ``access``)."""
    if isinstance(obj, Tool):
        return obj
    if isinstance(obj, Mapping):
        missing = [k for k in ("name", "handler") if k not in obj]
        if missing:
            raise AsmError("validation_error", f"Tool spec is missing {', '.join(missing)}: {dict(obj)!r}")
        return Tool(name=obj["name"], description=obj.get("description") or obj["name"],
                    input_schema=dict(obj.get("input_schema") or {"type": "object", "properties": {}}),
                    handler=obj["handler"], access=obj.get("access", READ),
                    run_in_thread=bool(obj.get("run_in_thread", False)))
    if callable(obj):
        return tool(obj)
    raise AsmError("validation_error", f"Not a tool: {obj!r} (expected a Tool, a function or a tool dict)")


def as_tools(objs: Iterable[Any] | None) -> list[Tool]:
    """``as_tool`` over a list (``None`` → ``[]``)."""
    return [as_tool(o) for o in (objs or [])]


# ---------------------------------------------------------------------------------------------
# Built-in workspace tools
# ---------------------------------------------------------------------------------------------

_SKIP_DIRS = {".git", "node_modules", "__pycache__", ".venv", ".mypy_cache", ".pytest_cache"}
_MAX_LIST = 1000
_MAX_MATCHES = 200


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


def _walk(root: Path) -> Iterable[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for f in sorted(filenames):
            yield Path(dirpath) / f


def _list_files(inp: dict, ctx: ToolContext) -> ToolOutput:
    base = ctx.resolve(inp.get("path") or ".")
    pattern = inp.get("pattern") or "**/*"
    if not base.is_dir():
        raise ToolError(f"{ctx.rel(base)} is not a directory")
    out = []
    for p in _walk(base):
        rel = str(p.relative_to(base))
        if fnmatch.fnmatch(rel, pattern) or (pattern.startswith("**/") and fnmatch.fnmatch(rel, pattern[3:])):
            out.append(ctx.rel(p))
            if len(out) >= _MAX_LIST:
                out.append(f"[stopped after {_MAX_LIST} files]")
                break
    return ToolOutput("\n".join(out) if out else "(no files match)")


def _grep(inp: dict, ctx: ToolContext) -> ToolOutput:
    pattern = inp.get("pattern")
    if not isinstance(pattern, str) or not pattern:
        raise ToolError("'pattern' must be a non-empty regular expression")
    try:
        rx = re.compile(pattern, re.IGNORECASE if inp.get("ignore_case") else 0)
    except re.error as exc:
        raise ToolError(f"invalid regular expression: {exc}") from None
    base = ctx.resolve(inp.get("path") or ".")
    glob = inp.get("glob")
    files = [base] if base.is_file() else list(_walk(base))
    out = []
    for p in files:
        if glob and not fnmatch.fnmatch(p.name, glob) and not fnmatch.fnmatch(ctx.rel(p), glob):
            continue
        try:
            data = p.read_bytes()
        except OSError:
            continue
        if b"\x00" in data[:8192]:
            continue
        for no, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
            if rx.search(line):
                out.append(f"{ctx.rel(p)}:{no}: {line[:500]}")
                if len(out) >= _MAX_MATCHES:
                    out.append(f"[stopped after {_MAX_MATCHES} matches]")
                    return ToolOutput("\n".join(out))
    return ToolOutput("\n".join(out) if out else "(no matches)")


async def _bash(inp: dict, ctx: ToolContext) -> ToolOutput:
    from ._process import ManagedProcess  # the shared process layer: own group, killed on cancel/timeout

    command = inp.get("command")
    if not isinstance(command, str) or not command.strip():
        raise ToolError("'command' must be a non-empty string")
    timeout_ms = int(inp.get("timeout_ms") or ctx.timeout_ms or int(config.get("command_timeout_ms")))
    shell = "/bin/bash" if os.path.exists("/bin/bash") else str(config.get("default_shell"))
    limit = _max_bytes()
    buf = bytearray()
    async with ManagedProcess.start([shell, "-c", command], cwd=str(ctx.cwd), env=ctx.env, merge_stderr=True,
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
               "ignore_case": {"type": "boolean"}}, ["pattern"]), _grep, READ, run_in_thread=True),
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
