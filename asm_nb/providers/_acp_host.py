"""The host side of ACP for one run: what the agent asks the client to do on its machine.

``fs/read_text_file`` / ``fs/write_text_file`` and ``terminal/*`` are served confined to the run's
working directory (a path that resolves, symlinks included, outside it is refused with a JSON-RPC
error and recorded as ``policy_violation``; writes and terminals are refused in ``plan`` mode);
terminal commands run in their own process group. ``_ProcessTransport`` carries the JSON-RPC
messages over the agent's stdio. ``_HostServices`` is mixed into ``_acp_client._Client``, the
object the SDK calls; logs go to the ``asm_nb.providers.acp`` logger.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ..core.errors import AsmError
from ..core.permission import PermissionMode
from ._confine import inside

if TYPE_CHECKING:
    from ._base import ActiveRun

log = logging.getLogger("asm_nb.providers.acp")

#: terminal output kept per terminal when the agent gives no ``outputByteLimit``
DEFAULT_TERMINAL_BYTES = 1_000_000


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


class _HostServices:
    """``fs/*`` and ``terminal/*`` requests, confined to ``root`` (mixed into ``_Client``)."""

    root: Path
    active: ActiveRun
    mode: PermissionMode | None
    opts: Mapping[str, Any]
    terminals: dict[str, _Terminal]
    violations: int
    _next_terminal: int

    def put(self, etype: str, data: Mapping[str, Any]) -> None:
        raise NotImplementedError  # _Client emits in arrival order

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

    async def drain(self) -> None:
        raise NotImplementedError  # _Client: every event queued so far has been emitted

    async def _settled(self, operation: str) -> None:
        """Before a write or a command: let every event the agent sent before this request (the
        tool call it belongs to, above all) through the run's observers first, so that a policy
        denying that tool, or an approval it waits for, decides before anything happens; a run
        cancelled meanwhile gets nothing done."""
        from acp import RequestError

        await self.drain()
        if self.active.cancelled:
            raise RequestError(-32603, f"{operation}: the run was cancelled (a policy stopped it, or a cancel)")

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
        await self._settled("fs/write_text_file")
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
        await self._settled("terminal/create")
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
