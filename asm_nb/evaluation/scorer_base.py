"""The scorer model: ``Score`` (one verdict), ``Sample`` (what a scorer looks at: item, agent,
run result, workspace), the ``Scorer`` base class, ``FunctionScorer`` and the ``@scorer``
decorator that turns a Python function into one.

Split out of ``evaluation/scorers.py``, which re-exports every name (``evaluation.scorers`` stays
the import path).
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..core.errors import AsmError
from . import trajectory as tj


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


def _excerpt(s: str, n: int = 60) -> str:
    s = s.replace("\n", "\\n")
    return s if len(s) <= n else s[: n - 1] + "…"

