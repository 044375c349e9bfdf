"""``require_existing_store``: read-only commands (``asm runs``, ``asm copy SRC``, the sidebar
endpoint) open a store only if it is already there: opening a LocalStore folder or a SQLite file
creates it, so a typo would otherwise leave an empty store behind and list nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..core.errors import AsmError

__all__ = ["local_target", "is_local_store", "require_existing_store"]

_SQLITE = ("sqlite:///", "sqlite+pysqlite:///", "sqlite+aiosqlite:///")


def local_target(target: Any) -> tuple[str, Path] | None:
    """``("local", folder)`` or ``("sqlite", file)`` for a target naming something on this disk;
    None for a store object, ``memory://`` and server URLs. ``None`` → the default store folder."""
    if target is None:
        from . import default_root

        return "local", default_root()
    if isinstance(target, os.PathLike):
        return "local", Path(target).expanduser()
    if not isinstance(target, str):
        return None
    s = target.strip()
    for prefix in _SQLITE:
        if s.startswith(prefix):
            path = s[len(prefix):].split("?", 1)[0]
            return ("sqlite", Path(path)) if path and path != ":memory:" else None
    if s.startswith("file://"):
        s = s[len("file://"):]
    if not s or "://" in s or s in ("memory", "memory://"):
        return None
    return "local", Path(s).expanduser()


def is_local_store(path: Path) -> bool:
    """True when ``path`` is a LocalStore folder (it holds ``store.json``)."""
    return path.is_dir() and (path / "store.json").is_file()


def require_existing_store(target: Any, *, what: str = "store") -> None:
    """Raise ``AsmError("not_found")`` naming the path when ``target`` names a LocalStore folder or
    a SQLite file that does not exist (or a folder that is not a store). Other targets pass."""
    found = local_target(target)
    if found is None:
        return
    kind, path = found
    if kind == "sqlite":
        if not path.is_file():
            raise AsmError("not_found", f"no {what} at {str(path)!r}: the SQLite file does not exist")
        return
    if not path.exists():
        raise AsmError("not_found", f"no {what} at {str(path)!r}: the folder does not exist "
                                    "(check the path, or run something first to create it)")
    if not is_local_store(path):
        raise AsmError("not_found", f"{str(path)!r} is not an asm_nb store (no store.json in it)")
