"""Aevo portfolio margin, implemented from Aevo's published documentation (docs.aevo.xyz,
Options Specifications › Portfolio Margin, read 2026-11).

Maintenance margin is the scenario margin plus the floor margin; initial margin is 1.25 × it.
The **scenario margin** is the worst loss over 15 scenarios: spot moved by 100 %, 50 % or 0 of
the maximum move up or down, each with implied vols shifted up by the maximum shift, left, or
shifted down — *parallel* shifts, adding to or subtracting from each option's IV (ETH at
launch: spot ±20 %, IV +50 and −25 vol points). Options are USD-settled.

The **floor margin** charges the net short option exposure at each strike (calls and puts of a
strike and expiry netted). Its rate is not in the part of Aevo's page we could read, so it is a
parameter here (``floor_rate``, a fraction of spot per net short unit) that is 0 — no floor —
unless a parameter set gives Aevo's value; a report showing this model says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from margin_engine.book import MarginResult, Positions
    from margin_engine.params import ModelParams

__all__ = ["PUBLISHED", "AevoParams", "aevo_margin", "scenarios"]

IM_FACTOR = 1.25
MIN_VOL = 0.01


@dataclass(frozen=True)
class AevoParams:
    """Maximum spot moves and IV shifts (vol points), and the floor margin's rate."""

    spot_up: float = 0.20
    spot_down: float = 0.20
    iv_up: float = 0.50
    iv_down: float = 0.25
    floor_rate: float = 0.0

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
    "Aevo docs, Options Specifications › Portfolio Margin (ETH launch values), read 2026-11"
)


def aevo_margin(positions: Positions, params: ModelParams | None = None) -> MarginResult:
    """Aevo scenario (+ floor) margin per account (USDC; see the module)."""
    from margin_engine.instruments import Kind
    from margin_engine.venues.books import (
        _per_account,
        _underlyings,
        _usd_per_unit,
        usd_scenario_pnl,
    )

    p = (params.aevo if params is not None else None) or PUBLISHED
    table = positions.book.table
    names, of_instrument, price = _underlyings(positions)
    n_u = len(names)
    spot_shocks, shifts = scenarios(p)
    pnl = usd_scenario_pnl(
        positions, spot_shocks, lambda vol, years: np.maximum(vol + shifts[None, :], MIN_VOL)
    )
    to_u = np.zeros((positions.n_groups, n_u))
    for g, (_, u) in enumerate(table.groups):
        to_u[g, names.index(u)] = 1.0
    per_group = np.asarray(positions.group_matrix @ pnl).reshape(
        positions.n_accounts, positions.n_groups, -1
    )
    scenario = np.einsum("agj,gu->auj", per_group, to_u).reshape(positions.n_accounts * n_u, -1)
    scan = np.maximum(-scenario.min(axis=1), 0.0)
    # net short units per (account, expiry, strike), calls with puts
    option = table.kind[positions.instrument] == Kind.OPTION
    key = np.stack(
        [
            positions.account[option],
            np.rint(table.years[positions.instrument[option]] * 365 * 86_400).astype(np.int64),
            table.strike[positions.instrument[option]].view(np.int64),
            of_instrument[positions.instrument[option]],
        ],
        axis=1,
    )
    floor: np.ndarray = np.zeros(positions.n_accounts * n_u)
    if len(key):
        unique, row = np.unique(key, axis=0, return_inverse=True)
        net = np.bincount(row.reshape(-1), weights=positions.quantity[option])
        short = np.maximum(-net, 0.0)
        rows = unique[:, 0] * n_u + unique[:, 3]
        floor = np.bincount(
            rows, weights=short * p.floor_rate * price[unique[:, 3]], minlength=len(floor)
        )
    maintenance = scan + floor
    equity = (positions.per_group(positions.book.value * _usd_per_unit(positions)) @ to_u).reshape(
        -1
    )
    return _per_account(
        positions,
        "aevo-pm",
        n_u,
        IM_FACTOR * maintenance,
        maintenance,
        equity,
        {"scenario": scan, "floor": floor},
    )
