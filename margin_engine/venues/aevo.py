"""Aevo portfolio margin, implemented from Aevo's published documentation (docs.aevo.xyz,
Options Specifications › Portfolio Margin, read 2026-11).

Maintenance margin is the scenario margin plus the floor margin; initial margin is 1.25 × it.
The **scenario margin** is the worst loss over 15 scenarios: spot moved by 100 %, 50 % or 0 of
the maximum move up or down, each with implied vols shifted up by the maximum shift, left, or
shifted down — *parallel* shifts, adding to or subtracting from each option's IV (ETH at
launch: spot ±20 %, IV +50 and −25 vol points). Options are USD-settled.

The **floor margin** charges the net short option exposure at each strike (calls and puts of a
strike and expiry netted) at a unit floor margin: 0.01 of the underlying per net short unit
(``floor_rate``, a fraction of spot; 0.01 ETH at launch).

Options are revalued with Black-76 on the spot (no rate, no carry) over the time to expiry in
days / 365: that reproduces every line of Aevo's two worked examples (the short strangle and the
bull spread, ``tests/margin_engine/test_venue_aevo.py``) to the cent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from margin_engine.book import MarginResult, Positions
    from margin_engine.params import ModelParams

__all__ = ["PUBLISHED", "AevoParams", "aevo_margin", "aevo_scenarios", "scenarios"]

IM_FACTOR = 1.25
MIN_VOL = 0.01


@dataclass(frozen=True)
class AevoParams:
    """Maximum spot moves and IV shifts (vol points), and the floor margin's rate."""

    spot_up: float = 0.20
    spot_down: float = 0.20
    iv_up: float = 0.50
    iv_down: float = 0.25
    floor_rate: float = 0.01

    def __post_init__(self) -> None:
        for name, high in (
            ("spot_up", 10.0),
            ("spot_down", 0.99),
            ("iv_up", 5.0),
            ("iv_down", 5.0),
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 <= value <= high):
                raise ValueError(f"aevo.{name} must be in [0, {high}], got {value!r}")
        if not (math.isfinite(self.floor_rate) and 0 <= self.floor_rate <= 1):
            raise ValueError(f"aevo.floor_rate must be in [0, 1], got {self.floor_rate!r}")


def scenarios(p: AevoParams) -> tuple[np.ndarray, np.ndarray]:
    """The 15 scenarios in Aevo's order: spot shocks and IV shifts (vol points)."""
    spots = [p.spot_up, 0.5 * p.spot_up, 0.0, -0.5 * p.spot_down, -p.spot_down]
    shifts = [p.iv_up, 0.0, -p.iv_down]
    grid = [(s, v) for s in spots for v in shifts]
    return np.array([s for s, _ in grid]), np.array([v for _, v in grid])


PUBLISHED = AevoParams()
PUBLISHED_SOURCE = (
    "Aevo docs, Options Specifications › Portfolio Margin (ETH launch values, unit floor margin "
    "0.01 ETH), read 2026-11"
)


def _floor(
    positions: Positions, of_instrument: np.ndarray, price: np.ndarray, n_u: int, rate: float
) -> np.ndarray:
    """Net short option units per (account, expiry, strike) — calls and puts of a strike
    netted — times ``rate`` × spot, summed per (account, underlying).
    """
    from margin_engine.instruments import Kind
    from margin_engine.venues.books import net_short_per_strike

    table = positions.book.table
    option = np.flatnonzero(table.kind == Kind.OPTION)
    if not len(option):
        return np.zeros(positions.n_accounts * n_u)
    seconds = np.rint(table.years[option] * 365 * 86_400).astype(np.int64)
    keys = np.stack([seconds, table.strike[option].view(np.int64), of_instrument[option]], axis=1)
    unique, strike_of = np.unique(keys, axis=0, return_inverse=True)  # per instrument: small
    column = np.full(len(table), -1, dtype=np.int64)
    column[option] = strike_of.reshape(-1)
    short = net_short_per_strike(positions, column, unique[:, 2], n_u)
    return short * rate * np.tile(price, positions.n_accounts)


def aevo_scenarios(positions: Positions, p: AevoParams) -> np.ndarray:
    """Each (account, underlying)'s USD P&L in the 15 scenarios (rows × 15)."""
    from margin_engine.venues.books import scenario_by_underlying, usd_scenario_pnl

    spot_shocks, shifts = scenarios(p)
    pnl = usd_scenario_pnl(
        positions, spot_shocks, lambda vol, years: np.maximum(vol + shifts[None, :], MIN_VOL)
    )
    return scenario_by_underlying(positions, pnl)


def aevo_margin(positions: Positions, params: ModelParams | None = None) -> MarginResult:
    """Aevo scenario (+ floor) margin per account (USDC; see the module)."""
    from margin_engine.venues.books import (
        _per_account,
        _per_underlying,
        _underlyings,
        _usd_per_unit,
    )

    p = (params.aevo if params is not None else None) or PUBLISHED
    names, of_instrument, price = _underlyings(positions)
    n_u = len(names)
    scenario = aevo_scenarios(positions, p)
    scan = np.maximum(-scenario.min(axis=1), 0.0)
    floor: np.ndarray = np.zeros(positions.n_accounts * n_u)
    if p.floor_rate > 0:
        floor = _floor(positions, of_instrument, price, n_u, p.floor_rate)
    maintenance = scan + floor
    equity = _per_underlying(positions, n_u, positions.book.value * _usd_per_unit(positions))
    return _per_account(
        positions,
        "aevo-pm",
        n_u,
        IM_FACTOR * maintenance,
        maintenance,
        equity,
        {"scenario": scan, "floor": floor},
    )
