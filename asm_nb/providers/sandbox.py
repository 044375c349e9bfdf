"""An opt-in sandbox for commands: the model's ``bash`` tool and the ``shell`` provider.

``bash`` and ``shell`` are **not confined by default**: they run with the user's rights, which is
why they need approval outside ``full_auto``. With ``sandbox="bwrap"`` (config key
``command_sandbox``, or the shell option ``sandbox``) a command runs under `bubblewrap
<https://github.com/containers/bubblewrap>`_ (Linux): the whole filesystem read-only, the working
directory writable, a private ``/tmp``, ``/dev`` and ``/proc``; ``"bwrap_no_network"`` also
gives it no network (a fresh network namespace with only loopback). ``"none"`` (default) runs
commands as they are.

Imports only the standard library and ``core``.
"""

from __future__ import annotations

import os
import shutil
from typing import Any, Sequence

from ..core.errors import AsmError

__all__ = ["SANDBOXES", "check_sandbox", "sandboxed_argv"]

SANDBOXES = ("none", "bwrap", "bwrap_no_network")


def check_sandbox(value: Any) -> str:
    """``value`` as one of ``SANDBOXES`` (None / False → ``"none"``); else ``validation_error``."""
    if value is None or value is False:
        return "none"
    if value not in SANDBOXES:
        from ..core.suggest import did_you_mean

        raise AsmError("validation_error",
                       f"sandbox must be one of {', '.join(SANDBOXES)}, got {value!r}{did_you_mean(value, SANDBOXES)}")
    return str(value)


def sandboxed_argv(argv: Sequence[str], cwd: str | os.PathLike, sandbox: Any) -> list[str]:
    """``argv`` wrapped for ``sandbox`` (unchanged for ``"none"``). Raises
    ``dependency_not_available`` when ``bwrap`` is not installed (never runs unconfined instead)."""
    mode = check_sandbox(sandbox)
    if mode == "none":
        return list(argv)
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise AsmError("dependency_not_available",
                       f"sandbox {mode!r} needs bubblewrap: apt-get install bubblewrap (or set the sandbox to 'none')")
    work = os.path.realpath(os.fspath(cwd))
    out = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
           "--bind", work, work, "--chdir", work, "--die-with-parent"]
    if mode == "bwrap_no_network":
        out.append("--unshare-net")
    return out + ["--", *argv]
