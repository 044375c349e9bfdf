"""Agents under test: a named provider + model + options (+ system prompt, policy).

>>> Agent("fast", provider="shell").name
'fast'
>>> [a.name for a in as_agents({"a": "shell", "b": {"provider": "shell", "options": {"timeout_ms": 5000}}})]
['a', 'b']
"""

from __future__ import annotations

import functools

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..core.errors import AsmError
from .dataset import canonical_hash

__all__ = ["Agent", "as_agents"]


def _policy_key(policy: Any) -> Any:
    if policy is None:
        return None
    for attr in ("to_dict", "describe"):
        fn = getattr(policy, attr, None)
        if callable(fn):
            try:
                return fn()
            except Exception:
                pass
    return repr(policy)


@dataclass(frozen=True)
class Agent:
    """One agent under test. ``provider`` is a registered name (``"shell"``, ``"claude"``,
    ``"codex"``...) or an adapter instance; ``options`` go to the adapter (``cassette``,
    ``max_turns``...); ``system`` is a system prompt; ``policy`` an ``asm_nb.Policy`` enforced on
    each run. The ``hash`` (name, provider, model, options, system, policy) keys stored results:
    change any of them and the agent's items run again."""

    name: str
    provider: Any = "shell"
    model: str | None = None
    options: dict = field(default_factory=dict)
    system: str | None = None
    policy: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise AsmError("validation_error", f"agent name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.options, Mapping):
            raise AsmError("validation_error", f"agent {self.name!r}: options must be a dict")

    @property
    def provider_name(self) -> str:
        return self.provider if isinstance(self.provider, str) else str(getattr(self.provider, "name", "custom"))

    @functools.cached_property
    def hash(self) -> str:
        prov = self.provider if isinstance(self.provider, str) else \
            f"{type(self.provider).__module__}.{type(self.provider).__qualname__}:{self.provider_name}"
        return canonical_hash({"name": self.name, "provider": prov, "model": self.model, "options": self.options,
                               "system": self.system, "policy": _policy_key(self.policy)})

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "provider": self.provider_name, "model": self.model,
                "options": dict(self.options), "system": self.system, "hash": self.hash}

    @classmethod
    def from_spec(cls, name: str | None, spec: Any) -> "Agent":
        if isinstance(spec, Agent):
            return spec
        if isinstance(spec, str):
            return cls(name=name or spec, provider=spec)
        if isinstance(spec, Mapping):
            known = {"name", "provider", "model", "options", "system", "policy"}
            extra = {k: v for k, v in spec.items() if k not in known}
            opts = {**dict(spec.get("options") or {}), **extra}
            return cls(name=str(spec.get("name") or name or spec.get("provider") or ""),
                       provider=spec.get("provider", "shell"), model=spec.get("model"), options=opts,
                       system=spec.get("system"), policy=spec.get("policy"))
        if callable(getattr(spec, "execute", None)):
            return cls(name=name or str(getattr(spec, "name", "agent")), provider=spec)
        raise AsmError("validation_error", f"an agent is a provider name, a dict or an Agent, got {spec!r}")


def as_agents(agents: Any) -> list[Agent]:
    """Agents from a list (names, dicts, Agents) or a ``{name: spec}`` dict; names must be unique."""
    if agents is None:
        raise AsmError("validation_error", "evaluate needs agents=[...] (provider names, dicts or asm_nb.Agent)")
    if isinstance(agents, (str, Agent)) or callable(getattr(agents, "execute", None)):
        agents = [agents]
    if isinstance(agents, Mapping):
        out = [Agent.from_spec(str(k), v) for k, v in agents.items()]
    else:
        out = [Agent.from_spec(None, a) for a in agents]
    if not out:
        raise AsmError("validation_error", "evaluate needs at least one agent")
    names = [a.name for a in out]
    if len(set(names)) != len(names):
        raise AsmError("validation_error", f"agent names must be unique, got {names}")
    return out
