"""Model-graded scoring: ``model_graded(rubric, provider=..., cassettes=DIR)`` judges the answer
with a model of your choice, recording each grading as a cassette so it replays offline.

Split out of ``evaluation/scorers.py``, which re-exports every name.
"""

from __future__ import annotations

import os
import re
from typing import Any

from ..core.errors import AsmError
from .scorer_base import Sample, Score, Scorer, _excerpt


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
