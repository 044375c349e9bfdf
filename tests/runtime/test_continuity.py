"""Session continuity (docs/runtime.md, continuation; docs/event-model.md, transcripts): named sessions, transcript
replay, native resume,
continuation modes and token-aware truncation, end to end through ``asm_nb.run_once``."""

from __future__ import annotations

import asyncio
import pathlib
from typing import Any

import pytest

import asm_nb
from asm_nb.core.errors import AsmError
from asm_nb.providers._base import BaseAdapter, input_text
from asm_nb.runtime import manager
from asm_nb.stores import open_store
from asm_nb.testing import MockAdapter

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "providers"


class Recording(BaseAdapter):
    """Answers ``reply to <prompt>`` and keeps the transcript each run was given."""

    name = "recording"
    emits_input_messages = False  # the manager persists the input as message_sent

    def __init__(self, *, native: bool = False, **kw: Any) -> None:
        super().__init__(**kw)
        self.supports_native_continuation = native
        self.transcripts: list[Any] = []
        self.contexts: list[dict] = []

    async def _execute(self, active, **opts):
        self.transcripts.append(active.session.context.get("transcript"))
        self.contexts.append(dict(active.session.context))
        text = input_text(active.run.input)
        await active.emit("run_started", {"provider_session_id": f"native-{len(self.transcripts)}"})
        await active.emit("message_received", {"role": "assistant", "content": f"reply to {text}"})
        await active.emit("run_completed", {"stop_reason": "end_turn"})
        return {"output": {"content": f"reply to {text}"}}


def pairs(transcript) -> list[tuple[str, str]]:
    return [(m.role.value if hasattr(m.role, "value") else m.role, m.content) for m in transcript.messages]


def test_replay_second_run_sees_first_turns_in_the_anthropic_request(tmp_path):
    pytest.importorskip("anthropic")
    from asm_nb.providers.claude import ClaudeAdapter
    from asm_nb.testing.fake_anthropic import FakeAnthropicServer, StreamBuilder

    store = open_store(str(tmp_path / "store"))
    with FakeAnthropicServer() as server:
        server.enqueue(StreamBuilder().text("Paris is the capital.").end(),
                       StreamBuilder().text("About 2 million people.").end())
        adapter = ClaudeAdapter(api_key="test-key", base_url=server.base_url, max_retries=0)
        r1 = asm_nb.run_once("What is the capital of France?", provider=adapter, store=store, session="geo")
        r2 = asm_nb.run_once("How many people live there?", provider=adapter, store=store, session="geo")
        assert r1.ok and r2.ok and r1.session_id == r2.session_id
        first, second = server.requests[0].body["messages"], server.requests[1].body["messages"]

    def text(m):
        c = m["content"]
        return c if isinstance(c, str) else "".join(b.get("text", "") for b in c)

    assert [(m["role"], text(m)) for m in first] == [("user", "What is the capital of France?")]
    assert [(m["role"], text(m)) for m in second] == [
        ("user", "What is the capital of France?"), ("assistant", "Paris is the capital."),
        ("user", "How many people live there?")]


def test_native_resume_id_reaches_the_claude_cli(tmp_path):
    from asm_nb.providers.claude_code import ClaudeCodeAdapter
    from asm_nb.testing.fake_cli import fake_cli_calls, install_fake_cli

    exe = install_fake_cli(tmp_path / "bin", "claude", FIXTURES / "claude_code" / "simple_text.jsonl")
    adapter = ClaudeCodeAdapter(cwd=str(tmp_path), executable=str(exe), model="sonnet")
    store = open_store(str(tmp_path / "store"))
    r1 = asm_nb.run_once("first question", provider=adapter, store=store, session="cc")
    assert r1.ok, r1.error
    psid = store.get_session(r1.session_id).metadata["provider_sessions"]["claude"]["provider_session_id"]
    assert psid == "7f502933-e9d3-4808-ab02-59bd9700ab1f"
    r2 = asm_nb.run_once("follow-up", provider=adapter, store=store, session="cc")
    assert r2.session_id == r1.session_id
    calls = fake_cli_calls(exe)
    assert "--resume" not in calls[0]["argv"]
    argv = calls[1]["argv"]
    assert argv[argv.index("--resume") + 1] == psid
    assert argv[-1] == "follow-up"  # native resume: the CLI holds the history, no replayed transcript
    # replay mode on the same session sends the transcript instead of the resume id
    asm_nb.run_once("third", provider=adapter, store=store, session="cc", continuation="replay")
    argv3 = fake_cli_calls(exe)[2]["argv"]
    assert "--resume" not in argv3 and "user: first question" in argv3[-1] and argv3[-1].endswith("user: third")


def test_native_resume_thread_id_reaches_the_codex_cli(tmp_path):
    from asm_nb.providers.codex import CodexAdapter
    from asm_nb.testing.fake_cli import fake_cli_calls, install_fake_cli

    exe = install_fake_cli(tmp_path / "bin", "codex", FIXTURES / "codex" / "simple_text.jsonl")
    adapter = CodexAdapter(working_directory=str(tmp_path), executable=str(exe))
    store = open_store("memory://")
    r1 = asm_nb.run_once("one", provider=adapter, store=store, session="cx")
    assert r1.ok, r1.error
    asm_nb.run_once("two", provider=adapter, store=store, session="cx")
    argv = fake_cli_calls(exe)[1]["argv"]
    assert "resume" in argv and argv[argv.index("resume") + 1] == "019ab4a9-8581-7122-9283-5271c1f38f8f"


def test_continuation_modes_with_manager():
    store = open_store("memory://")

    async def go(adapter, mode, **opts):
        s = await manager.astart_session(store, adapter, {"agent_id": "a", "context": {"system_prompt": "be brief"}})
        await manager.aactivate_session(store, s.id)
        r = await manager.astart_run(store, adapter, s.id, "first")
        await manager.aexecute_run(store, adapter, r.id, continuation=mode, **opts)
        r = await manager.astart_run(store, adapter, s.id, "second")
        return s, await manager.aexecute_run(store, adapter, r.id, continuation=mode, **opts)

    replaying = Recording()
    asyncio.run(go(replaying, "auto"))
    tr = replaying.transcripts[1]
    assert pairs(tr) == [("user", "first"), ("assistant", "reply to first")]
    assert replaying.contexts[1]["system_prompt"] == "be brief"

    off = Recording()
    asyncio.run(go(off, False))
    assert off.transcripts == [None, None] and "transcript" not in off.contexts[1]

    with pytest.raises(AsmError) as e:
        asyncio.run(go(Recording(), "native"))
    assert e.value.code == "invalid_operation" and 'continuation: "auto"' in e.value.message

    native = Recording(native=True)
    asyncio.run(go(native, "auto"))
    # run 1: no provider session yet → replay (of nothing); run 2: the provider resumes natively
    assert native.transcripts[0].messages == [] and native.transcripts[1] is None
    native_first = Recording(native=True)
    native_first_session = asyncio.run(go(native_first, "native"))[0]
    assert native_first.transcripts == [None, None]
    assert store.get_session(native_first_session.id).metadata["provider_sessions"]["recording"][
        "provider_session_id"] == "native-2"

    for bad, msg in ((True, "Boolean continuation is not supported"), ("sometimes", "Invalid continuation value")):
        with pytest.raises(AsmError) as e:
            asyncio.run(go(Recording(), bad))
        assert e.value.code == "validation_error" and msg in e.value.message


def test_truncation_keeps_newest_turns_within_the_token_limit():
    store = open_store("memory://")
    adapter = Recording()
    prompts = [f"question {i} " + "x" * 40 for i in range(6)]
    for p in prompts:
        asm_nb.run_once(p, provider=adapter, store=store, session="long",
                        continuation_opts={"max_tokens_approx": 30})  # 30 tokens * 4 chars = 120 chars
    full = asm_nb.run_once("last", provider=adapter, store=store, session="long",
                           continuation_opts={"max_messages": 100})
    assert full.ok
    all_msgs = pairs(adapter.transcripts[-1])
    assert len(all_msgs) == 12
    truncated = pairs(adapter.transcripts[-2])  # the 6th run, limited to 120 characters
    assert sum(len(c) for _, c in truncated) <= 120
    history_before_6th = all_msgs[:10]
    assert truncated == history_before_6th[-len(truncated):]  # the newest contiguous suffix
    assert 0 < len(truncated) < len(history_before_6th)
    # one more message would have exceeded the budget
    nxt = history_before_6th[-len(truncated) - 1]
    assert sum(len(c) for _, c in truncated) + len(nxt[1]) > 120
    # max_messages and max_chars: the lower budget wins
    asm_nb.run_once("again", provider=adapter, store=store, session="long",
                    continuation_opts={"max_messages": 3, "max_chars": 10_000})
    assert len(adapter.transcripts[-1].messages) == 3


def test_a_new_process_continues_the_named_session_from_the_store(tmp_path):
    path = tmp_path / "store"
    a1 = Recording()
    asm_nb.run_once("remember 42", provider=a1, store=open_store(str(path)), session="memo")
    # a fresh store object on the same folder: what a restarted kernel sees
    import subprocess
    import sys

    code = (
        "import asm_nb, sys\n"
        "from asm_nb.core.transcript import from_store\n"
        f"store = asm_nb.open_store({str(path)!r})\n"
        "s = [x for x in store.list_sessions() if x.metadata.get('name') == 'memo'][0]\n"
        "print([(m.role.value, m.content) for m in from_store(store, s.id).messages])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "('user', 'remember 42')" in out.stdout and "('assistant', 'reply to remember 42')" in out.stdout
    a2 = Recording()
    r = asm_nb.run_once("what did I say?", provider=a2, store=open_store(str(path)), session="memo")
    assert r.ok
    assert pairs(a2.transcripts[0]) == [("user", "remember 42"), ("assistant", "reply to remember 42")]


def test_mock_adapter_session_by_id():
    store = open_store("memory://")
    r1 = asm_nb.run_once("a", provider=MockAdapter(), store=store, session="by-name")
    r2 = asm_nb.run_once("b", provider=MockAdapter(), store=store, session=r1.session_id)
    assert r2.session_id == r1.session_id


def test_follow_up_turn_reads_only_the_new_events_and_matches_a_full_rebuild(tmp_path):
    """Continuity is incremental: after the first follow-up, a turn asks the store only for the
    events after the cached transcript's last sequence number, and the transcript it injects is
    the one a full rebuild gives."""
    from asm_nb.core.transcript import from_store
    from asm_nb.stores.local import LocalStore

    store = LocalStore(tmp_path / "s")
    seen_queries: list[dict] = []
    injected: list = []
    real_get_events = store.get_events

    def spy(session_id, **kw):
        seen_queries.append(kw)
        return real_get_events(session_id, **kw)

    store.get_events = spy  # type: ignore[method-assign]

    from asm_nb.providers.shell import ShellAdapter

    class Capture(ShellAdapter):
        async def execute(self, run, session, **kw):
            injected.append(session.context.get("transcript"))
            return await super().execute(run, session, **kw)

    adapter = Capture()
    for i in range(4):
        seen_queries.clear()
        r = asm_nb.run_once(f"echo turn {i}", provider=adapter, store=store, session="chat")
        assert r.status == "completed"
        transcript_reads = [q for q in seen_queries if q.get("run_id") is None]
        if i >= 2:  # the cache exists: only the tail of the session is read
            assert transcript_reads and all(isinstance(q.get("after"), int) and q["after"] > 0
                                            for q in transcript_reads), transcript_reads
    full = from_store(store, r.session_id)
    last = injected[-1]
    assert [(m.role, m.content) for m in last.messages] == \
        [(m.role, m.content) for m in from_store(store, r.session_id, before=last.last_sequence + 1).messages]
    assert len(full.messages) > len(last.messages) > 0
    store.close()
