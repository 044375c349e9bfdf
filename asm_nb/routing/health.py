"""Provider health: is each registered provider usable here, and how has it behaved?

``health_rows()`` returns one row per registered provider: ``available`` (binary found and its
version for the CLI providers; the SDK and an API key for the Claude API — the key itself is
never read out, only whether it is set), the circuit breaker state and recent failures from
the process-wide router state (``routing.router.SHARED_STATE``). ``health_table()`` renders it
for ``asm health`` / ``%asm health``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from typing import Any

from .router import SHARED_STATE, RouterState

__all__ = ["health_rows", "health_table", "probe_provider", "COLUMNS"]

COLUMNS = ("provider", "available", "detail", "circuit", "failures", "last_failure")
_API_KEY_ENV = {"claude": "ANTHROPIC_API_KEY"}


def _version(path: str, timeout_s: float = 5.0) -> str | None:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=timeout_s,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    text = (out.stdout or out.stderr or "").strip().splitlines()
    return text[0][:80] if text else None


def probe_provider(name: str) -> tuple[bool, str]:
    """``(available, detail)`` for one registered provider, without starting a run."""
    from ..core.errors import AsmError
    from ..providers import get_provider_factory

    try:
        factory = get_provider_factory(name)
    except AsmError as err:
        return False, f"cannot load: {err.message}"
    cli = getattr(factory, "cli_name", None)
    if isinstance(cli, str) and cli:
        path = shutil.which(cli)
        if path is None:
            hint = getattr(factory, "install_hint", None)
            return False, f"`{cli}` not found on PATH" + (f" ({hint})" if hint else "")
        return True, f"{cli} {_version(path) or '(version unknown)'}"
    if name in _API_KEY_ENV:
        env = _API_KEY_ENV[name]
        if importlib.util.find_spec("anthropic") is None:
            return False, "anthropic SDK not installed (pip install anthropic)"
        if not os.environ.get(env):
            return False, f"{env} not set"
        return True, f"anthropic SDK, {env} set"
    if name == "shell":
        from .. import config

        sh = config.get("default_shell") or "/bin/sh"
        return (os.path.exists(sh), sh if os.path.exists(sh) else f"{sh} not found")
    if name in ("replay", "mock"):
        return True, "offline"
    return True, "registered"


def health_rows(state: RouterState | None = None, providers: list[str] | None = None) -> list[dict[str, Any]]:
    """One dict per provider: ``provider, available, detail, circuit, failures, last_failure``."""
    from ..providers import available_providers

    st = state if state is not None else SHARED_STATE
    rows = []
    for name in providers if providers is not None else available_providers():
        ok, detail = probe_provider(name)
        breaker = st.circuit_breakers.get(name)
        breaker = breaker.check_state() if breaker is not None else None
        health = st.health.get(name) or {}
        recent = list(st.recent_failures.get(name) or [])
        last = None
        if recent:
            r = recent[-1]
            last = f"{r['code']} at {r['at'].strftime('%H:%M:%S')}"
        rows.append({"provider": name, "available": "yes" if ok else "no", "detail": detail,
                     "circuit": breaker.state if breaker is not None else "closed",
                     "failures": health.get("failure_count", 0), "last_failure": last})
    return rows


def health_table(rows: list[dict[str, Any]] | None = None) -> str:
    """The rows as a plain-text table."""
    from ..rendering.tables import text_table as _table

    return _table(rows if rows is not None else health_rows(), list(COLUMNS))
