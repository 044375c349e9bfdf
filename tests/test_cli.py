"""The asm command, run as a real subprocess in a fresh directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def asm(*args, cwd, env_home=None):
    env = {**os.environ}
    if env_home is not None:
        env["ASM_HOME"] = str(env_home)
    return subprocess.run([sys.executable, "-m", "asm_nb.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=60)


def test_run_then_events_in_a_fresh_directory(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "ASM_HOME"}
    p = subprocess.run([sys.executable, "-m", "asm_nb.cli", "run", "-p", "shell", "echo hi", "--json"],
                       capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout.strip().splitlines()[-1])
    assert info["status"] == "completed" and info["output"] == "hi\n"
    assert (tmp_path / ".asm").is_dir()  # the default store beside the working directory
    ev = subprocess.run([sys.executable, "-m", "asm_nb.cli", "events", info["run_id"]], capture_output=True,
                        text=True, cwd=tmp_path, env=env, timeout=60)
    assert ev.returncode == 0, ev.stderr
    assert "run_started" in ev.stdout and "run_completed" in ev.stdout and "message_streamed" in ev.stdout
    js = subprocess.run([sys.executable, "-m", "asm_nb.cli", "events", info["run_id"], "--json"],
                        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    events = json.loads(js.stdout)
    assert [e["sequence_number"] for e in events] == sorted(e["sequence_number"] for e in events)


def test_run_streams_output_and_lists(tmp_path):
    p = asm("run", "-p", "shell", "echo streamed-text", cwd=tmp_path, env_home=tmp_path / "h")
    assert p.returncode == 0 and "streamed-text" in p.stdout
    s = asm("sessions", cwd=tmp_path, env_home=tmp_path / "h")
    assert s.returncode == 0 and "completed" in s.stdout and "session_id" in s.stdout
    r = asm("runs", "--json", cwd=tmp_path, env_home=tmp_path / "h")
    rows = json.loads(r.stdout)
    assert len(rows) == 1 and rows[0]["status"] == "completed" and rows[0]["provider"] == "shell"


def test_failed_run_exits_1(tmp_path):
    p = asm("run", "-p", "shell", "exit 4", cwd=tmp_path, env_home=tmp_path / "h")
    assert p.returncode == 1
    assert "failed" in p.stderr


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    p = asm("events", "run_does_not_exist", cwd=tmp_path, env_home=tmp_path / "h")
    assert p.returncode == 2  # a read-only command on a missing store: the path, not a new store
    assert p.stderr.strip().count("\n") == 0 and "no store at" in p.stderr and not (tmp_path / "h").exists()
    assert asm("run", "true", cwd=tmp_path, env_home=tmp_path / "h").returncode == 0
    p = asm("events", "run_does_not_exist", cwd=tmp_path, env_home=tmp_path / "h")
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "run_not_found" in p.stderr
    p = asm("run", "-p", "nope", "x", cwd=tmp_path, env_home=tmp_path / "h")
    assert p.returncode == 2 and "Unknown provider" in p.stderr
    p = asm("frobnicate", cwd=tmp_path)
    assert p.returncode == 2


def test_replay_a_cassette_into_the_store(tmp_path):
    from asm_nb.testing import example_cassette

    home = tmp_path / "h"
    p = asm("replay", str(example_cassette("hello")), "--json", cwd=tmp_path, env_home=home)
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout.strip().splitlines()[-1])
    assert info["status"] == "completed" and info["provider"] == "replay"
    assert "demo-project" in info["output"] and info["token_usage"]["output_tokens"] > 0
    ev = asm("events", info["run_id"], "--json", cwd=tmp_path, env_home=home)
    types = [e["type"] for e in json.loads(ev.stdout)]
    assert types[0] == "run_started" and types[-1] == "run_completed" and "tool_call_completed" in types
    bad = asm("replay", str(tmp_path / "missing.jsonl"), cwd=tmp_path, env_home=home)
    assert bad.returncode == 2 and "missing.jsonl" in bad.stderr
