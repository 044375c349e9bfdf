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

The text scorers and the spec reader are here; the scorer model (``Score``, ``Sample``,
``Scorer``, ``@scorer``) is in ``scorer_base.py``, trajectory and workspace scorers in
``scorers_run.py``, the model-graded one in ``scorers_graded.py`` (all re-exported here).

>>> from types import SimpleNamespace as NS
>>> s = Sample(item=NS(expected="4", input="2+2?", vars={}, metadata={}, id="0"), agent=None, repeat=0,
...            result=NS(output="The answer is 4.", tool_calls=[], events=[], cost_usd=None, duration_ms=5))
>>> contains()(s).passed, exact()(s).passed
(True, False)
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any, Callable, Mapping

from ..core.errors import AsmError
# the scorer model, the run/workspace scorers and the model-graded scorer live in scorer_base /
# scorers_run / scorers_graded; every name is re-exported here (``evaluation.scorers`` stays the path)
from .scorer_base import FunctionScorer as FunctionScorer
from .scorer_base import Sample as Sample
from .scorer_base import Score as Score
from .scorer_base import Scorer as Scorer
from .scorer_base import _excerpt
from .scorer_base import scorer as scorer
from .scorers_graded import GRADER_TEMPLATE as GRADER_TEMPLATE
from .scorers_graded import ModelGraded as ModelGraded
from .scorers_graded import model_graded as model_graded
from .scorers_run import TrajectoryScorer as TrajectoryScorer
from .scorers_run import _globs
from .scorers_run import command as command
from .scorers_run import diff_contains as diff_contains
from .scorers_run import files_changed as files_changed
from .scorers_run import files_unchanged as files_unchanged
from .scorers_run import trajectory as trajectory

__all__ = ["Score", "Sample", "Scorer", "scorer", "exact", "contains", "regex", "json_match", "number",
           "model_graded", "trajectory", "files_changed", "files_unchanged", "diff_contains", "command",
           "scorer_from_spec", "as_scorers"]



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
