"""Standard (isolated) margin: position by position, summed per settlement currency.

* futures and perpetuals: IM = ``future_initial`` × notional, MM = ``future_maintenance`` ×
  notional, notional in the settlement currency (coin for inverse: |N|/F; quote for linear:
  |q|·F);
* short options, per unit of underlying, in units of the underlying's price:
  IM = max(a − OTM/F, b) + mark, MM = mm + mark (Deribit's formulas; OTM = max(K − F, 0) for a
  call, max(F − K, 0) for a put);
* long options and spot: none — the premium is paid, the coin is collateral.

No offsets: it is the baseline that portfolio margin is compared with.
"""

from __future__ import annotations

import numpy as np

from margin_engine.book import STABLE, MarginResult, Positions
from margin_engine.instruments import Kind
from margin_engine.params import ModelParams


def standard_margin(positions: Positions, params: ModelParams | None = None) -> MarginResult:
    """Standard (isolated) margin per account and settlement currency."""
    params = params or ModelParams()
    book, table = positions.book, positions.book.table
    i = positions.instrument
    q = positions.quantity
    kind = table.kind[i]
    group_currency = [c for c, _ in table.groups]
    stable = np.array([c in STABLE for c in group_currency])[table.group[i]]
    forward = book.forward[i]
    std = [params.standard_for(u) for _, u in table.groups]
    g = table.group[i]
    fut_im = np.array([s.future_initial for s in std])[g]
    fut_mm = np.array([s.future_maintenance for s in std])[g]
    opt_a = np.array([s.option_a for s in std])[g]
    opt_b = np.array([s.option_b for s in std])[g]
    opt_mm = np.array([s.option_maintenance for s in std])[g]

    futures = np.isin(kind, (Kind.PERPETUAL, Kind.FUTURE))
    notional = np.where(table.inverse[i], np.abs(q) / forward, np.abs(q) * forward)
    im = np.where(futures, fut_im * notional, 0.0)
    mm = np.where(futures, fut_mm * notional, 0.0)

    short_option = (kind == Kind.OPTION) & (q < 0)
    strike = table.strike[i]
    otm = np.where(
        table.is_call[i], np.maximum(strike - forward, 0.0), np.maximum(forward - strike, 0.0)
    )
    mark = book.value[i]  # coin for inverse options, quote for linear
    unit_price = np.where(stable, forward, 1.0)  # one unit of underlying in settlement currency
    option_im = (
        np.maximum(opt_a - np.nan_to_num(otm) / forward, opt_b) * unit_price + mark
    ) * np.abs(q)
    option_mm = (opt_mm * unit_price + mark) * np.abs(q)
    im = np.where(short_option, option_im, im)
    mm = np.where(short_option, option_mm, mm)

    present, account_of_row, currency_of_row = positions.layout
    total = positions.per_position_to_currency

    return MarginResult(
        model="standard",
        account=account_of_row,
        accounts=positions.accounts,
        currency=currency_of_row,
        initial_margin=total(im),
        maintenance_margin=total(mm),
        equity=positions.equity(),
        components={
            "futures": total(np.where(futures, im, 0.0)),
            "short_options": total(np.where(short_option, im, 0.0)),
        },
        errors=positions.errors,
    )
