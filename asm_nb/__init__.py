"""asm_nb: run, watch and analyse AI agent sessions from Jupyter.

The public names below are imported lazily (PEP 562 ``__getattr__``), so ``import asm_nb``
stays fast and never imports pandas, polars, plotly, anthropic or ipywidgets.

>>> import asm_nb
>>> result = asm_nb.run_once("echo hello", provider="shell", store="memory://")
>>> result.output
'hello\\n'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> "module:attribute" (attribute None = the module itself)
_LAZY: dict[str, str] = {
    "AsmError": "asm_nb.core.errors:AsmError",
    "ErrorCode": "asm_nb.core.errors:ErrorCode",
    "ErrorCategory": "asm_nb.core.errors:ErrorCategory",
    "ValidationError": "asm_nb.core.errors:ValidationError",
    "StateError": "asm_nb.core.errors:StateError",
    "NotFoundError": "asm_nb.core.errors:NotFoundError",
    "ProviderError": "asm_nb.core.errors:ProviderError",
    "StoreError": "asm_nb.core.errors:StoreError",
    "AsmRuntimeError": "asm_nb.core.errors:AsmRuntimeError",
    "RunTimeout": "asm_nb.core.errors:RunTimeout",
    "CancelledRun": "asm_nb.core.errors:CancelledRun",
    "PolicyViolation": "asm_nb.core.errors:PolicyViolation",
    "ConcurrencyError": "asm_nb.core.errors:ConcurrencyError",
    "ToolError": "asm_nb.core.errors:ToolError",
    "Event": "asm_nb.core.events:Event",
    "EventType": "asm_nb.core.events:EventType",
    "Session": "asm_nb.core.session:Session",
    "SessionStatus": "asm_nb.core.session:SessionStatus",
    "Run": "asm_nb.core.run:Run",
    "RunStatus": "asm_nb.core.run:RunStatus",
    "RunResult": "asm_nb.api:RunResult",
    "open_store": "asm_nb.stores:open_store",
    "copy_store": "asm_nb.stores.copy:copy_store",
    "run_once": "asm_nb.api:run_once",
    "arun_once": "asm_nb.api:arun_once",
    "stream": "asm_nb.runtime.stream:stream",
    "batch": "asm_nb.runtime.batch:batch",
    "SessionServer": "asm_nb.runtime.server:SessionServer",
    "ConcurrencyLimiter": "asm_nb.runtime.limiter:ConcurrencyLimiter",
    "Policy": "asm_nb.policy:Policy",
    "config": "asm_nb.config:",
    "frames": "asm_nb.analytics.frames:",
    "plots": "asm_nb.analytics.plots:",
    "testing": "asm_nb.testing:",
    "tool": "asm_nb.providers.tools:tool",
    "Tool": "asm_nb.providers.tools:Tool",
    "load_ipython_extension": "asm_nb.notebook.magics:load_ipython_extension",
    "dashboard": "asm_nb.notebook.dashboard:dashboard",
    "query": "asm_nb.analytics.query:query",
    "maintenance": "asm_nb.analytics.query:maintenance",
    "compare": "asm_nb.notebook.compare:compare",
    "pause": "asm_nb.runtime.control:pause_run",
    "resume": "asm_nb.runtime.control:resume_run",
    "interrupt": "asm_nb.runtime.control:interrupt_run",
    "providers": "asm_nb.providers:",
    "rendering": "asm_nb.rendering:",
    "telemetry": "asm_nb.telemetry:",
    "pubsub": "asm_nb.pubsub:",
    "workflow": "asm_nb.workflow:",
    "SessionRuntime": "asm_nb.runtime.server:SessionRuntime",
    "ArtifactRegistry": "asm_nb.persistence.artifact_registry:ArtifactRegistry",
    "evaluation": "asm_nb.evaluation:",
    "evaluate": "asm_nb.evaluation.runner:evaluate",
    "load_eval": "asm_nb.evaluation.runner:load_eval",
    "EvalResult": "asm_nb.evaluation.runner:EvalResult",
    "Dataset": "asm_nb.evaluation.dataset:Dataset",
    "Agent": "asm_nb.evaluation.agents:Agent",
    "scorer": "asm_nb.evaluation.scorers:scorer",
    "scorers": "asm_nb.evaluation.scorers:",
    "diff_runs": "asm_nb.evaluation.rundiff:diff_runs",
    "import_history": "asm_nb.history:import_history",
    "history": "asm_nb.history:",
}

__all__ = [
    "Agent", "ArtifactRegistry", "AsmError", "AsmRuntimeError", "CancelledRun", "ConcurrencyError",
    "ConcurrencyLimiter", "Dataset", "ErrorCategory", "ErrorCode", "EvalResult", "Event", "EventType",
    "NotFoundError", "Policy", "PolicyViolation", "ProviderError", "Run", "RunResult", "RunStatus", "RunTimeout",
    "Session", "SessionRuntime", "SessionServer", "SessionStatus", "StateError", "StoreError", "Tool", "ToolError",
    "ValidationError", "__version__", "arun_once", "batch", "compare", "config", "copy_store", "dashboard",
    "diff_runs", "evaluate", "evaluation", "frames", "history", "import_history", "interrupt", "load_eval", "load_ipython_extension",
    "maintenance", "open_store", "pause", "plots", "providers", "pubsub", "query", "rendering", "resume",
    "run_once", "scorer", "scorers", "stream", "telemetry", "testing", "tool", "workflow",
]


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'asm_nb' has no attribute {name!r}")
    mod_name, _, attr = target.partition(":")
    mod = importlib.import_module(mod_name)
    value = getattr(mod, attr) if attr else mod
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # pragma: no cover - what a type checker sees for each lazy name above
    from . import config, testing
    from .analytics import frames, plots
    from .analytics.query import maintenance, query
    from .api import RunResult, arun_once, run_once
    from .core.errors import (
        AsmError, AsmRuntimeError, CancelledRun, ConcurrencyError, ErrorCategory, ErrorCode, NotFoundError,
        PolicyViolation, ProviderError, RunTimeout, StateError, StoreError, ToolError, ValidationError,
    )
    from .core.events import Event, EventType
    from .core.run import Run, RunStatus
    from . import history
    from .history import import_history
    from .core.session import Session, SessionStatus
    from .notebook.compare import compare
    from .notebook.dashboard import dashboard
    from .notebook.magics import load_ipython_extension
    from .policy import Policy
    from .providers.tools import Tool, tool
    from .runtime.batch import batch
    from .runtime.limiter import ConcurrencyLimiter
    from .runtime.server import SessionServer
    from .runtime.stream import stream
    from .stores import open_store
    from .stores.copy import copy_store
    from . import evaluation
    from .evaluation import scorers
    from .evaluation.agents import Agent
    from .evaluation.dataset import Dataset
    from .evaluation.rundiff import diff_runs
    from .evaluation.runner import EvalResult, evaluate, load_eval
    from . import providers, pubsub, rendering, telemetry, workflow
    from .persistence.artifact_registry import ArtifactRegistry
    from .runtime.control import interrupt_run as interrupt
    from .runtime.control import pause_run as pause
    from .runtime.control import resume_run as resume
    from .runtime.server import SessionRuntime
    from .evaluation.scorers import scorer
