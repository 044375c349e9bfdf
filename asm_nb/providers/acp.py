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

Split by side of the protocol: ``_acp_client`` (session updates -> events, permission requests)
and ``_acp_host`` (fs, terminals, the stdio transport); this module keeps the adapter (options,
process, the conversation) and re-exports their names.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from ..core.capabilities import Capability
from ..core.errors import AsmError
from ..core.permission import PermissionMode
from ._acp_client import _APPROVE as _APPROVE
from ._acp_client import _EDIT_KINDS as _EDIT_KINDS
from ._acp_client import _approved as _approved
from ._acp_client import _Client as _Client
from ._acp_client import _jsonable as _jsonable
from ._acp_client import _RunCancelled as _RunCancelled
from ._acp_client import _text_of as _text_of
from ._acp_client import _tool_output as _tool_output
from ._acp_host import DEFAULT_TERMINAL_BYTES as DEFAULT_TERMINAL_BYTES
from ._acp_host import _HostServices as _HostServices
from ._acp_host import _ProcessTransport as _ProcessTransport
from ._acp_host import _Terminal as _Terminal
from ._base import ActiveRun, BaseAdapter
from ._cli import (check_known, check_mapping, check_positive_int, check_str, explicit_timeout_ms, line_prompt,
                   sent_messages)

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

        active.on_cancel.append(self._cancel_hook(proc, conn, opts, state))
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

    @staticmethod
    def _cancel_hook(proc: Any, conn: Any, opts: Mapping[str, Any], state: dict[str, Any]) -> Callable[[], None]:
        """What ``cancel()`` runs: send ``session/cancel`` and give the agent ``cancel_grace_ms`` to answer
        the prompt, then stop its process group (at once when no ACP session exists yet)."""

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

        return on_cancel

    async def _converse(self, active: ActiveRun, conn: Any, client: _Client, proc: Any, opts: Mapping[str, Any],
                        root: Path, prompt: str, state: dict, acp: Any, ClientCapabilities: Any,
                        FileSystemCapabilities: Any, Implementation: Any) -> Mapping[str, Any]:
        """initialize + session/new (or session/load), run_started, session/prompt, the terminal events."""
        from acp.schema import TextContentBlock

        call = functools.partial(self._call, active, proc, acp)
        init, sid, agent_name = await self._open_session(call, conn, client, opts, root, state, acp,
                                                         ClientCapabilities, FileSystemCapabilities, Implementation)
        info = getattr(init, "agent_info", None)
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
        return await self._complete(active, client, resp, sid, agent_name, opts)

    async def _call(self, active: ActiveRun, proc: Any, acp: Any, what: str, aw: Any, limit: float | None) -> Any:
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

    async def _open_session(self, call: Any, conn: Any, client: _Client, opts: Mapping[str, Any], root: Path,
                            state: dict, acp: Any, ClientCapabilities: Any, FileSystemCapabilities: Any,
                            Implementation: Any) -> tuple[Any, str, str]:
        """initialize, then session/load (``resume``) or session/new, then session/set_mode:
        (the initialize answer, the ACP session id, the agent's name)."""
        import sys

        version = getattr(sys.modules.get("asm_nb"), "__version__", "0")
        fs_on = opts.get("fs") is not False
        caps = ClientCapabilities(fs=FileSystemCapabilities(read_text_file=fs_on, write_text_file=fs_on),
                                  terminal=opts.get("terminal") is not False)
        startup = (opts.get("startup_timeout_ms") or DEFAULT_STARTUP_TIMEOUT_MS) / 1000
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
        return init, sid, agent_name

    async def _complete(self, active: ActiveRun, client: _Client, resp: Any, sid: str, agent_name: str,
                        opts: Mapping[str, Any]) -> Mapping[str, Any]:
        """The prompt answered: message_received, token_usage_updated, turn_completed, run_completed."""
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
