"""``ClaudeCodeAdapter``: the Claude Code CLI backend of the Claude provider
(``claude -p --output-format stream-json --verbose``; docs/providers.md, Claude Code CLI).

Its ``name`` is ``"claude"`` like the API backend (pricing, ProviderError and session metadata use
``claude``); ``run_started.data.backend`` is ``"claude_code"``. The registry also knows it as
``create_adapter("claude_code", ...)``. stdout lines are mapped by ``_stream_json.ClaudeCodeMapper``;
the ``result`` line's ``usage`` and ``total_cost_usd`` are authoritative.

Native resume: ``--resume <session_id>`` when the session already has a Claude Code session
(``session.metadata["provider_sessions"]["claude"]``) or the ``resume`` option names one.

>>> from asm_nb.providers.claude_code import ClaudeCodeAdapter
>>> ClaudeCodeAdapter().name
'claude'
"""

from __future__ import annotations

import json
import logging
from typing import Any, Mapping

from ..core.capabilities import Capability
from ..core.errors import AsmError
from ..core.permission import PermissionMode
from ..ports import resolve_execute_timeout_base
from ._base import ActiveRun
from ._cli import (CliAdapter, Invocation, chat_prompt, check_config_mapping, check_known, check_permission_mode,
                   check_positive_int, check_process_options, check_resume, check_str, explicit_timeout_ms,
                   sent_messages)
from ._stream_json import ClaudeCodeMapper

log = logging.getLogger(__name__)

_OPTIONS = frozenset({"model", "api_key", "backend", "permission_mode", "max_turns", "system_prompt", "tools",
                      "disallowed_tools", "cwd", "sdk_opts", "max_tokens", "base_url", "max_retries", "cli_path",
                      "executable", "include_partial_messages", "extra_args", "env", "kill_grace_ms", "resume"})

#: ``--permission-mode`` value per PermissionMode (docs/policies.md, permission modes); None = flag omitted
PERMISSION_FLAGS: dict[PermissionMode, list[str]] = {
    PermissionMode.DEFAULT: [],
    PermissionMode.ACCEPT_EDITS: ["--permission-mode", "acceptEdits"],
    PermissionMode.PLAN: ["--permission-mode", "plan"],
    PermissionMode.FULL_AUTO: ["--permission-mode", "bypassPermissions"],
    PermissionMode.DANGEROUSLY_SKIP_PERMISSIONS: ["--dangerously-skip-permissions"],
}
_SDK_PERMISSION = {PermissionMode.ACCEPT_EDITS: "acceptEdits", PermissionMode.PLAN: "plan",
                   PermissionMode.FULL_AUTO: "bypassPermissions",
                   PermissionMode.DANGEROUSLY_SKIP_PERMISSIONS: "bypassPermissions"}

#: ``sdk_opts`` keys -> CLI flags (value kinds: "flag" boolean switch, "value" one value,
#: "repeat" one flag per list item, "csv" comma-joined list, "json" JSON-encoded dict/list)
SDK_FLAGS: dict[str, tuple[str | None, str]] = {
    "verbose": ("--verbose", "flag"),  # always on for stream-json; accepted for compatibility
    "max_budget_usd": ("--max-budget-usd", "value"),
    "add_dirs": ("--add-dir", "repeat"),
    "mcp_config": ("--mcp-config", "json"),
    "strict_mcp_config": ("--strict-mcp-config", "flag"),
    "setting_sources": ("--setting-sources", "csv"),
    "settings": ("--settings", "json"),
    "append_system_prompt": ("--append-system-prompt", "value"),
    "fallback_model": ("--fallback-model", "value"),
    "agents": ("--agents", "json"),
    "fork_session": ("--fork-session", "flag"),
    "session_id": ("--session-id", "value"),
    "continue_conversation": ("--continue", "flag"),
    "permission_prompt_tool_name": ("--permission-prompt-tool", "value"),
    "allowed_tools": ("--allowedTools", "csv"),
    "disallowed_tools": ("--disallowedTools", "csv"),
    "system_prompt": ("--system-prompt", "value"),
    "include_partial_messages": ("--include-partial-messages", "flag"),
    "cwd": (None, "cwd"),  # process working directory, not a flag
}
_NORMALIZED = ("model", "max_turns", "permission_mode", "timeout_ms", "cwd", "tools", "system_prompt")
#: prompts longer than this (or starting with "-") go to stdin instead of argv
MAX_ARGV_PROMPT = 100_000


def _tool_names(tools: Any) -> list[str]:
    out = []
    for t in tools or []:
        if isinstance(t, str):
            out.append(t)
        elif isinstance(t, Mapping) and isinstance(t.get("name"), str):
            out.append(t["name"])
        else:
            name = getattr(t, "name", None)
            if isinstance(name, str):
                out.append(name)
            else:
                raise AsmError("validation_error", f"tools entries must be tool names (str) or have a name, got {t!r}")
    return out


class ClaudeCodeAdapter(CliAdapter):
    """Drives the ``claude`` CLI in print mode with stream-json output.

    Options (docs/providers.md, Claude Code CLI): ``model`` (default: none, so the CLI uses the user's own model
    setting; config ``claude_default_model`` when set), ``tools`` (an empty list means no tools
    at all: ``--tools "" --strict-mcp-config``),
    ``permission_mode``, ``max_turns``, ``system_prompt``, ``tools`` (``--allowedTools``),
    ``disallowed_tools``, ``cwd``, ``sdk_opts`` (lowest precedence, see ``SDK_FLAGS``),
    ``include_partial_messages`` (default True), ``cli_path``/``executable`` (default ``"claude"``),
    ``extra_args``, ``env``, ``kill_grace_ms``, ``resume`` (None: resume the session's Claude Code
    session when there is one and no transcript is replayed; False: never; a str: that session id).
    ``api_key``, ``base_url``, ``max_retries``, ``max_tokens`` and ``backend`` are accepted for
    parity with the API backend and ignored (the CLI handles its own login).
    """

    name = "claude"
    cli_name = "claude"
    error_provider = "claude"
    install_hint = "npm install -g @anthropic-ai/claude-code"
    supports_native_continuation = True
    resume_aliases = ("claude_code",)
    execute_overrides = frozenset({"model", "permission_mode", "max_turns", "system_prompt", "tools",
                                   "disallowed_tools", "sdk_opts", "include_partial_messages", "extra_args", "env",
                                   "kill_grace_ms", "resume"})

    def __init__(self, **options: Any) -> None:
        check_known(options, _OPTIONS, "claude_code")
        backend = options.get("backend")
        if backend not in (None, "claude_code"):
            raise AsmError("validation_error",
                           f"ClaudeCodeAdapter only runs the 'claude_code' backend, got backend={backend!r}")
        self._check(options)
        if options.get("model") is None:
            # only a model the user chose (asm config ``claude_default_model``); otherwise the CLI
            # keeps the user's own setting (``/model``, settings.json, ANTHROPIC_MODEL)
            from .. import config
            options["model"] = config.get("claude_default_model") or None
        super().__init__(**options)
        self.cwd: str | None = options.get("cwd")

    @staticmethod
    def _check(opts: Mapping[str, Any]) -> None:
        check_str(opts, "model")
        check_permission_mode(opts)
        check_positive_int(opts, "max_turns")
        check_str(opts, "system_prompt", allow_empty=True)
        _tool_names(opts.get("tools"))
        _tool_names(opts.get("disallowed_tools"))
        check_str(opts, "cwd")
        check_process_options(opts)
        if opts.get("include_partial_messages") is not None and not isinstance(opts["include_partial_messages"], bool):
            raise AsmError("validation_error", "include_partial_messages must be True or False")
        check_resume(opts, "session id")

    # -- port surface ------------------------------------------------------------------------------
    async def capabilities(self) -> list[Capability]:
        return [Capability.new("streaming", "sampling", description="Real-time streaming of responses"),
                Capability.new("tool_use", "tool", description="Tool/function calling capability"),
                Capability.new("vision", "resource", description="Image understanding capability"),
                Capability.new("system_prompts", "prompt", description="System prompt support"),
                Capability.new("interrupt", "sampling", description="Ability to interrupt/cancel in-progress requests")]

    def validate_config(self, config: Mapping[str, Any]) -> None:
        """Always succeeds for a mapping (auth is the CLI's business)."""
        check_config_mapping(config, "claude")

    # -- building the command ----------------------------------------------------------------------
    def build_options(self, opts: Mapping[str, Any] | None = None, *, timeout: Any = None) -> dict:
        """Effective options: known ``sdk_opts`` keys, then the normalized options on top (docs/providers.md, Claude
        Code CLI). ``max_turns`` and ``model`` always come from the normalized options.

        >>> ClaudeCodeAdapter(sdk_opts={"max_turns": 99}, max_turns=5).build_options()["max_turns"]
        5
        """
        opts = dict(self.options if opts is None else opts)
        sdk = dict(opts.get("sdk_opts") or {})
        out: dict = {}
        ignored = []
        for k, v in sdk.items():
            key = k[1:] if isinstance(k, str) and k.startswith(":") else k
            if key in SDK_FLAGS:
                out[key] = v
            elif key not in _NORMALIZED:
                ignored.append(key)
        if ignored:
            log.warning("claude_code: ignoring unknown sdk_opts keys %s", sorted(map(str, ignored)))
        out["model"] = opts.get("model")
        out["max_turns"] = opts.get("max_turns")
        mode = PermissionMode.normalize(opts.get("permission_mode"))
        out["permission_mode"] = _SDK_PERMISSION.get(mode) if mode is not None else None
        out["timeout_ms"] = resolve_execute_timeout_base(timeout)
        out["cwd"] = opts.get("cwd") if opts.get("cwd") is not None else out.get("cwd")
        for norm, sdk_key in (("tools", "allowed_tools"), ("disallowed_tools", "disallowed_tools")):
            from_sdk = out.pop(sdk_key, None)
            if opts.get(norm) is not None:
                out[norm] = _tool_names(opts[norm])
            elif from_sdk is not None:
                out[norm] = _tool_names(from_sdk.split(",") if isinstance(from_sdk, str) else from_sdk)
        if opts.get("system_prompt") is not None:
            out["system_prompt"] = opts["system_prompt"]
        ipm = opts.get("include_partial_messages")
        out["include_partial_messages"] = bool(out.get("include_partial_messages", True) if ipm is None else ipm)
        return out

    def build_argv(self, opts: Mapping[str, Any] | None = None, *, resume_id: str | None = None,
                   prompt: str | None = None) -> list[str]:
        """``claude -p --output-format stream-json --verbose [flags…] [--resume ID] [<prompt>]``."""
        opts = dict(self.options if opts is None else opts)
        bo = self.build_options(opts)
        exe = self._executable(opts)
        argv = [exe, "-p", "--output-format", "stream-json", "--verbose"]
        mode = PermissionMode.normalize(opts.get("permission_mode"))
        if mode is not None:
            argv += PERMISSION_FLAGS[mode]
        if bo.get("model"):
            argv += ["--model", bo["model"]]
        if bo.get("max_turns") is not None:
            argv += ["--max-turns", str(bo["max_turns"])]
        if bo.get("include_partial_messages"):
            argv.append("--include-partial-messages")
        if bo.get("system_prompt"):
            argv += ["--system-prompt", bo["system_prompt"]]
        if bo.get("tools"):
            argv += ["--allowedTools", ",".join(bo["tools"])]
        elif bo.get("tools") == []:
            # no tools at all (e.g. a deny-all tool policy): ``--allowedTools`` only pre-approves
            # tools, so an empty one would leave every tool on offer. ``--tools ""`` removes the
            # built-in tools and ``--strict-mcp-config`` the user's own MCP servers.
            if bo.get("mcp_config") is not None:
                raise AsmError("validation_error",
                               "tools=[] (no tools) cannot be combined with sdk_opts mcp_config")
            argv += ["--tools", "", "--strict-mcp-config"]
        if bo.get("disallowed_tools"):
            argv += ["--disallowedTools", ",".join(bo["disallowed_tools"])]
        for key, value in bo.items():
            spec = SDK_FLAGS.get(key)
            if spec is None or value is None or key in ("verbose", "include_partial_messages", "system_prompt", "cwd",
                                                        "allowed_tools", "disallowed_tools"):
                continue
            if key == "strict_mcp_config" and bo.get("tools") == []:
                continue  # already on the command line
            flag, kind = spec
            if flag is None:  # not a command-line flag (cwd is the process's directory)
                continue
            if kind == "flag":
                if value:
                    argv.append(flag)
            elif kind == "value":
                argv += [flag, str(value)]
            elif kind == "repeat":
                for v in (value if isinstance(value, (list, tuple)) else [value]):
                    argv += [flag, str(v)]
            elif kind == "csv":
                argv += [flag, ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)]
            elif kind == "json":
                argv += [flag, value if isinstance(value, str) else json.dumps(value)]
        argv += list(opts.get("extra_args") or [])
        if resume_id:
            argv += ["--resume", resume_id]
        if prompt is not None:
            argv.append(prompt)
        return argv

    def _invocation(self, active: ActiveRun, opts: dict, timeout: Any) -> Invocation:
        self._check(opts)
        resume_id = self._resume_id(opts, active.session)
        prompt = chat_prompt(active.run.input, active.session, replay=resume_id is None)
        if not prompt.strip():
            raise AsmError("validation_error", "claude needs a non-empty prompt")
        via_stdin = prompt.startswith("-") or len(prompt.encode("utf-8")) > MAX_ARGV_PROMPT
        bo = self.build_options(opts, timeout=timeout)
        mapper = ClaudeCodeMapper(prompt_messages=sent_messages(active.run.input), configured_model=opts.get("model"),
                                  model_source="flag")
        return Invocation(argv=self.build_argv(opts, resume_id=resume_id, prompt=None if via_stdin else prompt),
                          cwd=bo.get("cwd"), env=dict(opts.get("env") or {}),
                          stdin_text=prompt if via_stdin else None, mapper=mapper,
                          timeout_ms=explicit_timeout_ms(timeout))


__all__ = ["ClaudeCodeAdapter", "PERMISSION_FLAGS", "SDK_FLAGS"]
