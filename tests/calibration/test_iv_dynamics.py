"""Implied-vol dynamics on a simulated IV index with known mean reversion."""

import math

import numpy as np
import pandas as pd
import pytest

from calibration.iv_dynamics import iv_dynamics, rebuild_iv_dynamics


def simulate_log_iv(phi: float, level: float, sd: float, n: int, seed: int, spot_corr: float):
    rng = np.random.default_rng(seed)
    spot = rng.standard_normal(n) * 0.03
    shocks = spot_corr * spot / 0.03 + math.sqrt(1 - spot_corr**2) * rng.standard_normal(n)
    x = np.empty(n)
    x[0] = math.log(level)
    c = (1 - phi) * math.log(level)
    for t in range(1, n):
        x[t] = c + phi * x[t - 1] + sd * shocks[t]
    index = pd.date_range("2019-01-01", periods=n, freq="D")
    return pd.Series(np.exp(x), index=index), pd.Series(spot, index=index)


def test_mean_reversion_and_spot_vol_correlation_are_recovered() -> None:
    iv, spot = simulate_log_iv(phi=0.97, level=0.6, sd=0.04, n=3000, seed=3, spot_corr=-0.5)
    result = iv_dynamics(iv, spot, asset="X")
    mr = result.mean_reversion
    assert abs(mr.phi - 0.97) < 3 * mr.phi_se
    assert mr.half_life_days == pytest.approx(math.log(2) / -math.log(mr.phi))
    assert mr.long_run_iv == pytest.approx(0.6, rel=0.1)
    assert result.spot_vol_corr == pytest.approx(-0.5, abs=0.05)
    # the vol of log-IV changes: sd 0.04 a day -> 0.04 sqrt(365) a year
    assert result.vol_of_vol_current_annual == pytest.approx(0.04 * math.sqrt(365), rel=0.15)


def test_rebuilding_from_storage_needs_the_same_series() -> None:
    iv, spot = simulate_log_iv(0.98, 0.7, 0.05, 800, 4, -0.3)
    result = iv_dynamics(iv, spot, asset="Y")
    stored = result.to_dict()
    rebuilt = rebuild_iv_dynamics(stored, iv)
    assert rebuilt.vol_fit.next_variance == pytest.approx(result.vol_fit.next_variance, rel=1e-12)
    changed = iv.copy()
    changed.iloc[-1] *= 1.01
    with pytest.raises(ValueError, match="changed"):
        rebuild_iv_dynamics(stored, changed)
