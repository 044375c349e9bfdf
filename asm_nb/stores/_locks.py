"""Cross-process file locks for LocalStore: ``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows.

The operating system drops these locks when a process dies (even on ``kill -9``), so a crashed
writer never leaves a store locked: no "lock file exists" scheme. ``flock`` locks belong to an
open file description, not a thread, so callers serialize their own threads first (LocalStore
holds a ``threading.Lock`` per session before touching the matching ``FileLock``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

try:  # POSIX
    import fcntl as _fcntl

    _msvcrt = None
except ImportError:  # pragma: no cover - Windows
    _fcntl = None
    import msvcrt as _msvcrt

__all__ = ["FileLock"]


class FileLock:
    """An exclusive lock on ``path`` (created on demand), held by at most one process at a time.

    Not reentrant and not thread-safe on its own: callers serialize threads around it.
    If the lock file is removed or replaced while a process waits for it (``delete_session``
    removes the session's lock file while holding it), ``acquire`` notices the inode change and
    locks the new file instead, so two processes never believe they both hold "the" lock.
    """

    __slots__ = ("path", "_fd", "held")

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self.held = False

    def __repr__(self) -> str:
        return f"FileLock({str(self.path)!r}, held={self.held})"

    def _open(self) -> int:
        if self._fd is None:
            flags = os.O_RDWR | os.O_CREAT
            try:
                self._fd = os.open(self.path, flags, 0o644)
            except FileNotFoundError:  # the folder is made on first use only
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, flags, 0o644)
        return self._fd

    def acquire(self) -> None:
        """Block until this process holds the lock."""
        if self.held:
            return
        while True:
            fd = self._open()
            _lock(fd)
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.held = True
                return
            # the file we locked was unlinked/replaced meanwhile: drop it and lock the current one
            _unlock(fd)
            self._close_fd()

    def release(self) -> None:
        """Release the lock (the file stays, ready for the next ``acquire``)."""
        if self.held and self._fd is not None:
            self.held = False
            _unlock(self._fd)

    def remove_and_release(self) -> None:
        """Unlink the lock file while still holding it, then release and close (used by delete)."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self.release()
        self._close_fd()

    def close(self) -> None:
        """Release (if held) and close the file descriptor."""
        self.release()
        self._close_fd()

    def forget(self) -> None:
        """After ``fork``, in the child: close the inherited descriptor **without** unlocking
        (the lock belongs to the parent's open file description)."""
        self.held = False
        self._close_fd()

    def _close_fd(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None


if _fcntl is not None:
    _flock, _LOCK_EX, _LOCK_UN = _fcntl.flock, _fcntl.LOCK_EX, _fcntl.LOCK_UN

    def _lock(fd: int) -> None:
        while True:
            try:
                _flock(fd, _LOCK_EX)
                return
            except InterruptedError:  # pragma: no cover - PEP 475 retries for us
                continue

    def _unlock(fd: int) -> None:
        _flock(fd, _LOCK_UN)

elif _msvcrt is not None:  # pragma: no cover - Windows
    _locking, _LK_LOCK, _LK_UNLCK = _msvcrt.locking, _msvcrt.LK_LOCK, _msvcrt.LK_UNLCK

    def _lock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        while True:
            try:
                _locking(fd, _LK_LOCK, 1)  # retries for ~10 s, then raises
                return
            except OSError:
                time.sleep(0.01)

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        _locking(fd, _LK_UNLCK, 1)
