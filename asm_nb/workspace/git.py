"""``GitBackend``: snapshots, diffs and rollback of a git work tree (docs/workspace.md).

A snapshot records the whole work tree — HEAD, staged, unstaged and untracked (not ignored)
files — as a git commit object, without touching the user's HEAD, branch, index, stash or files:

1. copy the real index to a temporary index file (``GIT_INDEX_FILE``), so ``git add -A`` reuses
   its stat data and rehashes only what changed;
2. ``git write-tree`` on that copy → ``index_tree`` (the staged state, for rollback);
3. ``git add -A`` + ``git write-tree`` → the work-tree tree; equal to ``HEAD^{tree}`` → the
   snapshot ref is HEAD (clean), else ``git commit-tree`` makes a parentless-or-HEAD-child commit
   that no branch points to, pinned under ``refs/asm/snapshots/<sha>`` so ``git gc`` keeps it.

Diffs compare two snapshot commits (tree to tree; the work tree is not read). Rollback restores
the files of a snapshot byte for byte, its staged state and its HEAD, after saving the current
state under ``refs/asm/backup/<epoch ms>``.

Only the standard library and the ``git`` executable are used; every call is blocking (the
service runs them with ``asyncio.to_thread``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from .. import config
from ..core.errors import AsmError
from .diff import Diff, FileChange, sorted_unique
from .exclusions import excluded, is_store_dir, relative_exclusions
from .snapshot import Snapshot

__all__ = ["GitBackend", "git", "is_git_worktree", "SNAPSHOT_REF_PREFIX", "BACKUP_REF_PREFIX"]

SNAPSHOT_REF_PREFIX = "refs/asm/snapshots/"
BACKUP_REF_PREFIX = "refs/asm/backup/"
_SNAPSHOT_MESSAGE = "asm workspace snapshot"
# Fixed identity and date: the same tree on the same parent always gives the same snapshot commit,
# and commit-tree works in repositories without user.name / user.email.
_COMMIT_ENV = {"GIT_AUTHOR_NAME": "asm_nb", "GIT_AUTHOR_EMAIL": "asm_nb@localhost",
               "GIT_COMMITTER_NAME": "asm_nb", "GIT_COMMITTER_EMAIL": "asm_nb@localhost",
               "GIT_AUTHOR_DATE": "@0 +0000", "GIT_COMMITTER_DATE": "@0 +0000"}
# Output independent of the user's configuration.
_DIFF_OPTS = ("-c", "core.quotepath=off", "-c", "diff.noprefix=false", "-c", "diff.mnemonicPrefix=false")
_DIFF_FLAGS = ("--no-color", "--no-ext-diff", "--no-textconv", "--no-relative")


def _base_env(index_file: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("GIT_INDEX_FILE", None)
    env["GIT_OPTIONAL_LOCKS"] = "0"  # never refresh the user's index as a side effect
    env["GIT_TERMINAL_PROMPT"] = "0"
    env.setdefault("LC_ALL", "C")
    if index_file is not None:
        env["GIT_INDEX_FILE"] = index_file
    return env


def git(args: Sequence[str], cwd: str | os.PathLike, *, index_file: str | None = None,
        env: dict[str, str] | None = None, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``git <args>`` in ``cwd`` and return the completed process (stdout as bytes).

    Non-zero exit with ``check`` → ``storage_error`` "git command failed: <trimmed output>";
    spawn failure (no git binary, missing folder) → ``storage_error`` with the exception text."""
    full_env = _base_env(index_file)
    if env:
        full_env.update(env)
    try:
        proc = subprocess.run(["git", *args], cwd=str(cwd), env=full_env, input=input,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    except OSError as exc:
        raise AsmError("storage_error", f"git command failed: {exc}",
                       details={"args": list(args), "cwd": str(cwd)}) from exc
    if check and proc.returncode != 0:
        out = (proc.stderr + proc.stdout).decode("utf-8", "replace").strip()
        if len(out) > 2000:
            out = out[:2000] + "…"
        raise AsmError("storage_error", f"git command failed: {out}",
                       details={"args": list(args), "cwd": str(cwd), "exit_code": proc.returncode})
    return proc


def _out(proc: subprocess.CompletedProcess) -> str:
    return proc.stdout.decode("utf-8", "surrogateescape").strip()


def is_git_worktree(path: str | os.PathLike) -> bool:
    """True when ``path`` has a ``.git`` folder or lies inside a git work tree (no exception)."""
    p = Path(path).expanduser()
    try:
        if (p / ".git").is_dir():
            return True
        proc = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=str(p), env=_base_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        return proc.returncode == 0
    except Exception:
        return False


class _Repo:
    """Facts about the work tree around a path, from one ``git rev-parse`` call."""

    def __init__(self, path: Path) -> None:
        if not path.is_dir():
            raise AsmError("validation_error", f"workspace path is not a directory: {path}")
        self.path = path
        proc = git(["rev-parse", "--show-toplevel", "--git-path", "index", "--verify", "-q", "HEAD^{commit}"],
                   path, check=False)
        lines = proc.stdout.decode("utf-8", "surrogateescape").splitlines()
        if proc.returncode == 0 and len(lines) == 3:
            self.head: str | None = lines[2]
        else:  # unborn HEAD (no commit yet) or not a work tree at all
            proc = git(["rev-parse", "--show-toplevel", "--git-path", "index"], path, check=False)
            lines = proc.stdout.decode("utf-8", "surrogateescape").splitlines()
            if proc.returncode != 0 or len(lines) != 2:
                out = (proc.stderr + proc.stdout).decode("utf-8", "replace").strip()
                raise AsmError("validation_error", f"workspace path is not inside a git work tree: {path} ({out})",
                               details={"path": str(path)})
            self.head = None
        self.toplevel = Path(lines[0])
        index = Path(lines[1])
        self.index = index if index.is_absolute() else (path / index)

    def head_tree(self) -> str | None:
        if self.head is None:
            return None
        return _out(git(["rev-parse", f"{self.head}^{{tree}}"], self.toplevel))


class GitBackend:
    """Snapshots as dangling commits; diffs between them; byte-identical rollback."""

    name = "git"

    # ------------------------------------------------------------------------------ snapshots
    def take_snapshot(self, path: str | os.PathLike, label: str | None = None, *, pin: bool = True,
                      exclude_paths: Any = (), excluded_rels: Any = None, **_ignored: Any) -> Snapshot:
        """Capture HEAD plus the whole work tree (staged, unstaged, untracked; ``.gitignore``
        respected) of the repository around ``path``. Touches only the object database and
        ``refs/asm/snapshots/``. asm store folders (``exclude_paths``: the active store; any
        ``.asm`` folder or LocalStore-shaped folder) are left out whatever ``.gitignore`` says."""
        p = Path(os.path.expanduser(str(path))).absolute()
        repo = _Repo(p)
        if excluded_rels is None:
            excluded_rels = _store_exclusions(repo.toplevel, exclude_paths)
        excluded_rels = list(excluded_rels)
        with tempfile.TemporaryDirectory(prefix="asm-git-index-") as tmp:
            tmp_index = os.path.join(tmp, "index")
            if repo.index.exists():
                # copy2 keeps the index's mtime: git re-reads entries not older than it ("racily
                # clean": rewritten in the second their stat was recorded). A copy stamped "now"
                # made such same-size edits invisible to the snapshot.
                shutil.copy2(repo.index, tmp_index)
            elif repo.head is not None:
                git(["read-tree", repo.head], repo.toplevel, index_file=tmp_index)
            index_tree = None
            proc = git(["write-tree"], repo.toplevel, index_file=tmp_index, check=False)
            if proc.returncode == 0:
                index_tree = _out(proc)  # unmerged entries → None (staged state not restorable)
            git(["-c", "core.safecrlf=false", "add", "-A", "--", ".", *_exclude_specs(excluded_rels)], repo.toplevel,
                index_file=tmp_index)
            tree = _out(git(["write-tree"], repo.toplevel, index_file=tmp_index))
        head_tree = repo.head_tree()
        if repo.head is not None and tree == head_tree:
            ref = repo.head
        else:
            args = ["commit-tree", tree, "-m", _SNAPSHOT_MESSAGE]
            if repo.head is not None:
                args[2:2] = ["-p", repo.head]
            ref = _out(git(args, repo.toplevel, env=_COMMIT_ENV))
        if pin:
            git(["update-ref", SNAPSHOT_REF_PREFIX + ref, ref], repo.toplevel)
        dirty = ref != repo.head if repo.head is not None else tree != _EMPTY_TREE
        meta = {"head_ref": repo.head, "dirty": dirty, "includes_untracked": True, "index_tree": index_tree,
                "tree": tree, "toplevel": str(repo.toplevel), "excluded": excluded_rels}
        return Snapshot(backend="git", path=str(p), ref=ref, label=label, metadata=meta)

    # ------------------------------------------------------------------------------ diff
    def diff(self, before: Snapshot, after: Snapshot, *, capture_patch: bool = False,
             max_patch_bytes: int | None = None) -> Diff:
        """Files, line counts and (``capture_patch``) a ``git apply``-able binary patch between
        two git snapshots of the same workspace."""
        if before.backend != "git" or after.backend != "git":
            raise AsmError("validation_error", "Git diff requires git snapshots")
        if before.path != after.path:
            raise AsmError("validation_error", "Snapshots must belong to the same workspace path")
        if max_patch_bytes is None:
            max_patch_bytes = config.get("max_patch_bytes")
        cwd = after.metadata.get("toplevel") or after.path
        a, b = before.ref, after.ref
        if a is None or b is None:
            a = a or _EMPTY_TREE
            b = b or _EMPTY_TREE
        if a == b:
            meta: dict[str, Any] = {"patch_truncated": False}
            patch = None
            if capture_patch:
                patch, meta["patch_bytes"] = "", 0
            return Diff(backend="git", from_ref=before.ref, to_ref=after.ref, patch=patch, metadata=meta)
        raw = git([*_DIFF_OPTS, "diff", *_DIFF_FLAGS, "--no-renames", "-z", "--raw", "--numstat", a, b], cwd).stdout
        records, stats = _parse_raw_numstat(raw)
        changed = sorted_unique(p for _, paths in records for p in paths)
        insertions = sum(s[0] or 0 for s in stats.values())
        deletions = sum(s[1] or 0 for s in stats.values())
        statuses = {st[0] for st, _ in records}
        if "A" in statuses and "D" in statuses:  # only then can there be a rename
            raw = git([*_DIFF_OPTS, "diff", *_DIFF_FLAGS, "-M", "-z", "--raw", "--numstat", a, b], cwd).stdout
            records, stats = _parse_raw_numstat(raw)
        files = [_file_change(st, paths, stats) for st, paths in records]
        files.sort(key=lambda f: f.path)
        meta = {"patch_truncated": False}
        patch = None
        if capture_patch:
            data = git([*_DIFF_OPTS, "diff", *_DIFF_FLAGS, "--binary", "-M", "--src-prefix=a/", "--dst-prefix=b/",
                        a, b], cwd).stdout
            n = len(data)
            if max_patch_bytes is not None and n > max_patch_bytes:
                meta = {"patch_truncated": True, "patch_bytes": n}
            else:
                patch = data.decode("utf-8", "surrogateescape")
                meta = {"patch_truncated": False, "patch_bytes": n}
        return Diff(backend="git", from_ref=before.ref, to_ref=after.ref, files_changed=len(changed),
                    insertions=insertions, deletions=deletions, changed_paths=changed, patch=patch,
                    metadata=meta, files=files)

    # ------------------------------------------------------------------------------ rollback
    def rollback(self, snapshot: Snapshot) -> dict[str, Any]:
        """Make the work tree, the index and HEAD what they were at ``snapshot``.

        First the current state is snapshotted and kept under ``refs/asm/backup/<epoch ms>``
        (so nothing is lost); then HEAD goes back (``reset --soft``) if it moved, changed and
        deleted files are restored from the snapshot tree, files created since are removed
        (ignored files are never touched), and the staged state (``index_tree``) is restored.
        Returns ``{backup_ref, backup_commit, restored_paths, removed_paths, head_reset,
        index_restored}``."""
        if snapshot.backend != "git":
            raise AsmError("validation_error", "Git rollback requires git snapshot")
        if not snapshot.ref:
            raise AsmError("validation_error", "Git rollback requires a snapshot with a ref")
        keep_out = list(snapshot.metadata.get("excluded") or [])
        current = self.take_snapshot(snapshot.path, label="rollback_backup", excluded_rels=keep_out)
        top = Path(current.metadata["toplevel"])
        backup_ref = f"{BACKUP_REF_PREFIX}{int(time.time() * 1000)}"
        git(["update-ref", backup_ref, current.ref], top)
        # 1. HEAD
        head_reset = False
        want_head = snapshot.metadata.get("head_ref")
        now_head = current.metadata.get("head_ref")
        if want_head and now_head != want_head:
            git(["reset", "-q", "--soft", want_head], top)
            head_reset = True
        elif not want_head and now_head:  # the repository had no commit yet: unborn branch again
            branch = _out(git(["symbolic-ref", "-q", "HEAD"], top, check=False))
            if branch:
                git(["update-ref", "-d", branch], top)
                head_reset = True
        # 2. files
        target = snapshot.ref
        records, _ = _parse_raw_numstat(git([*_DIFF_OPTS, "diff", "--no-renames", "-z", "--raw", target,
                                             current.ref], top).stdout)
        # store files are never touched, whatever the snapshots hold
        removed = sorted(paths[0] for st, paths in records if st[0] == "A" and not excluded(paths[0], keep_out))
        restore = sorted(paths[0] for st, paths in records if st[0] != "A" and not excluded(paths[0], keep_out))
        for rel in removed:
            _remove_file(top, rel)
        if restore:
            with tempfile.TemporaryDirectory(prefix="asm-git-index-") as tmp:
                tmp_index = os.path.join(tmp, "index")
                git(["read-tree", target], top, index_file=tmp_index)
                git(["checkout-index", "-f", "-z", "--stdin"], top, index_file=tmp_index,
                    input=b"".join(r.encode("utf-8", "surrogateescape") + b"\0" for r in restore))
        # 3. staged state
        index_restored = False
        index_tree = snapshot.metadata.get("index_tree")
        if index_tree:
            git(["read-tree", index_tree], top)
            git(["update-index", "-q", "--refresh"], top, check=False)  # re-stat: keeps `git status` fast
            index_restored = True
        return {"backup_ref": backup_ref, "backup_commit": current.ref, "restored_paths": restore,
                "removed_paths": removed, "head_reset": head_reset, "index_restored": index_restored}

    # ------------------------------------------------------------------------------ helpers
    def patch_between(self, path: str | os.PathLike, from_ref: str, to_ref: str) -> bytes:
        """``git diff --binary`` bytes between two refs of the repository at ``path``."""
        return git([*_DIFF_OPTS, "diff", *_DIFF_FLAGS, "--binary", "-M", "--src-prefix=a/", "--dst-prefix=b/",
                    from_ref, to_ref], path).stdout

    def remove_refs(self, path: str | os.PathLike, refs: Sequence[str]) -> None:
        """Drop pins (``refs/asm/snapshots/<sha>``) of snapshots no longer needed."""
        for ref in refs:
            git(["update-ref", "-d", SNAPSHOT_REF_PREFIX + ref], path, check=False)


_EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


def _store_exclusions(top: Path, exclude_paths: Any) -> list[str]:
    """The active store's paths inside the work tree plus LocalStore-shaped folders among the
    top two levels (``.asm`` folders at any depth are excluded by pattern)."""
    rels = relative_exclusions(top, exclude_paths or ())
    try:
        level1 = [e for e in os.scandir(top) if e.is_dir(follow_symlinks=False) and e.name != ".git"]
    except OSError:
        level1 = []
    candidates = list(level1)
    for e in level1:
        try:
            candidates += [c for c in os.scandir(e.path) if c.is_dir(follow_symlinks=False)]
        except OSError:
            pass
    for e in candidates:
        if is_store_dir(e.path):
            rel = Path(e.path).relative_to(top).as_posix()
            if not excluded(rel, rels):
                rels.append(rel)
    return rels


def _exclude_specs(rels: Sequence[str]) -> list[str]:
    specs = [":(exclude,glob)**/.asm", ":(exclude,glob)**/.asm/**"]
    for r in rels:
        specs += [f":(exclude,literal){r}"]
    return specs


def _parse_raw_numstat(raw: bytes) -> tuple[list[tuple[str, tuple[str, ...]]], dict[tuple[str, ...], tuple]]:
    """Parse ``git diff -z --raw --numstat`` → ``([(status, paths)], {paths: (ins|None, del|None)})``;
    ``None`` counts mean binary."""
    toks = raw.decode("utf-8", "surrogateescape").split("\0")
    records: list[tuple[str, tuple[str, ...]]] = []
    stats: dict[tuple[str, ...], tuple] = {}
    i, n = 0, len(toks)
    while i < n:
        tok = toks[i]
        if not tok:
            i += 1
            continue
        if tok.startswith(":"):
            status = tok.split(" ")[-1]
            if status[:1] in ("R", "C"):
                records.append((status, (toks[i + 1], toks[i + 2])))
                i += 3
            else:
                records.append((status, (toks[i + 1],)))
                i += 2
            continue
        parts = tok.split("\t", 2)
        if len(parts) != 3:
            i += 1
            continue
        ins, dels = _count(parts[0]), _count(parts[1])
        if parts[2] == "":  # rename: old and new path follow
            stats[(toks[i + 1], toks[i + 2])] = (ins, dels, parts[0] == "-")
            i += 3
        else:
            stats[(parts[2],)] = (ins, dels, parts[0] == "-")
            i += 1
    return records, stats


def _count(text: str) -> int | None:
    if text == "-":
        return None
    try:
        return int(text)
    except ValueError:
        return 0


_KIND = {"A": "added", "M": "modified", "D": "deleted", "T": "modified", "R": "renamed", "C": "added"}


def _file_change(status: str, paths: tuple[str, ...], stats: dict) -> FileChange:
    ins, dels, binary = stats.get(paths, (0, 0, False))
    kind = _KIND.get(status[:1], "modified")
    if binary:
        ins, dels = 0, 0
    if len(paths) == 2:
        if kind == "added":  # a copy: the new path is an added file
            return FileChange(path=paths[1], change="added", insertions=ins, deletions=dels, binary=binary)
        return FileChange(path=paths[1], change=kind, old_path=paths[0], insertions=ins, deletions=dels,
                          binary=binary)
    return FileChange(path=paths[0], change=kind, insertions=ins, deletions=dels, binary=binary)


def _remove_file(top: Path, rel: str) -> None:
    p = top / rel
    try:
        if p.is_symlink() or p.is_file():
            p.unlink()
        elif p.is_dir():  # a gitlink (nested repository) added since: leave it alone
            return
    except FileNotFoundError:
        return
    parent = p.parent
    while parent != top:
        try:
            parent.rmdir()  # only when empty
        except OSError:
            break
        parent = parent.parent
