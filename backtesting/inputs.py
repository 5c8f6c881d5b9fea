"""Inputs a backtest derives from its history: the rolling volatility and the VaR/ES
scenario inputs, each known on a day from data strictly before it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from backtesting.replay import MarketHistory, VarInputs
from backtesting.spec import VOL_SPEC, BacktestSpec
from calibration.realtime import RealtimeVolatility, combine, ewma_realtime, realtime_volatility
from calibration.returns import log_return_frame
from calibration.rolling import RollingConfig, rolling_forecasts_many


def rolling_config(spec: BacktestSpec, horizon: int) -> RollingConfig:
    """The refit schedule of the backtest's volatility model."""
    return RollingConfig(window=spec.window, refit_every=spec.refit_every, horizon=horizon)


def rolling_volatility(
    history: MarketHistory,
    config: RollingConfig,
    start: pd.Timestamp,
    *,
    workers: int = 2,
    mapper: Callable[[Callable, Iterable], Iterable] | None = None,
) -> tuple[dict[str, RealtimeVolatility], dict[str, int]]:
    """Per underlying, :data:`backtesting.spec.VOL_SPEC` re-estimated every
    ``config.refit_every`` days on the trailing ``config.window`` returns and filtered daily in
    between, from forecast origin ``start``; the EWMA filter serves the days before its first
    window is full. Returns the volatility and the number of refits per underlying. The fits
    run in ``workers`` processes, or as tasks through ``mapper`` (a Dask client's).
    """
    # the gap rule: a k-day return enters as r/sqrt(k)
    returns = {a: r.values for a, r in log_return_frame(history.close)[1].items()}
    rolling = rolling_forecasts_many(
        returns,
        VOL_SPEC,
        config,
        start=start,
        end=history.days.max(),
        max_workers=workers,
        mapper=mapper,
    )
    out = {}
    for asset, series in returns.items():
        fallback = ewma_realtime(series, config.horizon, asset=asset)
        out[asset] = (
            combine(realtime_volatility(rolling[asset], series), fallback)
            if len(rolling[asset].variances)
            else fallback
        )
    return out, {a: int(len(r.refits)) for a, r in rolling.items()}


def var_inputs(history: MarketHistory, realtime: Mapping[str, RealtimeVolatility]) -> VarInputs:
    """Scenario inputs under the gap rule: the day after a gap has its (scaled) return."""
    returns = log_return_frame(history.close)[0]
    iv_changes = log_return_frame(history.iv)[0]
    cond = pd.DataFrame({a: r.cond_vol for a, r in realtime.items()}).reindex(returns.index)
    nxt = pd.DataFrame({a: np.sqrt(r.forecasts[1]) for a, r in realtime.items()}).reindex(
        returns.index
    )
    return VarInputs(returns, iv_changes, cond, nxt)
