"""``Diff`` and ``FileChange``: what changed between two snapshots (docs/workspace.md), plus the
small text helpers both backends share (binary sniffing, ``difflib`` unified patches).

Pure data and standard library only.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

__all__ = ["Diff", "FileChange", "CHANGE_KINDS", "is_binary", "unified_patch", "count_lines"]

CHANGE_KINDS = ("added", "modified", "deleted", "renamed")
_SNIFF_BYTES = 8000


@dataclass(frozen=True)
class FileChange:
    """One changed file: ``path`` (the new path for renames), ``change`` (added / modified /
    deleted / renamed), ``old_path`` (renames only), ``insertions`` / ``deletions`` (None when
    unknown, 0 for binary files) and ``binary``."""

    path: str
    change: str
    old_path: str | None = None
    insertions: int | None = None
    deletions: int | None = None
    binary: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The six fields as a plain dict."""
        return {"path": self.path, "change": self.change, "old_path": self.old_path,
                "insertions": self.insertions, "deletions": self.deletions, "binary": self.binary}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FileChange":
        """Inverse of :meth:`to_dict`."""
        return cls(path=str(data["path"]), change=str(data.get("change") or "modified"),
                   old_path=data.get("old_path"), insertions=data.get("insertions"),
                   deletions=data.get("deletions"), binary=bool(data.get("binary")))


@dataclass(frozen=True)
class Diff:
    """The difference between two snapshots of one workspace.

    ``changed_paths`` is the reference list (sorted, unique, computed without rename detection,
    so a rename lists its old and its new path); ``files_changed == len(changed_paths)``.
    ``files`` holds one :class:`FileChange` per changed file (renames detected, git backend).
    ``patch`` is a unified diff (git: ``--binary``, so ``git apply`` takes it) or None when not
    captured, too large (``metadata["patch_truncated"]``) or offloaded to an artifact store
    (``metadata["patch_ref"]``)."""

    backend: str
    from_ref: str | None = None
    to_ref: str | None = None
    files_changed: int = 0
    insertions: int = 0
    deletions: int = 0
    changed_paths: list = field(default_factory=list)
    patch: str | None = None
    metadata: dict = field(default_factory=dict)
    files: list = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Every field; ``files`` as dicts."""
        return {"backend": self.backend, "from_ref": self.from_ref, "to_ref": self.to_ref,
                "files_changed": self.files_changed, "insertions": self.insertions,
                "deletions": self.deletions, "changed_paths": list(self.changed_paths), "patch": self.patch,
                "metadata": dict(self.metadata), "files": [f.to_dict() for f in self.files]}

    def summary(self) -> dict[str, Any]:
        """``{files_changed, insertions, deletions, changed_paths}``."""
        return {"files_changed": self.files_changed, "insertions": self.insertions,
                "deletions": self.deletions, "changed_paths": list(self.changed_paths)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Diff":
        """Inverse of :meth:`to_dict`."""
        return cls(backend=str(data.get("backend")), from_ref=data.get("from_ref"), to_ref=data.get("to_ref"),
                   files_changed=int(data.get("files_changed") or 0), insertions=int(data.get("insertions") or 0),
                   deletions=int(data.get("deletions") or 0), changed_paths=list(data.get("changed_paths") or []),
                   patch=data.get("patch"), metadata=dict(data.get("metadata") or {}),
                   files=[FileChange.from_dict(f) for f in data.get("files") or []])


def is_binary(data: bytes) -> bool:
    """Git's heuristic: a NUL byte in the first 8 000 bytes."""
    return b"\x00" in data[:_SNIFF_BYTES]


def count_lines(text: str) -> int:
    """Lines in ``text`` (a last line without ``\\n`` counts)."""
    if not text:
        return 0
    return text.count("\n") + (0 if text.endswith("\n") else 1)


def unified_patch(path: str, old: bytes | None, new: bytes | None) -> tuple[str, int, int]:
    """A git-style unified diff of one text file (``None`` = absent) → ``(patch, ins, dels)``.

    Headers follow git (``diff --git a/p b/p``, ``new file mode``/``deleted file mode``,
    ``--- /dev/null``), so ``git apply`` accepts the result. Bytes are decoded as UTF-8 with
    replacement."""
    a_lines = _lines(old)
    b_lines = _lines(new)
    body: list[str] = []
    ins = dels = 0
    lines = difflib.unified_diff(a_lines, b_lines, "a/" + path if old is not None else "/dev/null",
                                 "b/" + path if new is not None else "/dev/null", lineterm="\n", n=3)
    for i, line in enumerate(lines):
        if i < 2:  # the ---/+++ header lines
            body.append(line if line.endswith("\n") else line + "\n")
            continue
        if line.startswith("@@"):
            pass
        elif line.startswith("+"):
            ins += 1
        elif line.startswith("-"):
            dels += 1
        if not line.endswith("\n"):
            line += "\n\\ No newline at end of file\n"
        body.append(line)
    header = [f"diff --git a/{path} b/{path}\n"]
    if old is None:
        header.append("new file mode 100644\n")
    elif new is None:
        header.append("deleted file mode 100644\n")
    if not body:
        return "".join(header), 0, 0
    return "".join(header + body), ins, dels


def _lines(data: bytes | None) -> list[str]:
    if not data:
        return []
    return data.decode("utf-8", errors="replace").splitlines(keepends=True)


def sorted_unique(paths: Iterable[str]) -> list[str]:
    """Sorted list of distinct paths."""
    return sorted(set(paths))
