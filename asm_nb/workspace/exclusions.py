"""What a workspace snapshot must never contain: the asm store itself, and pseudo file systems.

A run's events are written while the run's workspace is snapshotted; with the default ``./.asm``
store inside the workspace, a diff would list the store's own files as changes and a rollback
would "restore" (delete) the failed run's events. So every snapshot, diff and rollback leaves
out, whatever ``.gitignore`` says:

- the active store's folder (a LocalStore root; a SQLite file and its ``-wal``/``-shm``/
  ``-journal`` files);
- any folder named ``.asm`` and any folder laid out like a LocalStore (``db/runs.jsonl`` or
  ``db/sessions.jsonl``).

Pseudo file systems (``/proc``, ``/sys``, ``/dev``…) are skipped: their "files" can block on read
or never end.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "STORE_DIR_NAMES",
    "excluded",
    "is_store_dir",
    "pseudo_devices",
    "relative_exclusions",
    "store_paths",
]

STORE_DIR_NAMES = frozenset({".asm"})
PSEUDO_FS = frozenset({"proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "debugfs", "tracefs",
                       "securityfs", "pstore", "bpf", "configfs", "fusectl", "mqueue", "hugetlbfs", "binfmt_misc",
                       "autofs", "rpc_pipefs", "nsfs", "efivarfs", "selinuxfs"})


def store_paths(store: Any) -> list[Path]:
    """Absolute paths the store ``store`` writes to (its folder, or its SQLite file and sidecars)."""
    out: list[Path] = []
    root = getattr(store, "root", None)
    if isinstance(root, (str, os.PathLike)):
        out.append(Path(root).expanduser().absolute())
    url = getattr(store, "url", None)
    if isinstance(url, str) and url.startswith("sqlite"):
        path = url.split("://", 1)[-1].lstrip("/") if "://" in url else url
        if url.startswith("sqlite:////"):
            path = "/" + path
        if path and path != ":memory:":
            p = Path(path).expanduser().absolute()
            out += [p, *(p.with_name(p.name + s) for s in ("-wal", "-shm", "-journal"))]
    for inner in ("primary", "store", "inner"):  # wrappers (composite stores)
        sub = getattr(store, inner, None)
        if sub is not None and sub is not store and getattr(sub, "root", None) is not None:
            out += store_paths(sub)
    return out


def is_store_dir(path: str | os.PathLike) -> bool:
    """A folder that is an asm store (named ``.asm`` or laid out like a LocalStore)."""
    p = Path(path)
    if p.name in STORE_DIR_NAMES:
        return True
    try:
        return (p / "db" / "runs.jsonl").is_file() or (p / "db" / "sessions.jsonl").is_file()
    except OSError:
        return False


def relative_exclusions(root: str | os.PathLike, paths: Iterable[str | os.PathLike]) -> list[str]:
    """The given absolute ``paths`` that lie inside ``root``, as posix paths relative to it."""
    base = Path(root).absolute()
    out = []
    for p in paths:
        try:
            rel = Path(p).absolute().relative_to(base)
        except ValueError:
            continue
        s = rel.as_posix()
        if s and s != "." and s not in out:
            out.append(s)
    return out


def excluded(rel: str, rels: Iterable[str]) -> bool:
    """``rel`` (posix, relative to the workspace) is an excluded path or lies under one, or under
    a folder named like a store."""
    parts = rel.split("/")
    if any(part in STORE_DIR_NAMES for part in parts):
        return True
    return any(rel == r or rel.startswith(r + "/") for r in rels)


_pseudo: set[int] | None = None


def pseudo_devices() -> set[int]:
    """``st_dev`` of every mounted pseudo file system (empty when ``/proc/mounts`` is unreadable)."""
    global _pseudo
    if _pseudo is not None:
        return _pseudo
    devs: set[int] = set()
    try:
        with open("/proc/mounts", encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2] in PSEUDO_FS:
                    mount = parts[1].replace("\\040", " ")
                    try:
                        devs.add(os.stat(mount).st_dev)
                    except OSError:
                        pass
    except OSError:
        pass
    _pseudo = devs
    return devs
