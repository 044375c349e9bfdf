"""The few configuration values ``core`` reads (``event_buffer_size``, ``chars_per_token``,
``error_text_max_bytes``, ``error_text_max_lines``).

``core`` may not import ``asm_nb.config`` (it sits above core), so the dependency points the
other way: ``asm_nb.config`` installs its ``get`` here when it is imported. Until then the
built-in defaults below apply; they equal the config defaults of docs/runtime.md, configuration.
"""

from __future__ import annotations

from typing import Any, Callable

BUILTIN_DEFAULTS: dict[str, Any] = {
    "event_buffer_size": 1_000,
    "chars_per_token": 4,
    "error_text_max_bytes": 16_384,
    "error_text_max_lines": 200,
}

_source: Callable[[str], Any] | None = None


def install(source: Callable[[str], Any] | None) -> None:
    """Use ``source(key)`` (normally ``asm_nb.config.get``) for every later ``setting`` call."""
    global _source
    _source = source


def setting(key: str) -> Any:
    """The effective value of ``key``: the installed source's answer, else the built-in default."""
    if _source is not None:
        try:
            return _source(key)
        except KeyError:
            pass
    return BUILTIN_DEFAULTS[key]
