"""Evaluate agents: datasets, agents under test, scorers, ``evaluate`` (resumable, recorded),
the per-item matrix and run diffs. Built on runs, batch, workspace snapshots and frames.

    import asm_nb
    from asm_nb.evaluation import scorers as sc

    result = asm_nb.evaluate(
        [{"input": "What is 2+2?", "expected": "4"}],
        agents={"a": {"provider": "claude", "model": "claude-sonnet-4-5"}, "b": "codex"},
        scorers=[sc.contains(), sc.trajectory().never_called("bash")],
        name="arith")
    result.summary; result.compare(baseline="a"); result.matrix()

Names are loaded on first use (the submodules import nothing heavy at import time).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "Dataset": "dataset", "Item": "dataset", "as_dataset": "dataset",
    "Agent": "agents",
    "Score": "scorers", "Sample": "scorers", "Scorer": "scorers", "scorer": "scorers",
    "evaluate": "runner", "EvalResult": "runner", "EvalRun": "runner", "EvalComparison": "runner",
    "load_eval": "runner", "run_eval_item": "runner",
    "diff_runs": "rundiff", "RunDiff": "rundiff",
    "run_spec": "spec", "load_spec": "spec",
    "evals_frame": "frames", "scores_frame": "frames",
}

__all__ = ["Agent", "Dataset", "EvalComparison", "EvalResult", "EvalRun", "Item", "RunDiff", "Sample", "Score",
           "Scorer", "as_dataset", "diff_runs", "evals_frame", "evaluate", "load_eval", "load_spec", "run_eval_item",
           "run_spec", "scorer", "scorers", "scores_frame"]


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        if name in ("scorers", "dataset", "agents", "runner", "rundiff", "spec", "frames", "trajectory"):
            return importlib.import_module(f"{__name__}.{name}")
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{mod}"), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # pragma: no cover
    from . import scorers
    from .agents import Agent
    from .dataset import Dataset, Item, as_dataset
    from .frames import evals_frame, scores_frame
    from .rundiff import RunDiff, diff_runs
    from .runner import EvalComparison, EvalResult, EvalRun, evaluate, load_eval, run_eval_item
    from .scorers import Sample, Score, Scorer, scorer
    from .spec import load_spec, run_spec
