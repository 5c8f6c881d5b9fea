"""Boundaries and failed fits (issue 12): a richer GARCH model held against the model it nests,
an integrated DCC flagged with the policy's fallback and written as strict JSON, and the gaps of
a series counted, dated and carried by every fit."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from test_univariate import TRUE, simulate_gjr_t

import calibration.univariate as univariate
from calibration.correlation import DccBoundary, dcc_with_fallback, fit_dcc
from calibration.returns import GapPolicy, log_returns
from calibration.univariate import (
    NESTED_TOLERANCE,
    UnivariateSpec,
    calibrate_volatility,
    fit_univariate,
    nested_in,
)
from reports.serialize import dumps

EGARCH_T = UnivariateSpec("egarch", "t")
EGARCH_N = UnivariateSpec("egarch", "normal")
# a cold start that SLSQP takes to a "converged" optimum thousands of log-likelihood units below
# the nested EGARCH-normal (alpha and gamma in the tens of millions): the failure seen on SOL
BAD_START = np.array([0.0, -10.0, -50.0, 0.0, 0.99, 400.0])


def _returns() -> pd.Series:
    return simulate_gjr_t(TRUE, 1000, 11)


def _sabotage(monkeypatch, *, refit_too: bool) -> None:
    real = univariate.fit_univariate

    def fit(returns, spec=UnivariateSpec(), **kwargs):
        warm = kwargs.get("starting_values") is not None
        if spec == EGARCH_T and (not warm or refit_too):
            kwargs["starting_values"] = BAD_START
        return real(returns, spec, **kwargs)

    monkeypatch.setattr(univariate, "fit_univariate", fit)


def test_nesting_is_declared_for_every_richer_candidate() -> None:
    assert nested_in(UnivariateSpec("gjr-garch", "skew-t")) == (
        UnivariateSpec("garch", "skew-t"),
        UnivariateSpec("gjr-garch", "t"),
    )
    assert nested_in(EGARCH_T) == (EGARCH_N,)
    assert nested_in(UnivariateSpec("garch", "normal")) == ()


def test_a_richer_fit_worse_than_its_nested_model_is_refit_from_its_solution(monkeypatch) -> None:
    returns = _returns()
    normal = fit_univariate(returns, EGARCH_N)
    bad = fit_univariate(returns, EGARCH_T, starting_values=BAD_START)
    assert bad.loglik < normal.loglik - 100  # the failure is real, not a rounding matter
    _sabotage(monkeypatch, refit_too=False)
    result = calibrate_volatility(returns, (EGARCH_N, EGARCH_T))
    (t_outcome,) = [o for o in result.candidates if o.spec == EGARCH_T]
    assert t_outcome.rejected is None and "refit from its solution" in t_outcome.note
    assert t_outcome.loglik >= normal.loglik - NESTED_TOLERANCE
    # the candidate list keeps the order asked for
    assert [o.spec for o in result.candidates] == [EGARCH_N, EGARCH_T]


def test_a_richer_fit_that_stays_worse_is_rejected_with_the_reason(monkeypatch) -> None:
    returns = _returns()
    _sabotage(monkeypatch, refit_too=True)
    result = calibrate_volatility(returns, (EGARCH_T, EGARCH_N))
    (t_outcome,) = [o for o in result.candidates if o.spec == EGARCH_T]
    assert not t_outcome.usable
    assert "below the nested EGARCH(1,1)-normal" in t_outcome.rejected
    assert result.chosen.spec == EGARCH_N  # never the failed optimisation


def _integrated_residuals() -> np.ndarray:
    """Two series whose correlation is a random walk: the DCC estimate sits on a + b = 1."""
    rng = np.random.default_rng(0)
    rho = np.tanh(np.cumsum(rng.normal(0, 0.08, 1000)))
    z1 = rng.standard_normal(1000)
    z2 = rho * z1 + np.sqrt(1 - rho**2) * rng.standard_normal(1000)
    return np.c_[z1, z2]


def test_an_integrated_dcc_is_flagged_and_replaced_by_the_policys_fallback() -> None:
    z = _integrated_residuals()
    fit = fit_dcc(z)
    assert fit.integrated and math.isnan(fit.se_a)
    text = dumps(fit.to_dict())  # strict JSON: the NaN standard errors are null
    assert json.loads(text)["se_a"] is None and "NaN" not in text
    ewma = dcc_with_fallback(z, on_boundary=DccBoundary.EWMA)
    assert ewma.fallback is DccBoundary.EWMA and ewma.used.method == "ewma"
    assert "integrated" in ewma.note
    capped = dcc_with_fallback(z, on_boundary="cap", persistence_cap=0.98)
    assert capped.capped_fit.persistence <= 0.98 + 1e-5 and not capped.capped_fit.integrated
    assert capped.used is capped.capped_fit.forecast
    # a mean-reverting DCC has no fallback
    rng = np.random.default_rng(1)
    calm = rng.standard_normal((800, 2)) @ np.linalg.cholesky([[1, 0.5], [0.5, 1]]).T
    plain = dcc_with_fallback(calm)
    assert plain.fallback is None and not plain.fit.integrated


def test_strict_json_writes_every_non_finite_number_as_null() -> None:
    payload = {"a": math.nan, "b": [math.inf, -math.inf, 1.5], "c": np.float64("nan"), "d": (1,)}
    assert json.loads(dumps(payload)) == {"a": None, "b": [None, None, 1.5], "c": None, "d": [1]}


def test_the_gaps_of_a_series_travel_with_the_fit() -> None:
    returns = _returns()
    prices = pd.Series(100 * np.exp(np.cumsum(returns.to_numpy())), index=returns.index)
    dropped = prices.drop(prices.index[[200, 201, 500]])  # a 2-day and a 1-day hole
    series = log_returns(dropped, asset="X")
    assert series.policy is GapPolicy.SCALE and len(series.gaps) == 2
    fit = fit_univariate(series.tail(900), UnivariateSpec("garch", "t"))
    window = fit.window
    assert window.flagged_gaps == 2 and window.gap_policy == "scale"
    assert [g["missing_days"] for g in window.gaps] == [2, 1]
    assert [g["date"] for g in window.gaps] == [
        prices.index[202].date().isoformat(),
        prices.index[501].date().isoformat(),
    ]
    # the 3-day return enters as its one-day equivalent
    day = prices.index[202]
    assert series.values.loc[day] == pytest.approx(
        math.log(prices.loc[day] / prices.iloc[199]) / math.sqrt(3)
    )
    assert fit.to_dict()["window"]["gaps"][0]["span_days"] == 3
