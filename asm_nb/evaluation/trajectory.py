"""Trajectory checks over a run's tool calls, shared by the trajectory scorers and
``asm_nb.testing.expect``.

A *call pattern* is a tool name (exact, or a glob such as ``"mcp__*"``) plus optional argument
matchers: ``{"path": "README.md"}`` (equal), ``{"path": re.compile(r"\\.py$")}`` (regex search),
``{"path": lambda p: p.endswith(".py")}`` (predicate); a nested dict matches a subset.

>>> calls = [{"name": "read_file", "input": {"path": "a.py"}}, {"name": "edit_file", "input": {"path": "a.py"}}]
>>> check_called(calls, "read_file", {"path": "a.py"})[0]
True
>>> check_sequence(calls, [("edit_file", None), ("read_file", None)])
(False, 'no call matching read_file after edit_file (call #2); calls: read_file, edit_file')
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any, Mapping, Sequence

__all__ = ["tool_calls_of", "steps_of", "match_call", "check_called", "check_sequence", "check_never",
           "check_max", "describe_calls"]


def tool_calls_of(run: Any) -> list[Mapping[str, Any]]:
    """``[{name, input, output, status}]`` of a RunResult (or anything with ``tool_calls`` or
    ``events``), in start order."""
    calls = getattr(run, "tool_calls", None)
    if calls is None and isinstance(run, Mapping):
        calls = run.get("tool_calls")
    if calls is None:
        return []
    return [c if isinstance(c, Mapping) else dict(c) for c in calls]


def steps_of(run: Any) -> int:
    """Agent steps: ``turn_completed`` events when the provider reports turns, else tool calls + 1
    (the final answer)."""
    events = getattr(run, "events", None) or []
    turns = sum(1 for e in events if _etype(e) == "turn_completed")
    return turns if turns else len(tool_calls_of(run)) + 1


def _etype(e: Any) -> str:
    t = getattr(e, "type", None)
    if t is None and isinstance(e, Mapping):
        t = e.get("type")
    return str(getattr(t, "value", t))


def _match_value(expected: Any, actual: Any) -> bool:
    if callable(expected) and not isinstance(expected, type):
        try:
            return bool(expected(actual))
        except Exception:
            return False
    if isinstance(expected, re.Pattern):
        return actual is not None and expected.search(str(actual)) is not None
    if isinstance(expected, Mapping):
        return isinstance(actual, Mapping) and all(k in actual and _match_value(v, actual[k])
                                                   for k, v in expected.items())
    return actual == expected


def match_call(call: Mapping[str, Any], name: str, args: Mapping[str, Any] | None = None) -> bool:
    """True when ``call`` has tool name ``name`` (glob allowed) and its input matches ``args``."""
    cname = str(call.get("name") or "")
    if cname != name and not fnmatch.fnmatchcase(cname, name):
        return False
    if args:
        inp = call.get("input")
        if not isinstance(inp, Mapping):
            return False
        return all(k in inp and _match_value(v, inp[k]) for k, v in args.items())
    return True


def describe_calls(calls: Sequence[Mapping[str, Any]]) -> str:
    return ", ".join(str(c.get("name")) for c in calls) if calls else "(no tool calls)"


def _pattern(name: str, args: Mapping[str, Any] | None) -> str:
    if not args:
        return name
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in args.items())})"


def check_called(calls: Sequence[Mapping[str, Any]], name: str, args: Mapping[str, Any] | None = None,
                 *, times: int | None = None) -> tuple[bool, str]:
    """At least one call matches (``times``: exactly that many)."""
    n = sum(1 for c in calls if match_call(c, name, args))
    if times is not None:
        ok = n == times
        return ok, f"{_pattern(name, args)} called {n} time(s), expected {times}; calls: {describe_calls(calls)}"
    if n:
        return True, f"{_pattern(name, args)} called {n} time(s)"
    return False, f"{_pattern(name, args)} was never called; calls: {describe_calls(calls)}"


def check_sequence(calls: Sequence[Mapping[str, Any]], steps: Sequence[tuple[str, Mapping | None]]) -> tuple[bool, str]:
    """The patterns match calls in this order (other calls may come between)."""
    pos = 0
    prev: str | None = None
    for name, args in steps:
        while pos < len(calls) and not match_call(calls[pos], name, args):
            pos += 1
        if pos >= len(calls):
            where = f" after {prev}" if prev else ""
            return False, f"no call matching {_pattern(name, args)}{where}; calls: {describe_calls(calls)}"
        prev = f"{_pattern(name, args)} (call #{pos + 1})"
        pos += 1
    return True, "in order: " + " -> ".join(_pattern(n, a) for n, a in steps)


def check_never(calls: Sequence[Mapping[str, Any]], name: str, args: Mapping[str, Any] | None = None) -> tuple[bool, str]:
    hits = [i + 1 for i, c in enumerate(calls) if match_call(c, name, args)]
    if hits:
        return False, f"{_pattern(name, args)} was called (call #{', #'.join(map(str, hits))})"
    return True, f"{_pattern(name, args)} never called"


def check_max(what: str, actual: float | None, limit: float, unit: str = "") -> tuple[bool, str]:
    if actual is None:
        return False, f"{what} unknown (limit {limit}{unit})"
    ok = actual <= limit
    return ok, f"{what} {actual:g}{unit} {'<=' if ok else '>'} {limit:g}{unit}"
