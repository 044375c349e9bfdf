"""Low-level command execution (docs/workspace.md, running commands): ``run`` and ``run_streaming``.

Commands run **without a shell** (``args`` passed verbatim), in their own process group, on top
of ``process.managed.ManagedProcess``. stderr is merged into stdout (``2>&1``); a non-zero
exit is a normal result, not an error. Async first, with ``run_sync`` for scripts.

>>> import asyncio
>>> asyncio.run(run("echo", ["hello"])).stdout
'hello\\n'
"""

from __future__ import annotations

import asyncio
import codecs
import os
import signal
import threading
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, Mapping, Sequence

from .. import config
from ..core.errors import AsmError
from .managed import ManagedProcess

__all__ = ["ExecResult", "run", "run_streaming", "run_sync", "TIMEOUT_EXIT_CODE"]

TIMEOUT_EXIT_CODE = 124  # what coreutils `timeout` returns

EnvSpec = Mapping[str, Any] | Sequence[tuple[Any, Any]] | None


@dataclass(frozen=True)
class ExecResult:
    """What a command did. ``stderr`` is always ``""`` (merged into ``stdout``)."""

    command: str
    args: list[str] = field(default_factory=list)
    cwd: str = ""
    exit_code: int = 0
    stdout: str = ""
    stderr: str = ""
    duration_ms: int = 0
    timed_out: bool = False


def _check_cwd(cwd: Any) -> str:
    if cwd is None:
        return os.getcwd()
    if isinstance(cwd, os.PathLike):
        cwd = os.fspath(cwd)
    if not isinstance(cwd, str) or not cwd:
        raise AsmError("validation_error", "cwd must be a non-empty string")
    if not os.path.isdir(cwd):
        raise AsmError("validation_error", f"cwd does not exist: {cwd}")
    return cwd


def _positive(value: Any, default_key: str) -> int:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return int(value)
    return int(config.get(default_key))


async def run(command: str, args: Sequence[Any] = (), *, cwd: str | os.PathLike | None = None,
              timeout_ms: int | None = None, max_output_bytes: int | None = None, env: EnvSpec = None,
              on_output: Callable[[tuple[str, str]], Any] | None = None) -> ExecResult:
    """Run ``command`` with ``args`` and capture its output.

    Args:
        cwd: working directory (default: the current one); must exist.
        timeout_ms: overall limit (default config ``command_timeout_ms``); on expiry the process
            group is SIGKILLed and the result has ``exit_code=124``, ``timed_out=True`` and the
            output captured so far.
        max_output_bytes: keep at most this many bytes of output (default config
            ``max_output_bytes``); ``on_output`` still sees every chunk.
        env: added to the inherited environment (mapping or pairs, stringified).
        on_output: called with ``("stdout", text_chunk)`` as output arrives; exceptions swallowed.
    Raises:
        AsmError: ``validation_error`` (cwd), ``command_not_found``, ``internal_error``.
        Cancelling the awaiting task kills the process group and re-raises.
    """
    if not isinstance(command, str) or not command:
        raise AsmError("validation_error", "command must be a non-empty string")
    argv_args = [str(a) for a in (args or ())]
    cwd = _check_cwd(cwd)
    timeout = _positive(timeout_ms, "command_timeout_ms")
    cap = _positive(max_output_bytes, "max_output_bytes")
    captured = bytearray()
    try:
        async with ManagedProcess.start([command, *argv_args], cwd=cwd, env=env, merge_stderr=True,
                                        timeout_ms=timeout, signals=(signal.SIGKILL,)) as proc:
            dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
            async for chunk in proc.byte_chunks():
                room = cap - len(captured)
                if room > 0:
                    captured += chunk[:room]
                if on_output is not None:
                    text = dec.decode(chunk)
                    if text:
                        _call(on_output, ("stdout", text))
            res = await proc.wait()
    except (AsmError, asyncio.CancelledError):
        raise
    except Exception as exc:
        raise AsmError.wrap("internal_error", exc, message="Command execution task crashed") from exc
    raw = bytes(captured)
    if len(raw) < cap:
        stdout = raw.decode("utf-8", errors="replace")
    else:  # cut at the cap: drop a character split by the cut instead of showing U+FFFD
        stdout = codecs.getincrementaldecoder("utf-8")(errors="replace").decode(raw, final=False)
    if res.timed_out:
        return ExecResult(command=command, args=argv_args, cwd=cwd, exit_code=TIMEOUT_EXIT_CODE, stdout=stdout,
                          duration_ms=max(res.duration_ms, timeout), timed_out=True)
    return ExecResult(command=command, args=argv_args, cwd=cwd, exit_code=res.returncode, stdout=stdout,
                      duration_ms=res.duration_ms, timed_out=False)


async def run_streaming(command: str, args: Sequence[Any] = (), *, cwd: str | os.PathLike | None = None,
                        timeout_ms: int | None = None, env: EnvSpec = None) -> AsyncIterator[tuple[str, Any]]:
    """Yield ``("stdout", text)`` as output arrives, then ``("exit", code)``.

    ``timeout_ms`` is an **idle** timeout (default ``command_timeout_ms``): no output for that
    long kills the group and yields ``("exit", 124)``. A start failure yields one
    ``("error", AsmError)`` and stops. Closing the iterator early kills the process.
    """
    try:
        if not isinstance(command, str) or not command:
            raise AsmError("validation_error", "command must be a non-empty string")
        cwd = _check_cwd(cwd)
        proc = await ManagedProcess.start([command, *[str(a) for a in (args or ())]], cwd=cwd, env=env,
                                          merge_stderr=True, signals=(signal.SIGKILL,),
                                          idle_timeout_ms=_positive(timeout_ms, "command_timeout_ms"))
    except AsmError as exc:
        yield ("error", exc)
        return
    try:
        async for text in proc.chunks():
            yield ("stdout", text)
        res = await proc.wait()
        yield ("exit", TIMEOUT_EXIT_CODE if res.timed_out else res.returncode)
    finally:
        await proc.aclose(reason="closed")


def run_sync(command: str, args: Sequence[Any] = (), **kwargs: Any) -> ExecResult:
    """Blocking ``run`` for scripts; works inside a running loop (Jupyter) via a helper thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run(command, args, **kwargs))
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = asyncio.run(run(command, args, **kwargs))
        except BaseException as exc:  # handed back to the caller's thread
            box["error"] = exc

    t = threading.Thread(target=target, name="asm-exec", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


def _call(fn: Callable[[Any], Any], item: Any) -> None:
    try:
        fn(item)
    except Exception:  # an output hook must not break the command
        pass
