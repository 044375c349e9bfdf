"""The public entry points: ``run_once`` / ``arun_once`` and the friendly ``RunResult``.

``asm_nb.run_once`` does not raise when the *run* fails (non-zero exit, provider error, policy
cancel): it returns a ``RunResult`` with ``status`` failed/cancelled and ``error`` set. It raises
``AsmError`` for caller mistakes (unknown provider, bad option). Ctrl-C (the notebook's stop
button) while it waits cancels the run, persists ``run_cancelled`` and re-raises
``KeyboardInterrupt``.

A thin facade: the code lives in ``runtime/oneshot.py`` (runs), ``runtime/result.py``
(``RunResult``) and ``stores`` (``resolve_store``), which the runtime uses directly.
"""

from __future__ import annotations

from .runtime.oneshot import arun_once, resolve_adapter, run_once
from .runtime.result import RunResult
from .stores import default_store, resolve_store

__all__ = ["run_once", "arun_once", "RunResult", "resolve_store", "default_store", "resolve_adapter"]
