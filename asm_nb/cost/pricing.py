"""Models registry: default models, the built-in pricing table, user overrides and aliases.

See docs/policies.md, cost. Tables are USD **per token** in the shape ``{provider: {"default": rates,
"models": {model_key: rates}}}`` where ``rates`` has ``input``, ``output`` and optionally
``cache_read`` / ``cache_creation`` / ``cache_creation_1h`` (one-hour cache writes). Pure standard library (TOML files use ``tomllib``).

The built-in table is the spec's table plus current Anthropic and OpenAI models at their
public list prices. It carries a version and a source (:data:`PRICING_VERSION`,
:data:`PRICING_SOURCE`) that :func:`active_pricing` reports, so every priced run can say
which prices it used.

User overrides, in order of precedence, through config key ``pricing_table``
(``config.put`` / ``config.set_global`` / env ``ASM_PRICING_TABLE``):

- a dict: a per-token table (spec shape), used as is; or a *pricing document* (below);
- a str / ``os.PathLike``: path of a ``.json`` or ``.toml`` file holding a table or a document.

A pricing document is ``{"version": str?, "source": str?, "unit": "per_token" |
"per_million", "extends": "default"?, "providers": {...table...}}``. ``unit="per_million"``
divides every rate by 1e6; ``extends="default"`` merges the given providers/models over the
built-in table (model entries replace whole entries).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, TypeVar, overload

from .. import config
from ..core.errors import AsmError

_T = TypeVar("_T")

__all__ = [
    "PRICING_VERSION", "PRICING_SOURCE", "MODEL_ALIASES", "PROVIDER_ALIASES", "PricingInfo",
    "default_model", "default_pricing_table", "pricing_table", "active_pricing", "load_pricing_file",
    "model_names", "canonical_model", "canonical_provider", "per_million", "merge_tables",
]

#: Version string of the built-in table; bump it whenever a price changes.
PRICING_VERSION = "builtin-2026.12"
#: Where the built-in prices come from.
PRICING_SOURCE = ("asm_nb built-in table: the project's reference rows + Anthropic (anthropic.com/pricing) and "
                  "OpenAI (openai.com/api/pricing) public list prices, standard tier, 5-minute cache writes "
                  "(Anthropic 1-hour cache writes at 2x input)")

_M = 1e-6  # one USD per million tokens, expressed per token


def _r(inp: float, out: float, cache_read: float | None = None, cache_creation: float | None = None) -> dict:
    """A rate entry from per-million prices."""
    entry: dict[str, float] = {"input": inp * _M, "output": out * _M}
    if cache_read is not None:
        entry["cache_read"] = cache_read * _M
    if cache_creation is not None:
        entry["cache_creation"] = cache_creation * _M
    return entry


def _hour_writes(models: dict[str, dict]) -> dict[str, dict]:
    """Anthropic bills a one-hour cache write at twice the model's input price (a five-minute
    write at 1.25x, the ``cache_creation`` rate): every row gets that ``cache_creation_1h`` rate."""
    for entry in models.values():
        entry.setdefault("cache_creation_1h", entry["input"] * 2)
    return models


def _placeholder(entry: dict) -> dict:
    """A provider ``default`` row of the built-in table: a stand-in price, never used for a run's
    cost (a run whose model is unknown is unpriced, see ``calculator.price_run``)."""
    return {**entry, "placeholder": True}


# Per million tokens: input, output, cache read, cache write (5 min). The reference rows are kept
# (docs/policies.md, cost) even where the vendor's current list price differs (e.g. haiku-4-5:
# 0.80/4.00 here, vendor 1.00/5.00) — provider-reported costs win over computed ones anyway.
_BUILTIN: dict[str, dict[str, Any]] = {
    "claude": {
        "default": _placeholder(_r(3.00, 15.00)),
        "models": _hour_writes({
            # reference rows
            "claude-opus-4-6": _r(15.00, 75.00, 1.50, 18.75),
            "claude-sonnet-4-5": _r(3.00, 15.00, 0.30, 3.75),
            "claude-haiku-4-5": _r(0.80, 4.00, 0.08, 1.00),
            # current public list prices
            "claude-opus-4-5": _r(5.00, 25.00, 0.50, 6.25),
            "claude-opus-4-1": _r(15.00, 75.00, 1.50, 18.75),
            "claude-opus-4": _r(15.00, 75.00, 1.50, 18.75),
            "claude-sonnet-4": _r(3.00, 15.00, 0.30, 3.75),
            "claude-3-7-sonnet": _r(3.00, 15.00, 0.30, 3.75),
            "claude-3-5-sonnet": _r(3.00, 15.00, 0.30, 3.75),
            "claude-3-5-haiku": _r(0.80, 4.00, 0.08, 1.00),
            "claude-3-opus": _r(15.00, 75.00, 1.50, 18.75),
            "claude-3-haiku": _r(0.25, 1.25, 0.03, 0.30),
        }),
    },
    "codex": {
        "default": _placeholder(_r(3.00, 15.00)),
        "models": {
            # reference rows (input/output); cached input at OpenAI's published cached-input rate
            "o3": _r(10.00, 40.00, 2.50, 10.00),
            "o3-mini": _r(1.10, 4.40, 0.55, 1.10),
            "gpt-4o": _r(2.50, 10.00, 1.25, 2.50),
            "gpt-4o-mini": _r(0.15, 0.60, 0.075, 0.15),
            # current public list prices. OpenAI bills cached input at its cached-input rate and
            # no separate cache write (a write is ordinary input): every row says both, so cached
            # tokens never fall back to the full input rate.
            "gpt-5": _r(1.25, 10.00, 0.125, 1.25),
            "gpt-5-codex": _r(1.25, 10.00, 0.125, 1.25),
            "gpt-5-mini": _r(0.25, 2.00, 0.025, 0.25),
            "gpt-5-nano": _r(0.05, 0.40, 0.005, 0.05),
            "gpt-5.1": _r(1.25, 10.00, 0.125, 1.25),
            "gpt-5.1-codex": _r(1.25, 10.00, 0.125, 1.25),
            "gpt-5.1-codex-mini": _r(0.25, 2.00, 0.025, 0.25),
            "gpt-4.1": _r(2.00, 8.00, 0.50, 2.00),
            "gpt-4.1-mini": _r(0.40, 1.60, 0.10, 0.40),
            "gpt-4.1-nano": _r(0.10, 0.40, 0.025, 0.10),
            "o4-mini": _r(1.10, 4.40, 0.275, 1.10),
            "codex-mini-latest": _r(1.50, 6.00, 0.375, 1.50),
        },
    },
    "amp": {
        # Amp picks the model per mode and changes it over time: a run is priced by the model it
        # reports (Claude rows by family match) or left unpriced
        "default": _placeholder(_r(3.00, 15.00)),
        "models": {},
    },
}

#: Model aliases (short names the CLIs accept, ``-0`` spellings, ``-latest`` names) → table key.
MODEL_ALIASES: dict[str, str] = {
    "opus": "claude-opus-4-6",
    "sonnet": "claude-sonnet-4-5",
    "haiku": "claude-haiku-4-5",
    "claude-opus-4-0": "claude-opus-4",
    "claude-sonnet-4-0": "claude-sonnet-4",
    "claude-3-5-sonnet-latest": "claude-3-5-sonnet",
    "claude-3-5-haiku-latest": "claude-3-5-haiku",
    "claude-3-7-sonnet-latest": "claude-3-7-sonnet",
    "gpt-5-codex-latest": "gpt-5-codex",
    "codex-mini": "codex-mini-latest",
}

#: Provider names that share another provider's prices (used only when the name itself is
#: not in the table).
PROVIDER_ALIASES: dict[str, str] = {
    "claude_code": "claude",
    "anthropic": "claude",
    "openai": "codex",
}

# Vendor prefixes of cloud/router model ids: "anthropic/claude-…", "us.anthropic.claude-…".
_VENDOR_PREFIXES = ("anthropic/", "openai/", "anthropic.", "openai.")
_REGION_PREFIXES = ("us.", "eu.", "apac.", "global.")


def default_model(provider: object) -> str | None:
    """``"claude"`` → config ``claude_default_model`` or ``"claude-haiku-4-5-20251001"``;
    every other provider → None (its CLI picks)."""
    if provider == "claude":
        return config.get("claude_default_model") or "claude-haiku-4-5-20251001"
    return None


def default_pricing_table() -> dict[str, Any]:
    """A fresh copy of the built-in per-token table (not affected by config)."""
    return copy.deepcopy(_BUILTIN)


def model_names() -> list[str]:
    """Sorted model keys of the built-in table (every provider)."""
    return sorted({m for entry in _BUILTIN.values() for m in entry.get("models", {})})


@overload
def canonical_provider(provider: str, table: Mapping[str, Any] | None = None) -> str: ...
@overload
def canonical_provider(provider: _T, table: Mapping[str, Any] | None = None) -> _T | str: ...
def canonical_provider(provider: object, table: Mapping[str, Any] | None = None) -> object:
    """``provider`` itself when ``table`` has it (or no table is given and it is built in);
    else its alias target (``claude_code`` → ``claude``); else ``provider`` unchanged."""
    tbl = _BUILTIN if table is None else table
    if not isinstance(provider, str) or provider in tbl:
        return provider
    return PROVIDER_ALIASES.get(provider, provider)


@overload
def canonical_model(model: str) -> str: ...
@overload
def canonical_model(model: _T) -> _T | str: ...
def canonical_model(model: object) -> object:
    """Strip vendor/region prefixes (``us.anthropic.``, ``openai/``), then resolve
    :data:`MODEL_ALIASES`. Non-strings are returned unchanged.

    >>> canonical_model("us.anthropic.claude-sonnet-4-5-20250929-v1:0")
    'claude-sonnet-4-5-20250929-v1:0'
    >>> canonical_model("sonnet")
    'claude-sonnet-4-5'
    """
    if not isinstance(model, str):
        return model
    m = model.strip()
    for p in _REGION_PREFIXES:
        if m.startswith(p) and m[len(p):].startswith(_VENDOR_PREFIXES):
            m = m[len(p):]
            break
    for p in _VENDOR_PREFIXES:
        if m.startswith(p):
            m = m[len(p):]
            break
    return MODEL_ALIASES.get(m, m)


def per_million(table: Mapping[str, Any]) -> dict[str, Any]:
    """Convert a table written in USD per million tokens to per-token rates (copy)."""
    return _scale(table, _M)


def _scale(table: Mapping[str, Any], factor: float) -> dict[str, Any]:
    def entry(e: Any) -> Any:
        if not isinstance(e, Mapping):
            return e
        return {k: (v * factor if isinstance(v, (int, float)) and not isinstance(v, bool) else v) for k, v in e.items()}

    out: dict[str, Any] = {}
    for prov, pe in table.items():
        if not isinstance(pe, Mapping):
            out[prov] = pe
            continue
        if "default" in pe or "models" in pe:
            new = dict(pe)
            if "default" in pe:
                new["default"] = entry(pe["default"])
            if isinstance(pe.get("models"), Mapping):
                new["models"] = {m: entry(e) for m, e in pe["models"].items()}
            out[prov] = new
        else:  # legacy flat entry
            out[prov] = entry(pe)
    return out


def merge_tables(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` laid over it: per provider, ``default`` replaced when given,
    ``models`` merged key by key (an override entry replaces the whole model entry)."""
    out = copy.deepcopy(dict(base))
    for prov, pe in overrides.items():
        if not isinstance(pe, Mapping) or prov not in out or not isinstance(out[prov], Mapping):
            out[prov] = copy.deepcopy(pe)
            continue
        target = dict(out[prov])
        if "default" in pe:
            target["default"] = copy.deepcopy(pe["default"])
        if isinstance(pe.get("models"), Mapping):
            target["models"] = {**dict(target.get("models") or {}), **copy.deepcopy(dict(pe["models"]))}
        if "default" not in pe and "models" not in pe:  # legacy flat entry
            target = copy.deepcopy(dict(pe))
        out[prov] = target
    return out


@dataclass(frozen=True)
class PricingInfo:
    """A pricing table with the version and source that identify it on priced runs."""

    table: dict
    version: str
    source: str


_DOC_KEYS = {"version", "source", "unit", "extends", "providers"}


def _fingerprint(table: Mapping[str, Any]) -> str:
    raw = json.dumps(table, sort_keys=True, default=str).encode()
    return hashlib.sha256(raw).hexdigest()[:12]


def _from_document(doc: Mapping[str, Any], source: str) -> PricingInfo:
    """Build a ``PricingInfo`` from a plain table or a pricing document."""
    if "providers" in doc and set(doc) <= _DOC_KEYS:
        providers = doc.get("providers")
        if not isinstance(providers, Mapping):
            raise AsmError("validation_error", f"pricing document {source}: 'providers' must be a mapping")
        unit = doc.get("unit", "per_token")
        if unit not in ("per_token", "per_million"):
            raise AsmError("validation_error",
                           f"pricing document {source}: unit must be 'per_token' or 'per_million', got {unit!r}")
        table = per_million(providers) if unit == "per_million" else copy.deepcopy(dict(providers))
        extends = doc.get("extends")
        if extends not in (None, "default"):
            raise AsmError("validation_error", f"pricing document {source}: extends must be 'default' or absent")
        if extends == "default":
            table = merge_tables(_BUILTIN, table)
        version = doc.get("version")
        version = str(version) if version is not None else f"custom-{_fingerprint(table)}"
        if extends == "default":
            version = f"{version}+{PRICING_VERSION}"
        return PricingInfo(table, version, str(doc.get("source") or source))
    table = copy.deepcopy(dict(doc))
    return PricingInfo(table, f"custom-{_fingerprint(table)}", source)


_file_cache: dict[str, tuple[tuple[int, int], PricingInfo]] = {}
_file_lock = threading.Lock()


def load_pricing_file(path: str | os.PathLike) -> PricingInfo:
    """Read a JSON or TOML pricing file (a table or a pricing document; see module doc).

    Cached per path until the file's mtime/size change. Errors → ``AsmError("validation_error")``.
    """
    p = Path(path).expanduser()
    try:
        st = p.stat()
    except OSError as exc:
        raise AsmError("validation_error", f"pricing table file not readable: {p}: {exc}") from exc
    key = str(p.resolve())
    stamp = (st.st_mtime_ns, st.st_size)
    with _file_lock:
        hit = _file_cache.get(key)
        if hit and hit[0] == stamp:
            return hit[1]
    try:
        raw = p.read_bytes()
        if p.suffix.lower() == ".toml":
            import tomllib

            doc = tomllib.loads(raw.decode("utf-8"))
        else:
            doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AsmError("validation_error", f"pricing table file {p} could not be parsed: {exc}") from exc
    if not isinstance(doc, Mapping):
        raise AsmError("validation_error", f"pricing table file {p} must hold a JSON/TOML object")
    info = _from_document(doc, f"file:{p}")
    with _file_lock:
        _file_cache[key] = (stamp, info)
    return info


_BUILTIN_INFO: PricingInfo | None = None


def _builtin_info() -> PricingInfo:
    global _BUILTIN_INFO
    if _BUILTIN_INFO is None:
        _BUILTIN_INFO = PricingInfo(default_pricing_table(), PRICING_VERSION, PRICING_SOURCE)
    return _BUILTIN_INFO


def resolve_pricing(value: object) -> PricingInfo:
    """A ``PricingInfo`` for a table dict, pricing document, file path, ``PricingInfo`` or None
    (→ the built-in table)."""
    if value is None:
        return _builtin_info()
    if isinstance(value, PricingInfo):
        return value
    if isinstance(value, (str, os.PathLike)):
        return load_pricing_file(value)
    if isinstance(value, Mapping):
        if value is _BUILTIN or value == _builtin_info().table:
            return _builtin_info()
        return _from_document(value, "config:pricing_table")
    raise AsmError("validation_error",
                   f"pricing_table must be a mapping, a file path or None, got {type(value).__name__}")


def active_pricing() -> PricingInfo:
    """The pricing in effect now: config ``pricing_table`` (dict, document or file path) or the
    built-in table, with its version and source."""
    return resolve_pricing(config.get("pricing_table"))


def pricing_table() -> dict[str, Any]:
    """The per-token table in effect: config ``pricing_table`` if set, else the built-in one."""
    return copy.deepcopy(active_pricing().table)
