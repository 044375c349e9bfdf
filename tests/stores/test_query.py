"""Generic QueryAPI (docs/stores.md, queries) on InMemoryStore and LocalStore: filters, limits, cursors,
totals, usage and cost summaries with the spec's numbers, export."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

import pytest

from asm_nb.core.errors import AsmError
from asm_nb.core.events import Event
from asm_nb.core.run import Run, RunStatus
from asm_nb.core.session import Session, SessionStatus
from asm_nb.stores._query import GenericQueryAPI, encode_cursor, query_api

T = datetime(2026, 2, 1, tzinfo=timezone.utc)


@pytest.fixture(params=["memory", "local"])
def store(request):
    return request.getfixturevalue(f"{request.param}_store")


def _session(sid, *, agent="a1", status=SessionStatus.ACTIVE, minutes=0, updated=None, tags=(), deleted=False):
    return Session(id=sid, agent_id=agent, status=status, created_at=T + timedelta(minutes=minutes),
                   updated_at=updated or T + timedelta(minutes=minutes), tags=list(tags),
                   deleted_at=T if deleted else None)


def _run(rid, sid, *, provider="claude", minutes=0, tokens=None, status=RunStatus.COMPLETED, model=None, cost=None):
    return Run(id=rid, session_id=sid, status=status, started_at=T + timedelta(minutes=minutes), provider=provider,
               token_usage=tokens or {}, provider_metadata={"model": model} if model else {}, cost_usd=cost)


def test_search_sessions_filters_and_totals(store):
    for i in range(5):
        store.save_session(_session(f"ses_{i}", agent="a1" if i < 3 else "a2", minutes=i,
                                    status=SessionStatus.COMPLETED if i == 4 else SessionStatus.ACTIVE,
                                    tags=["x", "y"] if i == 1 else ["x"]))
    store.save_session(_session("ses_del", deleted=True))
    store.save_run(_run("run_c", "ses_2", provider="codex"))
    q = GenericQueryAPI(store)
    res = q.search_sessions()
    assert res["total_count"] == 5 and len(res["sessions"]) == 5 and isinstance(res["cursor"], str)
    assert q.search_sessions(include_deleted=True)["total_count"] == 6
    assert {s.id for s in q.search_sessions(agent_id="a2")["sessions"]} == {"ses_3", "ses_4"}
    assert [s.id for s in q.search_sessions(status="completed")["sessions"]] == ["ses_4"]
    assert [s.id for s in q.search_sessions(status=[SessionStatus.COMPLETED])["sessions"]] == ["ses_4"]
    page = q.search_sessions(limit=2)
    assert len(page["sessions"]) == 2 and page["total_count"] == 5
    assert [s.id for s in q.search_sessions(provider="codex")["sessions"]] == ["ses_2"]
    assert [s.id for s in q.search_sessions(tags=["x", "y"])["sessions"]] == ["ses_1"]
    assert {s.id for s in q.search_sessions(created_after=T + timedelta(minutes=3))["sessions"]} == {"ses_3", "ses_4"}
    for bad in ({"limit": -1}, {"limit": 0}, {"limit": True}, {"status": {"completed": 1}}, {"status": "done"},
                {"status": [3]}):
        with pytest.raises(AsmError) as ei:
            q.search_sessions(**bad)
        assert ei.value.code == "validation_error"
    with pytest.raises(AsmError, match="limit must be <= 1000"):
        q.search_sessions(limit=100_000)


def test_session_paging_orders(store):
    store.save_session(_session("ses_old", minutes=0, updated=T))
    store.save_session(_session("ses_mid", minutes=1, updated=T + timedelta(hours=1)))
    store.save_session(_session("ses_new", minutes=2, updated=T + timedelta(hours=2)))
    q = GenericQueryAPI(store)
    p1 = q.search_sessions(limit=1)
    assert [s.id for s in p1["sessions"]] == ["ses_new"]
    p2 = q.search_sessions(limit=1, cursor=p1["cursor"])
    assert [s.id for s in p2["sessions"]] == ["ses_mid"]
    c1 = q.search_sessions(limit=2, order_by="created_at_desc")
    assert [s.id for s in c1["sessions"]] == ["ses_new", "ses_mid"]
    c2 = q.search_sessions(limit=2, order_by="created_at_desc", cursor=c1["cursor"])
    assert [s.id for s in c2["sessions"]] == ["ses_old"]
    c3 = q.search_sessions(limit=2, order_by="created_at_desc", cursor=c2["cursor"])
    assert c3["sessions"] == [] and c3["cursor"] is None
    asc = q.search_sessions(order_by="created_at_asc")
    assert [s.id for s in asc["sessions"]] == ["ses_old", "ses_mid", "ses_new"]
    assert [s.id for s in q.search_sessions(order_by="bogus")["sessions"]][0] == "ses_new"  # falls back


def test_cursor_errors(store):
    store.save_session(_session("ses_1"))
    q = GenericQueryAPI(store)

    def b64(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode()

    cases = [(123, "Cursor must be a non-empty string"), ("", "Cursor must be a non-empty string"),
             ("@@@!", "Cursor is not valid Base64"),
             (base64.urlsafe_b64encode(b"not json").decode(), "Cursor payload could not be decoded"),
             (b64([1]), "Cursor payload could not be decoded"),
             (b64({"r": "run", "o": "updated_at_desc", "v": "2026-01-01T00:00:00Z", "id": "x"}),
              "Cursor does not match expected format"),
             (b64({"r": "session", "o": "created_at_asc", "v": "2026-01-01T00:00:00Z", "id": "x"}),
              "Cursor order does not match requested order_by"),
             (b64({"r": "session", "o": "updated_at_desc", "v": 5, "id": "x"}), "Session cursor has invalid sort value")]
    for cursor, msg in cases:
        with pytest.raises(AsmError) as ei:
            q.search_sessions(cursor=cursor)
        assert ei.value.code == "invalid_cursor" and ei.value.message == msg, cursor
    # a cursor without "o" is accepted for the default order only
    legacy = b64({"r": "session", "v": "2030-01-01T00:00:00Z", "id": "zzz"})
    assert [s.id for s in q.search_sessions(cursor=legacy)["sessions"]] == ["ses_1"]
    with pytest.raises(AsmError, match="order does not match"):
        q.search_sessions(cursor=legacy, order_by="created_at_asc")
    with pytest.raises(AsmError, match="not supported for order_by token_usage_desc"):
        q.search_runs(order_by="token_usage_desc", cursor=encode_cursor("run", "token_usage_desc", 1, "r"))


def _stats_fixture(store):
    store.save_session(_session("ses_1"))
    store.save_run(_run("run_1", "ses_1", provider="claude", minutes=1,
                        tokens={"input_tokens": 100, "output_tokens": 50, "total_tokens": 150}))
    store.save_run(_run("run_2", "ses_1", provider="codex", minutes=2, status=RunStatus.FAILED,
                        tokens={"input_tokens": 200, "output_tokens": 80, "total_tokens": 280}))
    store.save_run(_run("run_3", "ses_2", provider="claude", minutes=3, tokens={"input_tokens": 1}))
    for i, (t, rid, corr) in enumerate([("run_started", "run_1", "c1"), ("message_received", "run_1", None),
                                        ("message_received", "run_2", "c1")]):
        store.append_event(Event.new(t, "ses_1", run_id=rid, provider="claude" if rid == "run_1" else "codex",
                                     timestamp=T + timedelta(seconds=i), correlation_id=corr,
                                     data={"content": "x", "role": "assistant", "weird_key": {"k": 1}}))


def test_session_stats_runs_usage(store):
    _stats_fixture(store)
    q = GenericQueryAPI(store)
    st = q.get_session_stats("ses_1")
    assert st["event_count"] == 3 and st["run_count"] == 2
    assert st["token_totals"] == {"input_tokens": 300, "output_tokens": 130, "total_tokens": 430}
    assert st["providers_used"] == ["claude", "codex"]
    assert st["first_event_at"] == T and st["last_event_at"] == T + timedelta(seconds=2)
    assert st["status_counts"] == {"completed": 1, "failed": 1}
    with pytest.raises(AsmError) as ei:
        q.get_session_stats("nope")
    assert ei.value.code == "session_not_found" and ei.value.message == "Session nope not found"

    assert [r.id for r in q.search_runs(session_id="ses_1")["runs"]] == ["run_2", "run_1"]
    assert [r.id for r in q.search_runs(provider="codex")["runs"]] == ["run_2"]
    assert [r.id for r in q.search_runs(status="failed")["runs"]] == ["run_2"]
    assert [r.id for r in q.search_runs(min_tokens=200)["runs"]] == ["run_2"]
    tok = q.search_runs(order_by="token_usage_desc", session_id="ses_1")
    assert [r.id for r in tok["runs"]] == ["run_2", "run_1"] and tok["cursor"] is None
    p1 = q.search_runs(limit=1)
    assert [r.id for r in p1["runs"]] == ["run_3"]
    assert [r.id for r in q.search_runs(limit=1, cursor=p1["cursor"])["runs"]] == ["run_2"]
    with pytest.raises(AsmError) as ei:
        q.search_runs(min_tokens=-1)
    assert ei.value.code == "query_error"
    with pytest.raises(AsmError):
        q.search_runs(limit=100_000)

    u = q.get_usage_summary(session_id="ses_1")
    assert (u["total_input_tokens"], u["total_output_tokens"], u["total_tokens"], u["run_count"]) == (300, 130, 430, 2)
    assert u["by_provider"]["codex"] == {"input_tokens": 200, "output_tokens": 80, "total_tokens": 280,
                                         "run_count": 1}
    assert q.get_usage_summary(provider="claude")["run_count"] == 2
    assert q.get_usage_summary(since=T + timedelta(minutes=2))["run_count"] == 2


def test_events_count_export(store):
    _stats_fixture(store)
    q = GenericQueryAPI(store)
    assert len(q.search_events(session_ids=["ses_1"])["events"]) == 3
    assert len(q.search_events(types="message_received")["events"]) == 2
    assert len(q.search_events(correlation_id="c1")["events"]) == 2
    assert len(q.search_events(providers="codex")["events"]) == 1
    ev = q.search_events()["events"][0]
    assert ev.data["weird_key"] == {"k": 1}  # unknown JSON keys stay strings
    p1 = q.search_events(order_by="timestamp_desc", limit=2)
    assert [e.sequence_number for e in p1["events"]] == [3, 2]
    p2 = q.search_events(order_by="timestamp_desc", limit=2, cursor=p1["cursor"])
    assert [e.sequence_number for e in p2["events"]] == [1]
    s1 = q.search_events(limit=2)
    assert [e.sequence_number for e in q.search_events(limit=2, cursor=s1["cursor"])["events"]] == [3]
    with pytest.raises(AsmError) as ei:
        q.search_events(types=["not_a_real_event"])
    assert ei.value.code == "validation_error"
    assert q.count_events() == 3 and q.count_events(run_ids=["run_2"]) == 1
    exp = q.export_session("ses_1")
    assert len(exp["runs"]) == 2 and [e.sequence_number for e in exp["events"]] == [1, 2, 3]
    assert exp["session"].id == "ses_1" and "artifacts" not in exp
    assert q.export_session("ses_1", include_artifacts=True)["artifacts"] == []
    with pytest.raises(AsmError, match="Session nope not found"):
        q.export_session("nope")


def test_cost_summary_spec_numbers(store):
    store.save_session(_session("ses_a", agent="agent-a"))
    store.save_session(_session("ses_b", agent="agent-b"))
    store.save_run(_run("run_1", "ses_a", model="model-b", tokens={"input_tokens": 100, "output_tokens": 50},
                        cost=12.5))
    store.save_run(_run("run_2", "ses_b", model="model-a", tokens={"input_tokens": 10, "output_tokens": 5}))
    store.save_run(_run("run_3", "ses_b", provider="unknown", model="unknown-model",
                        tokens={"input_tokens": 20, "output_tokens": 10}))
    table = {"claude": {"default": {"input": 0.01, "output": 0.02},
                        "models": {"model-a": {"input": 0.1, "output": 0.2}}}}
    q = GenericQueryAPI(store)
    c = q.get_cost_summary(pricing_table=table)
    assert c["run_count"] == 3 and c["unmapped_runs"] == 1
    assert c["total_cost_usd"] == pytest.approx(14.5)
    assert c["by_provider"]["claude"] == {"cost_usd": pytest.approx(14.5), "run_count": 2}
    assert c["by_model"]["model-b"] == {"cost_usd": 12.5, "input_tokens": 100, "output_tokens": 50}
    assert c["by_model"]["model-a"] == {"cost_usd": pytest.approx(2.0), "input_tokens": 10, "output_tokens": 5}
    one = q.get_cost_summary(pricing_table=table, provider="claude", session_id="ses_b")
    assert one["run_count"] == 1 and one["total_cost_usd"] == pytest.approx(2.0)
    agent = q.get_cost_summary(pricing_table=table, provider="claude", agent_id="agent-a")
    assert agent["run_count"] == 1 and agent["total_cost_usd"] == pytest.approx(12.5)
    assert q.get_cost_summary(session_id="zzz")["total_cost_usd"] == 0.0


def test_query_api_resolution_and_errors(store):
    assert callable(query_api(store).search_sessions)
    with pytest.raises(AsmError) as ei:
        query_api(object())
    assert ei.value.message.startswith("QueryAPI ref must implement QueryAPI, got:")
    with pytest.raises(AsmError, match="unknown option"):
        GenericQueryAPI(store).search_sessions(colour="red")

    class Broken:
        def list_sessions(self):
            raise RuntimeError("disk on fire")

    with pytest.raises(AsmError) as ei:
        GenericQueryAPI(Broken()).search_sessions()
    assert ei.value.code == "query_error" and ei.value.message == "disk on fire"
