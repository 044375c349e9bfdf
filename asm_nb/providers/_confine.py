"""The one confinement rule of the file tools, and the ``grep`` worker.

**Rule:** a path is usable by a file tool only if, with every symlink resolved, it is the working
directory or lies under it. ``ToolContext.resolve`` applies it to paths the model names (refused
with an error); ``walk`` applies it to what a directory walk finds (entries that resolve outside
are skipped, so a repository holding ``link -> /etc/passwd`` or ``dir -> ../secret`` cannot hand
the target to the model).

``grep`` runs the model's regular expression in a separate process (this module run as a script,
``python -I -S _confine.py``, standard library only): Python's ``re`` holds the GIL while it
backtracks, so ``(a+)+$`` on a long line would otherwise freeze the whole run; a child process can
be killed on the run's timeout or cancel like any command.

Imports only the standard library (it must start fast as a script).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import sys
from pathlib import Path
from typing import Iterable, Iterator

SKIP_DIRS = frozenset({".git", "node_modules", "__pycache__", ".venv", ".mypy_cache", ".pytest_cache"})
MAX_MATCHES = 200


def inside(root: Path, path: Path) -> bool:
    """True when ``path`` (symlinks resolved) is ``root`` or under it; ``root`` must be resolved."""
    try:
        target = path.resolve()
    except (OSError, RuntimeError):  # a symlink loop, an unreadable component
        return False
    return target == root or root in target.parents


def walk(root: Path, base: Path) -> Iterator[Path]:
    """Files under ``base`` that resolve inside ``root``, sorted, skipping ``SKIP_DIRS``.

    Symlinked directories are never descended into (``os.walk`` default); symlinked files are
    yielded only when their target is inside ``root``."""
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for f in sorted(filenames):
            p = Path(dirpath) / f
            if os.path.islink(p) and not inside(root, p):
                continue
            yield p


def _rel(root: Path, p: Path) -> str:
    try:
        return str(p.relative_to(root)) or "."
    except ValueError:
        return str(p)


def grep(root: Path, base: Path, pattern: str, *, ignore_case: bool = False, glob: str | None = None,
         max_matches: int = MAX_MATCHES) -> list[str]:
    """``path:line: text`` lines for ``pattern`` in the confined files under ``base``."""
    rx = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    files: Iterable[Path] = [base] if base.is_file() else walk(root, base)
    out: list[str] = []
    for p in files:
        rel = _rel(root, p)
        if glob and not fnmatch.fnmatch(p.name, glob) and not fnmatch.fnmatch(rel, glob):
            continue
        if not inside(root, p):
            continue
        try:
            data = p.read_bytes()
        except OSError:
            continue
        if b"\x00" in data[:8192]:
            continue
        for no, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
            if rx.search(line):
                out.append(f"{rel}:{no}: {line[:500]}")
                if len(out) >= max_matches:
                    out.append(f"[stopped after {max_matches} matches]")
                    return out
    return out


def _main() -> int:  # pragma: no cover - exercised through the grep tool (a child process)
    req = json.loads(sys.stdin.read())
    lines = grep(Path(req["root"]), Path(req["base"]), req["pattern"], ignore_case=bool(req.get("ignore_case")),
                 glob=req.get("glob"), max_matches=int(req.get("max_matches") or MAX_MATCHES))
    sys.stdout.write(json.dumps(lines))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_main())
