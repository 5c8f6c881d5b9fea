"""Paradex portfolio margin (beta), implemented from Paradex's published documentation
(docs.paradex.trade, Risk › Portfolio Margin, read 2026-11).

Per underlying, in USD:

.. math::

    \\text{SCAN} = \\max\\big(0, \\max_j -w_j P_j\\big), \\qquad
    \\text{MDR} = (a\\,|\\Delta_{net}| + h\\,\\Delta_{hedged})\\,S, \\qquad
    \\Delta_{hedged} = \\frac{\\Delta_{gross} - |\\Delta_{net}|}{2},

with :math:`P_j` the book's P&L in scenario :math:`j` (spot × (1 + shock), each option's IV ×
:math:`1 + v_j (30 / \\max(1, DTE))^{p}`, :math:`p` = 30 % below 30 days, 13 % from 30 days),
:math:`w_j` the scenario's weight (the tail scenarios count at less than 100 %), and the
net and gross coin deltas of the positions. Then

.. math::

    IMR = \\max(\\text{SCAN}, \\text{MDR}) + \\text{provisions}, \\qquad
    MMR = 50\\,\\% \\times \\max(\\text{SCAN}, \\text{MDR}) + \\text{provisions}.

The funding provision (expected funding over the next 8 hours) and the fee provision need a
funding forecast and the account's fee tier; they are not modelled here (zero). Paradex's
weights have changed over time; the set here is the one published when read, and a parameter
set can carry another (``venues.paradex``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from margin_engine.book import MarginResult, Positions
    from margin_engine.params import ModelParams

__all__ = [
    "PUBLISHED",
    "ParadexParams",
    "min_delta_requirement",
    "paradex_margin",
    "paradex_scenarios",
]


@dataclass(frozen=True)
class ParadexParams:
    """Scenarios (spot shock, vol shock, weight), the MDR's net and hedged rates and the
    maintenance share.
    """

    scenarios: tuple[tuple[float, float, float], ...]
    net_delta_rate: float = 0.02
    hedged_delta_rate: float = 0.01
    maintenance_share: float = 0.5
    short_term_power: float = 0.30
    long_term_power: float = 0.13

    def __post_init__(self) -> None:
        if not self.scenarios:
            raise ValueError("paradex: at least one scenario is needed")
        for k, (spot, vol, weight) in enumerate(self.scenarios):
            if not (math.isfinite(spot) and spot > -1):
                raise ValueError(f"paradex.scenarios[{k}]: spot shock must exceed -100 %")
            if not (math.isfinite(vol) and vol > -1):
                raise ValueError(f"paradex.scenarios[{k}]: vol shock must exceed -100 %")
            if not (math.isfinite(weight) and 0 <= weight <= 1):
                raise ValueError(f"paradex.scenarios[{k}]: weight must be in [0, 1]")
        for name in ("net_delta_rate", "hedged_delta_rate", "maintenance_share"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 <= value <= 1):
                raise ValueError(f"paradex.{name} must be in [0, 1], got {value!r}")


def _published_scenarios() -> tuple[tuple[float, float, float], ...]:
    rows = [(0.16, 0.40, 1.0)]
    for spot in (0.12, 0.08, 0.04, 0.0, -0.04, -0.08, -0.12):
        rows += [(spot, 0.40, 1.0), (spot, -0.22, 1.0)]
    rows.append((-0.16, 0.40, 1.0))
    tails = [(-0.66, 0.24), (-0.33, 0.48), (0.5, 0.32), (1.0, 0.16), (2.0, 0.08)]
    tails += [(3.0, 0.0533), (4.0, 0.04), (5.0, 0.032)]
    return tuple(rows + [(s, 0.40, w) for s, w in tails])


PUBLISHED = ParadexParams(_published_scenarios())
PUBLISHED_SOURCE = (
    "Paradex docs, Risk › Portfolio Margin (24 scenarios, MDR 2 % / 1 %), read 2026-11"
)


def min_delta_requirement(
    net: np.ndarray | float, gross: np.ndarray | float, spot: np.ndarray | float, p: ParadexParams
) -> np.ndarray:
    """:math:`(a|\\Delta_{net}| + h (\\Delta_{gross} - |\\Delta_{net}|)/2) S`."""
    net, gross = np.abs(np.asarray(net, dtype=float)), np.asarray(gross, dtype=float)
    hedged = (gross - net) / 2.0
    return (p.net_delta_rate * net + p.hedged_delta_rate * hedged) * np.asarray(spot)


def paradex_scenarios(positions: Positions, p: ParadexParams) -> np.ndarray:
    """Each (account, underlying)'s USD P&L in every scenario, unweighted (rows × 24)."""
    from margin_engine.venues.books import scenario_by_underlying, usd_scenario_pnl

    shocks = np.array([s for s, _, _ in p.scenarios])
    vol_shocks = np.array([v for _, v, _ in p.scenarios])

    def shocked(vol: np.ndarray, years: np.ndarray) -> np.ndarray:
        dte = np.maximum(years * 365.0, 1.0)
        power = np.where(dte < 30, p.short_term_power, p.long_term_power)
        return vol * (1.0 + vol_shocks[None, :] * (30.0 / dte) ** power)

    return scenario_by_underlying(positions, usd_scenario_pnl(positions, shocks, shocked))


def paradex_margin(positions: Positions, params: ModelParams | None = None) -> MarginResult:
    """Paradex IMR and MMR per account (USDC; provisions not modelled, see the module)."""
    from margin_engine.venues.books import (
        _per_account,
        _per_underlying,
        _underlyings,
        _usd_delta,
        _usd_per_unit,
    )

    p = (params.paradex if params is not None else None) or PUBLISHED
    book = positions.book
    names, _, price = _underlyings(positions)
    n_u = len(names)
    weights = np.array([w for _, _, w in p.scenarios])
    delta = _usd_delta(positions)  # coin delta per unit as a USD holder sees it
    scenario = paradex_scenarios(positions, p)
    scan = np.maximum(-(scenario * weights[None, :]).min(axis=1), 0.0)
    net = _per_underlying(positions, n_u, delta)
    gross = _per_underlying(positions, n_u, np.abs(delta), absolute=True)
    spot = np.tile(price, positions.n_accounts)
    mdr = min_delta_requirement(net, gross, spot, p)
    initial = np.maximum(scan, mdr)
    equity = _per_underlying(positions, n_u, book.value * _usd_per_unit(positions))
    return _per_account(
        positions,
        "paradex-pm",
        n_u,
        initial,
        p.maintenance_share * initial,
        equity,
        {"scan": scan, "min_delta": mdr},
    )
