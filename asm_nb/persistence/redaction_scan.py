"""The compiled redactor: ``_Compiled`` holds a configuration's patterns with their
replacements and gates and scans one string (``scan``: a pattern runs only on text that passes
its gate; after a replacement the gates are re-evaluated, so results are those of running every
pattern in order). The gate check is generated as straight-line code
(``_unrolled_candidates``), each trigger nested under its rarest characters.

Split out of ``persistence/redaction.py`` (which keeps the cache of compiled configurations).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from re import _constants as _C  # type: ignore[attr-defined]
from re import _parser as _P  # type: ignore[attr-defined]
from typing import Any

from .redaction_patterns import _DEFAULT_COMPILED, _GATES, _PRE_BY_PATTERN


def _ascii_lower(s: str) -> str:
    """``s`` with only ASCII letters lower-cased. The gates are ASCII literals of patterns
    compiled with ``re.ASCII``, whose case-insensitive parts match ASCII letters only, so this is
    exactly as strong a gate as ``str.lower`` (which also folds e.g. the Kelvin sign to "k") and
    several times faster on non-ASCII text."""
    if s.isascii():
        return s.lower()
    return s.encode("utf-8", "surrogatepass").lower().decode("utf-8", "surrogatepass")


def _min_width(pat: re.Pattern, tree: Any = None) -> int:
    try:
        return int((tree if tree is not None else _P.parse(pat.pattern, pat.flags)).getwidth()[0])
    except Exception:  # noqa: BLE001 - an unknown width only disables the length shortcut
        return 0


def _compile_entry(entry: Any) -> tuple[str, re.Pattern] | None:
    if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str):
        category, pat = entry
    else:
        category, pat = "custom", entry
    if isinstance(pat, re.Pattern):
        return (category, pat) if isinstance(pat.pattern, str) else None
    if isinstance(pat, str):
        try:
            return category, re.compile(pat, re.ASCII)
        except re.error:
            return None
    return None


def _pattern_list(patterns: Any) -> list[tuple[str, re.Pattern]]:
    replace: Any = None
    if isinstance(patterns, Mapping) and "replace" in patterns:
        replace = patterns["replace"]
    elif isinstance(patterns, tuple) and len(patterns) == 2 and patterns[0] == "replace":
        replace = patterns[1]
    if replace is not None:
        entries = replace if isinstance(replace, (list, tuple)) else []
        return [c for c in map(_compile_entry, entries) if c is not None]
    if isinstance(patterns, list):
        return list(_DEFAULT_COMPILED) + [c for c in map(_compile_entry, patterns) if c is not None]
    return list(_DEFAULT_COMPILED)


_GUARD_CHARS = ("_", "-", ":", "=")


# -- token-run levels -----------------------------------------------------------------------------
# Most secret formats are long tokens: every match of such a rule contains a run of at least
# ``m`` consecutive characters of ``_RUN_CHARS`` (ASCII letters, digits and the punctuation
# tokens are made of). ``_min_run`` derives ``m`` from the compiled pattern itself (no table to keep
# in step), so a text whose longest such run is shorter than ``m`` cannot match the rule and
# its gates need not be checked. One ``translate`` of the text's UTF-8 bytes (every other byte,
# incl. every byte of a non-ASCII character, becomes a space: the patterns are ``re.ASCII``)
# and a few ``in`` tests place the text on a level; each level has its own candidate check
# holding only the rules a text of that level can match.

_RUN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-+/.~=%&?")
_RUN_CODES = frozenset(map(ord, _RUN_CHARS))
_RUN_TABLE = bytes(0x61 if chr(i) in _RUN_CHARS else 0x20 for i in range(256))
_RUN_LEVELS = (12, 16, 20, 24, 32, 40)  # the run lengths a text is tested for


class _Run:
    """What every match of a regex node guarantees: ``full`` (only run characters), ``n`` (the
    shortest match's length), ``pre``/``suf`` (run characters it starts/ends with at least),
    ``best`` (a run of at least this length somewhere in it)."""

    __slots__ = ("full", "n", "pre", "suf", "best")

    def __init__(self, full: bool, n: int, pre: int = 0, suf: int = 0, best: int = 0) -> None:
        if full:
            pre = suf = best = n
        self.full, self.n, self.pre, self.suf, self.best = full, n, pre, suf, best


_EMPTY_RUN = _Run(True, 0)  # a zero-width assertion: joins the runs on either side
_UNKNOWN = _Run(False, 0)  # anything not analysed: guarantees nothing


def _seq_run(items: list[_Run]) -> _Run:
    out = _EMPTY_RUN
    for b in items:
        a = out
        out = _Run(a.full and b.full, a.n + b.n, a.n + b.pre if a.full else a.pre,
                   b.n + a.suf if b.full else b.suf, max(a.best, b.best, a.suf + b.pre))
    return out


def _class_in_run(items: Any) -> bool:
    C = _C
    for op, av in items:
        if op is C.LITERAL:
            if av not in _RUN_CODES:
                return False
        elif op is C.RANGE:
            lo, hi = av
            if hi - lo > 255 or not _RUN_CODES.issuperset(range(lo, hi + 1)):
                return False
        elif op is C.CATEGORY:
            if av not in (C.CATEGORY_DIGIT, C.CATEGORY_WORD):  # ASCII \d, \w (the pattern is re.ASCII)
                return False
        else:  # NEGATE and anything else
            return False
    return True


def _node_run(op: Any, av: Any) -> _Run:
    C = _C
    if op is C.LITERAL:
        return _Run(av in _RUN_CODES, 1)
    if op in (C.NOT_LITERAL, C.ANY):
        return _Run(False, 1)
    if op is C.IN:
        return _Run(_class_in_run(av), 1)
    if op in (C.AT, C.ASSERT, C.ASSERT_NOT):
        return _EMPTY_RUN
    if op is C.SUBPATTERN:
        _group, add, delete, sub = av
        if (add | delete) & ~C.SRE_FLAG_IGNORECASE:  # a local flag other than (?i): not analysed
            return _UNKNOWN
        return _seq_run([_node_run(o, a) for o, a in sub])
    if op is C.ATOMIC_GROUP:
        return _seq_run([_node_run(o, a) for o, a in av])
    if op is C.BRANCH:
        alts = [_seq_run([_node_run(o, a) for o, a in alt]) for alt in av[1]]
        return _Run(all(a.full for a in alts), min(a.n for a in alts), min(a.pre for a in alts),
                    min(a.suf for a in alts), min(a.best for a in alts))
    if op in (C.MAX_REPEAT, C.MIN_REPEAT, C.POSSESSIVE_REPEAT):
        lo, _hi, sub = av
        x = _seq_run([_node_run(o, a) for o, a in sub])
        if x.full:
            return _Run(True, lo * x.n)
        if lo == 0:
            return _UNKNOWN
        return _Run(False, lo * x.n, x.pre, x.suf, max(x.best, x.suf + x.pre if lo >= 2 else 0))
    return _UNKNOWN


def _min_run(pat: re.Pattern, tree: Any = None) -> int:
    """A run of at least this many ``_RUN_CHARS`` that every match of ``pat`` contains (0: none
    guaranteed, or the pattern is not ``re.ASCII`` / not analysable). ``tree``: its parse."""
    if not (pat.flags & re.ASCII) or not isinstance(pat.pattern, str):
        return 0
    try:
        if tree is None:
            tree = _P.parse(pat.pattern, pat.flags)
        return _seq_run([_node_run(op, av) for op, av in tree]).best
    except Exception:  # noqa: BLE001 - an unknown run only disables the level shortcut
        return 0


_shape_cache: dict[tuple[str, int], tuple[int, int]] = {}


def _shape(pat: re.Pattern) -> tuple[int, int]:
    """``(_min_width, _min_run)`` of ``pat`` from one parse, remembered per pattern."""
    key = (pat.pattern, pat.flags)
    hit = _shape_cache.get(key)
    if hit is None:
        try:
            tree = _P.parse(pat.pattern, pat.flags)
        except Exception:  # noqa: BLE001 - unknown: no shortcut
            tree = None
        hit = (_min_width(pat, tree), _min_run(pat, tree)) if tree is not None else (0, 0)
        if len(_shape_cache) < 4096:
            _shape_cache[key] = hit
    return hit


_MEMO_LEN = 40  # strings up to this long have their scan result remembered (per configuration)
_MEMO_MAX = 4096  # entries; the memo is emptied when full


class _Compiled:
    """Patterns with their replacement strings and gates, ready to scan strings.

    Triggers are grouped under guards so ordinary prose costs a few ``in`` checks: a trigger
    that contains ``_``, ``-``, ``:`` or ``=`` is only looked for when that character occurs,
    and one whose patterns all need one of the same ``any_of`` literals only when one occurs.
    """

    __slots__ = ("rules", "groups", "always", "min_len", "key_repl", "_candidates", "runs", "_levels", "_memo")

    def __init__(self, patterns: Any, replacement: Any) -> None:
        categorized = replacement == "categorized"
        plain = replacement if isinstance(replacement, str) else "[REDACTED]"
        rules = []
        runs = []
        for category, pat in _pattern_list(patterns):
            repl = f"[REDACTED:{category}]" if categorized else plain
            gate = _GATES.get((pat.pattern, pat.flags))
            # re.sub would expand backslash escapes in a template; the replacement is literal.
            width, run = _shape(pat)
            rules.append((pat, repl.replace("\\", "\\\\"), gate[1] if gate else (), gate[2] if gate else (),
                          width, _PRE_BY_PATTERN.get((pat.pattern, pat.flags))))
            runs.append(run)
        self.rules = tuple(rules)
        self.runs = tuple(runs)  # per rule: a run of this many _RUN_CHARS is in every match
        self.groups, self.always = self._grouped(-1)
        self.key_repl = "[REDACTED:secret_field]" if categorized else plain
        self.min_len = min((r[4] for r in rules), default=0)
        self._candidates = _unrolled_candidates(self.groups, self.always)
        # (needle, candidate check for a text without that run): ascending; a text with every
        # needle takes ``_candidates``. A level is only kept when it leaves rules out.
        # Each level's check is generated the first time a text needs it.
        levels: list[list] = []
        for n in _RUN_LEVELS:
            mask = sum(1 << i for i, m in enumerate(runs) if m < n)
            if mask != (1 << len(rules)) - 1 and (not levels or mask != levels[-1][2]):
                levels.append([b"a" * n, None, mask])
        self._levels = tuple(levels)
        # short strings recur (tool names, roles, models, statuses): their scan results, by value
        self._memo: dict[str, tuple[str, int]] = {}

    def _grouped(self, mask: int) -> tuple[tuple, int]:
        """``(groups, always)`` of the rules in ``mask`` (bit i = rule i)."""
        trigger_bits: dict[str, int] = {}
        trigger_any: dict[str, set[tuple[str, ...]]] = {}
        always = 0
        for i, rule in enumerate(self.rules):
            if not mask >> i & 1:
                continue
            pat = rule[0]
            gate = _GATES.get((pat.pattern, pat.flags))
            if gate is None or not gate[0]:  # no literal: run on every string long enough
                always |= 1 << i
            else:
                for kw in gate[0]:
                    trigger_bits[kw] = trigger_bits.get(kw, 0) | (1 << i)
                    trigger_any.setdefault(kw, set()).add(gate[2])
        groups: dict[tuple[str, ...], list[tuple[str, int]]] = {}
        for kw, bits in trigger_bits.items():
            own = next((c for c in _GUARD_CHARS if c in kw), None)
            anys = trigger_any[kw]
            if own in (":", "="):
                guard: tuple[str, ...] = (":", "=")
            elif own is not None:
                guard = (own,)
            elif len(anys) == 1 and () not in anys:
                guard = next(iter(anys))
            else:
                guard = ()
            groups.setdefault(guard, []).append((kw, bits))
        return tuple((g, tuple(items)) for g, items in groups.items()), always

    def _candidates_loop(self, low: str) -> int:
        """The rule bits whose gates ``low`` passes (the reference form of ``_candidates``)."""
        bits = self.always
        for guard, triggers in self.groups:
            if guard:
                for g in guard:
                    if g in low:
                        break
                else:
                    continue
            for kw, mask in triggers:
                if kw in low:
                    bits |= mask
        return bits

    def _gate(self, low: str, raw: bytes) -> int:
        """The rule bits whose gates a text passes (``low``: it lower-cased by ``_ascii_lower``,
        ``raw``: its UTF-8 bytes), leaving out the rules that need a longer run of
        ``_RUN_CHARS`` than it has (``_levels``)."""
        levels = self._levels
        if levels:
            runs = raw.translate(_RUN_TABLE)
            for level in levels:
                if level[0] not in runs:
                    return (level[1] or self._level_check(level))(low)
        return self._candidates(low)

    def _level_check(self, level: list) -> Any:
        """The candidate check of a level (``[needle, check or None, rule mask]``), made once."""
        fn = level[1]
        if fn is None:
            fn = level[1] = _unrolled_candidates(*self._grouped(level[2]))
        return fn

    def scan(self, s: str) -> tuple[str, int]:
        """``(new string, number of matches)``; ``s`` itself when nothing matched."""
        if len(s) < self.min_len or not self.rules:
            return s, 0
        if len(s) <= _MEMO_LEN:
            hit = self._memo.get(s)
            if hit is None:
                hit = self._scan(s)
                memo = self._memo
                if len(memo) >= _MEMO_MAX:
                    memo.clear()
                memo[s] = hit
            return hit if hit[1] else (s, 0)  # unchanged: the caller's own object
        return self._scan(s)

    def _scan(self, s: str) -> tuple[str, int]:
        raw = s.encode("utf-8", "surrogatepass")  # for the run levels and the prechecks
        low = s.lower() if s.isascii() else raw.lower().decode("utf-8", "surrogatepass")  # = _ascii_lower(s)
        bits = self._gate(low, raw)
        if not bits:
            return s, 0
        count = 0
        n_chars = len(s)
        rules = self.rules
        i = -1
        while True:  # the set bits of ``bits`` above ``i``, in order (62 rules, a few candidates)
            rest = bits >> (i + 1)
            if not rest:
                break
            i += (rest & -rest).bit_length()
            pat, repl, all_of, any_of, min_width, pre = rules[i]
            if n_chars < min_width:
                continue
            if pre is not None:
                if pre[1] not in raw.translate(pre[0]):
                    continue
            gated_out = False
            for k in all_of:
                if k not in low:
                    gated_out = True
                    break
            if gated_out:
                continue
            if any_of:
                for k in any_of:
                    if k in low:
                        break
                else:
                    continue
            new, n = pat.subn(repl, s)
            if n:
                count += n
                s = new
                # a replacement can remove or (with a custom replacement) add gate literals
                raw = s.encode("utf-8", "surrogatepass")
                low = _ascii_lower(s)
                bits = self._gate(low, raw)
                n_chars = len(s)
        return s, count


# Characters from common to rare in prompts, prose and code (an unknown character counts as
# rarest). Only speed depends on this order, never a result.
_CHAR_RANK = {c: i for i, c in enumerate(" etaoinsrhldcum.fpgwyb/_-vk01:=23456789xjqz~+")}


def _rarest_char(kw: str, known: tuple[str, ...]) -> str:
    """The character of ``kw`` least likely to occur in text (not one of ``known``, which the
    group guard already found)."""
    chars = [c for c in kw if c not in known] or list(kw)
    return max(chars, key=lambda c: _CHAR_RANK.get(c, len(_CHAR_RANK)))


def _unrolled_candidates(groups: tuple, always: int) -> Any:
    """``_candidates_loop`` as straight-line code (one ``in`` test per line, no loop or tuple
    unpacking: about twice as fast on the every-string path). Literals are embedded with
    ``repr``; the masks are ints.

    Within a group, triggers are nested under their rarest character, and each is searched only
    after its next two rarest characters are found: a trigger occurs only if each of its
    characters does, and a one-character ``in`` is a ``memchr`` (~0.04 µs on 1 KB) where a
    failing multi-character search costs 0.5-1.5 µs, so ordinary text skips most triggers for
    the price of a few character checks (the result is the loop's, tested)."""
    lines = ["def candidates(low):", f"    bits = {always!r}"]
    for guard, triggers in groups:
        indent = "    "
        if guard:
            lines.append("    if " + " or ".join(f"{g!r} in low" for g in guard) + ":")
            indent = "        "
        by_char: dict[str, list[tuple[str, int]]] = {}
        for kw, mask in triggers:
            by_char.setdefault(_rarest_char(kw, guard), []).append((kw, mask))
        for ch, items in by_char.items():
            lines.append(f"{indent}if {ch!r} in low:")
            for kw, mask in items:
                others = sorted({c for c in kw if c != ch and c not in guard},
                                key=lambda c: -_CHAR_RANK.get(c, len(_CHAR_RANK)))[:2]
                cond = " and ".join([f"{c!r} in low" for c in others] + [f"{kw!r} in low"])
                lines.append(f"{indent}    if {cond}:")
                lines.append(f"{indent}        bits |= {mask!r}")
        if guard and not triggers:  # pragma: no cover - groups always hold triggers
            lines.append(f"{indent}pass")
    lines.append("    return bits")
    namespace: dict[str, Any] = {}
    exec(compile("\n".join(lines), "<redaction candidates>", "exec"), namespace)  # noqa: S102
    return namespace["candidates"]
