"""Process groups: signal a group, SIGKILL the live groups at interpreter exit (a restarted
kernel leaves no orphans), kill the group of a start that was cancelled, and name descendants
that left the group (``setsid``) but still hold its output pipes (``EscapedProcessWarning``).

Split out of ``process/managed.py``, which re-exports ``EscapedProcessWarning``.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import signal as _signal
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .managed import ManagedProcess


def _killpg(pgid: int, sig: int) -> bool:
    """Signal a process group; False when it no longer exists."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:  # pgid reused by someone else's group: not ours any more
        return False


# live groups, killed at interpreter exit so a restarted kernel leaves no orphans
_LIVE: "weakref.WeakSet[ManagedProcess]" = weakref.WeakSet()


@atexit.register
def _kill_live_groups() -> None:  # pragma: no cover - runs at interpreter exit
    for mp in list(_LIVE):
        mp.kill()


async def _kill_when_started(creating: "asyncio.Future[asyncio.subprocess.Process]") -> None:
    """A start was cancelled: wait for the child to exist, SIGKILL its group and reap it."""
    try:
        proc = await asyncio.wait_for(asyncio.shield(creating), timeout=5)
    except BaseException:  # noqa: BLE001 - it did not start (or we are cancelled again): nothing to kill
        creating.add_done_callback(_kill_group_of)
        return
    _kill_group_of(creating)
    try:
        await asyncio.wait_for(proc.wait(), timeout=1)
    except BaseException:  # noqa: BLE001 - best effort: the group is already SIGKILLed
        pass


def _kill_group_of(creating: "asyncio.Future[asyncio.subprocess.Process]") -> None:
    if creating.cancelled() or creating.exception() is not None:
        return
    _killpg(creating.result().pid, _signal.SIGKILL)


class EscapedProcessWarning(RuntimeWarning):
    """A descendant left the process group (``setsid``) and outlived a command or its cancel."""


def _pipe_inodes(proc: Any) -> frozenset[int]:
    """The inodes of a child's stdout/stderr pipes (our read ends), for ``_pipe_holders``."""
    out = set()
    for stream in (getattr(proc, "stdout", None), getattr(proc, "stderr", None)):
        try:
            fd = stream._transport.get_extra_info("pipe").fileno()  # type: ignore[union-attr]
            out.add(os.fstat(fd).st_ino)
        except Exception:  # noqa: BLE001 - no pipe (merged stderr) or not a pipe transport
            pass
    return frozenset(out)


def _pipe_holders(inodes: frozenset[int]) -> list[int]:
    """Pids (other than ours) with an fd on one of the pipes ``inodes`` (Linux ``/proc``)."""
    if not inodes or not os.path.isdir("/proc"):
        return []
    wanted = {f"pipe:[{i}]" for i in inodes}
    me = os.getpid()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{entry}/fd/{fd}") in wanted:
                    pids.append(int(entry))
                    break
            except OSError:
                continue
    return sorted(pids)
