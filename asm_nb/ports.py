"""The ports: ``typing.Protocol``s that adapters and stores implement, plus port-level helpers.

A new provider or store implements one of these and nothing above it changes.
Imports only ``core`` and ``config``. See docs/providers.md (the adapter contract) and docs/stores.md (the store
contract).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Awaitable, Callable, Iterable, Iterator, Mapping, Protocol, Sequence, Union, runtime_checkable

from . import config
from .core.capabilities import Capability
from .core.events import TERMINAL_RUN_EVENTS, Event, EventType
from .core.run import Run, RunStatus
from .core.session import Session, SessionStatus

EventCallback = Callable[[dict], "None | Awaitable[None]"]


class _CallbackDone:
    """An awaitable that is already finished (awaiting it returns None at once, no coroutine)."""

    __slots__ = ()

    def __await__(self) -> Iterator[None]:
        return iter(())

    def __repr__(self) -> str:
        return "CALLBACK_DONE"


#: What an event callback that did all its work synchronously returns (the manager's, usually):
#: an adapter may ``await`` it like any callback result, or skip it (``res is CALLBACK_DONE``).
CALLBACK_DONE = _CallbackDone()
#: milliseconds (int), ``inf`` / ``"unbounded"`` for a week, a digit string, or None for the default
TimeoutSpec = int | float | str | None

ONE_WEEK_MS = 604_800_000


_TERMINAL = frozenset(t.value for t in TERMINAL_RUN_EVENTS)  # plain strings: looked up per event


class KeptEvents:
    """What a run keeps of its stream when the callback's owner records it: how many events were
    emitted, the first ``run_started`` and the terminal events (what the manager reads back from
    ``AdapterResult.events``). Iterates over the kept events; true once anything was emitted."""

    __slots__ = ("count", "kept", "_started")
    #: the types ``append`` may keep; any other event only counts (``ActiveRun.emit`` counts
    #: those itself, without the call)
    MAY_KEEP = frozenset({"run_started"} | _TERMINAL)

    def __init__(self) -> None:
        self.count = 0
        self.kept: list = []
        self._started = False

    def append(self, ev: dict) -> None:
        self.count += 1
        t = ev.get("type")
        if t == "run_started" and not self._started:
            self._started = True
            self.kept.append(ev)
        elif t in _TERMINAL:
            self.kept.append(ev)

    def __bool__(self) -> bool:
        return self.count > 0

    def __iter__(self) -> Any:
        return iter(self.kept)


@dataclass(frozen=True)
class AdapterResult:
    """What ``ProviderAdapter.execute`` returns (docs/providers.md, the adapter contract).

    One result type per layer, each with its own name: an adapter returns this ``AdapterResult``;
    the manager wraps it in ``runtime.manager.ExecutionResult`` (plus workspace, cost and ids);
    users get the public ``asm_nb.RunResult`` (``runtime/result.py``), built from the stored run.
    """

    output: dict = field(default_factory=dict)
    token_usage: dict = field(default_factory=dict)
    events: list = field(default_factory=list)
    routing: dict | None = None
    policy: dict | None = None


@runtime_checkable
class ProviderAdapter(Protocol):
    """One agent backend. ``execute`` emits normalized event dicts through ``event_callback``
    as they happen and returns an ``AdapterResult`` or raises ``AsmError``."""

    name: str
    emits_input_messages: bool

    async def capabilities(self) -> list[Capability]: ...

    async def execute(self, run: Run, session: Session, *, event_callback: EventCallback | None = None,
                      timeout: TimeoutSpec = None, **adapter_opts: Any) -> AdapterResult: ...

    async def cancel(self, run_id: str) -> str: ...

    def validate_config(self, config: Mapping[str, Any]) -> None: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class SessionStore(Protocol):
    """Sessions, runs and the per-session event log (docs/stores.md, store contract). Methods are blocking and
    thread-safe; ``inline_safe = True`` lets the async runtime call them on its loop."""

    @property
    def inline_safe(self) -> bool: ...

    def save_session(self, session: Session) -> None: ...
    def get_session(self, session_id: str) -> Session: ...
    def list_sessions(self, *, status: SessionStatus | str | None = None, agent_id: str | None = None, limit: int | None = None,
                      offset: int = 0) -> list[Session]: ...
    def delete_session(self, session_id: str) -> None: ...
    def save_run(self, run: Run) -> None: ...
    def get_run(self, run_id: str) -> Run: ...
    def list_runs(self, session_id: str | None, *, status: RunStatus | str | None = None, limit: int | None = None) -> list[Run]: ...
    def get_active_run(self, session_id: str) -> Run | None: ...
    def append_event(self, event: Event) -> None: ...
    def append_event_with_sequence(self, event: Event) -> Event: ...
    def append_events(self, events: Sequence[Event]) -> list[Event]: ...
    def flush(self, payload: Any = None) -> None: ...
    def get_events(self, session_id: str, *, run_id: str | None = None, type: EventType | str | Iterable[EventType | str] | None = None,
                   since: datetime | str | None = None,
                   after: int | None = None, before: int | None = None, limit: int | None = None,
                   wait_timeout_ms: int = 0) -> list[Event]: ...
    def get_latest_sequence(self, session_id: str) -> int: ...
    def close(self) -> None: ...


class BatchWriter(Protocol):
    """An optional bulk write a store may offer (LocalStore does; a history import uses it).

    ``write_batch(events, upserts)``: append ``events`` (fresh: ids new to the store, held by
    nobody else, so the store may number them in place), then write ``upserts`` in order: each
    group a list of runs (upserted as ``save_runs`` does) or a list of sessions (as
    ``save_session`` does). Every event is written before any upsert. What is stored is exactly
    what ``append_events`` + ``save_runs`` + ``save_session`` would store (same numbering rules,
    same bytes); only the number of lock rounds and writes differs. A store without it gets those
    calls (see :func:`batch_writer`).
    """

    def write_batch(self, events: Sequence[Event], upserts: Sequence[Sequence[Run] | Sequence[Session]]) -> None: ...


#: the public writes ``write_batch`` stands for: a subclass or instance that replaces one of them
#: (to count, wrap or fail them) is written through them instead
_BATCH_STANDS_FOR = ("append_events", "append_event_with_sequence", "save_runs", "save_run", "save_session")


def batch_writer(store: object) -> Callable[[Sequence[Event], Sequence[Sequence[Run] | Sequence[Session]]], None] | None:
    """``store.write_batch`` when the store offers it and nothing replaces the public writes it
    stands for (no subclass below the class defining it and no instance attribute overrides
    ``append_events``, ``save_runs``, ``save_run``, ``save_session``); else None (the caller uses
    the public methods one by one)."""
    mro = type(store).__mro__
    owner = next((c for c in mro if "write_batch" in c.__dict__), None)
    if owner is None:
        return None
    d = getattr(store, "__dict__", None) or {}
    below = mro[:mro.index(owner)]
    for name in _BATCH_STANDS_FOR:
        if name in d or any(name in c.__dict__ for c in below):
            return None
    fn: Any = getattr(store, "write_batch", None)
    return None if fn is None else fn


@runtime_checkable
class ArtifactStore(Protocol):
    """Bytes by key (docs/stores.md, artifacts)."""

    def put(self, key: str, data: bytes, **opts: Any) -> None: ...
    def get(self, key: str) -> bytes: ...
    def delete(self, key: str) -> None: ...


@runtime_checkable
class QueryAPI(Protocol):
    """Read-only, cross-session queries (docs/stores.md, queries)."""

    def search_sessions(self, **filters: Any) -> Any: ...
    def get_usage_summary(self, **filters: Any) -> Any: ...


@runtime_checkable
class Maintenance(Protocol):
    """Retention and clean-up (docs/stores.md, retention and maintenance)."""

    def execute(self, policy: Any = None) -> Any: ...
    def health_check(self) -> Any: ...


@runtime_checkable
class Renderer(Protocol):
    """Turns events into text, keeping its own state (docs/rendering.md)."""

    def render_event(self, event: Mapping[str, Any]) -> str: ...
    def finish(self) -> str: ...


@runtime_checkable
class Sink(Protocol):
    """Receives rendered text and the raw event it came from (docs/rendering.md)."""

    def write(self, text: str) -> None: ...
    def write_event(self, event: Mapping[str, Any], text: str) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


def resolve_execute_timeout_base(timeout: object) -> int:
    """Base execute timeout in ms (docs/providers.md, the adapter contract)."""
    default = int(config.get("execute_timeout_ms"))
    if timeout is None:
        return default
    if isinstance(timeout, bool):
        return default
    if isinstance(timeout, int):
        return min(timeout, ONE_WEEK_MS) if timeout > 0 else default
    if isinstance(timeout, float) and math.isinf(timeout) and timeout > 0:
        return ONE_WEEK_MS
    if isinstance(timeout, str):
        s = timeout.strip().lower()
        if s in ("unbounded", "infinity", "infinite"):
            return ONE_WEEK_MS
        if s.isdigit() and int(s) > 0:
            return min(int(s), ONE_WEEK_MS)
    return default


def resolve_execute_timeout(timeout: object) -> int:
    """Base timeout plus ``execute_grace_timeout_ms``."""
    return resolve_execute_timeout_base(timeout) + int(config.get("execute_grace_timeout_ms"))


#: What the functions that read "a store" take: a store object, a path or URL (opened once per
#: process, ``"memory://"`` fresh each time) or None for the default store (``stores.resolve_store``).
StoreRef = Union[SessionStore, str, os.PathLike[str], None]
