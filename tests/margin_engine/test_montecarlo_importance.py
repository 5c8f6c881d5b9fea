"""Importance sampling of Monte Carlo paths: the likelihood ratio each path carries is the
density ratio of its own draws, the weighted estimators are the equal-weight ones when every
weight is one, VaR and ES stay within three standard errors of the closed forms (see
``test_montecarlo``), and at equal paths the error is smaller than without it."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from books import random_book
from scipy import stats
from test_montecarlo import PARAMS, SIGMA, _gaussian, _one, _run, _student

from margin_engine.book import build_positions
from margin_engine.montecarlo import (
    IMPORTANCE_CHI2,
    IMPORTANCE_SCALE,
    AssetDynamics,
    JointModel,
    Simulation,
    intraday_paths,
    mc_margin,
    path_weights,
    simulate,
    tail_measures_at,
)


def _sim(paths: int, h: int, seed: int, **kwargs) -> Simulation:
    return Simulation(paths, h, seed, sampling="sobol", importance=True, **kwargs)


def test_each_weight_is_the_density_ratio_of_its_own_draw() -> None:
    # one underlying over one day under Gaussian innovations: the day's normal x is the
    # path's log return over σ, drawn from N(0, s²); its weight is φ(x) / (φ(x/s)/s)
    sim = _sim(4_096, 1, seed=3, innovations="gaussian")
    moves, _ = simulate(_one(), sim)
    x = np.log1p(moves[:, 0]) / SIGMA
    s = IMPORTANCE_SCALE
    expected = stats.norm.pdf(x) / (stats.norm.pdf(x / s) / s)
    np.testing.assert_allclose(path_weights(_one(), sim), expected, rtol=1e-9)
    assert np.std(x) == pytest.approx(s, rel=0.02)  # the draws are the widened ones


def test_student_t_weights_have_mean_one_and_the_chi_square_factor() -> None:
    sim = _sim(65_536, 2, seed=4, innovations="student-t", dof=5.0)
    w = path_weights(_one(), sim)
    assert w.mean() == pytest.approx(1.0, abs=4 * w.std() / math.sqrt(len(w)))
    # second moments under the proposal, E_g[w²] = E_f[w]: the widened normal's
    # s² / √(2s² − 1) and each day's χ² factor's q^(ν/2) (2 − 1/q)^(−ν/2) (its MGF)
    q, nu, s = IMPORTANCE_CHI2, 5.0, IMPORTANCE_SCALE
    normal = s * s / math.sqrt(2 * s * s - 1)
    chi = (q ** (nu / 2) * (2 - 1 / q) ** (-nu / 2)) ** 2  # two days
    assert np.mean(w**2) == pytest.approx(normal * chi, rel=0.1)


def test_unit_weights_give_the_equal_weight_measures() -> None:
    rng = np.random.default_rng(1)
    losses = rng.standard_t(4, size=(30, 5_000)) * rng.uniform(1, 10, size=(30, 1))
    levels = (0.99, 0.975)
    plain = tail_measures_at(losses, levels)
    weighted = tail_measures_at(losses, levels, np.ones(5_000))
    for a, b in zip(plain, weighted, strict=True):
        np.testing.assert_array_equal(b.var, a.var)
        np.testing.assert_allclose(b.es, a.es, rtol=1e-12)
        np.testing.assert_allclose(
            (b.tail_weights * np.take_along_axis(losses, b.tail_paths, axis=1)).sum(axis=1),
            b.es,
            rtol=1e-12,
        )


def test_weights_move_the_quantile_as_masses_do() -> None:
    # ten paths; the largest loss carries 30 % of the mass, the nine others 7/90 each
    losses = np.arange(1.0, 11.0)[None, :]
    weights = np.full(10, 7.0 / 9.0)
    weights[-1] = 3.0
    (m,) = tail_measures_at(losses, (0.95,), weights)  # the largest alone holds the 5 %
    assert (m.var[0], m.es[0]) == (10.0, 10.0)
    (m,) = tail_measures_at(losses, (0.6,), weights)  # 0.3 + 7/90 from 9, the rest from 8
    assert m.var[0] == 8.0
    rest = 0.4 - 0.3 - 7 / 90
    assert m.es[0] == pytest.approx((0.3 * 10 + 7 / 90 * 9 + rest * 8) / 0.4, rel=1e-12)
    assert m.tail_weights[0].sum() == pytest.approx(1.0)


@pytest.mark.parametrize("h", [1, 2])
def test_gaussian_var_and_es_within_three_standard_errors(h) -> None:
    var, es = _gaussian(h)
    result = _run(_sim(16_384, h, seed=3, innovations="gaussian"))
    assert abs(result.var[0] - var) < 3 * result.var_standard_error[0]
    assert abs(result.es[0] - es) < 3 * result.es_standard_error[0]
    assert result.es_standard_error[0] < 0.01 * es


def test_student_t_var_and_es_within_three_standard_errors() -> None:
    var, es = _student(4.0)
    result = _run(_sim(16_384, 1, seed=5, innovations="student-t", dof=4.0))
    assert abs(result.var[0] - var) < 3 * result.var_standard_error[0]
    assert abs(result.es[0] - es) < 3 * result.es_standard_error[0]


def test_importance_beats_plain_sobol_at_equal_paths() -> None:
    _, es = _student(5.0)

    def rmse(importance: bool) -> float:
        errors = [
            _run(
                Simulation(4_096, 1, seed, "student-t", "sobol", dof=5.0, importance=importance)
            ).es[0]
            - es
            for seed in range(24)
        ]
        return float(np.sqrt(np.mean(np.square(errors))))

    assert rmse(True) < 0.8 * rmse(False)


def test_the_same_seed_gives_the_same_margins_whatever_the_chunks(
    chain_market, chain_instruments
) -> None:
    positions = build_positions(random_book(chain_instruments, 40, seed=8), chain_market)
    model = JointModel(
        ("BTC", "ETH"),
        (AssetDynamics(0.03, vol_of_vol=0.05), AssetDynamics(0.04, vol_of_vol=0.06)),
        np.array([[1.0, 0.8], [0.8, 1.0]]),
    )
    sim = _sim(5 * 1024 + 300, 2, seed=11)
    one = mc_margin(positions, model, sim, PARAMS)
    with ThreadPoolExecutor(4) as pool:
        for chunks in (2, 4):
            other = mc_margin(positions, model, sim, PARAMS, chunks=chunks, mapper=pool.map)
            np.testing.assert_array_equal(other.es, one.es)
            np.testing.assert_array_equal(other.contribution, one.contribution)
    # Euler contributions still add up to each row's ES
    sums = np.bincount(one.row_of_position, weights=one.contribution, minlength=len(one.es))
    np.testing.assert_allclose(sums, one.es, rtol=1e-9, atol=1e-9 * np.abs(one.es).max())
    # and the estimate is of the same ES as without importance sampling, within the errors
    plain = mc_margin(positions, model, Simulation(sim.paths, 2, 11, sampling="sobol"), PARAMS)
    spread = np.hypot(one.es_standard_error, plain.es_standard_error)
    assert np.mean(np.abs(one.es - plain.es) < 4 * spread) > 0.95


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Simulation(2_000, 1, 0, sampling="pseudo", importance=True), "Sobol"),
        (lambda: Simulation(2_000, 1, 0, "filtered-historical", "sobol", importance=True), "filtered"),
        (lambda: intraday_paths(_one(), _sim(2_000, 1, 0), 4), "intraday"),
        (lambda: Simulation(2_000, 1, 0, sampling="sobol", importance="yes"), "true or false"),
        (lambda: tail_measures_at(np.ones((2, 100)), (0.99,), np.ones(99)), "one per path"),
        (lambda: tail_measures_at(np.ones((2, 100)), (0.99,), np.full(100, np.nan)), "finite"),
        (lambda: tail_measures_at(np.ones((2, 100)), (0.99,), -np.ones(100)), "non-negative"),
        (lambda: tail_measures_at(np.ones((2, 100)), (0.99,), np.zeros(100)), "all zero"),
    ],
)  # fmt: skip
def test_what_importance_sampling_cannot_do_is_refused_by_name(make, match) -> None:
    with pytest.raises(ValueError, match=f"(importance|weights).*{match}"):
        make()
