"""A scripted Agent Client Protocol agent for the ``acp`` provider tests, written with the same
``agent-client-protocol`` package real Python agents use, run as a subprocess over stdio.

The first word of the prompt's last line picks the scenario:

- ``hello``: a thought, a plan, two text chunks, usage in the prompt response.
- ``read``: a ``read`` tool call whose output comes from ``fs/read_text_file`` of ``notes.txt``.
- ``edit``: asks permission for an ``edit`` tool call; if allowed writes ``out.txt`` through
  ``fs/write_text_file``; reports ``allowed`` / ``rejected`` in its reply.
- ``escape PATH``: tries to read PATH through the client; replies ``refused: <error>`` or the text.
- ``write PATH``: tries to write PATH through the client; replies ``wrote`` or ``refused: <error>``.
- ``terminal``: runs ``echo from-terminal`` through ``terminal/*`` and replies with its output.
- ``toolterm PATH``: a ``Terminal`` tool call (kind ``execute``), then ``touch PATH`` through ``terminal/*``.
- ``bigterm``: a terminal command printing 104 bytes with ``outputByteLimit=10``.
- ``hang``: one chunk, then waits for ``session/cancel`` and answers ``stopReason=cancelled``.
- ``deaf``: one chunk, then ignores ``session/cancel`` (the client must kill it).
- ``crash``: one chunk, a line on stderr, then exits with status 3 mid-prompt.
- ``history``: replies with the whole prompt text (to check transcript replay).
- ``remember ...``: appends the prompt to ``.fake-acp-<session>`` in cwd; ``session/load`` of that
  session replays it as history updates (``loadSession`` is advertised).
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from acp import (PROTOCOL_VERSION, Agent, InitializeResponse, LoadSessionResponse, NewSessionResponse, PromptResponse,
                 RequestError, run_agent, start_tool_call, update_agent_message_text, update_agent_thought_text,
                 update_user_message_text,
                 update_plan, plan_entry, update_tool_call)
from acp.interfaces import Client
from acp.schema import (AgentCapabilities, Cost, Implementation, PermissionOption, ToolCallUpdate, Usage,
                        UsageUpdate)


class FakeAgent(Agent):
    _conn: Client

    def __init__(self) -> None:
        self.cwd = "."
        self.cancelled: dict[str, asyncio.Event] = {}

    def on_connect(self, conn: Client) -> None:
        self._conn = conn

    async def initialize(self, protocol_version: int, client_capabilities: Any = None, client_info: Any = None,
                         **kwargs: Any) -> InitializeResponse:
        self.client_caps = client_capabilities
        return InitializeResponse(protocol_version=PROTOCOL_VERSION,
                                  agent_capabilities=AgentCapabilities(load_session="--no-load" not in sys.argv),
                                  agent_info=Implementation(name="fake-acp", title="Fake ACP agent", version="1.2.3"))

    async def new_session(self, cwd: str, mcp_servers: Any = None, **kwargs: Any) -> NewSessionResponse:
        self.cwd = cwd
        sid = f"sess-{os.getpid()}"
        self.cancelled[sid] = asyncio.Event()
        return NewSessionResponse(session_id=sid)

    async def load_session(self, cwd: str, session_id: str, mcp_servers: Any = None, **kwargs: Any) -> Any:
        """Sessions "persist" in ``.fake-acp-<id>`` files in cwd: loading replays the saved text
        as history updates, as the protocol asks."""
        path = os.path.join(cwd, f".fake-acp-{session_id}")
        if not os.path.exists(path):
            raise RequestError.resource_not_found(session_id)
        self.cwd = cwd
        self.cancelled[session_id] = asyncio.Event()
        with open(path) as f:
            for line in f.read().splitlines():
                await self._conn.session_update(session_id, update_user_message_text(line))
                await self.say(session_id, f"(history) {line}")
        self.loaded = session_id
        return LoadSessionResponse()

    async def cancel(self, session_id: str, **kwargs: Any) -> None:
        self.cancelled.setdefault(session_id, asyncio.Event()).set()

    async def say(self, sid: str, text: str) -> None:
        await self._conn.session_update(sid, update_agent_message_text(text))

    async def prompt(self, session_id: str, prompt: list, **kwargs: Any) -> PromptResponse:
        sid = session_id
        text = "".join(getattr(b, "text", "") for b in prompt)
        last = text.strip().splitlines()[-1] if text.strip() else ""
        word, _, arg = last.partition(" ")
        if word == "hello":
            await self._conn.session_update(sid, update_agent_thought_text("thinking about it"))
            await self._conn.session_update(sid, update_plan([plan_entry("greet", status="in_progress"),
                                                              plan_entry("stop")]))
            await self.say(sid, "Hello")
            await self.say(sid, " world")
            await self._conn.session_update(sid, UsageUpdate(session_update="usage_update", used=16, size=1000,
                                                             cost=Cost(amount=0.0021, currency="USD")))
            return PromptResponse(stop_reason="end_turn",
                                  usage=Usage(input_tokens=11, output_tokens=5, total_tokens=16))
        if word == "read":
            path = os.path.join(self.cwd, "notes.txt")
            await self._conn.session_update(sid, start_tool_call("t1", "Read notes.txt", kind="read",
                                                                 status="pending", raw_input={"path": path}))
            got = await self._conn.read_text_file(session_id=sid, path=path)
            await self._conn.session_update(sid, update_tool_call("t1", status="completed",
                                                                  raw_output={"content": got.content}))
            await self.say(sid, f"notes say: {got.content.strip()}")
            return PromptResponse(stop_reason="end_turn",
                                  usage=Usage(input_tokens=40, output_tokens=7, total_tokens=47))
        if word == "edit":
            path = os.path.join(self.cwd, "out.txt")
            await self._conn.session_update(sid, start_tool_call("t2", "Write out.txt", kind="edit", status="pending",
                                                                 raw_input={"path": path, "content": "new"}))
            res = await self._conn.request_permission(
                session_id=sid, tool_call=ToolCallUpdate(tool_call_id="t2", title="Write out.txt", kind="edit"),
                options=[PermissionOption(option_id="yes", name="Allow", kind="allow_once"),
                         PermissionOption(option_id="no", name="Reject", kind="reject_once")])
            outcome = res.outcome
            if outcome.outcome == "selected" and outcome.option_id == "yes":
                await self._conn.write_text_file(session_id=sid, path=path, content="new")
                await self._conn.session_update(sid, update_tool_call("t2", status="completed",
                                                                      raw_output={"written": path}))
                await self.say(sid, "allowed")
            else:
                await self._conn.session_update(sid, update_tool_call("t2", status="failed",
                                                                      raw_output={"rejected": True}))
                await self.say(sid, f"rejected ({outcome.outcome})")
            return PromptResponse(stop_reason="end_turn")
        if word == "escape":
            try:
                got = await self._conn.read_text_file(session_id=sid, path=arg)
                await self.say(sid, f"read: {got.content}")
            except RequestError as exc:
                await self.say(sid, f"refused: {exc}")
            return PromptResponse(stop_reason="end_turn")
        if word == "write":
            try:
                await self._conn.write_text_file(session_id=sid, path=arg, content="pwned")
                await self.say(sid, "wrote")
            except RequestError as exc:
                await self.say(sid, f"refused: {exc}")
            return PromptResponse(stop_reason="end_turn")
        if word == "bigterm":
            term = await self._conn.create_terminal(session_id=sid, command=sys.executable,
                                                    args=["-c", "print('x' * 100 + 'END')"], output_byte_limit=10)
            await self._conn.wait_for_terminal_exit(session_id=sid, terminal_id=term.terminal_id)
            out = await self._conn.terminal_output(session_id=sid, terminal_id=term.terminal_id)
            await self.say(sid, f"{out.output!r} truncated={out.truncated}")
            return PromptResponse(stop_reason="end_turn")
        if word == "toolterm":  # a tool call announced, then its command run through a terminal
            await self._conn.session_update(sid, start_tool_call("t9", "Terminal", kind="execute", status="pending",
                                                                 raw_input={"command": f"touch {arg}"}))
            try:
                term = await self._conn.create_terminal(session_id=sid, command="touch", args=[arg])
            except RequestError as exc:
                await self._conn.session_update(sid, update_tool_call("t9", status="failed"))
                await self.say(sid, f"refused: {exc}")
                return PromptResponse(stop_reason="end_turn")
            await self._conn.wait_for_terminal_exit(session_id=sid, terminal_id=term.terminal_id)
            await self._conn.release_terminal(session_id=sid, terminal_id=term.terminal_id)
            await self._conn.session_update(sid, update_tool_call("t9", status="completed"))
            await self.say(sid, "touched")
            return PromptResponse(stop_reason="end_turn")
        if word == "terminal":
            term = await self._conn.create_terminal(session_id=sid, command="echo", args=["from-terminal"])
            await self._conn.wait_for_terminal_exit(session_id=sid, terminal_id=term.terminal_id)
            out = await self._conn.terminal_output(session_id=sid, terminal_id=term.terminal_id)
            await self._conn.release_terminal(session_id=sid, terminal_id=term.terminal_id)
            code = out.exit_status.exit_code if out.exit_status else None
            await self.say(sid, f"terminal said {out.output.strip()} (exit {code})")
            return PromptResponse(stop_reason="end_turn")
        if word in ("hang", "deaf"):
            await self.say(sid, "working")
            if word == "deaf":
                await asyncio.sleep(3600)
            await self.cancelled[sid].wait()
            return PromptResponse(stop_reason="cancelled")
        if word == "crash":
            await self.say(sid, "about to crash")
            await asyncio.sleep(0.2)
            sys.stderr.write("fake-acp: fatal: out of cheese\n")
            sys.stderr.flush()
            os._exit(3)
        if word == "history":
            await self.say(sid, text)
            return PromptResponse(stop_reason="end_turn")
        if word == "remember":  # save the prompt for a later session/load
            with open(os.path.join(self.cwd, f".fake-acp-{sid}"), "a") as f:
                f.write(text + "\n")
            await self.say(sid, f"saved in {sid}; loaded={getattr(self, 'loaded', None)}")
            return PromptResponse(stop_reason="end_turn")
        await self.say(sid, f"unknown scenario {word!r}")
        return PromptResponse(stop_reason="end_turn")


if __name__ == "__main__":
    if "--print-junk" in sys.argv:
        print("this agent prints a banner on stdout first", flush=True)
    asyncio.run(run_agent(FakeAgent()))
