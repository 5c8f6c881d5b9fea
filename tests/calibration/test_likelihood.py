"""The compiled GARCH/GJR likelihood against arch: same value, true gradient, same optimum."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from calibration.likelihood import compiled_spec, fit_compiled, loglik, problem
from calibration.univariate import Innovation, UnivariateSpec, VolProcess

SPECS = [
    UnivariateSpec(vol, dist)
    for vol in (VolProcess.GARCH, VolProcess.GJR_GARCH)
    for dist in (Innovation.NORMAL, Innovation.STUDENT_T)
]


def _simulated(n: int = 800, seed: int = 4) -> np.ndarray:
    """GJR-GARCH-t percent returns with known parameters (mu 0.05, omega 0.1, alpha 0.05,
    gamma 0.08, beta 0.88, nu 6)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_t(6, n) / np.sqrt(6 / 4)
    y, s2 = np.empty(n), 0.1 / (1 - 0.05 - 0.04 - 0.88)
    for t in range(n):
        y[t] = 0.05 + np.sqrt(s2) * z[t]
        e = y[t] - 0.05
        s2 = 0.1 + (0.05 + 0.08 * (e < 0)) * e * e + 0.88 * s2
    return y


@pytest.fixture(scope="module")
def windows(shared_data) -> dict[str, np.ndarray]:
    prices = pd.read_csv(shared_data / "prices/binance_spot_daily.csv", parse_dates=["date"])
    btc = prices[prices.asset == "BTC"].set_index("date")["close"]
    returns = np.log(btc).diff().dropna().to_numpy() * 100
    # a calm window, the 2022 crash window, and a simulated series
    return {
        "btc-2020": returns[-1700:-1000],
        "btc-latest": returns[-1000:],
        "simulated": _simulated(),
    }


def _arch_fit(y: np.ndarray, spec: UnivariateSpec):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return spec.build(pd.Series(y)).fit(disp="off", tol=1e-8)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_the_likelihood_is_archs_at_any_parameters(spec, windows) -> None:
    rng = np.random.default_rng(0)
    for y in windows.values():
        p = problem(y, spec)
        fitted = _arch_fit(y, spec).params.to_numpy()
        for x in [fitted, p.starting_values, fitted * rng.uniform(0.9, 1.1, len(fitted))]:
            if not (p.a @ x - p.b >= 0).all():
                continue
            ours, _ = loglik(p, x)
            theirs = spec.build(pd.Series(y)).fix(x).loglikelihood
            # a sum of ~1,000 terms of size ~1: a few ulps each
            assert ours == pytest.approx(theirs, abs=1e-9 * abs(theirs))


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_the_gradient_is_the_derivative(spec, windows) -> None:
    y = windows["btc-latest"]
    p = problem(y, spec)
    x = _arch_fit(y, spec).params.to_numpy() * 1.03
    _, grad = loglik(p, x)
    h = 1e-6 * np.maximum(np.abs(x), 1e-3)
    numeric = np.array(
        [(loglik(p, x + e)[0] - loglik(p, x - e)[0]) / (2 * e.max()) for e in np.diag(h)]
    )
    # central differences err by O(h^2 f''') + rounding ~ 1e-13 |f| / h: well under 1e-4
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_the_optimum_is_no_worse_than_archs(spec, windows) -> None:
    for name, y in windows.items():
        theirs = _arch_fit(y, spec)
        ours = fit_compiled(problem(y, spec))
        assert ours.converged, name
        assert ours.loglik >= theirs.loglikelihood - 1e-4, name
        warm = fit_compiled(problem(y, spec), theirs.params.to_numpy())
        assert warm.loglik >= theirs.loglikelihood - 1e-6, name


def test_the_simulated_parameters_are_recovered() -> None:
    spec = UnivariateSpec(VolProcess.GJR_GARCH, Innovation.STUDENT_T)
    fit = fit_compiled(problem(_simulated(4000, seed=11), spec))
    # 4,000 days: standard errors of about 0.02 (alpha, gamma, beta) and 1 (nu)
    assert fit.params["beta[1]"] == pytest.approx(0.88, abs=0.06)
    assert fit.params["gamma[1]"] == pytest.approx(0.08, abs=0.06)
    assert fit.params["nu"] == pytest.approx(6.0, abs=2.5)


def test_only_garch_and_gjr_with_normal_or_t_are_compiled() -> None:
    assert not compiled_spec(UnivariateSpec(VolProcess.EGARCH, Innovation.STUDENT_T))
    assert not compiled_spec(UnivariateSpec(VolProcess.GJR_GARCH, Innovation.SKEW_T))
    with pytest.raises(ValueError, match="no compiled likelihood"):
        problem(_simulated(200), UnivariateSpec(VolProcess.EGARCH, Innovation.NORMAL))


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_a_problem_without_starting_values_is_the_same_problem(spec) -> None:
    """A warm refit skips arch's starting-value grid: the likelihood, bounds, constraints and
    backcast are the same, and a fit given no usable start takes arch's own after all."""
    y = _simulated()
    full, lean = problem(y, spec), problem(y, spec, starting=False)
    assert np.isnan(lean.starting_values).any() and np.isfinite(full.starting_values).all()
    assert lean.bounds == full.bounds and lean.backcast == full.backcast
    np.testing.assert_array_equal(lean.a, full.a)
    np.testing.assert_array_equal(lean.b, full.b)
    np.testing.assert_array_equal(lean.lower, full.lower)
    x = full.starting_values
    assert loglik(lean, x)[0] == loglik(full, x)[0]
    cold, fallback = fit_compiled(full), fit_compiled(lean)
    assert fallback.params == cold.params and fallback.loglik == cold.loglik
    outside = np.full(len(x), -1.0)  # no usable warm start: arch's start, as a cold fit
    assert fit_compiled(lean, outside).params == cold.params
