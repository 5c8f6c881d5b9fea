"""Hyperliquid's perpetual margin: tiered maintenance margin with its deductions, and the
liquidation price, implemented from Hyperliquid's published rules (docs "Margin tiers" and
"Liquidations").

A margin table is a list of tiers by notional position value (USDC), each with a maximum
leverage :math:`L_n`. The initial margin at maximum leverage is :math:`N / L_n`; the
maintenance margin rate is half of it, :math:`m_n = 1 / (2 L_n)`, and

.. math::

    MM(N) = N m_n - d_n, \\qquad d_0 = 0, \\quad d_n = d_{n-1} + N^{low}_n (m_n - m_{n-1}),

for :math:`N` in tier :math:`n` (lower bound :math:`N^{low}_n`): the deduction makes the
maintenance margin continuous in the position's size while each further dollar in tier
:math:`n` adds :math:`m_n`. An account is liquidated when its equity falls below its
maintenance margin. For a position of size :math:`q` (signed: side :math:`s = \\pm 1`) at
price :math:`p` with margin available :math:`A` (equity less maintenance margin), the published
liquidation price is

.. math::

    p_{liq} = p - s \\frac{A}{|q|} \\frac{1}{1 - l s}, \\qquad l = 1 / (2 L) = m,

exact while the position stays in its tier (the maintenance margin is then linear in price).
Hyperliquid lists perpetuals only: a book's options are margined here by their delta (what a
perpetual hedge of the same exposure would need), which the model's callers say where they
show it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "GENERIC_TABLE",
    "PUBLISHED_TABLES",
    "TESTNET_TABLES",
    "MarginTable",
    "Tier",
    "initial_margin",
    "liquidation_price",
    "maintenance_margin",
    "published_tables",
]


@dataclass(frozen=True)
class Tier:
    """A tier: from ``lower`` USDC of notional, at most ``max_leverage``."""

    lower: float
    max_leverage: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lower) and self.lower >= 0):
            raise ValueError(f"tier.lower must be a finite number ≥ 0, got {self.lower!r}")
        if not (math.isfinite(self.max_leverage) and 1 <= self.max_leverage <= 200):
            raise ValueError(f"tier.max_leverage must be in [1, 200], got {self.max_leverage!r}")


@dataclass(frozen=True)
class MarginTable:
    """A margin table: tiers in increasing ``lower`` from 0, leverage not increasing."""

    tiers: tuple[Tier, ...]

    def __post_init__(self) -> None:
        tiers = self.tiers
        if not tiers or tiers[0].lower != 0:
            raise ValueError("margin table: the first tier must start at 0 notional")
        for a, b in zip(tiers, tiers[1:], strict=False):
            if b.lower <= a.lower:
                raise ValueError("margin table: tier lower bounds must increase")
            if b.max_leverage > a.max_leverage:
                raise ValueError("margin table: a larger tier cannot allow more leverage")

    @classmethod
    def of(cls, rows: Sequence[tuple[float, float]]) -> MarginTable:
        """A table from ``(lower bound, max leverage)`` rows."""
        return cls(tuple(Tier(float(lower), float(lev)) for lower, lev in rows))

    @property
    def rates(self) -> np.ndarray:
        """The maintenance margin rate of each tier: half the initial rate at max leverage."""
        return np.array([0.5 / t.max_leverage for t in self.tiers])

    @property
    def deductions(self) -> np.ndarray:
        """Each tier's maintenance deduction (see the module)."""
        rates = self.rates
        lower = np.array([t.lower for t in self.tiers])
        steps = np.concatenate([[0.0], lower[1:] * np.diff(rates)])
        return np.cumsum(steps)

    def tier_of(self, notional: np.ndarray | float) -> np.ndarray:
        """The tier index of each notional (USDC, ≥ 0)."""
        lower = np.array([t.lower for t in self.tiers])
        return np.searchsorted(lower, np.asarray(notional, dtype=float), side="right") - 1


def maintenance_margin(table: MarginTable, notional: np.ndarray | float) -> np.ndarray:
    """:math:`N m_n - d_n` for each notional position value ``notional`` (USDC)."""
    n = np.abs(np.asarray(notional, dtype=float))
    tier = table.tier_of(n)
    return n * table.rates[tier] - table.deductions[tier]


def initial_margin(
    table: MarginTable, notional: np.ndarray | float, leverage: float | None = None
) -> np.ndarray:
    """:math:`N / L`: at the tier's maximum leverage, or at ``leverage`` (capped by it)."""
    n = np.abs(np.asarray(notional, dtype=float))
    cap = np.array([t.max_leverage for t in table.tiers])[table.tier_of(n)]
    chosen = cap if leverage is None else np.minimum(float(leverage), cap)
    return n / chosen


def liquidation_price(table: MarginTable, price: float, size: float, equity: float) -> float:
    """The published liquidation price of one position (cross margin, no other positions):
    ``size`` signed (negative: short), ``equity`` the account value at ``price``. NaN for a
    flat position; a long with margin beyond its notional has no positive liquidation price
    (the formula's value is returned, ≤ 0).
    """
    if size == 0:
        return math.nan
    side = 1.0 if size > 0 else -1.0
    notional = abs(size) * price
    available = equity - float(maintenance_margin(table, notional))
    rate = float(table.rates[table.tier_of(notional)])
    return price - side * available / abs(size) / (1.0 - rate * side)


#: Hyperliquid's published mainnet margin tables (docs "Margin tiers", read 2026-11):
#: (lower bound USDC, max leverage) per asset.
PUBLISHED_TABLES: dict[str, tuple[tuple[float, float], ...]] = {
    "BTC": ((0.0, 40.0), (150e6, 20.0)),
    "ETH": ((0.0, 25.0), (100e6, 15.0)),
    "SOL": ((0.0, 20.0), (70e6, 10.0)),
    "XRP": ((0.0, 20.0), (40e6, 10.0)),
}
#: The docs' testnet tables, which have more tiers (the deduction rule's richer case).
TESTNET_TABLES: dict[str, tuple[tuple[float, float], ...]] = {
    "BTC": ((0.0, 40.0), (10e3, 25.0), (50e3, 10.0), (100e3, 5.0), (300e3, 3.0)),
    "ETH": ((0.0, 25.0), (20e3, 10.0), (50e3, 5.0), (200e3, 3.0)),
}
#: The table of the listed assets without their own (DOGE, LINK, AVAX, … in the docs).
GENERIC_TABLE: tuple[tuple[float, float], ...] = ((0.0, 10.0), (20e6, 5.0))
PUBLISHED_SOURCE = "Hyperliquid docs, Trading › Margin tiers (mainnet tables), read 2026-11"


def published_tables() -> dict[str, MarginTable]:
    """The published mainnet tables as :class:`MarginTable` objects."""
    return {asset: MarginTable.of(rows) for asset, rows in PUBLISHED_TABLES.items()}
