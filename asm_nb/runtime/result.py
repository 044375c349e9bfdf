"""``RunResult``: the outcome of one run as users see it (``asm_nb.run_once`` returns it).

One result type per layer, each with its own name: an adapter's ``execute`` returns a
``ports.AdapterResult``; the manager returns a ``manager.ExecutionResult`` (the adapter's result
plus workspace, cost and ids); this ``RunResult`` is the public one, built from the stored run and
its events. ``workflow.StepResult`` is the workflow bridge's view of one step (an adapter result
with the step's stop reason and retry advice).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import AsmError
from ..core.run import Run, RunStatus

__all__ = ["RunEvents", "RunResult", "result_from_store"]


@dataclass
class RunResult:
    """The outcome of one run, as users see it.

    ``output`` is the final text; ``events`` the persisted events of the run (read from the store
    the first time they are asked for, then kept); ``token_usage`` has ``input_tokens``,
    ``output_tokens``, ``cache_read_tokens`` and ``cache_creation_tokens``.
    """

    run_id: str
    session_id: str
    status: str
    output: str = ""
    events: list = field(default_factory=list)
    token_usage: dict = field(default_factory=dict)
    cost_usd: float | None = None
    error: AsmError | None = None
    duration_ms: int | None = None
    provider: str | None = None
    model: str | None = None
    raw_output: dict = field(default_factory=dict)
    store: Any = field(default=None, repr=False, compare=False)
    policy: dict | None = None
    workspace: dict | None = None

    @property
    def ok(self) -> bool:
        return self.status == RunStatus.COMPLETED.value

    @property
    def tool_calls(self) -> list[dict]:
        """One dict per tool call: id, name, input, output, status (``completed``, ``failed``, or
        ``unfinished`` when the run ended before the call returned) and reason (why it failed, e.g.
        ``permission_denied``; None otherwise). The last outcome of a call wins."""
        calls: dict[str, dict] = {}
        for ev in self.events:
            t = ev.type.value
            if t not in ("tool_call_started", "tool_call_completed", "tool_call_failed"):
                continue
            tcid = ev.data.get("tool_call_id") or ev.id
            c = calls.setdefault(tcid, {"id": tcid, "name": ev.data.get("tool_name"),
                                        "input": ev.data.get("tool_input"), "output": None, "status": "running",
                                        "reason": None})
            if t != "tool_call_started":
                if ev.data.get("tool_output") is not None or c["output"] is None:
                    c["output"] = ev.data.get("tool_output")
                c["status"] = ("completed" if t == "tool_call_completed"
                               else "unfinished" if ev.data.get("status") == "unfinished" else "failed")
                c["reason"] = ev.data.get("reason")
        return list(calls.values())

    @property
    def partial(self) -> bool:
        """True when ``output`` is the text a stopped run had streamed (policy, timeout, cancel,
        provider error), not a finished answer."""
        return bool(self.raw_output.get("partial"))

    @property
    def stop_reason(self) -> str | None:
        """Why the run stopped: the provider's stop reason for a completed run (``end_turn``,
        ``max_tokens``, ``refusal``…), else ``cancelled`` or the error code (``policy_violation``,
        ``provider_timeout``…)."""
        if self.ok:
            sr = self.raw_output.get("stop_reason")
            if not isinstance(sr, str):
                sr = next((e.data.get("stop_reason") for e in reversed(self.events)
                           if e.type.value == "run_completed" and isinstance(e.data.get("stop_reason"), str)), None)
            return sr or "end_turn"
        if self.status == RunStatus.CANCELLED.value:
            return "cancelled"
        return self.error.code if self.error is not None else self.status

    @property
    def refused(self) -> bool:
        """The model declined to answer (stop reason ``refusal``)."""
        return self.stop_reason == "refusal"

    def event_stream(self, *, after: int = 0, limit: int | None = None, wait_timeout_ms: int = 0) -> Any:
        """The run's stored events after sequence ``after`` as a cursor (``core.EventStream``):
        ``take(n)`` / ``peek(n)`` / iteration read from the cursor, ``cursor`` is the next
        sequence to read. ``wait_timeout_ms`` long-polls the store when nothing is there yet (a
        run still going in the background), so a reader can loop ``after = stream.cursor - 1``.

        >>> r = run_once("echo hi", provider="shell", store="memory://")
        >>> first, rest = r.event_stream().take(1)
        >>> first[0].type.value, rest.remaining() > 0
        ('run_started', True)
        """
        from ..core.event_stream import EventStream
        from ..core.events import without_audit

        if self.store is None:
            raise AsmError("invalid_operation", "this RunResult has no store to read events from")
        import time

        deadline = time.monotonic() + max(wait_timeout_ms, 0) / 1000
        cursor = after
        while True:
            kw: dict[str, Any] = {"run_id": self.run_id, "after": cursor}
            if limit is not None:
                kw["limit"] = limit
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms > 0:
                kw["wait_timeout_ms"] = left_ms
            raw = self.store.get_events(self.session_id, **kw)
            events = without_audit(raw)
            if events or not raw or left_ms <= 0:
                break
            cursor = max(e.sequence_number for e in raw)  # only audit records came: wait past them
        stream = EventStream.new(self.session_id, self.run_id, buffer_size=max(len(events), 1))
        return stream.push_batch(events).advance_cursor(after + 1)

    def raise_for_status(self) -> "RunResult":
        """Raise the run's ``AsmError`` unless it completed; returns self for chaining."""
        if self.error is not None:
            raise self.error
        if not self.ok:
            raise AsmError("internal_error", f"run {self.run_id} ended {self.status}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "session_id": self.session_id, "status": self.status, "output": self.output,
            "token_usage": dict(self.token_usage), "cost_usd": self.cost_usd,
            "error": self.error.to_dict() if self.error else None, "duration_ms": self.duration_ms,
            "provider": self.provider, "model": self.model, "tool_calls": self.tool_calls,
            "stop_reason": self.stop_reason, "partial": self.partial,
            "events": [e.to_dict() for e in self.events],
        }

    def __str__(self) -> str:
        return self.output

    def _repr_mimebundle_(self, include=None, exclude=None):
        try:
            from ..rendering.mime import run_result_mimebundle
        except ImportError:
            return {"text/plain": self._plain()}
        return run_result_mimebundle(self)

    def _plain(self) -> str:
        usage = self.token_usage or {}
        cost = "n/a" if self.cost_usd is None else f"${self.cost_usd:.4f}"
        status = "refused" if self.refused else self.status
        head = (f"RunResult({self.provider or '?'}: {status}, {usage.get('input_tokens', 0)} in / "
                f"{usage.get('output_tokens', 0)} out tokens, cost {cost})")
        if self.error is not None:
            head += f"\nerror: [{self.error.code}] {self.error.message}"
        if self.output and self.partial:
            return head + "\npartial output (the run stopped):\n" + self.output
        return head + ("\n" + self.output if self.output else "")

    def __repr__(self) -> str:
        return self._plain()


class _StoredEvents:
    """Where a result's events are, until someone asks for them (``RunResult.events``)."""

    __slots__ = ("store", "session_id", "run_id")

    def __init__(self, store: Any, session_id: str, run_id: str) -> None:
        self.store, self.session_id, self.run_id = store, session_id, run_id

    def load(self) -> list:
        from ..core.events import without_audit

        return list(without_audit(self.store.get_events(self.session_id, run_id=self.run_id)))


class RunEvents(Sequence):
    """A finished run's events as dicts (``Event.to_dict()``, ascending sequence, no audit
    records), read from the store the first time they are asked for, then kept: what
    ``ExecutionResult.events`` is, so the manager holds no copy of a run's stream."""

    __slots__ = ("_where", "_loaded")

    def __init__(self, store: Any, session_id: str, run_id: str) -> None:
        self._where: _StoredEvents | None = _StoredEvents(store, session_id, run_id)
        self._loaded: list[dict] | None = None

    def _list(self) -> list[dict]:
        if self._loaded is None:
            where = self._where
            self._loaded = [e.to_dict() for e in where.load()] if where is not None else []
            self._where = None
        return self._loaded

    def __getitem__(self, i: Any) -> Any:
        return self._list()[i]

    def __len__(self) -> int:
        return len(self._list())

    def __iter__(self) -> Iterator[dict]:
        return iter(self._list())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (RunEvents, list, tuple)):
            return self._list() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        if self._loaded is None and self._where is not None:
            return f"RunEvents(run_id={self._where.run_id!r}, not loaded)"
        return repr(self._loaded)


def _get_events(self: RunResult) -> list:
    v = self.__dict__.get("_events")
    if isinstance(v, _StoredEvents):
        v = self.__dict__["_events"] = v.load()
    return [] if v is None else v


def _set_events(self: RunResult, value: Any) -> None:
    self.__dict__["_events"] = value


def _getstate(self: RunResult) -> dict:
    _get_events(self)  # a pickled result carries its events, not a store handle
    return dict(self.__dict__)


RunResult.events = property(_get_events, _set_events,  # type: ignore[assignment]
                            doc="The run's stored events (``Event`` objects, ascending sequence).")
RunResult.__getstate__ = _getstate  # type: ignore[attr-defined]


def result_from_store(store: Any, run: Run, *, error: AsmError | None = None, extra: Any = None) -> RunResult:
    from ..core.events import without_audit

    # stores whose reads keep working after the run (LocalStore, memory) hand the events over
    # lazily: a million-event run is not copied into the result unless someone looks at it
    events: Any = _StoredEvents(store, run.session_id, run.id) if getattr(store, "lazy_result_events", False) \
        else without_audit(store.get_events(run.session_id, run_id=run.id))
    out = run.output or {}
    content = out.get("content")
    if not isinstance(content, str):
        content = "" if content is None else str(content)
    model = (run.provider_metadata or {}).get("model") or (run.metadata or {}).get("model")
    if error is None and run.error:
        try:
            error = AsmError(run.error.get("code"), run.error.get("message"),
                             provider_error=run.error.get("provider_error"), details=run.error.get("details"),
                             context={"run_id": run.id, "session_id": run.session_id, "provider": run.provider})
        except Exception:
            error = None
    policy = getattr(extra, "policy", None)
    if policy is None and error is not None and error.code == "policy_violation" and error.details:
        policy = dict(error.details)  # which limit, its value, what was observed, the violations
    return RunResult(run_id=run.id, session_id=run.session_id, status=run.status.value, output=content,
                     events=events, token_usage=dict(run.token_usage), cost_usd=run.cost_usd, error=error,
                     duration_ms=run.duration_ms, provider=run.provider, model=model, raw_output=dict(out),
                     store=store, policy=policy, workspace=getattr(extra, "workspace", None))
