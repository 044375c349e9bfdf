"""Provider adapters and the registry that finds them by name.

Built-ins register lazily ("module:Class") so naming a provider never imports its SDK.
Third-party packages can add providers through the ``asm_nb.providers`` entry-point group,
each entry point naming a ``ProviderAdapter`` class.
"""

from __future__ import annotations

import importlib
import threading
from typing import TYPE_CHECKING, Any, Callable

from ..core.errors import AsmError

if TYPE_CHECKING:  # the classes load lazily (module __getattr__ below); type checkers see them
    from ..core.events import normalize as normalize_event
    from ..core.events import normalize_batch as normalize_events
    from ._base import ActiveRun, BaseAdapter
    from .acp import AcpAdapter
    from .amp import AmpAdapter
    from .claude import ClaudeAdapter
    from .claude_code import ClaudeCodeAdapter
    from .codex import CodexAdapter
    from .replay import ReplayProvider
    from .shell import ShellAdapter

_BUILTINS: dict[str, str] = {
    "shell": "asm_nb.providers.shell:ShellAdapter",
    "replay": "asm_nb.providers.replay:ReplayProvider",
    "claude": "asm_nb.providers.claude:ClaudeAdapter",
    "claude_code": "asm_nb.providers.claude_code:ClaudeCodeAdapter",
    "codex": "asm_nb.providers.codex:CodexAdapter",
    "amp": "asm_nb.providers.amp:AmpAdapter",
    "acp": "asm_nb.providers.acp:AcpAdapter",
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


_MANIFEST_OPTS: dict[str, dict[str, Any]] = {"codex": {"cwd": "."}, "amp": {"cwd": "."},
                                             "acp": {"command": ["<agent>"]}}


def _run_coroutine(coro: Any) -> Any:
    """Run ``coro`` to completion from sync code, also when this thread runs a loop (Jupyter)."""
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def provider_manifest(name: str) -> Any:
    """The ``core.manifest.Manifest`` of a registered provider: its name, the asm_nb version,
    the adapter class's one-line description and the capabilities the adapter declares.
    ``metadata`` has ``adapter`` (``module:Class``), ``available`` and, when the adapter could not
    be built here (an SDK not installed), ``error``.

    >>> provider_manifest("shell").provider
    'shell'
    """
    import sys

    __version__ = sys.modules["asm_nb"].__version__  # the loaded package (not an import of its root)
    from ..core.manifest import Manifest

    meta: dict[str, Any] = {"available": True}
    caps: list = []
    description = None
    try:
        factory = get_provider_factory(name)
        meta["adapter"] = f"{getattr(factory, '__module__', '?')}:{getattr(factory, '__qualname__', factory)}"
        description = ((getattr(factory, "__doc__", None) or "").strip().splitlines() or [None])[0]
        adapter = factory(**_MANIFEST_OPTS.get(name, {}))
        from ..core.capabilities import Capability

        caps = [Capability.new({"name": c.name, "type": getattr(c.type, "value", c.type), "enabled": c.enabled,
                                "description": c.description})  # typed, whatever the adapter built
                for c in _run_coroutine(adapter.capabilities())]
    except Exception as exc:  # noqa: BLE001 - a provider that cannot load is listed as unavailable
        meta.update(available=False, error=str(getattr(exc, "message", exc)))
    return Manifest.new(name, __version__, description=description, provider=name, capabilities=caps,
                        metadata=meta)


def provider_registry() -> Any:
    """A ``core.registry.Registry`` holding the manifest of every registered provider
    (built-ins and ``asm_nb.providers`` entry points): what ``asm providers`` prints. Query it
    with ``.filter_by_capability("tool")``, ``.get("claude")``, ``.to_dict()``.

    >>> "shell" in [m.name for m in provider_registry().list()]
    True
    """
    from ..core.registry import Registry

    reg = Registry.new()
    for name in available_providers():
        reg = reg.register(provider_manifest(name))
    return reg


# Adapter classes, importable from here (``from asm_nb.providers import ClaudeAdapter``) without
# importing any SDK until the name is used.
_CLASSES = {"ShellAdapter": "shell", "ReplayProvider": "replay", "ClaudeAdapter": "claude",
            "ClaudeCodeAdapter": "claude_code", "CodexAdapter": "codex", "AmpAdapter": "amp", "AcpAdapter": "acp"}
_OTHER = {"BaseAdapter": "asm_nb.providers._base:BaseAdapter", "ActiveRun": "asm_nb.providers._base:ActiveRun",
          "normalize_event": "asm_nb.core.events:normalize", "normalize_events": "asm_nb.core.events:normalize_batch"}


def __getattr__(name: str) -> Any:
    target = _BUILTINS.get(_CLASSES[name]) if name in _CLASSES else _OTHER.get(name)
    if target is None:
        raise AttributeError(f"module 'asm_nb.providers' has no attribute {name!r}")
    mod_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(mod_name), attr)


__all__ = ["register_provider", "available_providers", "get_provider_factory", "create_adapter",
           "provider_manifest", "provider_registry", "BaseAdapter", "ActiveRun", "normalize_event",
           "normalize_events", "ShellAdapter", "ReplayProvider", "ClaudeAdapter", "ClaudeCodeAdapter",
           "CodexAdapter", "AmpAdapter", "AcpAdapter"]
assert set(_CLASSES) <= set(__all__)
