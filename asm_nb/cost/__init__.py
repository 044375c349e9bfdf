"""Cost: the pricing registry (``pricing``) and the calculator (``calculator``).

See docs/policies.md, cost. ``price_run`` is what the runtime calls at run end; ``session_cost`` sums a
session's runs. Pure standard library.
"""

from .calculator import (NoRatesError, Rates, UnpricedModelWarning, apply_price, calculate, calculate_run_cost,
                         normalize_legacy_rates, price_run, resolve_rates, session_cost, try_calculate,
                         try_resolve_rates)
from .pricing import (PRICING_SOURCE, PRICING_VERSION, PricingInfo, active_pricing, default_model,
                      default_pricing_table, model_names, pricing_table)

__all__ = [
    "NoRatesError", "Rates", "UnpricedModelWarning", "apply_price", "calculate", "calculate_run_cost",
    "normalize_legacy_rates", "price_run", "resolve_rates", "session_cost", "try_calculate", "try_resolve_rates",
    "PRICING_SOURCE", "PRICING_VERSION", "PricingInfo", "active_pricing", "default_model",
    "default_pricing_table", "model_names", "pricing_table",
]
