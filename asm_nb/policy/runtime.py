"""Policy enforcement while a run streams (docs/policies.md, policies).

``PolicyRuntime`` is the per-run tracker of the spec: it folds each event into usage counters
(tool calls, tokens, elapsed time, cost) and asks the pure evaluator for violations, reporting
each exceeded budget once and tool rules on ``tool_call_started``. ``observe`` returns a
``Decision`` (``violations``, ``cancel``, ``request_approval``), latched so a run is cancelled
(or asked about) once.

``start(policy=..., policies=..., adapter=...)`` is what the session manager calls: it resolves
the effective policy (a list is stack-merged; ``policies`` wins), runs preflight (raises
``AsmError("policy_violation")`` so the adapter is never called) and returns a ``RunPolicy``
driving one run: ``compiled_options()``, ``observe(event) -> {violations, approval, cancel}``,
``deadline_s()`` (when the duration limit will be crossed, for a timer), ``await_approval``
(asks the approval callback) and ``final_verdict() -> {error, policy}``.

Cost: rates come from ``cost_rates``, else config ``policy_cost_rates``, else (deviation, as the
spec recommends) the active pricing table, so ``max_cost_usd`` works out of the box; each
``token_usage_updated`` increment is priced including cache tokens.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..core.errors import AsmError
from ..core.usage import TokenUsage
from .evaluator import evaluate
from .policy import LIMIT_KINDS, Policy, coerce, stack_merge

__all__ = ["PolicyRuntime", "Decision", "RunPolicy", "start", "MISSING_COST_RATES"]

log = logging.getLogger(__name__)

MISSING_COST_RATES = "missing_cost_rates"
_METRIC_TO_KIND = {metric: kind for kind, metric in LIMIT_KINDS.items()}
_APPROVE = {"approve", "approved", "allow", "allowed", "yes", "y", "grant", "granted", "ok", "continue"}


@dataclass
class Decision:
    """What one ``observe`` decided: the new violations and whether to cancel / ask now."""

    violations: list = field(default_factory=list)
    cancel: bool = False
    request_approval: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"violations": list(self.violations), "cancel": self.cancel,
                "request_approval": self.request_approval}


class PolicyRuntime:
    """Per-run usage tracker and violation latch (docs/policies.md, policies). Methods are synchronous.

    >>> rt = PolicyRuntime(Policy(tool_rules=[("deny", ["bash"])]))
    >>> d = rt.observe({"type": "tool_call_started", "data": {"tool_name": "bash"}})
    >>> (d.cancel, len(d.violations), rt.observe({"type": "tool_call_started", "data": {"tool_name": "bash"}}).cancel)
    (True, 1, False)
    """

    def __init__(self, policy: Any = None, provider: str = "unknown", run_id: str | None = None,
                 cost_rates: Mapping[str, Any] | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy: Policy = coerce(policy) if policy is not None else Policy()
        self.provider = provider if isinstance(provider, str) and provider else "unknown"
        self.run_id = run_id
        self.clock = clock
        self.started_at = clock()
        self.elapsed_ms = 0
        self.tool_calls = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.total_tokens = 0
        self.model: str | None = None
        self.accumulated_cost_usd = 0.0
        self.has_cost_limit = any(k == "max_cost_usd" for k, _ in self.policy.limits)
        self.cost_supported = not self.has_cost_limit
        self.warnings: list[str] = []
        self.violations: list[dict] = []
        self.cancel_requested = False
        self.approval_requested = False
        self._reported: set[tuple[str, Any]] = set()
        self._explicit_rates = cost_rates
        self._table: Any = None

    # -- cost --------------------------------------------------------------------------
    def _rate_table(self) -> tuple[str, Any]:
        """("explicit", table) for spec-style rates, ("pricing", table) for the active pricing."""
        if self._explicit_rates is not None:
            return "explicit", self._explicit_rates
        if self._table is None:
            from .. import config

            configured = config.get("policy_cost_rates")
            if isinstance(configured, Mapping) and configured:
                self._table = ("explicit", configured)
            else:
                from ..cost import pricing

                self._table = ("pricing", pricing.active_pricing().table)
        return self._table

    def _rates(self, provider: str) -> Any:
        from ..cost import calculator

        source, table = self._rate_table()
        if source == "pricing":
            found = calculator._lookup(provider, self.model, table)
            return found[1] if found[0] is not None else None
        entry = table.get(provider) if isinstance(table, Mapping) else None
        if not isinstance(entry, Mapping):
            return None
        if "default" in entry:
            return calculator.try_resolve_rates(provider, self.model, table)
        inp, out = entry.get("input"), entry.get("output")
        if calculator._num(inp) and calculator._num(out):
            return calculator.Rates(float(inp), float(out))
        return None

    def _add_cost(self, provider: str, increment: Mapping[str, int]) -> None:
        from ..cost import calculator

        rates = self._rates(provider)
        if rates is None:
            if self.has_cost_limit:
                if MISSING_COST_RATES not in self.warnings:
                    self.warnings.append(MISSING_COST_RATES)
                self.cost_supported = False
            return
        self.accumulated_cost_usd += calculator._apply(increment, rates)
        self.cost_supported = True

    # -- observation -------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The evaluator's state."""
        return {"tool_calls": self.tool_calls, "total_tokens": self.total_tokens, "elapsed_ms": self.elapsed_ms,
                "accumulated_cost_usd": self.accumulated_cost_usd, "cost_supported": self.cost_supported}

    def observe(self, event: Mapping[str, Any]) -> Decision:
        """Fold ``event`` in and decide (docs/policies.md, how a policy is applied)."""
        if not isinstance(event, Mapping):
            return Decision()
        self.elapsed_ms = max(self.elapsed_ms, int((self.clock() - self.started_at) * 1000 + 1e-6))
        etype = getattr(event.get("type"), "value", event.get("type"))
        raw = event.get("data")
        data: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        if self.run_id is None and isinstance(event.get("run_id"), str):
            self.run_id = event["run_id"]
        if etype == "run_started" and isinstance(data.get("model"), str):
            self.model = data["model"]
        elif etype == "tool_call_started":
            self.tool_calls += 1
        elif etype == "token_usage_updated":
            inc = TokenUsage.of(data).to_dict()
            given = event.get("provider")
            provider = given if isinstance(given, str) else self.provider
            self._add_cost(provider, inc)
            self.input_tokens += inc["input_tokens"]
            self.output_tokens += inc["output_tokens"]
            total = data.get("total_tokens")
            if isinstance(total, int) and not isinstance(total, bool) and total >= 0:
                self.total_tokens = max(self.total_tokens, total)
            else:
                self.total_tokens = self.input_tokens + self.output_tokens
        found = evaluate(self.policy, self.snapshot(), event, tool_event_types=("tool_call_started",))
        new = []
        for v in found:
            if v["kind"] == "budget_exceeded":
                key = (v["details"]["metric"], v["details"]["limit"])
                if key in self._reported:
                    continue
                self._reported.add(key)
            new.append(v)
        action = self.policy.on_violation
        cancel = bool(new) and action == "cancel" and not self.cancel_requested
        ask = bool(new) and action == "request_approval" and not self.approval_requested
        self.cancel_requested = self.cancel_requested or cancel
        self.approval_requested = self.approval_requested or ask
        self.violations.extend(new)
        return Decision(violations=new, cancel=cancel, request_approval=ask)

    def status(self) -> dict[str, Any]:
        """``{run_id, policy, action, violated, violations, cancel_requested, approval_requested,
        usage: {...}, metadata: {warnings, cost_supported}}``."""
        return {"run_id": self.run_id, "policy": self.policy.name, "action": self.policy.on_violation,
                "violated": bool(self.violations), "violations": list(self.violations),
                "cancel_requested": self.cancel_requested, "approval_requested": self.approval_requested,
                "usage": {"tool_calls": self.tool_calls, "input_tokens": self.input_tokens,
                          "output_tokens": self.output_tokens, "total_tokens": self.total_tokens,
                          "elapsed_ms": self.elapsed_ms, "model": self.model,
                          "accumulated_cost_usd": self.accumulated_cost_usd},
                "metadata": {"warnings": list(self.warnings), "cost_supported": self.cost_supported}}


# ------------------------------------------------------------------------------------------
# the manager-facing driver


def _summary(violation: Mapping[str, Any]) -> dict[str, Any]:
    """Which limit and by how much, from one violation."""
    d = violation.get("details") or {}
    if violation.get("kind") == "budget_exceeded":
        actual, limit, metric = d.get("actual"), d.get("limit"), d.get("metric")
        kind = _METRIC_TO_KIND.get(metric, metric) if isinstance(metric, str) else metric
        out = {"limit": kind, "metric": metric,
               "limit_value": limit, "observed": actual}
        if isinstance(actual, (int, float)) and isinstance(limit, (int, float)):
            out["exceeded_by"] = round(actual - limit, 12) if isinstance(actual, float) else actual - limit
        return out
    return {"limit": "tool_rules", "tool_name": d.get("tool_name"), "rule": d.get("rule")}


def _stop_text(summary: Mapping[str, Any]) -> str:
    """Which limit and the values: ``max_duration_ms 1500 exceeded at 1503 ms``,
    ``tool bash denied by --deny-tools``."""
    if summary.get("limit") == "tool_rules":
        given = summary.get("rule")
        lists = {"deny": "the deny list (--deny-tools)", "allow": "the allow list (--allow-tools)"}
        rule = lists.get(given, f"rule {given!r}") if isinstance(given, str) else f"rule {given!r}"
        return f"tool {summary.get('tool_name')} denied by {rule}"
    limit, value, seen = summary.get("limit"), summary.get("limit_value"), summary.get("observed")

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            v = round(v, 6)
        unit = " ms" if isinstance(limit, str) and limit.endswith("_ms") else ""
        return f"{v}{unit}" if unit and isinstance(v, (int, float)) else str(v)

    value_text = f"{value}" if not isinstance(value, float) else f"{round(value, 6)}"
    return f"{limit} {value_text} exceeded at {fmt(seen)}"


class RunPolicy:
    """Drives one run's policy for the session manager (docs/policies.md, policies); see the module docstring."""

    def __init__(self, policy: Policy, adapter: Any = None, *, approval_callback: Callable | None = None,
                 cost_rates: Mapping[str, Any] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self.adapter = adapter
        self.approval_callback = approval_callback
        self.runtime = PolicyRuntime(policy, provider=getattr(adapter, "name", None) or "unknown",
                                     cost_rates=cost_rates, clock=clock)
        self.denied: dict | None = None
        self._stop_violation: dict | None = None

    def compiled_options(self) -> dict[str, Any]:
        """AdapterCompiler output for this adapter (merged into the adapter options)."""
        from .compiler import compile_for_adapter

        return compile_for_adapter(self.policy, self.adapter)

    def observe(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """``{"violations": [...], "approval": request | None, "cancel": bool}`` for one event."""
        d = self.runtime.observe(event)
        if d.cancel and self._stop_violation is None and d.violations:
            self._stop_violation = d.violations[0]
        approval = None
        if d.request_approval:
            raw = event.get("data")
            data: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
            first = d.violations[0] if d.violations else {}
            name = data.get("tool_name") if data.get("tool_name") is not None else data.get("name")
            approval = {"tool_name": name, "tool_call_id": data.get("tool_call_id"),
                        "tool_input": data.get("tool_input"), "policy_name": first.get("policy") or "unknown",
                        "violation_kind": first.get("kind") or "unknown",
                        "details": first.get("details") or {}}
        return {"violations": [dict(v) for v in d.violations], "approval": approval, "cancel": d.cancel}

    def deadline_s(self) -> float | None:
        """Seconds from now until the (first unreported) duration limit is crossed, or None."""
        limits = [v for k, v in self.policy.limits
                  if k == "max_duration_ms" and ("duration_ms", v) not in self.runtime._reported]
        if not limits:
            return None
        due = self.runtime.started_at + (min(limits) + 1) / 1000
        return max(0.0, due - self.runtime.clock())

    async def await_approval(self, request: Mapping[str, Any]) -> str | None:
        """Ask the approval callback about ``request``; ``"approve"``, ``"deny"``, or None when
        there is no callback (the run goes on, as in ``warn``). A denial stops the run."""
        cb = self.approval_callback
        if cb is None:
            return None
        timeout = self.policy.metadata.get("approval_timeout_s", 600)
        try:
            res = cb(dict(request))
            if isinstance(res, concurrent.futures.Future):
                res = asyncio.wrap_future(res)
            if inspect.isawaitable(res):
                res = await asyncio.wait_for(res, timeout if isinstance(timeout, (int, float)) else None)
        except asyncio.TimeoutError:
            res = False
            log.warning("approval not given within %ss: denied", timeout)
        except Exception:
            log.exception("approval callback raised: denied")
            res = False
        ok = res is True or (isinstance(res, str) and res.strip().lower() in _APPROVE)
        if not ok:
            self.denied = dict(request)
            return "deny"
        return "approve"

    def final_verdict(self) -> dict[str, Any]:
        """``{"error": AsmError | None, "policy": dict | None}`` after the adapter returned."""
        rt = self.runtime
        if not rt.violations:
            return {"error": None, "policy": None}
        info = {"action": self.policy.on_violation, "violations": list(rt.violations),
                "metadata": {"warnings": list(rt.warnings), "cost_supported": rt.cost_supported},
                "usage": rt.status()["usage"]}
        if self.denied is not None or self.policy.on_violation == "cancel":
            trigger = self._stop_violation or rt.violations[0]
            details = {"policy": self.policy.name, "violations": list(rt.violations), "action": "cancel",
                       **_summary(trigger)}
            if self.denied is not None:
                details["approval"] = "denied"
                msg = "Policy violation: the approval request was denied, run cancelled"
            else:
                msg = f"Policy {self.policy.name!r} stopped the run: {_stop_text(details)}"
            return {"error": AsmError("policy_violation", msg, details=details), "policy": info}
        return {"error": None, "policy": info}

    @property
    def stopped(self) -> bool:
        """True once the run is being stopped (cancel decided or approval denied)."""
        return self.runtime.cancel_requested or self.denied is not None


def start(policy: Any = None, policies: list | None = None, adapter: Any = None, *,
          approval_callback: Callable | None = None, cost_rates: Mapping[str, Any] | None = None,
          clock: Callable[[], float] = time.monotonic) -> RunPolicy | None:
    """The effective policy of a run (``policies`` stack-merged, wins over ``policy``; a list
    given as ``policy`` is a stack too), preflight-checked, as a ``RunPolicy``; None without one.

    Raises ``AsmError("validation_error")`` for bad attrs and ``AsmError("policy_violation")``
    when preflight fails. The approval callback is ``approval_callback`` or the policy's
    ``metadata["approval_callback"]``: ``fn(request) -> bool | "approve" | "deny"`` (or an
    awaitable / future of one).
    """
    from .preflight import check

    if policies:
        effective = stack_merge(list(policies))
    elif policy is None or policy == [] or policy == {}:
        return None
    else:
        effective = coerce(policy)
    check(effective)
    cb = approval_callback or effective.metadata.get("approval_callback")
    return RunPolicy(effective, adapter, approval_callback=cb if callable(cb) else None, cost_rates=cost_rates,
                     clock=clock)
