"""``TokenUsage``: the one place token counts are named, cleaned and added.

Every provider reports usage in its own shape (Anthropic splits cache reads and writes out of
``input_tokens``; Codex and Amp include them); every consumer (the manager's running total,
cost, policy limits, frames, the run view) wants the same four counters. They all go through
this module: ``TokenUsage.of(mapping)`` cleans (non-negative ints, bools and junk → 0),
``a + b`` adds, ``new.since(old)`` gives the increment between two cumulative snapshots, and
``to_dict()`` is the stored form. Standard library only.

>>> TokenUsage.of({"input_tokens": 10, "output_tokens": "x"}) + TokenUsage(output_tokens=5)
TokenUsage(input_tokens=10, output_tokens=5, cache_read_tokens=0, cache_creation_tokens=0, reasoning_output_tokens=None)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any

__all__ = ["TokenUsage", "TOKEN_KEYS", "INPUT_TOKENS", "OUTPUT_TOKENS", "CACHE_READ_TOKENS",
           "CACHE_CREATION_TOKENS", "CACHE_CREATION_1H_TOKENS", "REASONING_OUTPUT_TOKENS", "TOTAL_TOKENS",
           "token_count", "empty_usage", "cache_creation_1h"]

INPUT_TOKENS = "input_tokens"
OUTPUT_TOKENS = "output_tokens"
CACHE_READ_TOKENS = "cache_read_tokens"
CACHE_CREATION_TOKENS = "cache_creation_tokens"
#: The part of ``cache_creation_tokens`` written with a one-hour lifetime (Anthropic bills it at
#: its own rate, 2x input against 1.25x for five-minute writes); carried beside the four counters
#: when a source reports it.
CACHE_CREATION_1H_TOKENS = "cache_creation_1h_tokens"
REASONING_OUTPUT_TOKENS = "reasoning_output_tokens"
TOTAL_TOKENS = "total_tokens"

#: The four counters every run carries, in display order.
TOKEN_KEYS: tuple[str, str, str, str] = (INPUT_TOKENS, OUTPUT_TOKENS, CACHE_READ_TOKENS, CACHE_CREATION_TOKENS)


def token_count(value: Any) -> int:
    """A clean count: non-negative ints as they are, finite non-negative floats truncated;
    anything else (bools, None, strings, negatives, NaN, junk) is 0."""
    if type(value) is int:  # the common case first (a bool is not of type int)
        return value if value >= 0 else 0
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value if value >= 0 else 0
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value >= 0 else 0
    return 0


def _get(raw: Any, key: str) -> Any:
    if type(raw) is dict or isinstance(raw, Mapping):  # (a plain dict skips the ABC check)
        return raw.get(key)
    return getattr(raw, key, None)


@dataclass(frozen=True)
class TokenUsage:
    """Token counts of a run (or of one step of it). ``input_tokens`` excludes cache reads and
    writes, which have their own counters (they are priced differently).
    ``reasoning_output_tokens`` is kept when a provider reports it (Codex), else None."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_output_tokens: int | None = None

    # -- building -------------------------------------------------------------------------------
    @classmethod
    def of(cls, data: Any) -> "TokenUsage":
        """From a normalized mapping (or another ``TokenUsage``, or None): counts cleaned with
        :func:`token_count`, unknown keys ignored."""
        if isinstance(data, TokenUsage):
            return data
        if data is None:
            return cls()
        reasoning = _get(data, REASONING_OUTPUT_TOKENS)
        return cls(*(token_count(_get(data, k)) for k in TOKEN_KEYS),
                   reasoning_output_tokens=None if reasoning is None else token_count(reasoning))

    @classmethod
    def from_anthropic(cls, raw: Any) -> "TokenUsage":
        """Anthropic ``usage`` (API and Claude Code): ``input_tokens`` already excludes the cache."""
        return cls(token_count(_get(raw, "input_tokens")), token_count(_get(raw, "output_tokens")),
                   token_count(_get(raw, "cache_read_input_tokens")),
                   token_count(_get(raw, "cache_creation_input_tokens")))

    @classmethod
    def from_inclusive_anthropic(cls, raw: Any) -> "TokenUsage":
        """Anthropic-named usage whose ``input_tokens`` *includes* cache reads and writes (Amp)."""
        u = cls.from_anthropic(raw)
        return cls(max(u.input_tokens - u.cache_read_tokens - u.cache_creation_tokens, 0), u.output_tokens,
                   u.cache_read_tokens, u.cache_creation_tokens)

    @classmethod
    def from_openai(cls, raw: Any) -> "TokenUsage":
        """Codex / OpenAI usage: ``input_tokens`` includes ``cached_input_tokens``; reasoning
        tokens are kept apart when reported."""
        cached = token_count(_get(raw, "cached_input_tokens"))
        reasoning = _get(raw, "reasoning_output_tokens")
        return cls(max(token_count(_get(raw, "input_tokens")) - cached, 0), token_count(_get(raw, "output_tokens")),
                   cached, token_count(_get(raw, "cache_write_input_tokens")),
                   None if reasoning is None else token_count(reasoning))

    # -- arithmetic -----------------------------------------------------------------------------
    def __add__(self, other: Any) -> "TokenUsage":
        o = TokenUsage.of(other)
        reasoning = None
        if self.reasoning_output_tokens is not None or o.reasoning_output_tokens is not None:
            reasoning = (self.reasoning_output_tokens or 0) + (o.reasoning_output_tokens or 0)
        return TokenUsage(self.input_tokens + o.input_tokens, self.output_tokens + o.output_tokens,
                          self.cache_read_tokens + o.cache_read_tokens,
                          self.cache_creation_tokens + o.cache_creation_tokens, reasoning)

    __radd__ = __add__

    def since(self, older: Any) -> "TokenUsage":
        """The increment from ``older`` to this cumulative snapshot (each counter at least 0)."""
        o = TokenUsage.of(older)
        reasoning = None
        if self.reasoning_output_tokens is not None:
            reasoning = max(self.reasoning_output_tokens - (o.reasoning_output_tokens or 0), 0)
        return TokenUsage(*(max(getattr(self, k) - getattr(o, k), 0) for k in TOKEN_KEYS),
                          reasoning_output_tokens=reasoning)

    def at_least(self, other: Any) -> "TokenUsage":
        """Counter-wise maximum: a final total that is never below what the events said."""
        o = TokenUsage.of(other)
        reasoning = self.reasoning_output_tokens
        if o.reasoning_output_tokens is not None:
            reasoning = max(reasoning or 0, o.reasoning_output_tokens)
        return TokenUsage(*(max(getattr(self, k), getattr(o, k)) for k in TOKEN_KEYS),
                          reasoning_output_tokens=reasoning)

    # -- reading --------------------------------------------------------------------------------
    @property
    def total_tokens(self) -> int:
        """Input plus output tokens (cache tokens are counted apart, as providers bill them)."""
        return self.input_tokens + self.output_tokens

    def __bool__(self) -> bool:
        # every field, spelled out: ``dataclasses.fields`` per call cost the history import 3%
        return bool(self.input_tokens or self.output_tokens or self.cache_read_tokens
                    or self.cache_creation_tokens or self.reasoning_output_tokens)

    def to_dict(self, *, total: bool = False) -> dict[str, int]:
        """The stored form: the four counters, ``reasoning_output_tokens`` when reported, and
        ``total_tokens`` when ``total``."""
        d = {k: getattr(self, k) for k in TOKEN_KEYS}
        if self.reasoning_output_tokens is not None:
            d[REASONING_OUTPUT_TOKENS] = self.reasoning_output_tokens
        if total:
            d[TOTAL_TOKENS] = self.total_tokens
        return d


def empty_usage() -> dict[str, int]:
    """The four counters at zero (the stored form of ``TokenUsage()``)."""
    return TokenUsage().to_dict()


def cache_creation_1h(raw: Any) -> int:
    """The one-hour part of an Anthropic ``usage``'s cache writes
    (``cache_creation.ephemeral_1h_input_tokens``), 0 when it is not reported; never more than
    ``cache_creation_input_tokens`` when that is given."""
    split = _get(raw, "cache_creation")
    n = token_count(_get(split, "ephemeral_1h_input_tokens")) if split is not None else 0
    total = _get(raw, "cache_creation_input_tokens")
    return min(n, token_count(total)) if total is not None else n
