"""The tool layer of the Claude API adapter: ``Tool`` and the ``@tool`` decorator.

A ``Tool`` is what the model may call: a name, a description, a JSON schema for its input, an
async-or-sync handler ``(input: dict, ctx: ToolContext) -> ToolOutput | Any``, and its ``access``
(``"read"``, ``"write"`` or ``"execute"``) which permission modes use to decide whether it runs
without asking (docs/providers.md, Claude; docs/policies.md, permission modes).

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

The built-in workspace tools (``builtin_tools()``, ``BUILTIN_TOOL_NAMES``) live in
``workspace_tools``; both names are still importable from here.

Imports only the standard library and ``core``.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import json
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Literal, Mapping, Union

from ..core.errors import AsmError

if TYPE_CHECKING:  # pragma: no cover - re-exported lazily by __getattr__ below
    from .workspace_tools import BUILTIN_TOOL_NAMES, builtin_tools

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
        if "\x00" in path:
            raise ToolError("'path' must not contain a NUL byte")
        root = self.cwd.resolve()
        p = Path(path)
        try:  # the confinement rule of every file tool (``_confine``): resolve, then compare
            target = (p if p.is_absolute() else root / p).resolve()
        except (OSError, RuntimeError):
            raise ToolError(f"path {path!r} cannot be resolved (a symlink loop?); access refused") from None
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


ToolSpec = Tool  # another name for Tool, kept for callers that use it


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
    enums: dict[str, type[enum.Enum]] = {}
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

    async def async_handler(tool_input: dict, ctx: ToolContext) -> Any:
        return await fn(**_kwargs(tool_input, ctx))

    def sync_handler(tool_input: dict, ctx: ToolContext) -> Any:
        return fn(**_kwargs(tool_input, ctx))

    handler: Callable[[dict, ToolContext], Any] = async_handler if is_async else sync_handler

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


def __getattr__(name: str) -> Any:
    # ``builtin_tools`` / ``BUILTIN_TOOL_NAMES`` moved to ``workspace_tools`` (which imports this
    # module, hence the lazy re-export)
    if name in ("builtin_tools", "BUILTIN_TOOL_NAMES"):
        from . import workspace_tools

        return getattr(workspace_tools, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
