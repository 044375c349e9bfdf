"""Provider health rows: binaries and versions (fake CLIs on PATH), API keys, breaker state."""

from __future__ import annotations

import os
import stat

from asm_nb.core.errors import AsmError
from asm_nb.routing import ProviderRouter, RouterState
from asm_nb.routing.health import health_rows, health_table, probe_provider
from asm_nb.testing import ScriptedAdapter


def fake_binary(dir_, name, version):
    p = dir_ / name
    p.write_text(f"#!/bin/sh\necho '{version}'\n")
    p.chmod(p.stat().st_mode | stat.S_IEXEC)


def test_cli_binary_found_with_version(tmp_path, monkeypatch):
    fake_binary(tmp_path, "codex", "codex-cli 0.46.0")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}/usr/bin:/bin")
    assert probe_provider("codex") == (True, "codex codex-cli 0.46.0")
    ok, detail = probe_provider("amp")
    assert not ok and "`amp` not found on PATH" in detail


def test_api_key_presence_only(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    assert probe_provider("claude") == (False, "ANTHROPIC_API_KEY not set")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-xyz")
    ok, detail = probe_provider("claude")
    assert ok and "sk-ant-xyz" not in detail


def test_unknown_provider_cannot_load():
    ok, detail = probe_provider("no-such-provider")
    assert not ok and detail.startswith("cannot load")


def test_breaker_state_and_recent_failures_are_shown():
    import asyncio

    from asm_nb.core.run import Run
    from asm_nb.core.session import Session

    clock = [0.0]
    state = RouterState()
    r = ProviderRouter(circuit_breaker=True, circuit_breaker_opts={"failure_threshold": 1, "cooldown_ms": 1000},
                       cooldown_ms=0, state=state, clock=lambda: clock[0])
    r.register_adapter("shell", ScriptedAdapter([AsmError("provider_timeout", "slow")], name="shell"))
    r.register_adapter("replay", ScriptedAdapter(name="replay"))
    s = Session.new("a")
    asyncio.run(r.execute(Run.new(s.id, input="x"), s))
    rows = {row["provider"]: row for row in health_rows(state=state, providers=["shell", "replay"])}
    assert rows["shell"]["circuit"] == "open" and rows["shell"]["failures"] == 1
    assert rows["shell"]["last_failure"].startswith("provider_timeout at ")
    assert rows["replay"]["circuit"] == "closed" and rows["replay"]["last_failure"] is None
    clock[0] = 1000.0
    assert health_rows(state=state, providers=["shell"])[0]["circuit"] == "half_open"
    table = health_table(health_rows(state=state, providers=["shell"]))
    assert table.splitlines()[0].split() == ["provider", "available", "detail", "circuit", "failures",
                                             "last_failure"]
