"""Claude request building: the run input and transcript as Messages API ``messages``, and the
keyword arguments of ``messages.create`` (docs/providers.md, Claude: input preparation).

Used by ``providers/claude.py`` (``ClaudeAdapter``); importable without the ``anthropic`` SDK
(``_create_params`` imports it lazily). Warnings go to the ``asm_nb.providers.claude`` logger.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Mapping

log = logging.getLogger("asm_nb.providers.claude")

DEFAULT_MAX_TOKENS = 4096
# sdk_opts keys allowed into messages.create(...) (docs/providers.md, Claude).
SDK_PASSTHROUGH = ("temperature", "top_p", "top_k", "stop_sequences", "thinking", "metadata", "service_tier",
                   "tool_choice", "extra_headers", "extra_body")

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


def request_params(o: Mapping[str, Any], model: str, warned: set[str]) -> dict[str, Any]:
    """``messages.create`` keyword arguments (model, max_tokens, sdk_opts and top-level passthrough
    options) for the merged options ``o``. An sdk_opts key not accepted is logged once per ``warned`` set."""
    params: dict[str, Any] = {}
    sdk = dict(o.get("sdk_opts") or {})
    accepted = _create_params()
    for k, v in sdk.items():
        if k in SDK_PASSTHROUGH or (k in accepted and k not in _OWN_PARAMS):
            params[k] = v
        elif k not in warned:
            warned.add(k)
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
