"""What every part of ``%%asm`` / ``%asm`` shares: ``UsageError`` (a one-line usage error; a
subclass of IPython's own ``UsageError``), the kernel defaults set with ``%asm config`` / ``%asm
store``, ``interpolate`` for the cell body, the renderer names and the widget test.
"""

from __future__ import annotations

import string
from typing import Any

from IPython.core.error import UsageError as _IPythonUsageError

_KERNEL_DEFAULTS: dict[str, Any] = {}
RENDERERS = ("auto", "widget", "card", "studio", "compact", "verbose", "none")

class UsageError(_IPythonUsageError):
    """A one-line usage error shown without a traceback (IPython's ``UsageError``, so a caller that
    catches IPython's sees it too)."""


def interpolate(text: str, namespace: dict[str, Any]) -> str:
    """Replace ``{expr}`` with values from ``namespace``; ``{{``/``}}`` are literal braces."""
    class _NS(dict):
        def __missing__(self, key: str) -> Any:
            raise UsageError(f"{{{key}}} in the cell: name {key!r} is not defined in the notebook "
                             "(write {{ and }} for literal braces)")

    try:
        return string.Formatter().vformat(text, (), _NS(namespace))
    except UsageError:
        raise
    except (ValueError, IndexError, AttributeError, KeyError) as exc:
        raise UsageError(f"cannot interpolate the cell: {exc} (write {{{{ and }}}} for literal braces)") from None


def _default(key: str, fallback: Any = None) -> Any:
    if key in _KERNEL_DEFAULTS:
        return _KERNEL_DEFAULTS[key]
    return fallback


def _want_widget(renderer: str) -> bool:
    if renderer == "widget":
        return True
    if renderer != "auto":
        return False
    try:
        from IPython.core.getipython import get_ipython

        ip = get_ipython()
        if ip is None or type(ip).__name__ != "ZMQInteractiveShell":
            return False
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def _one_line(text: str) -> str:
    """An error line as shown: redacted, newlines folded."""
    from ..persistence.redaction import scan_text

    return scan_text(text, None)[0].replace("\n", " ")


def _guard() -> Any:
    from . import guard  # policy stack, kernel budget; registers %asm budget / policy / health

    return guard

