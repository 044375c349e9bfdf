"""The client half of ACP for one run (``_Client``, the object the SDK calls): session updates
mapped to asm events (emitted in arrival order by one queue) and permission requests routed through
the permission mode and the approval flow; the fs and terminal requests come from
``_acp_host._HostServices``. Logs go to the ``asm_nb.providers.acp`` logger.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ..core.permission import PermissionMode
from ._acp_host import _HostServices, _Terminal
from ._base import ActiveRun

if TYPE_CHECKING:
    from .acp import AcpAdapter

log = logging.getLogger("asm_nb.providers.acp")

#: tool kinds ``accept_edits`` allows without asking
_EDIT_KINDS = frozenset({"read", "edit", "search", "think", "move", "delete", "switch_mode"})
_APPROVE = {"approve", "approved", "allow", "allowed", "yes", "y", "grant", "granted", "ok", "continue"}


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


class _RunCancelled(Exception):
    """Internal: the run was cancelled while an approval callback was pending."""


class _Client(_HostServices):
    """The client half of ACP for one run: session updates -> asm events (emitted in arrival order
    by one queue), permission requests -> the approval flow, fs and terminals confined to ``cwd``
    (``_HostServices``)."""

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
