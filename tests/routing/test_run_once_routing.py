"""Routing over a list of providers from the public surface: ``run_once(provider=[...])``,
``asm run -p a,b`` and ``%%asm -p a,b``, with routing requirements reaching the router."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import asm_nb
from asm_nb.testing.fake_cli import fake_cli_calls

from ..providers._cli_support import install_fixture_cli


@pytest.fixture
def fake_clis(tmp_path, monkeypatch):
    """``claude`` fails with a retryable API error (529), ``codex`` answers; both first on PATH."""
    claude = install_fixture_cli(tmp_path, "claude", "claude_code", "api_error.jsonl", {})
    codex = install_fixture_cli(tmp_path, "codex", "codex", "simple_text.jsonl", {})
    monkeypatch.setenv("PATH", f"{claude.parent}{os.pathsep}{os.environ['PATH']}")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return {"claude": claude, "codex": codex, "work": work}


def test_run_once_over_a_list_fails_over(fake_clis):
    r = asm_nb.run_once("hi", provider=["claude_code", "codex"], store="memory://")
    assert r.ok, r.error
    assert r.output and r.provider == "router"  # codex answered after claude's 529
    routed = {e.data.get("routed_provider") for e in r.events if e.data.get("routed_provider")}
    assert routed == {"claude_code", "codex"}
    # codex ran in the current directory (no "working_directory is required")
    assert fake_cli_calls(fake_clis["codex"])[0]["cwd"] == str(fake_clis["work"])


def test_required_capabilities_reach_the_router(fake_clis):
    r = asm_nb.run_once("hi", provider=["claude_code", "codex"], store="memory://",
                        routing={"required_capabilities": [{"type": "tool", "name": "no-such-tool"}]})
    assert r.status == "failed" and r.error.code == "provider_unavailable"
    assert fake_cli_calls(fake_clis["codex"]) == [] and fake_cli_calls(fake_clis["claude"]) == []
    r = asm_nb.run_once("hi", provider="claude_code,codex", store="memory://",
                        required_capabilities=[{"type": "tool", "name": "no-such-tool"}])
    assert r.status == "failed" and r.error.code == "provider_unavailable"
    # a requirement one provider meets routes there
    r = asm_nb.run_once("hi", provider=["claude_code", "codex"], store="memory://",
                        routing={"required_capabilities": ["tool"], "prefer": ["codex"]})
    assert r.ok and {e.data.get("routed_provider") for e in r.events} - {None} == {"codex"}


def test_required_capabilities_of_a_single_provider_are_checked():
    with pytest.raises(asm_nb.AsmError) as exc:
        asm_nb.run_once("echo hi", provider="shell", store="memory://", required_capabilities=["resource"])
    assert exc.value.code == "missing_required_capability"
    with pytest.raises(asm_nb.AsmError, match="list of providers"):
        asm_nb.run_once("echo hi", provider="shell", store="memory://", routing={"prefer": ["shell"]})


def test_cli_run_with_a_provider_list(fake_clis, tmp_path):
    p = subprocess.run([sys.executable, "-m", "asm_nb.cli", "run", "-p", "claude_code,codex", "hi", "--json"],
                       capture_output=True, text=True, cwd=fake_clis["work"], timeout=120,
                       env={**os.environ, "ASM_HOME": str(tmp_path / "home")})
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout.strip().splitlines()[-1])
    assert info["status"] == "completed" and "working_directory" not in p.stderr


def test_magic_with_a_provider_list(fake_clis, tmp_path, capsys):
    pytest.importorskip("IPython")
    from IPython import get_ipython
    from IPython.testing.globalipapp import start_ipython

    ip = start_ipython() or get_ipython()
    ip.run_line_magic("load_ext", "asm_nb")
    ip.run_line_magic("asm", f"store {tmp_path / 'magic-store'}")
    capsys.readouterr()
    ip.run_cell_magic("asm", "-p claude_code,codex --renderer compact --out routed", "hi")
    out = capsys.readouterr()
    res = ip.user_ns["routed"]
    assert res.ok, (res.error, out.out, out.err)
    assert "working_directory" not in out.out + out.err
