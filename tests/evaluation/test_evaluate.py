"""asm_nb.evaluate end to end with real runs: workspace isolation, repeats, budget stop, resume,
cassette recording and offline replay (workspace changes included), the executor hook, summary,
compare and the eval frames."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import asm_nb
from asm_nb.core.errors import AsmError
from asm_nb.evaluation import scorers as sc
from asm_nb.testing import example_cassette

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def fixture_dir(tmp_path):
    fx = tmp_path / "fixture"
    fx.mkdir()
    (fx / "seen.txt").write_text("fixture\n")
    (fx / "keep.txt").write_text("do not touch\n")
    return fx


def test_workspaces_are_fresh_per_item_and_agent(tmp_path, fixture_dir):
    items = [{"id": f"i{n}", "input": f"echo i{n} >> seen.txt; cat seen.txt", "workspace": str(fixture_dir)}
             for n in range(3)]
    work = tmp_path / "work"
    r = asm_nb.evaluate(items, agents=["shell", {"name": "other", "provider": "shell"}],
                        scorers=[sc.files_changed("seen.txt"), sc.files_unchanged("keep.txt"),
                                 sc.diff_contains("+i"), sc.command("test $(wc -l < seen.txt) -eq 2")],
                        concurrency=4, store=str(tmp_path / "st"), name="iso", workdir=str(work),
                        keep_workspaces=True, progress=False)
    f = r.frame
    assert len(f) == 6 and f["passed"].all(), f[["item_id", "agent", "status"] + [c for c in f if c.startswith("why_")]]
    # each run saw only the fixture and its own line: nothing leaked between items or agents
    for row in f.itertuples():
        assert row.output == f"fixture\n{row.item_id}\n"
        assert open(os.path.join(row.workspace, "seen.txt")).read() == f"fixture\n{row.item_id}\n"
    assert len(set(f["workspace"])) == 6
    assert (fixture_dir / "seen.txt").read_text() == "fixture\n"
    assert set(f["files_changed"]) == {1}


def test_workspaces_are_removed_unless_kept(tmp_path, fixture_dir):
    work = tmp_path / "work"
    asm_nb.evaluate([{"input": "touch new.txt", "workspace": str(fixture_dir)}], agents=["shell"],
                    scorers=[sc.files_changed("new.txt")], store="memory://", workdir=str(work), progress=False)
    leftovers = [p for p in work.rglob("*") if p.is_file()] if work.exists() else []
    assert leftovers == []


def test_repeats_give_one_row_each_and_a_confidence_interval(tmp_path):
    items = [{"id": "coin", "input": "python3 -c 'import random; print(random.choice([\"heads\", \"tails\"]))'",
              "expected": "heads"}, {"id": "sure", "input": "echo heads", "expected": "heads"}]
    r = asm_nb.evaluate(items, agents=["shell"], scorers=[sc.contains()], repeats=4, store="memory://",
                        name="rep", progress=False)
    f = r.frame
    assert len(f) == 8 and sorted(f["repeat"].unique()) == [0, 1, 2, 3]
    assert f["run_id"].nunique() == 8
    s = r.summary.iloc[0]
    assert s["runs"] == 8 and s["items"] == 2
    assert s["ci_low"] <= s["mean_score"] <= s["ci_high"]
    assert f[f.item_id == "sure"]["passed"].all()


def test_budget_stops_new_runs_and_a_rerun_finishes_the_rest(tmp_path):
    cas = example_cassette("hello")  # every replay costs $0.01482
    items = [f"question {n}" for n in range(6)]
    store = str(tmp_path / "st")
    agents = {"claude": {"provider": "replay", "options": {"cassette": str(cas)}}}
    r = asm_nb.evaluate(items, agents=agents, scorers=[sc.contains("demo-project")], budget=0.04, concurrency=1,
                        store=store, name="budget", progress=False)
    f = r.frame
    assert r.stopped == "budget"
    assert list(f["status"]) == ["completed"] * 3 + ["skipped"] * 3
    assert set(f[f.status == "skipped"]["error_code"]) == {"budget_exceeded"}
    assert r.summary.iloc[0]["cost_usd"] == pytest.approx(3 * 0.01482)
    assert r.thresholds(pass_rate=0.5) == ["eval stopped by its budget after $0.0445"]
    first_ids = set(f["run_id"].dropna())
    r2 = asm_nb.evaluate(items, agents=agents, scorers=[sc.contains("demo-project")], budget=1.0, concurrency=1,
                         store=store, name="budget", progress=False)
    f2 = r2.frame
    assert r2.stopped is None and (f2["status"] == "completed").all()
    assert list(f2["resumed"]) == [True] * 3 + [False] * 3
    assert first_ids <= set(f2["run_id"])
    assert len(asm_nb.frames.scores(store, eval="budget")) == 6


RESUME_SCRIPT = textwrap.dedent("""
    import sys, asm_nb
    from asm_nb.evaluation import scorers as sc
    store, log = sys.argv[1], sys.argv[2]
    items = [{"id": f"i{n}", "input": f"sleep 0.6; echo i{n}-$AGENT >> {log}; echo ran i{n}"} for n in range(8)]
    agents = {"a": {"provider": "shell", "env": {"AGENT": "a"}}, "b": {"provider": "shell", "env": {"AGENT": "b"}}}
    print("started", flush=True)
    try:
        asm_nb.evaluate(items, agents=agents, scorers=[sc.contains("ran")], concurrency=2, store=store,
                        name="resume", progress=False)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(3)
""")


def _scored(store_path):
    st = asm_nb.open_store(store_path)
    try:
        return [r for r in st.list_runs(None) if (r.metadata.get("eval") or {}).get("scored")]
    finally:
        st.close()


def test_an_interrupted_eval_resumes_without_running_anything_twice(tmp_path):
    store, log = str(tmp_path / "st"), str(tmp_path / "ran.log")
    script = tmp_path / "run_eval.py"
    script.write_text(RESUME_SCRIPT)
    env = {**os.environ, "PYTHONPATH": ROOT}
    proc = subprocess.Popen([sys.executable, str(script), store, log], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "started"
        deadline = time.monotonic() + 90
        while len(_scored(store)) < 4 if os.path.exists(os.path.join(store, "store.json")) else True:
            assert time.monotonic() < deadline, proc.stderr.read() if proc.poll() is not None else "too slow"
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)  # the notebook's stop button
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, (out, err)
    before = {(r.metadata["eval"]["item_id"], r.metadata["eval"]["agent"]): r.id for r in _scored(store)}
    assert 4 <= len(before) < 16
    with open(log) as f:
        ran_before = f.read().split()
    items = [{"id": f"i{n}", "input": f"sleep 0.6; echo i{n}-$AGENT >> {log}; echo ran i{n}"} for n in range(8)]
    agents = {"a": {"provider": "shell", "env": {"AGENT": "a"}}, "b": {"provider": "shell", "env": {"AGENT": "b"}}}
    r = asm_nb.evaluate(items, agents=agents, scorers=[sc.contains("ran")], concurrency=4, store=store,
                        name="resume", progress=False)
    f = r.frame
    assert len(f) == 16 and f["passed"].all()
    # nothing lost: every run scored before the interrupt is reused as it was
    resumed = {(row.item_id, row.agent): row.run_id for row in f.itertuples() if row.resumed}
    assert resumed == before
    # nothing run twice: a scored run never runs again (only runs cut off by the interrupt do)
    with open(log) as fh:
        lines = fh.read().split()
    for item_id, agent in before:
        assert lines.count(f"{item_id}-{agent}") == 1
    assert set(lines) == {f"i{n}-{a}" for n in range(8) for a in "ab"}
    assert len(lines) - len(ran_before) == 16 - len(before)  # the resume ran exactly the unscored runs
    keys = [(r.metadata["eval"]["item_id"], r.metadata["eval"]["agent"]) for r in _scored(store)]
    assert len(keys) == len(set(keys)) == 16


def test_cassettes_record_once_then_replay_offline_with_workspace_changes(tmp_path, fixture_dir):
    marker = tmp_path / "provider_calls.log"
    items = [{"id": f"t{n}", "input": f"echo call >> {marker}; echo t{n} > answer.txt; echo wrote t{n}",
              "workspace": str(fixture_dir)} for n in range(2)]
    scorers = [sc.contains("wrote"), sc.files_changed("answer.txt"), sc.command("grep -q t answer.txt")]
    cas = tmp_path / "cassettes"
    r1 = asm_nb.evaluate(items, agents=["shell"], scorers=scorers, store=str(tmp_path / "a"), name="rec",
                         cassettes=str(cas), progress=False)
    assert r1.frame["passed"].all()
    assert marker.read_text().count("call") == 2
    recorded = sorted(p.name for p in (cas / "shell").glob("*.jsonl"))
    assert len(recorded) == 2
    header = json.loads((cas / "shell" / recorded[0]).read_text().splitlines()[0])
    assert header["workspace_files"] == {"answer.txt": {"text": "t0\n"}}
    # a fresh store, replay only: the provider is not called, the workspace is rebuilt, scores hold
    r2 = asm_nb.evaluate(items, agents=["shell"], scorers=scorers, store=str(tmp_path / "b"), name="rec",
                         cassettes=str(cas), record="none", progress=False)
    assert r2.frame["passed"].all(), r2.frame.filter(like="why_")
    assert marker.read_text().count("call") == 2
    assert list(r2.frame["output"]) == ["wrote t0\n", "wrote t1\n"]
    assert list(r2.frame["files_changed"]) == [1, 1]
    # replay-only with a missing cassette fails that row instead of calling the provider
    r3 = asm_nb.evaluate([{"id": "new", "input": f"echo call >> {marker}"}], agents=["shell"], scorers=scorers,
                         store="memory://", name="rec", cassettes=str(cas), record="none", progress=False)
    assert r3.frame.iloc[0]["status"] == "failed" and "no recorded cassette" in r3.frame.iloc[0]["error_message"]
    assert marker.read_text().count("call") == 2


def test_executor_hook_runs_items_in_workers(tmp_path, fixture_dir):
    items = [{"id": f"x{n}", "input": f"echo x{n} > out.txt; cat out.txt", "expected": f"x{n}",
              "workspace": str(fixture_dir)} for n in range(4)]
    with ThreadPoolExecutor(2) as pool:
        r = asm_nb.evaluate(items, agents=["shell"], scorers=[sc.contains(), sc.files_changed("out.txt")],
                            store=str(tmp_path / "st"), name="exe", executor=pool, progress=False)
    f = r.frame
    assert f["passed"].all(), f.filter(like="why_")
    assert f["run_id"].nunique() == 4


def test_executor_records_cassettes_then_replays_them_offline(tmp_path, fixture_dir):
    """cassettes= and executor= together: the workers record each run (workspace files included)
    and a later eval replays them, in workers too, without calling the provider."""
    marker = tmp_path / "provider_calls.log"
    items = [{"id": f"w{n}", "input": f"echo call >> {marker}; echo w{n} > answer.txt; echo wrote w{n}",
              "workspace": str(fixture_dir)} for n in range(3)]
    scorers = [sc.contains("wrote"), sc.files_changed("answer.txt"), sc.command("grep -q w answer.txt")]
    cas = tmp_path / "cassettes"
    with ThreadPoolExecutor(2) as pool:
        r1 = asm_nb.evaluate(items, agents=["shell"], scorers=scorers, store=str(tmp_path / "a"), name="xrec",
                             cassettes=str(cas), executor=pool, progress=False)
    assert r1.frame["passed"].all(), r1.frame.filter(like="why_")
    assert marker.read_text().count("call") == 3
    recorded = sorted((cas / "shell").glob("*.jsonl"))
    assert len(recorded) == 3
    assert json.loads(recorded[0].read_text().splitlines()[0])["workspace_files"] == {"answer.txt": {"text": "w0\n"}}
    with ThreadPoolExecutor(2) as pool:
        r2 = asm_nb.evaluate(items, agents=["shell"], scorers=scorers, store=str(tmp_path / "b"), name="xrec",
                             cassettes=str(cas), record="none", executor=pool, progress=False)
    assert r2.frame["passed"].all(), r2.frame.filter(like="why_")
    assert marker.read_text().count("call") == 3  # replayed: the provider was not called again
    assert sorted(r2.frame["output"]) == ["wrote w0\n", "wrote w1\n", "wrote w2\n"]
    assert list(r2.frame["files_changed"]) == [1, 1, 1]


def test_adapter_instance_agents_get_their_options_model_system_and_workspace(tmp_path, fixture_dir):
    """An adapter *instance* as an agent: its model, system prompt and options reach every run
    (not only the workspace as cwd), and each run works in its own workspace copy."""
    pytest.importorskip("anthropic")
    from asm_nb.providers.claude import ClaudeAdapter
    from asm_nb.testing.fake_anthropic import FakeAnthropicServer, text_stream

    with FakeAnthropicServer() as server:
        server.default = text_stream("ok")
        adapter = ClaudeAdapter(api_key="k", base_url=server.base_url, max_retries=0, builtin_tools=False)
        agent = asm_nb.Agent("api", provider=adapter, model="claude-sonnet-4-5", system="Answer tersely.",
                             options={"max_tokens": 77})
        items = [{"id": f"q{n}", "input": f"question {n}", "workspace": str(fixture_dir)} for n in range(2)]
        r = asm_nb.evaluate(items, agents=[agent], scorers=[sc.contains("ok")], store=str(tmp_path / "st"),
                            name="inst", workdir=str(tmp_path / "work"), keep_workspaces=True, progress=False)
        bodies = [req.body for req in server.requests]
    assert r.frame["passed"].all(), r.frame.filter(like="why_")
    assert len(bodies) == 2
    assert {b["model"] for b in bodies} == {"claude-sonnet-4-5"}
    assert {b["max_tokens"] for b in bodies} == {77}
    assert all("Answer tersely." in json.dumps(b.get("system")) for b in bodies)
    store = asm_nb.open_store(str(tmp_path / "st"))
    cwds = {}
    for row in r.frame.itertuples():
        run = store.get_run(row.run_id)
        started = [e for e in store.get_events(run.session_id, run_id=run.id) if e.type.value == "run_started"
                   and "cwd" in e.data]
        cwds[row.item_id] = started[0].data["cwd"]
    assert cwds == {row.item_id: os.path.realpath(row.workspace) for row in r.frame.itertuples()}


def test_adapter_instance_settings_it_would_drop_are_refused_up_front(tmp_path, fixture_dir):
    from asm_nb.providers.shell import ShellAdapter

    ws_items = [{"input": "echo hi", "workspace": str(fixture_dir)}]
    with pytest.raises(AsmError) as e:  # a shell instance keeps the folder it was built with
        asm_nb.evaluate(ws_items, agents=[asm_nb.Agent("sh", provider=ShellAdapter())], scorers=[sc.contains()],
                        store="memory://", progress=False)
    assert e.value.code == "validation_error" and "cannot take the item workspaces (cwd)" in e.value.message
    assert "provider='shell'" in e.value.message
    with pytest.raises(AsmError, match=r"cannot take option\(s\) \['env'\]"):
        asm_nb.evaluate(["echo hi"], agents=[asm_nb.Agent("sh", provider=ShellAdapter(), options={"env": {"A": "1"}})],
                        scorers=[sc.contains()], store="memory://", progress=False)
    ok = asm_nb.evaluate(["sleep 0.01; echo hi"], agents=[asm_nb.Agent("sh", provider=ShellAdapter(),
                                                                     options={"timeout_ms": 5000})],
                         scorers=[sc.contains("hi")], store="memory://", progress=False)
    assert ok.frame["passed"].all()


def test_summary_compare_and_frames(tmp_path):
    items = [{"id": "a", "input": "echo yes", "expected": "yes"}, {"id": "b", "input": "echo no", "expected": "yes"}]
    store = str(tmp_path / "st")
    r = asm_nb.evaluate(items, agents={"base": "shell", "better": {"provider": "shell", "system": None}},
                        scorers=[sc.contains()], store=store, name="cmp", progress=False)
    assert list(r.summary["pass_rate"]) == [0.5, 0.5]
    c = r.compare(baseline="base")
    assert list(c.summary[["wins", "losses", "ties"]].iloc[0]) == [0, 0, 2]
    assert r.disagreements() == []
    with pytest.raises(AsmError):
        r.compare(baseline="nobody")
    ev = asm_nb.frames.evals(store)
    assert set(ev["agent"]) == {"base", "better"} and list(ev["runs"]) == [2, 2]
    scores = asm_nb.frames.scores(store, backend="polars")
    assert scores.height == 4 and set(scores["scorer"]) == {"contains"}
    loaded = asm_nb.load_eval("cmp", store)
    assert sorted(loaded.frame["run_id"]) == sorted(r.frame["run_id"])


def test_bad_arguments_are_one_clear_error():
    for kwargs, needle in [({"repeats": 0}, "repeats"), ({"concurrency": 0}, "concurrency"),
                           ({"budget": -1}, "budget"), ({"record": "sometimes"}, "record"),
                           ({"agents": ["shell", "shell"]}, "unique")]:
        kw = {"agents": ["shell"], **kwargs}
        with pytest.raises(AsmError) as exc:
            asm_nb.evaluate(["echo"], scorers=[sc.contains("x")], progress=False, store="memory://", **kw)
        assert needle in exc.value.message


def test_local_store_save_runs_writes_every_run_at_once(tmp_path):
    store = asm_nb.open_store(str(tmp_path / "st"))
    runs = [store.get_run(asm_nb.run_once(f"echo {n}", provider="shell", store=store).run_id) for n in range(3)]
    store.save_runs([r.replace(metadata={**r.metadata, "eval": {"n": i}}) for i, r in enumerate(runs)])
    store.close()
    again = asm_nb.open_store(str(tmp_path / "st"))
    try:
        assert [again.get_run(r.id).metadata["eval"] for r in runs] == [{"n": 0}, {"n": 1}, {"n": 2}]
        assert all(again.get_run(r.id).status.value == "completed" for r in runs)
    finally:
        again.close()


def test_dask_client_as_executor(tmp_path, fixture_dir):
    distributed = pytest.importorskip("distributed")
    items = [{"id": f"d{n}", "input": f"echo d{n} > out.txt; cat out.txt", "expected": f"d{n}",
              "workspace": str(fixture_dir)} for n in range(3)]
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as client:
        r = asm_nb.evaluate(items, agents=["shell"], scorers=[sc.contains(), sc.files_changed("out.txt")],
                            store=str(tmp_path / "st"), name="dask", executor=client, progress=False)
    assert r.frame["passed"].all(), r.frame.filter(like="why_")
    assert len(asm_nb.frames.scores(str(tmp_path / "st"), eval="dask")) == 6
