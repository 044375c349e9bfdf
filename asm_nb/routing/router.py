"""ProviderRouter (docs/runtime.md, routing and failover): a ``ProviderAdapter`` that picks a registered adapter
per run and fails over to the next one on retryable errors.

Per run: capability matching (``routing={"required_capabilities": [...]}``) → routing policy
order (prefer / weights / exclude) → health gate (a provider that failed is skipped for
``cooldown_ms``) and circuit breaker → sticky session first → up to ``max_attempts`` attempts.

Routing decisions are visible in the event stream: every event of an attempt carries
``routed_provider``, ``routing_attempt`` and ``routing_candidates`` (plus ``failover_from`` /
``failover_reason`` after a failover), and a failed attempt that is followed by another one
becomes an ``error_occurred`` event with ``recoverable: True`` and ``failover_to`` (the failed
adapter's own ``run_failed`` is not passed on, so the run keeps exactly one terminal event).

State (``health``, ``circuit_breakers``, ``sticky_sessions``, recent failures) lives in a
``RouterState``; ``ProviderRouter.from_names`` routers share the process-wide one, so breakers
survive from one notebook cell to the next and ``%asm health`` can show them. All mutations
happen on the runtime loop without an await in between, so no lock is needed.

Time comes from ``clock`` (monotonic milliseconds) so tests never sleep.
"""

from __future__ import annotations

import collections
import inspect
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from .. import config
from ..core.errors import AsmError, is_retryable
from ..core.serialization import utc_now
from ..ports import AdapterResult, KeptEvents
from ..core.usage import empty_usage

if TYPE_CHECKING:
    from ..core.run import Run
    from ..core.session import Session
from .circuit_breaker import HALF_OPEN, CircuitBreaker, monotonic_ms
from .matcher import matches_all
from .policy import FIELDS, RoutingPolicy, attempt_limit, merge, order_candidates

__all__ = ["ProviderRouter", "RouterState", "SHARED_STATE", "NOT_COUNTED"]

log = logging.getLogger(__name__)

#: errors that say nothing about a provider's health (not counted, spec Python note)
NOT_COUNTED = frozenset({"cancelled", "policy_violation"})
_RECENT = 10


@dataclass
class RouterState:
    """Health, breakers, stickiness and recent failures of the routed providers."""

    health: dict = field(default_factory=dict)
    circuit_breakers: dict = field(default_factory=dict)
    sticky_sessions: dict = field(default_factory=dict)
    failure_ms: dict = field(default_factory=dict)  # id -> clock() of the last failure (health gate)
    recent_failures: dict = field(default_factory=dict)  # id -> deque of {at, code, message}

    def reset(self) -> None:
        for d in (self.health, self.circuit_breakers, self.sticky_sessions, self.failure_ms, self.recent_failures):
            d.clear()


#: the state shared by ``from_names`` routers (and shown by ``asm health``)
SHARED_STATE = RouterState()


def _nonneg_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _routing_opts(routing: object) -> dict[Any, Any]:
    if isinstance(routing, Mapping):
        return dict(routing)
    if isinstance(routing, (list, tuple)):
        return {p[0]: p[1] for p in routing if isinstance(p, (list, tuple)) and len(p) == 2}
    return {}


class ProviderRouter:
    """Delegates each run to one of its registered adapters (see module docstring).

    >>> from asm_nb.testing import ScriptedAdapter
    >>> r = ProviderRouter(policy={"prefer": ["b"]})
    >>> r.register_adapter("a", ScriptedAdapter(name="a")); r.register_adapter("b", ScriptedAdapter(name="b"))
    >>> r.status()["adapters"]
    ['a', 'b']
    """

    def __init__(self, *, policy: Any = None, cooldown_ms: Any = None, circuit_breaker: bool | None = None,
                 circuit_breaker_enabled: bool | None = None, circuit_breaker_opts: Mapping[str, Any] | None = None,
                 sticky_ttl_ms: Any = None, name: str | None = None, clock: Callable[[], float] | None = None,
                 state: RouterState | None = None) -> None:
        self.name: str = name or config.get("default_router_name") or "router"
        self.policy = RoutingPolicy.new(policy)
        self.cooldown_ms = cooldown_ms if _nonneg_int(cooldown_ms) else config.get("circuit_breaker_cooldown_ms")
        enabled = circuit_breaker if circuit_breaker is not None else circuit_breaker_enabled
        self.circuit_breaker_enabled = bool(enabled)
        self.circuit_breaker_opts = {"cooldown_ms": self.cooldown_ms, **dict(circuit_breaker_opts or {})}
        self.sticky_ttl_ms = sticky_ttl_ms if _nonneg_int(sticky_ttl_ms) else config.get("sticky_session_ttl_ms")
        self.clock = clock or monotonic_ms
        self.state = state if state is not None else RouterState()
        self.adapters: dict[str, dict] = {}
        self.active_runs: dict[str, dict] = {}

    # -- construction from names --------------------------------------------------------------
    @classmethod
    def from_names(cls, names: Sequence[str], *, router: Mapping[str, Any] | None = None,
                   per_adapter: Mapping[str, Mapping[str, Any]] | None = None,
                   **adapter_options: Any) -> "ProviderRouter":
        """A router over registered providers, tried in the given order.

        Each provider is built with ``create_adapter(name, **adapter_options)``. The router
        prefers the names in order, tries each at most once (``max_attempts = len(names)``),
        uses the circuit breaker, and shares the process-wide state (``SHARED_STATE``).
        ``router``: extra ``ProviderRouter`` options (``policy``, ``cooldown_ms``, ...);
        ``per_adapter``: ``{name: options}`` used instead of ``adapter_options`` for that name.
        """
        from ..providers import create_adapter

        ids = [n.strip() for n in names if isinstance(n, str) and n.strip()]
        if not ids:
            raise AsmError("validation_error", "Routing needs at least one provider name")
        ropts = dict(router or {})
        user_policy = ropts.pop("policy", None)
        user_policy = user_policy.to_dict() if isinstance(user_policy, RoutingPolicy) else dict(user_policy or {})
        policy = merge(RoutingPolicy.new(prefer=ids, max_attempts=len(dict.fromkeys(ids))), user_policy)
        ropts.setdefault("circuit_breaker", True)
        ropts.setdefault("state", SHARED_STATE)
        self = cls(policy=policy, **ropts)
        for n in ids:
            opts = (per_adapter or {}).get(n)
            self.register_adapter(n, create_adapter(n, **(dict(opts) if opts is not None else adapter_options)))
        return self

    # -- registry -----------------------------------------------------------------------------
    def register_adapter(self, id: object, adapter: object, **opts: Any) -> None:
        """Add (or replace) adapter ``id``; health and breaker of a known id are kept."""
        if not isinstance(id, str) or not id:
            return
        self.adapters[id] = {"id": id, "adapter": adapter, "opts": dict(opts)}
        self.state.health.setdefault(id, {"failure_count": 0, "last_failure_at": None})
        if self.circuit_breaker_enabled and id not in self.state.circuit_breakers:
            self.state.circuit_breakers[id] = CircuitBreaker.new(clock=self.clock, **self.circuit_breaker_opts)

    def unregister_adapter(self, id: str) -> None:
        self.adapters.pop(id, None)
        self.state.health.pop(id, None)
        self.state.circuit_breakers.pop(id, None)
        self.state.failure_ms.pop(id, None)
        for run_id in [r for r, b in self.active_runs.items() if b["adapter_id"] == id]:
            self.active_runs.pop(run_id, None)

    def status(self) -> dict[str, Any]:
        return {"adapters": list(self.adapters), "health": {k: dict(v) for k, v in self.state.health.items()
                                                             if k in self.adapters},
                "active_runs": {r: b["adapter_id"] for r, b in self.active_runs.items()},
                "policy": self.policy.to_dict(), "cooldown_ms": self.cooldown_ms,
                "sticky_sessions": {k: dict(v) for k, v in self.state.sticky_sessions.items()},
                "circuit_breakers": {k: b.to_dict() for k, b in self.state.circuit_breakers.items()
                                     if k in self.adapters}}

    # -- port surface -------------------------------------------------------------------------
    @property
    def emits_input_messages(self) -> bool:
        """True when every registered adapter emits the run's input messages itself."""
        return bool(self.adapters) and all(getattr(e["adapter"], "emits_input_messages", False)
                                           for e in self.adapters.values())

    async def capabilities(self) -> list:
        seen: set = set()
        out = []
        for e in self.adapters.values():
            try:
                caps = await e["adapter"].capabilities()
            except Exception:
                continue
            for c in caps or []:
                key = (getattr(getattr(c, "type", None), "value", getattr(c, "type", None)), getattr(c, "name", None),
                       getattr(c, "enabled", True))
                if key not in seen:
                    seen.add(key)
                    out.append(c)
        return out

    def validate_config(self, config: Mapping[str, Any]) -> None:
        if not isinstance(config, Mapping):
            raise AsmError("validation_error", "Invalid provider router config")

    async def cancel(self, run_id: str) -> str:
        bound = self.active_runs.get(run_id)
        if bound is None:
            raise AsmError("run_not_found", f"No active routed run found: {run_id}")
        return await bound["adapter"].cancel(run_id)

    async def aclose(self) -> None:
        for e in list(self.adapters.values()):
            try:
                await e["adapter"].aclose()
            except Exception:
                log.debug("closing %s failed", e["id"], exc_info=True)

    # -- health -------------------------------------------------------------------------------
    def _healthy(self, aid: str) -> bool:
        h = self.state.health.get(aid) or {}
        if not h.get("failure_count") or h.get("last_failure_at") is None:
            return True
        at = self.state.failure_ms.get(aid)
        return at is None or self.clock() - at >= self.cooldown_ms

    def _breaker_allows(self, aid: str) -> bool:
        if not self.circuit_breaker_enabled:
            return True
        b = self.state.circuit_breakers.get(aid)
        if b is None:
            return True
        b = b.check_state()
        self.state.circuit_breakers[aid] = b
        return b.allowed()

    def _record(self, aid: str, error: AsmError | None) -> None:
        if error is None:
            self.state.health[aid] = {"failure_count": 0, "last_failure_at": None}
            self.state.failure_ms.pop(aid, None)
            if aid in self.state.circuit_breakers:
                self.state.circuit_breakers[aid] = self.state.circuit_breakers[aid].record_success()
            return
        if error.code in NOT_COUNTED:
            return
        h = self.state.health.setdefault(aid, {"failure_count": 0, "last_failure_at": None})
        h["failure_count"] = h.get("failure_count", 0) + 1
        h["last_failure_at"] = utc_now()
        self.state.failure_ms[aid] = self.clock()
        recent = self.state.recent_failures.setdefault(aid, collections.deque(maxlen=_RECENT))
        recent.append({"at": h["last_failure_at"], "code": str(error.code), "message": error.message})
        if aid in self.state.circuit_breakers:
            self.state.circuit_breakers[aid] = self.state.circuit_breakers[aid].record_failure()

    # -- execute ------------------------------------------------------------------------------
    async def _candidates(self, policy: RoutingPolicy, reqs: list) -> list[dict]:
        matched = []
        for e in list(self.adapters.values()):
            if reqs:
                try:
                    caps = await e["adapter"].capabilities()
                except Exception:
                    caps = []
                if not matches_all(list(caps or []), reqs):
                    continue
            matched.append(e)
        ordered = order_candidates(policy, matched, self.state.health)
        return [e for e in ordered if self._healthy(e["id"]) and self._breaker_allows(e["id"])]

    def _telemetry(self, phase: str, measurements: dict, metadata: dict) -> None:
        try:
            from .. import telemetry

            if telemetry.enabled():
                telemetry.execute(telemetry.event_name("router", "attempt", phase), measurements, metadata)
        except Exception:
            log.debug("router telemetry failed", exc_info=True)

    async def execute(self, run: Run, session: Session, *, event_callback: Callable | None = None, timeout: Any = None,
                      routing: object = None, policy_hints: Any = None, **adapter_opts: Any) -> AdapterResult:
        """Run on the best allowed adapter, failing over on retryable errors (docs/runtime.md, routing and failover)."""
        ropts = _routing_opts(routing)
        policy = self._run_policy(ropts)
        sticky_id = ropts.get("sticky_session_id")
        sticky = self._sticky_adapter(sticky_id)
        candidates = await self._candidates(policy, _required_capabilities(ropts))
        limit = attempt_limit(policy, len(candidates))
        _move_first(candidates, sticky)
        if limit == 0:
            raise AsmError("provider_unavailable", "No eligible providers for this run",
                           details={"registered": list(self.adapters)})
        ids = [c["id"] for c in candidates]
        stream = _RoutedStream(event_callback, own_inputs=self.emits_input_messages)
        failover: dict | None = None
        for k in range(1, limit + 1):
            aid = candidates[k - 1]["id"]
            bound = self.adapters.get(aid)
            if bound is None:
                raise AsmError("provider_unavailable", f"Unknown adapter: {aid}")
            route = {"routed_provider": aid, "routing_attempt": k, "routing_candidates": list(ids)}
            if failover is not None:
                route.update(failover_from=failover["from"], failover_reason=failover["reason"])
            held: list[dict] = []
            result, error = await self._attempt(run, session, aid, bound, stream.callback(route, held), route,
                                                timeout=timeout, policy_hints=policy_hints, adapter_opts=adapter_opts)
            if error is None:
                await stream.forward_all(held)  # an adapter that reported failure but returned (shell exit codes)
                self._stick(sticky_id, aid)
                return stream.result(result, route)
            if is_retryable(error.code) and k < limit:
                await stream.forward(_failover_event(run, session, bound["adapter"], aid, error, route,
                                                     to=candidates[k]["id"]))
                failover = {"from": aid, "reason": str(error.code)}
                continue
            await stream.forward_all(held)
            raise error
        raise AsmError("provider_unavailable", "No more providers available for failover")

    def _run_policy(self, ropts: Mapping[str, Any]) -> RoutingPolicy:
        """The router's policy with this run's overrides (routing fields, or a whole ``policy``)."""
        overrides = {k: ropts[k] for k in FIELDS if k in ropts}
        if isinstance(ropts.get("policy"), (Mapping, RoutingPolicy)):
            p = ropts["policy"]
            overrides.update(p.to_dict() if isinstance(p, RoutingPolicy) else {k: v for k, v in p.items()
                                                                               if k in FIELDS})
        return merge(self.policy, overrides)

    def _sticky_adapter(self, sticky_id: object) -> str | None:
        """The adapter a sticky session is bound to, while its binding has not expired."""
        entry = self.state.sticky_sessions.get(sticky_id) if sticky_id is not None else None
        if entry and self.clock() < entry["expires_at_ms"]:
            return entry["adapter_id"]
        return None

    def _stick(self, sticky_id: object, aid: str) -> None:
        if sticky_id is not None:
            self.state.sticky_sessions[sticky_id] = {"adapter_id": aid,
                                                     "expires_at_ms": self.clock() + self.sticky_ttl_ms}

    async def _attempt(self, run: Run, session: Session, aid: str, bound: Mapping[str, Any], callback: Callable,
                       route: Mapping[str, Any], *, timeout: Any, policy_hints: Any,
                       adapter_opts: Mapping[str, Any]) -> tuple[Any, AsmError | None]:
        """One attempt on adapter ``aid``: ``(result, None)`` or ``(None, error)``; health, breaker
        and telemetry recorded. Task cancellation propagates (the run is unbound first)."""
        adapter = bound["adapter"]
        self.active_runs[run.id] = {"adapter_id": aid, "adapter": adapter}
        b = self.state.circuit_breakers.get(aid) if self.circuit_breaker_enabled else None
        if b is not None and b.state == HALF_OPEN:
            self.state.circuit_breakers[aid] = b.record_probe()
        meta = {"session_id": getattr(session, "id", None), "run_id": run.id, "adapter_id": aid,
                "attempt": route["routing_attempt"], "candidate_ids": list(route["routing_candidates"])}
        self._telemetry("start", {"system_time": time.time_ns()}, meta)
        t0 = time.monotonic_ns()
        opts = {**bound["opts"], **adapter_opts}
        if policy_hints is not None:
            from ..policy.compiler import compile_for_adapter

            opts.update(compile_for_adapter(policy_hints, adapter))
        error: AsmError | None = None
        result: Any = None
        try:
            result = await adapter.execute(run, session, event_callback=callback, timeout=timeout, **opts)
        except AsmError as err:
            error = err
        except BaseException as exc:
            if not isinstance(exc, Exception):  # task cancellation: unbind and propagate
                self.active_runs.pop(run.id, None)
                raise
            error = _as_asm_error(exc)
        duration = time.monotonic_ns() - t0
        self.active_runs.pop(run.id, None)
        self._record(aid, error)
        if error is None:
            self._telemetry("stop", {"duration": duration}, meta)
        else:
            self._telemetry("exception", {"duration": duration}, {**meta, "error_code": str(error.code)})
        return result, error


class _RoutedStream:
    """The events one routed run passes on to the caller: each attempt's events carry its route;
    the input is recorded once; an attempt's ``run_failed`` is held back (passed on only if no
    other attempt follows, so the run keeps exactly one terminal event)."""

    def __init__(self, event_callback: Callable | None, *, own_inputs: bool) -> None:
        self.event_callback = event_callback
        self.own_inputs = own_inputs
        # a caller that records the stream itself (the manager) gets back only the events it reads
        self.records = bool(getattr(event_callback, "records_events", False))
        self.forwarded: list[dict] | KeptEvents = KeptEvents() if self.records else []
        self.inputs_sent = False

    async def forward(self, ev: dict) -> None:
        self.forwarded.append(ev)
        if self.event_callback is not None:
            res = self.event_callback(ev)
            if inspect.isawaitable(res):
                await res

    async def forward_all(self, events: list[dict]) -> None:
        for e in events:
            await self.forward(e)

    def callback(self, route: dict, held: list[dict]) -> Callable:
        """The event callback given to one attempt's adapter."""

        async def callback(ev: Mapping[str, Any]) -> None:
            e = dict(ev)
            e["data"] = {**dict(e.get("data") or {}), **route}
            etype = getattr(e.get("type"), "value", e.get("type"))
            if etype == "message_sent":
                if not self.own_inputs or (self.inputs_sent and route["routing_attempt"] > 1):
                    return  # the run's input is recorded once
                self.inputs_sent = True
            if etype == "run_failed":
                held.append(e)  # passed on only if no other attempt follows
                return
            await self.forward(e)

        if self.records:
            callback.records_events = True  # type: ignore[attr-defined]  # the attempt's adapter keeps no copy
        return callback

    def result(self, result: AdapterResult | Mapping[str, Any] | None, route: Mapping[str, Any]) -> AdapterResult:
        """The router's result: the serving adapter's output and usage, every forwarded event."""
        if not isinstance(result, AdapterResult):
            result = AdapterResult(**result) if isinstance(result, Mapping) else AdapterResult()
        return AdapterResult(output=dict(result.output), token_usage={**empty_usage(), **result.token_usage},
                             events=list(self.forwarded), routing=dict(route), policy=result.policy)


def _required_capabilities(ropts: Mapping[str, Any]) -> list:
    reqs = ropts.get("required_capabilities") or []
    if not isinstance(reqs, list):
        reqs = list(reqs) if isinstance(reqs, tuple) else [reqs]
    return reqs


def _move_first(candidates: list[dict], aid: str | None) -> None:
    """Put the sticky session's adapter first, when it is a candidate."""
    if aid is None:
        return
    for i, c in enumerate(candidates):
        if c["id"] == aid:
            candidates.insert(0, candidates.pop(i))
            break


def _as_asm_error(exc: Exception) -> AsmError:
    """An adapter's non-``AsmError`` exception as an ``AsmError`` (its own code/message if it has them)."""
    code, message = getattr(exc, "code", None), getattr(exc, "message", None)
    if isinstance(code, str) and isinstance(message, str):
        try:
            return AsmError(code, message)
        except Exception:
            pass
    return AsmError("provider_error", str(exc) or repr(exc), details={"original_exception": repr(exc)})


def _failover_event(run: Run, session: Session, adapter: object, aid: str, error: AsmError, route: Mapping[str, Any], *,
                    to: str) -> dict:
    """The recoverable ``error_occurred`` event that replaces a failed attempt followed by another."""
    data = {"error_code": str(error.code), "error_message": error.message, "recoverable": True,
            "failover_to": to, **route}
    if error.provider_error is not None:
        data["provider_error"] = error.provider_error
    return {"type": "error_occurred", "timestamp": utc_now(), "session_id": session.id,
            "run_id": run.id, "data": data, "provider": getattr(adapter, "name", aid)}
