"""Property tests: no byte stream or JSON line makes the CLI line parsers / mappers raise."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asm_nb.core.errors import AsmError
from asm_nb.providers._codex_map import CodexMapper
from asm_nb.providers._jsonl import LineSplitter, parse_line
from asm_nb.providers._mapper import Outcome, ProcessExit
from asm_nb.providers._stream_json import AmpMapper, ClaudeCodeMapper

MAPPERS = (CodexMapper, ClaudeCodeMapper, AmpMapper)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# JSON values, biased towards the shapes the mappers look at
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**12), st.floats(allow_nan=True),
                    st.text(max_size=20))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=5)), max_leaves=20)
TYPES = ["thread.started", "turn.started", "item.started", "item.updated", "item.completed", "turn.completed",
         "turn.failed", "turn.aborted", "error", "item.agent_message.delta", "thread.token_usage.updated",
         "tool_call.requested", "tool_call.completed", "system", "assistant", "user", "result", "stream_event",
         "rate_limit_event"]
ITEM_TYPES = ["agent_message", "reasoning", "command_execution", "file_change", "mcp_tool_call", "web_search",
              "todo_list", "error", "agentMessage", "collab_tool_call", None, 5]
KEYS = ["type", "subtype", "item", "message", "usage", "error", "result", "is_error", "session_id", "thread_id",
        "event", "parent_tool_use_id", "content", "id", "text", "status", "exit_code", "call_id", "tool_name",
        "arguments", "output", "total_cost_usd", "api_error_status", "tool_use_result", "model", "changes"]


@st.composite
def native_objects(draw):
    obj = draw(st.dictionaries(st.sampled_from(KEYS), json_values, max_size=6))
    obj["type"] = draw(st.one_of(st.sampled_from(TYPES), json_values))
    if draw(st.booleans()):
        item = draw(st.dictionaries(st.sampled_from(KEYS), json_values, max_size=6))
        item["type"] = draw(st.sampled_from(ITEM_TYPES))
        obj["item"] = item
    if draw(st.booleans()):
        blocks = draw(st.lists(st.fixed_dictionaries(
            {"type": st.sampled_from(["text", "thinking", "tool_use", "tool_result", "image", 3])},
            optional={"text": json_values, "thinking": json_values, "id": json_values, "name": json_values,
                      "input": json_values, "tool_use_id": json_values, "content": json_values,
                      "is_error": json_values}), max_size=4))
        obj["message"] = {"id": draw(json_values), "model": draw(st.sampled_from(["m", "<synthetic>", None])),
                          "content": blocks, "usage": draw(json_values)}
    return obj


exits = st.builds(ProcessExit, returncode=st.one_of(st.none(), st.integers(-2, 255)),
                  signal=st.one_of(st.none(), st.sampled_from([2, 9, 15, 99])),
                  stderr=st.text(max_size=50), stderr_truncated=st.booleans(), we_signalled=st.booleans(),
                  cancel_requested=st.booleans())


def _check_outcome(outcome: Outcome) -> None:
    assert outcome.status in ("completed", "failed", "cancelled")
    if outcome.status == "failed":
        assert isinstance(outcome.error, AsmError)
    for etype, data in outcome.events:
        assert isinstance(etype, str) and isinstance(data, dict)
    json.dumps(outcome.output)  # output is plain JSON


@FAST
@given(chunks=st.lists(st.binary(max_size=200), max_size=8), exit=exits)
def test_random_bytes_never_raise(chunks, exit):
    for cls in MAPPERS:
        splitter = LineSplitter()
        mapper = cls(prompt_messages=[{"role": "user", "content": "hi"}])
        lines = []
        for chunk in chunks:
            lines += splitter.feed(chunk)
        tail = splitter.close()
        for no, text in lines:
            parsed = parse_line(no, text)
            if parsed is not None:
                for etype, data in mapper.on_line(parsed):
                    assert isinstance(etype, str) and isinstance(data, dict)
        if tail is not None:
            parsed = parse_line(tail[0], tail[1], torn=True)
            if parsed is not None:
                assert not parsed.ok
                mapper.on_line(parsed)
        _check_outcome(mapper.end(exit))


@FAST
@given(objs=st.lists(native_objects(), max_size=8), exit=exits)
def test_random_native_objects_never_raise(objs, exit):
    for cls in MAPPERS:
        mapper = cls(prompt_messages=[{"role": "user", "content": "hi"}], configured_model="m")
        for i, obj in enumerate(objs, 1):
            line = json.dumps(obj)
            parsed = parse_line(i, line)
            for etype, data in mapper.on_line(parsed):
                assert isinstance(etype, str) and isinstance(data, dict)
                json.dumps(data, default=str)
                # the defensive catch-all in MapperBase.on_line must not be what handled the line
                assert not str(data.get("error_message", "")).startswith("Could not map"), data
                if etype.startswith("tool_call"):
                    assert isinstance(data["tool_call_id"], str)
                if etype == "token_usage_updated":
                    assert all(isinstance(data[k], int) and data[k] >= 0 for k in
                               ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens"))
        _check_outcome(mapper.end(exit))


@FAST
@given(text=st.text(max_size=300))
def test_parse_line_classifies_every_text(text):
    parsed = parse_line(7, text)
    if not text.strip():
        assert parsed is None
    else:
        assert parsed.line_no == 7 and parsed.raw == text
        assert parsed.ok == (parsed.error is None)
        if parsed.ok:
            assert isinstance(parsed.obj, dict)


@FAST
@given(data=st.binary(max_size=500), cuts=st.lists(st.integers(0, 500), max_size=6))
def test_splitter_is_chunking_independent(data, cuts):
    """Lines come out the same however the stream is chunked."""
    def split(parts):
        s = LineSplitter()
        out = []
        for p in parts:
            out += s.feed(p)
        tail = s.close()
        return out, tail

    points = sorted(set(c for c in cuts if c <= len(data)))
    parts, prev = [], 0
    for c in points:
        parts.append(data[prev:c])
        prev = c
    parts.append(data[prev:])
    assert split(parts) == split([data])
