"""asm runs as OpenTelemetry GenAI spans (the ``gen_ai.*`` semantic conventions that trace viewers
such as Phoenix or Langfuse read), live or after the fact (``pip install 'asm_nb[otel]'``).

One run gives one trace:

- ``invoke_agent {agent}`` (kind CLIENT): the run. ``gen_ai.operation.name="invoke_agent"``,
  ``gen_ai.provider.name`` (and the older ``gen_ai.system``), ``gen_ai.agent.name``,
  ``gen_ai.conversation.id`` = the asm session id, ``gen_ai.request.model`` /
  ``gen_ai.response.model``, ``gen_ai.usage.input_tokens`` / ``output_tokens`` (and the
  cache counters), ``gen_ai.response.finish_reasons``, ``error.type`` on failure, plus
  ``asm.run_id``, ``asm.status``, ``asm.cost_usd``;
- ``chat {model}`` (kind CLIENT), a child per model turn (from the turn's first streamed
  output to ``turn_completed``) with that turn's usage and finish reason;
- ``execute_tool {tool}`` (kind INTERNAL), a child per tool call (``tool_call_started`` to
  ``tool_call_completed`` / ``_failed``) with ``gen_ai.tool.name``, ``gen_ai.tool.call.id``,
  ``gen_ai.tool.type``; approvals are span events on it.

Prompts, outputs and tool arguments stay out of spans unless ``capture_content=True``
(``gen_ai.input.messages`` on the run and first ``chat`` span, ``gen_ai.output.messages`` on each
``chat`` span, ``gen_ai.tool.call.arguments`` / ``gen_ai.tool.call.result``); whatever text goes
in (those, and error messages) passes through the project's redaction first, enabled even when the store's is
off. Live: ``asm_nb.telemetry.attach_otel(genai=True)``. Stored runs: ``export_runs`` (and
``asm otel export``).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, TypeGuard

from .core.usage import (CACHE_CREATION_TOKENS, CACHE_READ_TOKENS, INPUT_TOKENS, OUTPUT_TOKENS,
                         REASONING_OUTPUT_TOKENS)

__all__ = ["GenAISpans", "PROVIDER_NAMES", "provider_name", "redact_text", "export_events"]

#: asm provider -> ``gen_ai.provider.name`` (well-known values where one applies; else the asm name)
PROVIDER_NAMES = {"claude": "anthropic", "claude_code": "anthropic", "codex": "openai"}
#: providers whose output is not a model's (no ``chat`` spans): the shell runs a command
NOT_MODELS = frozenset({"shell"})
MAX_CONTENT_CHARS = 4096
_MODEL_EVENTS = frozenset({"message_streamed", "message_received", "token_usage_updated"})
_USAGE_ATTRS = ((INPUT_TOKENS, "gen_ai.usage.input_tokens"), (OUTPUT_TOKENS, "gen_ai.usage.output_tokens"),
                (CACHE_READ_TOKENS, "gen_ai.usage.cache_read.input_tokens"),
                (CACHE_CREATION_TOKENS, "gen_ai.usage.cache_creation.input_tokens"),
                (REASONING_OUTPUT_TOKENS, "gen_ai.usage.reasoning.output_tokens"))


def provider_name(provider: object) -> str:
    """``gen_ai.provider.name`` for an asm provider name."""
    p = str(getattr(provider, "value", provider) or "_OTHER")
    return PROVIDER_NAMES.get(p, p)


def _redaction() -> Any:
    from .persistence.redaction import RedactionConfig, resolve_config

    cfg = RedactionConfig.from_config()
    return cfg if cfg.enabled else resolve_config({"enabled": True})


def redact_text(text: object) -> str:
    """``text`` as a str with secrets redacted (the project's patterns; always on here)."""
    from .persistence.redaction import scan_text

    s = text if isinstance(text, str) else json.dumps(text, ensure_ascii=False, default=str)
    return scan_text(s, _redaction())[0]


def _content(value: object) -> str:
    from .persistence.redaction import redact_map

    if isinstance(value, Mapping):
        value = redact_map(dict(value), _redaction())
        s = json.dumps(value, ensure_ascii=False, default=str)
    else:
        s = redact_text(value)
    return s if len(s) <= MAX_CONTENT_CHARS else s[:MAX_CONTENT_CHARS] + "…"


def _content_json(messages: list) -> str:
    """GenAI ``input/output.messages`` JSON with every text redacted and cut to the limit."""
    from .persistence.redaction import redact_map

    red = redact_map({"m": messages}, _redaction())["m"]
    s = json.dumps(red, ensure_ascii=False, default=str)
    return s if len(s) <= 4 * MAX_CONTENT_CHARS else s[:4 * MAX_CONTENT_CHARS] + "…"


def _num(v: object) -> TypeGuard[int | float]:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _ns(ts: object) -> int | None:
    """Nanoseconds since the epoch of a datetime / ISO string / number of ns."""
    if _num(ts):
        return int(ts)
    if isinstance(ts, str):
        try:
            ts = datetime.fromisoformat(ts.replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(ts, datetime):
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=timezone.utc)
        return int(ts.timestamp() * 1_000_000) * 1000
    return None


def _get(obj: object, key: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _clean(attrs: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in attrs.items():
        v = getattr(v, "value", v)
        if v is None:
            continue
        if isinstance(v, (list, tuple)):
            out[k] = [str(x) for x in v if x is not None]
        elif isinstance(v, (str, bool, int, float)):
            out[k] = v
        else:
            out[k] = str(v)
    return out


def _usage_attrs(usage: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, attr in _USAGE_ATTRS:
        v: Any = (usage or {}).get(key)
        if _num(v):
            out[attr] = int(v)
    return out


@dataclass
class _Run:
    root: Any
    ctx: Any
    provider: str
    conversation: str | None = None
    model: str | None = None
    request_model: bool = False
    named: bool = False  # the span has its agent's name
    chat: Any = None
    chat_usage: dict = field(default_factory=dict)
    chat_model: str | None = None
    turns: int = 0
    tools: dict = field(default_factory=dict)
    finish_reasons: list = field(default_factory=list)
    inputs: list = field(default_factory=list)  # user messages (capture_content)
    chat_text: list = field(default_factory=list)  # the open turn's streamed text (capture_content)


class GenAISpans:
    """Builds the GenAI spans of runs from their asm events on ``tracer`` (an OpenTelemetry
    ``Tracer``). Feed ``start_run`` once, ``event`` per asm event (type, data, time), ``end_run``
    once; thread-safe across runs."""

    def __init__(self, tracer: Any, *, capture_content: bool = False) -> None:
        self.tracer = tracer
        self.capture_content = capture_content
        self._runs: dict[str, _Run] = {}
        self._lock = threading.Lock()

    # -- run ------------------------------------------------------------------------------------
    def start_run(self, run_id: str, *, session_id: str | None, provider: Any, agent_name: str | None = None,
                  model: str | None = None, start_ns: int | None = None,
                  attributes: Mapping[str, Any] | None = None) -> Any:
        """Open the ``invoke_agent`` span of ``run_id``; returns it."""
        from opentelemetry import trace

        prov = provider_name(provider)
        name = agent_name or str(getattr(provider, "value", provider) or "agent")
        named = bool(agent_name) or bool(provider)
        attrs = {"gen_ai.operation.name": "invoke_agent", "gen_ai.provider.name": prov, "gen_ai.system": prov,
                 "gen_ai.agent.name": name, "gen_ai.conversation.id": session_id, "gen_ai.request.model": model,
                 "asm.run_id": run_id, "asm.session_id": session_id,
                 "asm.provider": str(getattr(provider, "value", provider) or "")}
        attrs.update(attributes or {})
        root = self.tracer.start_span(f"invoke_agent {name}", kind=trace.SpanKind.CLIENT, attributes=_clean(attrs),
                                      start_time=start_ns)
        state = _Run(root=root, ctx=trace.set_span_in_context(root), provider=prov, conversation=session_id,
                     model=model, request_model=bool(model), named=named)
        with self._lock:
            old = self._runs.pop(run_id, None)
            self._runs[run_id] = state
        if old is not None:
            self._close(old, None)
            old.root.end()
        return root

    def has_run(self, run_id: str) -> bool:
        return run_id in self._runs

    def root_span(self, run_id: str) -> Any:
        st = self._runs.get(run_id)
        return st.root if st is not None else None

    def end_run(self, run_id: str, *, status: str, usage: Mapping[str, Any] | None = None,
                cost_usd: float | None = None, model: str | None = None, error_code: str | None = None,
                error_message: str | None = None, end_ns: int | None = None) -> None:
        """Close open children, set the run's totals and status, end the ``invoke_agent`` span."""
        from opentelemetry.trace import Status, StatusCode

        with self._lock:
            st = self._runs.pop(run_id, None)
        if st is None:
            return
        self._close(st, end_ns)
        model = model or st.model
        attrs: dict[str, Any] = {"asm.status": status, "gen_ai.response.model": model, **_usage_attrs(usage)}
        if model and not st.request_model:
            attrs["gen_ai.request.model"] = model
        if st.finish_reasons:
            attrs["gen_ai.response.finish_reasons"] = st.finish_reasons[-1:]
        if _num(cost_usd):
            attrs["asm.cost_usd"] = float(cost_usd)  # type: ignore[arg-type]
        if status == "failed":
            attrs["error.type"] = error_code or "_OTHER"
            if error_message:
                attrs["asm.error_message"] = redact_text(error_message)
            st.root.set_status(Status(StatusCode.ERROR, redact_text(error_message or error_code or "failed")))
        elif status == "cancelled":
            attrs["asm.error_code"] = error_code or "cancelled"
        else:
            st.root.set_status(Status(StatusCode.OK))
        st.root.set_attributes(_clean(attrs))
        st.root.end(end_time=end_ns)

    def abandon(self) -> None:
        """End every span still open (the exporter is detached)."""
        with self._lock:
            runs, self._runs = list(self._runs.values()), {}
        for st in runs:
            self._close(st, None)
            st.root.end()

    # -- events ---------------------------------------------------------------------------------
    def event(self, run_id: str, etype: str, data: Mapping[str, Any] | None, ts_ns: int | None = None, *,
              provider: Any = None) -> None:
        """One asm event of ``run_id`` (``provider``: the adapter's name, when the run start did
        not know it)."""
        st = self._runs.get(run_id)
        if st is None:
            return
        if provider and st.provider == "_OTHER":
            st.provider = provider_name(provider)
            st.root.set_attributes({"gen_ai.provider.name": st.provider, "gen_ai.system": st.provider,
                                    "asm.provider": str(getattr(provider, "value", provider))})
            if not st.named:
                st.root.update_name(f"invoke_agent {getattr(provider, 'value', provider)}")
        d = data if isinstance(data, Mapping) else {}
        if etype == "run_started":
            model = d.get("confirmed_model") or d.get("model")
            if model:
                st.model = str(model)
                st.root.set_attribute("gen_ai.response.model", str(model))
                st.root.set_attribute("gen_ai.request.model", str(d.get("configured_model") or model))
                st.request_model = True
            if d.get("agent_name"):
                st.root.set_attribute("gen_ai.agent.name", str(d["agent_name"]))
                st.root.update_name(f"invoke_agent {d['agent_name']}")
                st.named = True
            if d.get("provider_session_id"):
                st.root.set_attribute("asm.provider_session_id", str(d["provider_session_id"]))
        elif etype == "message_sent":
            if self.capture_content and isinstance(d.get("content"), str):
                st.inputs.append({"role": str(d.get("role") or "user"),
                                  "parts": [{"type": "text", "content": d["content"]}]})
                st.root.set_attribute("gen_ai.input.messages", _content_json(st.inputs))
        elif etype in _MODEL_EVENTS:
            self._chat(st, ts_ns)
            if self.capture_content and etype == "message_streamed" and d.get("kind") not in ("reasoning", "plan"):
                piece = d.get("delta") if d.get("delta") is not None else d.get("content")
                if isinstance(piece, str):
                    st.chat_text.append(piece)
            elif self.capture_content and etype == "message_received" and isinstance(d.get("content"), str):
                st.chat_text = [d["content"]]
            if etype == "token_usage_updated":
                for key, _ in _USAGE_ATTRS:
                    if _num(d.get(key)):
                        st.chat_usage[key] = st.chat_usage.get(key, 0) + int(d[key])
        elif etype == "turn_completed":
            self._chat(st, ts_ns)
            usage = st.chat_usage or (d.get("token_usage") if isinstance(d.get("token_usage"), Mapping) else {})
            self._end_chat(st, ts_ns, usage, d.get("stop_reason"))
        elif etype == "tool_call_started":
            self._tool_start(st, d, ts_ns)
        elif etype in ("tool_call_completed", "tool_call_failed"):
            self._tool_end(st, d, ts_ns, failed=etype == "tool_call_failed")
        elif etype.startswith("tool_approval_"):
            span = st.tools.get(d.get("tool_call_id"))
            (span or st.root).add_event(etype, _clean({"gen_ai.tool.call.id": d.get("tool_call_id"),
                                                       "gen_ai.tool.name": d.get("tool_name"),
                                                       "asm.reason": d.get("reason")}), timestamp=ts_ns)
        elif etype in ("run_completed", "run_failed", "run_cancelled"):
            if d.get("stop_reason"):
                st.finish_reasons.append(str(d["stop_reason"]))
            model = d.get("model")
            if model:
                st.model = str(model)
        elif etype in ("error_occurred", "policy_violation"):
            st.root.add_event(etype, _clean({"asm.error_code": d.get("error_code"), "asm.rule": d.get("rule")}),
                              timestamp=ts_ns)

    # -- children -------------------------------------------------------------------------------
    def _chat(self, st: _Run, ts_ns: int | None) -> None:
        from opentelemetry import trace

        if st.chat is not None or st.provider in NOT_MODELS:
            return
        model = st.model
        st.turns += 1
        st.chat_model = model
        st.chat = self.tracer.start_span(f"chat {model}" if model else "chat", context=st.ctx,
                                         kind=trace.SpanKind.CLIENT, start_time=ts_ns, attributes=_clean({
                                             "gen_ai.operation.name": "chat", "gen_ai.provider.name": st.provider,
                                             "gen_ai.system": st.provider, "gen_ai.request.model": model,
                                             "gen_ai.conversation.id": st.conversation,
                                             "asm.turn": st.turns}))

    def _end_chat(self, st: _Run, ts_ns: int | None, usage: Mapping[str, Any] | None, stop: Any) -> None:
        if st.chat is None:
            return
        attrs = {"gen_ai.response.model": st.model, **_usage_attrs(usage)}
        if stop:
            attrs["gen_ai.response.finish_reasons"] = [str(stop)]
            st.finish_reasons.append(str(stop))
        if self.capture_content:
            if st.turns == 1 and st.inputs:
                attrs["gen_ai.input.messages"] = _content_json(st.inputs)
            if st.chat_text:
                out = {"role": "assistant", "parts": [{"type": "text", "content": "".join(st.chat_text)}]}
                if stop:
                    out["finish_reason"] = str(stop)
                attrs["gen_ai.output.messages"] = _content_json([out])
        st.chat_text = []
        st.chat.set_attributes(_clean(attrs))
        st.chat.end(end_time=ts_ns)
        st.chat, st.chat_usage = None, {}

    def _tool_start(self, st: _Run, d: Mapping[str, Any], ts_ns: int | None) -> None:
        from opentelemetry import trace

        tcid, name = d.get("tool_call_id"), d.get("tool_name") or "tool"
        if tcid in st.tools:
            return
        attrs = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name, "gen_ai.tool.call.id": tcid,
                 "gen_ai.tool.type": "function", "gen_ai.provider.name": st.provider, "asm.tool.kind": d.get("kind")}
        if self.capture_content and d.get("tool_input") is not None:
            attrs["gen_ai.tool.call.arguments"] = _content(d.get("tool_input"))
        st.tools[tcid] = self.tracer.start_span(f"execute_tool {name}", context=st.ctx, kind=trace.SpanKind.INTERNAL,
                                                start_time=ts_ns, attributes=_clean(attrs))

    def _tool_end(self, st: _Run, d: Mapping[str, Any], ts_ns: int | None, *, failed: bool) -> None:
        from opentelemetry.trace import Status, StatusCode

        tcid = d.get("tool_call_id")
        if tcid not in st.tools:
            self._tool_start(st, d, ts_ns)
        span = st.tools.pop(tcid)
        attrs: dict[str, Any] = {}
        if self.capture_content and "tool_output" in d:
            attrs["gen_ai.tool.call.result"] = _content(d.get("tool_output"))
        if failed:
            reason = d.get("reason") or d.get("status") or "tool_error"
            attrs["error.type"] = str(reason)
            span.set_status(Status(StatusCode.ERROR, str(reason)))
        span.set_attributes(_clean(attrs))
        span.end(end_time=ts_ns)

    def _close(self, st: _Run, end_ns: int | None) -> None:
        from opentelemetry.trace import Status, StatusCode

        for span in list(st.tools.values()):
            span.set_attributes({"error.type": "unfinished"})
            span.set_status(Status(StatusCode.ERROR, "unfinished"))
            span.end(end_time=end_ns)
        st.tools.clear()
        if st.chat is not None:
            self._end_chat(st, end_ns, st.chat_usage, None)


def export_events(spans: GenAISpans, run: object, session: object, events: Iterable[object]) -> None:
    """Replay one stored run (a ``Run``, its ``Session`` and its events in order) as GenAI spans
    with the events' own times."""
    run_id = _get(run, "id")
    evs = list(events)
    meta = _get(run, "provider_metadata") or {}
    start = _ns(_get(run, "started_at")) or (_ns(_get(evs[0], "timestamp")) if evs else None)
    end = _ns(_get(run, "ended_at")) or (_ns(_get(evs[-1], "timestamp")) if evs else None)
    spans.start_run(run_id, session_id=_get(run, "session_id"), provider=_get(run, "provider"),
                    agent_name=_get(session, "agent_id"), model=meta.get("configured_model") or meta.get("model"),
                    start_ns=start)
    for ev in evs:
        et = _get(ev, "type")
        spans.event(run_id, str(getattr(et, "value", et)), _get(ev, "data") or {}, _ns(_get(ev, "timestamp")))
    status = str(getattr(_get(run, "status"), "value", _get(run, "status")) or "completed")
    err = _get(run, "error") or {}
    spans.end_run(run_id, status=status if status in ("completed", "failed", "cancelled") else "completed",
                  usage=_get(run, "token_usage") or {}, cost_usd=_get(run, "cost_usd"), model=meta.get("model"),
                  error_code=err.get("code") or err.get("error_code"),
                  error_message=err.get("message") or err.get("error_message"), end_ns=end)
