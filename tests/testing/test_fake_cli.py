"""The fake CLI executables of ``asm_nb.testing.fake_cli``."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import time

import pytest

from asm_nb.testing.fake_cli import fake_cli_calls, fixture_step, install_fake_cli, manifest_entry


FIX = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "providers"


def run(exe, *args, stdin="", env=None, timeout=20):
    return subprocess.run([str(exe), *args], input=stdin.encode(), capture_output=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_replays_fixture_bytes_and_manifest_exit(tmp_path):
    fx = FIX / "codex" / "failing_turn.jsonl"
    exe = install_fake_cli(tmp_path, "codex", fx)
    assert exe.name == "codex" and os.access(exe, os.X_OK)
    p = run(exe, "exec", "--json", "-", stdin="the prompt", env={"OPENAI_API_KEY": "sk-test"})
    assert p.stdout == fx.read_bytes()
    assert p.returncode == 1 and p.stderr.decode() == "Reading prompt from stdin...\n"
    calls = fake_cli_calls(exe)
    assert len(calls) == 1
    c = calls[0]
    assert c["argv"] == ["codex", "exec", "--json", "-"] and c["stdin"] == "the prompt"
    assert c["env"]["OPENAI_API_KEY"] == "sk-test" and c["cwd"] == os.getcwd()


def test_signal_death_and_torn_last_line(tmp_path):
    fx = FIX / "claude_code" / "truncated.jsonl"
    exe = install_fake_cli(tmp_path, "claude", fx)
    p = run(exe, "-p", "x")
    assert p.returncode == -signal.SIGKILL
    assert p.stdout == fx.read_bytes() and not p.stdout.endswith(b"\n")
    exe2 = install_fake_cli(tmp_path / "b", "amp", FIX / "amp" / "truncated.jsonl", ignore_signals=["SIGTERM"])
    assert run(exe2).returncode == -signal.SIGTERM  # its own exit signal is delivered even when ignored


def test_overrides_and_inline_stdout(tmp_path):
    exe = install_fake_cli(tmp_path, "amp", FIX / "amp" / "simple_text.jsonl", exit_code=3, stderr="boom\n")
    p = run(exe)
    assert p.returncode == 3 and p.stderr == b"boom\n"
    exe = install_fake_cli(tmp_path / "c", "codex", stdout='{"type":"x"}\n', signal="TERM")
    p = run(exe)
    assert p.stdout == b'{"type":"x"}\n' and p.returncode == -signal.SIGTERM


def test_script_serves_successive_invocations(tmp_path):
    exe = install_fake_cli(tmp_path, "codex", script=[
        fixture_step(FIX / "codex" / "simple_text.jsonl", label="first"),
        {"fixture": str(FIX / "codex" / "not_git_repo.jsonl"), "label": "second"},
    ])
    outs = [run(exe, stdin=f"p{i}") for i in range(3)]
    assert outs[0].returncode == 0 and outs[0].stdout == (FIX / "codex" / "simple_text.jsonl").read_bytes()
    assert outs[1].returncode == 1 and outs[1].stdout == b"" and b"Not inside a trusted directory" in outs[1].stderr
    assert outs[2].returncode == 1  # the last step repeats
    calls = fake_cli_calls(exe)
    assert [c["invocation"] for c in calls] == [0, 1, 2]
    assert [c["step"] for c in calls] == ["first", "second", "second"]
    assert [c["stdin"] for c in calls] == ["p0", "p1", "p2"]


def test_line_delay_streams_lines(tmp_path):
    exe = install_fake_cli(tmp_path, "codex", stdout="a\nb\nc\n", line_delay_ms=150)
    proc = subprocess.Popen([str(exe)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    try:
        first = proc.stdout.readline()
        t0 = time.monotonic()
        rest = proc.stdout.read()
        assert first == b"a\n" and rest == b"b\nc\n"
        assert time.monotonic() - t0 >= 0.2  # the remaining lines were paced
    finally:
        proc.wait(timeout=10)


def test_hang_ignoring_sigint_until_sigterm(tmp_path):
    exe = install_fake_cli(tmp_path, "claude", stdout='{"type":"system"}\n', hang=True, ignore_signals=["SIGINT"],
                           spawn_child=True)
    proc = subprocess.Popen([str(exe)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert proc.stdout.readline() == b'{"type":"system"}\n'
        call = fake_cli_calls(exe)[0]
        assert call["pid"] == proc.pid and call["pgid"] == proc.pid and call["child_pid"]
        os.killpg(proc.pid, signal.SIGINT)
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=0.3)  # ignored
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=10) == -signal.SIGTERM
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown fake CLI step keys"):
        install_fake_cli(tmp_path, "codex", stdout="", exitcode=1)
    with pytest.raises(FileNotFoundError):
        install_fake_cli(tmp_path, "codex", tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match="either script"):
        install_fake_cli(tmp_path, "codex", FIX / "codex" / "simple_text.jsonl", script=[{}])
    assert fake_cli_calls(tmp_path / "never-installed") == []


def test_manifest_entry_lookup():
    e = manifest_entry(FIX / "amp" / "auth_failure.jsonl")
    assert e["exit_code"] == 1 and "Invalid API key" in e["stderr"]
    assert manifest_entry(FIX / "amp" / "nope.jsonl") is None
    step = fixture_step(FIX / "claude_code" / "cancelled_sigterm.jsonl", hang=True)
    assert step["signal"] == "SIGTERM" and step["hang"] is True
