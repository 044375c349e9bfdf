"""HashBackend on plain folders: walk rules, ignore paths/globs, ref formula, diffs with line counts
and patches, large files, stat cache, rollback refused."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

import pytest

from asm_nb import config
from asm_nb.core.errors import AsmError
from asm_nb.stores.artifacts import BlobStore
from asm_nb.workspace import HashBackend, take_snapshot
from asm_nb.workspace.hashed import glob_to_regex

from .conftest import tree_bytes, write


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def test_ref_formula_and_dot_files(plain_dir):
    snap = HashBackend().take_snapshot(plain_dir, label="before")
    hashes = snap.metadata["file_hashes"]
    assert hashes == {"a.txt": _sha(b"alpha\nbeta\n"), "nested/deep/b.txt": _sha(b"bee\n"), ".hidden": _sha(b"dot file\n")}
    lines = "\n".join(f"{p}:{hashes[p]}" for p in sorted(hashes))
    assert snap.ref == _sha(lines.encode())
    assert snap.backend == "hash" and snap.path == str(plain_dir) and snap.label == "before"
    assert "file_hashes" not in snap.to_dict(compact=True)["metadata"]


def test_empty_directory_ref(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    assert HashBackend().take_snapshot(d).ref == _sha(b"")


def test_path_errors(tmp_path):
    be = HashBackend()
    with pytest.raises(AsmError) as e:
        be.take_snapshot("")
    assert (e.value.code, e.value.message) == ("validation_error", "workspace path cannot be empty")
    with pytest.raises(AsmError) as e:
        be.take_snapshot(tmp_path / "missing")
    assert e.value.message.startswith("workspace path is not a directory:")


def test_excluded_roots_ignore_paths_and_globs(plain_dir):
    write(plain_dir, "node_modules/pkg/index.js", "x")
    write(plain_dir, "src/node_modules/kept.js", "kept")  # only top-level names are excluded
    write(plain_dir, ".git/HEAD", "ref")
    write(plain_dir, "vendor/lib/x.py", "v")
    write(plain_dir, "debug.log", "d")
    write(plain_dir, "logs/error.log", "e")
    write(plain_dir, "src/temp.bak", "b")
    write(plain_dir, "old.bak", "b")
    snap = HashBackend().take_snapshot(plain_dir, ignore={"paths": ["vendor"], "globs": ["*.log", "**/*.bak"]})
    assert sorted(snap.metadata["file_hashes"]) == [".hidden", "a.txt", "nested/deep/b.txt", "src/node_modules/kept.js"]
    with config.override(excluded_workspace_roots=[]):
        snap2 = HashBackend().take_snapshot(plain_dir)
    assert "node_modules/pkg/index.js" in snap2.metadata["file_hashes"]


def test_glob_to_regex():
    assert glob_to_regex("**/*.bak").match("src/temp.bak") and glob_to_regex("**/*.bak").match("old.bak")
    assert not glob_to_regex("*.log").match("logs/error.log")  # full path: needs the base-name rule
    assert glob_to_regex("build/**").match("build/a/b") and not glob_to_regex("build/**").match("src/build/a")
    assert glob_to_regex("a?c.txt").match("abc.txt") and not glob_to_regex("a?c.txt").match("a/c.txt")
    assert glob_to_regex("a+b.txt").match("a+b.txt")


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_symlinks(plain_dir, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("target content\n")
    os.symlink(outside / "secret.txt", plain_dir / "link.txt")
    os.symlink(outside, plain_dir / "linkdir")  # a directory link is not followed
    os.symlink(plain_dir / "gone", plain_dir / "broken")  # broken: skipped
    hashes = HashBackend().take_snapshot(plain_dir).metadata["file_hashes"]
    assert hashes["link.txt"] == _sha(b"target content\n")
    assert not any(p.startswith("linkdir") for p in hashes) and "broken" not in hashes


def test_diff_with_content_line_counts_binary_and_patch_that_git_applies(plain_dir, tmp_path):
    pre = tmp_path / "pre"
    shutil.copytree(plain_dir, pre)
    be = HashBackend(blobs=BlobStore(tmp_path / "blobs"))
    before = be.take_snapshot(plain_dir, keep_content=True)
    write(plain_dir, "a.txt", "alpha\ngamma\ndelta\n")
    os.remove(plain_dir / "nested/deep/b.txt")
    write(plain_dir, "new/dir/c.txt", "c1\nc2")  # no final newline
    write(plain_dir, "img.bin", b"\x89PNG\x00\x00data")
    after = be.take_snapshot(plain_dir, keep_content=True)
    d = be.diff(before, after, capture_patch=True)
    files = {f.path: f for f in d.files}
    assert d.changed_paths == ["a.txt", "img.bin", "nested/deep/b.txt", "new/dir/c.txt"] and d.files_changed == 4
    assert (files["a.txt"].change, files["a.txt"].insertions, files["a.txt"].deletions) == ("modified", 2, 1)
    assert (files["nested/deep/b.txt"].change, files["nested/deep/b.txt"].deletions) == ("deleted", 1)
    assert (files["new/dir/c.txt"].change, files["new/dir/c.txt"].insertions) == ("added", 2)
    assert files["img.bin"].binary and files["img.bin"].change == "added"
    assert (d.insertions, d.deletions) == (4, 2)
    assert d.metadata == {"patch_truncated": False, "patch_bytes": len(d.patch.encode())}
    # the text part of the patch applies with git apply on the pre-run copy
    chunks = ["diff --git " + c for c in d.patch.split("diff --git ")[1:]]
    assert len(chunks) == 4
    text_patch = "".join(c for c in chunks if "Binary files" not in c)
    subprocess.run(["git", "apply", "-"], cwd=pre, input=text_patch.encode(), check=True, capture_output=True)
    got = tree_bytes(pre)
    want = tree_bytes(plain_dir)
    want.pop("img.bin")
    assert got == want


def test_diff_without_content_has_paths_only(plain_dir):
    be = HashBackend()
    before = be.take_snapshot(plain_dir)
    write(plain_dir, "a.txt", "changed\n")
    after = be.take_snapshot(plain_dir)
    d = be.diff(before, after, capture_patch=True)
    assert d.changed_paths == ["a.txt"] and d.insertions == 0 and d.patch is None
    assert d.files[0].insertions is None and d.files[0].change == "modified"


def test_large_files_fingerprinted_by_stat(plain_dir):
    write(plain_dir, "huge.dat", b"x" * 2048)
    snap = HashBackend().take_snapshot(plain_dir, max_file_bytes=1024)
    assert snap.metadata["large_files"] == ["huge.dat"]
    assert snap.metadata["file_hashes"]["huge.dat"].startswith("stat:2048:")


def test_stat_cache_file_and_change_detection(plain_dir, tmp_path):
    cache = tmp_path / "cache"
    be = HashBackend(cache_dir=cache)
    old = 1_600_000_000
    for p in plain_dir.rglob("*"):
        if p.is_file():
            os.utime(p, (old, old))  # old files: trusted from the cache next time
    a = be.take_snapshot(plain_dir)
    cache_files = list(cache.glob("hash-*.json"))
    assert len(cache_files) == 1
    assert be.take_snapshot(plain_dir).ref == a.ref
    # the cache is really used: same size and restored mtime → not re-read (like git's stat data)
    write(plain_dir, "a.txt", "alpha\nBETA\n")
    os.utime(plain_dir / "a.txt", (old, old))
    assert be.take_snapshot(plain_dir).ref == a.ref
    assert HashBackend().take_snapshot(plain_dir).ref != a.ref  # without the cache: rehashed
    # same size, new content and new mtime → rehashed
    write(plain_dir, "a.txt", "ALPHA\nbeta\n")
    b = be.take_snapshot(plain_dir)
    assert b.ref != a.ref and b.metadata["file_hashes"]["a.txt"] == _sha(b"ALPHA\nbeta\n")


def test_unreadable_files_are_listed(plain_dir):
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    p = write(plain_dir, "locked.txt", "x")
    p.chmod(0)
    try:
        snap = HashBackend().take_snapshot(plain_dir)
    finally:
        p.chmod(0o644)
    assert snap.metadata["unreadable"] == ["locked.txt"]


def test_rollback_and_mixed_diff_refused(plain_dir):
    snap = take_snapshot(plain_dir, strategy="hash")
    with pytest.raises(AsmError) as e:
        HashBackend().rollback(snap)
    assert (e.value.code, e.value.message) == ("invalid_operation", "Rollback is not supported for hash backend in MVP")
    with pytest.raises(AsmError) as e:
        HashBackend().diff(snap.__class__(backend="git", path=snap.path, ref="x"), snap)
    assert e.value.message == "Hash diff requires hash snapshots"
