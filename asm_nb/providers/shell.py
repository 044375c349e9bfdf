"""``ShellAdapter``: runs a shell command as a run (docs/providers.md, shell).

A string input runs through ``shell -c``; a ``{"command": ..., "args": [...]}`` mapping runs the
program directly; ``{"messages": [...]}`` joins the user messages into a string. Output streams
as ``message_streamed`` events while the command runs (also for string input: in a notebook
you want to watch it), then the run ends with ``run_completed`` (exit code in
``success_exit_codes``) or ``run_failed`` — and, unlike other failures, a non-zero exit or a
timeout still *returns* an ``AdapterResult``: the command did run, ``output.exit_code`` and
``output.timed_out`` tell the story. Cancel kills the command's process group.

Python notes / deviations: ``cwd`` defaults to the current directory at execute time (the
reference requires it; notebooks rarely want to say it); ``stream_output`` (default True)
streams string input too (the reference streams only mapping input with ``streaming: True``;
a mapping's explicit ``streaming`` key still wins).

>>> import asyncio
>>> from asm_nb.core.session import Session
>>> from asm_nb.core.run import Run
>>> s = Session.new("notebook"); r = Run.new(s.id, input="echo hi")
>>> asyncio.run(ShellAdapter().execute(r, s)).output["content"]
'hi\\n'
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
from collections.abc import Mapping
from typing import Any

from .. import config
from ..core.capabilities import Capability
from ..core.errors import AsmError
from ..core.usage import empty_usage
from ..process import exec as wexec
from ._base import ActiveRun, BaseAdapter

__all__ = ["ShellAdapter"]

_FIRST_TOKEN = re.compile(r"^\s*([^\s|&;<>]+)")
_DONE = object()
_CANCEL = object()


def _check_cwd_option(cwd: Any, *, must_exist: bool = True) -> str | None:
    if cwd is None:
        return None
    if isinstance(cwd, os.PathLike):
        cwd = os.fspath(cwd)
    if isinstance(cwd, str) and cwd == "":
        raise AsmError("validation_error", "cwd cannot be empty")
    if not isinstance(cwd, str):
        raise AsmError("validation_error", "cwd must be a non-empty string")
    if must_exist and not os.path.isdir(cwd):
        raise AsmError("validation_error", f"cwd does not exist: {cwd}")
    return cwd


# Options ``resolve_adapter`` / ``run_once`` may hand any adapter; the shell ignores them.
_GENERIC_OPTIONS = frozenset({"model", "system", "max_turns", "permission_mode", "approval_callback"})
_SHELL_OPTIONS = frozenset({"cwd", "timeout_ms", "max_output_bytes", "env", "shell", "allowed_commands",
                            "denied_commands", "success_exit_codes", "stream_output", "sandbox"})


def _exit_codes(codes: Any) -> frozenset[int]:
    """``success_exit_codes``: a list of integers (a single int is accepted)."""
    if isinstance(codes, int) and not isinstance(codes, bool):
        codes = [codes]
    if isinstance(codes, (str, bytes)) or not isinstance(codes, (list, tuple, set, frozenset)) \
            or not all(isinstance(c, int) and not isinstance(c, bool) for c in codes):
        raise AsmError("validation_error", f"success_exit_codes must be a list of integers, got {codes!r}")
    return frozenset(codes)


def _normalize_env(env: Any) -> list[tuple[str, str]]:
    """Mapping or pairs → list of ``(str, str)``; malformed entries dropped."""
    if env is None:
        return []
    items = env.items() if isinstance(env, Mapping) else env
    out: list[tuple[str, str]] = []
    try:
        for item in items:
            if isinstance(item, (tuple, list)) and len(item) == 2 and item[0] not in (None, "") \
                    and item[1] is not None:
                out.append((str(item[0]), str(item[1])))
    except TypeError:
        return []
    return out


def _positive_int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else None


def _names(v: Any) -> frozenset[str] | None:
    if v is None:
        return None
    if isinstance(v, str):
        v = [v]
    return frozenset(os.path.basename(str(x)) for x in v)


class ShellAdapter(BaseAdapter):
    """Run shell commands as agent runs.

    Options: ``cwd`` (default: current directory at execute time), ``timeout_ms`` (config
    ``command_timeout_ms``), ``max_output_bytes`` (config), ``env`` (mapping or pairs, added to
    the inherited environment), ``shell`` (config ``default_shell``), ``allowed_commands`` /
    ``denied_commands`` (basenames; the denylist wins), ``success_exit_codes`` (``[0]``),
    ``stream_output`` (True).
    """

    name = "shell"
    emits_input_messages = True
    #: what ``execute(**opts)`` may override per run (the rest is fixed at construction)
    execute_overrides = frozenset({"timeout_ms"})

    def __init__(self, *, cwd: Any = None, timeout_ms: int | None = None, max_output_bytes: int | None = None,
                 env: Any = None, shell: str | None = None, allowed_commands: Any = None,
                 denied_commands: Any = None, success_exit_codes: Any = None, stream_output: bool = True,
                 sandbox: Any = None, **options: Any) -> None:
        unknown = sorted(str(k) for k in options if k not in _GENERIC_OPTIONS)
        if unknown:
            from ..core.suggest import did_you_mean

            raise AsmError("validation_error",
                           f"Unknown shell option {unknown[0]!r}{did_you_mean(unknown[0], _SHELL_OPTIONS)}; "
                           f"shell options: {', '.join(sorted(_SHELL_OPTIONS))}")
        super().__init__(cwd=cwd, **options)
        self.cwd = _check_cwd_option(cwd)
        self.timeout_ms = _positive_int(timeout_ms) or int(config.get("command_timeout_ms"))
        self.max_output_bytes = _positive_int(max_output_bytes) or int(config.get("max_output_bytes"))
        self.env = _normalize_env(env)
        self.shell = shell or str(config.get("default_shell"))
        self.allowed_commands = _names(allowed_commands)
        self.denied_commands = _names(denied_commands)
        codes = success_exit_codes if success_exit_codes is not None else config.get("default_success_exit_codes")
        self.success_exit_codes = _exit_codes(codes)
        self.stream_output = bool(stream_output)
        from .sandbox import check_sandbox

        #: "none" | "bwrap" | "bwrap_no_network" (default: config ``command_sandbox``)
        self.sandbox = check_sandbox(sandbox if sandbox is not None else config.get("command_sandbox"))

    async def capabilities(self) -> list[Capability]:
        return [Capability.new("command_execution", "code_execution", description="Shell command execution"),
                Capability.new("streaming", "sampling", description="Real-time output streaming")]

    def validate_config(self, config: Mapping[str, Any]) -> None:
        """``cwd`` may be absent (current directory) but not empty or a non-string."""
        if not isinstance(config, Mapping):
            raise AsmError("validation_error", "Invalid shell config")
        if "cwd" in config and config["cwd"] is not None:
            _check_cwd_option(config["cwd"], must_exist=False)

    # -- input -----------------------------------------------------------------------
    def _parse_input(self, run_input: Any) -> dict[str, Any]:
        spec = self._parse_input_spec(run_input)
        if any("\x00" in part for part in [spec["command"], *spec["args"]]):
            raise AsmError("validation_error", "the command contains a NUL byte (\\x00), which no program can receive")
        return spec

    def _parse_input_spec(self, run_input: Any) -> dict[str, Any]:
        if isinstance(run_input, Mapping) and isinstance(run_input.get("messages"), list) \
                and "command" not in run_input:
            parts = [m.get("content") for m in run_input["messages"]
                     if isinstance(m, Mapping) and str(m.get("role", "user")).lower() == "user"]
            run_input = "\n".join(p if isinstance(p, str) else str(p) for p in parts if p is not None)
        if isinstance(run_input, str):
            text = run_input.strip()
            m = _FIRST_TOKEN.match(text)
            return {"command": self.shell, "args": ["-c", text],
                    "check_name": m.group(1) if m else os.path.basename(self.shell),
                    "display": text, "streaming": self.stream_output, "cwd": None, "env": [],
                    "timeout_ms": None}
        if isinstance(run_input, Mapping):
            command = run_input.get("command")
            if not isinstance(command, str) or not command:
                raise AsmError("validation_error", "input.command is required")
            raw_args = run_input.get("args")
            args = [str(a) for a in raw_args] if isinstance(raw_args, list) else []
            streaming = run_input.get("streaming")
            return {"command": command, "args": args, "check_name": command,
                    "display": " ".join([command, *args]),
                    "streaming": streaming if isinstance(streaming, bool) else self.stream_output,
                    "cwd": run_input.get("cwd"), "env": _normalize_env(run_input.get("env")),
                    "timeout_ms": _positive_int(run_input.get("timeout_ms"))}
        raise AsmError("validation_error", "Unsupported input format for shell execution")

    def _check_policy(self, name: str) -> None:
        base = os.path.basename(name)
        if self.denied_commands is not None and base in self.denied_commands:
            raise AsmError("policy_violation", f"Command '{base}' is denied")
        if self.allowed_commands is not None and base not in self.allowed_commands:
            raise AsmError("policy_violation", f"Command '{base}' is not in the allowed list")

    # -- execute ---------------------------------------------------------------------
    async def _execute(self, active: ActiveRun, **opts: Any) -> Mapping[str, Any]:
        spec = self._parse_input(active.run.input)
        self._check_policy(spec["check_name"])
        if active.cancelled:
            raise await active.emit_cancelled()
        cwd = spec["cwd"] if spec["cwd"] is not None else (self.cwd or os.getcwd())
        timeout_ms = spec["timeout_ms"] or _positive_int(opts.get("timeout_ms")) or self.timeout_ms
        env = dict(self.env)
        env.update(spec["env"])
        display = spec["display"]
        tool_call_id = "tc_" + secrets.token_hex(8)
        tool_input = {"command": spec["command"], "args": list(spec["args"]), "cwd": cwd}

        # The child may start before the opening events are made (their work then overlaps the
        # child's run) only when nothing that sees them can stop the run on them: a policy can
        # deny the tool call or wait for an approval, a user callback can cancel, and then the
        # command must not have started (see ``_EARLY_START``).
        async def opening() -> None:
            await active.emit("run_started", {"cwd": cwd, "command": display})
            await active.emit("message_sent", {"role": "user", "content": display})
            await active.emit("tool_call_started", {"tool_call_id": tool_call_id, "tool_name": "bash",
                                                    "tool_input": tool_input})

        early = _may_start_early(active.callback)
        if not early:
            await opening()
            if active.cancelled:
                # a policy denied the call (or asked for approval and was refused) while its
                # tool_call_started was recorded: the command must not start at all
                raise await active.emit_cancelled()

        queue: asyncio.Queue[Any] = asyncio.Queue()
        on_output = (lambda item: queue.put_nowait(item[1])) if spec["streaming"] else None
        from .sandbox import sandboxed_argv

        argv = sandboxed_argv([spec["command"], *spec["args"]], cwd, self.sandbox)

        async def command() -> wexec.ExecResult:
            try:
                return await wexec.run(argv[0], argv[1:], cwd=cwd, timeout_ms=timeout_ms,
                                       max_output_bytes=self.max_output_bytes, env=env, on_output=on_output)
            finally:
                # said in the command task's last step, not by a done callback a loop turn later
                # (only a task cancelled before it started says nothing: nobody waits for it then)
                queue.put_nowait(_DONE)

        task = asyncio.ensure_future(command())
        wake = lambda: queue.put_nowait(_CANCEL)  # noqa: E731 - cancel() may come from any callback
        active.on_cancel.append(wake)
        try:
            if early:
                # one loop turn: the command task starts the child first (its first step runs
                # until the child exists), and the opening events are built and stored while the
                # child runs instead of before it starts. Their order and content are unchanged:
                # nothing of the command (output, exit, a start failure) is looked at before them,
                # and a hard cancel landing in that turn still finds them recorded.
                try:
                    await asyncio.sleep(0)
                finally:
                    await opening()
            while True:
                item = await queue.get()
                if active.cancelled or item is _CANCEL:
                    break
                if item is _DONE:
                    break
                await active.emit("message_streamed", {"content": item, "delta": item})
            if active.cancelled:
                await _stop(task)
                raise await active.emit_cancelled()
        finally:
            if not task.done():  # port deadline (task cancellation) or an emit error: kill the command
                await _stop(task)
            try:
                active.on_cancel.remove(wake)
            except ValueError:
                pass

        base_tool = {"tool_call_id": tool_call_id, "tool_name": "bash", "tool_input": tool_input}
        try:
            res = task.result()
        except AsmError as err:
            await active.emit("tool_call_failed", {**base_tool, "tool_output": {"output": "", "exit_code": None},
                                                   "is_error": True})
            raise await active.emit_failure(err) from err
        if res.exit_code == _SIGINT_EXIT and not res.timed_out and not active.cancelled:
            # The command died of SIGINT, which usually means the user stopped it: a notebook's
            # stop button interrupts the kernel's process group, and a child still being spawned
            # (not yet in its own group) receives it before the cancel that follows in a few ms.
            # That cancel is given a moment to arrive, so the run ends cancelled, not failed.
            try:
                await asyncio.wait_for(active.cancel_event.wait(), _SIGINT_CANCEL_WAIT_S)
            except asyncio.TimeoutError:
                pass
            if active.cancelled:
                raise await active.emit_cancelled()
        output = {"content": res.stdout, "exit_code": res.exit_code, "stderr": res.stderr,
                  "duration_ms": res.duration_ms, "timed_out": res.timed_out, "tool_calls": []}
        tool_output = {"output": res.stdout, "exit_code": res.exit_code, "duration_ms": res.duration_ms}
        if res.timed_out:
            await active.emit("tool_call_failed", {**base_tool, "tool_output": {**tool_output, "timed_out": True},
                                                   "is_error": True})
            msg = f"Command timed out after {timeout_ms}ms"
            await active.emit("error_occurred", {"error_code": "command_timeout", "error_message": msg})
            await active.emit("run_failed", {"error_code": "command_timeout", "error_message": msg,
                                             "exit_code": res.exit_code, "duration_ms": res.duration_ms})
        elif res.exit_code in self.success_exit_codes:
            await active.emit("tool_call_completed", {**base_tool, "tool_output": tool_output})
            await active.emit("message_received", {"content": res.stdout, "role": "tool"})
            await active.emit("run_completed", {"stop_reason": f"exit_code_{res.exit_code}",
                                                "exit_code": res.exit_code, "duration_ms": res.duration_ms,
                                                "token_usage": empty_usage()})
        else:
            await active.emit("tool_call_failed", {**base_tool, "tool_output": tool_output, "is_error": True})
            msg = f"Command exited with code {res.exit_code}"
            await active.emit("error_occurred", {"error_code": "command_failed", "error_message": msg})
            await active.emit("run_failed", {"error_code": "command_failed", "error_message": msg,
                                             "exit_code": res.exit_code, "duration_ms": res.duration_ms})
        return {"output": output, "token_usage": empty_usage()}


#: a command's exit status when SIGINT ended it (the shell convention, 128 + 2), and how long such
#: an end waits for the cancel that usually follows it (the notebook's stop button)
_SIGINT_EXIT = 130
_SIGINT_CANCEL_WAIT_S = 0.5

#: the attribute a callback sets to say that nothing seeing the events can stop the run on one
#: (the session manager's callback: no policy and no user callback); absent: assume it can
_EARLY_START = "no_event_observers"


def _may_start_early(callback: Any) -> bool:
    """Whether the command may start before its opening events are made: no callback, or one
    that says nothing behind it can stop the run on an event (``_EARLY_START``)."""
    return callback is None or getattr(callback, _EARLY_START, False) is True


async def _stop(task: asyncio.Task) -> None:
    """Cancel the exec task (which kills the process group) and wait for it to finish."""
    task.cancel()
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        if not task.done():  # we ourselves were cancelled while waiting: let the kill finish anyway
            await asyncio.wait([task], timeout=2)
            raise
    except Exception:  # the run is ending anyway; its error is no longer news
        pass
