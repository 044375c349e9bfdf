"""``AmpAdapter``: runs Sourcegraph's Amp CLI (``amp --execute --stream-json``) as a provider
(docs/providers.md, Amp).

The prompt goes to stdin; stdout carries Claude-Code-compatible JSON lines mapped by
``_stream_json.AmpMapper``. Tool permission rules and MCP servers are written to a temporary
settings file passed with ``--settings-file`` (removed after the run).

>>> from asm_nb.providers.amp import AmpAdapter
>>> AmpAdapter(cwd="/tmp").name
'amp'
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Mapping

from ..core.capabilities import Capability
from ..core.errors import AsmError
from ..core.permission import PermissionMode
from ._base import ActiveRun
from ._cli import (CliAdapter, Invocation, agent_capabilities, check_config_mapping, check_directory, check_known,
                   check_mapping, check_permission_mode, check_positive_int, check_process_options, check_str,
                   known_sdk_values, line_prompt, sent_messages)
from ._stream_json import AmpMapper
from ..ports import resolve_execute_timeout_base

_OPTIONS = frozenset({"cwd", "mode", "permission_mode", "permissions", "mcp_config", "model", "thinking", "max_turns",
                      "system_prompt", "sdk_opts", "cli_path", "executable", "extra_args", "kill_grace_ms", "env"})
#: sdk_opts keys understood (anything else is ignored)
SDK_KEYS = ("visibility", "labels", "env", "stream_timeout_ms", "dangerously_allow_all", "settings_file", "log_level",
            "log_file", "mode", "thinking", "permissions", "mcp_config")
DEFAULT_STREAM_TIMEOUT_MS = 600_000
_ACTIONS = ("allow", "reject", "ask", "delegate")


def _check_permissions(perms: Any) -> list | None:
    if perms is None:
        return None
    if not isinstance(perms, list):
        raise AsmError("validation_error", "permissions must be a list of rules like {'tool': 'Bash', 'action': 'allow'}")
    for i, rule in enumerate(perms):
        if not isinstance(rule, Mapping) or not isinstance(rule.get("tool"), str) or not rule.get("tool"):
            raise AsmError("validation_error", f"permissions[{i}] must be a dict with a non-empty 'tool' string")
        if rule.get("action") not in _ACTIONS:
            raise AsmError("validation_error",
                           f"permissions[{i}].action must be one of {', '.join(_ACTIONS)}, got {rule.get('action')!r}")
    return [dict(r) for r in perms]


class AmpAdapter(CliAdapter):
    """Drives ``amp --execute --stream-json``.

    Options: ``cwd`` (required), ``mode`` (default ``"smart"``), ``permission_mode``
    (``full_auto`` / ``dangerously_skip_permissions`` -> ``--dangerously-allow-all``),
    ``permissions`` (rules ``{tool, action, matches?, context?, to?}``), ``mcp_config``,
    ``model`` (metadata and cost only), ``thinking`` (``--stream-json-thinking``), ``max_turns`` and
    ``system_prompt`` (stored, not passed: Amp has no such flags), ``sdk_opts`` (``visibility``,
    ``labels``, ``env``, ``stream_timeout_ms``, ``dangerously_allow_all``, ``settings_file``,
    ``log_level``, ``log_file``), ``cli_path``/``executable`` (default ``"amp"``), ``extra_args``,
    ``env``, ``kill_grace_ms``.
    """

    name = "amp"
    cli_name = "amp"
    error_provider = "amp"
    install_hint = "npm install -g @sourcegraph/amp"
    execute_overrides = frozenset({"mode", "permission_mode", "permissions", "mcp_config", "model", "thinking",
                                   "sdk_opts", "extra_args", "env", "kill_grace_ms"})

    def __init__(self, **options: Any) -> None:
        check_known(options, _OPTIONS, "amp")
        options["cwd"] = check_directory(options, "cwd", construction=True)
        self._check(options)
        super().__init__(**options)
        self.cwd: str = options["cwd"]
        self.mode: str = options.get("mode") or "smart"

    @staticmethod
    def _check(opts: Mapping[str, Any]) -> None:
        check_str(opts, "mode")
        check_permission_mode(opts)
        _check_permissions(opts.get("permissions"))
        check_mapping(opts, "mcp_config")
        check_str(opts, "model")
        if opts.get("thinking") is not None and not isinstance(opts.get("thinking"), bool):
            raise AsmError("validation_error", f"thinking must be True or False, got {opts.get('thinking')!r}")
        check_positive_int(opts, "max_turns")
        check_str(opts, "system_prompt", allow_empty=True)
        check_process_options(opts)

    # -- port surface ------------------------------------------------------------------------------
    async def capabilities(self) -> list[Capability]:
        return agent_capabilities()

    def validate_config(self, config: Mapping[str, Any]) -> None:
        """``cwd`` must be present and non-empty; other keys are allowed."""
        check_config_mapping(config, "amp")
        check_directory(config, "cwd", construction=False)

    # -- building the command ----------------------------------------------------------------------
    def build_options(self, opts: Mapping[str, Any] | None = None, *, timeout: Any = None) -> dict:
        """Effective CLI options: defaults <- ``sdk_opts`` (known keys) <- normalized options.
        ``max_turns`` and ``system_prompt`` are deliberately absent (no CLI equivalent).

        >>> AmpAdapter(cwd="/w", permission_mode="full_auto",
        ...            sdk_opts={"dangerously_allow_all": False}).build_options()["dangerously_allow_all"]
        True
        """
        opts = dict(self.options if opts is None else opts)
        sdk = opts.get("sdk_opts") or {}
        out: dict = {"mode": "smart", "dangerously_allow_all": False, "thinking": False,
                     "stream_timeout_ms": DEFAULT_STREAM_TIMEOUT_MS}
        out.update(known_sdk_values(sdk, SDK_KEYS))
        out["cwd"] = opts.get("cwd") or self.cwd
        if opts.get("mode"):
            out["mode"] = opts["mode"]
        mode = PermissionMode.normalize(opts.get("permission_mode"))
        if mode in (PermissionMode.FULL_AUTO, PermissionMode.DANGEROUSLY_SKIP_PERMISSIONS):
            out["dangerously_allow_all"] = True
        elif mode is not None:
            out["dangerously_allow_all"] = False
        if opts.get("permissions") is not None:
            out["permissions"] = _check_permissions(opts["permissions"])
        if opts.get("mcp_config") is not None:
            out["mcp_config"] = dict(opts["mcp_config"])
        if opts.get("thinking") is not None:
            out["thinking"] = bool(opts["thinking"])
        if timeout is not None:
            out["stream_timeout_ms"] = resolve_execute_timeout_base(timeout)
        elif not (isinstance(out.get("stream_timeout_ms"), int) and out["stream_timeout_ms"] > 0):
            out["stream_timeout_ms"] = DEFAULT_STREAM_TIMEOUT_MS
        return out

    def build_argv(self, opts: Mapping[str, Any] | None = None, *, settings_file: str | None = None) -> list[str]:
        """``amp --execute --stream-json[-thinking] [--dangerously-allow-all] --mode M [--settings-file F] …``
        (the prompt goes to stdin)."""
        opts = dict(self.options if opts is None else opts)
        bo = self.build_options(opts)
        exe = self._executable(opts)
        argv = [exe, "--execute", "--stream-json-thinking" if bo["thinking"] else "--stream-json"]
        if bo["dangerously_allow_all"]:
            argv.append("--dangerously-allow-all")
        argv += ["--mode", str(bo["mode"])]
        sf = settings_file or bo.get("settings_file")
        if sf:
            argv += ["--settings-file", str(sf)]
        if bo.get("visibility"):
            argv += ["--visibility", str(bo["visibility"])]
        for label in bo.get("labels") or []:
            argv += ["--label", str(label)]
        if bo.get("log_level"):
            argv += ["--log-level", str(bo["log_level"])]
        if bo.get("log_file"):
            argv += ["--log-file", str(bo["log_file"])]
        return argv + list(opts.get("extra_args") or [])

    def _settings_file(self, bo: Mapping[str, Any]) -> str | None:
        """Write permissions / MCP servers to a temporary settings file (merged over ``settings_file``)."""
        if bo.get("permissions") is None and bo.get("mcp_config") is None:
            return None
        settings: dict = {}
        base = bo.get("settings_file")
        if base:
            try:
                with open(base) as f:
                    loaded = json.load(f)
                if isinstance(loaded, dict):
                    settings.update(loaded)
            except (OSError, ValueError) as exc:
                raise AsmError("validation_error", f"settings_file {base!r} could not be read as JSON: {exc}") from exc
        if bo.get("permissions") is not None:
            settings["amp.permissions"] = bo["permissions"]
        if bo.get("mcp_config") is not None:
            settings["amp.mcpServers"] = bo["mcp_config"]
        fd, path = tempfile.mkstemp(prefix="asm_nb-amp-settings-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(settings, f)
        return path

    def _invocation(self, active: ActiveRun, opts: dict, timeout: Any) -> Invocation:
        self._check(opts)
        prompt = line_prompt(active.run.input, active.session)
        if not prompt.strip():
            raise AsmError("validation_error", "amp needs a non-empty prompt")
        bo = self.build_options(opts, timeout=timeout)
        settings = self._settings_file(bo)
        cleanup = [lambda: os.unlink(settings)] if settings else []
        env = dict(bo.get("env") or {}) if isinstance(bo.get("env"), Mapping) else {}
        env.update(opts.get("env") or {})
        mapper = AmpMapper(prompt_messages=sent_messages(active.run.input), configured_model=opts.get("model"),
                           model_source="option")
        return Invocation(argv=self.build_argv(opts, settings_file=settings), cwd=self.cwd, env=env,
                          stdin_text=prompt, mapper=mapper, idle_timeout_ms=bo["stream_timeout_ms"], cleanup=cleanup)


__all__ = ["AmpAdapter"]
