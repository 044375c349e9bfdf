"""Mappers for the Claude-Code-style ``stream-json`` line protocol: ``ClaudeCodeMapper``
(``claude -p --output-format stream-json``, docs/providers.md, Claude Code CLI) and ``AmpMapper``
(``amp --execute --stream-json``, docs/providers.md, Amp), which speaks a compatible subset.

Pure: no I/O. Both share ``StreamJsonMapper``: ``system/init`` -> ``run_started``; ``assistant``
content blocks -> text / reasoning / ``tool_call_started``; ``user`` ``tool_result`` blocks ->
``tool_call_completed`` / ``tool_call_failed``; ``result`` -> usage, ``turn_completed`` and, once the
process has exited, the terminal outcome.
"""

from __future__ import annotations

from typing import Any, TypeGuard

from ._jsonl import as_dict, as_int, as_list, as_str
from ..core.usage import TokenUsage, token_count
from ._mapper import Emit, MapperBase, Outcome, ProcessExit, jsonable


class StreamJsonMapper(MapperBase):
    """Shared state of the stream-json mappers."""

    what = "CLI"  # process name used in failure messages

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.session_id: str | None = None
        self.result: dict | None = None
        self.turns = 0
        self.last_text: str | None = None  # last main-loop assistant text (output fallback)

    def on_object(self, obj: dict) -> list[Emit]:
        t = obj.get("type")
        if not self.session_id and as_str(obj.get("session_id")):
            self.session_id = obj["session_id"]
        if t == "system":
            if obj.get("subtype") == "init":
                return self._init(obj)
            return self._system(obj)
        if t == "assistant":
            return self._assistant(obj)
        if t == "user":
            return self._user(obj)
        if t == "result":
            return self._result(obj)
        if t == "stream_event":
            return self._stream_event(obj)
        return []  # rate_limit_event and future types: ignored

    # -- hooks ------------------------------------------------------------------------------------
    def _init(self, obj: dict) -> list[Emit]:
        raise NotImplementedError

    def _system(self, obj: dict) -> list[Emit]:
        return []

    def _stream_event(self, obj: dict) -> list[Emit]:
        return []

    def _assistant(self, obj: dict) -> list[Emit]:
        raise NotImplementedError

    def _result(self, obj: dict) -> list[Emit]:
        raise NotImplementedError

    # -- shared pieces ----------------------------------------------------------------------------
    def _blocks(self, obj: dict, *, skip_text: bool, subagent: bool, streamed: bool) -> list[Emit]:
        """Events for one assistant line's content blocks, in block order.

        Consecutive text blocks end in one ``message_received`` placed before the next non-text
        block, so a transcript never sees the same text twice."""
        out: list[Emit] = []
        pending: list[str] = []

        def flush() -> None:
            if pending:
                text = "".join(pending)
                pending.clear()
                self.last_text = text
                out.append(("message_received", {"content": text, "role": "assistant"}))

        for block in as_list(as_dict(obj.get("message")).get("content")):
            b = as_dict(block)
            bt = b.get("type")
            if bt == "text":
                text = b.get("text")
                if skip_text or subagent or not isinstance(text, str) or not text:
                    continue
                if not streamed:
                    out.append(("message_streamed", {"delta": text, "content": text, "kind": "text"}))
                pending.append(text)
            elif bt == "thinking":
                flush()
                text = b.get("thinking")
                if skip_text or subagent or streamed or not isinstance(text, str) or not text:
                    continue
                out.append(("message_streamed", {"delta": text, "content": text, "kind": "reasoning"}))
            elif bt == "tool_use":
                flush()
                tid = as_str(b.get("id")) or "unknown"
                name = as_str(b.get("name")) or "unknown"
                tin = jsonable(b.get("input")) if isinstance(b.get("input"), dict) else {}
                if self.tool_entry(tid) is not None:
                    continue  # same block repeated: already announced
                self.remember_tool(tid, name, tin)
                data = {"tool_call_id": tid, "tool_name": name, "tool_input": tin}
                parent = as_str(obj.get("parent_tool_use_id"))
                if parent:
                    data["parent_tool_use_id"] = parent
                out.append(("tool_call_started", data))
        flush()
        return out

    def _user(self, obj: dict) -> list[Emit]:
        out: list[Emit] = []
        content = as_dict(obj.get("message")).get("content")
        for block in as_list(content):
            b = as_dict(block)
            if b.get("type") != "tool_result":
                continue  # echoed prompt text and anything else: ignored
            tid = as_str(b.get("tool_use_id")) or "unknown"
            entry = self.tool_entry(tid)
            if entry is None:
                entry = self.remember_tool(tid, "unknown", {})
            is_error = b.get("is_error") is True
            tool_output = jsonable(b.get("content"))
            self._record_result(entry, tool_output, is_error)
            data: dict = {"tool_call_id": tid, "tool_name": entry["name"], "tool_input": entry["input"],
                          "tool_output": tool_output}
            if obj.get("tool_use_result") is not None:
                data["details"] = {"tool_use_result": jsonable(obj.get("tool_use_result"))}
            if is_error:
                data["is_error"] = True
                out.append(("tool_call_failed", data))
            else:
                out.append(("tool_call_completed", data))
        return out

    def _record_result(self, entry: dict, tool_output: Any, is_error: bool) -> None:
        pass

    def _denials(self, obj: dict) -> list[Emit]:
        """``result.permission_denials`` (``[{tool_name, tool_use_id, tool_input}]``): each denied
        call becomes a failed tool call with reason ``permission_denied`` (a call the stream already
        showed, with its error result, is marked denied by a second ``tool_call_failed``)."""
        out: list[Emit] = []
        for d in as_list(obj.get("permission_denials")):
            d = as_dict(d)
            name = as_str(d.get("tool_name")) or "unknown"
            tid = as_str(d.get("tool_use_id")) or f"denied_{len(out)}"
            tin = jsonable(d.get("tool_input")) if isinstance(d.get("tool_input"), dict) else {}
            entry = self.tool_entry(tid)
            if entry is None:
                entry = self.remember_tool(tid, name, tin)
                out.append(("tool_call_started", {"tool_call_id": tid, "tool_name": name, "tool_input": tin}))
            message = (f"Permission denied: {name} was not allowed to run (grant it with --allowedTools / "
                       f"tools=[...] or a permission_mode)")
            prior = entry.get("output")
            entry.update(status="failed", reason="permission_denied", is_error=True)
            if prior is None:
                entry["output"] = message
            out.append(("tool_call_failed", {"tool_call_id": tid, "tool_name": entry["name"],
                                             "tool_input": entry["input"] if entry["input"] is not None else tin,
                                             "tool_output": prior if prior is not None else message,
                                             "is_error": True, "reason": "permission_denied",
                                             "error_message": message}))
        return out

    def _terminal_failure_attrs(self, exit: ProcessExit) -> dict:
        return {"exit_code": exit.exit_code, "stderr": exit.stderr or None,
                "truncated": exit.stderr_truncated or None}


class ClaudeCodeMapper(StreamJsonMapper):
    """``claude -p --output-format stream-json --verbose`` (docs/providers.md, Claude Code CLI). ProviderError
    provider is ``"claude"``."""

    provider = "claude"
    what = "claude"

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._streamed_ids: set[str] = set()
        self._current_msg: dict[Any, str | None] = {}  # parent_tool_use_id -> message id being streamed
        self._streamed_unknown = False

    def _init(self, obj: dict) -> list[Emit]:
        return self.start_events({
            "session_id": self.session_id, "provider_session_id": self.session_id,
            "model": as_str(obj.get("model")) or self.configured_model, "configured_model": self.configured_model,
            "model_source": "stream" if as_str(obj.get("model")) else self.model_source,
            "tools": jsonable(obj.get("tools")) if isinstance(obj.get("tools"), list) else None,
            "cwd": as_str(obj.get("cwd")),
            "mcp_servers": jsonable(obj.get("mcp_servers")) if isinstance(obj.get("mcp_servers"), list) else None,
            "permission_mode": as_str(obj.get("permissionMode")),
            "cli_version": as_str(obj.get("claude_code_version")), "backend": "claude_code"})

    def _system(self, obj: dict) -> list[Emit]:
        if obj.get("subtype") != "api_retry":
            return []  # task_started, task_notification, compact_boundary, hooks...: informational
        status = obj.get("error_status")
        err = obj.get("error")
        msg = (f"Claude API request failed ({status if status is not None else 'no status'}"
               f"{': ' + err if isinstance(err, str) and err else ''}); retrying, attempt "
               f"{as_int(obj.get('attempt'))}/{as_int(obj.get('max_retries'))} in {as_int(obj.get('retry_delay_ms'))} ms")
        kind = {529: "overloaded", 429: "rate_limit", 401: "authentication"}.get(status, "server_error") \
            if isinstance(status, int) else "connection_error"
        pe = self.failure("provider_unavailable", {"kind": kind, "message": msg}).provider_error
        details = {k: jsonable(obj.get(k)) for k in ("attempt", "max_retries", "retry_delay_ms", "error_status", "error")
                   if obj.get(k) is not None}
        return [("error_occurred", {"error_code": "provider_unavailable", "error_message": msg, "recoverable": True,
                                    "provider_error": pe, "details": details})]

    def _stream_event(self, obj: dict) -> list[Emit]:
        ev = as_dict(obj.get("event"))
        parent = obj.get("parent_tool_use_id") if isinstance(obj.get("parent_tool_use_id"), str) else None
        et = ev.get("type")
        if et == "message_start":
            self._current_msg[parent] = as_str(as_dict(ev.get("message")).get("id"))
            return []
        if et != "content_block_delta" or parent:
            return []
        delta = as_dict(ev.get("delta"))
        dt = delta.get("type")
        if dt == "text_delta":
            text, kind = delta.get("text"), "text"
        elif dt == "thinking_delta":
            text, kind = delta.get("thinking"), "reasoning"
        else:
            return []
        if not isinstance(text, str) or not text:
            return []
        mid = self._current_msg.get(parent)
        if mid:
            self._streamed_ids.add(mid)
        else:
            self._streamed_unknown = True
        data = {"delta": text, "content": text, "kind": kind}
        if mid:
            data["message_id"] = mid
        return [("message_streamed", data)]

    def _assistant(self, obj: dict) -> list[Emit]:
        msg = as_dict(obj.get("message"))
        mid = as_str(msg.get("id"))
        synthetic = msg.get("model") == "<synthetic>" or obj.get("error") is not None
        subagent = isinstance(obj.get("parent_tool_use_id"), str) and bool(obj.get("parent_tool_use_id"))
        streamed = bool(mid and mid in self._streamed_ids)
        if not streamed and self._streamed_unknown and not subagent:
            streamed, self._streamed_unknown = True, False
        return self._blocks(obj, skip_text=synthetic, subagent=subagent, streamed=streamed)

    def _record_result(self, entry: dict, tool_output: Any, is_error: bool) -> None:
        entry["output"] = tool_output
        if is_error:
            entry["is_error"] = True

    def _result(self, obj: dict) -> list[Emit]:
        if self.result is not None:
            return []
        self.result = obj
        self.turns += 1
        out: list[Emit] = self._denials(obj)
        per_model = model_usage(obj.get("modelUsage"))
        if isinstance(obj.get("usage"), dict) or per_model:
            extra: dict = {"total_cost_usd": obj.get("total_cost_usd")} if _is_num(obj.get("total_cost_usd")) else {}
            main = TokenUsage.from_anthropic(obj.get("usage"))
            if per_model:
                # result.usage covers the main loop only; modelUsage has every model (subagents,
                # helper calls): the run's tokens are its total
                total = sum((TokenUsage.of(u) for u in per_model.values()), TokenUsage())
                extra["model_usage"] = per_model
                extra["main_usage"] = main.to_dict()
                out.append(self.usage_event(total, obj.get("usage"), **extra))
            else:
                out.append(self.usage_event(main, obj["usage"], **extra))
        if self._succeeded(obj):
            out.append(("turn_completed", {"turn": self.turns, "stop_reason": self._stop_reason(obj),
                                           "token_usage": self.usage_total.to_dict()}))
        return out

    @staticmethod
    def _succeeded(obj: dict) -> bool:
        return obj.get("is_error") is False and obj.get("subtype") == "success"

    @staticmethod
    def _stop_reason(obj: dict) -> str:
        return as_str(obj.get("stop_reason")) or "end_turn"

    def output(self) -> dict:
        r = self.result or {}
        content = r.get("result") if isinstance(r.get("result"), str) else (self.last_text or "")
        out: dict = {"content": content, "stop_reason": self._stop_reason(r),
                     "tool_calls": [dict(t) for t in self.tool_calls]}
        cost = r.get("total_cost_usd")
        if _is_num(cost) and cost > 0:
            out["total_cost_usd"] = cost
        if isinstance(r.get("num_turns"), int):
            out["num_turns"] = r["num_turns"]
        return out

    def finish(self, exit: ProcessExit) -> Outcome:
        output, usage = self.output(), self.usage_total.to_dict()
        r = self.result
        if r is not None and self._succeeded(r) and exit.returncode == 0:
            data: dict = {"stop_reason": self._stop_reason(r), "token_usage": usage}
            for k in ("num_turns", "duration_ms"):
                if isinstance(r.get(k), int):
                    data[k] = r[k]
            if _is_num(r.get("total_cost_usd")) and r["total_cost_usd"] > 0:
                data["total_cost_usd"] = r["total_cost_usd"]
            if self.session_id:
                data["session_id"] = self.session_id
            return Outcome("completed", [("run_completed", data)], output=output, token_usage=usage)
        if self.interrupted(exit) and not (r is not None and not self._succeeded(r) and not exit.we_signalled):
            return Outcome("cancelled", output=output, token_usage=usage)
        if r is None or self._succeeded(r):
            return Outcome("failed", error=self.process_failure(exit, what="claude"), output=output,
                           token_usage=usage)
        return Outcome("failed", error=self._result_failure(r, exit), output=output, token_usage=usage)

    def _result_failure(self, r: dict, exit: ProcessExit):
        subtype = as_str(r.get("subtype")) or "error"
        errors = [e for e in as_list(r.get("errors")) if isinstance(e, str) and e]
        text = as_str(r.get("result")) or (errors[0] if errors else None) or as_str(r.get("error"))
        code, kind = "provider_error", "unknown"
        if subtype == "error_max_turns":
            kind = "max_turns"
            text = text or "Claude Code reached the maximum number of turns"
        elif r.get("api_error_status") == 529:
            code, kind = "provider_unavailable", "overloaded"
        message = text or f"Claude Code run failed ({subtype})"
        details: dict[str, Any] = {"subtype": subtype}
        for k in ("api_error_status", "terminal_reason", "num_turns", "duration_ms", "total_cost_usd"):
            if r.get(k) is not None:
                details[k] = jsonable(r[k])
        if as_list(r.get("permission_denials")):
            details["permission_denials"] = jsonable(r["permission_denials"])
        if errors:
            details["errors"] = errors
        return self.failure(code, {"kind": kind, "message": message, "details": details,
                                   **self._terminal_failure_attrs(exit)})


class AmpMapper(StreamJsonMapper):
    """``amp --execute --stream-json`` (docs/providers.md, Amp)."""

    provider = "amp"
    what = "amp"

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.stream_model: str | None = None
        self._message_usage: dict[str, TokenUsage] = {}  # message key -> normalized usage (distinct messages)
        self._message_raw: dict[str, Any] = {}
        self._anon = 0

    def _init(self, obj: dict) -> list[Emit]:
        return self.start_events({
            "session_id": self.session_id, "provider_session_id": self.session_id,
            "tools": jsonable(obj.get("tools")) if isinstance(obj.get("tools"), list) else None,
            "cwd": as_str(obj.get("cwd")),
            "mcp_servers": jsonable(obj.get("mcp_servers")) if isinstance(obj.get("mcp_servers"), list) else None,
            "model": self.configured_model, "model_source": self.model_source})

    def terminal_model(self) -> dict:
        if self.configured_model is None and self.stream_model:
            return {"model": self.stream_model, "model_source": "stream"}
        return {}

    def _assistant(self, obj: dict) -> list[Emit]:
        msg = as_dict(obj.get("message"))
        subagent = isinstance(obj.get("parent_tool_use_id"), str) and bool(obj.get("parent_tool_use_id"))
        m = as_str(msg.get("model"))
        if m and m != "<synthetic>" and not subagent and self.stream_model is None:
            self.stream_model = m  # Claude-compatible messages may name the model (the sample does not)
        if isinstance(msg.get("usage"), dict):
            mid = as_str(msg.get("id"))
            if not mid:
                self._anon += 1
                mid = f"__line_{self._anon}"
            self._message_usage[mid] = TokenUsage.from_inclusive_anthropic(msg["usage"])
            self._message_raw[mid] = msg["usage"]
        return self._blocks(obj, skip_text=False, subagent=subagent, streamed=False)

    def _result(self, obj: dict) -> list[Emit]:
        if self.result is not None:
            return []
        self.result = obj
        self.turns += 1
        out: list[Emit] = self._denials(obj)
        if isinstance(obj.get("usage"), dict):
            out.append(self.usage_event(TokenUsage.from_inclusive_anthropic(obj["usage"]), obj["usage"], source="result"))
        elif self._message_usage:
            total = sum(self._message_usage.values(), TokenUsage())
            out.append(self.usage_event(total, list(self._message_raw.values()), source="assistant_messages"))
        if self._succeeded(obj):
            out.append(("turn_completed", {"turn": self.turns, "stop_reason": "end_turn",
                                           "token_usage": self.usage_total.to_dict()}))
        return out

    @staticmethod
    def _succeeded(obj: dict) -> bool:
        return obj.get("is_error") is not True and obj.get("subtype") == "success"

    def output(self) -> dict:
        r = self.result or {}
        content = r.get("result") if isinstance(r.get("result"), str) else (self.last_text or "")
        return {"content": content,
                "tool_calls": [{"id": t["id"], "name": t["name"], "input": t["input"]} for t in self.tool_calls]}

    def finish(self, exit: ProcessExit) -> Outcome:
        output, usage = self.output(), self.usage_total.to_dict()
        r = self.result
        if r is not None and self._succeeded(r) and exit.returncode == 0:
            data: dict = {"stop_reason": "end_turn", "token_usage": usage}
            for k in ("num_turns", "duration_ms"):
                if isinstance(r.get(k), int):
                    data[k] = r[k]
            if self.session_id:
                data["session_id"] = self.session_id
            return Outcome("completed", [("run_completed", data)], output=output, token_usage=usage)
        if self.interrupted(exit) and not (r is not None and not self._succeeded(r) and not exit.we_signalled):
            return Outcome("cancelled", output=output, token_usage=usage)
        if r is None or self._succeeded(r):
            return Outcome("failed", error=self.process_failure(exit, what="amp"), output=output, token_usage=usage)
        subtype = as_str(r.get("subtype")) or "error"
        kind = "max_turns" if subtype == "error_max_turns" else "unknown"
        message = as_str(r.get("error")) or as_str(r.get("result"))
        details: dict = {"subtype": subtype}
        for k in ("num_turns", "duration_ms"):
            if r.get(k) is not None:
                details[k] = jsonable(r[k])
        err = self.failure("provider_error", {"kind": kind, "message": message, "details": details,
                                              **self._terminal_failure_attrs(exit)})
        denials = r.get("permission_denials")
        extra = {"permission_denials": jsonable(denials)} if isinstance(denials, list) else {}
        return Outcome("failed", error=err, error_extra=extra, output=output, token_usage=usage)


def model_usage(raw: Any) -> dict[str, dict]:
    """Claude Code ``result.modelUsage`` (``{model: {inputTokens, outputTokens,
    cacheReadInputTokens, cacheCreationInputTokens, costUSD, …}}``) as ``{model: {input_tokens,
    output_tokens, cache_read_tokens, cache_creation_tokens, cost_usd?}}``; {} when absent."""
    out: dict[str, dict] = {}
    if not isinstance(raw, dict):
        return out
    for model, u in raw.items():
        if not isinstance(model, str) or not isinstance(u, dict):
            continue
        row: dict[str, Any] = TokenUsage(token_count(u.get("inputTokens")), token_count(u.get("outputTokens")),
                                         token_count(u.get("cacheReadInputTokens")),
                                         token_count(u.get("cacheCreationInputTokens"))).to_dict()
        if _is_num(u.get("costUSD")):
            row["cost_usd"] = u["costUSD"]
        out[model] = row
    return out


def _is_num(x: Any) -> TypeGuard[int | float]:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x


__all__ = ["StreamJsonMapper", "ClaudeCodeMapper", "AmpMapper", "model_usage"]
