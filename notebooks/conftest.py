"""nbval in this folder: the sanitize rules (sanitize.cfg) also reach the strings inside JSON
outputs (the run card's ``application/vnd.asm.run+json``, the dashboard snapshot), not only
text outputs as nbval does by itself."""

from __future__ import annotations

from typing import Any

try:
    from nbval.plugin import IPyNbCell
except ImportError:  # nbval not installed: nothing to adjust
    IPyNbCell = None

if IPyNbCell is not None and not getattr(IPyNbCell.sanitize, "_asm_nested", False):
    _text_sanitize = IPyNbCell.sanitize

    def _sanitize(self: Any, s: Any) -> Any:
        if isinstance(s, dict):
            return {k: _sanitize(self, v) for k, v in s.items()}
        if isinstance(s, list):
            return [_sanitize(self, v) for v in s]
        return _text_sanitize(self, s)

    _sanitize._asm_nested = True  # type: ignore[attr-defined]
    IPyNbCell.sanitize = _sanitize
