"""Frames built from other parts and returned typed here: workspace diffs, evaluations and
scores, and search hits."""

from __future__ import annotations

from typing import Any, Mapping

from ._common import _check_backend, _check_statuses, _Filters, _finish, _polars, _resolve_store, _utc, Backend
from .run_tables import _all_runs, _filter_runs, _int_or_none, _runs_frame


# --------------------------------------------------------------------------------------------
# diffs


def diffs(store: Any = None, *, session_id: Any = None, run_id: Any = None, backend: Backend = "pandas") -> Any:
    """One row per changed file per run (``%%asm --snapshot`` / ``snapshot=True`` runs): ``run_id,
    session_id, started_at, workspace_backend, path, change`` (added / modified / deleted /
    renamed), ``old_path``, ``lines_added, lines_removed, binary``. Per-run totals:
    ``diff_summaries``."""
    from ...workspace.frames import diffs_frame

    return diffs_frame(_resolve_store(store), session_id=session_id, run_id=run_id, backend=backend)


def diff_summaries(store: Any = None, *, session_id: Any = None, run_id: Any = None, provider: Any = None,
                   model: Any = None, status: Any = None, since: Any = None, until: Any = None,
                   backend: Backend = "pandas") -> Any:
    """One row per run that recorded a workspace diff (``run.metadata["workspace"]``, docs/workspace.md): ``run_id,
    session_id, started_at, provider, backend, before_ref, after_ref,
    files_changed, insertions, deletions, changed_paths`` (list), ``has_patch, patch_ref,
    patch_bytes``."""
    _check_backend(backend)
    pl = _polars()
    from ...core.run import RunStatus

    f = _Filters.of(session_id, run_id, provider, model, status, since, until)
    _check_statuses(f.status, RunStatus, "status")
    st = _resolve_store(store)
    run_objs = _all_runs(st)
    keep = set(_filter_runs(_runs_frame(st, run_objs), f)["run_id"].to_list())
    rows = []
    for r in run_objs:
        if r.id not in keep:
            continue
        md = r.metadata if isinstance(r.metadata, Mapping) else {}
        pm = r.provider_metadata if isinstance(r.provider_metadata, Mapping) else {}
        ws = md.get("workspace") if isinstance(md.get("workspace"), Mapping) else pm.get("workspace")
        if not isinstance(ws, Mapping):
            continue
        given_diff = ws.get("diff")
        diff = given_diff if isinstance(given_diff, Mapping) else {}
        before = ws.get("before_ref")
        after = ws.get("after_ref")
        if before is None and isinstance(ws.get("before_snapshot"), Mapping):
            before = ws["before_snapshot"].get("ref")
        if after is None and isinstance(ws.get("after_snapshot"), Mapping):
            after = ws["after_snapshot"].get("ref")
        paths = diff.get("changed_paths")
        rows.append({"run_id": r.id, "session_id": r.session_id, "started_at": r.started_at,
                     "provider": r.provider, "backend": ws.get("backend"), "before_ref": before, "after_ref": after,
                     "files_changed": _int_or_none(diff.get("files_changed")),
                     "insertions": _int_or_none(diff.get("insertions")),
                     "deletions": _int_or_none(diff.get("deletions")),
                     "changed_paths": [str(p) for p in paths] if isinstance(paths, list) else [],
                     "has_patch": isinstance(diff.get("patch"), str) or diff.get("patch_ref") is not None,
                     "patch_ref": diff.get("patch_ref") or ws.get("patch_ref"),
                     "patch_bytes": _int_or_none(diff.get("patch_bytes") or ws.get("patch_bytes"))})
    schema = {"run_id": pl.String, "session_id": pl.String, "started_at": _utc(pl), "provider": pl.String,
              "backend": pl.String, "before_ref": pl.String, "after_ref": pl.String, "files_changed": pl.Int64,
              "insertions": pl.Int64, "deletions": pl.Int64, "changed_paths": pl.List(pl.String),
              "has_patch": pl.Boolean, "patch_ref": pl.String, "patch_bytes": pl.Int64}
    df = pl.DataFrame(rows, schema=schema).with_columns(pl.col("provider").cast(pl.Categorical),
                                                        pl.col("backend").cast(pl.Categorical))
    return _finish(df.sort("started_at", "run_id"), backend)


def evals(store: Any = None, *, backend: Backend = "pandas") -> Any:
    """One row per eval and agent in ``store`` (see ``asm_nb.evaluate``): runs, items, pass rate,
    mean score, cost, first start and last end."""
    from ...evaluation.frames import evals_frame

    return evals_frame(store, backend=backend)


def scores(store: Any = None, *, eval: Any = None, backend: Backend = "pandas") -> Any:
    """One row per scored eval run and scorer: value, passed, explanation, with item, agent,
    repeat, run status and cost (``eval=``: one eval name or a list)."""
    from ...evaluation.frames import scores_frame

    return scores_frame(store, eval=eval, backend=backend)


# --------------------------------------------------------------------------------------------
# search


def search(store: Any = None, text: str = "", *, kind: Any = None, session_id: str | None = None, limit: int = 20,
           mark: tuple[str, str] = ("**", "**"), backend: Backend = "pandas") -> Any:
    """Full-text search over prompts, outputs, tool inputs and outputs, best first: ``rank, score,
    kind, session_id, run_id, sequence_number, timestamp, snippet`` (matches between ``mark``),
    ``event_id``. See :func:`asm_nb.analytics.search.search` and docs/search.md."""
    from ..search import search as _search

    return _search(store, text, kind=kind, session_id=session_id, limit=limit, mark=mark, backend=backend)
