"""Codex forks and sub-agents: a rollout whose first ``session_meta`` names a parent
(``forked_from_id``, or ``source.subagent.thread_spawn.parent_thread_id``) opens with the
parent's history copied in (the ancestors' ``session_meta`` lines, their items and ``token_count``
reports, re-stamped to the fork's time by most versions). Usage tools that summed every report
counted a forked session's parent several times over (ccusage, t3code, waku and CodexBar each
fixed it); here the copy is neither counted nor imported as runs, and the session names its
parent.

The rollouts are written in the shapes real ones have: the envelope ``{timestamp, type,
payload}``, the child's ``session_meta`` first, then the copied ``session_meta`` of the parent and
the parent's lines at the fork's time (a few ms apart), then the child's own turn seconds later.
"""

from __future__ import annotations

import json
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from asm_nb import frames
from asm_nb.history import HistoryWarning, import_history
from asm_nb.stores import open_store

P = "019a0000-0000-7000-8000-00000000000a"   # the parent thread
F = "019a0000-0000-7000-8000-00000000000b"   # a fork of it
S = "019a0000-0000-7000-8000-00000000000c"   # a sub-agent it spawned
G = "019a0000-0000-7000-8000-00000000000d"   # a fork of the fork
T0 = datetime(2026, 8, 1, 5, 0, tzinfo=timezone.utc)


def _ts(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _line(at: datetime, kind: str, payload: dict) -> dict:
    return {"timestamp": _ts(at), "type": kind, "payload": payload}


def _meta(at: datetime, tid: str, *, forked_from: str | None = None, spawned_by: str | None = None) -> dict:
    p: dict = {"id": tid, "timestamp": _ts(at), "cwd": "/home/ada/proj", "originator": "codex_cli_rs",
               "cli_version": "0.131.0"}
    if forked_from:
        p["forked_from_id"] = forked_from
    if spawned_by:
        p["source"] = {"subagent": {"thread_spawn": {"parent_thread_id": spawned_by, "depth": 1}}}
    else:
        p["source"] = "cli"
    return _line(at, "session_meta", p)


def _turn(at: datetime, prompt: str, model: str, last: dict, total: dict, answer: str) -> list[dict]:
    """One user turn: the prompt (event and item), the turn context, one model call's report,
    the answer."""
    return [
        _line(at, "event_msg", {"type": "user_message", "message": prompt, "kind": "plain"}),
        _line(at, "response_item", {"type": "message", "role": "user",
                                    "content": [{"type": "input_text", "text": prompt}]}),
        _line(at, "turn_context", {"cwd": "/home/ada/proj", "model": model, "approval_policy": "on-request"}),
        _line(at + timedelta(seconds=4), "event_msg", {"type": "token_count", "info": {
            "total_token_usage": total, "last_token_usage": last, "model_context_window": 272000}}),
        _line(at + timedelta(seconds=5), "response_item", {"type": "message", "role": "assistant",
                                                           "content": [{"type": "output_text", "text": answer}]}),
    ]


def _u(inp: int, cached: int, out: int, reasoning: int = 0) -> dict:
    return {"input_tokens": inp, "cached_input_tokens": cached, "output_tokens": out,
            "reasoning_output_tokens": reasoning, "total_tokens": inp + out}


def _plus(a: dict, b: dict) -> dict:
    return {k: a[k] + b[k] for k in a}


L1, L2, L3, L4 = _u(12000, 8000, 300, 64), _u(15000, 12000, 200), _u(16000, 12500, 150, 32), _u(9000, 0, 90)
T1 = L1
T2 = _plus(T1, L2)


def _parent() -> list[dict]:
    return [_meta(T0, P),
            *_turn(T0 + timedelta(seconds=1), "Count the lines in src/", "gpt-5-codex", L1, T1, "1,204 lines."),
            *_turn(T0 + timedelta(minutes=3), "Now list the largest files", "gpt-5-codex", L2, T2, "a.py, b.py")]


def _restamped(lines: list[dict], at: datetime) -> list[dict]:
    """``lines`` copied into a child at ``at`` (a millisecond apart, as the copy is written)."""
    out = []
    for k, ln in enumerate(lines):
        ln = json.loads(json.dumps(ln))
        ln["timestamp"] = _ts(at + timedelta(milliseconds=1 + k))
        out.append(ln)
    return out


def _write(root: Path, tid: str, at: datetime, lines: list[dict]) -> Path:
    path = root / "sessions" / at.strftime("%Y/%m/%d") / f"rollout-{at.strftime('%Y-%m-%dT%H-%M-%S')}-{tid}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(ln) + "\n" for ln in lines))
    return path


def _fork(at: datetime, *, own_meta_again: bool = False, first_own: timedelta = timedelta(seconds=8)) -> list[dict]:
    """A fork of P made after its first turn: P's lines up to there copied at ``at``, then the
    child's own turn (its totals go on from the copied ones)."""
    copied = _restamped(_parent()[:6], at)
    own = [_meta(at + timedelta(milliseconds=40), F)] if own_meta_again else []
    return [_meta(at, F, forked_from=P), *copied, *own,
            *_turn(at + first_own, "Instead, count only tests/", "gpt-5", L3, _plus(T1, L3), "310 lines.")]


def _import(store, root, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error", HistoryWarning)  # a well-formed rollout warns about nothing
        return import_history("codex", store, path=root, **kw)


def _usage(store, sid: str) -> dict:
    out: dict = {}
    for r in store.list_runs(sid):
        for k, v in r.token_usage.items():
            out[k] = out.get(k, 0) + v
    return out


def _norm(*lasts: dict) -> dict:
    """The counters an import stores for these reports (input without its cached part)."""
    return {"input_tokens": sum(u["input_tokens"] - u["cached_input_tokens"] for u in lasts),
            "output_tokens": sum(u["output_tokens"] for u in lasts),
            "cache_read_tokens": sum(u["cached_input_tokens"] for u in lasts), "cache_creation_tokens": 0,
            "reasoning_output_tokens": sum(u["reasoning_output_tokens"] for u in lasts)}


def _prompts(store, sid: str) -> list:
    return [r.input for r in sorted(store.list_runs(sid), key=lambda r: r.id)]


@pytest.mark.parametrize("own_meta_again", [False, True])
def test_a_forks_copied_history_is_not_counted_or_imported_again(tmp_path, own_meta_again):
    fork_at = T0 + timedelta(hours=1)
    _write(tmp_path, P, T0, _parent())
    _write(tmp_path, F, fork_at, _fork(fork_at, own_meta_again=own_meta_again,
                                       first_own=timedelta(milliseconds=400 if own_meta_again else 8000)))
    st = open_store(tmp_path / "store")
    rep = _import(st, tmp_path)
    assert rep.sessions_new == 2
    fork = st.get_session(f"ses_cx_{F}")
    assert fork.parent_session_id == f"ses_cx_{P}"
    assert fork.metadata["forked_from"] == P and fork.metadata["fork_kind"] == "fork"
    assert fork.metadata["external_id"] == F  # the copied parent meta does not rename it
    assert _prompts(st, f"ses_cx_{F}") == ["Instead, count only tests/"]
    assert _usage(st, f"ses_cx_{F}") == _norm(L3)
    assert _usage(st, f"ses_cx_{P}") == _norm(L1, L2)
    # the store's totals are each model call once: what frames.usage reports
    df = frames.usage(st, by="model")
    assert int(df["output_tokens"].sum()) == L1["output_tokens"] + L2["output_tokens"] + L3["output_tokens"]
    assert int(df["records"].sum()) == 3
    # no event of the copy: the fork's events are its own turn's
    texts = [e.data.get("content") for e in st.get_events(f"ses_cx_{F}") if e.type.value.startswith("message")]
    assert texts == ["Instead, count only tests/", "310 lines."]
    assert _import(st, tmp_path).events == 0
    st.close()


def test_a_copy_that_kept_its_first_times_is_still_the_copy(tmp_path):
    """Some versions copy the parent's lines with their own (earlier) times: older than the fork,
    they are part of the copy too."""
    fork_at = T0 + timedelta(hours=1)
    _write(tmp_path, P, T0, _parent())
    _write(tmp_path, F, fork_at, [_meta(fork_at, F, forked_from=P), *_parent()[:6],
                                  *_turn(fork_at + timedelta(seconds=5), "Instead, count only tests/", "gpt-5", L3,
                                         _plus(T1, L3), "310 lines.")])
    st = open_store(tmp_path / "store")
    _import(st, tmp_path)
    assert _prompts(st, f"ses_cx_{F}") == ["Instead, count only tests/"]
    assert _usage(st, f"ses_cx_{F}") == _norm(L3)
    st.close()


def test_an_ancestors_session_meta_marks_a_copy_even_without_a_fork_field(tmp_path):
    """A rollout whose first ``session_meta`` names no parent but that holds an ancestor's
    ``session_meta`` (history copied in) is read the same way from that line."""
    fork_at = T0 + timedelta(hours=1)
    _write(tmp_path, P, T0, _parent())
    _write(tmp_path, F, fork_at, [_meta(fork_at, F), *_restamped(_parent()[:6], fork_at + timedelta(seconds=2)),
                                  *_turn(fork_at + timedelta(seconds=9), "Instead, count only tests/", "gpt-5", L3,
                                         _plus(T1, L3), "310 lines.")])
    st = open_store(tmp_path / "store")
    _import(st, tmp_path)
    assert _prompts(st, f"ses_cx_{F}") == ["Instead, count only tests/"]
    assert _usage(st, f"ses_cx_{F}") == _norm(L3)
    assert st.get_session(f"ses_cx_{F}").parent_session_id is None  # no parent named
    st.close()


def test_a_report_after_the_burst_counts_and_a_non_fork_is_untouched(tmp_path):
    """The burst ends for good at the first line a second or more after the previous one;
    a rollout that names no parent has no burst at all (its first turn may come at once)."""
    fork_at = T0 + timedelta(hours=1)
    lines = _fork(fork_at)
    _write(tmp_path / "a", F, fork_at, lines)
    quick = [_meta(T0, P), *_turn(T0 + timedelta(milliseconds=3), "Count the lines in src/", "gpt-5-codex", L1, T1,
                                  "1,204 lines.")]
    _write(tmp_path / "b", P, T0, quick)
    st = open_store(tmp_path / "store")
    _import(st, tmp_path / "a")
    _import(st, tmp_path / "b")
    assert _usage(st, f"ses_cx_{F}") == _norm(L3)
    assert _prompts(st, f"ses_cx_{P}") == ["Count the lines in src/"] and _usage(st, f"ses_cx_{P}") == _norm(L1)
    st.close()


def test_a_sub_agent_names_its_parent_and_keeps_its_own_first_prompt(tmp_path):
    """A sub-agent (``source.subagent.thread_spawn``) whose rollout copies no history: its task
    prompt, written at once, is its own first turn; a leading burst of copied reports without
    any copied ``session_meta`` is not counted (only the baseline moves)."""
    spawn = T0 + timedelta(minutes=10)
    lines = [_meta(spawn, S, spawned_by=P),
             _line(spawn + timedelta(milliseconds=2), "event_msg", {"type": "token_count", "info": {
                 "total_token_usage": T1, "last_token_usage": L1}}),
             *_turn(spawn + timedelta(milliseconds=5), "Review the diff in src/app.py", "gpt-5", L4, _plus(T1, L4),
                    "Two issues.")]
    _write(tmp_path, S, spawn, lines)
    st = open_store(tmp_path / "store")
    _import(st, tmp_path)
    sub = st.get_session(f"ses_cx_{S}")
    assert sub.parent_session_id == f"ses_cx_{P}" and sub.metadata["fork_kind"] == "subagent"
    assert _prompts(st, f"ses_cx_{S}") == ["Review the diff in src/app.py"]
    assert _usage(st, f"ses_cx_{S}") == _norm(L4)
    st.close()


def test_a_sub_agent_with_its_parents_history_keeps_its_task_prompt(tmp_path):
    """A sub-agent whose rollout copies the parent's history writes its task prompt in the same
    burst, right after the copy: the burst's last prompt, with nothing but its own turn's lines
    after it, is the sub-agent's first turn; the copied prompts (each followed by its answer) are
    not imported."""
    spawn = T0 + timedelta(minutes=10)
    copied = _restamped(_parent()[:6], spawn)
    task = "Review the diff in src/app.py"
    at = spawn + timedelta(milliseconds=20)
    lines = [_meta(spawn, S, spawned_by=P), *copied,
             _line(at, "event_msg", {"type": "user_message", "message": task, "kind": "plain"}),
             _line(at, "response_item", {"type": "message", "role": "user",
                                         "content": [{"type": "input_text", "text": task}]}),
             _line(at, "turn_context", {"cwd": "/home/ada/proj", "model": "gpt-5", "approval_policy": "never"}),
             _line(spawn + timedelta(seconds=4), "event_msg", {"type": "token_count", "info": {
                 "total_token_usage": _plus(T1, L4), "last_token_usage": L4}}),
             _line(spawn + timedelta(seconds=5), "response_item", {"type": "message", "role": "assistant",
                                                                   "content": [{"type": "output_text",
                                                                                "text": "Two issues."}]})]
    _write(tmp_path, S, spawn, lines)
    st = open_store(tmp_path / "store")
    _import(st, tmp_path)
    assert _prompts(st, f"ses_cx_{S}") == [task]
    assert _usage(st, f"ses_cx_{S}") == _norm(L4)
    (run,) = st.list_runs(f"ses_cx_{S}")
    assert run.output == {"content": "Two issues."} and run.started_at == at
    st.close()


def test_a_fork_of_a_fork_and_a_fork_read_in_pieces(tmp_path):
    """A second-generation fork copies the whole first fork (its own copy of P included); a fork
    read half now, half later (the burst state is kept between imports) ends the same."""
    fork_at = T0 + timedelta(hours=1)
    g_at = T0 + timedelta(hours=2)
    fork_lines = _fork(fork_at)
    _write(tmp_path, P, T0, _parent())
    fpath = _write(tmp_path, F, fork_at, fork_lines[:4])  # the first import sees the copy's start
    g_lines = [_meta(g_at, G, forked_from=F), *_restamped(fork_lines, g_at),
               *_turn(g_at + timedelta(seconds=9), "And in docs/?", "gpt-5", L4, _plus(_plus(T1, L3), L4), "12.")]
    st = open_store(tmp_path / "store")
    _import(st, tmp_path)
    fpath.write_text("".join(json.dumps(ln) + "\n" for ln in fork_lines))
    _write(tmp_path, G, g_at, g_lines)
    _import(st, tmp_path)
    assert _prompts(st, f"ses_cx_{F}") == ["Instead, count only tests/"]
    assert _usage(st, f"ses_cx_{F}") == _norm(L3)
    assert _prompts(st, f"ses_cx_{G}") == ["And in docs/?"]
    assert _usage(st, f"ses_cx_{G}") == _norm(L4)
    assert st.get_session(f"ses_cx_{G}").parent_session_id == f"ses_cx_{F}"
    st.close()


def test_workers_read_forks_as_one_process_does(tmp_path):
    """Usage keys cross files here (a fork's copied reports): two processes store what one does."""
    import os

    if os.name != "posix":
        pytest.skip("worker processes are used on POSIX only")
    for k in range(6):
        at = T0 + timedelta(hours=1 + k)
        _write(tmp_path / "logs", f"019a0000-0000-7000-8000-0000000001{k:02d}", at, [
            _meta(at, f"019a0000-0000-7000-8000-0000000001{k:02d}", forked_from=P),
            *_restamped(_parent()[:6], at),
            *_turn(at + timedelta(seconds=8), f"Variant {k}", "gpt-5", L3, _plus(T1, L3), "ok")])
    _write(tmp_path / "logs", P, T0, _parent())
    totals = {}
    for n in (1, 2):
        st = open_store(tmp_path / f"s{n}")
        _import(st, tmp_path / "logs", workers=n)
        totals[n] = sorted((s.id, tuple(sorted(_usage(st, s.id).items())), tuple(_prompts(st, s.id)))
                           for s in st.list_sessions())
        st.close()
    assert totals[1] == totals[2]
    assert sum(dict(u).get("output_tokens", 0) for _, u, _ in totals[1]) == \
        L1["output_tokens"] + L2["output_tokens"] + 6 * L3["output_tokens"]
