"""Work done per adapter event on the user path (``run_once`` -> LocalStore), counted, not timed.

Each streamed delta goes through the manager callback: what can be resolved once per run (the
pipeline, its context, whether the store is called inline, whether any telemetry listens) must
not be redone per event, and the event dict must not be copied again before the pipeline (which
copies what it keeps). The guarantees stay: every event stored, gap-free sequence numbers,
secrets redacted before the store and before the user's callback sees the stored copy, telemetry
emitted when a handler is attached.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asm_nb
from asm_nb import telemetry
from asm_nb.persistence.pipeline import EventPipeline
from asm_nb.ports import CALLBACK_DONE
from asm_nb.providers._base import BaseAdapter
from asm_nb.stores.local import LocalStore

N = 40


class Deltas(BaseAdapter):
    """Streams ``n`` text deltas; delta ``secret_at`` carries a credential."""

    name = "work_deltas"

    def __init__(self, n: int, secret_at: int | None = None) -> None:
        super().__init__()
        self.n = n
        self.secret_at = secret_at

    async def _execute(self, active: Any, **opts: Any) -> dict:
        await active.emit("run_started", {"model": "m"})
        for i in range(self.n):
            text = "password=hunter2hunter2 " if i == self.secret_at else f"tok{i} "
            await active.emit("message_streamed", {"delta": text, "content": text})
        await active.emit("run_completed", {"stop_reason": "end_turn"})
        return {"output": {"content": "done"}, "token_usage": {"input_tokens": 1, "output_tokens": self.n}}


def _spy_process(monkeypatch: Any) -> list[tuple[Any, Any]]:
    """Every ``(raw, ctx)`` the pipeline builds an event from: ``build_event`` is what both
    ``EventPipeline.process`` and the per-run ``EventPipeline.bind`` call once per event."""
    from asm_nb.persistence import pipeline

    seen: list[tuple[Any, Any]] = []
    real = pipeline.build_event

    def build_event(raw: Any, ctx: Any) -> Any:
        seen.append((raw, ctx))
        return real(raw, ctx)

    monkeypatch.setattr(pipeline, "build_event", build_event)
    return seen


def test_an_inline_store_gets_one_pipeline_context_per_run_and_the_event_uncopied(tmp_path: Any, monkeypatch: Any) -> None:
    seen = _spy_process(monkeypatch)
    shown: list[dict] = []
    store = LocalStore(tmp_path)
    try:
        r = asm_nb.run_once("go", provider=Deltas(N, secret_at=7), store=store, on_event=shown.append)
        assert r.status == "completed", r
        deltas = [(raw, ctx) for raw, ctx in seen if raw.get("type") == "message_streamed"]
        assert len(deltas) == N
        # one context object for the whole run (was: a new PipelineContext per event)
        assert len({id(ctx) for _, ctx in deltas}) == 1
        # the pipeline gets the callback's own event dict (was: a further dict(raw) copy per event)
        shown_deltas = [ev for ev in shown if ev.get("type") == "message_streamed"]
        assert len(shown_deltas) == N
        assert all(raw is ev for (raw, _), ev in zip(deltas, shown_deltas))
        # guarantees kept: all stored, gap-free, the secret redacted on disk
        events = store.get_events(r.session_id, run_id=r.run_id)
        seqs = [e.sequence_number for e in store.get_events(r.session_id)]
        assert seqs == list(range(1, len(seqs) + 1))
        streamed = [e for e in events if e.type.value == "message_streamed"]
        assert len(streamed) == N
        assert "hunter2" not in streamed[7].data["delta"] and "[REDACTED]" in streamed[7].data["delta"]
        assert [ev["sequence_number"] for ev in shown_deltas] == [e.sequence_number for e in streamed]
    finally:
        store.close()
    assert b"hunter2" not in b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())


def test_no_adapter_telemetry_work_per_event_without_a_handler(tmp_path: Any, monkeypatch: Any) -> None:
    calls: list[Any] = []
    real = telemetry.emit_adapter_event

    def counting(event: Any, run: Any, session: Any) -> None:
        calls.append(event)
        real(event, run, session)

    monkeypatch.setattr(telemetry, "emit_adapter_event", counting)
    monkeypatch.setattr(telemetry, "_by_name", {})  # no handler attached anywhere
    r = asm_nb.run_once("go", provider=Deltas(N), store=LocalStore(tmp_path / "a"))
    assert r.status == "completed", r
    assert calls == []  # was: one call per adapter event

    got: list[Any] = []
    name = telemetry.TELEMETRY_PREFIX + ("adapter", "message_streamed")
    telemetry.attach("work-test", name, lambda n, m, md, cfg: got.append(md["event_data"]))
    try:
        r = asm_nb.run_once("go", provider=Deltas(N), store=LocalStore(tmp_path / "b"))
    finally:
        telemetry.detach("work-test")
    assert r.status == "completed", r
    assert len(got) == N  # with a handler the per-event telemetry is emitted as before
    assert len(calls) == N + 2  # run_started, N deltas, run_completed


def test_canonical_types_dict_payloads_and_utc_timestamps_are_taken_as_they_are(tmp_path: Any, monkeypatch: Any) -> None:
    """The adapters' usual event (a canonical type string, a dict payload, an aware UTC timestamp)
    is not re-resolved, ABC-checked or re-parsed per event; odd ones still are."""
    from collections.abc import Mapping

    from asm_nb.persistence import pipeline
    from asm_nb.runtime import run_events

    counts = {"resolve_type": 0, "isinstance": 0, "timestamp": 0}
    real_resolve, real_ts = run_events.resolve_type, pipeline._timestamp

    def resolve(x: Any) -> Any:
        counts["resolve_type"] += 1
        return real_resolve(x)

    def stamp(x: Any) -> Any:
        counts["timestamp"] += 1
        return real_ts(x)

    class _Meta(type):
        def __instancecheck__(cls, obj: Any) -> bool:
            counts["isinstance"] += 1
            return isinstance(obj, Mapping)

    class CountingMapping(metaclass=_Meta):
        pass

    monkeypatch.setattr(run_events, "resolve_type", resolve)
    monkeypatch.setattr(run_events, "Mapping", CountingMapping)
    monkeypatch.setattr(pipeline, "_timestamp", stamp)
    store = LocalStore(tmp_path)
    try:
        r = asm_nb.run_once("go", provider=Deltas(N), store=store)
        assert r.status == "completed", r
        assert counts["resolve_type"] < 3 and counts["isinstance"] < 3 and counts["timestamp"] < 3, counts
        events = store.get_events(r.session_id, run_id=r.run_id)
        assert sum(e.type.value == "message_streamed" for e in events) == N
        assert all(e.timestamp.tzinfo is not None and e.timestamp.utcoffset().total_seconds() == 0 for e in events)
    finally:
        store.close()


def test_a_non_canonical_type_or_timestamp_is_still_resolved(tmp_path: Any) -> None:
    from datetime import datetime, timedelta, timezone

    class Odd(BaseAdapter):
        name = "odd_types"

        async def _execute(self, active: Any, **opts: Any) -> dict:
            await active.emit("run_started", {"model": "m"})
            plus2 = datetime(2026, 1, 2, 12, 0, tzinfo=timezone(timedelta(hours=2)))
            await active.emit("message_streamed", {"delta": "x", "content": "x"}, timestamp=plus2)
            await active.emit("no_such_type", {"x": 1})
            await active.emit("run_completed", {"stop_reason": "end_turn"})
            return {"output": {"content": "x"}}

    seen: list[dict] = []
    store = LocalStore(tmp_path)
    try:
        r = asm_nb.run_once("go", provider=Odd(), store=store, on_event=seen.append)
        events = store.get_events(r.session_id, run_id=r.run_id)
    finally:
        store.close()
    streamed = next(e for e in events if e.type.value == "message_streamed")
    assert streamed.timestamp == datetime(2026, 1, 2, 10, 0, tzinfo=timezone.utc)
    assert streamed.timestamp.tzinfo is timezone.utc
    assert "no_such_type" not in [ev["type"] for ev in seen]
    assert any(e.type.value == "error_occurred" and e.data == {"x": 1} for e in events)


def test_filtering_audit_records_does_no_abc_check_per_event(monkeypatch: Any) -> None:
    """``without_audit`` (a SqlStore result's events) decides on an ``Event`` with a dict
    metadata without ``isinstance(..., Mapping)``; dict events and odd metadata still work."""
    from collections.abc import Mapping

    from asm_nb.core import events as core_events
    from asm_nb.core.events import Event, is_audit, without_audit

    checks = [0]

    class _Meta(type):
        def __instancecheck__(cls, obj: Any) -> bool:
            checks[0] += 1
            return isinstance(obj, Mapping)

    class CountingMapping(metaclass=_Meta):
        pass

    evs = [Event.new("message_streamed", "ses_1", data={"delta": "x"}) for _ in range(N)]
    evs.append(Event.new("run_started", "ses_1", metadata={"source": "audit"}))
    monkeypatch.setattr(core_events, "Mapping", CountingMapping)
    kept = without_audit(evs)
    assert len(kept) == N and checks[0] == 0  # was: two ABC checks per event
    assert is_audit({"type": "run_started", "metadata": {"source": "audit"}})
    assert not is_audit({"type": "run_started", "metadata": None})
    assert not is_audit(object())


def test_a_sqlstore_run_does_not_read_its_events_back_until_asked(tmp_path: Any, monkeypatch: Any) -> None:
    """``run_once`` into a SqlStore returned a result built by reading every event of the run
    back (one ``event_from_row`` per event); the events now load when ``RunResult.events`` is
    read, also after the store is closed."""
    from asm_nb.stores import sql as sql_mod
    from asm_nb.stores.sql import SqlStore

    rows = [0]
    real = sql_mod.event_from_row

    def counting(r: Any) -> Any:
        rows[0] += 1
        return real(r)

    monkeypatch.setattr(sql_mod, "event_from_row", counting)
    store = SqlStore(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        r = asm_nb.run_once("go", provider=Deltas(N, secret_at=3), store=store)
        assert r.status == "completed", r
        assert rows[0] == 0  # was: N + 2 (every stored event of the run, read back)
    finally:
        store.close()
    events = r.events  # loads now, from a closed store
    assert rows[0] >= N + 2
    assert [e.type.value for e in events][:2] == ["run_started", "message_streamed"]
    assert sum(e.type.value == "message_streamed" for e in events) == N
    assert all(e.metadata.get("source") != "audit" for e in events)
    seqs = [e.sequence_number for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert "hunter2" not in events[4].data["delta"]


class Returns(BaseAdapter):
    """Streams ``n`` deltas and records what the manager's callback returned for each event;
    ``tool_left_open``: a tool call is still open when ``run_completed`` comes."""

    name = "work_returns"

    def __init__(self, n: int, tool_left_open: bool = False) -> None:
        super().__init__()
        self.n = n
        self.tool_left_open = tool_left_open
        self.returned: list[tuple[str, Any]] = []

    async def execute(self, run: Any, session: Any, *, event_callback: Any = None, **kw: Any) -> Any:
        cb = event_callback

        def spy(ev: dict) -> Any:
            res = cb(ev)
            self.returned.append((ev["type"], res))
            return res

        return await super().execute(run, session, event_callback=spy, **kw)

    async def _execute(self, active: Any, **opts: Any) -> dict:
        await active.emit("run_started", {"model": "m"})
        if self.tool_left_open:
            await active.emit("tool_call_started", {"tool_call_id": "t1", "tool_name": "bash", "tool_input": {}})
        for i in range(self.n):
            await active.emit("message_streamed", {"delta": f"tok{i} ", "content": f"tok{i} "})
        active.open_tools.clear()  # the adapter forgets the call: the manager must close it
        await active.emit("run_completed", {"stop_reason": "end_turn"})
        return {"output": {"content": "done"}, "token_usage": {"input_tokens": 1, "output_tokens": self.n}}


def test_the_manager_callback_is_synchronous_for_an_inline_store(tmp_path: Any) -> None:
    """Inline store, no policy, sync (or no) user callback: the callback does its work and returns
    the finished ``CALLBACK_DONE``, so an adapter awaits nothing per event (was: a coroutine per
    event); an adapter that awaits it anyway gets None at once."""
    store = LocalStore(tmp_path)
    try:
        for on_event in (None, []):
            ad = Returns(N)
            shown: list[dict] = []
            r = asm_nb.run_once("go", provider=ad, store=store,
                                on_event=shown.append if on_event is not None else None)
            assert r.status == "completed", r
            assert len(ad.returned) == N + 2
            assert all(res is CALLBACK_DONE for _, res in ad.returned), ad.returned[:3]
            streamed = [e for e in store.get_events(r.session_id, run_id=r.run_id) if e.type.value == "message_streamed"]
            assert [e.data["delta"] for e in streamed] == [f"tok{i} " for i in range(N)]
            if on_event is not None:
                assert [ev["sequence_number"] for ev in shown if ev["type"] == "message_streamed"] == \
                    [e.sequence_number for e in streamed]
        seqs = [e.sequence_number for e in store.get_events(r.session_id)]
        assert seqs == list(range(1, len(seqs) + 1))
    finally:
        store.close()


def test_an_async_user_callback_a_policy_or_an_open_tool_still_get_awaited(tmp_path: Any) -> None:
    """Where the callback must wait (an async user callback, a policy observing the run, a tool
    call to close before the terminal event) it returns an awaitable and the work is done."""
    import asyncio

    store = LocalStore(tmp_path)
    try:
        seen: list[str] = []

        async def slow_user(ev: dict) -> None:
            await asyncio.sleep(0)
            seen.append(ev["type"])

        ad = Returns(5)
        r = asm_nb.run_once("go", provider=ad, store=store, on_event=slow_user)
        assert r.status == "completed", r
        assert all(asyncio.iscoroutine(res) for _, res in ad.returned)
        assert seen.count("message_streamed") == 5 and seen[-1] == "run_completed"

        ad = Returns(5)
        r = asm_nb.run_once("go", provider=ad, store=store, policy={"max_tokens": 10_000})
        assert r.status == "completed", r
        assert all(asyncio.iscoroutine(res) for _, res in ad.returned)

        ad = Returns(3, tool_left_open=True)
        r = asm_nb.run_once("go", provider=ad, store=store)
        assert [t for t, res in ad.returned if res is not CALLBACK_DONE] == ["run_completed"]
        types = [e.type.value for e in store.get_events(r.session_id, run_id=r.run_id)
                 if (e.metadata or {}).get("source") != "audit"]
        # the open call was closed (tool_call_failed) before the single terminal event
        assert types.index("tool_call_failed") < types.index("run_completed")
        assert types.count("run_completed") == 1
    finally:
        store.close()


def test_emit_counts_a_delta_without_a_kept_events_call(tmp_path: Any, monkeypatch: Any) -> None:
    """``ActiveRun.emit`` counts an event ``KeptEvents`` does not keep (a delta) itself: one
    ``KeptEvents.append`` call per run_started/terminal event only (was one per event), and what
    is kept and counted is the same as before."""
    from asm_nb.ports import KeptEvents

    calls: list[str] = []
    real = KeptEvents.append

    def append(self: KeptEvents, ev: dict) -> None:
        calls.append(ev["type"])
        real(self, ev)

    monkeypatch.setattr(KeptEvents, "append", append)
    seen: list[KeptEvents] = []

    class Spy(Deltas):
        async def _execute(self, active: Any, **opts: Any) -> dict:
            seen.append(active.events)
            return await super()._execute(active, **opts)

    store = LocalStore(tmp_path)
    try:
        r = asm_nb.run_once("go", provider=Spy(N), store=store)
        assert r.status == "completed", r
        assert calls == ["run_started", "run_completed"]  # no call per delta
        kept = seen[0]
        assert type(kept) is KeptEvents and kept.count == N + 2
        assert [ev["type"] for ev in kept] == ["run_started", "run_completed"]
        assert len([e for e in store.get_events(r.session_id, run_id=r.run_id)
                    if e.type.value == "message_streamed"]) == N
    finally:
        store.close()


def test_emit_keeps_what_kept_events_keeps_for_every_type() -> None:
    """The counting fast path in emit and ``KeptEvents.append`` agree, ``run_timeout`` (kept by
    KeptEvents, not a terminal of the adapter's own) and a second run_started included."""
    from types import SimpleNamespace

    from asm_nb.ports import KeptEvents
    from asm_nb.providers._base import ActiveRun

    def cb(ev: dict) -> Any:
        return CALLBACK_DONE

    cb.records_events = True  # type: ignore[attr-defined]
    types = ["run_started", "message_streamed", "run_started", "tool_call_started", "run_timeout",
             "message_streamed", "run_completed"]
    ar = ActiveRun(run=SimpleNamespace(id="run_1"), session=SimpleNamespace(id="ses_1"),  # type: ignore[arg-type]
                   adapter=SimpleNamespace(name="t"), callback=cb)  # type: ignore[arg-type]
    assert type(ar.events) is KeptEvents
    ref = KeptEvents()

    async def go() -> None:
        for t in types:
            ev = await ar.emit(t, {"tool_call_id": "c1"} if t.startswith("tool") else {})
            ref.append(ev)

    asyncio.run(go())
    assert ar.events.count == ref.count == len(types)
    assert [e["type"] for e in ar.events] == [e["type"] for e in ref] == ["run_started", "run_timeout", "run_completed"]


def test_stream_delta_sends_what_emit_sends() -> None:
    """``ActiveRun.stream_delta`` (the coroutine-free delta path) gives the callback the envelope
    ``emit`` gives, counts the delta in ``KeptEvents`` without keeping it, returns an async
    callback's awaitable for the caller to await, and drops deltas after the terminal event."""
    from types import SimpleNamespace

    from asm_nb.ports import KeptEvents
    from asm_nb.providers._base import ActiveRun

    seen: list[dict] = []

    def cb(ev: dict) -> Any:
        seen.append(ev)
        return CALLBACK_DONE

    cb.records_events = True  # type: ignore[attr-defined]
    ar = ActiveRun(run=SimpleNamespace(id="run_1"), session=SimpleNamespace(id="ses_1"),  # type: ignore[arg-type]
                   adapter=SimpleNamespace(name="t"), callback=cb)  # type: ignore[arg-type]

    async def go() -> None:
        await ar.emit("run_started", {})
        assert ar.stream_delta({"content": "a", "delta": "a"}) is None
        await ar.emit("message_streamed", {"content": "a", "delta": "a"})
        await ar.emit("run_completed", {})
        assert ar.stream_delta({"content": "late", "delta": "late"}) is None

    asyncio.run(go())
    assert type(ar.events) is KeptEvents and ar.events.count == 4
    assert [e["type"] for e in ar.events] == ["run_started", "run_completed"]
    assert [e["type"] for e in seen] == ["run_started", "message_streamed", "message_streamed", "run_completed"]
    fast, slow = seen[1], seen[2]
    assert list(fast) == list(slow) and type(fast["timestamp"]) is type(slow["timestamp"])
    assert {k: v for k, v in fast.items() if k != "timestamp"} == {k: v for k, v in slow.items() if k != "timestamp"}

    waited: list[str] = []

    async def acb(ev: dict) -> None:
        waited.append(ev["data"]["delta"])

    plain = ActiveRun(run=SimpleNamespace(id="run_2"), session=SimpleNamespace(id="ses_1"),  # type: ignore[arg-type]
                      adapter=SimpleNamespace(name="t"), callback=acb)  # type: ignore[arg-type]

    async def go2() -> None:
        res = plain.stream_delta({"content": "b", "delta": "b"})
        assert res is not None and waited == []
        await res

    asyncio.run(go2())
    assert waited == ["b"] and [e["type"] for e in plain.events] == ["message_streamed"]


def test_a_streamed_text_payload_is_redacted_without_the_generic_walk(tmp_path: Any, monkeypatch: Any) -> None:
    """A delta's payload (one string under ``content`` and ``delta``) is scanned once without the
    generic payload walk (was: one ``_walk_top`` per delta); the secret is still redacted on disk."""
    from asm_nb.persistence import redaction

    walks: list[Any] = []
    real = redaction._walk_top

    def walk(*args: Any) -> Any:
        walks.append(args[2])
        return real(*args)

    monkeypatch.setattr(redaction, "_walk_top", walk)
    store = LocalStore(tmp_path)
    try:
        r = asm_nb.run_once("go", provider=Deltas(N, secret_at=7), store=store)
        assert r.status == "completed", r
        assert not [d for d in walks if "delta" in d], walks[:3]  # old: N walks
        streamed = [e for e in store.get_events(r.session_id, run_id=r.run_id) if e.type.value == "message_streamed"]
        assert len(streamed) == N
        assert streamed[7].data == {"delta": "[REDACTED] ", "content": "[REDACTED] "}
        assert streamed[8].data == {"delta": "tok8 ", "content": "tok8 "}
    finally:
        store.close()
    assert b"hunter2" not in b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())


def test_the_streamed_text_fast_path_gives_what_the_walk_gives() -> None:
    """``redact_payload`` on text-pair payloads equals the generic walk's result (data, count,
    changed keys and their order, identity of unchanged data) for secrets, keys in either order,
    custom replacements (also one equal to the match), targeted scans and near-miss shapes."""
    from asm_nb.core.events import EventType
    from asm_nb.persistence import redaction
    from asm_nb.persistence.redaction import RedactionConfig, _compiled, redact_payload
    from asm_nb.persistence.redaction_walk import _walk_top

    secret = "password=hunter2hunter2"
    texts = ["", "a", "tok1 ", "héllo wörld ✓ ", secret, f"x {secret} y sk-ant-api03-{'A' * 93}AA z",
             "Bearer abcdefghijklmnopqrstuvwxyz0123"]
    configs = [RedactionConfig(True), RedactionConfig(True, deep_scan=False), RedactionConfig(True, replacement="<s>"),
               RedactionConfig(True, patterns=[r"hunter2"], replacement="hunter2"),
               RedactionConfig(True, patterns=[r"wörld"], scan_metadata=True)]
    for cfg in configs:
        compiled = _compiled(cfg)
        for etype in (EventType.MESSAGE_STREAMED, EventType.MESSAGE_RECEIVED, EventType.RUN_STARTED):
            allowed = None if cfg.deep_scan else redaction.TARGETED_FIELDS.get(etype, frozenset())
            for text in texts:
                other = "".join(list(text))  # equal, another object: not the fast path
                payloads = [{"content": text, "delta": text}, {"delta": text, "content": text},
                            {"delta": text, "content": other}, {"delta": text, "content": text, "kind": "reasoning"},
                            {"delta": text, "text": text}]
                for data in payloads:
                    meta = {"note": text}
                    got = redact_payload(etype, data, meta, cfg)
                    changed: list[str] = []
                    if allowed is None or allowed:
                        want_data, n = _walk_top(compiled.scan, compiled.min_len, data, allowed, changed, None)
                    else:
                        want_data, n = data, 0
                    want_meta = meta
                    if cfg.scan_metadata:
                        want_meta, m = _walk_top(compiled.scan, compiled.min_len, meta, None, changed, None)
                        n += m
                    assert got == (want_data, want_meta, n, changed), (cfg, etype, data)
                    assert list(got[0]) == list(want_data)
                    assert (got[0] is data) == (want_data is data)


def test_the_stores_append_method_is_chosen_once_per_run(tmp_path: Any, monkeypatch: Any) -> None:
    """The manager binds the pipeline to the run (``EventPipeline.bind``): which append method
    of the store takes the built event is resolved once, not per event (was: one
    ``_unshared_appender`` per event); every event is still numbered in place and stored."""
    from asm_nb.persistence import pipeline

    calls: list[Any] = []
    real = pipeline._unshared_appender

    def appender(*args: Any) -> Any:
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(pipeline, "_unshared_appender", appender)
    store = LocalStore(tmp_path)
    try:
        r = asm_nb.run_once("go", provider=Deltas(N), store=store)
        assert r.status == "completed", r
        assert len(calls) < 10, len(calls)  # old: one per event (N deltas + the run's own events)
        events = store.get_events(r.session_id)
        assert sum(e.type.value == "message_streamed" for e in events) == N
        assert [e.sequence_number for e in events] == list(range(1, len(events) + 1))
    finally:
        store.close()


def test_a_bound_pipeline_does_what_process_does(tmp_path: Any) -> None:
    """``bind(ctx)(raw)`` = ``process(raw, ctx)``: same stored events, same errors and the same
    rejected / persisted telemetry; an instance attribute replacing the store's append method
    before binding is called."""
    from asm_nb.core.errors import AsmError
    from asm_nb.persistence.pipeline import EVENT_PERSISTED, EVENT_REJECTED, PipelineContext
    from asm_nb.stores.memory import InMemoryStore

    ctx = {"session_id": "ses_b", "run_id": "run_b", "provider": "p"}
    raws = [{"type": "run_started", "data": {"prompt": "password=hunter2hunter2"}},
            {"type": "message_streamed", "data": {"delta": "x", "content": "x"}, "id": "evt_fixed"},
            {"type": "no_such_type", "data": {"a": 1}}, {"type": "message_streamed", "data": {"content": 3}},
            {"type": "message_streamed", "data": {"delta": "x"}, "id": "evt_fixed"}]
    got: dict[str, list[Any]] = {"process": [], "bind": []}
    key = ["process"]
    telemetry.attach_many("bind-test", [EVENT_PERSISTED, EVENT_REJECTED],
                     lambda n, m, md, cfg: got[key[0]].append((n, md.get("type"), md.get("reason"))))
    try:
        stores = {}
        for mode in ("process", "bind"):
            key[0] = mode
            store = stores[mode] = InMemoryStore()
            pipe = EventPipeline(store)
            run = (lambda raw, pipe=pipe: pipe.process(raw, ctx)) if mode == "process" else pipe.bind(ctx)
            for raw in raws:
                run(raw)
            for bad in ("not a dict", None):
                try:
                    run(bad)  # type: ignore[arg-type]
                except AsmError as err:
                    got[mode].append(("error", err.code, err.message))
            try:  # a context without a session: rejected (bind: when binding), nothing stored
                if mode == "bind":
                    EventPipeline(store).bind({"session_id": ""})({"type": "run_started"})
                else:
                    EventPipeline(store).process({"type": "run_started"}, {"session_id": ""})
            except AsmError as err:
                got[mode].append(("error", err.code, err.message))
    finally:
        telemetry.detach("bind-test")
    assert got["process"] == got["bind"] and len(got["bind"]) > len(raws)

    def shape(e: Any) -> tuple:
        return (e.type, e.sequence_number, e.data, e.metadata, e.run_id, e.provider, e.id == "evt_fixed")

    assert [shape(e) for e in stores["process"].get_events("ses_b")] == \
        [shape(e) for e in stores["bind"].get_events("ses_b")]

    store = LocalStore(tmp_path)
    try:
        def failing(event: Any) -> Any:
            raise AsmError("storage_error", "disk full")

        store.append_event_with_sequence = failing  # type: ignore[method-assign]
        bound = EventPipeline(store).bind(PipelineContext("ses_c"))
        try:
            bound({"type": "run_started"})
            raise AssertionError("the replaced append method was not called")
        except AsmError as err:
            assert err.message == "disk full"
    finally:
        store.close()


class Mixed(BaseAdapter):
    """A run of every kind of payload the fast paths see or must leave alone: deltas through
    ``stream_delta`` (plain, unicode, secrets, a reasoning delta, two keys with equal but distinct
    strings), tool calls with secrets in their input and output, a final message."""

    name = "work_mixed"

    async def _execute(self, active: Any, **opts: Any) -> dict:
        await active.emit("run_started", {"model": "m", "prompt": "use sk-ant-api03-" + "A" * 93 + "AA please"})
        texts = ["Hello ", "wörld ✓ ", "password=hunter2hunter2 ", "", "Bearer abcdefghijklmnopqrstuvwxyz0123 ",
                 "日本語のテキスト ", "token", "ghp_" + "a" * 36]
        for i, text in enumerate(texts * 3):
            res = active.stream_delta({"content": text, "delta": text})
            if res is not None:
                await res
            if i == 4:
                await active.emit("message_streamed", {"content": "pwd: hunter2hunter2", "delta": "pwd: hunter2hunter2",
                                                       "kind": "reasoning"})
                await active.emit("message_streamed", {"delta": "x" + text, "content": "".join(["x", text])})
        await active.emit("tool_call_started", {"tool_call_id": "t1", "tool_name": "Bash",
                                                "tool_input": {"command": "curl -H 'Authorization: Bearer abcdefghijklmnop0123456789'",
                                                               "env": {"GITHUB_TOKEN": "x"}}})
        await active.emit("tool_call_completed", {"tool_call_id": "t1", "tool_name": "Bash", "tool_input": {"command": "ls"},
                                                  "tool_output": "AKIAIOSFODNN7EXAMPLE ok ✓", "is_error": False})
        await active.emit("message_received", {"content": "done: password=hunter2hunter2 ✓"})
        await active.emit("run_completed", {"stop_reason": "end_turn"})
        return {"output": {"content": "done"}, "token_usage": {"input_tokens": 1, "output_tokens": 3}}


def _stored_lines(root: Any, r: Any) -> list[bytes]:
    """The run's stored event lines with what differs between two runs (event ids, timestamps, the
    session and run ids) replaced by placeholders; everything else byte for byte."""
    import re

    lines = [line for p in sorted(root.rglob("*.jsonl")) for line in p.read_bytes().splitlines()
             if r.session_id.encode() in line and b'"sequence_number":' in line and b'"schema_version":' in line]
    out = []
    for line in lines:
        line = re.sub(rb'^\{"id":"[^"]*"', b'{"id":"ID"', line)
        line = re.sub(rb'"timestamp":"[^"]*"', b'"timestamp":"TS"', line, count=1)
        out.append(line.replace(r.session_id.encode(), b"SID").replace(r.run_id.encode(), b"RID"))
    return out


def test_stored_lines_are_those_of_the_general_path(tmp_path: Any, monkeypatch: Any) -> None:
    """A mixed run stores byte for byte what it stores with the per-delta fast paths turned off
    (the generic payload walk for every payload, ``EventPipeline.process`` per event), secrets
    redacted in both."""
    from asm_nb.persistence import redaction

    shown: dict[str, list[dict]] = {"fast": [], "general": []}
    lines = {}
    for mode in ("fast", "general"):
        if mode == "general":
            monkeypatch.setattr(redaction, "_TEXT_PAIR_PLAIN", False)
            monkeypatch.setattr(EventPipeline, "bind", lambda self, ctx: lambda raw: self.process(raw, ctx))
        store = LocalStore(tmp_path / mode)
        try:
            r = asm_nb.run_once("go", provider=Mixed(), store=store, on_event=shown[mode].append)
            assert r.status == "completed", r
        finally:
            store.close()
        lines[mode] = _stored_lines(tmp_path / mode, r)
        for ev in shown[mode]:
            ev.pop("id", None), ev.pop("timestamp", None), ev.pop("session_id", None), ev.pop("run_id", None)
    assert len(lines["fast"]) > 30
    assert lines["fast"] == lines["general"]
    assert shown["fast"] == shown["general"]
    stored = b"\n".join(lines["fast"])
    for secret in (b"hunter2", b"AAAAAAAAAAAAAAAAAAAA", b"abcdefghijklmnop", b"AKIAIOSFODNN7EXAMPLE", b"aaaaaaaaaaaaaaaaaaaa"):
        assert secret not in stored, secret
    assert "wörld ✓".encode() in stored and "日本語".encode() in stored


def test_built_events_are_not_checked_again_at_the_store(tmp_path: Any, monkeypatch: Any) -> None:
    """An event the pipeline built (valid by construction) goes into LocalStore without the
    store-boundary check per event (was: one ``check_event`` per event); a caller's own event
    still gets it."""
    from asm_nb.core.errors import AsmError
    from asm_nb.core.events import Event
    from asm_nb.stores import local

    checked: list[Any] = []
    real = local.check_event

    def check(event: Any) -> Any:
        checked.append(event)
        return real(event)

    monkeypatch.setattr(local, "check_event", check)
    store = LocalStore(tmp_path)
    try:
        r = asm_nb.run_once("go", provider=Deltas(N, secret_at=3), store=store)
        assert r.status == "completed", r
        assert not [e for e in checked if e.type.value == "message_streamed"]  # old: N
        events = store.get_events(r.session_id, run_id=r.run_id)
        assert sum(e.type.value == "message_streamed" for e in events) == N
        mine = Event.new("message_received", r.session_id, data={"content": "x"})
        assert store.append_event_with_sequence(mine).sequence_number == events[-1].sequence_number + 2
        try:
            store.append_event_with_sequence(mine.replace(id=""))
            raise AssertionError("an event without an id was stored")
        except AsmError as err:
            assert err.code == "validation_error"
    finally:
        store.close()
