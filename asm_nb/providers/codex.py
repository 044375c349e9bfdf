"""``CodexAdapter``: runs OpenAI's Codex CLI (``codex exec --json``) as a provider (docs/providers.md, Codex).

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
from ._cli import (CliAdapter, Invocation, agent_capabilities, check_config_mapping, check_directory, check_known,
                   check_permission_mode, check_positive_int, check_process_options, check_resume, check_str,
                   explicit_timeout_ms, known_sdk_values, line_prompt, sent_messages, toml_value)
from ._codex_map import CodexMapper
from ._codex_model import configured_model, rollout_model
from ._mapper import Outcome

_OPTIONS = frozenset({"working_directory", "cwd", "model", "permission_mode", "max_turns", "system_prompt", "sdk_opts",
                      "cli_path", "executable", "env", "extra_args", "kill_grace_ms", "resume"})
#: sdk_opts keys understood (docs/providers.md, Codex); anything else is ignored
SDK_KEYS = ("web_search_mode", "show_raw_agent_reasoning", "additional_directories", "reasoning_effort", "sandbox",
            "skip_git_repo_check", "full_auto", "dangerously_bypass_approvals_and_sandbox", "config")


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
        wd = check_directory(options, "working_directory", "cwd", construction=True)
        options.pop("cwd", None)
        options["working_directory"] = wd
        self._check(options)
        super().__init__(**options)
        self.working_directory = wd

    @staticmethod
    def _check(opts: Mapping[str, Any]) -> None:
        check_str(opts, "model")
        check_permission_mode(opts)
        check_positive_int(opts, "max_turns")
        check_str(opts, "system_prompt", allow_empty=True)
        check_process_options(opts)
        check_resume(opts, "thread id")

    # -- port surface ------------------------------------------------------------------------------
    async def capabilities(self) -> list[Capability]:
        return agent_capabilities()

    def validate_config(self, config: Mapping[str, Any]) -> None:
        """``working_directory`` must be present and non-empty; other keys are allowed."""
        check_config_mapping(config, "codex")
        check_directory(config, "working_directory", "cwd", construction=False)

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
        out.update(known_sdk_values(sdk, SDK_KEYS))
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
        exe = self._executable(opts)
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

    def _invocation(self, active: ActiveRun, opts: dict, timeout: Any) -> Invocation:
        self._check(opts)
        resume_id = self._resume_id(opts, active.session)
        prompt = line_prompt(active.run.input, active.session, replay=resume_id is None)
        if not prompt.strip():
            raise AsmError("validation_error", "codex needs a non-empty prompt")
        argv = self.build_argv(opts, resume_id=resume_id)
        env = dict(opts.get("env") or {})
        model, source = configured_model(argv, env)
        mapper = CodexMapper(resumed=resume_id is not None, prompt_messages=sent_messages(active.run.input),
                             configured_model=model, model_source=source)
        return Invocation(argv=argv, cwd=self.working_directory, env=env, stdin_text=prompt, mapper=mapper,
                          timeout_ms=explicit_timeout_ms(timeout))

    def _after_process(self, inv: Invocation, outcome: Outcome) -> Outcome:
        """The model the thread really ran, from Codex's own session (rollout) file."""
        model, source = rollout_model(getattr(inv.mapper, "thread_id", None), inv.env)
        if model:
            outcome.terminal_extra = {**outcome.terminal_extra, "model": model, "model_source": source}
        return outcome


__all__ = ["CodexAdapter"]
