"""Scorers: each turns one finished sample (item + agent + run + workspace) into a
:class:`Score` — a value, a pass/fail and an explanation.

Kinds:

- text: :func:`exact`, :func:`contains`, :func:`regex`, :func:`json_match`, :func:`number`
  (the expected value defaults to the item's ``expected``);
- any Python function, with ``@asm_nb.scorer`` (:func:`scorer`);
- model-graded: :func:`model_graded` — a rubric judged by a provider of your choice, recorded as
  a cassette so it replays offline;
- trajectory: :func:`trajectory` (``.called(...)``, ``.then(...)``, ``.never_called(...)``,
  ``.max_steps(n)``, ``.max_tool_calls(n)``, ``.cost_below(usd)``, ``.duration_below(s)``);
- workspace: :func:`files_changed`, :func:`files_unchanged`, :func:`diff_contains`,
  :func:`command` (must exit 0 in the item's workspace after the run).

>>> from types import SimpleNamespace as NS
>>> s = Sample(item=NS(expected="4", input="2+2?", vars={}, metadata={}, id="0"), agent=None, repeat=0,
...            result=NS(output="The answer is 4.", tool_calls=[], events=[], cost_usd=None, duration_ms=5))
>>> contains()(s).passed, exact()(s).passed
(True, False)
"""

from __future__ import annotations

import fnmatch
import functools
import inspect
import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..core.errors import AsmError
from . import trajectory as tj

__all__ = ["Score", "Sample", "Scorer", "scorer", "exact", "contains", "regex", "json_match", "number",
           "model_graded", "trajectory", "files_changed", "files_unchanged", "diff_contains", "command",
           "scorer_from_spec", "as_scorers"]


@dataclass(frozen=True)
class Score:
    """One scorer's verdict on one sample: ``value`` (a number, None when it could not score),
    ``passed`` and a human ``explanation``."""

    name: str
    value: float | None
    passed: bool
    explanation: str = ""
    kind: str = "function"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "passed": self.passed, "explanation": self.explanation,
                "kind": self.kind}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Score":
        return cls(name=str(d.get("name")), value=d.get("value"), passed=bool(d.get("passed")),
                   explanation=str(d.get("explanation") or ""), kind=str(d.get("kind") or "function"))


@dataclass
class Sample:
    """What a scorer sees: the ``item``, the ``agent``, the ``repeat``, the run's ``result``
    (a ``RunResult``), the ``workspace`` folder the agent worked in (None without a fixture) and
    the ``store``."""

    item: Any
    agent: Any
    repeat: int
    result: Any
    workspace: str | None = None
    store: Any = None
    _patch: Any = field(default=None, repr=False)

    @property
    def output(self) -> str:
        out = getattr(self.result, "output", "")
        return out if isinstance(out, str) else ("" if out is None else str(out))

    @property
    def expected(self) -> Any:
        return getattr(self.item, "expected", None)

    @property
    def input(self) -> Any:
        return getattr(self.item, "input", None)

    @property
    def tool_calls(self) -> list[Mapping[str, Any]]:
        return tj.tool_calls_of(self.result)

    @property
    def workspace_record(self) -> dict | None:
        """The run's workspace record (changed paths, insertions, deletions, patch ref), or None."""
        ws = getattr(self.result, "workspace", None)
        if isinstance(ws, Mapping):
            return dict(ws)
        return None

    @property
    def changed_paths(self) -> list[str]:
        rec = self.workspace_record or {}
        return [str(p) for p in rec.get("changed_paths") or []]

    @property
    def patch(self) -> str:
        """The unified diff of the run's workspace changes ('' when none was recorded)."""
        if self._patch is None:
            self._patch = _load_patch(self.workspace_record, self.store)
        return self._patch


def _load_patch(rec: Mapping[str, Any] | None, store: Any) -> str:
    if not rec:
        return ""
    diff = rec.get("diff") or {}
    if isinstance(diff.get("patch"), str):
        return diff["patch"]
    ref = rec.get("patch_ref")
    if ref and store is not None:
        try:
            from ..stores.artifacts import artifact_store_for

            arts = artifact_store_for(store)
            if arts is not None:
                return arts.get(ref).decode("utf-8", "replace")
        except Exception:
            return ""
    return ""


class Scorer:
    """Base class: subclasses set ``name`` / ``kind`` and implement ``score(sample) -> Score``."""

    name: str = "scorer"
    kind: str = "function"
    #: True when scoring only looks at data already in memory (no I/O, no waiting): the runner
    #: then scores on its event loop instead of a worker thread.
    inline: bool = False

    def score(self, sample: Sample) -> Score:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, sample: Sample) -> Score:
        try:
            return self.score(sample)
        except AsmError as err:
            return Score(self.name, None, False, f"scorer error: [{err.code}] {err.message}", self.kind)
        except Exception as exc:
            return Score(self.name, None, False, f"scorer error: {exc!r}", self.kind)

    def __repr__(self) -> str:
        return f"<{self.kind} scorer {self.name!r}>"


def _coerce(name: str, kind: str, out: Any, threshold: float) -> Score:
    if isinstance(out, Score):
        return out if out.name == name else Score(name, out.value, out.passed, out.explanation, out.kind)
    explanation = ""
    if isinstance(out, tuple) and len(out) == 2:
        out, explanation = out
    if isinstance(out, Mapping):
        value = out.get("value")
        passed = out.get("passed")
        if passed is None and isinstance(value, (int, float)):
            passed = value >= threshold
        return Score(name, None if value is None else float(value), bool(passed),
                     str(out.get("explanation") or explanation), kind)
    if isinstance(out, bool):
        return Score(name, 1.0 if out else 0.0, out, str(explanation), kind)
    if isinstance(out, (int, float)):
        v = float(out)
        return Score(name, v, v >= threshold, str(explanation), kind)
    if out is None:
        return Score(name, None, False, str(explanation) or "scorer returned None", kind)
    raise AsmError("validation_error", f"scorer {name!r} returned {out!r}; return a bool, a number, "
                                       "(value, explanation), a dict or a Score")


_SAMPLE_ATTRS = ("output", "expected", "input", "item", "agent", "result", "run", "workspace", "tool_calls",
                 "sample", "metadata", "vars", "store", "repeat")


class FunctionScorer(Scorer):
    """A Python function as a scorer (see :func:`scorer`)."""

    def __init__(self, fn: Callable, *, name: str | None = None, threshold: float = 1.0, kind: str = "function"):
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "scorer")
        self.threshold = threshold
        self.kind = kind
        params = list(inspect.signature(fn).parameters.values())
        self._names = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        unknown = [n for n in self._names if n not in _SAMPLE_ATTRS]
        self._lone = bool(unknown) and len(self._names) == 1  # f(s): the one argument is the Sample
        if self._lone:
            pass
        elif unknown:
            raise AsmError("validation_error", f"scorer {self.name!r}: unknown parameter(s) {unknown}; "
                                               f"parameters are picked from {list(_SAMPLE_ATTRS)}")
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    def score(self, sample: Sample) -> Score:
        if self._lone:
            return _coerce(self.name, self.kind, self.fn(sample), self.threshold)
        args = {n: _sample_arg(sample, n) for n in self._names}
        return _coerce(self.name, self.kind, self.fn(**args), self.threshold)


def _sample_arg(sample: Sample, name: str) -> Any:
    if name == "sample":
        return sample
    if name == "run":
        return sample.result
    if name in ("metadata", "vars"):
        return getattr(sample.item, name, {})
    return getattr(sample, name)


def scorer(fn: Callable | None = None, *, name: str | None = None, threshold: float = 1.0) -> Any:
    """Turn a function into a scorer. Its parameters are picked by name from ``output``,
    ``expected``, ``input``, ``item``, ``agent``, ``result``/``run``, ``workspace``, ``tool_calls``,
    ``metadata``, ``vars``, ``store``, ``repeat`` or ``sample`` (a lone parameter of another name
    gets the :class:`Sample`). Return a bool, a number (passes at ``>= threshold``),
    ``(value, explanation)``, a dict ``{value, passed, explanation}`` or a :class:`Score`.

    >>> @scorer
    ... def short(output):
    ...     return len(output) < 80, f"{len(output)} chars"
    >>> short.name
    'short'
    """
    if fn is None:
        return lambda f: FunctionScorer(f, name=name, threshold=threshold)
    return FunctionScorer(fn, name=name, threshold=threshold)


# ---------------------------------------------------------------------------------------------- text
def _expected_or(sample: Sample, given: Any, what: str) -> Any:
    value = given if given is not None else sample.expected
    if value is None:
        raise AsmError("validation_error", f"{what}: no expected value (give one, or set the item's expected)")
    return value


class _Text(Scorer):
    kind = "text"
    inline = True

    def __init__(self, name: str, fn: Callable[[Sample], tuple[float | None, bool, str]]) -> None:
        self.name = name
        self._fn = fn

    def score(self, sample: Sample) -> Score:
        value, passed, why = self._fn(sample)
        return Score(self.name, value, passed, why, self.kind)


def _norm(s: Any, ignore_case: bool, strip: bool) -> str:
    s = "" if s is None else str(s)
    if strip:
        s = " ".join(s.split())
    return s.casefold() if ignore_case else s


def _excerpt(s: str, n: int = 60) -> str:
    s = s.replace("\n", "\\n")
    return s if len(s) <= n else s[: n - 1] + "…"


def exact(expected: Any = None, *, ignore_case: bool = False, strip: bool = True, name: str = "exact") -> Scorer:
    """Output equals the expected text (whitespace collapsed unless ``strip=False``)."""
    def fn(s: Sample) -> tuple[float, bool, str]:
        exp = _expected_or(s, expected, name)
        ok = _norm(s.output, ignore_case, strip) == _norm(exp, ignore_case, strip)
        return float(ok), ok, ("equal" if ok else f"{_excerpt(s.output)!r} != {_excerpt(str(exp))!r}")
    return _Text(name, fn)


def contains(text: Any = None, *, ignore_case: bool = False, name: str = "contains") -> Scorer:
    """Output contains ``text`` (default the expected value; a list: every entry)."""
    def fn(s: Sample) -> tuple[float, bool, str]:
        want = _expected_or(s, text, name)
        wants = [str(w) for w in want] if isinstance(want, (list, tuple)) else [str(want)]
        out = s.output.casefold() if ignore_case else s.output
        missing = [w for w in wants if (w.casefold() if ignore_case else w) not in out]
        value = (len(wants) - len(missing)) / len(wants)
        return value, not missing, ("contains " + ", ".join(map(repr, wants)) if not missing
                                    else "missing " + ", ".join(map(repr, missing)))
    return _Text(name, fn)


def regex(pattern: str | re.Pattern, *, flags: int = 0, name: str = "regex") -> Scorer:
    """The pattern is found in the output (``re.search``)."""
    rx = pattern if isinstance(pattern, re.Pattern) else re.compile(pattern, flags)

    def fn(s: Sample) -> tuple[float, bool, str]:
        m = rx.search(s.output)
        return float(bool(m)), bool(m), (f"matched {_excerpt(m.group(0))!r}" if m else f"no match for /{rx.pattern}/")
    return _Text(name, fn)


def _json_of(text: str) -> Any:
    text = text.strip()
    fence = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    if fence:
        text = fence.group(1).strip()
    try:
        return json.loads(text)
    except ValueError:
        m = re.search(r"(\{.*\}|\[.*\])", text, re.S)
        if m:
            return json.loads(m.group(1))
        raise


def _subset(exp: Any, act: Any) -> bool:
    if isinstance(exp, Mapping):
        return isinstance(act, Mapping) and all(k in act and _subset(v, act[k]) for k, v in exp.items())
    return exp == act


def json_match(expected: Any = None, *, subset: bool = False, name: str = "json_match") -> Scorer:
    """The output parses as JSON (a fenced block or the first object/array in it is used) equal to
    the expected value (a JSON string or a value); ``subset=True``: expected keys must match."""
    def fn(s: Sample) -> tuple[float, bool, str]:
        exp = _expected_or(s, expected, name)
        if isinstance(exp, str):
            try:
                exp = json.loads(exp)
            except ValueError:
                pass
        try:
            got = _json_of(s.output)
        except ValueError:
            return 0.0, False, "output is not JSON"
        ok = _subset(exp, got) if subset else got == exp
        return float(ok), ok, ("JSON matches" if ok else f"JSON differs: got {_excerpt(json.dumps(got))}")
    return _Text(name, fn)


_NUM = re.compile(r"[-+]?(?:\d+(?:[.,]\d*)?|\.\d+)(?:[eE][-+]?\d+)?")


def number(expected: Any = None, *, tolerance: float = 0.0, relative: bool = False, name: str = "number") -> Scorer:
    """The last number in the output is within ``tolerance`` of the expected one (absolute, or a
    fraction of it with ``relative=True``). The value is 1 / 0."""
    def fn(s: Sample) -> tuple[float, bool, str]:
        exp = float(_expected_or(s, expected, name))
        found = _NUM.findall(s.output.replace(",", "")) if s.output else []
        if not found:
            return 0.0, False, "no number in the output"
        got = float(found[-1])
        tol = abs(exp) * tolerance if relative else tolerance
        ok = math.isfinite(got) and abs(got - exp) <= tol
        return float(ok), ok, f"{got:g} vs {exp:g} (tolerance {tol:g})"
    return _Text(name, fn)


# ---------------------------------------------------------------------------------------------- trajectory
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


# ---------------------------------------------------------------------------------------------- model graded
GRADER_TEMPLATE = """You are grading the answer of an AI agent.

[Task]
{input}

[Expected]
{expected}

[Answer]
{output}

[Rubric]
{rubric}

Explain briefly, then end with one line `GRADE: PASS` or `GRADE: FAIL`, optionally followed by a
line `SCORE: <a number from 0 to 1>`."""

_GRADE = re.compile(r"GRADE:\s*\**\s*(PASS|FAIL)", re.I)
_SCORE = re.compile(r"SCORE:\s*\**\s*([01](?:\.\d+)?|\.\d+)", re.I)


class ModelGraded(Scorer):
    """A rubric judged by a model (see :func:`model_graded`)."""

    kind = "model"

    def __init__(self, rubric: str, *, provider: Any = "claude", model: str | None = None, name: str = "rubric",
                 cassettes: str | os.PathLike | None = None, record: str = "once", template: str = GRADER_TEMPLATE,
                 store: Any = None, **options: Any) -> None:
        if record not in ("once", "all", "none"):
            raise AsmError("validation_error", f"record must be once, all or none, got {record!r}")
        self.rubric = rubric
        self.provider = provider
        self.model = model
        self.name = name
        self.cassettes = os.fspath(cassettes) if cassettes is not None else None
        self.record = record
        self.template = template
        self.options = options
        self.store = store

    def prompt(self, sample: Sample) -> str:
        exp = sample.expected
        return self.template.format(input=sample.input, expected="(none)" if exp is None else exp,
                                    output=sample.output, rubric=self.rubric)

    def cassette_path(self, prompt: str) -> str | None:
        if self.cassettes is None:
            return None
        from .dataset import canonical_hash

        key = canonical_hash({"prompt": prompt, "provider": getattr(self.provider, "name", self.provider),
                              "model": self.model})[:24]
        return os.path.join(self.cassettes, f"grade-{key}.jsonl")

    def score(self, sample: Sample) -> Score:
        from .. import api

        prompt = self.prompt(sample)
        path = self.cassette_path(prompt)
        if path is not None and os.path.exists(path) and self.record != "all":
            from ..providers.replay import ReplayProvider

            adapter: Any = ReplayProvider(cassette=path, impersonate=True)
        elif path is not None and self.record == "none":
            return Score(self.name, None, False, f"no recorded grade at {path} (record='none')", self.kind)
        else:
            adapter = api.resolve_adapter(self.provider, model=self.model, **self.options)
            if path is not None:
                from ..providers.replay import Recorder

                adapter = Recorder(adapter, path)
        store = self.store if self.store is not None else (sample.store if sample.store is not None else "memory://")
        res = api.run_once(prompt, provider=adapter, store=store, metadata={"eval_grader": self.name})
        if not res.ok:
            err = res.error.message if res.error else res.status
            return Score(self.name, None, False, f"grader run {res.status}: {err}", self.kind)
        text = res.output or ""
        grades = _GRADE.findall(text)
        if not grades:
            return Score(self.name, None, False, f"grader gave no GRADE line: {_excerpt(text, 120)!r}", self.kind)
        passed = grades[-1].upper() == "PASS"
        scores = _SCORE.findall(text)
        value = float(scores[-1]) if scores else float(passed)
        reason = text[: _GRADE.search(text).start()].strip() if _GRADE.search(text) else text  # type: ignore[union-attr]
        return Score(self.name, value, passed, _excerpt(reason or text, 300), self.kind)


def model_graded(rubric: str, *, provider: Any = "claude", model: str | None = None, name: str = "rubric",
                 cassettes: str | os.PathLike | None = None, record: str = "once", **options: Any) -> ModelGraded:
    """A rubric judged by ``provider``/``model``. With ``cassettes=DIR`` each grading is a
    cassette: ``record="once"`` replays a recorded grade and records a missing one, ``"none"``
    only replays (offline, CI), ``"all"`` re-records. The grader must end with
    ``GRADE: PASS|FAIL`` (and may add ``SCORE: 0..1``)."""
    return ModelGraded(rubric, provider=provider, model=model, name=name, cassettes=cassettes, record=record,
                       **options)


# ---------------------------------------------------------------------------------------------- specs
def scorer_from_spec(spec: Mapping[str, Any], *, base_dir: str | None = None) -> Scorer:
    """A scorer from a spec-file table: ``{"type": "contains", "text": "ok"}``, ``{"type": "command",
    "command": "pytest -q"}``, ``{"type": "trajectory", "called": ["read_file", "edit_file"],
    "never_called": ["bash"], "max_tool_calls": 10, "cost_below": 0.1}``, ``{"type": "rubric",
    "rubric": "...", "provider": "claude", "cassettes": "grades/"}``, ``{"type": "python",
    "function": "module:function"}``..."""
    d = dict(spec)
    kind = str(d.pop("type", "")).replace("-", "_")
    name = d.pop("name", None)
    nm = {"name": name} if name else {}
    if kind in ("exact", "equals"):
        return exact(d.pop("expected", d.pop("value", None)), **nm, **d)
    if kind == "contains":
        return contains(d.pop("text", d.pop("value", None)), **nm, **d)
    if kind == "regex":
        return regex(d.pop("pattern"), **nm)
    if kind in ("json", "json_match"):
        return json_match(d.pop("expected", None), **nm, **d)
    if kind == "number":
        return number(d.pop("expected", None), **nm, **d)
    if kind in ("files_changed", "files_unchanged", "diff_contains", "command"):
        if kind == "command":
            return command(d.pop("command"), **nm, **d)
        arg = d.pop("paths", d.pop("text", None))
        return {"files_changed": files_changed, "files_unchanged": files_unchanged,
                "diff_contains": diff_contains}[kind](arg, **nm)
    if kind == "trajectory":
        t = trajectory(name or "trajectory")
        called = d.pop("called", None)
        if called:
            names = [called] if isinstance(called, str) else list(called)
            t.called(names[0])
            for n in names[1:]:
                t.then(n)
        for n in _globs(d.pop("never_called", [])):
            t.never_called(n)
        for key, meth in (("max_tool_calls", t.max_tool_calls), ("max_steps", t.max_steps),
                          ("cost_below", t.cost_below), ("duration_below", t.duration_below)):
            if key in d:
                meth(d.pop(key))
        if d:
            raise AsmError("validation_error", f"trajectory scorer: unknown key(s) {sorted(d)}")
        return t
    if kind in ("rubric", "model", "model_graded"):
        cas = d.pop("cassettes", None)
        if cas is not None and base_dir is not None and not os.path.isabs(cas):
            cas = os.path.join(base_dir, cas)
        return model_graded(d.pop("rubric"), cassettes=cas, **nm, **d)
    if kind in ("python", "function"):
        target = str(d.pop("function"))
        mod_name, _, attr = target.partition(":")
        import importlib

        fn = getattr(importlib.import_module(mod_name), attr)
        return fn if isinstance(fn, Scorer) else FunctionScorer(fn, name=name, **d)
    raise AsmError("validation_error", f"unknown scorer type {kind!r}; expected exact, contains, regex, json_match, "
                                       "number, trajectory, files_changed, files_unchanged, diff_contains, command, "
                                       "rubric or python")


def as_scorers(scorers: Any) -> list[Scorer]:
    """Scorers from a Scorer, a function, a spec dict, or a list of those; names made unique."""
    if scorers is None:
        return []
    if isinstance(scorers, (Scorer, Mapping)) or callable(scorers):
        scorers = [scorers]
    out: list[Scorer] = []
    for s in scorers:
        if isinstance(s, Scorer):
            out.append(s)
        elif isinstance(s, Mapping):
            out.append(scorer_from_spec(s))
        elif callable(s):
            out.append(FunctionScorer(s))
        else:
            raise AsmError("validation_error", f"a scorer is a Scorer, a function or a spec dict, got {s!r}")
    seen: dict[str, int] = {}
    for s in out:
        n = seen.get(s.name, 0)
        seen[s.name] = n + 1
        if n:
            s.name = f"{s.name}_{n + 1}"
    return out
