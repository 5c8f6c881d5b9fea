"""Model-free volatility filters: the RiskMetrics EWMA recursion and realised volatility.

They need no fitted model, so margining an account and the first days of a backtest use them
where a GARCH fit is not (yet) available, and realised volatility stands in for an implied-vol
index an underlying does not have. Returns are decimal log returns under the workbench's gap
rule (:mod:`calibration.returns`); volatilities are decimal, daily unless said annualised.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import signal

from vocabulary import DAYS_PER_YEAR, EWMA_LAMBDA

__all__ = [
    "REALISED_WINDOW",
    "ewma_variance_path",
    "ewma_volatility",
    "realised_vol_as_iv",
]

#: Returns in the realised volatility that stands in for a 30-day implied-vol index.
REALISED_WINDOW = 30
_START_DAYS = 30  # the recursion starts at the mean square of the first 30 returns


def ewma_variance_path(squared: np.ndarray, lam: float = EWMA_LAMBDA) -> np.ndarray:
    """The EWMA variance before each day and the forecast after the last.

    .. math:: \\sigma^2_{t} = \\lambda\\,\\sigma^2_{t-1} + (1-\\lambda)\\,r^2_{t-1},
        \\qquad \\sigma^2_0 = \\tfrac{1}{30}\\textstyle\\sum_{s<30} r^2_s

    Parameters
    ----------
    squared : ndarray, shape (T,) or (T, N)
        Squared returns, oldest first; NaN counts as zero (no move).
    lam : float
        Decay, in (0, 1).

    Returns
    -------
    ndarray, shape (T + 1,) or (T + 1, N)
        Row ``t`` is the variance known before day ``t`` (from returns up to ``t - 1``); row
        ``T`` is the forecast for the day after the sample.
    """
    if not 0.0 < lam < 1.0:
        raise ValueError(f"lam: {lam!r} must be in (0, 1)")
    r2 = np.nan_to_num(np.asarray(squared, dtype=float))
    if len(r2) == 0:
        raise ValueError("squared: no returns")
    start = r2[: min(_START_DAYS, len(r2))].mean(axis=0)
    # a linear filter is the recursion without a Python loop: y_t = lam y_{t-1} + (1-lam) x_t
    initial = np.reshape(lam * start, (1, *r2.shape[1:]))
    tail = signal.lfilter([1.0 - lam], [1.0, -lam], r2, axis=0, zi=initial)[0]
    return np.concatenate([np.reshape(start, (1, *r2.shape[1:])), tail])


def ewma_volatility(
    returns: pd.DataFrame, lam: float = EWMA_LAMBDA
) -> tuple[pd.DataFrame, pd.Series]:
    """Each day's EWMA volatility (from returns strictly before it) and tomorrow's forecast.

    Parameters
    ----------
    returns : DataFrame
        Daily decimal log returns, dates × assets.
    lam : float
        Decay.

    Returns
    -------
    cond_vol : DataFrame
        Daily volatility known before each day, like ``returns``.
    next_vol : Series
        The forecast for the day after the last, per asset.
    """
    path = np.sqrt(ewma_variance_path(returns.to_numpy() ** 2, lam))
    return (
        pd.DataFrame(path[:-1], index=returns.index, columns=returns.columns),
        pd.Series(path[-1], index=returns.columns),
    )


def realised_vol_as_iv(
    returns: pd.DataFrame | pd.Series,
    *,
    window: int = REALISED_WINDOW,
    min_periods: int = 25,
) -> pd.DataFrame | pd.Series:
    """Annualised trailing realised volatility, the stand-in for a missing 30-day IV index.

    .. math:: \\hat\\sigma_t = \\sqrt{365}\\;\\mathrm{sd}(r_{t-w+1}, \\dots, r_t)

    with the sample standard deviation (ddof 1) over the last ``window`` returns (at least
    ``min_periods``). The value of day ``t`` uses returns up to and including ``t``: an IV
    observed at the end of day ``t``. Callers screen it like any IV before pricing with it.
    """
    return returns.rolling(window, min_periods=min_periods).std() * math.sqrt(DAYS_PER_YEAR)
