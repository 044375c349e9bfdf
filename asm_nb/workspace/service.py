"""Workspace service: backend choice, snapshot/diff/rollback dispatch (docs/workspace.md) and the
two steps the run manager calls around ``adapter.execute`` (docs/runtime.md, the session manager, steps 4 and 7; the
payloads are in docs/workspace.md,
around a run).

``await prepare(...)`` takes the ``before`` snapshot; ``await finish(...)`` takes the ``after``
(or ``after_failure``) snapshot, computes the diff, stores the patch as an artifact, rolls back
on failure when asked, and returns the dict the manager records on the run as
``provider_metadata["workspace"]``. Git and file work runs off the event loop
(``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping

from .. import config
from ..core.errors import AsmError
from .diff import Diff
from .exclusions import store_paths
from .git import GitBackend, is_git_worktree
from .hashed import HashBackend
from .snapshot import Snapshot

__all__ = ["detect_backend", "backend_for_path", "take_snapshot", "diff", "rollback", "prepare", "finish",
           "normalize_options", "offload_patch", "DEFAULT_OPTIONS", "MAX_RECORDED_FILES"]

log = logging.getLogger(__name__)

Persist = Callable[[str, dict], Awaitable[Any]]

DEFAULT_OPTIONS: dict[str, Any] = {"enabled": False, "path": None, "strategy": "auto", "capture_patch": True,
                                   "max_patch_bytes": None, "rollback_on_failure": False,
                                   "artifact_store": None, "ignore": None}
#: At most this many per-file entries are recorded on a run (the patch artifact has them all).
MAX_RECORDED_FILES = 5000


def detect_backend(path: str | os.PathLike) -> str:
    """"git" when ``path`` is (inside) a git work tree, else "hash" (also when git is missing)."""
    try:
        return "git" if is_git_worktree(path) else "hash"
    except Exception:
        return "hash"


def backend_for_path(path: str | os.PathLike, strategy: Any = "auto") -> str:
    """"git" / "hash" as given; "auto" and anything else → :func:`detect_backend`."""
    if strategy in ("git", "hash"):
        return strategy
    return detect_backend(path)


def _backend(name: str, store: Any = None) -> Any:
    if name == "git":
        return GitBackend()
    cache_dir = blobs = None
    if store is not None:
        from ..stores.artifacts import blob_store_for

        blobs = blob_store_for(store)
        if blobs is not None:  # LocalStore: blobs/ and cache/ side by side
            cache_dir = Path(blobs.root).parent / "cache"
    return HashBackend(cache_dir=cache_dir, blobs=blobs)


def take_snapshot(path: str | os.PathLike, *, strategy: Any = "auto", label: str | None = None,
                  ignore: Mapping[str, Any] | None = None, store: Any = None, **opts: Any) -> Snapshot:
    """Snapshot ``path`` with the chosen backend. ``store`` (optional) lends the hash backend its
    stat cache and blob folder; ``opts`` go to the backend (hash: ``keep_content``, ...)."""
    name = backend_for_path(path, strategy)
    return _backend(name, store).take_snapshot(path, label=label, ignore=ignore, **opts)


def diff(before: Snapshot, after: Snapshot, *, capture_patch: bool = False, max_patch_bytes: int | None = None,
         store: Any = None) -> Diff:
    """Diff two snapshots of one backend (``validation_error`` when the backends differ)."""
    if before.backend != after.backend:
        raise AsmError("validation_error", "Workspace snapshots must use the same backend")
    return _backend(before.backend, store).diff(before, after, capture_patch=capture_patch,
                                                max_patch_bytes=max_patch_bytes)


def rollback(snapshot: Snapshot) -> dict[str, Any]:
    """Restore the workspace to ``snapshot`` (git only; hash → ``invalid_operation``)."""
    return _backend(snapshot.backend).rollback(snapshot)


# ---------------------------------------------------------------------------------------------- runtime
def normalize_options(workspace: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults of docs/workspace.md (around a run) filled in; ``path`` made absolute; types checked."""
    opts = {**DEFAULT_OPTIONS, **dict(workspace or {})}
    path = opts.get("path")
    if path is None or path == "":
        path = os.getcwd()
    if not isinstance(path, (str, os.PathLike)):
        raise AsmError("validation_error", f"workspace path must be a string or path, got {type(path).__name__}")
    opts["path"] = str(Path(os.path.expanduser(str(path))).absolute())
    if opts.get("max_patch_bytes") is None:
        opts["max_patch_bytes"] = config.get("max_patch_bytes")
    mpb = opts["max_patch_bytes"]
    if isinstance(mpb, bool) or not isinstance(mpb, int) or mpb < 0:
        raise AsmError("validation_error", f"max_patch_bytes must be a non-negative integer, got {mpb!r}")
    if opts.get("strategy") is None:
        opts["strategy"] = "auto"
    return opts


async def prepare(store: Any, session: Any, run: Any, adapter: Any, workspace: Mapping[str, Any], *,
                  persist: Persist) -> dict[str, Any]:
    """Before ``adapter.execute``: choose the backend, refuse hash + ``rollback_on_failure``, take the
    ``before`` snapshot and persist ``workspace_snapshot_taken``. Returns the state for :func:`finish`."""
    opts = normalize_options(workspace)
    if not os.path.isdir(opts["path"]):
        raise AsmError("validation_error", f"workspace path is not a directory: {opts['path']}")
    name = await asyncio.to_thread(backend_for_path, opts["path"], opts["strategy"])
    if name == "hash" and opts.get("rollback_on_failure"):
        raise AsmError("validation_error", "rollback_on_failure is only supported for git backend in MVP")
    backend = _backend(name, store)
    snap_opts = _snapshot_opts(name, opts)
    snap_opts = {**snap_opts, "exclude_paths": store_paths(store)}  # the store is never part of the workspace
    before = await asyncio.to_thread(backend.take_snapshot, opts["path"], label="before", ignore=opts.get("ignore"),
                                     **snap_opts)
    await persist("workspace_snapshot_taken", {"label": "before", "backend": name, "ref": before.ref})
    return {"options": opts, "backend": name, "before": before, "snapshot_opts": snap_opts}


def _snapshot_opts(name: str, opts: Mapping[str, Any]) -> dict[str, Any]:
    if name != "hash":
        return {}
    keep = opts.get("keep_content")
    return {"keep_content": bool(opts.get("capture_patch", True)) if keep is None else bool(keep)}


async def finish(store: Any, session: Any, run: Any, adapter: Any, state: Mapping[str, Any], *, success: bool,
                 persist: Persist) -> dict[str, Any]:
    """After ``adapter.execute``: ``after``/``after_failure`` snapshot + event, diff + event, patch
    artifact, rollback (``rollback_on_failure`` and the run failed). Returns the run's workspace
    record: ``backend, path, before_ref, after_ref, files_changed, insertions, deletions,
    changed_paths, files, has_patch, patch_ref, patch_bytes, patch_truncated, diff, before_snapshot,
    after_snapshot`` and ``rollback`` when one was done."""
    opts = state["options"]
    name = state["backend"]
    before: Snapshot = state["before"]
    backend = _backend(name, store)
    failed = not success
    if not failed:  # the adapter may have reported failure while returning a result (shell exit code)
        failed = await asyncio.to_thread(_run_reported_failure, store, session, run)
    label = "after_failure" if failed else "after"
    after = await asyncio.to_thread(backend.take_snapshot, opts["path"], label=label, ignore=opts.get("ignore"),
                                    **state.get("snapshot_opts", {}))
    await persist("workspace_snapshot_taken", {"label": label, "backend": name, "ref": after.ref})
    d = await asyncio.to_thread(backend.diff, before, after, capture_patch=bool(opts.get("capture_patch", True)),
                                max_patch_bytes=opts["max_patch_bytes"])
    has_patch = isinstance(d.patch, str)
    artifacts = opts.get("artifact_store")
    if artifacts is None:
        from ..stores.artifacts import artifact_store_for

        artifacts = artifact_store_for(store)
    d = await asyncio.to_thread(offload_patch, d, artifacts, session_id=getattr(session, "id", None),
                                run_id=getattr(run, "id", None))
    record = _record(name, opts["path"], before, after, d)
    event = {"files_changed": d.files_changed, "insertions": d.insertions, "deletions": d.deletions,
             "has_patch": has_patch}
    if "patch_ref" in d.metadata:
        event["patch_ref"] = d.metadata["patch_ref"]
    if failed and opts.get("rollback_on_failure"):
        report = await asyncio.to_thread(backend.rollback, before)
        record["rollback"] = {"performed": True, "reason": "run failed", "to_ref": before.ref, **report}
        event["rolled_back"] = True
        event["rollback"] = {"backup_ref": report["backup_ref"], "restored": len(report["restored_paths"]),
                             "removed": len(report["removed_paths"])}
        log.warning("run %s failed: workspace %s rolled back to its pre-run state %s (%d files restored, %d removed; "
                    "the failed state is kept under %s)", getattr(run, "id", "?"), opts["path"], before.ref,
                    len(report["restored_paths"]), len(report["removed_paths"]), report["backup_ref"])
    await persist("workspace_diff_computed", event)
    return record


def _run_reported_failure(store: Any, session: Any, run: Any) -> bool:
    """True when the adapter reported the run failed while still returning a result (e.g. a shell
    command with a non-zero exit), so ``rollback_on_failure`` applies to it too."""
    try:
        from ..core.events import without_audit

        events = without_audit(store.get_events(session.id, run_id=run.id, type="run_failed"))
    except Exception:
        return False
    return bool(events)


def offload_patch(d: Diff, artifacts: Any, *, session_id: str | None = None, run_id: str | None = None) -> Diff:
    """Move a non-empty patch into ``artifacts`` under ``patch_<from>_<to>_<32 hex>``; the diff then
    has ``patch None`` and ``metadata["patch_ref"]``/``["patch_bytes"]``. No store or no patch → ``d``."""
    if artifacts is None or not d.patch:
        return d
    data = d.patch.encode("utf-8", "surrogateescape")
    key = f"patch_{d.from_ref}_{d.to_ref}_{secrets.token_hex(16)}"
    try:
        artifacts.put(key, data, session_id=session_id, run_id=run_id, content_type="text/x-diff")
    except AsmError:
        raise
    except Exception as exc:
        raise AsmError("storage_error", f"Failed to store workspace patch artifact: {exc!r}") from exc
    meta = {**d.metadata, "patch_ref": key, "patch_bytes": len(data)}
    return Diff(backend=d.backend, from_ref=d.from_ref, to_ref=d.to_ref, files_changed=d.files_changed,
                insertions=d.insertions, deletions=d.deletions, changed_paths=list(d.changed_paths), patch=None,
                metadata=meta, files=list(d.files))


def _record(name: str, path: str, before: Snapshot, after: Snapshot, d: Diff) -> dict[str, Any]:
    diff_rec: dict[str, Any] = d.summary()
    if isinstance(d.patch, str):
        diff_rec["patch"] = d.patch.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    for k in ("patch_ref", "patch_bytes", "patch_truncated"):
        if k in d.metadata:
            diff_rec[k] = d.metadata[k]
    files = [f.to_dict() for f in d.files]
    rec: dict[str, Any] = {
        "backend": name, "path": path, "before_ref": before.ref, "after_ref": after.ref,
        "files_changed": d.files_changed, "insertions": d.insertions, "deletions": d.deletions,
        "changed_paths": list(d.changed_paths), "files": files[:MAX_RECORDED_FILES],
        "has_patch": isinstance(d.patch, str) or "patch_ref" in d.metadata,
        "patch_ref": d.metadata.get("patch_ref"), "patch_bytes": d.metadata.get("patch_bytes"),
        "patch_truncated": bool(d.metadata.get("patch_truncated")),
        "diff": diff_rec,
        "before_snapshot": before.to_dict(compact=True), "after_snapshot": after.to_dict(compact=True)}
    if len(files) > MAX_RECORDED_FILES:
        rec["files_truncated"] = True
    return rec
