"""Which model a ``codex exec`` run used, and where that is known from.

``codex exec --json`` does not name the model in its events. In order of authority:

1. the rollout file Codex writes for the thread, ``$CODEX_HOME/sessions/YYYY/MM/DD/
   rollout-<time>-<thread_id>.jsonl``: its ``turn_context`` records carry ``payload.model``, the
   model each turn really ran (``session_file:<path>``);
2. ``--model`` / ``-m`` on the command line (``flag``);
3. ``-c model=…`` (``config_override``);
4. ``$CODEX_HOME/config.toml`` (default ``~/.codex/config.toml``): ``[profiles.<p>].model`` for
   the active profile (``--profile`` / ``-c profile=`` / top-level ``profile``), else the
   top-level ``model`` (``config_file:<path>``).

The CLI's built-in default changes between releases, so it is not guessed: when none of these
says, the model is unknown and the run is left unpriced (with one warning) rather than priced
from a placeholder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

__all__ = ["codex_home", "configured_model", "rollout_model"]


def codex_home(env: Mapping[str, str] | None = None) -> Path:
    """``$CODEX_HOME`` (from ``env`` first, then the process environment) or ``~/.codex``."""
    home = (env or {}).get("CODEX_HOME") or os.environ.get("CODEX_HOME")
    return Path(home).expanduser() if home else Path.home() / ".codex"


def _flag(argv: Sequence[str], *names: str) -> str | None:
    value = None
    for i, a in enumerate(argv):
        for n in names:
            if a == n and i + 1 < len(argv):
                value = argv[i + 1]
            elif a.startswith(n + "="):
                value = a[len(n) + 1:]
    return value


def _overrides(argv: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for i, a in enumerate(argv):
        kv = argv[i + 1] if a in ("-c", "--config") and i + 1 < len(argv) else None
        if kv and "=" in kv:
            k, v = kv.split("=", 1)
            v = v.strip()
            try:
                import tomllib

                v = tomllib.loads(f"x = {v}")["x"]
            except (ImportError, ValueError, KeyError):  # not a TOML value: the text itself
                v = v.strip("\"'")
            out[k.strip()] = v
    return out


def configured_model(argv: Sequence[str], env: Mapping[str, str] | None = None) -> tuple[str | None, str | None]:
    """``(model, source)`` from the command line and the config file, or ``(None, None)``."""
    model = _flag(argv, "--model", "-m")
    if model:
        return model, "flag"
    over = _overrides(argv)
    if isinstance(over.get("model"), str) and over["model"]:
        return over["model"], "config_override"
    path = codex_home(env) / "config.toml"
    try:
        import tomllib

        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, None
    profile = _flag(argv, "--profile", "-p") or over.get("profile") or doc.get("profile")
    profiles = doc.get("profiles")
    chosen = profiles.get(profile) if isinstance(profiles, dict) and isinstance(profile, str) else None
    if isinstance(chosen, dict):
        pm = chosen.get("model")
        if isinstance(pm, str) and pm:
            return pm, f"config_file:{path} [profiles.{profile}]"
    if isinstance(doc.get("model"), str) and doc["model"]:
        return doc["model"], f"config_file:{path}"
    return None, None


def rollout_model(thread_id: str | None, env: Mapping[str, str] | None = None) -> tuple[str | None, str | None]:
    """``(model, "session_file:<path>")`` from the thread's rollout file (its last
    ``turn_context``), or ``(None, None)``."""
    if not thread_id:
        return None, None
    sessions = codex_home(env) / "sessions"
    try:
        files = sorted(sessions.glob(f"**/rollout-*{thread_id}.jsonl"), key=lambda p: p.stat().st_mtime)
    except OSError:
        return None, None
    for path in reversed(files):
        model = None
        try:
            with path.open(encoding="utf-8", errors="replace") as f:
                for line in f:
                    if '"turn_context"' not in line:
                        continue
                    try:
                        obj: Any = json.loads(line)
                    except ValueError:
                        continue
                    payload = obj.get("payload") if isinstance(obj, dict) else None
                    if obj.get("type") == "turn_context" and isinstance(payload, dict) \
                            and isinstance(payload.get("model"), str) and payload["model"]:
                        model = payload["model"]
        except OSError:
            continue
        if model:
            return model, f"session_file:{path}"
    return None, None
