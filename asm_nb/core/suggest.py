"""``did_you_mean``: the closest valid name for an error message (standard library only).

>>> did_you_mean("timout", ["timeout", "model", "cwd"])
" (did you mean 'timeout'?)"
>>> did_you_mean("zzz", ["timeout"])
''
"""

from __future__ import annotations

import difflib
from typing import Iterable

__all__ = ["did_you_mean", "closest"]


def closest(name: object, choices: Iterable[object]) -> str | None:
    """The choice most like ``name`` (ratio >= 0.6, case-insensitive), or None."""
    names = [str(c) for c in choices]
    text = str(name)
    lowered = {n.lower(): n for n in names}
    hit = difflib.get_close_matches(text.lower().replace("-", "_"), list(lowered), n=1, cutoff=0.6)
    return lowered[hit[0]] if hit else None


def did_you_mean(name: object, choices: Iterable[object]) -> str:
    """``" (did you mean 'x'?)"`` for the closest choice, else ``""``."""
    hit = closest(name, choices)
    return f" (did you mean {hit!r}?)" if hit else ""
