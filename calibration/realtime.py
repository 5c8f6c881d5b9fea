"""Volatility and moves as a daily run would have known them: the inputs of a backtest without
look-ahead.

From rolling forecasts (:mod:`calibration.rolling`: re-estimated every ``refit_every`` days on a
trailing window, filtered daily in between) this keeps, for every day ``s``,

* ``cond_vol[s]`` — :math:`\\sigma_{s\\mid s-1}`, the one-step forecast made the day before;
* ``std_resid[s]`` — :math:`z_s = r_s / \\sigma_{s\\mid s-1}`, known at the close of ``s``;
* ``forecasts.loc[t, h]`` — the variance of day ``t + h`` forecast at ``t``.

Filtered historical simulation at origin ``t`` then rescales the last ``lookback`` residuals
known at ``t`` by the forecast path from ``t`` — every input dated ``t`` or earlier. (A
re-filter of the whole lookback with today's parameters, as Prisma does, would need the
parameters of every refit; residuals of the day's own forecasts are what was actually known,
and differ from it only by the parameter drift between refits.)

The moves follow :func:`calibration.recommend.path_extremes` (worst point of each circular-block
path within the MPOR), without anti-procyclicality: they are the raw quantiles a backtest scales.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from calibration._typing import DayLike
from calibration.filters import ewma_variance_path
from calibration.recommend import path_extremes
from calibration.rolling import RollingForecasts
from vocabulary import EWMA_LAMBDA

MIN_RESIDUALS = 250  # fewer standardized residuals than this give no FHS move


@dataclass(frozen=True)
class RealtimeVolatility:
    """Series of one underlying, indexed by day (see the module docstring)."""

    asset: str
    cond_vol: pd.Series
    std_resid: pd.Series
    forecasts: pd.DataFrame

    @property
    def horizon(self) -> int:
        """The longest forecast horizon held, in days."""
        return int(self.forecasts.columns.max()) if len(self.forecasts.columns) else 0

    def vol_now(self, origin: DayLike) -> float:
        """:math:`\\sigma_{t+1\\mid t}` for origin ``t``."""
        return float(np.sqrt(self.forecasts.loc[pd.Timestamp(origin), 1]))


def realtime_volatility(rolling: RollingForecasts, returns: pd.Series) -> RealtimeVolatility:
    """The per-day series of ``rolling`` (forecasts from origins) against ``returns``.

    Parameters
    ----------
    rolling : RollingForecasts
        Forecasts with origins on consecutive days of ``returns``.
    returns : pd.Series
        The decimal log returns the forecasts were made from, shape (n,).
    """
    returns = returns.sort_index()
    index = pd.DatetimeIndex(pd.to_datetime(returns.index))
    returns = pd.Series(returns.to_numpy(dtype=float), index=index)
    forecasts = rolling.variances.sort_index()
    origins = pd.DatetimeIndex(forecasts.index)
    position = index.get_indexer(origins)
    if (position < 0).any():
        raise ValueError(f"{rolling.asset}: forecast origins that are not days of the returns")
    nxt = position + 1
    inside = nxt < len(index)
    cond_vol = pd.Series(
        np.sqrt(forecasts[1].to_numpy()[inside]), index=index[nxt[inside]], name=rolling.asset
    )
    std_resid = (returns.reindex(cond_vol.index) / cond_vol).rename(rolling.asset)
    return RealtimeVolatility(rolling.asset, cond_vol, std_resid, forecasts)


def ewma_realtime(
    returns: pd.Series, horizon: int, lam: float = EWMA_LAMBDA, asset: str = ""
) -> RealtimeVolatility:
    """The RiskMetrics EWMA filter as a :class:`RealtimeVolatility`: flat forecasts
    :math:`\\sigma^2_{t+h\\mid t} = \\sigma^2_{t+1\\mid t}`, each from returns up to ``t``; the
    variance starts at the mean square of the first 30 returns.
    """
    returns = returns.sort_index().astype(float)
    index = pd.DatetimeIndex(pd.to_datetime(returns.index))
    r2 = np.nan_to_num(returns.to_numpy()) ** 2
    variance = ewma_variance_path(r2, lam) if len(r2) else np.full(1, np.nan)
    # variance[t + 1] is the forecast made at day t for day t + 1
    forecasts = pd.DataFrame(
        np.repeat(variance[1:, None], horizon, axis=1),
        index=index,
        columns=list(range(1, horizon + 1)),
    )
    forecasts.index.name = "origin"
    cond_vol = pd.Series(np.sqrt(variance[1:-1]), index=index[1:], name=asset)
    std_resid = (pd.Series(returns.to_numpy()[1:], index=index[1:]) / cond_vol).rename(asset)
    return RealtimeVolatility(asset, cond_vol, std_resid, forecasts)


def combine(primary: RealtimeVolatility, fallback: RealtimeVolatility) -> RealtimeVolatility:
    """``primary`` where it exists, ``fallback`` before it (e.g. EWMA until a GARCH window is
    full); ``source`` marks which served each day.
    """
    first = primary.forecasts.index.min() if len(primary.forecasts) else None
    if first is None:
        return fallback

    def join(a, b):
        return pd.concat([b[b.index < first], a[a.index >= first]])

    forecasts = join(primary.forecasts, fallback.forecasts[primary.forecasts.columns])
    cond_vol = pd.concat(
        [
            fallback.cond_vol[fallback.cond_vol.index <= first],
            primary.cond_vol[primary.cond_vol.index > first],
        ]
    )
    std_resid = pd.concat(
        [
            fallback.std_resid[fallback.std_resid.index <= first],
            primary.std_resid[primary.std_resid.index > first],
        ]
    )
    return RealtimeVolatility(primary.asset, cond_vol, std_resid, forecasts)


def fhs_moves(
    realtime: RealtimeVolatility,
    origins: pd.DatetimeIndex,
    horizon: int,
    confidence: float,
    lookback: int = 1000,
) -> pd.DataFrame:
    """Down and up moves (positive simple-return fractions) at ``confidence`` over ``horizon``
    days from each origin: filtered historical simulation with the residuals known at the origin.

    Returns a frame indexed by origin with ``down``, ``up``, ``price_range`` (the larger) and
    ``samples``; origins without a forecast or with fewer than ``MIN_RESIDUALS`` residuals get
    no row (the caller reports them as not covered).
    """
    if not 1 <= horizon <= realtime.horizon:
        raise ValueError(f"horizon must be in 1..{realtime.horizon}, got {horizon}")
    if not 0.5 < confidence < 1:
        raise ValueError(f"confidence must be in (0.5, 1), got {confidence}")
    z_all = realtime.std_resid.dropna()
    z_index = z_all.index.to_numpy()
    z_values = z_all.to_numpy()
    sigma = np.sqrt(realtime.forecasts[list(range(1, horizon + 1))])
    rows = []
    for origin in pd.DatetimeIndex(origins):
        if origin not in sigma.index:
            continue
        end = np.searchsorted(z_index, origin.to_datetime64(), side="right")
        z = z_values[max(0, end - lookback) : end]
        if len(z) < MIN_RESIDUALS:
            continue
        down, up = path_extremes(z, sigma.loc[origin].to_numpy(), horizon)
        d = 1.0 - float(np.exp(np.quantile(down, 1 - confidence)))
        u = float(np.expm1(np.quantile(up, confidence)))
        rows.append((origin, d, u, max(d, u), len(z)))
    frame = pd.DataFrame(
        rows, columns=["origin", "down", "up", "price_range", "samples"]
    ).set_index("origin")
    return frame
