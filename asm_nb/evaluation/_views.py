"""Where the evaluation's HTML views live: ``asm_nb.notebook.evalview`` (the notebook face). This
package sits below the notebook layer, so it finds the views by module name at call time instead
of importing them; without the notebook package the views are unavailable and say so."""

from __future__ import annotations

import importlib
from typing import Any

from ..core.errors import AsmError

VIEW_MODULE = "asm_nb.notebook.evalview"


def _module() -> Any:
    try:
        return importlib.import_module(VIEW_MODULE)
    except ImportError as exc:  # pragma: no cover - the notebook extra is part of the package
        raise AsmError("dependency_not_available", f"the evaluation views need {VIEW_MODULE}: {exc}") from exc


def matrix(result: Any, **opts: Any) -> Any:
    return _module().MatrixView(result, **opts)


def run_diff(diff: Any) -> Any:
    return _module().RunDiffView(diff)
