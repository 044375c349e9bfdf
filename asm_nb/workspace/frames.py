"""Workspace diffs as a data frame, one row per changed file per run, and patch loading.

``diffs_frame(store)`` reads the workspace record each run keeps (``run.metadata["workspace"]``,
written by ``workspace.service.finish``); meant to back ``asm_nb.frames.diffs``. Built with
polars; ``backend="pandas"`` converts at the end. ``load_patch(run_id, store)`` returns the run's
stored patch text (from the artifact store, or inline).
"""

from __future__ import annotations

from typing import Any, Mapping

from ..core.errors import AsmError

__all__ = ["diffs_frame", "diff_rows", "load_patch", "DIFF_COLUMNS"]

DIFF_COLUMNS = ("run_id", "session_id", "started_at", "workspace_backend", "path", "change", "old_path",
                "lines_added", "lines_removed", "binary")


def _resolve(store: Any) -> Any:
    from ..stores import resolve_store

    return resolve_store(store)


def diff_rows(store: Any = None, *, session_id: str | None = None, run_id: str | None = None) -> list[dict]:
    """Plain dict rows of :func:`diffs_frame` (runs by start time, files by path)."""
    from .rollback import workspace_record

    st = _resolve(store)
    if run_id is not None:
        runs = [st.get_run(run_id)]
    else:
        runs = st.list_runs(session_id)
    runs = sorted(runs, key=lambda r: (r.started_at is None, r.started_at or 0, r.id))
    rows: list[dict] = []
    for r in runs:
        if session_id is not None and r.session_id != session_id:
            continue
        ws = workspace_record(r)
        if ws is None:
            continue
        files = ws.get("files")
        if not isinstance(files, list):
            files = [{"path": p, "change": "modified"} for p in (ws.get("changed_paths") or [])]
        for f in sorted((f for f in files if isinstance(f, Mapping)), key=lambda f: str(f.get("path"))):
            rows.append({"run_id": r.id, "session_id": r.session_id, "started_at": r.started_at,
                         "workspace_backend": ws.get("backend"), "path": f.get("path"), "change": f.get("change"),
                         "old_path": f.get("old_path"), "lines_added": f.get("insertions"),
                         "lines_removed": f.get("deletions"), "binary": bool(f.get("binary"))})
    return rows


def diffs_frame(store: Any = None, *, session_id: str | None = None, run_id: str | None = None,
                backend: str = "pandas") -> Any:
    """One row per changed file per run that recorded a workspace diff: ``run_id, session_id,
    started_at, workspace_backend, path, change`` (added / modified / deleted / renamed),
    ``old_path`` (renames), ``lines_added, lines_removed`` (null when unknown), ``binary``."""
    if backend not in ("pandas", "polars"):
        raise AsmError("validation_error", f"backend must be 'pandas' or 'polars', got {backend!r}")
    try:
        import polars as pl
    except ImportError as exc:  # pragma: no cover - optional dependency
        raise AsmError("dependency_not_available", "diffs_frame needs polars: pip install 'asm_nb[notebook]'") \
            from exc
    schema = {"run_id": pl.Utf8, "session_id": pl.Utf8, "started_at": pl.Datetime("us", "UTC"),
              "workspace_backend": pl.Utf8, "path": pl.Utf8, "change": pl.Utf8, "old_path": pl.Utf8,
              "lines_added": pl.Int64, "lines_removed": pl.Int64, "binary": pl.Boolean}
    df = pl.DataFrame(diff_rows(store, session_id=session_id, run_id=run_id), schema=schema, orient="row")
    if backend == "polars":
        return df
    try:
        return df.to_pandas()
    except ImportError as exc:  # pragma: no cover
        raise AsmError("dependency_not_available", "backend='pandas' needs pandas and pyarrow") from exc


def load_patch(run_id: str, store: Any = None, *, artifact_store: Any = None) -> str | None:
    """The unified patch recorded for run ``run_id``: fetched from the artifact store by its
    ``patch_ref`` (``artifact_store`` or the one belonging to ``store``), or the inline patch;
    None when the run kept none (not captured or over ``max_patch_bytes``)."""
    from .rollback import workspace_record

    st = _resolve(store)
    ws = workspace_record(st.get_run(run_id))
    if ws is None:
        raise AsmError("invalid_operation", f"Run {run_id} recorded no workspace diff")
    given_diff = ws.get("diff")
    diff = given_diff if isinstance(given_diff, Mapping) else {}
    ref = ws.get("patch_ref") or diff.get("patch_ref")
    if ref:
        if artifact_store is None:
            from ..stores.artifacts import artifact_store_for

            artifact_store = artifact_store_for(st)
        if artifact_store is None:
            raise AsmError("not_found", f"Run {run_id} stored its patch as {ref}, but no artifact store is known "
                                        f"for {st!r}; pass artifact_store=")
        return artifact_store.get(ref).decode("utf-8", "replace")
    patch = diff.get("patch")
    return patch if isinstance(patch, str) else None
