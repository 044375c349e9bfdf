"""AdapterCompiler (docs/policies.md, policies): policy → provider-side option hints.

``compile(policy, provider_name)`` is the spec's provider-independent output
(``allowed_tools`` / ``denied_tools`` / ``max_tokens``). ``compile_for_adapter(policy, adapter)``
adds what each built-in provider understands natively, so a denied tool is never even
offered where the provider lets us say so:

- Claude API (``ClaudeAdapter``): ``allowed_tools`` / ``denied_tools`` filter the offered tools,
  ``max_tokens`` caps each request;
- Claude Code CLI: ``tools`` (``--allowedTools``) and ``disallowed_tools`` (``--disallowedTools``),
  merged with the adapter's own lists;
- Amp: ``permissions`` rules — ``reject`` for denied tools; with an allow list, ``allow`` for the
  allowed tools followed by a catch-all ``reject`` — placed before the adapter's own rules;
- Codex: no per-tool flags; denying a file-writing tool asks for the ``read-only`` sandbox.
- ACP agents: none (the agent offers its own tools and takes no per-run tool options); tool rules
  are enforced on its tool calls, and the client-side commands and writes it asks for wait until
  the run's observers (the policy, an approval) have seen the tool call announced before them.

Duration, tool-call count and cost are enforced reactively by the runtime only.
Imports: ``asm_nb.core`` and ``asm_nb.policy`` only.
"""

from __future__ import annotations

from typing import Any, Mapping

from .policy import Policy, coerce

__all__ = ["compile", "compile_for_adapter", "CODEX_WRITE_TOOLS"]

#: tool names whose denial makes Codex run in the read-only sandbox
CODEX_WRITE_TOOLS = frozenset({"file_change", "apply_patch", "write", "edit", "Write", "Edit", "MultiEdit",
                               "write_file", "edit_file"})


def _tool_sets(p: Policy) -> tuple[list[str] | None, list[str]]:
    """(allowed or None, denied) from the tool rules (docs/policies.md, how a policy is applied)."""
    denied: list[str] = []
    for names in p.deny_lists:
        for n in names:
            if n not in denied:
                denied.append(n)
    allows = p.allow_lists
    if not allows:
        return None, denied
    allowed = set(allows[0])
    for names in allows[1:]:
        allowed &= set(names)
    return sorted(allowed - set(denied)), denied


def compile(policy: object, provider_name: str | None = None) -> dict[str, Any]:  # noqa: A001 - spec name
    """Provider hints of ``policy`` (docs/policies.md, policies); the provider name does not change the output.

    >>> compile(Policy(tool_rules=[("allow", ["search", "read", "write"]), ("allow", ["search", "read"]),
    ...                            ("deny", ["read"])]), "claude")
    {'allowed_tools': ['search']}
    >>> compile(Policy(limits={"max_total_tokens": 4000}), "codex")
    {'max_tokens': 4000}
    """
    if policy is None:
        return {}
    p = coerce(policy)
    out: dict[str, Any] = {}
    if p.tool_rules:
        allowed, denied = _tool_sets(p)
        if allowed is not None:
            out["allowed_tools"] = allowed
        elif denied:
            out["denied_tools"] = denied
    for kind, value in p.limits:
        if kind == "max_total_tokens" and value > 0 and "max_tokens" not in out:
            out["max_tokens"] = value
    return out


def _kind(adapter: object) -> str:
    cls = type(adapter).__name__
    if cls == "ClaudeCodeAdapter":
        return "claude_code"
    if cls == "AmpAdapter":
        return "amp"
    if cls == "CodexAdapter":
        return "codex"
    if cls == "ClaudeAdapter":
        return "claude"
    if cls == "ProviderRouter":
        return "router"
    return getattr(adapter, "name", None) or "unknown"


def compile_for_adapter(policy: object, adapter: object) -> dict[str, Any]:
    """``compile(policy)`` translated into the options ``adapter`` honours (module docstring).

    A router gets ``{"policy_hints": policy}`` and compiles for each adapter it tries.
    """
    if policy is None:
        return {}
    p = coerce(policy)
    base = compile(p, getattr(adapter, "name", None))
    kind = _kind(adapter)
    if kind == "router":
        return {"policy_hints": p} if base else {}
    if kind == "acp":
        return {}
    if kind not in ("claude_code", "amp", "codex"):
        return base  # the spec hints (the Claude API adapter and custom adapters read them)
    if not p.tool_rules:
        return {}
    allowed, denied = _tool_sets(p)
    opts: Mapping[str, Any] = getattr(adapter, "options", None) or {}
    if kind == "claude_code":
        out = {}
        if allowed is not None:
            own = opts.get("tools")
            own_names = [t if isinstance(t, str) else getattr(t, "name", t.get("name") if isinstance(t, Mapping)
                                                              else None) for t in own] if own else None
            out["tools"] = [t for t in allowed if own_names is None or t in own_names]
        if denied:
            own = [t for t in (opts.get("disallowed_tools") or []) if isinstance(t, str)]
            out["disallowed_tools"] = own + [t for t in denied if t not in own]
        return out
    if kind == "amp":
        rules: list[dict] = [{"tool": t, "action": "reject"} for t in denied]
        if allowed is not None:
            rules += [{"tool": t, "action": "allow"} for t in allowed]
            rules.append({"tool": "*", "action": "reject"})
        return {"permissions": rules + list(opts.get("permissions") or [])} if rules else {}
    if kind == "codex":
        if any(t in CODEX_WRITE_TOOLS for t in denied):
            sdk = dict(opts.get("sdk_opts") or {})
            sdk["sandbox"] = "read-only"
            return {"sdk_opts": sdk}
        return {}
    return dict(base)
