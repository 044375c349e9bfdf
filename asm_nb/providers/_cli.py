"""``CliAdapter``: the execute loop shared by the Codex, Amp and Claude Code adapters.

Spawns the CLI through ``process.managed.ManagedProcess`` (own process group, bounded stderr, escalating
group kill), splits stdout with ``_jsonl.LineSplitter``, feeds each line to the adapter's mapper
(``_codex_map`` / ``_stream_json``), emits what it returns, and at process end emits the terminal
event the mapper decides (docs/providers.md: ordering rules, cancellation and each CLI's mapping). Also: option
checking helpers
and the prompt preparation (docs/providers.md, input preparation).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..core.capabilities import Capability
from ..core.errors import AsmError
from ..core.permission import PermissionMode
from ..ports import resolve_execute_timeout_base
from ._base import ActiveRun, BaseAdapter
from ._jsonl import LineSplitter, parse_line
from ._mapper import MapperBase, Outcome, ProcessExit

log = logging.getLogger(__name__)

#: default pause between the stop signals of a cancel (SIGINT -> SIGTERM -> SIGKILL)
DEFAULT_KILL_GRACE_MS = 600


@dataclass
class Invocation:
    """Everything needed to start one CLI run."""

    argv: list[str]
    cwd: str | None
    env: dict[str, str]
    stdin_text: str | None
    mapper: MapperBase
    timeout_ms: int | None = None
    idle_timeout_ms: int | None = None
    cleanup: list[Callable[[], None]] = field(default_factory=list)


# -- option checking -----------------------------------------------------------------------------

def check_str(opts: Mapping[str, Any], key: str, *, required: bool = False, allow_empty: bool = False) -> str | None:
    """A str option (or None). Errors name the option."""
    v = opts.get(key)
    if v is None:
        if required:
            raise AsmError("validation_error", f"{key} is required")
        return None
    if not isinstance(v, str):
        raise AsmError("validation_error", f"{key} must be a string, got {type(v).__name__}")
    if not v and not allow_empty:
        raise AsmError("validation_error", f"{key} cannot be empty")
    return v


def check_positive_int(opts: Mapping[str, Any], key: str) -> int | None:
    v = opts.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise AsmError("validation_error", f"{key} must be a positive integer, got {v!r}")
    return v


def check_str_list(opts: Mapping[str, Any], key: str) -> list[str]:
    v = opts.get(key)
    if v is None:
        return []
    if isinstance(v, str) or not isinstance(v, (list, tuple)) or not all(isinstance(x, str) for x in v):
        raise AsmError("validation_error", f"{key} must be a list of strings, got {v!r}")
    return list(v)


def check_mapping(opts: Mapping[str, Any], key: str) -> dict:
    v = opts.get(key)
    if v is None:
        return {}
    if not isinstance(v, Mapping):
        raise AsmError("validation_error", f"{key} must be a dict, got {type(v).__name__}")
    return dict(v)


def check_permission_mode(opts: Mapping[str, Any]) -> PermissionMode | None:
    return PermissionMode.normalize(opts.get("permission_mode"))


def check_known(opts: Mapping[str, Any], known: frozenset[str], adapter: str) -> None:
    unknown = sorted(str(k) for k in opts if k not in known)
    if unknown:
        raise AsmError("validation_error",
                       f"Unknown {adapter} option(s): {', '.join(unknown)}. Known options: {', '.join(sorted(known))}")


def check_process_options(opts: Mapping[str, Any]) -> None:
    """The options every CLI adapter takes for its process: ``sdk_opts``, ``env``, ``extra_args``,
    ``kill_grace_ms``, ``cli_path``, ``executable`` (checked in that order)."""
    check_mapping(opts, "sdk_opts")
    check_mapping(opts, "env")
    check_str_list(opts, "extra_args")
    check_positive_int(opts, "kill_grace_ms")
    check_str(opts, "cli_path")
    check_str(opts, "executable")


def check_resume(opts: Mapping[str, Any], what: str) -> None:
    """``resume`` is None, False or a non-empty id string (``what`` names the id: "thread id", ...)."""
    r = opts.get("resume")
    if r is not None and r is not False and not (isinstance(r, str) and r):
        raise AsmError("validation_error", f"resume must be None, False or a {what} string, got {r!r}")


def check_directory(opts: Mapping[str, Any], name: str, *aliases: str, construction: bool) -> str:
    """The required working-directory option ``name`` (or the first alias present). At construction
    a non-str value is an error; in ``validate_config`` it is accepted as ``str(value)``."""
    key = next((k for k in (name, *aliases) if k in opts), None)
    if key is None or opts.get(key) is None:
        raise AsmError("validation_error", f"{name} is required")
    v = opts[key]
    if v == "":
        raise AsmError("validation_error", f"{name} cannot be empty")
    if not isinstance(v, str):
        if construction:
            raise AsmError("validation_error", f"{name} must be a non-empty string")
        return str(v)
    return v


def check_config_mapping(config: Any, adapter: str) -> None:
    """``validate_config``'s first check: the config is a mapping."""
    if not isinstance(config, Mapping):
        raise AsmError("validation_error", f"Invalid {adapter} config: expected a mapping")


def sdk_value(sdk_opts: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """``sdk_opts[key]`` accepting str keys (and ``:key`` spellings from ported configs)."""
    for k in (key, f":{key}"):
        if k in sdk_opts:
            return sdk_opts[k]
    return default


def known_sdk_values(sdk_opts: Mapping[str, Any], keys: tuple[str, ...]) -> dict:
    """The non-None ``sdk_opts`` values of ``keys`` (see ``sdk_value``); other keys are ignored."""
    out: dict = {}
    for k in keys:
        v = sdk_value(sdk_opts, k)
        if v is not None:
            out[k] = v
    return out


def agent_capabilities() -> list[Capability]:
    """The capabilities of a coding-agent CLI (Codex, Amp): streaming, tools, interrupt, MCP, files, bash."""
    return [Capability.new("streaming", "sampling", description="Real-time streaming of responses"),
            Capability.new("tool_use", "tool", description="Tool/function calling capability"),
            Capability.new("interrupt", "sampling", description="Ability to interrupt/cancel in-progress requests"),
            Capability.new("mcp", "tool", description="MCP server integration"),
            Capability.new("file_operations", "tool", description="File read/write operations"),
            Capability.new("bash", "tool", description="Command execution capability")]


def toml_value(v: Any) -> str:
    """A Python value as a TOML literal for ``codex -c key=value``."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(x)}" for k, x in v.items()) + "}"
    return json.dumps(str(v))


# -- prompt preparation (docs/providers.md, input preparation) ---------------------------------------------------------

_ROLES = ("system", "user", "assistant", "tool")


def _field(m: Any, key: str) -> Any:
    if isinstance(m, Mapping):
        return m.get(key)
    return getattr(m, key, None)


def _role(m: Any) -> str:
    r = _field(m, "role")
    r = getattr(r, "value", r)
    r = str(r).lower() if r is not None else ""
    return r if r in _ROLES else "assistant"


def _compact(x: Any) -> str:
    return json.dumps(x, ensure_ascii=False, default=str, separators=(",", ":"))


def transcript_entries(session: Any) -> list[tuple[str, str, str]]:
    """``(role, content, kind)`` triples replayed from ``session.context["transcript"]``; ``kind`` is
    ``"text"``, ``"tool_call"`` or ``"tool_result"`` (tool calls and results rendered as text;
    anything else dropped)."""
    ctx = getattr(session, "context", None) or {}
    tr = ctx.get("transcript") if isinstance(ctx, Mapping) else None
    msgs = _field(tr, "messages") if tr is not None else None
    out: list[tuple[str, str, str]] = []
    for m in msgs or []:
        role = _role(m)
        name = _field(m, "tool_name")
        content = _field(m, "content")
        if isinstance(name, str) and role == "assistant":
            tin = _field(m, "tool_input")
            out.append(("assistant", f"tool_call({_field(m, 'tool_call_id') or 'unknown'}): {name} "
                                     f"{_compact(tin if tin is not None else {})}", "tool_call"))
        elif isinstance(name, str) and role == "tool":
            tout = _field(m, "tool_output")
            out.append(("tool", f"tool_result({_field(m, 'tool_call_id') or 'unknown'}): {name} "
                                f"{_compact(tout if tout is not None else '')}", "tool_result"))
        elif isinstance(content, str) and content:
            out.append((role, content, "text"))
    return out


def has_transcript(session: Any) -> bool:
    return bool(transcript_entries(session))


def input_messages(run_input: Any) -> list[dict]:
    """The run input as ``[{role, content}]`` (a str / ``{"prompt"}`` is one user message)."""
    if isinstance(run_input, Mapping):
        msgs = run_input.get("messages")
        if isinstance(msgs, list):
            out = []
            for m in msgs:
                if isinstance(m, Mapping):
                    c = m.get("content")
                    out.append({"role": _role(m) if m.get("role") is not None else "user",
                                "content": c if isinstance(c, str) else _compact(c)})
            return out
        p = run_input.get("prompt")
        if isinstance(p, str):
            return [{"role": "user", "content": p}]
    if run_input is None:
        return []
    return [{"role": "user", "content": run_input if isinstance(run_input, str) else str(run_input)}]


def sent_messages(run_input: Any) -> list[dict]:
    """``message_sent`` payloads: one per user message of the run input."""
    return [m for m in input_messages(run_input) if m["role"] == "user"]


def line_prompt(run_input: Any, session: Any, *, replay: bool = True) -> str:
    """Codex / Amp prompt: transcript lines, a blank line, then the current user text."""
    current = "\n".join(m["content"] for m in input_messages(run_input) if m["role"] == "user")
    lines = []
    if replay:
        for role, content, kind in transcript_entries(session):
            if kind == "tool_call":
                lines.append("assistant_" + content)
            elif kind == "tool_result":
                lines.append(content)
            else:
                lines.append(f"{role}: {content}")
    head = "\n".join(lines)
    if head and current:
        return f"{head}\n\n{current}"
    return head or current


def chat_prompt(run_input: Any, session: Any, *, replay: bool = True) -> str:
    """Claude Code prompt: one user message as is; otherwise ``role: content`` lines."""
    current = input_messages(run_input)
    msgs = [{"role": r, "content": c} for r, c, _ in (transcript_entries(session) if replay else [])] + current
    if len(msgs) == 1 and msgs[0]["role"] == "user":
        return msgs[0]["content"]
    return "\n".join(f"{m['role']}: {m['content']}" for m in msgs if m["content"])


def provider_session_id(session: Any, *names: str) -> str | None:
    """``session.metadata["provider_sessions"][name]["provider_session_id"]`` for the first name that has one."""
    meta = getattr(session, "metadata", None) or {}
    ps = meta.get("provider_sessions") if isinstance(meta, Mapping) else None
    if not isinstance(ps, Mapping):
        return None
    for n in names:
        entry = ps.get(n)
        if isinstance(entry, Mapping) and isinstance(entry.get("provider_session_id"), str) \
                and entry["provider_session_id"]:
            return entry["provider_session_id"]
    return None


def explicit_timeout_ms(timeout: Any) -> int | None:
    """The execute timeout as ms when the caller gave one, else None."""
    return None if timeout is None else resolve_execute_timeout_base(timeout)


# -- the adapter base ----------------------------------------------------------------------------

class CliAdapter(BaseAdapter):
    """Base of the CLI adapters. Subclasses set ``name``, ``cli_name``, ``install_hint``,
    ``error_provider`` and implement ``_invocation(active, opts, timeout) -> Invocation``."""

    cli_name = "cli"
    error_provider = "unknown"  # ProviderError provider string
    install_hint: str | None = None
    supports_native_continuation = False
    #: options a single ``execute`` call may override
    execute_overrides: frozenset[str] = frozenset()

    #: extra ``provider_sessions`` names a native resume looks under (after ``name``)
    resume_aliases: tuple[str, ...] = ()

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.model: str | None = options.get("model")
        self.permission_mode = options.get("permission_mode")
        self.max_turns: int | None = options.get("max_turns")
        self.system_prompt: str | None = options.get("system_prompt")
        self.sdk_opts: dict = dict(options.get("sdk_opts") or {})

    def _executable(self, opts: Mapping[str, Any]) -> str:
        """``executable`` or ``cli_path``, else ``cli_name`` (looked up on PATH)."""
        return opts.get("executable") or opts.get("cli_path") or self.cli_name

    def _resume_id(self, opts: Mapping[str, Any], session: Any) -> str | None:
        """The provider session to resume natively: the ``resume`` option (False: never), else the
        session's own unless the runtime replays a transcript."""
        r = opts.get("resume")
        if r is False:
            return None
        if isinstance(r, str) and r:
            return r
        if has_transcript(session):
            return None  # the runtime chose transcript replay
        return provider_session_id(session, self.name, *self.resume_aliases)

    def _invocation(self, active: ActiveRun, opts: dict, timeout: Any) -> Invocation:
        raise NotImplementedError

    def _merged_options(self, adapter_opts: Mapping[str, Any]) -> dict:
        merged = dict(self.options)
        for k, v in adapter_opts.items():
            if k in self.execute_overrides:
                merged[k] = v
            else:
                log.debug("%s: ignoring execute option %r", self.name, k)
        return merged

    async def _execute(self, active: ActiveRun, *, timeout: Any = None, **adapter_opts: Any) -> Mapping[str, Any]:
        from ..process.managed import ManagedProcess  # the subprocess layer (spawns, streams, kills groups)

        opts = self._merged_options(adapter_opts)
        inv = self._invocation(active, opts, timeout)
        mapper = inv.mapper
        grace = opts.get("kill_grace_ms") or DEFAULT_KILL_GRACE_MS
        try:
            try:
                starter = ManagedProcess.start(
                    inv.argv, cwd=inv.cwd, env=inv.env, stdin_text=inv.stdin_text,
                    timeout_ms=inv.timeout_ms, idle_timeout_ms=inv.idle_timeout_ms, grace_ms=grace,
                    provider=self.error_provider, install_hint=self.install_hint, label=self.cli_name)
                proc_cm = starter
                proc = await proc_cm.__aenter__()
            except AsmError as err:
                # missing binary / bad cwd / spawn failure: the run got past validation, so it fails
                # with one error_occurred + run_failed
                raise await active.emit_failure(err) from err
            try:
                outcome = await self._stream(active, proc, mapper)
            except BaseException as exc:
                await proc_cm.__aexit__(type(exc), exc, exc.__traceback__)
                raise
            else:
                await proc_cm.__aexit__(None, None, None)
        finally:
            for fn in inv.cleanup:
                try:
                    fn()
                except Exception:  # best effort (temp files)
                    log.debug("cleanup failed", exc_info=True)
        outcome = self._after_process(inv, outcome)
        return await self._finish(active, outcome)

    def _after_process(self, inv: Invocation, outcome: Outcome) -> Outcome:
        """Hook: what the adapter learns after the process ended (e.g. the model from a session
        file) goes into ``outcome.terminal_extra``."""
        return outcome

    async def _stream(self, active: ActiveRun, proc: Any, mapper: MapperBase) -> Outcome:
        active.on_cancel.append(lambda: proc.request_terminate("cancelled"))
        if active.cancelled:
            proc.request_terminate("cancelled")
        splitter = LineSplitter()

        async def handle(no: int, text: str, torn: bool = False) -> None:
            if active.cancelled:
                return  # after a cancel, native events are no longer reported
            parsed = parse_line(no, text, torn=torn)
            if parsed is None:
                return
            for etype, data in mapper.on_line(parsed):
                await active.emit(etype, data)

        async for chunk in proc.byte_chunks():
            for no, text in splitter.feed(chunk):
                await handle(no, text)
        tail = splitter.close()
        if tail is not None:
            await handle(tail[0], tail[1], torn=True)
        res = await proc.wait()
        exit = ProcessExit(returncode=res.exit_code, signal=res.signal, stderr=res.stderr,
                           stderr_truncated=res.stderr_truncated,
                           we_signalled=res.signalled_by_us and res.reason == "cancelled",
                           cancel_requested=active.cancelled)
        if res.timed_out and not active.cancelled:
            outcome = mapper.end(exit)
            if outcome.status != "completed":
                what = "produced no output" if res.reason == "idle_timeout" else "did not finish"
                msg = f"{self.cli_name} {what} within the time limit; the process was stopped ({res.describe()})"
                outcome.status = "failed"
                outcome.error = mapper.failure("provider_timeout", {
                    "kind": "timeout", "message": msg, "exit_code": exit.exit_code, "stderr": res.stderr or None,
                    "truncated": res.stderr_truncated or None, "details": {"reason": res.reason}})
                outcome.events = [e for e in outcome.events if e[0] != "run_completed"]
            return outcome
        return mapper.end(exit)

    async def _finish(self, active: ActiveRun, outcome: Outcome) -> Mapping[str, Any]:
        extra = dict(outcome.terminal_extra or {})
        for etype, data in outcome.events:
            await active.emit(etype, {**data, **extra} if etype == "run_completed" else data)
        if outcome.status == "completed":
            return {"output": {**outcome.output, **extra}, "token_usage": outcome.token_usage}
        if outcome.status == "cancelled":
            raise await active.emit_cancelled(extra=extra)
        err = outcome.error or AsmError("provider_error", f"{self.cli_name} run failed")
        if outcome.error_extra and err.message not in active.error_messages:
            await active.close_open_tools("stream_incomplete")
            data: dict[str, Any] = {"error_code": str(err.code), "error_message": err.message}
            if err.provider_error is not None:
                data["provider_error"] = err.provider_error
            if err.details:
                data["details"] = err.details
            await active.emit("error_occurred", {**data, **outcome.error_extra})
        raise await active.emit_failure(err, extra)


__all__ = ["CliAdapter", "Invocation", "DEFAULT_KILL_GRACE_MS", "check_str", "check_positive_int",
           "check_str_list", "check_mapping", "check_permission_mode", "check_known", "check_process_options",
           "check_resume", "check_directory", "check_config_mapping", "sdk_value", "known_sdk_values",
           "agent_capabilities", "toml_value",
           "transcript_entries", "has_transcript", "input_messages", "sent_messages", "line_prompt", "chat_prompt",
           "provider_session_id", "explicit_timeout_ms"]
