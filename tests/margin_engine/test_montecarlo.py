"""Monte Carlo margin against closed forms, its standard errors, its streams and its Euler
contributions.

Reference values: a linear book of one underlying has loss :math:`F_0(1 - e^X)`, with
:math:`X` the MPOR log return. Under Gaussian innovations and a constant volatility
:math:`X \\sim N(0, s^2)`, :math:`s = \\sigma\\sqrt h`, so with :math:`q = s\\,\\Phi^{-1}(1-c)`

.. math::

    \\mathrm{VaR} = F_0(1 - e^{q}), \\qquad
    \\mathrm{ES} = F_0\\Big(1 - \\frac{e^{s^2/2}\\,\\Phi((q - s^2)/s)}{1 - c}\\Big).

Under unit-variance Student-t innovations over one day, :math:`X = \\sigma\\sqrt{(\\nu-2)/\\nu}
\\,T_\\nu`: VaR from the t quantile, ES by numerical integration of the t density (scipy quad).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
from books import positions_frame, random_book
from scipy import integrate, stats

from margin_engine.book import build_positions
from margin_engine.market import MarketSnapshot
from margin_engine.montecarlo import (
    BLOCK,
    AssetDynamics,
    JointModel,
    Simulation,
    dynamics_from_fit,
    mc_margin,
    simulate,
    tail_measures,
)
from margin_engine.params import ModelParams, VarParams
from vocabulary import Apc

F0 = 50_000.0
SIGMA = 0.03
C_VAR, C_ES = 0.99, 0.975
PARAMS = ModelParams(var=VarParams(var_confidence=C_VAR, es_confidence=C_ES, apc=Apc.NONE))


def _linear_book():
    market = MarketSnapshot.from_json({"as_of": "2025-01-01T00:00:00Z", "index": {"BTC": F0}})
    return build_positions(positions_frame([("a", "BTC_USDC-PERPETUAL", 1.0)]), market)


def _one(dynamics=None, residuals=None) -> JointModel:
    return JointModel(("BTC",), (dynamics or AssetDynamics(SIGMA),), np.eye(1), residuals=residuals)


def _gaussian(h: int) -> tuple[float, float]:
    s = SIGMA * math.sqrt(h)
    q_var = s * stats.norm.ppf(1 - C_VAR)
    q = s * stats.norm.ppf(1 - C_ES)
    es = F0 * (1 - math.exp(s * s / 2) * stats.norm.cdf((q - s * s) / s) / (1 - C_ES))
    return F0 * (1 - math.exp(q_var)), es


def _student(dof: float) -> tuple[float, float]:
    scale = SIGMA * math.sqrt((dof - 2) / dof)
    q_var = scale * stats.t.ppf(1 - C_VAR, dof)
    q = scale * stats.t.ppf(1 - C_ES, dof)
    tail, _ = integrate.quad(
        lambda t: (1 - math.exp(scale * t)) * stats.t.pdf(t, dof), -np.inf, q / scale
    )
    return F0 * (1 - math.exp(q_var)), F0 * tail / (1 - C_ES)


def _run(sim: Simulation, model: JointModel | None = None, **kwargs):
    return mc_margin(_linear_book(), model or _one(), sim, PARAMS, **kwargs)


@pytest.mark.parametrize("h", [1, 2])
def test_gaussian_var_and_es_within_three_standard_errors(h) -> None:
    var, es = _gaussian(h)
    result = _run(Simulation(40_000, h, seed=3, innovations="gaussian"))
    assert abs(result.var[0] - var) < 3 * result.var_standard_error[0]
    assert abs(result.es[0] - es) < 3 * result.es_standard_error[0]
    # the estimate is informative: its error bar is a few per cent of ES, not a wide net
    assert result.es_standard_error[0] < 0.02 * es
    assert result.margin.initial_margin[0] == pytest.approx(result.es[0])


def test_student_t_var_and_es_within_three_standard_errors() -> None:
    var, es = _student(4.0)
    result = _run(Simulation(40_000, 1, seed=5, innovations="student-t", dof=4.0))
    assert abs(result.var[0] - var) < 3 * result.var_standard_error[0]
    assert abs(result.es[0] - es) < 3 * result.es_standard_error[0]
    # fatter tails than the Gaussian of the same variance: a test that could fail
    assert es > _gaussian(1)[1] * 1.05


def test_es_standard_error_falls_as_one_over_root_paths() -> None:
    small = _run(Simulation(2_048, 1, seed=1, innovations="gaussian")).es_standard_error[0]
    large = _run(Simulation(32_768, 1, seed=1, innovations="gaussian")).es_standard_error[0]
    assert small / large == pytest.approx(4.0, rel=0.2)


def test_the_standard_error_matches_the_spread_over_seeds() -> None:
    estimates, errors = [], []
    for seed in range(40):
        r = _run(Simulation(4_096, 1, seed=seed, innovations="gaussian"))
        estimates.append(r.es[0])
        errors.append(r.es_standard_error[0])
    # 40 seeds: the sample sd is within about ±25 % of the truth with high probability
    assert np.std(estimates, ddof=1) == pytest.approx(np.mean(errors), rel=0.35)


def test_quasi_random_beats_pseudo_random_at_equal_paths() -> None:
    _, es = _gaussian(1)

    def rmse(sampling: str) -> float:
        errors = [
            _run(Simulation(4_096, 1, seed=seed, innovations="gaussian", sampling=sampling)).es[0]
            - es
            for seed in range(24)
        ]
        return float(np.sqrt(np.mean(np.square(errors))))

    pseudo, sobol = rmse("pseudo"), rmse("sobol")
    assert sobol < 0.7 * pseudo


def test_antithetic_pairs_are_mirror_images() -> None:
    sim = Simulation(2 * BLOCK + 200, 1, seed=2, innovations="gaussian", sampling="antithetic")
    moves, _ = simulate(_one(), sim)
    log = np.log1p(moves[:, 0])
    np.testing.assert_allclose(log[0::2], -log[1::2], rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("sampling", ["pseudo", "antithetic", "sobol"])
def test_the_same_seed_gives_the_same_margins_whatever_the_chunks(
    sampling, chain_market, chain_instruments
) -> None:
    positions = build_positions(random_book(chain_instruments, 40, seed=8), chain_market)
    model = JointModel(
        ("BTC", "ETH"),
        (
            AssetDynamics(0.03, 1e-5, 0.05, 0.05, 0.88, vol_of_vol=0.05, spot_vol_correlation=-0.4),
            AssetDynamics(0.04, 2e-5, 0.06, 0.04, 0.87, vol_of_vol=0.06),
        ),
        np.array([[1.0, 0.8], [0.8, 1.0]]),
    )
    sim = Simulation(5 * BLOCK + 300, 2, seed=11, sampling=sampling)
    one = mc_margin(positions, model, sim, PARAMS)
    with ThreadPoolExecutor(4) as pool:
        for chunks in (2, 4):
            other = mc_margin(positions, model, sim, PARAMS, chunks=chunks, mapper=pool.map)
            np.testing.assert_array_equal(other.es, one.es)
            np.testing.assert_array_equal(other.var, one.var)
            np.testing.assert_array_equal(other.contribution, one.contribution)
    different = mc_margin(positions, model, Simulation(sim.paths, 2, seed=12, sampling=sampling))
    assert not np.array_equal(different.es, one.es)


def test_euler_contributions_add_up_to_es(chain_market, chain_instruments) -> None:
    frame = random_book(chain_instruments, 30, seed=4)
    # a hedge: account h holds a perpetual and its exact opposite in a second line... plus
    # a long call, so that one leg lowers the shortfall
    call = next(n for n in chain_instruments if n.startswith("BTC") and n.endswith("-C"))
    hedge = positions_frame([("h", call, -5.0), ("h", "BTC-PERPETUAL", 200_000.0)])
    positions = build_positions(pd.concat([frame, hedge], ignore_index=True), chain_market)
    model = JointModel(
        ("BTC", "ETH"),
        (AssetDynamics(0.03, vol_of_vol=0.05), AssetDynamics(0.04, vol_of_vol=0.05)),
        np.array([[1.0, 0.7], [0.7, 1.0]]),
    )
    result = mc_margin(positions, model, Simulation(8_192, 2, seed=6), PARAMS)
    sums = np.bincount(
        result.row_of_position, weights=result.contribution, minlength=len(result.es)
    )
    np.testing.assert_allclose(sums, result.es, rtol=1e-9, atol=1e-9 * np.abs(result.es).max())
    # in the hedged account the two legs pull opposite ways
    h = positions.accounts.index("h")
    legs = result.contribution[positions.account == h]
    assert legs.min() < 0 < legs.max()


def test_filtered_historical_paths_replay_residual_rows() -> None:
    rng = np.random.default_rng(0)
    residuals = rng.choice([-2.0, -0.5, 0.5, 2.0], size=(60, 1))
    sim = Simulation(3_000, 1, seed=1, innovations="filtered-historical")
    moves, _ = simulate(_one(residuals=residuals), sim)
    assert set(np.round(np.log(1 + moves[:, 0]) / SIGMA, 9)) == {-2.0, -0.5, 0.5, 2.0}
    with pytest.raises(ValueError, match="residuals"):
        simulate(_one(), sim)


def test_the_garch_recursion_raises_the_second_day_variance() -> None:
    d = AssetDynamics(SIGMA, omega=1e-4, alpha=0.08, gamma=0.1, beta=0.85)
    moves, _ = simulate(_one(d), Simulation(200_000, 2, seed=4, innovations="gaussian"))
    total = np.log1p(moves[:, 0])
    # E[σ²₂] = ω + (α + γ/2 + β) σ² for symmetric innovations
    expected = SIGMA**2 + d.omega + (d.alpha + d.gamma / 2 + d.beta) * SIGMA**2
    assert total.var() == pytest.approx(expected, rel=0.02)
    assert total.var() > 2 * SIGMA**2 * 1.02  # more than a constant volatility gives


def test_implied_vol_paths_follow_their_dynamics() -> None:
    d = AssetDynamics(SIGMA, vol_of_vol=0.05, spot_vol_correlation=-0.6)
    moves, vols = simulate(_one(d), Simulation(100_000, 3, seed=9, innovations="gaussian"))
    x = np.log1p(vols[:, 0])
    assert x.std() == pytest.approx(0.05 * math.sqrt(3), rel=0.02)
    assert np.corrcoef(x, np.log1p(moves[:, 0]))[0, 1] == pytest.approx(-0.6, abs=0.02)
    # mean reversion pulls towards the long-run level
    pulled = AssetDynamics(SIGMA, iv_mean_reversion=0.5, iv_level_ratio=0.8)
    _, vols = simulate(_one(pulled), Simulation(1_000, 2, seed=9, innovations="gaussian"))
    np.testing.assert_allclose(vols[:, 0], math.exp(math.log(0.8) * 0.75) - 1, rtol=1e-12)


def test_tail_measures_of_a_known_sample() -> None:
    losses = np.arange(1.0, 101.0)[None, :]  # 1..100, equally likely
    m = tail_measures(losses, 0.95)
    assert m.var[0] == 95.0
    assert m.es[0] == pytest.approx(np.mean([96, 97, 98, 99, 100]))
    m = tail_measures(losses, 0.975)  # k = 98, ES = (99 + 100 + 0.5 * 98) / 2.5
    assert m.var[0] == 98.0
    assert m.es[0] == pytest.approx((99 + 100 + 0.5 * 98) / 2.5)
    assert m.tail_weights[0].sum() == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: AssetDynamics(0.0), "sigma"),
        (lambda: AssetDynamics(0.02, alpha=0.2, beta=0.85), "stationary"),
        (lambda: JointModel(("A", "B"), (AssetDynamics(0.02),) * 2, np.array([[1, 2], [2, 1]])), "positive definite"),
        (lambda: JointModel(("A",), (AssetDynamics(0.02),), np.eye(1), np.ones((5, 1))), "residuals"),
        (lambda: Simulation(1_001, 1, seed=0, sampling="antithetic"), "even"),
        (lambda: Simulation(1_000, 1, seed=0, innovations="copula"), "copula"),
        (lambda: Simulation(10, 1, seed=0), "paths"),
    ],
)  # fmt: skip
def test_bad_specifications_are_refused_by_name(make, match) -> None:
    with pytest.raises(ValueError, match=match):
        make()


def test_dynamics_from_a_stored_fit_are_in_daily_decimal_units() -> None:
    # arch's parameters are on percent returns: ω in percent², α, γ, β without units
    d = dynamics_from_fit(
        {"vol": "gjr-garch", "dist": "t"},
        {"omega": 0.8, "alpha[1]": 0.05, "gamma[1]": 0.1, "beta[1]": 0.85, "nu": 4.0},
        0.365,
        {
            "vol_of_vol_current_annual": math.sqrt(365) * 0.04,
            "spot_vol_corr_ewma": -0.5,
            "iv_last": 0.5,
            "mean_reversion": {"phi": 0.97, "long_run_iv": 0.6},
        },
    )
    assert d.sigma == pytest.approx(0.365 / math.sqrt(365))
    assert d.omega == pytest.approx(0.8e-4) and d.recursive
    assert d.vol_of_vol == pytest.approx(0.04) and d.spot_vol_correlation == -0.5
    assert d.iv_mean_reversion == pytest.approx(0.03) and d.iv_level_ratio == pytest.approx(1.2)
    # an EGARCH fit keeps its forecast flat; a missing correlation is none
    flat = dynamics_from_fit({"vol": "egarch"}, {"omega": 0.1}, 0.5, {"spot_vol_corr_ewma": None})
    assert not flat.recursive and flat.spot_vol_correlation == 0.0


def test_the_floor_tool_keeps_the_margin_at_the_long_run_models_measure() -> None:
    from margin_engine.montecarlo import long_run_model

    floor_params = ModelParams(var=VarParams(var_confidence=C_VAR, es_confidence=C_ES, apc="floor"))
    sim = Simulation(4 * BLOCK, 2, seed=5, innovations="gaussian")
    calm, stressed = _one(AssetDynamics(0.01)), _one(AssetDynamics(0.05))
    # the floor binds: the margin is the floor model's own ES, on the same draws exactly
    bound = mc_margin(_linear_book(), calm, sim, floor_params, floor=stressed)
    alone = mc_margin(_linear_book(), stressed, sim, PARAMS)
    assert bound.margin.initial_margin[0] == alone.es[0]
    assert bound.margin.components["apc_floor"][0] == alone.es[0] > bound.es[0]
    # it does not bind: the margin is the model's own
    free = mc_margin(_linear_book(), stressed, sim, floor_params, floor=calm)
    assert free.margin.initial_margin[0] == alone.es[0] > free.margin.components["apc_floor"][0]
    # the long-run model: each underlying at its returns' root mean square, unit residuals
    rng = np.random.default_rng(2)
    returns = rng.standard_normal((500, 1)) * 0.04
    model = long_run_model(_one(AssetDynamics(0.01, 1e-6, 0.05, 0.0, 0.9)), returns)
    assert model.dynamics[0].sigma == pytest.approx(math.sqrt(np.mean(returns**2)), rel=1e-12)
    assert not model.dynamics[0].recursive
    assert np.mean(model.residuals**2) == pytest.approx(1.0, rel=1e-12)


def test_stressed_weights_steer_the_bootstrap() -> None:
    from margin_engine.montecarlo import stress_weights

    dates = pd.date_range("2022-01-01", periods=100, freq="D")
    w = stress_weights(dates, [("2022-03-01", "2022-03-10")], 0.4)
    stressed = (dates >= "2022-03-01") & (dates <= "2022-03-10")
    assert w.sum() == pytest.approx(1.0) and w[stressed].sum() == pytest.approx(0.4)
    assert np.allclose(w[stressed], 0.04) and np.allclose(w[~stressed], 0.6 / 90)
    assert np.allclose(stress_weights(dates, [("2030-01-01", "2030-02-01")], 0.4), 0.01)
    # every draw from the one weighted row: each path moves by exactly that row over the MPOR
    z = np.linspace(-2.0, 2.0, 100)[:, None]
    only = np.zeros(100)
    only[17] = 1.0
    model = JointModel(("BTC",), (AssetDynamics(SIGMA),), np.eye(1), z, only)
    sim = Simulation(BLOCK, 3, seed=1, innovations="filtered-historical", sampling="sobol")
    moves, _ = simulate(model, sim)
    np.testing.assert_allclose(moves[:, 0], math.expm1(3 * SIGMA * z[17, 0]), rtol=1e-12)
    # the weights shift the tail: the stressed rows (here the largest falls) drawn more often
    falls = np.where(np.arange(100) < 10, 1.0, 0.0)
    weighted = JointModel(("BTC",), (AssetDynamics(SIGMA),), np.eye(1), z, 0.5 * falls + 0.5 / 100)
    plain = JointModel(("BTC",), (AssetDynamics(SIGMA),), np.eye(1), z)
    sim = Simulation(4 * BLOCK, 2, seed=3, innovations="filtered-historical")
    heavy = mc_margin(_linear_book(), weighted, sim, PARAMS).es[0]
    assert heavy > 1.1 * mc_margin(_linear_book(), plain, sim, PARAMS).es[0]
    with pytest.raises(ValueError, match="residual_weights"):
        JointModel(("BTC",), (AssetDynamics(SIGMA),), np.eye(1), z, np.ones(5))


def test_intraday_paths_close_on_the_daily_paths_and_bridge_with_the_days_volatility() -> None:
    """Each day's last point is the joint simulation's close (so the MPOR move is
    :func:`simulate`'s), and the bridge's spread within a day is the Brownian bridge's: at
    the middle step of a day with volatility σ, the log price's deviation from the straight
    line between the day's ends has variance σ²·k(m−k)/m² = σ²/4 for k = m/2."""
    from margin_engine.montecarlo import intraday_paths

    garch = AssetDynamics(SIGMA, omega=1e-5, alpha=0.08, gamma=0.05, beta=0.88)
    model = JointModel(
        ("BTC", "ETH"), (garch, AssetDynamics(1.3 * SIGMA)), np.array([[1, 0.6], [0.6, 1]])
    )
    sim = Simulation(4096, 3, 11, innovations="student-t")
    steps = 4
    paths = intraday_paths(model, sim, steps)
    assert paths.shape == (4096, 2, 12)
    moves, _ = simulate(model, sim)
    np.testing.assert_allclose(paths[:, :, -1] - 1.0, moves, rtol=1e-12, atol=1e-15)
    # the same seed and chunking-free: the same paths again; another seed: others
    np.testing.assert_array_equal(paths, intraday_paths(model, sim, steps))
    other = intraday_paths(model, Simulation(4096, 3, 12, innovations="student-t"), steps)
    assert not np.allclose(other, paths)
    # the unconditional asset (ETH, σ fixed): the middle of day 2 against its ends
    logs = np.log(paths[:, 1, :])
    start, end, middle = logs[:, 3], logs[:, 7], logs[:, 5]
    deviation = middle - (start + end) / 2
    sigma = 1.3 * SIGMA
    # the sample variance of 4,096 normals is within 4 % of the truth with 99.9 % odds
    assert deviation.var() == pytest.approx(sigma**2 / 4, rel=0.1)
    assert abs(deviation.mean()) < 4 * sigma / 2 / math.sqrt(4096)
    with pytest.raises(ValueError, match="steps_per_day"):
        intraday_paths(model, sim, 0)


def test_intraday_implied_vols_end_each_day_on_the_models() -> None:
    """The implied vols' ratios at the horizon are :func:`simulate`'s, the prices are those
    without vols, and a negative spot–vol correlation shows in the paths."""
    from margin_engine.montecarlo import intraday_paths

    dynamics = AssetDynamics(
        SIGMA, vol_of_vol=0.08, spot_vol_correlation=-0.6, iv_mean_reversion=0.1
    )
    model = JointModel(("ETH",), (dynamics,), np.eye(1))
    sim = Simulation(2048, 2, 5, innovations="gaussian")
    prices, vols = intraday_paths(model, sim, 4, with_vols=True)
    moves, vol_moves = simulate(model, sim)
    np.testing.assert_array_equal(prices, intraday_paths(model, sim, 4))
    np.testing.assert_allclose(vols[:, :, -1] - 1.0, vol_moves, rtol=1e-12, atol=1e-15)
    # within a day the log vol is on the straight line between the closes
    logs = np.log(vols[:, 0, :])
    np.testing.assert_allclose(logs[:, 5], (logs[:, 3] + logs[:, 7]) / 2, atol=1e-12)
    np.testing.assert_allclose(logs[:, 1], logs[:, 3] / 2, atol=1e-12)  # from 0 at the start
    # the day's price and vol moves share the innovation: correlation -0.6 (2,048 draws:
    # standard error about 0.014)
    rho = np.corrcoef(np.log(prices[:, 0, 3]), logs[:, 3])[0, 1]
    assert rho == pytest.approx(-0.6, abs=0.06)
