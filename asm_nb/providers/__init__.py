"""Provider adapters and the registry that finds them by name.

Built-ins register lazily ("module:Class") so naming a provider never imports its SDK.
Third-party packages can add providers through the ``asm_nb.providers`` entry-point group,
each entry point naming a ``ProviderAdapter`` class.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any, Callable

from ..core.errors import AsmError

_BUILTINS: dict[str, str] = {
    "shell": "asm_nb.providers.shell:ShellAdapter",
    "replay": "asm_nb.providers.replay:ReplayProvider",
    "claude": "asm_nb.providers.claude:ClaudeAdapter",
    "claude_code": "asm_nb.providers.claude_code:ClaudeCodeAdapter",
    "codex": "asm_nb.providers.codex:CodexAdapter",
    "amp": "asm_nb.providers.amp:AmpAdapter",
    "mock": "asm_nb.testing.mock:MockAdapter",
}
_registry: dict[str, Any] = {}
_lock = threading.Lock()
_entry_points_loaded = False


def register_provider(name: str, factory: Callable[..., Any] | str) -> None:
    """Register ``factory`` (an adapter class, a callable returning an adapter, or
    ``"module:Class"``) under ``name``. Re-registering a name replaces it."""
    if not isinstance(name, str) or not name:
        raise AsmError("validation_error", "provider name must be a non-empty string")
    with _lock:
        _registry[name] = factory


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    try:
        from importlib.metadata import entry_points

        for ep in entry_points(group="asm_nb.providers"):
            _registry.setdefault(ep.name, ep.value)
    except Exception:  # a broken third-party plugin must not break built-ins
        pass


def available_providers() -> list[str]:
    """Names of every registered provider (built-in and plugins)."""
    _load_entry_points()
    return sorted(set(_BUILTINS) | set(_registry))


def get_provider_factory(name: str) -> Callable[..., Any]:
    _load_entry_points()
    factory = _registry.get(name, _BUILTINS.get(name))
    if factory is None:
        from ..core.suggest import did_you_mean

        known = available_providers()
        raise AsmError("validation_error",
                       f"Unknown provider {name!r}{did_you_mean(name, known)}. Known providers: {', '.join(known)}")
    if isinstance(factory, str):
        mod_name, _, attr = factory.partition(":")
        try:
            factory = getattr(importlib.import_module(mod_name), attr)
        except ImportError as exc:
            raise AsmError("dependency_not_available",
                           f"Provider {name!r} could not be loaded: {exc}",
                           details={"dependency": getattr(exc, "name", None), "module": mod_name}) from exc
    return factory


def create_adapter(name: str, **options: Any) -> Any:
    """Build the adapter registered as ``name`` with ``options``.

    >>> create_adapter("shell").name
    'shell'
    """
    return get_provider_factory(name)(**options)


__all__ = ["register_provider", "available_providers", "get_provider_factory", "create_adapter"]
