"""``AcpAdapter``: any Agent Client Protocol agent as a provider (``provider="acp"``,
``command=[...]``), on the ``agent-client-protocol`` package (``pip install 'asm_nb[acp]'``).

One ``execute`` starts the agent (``command``) in its own process group through
``process.managed.ManagedProcess``, speaks JSON-RPC over its stdio (``initialize``,
``session/new``, ``session/prompt``) and maps what comes back to asm events
(docs/providers.md, ACP):

| ACP | asm event |
|---|---|
| ``agent_message_chunk`` | ``message_streamed`` (then one ``message_received`` with the whole reply) |
| ``agent_thought_chunk`` | ``message_streamed`` ``kind="reasoning"`` |
| ``plan`` | ``message_streamed`` ``kind="plan"`` (``entries``; not part of the reply text) |
| ``tool_call`` | ``tool_call_started`` (``tool_name`` = the call's title, ``kind``, ``tool_input`` = rawInput) |
| ``tool_call_update`` completed / failed | ``tool_call_completed`` / ``tool_call_failed`` |
| ``session/request_permission`` | ``tool_approval_requested`` then ``_granted`` / ``_denied`` |
| ``PromptResponse.usage`` | ``token_usage_updated``; ``stopReason`` -> ``run_completed.stop_reason`` |

Permission requests follow the permission mode: ``full_auto`` / ``dangerously_skip_permissions``
allow, ``plan`` rejects, ``accept_edits`` allows read/edit/search kinds and asks for the rest,
``default`` asks ``approval_callback(tool_name, tool_input)`` (the notebook widget's Approve / Deny
buttons in ``%%asm``); with no callback the request is rejected.

The client side of the protocol (``fs/read_text_file``, ``fs/write_text_file``, ``terminal/*``)
is served here, confined to the run's working directory: a path that resolves (symlinks
included) outside ``cwd`` is refused with a JSON-RPC error and recorded as ``policy_violation``.
Writes and terminals are refused in ``plan`` mode. Terminal commands run in their own process
group with ``cwd`` inside the working directory (what the command does is not sandboxed).

Cancel sends ``session/cancel``; an agent that has not answered the prompt within
``cancel_grace_ms`` is stopped with its process group (SIGINT -> SIGTERM -> SIGKILL). An agent
that exits or breaks the protocol fails the run with one clear ``provider_error``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Mapping

from ..core.capabilities import Capability
from ..core.errors import AsmError
from ..core.permission import PermissionMode
from ._base import ActiveRun, BaseAdapter
from ._cli import (check_known, check_mapping, check_positive_int, check_str, explicit_timeout_ms, line_prompt,
                   sent_messages)
from ._confine import inside

log = logging.getLogger(__name__)

__all__ = ["AcpAdapter"]

_OPTIONS = frozenset({"command", "cwd", "working_directory", "env", "permission_mode", "approval_callback", "model",
                      "resume",
                      "mode", "mcp_servers", "kill_grace_ms", "cancel_grace_ms", "startup_timeout_ms", "fs",
                      "terminal", "name"})
#: options one ``execute`` call may override
_OVERRIDES = frozenset({"permission_mode", "approval_callback", "model", "mode", "env", "cancel_grace_ms", "resume"})
DEFAULT_CANCEL_GRACE_MS = 3000
DEFAULT_STARTUP_TIMEOUT_MS = 60_000
DEFAULT_KILL_GRACE_MS = 600
#: tool kinds ``accept_edits`` allows without asking
_EDIT_KINDS = frozenset({"read", "edit", "search", "think", "move", "delete", "switch_mode"})
_APPROVE = {"approve", "approved", "allow", "allowed", "yes", "y", "grant", "granted", "ok", "continue"}
#: terminal output kept per terminal when the agent gives no ``outputByteLimit``
DEFAULT_TERMINAL_BYTES = 1_000_000


def _require_acp() -> Any:
    try:
        import acp
    except ImportError as exc:
        raise AsmError("dependency_not_available",
                       "provider 'acp' needs the agent-client-protocol package: pip install 'asm_nb[acp]'",
                       details={"dependency": "agent-client-protocol"}) from exc
    return acp


def _check_command(v: Any) -> list[str]:
    if isinstance(v, str):
        import shlex

        v = shlex.split(v)
    if not isinstance(v, (list, tuple)) or not v or not all(isinstance(x, str) and x for x in v):
        raise AsmError("validation_error",
                       "acp needs command=[program, *args]: the agent to start, e.g. command=['my-agent', '--acp']")
    return list(v)


def _approved(res: Any) -> bool:
    if isinstance(res, str):
        return res.strip().lower() in _APPROVE
    return bool(res)


def _text_of(content: Any) -> str:
    """The text of an ACP content block (text; a resource link or embedded resource by its uri)."""
    t = getattr(content, "type", None)
    if t == "text":
        return getattr(content, "text", "") or ""
    if t == "resource_link":
        return f"[{getattr(content, 'name', None) or getattr(content, 'uri', '')}]"
    if t == "resource":
        res = getattr(content, "resource", None)
        return getattr(res, "text", None) or f"[{getattr(res, 'uri', 'resource')}]"
    if t in ("image", "audio"):
        return f"[{t}]"
    return ""


def _jsonable(v: Any) -> Any:
    if hasattr(v, "model_dump"):
        return v.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return v


def _tool_output(update: Any) -> Any:
    """What a finished tool call returned: ``rawOutput`` if given, else its content as text
    (diffs as ``{path, old_text, new_text}``, terminals by id)."""
    raw = getattr(update, "raw_output", None)
    if raw is not None:
        return _jsonable(raw)
    parts: list[Any] = []
    for c in getattr(update, "content", None) or []:
        t = getattr(c, "type", None)
        if t == "content":
            parts.append(_text_of(getattr(c, "content", None)))
        elif t == "diff":
            parts.append({"path": c.path, "old_text": c.old_text, "new_text": c.new_text})
        elif t == "terminal":
            parts.append({"terminal_id": c.terminal_id})
    if not parts:
        return None
    if all(isinstance(p, str) for p in parts):
        return "\n".join(parts)
    return parts


class _ProcessTransport:
    """The SDK's ``Transport`` (JSON-RPC messages as dicts) over a ``ManagedProcess``'s stdio:
    one JSON object per line. Lines that are not JSON objects (an agent's stray prints) are
    counted and skipped."""

    def __init__(self, proc: Any) -> None:
        self.proc = proc
        self._lines = proc.lines().__aiter__()
        self.skipped = 0
        self._closed = False

    async def send(self, message: dict[str, Any]) -> None:
        if self._closed or not self.proc.running:
            raise ConnectionError("the ACP agent's stdin is closed")
        await self.proc.write_stdin(json.dumps(message, ensure_ascii=False, separators=(",", ":")) + "\n")

    async def receive(self) -> dict[str, Any] | None:
        while True:
            try:
                line = await self._lines.__anext__()
            except StopAsyncIteration:
                return None
            line = line.strip()
            if not line:
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                msg = None
            if isinstance(msg, dict):
                return msg
            self.skipped += 1
            log.debug("acp: skipped a non-JSON-RPC line from the agent: %.200s", line)

    async def close(self) -> None:
        self._closed = True
        self.proc.close_stdin()


class _Terminal:
    """One ``terminal/create`` command: its process and its output (bounded, cut from the start)."""

    def __init__(self, proc: Any, limit: int) -> None:
        self.proc = proc
        self.limit = limit
        self.buf = bytearray()
        self.truncated = False
        self.result: Any = None
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for chunk in self.proc.byte_chunks():
            self.buf += chunk
            if len(self.buf) > self.limit:
                del self.buf[:len(self.buf) - self.limit]
                while self.buf and (self.buf[0] & 0xC0) == 0x80:  # never start mid-character
                    del self.buf[0]
                self.truncated = True
        self.result = await self.proc.wait()

    def exit_status(self) -> Any:
        """The ACP ``TerminalExitStatus`` once the command ended, else None."""
        from acp.schema import TerminalExitStatus

        r = self.result
        if r is None:
            return None
        return TerminalExitStatus(exit_code=r.exit_code, signal=r.signal_name)


class _Client:
    """The client half of ACP for one run: session updates -> asm events (emitted in arrival order
    by one queue), permission requests -> the approval flow, fs and terminals confined to ``cwd``."""

    def __init__(self, adapter: "AcpAdapter", active: ActiveRun, opts: Mapping[str, Any], root: Path) -> None:
        self.adapter = adapter
        self.active = active
        self.opts = opts
        self.root = root
        self.mode = PermissionMode.normalize(opts.get("permission_mode"))
        self.queue: asyncio.Queue = asyncio.Queue()
        self.text: list[str] = []
        self.tools: dict[str, dict[str, Any]] = {}  # tool_call_id -> {name, kind, input, done}
        self.tool_calls: list[dict[str, Any]] = []
        self.plan: list[dict[str, Any]] | None = None
        self.context_usage: dict[str, Any] | None = None
        self.terminals: dict[str, _Terminal] = {}
        self.violations = 0
        self.loading = False
        self._next_terminal = 0
        self.pump = asyncio.ensure_future(self._pump())

    # -- ordered emission ------------------------------------------------------------------------
    def put(self, etype: str, data: Mapping[str, Any]) -> None:
        self.queue.put_nowait((etype, dict(data)))

    async def _pump(self) -> None:
        while True:
            etype, data = await self.queue.get()
            try:
                await self.active.emit(etype, data)
            except Exception:  # the callback failing must not wedge the queue
                log.exception("acp: emitting %s failed", etype)
            finally:
                self.queue.task_done()

    async def drain(self) -> None:
        await self.queue.join()

    async def close(self) -> None:
        await self.drain()
        self.pump.cancel()
        for term in list(self.terminals.values()):
            await term.proc.aclose("run ended")
            term.reader.cancel()
        self.terminals.clear()

    # -- session/update ---------------------------------------------------------------------------
    async def session_update(self, session_id: str, update: Any, **kwargs: Any) -> None:
        if self.loading:
            return
        kind = getattr(update, "session_update", None)
        if kind == "agent_message_chunk":
            text = _text_of(update.content)
            if text:
                self.text.append(text)
                self.put("message_streamed", {"content": text, "delta": text})
        elif kind == "agent_thought_chunk":
            text = _text_of(update.content)
            if text:
                self.put("message_streamed", {"content": text, "delta": text, "kind": "reasoning"})
        elif kind == "plan":
            entries = [{"content": e.content, "priority": e.priority, "status": e.status} for e in update.entries]
            self.plan = entries
            marks = {"completed": "[x]", "in_progress": "[~]"}
            text = "\n".join(f"{marks.get(e['status'], '[ ]')} {e['content']}" for e in entries)
            self.put("message_streamed", {"content": text, "delta": text, "kind": "plan", "entries": entries})
        elif kind == "tool_call":
            self._tool_start(update)
            self._tool_progress(update)
        elif kind == "tool_call_update":
            if update.tool_call_id not in self.tools:
                self._tool_start(update)
            self._tool_progress(update)
        elif kind == "usage_update":
            self.context_usage = {"used": update.used, "size": update.size}
            if update.cost is not None:
                self.context_usage["cost"] = {"amount": update.cost.amount, "currency": update.cost.currency}
        # user_message_chunk, available_commands_update, current_mode_update, config_option_update,
        # session_info_update: nothing to record per run

    def _tool_start(self, tc: Any) -> dict[str, Any]:
        tcid = tc.tool_call_id
        raw = getattr(tc, "raw_input", None)
        entry = {"name": getattr(tc, "title", None) or getattr(tc, "kind", None) or "tool",
                 "kind": getattr(tc, "kind", None), "input": _jsonable(raw) if isinstance(raw, Mapping)
                 else ({} if raw is None else {"value": _jsonable(raw)}), "done": False}
        self.tools[tcid] = entry
        data = {"tool_call_id": tcid, "tool_name": entry["name"], "tool_input": entry["input"]}
        if entry["kind"]:
            data["kind"] = entry["kind"]
        locs = getattr(tc, "locations", None)
        if locs:
            data["locations"] = [_jsonable(x) for x in locs]
        self.put("tool_call_started", data)
        return entry

    def _tool_progress(self, u: Any) -> None:
        entry = self.tools[u.tool_call_id]
        raw = getattr(u, "raw_input", None)
        if isinstance(raw, Mapping):
            entry["input"] = _jsonable(raw)
        if getattr(u, "title", None):
            entry["title"] = u.title
        status = getattr(u, "status", None)
        if status not in ("completed", "failed") or entry["done"]:
            return
        entry["done"] = True
        out = _tool_output(u)
        data = {"tool_call_id": u.tool_call_id, "tool_name": entry["name"], "tool_input": entry["input"],
                "tool_output": out}
        if entry["kind"]:
            data["kind"] = entry["kind"]
        if status == "failed":
            data["is_error"] = True
            if entry.get("declined"):
                data["reason"] = "declined"
        self.tool_calls.append({"id": u.tool_call_id, "name": entry["name"], "input": entry["input"],
                                "output": out, "is_error": status == "failed"})
        self.put("tool_call_failed" if status == "failed" else "tool_call_completed", data)

    # -- session/request_permission ---------------------------------------------------------------
    async def request_permission(self, session_id: str, tool_call: Any, options: list, **kwargs: Any) -> Any:
        from acp.schema import AllowedOutcome, DeniedOutcome, RequestPermissionResponse

        entry = self.tools.get(tool_call.tool_call_id)
        if entry is None:
            entry = self._tool_start(tool_call)
        else:
            self._tool_progress(tool_call)
        name, tin = entry["name"], entry["input"]
        req = {"tool_call_id": tool_call.tool_call_id, "tool_name": name, "tool_input": tin, "kind": entry["kind"],
               "permission_mode": self.mode.value if self.mode else None,
               "options": [{"option_id": o.option_id, "name": o.name, "kind": o.kind} for o in options]}

        def pick(*kinds: str) -> Any:
            for k in kinds:
                for o in options:
                    if o.kind == k:
                        return RequestPermissionResponse(outcome=AllowedOutcome(outcome="selected",
                                                                                option_id=o.option_id))
            return RequestPermissionResponse(outcome=DeniedOutcome(outcome="cancelled"))

        def deny(reason: str) -> Any:
            entry["declined"] = True
            self.put("tool_approval_denied", {**req, "reason": reason})
            return pick("reject_once", "reject_always")

        if self.active.cancelled:
            return RequestPermissionResponse(outcome=DeniedOutcome(outcome="cancelled"))
        mode = self.mode
        if mode in (PermissionMode.FULL_AUTO, PermissionMode.DANGEROUSLY_SKIP_PERMISSIONS) or (
                mode is PermissionMode.ACCEPT_EDITS and entry["kind"] in _EDIT_KINDS):
            self.put("tool_approval_granted", {**req, "reason": f"permission_mode:{mode.value if mode else ''}"})
            return pick("allow_once", "allow_always")
        if mode is PermissionMode.PLAN:
            return deny("plan_mode")
        callback = self.opts.get("approval_callback")
        if callback is None:
            return deny("no_approval_callback")
        self.put("tool_approval_requested", req)
        reason = "denied_by_callback"
        try:
            res = callback(name, dict(tin))
            if asyncio.iscoroutine(res) or asyncio.isfuture(res) or hasattr(res, "__await__"):
                res = await self._unless_cancelled(res)
            ok = _approved(res)
        except _RunCancelled:
            return RequestPermissionResponse(outcome=DeniedOutcome(outcome="cancelled"))
        except Exception as exc:  # a broken callback declines, it does not crash the run
            ok, reason = False, f"approval_callback raised {type(exc).__name__}: {exc}"
        if not ok:
            return deny(reason)
        self.put("tool_approval_granted", req)
        return pick("allow_once", "allow_always")

    async def _unless_cancelled(self, aw: Any) -> Any:
        task = asyncio.ensure_future(aw)
        stop = asyncio.ensure_future(self.active.cancel_event.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if not task.done():
            task.cancel()
            raise _RunCancelled()
        return task.result()

    # -- fs/* -------------------------------------------------------------------------------------
    def _confined(self, path: Any, operation: str) -> Path:
        from acp import RequestError

        p = Path(str(path)).expanduser()
        if not p.is_absolute():
            p = self.root / p
        if not inside(self.root, p):
            msg = f"{operation}: {path} is outside the working directory {self.root}"
            self.violations += 1
            self.put("policy_violation", {"rule": "cwd_confinement", "operation": operation, "path": str(path),
                                          "message": msg, "action": "refused"})
            raise RequestError(-32602, msg, {"path": str(path), "cwd": str(self.root)})
        return p

    def _no_writes(self, operation: str) -> None:
        from acp import RequestError

        if self.mode is PermissionMode.PLAN:
            raise RequestError(-32602, f"{operation} is not allowed in permission mode 'plan' (read-only)")

    async def read_text_file(self, session_id: str, path: str, line: int | None = None, limit: int | None = None,
                             **kwargs: Any) -> Any:
        from acp import RequestError
        from acp.schema import ReadTextFileResponse

        p = self._confined(path, "fs/read_text_file")
        try:
            text = p.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            raise RequestError.resource_not_found(str(path)) from None
        except OSError as exc:
            raise RequestError(-32603, f"fs/read_text_file: {path}: {exc.strerror or exc}") from None
        if line is not None or limit is not None:
            lines = text.splitlines(keepends=True)
            start = max(0, (line or 1) - 1)
            text = "".join(lines[start:start + limit] if limit is not None else lines[start:])
        return ReadTextFileResponse(content=text)

    async def write_text_file(self, session_id: str, path: str, content: str, **kwargs: Any) -> Any:
        from acp import RequestError
        from acp.schema import WriteTextFileResponse

        self._no_writes("fs/write_text_file")
        p = self._confined(path, "fs/write_text_file")
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            if not inside(self.root, p.parent):  # a directory created through a symlink
                raise RequestError(-32602, f"fs/write_text_file: {path} is outside the working directory")
            p.write_text(content, encoding="utf-8")
        except OSError as exc:
            raise RequestError(-32603, f"fs/write_text_file: {path}: {exc.strerror or exc}") from None
        return WriteTextFileResponse()

    # -- terminal/* --------------------------------------------------------------------------------
    async def create_terminal(self, session_id: str, command: str, args: list[str] | None = None,
                              env: list | None = None, cwd: str | None = None, output_byte_limit: int | None = None,
                              **kwargs: Any) -> Any:
        from acp import RequestError
        from acp.schema import CreateTerminalResponse

        from ..process.managed import ManagedProcess

        self._no_writes("terminal/create")
        wd = self._confined(cwd, "terminal/create") if cwd else self.root
        extra = {e.name: e.value for e in env or []}
        try:
            proc = await ManagedProcess.spawn(argv=[command, *(args or [])], cwd=str(wd),
                                              env={**(self.opts.get("env") or {}), **extra}, merge_stderr=True,
                                              label=command)
        except AsmError as exc:
            raise RequestError(-32603, f"terminal/create: {exc.message}") from None
        self._next_terminal += 1
        tid = f"term_{self._next_terminal}"
        limit = output_byte_limit if output_byte_limit and output_byte_limit > 0 else DEFAULT_TERMINAL_BYTES
        self.terminals[tid] = _Terminal(proc, limit)
        return CreateTerminalResponse(terminal_id=tid)

    def _terminal(self, tid: str) -> _Terminal:
        from acp import RequestError

        term = self.terminals.get(tid)
        if term is None:
            raise RequestError(-32602, f"unknown terminal {tid!r}")
        return term

    async def terminal_output(self, session_id: str, terminal_id: str, **kwargs: Any) -> Any:
        from acp.schema import TerminalOutputResponse

        term = self._terminal(terminal_id)
        if term.result is None and not term.proc.running:
            await asyncio.wait({term.reader}, timeout=1.0)  # exited: let the reader finish
        return TerminalOutputResponse(output=term.buf.decode("utf-8", errors="replace"), truncated=term.truncated,
                                      exit_status=term.exit_status())

    async def wait_for_terminal_exit(self, session_id: str, terminal_id: str, **kwargs: Any) -> Any:
        from acp.schema import WaitForTerminalExitResponse

        term = self._terminal(terminal_id)
        await asyncio.shield(term.reader)
        st = term.exit_status()
        return WaitForTerminalExitResponse(exit_code=st.exit_code if st else None, signal=st.signal if st else None)

    async def kill_terminal(self, session_id: str, terminal_id: str, **kwargs: Any) -> Any:
        from acp.schema import KillTerminalResponse

        term = self._terminal(terminal_id)
        await term.proc.terminate("killed by the agent")
        return KillTerminalResponse()

    async def release_terminal(self, session_id: str, terminal_id: str, **kwargs: Any) -> Any:
        from acp.schema import ReleaseTerminalResponse

        term = self.terminals.pop(terminal_id, None)
        if term is not None:
            await term.proc.aclose("released")
            term.reader.cancel()
        return ReleaseTerminalResponse()

    async def ext_method(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        from acp import RequestError

        raise RequestError.method_not_found(method)

    async def ext_notification(self, method: str, params: dict[str, Any]) -> None:
        return None


class _RunCancelled(Exception):
    pass


class AcpAdapter(BaseAdapter):
    """Any Agent Client Protocol agent, started with ``command=[program, *args]``.

    Options: ``command`` (required; a list, or a str split like a shell would; default the
    ``ASM_ACP_COMMAND`` environment variable), ``cwd`` (alias
    ``working_directory``; the agent's working directory and the root its file and terminal
    requests are confined to; default the current directory), ``env`` (added to the agent's
    environment), ``permission_mode``, ``approval_callback(tool_name, tool_input) -> bool |
    "approve" | "deny" | Awaitable`` (asked for permission requests in the default mode),
    ``mode`` (an ACP session mode id, set with ``session/set_mode``), ``model`` (recorded; ACP
    agents choose their own model), ``mcp_servers`` (ACP ``McpServer`` dicts passed to
    ``session/new``), ``fs`` / ``terminal`` (offer those client capabilities; default True),
    ``cancel_grace_ms`` (3000), ``startup_timeout_ms`` (60000: initialize + session/new),
    ``kill_grace_ms``, ``name`` (the agent's display name; default its ``agentInfo`` name),
    ``resume`` (an ACP session id: continued with ``session/load`` when the agent advertises
    ``loadSession``, and only the new message is sent).

    >>> AcpAdapter(command=["my-agent"]).name
    'acp'
    """

    name = "acp"

    def __init__(self, **options: Any) -> None:
        import importlib.util

        if importlib.util.find_spec("acp") is None:  # cheap: the package itself loads at execute
            _require_acp()
        check_known(options, _OPTIONS, "acp")
        if options.get("command") is None and os.environ.get("ASM_ACP_COMMAND"):
            options["command"] = os.environ["ASM_ACP_COMMAND"]
        if options.get("command") is None:
            raise AsmError("validation_error",
                           "acp needs command=[program, *args]: the agent to start, e.g. command=['my-agent', '--acp']")
        options["command"] = _check_command(options["command"])
        wd = options.pop("working_directory", None)
        cwd = options.get("cwd") or wd or os.getcwd()
        if not isinstance(cwd, (str, os.PathLike)):
            raise AsmError("validation_error", f"cwd must be a path, got {type(cwd).__name__}")
        options["cwd"] = os.fspath(cwd)
        self._check(options)
        super().__init__(**options)
        self.command: list[str] = options["command"]
        self.cwd: str = options["cwd"]

    @staticmethod
    def _check(opts: Mapping[str, Any]) -> None:
        PermissionMode.normalize(opts.get("permission_mode"))
        cb = opts.get("approval_callback")
        if cb is not None and not callable(cb):
            raise AsmError("validation_error", "approval_callback must be callable")
        check_mapping(opts, "env")
        check_str(opts, "model")
        check_str(opts, "mode")
        check_str(opts, "name")
        r = opts.get("resume")
        if r is not None and r is not False and not (isinstance(r, str) and r):
            raise AsmError("validation_error", f"resume must be an ACP session id string (or None / False), got {r!r}")
        for k in ("kill_grace_ms", "cancel_grace_ms", "startup_timeout_ms"):
            check_positive_int(opts, k)
        servers = opts.get("mcp_servers")
        if servers is not None and (not isinstance(servers, list) or not all(isinstance(s, Mapping) for s in servers)):
            raise AsmError("validation_error", "mcp_servers must be a list of ACP McpServer dicts")
        for k in ("fs", "terminal"):
            if opts.get(k) is not None and not isinstance(opts.get(k), bool):
                raise AsmError("validation_error", f"{k} must be True or False")

    async def capabilities(self) -> list[Capability]:
        return [Capability.new("streaming", "sampling", description="Real-time streaming of responses"),
                Capability.new("tool_use", "tool", description="Tool calls reported by the agent"),
                Capability.new("interrupt", "sampling", description="Cancel through session/cancel"),
                Capability.new("file_operations", "tool",
                               description="fs/read_text_file and fs/write_text_file, confined to cwd"),
                Capability.new("bash", "tool", description="terminal/* commands, run in cwd"),
                Capability.new("approvals", "tool",
                               description="session/request_permission routed to the approval flow")]

    def validate_config(self, config: Mapping[str, Any]) -> None:
        if not isinstance(config, Mapping):
            raise AsmError("validation_error", "Invalid acp config: expected a mapping")
        if "command" in config:
            _check_command(config["command"])

    # -- execute ----------------------------------------------------------------------------------
    async def _execute(self, active: ActiveRun, *, timeout: Any = None, **adapter_opts: Any) -> Mapping[str, Any]:
        unknown = sorted(k for k in adapter_opts if k not in _OVERRIDES)
        if unknown:
            raise AsmError("validation_error", f"acp: option(s) {', '.join(unknown)} cannot be changed per run; "
                                               f"per-run options: {', '.join(sorted(_OVERRIDES))}")
        opts = {**self.options, **adapter_opts}
        self._check(opts)
        acp = _require_acp()
        from acp.schema import ClientCapabilities, FileSystemCapabilities, Implementation

        from ..process.managed import ManagedProcess

        root = Path(self.cwd).expanduser().resolve()
        if not root.is_dir():
            raise AsmError("validation_error", f"cwd {self.cwd!r} is not a directory")
        # resume=<ACP session id>: session/load continues it, so only the new message is sent;
        # otherwise a continued asm session replays its transcript into a new ACP session
        prompt = line_prompt(active.run.input, active.session, replay=not opts.get("resume"))
        if not prompt.strip():
            raise AsmError("validation_error", "acp needs a non-empty prompt")
        try:
            proc = await ManagedProcess.spawn(
                argv=self.command, cwd=str(root), env=dict(opts.get("env") or {}), keep_stdin_open=True,
                timeout_ms=explicit_timeout_ms(timeout), grace_ms=opts.get("kill_grace_ms") or DEFAULT_KILL_GRACE_MS,
                provider="acp", label=self.command[0])
        except AsmError as err:
            raise await active.emit_failure(err) from err
        client = _Client(self, active, opts, root)
        transport = _ProcessTransport(proc)
        conn = acp.connect_to_agent(client, transport)
        state: dict[str, Any] = {"session_id": None, "cancel_sent": False}

        def on_cancel() -> None:
            async def go() -> None:
                sid = state["session_id"]
                if sid is not None and proc.running:
                    state["cancel_sent"] = True
                    try:
                        await asyncio.wait_for(conn.cancel(session_id=sid), timeout=1.0)
                    except Exception:  # noqa: BLE001 - the kill below still stops it
                        log.debug("acp: session/cancel could not be sent", exc_info=True)
                    # wait for the agent to answer the prompt (not proc.wait(): that would drain
                    # stdout, the messages the connection still has to read)
                    deadline = time.monotonic() + (opts.get("cancel_grace_ms") or DEFAULT_CANCEL_GRACE_MS) / 1000
                    while not state.get("done") and proc.running and time.monotonic() < deadline:
                        await asyncio.sleep(0.05)
                    if not state.get("done"):
                        proc.request_terminate("cancelled")
                else:
                    proc.request_terminate("cancelled")

            state["cancel_task"] = asyncio.ensure_future(go())

        active.on_cancel.append(on_cancel)
        try:
            try:
                out = await self._converse(active, conn, client, proc, opts, root, prompt, state, acp,
                                           ClientCapabilities, FileSystemCapabilities, Implementation)
            finally:
                state["done"] = True
                await client.close()
                try:
                    await asyncio.wait_for(conn.close(), timeout=2.0)
                except Exception:  # noqa: BLE001
                    log.debug("acp: closing the connection failed", exc_info=True)
                await proc.aclose("run ended")
        except asyncio.CancelledError:
            proc.kill()
            raise
        except AsmError as err:
            # a failure before any event (the agent died during initialize) still ends the run with
            # error_occurred + run_failed, as a CLI that cannot start does
            if err.code != "cancelled" and not active.terminal_emitted and not active.events:
                await active.emit_failure(err)
            raise
        return out

    async def _converse(self, active: ActiveRun, conn: Any, client: _Client, proc: Any, opts: Mapping[str, Any],
                        root: Path, prompt: str, state: dict, acp: Any, ClientCapabilities: Any,
                        FileSystemCapabilities: Any, Implementation: Any) -> Mapping[str, Any]:
        import sys

        from acp.schema import TextContentBlock

        version = getattr(sys.modules.get("asm_nb"), "__version__", "0")
        fs_on = opts.get("fs") is not False
        caps = ClientCapabilities(fs=FileSystemCapabilities(read_text_file=fs_on, write_text_file=fs_on),
                                  terminal=opts.get("terminal") is not False)
        startup = (opts.get("startup_timeout_ms") or DEFAULT_STARTUP_TIMEOUT_MS) / 1000

        async def call(what: str, aw: Any, limit: float | None) -> Any:
            """Await one request, turning a dead agent, a protocol error or a stall into one AsmError."""
            task = asyncio.ensure_future(aw)
            cancelled = asyncio.ensure_future(active.cancel_event.wait()) if what != "session/prompt" else None
            try:
                waiters = {task} | ({cancelled} if cancelled else set())
                done, _ = await asyncio.wait(waiters, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if cancelled is not None:
                    cancelled.cancel()
            if task not in done:
                task.cancel()
                if active.cancelled:
                    raise AsmError("cancelled", "Run was cancelled")
                raise await self._failure(proc, "timeout", f"the ACP agent did not answer {what} within {limit:g} s",
                                          code="provider_timeout")
            try:
                return task.result()
            except ConnectionError:
                if active.cancelled:
                    raise AsmError("cancelled", "Run was cancelled") from None
                raise await self._failure(proc, "transport_exit", None) from None
            except acp.RequestError as exc:
                data = exc.data if exc.data is not None else None
                raise await self._failure(proc, "protocol_error", f"the ACP agent answered {what} with an error "
                                          f"({exc.code}): {exc}" + (f" {json.dumps(data)}" if data else ""),
                                          details={"rpc_code": exc.code, "method": what}) from None
            except Exception as exc:  # a malformed answer (pydantic validation)
                raise await self._failure(proc, "protocol_error",
                                          f"the ACP agent sent an invalid {what} answer: {exc}") from None

        init = await call("initialize", conn.initialize(protocol_version=acp.PROTOCOL_VERSION, client_capabilities=caps,
                                                        client_info=Implementation(name="asm_nb", version=version)),
                          startup)
        info = getattr(init, "agent_info", None)
        agent_name = opts.get("name") or getattr(info, "name", None) or Path(self.command[0]).name
        servers = [dict(s) for s in opts.get("mcp_servers") or []]
        resume = opts.get("resume")
        if resume:
            if not getattr(getattr(init, "agent_capabilities", None), "load_session", False):
                raise AsmError("capability_not_supported",
                               f"the ACP agent {agent_name} cannot load a session (it does not advertise loadSession); "
                               "run without resume= to start a new one")
            client.loading = True  # the history the agent replays is not this run's output
            try:
                await call("session/load", conn.load_session(cwd=str(root), session_id=resume, mcp_servers=servers),
                           startup)
            finally:
                client.loading = False
            state["session_id"] = sid = resume
        else:
            new = await call("session/new", conn.new_session(cwd=str(root), mcp_servers=servers), startup)
            state["session_id"] = sid = new.session_id
        if opts.get("mode"):
            await call("session/set_mode", conn.set_session_mode(session_id=sid, mode_id=opts["mode"]), startup)
        started = {"provider_session_id": sid, "agent_name": agent_name, "cwd": str(root), "command": list(self.command),
                   "protocol_version": init.protocol_version}
        if info is not None and getattr(info, "version", None):
            started["agent_version"] = info.version
        if opts.get("model"):
            started["model"] = opts["model"]
            started["model_source"] = "configured"
        client.put("run_started", started)
        for m in sent_messages(active.run.input):
            client.put("message_sent", m)
        if active.cancelled:
            raise AsmError("cancelled", "Run was cancelled")
        resp = await call("session/prompt", conn.prompt(session_id=sid, prompt=[TextContentBlock(type="text",
                                                                                                  text=prompt)]), None)
        await client.drain()
        stop = resp.stop_reason
        text = "".join(client.text)
        usage = self._usage(resp)
        if text:
            await active.emit("message_received", {"content": text, "role": "assistant"})
        if usage is not None:
            await active.emit("token_usage_updated", {**usage, "request_index": 1})
        await active.emit("turn_completed", {"turn": 1, "stop_reason": stop, **({"token_usage": usage} if usage else {})})
        if stop == "cancelled" or active.cancelled:
            raise AsmError("cancelled", "Run was cancelled")
        output: dict[str, Any] = {"content": text, "stop_reason": stop, "tool_calls": client.tool_calls,
                                  "provider_session_id": sid, "agent_name": agent_name}
        if client.plan is not None:
            output["plan"] = client.plan
        if client.context_usage is not None:
            output["context_usage"] = client.context_usage
        if opts.get("model"):
            output["model"] = opts["model"]
        done = {"stop_reason": stop, "num_turns": 1, "provider_session_id": sid}
        cost = (client.context_usage or {}).get("cost")
        if cost and str(cost.get("currency", "")).upper() == "USD":
            # the agent's own figure (cumulative for the ACP session, which lives for this run only)
            done["total_cost_usd"] = output["total_cost_usd"] = float(cost["amount"])
        if usage is not None:
            done["token_usage"] = usage
        if opts.get("model"):
            done["model"] = opts["model"]
        await active.emit("run_completed", done)
        return {"output": output, "token_usage": usage or {}}

    @staticmethod
    def _usage(resp: Any) -> dict[str, int] | None:
        u = getattr(resp, "usage", None)
        if u is None:
            return None
        from ..core import usage as U

        out = {U.INPUT_TOKENS: u.input_tokens, U.OUTPUT_TOKENS: u.output_tokens, U.TOTAL_TOKENS: u.total_tokens}
        if u.cached_read_tokens is not None:
            out[U.CACHE_READ_TOKENS] = u.cached_read_tokens
        if u.cached_write_tokens is not None:
            out[U.CACHE_CREATION_TOKENS] = u.cached_write_tokens
        if u.thought_tokens is not None:
            out[U.REASONING_OUTPUT_TOKENS] = u.thought_tokens
        return out

    async def _failure(self, proc: Any, kind: str, message: str | None, *, code: str = "provider_error",
                       details: Mapping[str, Any] | None = None) -> AsmError:
        """An ``AsmError`` for a failed conversation, with the agent's exit status and stderr."""
        if kind == "transport_exit" or not proc.running:
            try:
                res = await asyncio.wait_for(proc.wait(), timeout=2.0)
            except asyncio.TimeoutError:
                res = await proc.terminate("protocol failure")
        else:
            res = await proc.terminate("protocol failure")
        if kind == "transport_exit":
            if res.timed_out:
                kind, code = "timeout", "provider_timeout"
                message = f"the ACP agent did not finish within the time limit; it was stopped ({res.describe()})"
            else:
                message = f"the ACP agent {self.command[0]} exited before answering ({res.describe()})"
        tail = (res.stderr or "").strip()
        if tail and kind != "timeout":
            message = f"{message}: {tail.splitlines()[-1][:300]}"
        return self.provider_failure(code, {"kind": kind, "message": message, "exit_code": res.exit_code,
                                            "stderr": res.stderr or None, "truncated": res.stderr_truncated or None,
                                            "details": dict(details or {})}, provider="acp")
