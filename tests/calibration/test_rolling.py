"""Rolling forecasts: no look-ahead, warm starts that never end worse than cold on checked
refits, parallel equals serial, and in-between filtering equals a fixed-parameter filter."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_univariate import TRUE, simulate_gjr_t

from calibration.rolling import RollingConfig, rolling_forecasts, rolling_forecasts_many
from calibration.univariate import UnivariateSpec, apply_parameters, fit_univariate

SPEC = UnivariateSpec("gjr-garch", "t")


@pytest.fixture(scope="module")
def returns() -> pd.Series:
    return simulate_gjr_t(TRUE, 700, 21)


def test_no_look_ahead(returns: pd.Series) -> None:
    config = RollingConfig(window=400, refit_every=5, horizon=3)
    origin = returns.index[520]
    base = rolling_forecasts(returns, SPEC, config, start=returns.index[500], end=origin)
    changed = returns.copy()
    changed.iloc[521:] *= 5.0  # the future is very different
    again = rolling_forecasts(changed, SPEC, config, start=returns.index[500], end=origin)
    pd.testing.assert_frame_equal(base.variances, again.variances)


def test_each_origin_matches_a_direct_fit_on_its_window(returns: pd.Series) -> None:
    config = RollingConfig(window=400, refit_every=1, horizon=2, verify_every=1)
    result = rolling_forecasts(
        returns, SPEC, config, start=returns.index[450], end=returns.index[454]
    )
    for origin in result.variances.index:
        window = returns.loc[:origin].iloc[-400:]
        direct = fit_univariate(window, SPEC)
        np.testing.assert_allclose(
            result.variances.loc[origin].to_numpy(), direct.forecast_variance(2), rtol=1e-3
        )


def test_warm_starts_never_end_worse_than_cold_where_checked(returns: pd.Series) -> None:
    config = RollingConfig(window=400, refit_every=1, horizon=1, verify_every=1)
    result = rolling_forecasts(
        returns, SPEC, config, start=returns.index[450], end=returns.index[479]
    )
    reported = result.refits[result.refits["reported"]]
    checked = reported.dropna(subset=["warm_loglik", "cold_loglik"])
    # the chain began one (unreported) refit earlier, so every reported refit had both starts
    assert len(reported) == 30 and len(checked) == 30
    assert (checked["loglik"] >= checked["cold_loglik"] - 1e-9).all()
    assert (checked["loglik"] - checked["cold_loglik"]).abs().max() < 1e-4
    # the kept fit is the better of the two starts
    best = checked[["warm_loglik", "cold_loglik"]].max(axis=1)
    np.testing.assert_allclose(checked["loglik"], best, rtol=0, atol=1e-12)


def test_between_refits_the_variance_is_filtered_with_fixed_parameters(returns: pd.Series) -> None:
    config = RollingConfig(window=400, refit_every=10, horizon=1, restart_every=1)
    # refits fall on positions 399, 409, …: 449 starts a block of ten origins
    result = rolling_forecasts(
        returns, SPEC, config, start=returns.index[449], end=returns.index[458]
    )
    assert len(result.refits) == 1 and result.refits.iloc[0]["date"] == returns.index[449]
    params = result.refits.iloc[0]["params"]
    # filter the window plus the block with the refit's parameters: tomorrow's variance at each day
    segment = returns.iloc[449 - 399 : 459]
    fixed = apply_parameters(segment, SPEC, params)
    forecast = (
        fixed.result.forecast(horizon=1, start=399, reindex=False).variance.to_numpy()[:, 0] / 1e4
    )
    np.testing.assert_allclose(result.variances[1].to_numpy(), forecast, rtol=1e-10)


def test_parallel_processes_match_serial() -> None:
    series = {"A": simulate_gjr_t(TRUE, 600, 31), "B": simulate_gjr_t(TRUE, 600, 32)}
    config = RollingConfig(window=400, refit_every=2, horizon=2, restart_every=5)
    start, end = series["A"].index[450], series["A"].index[489]
    parallel = rolling_forecasts_many(series, SPEC, config, start=start, end=end, max_workers=2)
    for name, s in series.items():
        serial = rolling_forecasts(s, SPEC, config, start=start, end=end)
        # chains restart at fixed positions, so the split between processes changes nothing
        pd.testing.assert_frame_equal(parallel[name].variances, serial.variances)


def test_a_forecast_does_not_depend_on_the_requested_range() -> None:
    series = simulate_gjr_t(TRUE, 600, 33)
    config = RollingConfig(window=400, refit_every=2, horizon=1, restart_every=5)
    wide = rolling_forecasts(series, SPEC, config, start=series.index[420], end=series.index[480])
    narrow = rolling_forecasts(series, SPEC, config, start=series.index[457], end=series.index[465])
    pd.testing.assert_frame_equal(wide.variances.loc[narrow.variances.index], narrow.variances)
    assert not narrow.refits["reported"].all()  # it ran the chain's earlier refits to get there


def test_cumulative_variance_and_config_validation(returns: pd.Series) -> None:
    result = rolling_forecasts(
        returns,
        SPEC,
        RollingConfig(window=400, refit_every=20, horizon=3),
        start=returns.index[600],
        end=returns.index[619],
    )
    pd.testing.assert_series_equal(
        result.cumulative_variance(2), result.variances[[1, 2]].sum(axis=1)
    )
    with pytest.raises(ValueError, match="days must be in 1..3"):
        result.cumulative_variance(4)
    with pytest.raises(ValueError, match="window"):
        RollingConfig(window=50)
    with pytest.raises(ValueError, match="no origin"):
        rolling_forecasts(returns, SPEC, RollingConfig(window=1000))


def test_the_compiled_engine_reaches_archs_optimum_and_forecasts(returns: pd.Series) -> None:
    from calibration.rolling import FitEngine

    runs = {
        engine: rolling_forecasts(
            returns,
            SPEC,
            RollingConfig(window=400, refit_every=1, horizon=2, verify_every=5, engine=engine),
            start=returns.index[450],
            end=returns.index[489],
        )
        for engine in FitEngine
    }
    ours, arch = runs[FitEngine.COMPILED], runs[FitEngine.ARCH]
    shortfall = (arch.refits["loglik"] - ours.refits["loglik"]).max()
    assert shortfall <= 1e-4
    # the same optimum to the optimiser's tolerance: forecasts agree far below any margin digit
    np.testing.assert_allclose(ours.variances.to_numpy(), arch.variances.to_numpy(), rtol=1e-4)
