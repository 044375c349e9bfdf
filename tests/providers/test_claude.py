"""ClaudeAdapter (Messages API backend) against FakeAnthropicServer with the real ``anthropic`` client.

Every recorded stream in ``fixtures/providers/anthropic`` runs through the adapter and must give the
manifest's expected text, tool calls, usage and terminal event; the tool loop, permission modes,
cancellation, error mapping and option handling are tested with programmatic streams.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from asm_nb import config
from asm_nb.core.errors import AsmError
from asm_nb.core.run import Run
from asm_nb.core.session import Session
from asm_nb.providers import create_adapter
from asm_nb.providers.claude import ClaudeAdapter, MODEL_ALIASES, resolve_model
from asm_nb.providers.tools import ToolContext, tool
from asm_nb.testing.fake_anthropic import (FakeAnthropicServer, SSEResponse, StreamBuilder, http_error,
                                           text_stream, tool_use_stream)

PE_KEYS = {"provider", "kind", "message", "exit_code", "stderr", "truncated"}


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def anth(fixtures_dir: Path) -> Path:
    return fixtures_dir / "anthropic"


@pytest.fixture
def manifest(anth: Path) -> dict[str, Any]:
    data = json.loads((anth / "manifest.json").read_text())
    out = {}
    for f in data["fixtures"]:
        key = f["file"] if isinstance(f["file"], str) else f["file"][0].split(".")[0]
        out[key] = f
    return out


@pytest.fixture
def server():
    with FakeAnthropicServer() as s:
        yield s


def make_adapter(server: FakeAnthropicServer, **opts: Any) -> ClaudeAdapter:
    opts.setdefault("max_retries", 0)
    return ClaudeAdapter(api_key="test-key", base_url=server.base_url, **opts)


def new_run(prompt: Any = "Hello", **ctx: Any) -> tuple[Run, Session]:
    session = Session.new("agent-test", context=ctx or None)
    return Run.new(session.id, input=prompt), session


class Outcome:
    def __init__(self, result=None, error=None, events=None):
        self.result, self.error, self.events = result, error, events or []

    @property
    def types(self) -> list[str]:
        return [e["type"] for e in self.events]

    def of(self, t: str) -> list[dict]:
        return [e["data"] for e in self.events if e["type"] == t]


def execute(adapter: ClaudeAdapter, prompt: Any = "Hello", *, session_ctx: dict | None = None,
            wait_s: float = 20.0, **opts: Any) -> Outcome:
    run, session = new_run(prompt, **(session_ctx or {}))
    seen: list[dict] = []

    async def go():
        return await asyncio.wait_for(adapter.execute(run, session, event_callback=seen.append, **opts), wait_s)

    try:
        res = asyncio.run(go())
    except AsmError as exc:
        out = Outcome(None, exc, seen)
    else:
        out = Outcome(res, None, seen)
        assert res.events == seen  # RunResult.events equals the callback stream
    check_invariants(out.events, run, session)
    return out


def check_invariants(events: list[dict], run: Run, session: Session) -> None:
    types = [e["type"] for e in events]
    for e in events:
        assert e["provider"] == "claude" and e["run_id"] == run.id and e["session_id"] == session.id
    terminal = [t for t in types if t in ("run_completed", "run_failed", "run_cancelled")]
    if events:
        assert len(terminal) == 1 and types[-1] == terminal[0], types
    assert types.count("run_started") <= 1
    if "run_started" in types:
        assert types[0] == "run_started"
    started = set()
    for e in events:
        d = e["data"]
        if e["type"] == "tool_call_started":
            started.add(d["tool_call_id"])
        if e["type"] in ("tool_call_completed", "tool_call_failed"):
            assert d["tool_call_id"] in started
            for alias in ("tool_use_id", "call_id", "arguments", "input", "output"):
                assert alias not in d
    if "run_failed" in types:
        assert "error_occurred" in types[: types.index("run_failed")]
    for d in [e["data"] for e in events if e["type"] in ("run_failed", "error_occurred")]:
        if "provider_error" in d:
            assert set(d["provider_error"]) == PE_KEYS


def streamed_text(out: Outcome, kind: str | None = None) -> str:
    return "".join(d["delta"] for d in out.of("message_streamed") if d.get("kind") == kind)


def usage_sum(out: Outcome) -> dict[str, int]:
    keys = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens")
    return {k: sum(d[k] for d in out.of("token_usage_updated")) for k in keys}


def matches_pattern(types: list[str], pattern: list[str]) -> bool:
    rx = "".join(f"(?:{p[:-1]},)*" if p.endswith("*") else f"{p}," for p in pattern)
    return re.fullmatch(rx, "".join(t + "," for t in types)) is not None


# ---------------------------------------------------------------------------------------------
# recorded fixtures (manifest expectations)
# ---------------------------------------------------------------------------------------------

def test_simple_text_fixture(server, anth, manifest):
    exp = manifest["simple_text.sse"]["expect"]
    server.enqueue_files(anth / "simple_text.sse")
    out = execute(make_adapter(server))
    assert out.error is None
    assert matches_pattern(out.types, exp["normalized"]), out.types
    assert out.result.output["content"] == exp["final_text"] == streamed_text(out)
    assert out.of("message_received") == [{"content": exp["final_text"], "role": "assistant"}]
    assert out.of("run_completed")[0]["stop_reason"] == exp["stop_reason"]
    assert out.of("run_started")[0]["message_id"] == exp["message_id"]
    assert out.of("run_started")[0]["backend"] == "api"
    u = exp["usage"]
    assert out.result.token_usage == {"input_tokens": u["input_tokens"], "output_tokens": u["output_tokens"],
                                      "cache_read_tokens": u["cache_read_input_tokens"],
                                      "cache_creation_tokens": u["cache_creation_input_tokens"]}
    assert out.of("message_sent") == [{"role": "user", "content": "Hello"}]


def test_multi_tool_fixture(server, anth, manifest):
    spec = manifest["multi_tool"]
    exp = spec["expect"]
    results = {r["tool_use_id"]: r for r in spec["tool_results_to_send_back"]}
    calls: list[tuple[str, dict]] = []

    def replay(name):
        async def handler(inp: dict, ctx: ToolContext):
            calls.append((name, inp))
            r = results[ctx.tool_call_id]
            from asm_nb.providers.tools import ToolOutput
            return ToolOutput(r["content"], is_error=r["is_error"])
        return {"name": name, "description": name, "input_schema": {"type": "object"}, "handler": handler}

    server.enqueue_files(*[anth / f for f in spec["file"]])
    out = execute(make_adapter(server, tools=[replay("bash"), replay("str_replace_based_edit_tool")],
                               builtin_tools=False))
    assert out.error is None, out.error
    assert len(server.requests) == exp["requests"]
    started = out.of("tool_call_started")
    assert [(d["tool_call_id"], d["tool_name"]) for d in started] == [(c["id"], c["name"]) for c in exp["tool_calls"]]
    for want, got in zip(exp["tool_calls"], started):
        if "input" in want:
            assert got["tool_input"] == want["input"]
    assert [c["id"] for c in out.result.output["tool_calls"]] == [c["id"] for c in exp["tool_calls"]]
    assert [d["stop_reason"] for d in out.of("turn_completed")] == exp["stop_reasons"]
    assert [d["turn"] for d in out.of("turn_completed")] == [1, 2, 3, 4]
    assert out.result.output["content"] == exp["final_text"]
    assert out.result.output["num_turns"] == 4
    # the first tool failed (pytest exit 1) -> tool_call_failed; the others completed
    assert [d["tool_call_id"] for d in out.of("tool_call_failed")] == [exp["tool_calls"][0]["id"]]
    assert len(out.of("tool_call_completed")) == 2
    ut = exp["usage_total"]
    want_usage = {"input_tokens": ut["input_tokens"], "output_tokens": ut["output_tokens"],
                  "cache_read_tokens": ut["cache_read_input_tokens"],
                  "cache_creation_tokens": ut["cache_creation_input_tokens"]}
    assert out.result.token_usage == want_usage == usage_sum(out)
    assert out.of("token_usage_updated")[-1]["total_tokens"] == ut["input_tokens"] + ut["output_tokens"]
    # what went back to the API: assistant tool_use + the tool_result of each request, in order
    for i, want in enumerate(spec["tool_results_to_send_back"], start=1):
        sent = server.requests[i].tool_results()[-1]
        assert sent["tool_use_id"] == want["tool_use_id"]
        assert sent["content"] == want["content"]
        assert bool(sent.get("is_error")) is want["is_error"]
        assistant = server.requests[i].messages[-2]
        assert assistant["role"] == "assistant"
        assert assistant["content"][-1]["type"] == "tool_use"
        assert assistant["content"][-1]["id"] == want["tool_use_id"]
    assert [c[0] for c in calls] == ["bash", "str_replace_based_edit_tool", "bash"]
    assert calls[1][1] == exp["tool_calls"][1]["input"]
    # four turns, but one run: one run_started, one message_sent
    assert out.types.count("run_started") == 1 and out.types.count("message_sent") == 1


def test_thinking_fixture(server, anth, manifest):
    exp = manifest["thinking.sse"]["expect"]
    server.enqueue_files(anth / "thinking.sse")
    out = execute(make_adapter(server))
    assert out.error is None
    assert streamed_text(out, "reasoning") == exp["thinking"]
    assert out.result.output["content"] == exp["final_text"] == streamed_text(out)
    assert out.of("message_received")[0]["content"] == exp["final_text"]  # thinking never in the answer
    assert out.of("run_completed")[0]["stop_reason"] == exp["stop_reason"]
    assert out.result.token_usage["input_tokens"] == exp["usage"]["input_tokens"]
    assert out.result.token_usage["output_tokens"] == exp["usage"]["output_tokens"]


def test_large_usage_cache_fixture(server, anth, manifest):
    exp = manifest["large_usage_cache.sse"]["expect"]
    server.enqueue_files(anth / "large_usage_cache.sse")
    out = execute(make_adapter(server))
    assert out.error is None
    assert out.result.output["content"] == exp["final_text"]
    assert out.of("run_completed")[0]["stop_reason"] == "max_tokens"  # max_tokens without tools: a completion
    assert out.of("run_started")[0]["model"] == exp["model"]
    u = exp["usage"]
    d = out.of("token_usage_updated")[0]
    assert (d["input_tokens"], d["output_tokens"], d["cache_read_tokens"], d["cache_creation_tokens"]) == (
        u["input_tokens"], u["output_tokens"], u["cache_read_input_tokens"], u["cache_creation_input_tokens"])
    assert d["raw_usage"]["cache_creation"] == exp["cache_creation_breakdown"]
    assert out.result.token_usage == {k: d[k] for k in out.result.token_usage}


def test_overloaded_midstream_fixture(server, anth, manifest):
    exp = manifest["error_overloaded_midstream.sse"]["expect"]
    server.enqueue_files(anth / "error_overloaded_midstream.sse")
    out = execute(make_adapter(server))
    assert out.types[-1] == exp["normalized_terminal"]
    assert streamed_text(out) == exp["partial_text"]
    assert out.error.code == "provider_unavailable" and out.error.retryable
    assert out.error.provider_error["kind"] == "overloaded"
    assert out.error.details["partial_content"] == exp["partial_text"]
    failed = out.of("run_failed")[0]
    assert failed["error_code"] == "provider_unavailable"
    assert failed["provider_error"] == out.error.provider_error
    assert "message_received" not in out.types and "turn_completed" not in out.types
    partial = out.of("token_usage_updated")  # the broken request was still billed for its input
    assert len(partial) == 1 and partial[0]["partial"] is True
    assert (partial[0]["input_tokens"], partial[0]["cache_read_tokens"]) == (340, 5120)
    assert len(server.requests) == 1  # an in-band error is not retried


@pytest.mark.parametrize("cut", [False, True], ids=["clean_eof", "socket_cut"])
def test_truncated_fixture(server, anth, manifest, cut):
    exp = manifest["truncated_midevent.sse"]["expect"]
    server.enqueue(SSEResponse.from_file(anth / "truncated_midevent.sse", cut=cut))
    out = execute(make_adapter(server))
    assert out.types[-1] == exp["normalized_terminal"]
    assert out.error.code == "provider_error"
    assert out.error.provider_error["kind"] == "protocol_error"
    assert out.error.details["partial_content"] == exp["partial_text"]


def test_malformed_json_fixture(server, anth, manifest):
    server.enqueue_files(anth / "malformed_json.sse")
    out = execute(make_adapter(server))
    assert out.types[-1] == manifest["malformed_json.sse"]["expect"]["normalized_terminal"]
    assert out.error.code == "provider_error"
    assert out.error.provider_error["kind"] == "parse_error"
    assert streamed_text(out) == "Hello"


def test_max_tokens_incomplete_tool_fixture(server, anth, manifest):
    exp = manifest["max_tokens_incomplete_tool.sse"]["expect"]
    ran = []

    @tool(name="str_replace_based_edit_tool", access="write")
    def edit(command: str, path: str, file_text: str = "") -> str:
        ran.append(command)
        return "ok"

    server.enqueue_files(anth / "max_tokens_incomplete_tool.sse")
    out = execute(make_adapter(server, tools=[edit], permission_mode="full_auto"))
    assert ran == []  # never executed
    failed = out.of("tool_call_failed")
    assert [(d["tool_call_id"], d["reason"]) for d in failed] == [(exp["tool_use_id"], "incomplete_input")]
    assert out.types[-1] == "run_failed"
    assert out.error.provider_error["kind"] == "protocol_error"
    assert out.of("turn_completed")[0]["stop_reason"] == exp["stop_reason"]
    assert len(server.requests) == 1


HTTP_CASES = {
    "overloaded_529": ("provider_unavailable", "overloaded"),
    "rate_limit_429": ("provider_rate_limited", "rate_limit"),
    "invalid_request_400": ("provider_error", "invalid_request"),
    "authentication_401": ("provider_authentication_failed", "authentication"),
    "not_found_404": ("provider_error", "invalid_request"),
    "request_too_large_413": ("provider_error", "invalid_request"),
    "api_error_500": ("provider_unavailable", "server_error"),
    "spend_limit_429": ("provider_quota_exceeded", "quota"),
}


@pytest.mark.parametrize("name", sorted(HTTP_CASES))
def test_http_error_fixtures(server, anth, name):
    entry = {e["name"]: e for e in json.loads((anth / "http_errors.json").read_text())}[name]
    server.enqueue(http_error(name))
    out = execute(make_adapter(server))
    code, kind = HTTP_CASES[name]
    assert out.types == ["error_occurred", "run_failed"]
    assert out.error.code == code and out.error.provider_error["kind"] == kind
    assert out.error.provider_error["provider"] == "claude"
    assert out.error.message == entry["body"]["error"]["message"]
    assert out.error.details["status_code"] == entry["status"]
    assert out.error.details["request_id"] == entry["body"]["request_id"]
    assert out.error.retryable is (code in ("provider_rate_limited", "provider_unavailable", "provider_timeout"))
    assert out.of("error_occurred")[0]["error_code"] == code
    if name == "rate_limit_429":
        assert out.error.details["retry_after"] == "3"
    assert len(server.requests) == 1  # max_retries=0: nothing hangs, nothing retried


def test_sdk_retries_honour_max_retries(server):
    server.enqueue(http_error("overloaded_529", retry_after_ms=1), text_stream("Recovered."))
    out = execute(make_adapter(server, max_retries=1))
    assert out.error is None and out.result.output["content"] == "Recovered."
    assert [r.headers["x-stainless-retry-count"] for r in server.requests] == ["0", "1"]


def test_connection_refused_is_provider_unavailable():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    adapter = ClaudeAdapter(api_key="k", base_url=f"http://127.0.0.1:{port}", max_retries=0)
    out = execute(adapter)
    assert out.error.code == "provider_unavailable" and out.error.provider_error["kind"] == "connection_error"
    assert out.types == ["error_occurred", "run_failed"]


# ---------------------------------------------------------------------------------------------
# tool loop with the built-in tools, permission modes
# ---------------------------------------------------------------------------------------------

def test_read_edit_answer_changes_the_file(server, tmp_path):
    (tmp_path / "utils.py").write_text("def f(c):\n    return c * 9 / 5 - 32\n")
    server.enqueue(
        tool_use_stream("read_file", {"path": "utils.py"}, text="Let me look.", id="toolu_read"),
        tool_use_stream("edit_file", {"path": "utils.py", "old_str": "- 32", "new_str": "+ 32"}, id="toolu_edit"),
        text_stream("Fixed the sign in utils.py."),
    )
    out = execute(make_adapter(server, cwd=str(tmp_path), permission_mode="accept_edits"))
    assert out.error is None, out.error
    assert (tmp_path / "utils.py").read_text() == "def f(c):\n    return c * 9 / 5 + 32\n"
    assert out.result.output["content"] == "Fixed the sign in utils.py."
    completed = out.of("tool_call_completed")
    assert [d["tool_name"] for d in completed] == ["read_file", "edit_file"]
    assert "c * 9 / 5 - 32" in completed[0]["tool_output"]
    assert server.requests[1].tool_results()[0]["tool_use_id"] == "toolu_read"
    assert "- 32" in server.requests[1].tool_results()[0]["content"]
    assert server.requests[2].tool_results()[-1]["tool_use_id"] == "toolu_edit"
    offered = [t["name"] for t in server.requests[0].body["tools"]]
    assert {"bash", "read_file", "write_file", "edit_file", "list_files", "grep"} <= set(offered)
    assert [d["turn"] for d in out.of("turn_completed")] == [1, 2, 3]
    assert "tool_approval_requested" not in out.types  # accept_edits: edits need no approval
    assert [c["name"] for c in out.result.output["tool_calls"]] == ["read_file", "edit_file"]


def test_default_mode_without_callback_declines_and_continues(server, tmp_path):
    (tmp_path / "a.txt").write_text("old")
    server.enqueue(tool_use_stream("write_file", {"path": "a.txt", "content": "new"}, id="toolu_w"),
                   text_stream("I could not write the file."))
    out = execute(make_adapter(server, cwd=str(tmp_path)))
    assert out.error is None
    assert (tmp_path / "a.txt").read_text() == "old"
    failed = out.of("tool_call_failed")
    assert failed[0]["reason"] == "declined" and failed[0]["is_error"] is True
    assert "approval_callback" in failed[0]["tool_output"]
    assert out.of("tool_approval_denied")[0]["reason"] == "no_approval_callback"
    sent = server.requests[1].tool_results()[0]
    assert sent["is_error"] is True and sent["tool_use_id"] == "toolu_w" and "Permission denied" in sent["content"]
    assert out.types[-1] == "run_completed"
    assert out.result.output["tool_calls"][0]["is_error"] is True


def test_default_mode_read_tools_run_without_asking(server, tmp_path):
    (tmp_path / "notes.md").write_text("alpha\nbeta\n")
    asked = []
    server.enqueue(tool_use_stream("grep", {"pattern": "bet"}), text_stream("Found it."))
    out = execute(make_adapter(server, cwd=str(tmp_path), approval_callback=lambda n, i: asked.append(n) or True))
    assert asked == []
    assert out.of("tool_call_completed")[0]["tool_output"] == "notes.md:2: beta"


def test_approval_callback_sync_grant_and_async_deny(server, tmp_path):
    asked = []

    def grant(name, tool_input):
        asked.append((name, tool_input))
        return True

    server.enqueue(tool_use_stream("write_file", {"path": "out.txt", "content": "hi"}), text_stream("Done."))
    out = execute(make_adapter(server, cwd=str(tmp_path), approval_callback=grant))
    assert (tmp_path / "out.txt").read_text() == "hi"
    assert asked == [("write_file", {"path": "out.txt", "content": "hi"})]
    order = [out.types.index(t) for t in ("tool_call_started", "turn_completed", "tool_approval_requested",
                                          "tool_approval_granted", "tool_call_completed")]
    assert order == sorted(order)
    assert out.of("tool_approval_requested")[0]["tool_name"] == "write_file"

    async def deny(name, tool_input):
        await asyncio.sleep(0)
        return False

    server.enqueue(tool_use_stream("write_file", {"path": "out2.txt", "content": "hi"}), text_stream("Ok."))
    out = execute(make_adapter(server, cwd=str(tmp_path), approval_callback=deny))
    assert not (tmp_path / "out2.txt").exists()
    assert "tool_approval_denied" in out.types
    assert out.of("tool_call_failed")[0]["reason"] == "declined"
    assert out.types[-1] == "run_completed"


def test_approval_callback_raising_denies(server, tmp_path):
    def boom(name, tool_input):
        raise RuntimeError("no UI")

    server.enqueue(tool_use_stream("bash", {"command": "touch x"}), text_stream("Ok."))
    out = execute(make_adapter(server, cwd=str(tmp_path), approval_callback=boom))
    assert not (tmp_path / "x").exists()
    assert "RuntimeError" in out.of("tool_approval_denied")[0]["reason"]
    assert out.types[-1] == "run_completed"


def test_accept_edits_asks_before_execution(server, tmp_path):
    asked = []
    server.enqueue(tool_use_stream("bash", {"command": "echo hi > made.txt"}), text_stream("Ok."))
    out = execute(make_adapter(server, cwd=str(tmp_path), permission_mode="accept_edits",
                               approval_callback=lambda n, i: asked.append(n) or False))
    assert asked == ["bash"] and not (tmp_path / "made.txt").exists()
    assert out.of("tool_call_failed")[0]["reason"] == "declined"


def test_plan_mode_offers_read_only_tools(server, tmp_path):
    server.enqueue(tool_use_stream("write_file", {"path": "p.txt", "content": "x"}), text_stream("Planned."))
    out = execute(make_adapter(server, cwd=str(tmp_path), permission_mode="plan",
                               approval_callback=lambda n, i: True))
    offered = {t["name"] for t in server.requests[0].body["tools"]}
    assert offered == {"read_file", "list_files", "grep"}
    assert not (tmp_path / "p.txt").exists()
    failed = out.of("tool_call_failed")[0]
    assert failed["reason"] == "declined" and "plan mode" in failed["tool_output"]
    assert "tool_approval_requested" not in out.types


@pytest.mark.parametrize("mode", ["full_auto", "dangerously_skip_permissions"])
def test_full_auto_runs_bash(server, tmp_path, mode):
    server.enqueue(tool_use_stream("bash", {"command": "echo hello-from-bash; pwd"}), text_stream("Ran it."))
    out = execute(make_adapter(server, cwd=str(tmp_path), permission_mode=mode))
    done = out.of("tool_call_completed")[0]
    assert "hello-from-bash" in done["tool_output"] and str(tmp_path.resolve()) in done["tool_output"]
    assert "tool_approval_requested" not in out.types


def test_bash_non_zero_exit_is_a_failed_tool_call(server, tmp_path):
    server.enqueue(tool_use_stream("bash", {"command": "echo oops; exit 3"}), text_stream("It failed."))
    out = execute(make_adapter(server, cwd=str(tmp_path), permission_mode="full_auto"))
    failed = out.of("tool_call_failed")[0]
    assert "oops" in failed["tool_output"] and "[exit code 3]" in failed["tool_output"]
    assert server.requests[1].tool_results()[0]["is_error"] is True
    assert out.types[-1] == "run_completed"


def test_path_escape_refused(server, tmp_path):
    inner = tmp_path / "ws"
    inner.mkdir()
    (tmp_path / "secret.txt").write_text("s3cr3t")
    server.enqueue(tool_use_stream("read_file", {"path": "../secret.txt"}), text_stream("Refused."))
    out = execute(make_adapter(server, cwd=str(inner)))
    failed = out.of("tool_call_failed")[0]
    assert "outside the working directory" in failed["tool_output"]
    assert "s3cr3t" not in json.dumps(server.requests[1].body)


def test_unknown_tool_and_raising_tool_are_reported_and_run_continues(server):
    @tool
    def flaky(x: int) -> int:
        """Always fails."""
        raise ValueError(f"bad x={x}")

    server.enqueue(
        StreamBuilder().tool_use("nope", {}, id="toolu_1").tool_use("flaky", {"x": 2}, id="toolu_2").end("tool_use"),
        text_stream("Both failed."),
    )
    out = execute(make_adapter(server, tools=[flaky], builtin_tools=False))
    failed = {d["tool_call_id"]: d for d in out.of("tool_call_failed")}
    assert "Unknown tool 'nope'" in failed["toolu_1"]["tool_output"]
    assert failed["toolu_2"]["tool_output"] == "ValueError: bad x=2"
    results = server.requests[1].tool_results()
    assert [r["tool_use_id"] for r in results] == ["toolu_1", "toolu_2"]
    assert all(r["is_error"] for r in results)
    assert out.types[-1] == "run_completed"


def test_user_tool_schema_and_result(server):
    @tool
    async def get_weather(city: str, unit: str = "c") -> dict:
        """Current weather.

        Args:
            city: City name.
            unit: c or f.
        """
        return {"city": city, "temp": 21}

    server.enqueue(tool_use_stream("get_weather", {"city": "Paris"}), text_stream("21 degrees."))
    out = execute(make_adapter(server, tools=[get_weather], builtin_tools=["read_file"]))
    spec = {t["name"]: t for t in server.requests[0].body["tools"]}
    assert set(spec) == {"get_weather", "read_file"}
    assert spec["get_weather"]["input_schema"]["required"] == ["city"]
    assert spec["get_weather"]["input_schema"]["properties"]["city"]["description"] == "City name."
    assert json.loads(out.of("tool_call_completed")[0]["tool_output"]) == {"city": "Paris", "temp": 21}


def test_tool_use_without_any_tools_hands_back(server):
    # the reference mock `tool_use_response`: input JSON split across deltas
    s = (StreamBuilder(input_tokens=50).text("Let me check the weather for you.")
         .tool_use("get_weather", raw_json='{"location": "San Francisco"}', chunks=2).end("tool_use", output_tokens=45))
    server.enqueue(s)
    out = execute(make_adapter(server, builtin_tools=False))
    assert out.error is None
    done = out.of("tool_call_completed")
    assert len(done) == 1 and done[0]["tool_input"] == {"location": "San Francisco"}
    assert done[0]["tool_output"] is None and done[0]["executed"] is False
    assert out.of("run_completed")[0]["stop_reason"] == "tool_use"
    assert out.result.output["stop_reason"] == "tool_use" and len(out.result.output["tool_calls"]) == 1
    assert out.result.token_usage["input_tokens"] == 50 and out.result.token_usage["output_tokens"] == 45
    assert "tools" not in server.requests[0].body


def test_max_turns_reached_fails_the_run(server, tmp_path):
    server.enqueue(tool_use_stream("list_files", {}))
    out = execute(make_adapter(server, cwd=str(tmp_path), max_turns=1))
    assert out.error.code == "provider_error" and out.error.provider_error["kind"] == "max_turns"
    assert out.of("tool_call_failed")[0]["reason"] == "stream_incomplete"
    assert len(server.requests) == 1


def test_thinking_blocks_are_sent_back_with_signature(server, tmp_path):
    server.enqueue(StreamBuilder().thinking("Need the file list.", signature="sig-123")
                   .tool_use("list_files", {}).end("tool_use"), text_stream("Empty."))
    out = execute(make_adapter(server, cwd=str(tmp_path), sdk_opts={"thinking": {"type": "enabled",
                                                                               "budget_tokens": 1024}}))
    assert out.error is None
    assistant = server.requests[1].messages[-2]["content"]
    assert assistant[0] == {"type": "thinking", "thinking": "Need the file list.", "signature": "sig-123"}
    assert server.requests[0].body["thinking"]["type"] == "enabled"
    assert out.result.output["content"] == "Empty."


# ---------------------------------------------------------------------------------------------
# cancellation, concurrency, isolation
# ---------------------------------------------------------------------------------------------

def test_cancel_from_callback_closes_the_stream(server):
    server.enqueue(StreamBuilder().text("partial answer").hang())
    adapter = make_adapter(server)
    run, session = new_run()
    events: list[dict] = []

    async def go():
        async def cb(ev):
            events.append(ev)
            if ev["type"] == "message_streamed" and len(events) < 10:
                assert await adapter.cancel(run.id) == run.id
        with pytest.raises(AsmError) as ei:
            await asyncio.wait_for(adapter.execute(run, session, event_callback=cb), 10)
        return ei.value

    err = asyncio.run(go())
    assert err.code == "cancelled"
    types = [e["type"] for e in events]
    assert types.count("run_cancelled") == 1 and types[-1] == "run_cancelled"
    assert server.wait_for_disconnects(1, timeout=5)  # the HTTP stream really was closed
    with pytest.raises(AsmError) as ei:
        asyncio.run(adapter.cancel(run.id))
    assert ei.value.code == "run_not_found"


def test_cancel_during_a_tool_closes_it(server):
    started = None

    @tool
    async def slow() -> str:
        """Takes forever."""
        started.set()
        await asyncio.sleep(30)
        return "never"

    server.enqueue(tool_use_stream("slow", {}, id="toolu_slow"))
    adapter = make_adapter(server, tools=[slow], builtin_tools=False)
    run, session = new_run()
    events: list[dict] = []

    async def go():
        nonlocal started
        started = asyncio.Event()
        task = asyncio.ensure_future(adapter.execute(run, session, event_callback=events.append))
        await asyncio.wait_for(started.wait(), 10)
        await adapter.cancel(run.id)
        with pytest.raises(AsmError) as ei:
            await asyncio.wait_for(task, 5)
        return ei.value

    assert asyncio.run(go()).code == "cancelled"
    failed = [e["data"] for e in events if e["type"] == "tool_call_failed"]
    assert failed == [{"tool_call_id": "toolu_slow", "tool_name": "slow", "tool_input": {}, "tool_output": None,
                       "is_error": True, "reason": "cancelled", "status": "unfinished"}]
    assert events[-1]["type"] == "run_cancelled"


def test_task_cancellation_emits_no_terminal_event_and_closes_stream(server):
    server.enqueue(StreamBuilder().text("x").hang())
    adapter = make_adapter(server)
    run, session = new_run()
    events: list[dict] = []

    async def go():
        task = asyncio.ensure_future(adapter.execute(run, session, event_callback=events.append))
        while not any(e["type"] == "message_streamed" for e in events):
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(go(), 10))
    assert not {"run_cancelled", "run_failed", "run_completed"} & {e["type"] for e in events}
    assert server.wait_for_disconnects(1, timeout=5)
    # the cut request was billed for its message_start usage: reported, marked partial
    usage = [e["data"] for e in events if e["type"] == "token_usage_updated"]
    assert [(u["input_tokens"], u["partial"]) for u in usage] == [(10, True)]


def test_cancel_unknown_run():
    adapter = ClaudeAdapter(api_key="k")
    with pytest.raises(AsmError) as ei:
        asyncio.run(adapter.cancel("non-existent-run-id"))
    assert ei.value.code == "run_not_found"


def test_three_concurrent_runs(server):
    server.default = text_stream("same answer")
    adapter = make_adapter(server)

    async def go():
        pairs = [new_run(f"q{i}") for i in range(3)]
        return await asyncio.gather(*(adapter.execute(r, s) for r, s in pairs))

    results = asyncio.run(asyncio.wait_for(go(), 20))
    assert [r.output["content"] for r in results] == ["same answer"] * 3
    assert len(server.requests) == 3
    assert len({r.events[0]["run_id"] for r in results}) == 3


def test_worker_failure_isolation(server):
    server.enqueue(text_stream("one"), text_stream("two"))
    adapter = make_adapter(server)

    def bad_callback(ev):
        if ev["type"] == "message_streamed":
            raise KeyError("callback bug")

    run, session = new_run()
    with pytest.raises(AsmError) as ei:
        asyncio.run(adapter.execute(run, session, event_callback=bad_callback))
    assert ei.value.code == "internal_error"
    assert len(asyncio.run(adapter.capabilities())) == 7  # ... interrupt, pause, resume
    out = execute(adapter)
    assert out.result.output["content"] == "two"


# ---------------------------------------------------------------------------------------------
# options, input, continuation
# ---------------------------------------------------------------------------------------------

def test_request_options(server):
    server.enqueue(text_stream("ok"))
    out = execute(make_adapter(server, model="sonnet", system_prompt="Be brief.", max_tokens=123, temperature=0.2,
                               sdk_opts={"top_k": 5, "stop_sequences": ["END"], "bogus": 1}))
    body = server.requests[0].body
    assert body["model"] == MODEL_ALIASES["sonnet"] and out.of("run_started")[0]["configured_model"] == body["model"]
    assert body["system"] == "Be brief." and body["max_tokens"] == 123 and body["temperature"] == 0.2
    assert body["top_k"] == 5 and body["stop_sequences"] == ["END"] and "bogus" not in body
    assert body["stream"] is True
    assert server.requests[0].headers["authorization"] == "Bearer test-key"


def test_execute_options_override_constructor(server):
    server.enqueue(text_stream("ok"))
    adapter = make_adapter(server, model="opus")
    run, session = new_run()
    asyncio.run(adapter.execute(run, session, model="claude-haiku-4-5", max_tokens=7))
    assert server.requests[0].body["model"] == "claude-haiku-4-5"
    assert server.requests[0].body["max_tokens"] == 7


def test_default_model_from_config(server):
    assert resolve_model(None) == "claude-haiku-4-5-20251001"
    assert resolve_model("HAIKU") == MODEL_ALIASES["haiku"]
    server.enqueue(text_stream("ok"))
    with config.override(claude_default_model="claude-opus-4-6"):
        execute(make_adapter(server))
    assert server.requests[0].body["model"] == "claude-opus-4-6"


def test_env_vars_are_read_by_the_sdk(server, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "env-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
    server.enqueue(text_stream("from env"))
    out = execute(ClaudeAdapter(max_retries=0))
    assert out.result.output["content"] == "from env"
    assert server.requests[0].headers["authorization"] == "Bearer env-key"


@pytest.mark.parametrize("run_input", [{"prompt": "Hi there"},
                                       {"messages": [{"role": "system", "content": "Sys"},
                                                     {"role": "user", "content": "Hi there"}]}])
def test_input_forms(server, run_input):
    server.enqueue(text_stream("ok"))
    out = execute(make_adapter(server), run_input)
    body = server.requests[0].body
    assert body["messages"] == [{"role": "user", "content": "Hi there"}]
    assert out.of("message_sent") == [{"role": "user", "content": "Hi there"}]
    if "messages" in run_input:
        assert body["system"] == "Sys"


def test_empty_input_is_rejected_without_events(server):
    out = execute(make_adapter(server), "")
    assert out.error.code == "validation_error" and out.events == [] and server.requests == []


def test_transcript_continuation(server):
    from asm_nb.core.transcript import Transcript, TranscriptMessage

    tr = Transcript.new("sess", messages=[
        TranscriptMessage(role="user", content="Earlier question"),
        TranscriptMessage(role="assistant", content="Earlier assistant reply"),
        TranscriptMessage(role="assistant", content=None, tool_call_id="t1", tool_name="read_file",
                          tool_input={"path": "a"}),
        TranscriptMessage(role="tool", content=None, tool_call_id="t1", tool_name="read_file", tool_output="A"),
    ])
    server.enqueue(text_stream("ok"))
    out = execute(make_adapter(server), "Current question", session_ctx={"transcript": tr, "system_prompt": "Ctx sys"})
    msgs = server.requests[0].body["messages"]
    flat = json.dumps(msgs)
    assert "Earlier question" in flat and "Earlier assistant reply" in flat and "Current question" in flat
    assert 'tool_call(t1): read_file {\\"path\\":\\"a\\"}' in flat and 'tool_result(t1): read_file \\"A\\"' in flat
    assert [m["role"] for m in msgs] == ["user", "assistant", "user"]  # alternation kept for the API
    assert msgs[-1]["content"][-1] == {"type": "text", "text": "Current question"}
    assert server.requests[0].body["system"] == "Ctx sys"
    assert out.of("message_sent") == [{"role": "user", "content": "Current question"}]


def test_capabilities_validate_config_and_registry():
    adapter = create_adapter("claude", api_key="k")
    assert isinstance(adapter, ClaudeAdapter) and adapter.name == "claude"
    caps = asyncio.run(adapter.capabilities())
    assert [(c.name, str(c.type)) for c in caps] == [("streaming", "sampling"), ("tool_use", "tool"),
                                                     ("vision", "resource"), ("system_prompts", "prompt"),
                                                     ("interrupt", "sampling"), ("pause", "sampling"),
                                                     ("resume", "sampling")]
    assert all(c.enabled for c in caps)
    for cfg in ({}, {"api_key": ""}, {"model": "claude-opus-4-6"}):
        assert adapter.validate_config(cfg) is None
    with pytest.raises(AsmError):
        adapter.validate_config(["not", "a", "mapping"])
    assert adapter.permission_mode is None and adapter.max_turns is None and adapter.sdk_opts == {}


def test_invalid_permission_mode_is_rejected_before_io(server):
    out = execute(make_adapter(server, permission_mode="yolo"))
    assert out.error.code == "validation_error" and out.events == [] and server.requests == []


def test_missing_sdk_raises_dependency_not_available(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "anthropic" else real(name, *a))
    assert ClaudeAdapter.name == "claude"
    with pytest.raises(AsmError) as ei:
        ClaudeAdapter()
    assert ei.value.code == "dependency_not_available"
    assert ei.value.details["dependency"] == "anthropic"


def test_run_once_end_to_end_with_local_store(server, tmp_path):
    from asm_nb import run_once

    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "a.txt").write_text("hello old\n")
    server.enqueue(tool_use_stream("read_file", {"path": "a.txt"}),
                   tool_use_stream("edit_file", {"path": "a.txt", "old_str": "old", "new_str": "new"}),
                   text_stream("Fixed a.txt."), text_stream("You asked me to fix a.txt."))
    opts = dict(provider="claude", store=str(tmp_path / "store"), cwd=str(ws), permission_mode="accept_edits",
                options={"api_key": "k", "base_url": server.base_url, "max_retries": 0}, session="chat")
    r = run_once("Fix a.txt", system="Be careful.", **opts)
    assert r.status == "completed" and r.error is None, r.error
    assert r.output == "Fixed a.txt."
    assert (ws / "a.txt").read_text() == "hello new\n"
    types = [str(getattr(e, "type", "")) for e in r.events]
    assert types[0] == "run_started" and types[-1] == "run_completed"
    assert types.count("tool_call_completed") == 2 and types.count("message_sent") == 1
    assert r.token_usage == usage_sum(Outcome(events=[{"type": "token_usage_updated", "data": e.data}
                                                      for e in r.events if str(e.type) == "token_usage_updated"]))
    assert server.requests[0].body["system"] == "Be careful."
    # a second run in the same session replays the first one (continuation)
    r2 = run_once("What did I ask?", **opts)
    assert r2.status == "completed" and r2.output == "You asked me to fix a.txt."
    sent = json.dumps(server.requests[3].body["messages"])
    assert "Fix a.txt" in sent and "Fixed a.txt." in sent and "What did I ask?" in sent


def test_read_timeout_is_provider_timeout(server):
    server.enqueue(StreamBuilder().text("slow").hang())
    out = execute(make_adapter(server), timeout=300)  # ms: handed to the SDK as its own timeout
    assert out.error.code == "provider_timeout" and out.error.provider_error["kind"] == "timeout"
    assert out.error.retryable and out.error.details["partial_content"] == "slow"
    assert out.types[-2:] == ["error_occurred", "run_failed"]


def test_policy_tool_hints_filter_offered_tools(server, tmp_path):
    server.enqueue(tool_use_stream("bash", {"command": "echo no"}), text_stream("ok"))
    out = execute(make_adapter(server, cwd=str(tmp_path), permission_mode="full_auto",
                               allowed_tools=["bash", "read_file", "grep"], denied_tools=["bash"]))
    assert {t["name"] for t in server.requests[0].body["tools"]} == {"read_file", "grep"}
    failed = out.of("tool_call_failed")[0]
    assert failed["reason"] == "declined" and "not allowed" in failed["tool_output"]


def test_missing_api_key_is_a_clear_authentication_error(monkeypatch):
    import asm_nb

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    r = asm_nb.run_once("hi", provider="claude", store="memory://")
    assert r.status == "failed"
    assert r.error.code == "provider_authentication_failed"
    assert "ANTHROPIC_API_KEY" in r.error.message


def test_the_stream_reader_dispatches_each_raw_event_without_a_handle_coroutine(server, monkeypatch):
    """The read loop folds each raw SSE event with its ``_ON`` step directly (no ``_Turn.handle``
    coroutine per event, ~0.2 us each on a 2,000-delta stream); every delta is still emitted,
    in order, with the same text."""
    from asm_nb.providers import _claude_stream

    handled: list[str] = []
    real = _claude_stream._Turn.handle

    async def handle(self, ev):
        handled.append(ev.type)
        await real(self, ev)

    monkeypatch.setattr(_claude_stream._Turn, "handle", handle)
    toks = [f"t{i} " for i in range(30)]
    server.enqueue(StreamBuilder().text(toks).end(output_tokens=30))
    out = execute(make_adapter(server, builtin_tools=False))
    assert out.error is None, out.error
    assert handled == []  # was one call per raw event
    assert [d["delta"] for d in out.of("message_streamed")] == toks
    assert out.result.output["content"] == "".join(toks)


def test_text_deltas_are_read_without_a_typed_sdk_event_each(server, monkeypatch):
    """A plain text delta is taken as the dict the SDK parsed from its SSE line: no typed event
    (pydantic union validation, ~10 us, more than the rest of a delta's path) per delta. Every
    other event is still the typed one the SDK builds (same call), and the events emitted are
    the same: text, order, usage, model."""
    import anthropic

    typed: list[Any] = []
    real = anthropic.AsyncAnthropic._process_response_data

    def counting(self, *, data, cast_to, response):
        if cast_to is not object:
            typed.append(data.get("type") if isinstance(data, dict) else data)
        return real(self, data=data, cast_to=cast_to, response=response)

    monkeypatch.setattr(anthropic.AsyncAnthropic, "_process_response_data", counting)
    toks = [f"t{i} " for i in range(30)]
    server.enqueue(StreamBuilder().text(toks).end(output_tokens=30))
    out = execute(make_adapter(server, builtin_tools=False))
    assert out.error is None, out.error
    # was 35: one typed event per delta too
    assert typed == ["message_start", "content_block_start", "content_block_stop", "message_delta",
                     "message_stop"]
    assert [d["delta"] for d in out.of("message_streamed")] == toks
    assert [d["content"] for d in out.of("message_streamed")] == toks
    assert out.result.output["content"] == "".join(toks)
    assert out.of("token_usage_updated")[0]["output_tokens"] == 30
    assert out.of("run_started")[0]["model"]


def test_a_delta_that_is_not_plain_text_is_folded_from_the_typed_sdk_event(server):
    """Thinking deltas, tool input JSON and signatures take the typed path; their events are unchanged."""
    server.enqueue(StreamBuilder().thinking("let me think", signature="sig").text(["A", "B"])
                   .end(output_tokens=3))
    out = execute(make_adapter(server, builtin_tools=False))
    assert out.error is None, out.error
    assert streamed_text(out, "reasoning") == "let me think"
    assert streamed_text(out) == "AB"


def test_an_sdk_item_observer_still_sees_typed_events(server, monkeypatch):
    """When something observes the SDK stream's items (the SDK's tracing reads typed events), the
    stream is left as it is: every item the observer sees is a typed SDK event."""
    import anthropic
    from anthropic.types import RawContentBlockDeltaEvent

    items: list[Any] = []

    class Observer:
        def begin(self) -> None:
            pass

        def item(self, item: Any) -> None:
            items.append(item)

        def end(self, how: str, error: BaseException | None = None) -> None:
            pass

    obs = Observer()
    monkeypatch.setattr(anthropic.AsyncStream, "_observer", property(lambda self: obs))
    toks = ["x", "y", "z"]
    server.enqueue(StreamBuilder().text(toks).end(output_tokens=3))
    out = execute(make_adapter(server, builtin_tools=False))
    assert out.error is None, out.error
    assert [d["delta"] for d in out.of("message_streamed")] == toks
    deltas = [i for i in items if getattr(i, "type", None) == "content_block_delta"]
    assert len(deltas) == 3 and all(isinstance(i, RawContentBlockDeltaEvent) for i in deltas)
    assert not any(isinstance(i, dict) for i in items)


def test_text_deltas_are_emitted_without_an_emit_coroutine_each(server, monkeypatch):
    """Each text delta goes to the callback through ``ActiveRun.stream_delta`` (no ``emit``
    coroutine, no copy of its data); ``emit`` is left for the other events."""
    from asm_nb.providers._base import ActiveRun

    emitted: list[str] = []
    real = ActiveRun.emit

    async def emit(self, type, data=None, **extra):
        emitted.append(type)
        return await real(self, type, data, **extra)

    monkeypatch.setattr(ActiveRun, "emit", emit)
    toks = [f"t{i} " for i in range(30)]
    server.enqueue(StreamBuilder().text(toks).end(output_tokens=30))
    out = execute(make_adapter(server, builtin_tools=False))
    assert out.error is None, out.error
    assert "message_streamed" not in emitted  # was 30 emit calls
    assert [d["delta"] for d in out.of("message_streamed")] == toks


def test_an_sdk_error_building_a_typed_event_is_a_stream_error(server, monkeypatch):
    """The typed event built from a parsed dict (everything but plain text deltas) fails as it
    would inside the SDK's iterator: a mapped provider error, not an internal error."""
    import anthropic
    import httpx2

    real = anthropic.AsyncAnthropic._process_response_data

    def failing(self, *, data, cast_to, response):
        if isinstance(data, dict) and data.get("type") == "message_delta" and cast_to is not object:
            raise anthropic.APIResponseValidationError(response=response or httpx2.Response(200, request=httpx2.Request("POST", "http://x")), body=data)
        return real(self, data=data, cast_to=cast_to, response=response)

    monkeypatch.setattr(anthropic.AsyncAnthropic, "_process_response_data", failing)
    server.enqueue(StreamBuilder().text(["a", "b"]).end(output_tokens=2))
    out = execute(make_adapter(server, builtin_tools=False))
    assert out.error is not None
    assert out.error.code != "internal_error" and out.error.provider_error is not None
    assert out.types[-1] == "run_failed"
    assert streamed_text(out) == "ab"


def test_streams_other_than_the_sdks_own_are_left_as_they_are():
    """Only an unread ``anthropic.AsyncStream`` itself is switched to parsed dicts: a subclass (it
    may read differently), a stream already being read, or any other iterable stays typed."""
    import anthropic

    from asm_nb.providers._claude_stream import _plain_items

    class Sub(anthropic.AsyncStream):
        pass

    def make(cls):
        s = object.__new__(cls)
        s.__dict__.update(_cast_to=dict, _client=anthropic.AsyncAnthropic(api_key="k", base_url="http://127.0.0.1:9"),
                          response=object())
        return s

    assert _plain_items(make(Sub)) is None
    read = make(anthropic.AsyncStream)
    read.__dict__["_iterator"] = iter(())
    assert _plain_items(read) is None and read._cast_to is dict
    assert _plain_items([{"type": "message_stop"}]) is None
    fresh = make(anthropic.AsyncStream)
    fresh.response = type("R", (), {"stream": None})()
    typed = _plain_items(fresh)
    assert typed is not None and fresh._cast_to is object


def test_one_hour_cache_writes_are_kept_apart_and_priced_at_their_rate(server):
    """A request whose cache writes are partly one-hour ones (``cache_control`` with ``ttl:
    "1h"``): the run's usage keeps that part (``cache_creation_1h_tokens``, inside
    ``cache_creation_tokens``) and its cost prices it at 2x input (Sonnet 4.5: $6 against $3.75
    per million for five-minute writes)."""
    from asm_nb.cost.calculator import price_run

    server.enqueue(StreamBuilder(model="claude-sonnet-4-5-20250929", input_tokens=10, cache_creation_tokens=4000,
                                 cache_1h_tokens=3000).text("ok").end(output_tokens=100))
    out = execute(make_adapter(server, model="claude-sonnet-4-5-20250929"))
    assert out.error is None
    assert out.result.token_usage == {"input_tokens": 10, "output_tokens": 100, "cache_read_tokens": 0,
                                      "cache_creation_tokens": 4000, "cache_creation_1h_tokens": 3000}
    (ev,) = out.of("token_usage_updated")
    assert ev["cache_creation_1h_tokens"] == 3000
    from types import SimpleNamespace

    run = SimpleNamespace(provider="claude", provider_metadata={"model": "claude-sonnet-4-5-20250929"}, metadata={},
                          token_usage=out.result.token_usage)
    info = price_run(run)
    assert info["cost_usd"] == pytest.approx((10 * 3 + 100 * 15 + 1000 * 3.75 + 3000 * 6) / 1e6, rel=1e-12)


def test_one_hour_cache_writes_reach_the_stored_run_and_its_cost(tmp_path):
    """The user path: ``run_once`` into a store; the stored run keeps the one-hour part and its
    cost uses the one-hour rate."""
    import asm_nb

    with FakeAnthropicServer() as srv:
        srv.enqueue(StreamBuilder(model="claude-sonnet-4-5-20250929", input_tokens=10, cache_creation_tokens=4000,
                                  cache_1h_tokens=3000).text("ok").end(output_tokens=100))
        adapter = ClaudeAdapter(api_key="k", base_url=srv.base_url, max_retries=0, builtin_tools=False,
                                model="claude-sonnet-4-5-20250929")
        res = asm_nb.run_once("hi", provider=adapter, store=str(tmp_path / "st"))
    run = asm_nb.open_store(str(tmp_path / "st")).get_run(res.run_id)
    assert run.token_usage["cache_creation_tokens"] == 4000 and run.token_usage["cache_creation_1h_tokens"] == 3000
    assert run.cost_usd == pytest.approx((10 * 3 + 100 * 15 + 1000 * 3.75 + 3000 * 6) / 1e6, rel=1e-12)
