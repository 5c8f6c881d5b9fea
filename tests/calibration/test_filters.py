"""The model-free filters against a plain statement of their recursions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from calibration.filters import ewma_variance_path, ewma_volatility, realised_vol_as_iv


def loop_ewma(r: np.ndarray, lam: float) -> np.ndarray:
    r2 = np.nan_to_num(r) ** 2
    out = np.empty((len(r2) + 1, *r2.shape[1:]))
    out[0] = r2[:30].mean(axis=0)
    for t in range(len(r2)):
        out[t + 1] = lam * out[t] + (1 - lam) * r2[t]
    return out


@pytest.mark.parametrize("lam", [0.5, 0.94, 0.99])
@pytest.mark.parametrize("shape", [(7,), (400,), (400, 3)])
def test_ewma_path_is_the_recursion(lam: float, shape: tuple[int, ...]) -> None:
    r = np.random.default_rng(3).standard_normal(shape) * 0.03
    r[len(r) // 2] = np.nan  # a missing return counts as no move
    path = ewma_variance_path(r**2, lam)
    expected = loop_ewma(r, lam)
    assert path.shape == expected.shape
    np.testing.assert_allclose(path, expected, rtol=1e-12)


def test_ewma_volatility_uses_only_earlier_returns() -> None:
    index = pd.date_range("2024-01-01", periods=120, freq="D")
    returns = pd.DataFrame(
        np.random.default_rng(5).standard_normal((120, 2)) * 0.02, index=index, columns=["A", "B"]
    )
    cond, tomorrow = ewma_volatility(returns)
    shocked = returns.copy()
    shocked.iloc[-1] = 0.5
    cond2, tomorrow2 = ewma_volatility(shocked)
    pd.testing.assert_frame_equal(cond, cond2)  # today's shock does not reach today's vol
    assert (tomorrow2 > tomorrow).all()  # it reaches tomorrow's
    # closed form of one step: sigma^2_{T+1} = lam sigma^2_T + (1 - lam) r_T^2
    step = 0.94 * cond2.iloc[-1] ** 2 + 0.06 * 0.25
    np.testing.assert_allclose(tomorrow2**2, step, rtol=1e-12)


def test_ewma_refuses_a_decay_outside_the_unit_interval() -> None:
    with pytest.raises(ValueError, match="lam"):
        ewma_variance_path(np.ones(5), 1.0)


def test_realised_vol_is_the_annualised_sample_deviation() -> None:
    r = pd.Series(np.random.default_rng(9).standard_normal(60) * 0.04)
    realised = realised_vol_as_iv(r)
    assert realised.iloc[:24].isna().all() and realised.iloc[24:].notna().all()
    last = np.std(r.iloc[-30:].to_numpy(), ddof=1) * math.sqrt(365)
    assert realised.iloc[-1] == pytest.approx(last, rel=1e-12)
