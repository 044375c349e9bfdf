"""``ClaudeAdapter``: Claude through the Anthropic Messages API (official ``anthropic`` SDK, async, streaming).

One ``execute`` = one tool loop: stream a request, map each raw SSE event to normalized events
(docs/providers.md, Claude), run the requested tools (built-in workspace tools from
``providers/tools.py`` plus user functions given as ``tools=[...]``) under the permission mode,
send the results back, and repeat until the model stops asking for tools or ``max_turns`` is hit.

Events per request (turn ``k``): ``run_started`` (first ``message_start`` of the run only) and one
``message_sent`` per input message, ``message_streamed`` per text/thinking delta,
``tool_call_started`` when a tool_use block's input is complete, then at ``message_stop``
``message_received`` (the turn's text), ``token_usage_updated`` (this request's usage: an
increment), ``turn_completed``; tool runs give ``tool_approval_*`` and
``tool_call_completed``/``tool_call_failed``; the run ends with exactly one of ``run_completed``,
``run_failed`` (after ``error_occurred``) or ``run_cancelled``.

Permission modes (``core.permission.PermissionMode``) gate tools by their ``access``:

| mode | read tools | write tools | execute tools |
|---|---|---|---|
| None / ``default`` | run | ask ``approval_callback`` | ask |
| ``accept_edits`` | run | run | ask |
| ``plan`` | run | not offered (declined if called) | not offered |
| ``full_auto``, ``dangerously_skip_permissions`` | run | run | run |

"ask" with no ``approval_callback`` declines the call; a declined call is reported to the model as an
``is_error`` tool result and shows as ``tool_call_failed`` with ``reason="declined"``; the run goes on.

Split along its seams: request building (``_claude_input``: input messages, transcript, the
``messages.create`` parameters), stream mapping (``_claude_stream``: the per-request ``_Turn``, the
run state, cancellation helpers) and error mapping (``_claude_errors``); this module keeps the
adapter, its tool loop and the permission gate, and re-exports those modules' names.

The SDK is imported lazily: ``ClaudeAdapter.name`` works without it, constructing an adapter
without it raises ``AsmError("dependency_not_available")``. Imports ``core``, ``config``, ``ports``
and ``providers`` only.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
from pathlib import Path
from typing import Any, Mapping

from .. import config
from ..core.capabilities import Capability, CapabilityType
from ..core.errors import AsmError
from ..core.permission import PermissionMode
from ..ports import resolve_execute_timeout_base
from ._base import ActiveRun, BaseAdapter
from ._claude_errors import _by_error_type as _by_error_type
from ._claude_errors import _classify as _classify
from ._claude_errors import _names as _names
from ._claude_input import _OWN_PARAMS as _OWN_PARAMS
from ._claude_input import DEFAULT_MAX_TOKENS as DEFAULT_MAX_TOKENS
from ._claude_input import SDK_PASSTHROUGH as SDK_PASSTHROUGH
from ._claude_input import _create_params as _create_params
from ._claude_input import input_messages as input_messages
from ._claude_input import request_params
from ._claude_input import to_api_messages as to_api_messages
from ._claude_input import transcript_messages as transcript_messages
from ._claude_stream import _ON as _ON
from ._claude_stream import _INCOMPLETE as _INCOMPLETE
from ._claude_stream import _Block as _Block
from ._claude_stream import _Cancelled as _Cancelled
from ._claude_stream import _close_stream as _close_stream
from ._claude_stream import _dump as _dump
from ._claude_stream import _interruptible as _interruptible
from ._claude_stream import _partial_usage as _partial_usage
from ._claude_stream import _plain_items as _plain_items
from ._claude_stream import _RunState as _RunState
from ._claude_stream import _StreamError as _StreamError
from ._claude_stream import _Turn as _Turn
from ._claude_stream import normalize_usage as normalize_usage
from .tools import READ, WRITE, Tool, ToolContext, ToolOutput, as_tools
from .workspace_tools import builtin_tools

log = logging.getLogger(__name__)

__all__ = ["ClaudeAdapter", "MODEL_ALIASES", "DEFAULT_MODEL", "resolve_model"]

DEFAULT_MODEL = "claude-haiku-4-5-20251001"
# Short names people type in a notebook, mapped to current model ids.
MODEL_ALIASES: dict[str, str] = {
    "haiku": "claude-haiku-4-5-20251001",
    "sonnet": "claude-sonnet-4-6",
    "opus": "claude-opus-4-6",
}
DEFAULT_MAX_RETRIES = 2
# Options this adapter understands (anything else in the merged options is ignored silently: the runtime
# passes its own keys through adapter options).
_CLIENT_KEYS = ("api_key", "base_url", "max_retries", "default_headers")


def resolve_model(model: Any = None) -> str:
    """The model id to request: ``model`` (aliases ``haiku``/``sonnet``/``opus`` mapped), else config
    ``claude_default_model``, else ``DEFAULT_MODEL``."""
    if not isinstance(model, str) or not model.strip():
        model = config.get("claude_default_model") or DEFAULT_MODEL
    m = model.strip()
    return MODEL_ALIASES.get(m.lower(), m)


def _require_anthropic(operation: str) -> None:
    if importlib.util.find_spec("anthropic") is None:
        raise AsmError("dependency_not_available", "Optional dependency anthropic is required for ClaudeAdapter "
                       "(pip install 'asm_nb[claude]')",
                       details={"dependency": "anthropic", "module": "asm_nb.providers.claude",
                                "operation": operation})


# ---------------------------------------------------------------------------------------------
# The adapter
# ---------------------------------------------------------------------------------------------

class ClaudeAdapter(BaseAdapter):
    """Claude via the Anthropic Messages API (``backend="api"``).

    Options (constructor; each may be overridden per ``execute`` call):
    ``model`` (id or alias ``haiku``/``sonnet``/``opus``), ``system_prompt`` (alias ``system``), ``max_tokens`` (4096),
    ``temperature``, ``max_turns`` (max model requests; None = unlimited), ``tools`` (functions,
    ``Tool``s or tool dicts), ``builtin_tools`` (True = all, False/None = none, or a list of names),
    ``allowed_tools`` / ``denied_tools`` (name filters, policy hints), ``permission_mode``,
    ``approval_callback(tool_name, tool_input) -> bool | Awaitable[bool]``, ``cwd`` (working directory
    of the built-in tools; default the process cwd), ``api_key`` / ``base_url`` (else the SDK reads
    ``ANTHROPIC_API_KEY`` / ``ANTHROPIC_BASE_URL``), ``max_retries`` (SDK retries, default 2),
    ``client`` (an existing ``anthropic.AsyncAnthropic``, not closed by the adapter), ``sdk_opts``
    (passed to ``messages.create``: ``temperature, top_p, top_k, stop_sequences, thinking, metadata,
    service_tier, tool_choice, extra_headers, extra_body``).

    >>> ClaudeAdapter.name
    'claude'
    """

    name = "claude"
    emits_input_messages = True
    supports_pause = True  # pause / resume between turns of the tool loop (``_loop``)

    def __init__(self, **options: Any) -> None:
        _require_anthropic("ClaudeAdapter()")
        backend = options.get("backend", "api")
        if backend not in (None, "api"):
            raise AsmError("validation_error",
                           f"ClaudeAdapter backend {backend!r} is not supported here; use provider 'claude_code' "
                           "for the Claude Code CLI")
        super().__init__(**options)
        self.permission_mode = options.get("permission_mode")
        self.max_turns = options.get("max_turns")
        self.sdk_opts: dict[str, Any] = dict(options.get("sdk_opts") or {})
        self._warned_sdk_keys: set[str] = set()

    async def capabilities(self) -> list[Capability]:
        return [
            Capability("streaming", CapabilityType.SAMPLING, True, "Real-time streaming of responses"),
            Capability("tool_use", CapabilityType.TOOL, True, "Tool/function calling capability"),
            Capability("vision", CapabilityType.RESOURCE, True, "Image understanding capability"),
            Capability("system_prompts", CapabilityType.PROMPT, True, "System prompt support"),
            Capability("interrupt", CapabilityType.SAMPLING, True, "Ability to interrupt/cancel in-progress requests"),
            *self.pause_capabilities(),
        ]

    def validate_config(self, config: Mapping[str, Any]) -> None:
        """Any mapping is accepted (authentication is the SDK's business)."""
        super().validate_config(config)

    # -- option handling ---------------------------------------------------------------------
    def _tools(self, o: Mapping[str, Any], mode: PermissionMode | None) -> tuple[dict[str, Tool], list[str]]:
        """(every known tool by name, names offered to the model)."""
        bt = o.get("builtin_tools", True)
        known: dict[str, Tool] = {}
        if bt is True:
            known.update({t.name: t for t in builtin_tools()})
        elif bt:
            known.update({t.name: t for t in builtin_tools(bt)})
        for t in as_tools(o.get("tools")):
            known[t.name] = t  # user tools replace built-ins of the same name
        allowed = o.get("allowed_tools")
        denied = set(o.get("denied_tools") or ())
        offered = []
        for name, t in known.items():
            if allowed is not None and name not in allowed:
                continue
            if name in denied:
                continue
            if mode is PermissionMode.PLAN and t.access != READ:
                continue
            offered.append(name)
        return known, offered

    def _request_params(self, o: Mapping[str, Any], model: str) -> dict[str, Any]:
        return request_params(o, model, self._warned_sdk_keys)

    def _client(self, o: Mapping[str, Any], timeout: Any) -> tuple[Any, bool]:
        if o.get("client") is not None:
            return o["client"], False
        import anthropic

        kw: dict[str, Any] = {k: o[k] for k in _CLIENT_KEYS if o.get(k) is not None}
        if "api_key" not in kw and not (os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN")):
            raise AsmError("provider_authentication_failed",
                           "No Anthropic API key: set ANTHROPIC_API_KEY (or pass api_key=...). To try asm_nb "
                           "offline, use provider='replay' or asm_nb.testing.FakeAnthropicServer.",
                           provider_error={"provider": "claude", "kind": "authentication",
                                           "message": "no API key configured", "exit_code": None,
                                           "stderr": None, "truncated": None})
        kw.setdefault("max_retries", DEFAULT_MAX_RETRIES)
        kw["timeout"] = resolve_execute_timeout_base(timeout) / 1000.0
        return anthropic.AsyncAnthropic(**kw), True

    # -- execute -----------------------------------------------------------------------------
    async def _execute(self, active: ActiveRun, *, timeout: Any = None, **opts: Any) -> Mapping[str, Any]:
        o = {**self.options, **opts}
        mode = PermissionMode.normalize(o.get("permission_mode"))
        model = resolve_model(o.get("model"))
        max_turns = o.get("max_turns")
        if max_turns is not None and (isinstance(max_turns, bool) or not isinstance(max_turns, int) or max_turns < 1):
            raise AsmError("validation_error", f"max_turns must be a positive int or None, got {max_turns!r}")
        cwd = Path(o.get("cwd") or os.getcwd()).expanduser().resolve()
        if not cwd.is_dir():
            raise AsmError("validation_error", f"cwd {str(cwd)!r} is not a directory")
        callback = o.get("approval_callback")
        if callback is not None and not callable(callback):
            raise AsmError("validation_error", "approval_callback must be callable")
        known, offered = self._tools(o, mode)
        current = input_messages(active.run.input)
        history = transcript_messages(active.session)
        messages, extra_system = to_api_messages(history + current)
        if not messages:
            raise AsmError("validation_error", "Claude run input is empty: give a prompt or messages")
        system_prompt = o.get("system_prompt") if o.get("system_prompt") is not None else o.get("system")
        if system_prompt is None and isinstance(active.session.context, Mapping):
            sp = active.session.context.get("system_prompt")
            system_prompt = sp if isinstance(sp, str) and sp else None
        system = "\n\n".join([s for s in [system_prompt, *extra_system] if s])
        params = self._request_params(o, model)
        if system:
            params["system"] = system
        if offered:
            params["tools"] = [known[n].to_api() for n in offered]
        rs = _RunState(model=model, tools_offered=offered, cwd=cwd,
                       input_messages=[{"role": m["role"], "content": m["content"]} for m in current
                                       if m["role"] == "user"])
        client, owned = None, False
        try:
            try:
                client, owned = self._client(o, timeout)
            except AsmError:
                raise
            except Exception as exc:  # e.g. the SDK refusing its configuration
                raise self._map_error(exc, _Turn(active, rs, 0)) from exc
            return await self._loop(active, client, params, messages, rs, known, offered, mode, max_turns, o)
        except _Cancelled:
            raise await active.emit_cancelled() from None
        except AsmError as err:
            if err.code == "cancelled":
                raise
            if not active.terminal_emitted:
                await active.emit_failure(err)
            raise
        finally:
            if owned and client is not None:
                try:
                    await asyncio.wait_for(client.close(), 2.0)
                except BaseException:  # closing must never mask the run's outcome
                    pass

    async def _loop(self, active: ActiveRun, client: Any, params: dict, messages: list, rs: _RunState,
                    known: dict[str, Tool], offered: list[str], mode: PermissionMode | None, max_turns: int | None,
                    o: Mapping[str, Any]) -> Mapping[str, Any]:
        k = 0
        while True:
            k += 1
            if k > 1:
                await active.checkpoint()  # pause / resume take effect between turns
            if active.cancelled:
                raise _Cancelled()
            turn = await self._stream_turn(active, client, {**params, "messages": list(messages)}, rs, k)
            incr = normalize_usage(turn.usage)
            for key, v in incr.items():
                rs.usage[key] = rs.usage.get(key, 0) + v
            text = turn.text
            if text:
                await active.emit("message_received", {"content": text, "role": "assistant"})
            await active.emit("token_usage_updated", {
                **incr, "total_tokens": rs.usage["input_tokens"] + rs.usage["output_tokens"],
                "raw_usage": dict(turn.usage), "request_index": k, "message_id": turn.message_id})
            stop = turn.stop_reason
            await active.emit("turn_completed", {"turn": k, "stop_reason": stop, "token_usage": dict(incr)})
            blocks = turn.tool_blocks()
            incomplete = [b for b in blocks if b.input is _INCOMPLETE or not b.stopped]
            if incomplete:
                for b in incomplete:
                    msg = (f"Tool input for {b.name} ({b.id}) is incomplete: the response stopped "
                           f"({stop or 'unknown'}) before the JSON was finished; the tool was not run")
                    rs.tool_calls.append({"id": b.id, "name": b.name, "input": {}, "output": msg, "is_error": True})
                    await active.emit("tool_call_failed", {"tool_call_id": b.id, "tool_name": b.name,
                                                           "tool_input": {}, "tool_output": msg, "is_error": True,
                                                           "reason": "incomplete_input"})
                raise self.provider_failure("provider_error", {
                    "kind": "protocol_error", "message": f"Incomplete tool input at stop_reason {stop!r}",
                    "details": {"stop_reason": stop, "tool_call_ids": [b.id for b in incomplete],
                                "partial_content": text or None}})
            if stop == "tool_use" and blocks:
                if not known:
                    for b in blocks:  # nobody can run them: hand the request back to the caller
                        rs.tool_calls.append({"id": b.id, "name": b.name, "input": b.input})
                        await active.emit("tool_call_completed", {"tool_call_id": b.id, "tool_name": b.name,
                                                                  "tool_input": b.input, "tool_output": None,
                                                                  "executed": False})
                    return await self._finish(active, rs, turn, k)
                if max_turns is not None and k >= max_turns:
                    raise self.provider_failure("provider_error", {
                        "kind": "max_turns",
                        "message": f"Reached max_turns ({max_turns}) while the model still requested tools",
                        "details": {"max_turns": max_turns, "num_turns": k}})
                results = []
                for b in blocks:
                    if active.cancelled:
                        raise _Cancelled()
                    out = await self._run_tool(active, b, known, offered, mode, rs, o)
                    res: dict[str, Any] = {"type": "tool_result", "tool_use_id": b.id, "content": out.content}
                    if out.is_error:
                        res["is_error"] = True
                    results.append(res)
                messages.append({"role": "assistant", "content": turn.assistant_content()})
                messages.append({"role": "user", "content": results})
                continue
            if stop == "pause_turn":  # server-side tool loop paused: send the content back to resume
                if max_turns is not None and k >= max_turns:
                    raise self.provider_failure("provider_error", {
                        "kind": "max_turns", "message": f"Reached max_turns ({max_turns}) on a paused turn",
                        "details": {"max_turns": max_turns, "num_turns": k}})
                messages.append({"role": "assistant", "content": turn.assistant_content()})
                continue
            return await self._finish(active, rs, turn, k)

    async def _finish(self, active: ActiveRun, rs: _RunState, turn: _Turn, k: int) -> Mapping[str, Any]:
        stop = turn.stop_reason or "end_turn"
        await active.emit("run_completed", {"stop_reason": stop, "num_turns": k, "token_usage": dict(rs.usage),
                                            "model": rs.confirmed_model or rs.model})
        return {"output": {"content": turn.text, "stop_reason": stop, "tool_calls": rs.tool_calls, "num_turns": k,
                           "model": rs.confirmed_model or rs.model, "message_ids": list(rs.message_ids)},
                "token_usage": dict(rs.usage)}

    # -- streaming ---------------------------------------------------------------------------
    async def _stream_turn(self, active: ActiveRun, client: Any, params: dict, rs: _RunState, k: int) -> _Turn:
        turn = _Turn(active, rs, k)
        try:
            stream = await _interruptible(active, client.messages.create(stream=True, **params))
        except (_Cancelled, asyncio.CancelledError):
            raise
        except Exception as exc:
            raise self._map_error(exc, turn) from exc

        async def consume() -> None:
            # plain text deltas are read as the SDK's parsed dicts and folded without a coroutine;
            # every other event is the typed one the SDK builds (``_plain_items``)
            typed = _plain_items(stream)
            it = stream.__aiter__()
            nxt = it.__anext__
            on_type = _ON.get  # what ``turn.handle`` does, without its coroutine per raw event
            text_delta = turn.text_delta
            while not active.cancelled:
                turn.reading = True
                plain = False
                try:
                    ev = await nxt()
                    if typed is not None and ev.__class__ is dict:
                        d = ev.get("delta")
                        if ev.get("type") == "content_block_delta" and d.__class__ is dict \
                                and d.get("type") == "text_delta" and d.get("text").__class__ is str \
                                and ev.get("index").__class__ is int:
                            plain = True
                        else:  # anything else: the typed event, as the SDK builds it (its errors too)
                            ev = typed(ev)
                except StopAsyncIteration:
                    return
                except Exception as exc:  # from the SDK/transport (not from our callbacks)
                    raise _StreamError(exc) from exc
                finally:
                    turn.reading = False
                if plain:
                    res = text_delta(ev["index"], ev["delta"]["text"])
                    if res is not None:
                        await res
                    continue
                on = on_type(ev.type)
                if on is not None:
                    await on(turn, ev)

        consumer = asyncio.ensure_future(consume())
        waiter = asyncio.ensure_future(active.cancel_event.wait())
        try:
            await asyncio.wait((consumer, waiter), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # port deadline or task cancel: close the stream, no terminal event
            consumer.cancel()
            waiter.cancel()
            await _close_stream(stream)
            # ... but the request was billed for what message_start reported: say so, so the
            # run's usage and cost (finalized by the manager) count it
            await _partial_usage(active, rs, turn)
            raise
        if not consumer.done():
            # cancel(): interrupt a pending read now; a callback in progress finishes first
            if turn.reading:
                consumer.cancel()
            await asyncio.wait((consumer,))
        waiter.cancel()
        return await self._settle_turn(active, stream, consumer, rs, turn)

    async def _settle_turn(self, active: ActiveRun, stream: Any, consumer: asyncio.Future, rs: _RunState,
                           turn: _Turn) -> _Turn:
        """After the read ended: cancelled, failed (mapped error, partial usage reported), cut after a
        complete message (kept, with a warning event) or complete."""
        if active.cancelled:
            await _close_stream(stream)
            await _partial_usage(active, rs, turn)
            raise _Cancelled()
        exc = consumer.exception()
        complete = bool(turn.stop_reason and turn.message_id and all(b.stopped for b in turn.blocks.values()))
        if exc is not None and isinstance(exc, _StreamError) and complete and not turn.saw_stop:
            await _close_stream(stream)
            exc, cut_by = None, f"{type(exc.error).__name__}: {exc.error}"
        else:
            cut_by = None
        if exc is not None:
            await _close_stream(stream)
            if isinstance(exc, _StreamError):
                await _partial_usage(active, rs, turn)
                raise self._map_error(exc.error, turn) from exc.error
            raise exc
        if not turn.saw_stop and complete:
            # the message is complete (stop reason given, every block closed); only the final
            # message_stop was cut. The anthropic client's stream helper accepts this too.
            msg = (f"stream ended without message_stop after a complete message (stop_reason "
                   f"{turn.stop_reason}{'; ' + cut_by if cut_by else ''}); the message is kept")
            log.warning("claude: %s", msg)
            pe = self.provider_failure("provider_error", {"kind": "protocol_error", "message": msg}).provider_error
            await active.emit("error_occurred", {"error_code": "provider_error", "error_message": msg,
                                                 "recoverable": True, "severity": "warning", "provider_error": pe,
                                                 "details": {"message_id": turn.message_id,
                                                             "stop_reason": turn.stop_reason}})
            turn.saw_stop = True
        if not turn.saw_stop:
            await _partial_usage(active, rs, turn)
            raise self.provider_failure("provider_error", {
                "kind": "protocol_error", "message": "stream ended before message_stop",
                "details": {"partial_content": turn.text or None, "message_id": turn.message_id}})
        return turn

    # -- tools -------------------------------------------------------------------------------
    async def _run_tool(self, active: ActiveRun, b: _Block, known: dict[str, Tool], offered: list[str],
                        mode: PermissionMode | None, rs: _RunState, o: Mapping[str, Any]) -> ToolOutput:
        tin = b.input if isinstance(b.input, dict) else {}
        base = {"tool_call_id": b.id, "tool_name": b.name, "tool_input": tin}
        t = known.get(b.name or "")

        async def fail(msg: str, reason: str | None = None, details: dict | None = None) -> ToolOutput:
            data = {**base, "tool_output": msg, "is_error": True}
            if reason:
                data["reason"] = reason
            if details:
                data["details"] = details
            await active.emit("tool_call_failed", data)
            call = {"id": b.id, "name": b.name, "input": tin, "output": msg, "is_error": True}
            rs.tool_calls.append(call)
            return ToolOutput(msg, is_error=True)

        if t is None:
            return await fail(f"Unknown tool {b.name!r}. Available tools: {', '.join(offered) or 'none'}")
        if b.name not in offered:
            why = ("is not available in plan mode (read-only tools only)" if mode is PermissionMode.PLAN
                   else "is not allowed for this run")
            return await fail(f"Permission denied: {b.name} {why}.", "declined")
        if _decide(mode, t) == "ask":
            refusal = await self._approve(active, b, t, mode, base, o.get("approval_callback"))
            if refusal is not None:
                return await fail(refusal, "declined")
        ctx = ToolContext(cwd=rs.cwd, run_id=active.run.id, session_id=active.session.id, tool_call_id=b.id)
        out = await _interruptible(active, t.run(tin, ctx))
        if out.is_error:
            return await fail(out.content, None, out.details or None)
        data = {**base, "tool_output": out.content}
        if out.details:
            data["details"] = dict(out.details)
        await active.emit("tool_call_completed", data)
        rs.tool_calls.append({"id": b.id, "name": b.name, "input": tin, "output": out.content, "is_error": False})
        return out

    async def _approve(self, active: ActiveRun, b: _Block, t: Tool, mode: PermissionMode | None,
                       base: dict[str, Any], callback: Any) -> str | None:
        """Ask ``approval_callback`` for a tool the permission mode does not run on its own: None when
        granted, else the message reported to the model (no callback, declined, or the callback raised)."""
        approval = {**base, "access": t.access, "permission_mode": mode.value if mode else None}
        if callback is None:
            await active.emit("tool_approval_denied", {**approval, "reason": "no_approval_callback"})
            return (f"Permission denied: {b.name} needs approval in permission mode "
                    f"'{mode.value if mode else 'default'}' and no approval_callback was given. "
                    "Do not retry it; continue without it or explain what you would have done.")
        await active.emit("tool_approval_requested", approval)
        reason = "denied_by_callback"
        try:
            res = callback(b.name, dict(base["tool_input"]))
            if asyncio.iscoroutine(res) or asyncio.isfuture(res) or hasattr(res, "__await__"):
                res = await _interruptible(active, res)
            ok = bool(res)
        except (_Cancelled, asyncio.CancelledError):
            raise
        except Exception as exc:
            ok, reason = False, f"approval_callback raised {type(exc).__name__}: {exc}"
        if not ok:
            await active.emit("tool_approval_denied", {**approval, "reason": reason})
            return f"Permission denied: the user declined {b.name}."
        await active.emit("tool_approval_granted", approval)
        return None

    # -- errors ------------------------------------------------------------------------------
    def _map_error(self, exc: BaseException, turn: _Turn) -> AsmError:
        """SDK / transport exception → ``AsmError`` with a normalized ``provider_error`` (docs/providers.md, Claude)."""
        code, kind, message, details = _classify(exc)
        if turn.text:
            details["partial_content"] = turn.text
        if turn.message_id:
            details.setdefault("message_id", turn.message_id)
        details = {k: v for k, v in details.items() if v is not None}
        return self.provider_failure(code, {"kind": kind, "message": message, "details": details})


def _decide(mode: PermissionMode | None, t: Tool) -> str:
    if mode in (PermissionMode.FULL_AUTO, PermissionMode.DANGEROUSLY_SKIP_PERMISSIONS):
        return "run"
    if t.access == READ:
        return "run"
    if mode is PermissionMode.ACCEPT_EDITS and t.access == WRITE:
        return "run"
    return "ask"

