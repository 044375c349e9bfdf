"""The policy options shared by ``%%asm``, ``%asm policy`` and ``asm run``.

``--budget USD --max-tokens N --max-tool-calls N --timeout S --deny-tools a,b
--allow-tools a,b --on-violation cancel|warn|ask``. ``add_policy_arguments(parser)`` adds them
to an argparse parser; ``policy_from_args(args)`` turns the parsed values into a ``Policy``
(None when no option is set). No third-party imports.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
from typing import Any

from ..core.errors import AsmError
from .policy import Policy

__all__ = ["ON_VIOLATION", "add_policy_arguments", "policy_from_args", "from_options", "terminal_approval",
           "positive_seconds", "non_negative_number", "positive_int", "non_negative_int"]

#: ``--on-violation`` choices → Policy actions
ON_VIOLATION = {"cancel": "cancel", "warn": "warn", "ask": "request_approval"}


def from_options(*, budget_usd: float | None = None, max_tokens: int | None = None,
                 max_tool_calls: int | None = None, timeout_s: float | None = None,
                 deny_tools: Any = None, allow_tools: Any = None, on_violation: str | None = None,
                 name: str = "options") -> Policy | None:
    """A policy from option values (None when none is set).

    ``deny_tools`` / ``allow_tools``: a list or a comma-separated string; ``on_violation``:
    ``cancel`` | ``warn`` | ``ask`` (= ``request_approval``) or a Policy action.

    >>> from_options(budget_usd=0.5, deny_tools="bash,exec").describe()
    'options: max_cost_usd=0.5, deny bash,exec; on violation cancel'
    """
    def names(v: Any) -> list[str]:
        if isinstance(v, str):
            return [s.strip() for s in v.split(",") if s.strip()]
        return list(v or [])

    limits: list[tuple[str, Any]] = []
    if budget_usd is not None:
        limits.append(("max_cost_usd", budget_usd))
    if max_tokens is not None:
        limits.append(("max_total_tokens", max_tokens))
    if max_tool_calls is not None:
        limits.append(("max_tool_calls", max_tool_calls))
    if timeout_s is not None:
        limits.append(("max_duration_ms", int(round(timeout_s * 1000))))
    both = sorted(set(names(allow_tools)) & set(names(deny_tools))) if allow_tools and deny_tools else []
    if both:
        raise AsmError("validation_error", f"{', '.join(both)} is both allowed and denied: "
                                           "name each tool in --allow-tools or --deny-tools, not both")
    rules: list[tuple[str, list[str]]] = []
    if allow_tools is not None:
        rules.append(("allow", names(allow_tools)))
    if deny_tools is not None:
        rules.append(("deny", names(deny_tools)))
    if not limits and not rules and on_violation is None:
        return None
    action = ON_VIOLATION.get(on_violation or "cancel", on_violation or "cancel")
    return Policy(name=name, limits=limits, tool_rules=rules, on_violation=action)


def positive_seconds(text: str) -> float:
    """argparse type: a finite number of seconds > 0 (``nan``, ``inf``, ``-1``, ``abc`` refused)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds > 0, got {text!r}")
    return v


def non_negative_number(text: str) -> float:
    """argparse type: a finite number >= 0 (a budget in USD)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return v


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return v


def non_negative_int(text: str) -> int:
    """argparse type: a whole number >= 0."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return v


def add_policy_arguments(p: argparse.ArgumentParser, *, timeout: bool = True) -> None:
    """Add the policy options to ``p``."""
    p.add_argument("--budget", type=non_negative_number, metavar="USD",
                   help="stop the run once it has cost more than USD")
    p.add_argument("--max-tokens", type=positive_int, metavar="N", help="stop the run above N tokens (input + output)")
    p.add_argument("--max-tool-calls", type=non_negative_int, metavar="N", help="stop the run at tool call N+1")
    if timeout:
        p.add_argument("--timeout", type=positive_seconds, metavar="S", help="stop the run after S seconds")
    p.add_argument("--deny-tools", metavar="A,B", help="tools the run may not use")
    p.add_argument("--allow-tools", metavar="A,B", help="the only tools the run may use")
    p.add_argument("--on-violation", choices=sorted(ON_VIOLATION), help="cancel (default), warn, or ask")


def policy_from_args(args: Any, name: str = "options") -> Policy | None:
    """The ``Policy`` of parsed options (attributes ``budget``, ``max_tokens``, ...)."""
    try:
        return from_options(budget_usd=getattr(args, "budget", None), max_tokens=getattr(args, "max_tokens", None),
                            max_tool_calls=getattr(args, "max_tool_calls", None),
                            timeout_s=getattr(args, "timeout", None), deny_tools=getattr(args, "deny_tools", None),
                            allow_tools=getattr(args, "allow_tools", None),
                            on_violation=getattr(args, "on_violation", None), name=name)
    except AsmError as err:
        raise AsmError(err.code, f"bad policy options: {err.message}", details=err.details) from None


async def terminal_approval(request: dict) -> str:
    """Ask on the terminal (``asm run --on-violation ask``); no terminal → deny."""
    if not sys.stdin or not sys.stdin.isatty():
        return "deny"
    what = request.get("tool_name") or request.get("violation_kind")
    question = f"\npolicy {request.get('policy_name')}: allow {what}? [y/N] "
    answer = await asyncio.to_thread(input, question)
    return "approve" if answer.strip().lower() in ("y", "yes") else "deny"
