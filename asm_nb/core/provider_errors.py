"""``normalize_provider_error``: the six-key cross-provider error payload every adapter, the
process layer and the manager report (docs/providers.md, errors). Standard library only, like all
of ``core``."""

from __future__ import annotations

from typing import Any, Mapping

from ._settings import setting

PROVIDERS = ("codex", "amp", "claude", "gemini", "acp")
KINDS = frozenset({
    "transport_exit", "process_error", "parse_error", "protocol_error", "cli_not_found", "timeout", "unknown",
    "rate_limit", "authentication", "invalid_request", "overloaded", "server_error", "connection_error", "quota",
    "max_turns",
})
_TRUTHY = (True, "true", "1")


def truncate_text(text: object, max_bytes: int | None, max_lines: int | None) -> tuple[str | None, bool]:
    """Cut to ``max_lines`` lines, then to ``max_bytes`` UTF-8 bytes (never mid-character)."""
    if text is None:
        return None, False
    if not isinstance(text, str):
        return repr(text), True
    truncated = False
    if isinstance(max_lines, int) and max_lines > 0:
        lines = text.split("\n")
        if len(lines) > max_lines:
            text = "\n".join(lines[:max_lines])
            truncated = True
    if isinstance(max_bytes, int) and max_bytes > 0:
        raw = text.encode("utf-8")
        if len(raw) > max_bytes:
            text = raw[:max_bytes].decode("utf-8", errors="ignore")
            truncated = True
    return text, truncated


def normalize_provider_name(provider: object) -> str:
    return provider if isinstance(provider, str) and provider in PROVIDERS else "unknown"


def _get(m: Mapping[str, Any], *keys: str) -> Any:
    for k in keys:
        if k in m and m[k] is not None:
            return m[k]
    return None


def normalize_provider_error(provider: Any, attrs: Any, *, max_bytes: int | None = None,
                             max_lines: int | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return ``(provider_error, details)``; ``provider_error`` has exactly six keys:
    provider, kind, message, exit_code, stderr, truncated (``True`` or ``None``)."""
    if not isinstance(attrs, Mapping):
        attrs = {"message": repr(attrs)}
    details = dict(attrs["details"]) if isinstance(attrs.get("details"), Mapping) else {}
    stderr_src = _get(attrs, "stderr")
    if stderr_src is None:
        stderr_src = details.get("stderr")
    stderr, cut = truncate_text(stderr_src, max_bytes or setting("error_text_max_bytes"),
                                max_lines or setting("error_text_max_lines"))
    flag_sources = (attrs.get("truncated?"), attrs.get("truncated"), attrs.get("stderr_truncated?"),
                    attrs.get("stderr_truncated"), details.get("stderr_truncated?"), details.get("stderr_truncated"))
    truncated = True if cut or any(v in _TRUTHY for v in flag_sources if v is not None) else None
    exit_code = None
    for v in (attrs.get("exit_code"), details.get("exit_code"), details.get("exit_status")):
        if v is None:
            continue
        if isinstance(v, int) and not isinstance(v, bool):
            exit_code = v
        elif isinstance(v, str) and v.strip().lstrip("-").isdigit():
            exit_code = int(v.strip())
        break
    message = None
    for v in (attrs.get("message"), details.get("message")):
        if isinstance(v, str) and v.strip():
            message = v
            break
    if message is None:
        first = (stderr or "").strip().split("\n", 1)[0].strip() if stderr else ""
        message = first or "Provider execution failed"
    kind_raw = attrs.get("kind") if attrs.get("kind") is not None else details.get("kind")
    kind = "unknown"
    if isinstance(kind_raw, str) and kind_raw.strip().lower() in KINDS:
        kind = kind_raw.strip().lower()
    for k in ("stderr", "stderr_truncated?", "stderr_truncated", "exit_code", "exit_status"):
        details.pop(k, None)
    provider_error = {"provider": normalize_provider_name(provider), "kind": kind, "message": message,
                      "exit_code": exit_code, "stderr": stderr, "truncated": truncated}
    return provider_error, details
