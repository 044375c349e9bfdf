"""``CodexMapper``: ``codex exec --json`` lines -> normalized events (docs/providers.md, Codex).

Pure: no I/O. Accepts the CLI's own event types and the SDK-level extensions the reference mocks
use (``item.agent_message.delta``, ``thread.token_usage.updated``, ``tool_call.requested``,
``tool_call.completed``, ``turn.aborted``).
"""

from __future__ import annotations

from typing import Any

from ._jsonl import as_dict, as_list, as_str
from ..core.usage import TokenUsage
from ._mapper import Emit, MapperBase, Outcome, ProcessExit, jsonable, output_dict, snake

#: item types that are never tool calls (docs/providers.md, Codex)
NON_TOOL_TYPES = frozenset({"agent_message", "reasoning", "user_message", "image_view", "review_mode", "todo_list",
                            "error", "ghost_snapshot", "compaction", "plan", ""})
_GENERIC_SKIP = frozenset({"id", "item_id", "type", "output", "result", "error", "status"})
_ANON = "__anonymous__"


def infer_error_kind(message: Any) -> str:
    """Kind from a Codex error message (docs/providers.md, Codex; first match wins)."""
    text = message.lower() if isinstance(message, str) else ""
    if "not found" in text and "codex" in text:
        return "cli_not_found"
    if "exit status" in text or "exited" in text:
        return "transport_exit"
    if "timeout" in text or "timed out" in text:
        return "timeout"
    if "parse" in text:
        return "parse_error"
    if "protocol" in text:
        return "protocol_error"
    return "unknown"


def tool_spec(item: dict) -> tuple[str, dict] | None:
    """``(tool_name, tool_input)`` for a tool item, ``None`` for non-tool items (docs/providers.md, Codex)."""
    itype = snake(item.get("type"))
    if itype in NON_TOOL_TYPES:
        return None
    if itype == "command_execution":
        tin: dict = {"command": jsonable(item.get("command"))}
        if item.get("cwd") is not None:
            tin["cwd"] = jsonable(item.get("cwd"))
        return "bash", tin
    if itype == "file_change":
        return "apply_patch", {"changes": jsonable(as_list(item.get("changes")))}
    if itype == "mcp_tool_call":
        server, tool = as_str(item.get("server")), as_str(item.get("tool"))
        name = f"{server}:{tool}" if server and tool else (tool or "mcp_tool")
        args = item.get("arguments")
        return name, jsonable(args) if isinstance(args, dict) else {}
    return itype, {k: jsonable(v) for k, v in item.items() if k not in _GENERIC_SKIP}


def tool_result(item: dict) -> tuple[bool, dict, str | None]:
    """``(failed, tool_output, reason)`` for a completed tool item."""
    itype = snake(item.get("type"))
    status = snake(item.get("status"))
    if itype == "command_execution":
        out: dict = {"output": item.get("aggregated_output") if isinstance(item.get("aggregated_output"), str) else ""}
        for k in ("exit_code", "status", "duration_ms"):
            if item.get(k) is not None:
                out[k] = jsonable(item.get(k))
        if status == "declined":
            return True, out, "declined"
        code = item.get("exit_code")
        nonzero = isinstance(code, int) and not isinstance(code, bool) and code != 0
        return status == "failed" or nonzero, out, None
    if itype == "file_change":
        out = {"status": jsonable(item.get("status")), "changes": jsonable(as_list(item.get("changes")))}
        return status in ("failed", "declined"), out, "declined" if status == "declined" else None
    if itype == "mcp_tool_call":
        err = item.get("error")
        if err is not None and (status == "failed" or item.get("result") is None):
            return True, output_dict(err), None
        return status == "failed", output_dict(item.get("result")), None
    out = {k: jsonable(item[k]) for k in ("output", "result", "error", "status") if item.get(k) is not None}
    return status in ("failed", "declined"), out, "declined" if status == "declined" else None


def _delta_text(item: dict) -> str:
    text = item.get("text")
    if isinstance(text, str):
        return text
    content = item.get("content")
    if isinstance(content, str):
        return content
    parts = [as_str(as_dict(c).get("text")) or "" for c in as_list(content)]
    return "".join(parts)


class CodexMapper(MapperBase):
    """Per-run state for one ``codex exec --json`` process."""

    provider = "codex"

    def __init__(self, *, resumed: bool = False, **kw: Any) -> None:
        super().__init__(**kw)
        self.resumed = resumed
        self.thread_id: str | None = None
        self.turn = 0
        self.turn_usage_reported = TokenUsage()
        self.turn_completed = False
        self.stop_reason = "end_turn"
        self.failed_error = None
        self.aborted = False
        self.messages: dict[str, str] = {}
        self.last_message_id: str | None = None
        self._received: set[str] = set()
        self.todo_list: list | None = None
        self._errors_said: set[str] = set()
        self._tool_inputs: dict[str, tuple[str, dict]] = {}

    # -- dispatch ---------------------------------------------------------------------------------
    def on_object(self, obj: dict) -> list[Emit]:
        t = obj.get("type")
        if t == "thread.started":
            return self._thread_started(obj)
        if t == "turn.started":
            self.turn += 1
            self.turn_usage_reported = TokenUsage()
            return []
        if t in ("item.started", "item.updated", "item.completed"):
            item = obj.get("item")
            if not isinstance(item, dict):
                return []
            return {"item.started": self._item_started, "item.updated": self._item_updated,
                    "item.completed": self._item_completed}[t](item, obj)
        if t == "error":
            return self._error(obj.get("message"))
        if t == "turn.completed":
            return self._turn_completed(obj)
        if t == "turn.failed":
            return self._turn_failed(obj)
        if t == "turn.aborted":
            self.aborted = True
            return []
        if t == "item.agent_message.delta":
            return self._agent_delta(obj)
        if t == "thread.token_usage.updated":
            return self._usage(as_dict(obj.get("usage")))
        if t == "tool_call.requested":
            return self._tool_requested(obj)
        if t == "tool_call.completed":
            return self._tool_call_completed(obj)
        return []  # unknown types: ignored (vendors add types over time)

    # -- handlers ---------------------------------------------------------------------------------
    def _thread_started(self, obj: dict) -> list[Emit]:
        tid = as_str(obj.get("thread_id"))
        if tid and not self.thread_id:
            self.thread_id = tid
        meta = as_dict(obj.get("metadata"))
        confirmed_model = as_str(meta.get("model"))
        effort = (as_str(meta.get("reasoning_effort")) or as_str(meta.get("reasoningEffort"))
                  or as_str(as_dict(meta.get("config")).get("model_reasoning_effort")))
        return self.start_events({
            "thread_id": self.thread_id, "provider_session_id": self.thread_id,
            "model": confirmed_model or self.configured_model, "configured_model": self.configured_model,
            "confirmed_model": confirmed_model, "confirmed_reasoning_effort": effort,
            "confirmation_source": "codex_cli.thread_started", "resumed": True if self.resumed else None,
            "model_source": "stream" if confirmed_model else self.model_source})

    def _ids(self, obj: dict) -> dict:
        d = {"thread_id": self.thread_id or as_str(obj.get("thread_id"))}
        if as_str(obj.get("turn_id")):
            d["turn_id"] = obj["turn_id"]
        return {k: v for k, v in d.items() if v}

    def _item_started(self, item: dict, obj: dict) -> list[Emit]:
        itype = snake(item.get("type"))
        if itype == "todo_list":
            self.todo_list = jsonable(as_list(item.get("items")))
            return []
        spec = tool_spec(item)
        if spec is None:
            return []
        tid = as_str(item.get("id")) or "unknown"
        if tid in self._tool_inputs:
            return []
        name, tin = spec
        self._tool_inputs[tid] = (name, tin)
        self.remember_tool(tid, name, tin)
        return [("tool_call_started", {"tool_call_id": tid, "tool_name": name, "tool_input": tin, **self._ids(obj)})]

    def _item_updated(self, item: dict, obj: dict) -> list[Emit]:
        if snake(item.get("type")) == "todo_list":
            self.todo_list = jsonable(as_list(item.get("items")))
        return []

    def _item_completed(self, item: dict, obj: dict) -> list[Emit]:
        itype = snake(item.get("type"))
        iid = as_str(item.get("id"))
        if itype == "agent_message":
            key = iid or _ANON
            given = item.get("text")
            text = given if isinstance(given, str) else _delta_text(item)
            if key not in self.messages:
                self.last_message_id = key
            self.messages[key] = text
            self._received.add(key)
            data = {"content": text, "role": "assistant", **self._ids(obj)}
            if iid:
                data["item_id"] = iid
            return [("message_received", data)]
        if itype == "reasoning":
            text = item.get("text")
            if not isinstance(text, str) or not text:
                return []
            data = {"content": text, "delta": text, "kind": "reasoning", **self._ids(obj)}
            if iid:
                data["item_id"] = iid
            return [("message_streamed", data)]
        if itype == "error":
            return self._error(item.get("message"), item_error=True)
        if itype == "todo_list":
            self.todo_list = jsonable(as_list(item.get("items")))
            return []
        spec = tool_spec(item)
        if spec is None:
            return []
        tid = iid or "unknown"
        name, tin = self._tool_inputs.get(tid) or spec
        if tid not in self._tool_inputs:
            self._tool_inputs[tid] = (name, tin)
            entry = self.remember_tool(tid, name, tin)
        else:
            entry = self.tool_entry(tid) or self.remember_tool(tid, name, tin)
        failed, out, reason = tool_result(item)
        entry["output"] = out
        data: dict = {"tool_call_id": tid, "tool_name": name, "tool_input": tin, "tool_output": out, **self._ids(obj)}
        if failed:
            data["is_error"] = True
            if reason:
                data["reason"] = reason
            return [("tool_call_failed", data)]
        return [("tool_call_completed", data)]

    def _error(self, message: Any, *, item_error: bool = False) -> list[Emit]:
        msg = message if isinstance(message, str) and message.strip() else "Codex reported an error"
        self._errors_said.add(msg)
        pe = self.failure("provider_error", {"kind": "unknown" if item_error else infer_error_kind(msg),
                                             "message": msg}).provider_error
        return [("error_occurred", {"error_code": "provider_error", "error_message": msg, "recoverable": True,
                                    "provider_error": pe})]

    def _usage(self, raw: dict) -> list[Emit]:
        snapshot = TokenUsage.from_openai(raw)  # cumulative for the turn
        inc = snapshot.since(self.turn_usage_reported)
        self.turn_usage_reported = self.turn_usage_reported.at_least(snapshot)
        if not inc:
            return []
        return [self.usage_event(inc, raw, **({"thread_id": self.thread_id} if self.thread_id else {}))]

    def _turn_completed(self, obj: dict) -> list[Emit]:
        out: list[Emit] = []
        # messages streamed as deltas but never completed still get their message_received
        for key, text in self.messages.items():
            if key not in self._received:
                self._received.add(key)
                out.append(("message_received", {"content": text, "role": "assistant", **self._ids(obj)}))
        if isinstance(obj.get("usage"), dict):
            out += self._usage(obj["usage"])
        self.turn_completed = True
        status = as_str(obj.get("status"))
        self.stop_reason = status or "end_turn"
        out.append(("turn_completed", {"turn": max(self.turn, 1), "stop_reason": self.stop_reason,
                                       "token_usage": self.turn_usage_reported.to_dict()}))
        return out

    def _turn_failed(self, obj: dict) -> list[Emit]:
        err = obj.get("error")
        err_d = as_dict(err)
        msg = as_str(err_d.get("message")) or (err if isinstance(err, str) else None) or "Codex turn failed"
        code = err_d.get("code")
        kind = code if isinstance(code, str) and code.strip() else infer_error_kind(msg)
        details = {"error": jsonable(err)} if err is not None else {}
        self.failed_error = self.failure("provider_error", {"kind": kind, "message": msg, "details": details})
        if msg in self._errors_said:
            return []
        self._errors_said.add(msg)
        data = {"error_code": "provider_error", "error_message": msg, "provider_error": self.failed_error.provider_error}
        if self.failed_error.details:
            data["details"] = self.failed_error.details
        return [("error_occurred", data)]

    def _agent_delta(self, obj: dict) -> list[Emit]:
        item = as_dict(obj.get("item"))
        key = as_str(item.get("id")) or _ANON
        text = _delta_text(item)
        if not text:
            return []
        if key not in self.messages:
            self.last_message_id = key
            self.messages[key] = ""
        self.messages[key] += text
        self._received.discard(key)
        data = {"delta": text, "content": text, "kind": "text", **self._ids(obj)}
        if key != _ANON:
            data["item_id"] = key
        return [("message_streamed", data)]

    def _tool_requested(self, obj: dict) -> list[Emit]:
        tid = as_str(obj.get("call_id")) or "unknown"
        name = as_str(obj.get("tool_name")) or "unknown"
        args = obj.get("arguments")
        tin = jsonable(args) if isinstance(args, dict) else {}
        self._tool_inputs[tid] = (name, tin)
        self.remember_tool(tid, name, tin)
        return [("tool_call_started", {"tool_call_id": tid, "tool_name": name, "tool_input": tin, **self._ids(obj)})]

    def _tool_call_completed(self, obj: dict) -> list[Emit]:
        tid = as_str(obj.get("call_id")) or "unknown"
        name, tin = self._tool_inputs.get(tid) or (as_str(obj.get("tool_name")) or "unknown", {})
        if tid not in self._tool_inputs:
            self._tool_inputs[tid] = (name, tin)
            self.remember_tool(tid, name, tin)
        out = output_dict(obj.get("output"))
        entry = self.tool_entry(tid)
        if entry is not None:
            entry["output"] = out
        return [("tool_call_completed", {"tool_call_id": tid, "tool_name": name, "tool_input": tin,
                                         "tool_output": out, **self._ids(obj)})]

    # -- end of process ---------------------------------------------------------------------------
    def output(self) -> dict:
        content = self.messages.get(self.last_message_id, "") if self.last_message_id else ""
        out: dict = {"content": content,
                     "tool_calls": [{"id": t["id"], "name": t["name"], "input": t["input"],
                                     "output": t.get("output", {})} for t in self.tool_calls]}
        if self.todo_list is not None:
            out["todo_list"] = self.todo_list
        return out

    def finish(self, exit: ProcessExit) -> Outcome:
        output, usage = self.output(), self.usage_total.to_dict()
        if self.turn_completed and self.failed_error is None and exit.returncode == 0:
            data: dict = {"stop_reason": self.stop_reason, "token_usage": usage}
            if self.thread_id:
                data["thread_id"] = self.thread_id
            return Outcome("completed", [("run_completed", data)], output=output, token_usage=usage)
        if self.aborted or self.interrupted(exit):
            return Outcome("cancelled", output=output, token_usage=usage)
        if self.failed_error is not None:
            return Outcome("failed", error=self.failed_error, output=output, token_usage=usage)
        return Outcome("failed", error=self.process_failure(exit, what="codex"), output=output, token_usage=usage)


__all__ = ["CodexMapper", "tool_spec", "tool_result", "infer_error_kind"]
