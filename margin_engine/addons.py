"""Add-ons on top of a margin model: liquidity, concentration and the open-interest initial
margin fraction.

**Liquidity** (SPAN 2 style): what it would cost to close a position in the market — the impact
model's move (:mod:`margin_engine.impact`) on the position's notional :math:`N` — charged when
the position is large against the day's volume (above ``threshold`` × :math:`V`):

.. math::

    A^{liq} = \\mathbb 1[N > \\theta V]\\; \\text{move}(N)\\, N.

**Concentration**: a rate on the notional above a threshold, :math:`c\\,(N - N_0)^+`.

**Open-interest IMF** (dYdX v4's liquidity tiers, its published rule): the initial margin
fraction rises linearly with the market's open notional between two caps,

.. math::

    \\text{IMF} = \\min\\Big(1,\\ b + (1 - b)\\,\\max\\Big(0, \\frac{O - L}{U - L}\\Big)\\Big),

with no increase when the upper cap is zero (the feature off), and the full 100 % at or above it.
As an add-on on top of a margin model, an account is charged the rise above the base,
:math:`(\text{IMF}(O) - b)\\,N`.

**On a margin model's result** (:func:`addon_charges`, :func:`with_addons`): each (account,
class group)'s exposure is its net delta notional :math:`N = |\\Delta| S` (USD; a class group
is one underlying settled in one currency), its add-ons are charged in the group's settlement
currency and added to the row's initial and maintenance margin, named as components.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from margin_engine.impact import ImpactModel

if TYPE_CHECKING:
    from margin_engine.book import MarginResult, Positions

__all__ = [
    "AddOns",
    "OpenInterestTier",
    "addon_charges",
    "concentration_addon",
    "liquidity_addon",
    "open_interest_imf",
    "with_addons",
]

#: Settlement currencies worth one USD each (the others are coins at their index).
DOLLARS = frozenset({"USD", "USDC", "USDT"})


def open_interest_imf(
    base: float, open_notional: float | np.ndarray, lower_cap: float, upper_cap: float
) -> np.ndarray:
    """The effective initial margin fraction at ``open_notional`` under dYdX's rule (see the module)."""
    if not (0 <= base <= 1) or lower_cap < 0 or upper_cap < 0:
        raise ValueError("open-interest IMF: base in [0, 1] and caps ≥ 0")
    if upper_cap and lower_cap > upper_cap:
        raise ValueError("open-interest IMF: the lower cap is above the upper cap")
    o = np.asarray(open_notional, dtype=float)
    if upper_cap == 0:
        return np.full_like(o, base)
    if upper_cap == lower_cap:
        return np.where(o >= upper_cap, 1.0, base)
    scale = np.maximum((o - lower_cap) / (upper_cap - lower_cap), 0.0)
    return np.where(o >= upper_cap, 1.0, np.minimum(base + scale * (1.0 - base), 1.0))


def liquidity_addon(
    notional: float | np.ndarray, impact: ImpactModel, threshold: float
) -> np.ndarray:
    """The cost of closing each position of USD ``notional`` through ``impact``, charged
    above ``threshold`` × the daily volume.
    """
    n = np.abs(np.asarray(notional, dtype=float))
    return np.where(n > threshold * impact.daily_volume, impact.move(n) * n, 0.0)


def concentration_addon(notional: float | np.ndarray, threshold: float, rate: float) -> np.ndarray:
    """:math:`c (N - N_0)^+` on each position's USD notional."""
    return rate * np.maximum(np.abs(np.asarray(notional, dtype=float)) - threshold, 0.0)


@dataclass(frozen=True)
class OpenInterestTier:
    """dYdX's liquidity tier for one underlying: the base IMF and the open-interest caps (USD)."""

    base: float
    lower_cap_usd: float
    upper_cap_usd: float

    def __post_init__(self) -> None:
        open_interest_imf(self.base, 0.0, self.lower_cap_usd, self.upper_cap_usd)  # validates


@dataclass(frozen=True)
class AddOns:
    """The add-ons a parameter set switches on for every model, and their parameters: the
    liquidity add-on's threshold (of the daily volume), the impact law's :math:`Y` and half
    spread (σ and the volume come from data), the concentration threshold and rate, and the
    open-interest tiers by underlying.
    """

    liquidity_threshold: float = 0.01  # of the daily volume
    concentration_threshold: float = math.inf  # USD
    concentration_rate: float = 0.0
    impact_y: float = 0.7
    half_spread: float = 0.0005
    open_interest: Mapping[str, OpenInterestTier] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (self.liquidity_threshold >= 0 and self.concentration_rate >= 0):
            raise ValueError("add-ons: thresholds and rates must be ≥ 0")

    def impact(self, calibrated: ImpactModel) -> ImpactModel:
        """``calibrated`` (σ and V from data) with this set's :math:`Y` and half spread."""
        return dataclasses.replace(calibrated, y=self.impact_y, half_spread=self.half_spread)

    def per_position(self, notional: np.ndarray, impact: ImpactModel) -> dict[str, np.ndarray]:
        """Each add-on of each position (USD)."""
        return {
            "liquidity": liquidity_addon(notional, impact, self.liquidity_threshold),
            "concentration": concentration_addon(
                notional, self.concentration_threshold, self.concentration_rate
            ),
        }


def addon_charges(
    result: MarginResult,
    positions: Positions,
    spec: AddOns,
    impacts: Mapping[str, ImpactModel],
    open_interest_usd: Mapping[str, float] | None = None,
) -> dict[str, np.ndarray]:
    """Each add-on per row of ``result``, in the row's currency: every (account, class group)'s
    net delta notional charged through ``spec`` with its underlying's impact model
    (``impacts``, calibrated from data) and, where both the tier and the market's open interest
    are given, the open-interest IMF's rise above its base.
    """
    from margin_engine.venues.books import _underlyings, _usd_delta

    table = positions.book.table
    names, _, price = _underlyings(positions)
    spot = dict(zip(names, price.tolist(), strict=True))
    n_g = positions.n_groups
    per_group = (positions.group_matrix @ _usd_delta(positions)).reshape(-1, n_g)
    rows = {
        (int(a), str(c)): k
        for k, (a, c) in enumerate(zip(result.account, result.currency, strict=True))
    }
    out = {name: np.zeros(len(result.account)) for name in ("liquidity", "concentration", "oi")}
    for g, (currency, underlying) in enumerate(table.groups):
        notional = np.abs(per_group[:, g]) * spot[underlying]
        held = np.flatnonzero(notional > 0)
        if not len(held):
            continue
        if underlying not in impacts:
            raise ValueError(f"add-ons: no impact model (daily volume) for {underlying}")
        charges = spec.per_position(notional[held], impacts[underlying])
        tier = spec.open_interest.get(underlying)
        oi = (open_interest_usd or {}).get(underlying)
        if tier is not None and oi is not None:
            rise = float(open_interest_imf(tier.base, oi, tier.lower_cap_usd, tier.upper_cap_usd))
            charges["oi"] = (rise - tier.base) * notional[held]
        to_currency = 1.0 if currency in DOLLARS else 1.0 / spot.get(currency, math.nan)
        if not math.isfinite(to_currency):
            raise ValueError(f"add-ons: no index price for the settlement currency {currency}")
        for a, k in zip(held.tolist(), range(len(held)), strict=True):
            row = rows.get((a, currency))
            if row is None:
                continue  # the model left this account out (it holds nothing it margins)
            for name, values in charges.items():
                out[name][row] += float(values[k]) * to_currency
    return out


def with_addons(result: MarginResult, charges: Mapping[str, np.ndarray]) -> MarginResult:
    """``result`` with the add-ons added to initial and maintenance margin and kept as
    components (``addon_liquidity``, ``addon_concentration``, ``addon_oi``).
    """
    total = sum(charges.values(), start=np.zeros(len(result.account)))
    components = dict(result.components)
    for name, values in charges.items():
        components[f"addon_{name}"] = np.asarray(values, dtype=float)
    return dataclasses.replace(
        result,
        initial_margin=result.initial_margin + total,
        maintenance_margin=result.maintenance_margin + total,
        components=components,
    )
