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

The SDK is imported lazily: ``ClaudeAdapter.name`` works without it, constructing an adapter
without it raises ``AsmError("dependency_not_available")``. Imports ``core``, ``config``, ``ports``
and ``providers`` only.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .. import config
from ..core.capabilities import Capability
from ..core.errors import AsmError
from ..core.permission import PermissionMode
from ..core.usage import TokenUsage, empty_usage
from ..ports import resolve_execute_timeout_base
from ._base import ActiveRun, BaseAdapter
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
DEFAULT_MAX_TOKENS = 4096
DEFAULT_MAX_RETRIES = 2
# sdk_opts keys allowed into messages.create(...) (docs/providers.md, Claude).
SDK_PASSTHROUGH = ("temperature", "top_p", "top_k", "stop_sequences", "thinking", "metadata", "service_tier",
                   "tool_choice", "extra_headers", "extra_body")
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


_OWN_PARAMS = frozenset({"model", "max_tokens", "messages", "stream", "system", "tools", "timeout", "self"})
_create_params_cache: frozenset | None = None


def _create_params() -> frozenset:
    """Keyword arguments ``AsyncMessages.create`` accepts in the installed SDK (empty if unknown)."""
    global _create_params_cache
    if _create_params_cache is None:
        try:
            import inspect

            from anthropic.resources.messages import AsyncMessages

            _create_params_cache = frozenset(inspect.signature(AsyncMessages.create).parameters)
        except Exception:
            _create_params_cache = frozenset()
    return _create_params_cache


def _require_anthropic(operation: str) -> None:
    if importlib.util.find_spec("anthropic") is None:
        raise AsmError("dependency_not_available", "Optional dependency anthropic is required for ClaudeAdapter "
                       "(pip install 'asm_nb[claude]')",
                       details={"dependency": "anthropic", "module": "asm_nb.providers.claude",
                                "operation": operation})


class _Cancelled(Exception):
    """Internal: the run was cancelled through ``cancel()``."""


class _StreamError(Exception):
    """Internal: wraps an exception raised while reading the SDK stream."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class _Block:
    type: str
    text: list = field(default_factory=list)  # text / thinking pieces
    json_parts: list = field(default_factory=list)
    id: str | None = None
    name: str | None = None
    signature: str = ""
    data: Any = None  # redacted_thinking payload / unknown block dump
    input: Any = None  # parsed tool input (None until parsed; _INCOMPLETE when unparsable)
    stopped: bool = False


_INCOMPLETE = object()


@dataclass
class _RunState:
    model: str
    tools_offered: list[str]
    cwd: Path
    input_messages: list[dict]
    started: bool = False
    usage: dict = field(default_factory=empty_usage)
    tool_calls: list = field(default_factory=list)
    confirmed_model: str | None = None
    message_ids: list = field(default_factory=list)


class _Turn:
    """One streamed request: folds raw events into blocks and emits the streaming events."""

    __slots__ = ("active", "rs", "blocks", "text_parts", "usage", "stop_reason", "message_id", "saw_stop",
                 "reading", "k")

    def __init__(self, active: ActiveRun, rs: _RunState, k: int) -> None:
        self.active = active
        self.rs = rs
        self.k = k
        self.blocks: dict[int, _Block] = {}
        self.text_parts: list[str] = []
        self.usage: dict[str, Any] = {}
        self.stop_reason: str | None = None
        self.message_id: str | None = None
        self.saw_stop = False
        self.reading = False

    async def handle(self, ev: Any) -> None:
        t = ev.type
        if t == "content_block_delta":
            d = ev.delta
            dt = d.type
            if dt == "text_delta":
                text = d.text
                if text:
                    self.text_parts.append(text)
                    b = self.blocks.get(ev.index)
                    if b is not None:
                        b.text.append(text)
                    await self.active.emit("message_streamed", {"content": text, "delta": text})
            elif dt == "input_json_delta":
                b = self.blocks.get(ev.index)
                if b is not None:
                    b.json_parts.append(d.partial_json or "")
            elif dt == "thinking_delta":
                text = d.thinking
                b = self.blocks.get(ev.index)
                if b is not None:
                    b.text.append(text)
                if text:
                    await self.active.emit("message_streamed", {"content": text, "delta": text, "kind": "reasoning"})
            elif dt == "signature_delta":
                b = self.blocks.get(ev.index)
                if b is not None:
                    b.signature += d.signature or ""
            # citations_delta and future delta types: ignored
        elif t == "content_block_start":
            cb = ev.content_block
            bt = cb.type
            b = _Block(type=bt)
            if bt == "text":
                if cb.text:
                    b.text.append(cb.text)
                    self.text_parts.append(cb.text)
                    await self.active.emit("message_streamed", {"content": cb.text, "delta": cb.text})
            elif bt == "tool_use":
                b.id, b.name = cb.id, cb.name
            elif bt == "thinking":
                if cb.thinking:
                    b.text.append(cb.thinking)
                b.signature = getattr(cb, "signature", "") or ""
            elif bt == "redacted_thinking":
                b.data = getattr(cb, "data", None)
            else:
                b.data = _dump(cb)
            self.blocks[ev.index] = b
        elif t == "content_block_stop":
            b = self.blocks.get(ev.index)
            if b is None or b.stopped:
                return
            b.stopped = True
            if b.type == "tool_use":
                raw = "".join(b.json_parts)
                try:
                    parsed = json.loads(raw) if raw.strip() else {}
                    b.input = parsed if isinstance(parsed, dict) else {"value": parsed}
                    shown = b.input
                except ValueError:
                    b.input = _INCOMPLETE
                    shown = {}
                await self.active.emit("tool_call_started", {"tool_call_id": b.id, "tool_name": b.name,
                                                             "tool_input": shown})
        elif t == "message_start":
            msg = ev.message
            self.message_id = msg.id
            self.usage = _dump(msg.usage)
            self.rs.message_ids.append(msg.id)
            if not self.rs.started:
                self.rs.started = True
                self.rs.confirmed_model = msg.model
                await self.active.emit("run_started", {
                    "model": msg.model, "model_source": "stream", "configured_model": self.rs.model, "backend": "api",
                    "message_id": msg.id, "cwd": str(self.rs.cwd), "tools": list(self.rs.tools_offered)})
                for m in self.rs.input_messages:
                    await self.active.emit("message_sent", m)
        elif t == "message_delta":
            self.stop_reason = getattr(ev.delta, "stop_reason", None) or self.stop_reason
            u = getattr(ev, "usage", None)
            if u is not None:
                self.usage.update(_dump(u))  # cumulative for this request: later fields win
        elif t == "message_stop":
            self.saw_stop = True

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    def assistant_content(self) -> list[dict]:
        """The assistant message to send back before tool results (thinking blocks included)."""
        out = []
        for i in sorted(self.blocks):
            b = self.blocks[i]
            if b.type == "text":
                txt = "".join(b.text)
                if txt:
                    out.append({"type": "text", "text": txt})
            elif b.type == "thinking":
                out.append({"type": "thinking", "thinking": "".join(b.text), "signature": b.signature})
            elif b.type == "redacted_thinking":
                out.append({"type": "redacted_thinking", "data": b.data})
            elif b.type == "tool_use":
                out.append({"type": "tool_use", "id": b.id, "name": b.name,
                            "input": b.input if isinstance(b.input, dict) else {}})
            elif isinstance(b.data, dict) and b.data.get("type"):
                out.append(b.data)  # server tool blocks etc.: echo as received
        return out

    def tool_blocks(self) -> list[_Block]:
        return [self.blocks[i] for i in sorted(self.blocks) if self.blocks[i].type == "tool_use"]


def _dump(obj: Any) -> dict[str, Any]:
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return {k: v for k, v in obj.items() if v is not None}
    dump = getattr(obj, "model_dump", None)
    if dump is not None:
        return dump(exclude_none=True)
    return {k: v for k, v in vars(obj).items() if v is not None}


def normalize_usage(raw: Mapping[str, Any]) -> dict[str, int]:
    """Anthropic usage → the four normalized counters (``input_tokens`` excludes cache, docs/providers.md, token
    usage)."""
    return TokenUsage.from_anthropic(raw).to_dict()


# ---------------------------------------------------------------------------------------------
# Input preparation (docs/providers.md, input preparation)
# ---------------------------------------------------------------------------------------------

_ROLES = ("system", "user", "assistant", "tool")


def _role(r: Any) -> str:
    r = getattr(r, "value", r)
    r = str(r).lower() if r is not None else ""
    return r if r in _ROLES else "assistant"


def _get(m: Any, key: str) -> Any:
    return m.get(key) if isinstance(m, Mapping) else getattr(m, key, None)


def _compact(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False, default=str, separators=(",", ":"))


def transcript_messages(session: Any) -> list[dict[str, Any]]:
    """Prior conversation from ``session.context["transcript"]`` as ``{role, content}`` dicts
    (roles ``system|user|assistant|tool``; tool calls/results rendered as text)."""
    ctx = getattr(session, "context", None)
    tr = ctx.get("transcript") if isinstance(ctx, Mapping) else None
    if tr is None:
        return []
    msgs = tr if isinstance(tr, list) else _get(tr, "messages")
    out = []
    for m in msgs or []:
        role = _role(_get(m, "role"))
        name = _get(m, "tool_name")
        tcid = _get(m, "tool_call_id") or "unknown"
        content = _get(m, "content")
        if isinstance(name, str) and role == "tool":
            output = _get(m, "tool_output")
            out.append({"role": "tool", "content": f"tool_result({tcid}): {name} "
                                                   f"{_compact(output if output is not None else '')}"})
        elif isinstance(name, str) and role == "assistant":
            tin = _get(m, "tool_input")
            out.append({"role": "assistant", "content": f"tool_call({tcid}): {name} "
                                                        f"{_compact(tin if tin is not None else {})}"})
        elif isinstance(content, str) and content:
            out.append({"role": role, "content": content})
    return out


def input_messages(run_input: Any) -> list[dict[str, Any]]:
    """The run input as ``{role, content}`` messages (``str``, ``{"prompt": s}`` or ``{"messages": [...]}``)."""
    if isinstance(run_input, str):
        return [{"role": "user", "content": run_input}]
    if isinstance(run_input, Mapping):
        msgs = run_input.get("messages")
        if isinstance(msgs, list):
            out = []
            for m in msgs:
                if isinstance(m, Mapping):
                    out.append({"role": _role(m.get("role", "user")), "content": m.get("content", "")})
                elif isinstance(m, str):
                    out.append({"role": "user", "content": m})
            return out
        p = run_input.get("prompt")
        if isinstance(p, str):
            return [{"role": "user", "content": p}]
    if run_input is None:
        return []
    return [{"role": "user", "content": str(run_input)}]


def to_api_messages(msgs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Normalized messages → Messages API ``messages`` + extra system text. The API only knows
    ``user``/``assistant``: ``system`` messages join the system prompt, ``tool`` ones are sent as
    user text; consecutive same-role messages are merged (the API wants alternation)."""
    api: list[dict[str, Any]] = []
    system: list[str] = []
    for m in msgs:
        role, content = m["role"], m.get("content")
        if role == "system":
            if isinstance(content, str) and content:
                system.append(content)
            continue
        role = "user" if role == "tool" else role
        if content is None or content == "" or content == []:
            continue
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
        if api and api[-1]["role"] == role:
            prev = api[-1]["content"]
            api[-1]["content"] = (prev if isinstance(prev, list) else [{"type": "text", "text": prev}]) + blocks
        else:
            api.append({"role": role, "content": content if isinstance(content, str) else list(content)})
    return api, system


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
            Capability("streaming", "sampling", True, "Real-time streaming of responses"),
            Capability("tool_use", "tool", True, "Tool/function calling capability"),
            Capability("vision", "resource", True, "Image understanding capability"),
            Capability("system_prompts", "prompt", True, "System prompt support"),
            Capability("interrupt", "sampling", True, "Ability to interrupt/cancel in-progress requests"),
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
        params: dict[str, Any] = {}
        sdk = dict(o.get("sdk_opts") or {})
        accepted = _create_params()
        for k, v in sdk.items():
            if k in SDK_PASSTHROUGH or (k in accepted and k not in _OWN_PARAMS):
                params[k] = v
            elif k not in self._warned_sdk_keys:
                self._warned_sdk_keys.add(k)
                log.warning("ClaudeAdapter ignores sdk_opts key %r (allowed: %s)", k, ", ".join(SDK_PASSTHROUGH))
        for k in SDK_PASSTHROUGH:  # top-level options of the same names win over sdk_opts
            if o.get(k) is not None:
                params[k] = o[k]
        params["model"] = model
        params["max_tokens"] = int(o.get("max_tokens") or DEFAULT_MAX_TOKENS)
        # SDK versions differ in which body fields are keyword arguments of create() (2.13 has no
        # `temperature`/`top_k`): send the others through extra_body so the request still carries them.
        extra = {k: params.pop(k) for k in list(params)
                 if accepted and k not in accepted and k not in ("extra_headers", "extra_body")}
        if extra:
            params["extra_body"] = {**extra, **dict(params.get("extra_body") or {})}
        return params

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
                rs.usage[key] += v
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
            it = stream.__aiter__()
            nxt = it.__anext__
            handle = turn.handle
            while not active.cancelled:
                turn.reading = True
                try:
                    ev = await nxt()
                except StopAsyncIteration:
                    return
                except Exception as exc:  # from the SDK/transport (not from our callbacks)
                    raise _StreamError(exc) from exc
                finally:
                    turn.reading = False
                await handle(ev)

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
        decision = _decide(mode, t)
        if decision == "ask":
            callback = o.get("approval_callback")
            approval = {**base, "access": t.access, "permission_mode": mode.value if mode else None}
            if callback is None:
                await active.emit("tool_approval_denied", {**approval, "reason": "no_approval_callback"})
                return await fail(
                    f"Permission denied: {b.name} needs approval in permission mode "
                    f"'{mode.value if mode else 'default'}' and no approval_callback was given. "
                    "Do not retry it; continue without it or explain what you would have done.", "declined")
            await active.emit("tool_approval_requested", approval)
            reason = "denied_by_callback"
            try:
                res = callback(b.name, dict(tin))
                if asyncio.iscoroutine(res) or asyncio.isfuture(res) or hasattr(res, "__await__"):
                    res = await _interruptible(active, res)
                ok = bool(res)
            except (_Cancelled, asyncio.CancelledError):
                raise
            except Exception as exc:
                ok, reason = False, f"approval_callback raised {type(exc).__name__}: {exc}"
            if not ok:
                await active.emit("tool_approval_denied", {**approval, "reason": reason})
                return await fail(f"Permission denied: the user declined {b.name}.", "declined")
            await active.emit("tool_approval_granted", approval)
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


async def _partial_usage(active: ActiveRun, rs: _RunState, turn: _Turn) -> None:
    """A request that broke off after ``message_start`` was still billed for its input: report what
    is known (``partial: True``) so usage summed from events stays honest."""
    if not turn.usage or active.terminal_emitted:
        return
    incr = normalize_usage(turn.usage)
    for key, v in incr.items():
        rs.usage[key] += v
    await active.emit("token_usage_updated", {
        **incr, "total_tokens": rs.usage["input_tokens"] + rs.usage["output_tokens"], "raw_usage": dict(turn.usage),
        "request_index": turn.k, "message_id": turn.message_id, "partial": True})


def _decide(mode: PermissionMode | None, t: Tool) -> str:
    if mode in (PermissionMode.FULL_AUTO, PermissionMode.DANGEROUSLY_SKIP_PERMISSIONS):
        return "run"
    if t.access == READ:
        return "run"
    if mode is PermissionMode.ACCEPT_EDITS and t.access == WRITE:
        return "run"
    return "ask"


async def _interruptible(active: ActiveRun, aw: Any) -> Any:
    """Await ``aw`` unless the run is cancelled first (then cancel it and raise ``_Cancelled``)."""
    task = asyncio.ensure_future(aw)
    if active.cancelled:
        task.cancel()
        raise _Cancelled()
    waiter = asyncio.ensure_future(active.cancel_event.wait())
    try:
        await asyncio.wait((task, waiter), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        waiter.cancel()
        raise
    if task.done():
        waiter.cancel()
        return task.result()
    task.cancel()
    await asyncio.wait((task,), timeout=5)
    raise _Cancelled()


async def _close_stream(stream: Any) -> None:
    try:
        await asyncio.wait_for(stream.close(), 2.0)
    except BaseException:  # best effort: the connection is being dropped anyway
        pass


def _names(exc: BaseException) -> set[str]:
    return {c.__name__ for c in type(exc).__mro__}


def _classify(exc: BaseException) -> tuple[str, str, str, dict[str, Any]]:
    """(code, kind, message, details) for an exception raised by the SDK or its transport."""
    import anthropic

    details: dict[str, Any] = {"exception": type(exc).__name__}
    if isinstance(exc, anthropic.APIStatusError):
        status = getattr(exc, "status_code", None)
        body = getattr(exc, "body", None)
        err = body.get("error") if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping) else {}
        etype = err.get("type")
        message = err.get("message") if isinstance(err.get("message"), str) and err.get("message") else str(exc)
        headers = getattr(getattr(exc, "response", None), "headers", None) or {}
        retry_after = headers.get("retry-after-ms") and f"{headers.get('retry-after-ms')}ms" or headers.get("retry-after")
        edetails = err.get("details") if isinstance(err.get("details"), Mapping) else {}
        details.update({"status_code": status, "request_id": getattr(exc, "request_id", None) or headers.get("request-id"),
                        "error_type": etype, "retry_after": retry_after})
        if status == 200 or status is None:  # in-band `event: error` after the stream started
            details["mid_stream"] = True
            code, kind = _by_error_type(etype)
        elif status == 429:
            if edetails.get("error_code") == "enforced_spend_limit_reached" or "SpendLimit" in type(exc).__name__:
                code, kind = "provider_quota_exceeded", "quota"
            else:
                code, kind = "provider_rate_limited", "rate_limit"
        elif status in (401, 403):
            code, kind = "provider_authentication_failed", "authentication"
        elif status == 402:
            code, kind = "provider_quota_exceeded", "quota"
        elif status in (408, 504):
            code, kind = "provider_timeout", "timeout"
        elif status == 529:
            code, kind = "provider_unavailable", "overloaded"
        elif status >= 500:
            code, kind = "provider_unavailable", "server_error"
        elif status in (400, 404, 413, 422):
            code, kind = "provider_error", "invalid_request"
        else:
            code, kind = _by_error_type(etype)
        return code, kind, message, details
    names = _names(exc)
    if isinstance(exc, anthropic.APITimeoutError) or "TimeoutException" in names or isinstance(exc, TimeoutError):
        return "provider_timeout", "timeout", f"Request to the Anthropic API timed out: {exc}".rstrip(": "), details
    if isinstance(exc, anthropic.APIConnectionError):
        return "provider_unavailable", "connection_error", f"Connection to the Anthropic API failed: {exc}", details
    if "RemoteProtocolError" in names or "ProtocolError" in names:
        return "provider_error", "protocol_error", f"Stream broken: {exc}", details
    if "TransportError" in names:
        return "provider_unavailable", "connection_error", f"Connection to the Anthropic API failed: {exc}", details
    if isinstance(exc, json.JSONDecodeError):
        return "provider_error", "parse_error", f"Invalid JSON in the event stream: {exc}", details
    if isinstance(exc, anthropic.AnthropicError):
        text = str(exc)
        if "auth" in text.lower() or "api_key" in text.lower() or "api key" in text.lower():
            return "provider_authentication_failed", "authentication", text, details
        return "provider_error", "unknown", text or type(exc).__name__, details
    if isinstance(exc, ValueError):  # e.g. the SDK's pydantic validation of an event
        return "provider_error", "parse_error", f"Could not read a stream event: {exc}", details
    return "provider_error", "unknown", f"{type(exc).__name__}: {exc}", details


def _by_error_type(etype: Any) -> tuple[str, str]:
    return {
        "overloaded_error": ("provider_unavailable", "overloaded"),
        "api_error": ("provider_unavailable", "server_error"),
        "rate_limit_error": ("provider_rate_limited", "rate_limit"),
        "timeout_error": ("provider_timeout", "timeout"),
        "authentication_error": ("provider_authentication_failed", "authentication"),
        "permission_error": ("provider_authentication_failed", "authentication"),
        "billing_error": ("provider_quota_exceeded", "quota"),
        "invalid_request_error": ("provider_error", "invalid_request"),
        "not_found_error": ("provider_error", "invalid_request"),
        "request_too_large": ("provider_error", "invalid_request"),
    }.get(etype if isinstance(etype, str) else "", ("provider_error", "unknown"))
