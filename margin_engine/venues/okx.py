"""OKX portfolio margin, as far as OKX publishes it.

OKX margins each risk unit (an underlying) with modules MR1–MR9 and

.. math::

    MMR = \\max\\big(\\max(MR1, MR2, MR6) + MR3 + MR4 + MR5,\\ MR7_{adj}\\big),
    \\qquad IMR = 1.3 \\times MMR.

What this module implements from OKX's announcements (2021 scaling-factor notice, 2025
parameter adjustment):

- **MR1, spot shock**: the worst loss over spot moves of 0, ±1/3, ±2/3 and ±1 of the maximum
  move (BTC and ETH: ±12 % since January 2025) × vol up, unchanged, down;
- **MR6, extreme move**: the worst loss at ± the extreme move (BTC and ETH: ±24 %), vols
  unchanged;
- **MR4, basis risk**: :math:`\\sum_{expiries} |\\Delta_e| (e^{a T_e} - 1)` at the annualised
  move risk :math:`a` (BTC and ETH: 5 %), as Deribit's roll shock;
- **MR7, minimum charge scaling**: the raw charge scaled tier by tier, only the part of the raw
  margin within a tier multiplied by that tier's multiplier (:func:`scaled_minimum_charge`,
  OKX's own worked example in the tests).

What OKX does not publish in the announcements this implements, and so is *not* modelled:
the size of MR1's vol shifts (the set's PM vol shocks of the underlying stand in: the same
term-scaled ranges Deribit publishes), MR2 (theta decay), MR3 (vega term structure), MR5
(interest rate), MR8 (borrowing) and MR9 (stablecoin depeg), and the formula of MR7's raw
charge — so the book model's MMR is :math:`\\max(MR1, MR6) + MR4` and a caller with a raw
minimum charge scales it with :func:`scaled_minimum_charge`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from margin_engine.book import MarginResult, Positions
    from margin_engine.params import ModelParams

__all__ = ["OkxParams", "PUBLISHED", "scaled_minimum_charge"]

IM_FACTOR = 1.3


@dataclass(frozen=True)
class OkxParams:
    """OKX's published parameters for one underlying class."""

    mr1_max_move: float
    mr6_move: float
    mr4_annual: float
    mr7_tiers: tuple[tuple[float, float], ...]  # (raw margin lower bound USD, multiplier)

    def __post_init__(self) -> None:
        for name in ("mr1_max_move", "mr6_move", "mr4_annual"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 <= value <= 1):
                raise ValueError(f"okx.{name} must be in [0, 1], got {value!r}")
        lows = [low for low, _ in self.mr7_tiers]
        if not lows or lows[0] != 0 or any(b <= a for a, b in zip(lows, lows[1:], strict=False)):
            raise ValueError("okx.mr7_tiers: lower bounds must start at 0 and increase")
        if any(not (1 <= m <= 100) for _, m in self.mr7_tiers):
            raise ValueError("okx.mr7_tiers: multipliers must be in [1, 100]")


def scaled_minimum_charge(
    raw: float | np.ndarray, tiers: Sequence[tuple[float, float]]
) -> np.ndarray:
    """MR7 after OKX's scaling factor: each part of the raw minimum charge within a tier times
    that tier's multiplier, :math:`\\sum_n m_n (\\min(R, u_n) - l_n)^+`.
    """
    raw = np.asarray(raw, dtype=float)
    total = np.zeros_like(raw)
    bounds = [low for low, _ in tiers[1:]] + [math.inf]
    for (low, multiplier), upper in zip(tiers, bounds, strict=True):
        total += multiplier * np.clip(np.minimum(raw, upper) - low, 0.0, None)
    return total


def risk_unit_mmr(
    mr1: float,
    mr6: float,
    mr4: float,
    mr7_adjusted: float = 0.0,
    *,
    mr2: float = 0.0,
    mr3: float = 0.0,
    mr5: float = 0.0,
) -> float:
    """:math:`\\max(\\max(MR1, MR2, MR6) + MR3 + MR4 + MR5, MR7_{adj})`."""
    return max(max(mr1, mr2, mr6) + mr3 + mr4 + mr5, mr7_adjusted)


_TIERS_2025 = (
    (0.0, 1.0),
    (250e3, 2.0),
    (500e3, 4.0),
    (1e6, 6.0),
    (2e6, 8.0),
    (3e6, 10.0),
    (4e6, 12.0),
)
#: OKX's 2025 values for BTC and ETH (MR1 and MR6 from 6 January, MR4 at once, MR7 tiers from
#: 15 January 2025), by underlying; other underlyings take ``OTHERS``.
PUBLISHED: dict[str, OkxParams] = {
    "BTC": OkxParams(0.12, 0.24, 0.05, _TIERS_2025),
    "ETH": OkxParams(0.12, 0.24, 0.05, _TIERS_2025),
    "SOL": OkxParams(0.25, 0.36, 0.15, _TIERS_2025),
}
OTHERS = OkxParams(0.25, 0.50, 0.30, _TIERS_2025)
#: The tiers of OKX's 2021 scaling-factor notice for BTC and ETH (its worked example's).
TIERS_2021 = (
    (0.0, 1.0),
    (10e3, 2.0),
    (70e3, 4.0),
    (170e3, 6.0),
    (300e3, 8.0),
    (470e3, 10.0),
    (700e3, 12.0),
)
PUBLISHED_SOURCE = (
    "OKX announcements: portfolio margin parameters (2 Jan 2025), scaling factor (2021)"
)


# ---------------------------------------------------------------------------------------------
# the model over a book (MR1, MR6, MR4; see the module)
# ---------------------------------------------------------------------------------------------

N_MR1 = 7 * 3
N_COLUMNS = N_MR1 + 2


def okx_margin(positions: Positions, params: ModelParams | None = None) -> MarginResult:
    """OKX portfolio margin (MR1, MR6, MR4) per account and settlement currency, in the
    settlement currency as PM (see the module for what is and is not modelled).
    """
    from margin_engine.book import STABLE, MarginResult
    from margin_engine.instruments import Kind  # imported here: params imports this module
    from margin_engine.kernels import Extra, scan_rows
    from margin_engine.params import ModelParams
    from margin_engine.portfolio_margin import vol_shocks

    params = params or ModelParams()
    chosen = dict(PUBLISHED) | dict(params.okx or {})
    book, table = positions.book, positions.book.table
    n = len(table)
    group_underlying = [u for _, u in table.groups]
    underlying_of = np.array(group_underlying, dtype=object)[table.group]
    moves = np.empty((n, N_COLUMNS))
    vols = np.tile(book.vol[:, None], (1, N_COLUMNS))
    for underlying in dict.fromkeys(group_underlying):
        rows = underlying_of == underlying
        p = chosen.get(underlying, OTHERS)
        grid = np.repeat(np.linspace(-p.mr1_max_move, p.mr1_max_move, 7), 3)
        moves[rows] = np.concatenate([grid, [-p.mr6_move, p.mr6_move]])
        options = rows & (table.kind == Kind.OPTION)
        if options.any():
            up, down = vol_shocks(
                book.vol[options], table.years[options], params.pm_for(underlying)
            )
            per_vol = np.stack([up, book.vol[options], down], axis=1)
            vols[options, :N_MR1] = np.tile(per_vol, (1, 7))
    arrays = book.scenario_pnl(moves, vols)
    # MR4 per expiry bucket: |Δ| (coin) × (e^{aT} - 1), in the settlement currency
    index = book.group_index_price
    to_quote = np.array([index[g] if c in STABLE else 1.0 for g, (c, _) in enumerate(table.groups)])
    weights = np.array(
        [
            math.expm1(chosen.get(group_underlying[g], OTHERS).mr4_annual * max(t, 0.0))
            * to_quote[g]
            for (g, _), t in zip(table.buckets, table.bucket_years, strict=True)
        ]
    )
    scan = scan_rows(positions, arrays, (0, N_MR1, N_COLUMNS), weights, frozenset({Extra.ROLL}))
    accounts, n_groups = positions.n_accounts, positions.n_groups
    mr1 = np.maximum(-scan.worst_pnl[:, 0], 0.0).reshape(accounts, n_groups)
    mr6 = np.maximum(-scan.worst_pnl[:, 1], 0.0).reshape(accounts, n_groups)
    mr4 = scan.bucket_abs.reshape(accounts, n_groups)
    mmr = np.maximum(mr1, mr6) + mr4
    _, account_of_row, currency_of_row = positions.layout
    maintenance = positions.to_currency(mmr)
    return MarginResult(
        model="okx-pm",
        account=account_of_row,
        accounts=positions.accounts,
        currency=currency_of_row,
        initial_margin=IM_FACTOR * maintenance,
        maintenance_margin=maintenance,
        equity=positions.to_currency(scan.value.reshape(accounts, n_groups)),
        components={
            "mr1": positions.to_currency(mr1),
            "mr6": positions.to_currency(mr6),
            "mr4": positions.to_currency(mr4),
        },
        errors=positions.errors,
    )
