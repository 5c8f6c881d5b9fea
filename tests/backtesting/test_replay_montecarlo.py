"""Monte Carlo margins in a backtest: the joint model a day knows, against an exact reference.

Reference: a day's paths bootstrap the joint standardised residuals :math:`z_1 … z_n` known at
the day, one per day of the MPOR, each scaled by the next-day forecast :math:`\\sigma`. For a
long linear position of one underlying over two days the loss is
:math:`F_0(1 - e^{\\sigma(z_i + z_j)})` with :math:`(i, j)` uniform over the :math:`n^2` pairs:
a discrete distribution whose VaR and ES are computed exactly here (every pair enumerated).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from backtesting.replay import MIN_RESIDUAL_DAYS, DayBook, VarInputs, margin_rows
from margin_engine.book import build_positions
from margin_engine.market import MarketSnapshot
from margin_engine.montecarlo import Simulation, mc_margin
from margin_engine.params import ModelParams, VarParams
from vocabulary import Apc, Innovations, Sampling

F0 = 60_000.0
LEVEL = 0.975
PARAMS = ModelParams(var=VarParams(var_confidence=0.99, es_confidence=LEVEL, apc=Apc.NONE))


def _inputs(days: int = 400, seed: int = 3) -> VarInputs:
    rng = np.random.default_rng(seed)
    index = pd.date_range("2023-01-01", periods=days, freq="D")
    cond = pd.DataFrame(
        {"BTC": 0.02 + 0.01 * rng.random(days), "ETH": 0.03 + 0.01 * rng.random(days)}, index
    )
    z = rng.standard_t(4, size=(days, 2)) / math.sqrt(2.0)
    z[:, 1] = 0.6 * z[:, 0] + 0.8 * z[:, 1]
    returns = pd.DataFrame(z * cond.to_numpy(), index=index, columns=["BTC", "ETH"])
    iv = pd.DataFrame(0.03 * rng.standard_normal((days, 2)), index, ["BTC", "ETH"])
    iv["BTC"] -= 0.3 * returns["BTC"] / cond["BTC"] * 0.03
    vol_next = pd.DataFrame({"BTC": 0.025, "ETH": 0.035}, index=index)
    return VarInputs(returns, iv, cond, vol_next)


def _exact_two_day(residuals: np.ndarray, sigma: float, level: float) -> tuple[float, float]:
    loss = np.sort((F0 * -np.expm1(sigma * (residuals[:, None] + residuals[None, :]))).ravel())
    n = len(loss)
    k = math.ceil(level * n)  # VaR: the k-th smallest; ES: Acerbi–Tasche on equal weights
    var = loss[k - 1]
    return var, (loss[k:].sum() / n + (k / n - level) * var) / (1 - level)


def test_a_linear_book_matches_the_exact_bootstrap_distribution() -> None:
    inputs = _inputs()
    day = inputs.returns.index[-1]
    joint = inputs.joint_model(day, ["BTC"], lookback=250)
    z = joint.residuals[:, 0]
    assert len(z) == 250
    var, es = _exact_two_day(z, 0.025, LEVEL)
    market = MarketSnapshot.from_json({"as_of": "2024-02-05T00:00:00Z", "index": {"BTC": F0}})
    positions = build_positions(
        pd.DataFrame({"account": ["a"], "instrument": ["BTC_USDC-PERPETUAL"], "quantity": [1.0]}),
        market,
    )
    sim = Simulation(
        16_384, 2, 11, innovations=Innovations.FILTERED_HISTORICAL, sampling=Sampling.SOBOL
    )
    result = mc_margin(positions, joint, sim, PARAMS)
    got, se = float(result.es[0]), float(result.es_standard_error[0])
    assert 0 < se < 0.02 * es  # the estimate is informative ...
    assert abs(got - es) < 3 * se  # ... and within three of its standard errors of the truth
    assert float(result.margin.components["var_at_es_level"][0]) == pytest.approx(var, rel=0.03)


def test_the_joint_model_uses_nothing_after_its_day() -> None:
    inputs = _inputs()
    day = inputs.returns.index[300]
    before = inputs.joint_model(day, ["BTC", "ETH"], lookback=250)
    later = inputs.returns.index > day

    def spoil(frame: pd.DataFrame, value: float) -> pd.DataFrame:
        frame = frame.copy()
        frame.loc[later] = value
        return frame

    spoiled = VarInputs(
        spoil(inputs.returns, 0.5),
        spoil(inputs.iv_changes, 0.9),
        spoil(inputs.cond_vol, 0.5),
        spoil(inputs.vol_next, 0.2),
    )
    after = spoiled.joint_model(day, ["BTC", "ETH"], lookback=250)
    np.testing.assert_array_equal(before.residuals, after.residuals)
    np.testing.assert_array_equal(before.correlation, after.correlation)
    assert before.dynamics == after.dynamics
    # the day's own return is known at its close, and is the last residual
    z_day = inputs.returns.loc[day].to_numpy() / inputs.cond_vol.loc[day].to_numpy()
    np.testing.assert_allclose(before.residuals[-1], z_day, rtol=1e-15)
    # the implied vols' dynamics: the spread of their changes and their spot correlation
    iv = inputs.iv_changes.loc[:day].iloc[-250:]
    assert before.dynamics[0].vol_of_vol == pytest.approx(iv["BTC"].std(ddof=1), rel=1e-12)
    assert before.dynamics[0].spot_vol_correlation < -0.1  # built in: falls as prices fall
    assert before.correlation[0, 1] == pytest.approx(0.6, abs=0.1)


def test_too_little_history_is_refused_by_name() -> None:
    inputs = _inputs(days=MIN_RESIDUAL_DAYS + 5)
    with pytest.raises(ValueError, match="joint days of residuals"):
        inputs.joint_model(inputs.returns.index[MIN_RESIDUAL_DAYS - 2], ["BTC"], lookback=250)


def test_each_day_draws_its_own_stream() -> None:
    inputs = _inputs()
    first, second = inputs.returns.index[[100, 101]]
    assert inputs.day_seed(first) != inputs.day_seed(second)
    # the run's seed decides, not the data
    assert inputs.day_seed(first) == _inputs(seed=9).day_seed(first)
    assert dataclasses.replace(inputs, seed=1).day_seed(first) != inputs.day_seed(first)


def _stressed_inputs() -> VarInputs:
    """400 days from April 2022: the May, June and November 2022 stress windows inside."""
    inputs = _inputs()
    index = pd.date_range("2022-04-01", periods=len(inputs.returns), freq="D")
    return VarInputs(
        *(frame.set_axis(index) for frame in (inputs.returns, inputs.iv_changes)),
        inputs.cond_vol.set_axis(index),
        inputs.vol_next.set_axis(index),
    )


def test_the_stressed_weight_tool_weights_the_stress_windows_residuals() -> None:
    from calibration.stress import STRESS_WINDOWS

    inputs = _stressed_inputs()
    day = inputs.returns.index[-1]
    plain = inputs.joint_model(day, ["BTC"], lookback=250)
    weighted = inputs.joint_model(day, ["BTC"], lookback=250, stress_weight=0.4)
    assert plain.residual_weights is None
    np.testing.assert_array_equal(plain.residuals, weighted.residuals)
    dates = inputs.returns.index[-250:]
    inside = np.zeros(250, bool)
    for w in STRESS_WINDOWS:
        inside |= (dates >= pd.Timestamp(w.start)) & (dates <= pd.Timestamp(w.end))
    assert 0 < inside.sum() < 250
    assert weighted.residual_weights[inside].sum() == pytest.approx(0.4, rel=1e-12)
    assert weighted.residual_weights.sum() == pytest.approx(1.0, rel=1e-12)


def test_the_floor_tool_uses_the_long_look_back_known_at_the_day() -> None:
    from margin_engine.montecarlo import long_run_model

    inputs = _stressed_inputs()
    day = inputs.returns.index[300]
    joint = inputs.joint_model(day, ["BTC", "ETH"], lookback=250)
    floor = inputs.floor_model(day, joint, 3650)
    known = inputs.returns.loc[:day, ["BTC", "ETH"]].to_numpy()
    expected = long_run_model(joint, known)
    sigma = [d.sigma for d in floor.dynamics]
    np.testing.assert_allclose(sigma, [d.sigma for d in expected.dynamics], rtol=1e-13)
    np.testing.assert_allclose(floor.residuals, expected.residuals, rtol=1e-13)
    # nothing after the day moves it
    later = inputs.returns.copy()
    later.loc[later.index > day] = 0.5
    spoiled = dataclasses.replace(inputs, returns=later)
    assert [d.sigma for d in spoiled.floor_model(day, joint, 3650).dynamics] == sigma
    assert inputs.floor_model(inputs.returns.index[10], joint, 3650) is None  # < 30 days


def _day_book(day: pd.Timestamp) -> DayBook:
    """A long BTC and a short ETH perpetual, as a replay's day would hold them."""
    market = MarketSnapshot.from_json(
        {"as_of": "2023-05-05T00:00:00Z", "index": {"BTC": F0, "ETH": 3_000.0}}
    )
    positions = build_positions(
        pd.DataFrame(
            {
                "account": ["long", "short"],
                "instrument": ["BTC_USDC-PERPETUAL", "ETH_USDC-PERPETUAL"],
                "quantity": [1.0, -20.0],
            }
        ),
        market,
    )
    rows = len(positions.layout[1])
    ones = np.ones(rows)
    return DayBook(
        day, positions, np.array(["long", "short"]), positions.layout[2], 0 * ones, ones, ones
    )


@pytest.mark.parametrize("tool", [Apc.FLOOR, Apc.STRESSED_WEIGHT])
def test_a_backtest_applies_the_policys_anti_procyclicality_tool(tool) -> None:
    """The replay's Monte Carlo margin under a tool: the floor never lowers the margin (the
    same draws under the long look-back's model); the stressed weight moves it."""
    inputs = dataclasses.replace(_stressed_inputs(), paths=1024)
    day = inputs.returns.index[-1]
    book = _day_book(day)
    none = ModelParams(var=dataclasses.replace(PARAMS.var, apc=Apc.NONE))
    with_tool = ModelParams(var=dataclasses.replace(PARAMS.var, apc=tool, apc_stress_weight=0.6))
    base = margin_rows(book, "mc-es", none, inputs)["margin"]
    tooled = margin_rows(book, "mc-es", with_tool, inputs)["margin"]
    assert np.isfinite(base).all() and np.isfinite(tooled).all()
    if tool is Apc.FLOOR:
        assert (tooled >= base - 1e-9).all()
    else:
        assert not np.allclose(tooled, base)


def test_first_day_is_the_first_with_enough_joint_history() -> None:
    inputs = _inputs(days=120)
    # hide BTC's filtered vol on the first 10 days and ETH's return on day 15: joint usable
    # days are 10..14 and 16..; the 30th of them is day 40
    cond = inputs.cond_vol.copy()
    cond.iloc[:10, 0] = np.nan
    returns = inputs.returns.copy()
    returns.iloc[15, 1] = np.nan
    holed = dataclasses.replace(inputs, cond_vol=cond, returns=returns)
    index = inputs.returns.index
    assert holed.first_day(["BTC", "ETH"], MIN_RESIDUAL_DAYS) == index[40]
    assert holed.first_day(["BTC"], MIN_RESIDUAL_DAYS) == index[39]
    assert holed.first_day(["ETH"], MIN_RESIDUAL_DAYS) == index[30]
    assert holed.first_day(["BTC", "ETH"], 2) == index[11]
    # that day is exactly where the Monte Carlo model starts to accept the day
    holed.joint_model(index[40], ["BTC", "ETH"], lookback=250)
    with pytest.raises(ValueError, match="joint days of residuals"):
        holed.joint_model(index[39], ["BTC", "ETH"], lookback=250)
    assert holed.first_day(["BTC", "ETH"], 200) is None
