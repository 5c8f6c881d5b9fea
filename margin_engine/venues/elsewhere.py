"""Margin elsewhere: the same accounts under several (model, parameter set) columns, side by
side in USD, so that a committee sees what its set asks against what other venues would.

Each column is a label, a book model and its parameters; the table has one row per account
and one column per label (initial margin in USD: coin-settled rows at the index price). The
delta-only column shows what a linear model sees; the distance to the scenario models is the
gamma and vega risk it misses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from margin_engine.book import STABLE, MarginResult, Positions
from margin_engine.models import margin
from margin_engine.params import ModelParams

__all__ = ["Column", "margin_elsewhere", "usd_margins"]


@dataclass(frozen=True)
class Column:
    """One column of the comparison: its label, the model and the parameters it margins with."""

    label: str
    model: str
    params: ModelParams


def usd_margins(result: MarginResult, positions: Positions) -> pd.DataFrame:
    """Initial and maintenance margin per account in USD (rows summed over currencies)."""
    table = positions.book.table
    index = {u: positions.book.group_index_price[g] for g, (_, u) in enumerate(table.groups)}
    fx = np.array([1.0 if c in STABLE else index.get(c, np.nan) for c in result.currency])
    frame = pd.DataFrame(
        {
            "account": np.asarray(result.accounts, dtype=object)[result.account],
            "initial_margin": result.initial_margin * fx,
            "maintenance_margin": result.maintenance_margin * fx,
        }
    )
    return frame.groupby("account", sort=True).sum(min_count=1)


def margin_elsewhere(positions: Positions, columns: Sequence[Column]) -> pd.DataFrame:
    """Accounts × columns of initial margin in USD (see the module)."""
    out = {}
    for column in columns:
        usd = usd_margins(margin(positions, column.model, column.params), positions)
        out[column.label] = usd["initial_margin"]
    frame = pd.DataFrame(out)
    frame.index.name = "account"
    return frame.reindex(sorted(positions.accounts))
