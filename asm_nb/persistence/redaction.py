"""EventRedactor: replaces secrets (API keys, tokens, passwords, connection strings…) in event
payloads before they are stored or displayed.

See docs/event-model.md, redaction. ``redact(event)`` returns a ``RedactionResult``; ``redact_map(d)`` redacts
a plain dict (the notebook display path, which would otherwise bypass the redactor). The 86 default patterns
(checked rule by rule against gitleaks' config/gitleaks.toml, trufflehog's detectors and detect-secrets'
plugins: docs/event-model.md lists which rule each follows) apply in order, each to the output of the previous
one; the whole match is replaced.

**Deviation:** redaction is on by default in asm_nb (config ``redaction_enabled = True``);
the reference defaults to off.

Speed (the pipeline target is ≥ 50 000 events/s): a string shorter than the shortest possible
match is skipped, and every default pattern is gated by literals that any of its matches must
contain (checked with ``in`` on the lower-cased string: well under a microsecond for a typical
delta). A pattern runs only on text that passes its gate; after a replacement the gates are
re-evaluated on the new text, so counts and results are exactly those of running every pattern
in order. (The spec suggests one combined alternation as the prefilter; with 22 alternatives
and case-insensitive branches Python's ``re`` needs ~13 µs for 80 characters, the literal
gates ~0.6 µs.) Each trigger is searched only after its rarest characters are found (one-character
``in`` is a ``memchr``); text is lower-cased ASCII-only for the gates (the gated patterns are
``re.ASCII``); the two rules without a narrowing literal (the bare AWS secret key, the Discord
token) first pass a character-run precheck that every match needs (``_PRECHECKS``). Custom
patterns are never gated by literals. Before the gates, a text is placed on a token-run level:
every match of a rule holds a run of at least ``m`` token characters (letters, digits,
``_-+/.~=%&?``; ``m`` derived from the compiled pattern, ``redaction_scan._min_run``), so a
text whose longest run is shorter is only checked against the rules it can match (prose and
paths skip the ~75 long-token formats). Results of strings up to 40 characters are remembered
per configuration (tool names, roles, models recur on every event). Compiled configurations
are cached, keyed on their values.

The rule table (patterns, gates, prechecks) is in ``redaction_patterns.py``, the compiled scan in
``redaction_scan.py``, the payload walk in ``redaction_walk.py``; this module keeps the
configuration, the cache of compiled configurations and the API, and re-exports their names.

Imports ``core``, ``config`` and ``telemetry``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import config as _config
from .. import telemetry
from ..core.events import Event, EventType
# the rules, the compiled scan and the payload walk live in redaction_patterns / redaction_scan /
# redaction_walk; the names other modules and tests use are re-exported here
from .redaction_patterns import _DEFAULT_COMPILED as _DEFAULT_COMPILED
from .redaction_patterns import _GATES as _GATES
from .redaction_patterns import _PRECHECKS as _PRECHECKS
from .redaction_patterns import DEFAULT_PATTERN_SPECS as DEFAULT_PATTERN_SPECS
from .redaction_patterns import default_patterns as default_patterns
from .redaction_scan import _ascii_lower as _ascii_lower
from .redaction_scan import _Compiled
from .redaction_walk import MAX_DEPTH as MAX_DEPTH
from .redaction_walk import TOO_DEEP as TOO_DEEP
from .redaction_walk import _is_secret_key, _Walker, _walk_top

__all__ = [
    "DEFAULT_PATTERN_SPECS", "SKIP_TYPES", "TARGETED_FIELDS", "MAX_DEPTH", "TOO_DEEP", "RedactionConfig",
    "RedactionResult", "EVENT_REDACTED", "default_patterns", "resolve_config", "redact", "redact_map",
    "redact_payload", "emit_redacted", "scan_text",
]

_T = EventType
# Deviation from the reference's 14-type skip list: ``run_started`` is scanned, because the shell
# and CLI adapters put the command line there (``echo $TOKEN``-style secrets must not be stored).
SKIP_TYPES: frozenset[EventType] = frozenset({
    _T.SESSION_CREATED, _T.SESSION_STARTED, _T.SESSION_PAUSED, _T.SESSION_RESUMED, _T.SESSION_COMPLETED,
    _T.SESSION_CANCELLED, _T.RUN_CANCELLED, _T.RUN_TIMEOUT, _T.TOKEN_USAGE_UPDATED,
    _T.TURN_COMPLETED, _T.WORKSPACE_SNAPSHOT_TAKEN, _T.WORKSPACE_DIFF_COMPUTED, _T.ERROR_RECOVERED,
})

TARGETED_FIELDS: dict[EventType, frozenset[str]] = {
    _T.RUN_STARTED: frozenset({"command", "prompt"}),
    _T.MESSAGE_SENT: frozenset({"content"}),
    _T.MESSAGE_RECEIVED: frozenset({"content"}),
    _T.MESSAGE_STREAMED: frozenset({"content", "delta"}),
    _T.TOOL_CALL_STARTED: frozenset({"tool_input"}),
    _T.TOOL_CALL_COMPLETED: frozenset({"tool_input", "tool_output"}),
    _T.TOOL_CALL_FAILED: frozenset({"tool_input", "tool_output"}),
    _T.ERROR_OCCURRED: frozenset({"error_message", "provider_error"}),
    _T.RUN_FAILED: frozenset({"error_message", "provider_error"}),
    _T.SESSION_FAILED: frozenset({"error_message", "provider_error"}),
    _T.POLICY_VIOLATION: frozenset({"details"}),
}
_NOTHING: frozenset[str] = frozenset()


# ---------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class RedactionConfig:
    """The five redactor settings (docs/event-model.md, redaction). Field defaults are the redactor defaults."""

    enabled: bool = False
    patterns: Any = "default"
    replacement: str = "[REDACTED]"
    deep_scan: bool = True
    scan_metadata: bool = False

    @classmethod
    def from_mapping(cls, d: Mapping[str, Any], *, enabled_default: bool = False) -> "RedactionConfig":
        """Keys ``enabled, patterns, replacement, deep_scan, scan_metadata``; omitted keys take the
        redactor defaults (not the global config — reference behaviour)."""
        return cls(
            enabled=bool(d.get("enabled", enabled_default)),
            patterns=d.get("patterns", "default"),
            replacement=d.get("replacement", "[REDACTED]"),
            deep_scan=bool(d.get("deep_scan", True)),
            scan_metadata=bool(d.get("scan_metadata", False)),
        )

    @classmethod
    def from_config(cls) -> "RedactionConfig":
        """The ``redaction_*`` keys of ``asm_nb.config`` in the current context."""
        values = _config_values()
        if values is _DEFAULT_VALUES:
            return _DEFAULT_CFG
        if not values[0]:
            return _DISABLED
        try:
            cfg = _resolved.get(values)
        except TypeError:  # unhashable pattern list: build it every time
            return cls(True, values[1], values[2], bool(values[3]), bool(values[4]))
        if cfg is None:
            cfg = cls(True, values[1], values[2], bool(values[3]), bool(values[4]))
            if len(_resolved) >= _CACHE_MAX:
                _resolved.clear()
            _resolved[values] = cfg
        return cfg


_DISABLED = RedactionConfig(enabled=False)
_CONFIG_KEYS = ("redaction_enabled", "redaction_patterns", "redaction_replacement", "redaction_deep_scan",
                "redaction_scan_metadata")
_resolved: dict[tuple, RedactionConfig] = {}  # config values -> config (saves re-building it per event)
_CACHE_MAX = 128


def _config_probe() -> Any:
    """A function returning ``_DEFAULT_VALUES`` when no ``redaction_*`` key is set anywhere (no
    context override, global setting or ``ASM_REDACTION_*`` variable), else
    ``config.get_many`` of the five keys.

    The pipeline reads the configuration per event; this answers the common case with a few
    ``in`` checks instead of resolving each key (a fifth of the cost). It relies on how
    ``asm_nb.config`` keeps its settings (a context variable holding a dict that is replaced,
    never mutated, on change; a ``_global`` dict; ``os.environ``); if that is not what it finds,
    it always resolves through ``get_many``.
    """
    import os

    get_many = _config.get_many
    overrides = getattr(_config, "_overrides", None)
    settings = getattr(_config, "_global", None)
    encode = getattr(os.environ, "encodekey", None)
    if overrides is None or not (hasattr(overrides, "get") and type(settings) is dict and callable(encode)):
        return lambda: get_many(*_CONFIG_KEYS)  # pragma: no cover
    ov_get = overrides.get
    k0, k1, k2, k3, k4 = _CONFIG_KEYS
    e0, e1, e2, e3, e4 = (encode("ASM_" + k.upper()) for k in _CONFIG_KEYS)

    def values() -> tuple:
        ov = ov_get()
        env = getattr(os.environ, "_data", None)  # looked up each time: os.environ may be replaced
        if (ov and (k0 in ov or k1 in ov or k2 in ov or k3 in ov or k4 in ov)) \
                or (settings and (k0 in settings or k1 in settings or k2 in settings or k3 in settings
                                  or k4 in settings)) \
                or type(env) is not dict or e0 in env or e1 in env or e2 in env or e3 in env or e4 in env:
            return get_many(*_CONFIG_KEYS)
        return _DEFAULT_VALUES

    return values


_DEFAULT_VALUES: tuple = tuple(_config.DEFAULTS[k] for k in _CONFIG_KEYS)
_DEFAULT_CFG = (RedactionConfig(True, _DEFAULT_VALUES[1], _DEFAULT_VALUES[2], bool(_DEFAULT_VALUES[3]),
                                bool(_DEFAULT_VALUES[4])) if _DEFAULT_VALUES[0] else _DISABLED)
_config_values = _config_probe()


def resolve_config(cfg: Any = None, *, enabled_default: bool = False) -> RedactionConfig:
    """``None`` → the global config; a dict → as given (``enabled`` defaults to ``enabled_default``:
    False for direct calls, True for a pipeline context override); a ``RedactionConfig`` as is."""
    if cfg is None:
        return RedactionConfig.from_config()
    if isinstance(cfg, RedactionConfig):
        return cfg
    if isinstance(cfg, Mapping):
        return RedactionConfig.from_mapping(cfg, enabled_default=enabled_default)
    raise TypeError(f"redaction config must be a dict, RedactionConfig or None, got: {cfg!r}")


# ---------------------------------------------------------------------------------------------
# Compiled configurations (the scan itself is in redaction_scan.py)


_cache: dict[Any, _Compiled] = {}
_cache_lock = threading.Lock()


def _freeze(value: Any) -> Any:
    if type(value) is str:
        return value
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_freeze(v) for v in value))
    if isinstance(value, Mapping):
        return ("map", tuple(sorted((str(k), _freeze(v)) for k, v in value.items())))
    hash(value)
    return value


def _compiled(cfg: RedactionConfig) -> _Compiled:
    global _default_compiled
    if cfg is _DEFAULT_CFG:
        c = _default_compiled
        if c is not None:
            return c
    patterns, replacement = cfg.patterns, cfg.replacement
    if type(patterns) is str and type(replacement) is str:  # the common case: no freezing needed
        c = _cache.get((patterns, replacement))
        if c is not None:
            return c
    try:
        key = (_freeze(patterns), replacement)
    except TypeError:  # unhashable pattern entries: compile without caching
        return _Compiled(cfg.patterns, cfg.replacement)
    c = _cache.get(key)
    if c is None:
        c = _Compiled(cfg.patterns, cfg.replacement)
        with _cache_lock:
            if len(_cache) >= _CACHE_MAX:
                _cache.clear()
            _cache[key] = c
    if cfg is _DEFAULT_CFG:
        _default_compiled = c
    return c


_default_compiled: _Compiled | None = None  # the compiled form of ``_DEFAULT_CFG``, once used


# ---------------------------------------------------------------------------------------------
# API


@dataclass(frozen=True)
class RedactionResult:
    """``event`` (a copy when anything changed), ``redaction_count`` (matches in data + metadata)
    and ``fields_redacted`` (changed top-level keys of data, then metadata, first-change order)."""

    event: Event
    redaction_count: int = 0
    fields_redacted: list[str] = field(default_factory=list)


def redact_payload(etype: EventType, data: Any, metadata: Any,
                   cfg: RedactionConfig) -> tuple[Any, Any, int, list[str]]:
    """Redact an event's ``data`` and ``metadata`` for ``etype`` under an enabled ``cfg``:
    ``(data, metadata, count, fields_redacted)``; unchanged inputs come back as the same objects."""
    if not cfg.enabled or etype in SKIP_TYPES:
        return data, metadata, 0, []
    allowed = None if cfg.deep_scan else TARGETED_FIELDS.get(etype, _NOTHING)
    compiled = _compiled(cfg)
    changed: list[str] = []
    count = 0
    text = data.get("delta") if type(data) is dict and len(data) == 2 else None
    if type(text) is str and data.get("content") is text and _TEXT_PAIR_PLAIN \
            and (allowed is None or _TEXT_PAIR <= allowed):
        # a streamed text's payload, one string under "content" and "delta" (every delta): what
        # ``_walk_top`` does with it (one scan, the matches counted per key, both keys changed in
        # the payload's order), without the walk
        if len(text) >= compiled.min_len:
            new, n = compiled.scan(text)
            if n:
                count = n + n
                if new != text:
                    data = dict(data)
                    changed = list(data)
                    data["content"] = data["delta"] = new
    elif (type(data) is dict or isinstance(data, Mapping)) and (allowed is None or allowed):
        data, count = _walk_top(compiled.scan, compiled.min_len, data, allowed, changed, None)
    if cfg.scan_metadata and (type(metadata) is dict or isinstance(metadata, Mapping)):
        metadata, n = _walk_top(compiled.scan, compiled.min_len, metadata, None, changed, None)
        count += n
    return data, metadata, count, changed


_TEXT_PAIR = frozenset({"content", "delta"})
# the fast path of ``redact_payload`` holds only while neither key names a secret (replaced whole)
_TEXT_PAIR_PLAIN = not any(_is_secret_key(k) for k in _TEXT_PAIR)

EVENT_REDACTED = telemetry.TELEMETRY_PREFIX + ("persistence", "event_redacted")


def emit_redacted(session_id: Any, run_id: Any, etype: EventType, count: int, fields: list[str]) -> None:
    """Telemetry ``persistence.event_redacted`` ``{redaction_count}`` / ``{session_id, run_id,
    type, fields_redacted}``; nothing when ``count`` is 0 or telemetry is off."""
    if count and telemetry.has_handlers(EVENT_REDACTED) and telemetry.enabled():
        telemetry.execute(EVENT_REDACTED, {"redaction_count": count},
                          {"session_id": session_id, "run_id": run_id, "type": etype, "fields_redacted": fields})


def redact(event: Event, config: Any = None) -> RedactionResult:
    """Redact one event. ``config``: None → the global config (``redaction_*`` keys); a dict →
    used as given with ``enabled`` defaulting to **False** (reference: an empty config disables).

    >>> from asm_nb.core.events import Event
    >>> ev = Event.new("message_received", "ses_1", data={"content": "password=hunter2"})
    >>> r = redact(ev, {"enabled": True})
    >>> r.event.data["content"], r.redaction_count, r.fields_redacted
    ('[REDACTED]', 1, ['content'])
    """
    cfg = resolve_config(config, enabled_default=False)
    data, metadata, count, changed = redact_payload(event.type, event.data, event.metadata, cfg)
    emit_redacted(event.session_id, event.run_id, event.type, count, changed)
    if data is event.data and metadata is event.metadata:
        return RedactionResult(event, count, changed)
    return RedactionResult(event.replace(data=data, metadata=metadata), count, changed)


def redact_map(d: Any, config: Any = None) -> Any:
    """Redact every string in a plain mapping (deep, all keys); returns the mapping (a copy when
    anything changed). Disabled → ``d`` unchanged. Used by display paths before showing events.

    >>> redact_map({"headers": {"Authorization": "Bearer " + "a" * 24}}, {"enabled": True})
    {'headers': {'Authorization': '[REDACTED]'}}
    """
    cfg = resolve_config(config, enabled_default=False)
    if not cfg.enabled or not isinstance(d, Mapping):
        return d
    return _Walker(_compiled(cfg)).top(d, None, [])


def scan_text(text: str, config: Any = None) -> tuple[str, int]:
    """Redact one string: ``(new text, number of matches)`` (disabled → unchanged, 0)."""
    cfg = resolve_config(config, enabled_default=False)
    if not cfg.enabled or not isinstance(text, str):
        return text, 0
    return _compiled(cfg).scan(text)
