"""Recommendations: the FHS paths, the parametric closed form, the APC arithmetic, spread
credits, bounds — and the monotonicity a committee relies on (property tests)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import norm
from test_univariate import TRUE, simulate_gjr_t

from calibration.policy import CalibrationPolicy, MoveMethod
from calibration.recommend import (
    estimate_move,
    outside_bounds,
    path_extremes,
    raw_path_extremes,
    recommend,
    spread_credit,
)
from calibration.univariate import UnivariateSpec, fit_ewma, fit_univariate
from vocabulary import Apc


@pytest.fixture(scope="module")
def market():
    history = simulate_gjr_t(TRUE, 2500, 41)
    history.index = pd.date_range("2016-01-01", periods=len(history), freq="D")
    fit = fit_univariate(history.iloc[-1000:], UnivariateSpec("gjr-garch", "t"))
    return fit, history


def test_path_extremes_match_a_plain_loop() -> None:
    rng = np.random.default_rng(0)
    z, sigma = rng.standard_normal(50), np.array([0.01, 0.02, 0.015])
    downs, ups = path_extremes(z, sigma, 3)
    for s in range(50):
        path = np.cumsum([sigma[j] * z[(s + j) % 50] for j in range(3)])
        assert downs[s] == pytest.approx(min(0.0, path.min()))
        assert ups[s] == pytest.approx(max(0.0, path.max()))
    d2, _ = raw_path_extremes(np.array([0.1, -0.3, 0.2, -0.5]), np.array([0, 3]), 3)
    assert d2.tolist() == pytest.approx([-0.2, -0.5])  # the second path is cut at the data's end


def test_parametric_ewma_is_the_normal_closed_form() -> None:
    returns = simulate_gjr_t(TRUE, 600, 5)
    fit = fit_ewma(returns, reason="test")
    policy = CalibrationPolicy(method=MoveMethod.PARAMETRIC, apc=Apc.NONE, lookback_days=500)
    move = estimate_move(fit, returns, policy, horizon=3, confidence=0.99)
    sigma = math.sqrt(fit.next_variance)
    assert move.down == pytest.approx(1 - math.exp(norm.ppf(0.01) * sigma * math.sqrt(3)), rel=1e-9)
    assert move.up == pytest.approx(math.exp(norm.ppf(0.99) * sigma * math.sqrt(3)) - 1, rel=1e-9)


def test_apc_arithmetic(market) -> None:
    fit, history = market
    base = estimate_move(fit, history, CalibrationPolicy(apc="none"), 2, 0.99)
    buffered = estimate_move(
        fit, history, CalibrationPolicy(apc="buffer", apc_buffer=0.25), 2, 0.99
    )
    assert buffered.down == pytest.approx(base.down * 1.25)
    assert buffered.up == pytest.approx(base.up * 1.25)
    assert buffered.derivation.apc["released_down"] == pytest.approx(base.down)

    floored = estimate_move(fit, history, CalibrationPolicy(apc="floor"), 2, 0.99)
    assert floored.down == pytest.approx(max(base.down, floored.derivation.apc["floor_down"]))
    assert floored.derivation.apc["floor_days_used"] == len(history)  # under 10 years available

    stressed_policy = CalibrationPolicy(apc="stressed-weight")
    stressed = estimate_move(fit, history, stressed_policy, 2, 0.99)
    apc = stressed.derivation.apc
    assert stressed.down == pytest.approx(0.75 * base.down + 0.25 * apc["stressed_down"])
    # recompute the stressed value from the raw paths that start in the stress windows
    dates = history.index
    starts = np.flatnonzero(
        np.any(
            [
                (dates >= pd.Timestamp(w.start)) & (dates <= pd.Timestamp(w.end))
                for w in stressed_policy.stress_windows
            ],
            axis=0,
        )
    )
    downs, _ = raw_path_extremes(history.to_numpy(), starts, 2)
    assert apc["stressed_down"] == pytest.approx(1 - math.exp(np.quantile(downs, 0.01)))
    assert apc["stressed_paths"] == len(starts)


def test_recommendations_carry_their_derivation(market) -> None:
    fit, history = market
    result = recommend(
        {"SIM": fit},
        {"SIM": history},
        CalibrationPolicy(),
        as_of="2022-10-04",
        pair_correlations={("SIM", "OTHER"): {"dcc": 0.8, "ccc": 0.7, "May 2022": 0.9}},
    )
    price_range = result.value("underlyings.SIM.pm.price_range")
    item = next(i for i in result.items if i.parameter == "underlyings.SIM.pm.price_range")
    assert item.derivation.inputs["data_fingerprint"] == fit.window.fingerprint
    assert item.derivation.quantiles["level"] == 0.99
    q_up = item.derivation.quantiles["up_log"]
    q_down = item.derivation.quantiles["down_log"]
    assert price_range == pytest.approx(1.25 * max(math.exp(q_up) - 1, 1 - math.exp(q_down)))
    assert any("APC buffer" in step for step in item.derivation.steps)
    assert result.value("underlyings.SIM.span.price_scan_range") == price_range
    credit = result.value("spreads.SIM-OTHER.credit")
    assert credit == pytest.approx(1 - math.sqrt((1 - 0.7) / 2))  # the lowest correlation, ccc
    assert result.value("collateral.SIM.haircut") <= price_range + 1e-12


def test_spread_credit_and_bounds() -> None:
    assert spread_credit(1.0) == pytest.approx(1.0)
    assert spread_credit(0.0) == 0.0 and spread_credit(-0.4) == 0.0
    values = [spread_credit(r) for r in np.linspace(0.01, 0.99, 50)]
    assert values == sorted(values)
    from calibration.recommend import Derivation, Recommendation, Recommendations

    d = Derivation("x", {}, {}, "", ())
    recs = Recommendations(
        "2024-01-01",
        CalibrationPolicy(),
        (Recommendation("a.b", 0.7, "", d), Recommendation("a.c", 0.1, "", d)),
    )
    found = outside_bounds(recs, {"a.b": (0.0, 0.5), "a.c": (0.05, None)})
    assert [v.parameter for v in found] == ["a.b"] and "0.7 outside [0.0, 0.5]" in found[
        0
    ].describe()


def test_policy_validation_messages() -> None:
    with pytest.raises(ValueError, match=r"CalibrationPolicy.confidence: 1.2"):
        CalibrationPolicy(confidence=1.2)
    with pytest.raises(ValueError, match=r"CalibrationPolicy.mpor_days"):
        CalibrationPolicy(mpor_days=0)
    with pytest.raises(ValueError, match="haircut_tiers"):
        CalibrationPolicy(haircut_tiers=())
    with pytest.raises(ValueError, match="'sometimes'"):
        CalibrationPolicy(apc="sometimes")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    c=st.lists(st.floats(min_value=0.9, max_value=0.998), min_size=2, max_size=2).map(sorted),
    h=st.lists(st.integers(min_value=1, max_value=10), min_size=2, max_size=2).map(sorted),
    method=st.sampled_from(list(MoveMethod)),
    apc=st.sampled_from(list(Apc)),
)
def test_higher_confidence_or_longer_mpor_never_lowers_a_range_or_haircut(
    market, c, h, method, apc
) -> None:
    fit, history = market
    lower = CalibrationPolicy(
        confidence=c[0], mpor_days=h[0], haircut_mpor_days=h[0], method=method, apc=apc
    )
    higher = CalibrationPolicy(
        confidence=c[1], mpor_days=h[1], haircut_mpor_days=h[1], method=method, apc=apc
    )
    pairs = [
        (lower, higher),
        (lower, replace(lower, confidence=c[1])),
        (lower, replace(lower, mpor_days=h[1], haircut_mpor_days=h[1])),
    ]
    for policy_a, policy_b in pairs:
        a = recommend({"X": fit}, {"X": history}, policy_a, as_of="x")
        b = recommend({"X": fit}, {"X": history}, policy_b, as_of="x")
        for parameter in ("underlyings.X.pm.price_range", "collateral.X.haircut"):
            assert b.value(parameter) >= a.value(parameter) - 1e-12, (parameter, policy_a, policy_b)
