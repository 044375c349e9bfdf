"""Snapshots around real runs: ``run_once(..., provider="shell", snapshot=True)`` on git repos and
plain folders, events, patch artifacts, the diff frame, rollback on failure and on request."""

from __future__ import annotations

import os

import pytest

import asm_nb
from asm_nb.core.errors import AsmError
from asm_nb.stores.artifacts import InMemoryArtifactStore, artifact_store_for
from asm_nb.stores.local import LocalStore
from asm_nb.stores.memory import InMemoryStore
from asm_nb.workspace import diffs_frame, load_patch, rollback
from asm_nb.workspace.frames import diff_rows

from .conftest import run_git, tree_bytes, write

EDIT = ("printf 'base\\nedited by run\\n' > file.txt && rm docs/guide/intro.md && mkdir -p out/deep && "
        "printf 'made\\n' > out/deep/new.txt && git mv -k old_name.txt moved.txt 2>/dev/null || "
        "mv old_name.txt moved.txt; printf '\\000\\001' > logo.bin")


def _types(store, result):
    return [e.type.value for e in store.get_events(result.session_id, run_id=result.run_id)]


def test_shell_run_with_snapshot_on_git_repo(git_repo, tmp_path):
    store = LocalStore(tmp_path / "store")
    pre = tree_bytes(git_repo)
    r = asm_nb.run_once(EDIT, provider="shell", cwd=str(git_repo), snapshot=True, store=store)
    assert r.status == "completed", r.error
    post = tree_bytes(git_repo)
    types = _types(store, r)
    assert types.count("workspace_snapshot_taken") == 2 and types.count("workspace_diff_computed") == 1
    taken = [e for e in store.get_events(r.session_id, run_id=r.run_id) if e.type.value == "workspace_snapshot_taken"]
    assert [e.data["label"] for e in taken] == ["before", "after"] and taken[0].data["backend"] == "git"
    computed = store.get_events(r.session_id, run_id=r.run_id, type="workspace_diff_computed")[0].data
    assert computed["files_changed"] == 6 and computed["has_patch"] is True

    run = store.get_run(r.run_id)
    ws = run.metadata["workspace"]
    assert ws == run.provider_metadata["workspace"]
    assert ws["backend"] == "git" and ws["before_ref"] == taken[0].data["ref"] and ws["after_ref"] == taken[1].data["ref"]
    assert ws["patch_ref"].startswith(f"patch_{ws['before_ref']}_{ws['after_ref']}_") and ws["patch_bytes"] > 0
    assert ws["diff"]["patch_ref"] == ws["patch_ref"] and "patch" not in ws["diff"]
    assert (ws["files_changed"], ws["diff"]["files_changed"]) == (6, 6)

    rows = {row["path"]: row for row in diff_rows(store)}
    assert {p: row["change"] for p, row in rows.items()} == {
        "docs/guide/intro.md": "deleted", "file.txt": "modified", "logo.bin": "modified",
        "moved.txt": "renamed", "out/deep/new.txt": "added"}
    assert (rows["file.txt"]["lines_added"], rows["file.txt"]["lines_removed"]) == (1, 0)
    assert rows["logo.bin"]["binary"] is True and rows["moved.txt"]["old_path"] == "old_name.txt"
    df = diffs_frame(store, backend="polars")
    assert df.height == 5 and set(df["run_id"]) == {r.run_id}
    assert df.columns[:6] == ["run_id", "session_id", "started_at", "workspace_backend", "path", "change"]
    pdf = diffs_frame(store)
    assert len(pdf) == 5

    # the stored patch takes the pre-run tree to the post-run tree
    patch = artifact_store_for(store).get(ws["patch_ref"])
    assert patch.decode() == load_patch(r.run_id, store)
    assert artifact_store_for(store).record(ws["patch_ref"])["run_id"] == r.run_id
    report = rollback(r.run_id, store=store)
    assert report["mode"] == "restore" and tree_bytes(git_repo) == pre
    run_git(git_repo, "apply", "--check", "-", input=patch)
    run_git(git_repo, "apply", "-", input=patch)
    assert tree_bytes(git_repo) == post
    assert store.get_run(r.run_id).metadata["workspace"]["rolled_back"]["mode"] == "restore"
    store.close()


def test_rollback_on_request_reverses_only_the_runs_changes(git_repo):
    store = InMemoryStore()
    r = asm_nb.run_once("printf 'run edit\\n' > file.txt && printf 'n\\n' > run_new.txt", provider="shell",
                        cwd=str(git_repo), snapshot=True, store=store)
    assert r.ok
    write(git_repo, "docs/guide/intro.md", "# Intro\n\nuser edit after the run\n")  # unrelated later edit
    report = rollback(r.run_id, store=store)
    assert report["mode"] == "reverse_patch"
    assert (git_repo / "file.txt").read_bytes() == b"base\n" and not (git_repo / "run_new.txt").exists()
    assert (git_repo / "docs/guide/intro.md").read_text() == "# Intro\n\nuser edit after the run\n"
    assert report["removed_paths"] == ["run_new.txt"] and report["restored_paths"] == ["file.txt"]


def test_rollback_on_request_conflict_then_force(git_repo):
    store = InMemoryStore()
    r = asm_nb.run_once("printf 'run edit\\n' > file.txt", provider="shell", cwd=str(git_repo), snapshot=True,
                        store=store)
    write(git_repo, "file.txt", "user changed the same file\n")
    with pytest.raises(AsmError) as e:
        rollback(r.run_id, store=store)
    assert e.value.code == "invalid_operation" and "force=True" in e.value.message
    assert (git_repo / "file.txt").read_text() == "user changed the same file\n"  # nothing changed
    report = rollback(r.run_id, store=store, force=True)
    assert report["mode"] == "restore_forced" and (git_repo / "file.txt").read_bytes() == b"base\n"
    assert run_git(git_repo, "show", f"{report['backup_ref']}:file.txt") == "user changed the same file\n"


def test_rollback_on_failure_restores_pre_run_state(git_repo):
    store = InMemoryStore()
    write(git_repo, "file.txt", "dirty before the run\n")
    pre = tree_bytes(git_repo)
    r = asm_nb.run_once("printf 'broken\\n' > file.txt && printf 'x' > junk.txt && rm src/app.py && exit 3",
                        provider="shell", cwd=str(git_repo), snapshot={"rollback_on_failure": True}, store=store)
    assert r.status == "failed"
    assert tree_bytes(git_repo) == pre
    ws = store.get_run(r.run_id).metadata["workspace"]
    assert ws["rollback"]["performed"] is True and ws["rollback"]["removed_paths"] == ["junk.txt"]
    assert set(ws["rollback"]["restored_paths"]) == {"file.txt", "src/app.py"}
    ev = store.get_events(r.session_id, run_id=r.run_id, type="workspace_diff_computed")[0].data
    assert ev["rolled_back"] is True and ev["rollback"]["removed"] == 1
    labels = [e.data["label"] for e in store.get_events(r.session_id, run_id=r.run_id, type="workspace_snapshot_taken")]
    assert labels == ["before", "after_failure"]


def test_no_rollback_without_the_option(git_repo):
    store = InMemoryStore()
    r = asm_nb.run_once("printf 'broken\\n' > file.txt; exit 3", provider="shell", cwd=str(git_repo),
                        snapshot=True, store=store)
    assert r.status == "failed" and (git_repo / "file.txt").read_text() == "broken\n"
    assert "rollback" not in store.get_run(r.run_id).metadata["workspace"]
    labels = [e.data["label"] for e in store.get_events(r.session_id, run_id=r.run_id, type="workspace_snapshot_taken")]
    assert labels == ["before", "after_failure"]


def test_hash_backend_with_rollback_on_failure_is_refused(plain_dir):
    store = InMemoryStore()
    r = asm_nb.run_once("echo hi", provider="shell", cwd=str(plain_dir), store=store,
                        snapshot={"rollback_on_failure": True})
    assert r.status == "failed"
    assert r.error.code == "validation_error"
    assert r.error.message == "rollback_on_failure is only supported for git backend in MVP"


def test_plain_folder_run_uses_hash_backend_with_line_counts(plain_dir):
    store = InMemoryStore()
    r = asm_nb.run_once("printf 'alpha\\nBETA\\n' > a.txt && mkdir -p x/y && printf '1\\n2\\n' > x/y/z.txt && "
                        "rm nested/deep/b.txt", provider="shell", cwd=str(plain_dir), snapshot=True, store=store)
    assert r.ok, r.error
    ws = store.get_run(r.run_id).metadata["workspace"]
    assert ws["backend"] == "hash" and "file_hashes" not in ws["before_snapshot"]["metadata"]
    rows = {row["path"]: (row["change"], row["lines_added"], row["lines_removed"]) for row in diff_rows(store)}
    assert rows == {"a.txt": ("modified", 1, 1), "nested/deep/b.txt": ("deleted", 0, 1), "x/y/z.txt": ("added", 2, 0)}
    arts = artifact_store_for(store)
    assert isinstance(arts, InMemoryArtifactStore) and artifact_store_for(store) is arts
    assert "+BETA" in arts.get(ws["patch_ref"]).decode()


def test_explicit_artifact_store_and_no_patch_capture(git_repo):
    store = InMemoryStore()
    arts = InMemoryArtifactStore()
    r = asm_nb.run_once("printf 'x\\n' > file.txt", provider="shell", cwd=str(git_repo), store=store,
                        snapshot={"artifact_store": arts})
    ws = store.get_run(r.run_id).metadata["workspace"]
    assert arts.keys() == [ws["patch_ref"]]
    r2 = asm_nb.run_once("printf 'y\\n' > file.txt", provider="shell", cwd=str(git_repo), store=store,
                         snapshot={"capture_patch": False})
    ws2 = store.get_run(r2.run_id).metadata["workspace"]
    assert ws2["has_patch"] is False and ws2["patch_ref"] is None and ws2["files_changed"] == 1
    ev = store.get_events(r2.session_id, run_id=r2.run_id, type="workspace_diff_computed")[0].data
    assert ev["has_patch"] is False


def test_failing_artifact_store_fails_the_run(git_repo):
    class Broken:
        def put(self, key, data, **opts):
            raise OSError("disk full")

        def get(self, key, **opts):
            raise OSError("nope")

        def delete(self, key, **opts):
            pass

    store = InMemoryStore()
    r = asm_nb.run_once("printf 'x\\n' > file.txt", provider="shell", cwd=str(git_repo), store=store,
                        snapshot={"artifact_store": Broken()})
    assert r.status == "failed" and r.error.code == "storage_error" and "disk full" in r.error.message


def test_rollback_errors(plain_dir):
    store = InMemoryStore()
    r = asm_nb.run_once("echo hi", provider="shell", store=store)
    with pytest.raises(AsmError) as e:
        rollback(r.run_id, store=store)
    assert e.value.code == "invalid_operation" and "snapshot=True" in e.value.message
    r2 = asm_nb.run_once("echo hi > a.txt", provider="shell", cwd=str(plain_dir), snapshot=True, store=store)
    with pytest.raises(AsmError) as e:
        rollback(r2.run_id, store=store)
    assert e.value.message == "Rollback is not supported for hash backend in MVP"


def test_diffs_frame_empty_and_bad_backend():
    store = InMemoryStore()
    asm_nb.run_once("echo hi", provider="shell", store=store)
    assert diffs_frame(store, backend="polars").height == 0
    with pytest.raises(AsmError):
        diffs_frame(store, backend="arrow")


def test_snapshot_path_defaults_to_process_cwd(git_repo, monkeypatch):
    monkeypatch.chdir(git_repo)
    store = InMemoryStore()
    r = asm_nb.run_once("printf 'z\\n' > file.txt", provider="shell", snapshot=True, store=store)
    ws = store.get_run(r.run_id).metadata["workspace"]
    assert ws["path"] == os.fspath(git_repo) and ws["changed_paths"] == ["file.txt"]


def test_rollback_when_the_adapter_raises(git_repo):
    """Hard failure (the adapter raises): the after_failure snapshot, diff and rollback still run."""
    from asm_nb.testing.mock import ScriptedAdapter

    def edit_then_fail(run, session):
        write(git_repo, "file.txt", "half-done edit\n")
        write(git_repo, "tmp/partial.txt", "partial\n")
        return AsmError("provider_error", "agent crashed mid-edit")

    store = InMemoryStore()
    pre = tree_bytes(git_repo)
    r = asm_nb.run_once("go", provider=ScriptedAdapter([edit_then_fail]), store=store,
                        snapshot={"path": str(git_repo), "rollback_on_failure": True})
    assert r.status == "failed" and r.error.code == "provider_error"  # the original error is kept
    assert tree_bytes(git_repo) == pre
    ev = store.get_events(r.session_id, run_id=r.run_id, type="workspace_diff_computed")[0].data
    assert ev["rolled_back"] is True and ev["files_changed"] == 2 and ev["rollback"]["removed"] == 1
    labels = [e.data["label"] for e in store.get_events(r.session_id, run_id=r.run_id, type="workspace_snapshot_taken")]
    assert labels == ["before", "after_failure"]
