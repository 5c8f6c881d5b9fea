"""Collateral haircuts with size tiers.

Tiers are applied bracket by bracket, like tax bands: with tiers (1M: 10 %, 10M: 12 %, ∞: 15 %),
collateral worth 3M USD is valued at 1M·0.90 + 2M·0.88. The value is continuous and
non-decreasing in the amount, and the average haircut never falls as a position grows.

A haircut is *breached* over an MPOR when the collateral loses more than the haircut: the
realised relative loss :math:`1 - P_{t+h}/P_t` exceeds it (strictly).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from margin_engine.book import Positions
from margin_engine.instruments import Kind
from margin_engine.params import CollateralParams, ModelParams


def haircut_value(value_usd: np.ndarray, params: CollateralParams) -> np.ndarray:
    """Collateral value after the tiered haircut, same shape as ``value_usd`` (>= 0)."""
    value_usd = np.asarray(value_usd, dtype=float)
    if (value_usd < 0).any():
        raise ValueError("collateral value must be >= 0")
    out = np.zeros_like(value_usd)
    lower = 0.0
    for tier in params.tiers:
        upper = np.inf if tier.up_to_usd is None else tier.up_to_usd
        in_band = np.clip(value_usd - lower, 0.0, upper - lower)
        out += in_band * (1.0 - tier.haircut)
        lower = upper
    return out


def effective_haircut(value_usd: np.ndarray, params: CollateralParams) -> np.ndarray:
    """Average haircut of a holding of ``value_usd`` (0 for an empty holding)."""
    value_usd = np.asarray(value_usd, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(value_usd > 0, 1.0 - haircut_value(value_usd, params) / value_usd, 0.0)


def haircut_breaches(relative_losses: np.ndarray, haircut: float | np.ndarray) -> np.ndarray:
    """``loss > haircut`` elementwise (a breach is strict)."""
    return np.asarray(relative_losses) > np.asarray(haircut)


def collateral_summary(positions: Positions, params: ModelParams | None = None) -> pd.DataFrame:
    """Spot holdings per account and asset: amount, USD value, haircut and value after it."""
    params = params or ModelParams()
    book, table = positions.book, positions.book.table
    spot = table.kind[positions.instrument] == Kind.SPOT
    if not spot.any():
        return pd.DataFrame(
            columns=["account", "asset", "amount", "value_usd", "haircut", "collateral_value_usd"]
        )
    frame = pd.DataFrame(
        {
            "account": np.asarray(positions.accounts, dtype=object)[positions.account[spot]],
            "asset": [table.instruments[i].underlying for i in positions.instrument[spot]],
            "amount": positions.quantity[spot],
            "price": book.spot[positions.instrument[spot]],
        }
    )
    frame = frame.groupby(["account", "asset"], as_index=False).agg(
        amount=("amount", "sum"), price=("price", "first")
    )
    frame["value_usd"] = frame["amount"].clip(lower=0) * frame["price"]
    frame["collateral_value_usd"] = [
        float(haircut_value(np.array([v]), params.collateral_for(a))[0])
        for a, v in zip(frame["asset"], frame["value_usd"], strict=True)
    ]
    frame["haircut"] = np.where(
        frame["value_usd"] > 0, 1 - frame["collateral_value_usd"] / frame["value_usd"], 0.0
    )
    return frame.drop(columns="price")
