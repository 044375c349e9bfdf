"""The ``acp`` provider against a fake Agent Client Protocol agent (``fake_acp_agent.py``, written
with the same ``agent-client-protocol`` package) run as a real subprocess over stdio."""

from __future__ import annotations

import asyncio
import os
import pathlib
import sys
import time

import pytest

pytest.importorskip("acp", reason="the acp extra (agent-client-protocol) is part of the test extras")

from asm_nb.core.errors import AsmError  # noqa: E402
from asm_nb.core.run import Run  # noqa: E402
from asm_nb.core.session import Session  # noqa: E402
from asm_nb.providers import available_providers, create_adapter  # noqa: E402
from asm_nb.providers.acp import AcpAdapter  # noqa: E402

AGENT = [sys.executable, str(pathlib.Path(__file__).with_name("fake_acp_agent.py"))]


def _run(adapter, prompt, **kw):
    session = Session.new({"agent_id": "t"})
    run = Run.new({"session_id": session.id, "input": prompt})
    events: list[dict] = []

    async def go():
        return await adapter.execute(run, session, event_callback=events.append, **kw)

    try:
        res = asyncio.run(go())
    except AsmError as err:
        return err, events
    return res, events


def _types(events):
    return [e["type"] for e in events]


@pytest.fixture
def work(tmp_path):
    (tmp_path / "notes.txt").write_text("remember the milk\n")
    return tmp_path


def test_registered_and_options_checked(work):
    assert "acp" in available_providers()
    assert create_adapter("acp", command=AGENT, cwd=str(work)).name == "acp"
    with pytest.raises(AsmError, match="command="):
        AcpAdapter(cwd=str(work))
    with pytest.raises(AsmError, match="Unknown acp option"):
        AcpAdapter(command=AGENT, bogus=1)
    with pytest.raises(AsmError, match="approval_callback must be callable"):
        AcpAdapter(command=AGENT, approval_callback="yes")
    assert AcpAdapter(command="my-agent --acp").command == ["my-agent", "--acp"]


def test_text_thought_plan_and_usage(work):
    res, events = _run(AcpAdapter(command=AGENT, cwd=str(work)), "hello")
    assert res.output["content"] == "Hello world"
    assert res.output["stop_reason"] == "end_turn"
    assert res.output["agent_name"] == "fake-acp"
    assert res.token_usage["input_tokens"] == 11 and res.token_usage["output_tokens"] == 5
    assert res.output["context_usage"]["used"] == 16 and res.output["total_cost_usd"] == 0.0021
    types = _types(events)
    assert types[0] == "run_started" and types[-1] == "run_completed"
    streamed = [e["data"] for e in events if e["type"] == "message_streamed"]
    assert [d.get("kind") for d in streamed] == ["reasoning", "plan", None, None]
    assert streamed[1]["entries"][0] == {"content": "greet", "priority": "medium", "status": "in_progress"}
    assert "".join(d["delta"] for d in streamed if d.get("kind") is None) == "Hello world"
    received = [e["data"]["content"] for e in events if e["type"] == "message_received"]
    assert received == ["Hello world"]
    started = events[0]["data"]
    assert started["agent_name"] == "fake-acp" and started["agent_version"] == "1.2.3"
    assert started["provider_session_id"].startswith("sess-")


def test_tool_call_reads_through_the_client_fs(work):
    res, events = _run(AcpAdapter(command=AGENT, cwd=str(work)), "read")
    assert res.output["content"] == "notes say: remember the milk"
    types = _types(events)
    assert types.index("tool_call_started") < types.index("tool_call_completed") < types.index("message_received")
    done = next(e["data"] for e in events if e["type"] == "tool_call_completed")
    assert done["tool_call_id"] == "t1" and done["tool_name"] == "Read notes.txt" and done["kind"] == "read"
    assert done["tool_output"] == {"content": "remember the milk\n"}


def test_permission_approved_by_callback_writes_the_file(work):
    asked = []

    def approve(name, tool_input):
        asked.append((name, tool_input))
        return True

    res, events = _run(AcpAdapter(command=AGENT, cwd=str(work), approval_callback=approve), "edit")
    assert res.output["content"] == "allowed"
    assert (work / "out.txt").read_text() == "new"
    assert asked == [("Write out.txt", {"path": str(work / "out.txt"), "content": "new"})]
    types = _types(events)
    assert types.index("tool_approval_requested") < types.index("tool_approval_granted") \
        < types.index("tool_call_completed")


def test_permission_denied_by_async_callback(work):
    async def deny(name, tool_input):
        await asyncio.sleep(0.01)
        return "deny"

    res, events = _run(AcpAdapter(command=AGENT, cwd=str(work), approval_callback=deny), "edit")
    assert res.output["content"] == "rejected (selected)"
    assert not (work / "out.txt").exists()
    denied = next(e["data"] for e in events if e["type"] == "tool_approval_denied")
    assert denied["reason"] == "denied_by_callback"
    failed = next(e["data"] for e in events if e["type"] == "tool_call_failed")
    assert failed["tool_call_id"] == "t2" and failed["reason"] == "declined"


@pytest.mark.parametrize("mode,granted", [(None, False), ("plan", False), ("accept_edits", True),
                                          ("full_auto", True)])
def test_permission_modes_without_a_callback(work, mode, granted):
    res, events = _run(AcpAdapter(command=AGENT, cwd=str(work), permission_mode=mode), "edit")
    assert res.output["content"] == ("allowed" if granted else "rejected (selected)")
    assert (work / "out.txt").exists() is granted
    assert ("tool_approval_granted" in _types(events)) is granted
    assert "tool_approval_requested" not in _types(events)  # nobody was asked


def test_widget_bridge_answers_the_permission(work):
    """The notebook's Approve / Deny bridge (the widget buttons) answers an ACP permission request."""
    from asm_nb.notebook.magics import APPROVAL_PROVIDERS, ApprovalBridge

    assert "acp" in APPROVAL_PROVIDERS
    bridge = ApprovalBridge()
    bridge.decide("deny")  # a click that arrives before the question is kept for it
    res, _ = _run(AcpAdapter(command=AGENT, cwd=str(work), approval_callback=bridge), "edit")
    assert res.output["content"] == "rejected (selected)"


@pytest.mark.parametrize("target", ["/etc/passwd", "../outside.txt", "link/secret.txt"])
def test_fs_outside_cwd_is_refused(work, tmp_path_factory, target):
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.txt").write_text("top secret")
    (work / "link").symlink_to(outside)
    (work.parent / "outside.txt").write_text("top secret")
    path = target if target.startswith("/") else str(work / target)
    res, events = _run(AcpAdapter(command=AGENT, cwd=str(work)), f"escape {path}")
    assert res.output["content"].startswith("refused: fs/read_text_file:")
    assert "outside the working directory" in res.output["content"]
    assert "top secret" not in str(events)
    v = next(e["data"] for e in events if e["type"] == "policy_violation")
    assert v["rule"] == "cwd_confinement" and v["path"] == path


@pytest.mark.parametrize("target", ["../escaped.txt", "link/escaped.txt"])
def test_fs_write_outside_cwd_is_refused(work, tmp_path_factory, target):
    outside = tmp_path_factory.mktemp("outside")
    (work / "link").symlink_to(outside)
    res, events = _run(AcpAdapter(command=AGENT, cwd=str(work), permission_mode="full_auto"),
                       f"write {work / target}")
    assert res.output["content"].startswith("refused: fs/write_text_file:")
    assert not (work.parent / "escaped.txt").exists() and not (outside / "escaped.txt").exists()
    assert any(e["type"] == "policy_violation" for e in events)
    res, _ = _run(AcpAdapter(command=AGENT, cwd=str(work)), f"write {work / 'sub' / 'ok.txt'}")
    assert res.output["content"] == "wrote" and (work / "sub" / "ok.txt").read_text() == "pwned"


def test_terminal_output_limit_keeps_the_end(work):
    res, _ = _run(AcpAdapter(command=AGENT, cwd=str(work)), "bigterm")
    assert res.output["content"] == "'xxxxxxEND\\n' truncated=True"


def test_fs_inside_cwd_is_served(work):
    res, _ = _run(AcpAdapter(command=AGENT, cwd=str(work)), f"escape {work / 'notes.txt'}")
    assert res.output["content"] == "read: remember the milk\n"


def test_terminal_runs_in_cwd_and_is_refused_in_plan_mode(work):
    res, _ = _run(AcpAdapter(command=AGENT, cwd=str(work)), "terminal")
    assert res.output["content"] == "terminal said from-terminal (exit 0)"
    err, events = _run(AcpAdapter(command=AGENT, cwd=str(work), permission_mode="plan"), "terminal")
    assert isinstance(err, AsmError) and err.code == "provider_error"  # the fake does not handle the refusal
    assert "not allowed in permission mode 'plan'" in err.message
    assert _types(events)[-1] == "run_failed"


def _cancel_after_first_chunk(adapter, prompt):
    return _cancel_after_first_chunk_of(adapter, prompt, "message_streamed")


def _cancel_after_first_chunk_of(adapter, prompt, etype):
    session = Session.new({"agent_id": "t"})
    run = Run.new({"session_id": session.id, "input": prompt})
    events: list[dict] = []

    async def go():
        seen = asyncio.Event()

        def cb(ev):
            events.append(ev)
            if ev["type"] == etype:
                seen.set()

        task = asyncio.ensure_future(adapter.execute(run, session, event_callback=cb))
        await asyncio.wait_for(seen.wait(), 30)
        t0 = time.monotonic()
        await adapter.cancel(run.id)
        with pytest.raises(AsmError) as ei:
            await asyncio.wait_for(task, 30)
        return ei.value, time.monotonic() - t0

    err, took = asyncio.run(go())
    return err, took, events


def test_cancel_goes_through_session_cancel(work):
    err, took, events = _cancel_after_first_chunk(AcpAdapter(command=AGENT, cwd=str(work), cancel_grace_ms=20_000),
                                                  "hang")
    assert err.code == "cancelled"
    assert _types(events)[-1] == "run_cancelled"
    # the agent answered stopReason=cancelled itself: far sooner than the 20 s kill fallback
    assert took < 10
    turn = next(e["data"] for e in events if e["type"] == "turn_completed")
    assert turn["stop_reason"] == "cancelled"


def test_cancel_while_a_permission_is_pending_answers_it_cancelled(work):
    async def never(name, tool_input):
        await asyncio.Event().wait()

    err, took, events = _cancel_after_first_chunk_of(
        AcpAdapter(command=AGENT, cwd=str(work), approval_callback=never, cancel_grace_ms=20_000), "edit",
        "tool_approval_requested")
    assert err.code == "cancelled" and took < 10
    assert _types(events)[-1] == "run_cancelled"
    # the protocol: a pending permission request is answered "cancelled" after session/cancel
    assert any(e["type"] == "message_streamed" and e["data"]["delta"] == "rejected (cancelled)" for e in events), \
        [(e["type"], e["data"].get("delta")) for e in events]
    assert not (work / "out.txt").exists()


def test_cancel_kills_an_agent_that_ignores_it(work):
    err, took, events = _cancel_after_first_chunk(AcpAdapter(command=AGENT, cwd=str(work), cancel_grace_ms=300),
                                                  "deaf")
    assert err.code == "cancelled"
    assert _types(events)[-1] == "run_cancelled"
    assert "turn_completed" not in _types(events)  # no answer came: the process was stopped


def test_agent_crash_is_one_clear_error(work):
    err, events = _run(AcpAdapter(command=AGENT, cwd=str(work)), "crash")
    assert isinstance(err, AsmError) and err.code == "provider_error"
    assert "exited before answering" in err.message and "status 3" in err.message
    assert "out of cheese" in err.message
    assert err.provider_error["provider"] == "acp" and err.provider_error["kind"] == "transport_exit"
    assert err.provider_error["exit_code"] == 3
    assert _types(events)[-2:] == ["error_occurred", "run_failed"]
    assert "about to crash" in str(events)


def test_not_an_acp_agent_and_missing_binary(work):
    err, events = _run(AcpAdapter(command=[sys.executable, "-c", "import sys; sys.stdin.read()"], cwd=str(work),
                                  startup_timeout_ms=500), "hello")
    assert err.code == "provider_timeout" and "did not answer initialize" in err.message
    assert _types(events) == ["error_occurred", "run_failed"]
    err, _ = _run(AcpAdapter(command=["no-such-acp-agent-xyz"], cwd=str(work)), "hello")
    assert err.code == "provider_error" and "no-such-acp-agent-xyz" in err.message


def test_non_json_stdout_lines_are_skipped(work):
    res, _ = _run(AcpAdapter(command=[*AGENT, "--print-junk"], cwd=str(work)), "hello")
    assert res.output["content"] == "Hello world"


def test_run_once_through_the_store(work, tmp_path_factory):
    from asm_nb import run_once

    store = str(tmp_path_factory.mktemp("store") / ".asm")
    r = run_once("hello", provider="acp", store=store, cwd=str(work), options={"command": AGENT})
    assert r.status == "completed" and r.output == "Hello world"
    assert r.cost_usd == pytest.approx(0.0021)  # the agent's own figure (usage_update.cost), reported
    r2 = run_once("history", provider="acp", store=store, cwd=str(work), options={"command": AGENT},
                  session="s1")
    assert r2.status == "completed"
    r3 = run_once("history", provider="acp", store=store, cwd=str(work), options={"command": AGENT},
                  session="s1")
    assert r3.output.count("history") >= 2  # the earlier turn is replayed to the new agent process


def test_resume_loads_the_acp_session_and_ignores_its_replayed_history(work):
    res, _ = _run(AcpAdapter(command=AGENT, cwd=str(work)), "remember the first thing")
    sid = res.output["provider_session_id"]
    assert res.output["content"] == f"saved in {sid}; loaded=None"
    res2, events = _run(AcpAdapter(command=AGENT, cwd=str(work), resume=sid), "remember more")
    assert res2.output["content"] == f"saved in {sid}; loaded={sid}"  # only the new turn's reply
    assert "(history)" not in str(events)
    assert res2.output["provider_session_id"] == sid
    err, _ = _run(AcpAdapter(command=AGENT, cwd=str(work), resume="sess-unknown"), "remember")
    assert err.code == "provider_error" and "session/load" in err.message
    err, _ = _run(AcpAdapter(command=[*AGENT, "--no-load"], cwd=str(work), resume=sid), "remember")
    assert err.code == "capability_not_supported" and "loadSession" in err.message
    with pytest.raises(AsmError, match="resume must be"):
        AcpAdapter(command=AGENT, resume=3)


def test_env_var_names_the_default_command(work, monkeypatch):
    monkeypatch.setenv("ASM_ACP_COMMAND", " ".join(AGENT))
    assert AcpAdapter(cwd=str(work)).command == AGENT
    assert os.environ["ASM_ACP_COMMAND"]


# -- a policy on the run decides before a client-side command or write happens


def _policy_run(work, prompt, policy):
    import asm_nb

    return asm_nb.run_once(prompt, provider="acp", store="memory://", policy=policy, cwd=str(work),
                           options={"command": AGENT})


def test_a_terminal_command_of_a_denied_tool_call_never_runs(work):
    from asm_nb import Policy

    marker = work / "ran"
    r = _policy_run(work, f"toolterm {marker}", Policy(tool_rules=[("deny", ["Terminal"])]))
    time.sleep(0.3)
    assert not marker.exists()
    assert r.status == "failed" and r.error.code == "policy_violation"
    assert r.error.details["tool_name"] == "Terminal"


def test_a_terminal_command_waits_for_the_approval_its_tool_call_asks(work):
    from asm_nb import Policy

    marker = work / "ran"
    seen = []

    def decide(request):
        time.sleep(0.3)  # a person deciding: a command already running would be done by now
        seen.append((request["tool_name"], marker.exists()))
        return "deny"

    r = _policy_run(work, f"toolterm {marker}", Policy(tool_rules=[("deny", ["Terminal"])],
                                                       on_violation="request_approval",
                                                       metadata={"approval_callback": decide}))
    time.sleep(0.3)
    assert seen == [("Terminal", False)] and not marker.exists()
    assert r.status == "failed" and r.error.details["approval"] == "denied"

    granted = _policy_run(work, f"toolterm {marker}", Policy(tool_rules=[("deny", ["Terminal"])],
                                                             on_violation="request_approval",
                                                             metadata={"approval_callback": lambda request: "approve"}))
    assert granted.status == "completed" and marker.exists()
    assert granted.output == "touched"
