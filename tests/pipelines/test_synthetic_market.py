"""The synthetic demo market: reproducible, and crypto-like in the ways the design asks for."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from arch import arch_model

from pipelines.ingest import file_sha256, load_file
from pipelines.sources.builtin import write_sp500_vix
from pipelines.sources.synthetic import (
    AssetModel,
    SyntheticMarketSpec,
    generate_synthetic_market,
    write_synthetic_market,
)


@pytest.fixture(scope="module")
def market():
    return generate_synthetic_market()


@pytest.fixture(scope="module")
def returns(market) -> pd.DataFrame:
    closes = market.prices.pivot(index="date", columns="asset", values="close")
    return np.log(closes).diff().dropna()


def test_same_seed_same_bytes_different_seed_different(tmp_path) -> None:
    a = write_synthetic_market(tmp_path / "a", SyntheticMarketSpec(seed=11))
    b = write_synthetic_market(tmp_path / "b", SyntheticMarketSpec(seed=11))
    c = write_synthetic_market(tmp_path / "c", SyntheticMarketSpec(seed=12))
    assert [file_sha256(p) for p in a] == [file_sha256(p) for p in b]
    assert [file_sha256(p) for p in a] != [file_sha256(p) for p in c]


def test_shape_labels_and_calendar(market) -> None:
    assert set(market.prices["asset"]) == {"BTC", "ETH", "SOL"}
    assert set(market.implied_vol["asset"]) == {"BTC", "ETH"}
    assert set(market.prices["source"]) == {"synthetic"} == set(market.implied_vol["source"])
    per_asset = market.prices.groupby("asset")["date"].agg(["min", "max", "count"])
    assert (per_asset["min"] == date(2019, 1, 1)).all()
    assert (per_asset["max"] == date(2024, 12, 31)).all()
    assert (per_asset["count"] == 2192).all()  # every UTC day, 2019-2024


def test_ohlc_is_consistent(market) -> None:
    p = market.prices
    assert (p["high"] >= p[["open", "close"]].max(axis=1)).all()
    assert (p["low"] <= p[["open", "close"]].min(axis=1)).all()
    assert (p[["open", "high", "low", "close", "volume"]] > 0).all().all()


def test_volatility_levels_are_crypto_like(returns) -> None:
    annualised = returns.std() * np.sqrt(365)
    # design: annualised vol ~50-90 % (realised includes jumps and the crash)
    assert annualised.between(0.5, 1.0).all(), annualised


def test_correlations(returns) -> None:
    corr = returns.corr()
    assert 0.72 <= corr.loc["BTC", "ETH"] <= 0.88
    assert corr.loc["BTC", "SOL"] < corr.loc["BTC", "ETH"]
    assert corr.loc["ETH", "SOL"] < corr.loc["BTC", "ETH"]


def test_fat_tails_and_the_crash(returns) -> None:
    assert (returns.kurt() > 3).all()  # excess kurtosis, far from normal
    crash = returns.loc[date(2020, 3, 12)]
    assert (crash < -0.35).all()
    assert (returns.idxmin() == date(2020, 3, 12)).all()


def test_gjr_garch_t_fits_show_persistence_and_leverage(returns) -> None:
    """An independent fit (arch) sees what the generator put in: high persistence, a
    positive leverage term and fat-tailed innovations."""
    for asset in ("BTC", "ETH"):
        fit = arch_model(returns[asset] * 100, vol="GARCH", p=1, o=1, q=1, dist="t").fit(disp="off")
        persistence = fit.params["alpha[1]"] + fit.params["gamma[1]"] / 2 + fit.params["beta[1]"]
        assert 0.9 < persistence < 1.0
        assert fit.params["gamma[1]"] > 0
        assert 3 < fit.params["nu"] < 12


def test_implied_vol_premium_and_spot_vol_correlation(market, returns) -> None:
    iv = market.implied_vol.pivot(index="date", columns="asset", values="iv")
    assert iv.min().min() > 0 and iv.max().max() <= 5
    forward_rv = returns[["BTC", "ETH"]].rolling(30).std().shift(-30) * np.sqrt(365)
    ratio = (iv / forward_rv).dropna().median()
    assert (ratio > 1.0).all(), ratio  # a variance risk premium: IV above later realised vol
    d_log_iv = np.log(iv).diff().dropna()
    for asset in ("BTC", "ETH"):
        corr = np.corrcoef(d_log_iv[asset], returns[asset].loc[d_log_iv.index])[0, 1]
        assert corr < -0.3


def test_spec_validation_messages() -> None:
    with pytest.raises(ValueError, match="persistence"):
        AssetModel("X", 1.0, 0.0, 0.5, 0.2, 0.2, 0.8, 5.0, 1.0, (0.0, 0.0), 1.0, False)
    with pytest.raises(ValueError, match="positive definite"):
        SyntheticMarketSpec(correlation=((1, 1, 1), (1, 1, 1), (1, 1, 1)))


def test_synthetic_and_sp500_load_through_the_normal_path(con, tmp_path) -> None:
    for path in write_synthetic_market(tmp_path / "syn"):
        assert load_file(con, path).rejected == 0
    reports = [load_file(con, p) for p in write_sp500_vix(tmp_path / "spx")]
    assert [r.rejected for r in reports] == [0, 0]
    assert reports[0].inserted == 5031 and reports[1].inserted == 1305 - 46
    vix = con.execute(
        "SELECT iv FROM market.implied_vol WHERE asset = 'SPX' AND date = DATE '2014-01-03'"
    ).fetchone()[0]
    assert vix == pytest.approx(0.1376)
