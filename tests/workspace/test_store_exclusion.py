"""The store is never part of the workspace it snapshots: snapshots, diffs and rollbacks leave out
the active store's folder and any asm store folder whatever ``.gitignore`` says, and rollback
never touches store files. Folders with special files (a FIFO, ``/proc``) do not hang."""

from __future__ import annotations

import os
import threading

import pytest

import asm_nb
from asm_nb.workspace.git import GitBackend
from asm_nb.workspace.hashed import HashBackend

from .conftest import run_git, write


@pytest.fixture
def repo(tmp_path):
    r = tmp_path / "repo"
    r.mkdir()
    run_git(r, "init", "-q")
    write(r, "app.py", "print('v1')\n")
    write(r, ".gitignore", "*.pyc\n")  # does not list .asm
    run_git(r, "add", "-A")
    run_git(r, "commit", "-q", "-m", "init")
    return r


def _events(store, r):
    return [e.type.value for e in store.get_events(r.session_id, run_id=r.run_id)]


def test_rollback_on_failure_keeps_the_failed_runs_events(repo):
    store = asm_nb.open_store(str(repo / ".asm"))  # the default layout: ./.asm inside the repo
    ok = asm_nb.run_once("echo ok", provider="shell", store=store, cwd=str(repo))  # the store exists already
    assert ok.ok
    r = asm_nb.run_once("echo v2 > app.py; echo new > new.txt; exit 3", provider="shell", store=store,
                        cwd=str(repo), snapshot={"rollback_on_failure": True})
    assert r.status == "failed"
    assert (repo / "app.py").read_text() == "print('v1')\n" and not (repo / "new.txt").exists()  # rolled back
    types = _events(store, r)
    assert types[0] in ("run_started", "workspace_snapshot_taken", "message_sent") and "run_failed" in types
    assert "workspace_diff_computed" in types and len(types) > 3
    assert _events(store, ok)  # the earlier run's events are still there too
    ws = store.get_run(r.run_id).provider_metadata["workspace"]
    assert not [p for p in ws["changed_paths"] if p.startswith(".asm")]
    assert not [p for p in ws["rollback"]["removed_paths"] + ws["rollback"]["restored_paths"]
                if p.startswith(".asm")]


def test_a_new_store_inside_the_repo_survives_a_rollback(repo):
    store = asm_nb.open_store(str(repo / ".asm"))
    r = asm_nb.run_once("echo x > new.txt; exit 1", provider="shell", store=store, cwd=str(repo),
                        snapshot={"rollback_on_failure": True})
    assert r.status == "failed" and "run_failed" in _events(store, r)


def test_plain_snapshot_diff_lists_no_store_files(repo):
    other = asm_nb.open_store(str(repo / "sub" / "teamstore"))  # a LocalStore under another name
    asm_nb.run_once("echo seed", provider="shell", store=other, cwd=str(repo))
    store = asm_nb.open_store(str(repo / "runs-here"))  # the active store, any name
    r = asm_nb.run_once("echo v2 > app.py", provider="shell", store=store, cwd=str(repo), snapshot=True)
    assert r.ok
    assert r.workspace["changed_paths"] == ["app.py"]


def test_git_backend_excludes_store_folders_directly(repo):
    write(repo, ".asm/db/runs.jsonl", "{}\n")
    write(repo, "nested/.asm/events/x.jsonl", "{}\n")
    write(repo, "mystore/db/sessions.jsonl", "{}\n")
    g = GitBackend()
    before = g.take_snapshot(repo)
    write(repo, ".asm/db/runs.jsonl", "{}\n{}\n")
    write(repo, "nested/.asm/events/x.jsonl", "{}\n{}\n")
    write(repo, "mystore/db/sessions.jsonl", "{}\n{}\n")
    write(repo, "app.py", "print('version 2')\n")  # another size: no same-second stat race in git
    after = g.take_snapshot(repo)
    assert g.diff(before, after).changed_paths == ["app.py"]
    g.rollback(before)
    assert (repo / ".asm/db/runs.jsonl").read_text() == "{}\n{}\n"  # untouched
    assert (repo / "mystore/db/sessions.jsonl").read_text() == "{}\n{}\n"
    assert (repo / "app.py").read_text() == "print('v1')\n"


def test_hash_backend_excludes_store_folders(tmp_path):
    root = tmp_path / "plain"
    write(root, "a.txt", "a\n")
    store = asm_nb.open_store(str(root / "custom-store"))
    r = asm_nb.run_once("echo b > b.txt", provider="shell", store=store, cwd=str(root), snapshot=True)
    assert r.ok and r.workspace["backend"] == "hash"
    assert r.workspace["changed_paths"] == ["b.txt"]


def _within(seconds, fn):
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("v", fn()), daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "snapshot hung"
    return box["v"]


def test_special_files_do_not_hang(tmp_path):
    root = tmp_path / "fifo"
    write(root, "a.txt", "a\n")
    os.mkfifo(root / "pipe")
    snap = _within(20, lambda: HashBackend().take_snapshot(root))
    assert set(snap.metadata["file_hashes"]) == {"a.txt"}
    if os.path.isdir("/proc/self"):
        snap = _within(20, lambda: HashBackend().take_snapshot("/proc"))
        assert snap.metadata["file_count"] == 0
