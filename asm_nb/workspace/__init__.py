"""Workspace services: snapshots, diffs and rollback of a working directory (docs/workspace.md).
Running commands lives in ``asm_nb.process.exec``. Submodules are imported on demand.

Public names (loaded lazily):

- ``Snapshot`` (``snapshot.py``), ``Diff`` and ``FileChange`` (``diff.py``);
- ``GitBackend`` (``git.py``), ``HashBackend`` (``hashed.py``);
- ``take_snapshot``, ``diff``, ``detect_backend``, ``backend_for_path``, ``restore`` (roll a
  workspace back to a ``Snapshot``) from ``service.py``;
- ``rollback(run_id, store=...)``: undo a finished run's changes (``rollback.py``);
- ``diffs_frame(store, backend=...)``: one row per changed file per run (``frames.py``).
"""

from __future__ import annotations

from typing import Any

# Standard-library-only modules, imported eagerly: binding the functions ``diff`` and ``rollback``
# here keeps them from being shadowed by the submodules of the same names.
from .diff import Diff, FileChange
from .git import GitBackend
from .hashed import HashBackend
from .snapshot import Snapshot
from .service import backend_for_path, detect_backend, diff, take_snapshot
from .service import rollback as restore
from .rollback import rollback  # noqa: E402  (after .service on purpose)

__all__ = ["Snapshot", "Diff", "FileChange", "GitBackend", "HashBackend", "take_snapshot", "diff",
           "detect_backend", "backend_for_path", "restore", "rollback", "diffs_frame", "load_patch"]


def __getattr__(name: str) -> Any:
    if name in ("diffs_frame", "load_patch"):  # polars-backed: loaded on first use
        from . import frames

        return getattr(frames, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
