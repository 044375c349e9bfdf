"""Telemetry bus and emitters (docs/runtime.md, telemetry)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta

import pytest

from asm_nb import config, telemetry
from asm_nb.core.errors import AsmError
from asm_nb.core.run import Run, RunStatus
from asm_nb.core.session import Session

START = ("asm", "run", "start")
STOP = ("asm", "run", "stop")
EXC = ("asm", "run", "exception")
USAGE = ("asm", "usage", "report")


@pytest.fixture
def capture():
    """Attach one recording handler to the given names; detached afterwards."""
    ids: list[str] = []

    def attach(*names):
        seen: list[tuple] = []
        hid = f"test-{uuid.uuid4().hex}"
        telemetry.attach_many(hid, names, lambda n, m, md, cfg: seen.append((n, m, md, cfg)))
        ids.append(hid)
        return seen

    yield attach
    for hid in ids:
        telemetry.detach(hid)


@pytest.fixture
def on():
    with config.override(telemetry_enabled=True):
        yield


def _run_session():
    session = Session.new("agent-1")
    run = Run.new(session.id)
    return run, session


def test_prefix_and_event_name():
    assert telemetry.TELEMETRY_PREFIX == ("asm",)
    assert telemetry.event_name("run", "start") == START
    assert telemetry.event_name("persistence.event_persisted") == ("asm", "persistence", "event_persisted")


def test_attach_execute_passes_name_measurements_metadata_and_config():
    seen = []
    telemetry.attach("t-one", ("asm", "x"), lambda *a: seen.append(a), config={"k": 1})
    try:
        telemetry.execute(("asm", "x"), {"a": 1}, {"b": 2})
        telemetry.execute(("asm", "y"), {"a": 1}, {"b": 2})  # not attached
    finally:
        telemetry.detach("t-one")
    assert seen == [(("asm", "x"), {"a": 1}, {"b": 2}, {"k": 1})]


def test_duplicate_handler_id_is_rejected():
    telemetry.attach("t-dup", ("asm", "x"), lambda *a: None)
    try:
        with pytest.raises(ValueError):
            telemetry.attach("t-dup", ("asm", "z"), lambda *a: None)
        with pytest.raises(ValueError):
            telemetry.attach_many("t-dup", [("asm", "z")], lambda *a: None)
    finally:
        telemetry.detach("t-dup")


def test_detach_is_idempotent_and_stops_delivery():
    seen = []
    telemetry.attach_many("t-det", [("asm", "a"), ("asm", "b")], lambda *a: seen.append(a[0]))
    assert telemetry.detach("t-det") is True
    assert telemetry.detach("t-det") is False
    telemetry.execute(("asm", "a"), {}, {})
    telemetry.execute(("asm", "b"), {}, {})
    assert seen == []


def test_raising_handler_is_logged_and_detached_others_still_run(caplog):
    seen = []

    def bad(*_):
        raise RuntimeError("boom")

    telemetry.attach("t-bad", ("asm", "e"), bad)
    telemetry.attach("t-good", ("asm", "e"), lambda *a: seen.append(1))
    try:
        with caplog.at_level(logging.ERROR, logger="asm_nb.telemetry"):
            telemetry.execute(("asm", "e"), {}, {})
        assert "t-bad" in caplog.text
        assert not any(h["id"] == "t-bad" for h in telemetry.list_handlers(("asm",)))
        telemetry.execute(("asm", "e"), {}, {})
        assert seen == [1, 1]
    finally:
        telemetry.detach("t-bad")
        telemetry.detach("t-good")


def test_enabled_follows_context_local_config():
    with config.override(telemetry_enabled=False):
        assert telemetry.enabled() is False
    with config.override(telemetry_enabled=True):
        assert telemetry.enabled() is True


def test_set_enabled_is_context_local():
    import contextvars

    def inner():
        telemetry.set_enabled(False)
        return telemetry.enabled()

    with config.override(telemetry_enabled=True):
        assert contextvars.copy_context().run(inner) is False
        assert telemetry.enabled() is True


def test_emitters_are_noops_when_disabled(capture):
    seen = capture(START, STOP, EXC, USAGE)
    run, session = _run_session()
    with config.override(telemetry_enabled=False):
        telemetry.emit_run_start(run, session)
        telemetry.emit_run_end(run, session, {"token_usage": {"input_tokens": 1}})
        telemetry.emit_error(run, session, AsmError("provider_error", "x"))
        telemetry.emit_usage_metrics(session, {"input_tokens": 1})
        with telemetry.span(run, session):
            pass
    assert seen == []


def test_emit_run_start(capture, on):
    seen = capture(START)
    run, session = _run_session()
    telemetry.emit_run_start(run, session)
    [(name, m, md, _)] = seen
    assert name == START
    assert isinstance(m["system_time"], int) and m["system_time"] > 1_600_000_000 * 10**9
    assert md["run_id"] == run.id and md["session_id"] == session.id and md["agent_id"] == "agent-1"
    assert md["run"] is run and md["session"] is session


def test_emit_run_end_measurements(capture, on):
    seen = capture(STOP)
    run, session = _run_session()
    run = run.replace(ended_at=run.started_at + timedelta(milliseconds=1500), status=RunStatus.COMPLETED)
    telemetry.emit_run_end(run, session, {"token_usage": {"input_tokens": 10, "output_tokens": 5,
                                                          "total_tokens": 15, "cache_read_tokens": 2},
                                          "cost_usd": 0.25})
    [(_, m, md, _)] = seen
    assert m["duration"] == 1_500_000_000
    assert (m["input_tokens"], m["output_tokens"], m["total_tokens"], m["cost_usd"]) == (10, 5, 15, 0.25)
    assert "cache_read_tokens" not in m
    assert md["status"] == RunStatus.COMPLETED


def test_emit_run_end_skips_non_numeric_and_bool(capture, on):
    seen = capture(STOP)
    run, session = _run_session()
    telemetry.emit_run_end(run, session, {"token_usage": {"input_tokens": "10", "output_tokens": True},
                                          "cost_usd": None})
    [(_, m, _, _)] = seen
    assert set(m) == {"duration", "system_time"}


def test_duration_rules(capture, on):
    seen = capture(STOP)
    run, session = _run_session()
    telemetry.emit_run_end(run, session, None)  # only started: now - started, >= 0
    telemetry.emit_run_end({"id": "r"}, {"id": "s"}, None)  # nothing set: 0
    assert seen[0][1]["duration"] >= 0
    assert seen[1][1]["duration"] == 0


def test_emit_error(capture, on):
    seen = capture(EXC)
    run, session = _run_session()
    err = AsmError("provider_timeout", "too slow")
    telemetry.emit_error(run, session, err)
    [(_, m, md, _)] = seen
    assert set(m) == {"duration", "system_time"}
    assert md["error_code"] == "provider_timeout" and md["error_message"] == "too slow"
    assert md["error"] is err and md["run"] is run


def test_emit_usage_metrics(capture, on):
    seen = capture(USAGE)
    _, session = _run_session()
    telemetry.emit_usage_metrics(session, {"input_tokens": 3, "cost_usd": 0.1})
    [(_, m, md, _)] = seen
    assert m == {"input_tokens": 3, "cost_usd": 0.1}
    assert md == {"session_id": session.id, "agent_id": "agent-1", "session": session}


def test_emit_adapter_event(capture, on):
    seen = capture(("asm", "adapter", "tool_call_started"))
    run, session = _run_session()
    event = {"type": "tool_call_started", "provider": "claude",
             "data": {"tool_name": "bash", "n": 2, "ok": True, "x": 1.5}}
    telemetry.emit_adapter_event(event, run, session)
    [(_, m, md, _)] = seen
    assert set(m) == {"n", "x", "system_time"}
    assert md["tool_name"] == "bash" and md["provider"] == "claude" and md["event_data"] == event["data"]


def test_span_success_emits_start_and_stop(capture, on):
    seen = capture(START, STOP, EXC)
    run, session = _run_session()
    with telemetry.span(run, session) as sp:
        sp.result = {"token_usage": {"input_tokens": 4}}
    assert [s[0] for s in seen] == [START, STOP]
    stop_m, stop_md = seen[1][1], seen[1][2]
    assert stop_m["input_tokens"] == 4 and stop_m["duration"] >= 0
    assert stop_md["run"].ended_at is not None


def test_span_error_emits_exception_and_reraises(capture, on):
    seen = capture(START, STOP, EXC)
    run, session = _run_session()
    with pytest.raises(AsmError):
        with telemetry.span(run, session):
            raise AsmError("provider_error", "bad")
    assert [s[0] for s in seen] == [START, EXC]
    assert seen[1][2]["error_code"] == "provider_error"


def test_span_call_returns_result_and_reports_returned_error(capture, on):
    seen = capture(START, STOP, EXC)
    run, session = _run_session()
    assert telemetry.span_call(run, session, lambda: {"token_usage": {"output_tokens": 2}})["token_usage"] == {
        "output_tokens": 2}
    err = AsmError("timeout", "t")
    assert telemetry.span_call(run, session, lambda: err) is err
    with pytest.raises(ValueError):
        telemetry.span_call(run, session, lambda: (_ for _ in ()).throw(ValueError("v")))
    assert [s[0] for s in seen] == [START, STOP, START, EXC, START, EXC]
    assert seen[5][2]["error_code"] == "internal_error"


def test_aspan_call(capture, on):
    seen = capture(START, STOP)
    run, session = _run_session()

    async def work():
        return {"cost_usd": 1.0}

    assert asyncio.run(telemetry.aspan_call(run, session, work)) == {"cost_usd": 1.0}
    assert [s[0] for s in seen] == [START, STOP] and seen[1][1]["cost_usd"] == 1.0


def test_handlers_run_in_the_emitting_context(capture):
    seen = []
    telemetry.attach("t-ctx", USAGE, lambda *a: seen.append(config.get("max_queued_runs")))
    try:
        with config.override(telemetry_enabled=True, max_queued_runs=7):
            telemetry.emit_usage_metrics({"id": "s"}, {})
    finally:
        telemetry.detach("t-ctx")
    assert seen == [7]


def test_attach_detach_while_executing_from_threads():
    import threading

    errors: list[BaseException] = []
    stop = threading.Event()
    calls = []

    def churn(n):
        try:
            for i in range(200):
                hid = f"t-churn-{n}-{i}"
                telemetry.attach(hid, ("asm", "churn"), lambda *a: calls.append(1))
                telemetry.list_handlers(("asm",))
                telemetry.detach(hid)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    def fire():
        try:
            while not stop.is_set():
                telemetry.execute(("asm", "churn"), {}, {})
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    firing = threading.Thread(target=fire)
    firing.start()
    workers = [threading.Thread(target=churn, args=(n,)) for n in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=30)
    stop.set()
    firing.join(timeout=30)
    assert errors == []
    assert not [h for h in telemetry.list_handlers(("asm", "churn"))]


def test_execute_accepts_a_list_name(capture):
    """A list event name reaches the handlers of the same tuple name (it used to raise
    ``TypeError: unhashable type: 'list'`` before the list branch was reached)."""
    seen = capture(("asm", "list", "name"))
    telemetry.execute(["asm", "list", "name"], {"n": 1}, {"k": "v"})
    assert seen == [(("asm", "list", "name"), {"n": 1}, {"k": "v"}, None)]
