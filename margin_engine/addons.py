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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from margin_engine.impact import ImpactModel

__all__ = ["AddOns", "concentration_addon", "liquidity_addon", "open_interest_imf"]


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
class AddOns:
    """The add-ons a policy may switch on for a model, and their parameters."""

    liquidity_threshold: float = 0.01  # of the daily volume
    concentration_threshold: float = math.inf  # USD
    concentration_rate: float = 0.0

    def __post_init__(self) -> None:
        if not (self.liquidity_threshold >= 0 and self.concentration_rate >= 0):
            raise ValueError("add-ons: thresholds and rates must be ≥ 0")

    def per_position(self, notional: np.ndarray, impact: ImpactModel) -> dict[str, np.ndarray]:
        """Each add-on of each position (USD)."""
        return {
            "liquidity": liquidity_addon(notional, impact, self.liquidity_threshold),
            "concentration": concentration_addon(
                notional, self.concentration_threshold, self.concentration_rate
            ),
        }
