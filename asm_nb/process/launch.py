"""Launching a managed child: its environment (``build_env``), the executable lookup on the
child's ``PATH`` (``resolve_executable``), the error for a missing binary
(``command_not_found_error``), and the spawn itself in a new process group, shielded so that a
cancel during the start kills the whole new group.

Split out of ``process/managed.py``, which re-exports the public names.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Mapping, Sequence
from typing import Any

from ..core.errors import AsmError
from ..core.provider_errors import normalize_provider_error
from .groups import _kill_when_started

EnvSpec = Mapping[str, Any] | Sequence[tuple[Any, Any]] | None


def build_env(env: EnvSpec = None, *, inherit: bool = True) -> dict[str, str]:
    """The child's environment: ``os.environ`` (when ``inherit``) plus ``env``.

    ``env`` is a mapping or ``(key, value)`` pairs; keys and values are stringified, a value of
    None removes the key; malformed pairs are dropped.
    """
    out: dict[str, str] = dict(os.environ) if inherit else {}
    if env is None:
        return out
    items: Any = env.items() if isinstance(env, Mapping) else env
    for item in items:
        try:
            k, v = item
        except (TypeError, ValueError):
            continue
        if k is None or k == "":
            continue
        if v is None:
            out.pop(str(k), None)
        else:
            out[str(k)] = str(v)
    return out


def resolve_executable(binary: str, env: Mapping[str, str] | None = None) -> str | None:
    """Absolute path of ``binary`` (looked up on the child's ``PATH`` unless it has a ``/``);
    None when it is missing or not executable."""
    if not binary:
        return None
    if os.sep in binary:
        return os.path.abspath(binary) if os.path.isfile(binary) and os.access(binary, os.X_OK) else None
    path = (env or os.environ).get("PATH", os.defpath)
    return shutil.which(binary, path=path)


def command_not_found_error(binary: str, *, provider: str | None = None, install_hint: str | None = None,
                            label: str | None = None) -> AsmError:
    """The error for a missing binary.

    Without ``provider``: ``AsmError("command_not_found", "Command not found: <binary>")``.
    With ``provider`` (CLI adapters): ``AsmError("provider_error", "<label> CLI not found: <binary>")``
    carrying ``provider_error.kind == "cli_not_found"``. The install hint is appended to the
    message and kept in ``details["install_hint"]``.
    """
    hint = f". Install it with: {install_hint}" if install_hint else ""
    details = {"binary": binary, "install_hint": install_hint} if install_hint else {"binary": binary}
    if provider is None:
        return AsmError("command_not_found", f"Command not found: {binary}{hint}", details=details)
    msg = f"{label or provider} CLI not found: {binary}{hint}"
    pe, extra = normalize_provider_error(provider, {"kind": "cli_not_found", "message": msg, "details": details})
    return AsmError("provider_error", msg, provider_error=pe, details=extra)


def _resolve_launch(argv: Sequence[Any], cwd: Any, env: EnvSpec, inherit_env: bool, *, provider: str | None,
                    install_hint: str | None, label: str | None) -> tuple[list[str], str, dict[str, str] | None, str]:
    """Check ``argv`` and ``cwd`` and find the executable: ``(argv, cwd, child env or None, exe)``."""
    argv = [os.fspath(a) if isinstance(a, os.PathLike) else str(a) for a in (argv or [])]
    if not argv or not argv[0]:
        raise AsmError("validation_error", "argv must name a program")
    if cwd is None:
        cwd = os.getcwd()
    cwd = os.fspath(cwd)
    if not isinstance(cwd, str) or not cwd:
        raise AsmError("validation_error", "cwd must be a non-empty string")
    if not os.path.isdir(cwd):
        raise AsmError("validation_error", f"cwd does not exist: {cwd}")
    # nothing to add: the child inherits this process's environment as it is (no copy of
    # os.environ to build and convert per command)
    child_env = None if inherit_env and not env else build_env(env, inherit=inherit_env)
    exe = resolve_executable(argv[0], child_env)
    if exe is None:
        raise command_not_found_error(argv[0], provider=provider, install_hint=install_hint, label=label)
    return argv, cwd, child_env, exe


_DEVNULL: list[int] = []  # [fd, pid, st_dev, st_ino]: /dev/null opened once per process


def _devnull() -> int:
    """A read/write descriptor of ``/dev/null`` kept open for every child's stdin (``DEVNULL``
    made ``subprocess`` open and close it once per command). Close-on-exec: the child gets it
    as its fd 0 only. Checked with one ``fstat`` per use: a forked process, or a descriptor
    someone closed (and maybe reused), gets a new one."""
    if _DEVNULL and _DEVNULL[1] == os.getpid():
        try:
            st = os.fstat(_DEVNULL[0])
            if (st.st_dev, st.st_ino) == (_DEVNULL[2], _DEVNULL[3]):
                return _DEVNULL[0]
        except OSError:
            pass
    try:
        fd = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        st = os.fstat(fd)
    except OSError:
        return asyncio.subprocess.DEVNULL  # out of descriptors: let subprocess try per command
    _DEVNULL[:] = [fd, os.getpid(), st.st_dev, st.st_ino]
    return fd


async def _create_process(exe: str, argv: list[str], cwd: str, child_env: dict[str, str] | None, *,
                          want_stdin: bool, merge_stderr: bool, provider: str | None, install_hint: str | None,
                          label: str | None) -> asyncio.subprocess.Process:
    """Start the child in a new session / process group with piped stdout (and stderr, unless
    merged) and stdin piped when wanted (else /dev/null)."""
    try:
        start = asyncio.create_subprocess_exec(
            exe, *argv[1:], cwd=cwd, env=child_env,
            stdin=asyncio.subprocess.PIPE if want_stdin else _devnull(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT if merge_stderr else asyncio.subprocess.PIPE,
            start_new_session=True)
        if getattr(asyncio.get_running_loop(), "_asm_kills_group_on_cancelled_start", False):
            return await start  # the runtime loop kills the new group itself on a cancelled start
        # The child runs before create_subprocess_exec returns (it still connects the pipes).
        # A cancel landing in that window makes asyncio SIGKILL the leader alone, so its
        # background children would outlive the cancel: shield the start, and on cancel let
        # it finish and kill the whole new group ourselves.
        creating = asyncio.ensure_future(start)
        try:
            return await asyncio.shield(creating)
        except asyncio.CancelledError:
            await _kill_when_started(creating)
            raise
    except FileNotFoundError:  # vanished between lookup and exec, or a bad #! interpreter
        raise command_not_found_error(argv[0], provider=provider, install_hint=install_hint,
                                      label=label) from None
    except OSError as exc:
        msg = f"Could not start {argv[0]}: {exc.strerror or exc}"
        if provider is not None:
            pe, det = normalize_provider_error(provider, {"kind": "process_error", "message": msg,
                                                          "details": {"binary": exe, "errno": exc.errno}})
            raise AsmError("provider_error", msg, provider_error=pe, details=det) from exc
        raise AsmError("internal_error", msg, details={"binary": exe, "errno": exc.errno}) from exc
