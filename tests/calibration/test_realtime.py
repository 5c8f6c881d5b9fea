"""Volatility as a daily run knew it: no look-ahead, the residual identities, EWMA, FHS moves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from calibration.realtime import (
    MIN_RESIDUALS,
    combine,
    ewma_realtime,
    fhs_moves,
    realtime_volatility,
)
from calibration.rolling import RollingConfig, rolling_forecasts
from calibration.univariate import UnivariateSpec

SPEC = UnivariateSpec("garch", "normal")
CONFIG = RollingConfig(window=300, refit_every=25, horizon=2, verify_every=0)


def garch_returns(n: int = 700, seed: int = 4) -> pd.Series:
    rng = np.random.default_rng(seed)
    omega, alpha, beta = 2e-6, 0.08, 0.9
    var = omega / (1 - alpha - beta)
    out = np.empty(n)
    for t in range(n):
        out[t] = np.sqrt(var) * rng.standard_normal()
        var = omega + alpha * out[t] ** 2 + beta * var
    return pd.Series(out, index=pd.date_range("2020-01-01", periods=n, freq="D"))


def test_forecasts_and_residuals_do_not_look_ahead() -> None:
    r = garch_returns()
    cut = r.index[520]
    full = realtime_volatility(rolling_forecasts(r, SPEC, CONFIG, start=r.index[400]), r)
    altered = r.copy()
    altered[altered.index > cut] *= 5.0
    partial = realtime_volatility(
        rolling_forecasts(altered, SPEC, CONFIG, start=r.index[400]), altered
    )
    upto = full.forecasts.index <= cut
    pd.testing.assert_frame_equal(
        full.forecasts[upto], partial.forecasts[partial.forecasts.index <= cut]
    )
    assert full.std_resid[:cut].equals(partial.std_resid[:cut])


def test_residual_identities() -> None:
    r = garch_returns()
    rt = realtime_volatility(rolling_forecasts(r, SPEC, CONFIG, start=r.index[400]), r)
    day = rt.cond_vol.index[10]
    previous = day - pd.Timedelta(days=1)
    assert rt.cond_vol[day] == pytest.approx(np.sqrt(rt.forecasts.loc[previous, 1]))
    assert rt.std_resid[day] == pytest.approx(r[day] / rt.cond_vol[day])
    assert rt.vol_now(previous) == pytest.approx(rt.cond_vol[day])


def test_ewma_is_the_riskmetrics_recursion() -> None:
    r = garch_returns(100)
    rt = ewma_realtime(r, horizon=3)
    var = np.mean(r.to_numpy()[:30] ** 2)
    for t in range(10):
        var = 0.94 * var + 0.06 * r.iloc[t] ** 2
    # the forecast made at day 9 for day 10, and flat over the horizon
    assert rt.forecasts.iloc[9].to_numpy() == pytest.approx(np.full(3, var))
    assert rt.cond_vol.iloc[9] == pytest.approx(np.sqrt(var))  # cond_vol starts at day 1


def test_combine_uses_the_fallback_before_the_primary() -> None:
    r = garch_returns()
    primary = realtime_volatility(rolling_forecasts(r, SPEC, CONFIG, start=r.index[500]), r)
    fallback = ewma_realtime(r, horizon=2)
    both = combine(primary, fallback)
    first = primary.forecasts.index.min()
    assert both.forecasts.index.min() == fallback.forecasts.index.min()
    pd.testing.assert_series_equal(both.forecasts.loc[first], primary.forecasts.loc[first])
    before = first - pd.Timedelta(days=3)
    pd.testing.assert_series_equal(both.forecasts.loc[before], fallback.forecasts.loc[before])


def test_fhs_moves_match_the_normal_quantile_on_normal_data() -> None:
    """i.i.d. normal returns with a known constant vol (EWMA settles near it): the 1-day 99 %
    moves approach σ·z_0.99; with 1,000 residuals the empirical quantile's error is ~6 %."""
    rng = np.random.default_rng(12)
    sigma = 0.02
    r = pd.Series(
        sigma * rng.standard_normal(3000), index=pd.date_range("2015-01-01", periods=3000, freq="D")
    )
    rt = ewma_realtime(r, horizon=1)
    origins = r.index[2000::50]
    moves = fhs_moves(rt, origins, 1, 0.99, lookback=1000)
    expected_up = np.expm1(sigma * stats.norm.ppf(0.99))
    assert moves["up"].median() == pytest.approx(expected_up, rel=0.12)
    assert moves["down"].median() == pytest.approx(
        1 - np.exp(-sigma * stats.norm.ppf(0.99)), rel=0.12
    )
    assert (moves["price_range"] == moves[["down", "up"]].max(axis=1)).all()
    assert (moves["samples"] == 1000).all()


def test_fhs_moves_need_enough_residuals_and_valid_arguments() -> None:
    r = garch_returns(400)
    rt = ewma_realtime(r, horizon=2)
    early = fhs_moves(rt, r.index[: MIN_RESIDUALS - 5], 1, 0.99)
    assert early.empty
    with pytest.raises(ValueError, match="horizon must be in 1..2"):
        fhs_moves(rt, r.index[-5:], 3, 0.99)
    with pytest.raises(ValueError, match="confidence"):
        fhs_moves(rt, r.index[-5:], 1, 1.5)
