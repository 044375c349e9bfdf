"""``CodexAdapter``: runs OpenAI's Codex CLI (``codex exec --json``) as a provider (spec part 2 §4).

The prompt goes to stdin (``-``), JSON lines come back on stdout and are mapped by
``_codex_map.CodexMapper``. Native resume: ``codex exec --json … resume <thread_id> -`` when the
session already has a Codex thread (``session.metadata["provider_sessions"]["codex"]``) or the
``resume`` option names one.

>>> from asm_nb.providers.codex import CodexAdapter
>>> CodexAdapter(working_directory="/tmp").name
'codex'
"""

from __future__ import annotations

from typing import Any, Mapping

from ..core.capabilities import Capability
from ..core.errors import AsmError
from ..core.permission import PermissionMode
from ._base import ActiveRun
from ._cli import (CliAdapter, Invocation, check_known, check_mapping, check_permission_mode, check_positive_int,
                   check_str, check_str_list, explicit_timeout_ms, has_transcript, line_prompt, provider_session_id,
                   sdk_value, sent_messages, toml_value)
from ._codex_map import CodexMapper

_OPTIONS = frozenset({"working_directory", "cwd", "model", "permission_mode", "max_turns", "system_prompt", "sdk_opts",
                      "cli_path", "executable", "env", "extra_args", "kill_grace_ms", "resume"})
#: sdk_opts keys understood (spec part 2 §4.1); anything else is ignored
SDK_KEYS = ("web_search_mode", "show_raw_agent_reasoning", "additional_directories", "reasoning_effort", "sandbox",
            "skip_git_repo_check", "full_auto", "dangerously_bypass_approvals_and_sandbox", "config")


def _working_directory(opts: Mapping[str, Any], *, construction: bool) -> str:
    key = "working_directory" if "working_directory" in opts else ("cwd" if "cwd" in opts else None)
    if key is None or opts.get(key) is None:
        raise AsmError("validation_error", "working_directory is required")
    v = opts[key]
    if v == "":
        raise AsmError("validation_error", "working_directory cannot be empty")
    if not isinstance(v, str):
        if construction:
            raise AsmError("validation_error", "working_directory must be a non-empty string")
        return str(v)
    return v


class CodexAdapter(CliAdapter):
    """Drives ``codex exec --json``.

    Options: ``working_directory`` (required; alias ``cwd``), ``model``, ``permission_mode``
    (``full_auto`` -> workspace-write sandbox, ``dangerously_skip_permissions`` ->
    ``--dangerously-bypass-approvals-and-sandbox``), ``max_turns`` (stored only), ``system_prompt``
    (``-c base_instructions=…``), ``sdk_opts`` (``sandbox``, ``skip_git_repo_check``,
    ``reasoning_effort``, ``additional_directories``, ``config`` …), ``cli_path``/``executable``
    (default ``"codex"``), ``env``, ``extra_args``, ``kill_grace_ms``, ``resume`` (None: resume the
    session's Codex thread when there is one and no transcript is replayed; False: never; a str:
    that thread id).
    """

    name = "codex"
    cli_name = "codex"
    error_provider = "codex"
    install_hint = "npm install -g @openai/codex"
    supports_native_continuation = True
    execute_overrides = frozenset({"model", "permission_mode", "system_prompt", "sdk_opts", "env", "extra_args",
                                   "resume", "kill_grace_ms", "max_turns"})

    def __init__(self, **options: Any) -> None:
        check_known(options, _OPTIONS, "codex")
        wd = _working_directory(options, construction=True)
        options.pop("cwd", None)
        options["working_directory"] = wd
        self._check(options)
        super().__init__(**options)
        self.working_directory = wd
        self.model: str | None = options.get("model")
        self.permission_mode = options.get("permission_mode")
        self.max_turns: int | None = options.get("max_turns")
        self.system_prompt: str | None = options.get("system_prompt")
        self.sdk_opts: dict = dict(options.get("sdk_opts") or {})

    @staticmethod
    def _check(opts: Mapping[str, Any]) -> None:
        check_str(opts, "model")
        check_permission_mode(opts)
        check_positive_int(opts, "max_turns")
        check_str(opts, "system_prompt", allow_empty=True)
        check_mapping(opts, "sdk_opts")
        check_mapping(opts, "env")
        check_str_list(opts, "extra_args")
        check_positive_int(opts, "kill_grace_ms")
        check_str(opts, "cli_path")
        check_str(opts, "executable")
        r = opts.get("resume")
        if r is not None and r is not False and not (isinstance(r, str) and r):
            raise AsmError("validation_error", f"resume must be None, False or a thread id string, got {r!r}")

    # -- port surface ------------------------------------------------------------------------------
    async def capabilities(self) -> list[Capability]:
        return [Capability.new("streaming", "sampling", description="Real-time streaming of responses"),
                Capability.new("tool_use", "tool", description="Tool/function calling capability"),
                Capability.new("interrupt", "sampling", description="Ability to interrupt/cancel in-progress requests"),
                Capability.new("mcp", "tool", description="MCP server integration"),
                Capability.new("file_operations", "tool", description="File read/write operations"),
                Capability.new("bash", "tool", description="Command execution capability")]

    def validate_config(self, config: Mapping[str, Any]) -> None:
        """``working_directory`` must be present and non-empty; other keys are allowed."""
        if not isinstance(config, Mapping):
            raise AsmError("validation_error", "Invalid codex config: expected a mapping")
        _working_directory(config, construction=False)

    # -- building the command ----------------------------------------------------------------------
    def run_options(self, opts: Mapping[str, Any] | None = None) -> dict:
        """The effective thread options: defaults <- ``sdk_opts`` (known keys) <- normalized options.

        >>> CodexAdapter(working_directory="/w", permission_mode="full_auto",
        ...              sdk_opts={"full_auto": False}).run_options()["full_auto"]
        True
        """
        opts = dict(self.options if opts is None else opts)
        sdk = opts.get("sdk_opts") or {}
        out: dict = {"full_auto": False, "dangerously_bypass_approvals_and_sandbox": False}
        for k in SDK_KEYS:
            v = sdk_value(sdk, k)
            if v is not None:
                out[k] = v
        out["working_directory"] = opts.get("working_directory") or self.working_directory
        if opts.get("model"):
            out["model"] = opts["model"]
        mode = PermissionMode.normalize(opts.get("permission_mode"))
        if mode is PermissionMode.FULL_AUTO:
            out["full_auto"] = True
        elif mode is PermissionMode.DANGEROUSLY_SKIP_PERMISSIONS:
            out["dangerously_bypass_approvals_and_sandbox"] = True
        if opts.get("system_prompt"):
            out["base_instructions"] = opts["system_prompt"]
        if opts.get("max_turns") is not None:
            out["max_turns"] = opts["max_turns"]
        return out

    def build_argv(self, opts: Mapping[str, Any] | None = None, *, resume_id: str | None = None) -> list[str]:
        """``codex exec --json [--sandbox S] [--skip-git-repo-check] -C <dir> [--model M] [flags…]
        [-c k=v …] [resume <id>] -``."""
        opts = dict(self.options if opts is None else opts)
        ro = self.run_options(opts)
        exe = opts.get("executable") or opts.get("cli_path") or "codex"
        argv = [exe, "exec", "--json"]
        sandbox = ro.get("sandbox")
        if ro["dangerously_bypass_approvals_and_sandbox"]:
            sandbox = None  # the bypass flag conflicts with --sandbox
        elif ro["full_auto"] and not sandbox:
            # `--full-auto` is only a deprecated alias in current CLIs: ask for the sandbox it meant
            sandbox = "workspace-write"
        if sandbox:
            argv += ["--sandbox", str(sandbox)]
        if ro.get("skip_git_repo_check"):
            argv.append("--skip-git-repo-check")
        argv += ["-C", ro["working_directory"]]
        if ro.get("model"):
            argv += ["--model", ro["model"]]
        if ro["dangerously_bypass_approvals_and_sandbox"]:
            argv.append("--dangerously-bypass-approvals-and-sandbox")
        for d in ro.get("additional_directories") or []:
            argv += ["--add-dir", str(d)]
        config: dict = {}
        if ro.get("reasoning_effort"):
            config["model_reasoning_effort"] = ro["reasoning_effort"]
        if ro.get("web_search_mode") is not None:
            config["web_search"] = ro["web_search_mode"]
        if ro.get("show_raw_agent_reasoning") is not None:
            config["show_raw_agent_reasoning"] = bool(ro["show_raw_agent_reasoning"])
        if ro.get("base_instructions"):
            config["base_instructions"] = ro["base_instructions"]
        if isinstance(ro.get("config"), Mapping):
            config.update(ro["config"])
        for k, v in config.items():
            argv += ["-c", f"{k}={toml_value(v)}"]
        argv += list(opts.get("extra_args") or [])
        if resume_id:
            argv += ["resume", resume_id]
        argv.append("-")
        return argv

    def _resume_id(self, opts: Mapping[str, Any], session: Any) -> str | None:
        r = opts.get("resume")
        if r is False:
            return None
        if isinstance(r, str) and r:
            return r
        if has_transcript(session):
            return None  # the runtime chose transcript replay
        return provider_session_id(session, self.name)

    def _invocation(self, active: ActiveRun, opts: dict, timeout: Any) -> Invocation:
        self._check(opts)
        resume_id = self._resume_id(opts, active.session)
        prompt = line_prompt(active.run.input, active.session, replay=resume_id is None)
        if not prompt.strip():
            raise AsmError("validation_error", "codex needs a non-empty prompt")
        mapper = CodexMapper(resumed=resume_id is not None, prompt_messages=sent_messages(active.run.input),
                             configured_model=opts.get("model"))
        return Invocation(argv=self.build_argv(opts, resume_id=resume_id), cwd=self.working_directory,
                          env=dict(opts.get("env") or {}), stdin_text=prompt, mapper=mapper,
                          timeout_ms=explicit_timeout_ms(timeout))


__all__ = ["CodexAdapter"]
