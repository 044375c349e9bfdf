"""Cassettes: recorded runs that replay offline (``provider="replay"``), and the ``Recorder``
that writes them.

A cassette is a JSON-lines file (UTF-8, one JSON object per line, blank lines ignored):

Line 1, the header::

    {"asm_cassette": 1, "provider": "claude", "model": "claude-sonnet-4-5",
     "recorded_at": "2025-01-01T00:00:00.000000Z", "input": "What is in README.md?",
     "duration_ms": 5120, "output": {...}, "token_usage": {...}, "error": {...}}

- ``asm_cassette`` (required): format version, ``1``. A newer version is refused.
- ``provider`` (required): the provider that produced the run; ``model``, ``recorded_at``
  (ISO-8601 UTC) and ``input`` (the run input) are informational.
- ``output`` / ``token_usage`` (optional): the recorded ``AdapterResult`` fields. On replay the
  output is rebuilt from the events and ``output`` is laid over it (so provider-specific keys,
  e.g. the shell's ``exit_code``, survive).
- ``error`` (optional): ``{"code", "message", "details"?, "provider_error"?}`` when the recorded
  execute raised; the replay raises the same ``AsmError`` after emitting the events.

Then one line per normalized event, in emission order::

    {"t_ms": 812, "type": "message_streamed", "data": {"delta": "Hi", "content": "Hi"}}

- ``t_ms``: milliseconds since the run started (non-decreasing; missing → previous value).
- ``type``: a canonical event type (``run_started``, ``message_streamed``, ...).
- ``data``: the event's payload exactly as the adapter emitted it (JSON values).
- ``metadata`` (optional): the event's metadata dict.

The envelope (``session_id``, ``run_id``, ``provider``, ``timestamp``) is not stored: a replay
stamps this run's ids and its own clock.

``ReplayProvider`` options: ``cassette`` (path or ``Cassette``; may also be passed per execute),
``speed`` (1.0 = real time, 2.0 twice as fast; ``None``/0/``inf`` = as fast as possible, the
default), ``deterministic`` (timestamps from a fixed clock, 2025-01-01T00:00:00Z + ``t_ms``, and
event ids derived from the cassette's content hash, the event index and the run id, so two
replays into fresh stores with the same session/run ids write byte-identical event lines),
``impersonate`` (take the recorded provider's name, so cost and routing treat the replay like the
original; default ``"replay"``).

>>> import asyncio
>>> from asm_nb.core.session import Session
>>> from asm_nb.core.run import Run
>>> from asm_nb.testing import example_cassette
>>> s = Session.new("demo"); r = Run.new(s.id, input="hi")
>>> res = asyncio.run(ReplayProvider(cassette=example_cassette("hello")).execute(r, s))
>>> res.token_usage["output_tokens"] > 0
True
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import inspect
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..core.capabilities import Capability
from ..core.errors import AsmError, is_valid_code
from ..core.events import is_valid_type
from ..core.serialization import format_datetime, to_jsonable, utc_now
from ..ports import EventCallback, AdapterResult
from ..core.usage import TokenUsage
from ._base import ActiveRun, BaseAdapter

# run_failed codes of adapters that *return* a failed result (the shell adapter: a non-zero exit or
# a command timeout) rather than raise; a replay returns it the same way.
_SOFT_FAILURE_CODES = frozenset({"command_failed", "command_timeout"})

__all__ = ["CASSETTE_VERSION", "DETERMINISTIC_EPOCH", "Cassette", "CassetteEvent", "load_cassette",
           "rebuild_result", "ReplayProvider", "Recorder"]

CASSETTE_VERSION = 1
DETERMINISTIC_EPOCH = datetime(2025, 1, 1, tzinfo=timezone.utc)


def _dumps(obj: Any, *, canonical: bool = False) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=canonical, allow_nan=False)


@dataclass(frozen=True)
class CassetteEvent:
    """One recorded event: offset, type, payload, optional metadata."""

    t_ms: int
    type: str
    data: dict = field(default_factory=dict)
    metadata: dict | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"t_ms": self.t_ms, "type": self.type, "data": self.data}
        if self.metadata:
            d["metadata"] = self.metadata
        return d


@dataclass(frozen=True)
class Cassette:
    """A parsed cassette. Build one with ``load_cassette(path)`` or
    ``asm_nb.testing.build_cassette(events)``; ``write(path)`` saves it."""

    header: dict
    events: tuple[CassetteEvent, ...]
    path: str | None = None

    @property
    def provider(self) -> str:
        return str(self.header.get("provider") or "unknown")

    @property
    def model(self) -> str | None:
        return self.header.get("model")

    @property
    def duration_ms(self) -> int:
        return self.events[-1].t_ms if self.events else 0

    @property
    def content_hash(self) -> str:
        """sha256 of the canonical JSON of header and events (whitespace and key order ignored)."""
        h = hashlib.sha256()
        h.update(_dumps(self.header, canonical=True).encode())
        for ev in self.events:
            h.update(b"\n")
            h.update(_dumps(ev.to_dict(), canonical=True).encode())
        return h.hexdigest()

    def lines(self) -> list[str]:
        return [_dumps(self.header)] + [_dumps(ev.to_dict()) for ev in self.events]

    def dumps(self) -> str:
        return "\n".join(self.lines()) + "\n"

    def write(self, path: str | os.PathLike) -> Path:
        """Write atomically (temp file + rename), creating parent folders."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".cassette-", suffix=".tmp", dir=str(p.parent))
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(self.dumps())
            os.replace(tmp, p)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return p

    def event_dicts(self) -> list[dict]:
        return [ev.to_dict() for ev in self.events]

    def result(self) -> tuple[dict, dict]:
        """``(output, token_usage)`` rebuilt from the events, recorded ``output`` laid over."""
        output, usage = rebuild_result(self.event_dicts())
        recorded = self.header.get("output")
        if isinstance(recorded, Mapping):
            output = {**output, **recorded}
        return output, usage

    def error(self) -> AsmError | None:
        """The error the recorded execute raised (header ``error``; else a terminal
        ``run_failed`` carrying a taxonomy code, or ``run_cancelled``), or None."""
        err = self.header.get("error")
        if isinstance(err, Mapping):
            code = err.get("code")
            return AsmError(code if is_valid_code(code) else "provider_error",
                            str(err.get("message") or "Recorded run failed"),
                            details=err.get("details") or None, provider_error=err.get("provider_error"))
        last = self.events[-1] if self.events else None
        if last is not None and last.type == "run_cancelled":
            return AsmError("cancelled", "Run was cancelled")
        if (last is not None and last.type == "run_failed" and is_valid_code(last.data.get("error_code"))
                and last.data.get("error_code") not in _SOFT_FAILURE_CODES):
            return AsmError(last.data["error_code"], str(last.data.get("error_message") or "Recorded run failed"),
                            details=last.data.get("details") or None,
                            provider_error=last.data.get("provider_error"))
        return None

    # -- parsing -----------------------------------------------------------------------
    @classmethod
    def from_lines(cls, lines: Iterable[str], *, source: str = "<cassette>") -> "Cassette":
        """Parse cassette lines; errors name ``source`` and the 1-based line number."""
        header: dict | None = None
        events: list[CassetteEvent] = []
        last_t = 0
        for n, raw in enumerate(lines, start=1):
            line = raw.strip()
            if not line:
                continue

            def bad(why: str) -> AsmError:
                return AsmError("invalid_format", f"Invalid cassette {source}, line {n}: {why}",
                                details={"path": source, "line": n})

            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise bad(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(obj, dict):
                raise bad("expected a JSON object")
            if header is None:
                version = obj.get("asm_cassette")
                if version is None:
                    raise bad('the first line must be the header {"asm_cassette": 1, "provider": ...}')
                if not isinstance(version, int) or isinstance(version, bool) or version < 1:
                    raise bad(f"invalid asm_cassette version {version!r}")
                if version > CASSETTE_VERSION:
                    raise bad(f"cassette format version {version} is newer than this asm_nb reads "
                              f"({CASSETTE_VERSION}); upgrade asm_nb")
                if not isinstance(obj.get("provider"), str) or not obj["provider"]:
                    raise bad("the header needs a non-empty string 'provider'")
                header = obj
                continue
            etype = obj.get("type")
            if not is_valid_type(etype):
                raise bad(f"unknown event type {etype!r}")
            data = obj.get("data", {})
            if data is None:
                data = {}
            if not isinstance(data, dict):
                raise bad("'data' must be a JSON object")
            meta = obj.get("metadata")
            if meta is not None and not isinstance(meta, dict):
                raise bad("'metadata' must be a JSON object")
            t = obj.get("t_ms", last_t)
            if not isinstance(t, (int, float)) or isinstance(t, bool) or t < 0 or not math.isfinite(t):
                raise bad(f"'t_ms' must be a non-negative number, got {t!r}")
            last_t = max(last_t, int(t))
            events.append(CassetteEvent(t_ms=last_t, type=etype, data=data, metadata=meta or None))
        if header is None:
            raise AsmError("invalid_format", f"Invalid cassette {source}: the file is empty (no header line)",
                           details={"path": source, "line": 0})
        return cls(header=header, events=tuple(events), path=source)


def load_cassette(path: str | os.PathLike | Cassette) -> Cassette:
    """Read and validate a cassette file (a ``Cassette`` passes through).

    Raises ``AsmError("not_found")`` for a missing file and ``AsmError("invalid_format")``
    naming the file and line for a corrupt one.
    """
    if isinstance(path, Cassette):
        return path
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise AsmError("validation_error", f"cassette must be a path or a Cassette, got {path!r}")
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AsmError("not_found", f"Cassette not found: {p}", details={"path": str(p)}) from None
    except IsADirectoryError:
        raise AsmError("validation_error", f"Cassette path is a directory: {p}", details={"path": str(p)}) from None
    except UnicodeDecodeError as exc:
        raise AsmError("invalid_format", f"Invalid cassette {p}: not UTF-8 text ({exc.reason})",
                       details={"path": str(p)}) from None
    except OSError as exc:
        raise AsmError("storage_read_failed", f"Could not read cassette {p}: {exc.strerror or exc}",
                       details={"path": str(p)}) from exc
    return Cassette.from_lines(text.splitlines(), source=str(p))


def rebuild_result(events: Sequence[Mapping[str, Any]]) -> tuple[dict, dict]:
    """``(output, token_usage)`` from normalized event dicts (``type`` + ``data``).

    ``output.content``: the last ``message_received`` text (else the streamed text chunks
    joined); ``stop_reason`` from ``run_completed``; ``tool_calls``: ``{id, name, input,
    output?, is_error?}`` in start order; ``token_usage``: the sum of ``token_usage_updated``
    increments.
    """
    usage = TokenUsage()
    content: str | None = None
    streamed: list[str] = []
    stop_reason: str | None = None
    calls: dict[str, dict] = {}
    for ev in events:
        t, d = ev.get("type"), ev.get("data") or {}
        if t == "message_received" and isinstance(d.get("content"), str):
            content = d["content"]
        elif t == "message_streamed" and d.get("kind", "text") == "text" and isinstance(d.get("delta"), str):
            streamed.append(d["delta"])
        elif t == "token_usage_updated":
            usage = usage + TokenUsage.of(d)
        elif t == "tool_call_started":
            tcid = str(d.get("tool_call_id"))
            calls.setdefault(tcid, {"id": tcid, "name": d.get("tool_name"), "input": d.get("tool_input") or {}})
        elif t in ("tool_call_completed", "tool_call_failed"):
            tcid = str(d.get("tool_call_id"))
            call = calls.setdefault(tcid, {"id": tcid, "name": d.get("tool_name"),
                                           "input": d.get("tool_input") or {}})
            call["output"] = d.get("tool_output")
            if t == "tool_call_failed":
                call["is_error"] = True
        elif t == "run_completed" and d.get("stop_reason") is not None:
            stop_reason = d["stop_reason"]
    output: dict[str, Any] = {"content": content if content is not None else "".join(streamed),
                              "tool_calls": list(calls.values())}
    if stop_reason is not None:
        output["stop_reason"] = stop_reason
    return output, usage.to_dict()


# ------------------------------------------------------------------------------------------


def _speed(value: Any) -> float | None:
    """None = as fast as possible."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or math.isnan(value):
        raise AsmError("validation_error", f"speed must be a number >= 0 (0 or inf: as fast as possible), got {value!r}")
    if value == 0 or math.isinf(value):
        return None
    return float(value)


class ReplayProvider(BaseAdapter):
    """Replays a cassette as a run: same events, this run's ids, optional real-time pacing."""

    name = "replay"

    def __init__(self, cassette: str | os.PathLike | Cassette | None = None, *, speed: float | None = None,
                 deterministic: bool = False, impersonate: bool = False, name: str | None = None,
                 **options: Any) -> None:
        super().__init__(cassette=cassette, speed=speed, deterministic=deterministic, **options)
        self.cassette: Cassette | None = load_cassette(cassette) if cassette is not None else None
        self.speed = _speed(speed)
        self.deterministic = bool(deterministic)
        if name:
            self.name = name
        elif impersonate and self.cassette is not None:
            self.name = self.cassette.provider

    async def capabilities(self) -> list[Capability]:
        caps = [Capability.new("streaming", "sampling", description="Replays recorded events")]
        if self.cassette is not None and any(e.type == "tool_call_started" for e in self.cassette.events):
            caps.append(Capability.new("tool_use", "tool", description="Recorded tool calls"))
        return caps

    def validate_config(self, config: Mapping[str, Any]) -> None:
        if not isinstance(config, Mapping):
            raise AsmError("validation_error", "Invalid replay config")
        c = config.get("cassette")
        if c is not None and not isinstance(c, (str, os.PathLike, Cassette)):
            raise AsmError("validation_error", "cassette must be a path or a Cassette")
        if "speed" in config:
            _speed(config["speed"])

    async def _execute(self, active: ActiveRun, **opts: Any) -> Mapping[str, Any]:
        cassette = load_cassette(opts["cassette"]) if opts.get("cassette") is not None else self.cassette
        if cassette is None:
            raise AsmError("validation_error", "The replay provider needs a cassette: "
                                               "ReplayProvider(cassette=PATH) or execute(..., cassette=PATH)")
        speed = _speed(opts["speed"]) if "speed" in opts else self.speed
        deterministic = bool(opts.get("deterministic", self.deterministic))
        chash = cassette.content_hash if deterministic else ""
        t0 = time.monotonic()
        for i, ev in enumerate(cassette.events):
            if active.cancelled:
                raise await active.emit_cancelled()
            if speed is not None:
                delay = t0 + ev.t_ms / 1000 / speed - time.monotonic()
                if delay > 0:
                    try:
                        await asyncio.wait_for(active.cancel_event.wait(), delay)
                    except asyncio.TimeoutError:
                        pass
                    if active.cancelled:
                        raise await active.emit_cancelled()
            else:
                await asyncio.sleep(0)  # let cancel() and other runs in between events
            extra: dict[str, Any] = {}
            if deterministic:
                extra["timestamp"] = DETERMINISTIC_EPOCH + timedelta(milliseconds=ev.t_ms)
                extra["id"] = "evt_" + hashlib.sha256(f"{chash}:{i}:{active.run.id}".encode()).hexdigest()[:32]
            if ev.metadata:
                extra["metadata"] = copy.deepcopy(ev.metadata)
            await active.emit(ev.type, copy.deepcopy(ev.data), **extra)
        err = cassette.error()
        if err is not None:
            raise err
        output, usage = cassette.result()
        return {"output": output, "token_usage": usage}


# ------------------------------------------------------------------------------------------


class Recorder:
    """Wraps any adapter and writes a cassette of each ``execute`` (success, failure or cancel).

    ``path``: a file (each execute overwrites it), a directory (existing, or ending in ``/``:
    one ``<run_id>.jsonl`` per run) or a template with ``{run_id}``, ``{session_id}``,
    ``{provider}``, ``{n}`` (1-based execute count). ``recorded`` lists the files written.
    Everything else (``name``, ``capabilities``, ``cancel``...) is the wrapped adapter's.

    >>> from asm_nb.testing import MockAdapter
    >>> rec = Recorder(MockAdapter(), "/tmp/cassettes/")
    >>> rec.name
    'mock'
    """

    def __init__(self, adapter: Any, path: str | os.PathLike) -> None:
        self.adapter = adapter
        self.path = os.fspath(path)
        self.recorded: list[Path] = []
        self._count = 0

    @property
    def name(self) -> str:
        return self.adapter.name

    @property
    def emits_input_messages(self) -> bool:
        return bool(getattr(self.adapter, "emits_input_messages", False))

    def __getattr__(self, item: str) -> Any:  # model, options, ... of the wrapped adapter
        if item == "adapter":
            raise AttributeError(item)
        return getattr(self.adapter, item)

    async def capabilities(self) -> list[Capability]:
        return await self.adapter.capabilities()

    def validate_config(self, config: Mapping[str, Any]) -> None:
        return self.adapter.validate_config(config)

    async def cancel(self, run_id: str) -> str:
        return await self.adapter.cancel(run_id)

    async def aclose(self) -> None:
        await self.adapter.aclose()

    def _target(self, run: Any, session: Any) -> Path:
        p = self.path
        if "{" in p:
            return Path(p.format(run_id=run.id, session_id=session.id, provider=self.name, n=self._count))
        if p.endswith(("/", os.sep)) or os.path.isdir(p):
            return Path(p) / f"{run.id}.jsonl"
        return Path(p)

    async def execute(self, run: Any, session: Any, *, event_callback: EventCallback | None = None,
                      timeout: Any = None, **adapter_opts: Any) -> AdapterResult:
        self._count += 1
        target = self._target(run, session)
        t0 = time.monotonic()
        recorded_at = utc_now()
        events: list[CassetteEvent] = []

        async def capture(ev: dict) -> None:
            meta = ev.get("metadata")
            events.append(CassetteEvent(t_ms=int((time.monotonic() - t0) * 1000), type=str(ev.get("type")),
                                        data=to_jsonable(dict(ev.get("data") or {})),
                                        metadata=to_jsonable(dict(meta)) if isinstance(meta, Mapping) and meta
                                        else None))
            if event_callback is not None:
                res = event_callback(ev)
                if inspect.isawaitable(res):
                    await res

        header: dict[str, Any] = {"asm_cassette": CASSETTE_VERSION, "provider": self.name, "model": None,
                                  "recorded_at": format_datetime(recorded_at), "input": to_jsonable(run.input)}
        try:
            result = await self.adapter.execute(run, session, event_callback=capture, timeout=timeout,
                                                **adapter_opts)
        except AsmError as err:
            header["error"] = {k: v for k, v in {"code": str(err.code), "message": err.message,
                                                 "details": to_jsonable(err.details) or None,
                                                 "provider_error": to_jsonable(err.provider_error)}.items()
                               if v is not None}
            self._write(target, header, events, t0)
            raise
        except asyncio.CancelledError:
            self._write(target, header, events, t0)
            raise
        header["output"] = to_jsonable(result.output)
        header["token_usage"] = to_jsonable(result.token_usage)
        self._write(target, header, events, t0)
        return result

    def _write(self, target: Path, header: dict, events: list[CassetteEvent], t0: float) -> None:
        for ev in events:
            if ev.type == "run_started" and isinstance(ev.data.get("model"), str):
                header["model"] = ev.data["model"]
                break
        if header["model"] is None and isinstance(getattr(self.adapter, "model", None), str):
            header["model"] = self.adapter.model
        header["duration_ms"] = int((time.monotonic() - t0) * 1000)
        header, events = _redacted(header, events)
        Cassette(header=header, events=tuple(events)).write(target)
        self.recorded.append(target)


def _redacted(header: dict, events: list[CassetteEvent]) -> tuple[dict, list[CassetteEvent]]:
    """A cassette is a file people share: header (input, output, error) and every event's data
    and metadata go through the redactor (the global ``redaction_*`` config) before it is written."""
    from ..persistence.redaction import redact_map

    out = []
    for ev in events:
        data = redact_map(ev.data, None)
        meta = redact_map(ev.metadata, None) if ev.metadata else ev.metadata
        out.append(ev if data is ev.data and meta is ev.metadata
                   else CassetteEvent(t_ms=ev.t_ms, type=ev.type, data=data, metadata=meta))
    return redact_map(header, None), out
