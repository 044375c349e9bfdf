"""GitBackend on real temporary repositories: snapshots leave HEAD, branch, index, stash and files
alone; diffs list add / modify / delete / rename / binary; patches apply; rollback restores bytes."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from asm_nb.core.errors import AsmError
from asm_nb.workspace import GitBackend, Snapshot, detect_backend, diff, take_snapshot
from asm_nb.workspace.git import SNAPSHOT_REF_PREFIX

from .conftest import run_git, tree_bytes, write


def _repo_state(repo):
    """Everything a snapshot must not change, read without refreshing the index."""
    index = (repo / ".git" / "index").read_bytes()
    return {
        "index_sha": hashlib.sha256(index).hexdigest(),
        "head": run_git(repo, "rev-parse", "HEAD"),
        "branch": run_git(repo, "symbolic-ref", "HEAD"),
        "stash": run_git(repo, "stash", "list"),
        "files": tree_bytes(repo),
    }


def _status(repo):
    return {"status": run_git(repo, "status", "--porcelain=v2", "--untracked-files=all"),
            "cached": run_git(repo, "diff", "--cached", "--binary"),
            "unstaged": run_git(repo, "diff", "--binary")}


def _files(d):
    return {f.path: f for f in d.files}


def test_detect_backend(git_repo, plain_dir):
    assert detect_backend(git_repo) == "git"
    assert detect_backend(git_repo / "src") == "git"  # inside a work tree
    assert detect_backend(plain_dir) == "hash"
    assert detect_backend(plain_dir / "missing") == "hash"


def test_clean_snapshot_is_head(git_repo):
    snap = GitBackend().take_snapshot(git_repo, label="before")
    head = run_git(git_repo, "rev-parse", "HEAD").strip()
    assert snap.backend == "git" and snap.label == "before" and snap.path == str(git_repo)
    assert snap.ref == head
    assert snap.metadata["dirty"] is False and snap.metadata["head_ref"] == head
    assert snap.metadata["includes_untracked"] is True
    assert snap.metadata["index_tree"] == run_git(git_repo, "rev-parse", "HEAD^{tree}").strip()
    assert set(snap.to_dict()) == {"backend", "path", "ref", "label", "captured_at", "metadata"}
    assert Snapshot.from_dict(snap.to_dict()) == snap


def test_dirty_snapshot_captures_staged_unstaged_untracked_and_pins(git_repo):
    write(git_repo, "file.txt", "staged\n")
    run_git(git_repo, "add", "file.txt")
    write(git_repo, "src/app.py", "unstaged\n")
    write(git_repo, "new/dir/untracked.txt", "untracked\n")
    write(git_repo, "debug.log", "ignored\n")
    snap = GitBackend().take_snapshot(git_repo)
    assert snap.metadata["dirty"] is True and snap.ref != snap.metadata["head_ref"]
    assert run_git(git_repo, "show", f"{snap.ref}:file.txt") == "staged\n"
    assert run_git(git_repo, "show", f"{snap.ref}:src/app.py") == "unstaged\n"
    assert run_git(git_repo, "show", f"{snap.ref}:new/dir/untracked.txt") == "untracked\n"
    assert run_git(git_repo, "cat-file", "-e", f"{snap.ref}:debug.log", check=False) == ""  # ignored: absent
    assert "debug.log" not in run_git(git_repo, "ls-tree", "-r", "--name-only", snap.ref)
    # the snapshot's parent is HEAD; index_tree holds only the staged change
    assert run_git(git_repo, "rev-parse", f"{snap.ref}^").strip() == snap.metadata["head_ref"]
    assert run_git(git_repo, "show", f"{snap.metadata['index_tree']}:src/app.py").startswith("line 1\n")
    assert run_git(git_repo, "show", f"{snap.metadata['index_tree']}:file.txt") == "staged\n"
    assert run_git(git_repo, "rev-parse", SNAPSHOT_REF_PREFIX + snap.ref).strip() == snap.ref


def test_dirty_index_head_branch_stash_and_files_untouched(git_repo):
    write(git_repo, "stashed.txt", "s\n")
    run_git(git_repo, "add", "stashed.txt")
    run_git(git_repo, "stash", "push", "-q", "-m", "keep me")
    write(git_repo, "file.txt", "staged change\n")
    write(git_repo, "brand_new_staged.txt", "new\n")
    run_git(git_repo, "add", "file.txt", "brand_new_staged.txt")
    write(git_repo, "file.txt", "staged change\nplus unstaged\n")
    write(git_repo, "untracked/x.txt", "u\n")
    os.remove(git_repo / "docs/guide/intro.md")
    status_before = _status(git_repo)
    state_before = _repo_state(git_repo)
    be = GitBackend()
    a = be.take_snapshot(git_repo, label="before")
    write(git_repo, "untracked/y.txt", "y\n")  # something changes between the snapshots...
    b = be.take_snapshot(git_repo, label="after")
    be.diff(a, b, capture_patch=True)
    os.remove(git_repo / "untracked/y.txt")  # ...and is undone, so the state must match again
    assert _repo_state(git_repo) == state_before
    assert _status(git_repo) == status_before
    assert "keep me" in state_before["stash"]


def test_diff_add_modify_delete_rename_binary_nested(git_repo):
    be = GitBackend()
    before = be.take_snapshot(git_repo, label="before")
    write(git_repo, "file.txt", "base\nmore\n")
    os.remove(git_repo / "docs/guide/intro.md")
    write(git_repo, "a/b/c/deep.txt", "one\ntwo\nthree\n")
    os.rename(git_repo / "old_name.txt", git_repo / "new_name.txt")
    write(git_repo, "logo.bin", bytes(range(255, -1, -1)) * 4)
    write(git_repo, "added.bin", b"\x00\x01\x02binary")
    write(git_repo, "ignored.log", "never listed\n")
    after = be.take_snapshot(git_repo, label="after")
    d = be.diff(before, after)
    files = _files(d)
    assert files["file.txt"].change == "modified" and (files["file.txt"].insertions, files["file.txt"].deletions) == (1, 0)
    assert files["docs/guide/intro.md"].change == "deleted" and files["docs/guide/intro.md"].deletions == 3
    assert files["a/b/c/deep.txt"].change == "added" and files["a/b/c/deep.txt"].insertions == 3
    ren = files["new_name.txt"]
    assert ren.change == "renamed" and ren.old_path == "old_name.txt" and (ren.insertions, ren.deletions) == (0, 0)
    assert files["logo.bin"].binary and files["logo.bin"].change == "modified"
    assert files["added.bin"].binary and files["added.bin"].change == "added"
    assert not files["file.txt"].binary
    assert "ignored.log" not in files
    # changed_paths: no rename detection, so the rename gives both names
    assert d.changed_paths == sorted(["a/b/c/deep.txt", "added.bin", "docs/guide/intro.md", "file.txt", "logo.bin",
                                      "new_name.txt", "old_name.txt"])
    assert d.files_changed == 7
    assert d.insertions == 1 + 3 + 30  # binary counts 0; the rename counts as delete + add here
    assert d.deletions == 3 + 30
    assert d.patch is None and d.metadata == {"patch_truncated": False}
    assert d.summary() == {"files_changed": 7, "insertions": 34, "deletions": 33, "changed_paths": d.changed_paths}
    assert d.to_dict()["files"][0]["path"] == "a/b/c/deep.txt"


def test_diff_of_identical_snapshots_is_empty(git_repo):
    be = GitBackend()
    a, b = be.take_snapshot(git_repo), be.take_snapshot(git_repo)
    d = be.diff(a, b, capture_patch=True)
    assert (d.files_changed, d.files, d.patch) == (0, [], "")


def test_patch_applies_on_pre_run_tree_including_binary(git_repo):
    be = GitBackend()
    write(git_repo, "pre_existing_untracked.txt", "was here before\n")
    before = be.take_snapshot(git_repo, label="before")
    write(git_repo, "file.txt", "changed\n")
    write(git_repo, "logo.bin", b"\x00new binary\xff" * 50)
    write(git_repo, "nested/x/y.txt", "deep\n")
    os.rename(git_repo / "old_name.txt", git_repo / "renamed.txt")
    os.remove(git_repo / "src/app.py")
    after = be.take_snapshot(git_repo, label="after")
    d = be.diff(before, after, capture_patch=True)
    assert d.metadata["patch_truncated"] is False and d.metadata["patch_bytes"] == len(d.patch.encode())
    assert "GIT binary patch" in d.patch
    expected = tree_bytes(git_repo)
    be.rollback(before)  # back to the pre-run tree...
    assert tree_bytes(git_repo)["file.txt"] == b"base\n"
    run_git(git_repo, "apply", "--check", "-", input=d.patch.encode())
    run_git(git_repo, "apply", "-", input=d.patch.encode())  # ...and the patch takes it to the after state
    assert tree_bytes(git_repo) == expected


def test_patch_truncation_metadata(git_repo):
    be = GitBackend()
    before = be.take_snapshot(git_repo)
    write(git_repo, "big.txt", "x" * 5000 + "\n")
    after = be.take_snapshot(git_repo)
    d = be.diff(before, after, capture_patch=True, max_patch_bytes=100)
    assert d.patch is None and d.metadata["patch_truncated"] is True and d.metadata["patch_bytes"] > 5000
    assert d.files_changed == 1  # the file list is still there


def test_rollback_restores_bytes_index_and_removes_new_files(git_repo):
    be = GitBackend()
    write(git_repo, "file.txt", "staged at start\n")
    run_git(git_repo, "add", "file.txt")
    write(git_repo, "scratch.txt", "untracked at start\n")
    write(git_repo, "keep.log", "ignored\n")
    expected_files = tree_bytes(git_repo)
    expected_status = _status(git_repo)
    before = be.take_snapshot(git_repo, label="before")
    # the "run": edits everything it can
    write(git_repo, "file.txt", "mangled\n")
    run_git(git_repo, "add", "-A")
    write(git_repo, "logo.bin", b"\x00" * 10)
    os.remove(git_repo / "src/app.py")
    os.remove(git_repo / "scratch.txt")
    write(git_repo, "fresh/deeper/new.txt", "created by the run\n")
    write(git_repo, "keep.log", "ignored, changed by the run\n")
    report = be.rollback(before)
    got = tree_bytes(git_repo)
    assert got.pop("keep.log") == b"ignored, changed by the run\n"  # ignored files are never touched
    expected_files.pop("keep.log")
    assert got == expected_files
    assert not (git_repo / "fresh").exists()
    assert _status(git_repo) == expected_status  # the staged state is back too
    assert report["removed_paths"] == ["fresh/deeper/new.txt"]
    assert set(report["restored_paths"]) == {"file.txt", "logo.bin", "scratch.txt", "src/app.py"}
    assert report["index_restored"] is True
    # the state before the rollback is kept
    assert run_git(git_repo, "show", f"{report['backup_ref']}:fresh/deeper/new.txt") == "created by the run\n"


def test_rollback_after_the_run_committed(git_repo):
    be = GitBackend()
    before = be.take_snapshot(git_repo)
    head = before.metadata["head_ref"]
    write(git_repo, "file.txt", "committed by run\n")
    run_git(git_repo, "commit", "-q", "-am", "run commit")
    report = be.rollback(before)
    assert report["head_reset"] is True
    assert run_git(git_repo, "rev-parse", "HEAD").strip() == head
    assert run_git(git_repo, "symbolic-ref", "HEAD").strip() == "refs/heads/main"
    assert (git_repo / "file.txt").read_bytes() == b"base\n"
    assert run_git(git_repo, "status", "--porcelain") == ""


def test_unborn_head_repository(tmp_path):
    repo = tmp_path / "fresh"
    repo.mkdir()
    run_git(repo, "init", "-q")
    be = GitBackend()
    empty = be.take_snapshot(repo)
    assert empty.metadata["head_ref"] is None and empty.metadata["dirty"] is False
    write(repo, "a.txt", "a\n")
    snap = be.take_snapshot(repo)
    assert snap.metadata["dirty"] is True
    d = be.diff(empty, snap, capture_patch=True)
    assert [(f.path, f.change) for f in d.files] == [("a.txt", "added")]
    be.rollback(empty)
    assert not (repo / "a.txt").exists()
    assert run_git(repo, "status", "--porcelain") == ""


def test_subdirectory_path_snapshots_whole_tree(git_repo):
    sub = git_repo / "src"
    a = take_snapshot(sub, strategy="auto")
    write(git_repo, "file.txt", "outside the subdir\n")
    b = take_snapshot(sub)
    d = diff(a, b)
    assert a.backend == "git" and a.path == str(sub)
    assert d.changed_paths == ["file.txt"]


def test_errors(git_repo, plain_dir):
    be = GitBackend()
    with pytest.raises(AsmError) as e:
        be.take_snapshot(plain_dir)
    assert e.value.code == "validation_error" and "not inside a git work tree" in e.value.message
    with pytest.raises(AsmError) as e:
        be.take_snapshot(git_repo / "nope")
    assert e.value.code == "validation_error"
    g = be.take_snapshot(git_repo)
    h = take_snapshot(plain_dir, strategy="hash")
    with pytest.raises(AsmError) as e:
        diff(g, h)
    assert e.value.message == "Workspace snapshots must use the same backend"
    with pytest.raises(AsmError) as e:
        be.diff(g, h)
    assert e.value.message == "Git diff requires git snapshots"
    other = Snapshot(backend="git", path=str(git_repo / "src"), ref=g.ref, metadata=g.metadata)
    with pytest.raises(AsmError) as e:
        be.diff(g, other)
    assert e.value.message == "Snapshots must belong to the same workspace path"
    with pytest.raises(AsmError) as e:
        be.rollback(h)
    assert (e.value.code, e.value.message) == ("validation_error", "Git rollback requires git snapshot")


def test_same_second_same_size_edit_is_seen(git_repo):
    """A file rewritten (same size) in the same second git recorded its stat is "racily clean":
    git re-reads it because its mtime is not older than the index file's. A snapshot works on a
    copy of the index; a copy stamped with the copy time hid such edits (seen as a run whose diff
    missed a file when the machine was slow enough for the snapshot to land a second later)."""
    run_git(git_repo, "config", "core.trustctime", "false")  # the ctime cannot be set back below
    f = git_repo / "file.txt"
    old = time.time_ns() - 10_000_000_000  # seconds ago, so the copy's own stamp is later
    os.utime(f, ns=(old, old))
    run_git(git_repo, "add", "file.txt")  # the index records that stat
    st = f.stat()
    index = git_repo / ".git" / "index"
    os.utime(index, ns=(old, old))  # ... and was written in the file's second
    before = take_snapshot(git_repo)
    f.write_bytes(b"BASE\n")  # same size, same inode
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # ... and the same mtime
    os.utime(index, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = take_snapshot(git_repo)
    assert diff(before, after).changed_paths == ["file.txt"]
    assert run_git(git_repo, "status", "--porcelain") == " M file.txt\n"  # git itself agrees
