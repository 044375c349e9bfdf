"""Undo a finished run's workspace changes on request: ``asm_nb.workspace.rollback(run_id, store=...)``.

The run must have been executed with ``snapshot=True`` on a git work tree: its record
(``run.metadata["workspace"]``) holds the ``before`` snapshot (a commit pinned under
``refs/asm/snapshots/``) and the ``after`` ref.

- When the work tree is still exactly the run's ``after`` state, the ``before`` state is restored
  byte for byte, with the staged state and HEAD (mode ``"restore"``).
- When the files changed since (another run, your edits), only the run's own changes are reversed:
  the patch ``after → before`` is applied to the work tree with ``git apply`` (mode
  ``"reverse_patch"``). If it does not apply cleanly nothing is changed and ``invalid_operation``
  says why; ``force=True`` restores the ``before`` state regardless (mode ``"restore_forced"``).

In every mode the state found is first kept under ``refs/asm/backup/<epoch ms>``. The report is
returned and recorded on the run (``metadata["workspace"]["rolled_back"]``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping

from ..core.errors import AsmError
from ..core.serialization import format_datetime, utc_now
from .git import BACKUP_REF_PREFIX, GitBackend, git, snapshot_ref
from .snapshot import Snapshot

__all__ = ["rollback", "workspace_record"]


def workspace_record(run: Any) -> dict | None:
    """The workspace dict recorded on a run (``metadata`` first, then ``provider_metadata``)."""
    for src in (getattr(run, "metadata", None), getattr(run, "provider_metadata", None)):
        if isinstance(src, Mapping) and isinstance(src.get("workspace"), Mapping):
            return dict(src["workspace"])
    return None


def rollback(run_id: str, store: Any = None, *, force: bool = False) -> dict[str, Any]:
    """Undo the workspace changes of the finished run ``run_id`` (see the module docstring).

    Returns ``{run_id, mode, path, backup_ref, restored_paths, removed_paths, ...}``. Errors:
    ``invalid_operation`` when the run recorded no snapshot, used the hash backend, or its changes
    cannot be reversed cleanly without ``force``."""
    from ..stores import resolve_store

    st = resolve_store(store)
    run = st.get_run(run_id)
    ws = workspace_record(run)
    if ws is None or not isinstance(ws.get("before_snapshot"), Mapping):
        raise AsmError("invalid_operation", f"Run {run_id} recorded no workspace snapshot; run it with "
                                            "snapshot=True to be able to roll it back")
    if ws.get("backend") != "git":
        raise AsmError("invalid_operation", "Rollback is not supported for hash backend in MVP")
    before = Snapshot.from_dict(ws["before_snapshot"])
    after_ref = ws.get("after_ref")
    backend = GitBackend()
    current = backend.take_snapshot(before.path, label="rollback_check")
    top = Path(current.metadata["toplevel"])
    if current.ref == after_ref or force:
        report = backend.rollback(before)
        mode = "restore" if current.ref == after_ref else "restore_forced"
    else:
        if not isinstance(after_ref, str) or not after_ref:
            raise AsmError("invalid_operation", "the run's workspace record has no after_ref to compare with")
        before_ref = snapshot_ref(before)
        backup_ref = f"{BACKUP_REF_PREFIX}{int(time.time() * 1000)}"
        git(["update-ref", backup_ref, snapshot_ref(current)], top)
        patch = backend.patch_between(top, after_ref, before_ref)
        records = git(["-c", "core.quotepath=off", "diff", "--no-renames", "--name-status", "-z", after_ref,
                       before_ref], top).stdout.decode("utf-8", "surrogateescape").split("\0")
        removed, restored = [], []
        for status, p in zip(records[0::2], records[1::2]):
            (removed if status == "D" else restored).append(p)
        if patch:
            check = git(["apply", "--check", "--binary", "-"], top, input=patch, check=False)
            if check.returncode != 0:
                why = (check.stderr + check.stdout).decode("utf-8", "replace").strip()
                raise AsmError("invalid_operation",
                               f"The workspace changed since run {run_id}; its changes cannot be reversed "
                               f"cleanly: {why}. Nothing was changed. Pass force=True to restore the pre-run "
                               f"state (the current state is kept under {backup_ref}).",
                               details={"backup_ref": backup_ref, "run_id": run_id})
            git(["apply", "--binary", "-"], top, input=patch)
        report = {"backup_ref": backup_ref, "backup_commit": current.ref, "restored_paths": sorted(restored),
                  "removed_paths": sorted(removed), "head_reset": False, "index_restored": False}
        mode = "reverse_patch"
    out = {"run_id": run_id, "mode": mode, "path": before.path, "to_ref": before.ref,
           "rolled_back_at": format_datetime(utc_now()), **report}
    _record_on_run(st, run, ws, out)
    return out


def _record_on_run(store: Any, run: Any, ws: dict, report: dict) -> None:
    ws = {**ws, "rolled_back": {k: report[k] for k in ("mode", "backup_ref", "rolled_back_at", "to_ref")}
          | {"restored": len(report["restored_paths"]), "removed": len(report["removed_paths"])}}
    md = {**(run.metadata or {}), "workspace": ws}
    pm = dict(run.provider_metadata or {})
    if "workspace" in pm:
        pm["workspace"] = ws
    store.save_run(run.replace(metadata=md, provider_metadata=pm))
    try:
        store.flush()
    except TypeError:
        pass
