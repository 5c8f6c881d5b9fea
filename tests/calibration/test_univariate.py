"""Univariate GARCH-family fits: recovery of known parameters, agreement with arch,
diagnostics arithmetic, the EWMA fallback and applying approved parameters."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from arch import arch_model

from calibration.univariate import (
    ALL_SPECS,
    SCALE,
    EwmaFit,
    FitStart,
    UnivariateSpec,
    apply_parameters,
    calibrate_volatility,
    fit_univariate,
    negative_half_moment,
)

TRUE = {"mu": 0.05, "omega": 0.05, "alpha[1]": 0.05, "gamma[1]": 0.10, "beta[1]": 0.85, "nu": 6.0}


def simulate_gjr_t(params: dict, n: int, seed: int, burn: int = 500) -> pd.Series:
    """GJR-GARCH(1,1) with standardized Student-t innovations, written out independently of
    arch; returns decimal returns (the model is on percent returns)."""
    rng = np.random.default_rng(seed)
    nu = params["nu"]
    z = rng.standard_t(nu, n + burn) * math.sqrt((nu - 2) / nu)
    persistence = params["alpha[1]"] + params["gamma[1]"] / 2 + params["beta[1]"]
    var = params["omega"] / (1 - persistence)
    eps_prev = 0.0
    out = np.empty(n + burn)
    for t in range(n + burn):
        if t > 0:
            var = (
                params["omega"]
                + (params["alpha[1]"] + params["gamma[1]"] * (eps_prev < 0)) * eps_prev**2
                + params["beta[1]"] * var
            )
        eps_prev = math.sqrt(var) * z[t]
        out[t] = params["mu"] + eps_prev
    index = pd.date_range("2010-01-01", periods=n, freq="D")
    return pd.Series(out[burn:] / SCALE, index=index, name="SIM")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_recovers_known_gjr_garch_t_parameters(seed: int) -> None:
    returns = simulate_gjr_t(TRUE, 3000, seed)
    fit = fit_univariate(returns, UnivariateSpec("gjr-garch", "t"))
    assert fit.converged
    for name, true in TRUE.items():
        z = (fit.params[name] - true) / fit.std_errors[name]
        assert abs(z) < 3, (
            f"seed {seed}: {name} = {fit.params[name]:.4f} ± {fit.std_errors[name]:.4f}, true {true}"
        )
    assert fit.persistence == pytest.approx(
        fit.params["alpha[1]"] + 0.5 * fit.params["gamma[1]"] + fit.params["beta[1]"]
    )


def test_recovery_improves_with_sample_size() -> None:
    """Consistency: standard errors shrink roughly like 1/sqrt(T)."""
    small = fit_univariate(simulate_gjr_t(TRUE, 1500, 7), UnivariateSpec("gjr-garch", "t"))
    large = fit_univariate(simulate_gjr_t(TRUE, 6000, 7), UnivariateSpec("gjr-garch", "t"))
    ratio = small.std_errors["beta[1]"] / large.std_errors["beta[1]"]
    assert 1.3 < ratio < 3.5  # sqrt(4) = 2 in theory


@pytest.fixture(scope="module")
def btc_returns(request) -> pd.Series:
    from helpers import SHARED_DATA

    if SHARED_DATA is None:
        pytest.skip("real market data not found")
    prices = pd.read_csv(SHARED_DATA / "prices/binance_spot_daily.csv", parse_dates=["date"])
    closes = prices[prices.asset == "BTC"].set_index("date")["close"]
    return np.log(closes).diff().dropna().iloc[-1500:].rename("BTC")


@pytest.mark.parametrize("spec", ALL_SPECS, ids=lambda s: s.name)
def test_log_likelihood_equals_arch(spec: UnivariateSpec, btc_returns: pd.Series) -> None:
    """Where arch applies, ours is arch's: the reported log-likelihood equals arch's own
    evaluation at our parameters (to 1e-6), and our optimum is no worse than a plain arch fit."""
    fit = fit_univariate(btc_returns, spec)
    model = spec.build(btc_returns * SCALE)
    names = list(fit.params)
    at_ours = model.fix(np.array([fit.params[k] for k in names])).loglikelihood
    assert fit.loglik == pytest.approx(at_ours, abs=1e-6)
    vol = {"garch": "GARCH", "gjr-garch": "GARCH", "egarch": "EGARCH"}[spec.vol.value]
    o = 0 if spec.vol.value == "garch" else 1
    dist = {"normal": "normal", "t": "t", "skew-t": "skewt"}[spec.dist.value]
    plain = arch_model(btc_returns * 100, vol=vol, p=1, o=o, q=1, dist=dist).fit(
        disp="off", show_warning=False
    )
    assert fit.loglik >= plain.loglikelihood - 1e-6
    assert fit.bic == pytest.approx(
        -2 * fit.loglik + len(names) * math.log(len(btc_returns)), rel=1e-9
    )


def test_diagnostics_arithmetic() -> None:
    fit = fit_univariate(simulate_gjr_t(TRUE, 2000, 5), UnivariateSpec("gjr-garch", "t"))
    p = fit.persistence
    assert fit.half_life_days == pytest.approx(math.log(0.5) / math.log(p))
    expected = math.sqrt(fit.params["omega"] / (1 - p) / SCALE**2 * 365)
    assert fit.unconditional_vol_annual == pytest.approx(expected)
    path = fit.forecast_variance(400)
    # the closed form converges to the long-run variance and starts at tomorrow's variance
    assert path[0] == pytest.approx(fit.next_variance)
    assert path[-1] == pytest.approx(fit.long_run_variance, rel=1e-3)
    assert {lb.series for lb in fit.ljung_box} == {"z", "z^2"}
    assert all(0 <= lb.pvalue <= 1 for lb in fit.ljung_box)
    assert fit.window.n_obs == 2000 and len(fit.window.fingerprint) == 64
    assert set(fit.library_versions) >= {"arch", "numpy", "scipy", "pandas"}


def test_a_fit_on_the_stationarity_constraint_is_not_stationary(btc_returns: pd.Series) -> None:
    """Real case: GJR-GARCH-t on BTC's last 1,500 days ends with persistence 1 - 1e-14 (arch's
    constraint binds). That is an integrated process, reported as such and never selected."""
    fit = fit_univariate(btc_returns, UnivariateSpec("gjr-garch", "t"))
    assert fit.persistence > 0.9999
    assert not fit.stationary
    assert fit.half_life_days is None and fit.unconditional_vol_annual is None
    chosen = calibrate_volatility(btc_returns).chosen
    assert chosen.stationary and chosen.spec != fit.spec


def test_skew_t_leverage_weight_is_computed_not_assumed() -> None:
    symmetric = negative_half_moment(
        UnivariateSpec("gjr-garch", "skew-t"), {"eta": 8.0, "lambda": 0.0}
    )
    left = negative_half_moment(UnivariateSpec("gjr-garch", "skew-t"), {"eta": 8.0, "lambda": -0.3})
    assert symmetric == pytest.approx(0.5, abs=1e-4)
    assert left > 0.5  # more mass (and variance) in the left tail


def test_egarch_forecast_path_is_deterministic_and_mean_reverting(btc_returns: pd.Series) -> None:
    fit = fit_univariate(btc_returns, UnivariateSpec("egarch", "t"))
    horizon = int(math.log(1e-9) / math.log(fit.persistence)) + 1  # beta^h < 1e-9
    a, b = fit.forecast_variance(horizon), fit.forecast_variance(horizon)
    np.testing.assert_array_equal(a, b)
    assert a[0] == pytest.approx(fit.next_variance)
    assert a[-1] == pytest.approx(fit.long_run_variance, rel=1e-3)


def test_apply_parameters_reproduces_the_fit_without_estimating(btc_returns: pd.Series) -> None:
    fit = fit_univariate(btc_returns, UnivariateSpec("gjr-garch", "skew-t"))
    applied = apply_parameters(btc_returns, fit.spec, fit.params)
    assert applied.start is FitStart.FIXED and applied.iterations is None
    assert applied.params == fit.params
    assert applied.loglik == pytest.approx(fit.loglik, abs=1e-9)
    np.testing.assert_allclose(applied.conditional_vol, fit.conditional_vol, rtol=1e-12)
    assert applied.next_variance == pytest.approx(fit.next_variance, rel=1e-12)
    with pytest.raises(ValueError, match="missing parameter"):
        apply_parameters(btc_returns, fit.spec, {"omega": 0.1})


def test_warm_start_is_recorded(btc_returns: pd.Series) -> None:
    cold = fit_univariate(btc_returns, UnivariateSpec("gjr-garch", "t"))
    warm = fit_univariate(
        btc_returns, UnivariateSpec("gjr-garch", "t"), starting_values=cold.params
    )
    assert (cold.start, warm.start) == (FitStart.COLD, FitStart.WARM)
    assert warm.loglik == pytest.approx(cold.loglik, abs=1e-4)


def test_selection_by_bic_prefers_the_true_family() -> None:
    returns = simulate_gjr_t(TRUE, 3000, 11)
    selection = calibrate_volatility(returns)
    assert selection.fallback_reason is None
    assert selection.chosen.spec.dist.value in ("t", "skew-t")  # fat tails are detected
    usable = [o for o in selection.candidates if o.usable]
    assert selection.chosen.bic == min(o.bic for o in usable)
    assert len(selection.candidates) == len(ALL_SPECS)


class _Broken:
    """Stand-ins for failed fits, to drive the fallback deterministically."""

    def __init__(self, converged: bool, persistence: float) -> None:
        self.converged, self.persistence = converged, persistence
        self.stationary = persistence < 1
        self.bic, self.loglik = 1.0, -1.0


def test_every_failure_falls_back_to_ewma_with_the_reasons(monkeypatch) -> None:
    returns = simulate_gjr_t(TRUE, 800, 3)
    outcomes = iter([_Broken(False, 0.9), _Broken(True, 1.02), ZeroDivisionError("singular")])

    def fake_fit(*args, **kwargs):
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr("calibration.univariate.fit_univariate", fake_fit)
    specs = (
        UnivariateSpec("garch", "normal"),
        UnivariateSpec("garch", "t"),
        UnivariateSpec("egarch", "t"),
    )
    result = calibrate_volatility(returns, specs)
    assert isinstance(result.chosen, EwmaFit) and result.fell_back
    reason = result.fallback_reason
    assert "GARCH(1,1)-normal: did not converge" in reason
    assert "GARCH(1,1)-t: not stationary" in reason
    assert "EGARCH(1,1)-t: ZeroDivisionError: singular" in reason
    assert "EWMA lambda=0.94" in reason
    # the EWMA recursion itself: sigma^2_t = 0.94 sigma^2_{t-1} + 0.06 r^2_{t-1}
    ewma = result.chosen
    var = ewma.conditional_vol.to_numpy() ** 2
    r = returns.to_numpy()
    np.testing.assert_allclose(var[1:], 0.94 * var[:-1] + 0.06 * r[:-1] ** 2, rtol=1e-10)
    assert ewma.forecast_variance(3) == pytest.approx([ewma.next_variance] * 3)
    assert not ewma.stationary


def test_spec_and_input_validation() -> None:
    with pytest.raises(ValueError, match=r"UnivariateSpec.vol: 'figarch' is not one of"):
        UnivariateSpec("figarch")
    with pytest.raises(ValueError, match=r"UnivariateSpec.dist: 'cauchy'"):
        UnivariateSpec("garch", "cauchy")
    short = pd.Series(np.zeros(50), index=pd.date_range("2020-01-01", periods=50))
    with pytest.raises(ValueError, match="needs at least 100"):
        fit_univariate(short)
    bad = simulate_gjr_t(TRUE, 300, 1)
    bad.iloc[10] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        calibrate_volatility(bad)


@pytest.mark.parametrize(
    "spec",
    [UnivariateSpec("gjr-garch", "t"), UnivariateSpec("egarch", "skew-t")],
    ids=lambda s: s.name,
)
def test_constraint_jacobians_change_speed_not_results(
    spec: UnivariateSpec, btc_returns: pd.Series
) -> None:
    """Our fits hand SLSQP the Jacobian of arch's linear constraints; a plain arch fit with the
    same tolerance reaches the same optimum."""
    from calibration.univariate import FIT_TOL

    ours = fit_univariate(btc_returns, spec)
    model = spec.build(btc_returns * SCALE)
    plain = model.fit(disp="off", show_warning=False, tol=FIT_TOL)
    assert ours.loglik == pytest.approx(plain.loglikelihood, abs=1e-9)
    # on a flat ridge (this BTC window sits on the stationarity constraint) the point may move a little
    np.testing.assert_allclose(
        list(ours.params.values()), plain.params.to_numpy(), rtol=1e-4, atol=1e-8
    )
    import arch.univariate.base as arch_base

    assert arch_base.constraint.__module__ == "arch.univariate.base"  # restored afterwards
