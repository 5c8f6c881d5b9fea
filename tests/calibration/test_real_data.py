"""Real data (../shared/data): every price series and both DVOL series calibrate; BTC/ETH DCC
converges with a + b < 1; every correlation matrix over 2021-2024 is PSD."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from calibration.correlation import ewma_correlation_path, fit_dcc, is_psd, stressed_correlations
from calibration.iv_dynamics import iv_dynamics
from calibration.policy import CalibrationPolicy
from calibration.recommend import recommend
from calibration.returns import log_returns
from calibration.univariate import calibrate_volatility

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prices(shared_data) -> pd.DataFrame:
    return pd.read_csv(shared_data / "prices/binance_spot_daily.csv", parse_dates=["date"])


@pytest.fixture(scope="module")
def dvol(shared_data) -> pd.DataFrame:
    return pd.read_csv(shared_data / "iv/deribit_dvol_daily.csv", parse_dates=["date"])


@pytest.fixture(scope="module")
def returns(prices) -> dict[str, pd.Series]:
    return {
        asset: log_returns(group.set_index("date")["close"], asset=asset).values
        for asset, group in prices.groupby("asset")
    }


@pytest.fixture(scope="module")
def calibrations(returns):
    return {
        asset: calibrate_volatility(series.iloc[-1000:], asset=asset)
        for asset, series in returns.items()
    }


def test_every_price_series_calibrates(calibrations) -> None:
    assert set(calibrations) == {"ADA", "BCH", "BNB", "BTC", "DOGE", "ETH", "SOL", "TRX", "XRP"}
    for asset, result in calibrations.items():
        chosen = result.chosen
        assert result.fallback_reason is None, (asset, result.fallback_reason)
        assert chosen.converged and chosen.stationary, asset
        annual = np.sqrt(chosen.next_variance * 365)
        assert 0.15 < annual < 3.0, (asset, annual)


def test_both_dvol_series_calibrate(dvol, returns) -> None:
    for asset in ("BTC", "ETH"):
        iv = dvol[dvol.asset == asset].set_index("date")["iv"]
        result = iv_dynamics(iv, returns[asset], asset=asset)
        assert result.spot_vol_corr < 0  # vol rises when crypto falls
        assert 0 < result.mean_reversion.phi < 1
        assert 5 < result.mean_reversion.half_life_days < 365


def test_btc_eth_dcc_and_every_matrix_over_2021_2024_is_psd(returns) -> None:
    window = {a: returns[a].loc["2021-01-01":"2024-12-31"] for a in ("BTC", "ETH", "SOL")}
    z = pd.DataFrame(
        {a: calibrate_volatility(s, asset=a).chosen.std_resid for a, s in window.items()}
    ).dropna()
    pair = fit_dcc(z[["BTC", "ETH"]])
    assert pair.converged and pair.a + pair.b < 1 and pair.a > 0
    assert 0.6 < pair.forecast.matrix[0, 1] < 0.95
    three = fit_dcc(z)
    assert three.converged and three.a + three.b < 1
    for path in (pair.path, three.path, ewma_correlation_path(z.to_numpy())):
        assert all(is_psd(m) for m in path)
    stressed = stressed_correlations(pd.DataFrame(window))
    assert stressed and all(is_psd(e.matrix) for e in stressed.values())


def test_recommendations_on_real_btc_are_in_the_published_ballpark(
    calibrations, returns, dvol
) -> None:
    """Deribit publishes a 16 % BTC price range; a 99 %, 2-day FHS with the 25 %
    buffer on 2022-2024 data lands near it."""
    fits = {a: calibrations[a].chosen for a in ("BTC", "ETH")}
    ivs = {
        a: iv_dynamics(dvol[dvol.asset == a].set_index("date")["iv"], returns[a], asset=a)
        for a in fits
    }
    result = recommend(
        fits, {a: returns[a] for a in fits}, CalibrationPolicy(), as_of="2024-12-31", iv=ivs
    )
    assert 0.10 < result.value("underlyings.BTC.pm.price_range") < 0.22
    assert 0.05 < result.value("underlyings.BTC.pm.vol_range_up") < 0.6
    assert result.value("collateral.ETH.haircut") > result.value("collateral.BTC.haircut")
