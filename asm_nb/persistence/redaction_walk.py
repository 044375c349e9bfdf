"""The redactor's walk over an event payload: every string of a (nested) mapping or list goes
through the compiled scan; a string under a key that names a secret (``password``, ``token``,
an ``Authorization`` header, ...) is replaced whole; values nested deeper than ``MAX_DEPTH`` are
replaced whole rather than stored unscanned. Unchanged values come back as the same objects.

Split out of ``persistence/redaction.py``, which re-exports ``MAX_DEPTH`` and ``TOO_DEEP``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import Enum
from typing import Any

from .redaction_scan import _Compiled

# Values are walked to any realistic depth (a secret nested 12 levels deep is still found); a value
# nested deeper than this is replaced whole rather than stored unscanned.
MAX_DEPTH = 200
TOO_DEEP = "[REDACTED: nested too deep to scan]"

_INERT = frozenset({int, float, bool, type(None), bytes, bytearray})

# A string stored under a key that names a secret (``{"password": ...}``, an ``env`` dict's
# ``GITHUB_TOKEN``, an ``Authorization`` header) is replaced whole, whatever it looks like.
_SECRET_KEY = re.compile(r"(?i)(?:[a-z0-9]+[_.-])*(?:password|passwd|passphrase|secret|token|api[_-]?key|apikey"
                         r"|access[_-]?key|secret[_-]?key|private[_-]?key|client[_-]?secret|credentials?"
                         r"|authorization|auth|cookie)")
_secret_keys: dict[Any, bool] = {}


def _is_secret_key(k: Any) -> bool:
    hit = _secret_keys.get(k)
    if hit is None:
        hit = type(k) is str and _SECRET_KEY.fullmatch(k) is not None
        if len(_secret_keys) < 4096:
            _secret_keys[k] = hit
    return hit


class _Walker:
    """One walk (docs/event-model.md, redaction). Plain strings are handled inline in the loops: a typical event
    is a handful of short strings, and a method call per value would cost as much as the scan."""

    __slots__ = ("scan", "min_len", "count")

    def __init__(self, compiled: _Compiled) -> None:
        self.scan = compiled.scan
        self.min_len = compiled.min_len
        self.count = 0

    def value(self, v: Any, depth: int) -> Any:
        """Redact one active value that sits at ``depth``; returns ``v`` itself when unchanged."""
        t = type(v)
        if t is str or (isinstance(v, str) and not isinstance(v, Enum)):
            if len(v) < self.min_len:
                return v
            new, n = self.scan(v)
            if n:
                self.count += n
                return new
            return v
        if t in _INERT:
            return v
        if isinstance(v, dict):
            return self.mapping(v, depth)
        if isinstance(v, (list, tuple)):
            if depth > MAX_DEPTH:
                self.count += 1
                return TOO_DEEP
            items = None
            for i, item in enumerate(v):
                new = self.value(item, depth + 1)
                if new is not item and new != item:
                    if items is None:
                        items = list(v)
                    items[i] = new
            if items is None:
                return v
            return tuple(items) if isinstance(v, tuple) else items
        return v

    def mapping(self, m: dict, depth: int) -> dict:
        if depth > MAX_DEPTH:
            self.count += 1
            return TOO_DEEP  # type: ignore[return-value]
        out = None
        min_len = self.min_len
        last_in: Any = None
        last_out: tuple[str, int] = ("", 0)
        for k, v in m.items():
            t = type(v)
            if t is str:
                if v and _is_secret_key(k):
                    new = self.scan.__self__.key_repl  # type: ignore[attr-defined]
                    if v == new:
                        continue
                    self.count += 1
                else:
                    if len(v) < min_len:
                        continue
                    if v is last_in:  # adapters often put the same text under two keys (delta, content)
                        new, n = last_out
                    else:
                        new, n = last_out = self.scan(v)
                        last_in = v
                    if not n:
                        continue
                    self.count += n
            elif t in _INERT:
                continue
            else:
                new = self.value(v, depth + 1)
                if new is v:
                    continue
            if new != v:
                if out is None:
                    out = dict(m)
                out[k] = new
        return m if out is None else out

    def top(self, m: Mapping, allowed: frozenset[str] | None, changed: list[str]) -> Any:
        """Depth 0: ``allowed`` None = every key (deep scan), else only those top-level keys."""
        out, n = _walk_top(self.scan, self.min_len, m, allowed, changed, self)
        self.count += n
        return out


def _walk_top(scan: Any, min_len: int, m: Mapping, allowed: frozenset[str] | None, changed: list[str],
              walker: _Walker | None) -> tuple[Any, int]:
    """``_Walker.top`` as a function: ``(mapping, matches)``. Plain top-level strings (the usual
    payload) need no walker object; one is made for the first nested value when ``walker`` is None.
    Matches counted by ``walker`` itself are not included in the returned number."""
    out = None
    count = 0
    own = None
    last_in: Any = None
    last_out: tuple[str, int] = ("", 0)
    for k, v in m.items():
        if allowed is not None and k not in allowed:
            continue
        t = type(v)
        if t is str:
            if v and _is_secret_key(k):
                new = scan.__self__.key_repl
                if v == new:
                    continue
                count += 1
            else:
                if len(v) < min_len:
                    continue
                if v is last_in:  # adapters often put the same text under two keys (delta, content)
                    new, n = last_out
                else:
                    new, n = last_out = scan(v)
                    last_in = v
                if not n:
                    continue
                count += n
        elif t in _INERT:
            continue
        else:
            if walker is None:
                walker = own = _Walker.__new__(_Walker)
                walker.scan, walker.min_len, walker.count = scan, min_len, 0
            new = walker.value(v, 1)
            if new is v:
                continue
        if new != v:
            if out is None:
                out = dict(m)
            out[k] = new
            if k not in changed:
                changed.append(k)
    if own is not None:
        count += own.count
    return (m if out is None else out), count
