"""Runtime configuration: context-local override → global setting (or ``ASM_<KEY>`` env) → default.

See docs/runtime.md, configuration. Context-local overrides live in a ``ContextVar``; the runtime carries the
caller's context onto its loop thread, so ``with config.override(...)`` in a cell applies inside
the run.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import json
import os
import threading
from typing import Any, Iterator

_MISSING = object()

DEFAULTS: dict[str, Any] = {
    "telemetry_enabled": True,
    "audit_logging_enabled": True,
    "redaction_enabled": True,  # Deviation from the reference (False): stores and notebooks get shared
    "redaction_patterns": "default",
    "redaction_replacement": "[REDACTED]",
    "redaction_deep_scan": True,
    "redaction_scan_metadata": False,
    "stream_idle_timeout_ms": 120_000,
    "task_shutdown_timeout_ms": 5_000,
    "await_run_timeout_ms": 60_000,
    "drain_timeout_buffer_ms": 1_000,
    "command_timeout_ms": 30_000,
    "execute_timeout_ms": 60_000,
    "execute_grace_timeout_ms": 5_000,
    "circuit_breaker_cooldown_ms": 30_000,
    "sticky_session_ttl_ms": 300_000,
    "event_stream_poll_interval_ms": 250,
    "call_timeout_ms": 5_000,
    "event_buffer_size": 1_000,
    "max_output_bytes": 1_048_576,
    "max_patch_bytes": 1_048_576,
    "error_text_max_bytes": 16_384,
    "error_text_max_lines": 200,
    "max_parallel_sessions": 100,
    "max_parallel_runs": 50,
    "max_queued_runs": 100,
    "circuit_breaker_failure_threshold": 5,
    "circuit_breaker_half_open_max_probes": 1,
    "sqlite_max_bind_params": 32_766,
    "sqlite_busy_retry_attempts": 25,
    "sqlite_busy_retry_sleep_ms": 10,
    "max_query_limit": 1_000,
    "default_session_query_limit": 50,
    "default_run_query_limit": 50,
    "default_event_query_limit": 100,
    "retention_max_completed_age_days": 90,
    "retention_hard_delete_after_days": 30,
    "retention_batch_size": 100,
    "retention_exempt_statuses": ["active", "paused"],
    "retention_exempt_tags": ["pinned"],
    "retention_prune_event_types_first": ["message_streamed", "token_usage_updated"],
    "chars_per_token": 4,
    "default_shell": "/bin/sh",
    # "none" | "bwrap" | "bwrap_no_network": run the bash tool and shell commands under bubblewrap
    # (read-only filesystem, writable working directory; see asm_nb.providers.sandbox)
    "command_sandbox": "none",
    "default_success_exit_codes": [0],
    "excluded_workspace_roots": [".git", "deps", "_build", "node_modules"],
    "default_router_name": "router",
    # Python additions
    "pricing_table": None,
    "claude_default_model": None,
    "policy_cost_rates": {},
    # notebook / store defaults (asm_nb additions)
    "default_provider": "shell",
    "default_model": None,
    "default_store": None,
    "default_renderer": "auto",
    # figures of asm_nb.plots (and the dashboard's charts) also carry a static image/png (kaleido)
    "chart_images": False,
    # saved outputs without ids and wall-clock timings (the committed notebooks, nbval):
    # %%asm --renderer card and the dashboard's static snapshot
    "deterministic_display": False,
    "local_flush_interval_ms": 50,
}

_overrides: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("asm_config_overrides",
                                                                                   default=None)
_global: dict[str, Any] = {}
_global_lock = threading.Lock()


def _check(key: str) -> None:
    if key not in DEFAULTS:
        raise KeyError(f"unknown config key: {key}")


def valid_keys() -> list[str]:
    """Every known configuration key."""
    return list(DEFAULTS)


def default(key: str) -> Any:
    """The built-in default, ignoring overrides and global settings."""
    _check(key)
    return copy.deepcopy(DEFAULTS[key])


def _env_value(key: str) -> Any:
    raw = os.environ.get("ASM_" + key.upper())
    if raw is None:
        return _MISSING
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def get(key: str) -> Any:
    """Context override → global setting → ``ASM_<KEY>`` environment variable → default."""
    _check(key)
    ov = _overrides.get()
    if ov is not None and key in ov:
        return ov[key]
    if key in _global:
        return _global[key]
    env = _env_value(key)
    if env is not _MISSING:
        return env
    value = DEFAULTS[key]
    # hand out copies of list/dict defaults so a caller's mutation cannot change the default
    return copy.deepcopy(value) if isinstance(value, (list, dict)) else value


def put(key: str, value: Any) -> None:
    """Set a context-local override (this thread/task context only)."""
    _check(key)
    ov = dict(_overrides.get() or {})
    ov[key] = value
    _overrides.set(ov)


def delete(key: str) -> None:
    """Remove this context's override of ``key`` (global setting and default are untouched)."""
    _check(key)
    ov = dict(_overrides.get() or {})
    ov.pop(key, None)
    _overrides.set(ov)


@contextlib.contextmanager
def override(**kv: Any) -> Iterator[None]:
    """Context-local overrides for the duration of a ``with`` block.

    >>> with override(redaction_enabled=False):
    ...     get("redaction_enabled")
    False
    """
    for k in kv:
        _check(k)
    token = _overrides.set({**(_overrides.get() or {}), **kv})
    try:
        yield
    finally:
        _overrides.reset(token)


def set_global(key: str, value: Any) -> None:
    """Process-wide setting (the equivalent of application config)."""
    _check(key)
    with _global_lock:
        _global[key] = value


def clear_global(key: str) -> None:
    """Remove the process-wide setting of ``key``."""
    _check(key)
    with _global_lock:
        _global.pop(key, None)


def snapshot() -> dict[str, Any]:
    """Every key with its effective value in this context."""
    return {k: get(k) for k in DEFAULTS}


def _install_into_core() -> None:
    # core may not import this module; it reads its few settings through this hook instead
    from .core import _settings

    _settings.install(get)


_install_into_core()


_ENV_NAMES: dict[str, Any] = {}


def get_many(*keys: str) -> tuple[Any, ...]:
    """``tuple(get(k) for k in keys)``, resolved the same way but cheaper: one context lookup, and
    unset ``ASM_<KEY>`` variables are probed without ``os.environ``'s per-key encoding and
    ``KeyError`` (hot paths, e.g. the persistence pipeline reads five redaction keys per event).
    """
    ov = _overrides.get() or {}
    data = getattr(os.environ, "_data", None)
    out = []
    for key in keys:
        _check(key)
        if key in ov:
            out.append(ov[key])
        elif key in _global:
            out.append(_global[key])
        else:
            if data is not None:
                name = _ENV_NAMES.get(key)
                if name is None:
                    name = _ENV_NAMES[key] = os.environ.encodekey("ASM_" + key.upper())
                if name not in data:
                    out.append(DEFAULTS[key])
                    continue
            env = _env_value(key)
            out.append(DEFAULTS[key] if env is _MISSING else env)
    return tuple(out)
