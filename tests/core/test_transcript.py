"""Transcript building, truncation and store-backed builders (docs/event-model.md, transcripts)."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import datetime, timedelta, timezone

import pytest

from asm_nb import config
from asm_nb.core import transcript as tr
from asm_nb.core.errors import AsmError
from asm_nb.core.events import Event
from asm_nb.core.transcript import Role, Transcript, TranscriptBuilder, TranscriptMessage, from_events

T0 = datetime(2025, 1, 27, 12, tzinfo=timezone.utc)
SID = "ses_1"


def ev(type_, seq=None, t=0, id_=None, run_id="run_1", metadata=None, session_id=SID, **data) -> Event:
    return Event.new(type_, session_id, id=id_, run_id=run_id, sequence_number=seq,
                     timestamp=T0 + timedelta(seconds=t), data=data, metadata=metadata)


def simple(t: Transcript) -> list[tuple]:
    return [(m.role.value, m.content, m.tool_name) for m in t.messages]

# ---------------------------------------------------------------------------------------------
# data


def test_transcript_new_and_validation():
    t = Transcript.new(SID)
    assert (t.session_id, t.messages, t.last_sequence, t.last_timestamp, t.metadata) == (SID, [], None, None, {})
    for bad, message in [(None, "session_id is required"), ("", "session_id cannot be empty")]:
        with pytest.raises(AsmError) as ei:
            Transcript.new(bad)
        assert (ei.value.code, ei.value.message) == ("validation_error", message)
    t2 = Transcript.new(SID, messages=[{"role": "user", "content": "hi"}], last_sequence=3, metadata={"k": 1})
    assert t2.messages == [TranscriptMessage(Role.USER, "hi")]


def test_message_reads_like_a_mapping():
    m = TranscriptMessage(Role.TOOL, None, tool_call_id="c1", tool_name="grep", tool_output=[1])
    assert m["role"] == "tool" and m.get("tool_output") == [1] and m.get("nope", 5) == 5
    assert f"{m.role}" == "tool"
    with pytest.raises(KeyError):
        m["nope"]


def test_transcript_round_trip():
    events = [ev("message_sent", 1, content="q"), ev("tool_call_started", 2, tool_call_id="c", tool_name="ls",
                                                     tool_input={"path": "."}),
              ev("tool_call_completed", 3, tool_call_id="c", tool_name="ls", tool_output={"files": ["a"]})]
    t = from_events(events)
    d = t.to_dict()
    assert Transcript.from_dict(json.loads(json.dumps(d))).to_dict() == d
    with pytest.raises(AsmError, match="Invalid transcript map"):
        Transcript.from_dict([])
    with pytest.raises(AsmError, match="Invalid transcript role"):
        TranscriptMessage.from_dict({"role": "robot"})

# ---------------------------------------------------------------------------------------------
# from_events


def test_example_out_of_order_gives_four_messages_in_sequence_order():
    events = [
        ev("tool_call_completed", 4, tool_call_id="call_1", tool_name="search", tool_output="3 hits"),
        ev("message_received", 3, content="working on it"),
        ev("message_sent", 1, content="find me something"),
        ev("tool_call_started", 2, tool_call_id="call_1", tool_name="search", tool_input={"q": "something"}),
    ]
    t = from_events(events)
    assert t.session_id == SID and t.last_sequence == 4
    assert simple(t) == [("user", "find me something", None), ("assistant", None, "search"),
                         ("assistant", "working on it", None), ("tool", None, "search")]
    call, result = t.messages[1], t.messages[3]
    assert (call.tool_call_id, call.tool_input, call.tool_output) == ("call_1", {"q": "something"}, None)
    assert (result.tool_call_id, result.tool_input, result.tool_output) == ("call_1", None, "3 hits")


def test_streamed_chunks_merge_into_the_received_message():
    events = [ev("message_streamed", 1, delta="Hello"), ev("message_streamed", 2, delta=" world"),
              ev("message_received", 3, content="Hello world")]
    t = from_events(events)
    assert simple(t) == [("assistant", "Hello world", None)]
    # metadata is the stream's (merged chunk metadata; the later chunk wins)
    assert t.messages[0].metadata["sequence_number"] == 2


def test_received_without_content_uses_the_streamed_text():
    t = from_events([ev("message_streamed", 1, content="Hel"), ev("message_streamed", 2, delta="lo"),
                     ev("message_received", 3)])
    assert simple(t) == [("assistant", "Hello", None)]


def test_pending_stream_is_flushed_by_other_messages_and_at_the_end():
    t = from_events([ev("message_streamed", 1, delta="partial"), ev("message_sent", 2, content="next"),
                     ev("message_streamed", 3, delta="tail")])
    assert simple(t) == [("assistant", "partial", None), ("user", "next", None), ("assistant", "tail", None)]


def test_user_received_message_flushes_the_stream_first():
    t = from_events([ev("message_streamed", 1, delta="a"), ev("message_received", 2, role="user", content="u")])
    assert simple(t) == [("assistant", "a", None), ("user", "u", None)]


def test_reasoning_chunks_are_skipped():
    t = from_events([ev("message_streamed", 1, delta="thinking...", kind="reasoning"),
                     ev("message_streamed", 2, delta="Answer"), ev("message_received", 3)])
    assert simple(t) == [("assistant", "Answer", None)]
    only_thinking = from_events([ev("message_streamed", 1, delta="hmm", kind="reasoning")])
    assert only_thinking.messages == []


def test_empty_chunks_and_empty_contents_add_nothing():
    t = from_events([ev("message_streamed", 1, delta=""), ev("message_streamed", 2),
                     ev("message_sent", 3, content=""), ev("message_received", 4, content=None)])
    assert t.messages == [] and t.last_sequence == 4


def test_non_string_content_and_tool_names_are_repr():
    t = from_events([ev("message_sent", 1, content={"a": 1}), ev("message_streamed", 2, delta=42),
                     ev("tool_call_started", 3, tool_name=7, tool_input="not a dict")])
    assert simple(t) == [("user", "{'a': 1}", None), ("assistant", "42", None), ("assistant", None, "7")]
    assert t.messages[2].tool_input is None


@pytest.mark.parametrize("role,expected", [("USER", "user"), ("System", "system"), ("tool", "tool"),
                                           ("robot", "assistant"), (None, "assistant"), (3, "assistant")])
def test_received_roles(role, expected):
    t = from_events([ev("message_received", 1, role=role, content="x")])
    assert t.messages[0].role.value == expected


@pytest.mark.parametrize("role,expected", [("assistant", "assistant"), ("robot", "user"), (None, "user")])
def test_sent_roles(role, expected):
    assert from_events([ev("message_sent", 1, role=role, content="x")]).messages[0].role.value == expected


def test_only_canonical_keys_are_read():
    t = from_events([ev("tool_call_started", 1, tool_use_id="tu", call_id="c", input={"a": 1}, name="n"),
                     ev("tool_call_failed", 2, tool_use_id="tu", output="o", content="c")])
    call, result = t.messages
    assert (call.tool_call_id, call.tool_name, call.tool_input) == (None, None, None)
    assert (result.role, result.tool_call_id, result.tool_output) == (Role.TOOL, None, None)


def test_approval_request_becomes_a_paused_tool_message():
    t = from_events([ev("tool_approval_requested", 1, tool_call_id="c9", tool_name="bash", tool_input={"x": 1},
                        policy_name="p")])
    (m,) = t.messages
    assert (m.role, m.tool_call_id, m.tool_name, m.tool_output, m.tool_input) == \
        (Role.TOOL, "c9", "bash", "[Execution paused: awaiting human approval]", None)


def test_other_event_types_are_ignored():
    ignored = ["session_created", "run_started", "run_completed", "error_occurred", "token_usage_updated",
               "tool_approval_granted", "tool_approval_denied", "policy_violation", "workspace_diff_computed"]
    t = from_events([ev(tp, i, content="x", tool_name="y") for i, tp in enumerate(ignored, 1)])
    assert t.messages == [] and t.last_sequence == len(ignored)


def test_message_metadata_is_event_fields_overlaid_with_event_metadata():
    e = ev("message_sent", 5, id_="evt_1", content="x", metadata={"model": "m", "run_id": "override"})
    (m,) = from_events([e]).messages
    assert m.metadata == {"event_id": "evt_1", "run_id": "override", "timestamp": e.timestamp,
                          "sequence_number": 5, "model": "m"}
    (m2,) = from_events([ev("message_sent", None, run_id=None, id_="evt_2", content="y")]).messages
    assert set(m2.metadata) == {"event_id", "timestamp"}


def test_sort_order_sequenced_first_then_timestamp_then_id_then_position():
    seq1 = ev("message_sent", 1, t=10, content="seq1")
    a = ev("message_sent", None, t=0, id_="a", content="a")
    b = ev("message_sent", None, t=0, id_="b", content="b")
    c = ev("message_sent", None, t=1, id_="c", content="c")
    rng = random.Random(3)
    for _ in range(10):
        events = [seq1, a, b, c]
        rng.shuffle(events)
        assert [m.content for m in from_events(events).messages] == ["seq1", "a", "b", "c"]


def test_sort_ties_fall_back_to_input_position_and_none_timestamps_last():
    d1 = {"id": None, "type": "message_sent", "session_id": SID, "timestamp": None, "data": {"content": "late"}}
    same = [{"id": "x", "type": "message_sent", "session_id": SID, "timestamp": "2025-01-27T12:00:00Z",
             "sequence_number": 2, "data": {"content": f"tie{i}"}} for i in range(3)]
    timed = {"id": "zzz", "type": "message_sent", "session_id": SID, "timestamp": "2025-01-27T12:00:09Z",
             "data": {"content": "timed"}}
    t = from_events([d1, *same, timed])
    assert [m.content for m in t.messages] == ["tie0", "tie1", "tie2", "timed", "late"]
    assert t.last_timestamp is None  # the last sorted event has no timestamp
    assert t.last_sequence == 2


def test_accepts_event_dicts():
    e = ev("message_sent", 1, content="hi")
    t = from_events([e.to_dict()])
    assert simple(t) == [("user", "hi", None)] and t.last_timestamp == e.timestamp


def test_last_fields():
    events = [ev("message_sent", 3, t=1, content="a"), ev("run_started", None, t=50), ev("message_sent", 7, t=2,
                                                                                      content="b")]
    t = from_events(events)
    assert t.last_sequence == 7
    assert t.last_timestamp == T0 + timedelta(seconds=50)  # the unsequenced event sorts last
    empty = from_events([], session_id=SID)
    assert (empty.messages, empty.last_sequence, empty.last_timestamp) == ([], None, None)


def test_session_id_resolution():
    assert from_events([ev("message_sent", 1, content="x")], session_id="explicit").session_id == "explicit"
    assert from_events([{"type": "run_started"}, ev("message_sent", 1, session_id="ses_2")]).session_id == "ses_2"
    with pytest.raises(AsmError) as ei:
        from_events([])
    assert (ei.value.code, ei.value.message) == ("validation_error", "session_id is required to build transcript")

# ---------------------------------------------------------------------------------------------
# truncation


def _texts(*contents: str) -> Transcript:
    return Transcript.new(SID, messages=[TranscriptMessage(Role.USER, c) for c in contents])


def test_max_messages_keeps_the_newest():
    t = _texts("a", "b", "c", "d")
    assert [m.content for m in tr.maybe_truncate(t, max_messages=2).messages] == ["c", "d"]
    assert tr.maybe_truncate(t, max_messages=10) is t


@pytest.mark.parametrize("value", [0, -1, "2", 2.0, None, True])
def test_invalid_limits_are_ignored(value):
    t = _texts("aaaa", "bbbb")
    assert tr.maybe_truncate(t, max_messages=value, max_chars=value, max_tokens_approx=value) is t


def test_char_budget_stops_at_the_first_message_that_would_exceed_it():
    t = _texts("aaaa", "bb", "cccc", "dd")  # from the newest: 2, 6, 8, 12
    assert [m.content for m in tr.maybe_truncate(t, max_chars=6).messages] == ["cccc", "dd"]
    assert [m.content for m in tr.maybe_truncate(t, max_chars=7).messages] == ["cccc", "dd"]
    assert [m.content for m in tr.maybe_truncate(t, max_chars=8).messages] == ["bb", "cccc", "dd"]
    assert tr.maybe_truncate(t, max_chars=1).messages == []


def test_char_budget_is_contiguous_from_the_newest():
    t = _texts("a", "bbbbbbbbbb", "c")
    assert [m.content for m in tr.maybe_truncate(t, max_chars=5).messages] == ["c"]


def test_tool_messages_count_their_tool_name_only():
    t = Transcript.new(SID, messages=[
        TranscriptMessage(Role.USER, "hello"),
        TranscriptMessage(Role.ASSISTANT, None, tool_name="grep", tool_input={"q": "x" * 100}),
        TranscriptMessage(Role.TOOL, None, tool_output="y" * 100),
    ])
    assert len(tr.maybe_truncate(t, max_chars=4).messages) == 2
    assert len(tr.maybe_truncate(t, max_chars=9).messages) == 3


def test_token_budget_uses_chars_per_token_and_the_smaller_budget_wins():
    t = _texts("aaaa", "bbbb", "cccc")
    assert len(tr.maybe_truncate(t, max_tokens_approx=2).messages) == 2  # 2 * 4 = 8 chars
    with config.override(chars_per_token=1):
        assert len(tr.maybe_truncate(t, max_tokens_approx=8).messages) == 2
    assert len(tr.maybe_truncate(t, max_tokens_approx=3, chars_per_token=4).messages) == 3
    assert len(tr.maybe_truncate(t, max_chars=100, max_tokens_approx=1).messages) == 1
    assert len(tr.maybe_truncate(t, max_chars=4, max_tokens_approx=100).messages) == 1


def test_max_messages_applies_before_the_char_budget():
    t = _texts("a", "b", "c", "d")
    assert [m.content for m in tr.maybe_truncate(t, max_messages=3, max_chars=2).messages] == ["c", "d"]


def test_from_events_truncates():
    events = [ev("message_sent", i, content=f"m{i}") for i in range(1, 6)]
    t = from_events(events, max_messages=2)
    assert [m.content for m in t.messages] == ["m4", "m5"] and t.last_sequence == 5

# ---------------------------------------------------------------------------------------------
# store-backed builders


class FakeStore:
    """Just enough of SessionStore.get_events: append order, exclusive after, inclusive since."""

    def __init__(self, events):
        self.events = list(events)
        self.calls: list[tuple[str, dict]] = []

    def get_events(self, session_id, *, run_id=None, type=None, since=None, after=None, before=None, limit=None,
                   wait_timeout_ms=0):
        self.calls.append((session_id, {k: v for k, v in dict(run_id=run_id, type=type, since=since, after=after,
                                                              before=before, limit=limit).items() if v is not None}))
        out = [e for e in self.events if e.session_id == session_id]
        if run_id is not None:
            out = [e for e in out if e.run_id == run_id]
        if after is not None:
            out = [e for e in out if e.sequence_number > after]
        if since is not None:
            out = [e for e in out if e.timestamp >= since]
        return out[:limit] if limit is not None else out


class AsyncStore(FakeStore):
    async def get_events(self, session_id, **query):  # type: ignore[override]
        return FakeStore.get_events(self, session_id, **query)


def _history():
    return [ev("message_sent", 1, t=1, content="q1"), ev("message_received", 2, t=2, content="a1"),
            ev("message_sent", 3, t=3, run_id="run_2", content="q2"),
            ev("message_received", 4, t=4, run_id="run_2", content="a2")]


def test_from_store_forwards_query_keys_and_truncation():
    store = FakeStore(_history())
    t = tr.from_store(store, SID, run_id="run_2", limit=10, max_messages=1, wait_timeout_ms=5, unrelated=1)
    assert store.calls == [(SID, {"run_id": "run_2", "limit": 10})]
    assert simple(t) == [("assistant", "a2", None)] and t.last_sequence == 4 and t.session_id == SID
    with pytest.raises(AsmError, match="session_id is required"):
        tr.from_store(store, None)


def test_update_from_store_continues_after_the_last_sequence():
    store = FakeStore(_history()[:2])
    t = tr.from_store(store, SID)
    store.events += _history()[2:]
    updated = tr.update_from_store(store, t, after=0)
    assert store.calls[-1] == (SID, {"after": 2})  # last_sequence overrides the caller's after
    assert [m.content for m in updated.messages] == ["q1", "a1", "q2", "a2"]
    assert updated.last_sequence == 4 and updated.last_timestamp == T0 + timedelta(seconds=4)
    assert [m.content for m in t.messages] == ["q1", "a1"]  # original unchanged


def test_update_without_new_events_returns_the_transcript_truncated():
    store = FakeStore(_history())
    t = tr.from_store(store, SID)
    assert tr.update_from_store(store, t) is t
    assert [m.content for m in tr.update_from_store(store, t, max_messages=1).messages] == ["a2"]


def test_update_uses_since_when_there_is_no_sequence():
    unsequenced = [ev("message_sent", None, t=1, content="old")]
    store = FakeStore(unsequenced)
    t = tr.from_store(store, SID)
    assert t.last_sequence is None and t.last_timestamp == T0 + timedelta(seconds=1)
    store.events.append(ev("message_sent", None, t=5, content="new"))
    tr.update_from_store(store, t)
    assert store.calls[-1] == (SID, {"since": T0 + timedelta(seconds=1)})
    custom = T0 + timedelta(seconds=3)
    updated = tr.update_from_store(store, t, since=custom)
    assert store.calls[-1] == (SID, {"since": custom})
    assert [m.content for m in updated.messages] == ["old", "new"]
    empty = Transcript.new(SID)
    tr.update_from_store(store, empty, run_id="run_1")
    assert store.calls[-1] == (SID, {"run_id": "run_1"})


def test_a_stream_split_across_the_boundary_becomes_two_messages():
    store = FakeStore([ev("message_streamed", 1, delta="Hel")])
    t = tr.from_store(store, SID)
    store.events += [ev("message_streamed", 2, delta="lo"), ev("message_received", 3)]
    updated = tr.update_from_store(store, t)
    assert [m.content for m in updated.messages] == ["Hel", "lo"]


def test_update_merges_metadata():
    store = FakeStore(_history())
    t = Transcript.new(SID, metadata={"a": 1}, last_sequence=0)
    assert tr.update_from_store(store, t).metadata == {"a": 1}


def test_async_twins_match_the_sync_builders():
    store = FakeStore(_history()[:2])
    sync = tr.from_store(store, SID)
    got = asyncio.run(tr.afrom_store(store, SID))
    assert got.to_dict() == sync.to_dict()
    store.events += _history()[2:]
    assert asyncio.run(tr.aupdate_from_store(store, got)).to_dict() == tr.update_from_store(store, sync).to_dict()


def test_async_builders_await_async_stores_and_sync_ones_refuse_them():
    store = AsyncStore(_history())
    t = asyncio.run(tr.afrom_store(store, SID, max_messages=2))
    assert [m.content for m in t.messages] == ["q2", "a2"]
    assert asyncio.run(tr.aupdate_from_store(store, t)) is t
    with pytest.raises(AsmError, match="use afrom_store"):
        tr.from_store(store, SID)


def test_builder_namespace():
    assert TranscriptBuilder.from_events is from_events
    assert TranscriptBuilder.from_store is tr.from_store
    assert TranscriptBuilder.aupdate_from_store is tr.aupdate_from_store


def test_events_already_in_sequence_are_not_sorted_again(monkeypatch):
    """A store returns a session's events in ascending sequence: building the transcript of a
    long session (the first turn after a restart) takes them as they are; any other order is
    still sorted."""
    import builtins

    from asm_nb.core import transcript as tmod

    calls: list[int] = []
    monkeypatch.setattr(tmod, "sorted", lambda it, **kw: calls.append(1) or builtins.sorted(it, **kw),
                        raising=False)
    evs = [Event.new("message_sent" if i % 2 == 0 else "message_received", "ses_1",
                     data={"content": f"m{i}"}, sequence_number=i + 1) for i in range(200)]
    t = tmod.from_events(evs)
    assert calls == [] and [m.content for m in t.messages] == [f"m{i}" for i in range(200)]
    t2 = tmod.from_events(list(reversed(evs)))
    assert calls == [1] and [m.content for m in t2.messages] == [f"m{i}" for i in range(200)]
