"""Pure native-line -> normalized-event mapping machinery shared by the CLI adapters.

A *mapper* (one per run) turns decoded stdout lines into ``(event_type, data)`` pairs and, once the
process has ended, decides the run's outcome from what it saw plus the exit facts (``ProcessExit``).
Mappers do no I/O and never raise on odd input, so they are fuzzed directly
(``tests/providers/test_cli_parsers_fuzz.py``). The adapters (``codex.py``, ``amp.py``,
``claude_code.py``) feed them through ``_cli.CliAdapter``.

Also here: token-usage normalization (docs/providers.md, token usage) and the process-end failure helpers.
"""

from __future__ import annotations

import re
import signal as _signal
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..core.errors import AsmError
from ..core.provider_errors import normalize_provider_error
from ..core.usage import TOTAL_TOKENS, TokenUsage
from ._jsonl import ParsedLine, parse_error_data

Emit = tuple[str, dict]

#: exit statuses that mean "interrupted" (SIGINT -> 130, SIGTERM -> 143)
INTERRUPT_EXIT_CODES = frozenset({130, 143})


@dataclass(frozen=True)
class ProcessExit:
    """How the CLI process ended.

    ``returncode``: the exit status, or ``None`` when killed by a signal (``signal`` then holds its
    number). ``we_signalled``: asm_nb itself sent a stop signal (a user cancel). ``stderr`` is the
    captured (possibly cut) stderr; ``stderr_truncated`` says it was cut.
    """

    returncode: int | None = 0
    signal: int | None = None
    stderr: str = ""
    stderr_truncated: bool = False
    we_signalled: bool = False
    cancel_requested: bool = False

    @property
    def exit_code(self) -> int | None:
        """The shell-style exit status (``128 + n`` for a signal death), for error payloads."""
        if self.returncode is not None:
            return self.returncode
        return 128 + self.signal if self.signal else None

    @property
    def signal_name(self) -> str | None:
        if not self.signal:
            return None
        try:
            return _signal.Signals(self.signal).name
        except ValueError:
            return f"signal {self.signal}"


@dataclass
class Outcome:
    """What a mapper decided at process end.

    ``status`` is ``"completed"``, ``"failed"`` or ``"cancelled"``. ``events`` are emitted before the
    terminal handling (for ``"completed"`` they include ``run_completed``). ``error`` is the
    ``AsmError`` to raise for ``"failed"``; ``error_extra`` extra data for its ``run_failed``/
    ``error_occurred`` events.
    """

    status: str
    events: list = field(default_factory=list)
    error: AsmError | None = None
    error_extra: dict = field(default_factory=dict)
    output: dict = field(default_factory=dict)
    token_usage: dict = field(default_factory=dict)
    terminal_extra: dict = field(default_factory=dict)  # merged into the terminal event's data


# -- usage ---------------------------------------------------------------------------------------

# Usage in each provider's shape becomes ``core.usage.TokenUsage`` (``from_anthropic``,
# ``from_inclusive_anthropic`` for Amp, ``from_openai`` for Codex): cleaning and adding live there.


# -- tool outputs --------------------------------------------------------------------------------

def jsonable(x: Any, _depth: int = 0) -> Any:
    """Plain JSON-safe copy of native data (dicts, lists, scalars; anything else -> ``str``)."""
    if _depth > 50:
        return repr(x)
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    if isinstance(x, Mapping):
        return {str(k): jsonable(v, _depth + 1) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v, _depth + 1) for v in x]
    return str(x)


def output_dict(x: Any) -> dict:
    """Codex tool outputs (docs/providers.md, Codex): mapping as is; list -> ``{"items"}``; None -> ``{}``; scalar ->
    ``{"value"}``."""
    if isinstance(x, Mapping):
        return jsonable(x)
    if isinstance(x, (list, tuple)):
        return {"items": jsonable(x)}
    if x is None:
        return {}
    return {"value": jsonable(x)}


_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


def snake(name: Any) -> str:
    """camelCase -> snake_case (``webSearch`` -> ``web_search``); non-strings -> ``""``."""
    if not isinstance(name, str):
        return ""
    return _CAMEL.sub(r"_\1", name).replace("-", "_").replace(".", "_").lower()


# -- the mapper base -----------------------------------------------------------------------------

class MapperBase:
    """Per-run state shared by the CLI mappers.

    Subclasses implement ``on_object(obj) -> list[Emit]`` and ``finish(exit) -> Outcome``.
    ``prompt_messages`` are the ``message_sent`` payloads emitted right after ``run_started``.
    """

    provider = "unknown"  # ProviderError provider string

    def __init__(self, *, prompt_messages: list[dict] | None = None, configured_model: str | None = None,
                 model_source: str | None = None) -> None:
        self.prompt_messages = list(prompt_messages or [])
        self.configured_model = configured_model
        #: where ``configured_model`` came from (``flag``, ``option``, ``config_file:<path>``…)
        self.model_source = model_source if configured_model else None
        self.started = False
        self.lines_seen = 0
        self.tool_calls: list[dict] = []
        self._tool_index: dict[str, dict] = {}
        self.usage_total = TokenUsage()
        self._held: list[Emit] = []  # events mapped before run_started, released right after it

    # entry point for every non-blank stdout line
    def on_line(self, parsed: ParsedLine) -> list[Emit]:
        """Map one stdout line. Never raises: a mapping bug becomes a recoverable ``error_occurred``."""
        self.lines_seen += 1
        if not parsed.ok:
            events = [("error_occurred", parse_error_data(self.provider, parsed))]
        else:
            try:
                events = self.on_object(parsed.obj or {})
            except Exception as exc:  # defensive: odd-but-valid JSON must never crash the run
                data = parse_error_data(self.provider, parsed)
                data["error_message"] = (f"Could not map {self.provider} output at line {parsed.line_no}: "
                                         f"{type(exc).__name__}: {exc}")
                data["provider_error"] = {**data["provider_error"], "kind": "protocol_error",
                                          "message": data["error_message"]}
                events = [("error_occurred", data)]
        if not self.started:  # invariant 1: nothing goes out before run_started
            self._held.extend(events)
            return []
        return events

    def end(self, exit: ProcessExit) -> Outcome:
        """Decide the outcome at process end; events held back before ``run_started`` come first."""
        try:
            outcome = self.finish(exit)
        except Exception as exc:  # defensive, like on_line
            outcome = Outcome("failed", error=AsmError("internal_error", f"{type(exc).__name__}: {exc}"))
        held, self._held = self._held, []
        outcome.events = held + list(outcome.events)
        outcome.terminal_extra = {**self.terminal_model(), **outcome.terminal_extra}
        return outcome

    def terminal_model(self) -> dict:
        """``{"model", "model_source"}`` learned during the run, for the terminal event ({} when
        run_started already said it)."""
        return {}

    def on_object(self, obj: dict) -> list[Emit]:
        raise NotImplementedError

    def finish(self, exit: ProcessExit) -> Outcome:
        raise NotImplementedError

    # helpers ---------------------------------------------------------------------------------
    def start_events(self, data: dict) -> list[Emit]:
        """``run_started`` (once) followed by one ``message_sent`` per prompt message."""
        if self.started:
            return []
        self.started = True
        out: list[Emit] = [("run_started", {k: v for k, v in data.items() if v is not None})]
        out += [("message_sent", dict(m)) for m in self.prompt_messages]
        out += self._held
        self._held = []
        return out

    def remember_tool(self, tool_id: Any, name: Any, tool_input: Any) -> dict:
        entry = {"id": tool_id if isinstance(tool_id, str) and tool_id else "unknown",
                 "name": name if isinstance(name, str) else str(name), "input": tool_input}
        self.tool_calls.append(entry)
        if isinstance(tool_id, str):
            self._tool_index[tool_id] = entry
        return entry

    def tool_entry(self, tool_id: Any) -> dict | None:
        return self._tool_index.get(tool_id) if isinstance(tool_id, str) else None

    def usage_event(self, inc: TokenUsage, raw: Any, **extra: Any) -> Emit:
        """``token_usage_updated`` for increment ``inc`` (also added to the run total)."""
        self.usage_total = self.usage_total + inc
        data: dict[str, Any] = inc.to_dict()
        data[TOTAL_TOKENS] = self.usage_total.total_tokens
        if raw is not None:
            data["raw_usage"] = jsonable(raw)
        data.update({k: v for k, v in extra.items() if v is not None})
        return ("token_usage_updated", data)

    def failure(self, code: str, attrs: Mapping[str, Any]) -> AsmError:
        pe, details = normalize_provider_error(self.provider, attrs)
        return AsmError(code, pe["message"], provider_error=pe, details=details)

    def process_failure(self, exit: ProcessExit, *, what: str) -> AsmError:
        """Failure for a process that ended without a terminal line (docs/providers.md, the Claude Code, Codex and
        Amp sections)."""
        stderr = exit.stderr or None
        if exit.signal:
            kind = "transport_exit"
            message = f"{what} was killed by {exit.signal_name} before finishing the run"
        elif exit.returncode not in (0, None):
            kind = "process_error" if (stderr or "").strip() else "transport_exit"
            first = (stderr or "").strip().split("\n", 1)[0].strip()
            message = first or f"{what} exited with status {exit.returncode}"
        else:
            kind = "transport_exit"
            message = f"{what} output ended without a final result (stream incomplete)"
        return self.failure("provider_error", {"kind": kind, "message": message, "exit_code": exit.exit_code,
                                               "stderr": stderr, "truncated": exit.stderr_truncated or None})

    @staticmethod
    def interrupted(exit: ProcessExit) -> bool:
        """Cancellation: a stop signal we sent, or the CLI reporting an interrupt (exit 130/143)."""
        return exit.we_signalled or exit.cancel_requested or exit.returncode in INTERRUPT_EXIT_CODES


__all__ = ["Emit", "ProcessExit", "Outcome", "MapperBase", "jsonable", "output_dict", "snake"]
