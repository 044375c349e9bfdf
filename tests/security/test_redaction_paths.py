"""Issue 18 item 6: every path to disk or terminal is redacted: cassettes written by the
Recorder (``--record``), session names/metadata/tags, deep values, ``env`` inside a command dict,
``asm run``'s terminal output, exports."""

from __future__ import annotations

import json
from pathlib import Path

from asm_nb import run_once
from asm_nb.cli import main
from asm_nb.providers.replay import Recorder
from asm_nb.testing.mock import MockAdapter

from .secret_formats import FORMATS

GHP = "ghp_" + "Ab1Cd2Ef3Gh4" * 3
ENV_VALUE = "plainvalue-no-pattern-42"
PICK = FORMATS[::7]  # a spread of formats
TEXT = "\n".join(t for _, t, _ in PICK)


def _leaks(text: str) -> list[str]:
    return [n for n, _, s in PICK if any(line in text for line in s.splitlines() if line)]


def test_recorder_cassette_is_redacted(tmp_path):
    cassette = tmp_path / "c.jsonl"
    adapter = Recorder(MockAdapter(tool_calls=[{"name": "t", "input": {"q": TEXT}, "output": TEXT}]), cassette)
    r = run_once(TEXT, provider=adapter, store=str(tmp_path / "store"))
    assert r.status == "completed"
    raw = cassette.read_text()
    assert "[REDACTED]" in raw
    assert _leaks(raw) == []


def test_env_inside_a_command_dict_is_redacted(tmp_path):
    store = tmp_path / "store"
    r = run_once({"command": "echo", "args": ["ok"], "env": {"GITHUB_TOKEN": ENV_VALUE, "DB_PASSWORD": ENV_VALUE,
                                               "HOME_DIR": "/home/x"}},
                 provider="shell", store=str(store), cwd=str(tmp_path))
    assert r.status == "completed"
    disk = "\n".join(p.read_text() for p in store.rglob("*") if p.is_file())
    assert ENV_VALUE not in disk
    assert "/home/x" in disk  # ordinary values stay


def test_asm_run_terminal_output_is_redacted(tmp_path, capsys):
    rc = main(["run", f"echo {GHP}; echo password=hunter22 >&2", "--store", str(tmp_path / "s"),
               "--cwd", str(tmp_path)])
    out = capsys.readouterr()
    assert rc == 0
    assert GHP not in out.out + out.err and "hunter22" not in out.out + out.err
    assert "[REDACTED]" in out.out
    rc = main(["run", f"echo {GHP}", "--store", str(tmp_path / "s"), "--cwd", str(tmp_path), "--json"])
    out = capsys.readouterr()
    assert rc == 0 and GHP not in out.out and json.loads(out.out)["status"] == "completed"


def test_export_is_redacted_even_for_old_unredacted_stores(tmp_path):
    from asm_nb import config

    store = str(tmp_path / "s")
    with config.override(redaction_enabled=False):  # a store written before redaction / a pattern
        run_once(f"echo {GHP}", provider="shell", store=store, cwd=str(tmp_path))
    disk = "\n".join(p.read_text() for p in Path(store).rglob("*") if p.is_file())
    assert GHP in disk
    out = tmp_path / "out"
    assert main(["export", str(out), "--store", store, "--format", "jsonl"]) == 0
    exported = "\n".join(p.read_text() for p in out.iterdir())
    assert GHP not in exported and "[REDACTED]" in exported
