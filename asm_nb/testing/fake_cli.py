"""Fake ``codex`` / ``amp`` / ``claude`` executables for offline tests of the CLI adapters.

``install_fake_cli`` writes a small executable that replays a recorded stdout stream (a fixture
file from ``fixtures/providers/<cli>/``, or any text), writes the stderr a real CLI would, then
exits with the given exit code or kills itself with the given signal. Every invocation is
recorded (argv, stdin, cwd, pid, process group, selected environment variables), so a test can
assert what the adapter sent.

    from asm_nb.testing.fake_cli import install_fake_cli, fake_cli_calls

    exe = install_fake_cli(tmp_path, "codex", "fixtures/providers/codex/simple_text.jsonl")
    adapter = CodexAdapter(working_directory=str(tmp_path), executable=str(exe))
    result = await adapter.execute(run, session)
    fake_cli_calls(exe)[0]["stdin"]        # the prompt the adapter wrote

Exit code, signal and stderr default to the fixture's entry in the ``manifest.json`` next to it
(keyword arguments override). Put the executable's directory first on ``PATH`` instead of passing
``executable=`` to test code that looks the binary up by name.

Behaviour keywords (also the keys of a ``script`` step):

- ``stdout``: text to replay instead of a fixture file;
- ``stderr``, ``exit_code``, ``signal`` (``"SIGTERM"``, ``"SIGKILL"``, or a number);
- ``line_delay_ms``: pause after each stdout line (streaming, cancel tests);
- ``start_delay_ms``: pause before the first line;
- ``hang`` / ``hang_ms``: after the output keep running until killed (bounded by ``hang_ms``,
  default 30 s), like a CLI busy in a long tool call;
- ``ignore_signals``: e.g. ``["SIGINT"]`` or ``["SIGINT", "SIGTERM"]`` (a stubborn CLI);
- ``spawn_child``: start a grandchild process in the same process group (to check that a cancel
  leaves no process behind; its pid is recorded as ``child_pid``);
- ``read_stdin`` (default True): read stdin to EOF before answering, as the real CLIs do.

``script=[step, step, ...]`` serves one step per invocation in order (the last one repeats), e.g.
a first run and a resumed run. A step is a dict of the keywords above plus ``fixture`` (a path).
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

__all__ = ["install_fake_cli", "fake_cli_calls", "manifest_entry", "fixture_step"]


_STEP_KEYS = frozenset({"stdout", "stderr", "exit_code", "signal", "line_delay_ms", "start_delay_ms", "hang",
                        "hang_ms", "ignore_signals", "spawn_child", "read_stdin", "fixture", "label"})
_DEFAULT_ENV = ("OPENAI_API_KEY", "CODEX_API_KEY", "ANTHROPIC_API_KEY", "AMP_API_KEY", "PATH")


def manifest_entry(fixture_path: str | os.PathLike) -> dict | None:
    """The ``manifest.json`` entry describing ``fixture_path`` (same directory), or None."""
    p = Path(fixture_path)
    manifest = p.parent / "manifest.json"
    if not manifest.is_file():
        return None
    try:
        data = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return None
    for entry in data.get("fixtures", []):
        if isinstance(entry, Mapping) and entry.get("file") == p.name:
            return dict(entry)
    return None


def fixture_step(fixture_path: str | os.PathLike, **overrides: Any) -> dict:
    """A script step replaying ``fixture_path`` with its manifest's exit code, signal and stderr."""
    entry = manifest_entry(fixture_path) or {}
    step: dict = {"fixture": str(fixture_path)}
    for key in ("exit_code", "signal", "stderr"):
        if entry.get(key) is not None:
            step[key] = entry[key]
    step.update(overrides)
    return step


def _normalize_step(step: Mapping[str, Any]) -> dict:
    unknown = set(step) - _STEP_KEYS
    if unknown:
        raise ValueError(f"unknown fake CLI step keys: {sorted(unknown)}; known: {sorted(_STEP_KEYS)}")
    out: dict = {}
    fixture = step.get("fixture")
    if fixture is not None:
        fp = Path(fixture)
        if not fp.is_file():
            raise FileNotFoundError(f"fake CLI fixture not found: {fp}")
        out["stdout_path"] = str(fp.resolve())
        entry = manifest_entry(fp) or {}
        for key in ("exit_code", "signal", "stderr"):
            if key not in step and entry.get(key) is not None:
                out[key] = entry[key]
    if step.get("stdout") is not None:
        out["stdout_text"] = str(step["stdout"])
    for key in ("stderr", "exit_code", "signal", "line_delay_ms", "start_delay_ms", "hang", "hang_ms",
                "ignore_signals", "spawn_child", "read_stdin", "label"):
        if key in step:
            out[key] = step[key]
    if isinstance(out.get("ignore_signals"), str):
        out["ignore_signals"] = [out["ignore_signals"]]
    return out


def install_fake_cli(tmp_dir: str | os.PathLike, name: str, fixture_path: str | os.PathLike | None = None, *,
                     script: Sequence[Mapping[str, Any]] | None = None,
                     record_env: Iterable[str] = _DEFAULT_ENV, **behaviour: Any) -> Path:
    """Write an executable called ``name`` into ``tmp_dir`` and return its path.

    Args:
        tmp_dir: directory for the executable (created if missing); put it first on ``PATH``
            or pass the returned path as the adapter's ``executable=`` option.
        name: the command name (``"codex"``, ``"amp"``, ``"claude"``).
        fixture_path: a recorded stdout stream to replay (exit code, signal and stderr default to
            its ``manifest.json`` entry).
        script: several steps served to successive invocations instead of one (see module doc).
        record_env: environment variable names recorded per invocation.
        **behaviour: step keywords for the single-step form (``stderr``, ``exit_code``,
            ``signal``, ``line_delay_ms``, ``hang``, ``ignore_signals``, ``spawn_child``, ...).
    Returns:
        The executable's path. ``fake_cli_calls(path)`` reads back the recorded invocations.
    """
    d = Path(tmp_dir)
    d.mkdir(parents=True, exist_ok=True)
    if script is not None:
        if fixture_path is not None or behaviour:
            raise ValueError("pass either script=[...] or fixture_path/behaviour keywords, not both")
        steps = [_normalize_step(s) for s in script]
        if not steps:
            raise ValueError("script needs at least one step")
    else:
        step = dict(behaviour)
        if fixture_path is not None:
            step["fixture"] = fixture_path
        steps = [_normalize_step(step)]
    exe = d / name
    cfg_path = d / f".{name}.fake-cli.json"
    record_path = d / f".{name}.calls.jsonl"
    state_path = d / f".{name}.state"
    for p in (record_path, state_path):
        if p.exists():
            p.unlink()
    cfg = {"name": name, "script": steps, "record_path": str(record_path.resolve()),
           "state_path": str(state_path.resolve()), "record_env": list(record_env)}
    cfg_path.write_text(json.dumps(cfg, indent=1))
    runner = (Path(__file__).parent / "_fake_cli_runner.py").read_text()
    exe.write_text(f"#!{sys.executable}\n# fake {name} CLI written by asm_nb.testing.fake_cli\n{runner}\n\n"
                   f"if __name__ == '__main__':\n    sys.exit(main({str(cfg_path.resolve())!r}))\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return exe


def fake_cli_calls(exe: str | os.PathLike) -> list[dict]:
    """The recorded invocations of the fake at ``exe``, oldest first: dicts with ``argv``,
    ``stdin``, ``cwd``, ``pid``, ``pgid``, ``child_pid``, ``env``, ``invocation``."""
    p = Path(exe)
    record = p.parent / f".{p.name}.calls.jsonl"
    if not record.is_file():
        return []
    out = []
    for line in record.read_text().splitlines():
        if line.strip():
            out.append(json.loads(line))
    return sorted(out, key=lambda c: c.get("invocation", 0))
