"""Scorers of what the run did: ``trajectory()`` (tool calls in order, never called, at most N
tool calls or steps, cost and duration bounds) and the workspace scorers (``files_changed``,
``files_unchanged``, ``diff_contains``, ``command``: exits 0 in the item's workspace).

Split out of ``evaluation/scorers.py``, which re-exports every name.
"""

from __future__ import annotations

import fnmatch
import os
import re
from typing import Any, Callable, Mapping

from ..core.errors import AsmError
from . import trajectory as tj
from .scorer_base import Sample, Score, Scorer


class TrajectoryScorer(Scorer):
    """Checks on the run's tool calls, steps, cost and duration; value = fraction of checks that
    pass, passed = all pass. Chain: ``trajectory().called("read_file").then("edit_file")
    .never_called("bash").max_tool_calls(10).cost_below(0.1)``."""

    kind = "trajectory"
    inline = True

    def __init__(self, name: str = "trajectory") -> None:
        self.name = name
        self.checks: list[Callable[[Sample], tuple[bool, str]]] = []
        self._seq: list[tuple[str, Mapping | None]] | None = None

    def _add(self, fn: Callable[[Sample], tuple[bool, str]]) -> "TrajectoryScorer":
        self.checks.append(fn)
        return self

    def called(self, tool: str, args: Mapping[str, Any] | None = None, *, times: int | None = None,
               **kw: Any) -> "TrajectoryScorer":
        """``tool`` was called (with input matching ``args`` / keyword matchers)."""
        a = {**(args or {}), **kw} or None
        seq: list[tuple[str, Mapping | None]] = [(tool, a)]
        self._seq = seq
        self._add(lambda s: tj.check_called(s.tool_calls, tool, a, times=times))
        return self

    def then(self, tool: str, args: Mapping[str, Any] | None = None, **kw: Any) -> "TrajectoryScorer":
        """... and after it (later in the run) ``tool``: checks the whole chain in order."""
        if self._seq is None:
            raise AsmError("validation_error", "then() follows called() or another then()")
        a = {**(args or {}), **kw} or None
        self._seq.append((tool, a))
        steps = list(self._seq)
        self.checks.append(lambda s: tj.check_sequence(s.tool_calls, steps))
        return self

    def in_order(self, *tools: str) -> "TrajectoryScorer":
        steps = [(t, None) for t in tools]
        return self._add(lambda s: tj.check_sequence(s.tool_calls, steps))

    def never_called(self, tool: str, args: Mapping[str, Any] | None = None, **kw: Any) -> "TrajectoryScorer":
        a = {**(args or {}), **kw} or None
        return self._add(lambda s: tj.check_never(s.tool_calls, tool, a))

    def max_tool_calls(self, n: int) -> "TrajectoryScorer":
        return self._add(lambda s: tj.check_max("tool calls", len(s.tool_calls), n))

    def max_steps(self, n: int) -> "TrajectoryScorer":
        return self._add(lambda s: tj.check_max("steps", tj.steps_of(s.result), n))

    def cost_below(self, usd: float) -> "TrajectoryScorer":
        return self._add(lambda s: tj.check_max("cost", getattr(s.result, "cost_usd", None), usd, " USD"))

    def duration_below(self, seconds: float) -> "TrajectoryScorer":
        def f(s: Sample) -> tuple[bool, str]:
            ms = getattr(s.result, "duration_ms", None)
            return tj.check_max("duration", None if ms is None else ms / 1000, seconds, " s")
        return self._add(f)

    def score(self, sample: Sample) -> Score:
        if not self.checks:
            raise AsmError("validation_error", f"trajectory scorer {self.name!r} has no checks")
        results = [c(sample) for c in self.checks]
        ok = sum(1 for r, _ in results if r)
        failed = [why for r, why in results if not r]
        why = "; ".join(failed) if failed else "; ".join(w for _, w in results)
        return Score(self.name, ok / len(results), not failed, why, self.kind)


def trajectory(name: str = "trajectory") -> TrajectoryScorer:
    """An empty trajectory scorer to chain checks on (see :class:`TrajectoryScorer`)."""
    return TrajectoryScorer(name)


# ---------------------------------------------------------------------------------------------- workspace
def _globs(paths: Any) -> list[str]:
    return [paths] if isinstance(paths, str) else [str(p) for p in paths]


class _Workspace(Scorer):
    kind = "workspace"

    def __init__(self, name: str, fn: Callable[[Sample], tuple[float | None, bool, str]]) -> None:
        self.name = name
        self._fn = fn

    def score(self, sample: Sample) -> Score:
        if sample.workspace is None and sample.workspace_record is None:
            return Score(self.name, None, False, "no workspace: the item has no fixture and the run no snapshot",
                         self.kind)
        value, passed, why = self._fn(sample)
        return Score(self.name, value, passed, why, self.kind)


def files_changed(paths: Any = None, *, name: str = "files_changed") -> Scorer:
    """Every path/glob in ``paths`` was changed by the run (None: at least one file changed)."""
    def fn(s: Sample) -> tuple[float, bool, str]:
        changed = s.changed_paths
        if paths is None:
            return float(bool(changed)), bool(changed), (f"{len(changed)} file(s) changed" if changed
                                                         else "no file changed")
        globs = _globs(paths)
        missing = [g for g in globs if not any(fnmatch.fnmatchcase(p, g) for p in changed)]
        return (len(globs) - len(missing)) / len(globs), not missing, (
            f"changed: {', '.join(changed) or '(none)'}" if not missing else f"not changed: {', '.join(missing)}")
    return _Workspace(name, fn)


def files_unchanged(paths: Any, *, name: str = "files_unchanged") -> Scorer:
    """No path matching ``paths`` (paths or globs) was changed."""
    def fn(s: Sample) -> tuple[float, bool, str]:
        globs = _globs(paths)
        touched = sorted({p for p in s.changed_paths for g in globs if fnmatch.fnmatchcase(p, g)})
        return float(not touched), not touched, (f"changed: {', '.join(touched)}" if touched else "untouched")
    return _Workspace(name, fn)


def diff_contains(text: str | re.Pattern, *, name: str = "diff_contains") -> Scorer:
    """The run's unified diff contains ``text`` (a string, or a compiled regex searched)."""
    def fn(s: Sample) -> tuple[float, bool, str]:
        patch = s.patch
        ok = bool(text.search(patch)) if isinstance(text, re.Pattern) else str(text) in patch
        shown = text.pattern if isinstance(text, re.Pattern) else text
        return float(ok), ok, (f"diff contains {shown!r}" if ok else f"diff ({len(patch)} chars) lacks {shown!r}")
    return _Workspace(name, fn)


def command(cmd: str, *, timeout_s: float = 300, name: str | None = None) -> Scorer:
    """``cmd`` (a shell command line) exits 0 in the item's workspace after the run — e.g. the
    project's tests. The explanation keeps the exit code and the output's tail."""
    def fn(s: Sample) -> tuple[float, bool, str]:
        if s.workspace is None or not os.path.isdir(s.workspace):
            return None, False, "no workspace folder to run the command in"  # type: ignore[return-value]
        from ..process import exec as wexec

        res = wexec.run_sync("/bin/sh", ["-c", cmd], cwd=s.workspace, timeout_ms=int(timeout_s * 1000))
        tail = (res.stdout + res.stderr).strip().splitlines()[-3:]
        if res.timed_out:
            return 0.0, False, f"timed out after {timeout_s:g}s"
        ok = res.exit_code == 0
        return float(ok), ok, f"exit {res.exit_code}" + (": " + " | ".join(tail) if tail else "")
    return _Workspace(name or f"command: {cmd}"[:60], fn)
