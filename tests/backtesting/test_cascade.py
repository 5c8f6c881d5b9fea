"""Liquidation cascades: the ledger holds at every step, a closed-form fixed point, and the
monotonicities a committee relies on (property tests over random populations)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtesting.cascade import Accounts, LiquidationRule, Mode, simulate
from margin_engine.impact import ImpactKind, ImpactModel


def _population(seed: int, n: int = 400, side: int = 0) -> Accounts:
    """Heavy-tailed sizes, leverage near a 20x limit, entered at 100."""
    rng = np.random.default_rng(seed)
    sign = rng.choice([-1.0, 1.0], n) if side == 0 else np.full(n, float(side))
    q = sign * rng.lognormal(0.0, 1.2, n)
    leverage = rng.uniform(4.0, 19.5, n)
    return Accounts(np.abs(q) * 100.0 / leverage, q, np.full(n, 100.0))


def _crash(depth: float = 0.15, steps: int = 48) -> np.ndarray:
    """The 10–11 October 2025 shape: a fall of ``depth`` over half the window, then back."""
    half = steps // 2
    down = np.linspace(100.0, 100.0 * (1 - depth), half)
    return np.concatenate([down, np.linspace(100.0 * (1 - depth), 100.0, steps - half)])


def _ledger_gaps(run) -> tuple[float, float]:
    led = run.ledger
    money = led["collateral"] + led["realised_pnl"] + led["unrealised_pnl"]
    books = led["equity"] + led["penalties"] - led["bad_debt"]
    fund = led["fund_start"] + led["penalties"] - led["fund_draws"]
    return money - books, fund - led["fund_end"]


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    depth=st.floats(0.02, 0.6),
    mode=st.sampled_from(list(Mode)),
    volume=st.floats(1e3, 1e8),
    fund=st.floats(0.0, 1e3),
)
def test_money_is_conserved(seed, depth, mode, volume, fund) -> None:
    accounts = _population(seed)
    rule = LiquidationRule(0.05, 0.10, 0.01, mode)
    impact = ImpactModel(ImpactKind.SQUARE_ROOT, daily_volume=volume, half_spread=0.001)
    run = simulate(accounts, _crash(depth), rule, impact, fund=fund)
    scale = float(accounts.cash.sum() + np.abs(accounts.quantity).sum() * 100.0)
    money, fund_gap = _ledger_gaps(run)
    assert abs(money) <= 1e-9 * scale and abs(fund_gap) <= 1e-9 * scale
    assert np.all(run.fund >= -1e-9) and np.all(run.cash >= 0)
    assert run.bad_debt.sum() == pytest.approx(run.ledger["bad_debt"])
    # what the fund could not cover was auto-deleveraged
    assert run.ledger["adl"] == pytest.approx(run.ledger["bad_debt"] - run.ledger["fund_draws"])


def test_nothing_happens_without_impact_above_maintenance() -> None:
    accounts = _population(3)
    rule = LiquidationRule(0.05, 0.10, 0.01)
    # leverage ≤ 19.5 leaves every account above 5 % maintenance while the price stays put
    run = simulate(accounts, np.full(48, 100.0), rule, ImpactModel(ImpactKind.NONE))
    assert run.liquidated.sum() == 0 and run.volume.sum() == 0 and run.total_bad_debt == 0
    np.testing.assert_array_equal(run.quantity, accounts.quantity)
    np.testing.assert_array_equal(run.price, np.full(48, 100.0))


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_more_impact_never_less_bad_debt(seed) -> None:
    """Longs in a fall: deeper impact executes their liquidations lower."""
    accounts = _population(seed, side=1)
    rule = LiquidationRule(0.02, 0.05, 0.005)
    previous = -1.0
    for volume in (1e9, 1e7, 1e6, 1e5, 1e4):  # less depth, more impact
        impact = ImpactModel(ImpactKind.SQUARE_ROOT, daily_volume=volume)
        bad = simulate(accounts, _crash(0.3), rule, impact).total_bad_debt
        assert bad >= previous - 1e-9
        previous = bad
    assert previous > 0


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_higher_margins_never_more_bad_debt(seed) -> None:
    """The same longs under stricter maintenance are closed out sooner, at higher prices."""
    accounts = _population(seed, side=1)
    impact = ImpactModel(ImpactKind.SQUARE_ROOT, daily_volume=1e5)
    previous = math.inf
    for maintenance in (0.005, 0.01, 0.02, 0.04):
        rule = LiquidationRule(maintenance, 0.05, 0.0)
        bad = simulate(accounts, _crash(0.4), rule, impact).total_bad_debt
        assert bad <= previous + 1e-9
        previous = bad


def test_partial_liquidation_fixed_point_closed_form() -> None:
    """One long under maintenance, linear impact Δp/p = λQ on the liquidated notional
    Q = f·q·p: the fraction f that restores initial margin after the penalty at the price its
    own sale makes, x = p(1 − a f) with a = λqp, solves

        −a(ι−π) f² + ((ι−π) − a(1−ι)) f + (1−ι) − (q·e − c)/(q·p) = 0.
    """
    q, entry, cash, p = 10.0, 100.0, 140.0, 90.0
    lam, mm, im, pen = 1e-6, 0.05, 0.10, 0.01
    a = lam * q * p
    coefficients = [
        -a * (im - pen),
        (im - pen) - a * (1 - im),
        (1 - im) - (q * entry - cash) / (q * p),
    ]
    roots = np.roots(coefficients)
    (f,) = [r.real for r in roots if abs(r.imag) < 1e-12 and 0 <= r.real <= 1]
    run = simulate(
        Accounts(np.array([cash]), np.array([q]), np.array([entry])),
        np.array([p]),
        LiquidationRule(mm, im, pen, Mode.PARTIAL),
        ImpactModel(ImpactKind.LINEAR, linear=lam),
    )
    assert run.quantity[0] == pytest.approx(q * (1 - f), rel=1e-9)
    assert run.price[0] == pytest.approx(p * (1 - a * f), rel=1e-12)
    # and the account is back at its initial margin
    x = run.price[0]
    equity = run.cash[0] + run.quantity[0] * (x - entry)
    assert equity == pytest.approx(im * run.quantity[0] * x, rel=1e-9)


def test_a_full_liquidation_below_zero_is_bad_debt_the_fund_covers_first() -> None:
    # long 10 at 100 with 50 of cash, the price gaps to 90: equity −50, all bad debt
    accounts = Accounts(np.array([50.0]), np.array([10.0]), np.array([100.0]))
    rule = LiquidationRule(0.05, 0.10, 0.01)
    run = simulate(accounts, np.array([90.0]), rule, ImpactModel(ImpactKind.NONE), fund=20.0)
    assert run.total_bad_debt == pytest.approx(50.0)
    assert run.ledger["fund_draws"] == pytest.approx(20.0)
    assert run.ledger["adl"] == pytest.approx(30.0)
    assert run.ledger["penalties"] == 0.0  # nothing left to pay it from


def test_rules_and_paths_are_validated() -> None:
    with pytest.raises(ValueError, match="maintenance ≤ initial"):
        LiquidationRule(0.2, 0.1)
    with pytest.raises(ValueError, match="positive prices"):
        simulate(
            _population(1, 5), np.array([100.0, -1.0]), LiquidationRule(0.05, 0.1), ImpactModel()
        )
    with pytest.raises(ValueError, match="daily_volume"):
        ImpactModel(daily_volume=0.0)


def test_october_2025_shape_a_wider_price_range_leaves_less_bad_debt() -> None:
    """A −15 % fall over half a day-long window and back, 20,000 synthetic accounts near 10x,
    a thin market (30M USD a day): under a 10 % price range the liquidations' impact gaps the
    price past their cushion and leaves bad debt; under 16 % (maintenance 12.8 %) none."""
    from backtesting.cascade import synthetic_population

    population = synthetic_population(20_000, 7, 100.0, 1 / 0.10)
    impact = ImpactModel(daily_vol=0.04, daily_volume=3e7, half_spread=0.0005)
    bad = {}
    for price_range in (0.10, 0.16):
        rule = LiquidationRule(0.8 * price_range, price_range, 0.01)
        run = simulate(population, _crash(0.15), rule, impact)
        assert abs(_ledger_gaps(run)[0]) < 1e-6 * float(population.cash.sum())
        bad[price_range] = run.total_bad_debt
    assert bad[0.10] > 1e6 and bad[0.16] < bad[0.10]


def test_intraday_path_crosses_each_range_in_its_direction() -> None:
    from backtesting.cascade import intraday_path

    path = intraday_path([100.0, 90.0], [105.0, 95.0], [88.0, 80.0], [90.0, 94.0])
    # day 1 closed down: high first, then low; day 2 closed up: low first, then high
    np.testing.assert_array_equal(path, [100, 105, 88, 90, 90, 80, 95, 94])


def test_impact_calibration_uses_only_the_days_before() -> None:
    from backtesting.cascade import calibrate_impact

    closes = 100.0 * np.exp(np.cumsum(np.r_[0.0, np.tile([0.02, -0.02], 10)]))
    model, notes = calibrate_impact(closes, [], y=0.5)
    assert model.daily_vol == pytest.approx(np.diff(np.log(closes)).std(ddof=1))
    assert model.daily_volume == 1e9 and notes  # no volume: the fallback, said
    with pytest.raises(ValueError, match="fewer than 10 closes"):
        calibrate_impact(closes[:5], [])


def test_bad_debt_risk_is_the_empirical_tail() -> None:
    from backtesting.cascade import bad_debt_risk

    losses = np.arange(1.0, 101.0)  # 100 equally likely outcomes
    risk = bad_debt_risk(losses)
    assert risk["var_95"] == 95.0 and risk["es_95"] == pytest.approx(np.mean(losses[95:]))
    assert risk["var_99"] == 99.0 and risk["es_99"] == pytest.approx(100.0)


def test_random_paths_are_seeded_and_scaled() -> None:
    from backtesting.cascade import random_paths

    a = random_paths(100.0, 0.04, 2, 4, 20_000, seed=5)
    b = random_paths(100.0, 0.04, 2, 4, 20_000, seed=5)
    np.testing.assert_array_equal(a, b)
    daily = np.log(a[:, 3] / 100.0)  # one day: four steps
    assert daily.std() == pytest.approx(0.04, rel=0.05)  # 20,000 draws: ~1 % sampling error
    assert not np.array_equal(a, random_paths(100.0, 0.04, 2, 4, 20_000, seed=6))


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    vol=st.floats(0.01, 0.2),
    volume=st.floats(1e3, 1e8),
    fund=st.floats(0.0, 1e3),
    linear=st.booleans(),
)
def test_paths_at_once_are_the_cascades_path_by_path(seed, vol, volume, fund, linear) -> None:
    """The compiled full-liquidation cascades leave each path the bad debt :func:`simulate`
    leaves it, under either impact law."""
    import backtesting.cascade as cascade

    people = _population(seed, 300)
    paths = cascade.random_paths(100.0, vol, 2, 4, 40, seed)
    rule = LiquidationRule(0.04, 0.05, 0.01, Mode.FULL)
    impact = (
        ImpactModel(ImpactKind.LINEAR, linear=1.0 / volume)
        if linear
        else ImpactModel(ImpactKind.SQUARE_ROOT, daily_volume=volume, half_spread=0.001)
    )
    expected = [simulate(people, path, rule, impact, fund).total_bad_debt for path in paths]
    got = cascade.bad_debt_distribution(people, paths, rule, impact, fund)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-7)


def test_paths_at_once_leave_bad_debt_where_simulate_does() -> None:
    """A case that bites: violent paths and thin markets leave bad debt on most paths."""
    import backtesting.cascade as cascade

    people = _population(7, 500)
    paths = cascade.random_paths(100.0, 0.15, 2, 4, 60, 3)
    rule = LiquidationRule(0.04, 0.05, 0.01, Mode.FULL)
    impact = ImpactModel(ImpactKind.SQUARE_ROOT, daily_volume=2e3, half_spread=0.001)
    expected = np.array(
        [simulate(people, path, rule, impact, 50.0).total_bad_debt for path in paths]
    )
    got = cascade.bad_debt_distribution(people, paths, rule, impact, 50.0)
    assert (expected > 0).sum() >= 20
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-7)
