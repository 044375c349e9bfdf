"""CostCalculator: USD cost of token usage from a per-token pricing table.

See docs/policies.md, cost (``resolve_rates``, ``calculate``, ``calculate_run_cost``,
``normalize_legacy_rates``) plus :func:`price_run`, the auditable figure the runtime stores
on each run at run end. Pure standard library.

Pricing rule of :func:`price_run` (the issue's "never a crash, never a silent zero"):

- a provider-reported cost > 0 (Claude Code ``total_cost_usd``, Amp) is the run's cost; the
  computed figure is kept beside it for audit;
- otherwise the cost is computed from ``run.token_usage`` with the active table;
- a model that matches no table entry (exactly, by alias or by prefix, also across provider
  families: ``amp`` running ``claude-sonnet-4-5`` uses the Claude row) gives cost ``None``
  and one :class:`UnpricedModelWarning` per ``(provider, model)`` — never the provider default
  silently. A run without a model gives ``None`` with one warning too: the built-in ``default``
  rows are placeholders (``"placeholder": True``) and never price a run. A ``default`` row of
  the user's own table (e.g. a flat legacy table) is the user's price and is used;
- a run with no tokens at all costs ``0.0`` whatever the price (shell runs).
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypedDict, TypeGuard

from ..core.errors import AsmError
from ..core.usage import CACHE_CREATION_1H_TOKENS, CACHE_CREATION_TOKENS, CACHE_READ_TOKENS, TOKEN_KEYS, token_count
from . import pricing as _pricing

if TYPE_CHECKING:
    from ..core.run import Run


class PriceInfo(TypedDict):
    """What :func:`price_run` returns: the auditable cost of one run."""

    cost_usd: float | None
    reported_cost_usd: float | None
    computed_cost_usd: float | None
    unpriced: bool
    price_key: str | None
    pricing_version: str | None
    pricing_source: str | None
    cost_source: str | None
    model_source: object


class SessionCost(TypedDict):
    """What :func:`session_cost` returns."""

    cost_usd: float | None
    run_count: int
    priced_runs: int
    unpriced_runs: int

__all__ = [
    "Rates", "NoRatesError", "UnpricedModelWarning", "resolve_rates", "try_resolve_rates", "resolve_rate_key",
    "calculate", "try_calculate", "calculate_run_cost", "normalize_legacy_rates", "default_pricing_table",
    "price_run", "apply_price", "session_cost", "lookup_price", "tokens_cost", "TOKEN_KEYS",
]



@dataclass(frozen=True)
class Rates:
    """USD per token. ``cache_read`` / ``cache_creation`` None → priced at ``input``;
    ``cache_creation_1h`` (one-hour cache writes, the ``cache_creation_1h_tokens`` part of the
    cache writes) None → priced as other cache writes."""

    input: float
    output: float
    cache_read: float | None = None
    cache_creation: float | None = None
    cache_creation_1h: float | None = None

    def as_dict(self) -> dict[str, float]:
        d = {"input": self.input, "output": self.output}
        if self.cache_read is not None:
            d["cache_read"] = self.cache_read
        if self.cache_creation is not None:
            d["cache_creation"] = self.cache_creation
        if self.cache_creation_1h is not None:
            d["cache_creation_1h"] = self.cache_creation_1h
        return d


class NoRatesError(AsmError):
    """Raised by :func:`resolve_rates` / :func:`calculate` when the table has no usable rates
    for the provider/model."""

    def __init__(self, provider: object = None, model: object = None, reason: str = "no rates") -> None:
        super().__init__("not_found", f"No pricing rates for provider {provider!r}, model {model!r}: {reason}",
                         details={"provider": provider, "model": model, "reason": reason})
        self.provider = provider
        self.model = model
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (NoRatesError, (self.provider, self.model, self.reason))


class UnpricedModelWarning(UserWarning):
    """A run's model has no price in the active table: its cost is None (warned once per
    provider/model pair per process)."""


def _num(v: object) -> TypeGuard[int | float]:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _key(k: Any) -> Any:
    """Keys may be strings or enum-ish names (``Enum`` members → their value)."""
    v = getattr(k, "value", k)
    return v if isinstance(v, str) else k


def _norm_keys(m: Mapping) -> dict:
    return {_key(k): v for k, v in m.items()}


def normalize_legacy_rates(table: Any) -> Any:
    """Flat legacy tables ``{provider: {input, output}}`` → structured ``{provider: {"default":
    {input, output}, "models": {}}}``. A table where any provider entry already has ``default``
    is returned unchanged; non-mapping tables are returned as is."""
    if not isinstance(table, Mapping):
        return table
    if any(isinstance(e, Mapping) and "default" in _norm_keys(e) for e in table.values()):
        return table
    out: dict[Any, Any] = {}
    for prov, e in table.items():
        if isinstance(e, Mapping):
            en = _norm_keys(e)
            if _num(en.get("input")) and _num(en.get("output")):
                out[prov] = {"default": {"input": en["input"], "output": en["output"]}, "models": {}}
                continue
        out[prov] = e
    return out


def _rates_from(entry: object) -> Rates | None:
    if not isinstance(entry, Mapping):
        return None
    e = _norm_keys(entry)
    if not (_num(e.get("input")) and _num(e.get("output"))):
        return None
    cr, cc, cc1h = e.get("cache_read"), e.get("cache_creation"), e.get("cache_creation_1h")
    return Rates(float(e["input"]), float(e["output"]), float(cr) if _num(cr) else None,
                 float(cc) if _num(cc) else None, float(cc1h) if _num(cc1h) else None)


def _provider_entry(provider: object, table: Mapping) -> Mapping | None:
    if not isinstance(provider, str):
        return None
    tn = _norm_keys(table)
    entry = tn.get(provider)
    return _norm_keys(entry) if isinstance(entry, Mapping) else None


def _match_model(model: str, models: Mapping) -> str | None:
    """Exact key, else the longest key ``model`` starts with."""
    if model in models:
        return model
    best = None
    for k in models:
        if isinstance(k, str) and k and model.startswith(k) and (best is None or len(k) > len(best)):
            best = k
    return best


def resolve_rate_key(provider: object, model: object, table: object) -> tuple[str, Rates]:
    """Like :func:`resolve_rates` but also returns which entry applied: ``"<provider>/<key>"``
    (``"claude/claude-sonnet-4-5"``) or ``"<provider>/default"``."""
    table = normalize_legacy_rates(table)
    if not isinstance(table, Mapping):
        raise NoRatesError(provider, model, "pricing table is not a mapping")
    entry = _provider_entry(provider, table)
    if entry is None:
        raise NoRatesError(provider, model, "provider not in pricing table")
    if model is not None:
        models = entry.get("models")
        models = _norm_keys(models) if isinstance(models, Mapping) else {}
        key = _match_model(model, models) if isinstance(model, str) else None
        if key is not None:
            rates = _rates_from(models[key])
            if rates is None:  # a broken model entry does not fall back to the default
                raise NoRatesError(provider, model, f"model entry {key!r} has no numeric input/output")
            return f"{provider}/{key}", rates
    rates = _rates_from(entry.get("default"))
    if rates is None:
        raise NoRatesError(provider, model, "provider has no usable default rates")
    return f"{provider}/default", rates


def resolve_rates(provider: object, model: object, table: object) -> Rates:
    """The rates for ``provider``/``model`` (docs/policies.md, cost): exact model key, else the longest
    key the model starts with, else the provider ``default``. Raises :class:`NoRatesError`."""
    return resolve_rate_key(provider, model, table)[1]


def try_resolve_rates(provider: object, model: object, table: object) -> Rates | None:
    """:func:`resolve_rates` returning None instead of raising."""
    try:
        return resolve_rates(provider, model, table)
    except NoRatesError:
        return None


def _tok(tokens: Mapping, key: str) -> int:
    return token_count(tokens.get(key))


def _apply(tokens: Mapping, r: Rates) -> float:
    inp, out = _tok(tokens, "input_tokens"), _tok(tokens, "output_tokens")
    cr, cc = _tok(tokens, CACHE_READ_TOKENS), _tok(tokens, CACHE_CREATION_TOKENS)
    cc_rate = r.cache_creation if r.cache_creation is not None else r.input
    cost = (inp * r.input + out * r.output
            + cr * (r.cache_read if r.cache_read is not None else r.input))
    hour_rate = r.cache_creation_1h
    hour = min(_tok(tokens, CACHE_CREATION_1H_TOKENS), cc) if hour_rate is not None else 0
    if hour and hour_rate is not None:  # the one-hour part of the cache writes at its own rate
        return cost + (cc - hour) * cc_rate + hour * hour_rate
    return cost + cc * cc_rate


def calculate(tokens: object, provider: object, model: object, table: object) -> float:
    """USD for ``tokens`` (``input_tokens``, ``output_tokens``, ``cache_read_tokens``,
    ``cache_creation_tokens``): ``input*in + output*out + cache_read*(cache_read or in) +
    cache_creation*(cache_creation or in)``; a ``cache_creation_1h_tokens`` part of the cache
    writes is priced at ``cache_creation_1h`` where the rates have one. Bad token values count 0. Raises
    :class:`NoRatesError` when no rates apply (also for non-mapping tokens/table).

    >>> t = {"claude": {"default": {"input": 3e-6, "output": 15e-6}}}
    >>> round(calculate({"input_tokens": 1000, "output_tokens": 500}, "claude", None, t), 6)
    0.0105
    """
    if not isinstance(tokens, Mapping):
        raise NoRatesError(provider, model, "tokens must be a mapping")
    rates = resolve_rates(provider, model, table)
    return _apply(tokens, rates)


def try_calculate(tokens: object, provider: object, model: object, table: object) -> float | None:
    """:func:`calculate` returning None when there are no rates."""
    try:
        return calculate(tokens, provider, model, table)
    except NoRatesError:
        return None


def _run_model(run: object) -> object:
    pm = getattr(run, "provider_metadata", None) or {}
    model = pm.get("model") if isinstance(pm, Mapping) else None
    if model is None:
        md = getattr(run, "metadata", None) or {}
        model = md.get("model") if isinstance(md, Mapping) else None
    return model


def _model_usage(run: object) -> dict[str, Mapping[str, Any]]:
    """``{model: usage}`` the provider reported per model (kept in the run's metadata), or {}."""
    for attr in ("provider_metadata", "metadata"):
        md = getattr(run, attr, None) or {}
        mu = md.get("model_usage") if isinstance(md, Mapping) else None
        if isinstance(mu, Mapping) and mu:
            return {str(k): v for k, v in mu.items() if isinstance(v, Mapping)}
    return {}


def _model_source(run: object) -> object:
    """Where the run's model name came from (``flag``, ``config_file:<path>``, ``session_file``,
    ``stream``…), as the adapter recorded it; None when nobody said."""
    for attr in ("provider_metadata", "metadata"):
        md = getattr(run, attr, None) or {}
        if isinstance(md, Mapping) and md.get("model_source") is not None:
            return md.get("model_source")
    return None


def calculate_run_cost(run: object, table: object = None) -> float:
    """Cost of a ``Run``: provider ``run.provider``, model ``run.provider_metadata["model"]``,
    tokens ``run.token_usage or {}``. ``table`` None → the active table. Raises
    :class:`NoRatesError` (also when ``run.provider`` is None)."""
    provider = getattr(run, "provider", None)
    if provider is None:
        raise NoRatesError(None, None, "run has no provider")
    pm = getattr(run, "provider_metadata", None) or {}
    model = pm.get("model") if isinstance(pm, Mapping) else None
    tbl = _pricing.pricing_table() if table is None else table
    return calculate(getattr(run, "token_usage", None) or {}, provider, model, tbl)


def default_pricing_table() -> dict:
    """The built-in table (``Models.default_pricing_table()``)."""
    return _pricing.default_pricing_table()


# --------------------------------------------------------------------------------------------
# price_run: the auditable run cost


_warned: set[tuple[object, object]] = set()
_warned_lock = threading.Lock()


def _warn_once(provider: object, model: object, reason: str) -> None:
    key = (provider, model)
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    warnings.warn(f"asm_nb cost: no price for provider {provider!r}, model {model!r} ({reason}); "
                  f"cost recorded as None. Add it with config.set_global('pricing_table', ...).",
                  UnpricedModelWarning, stacklevel=3)


def _reset_warnings() -> None:
    """Forget which (provider, model) pairs were warned about (tests)."""
    with _warned_lock:
        _warned.clear()


def _family_provider(model: str, table: Mapping) -> str | None:
    """The provider in ``table`` whose model keys match ``model`` (longest key wins)."""
    best: tuple[int, str] | None = None
    for prov, entry in _norm_keys(table).items():
        if not isinstance(entry, Mapping) or not isinstance(prov, str):
            continue
        models = _norm_keys(entry).get("models")
        if not isinstance(models, Mapping):
            continue
        key = _match_model(model, _norm_keys(models))
        if key is not None and (best is None or len(key) > best[0]):
            best = (len(key), prov)
    return best[1] if best else None


def _lookup(provider: object, model: object, table: Mapping) -> tuple[str, Rates] | tuple[None, str]:
    """(price_key, rates) or (None, reason) with aliases and family matching (see module doc)."""
    table = normalize_legacy_rates(table)
    prov = _pricing.canonical_provider(provider, table)
    if _provider_entry(prov, table) is None:
        if isinstance(model, str):
            fam = _family_provider(_pricing.canonical_model(model), table)
            if fam is not None:
                return resolve_rate_key(fam, _pricing.canonical_model(model), table)
        return None, "provider not in pricing table"
    if model is None:
        try:
            key, rates = resolve_rate_key(prov, None, table)
        except NoRatesError as exc:
            return None, exc.reason
        if _is_placeholder(prov, table):
            return None, "the model is unknown (only a placeholder default row would apply)"
        return key, rates
    if not isinstance(model, str):
        return None, "model is not a string"
    cm = _pricing.canonical_model(model)
    models = (_provider_entry(prov, table) or {}).get("models")
    models = _norm_keys(models) if isinstance(models, Mapping) else {}
    if _match_model(cm, models) is None:
        fam = _family_provider(cm, table)
        if fam is not None:
            prov = fam
        elif models:
            return None, "unknown model"
        elif _is_placeholder(prov, table):
            return None, "no price for this model (only a placeholder default row would apply)"
        # a provider priced only by the user's own default (no model rows) prices every model at it
    try:
        return resolve_rate_key(prov, cm, table)
    except NoRatesError as exc:
        return None, exc.reason


def lookup_price(provider: object, model: object, table: Mapping | None = None) -> tuple[str, Rates] | tuple[None, str]:
    """``(price_key, rates)`` for one model, with the aliases and family matching of
    :func:`price_run` (``claude_code`` running ``claude-sonnet-4-20250514`` → the Claude row), or
    ``(None, reason)``. ``table`` None → the active table. Per-message pricing (history import)
    calls this once per model and applies the rates with :func:`tokens_cost`."""
    tbl = _pricing.active_pricing().table if table is None else table
    return _lookup(provider, model, tbl)


def tokens_cost(tokens: Mapping, rates: Rates) -> float:
    """USD for ``tokens`` (the four normalized counters) at ``rates``."""
    return _apply(tokens, rates)


def _is_placeholder(provider: object, table: Mapping) -> bool:
    entry = _provider_entry(provider, table) or {}
    default = entry.get("default")
    return isinstance(default, Mapping) and _norm_keys(default).get("placeholder") is True


def _total_tokens(usage: Mapping) -> int:
    return sum(_tok(usage, k) for k in TOKEN_KEYS)


def price_run(run: object, reported_cost_usd: object = None, *, table: object = None) -> PriceInfo:
    """The auditable cost of ``run`` (a ``Run`` or anything with ``provider``,
    ``provider_metadata``/``metadata`` ``model`` and ``token_usage``).

    Returns ``{"cost_usd", "reported_cost_usd", "computed_cost_usd", "unpriced", "price_key",
    "pricing_version", "pricing_source", "cost_source", "model_source"}``:

    - ``reported_cost_usd``: the provider's own figure when a number > 0, else None;
    - ``computed_cost_usd``: from the table (None when the model has no price);
    - ``cost_usd``: reported if present, else computed; ``cost_source`` says which
      (``"reported"``, ``"computed"``, ``"no_tokens"`` or None);
    - ``unpriced``: True when ``cost_usd`` is None;
    - ``price_key``: the table entry used (``"claude/claude-sonnet-4-5"``) or None;
    - ``pricing_version`` / ``pricing_source``: which table priced it.

    ``table`` None → the active pricing (config ``pricing_table`` or built-in). Never raises
    for pricing problems: an unknown model yields None with one :class:`UnpricedModelWarning`.
    """
    info = _pricing.resolve_pricing(table) if table is not None else _pricing.active_pricing()
    provider = getattr(run, "provider", None)
    model = _run_model(run)
    usage = getattr(run, "token_usage", None) or {}
    if not isinstance(usage, Mapping):
        usage = {}
    reported = float(reported_cost_usd) if _num(reported_cost_usd) and reported_cost_usd > 0 else None

    computed: float | None = None
    price_key: str | None = None
    reason = None
    per_model = _model_usage(run)
    if _total_tokens(usage) == 0:
        computed = 0.0
    elif per_model:
        # one price per model the run used (main model, subagents, helper models)
        keys, total = [], 0.0
        for m, mu in per_model.items():
            found = _lookup(provider, m, info.table)
            if found[0] is None:
                reason, total = f"{m}: {found[1]}", None
                model = m
                break
            keys.append(found[0])
            total += _apply(mu, found[1])  # type: ignore[arg-type]
        if total is not None:
            computed, price_key = total, "+".join(keys)
    else:
        found = _lookup(provider, model, info.table)
        if found[0] is None:
            reason = found[1]
        else:
            price_key, rates = found  # type: ignore[misc]
            computed = _apply(usage, rates)

    if reported is not None:
        cost, source = reported, "reported"
    elif computed is not None:
        cost, source = computed, ("no_tokens" if price_key is None else "computed")
    else:
        cost, source = None, None
        _warn_once(provider, model, reason or "no rates")
    return {
        "cost_usd": cost,
        "reported_cost_usd": reported,
        "computed_cost_usd": computed,
        "unpriced": cost is None,
        "price_key": price_key,
        "pricing_version": info.version,
        "pricing_source": info.source,
        "cost_source": source,
        "model_source": _model_source(run),
    }


def apply_price(run: Run, reported_cost_usd: object = None, *, table: object = None) -> Run:
    """``run`` with ``cost_usd`` set and the other :func:`price_run` keys merged into
    ``run.metadata`` (as the runtime stores them; frames read them from there)."""
    info = price_run(run, reported_cost_usd, table=table)
    extra = {k: v for k, v in info.items() if k != "cost_usd"}
    return run.replace(cost_usd=info["cost_usd"], metadata={**(run.metadata or {}), **extra})


def session_cost(runs: Iterable[object]) -> SessionCost:
    """Per-session total over ``runs`` (an iterable of Runs): ``{"cost_usd", "run_count",
    "priced_runs", "unpriced_runs"}``; ``cost_usd`` sums the priced runs (None when none are)."""
    total, priced, unpriced, n = 0.0, 0, 0, 0
    for run in runs:
        n += 1
        c = getattr(run, "cost_usd", None)
        if _num(c):
            total += float(c)
            priced += 1
        else:
            unpriced += 1
    return {"cost_usd": total if priced else None, "run_count": n, "priced_runs": priced,
            "unpriced_runs": unpriced}
