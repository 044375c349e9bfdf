"""``expect(run)``: fluent assertions on what a run did, for pytest.

    from asm_nb.testing import expect

    def test_agent_edits_after_reading():
        run = asm_nb.run_once("Fix the bug in a.py", provider="replay", options={"cassette": "fix.jsonl"})
        (expect(run).succeeded()
            .called("read_file", path="a.py").then("edit_file")
            .never_called("bash")
            .max_tool_calls(5).cost_below(0.10))

Each check runs at once and raises ``AssertionError`` naming the check and listing the run's tool
calls; every check returns the ``Expect`` so they chain. ``called`` starts an ordered chain and
``then`` continues it: each ``then`` must match a call *after* the previous match.
Argument matchers: a value (equal), a compiled regex (searched), a predicate, a dict (subset).

>>> from types import SimpleNamespace as NS
>>> run = NS(status="completed", output="done", tool_calls=[{"name": "read_file", "input": {"path": "a.py"}},
...          {"name": "edit_file", "input": {"path": "a.py"}}], events=[], cost_usd=0.01, duration_ms=900,
...          run_id="run_x")
>>> _ = expect(run).called("read_file").then("edit_file").never_called("bash").cost_below(0.10)
>>> expect(run).called("edit_file").then("read_file")
Traceback (most recent call last):
...
AssertionError: expected read_file after edit_file (call #2) in run run_x; tool calls: read_file, edit_file
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from ..evaluation import trajectory as tj

__all__ = ["expect", "Expect"]


class Expect:
    """Assertions over one run (a ``RunResult``, or anything with ``tool_calls``/``events``/
    ``output``/``cost_usd``/``duration_ms``/``status``)."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.calls = tj.tool_calls_of(run)
        self._cursor: int | None = None
        self._last: str | None = None

    def _fail(self, message: str) -> None:
        rid = getattr(self.run, "run_id", None)
        where = f" in run {rid}" if rid else ""
        raise AssertionError(f"{message}{where}; tool calls: {tj.describe_calls(self.calls)}")

    @staticmethod
    def _args(args: Mapping[str, Any] | None, kw: Mapping[str, Any]) -> Mapping[str, Any] | None:
        return {**(args or {}), **kw} or None

    def called(self, tool: str, args: Mapping[str, Any] | None = None, *, times: int | None = None,
               **kw: Any) -> "Expect":
        """``tool`` (a name or glob) was called with input matching ``args``/keywords
        (``times``: exactly that many times). Starts an ordered chain for :meth:`then`."""
        a = self._args(args, kw)
        hits = [i for i, c in enumerate(self.calls) if tj.match_call(c, tool, a)]
        if times is not None and len(hits) != times:
            self._fail(f"expected {tj._pattern(tool, a)} {times} time(s), got {len(hits)}")
        if not hits:
            self._fail(f"expected a call to {tj._pattern(tool, a)}")
        self._cursor, self._last = hits[0], f"{tj._pattern(tool, a)} (call #{hits[0] + 1})"
        return self

    def then(self, tool: str, args: Mapping[str, Any] | None = None, **kw: Any) -> "Expect":
        """... followed, later in the run, by ``tool``."""
        if self._cursor is None:
            raise ValueError("then() follows called() or another then()")
        a = self._args(args, kw)
        for i in range(self._cursor + 1, len(self.calls)):
            if tj.match_call(self.calls[i], tool, a):
                self._cursor, self._last = i, f"{tj._pattern(tool, a)} (call #{i + 1})"
                return self
        self._fail(f"expected {tj._pattern(tool, a)} after {self._last}")
        return self

    def never_called(self, tool: str, args: Mapping[str, Any] | None = None, **kw: Any) -> "Expect":
        ok, why = tj.check_never(self.calls, tool, self._args(args, kw))
        if not ok:
            self._fail(f"expected no call to {tool}, but {why}")
        return self

    def max_tool_calls(self, n: int) -> "Expect":
        if len(self.calls) > n:
            self._fail(f"expected at most {n} tool calls, got {len(self.calls)}")
        return self

    def max_steps(self, n: int) -> "Expect":
        steps = tj.steps_of(self.run)
        if steps > n:
            self._fail(f"expected at most {n} steps, got {steps}")
        return self

    def cost_below(self, usd: float) -> "Expect":
        cost = getattr(self.run, "cost_usd", None)
        if cost is None:
            self._fail(f"expected cost below ${usd:g}, but the run's cost is unknown")
        elif cost >= usd:
            self._fail(f"expected cost below ${usd:g}, got ${cost:.4f}")
        return self

    def duration_below(self, seconds: float) -> "Expect":
        ms = getattr(self.run, "duration_ms", None)
        if ms is None or ms / 1000 >= seconds:
            self._fail(f"expected duration below {seconds:g}s, got {'unknown' if ms is None else f'{ms / 1000:.3f}s'}")
        return self

    def succeeded(self) -> "Expect":
        status = getattr(self.run, "status", None)
        if status != "completed":
            err = getattr(self.run, "error", None)
            self._fail(f"expected the run to complete, it ended {status}" + (f" ({err})" if err else ""))
        return self

    def output_contains(self, text: str) -> "Expect":
        out = str(getattr(self.run, "output", "") or "")
        if text not in out:
            self._fail(f"expected the output to contain {text!r}; output: {out[:120]!r}")
        return self

    def output_matches(self, pattern: str | re.Pattern) -> "Expect":
        rx = pattern if isinstance(pattern, re.Pattern) else re.compile(pattern)
        out = str(getattr(self.run, "output", "") or "")
        if not rx.search(out):
            self._fail(f"expected the output to match /{rx.pattern}/; output: {out[:120]!r}")
        return self


def expect(run: Any) -> Expect:
    """Start assertions on ``run`` (see :class:`Expect`)."""
    return Expect(run)
