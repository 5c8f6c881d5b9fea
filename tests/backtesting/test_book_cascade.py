"""Cascades of option books: linear books reproduce the linear cascade exactly (an independent,
closed-form simulator); money is conserved at every step for option books; nothing happens
without impact above maintenance; more impact never leaves less bad debt."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import sparse
from test_cascade import _crash, _ledger_gaps, _population

from backtesting.book_cascade import BookAccounts, Valuation, simulate_books
from backtesting.cascade import LiquidationRule, Mode, simulate
from margin_engine.impact import ImpactKind, ImpactModel
from margin_engine.pricing import black76_greeks

S0 = 100.0


def _linear(n_instruments: int = 1) -> Valuation:
    false = np.zeros(n_instruments, bool)
    nan = np.full(n_instruments, np.nan)
    return Valuation(
        false, false, np.full(n_instruments, S0), nan, np.zeros(n_instruments), nan, false
    )


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    depth=st.floats(0.02, 0.5),
    volume=st.floats(1e3, 1e8),
    fund=st.floats(0.0, 1e3),
)
def test_linear_books_reproduce_the_linear_cascade(seed, depth, volume, fund) -> None:
    """One perpetual per account, maintenance m·|q|·p: the book cascade's full liquidation is
    the linear simulator's (which finds liquidation prices in closed form)."""
    people = _population(seed)
    rule = LiquidationRule(0.04, 0.05, 0.01, Mode.FULL)
    impact = ImpactModel(ImpactKind.SQUARE_ROOT, daily_volume=volume, half_spread=0.001)
    path = _crash(depth)
    expected = simulate(people, path, rule, impact, fund)
    q = np.asarray(people.quantity)
    books = BookAccounts(people.cash, sparse.csr_matrix(q[:, None]))

    def maintenance(ratio, _iv, _days):
        return rule.maintenance * np.abs(q) * S0 * ratio

    run = simulate_books(
        books, _linear(), maintenance, path, np.ones_like(path), impact, rule.penalty, fund=fund
    )
    np.testing.assert_array_equal(run.liquidated, expected.liquidated)
    np.testing.assert_allclose(run.price, expected.price, rtol=1e-12)
    np.testing.assert_allclose(run.bad_debt, expected.bad_debt, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(run.fund, expected.fund, rtol=1e-9, atol=1e-9)
    assert run.ledger["penalties"] == pytest.approx(expected.ledger["penalties"], rel=1e-9)


def _option_population(seed: int, n: int = 300, rate: float = 0.15):
    """Short straddles, covered calls, long and short puts on 30-day options, sized
    heavy-tailed, each account's collateral 1.0–1.6 times a crude initial margin (``rate`` of
    its delta-one notional plus the premium sold) — an account opened at the limit a margin
    rule allows."""
    rng = np.random.default_rng(seed)
    strikes = np.array([90.0, 100.0, 100.0, 110.0, S0])
    is_call = np.array([False, True, False, True, False])
    option = np.array([True, True, True, True, False])
    valuation = Valuation(
        option,
        np.zeros(5, bool),
        np.full(5, S0),
        np.where(option, strikes, np.nan),
        np.where(option, 30 / 365, 0.0),
        np.where(option, 0.6, np.nan),
        is_call,
    )
    books = np.array(
        [
            [0, -1, -1, 0, 0],  # short straddle
            [0, 0, 0, -1, 1],  # covered call
            [1, 0, 0, 0, 0],  # long put
            [-1, 0, 0, 0, 0],  # short put
        ],
        dtype=float,
    )
    size = rng.lognormal(0.0, 1.0, n)
    q = books[rng.integers(0, len(books), n)] * size[:, None]
    value, _ = valuation.values(1.0, 1.0, 0.0)
    initial = rate * S0 * np.abs(q).sum(axis=1) + np.maximum(-(q @ value), 0.0)
    cash = initial * rng.uniform(1.0, 1.6, n)
    return BookAccounts(cash, sparse.csr_matrix(q)), valuation, q


def _gap(depth: float) -> np.ndarray:
    """A gap down of ``depth`` between two steps (no chance to liquidate on the way), a slide
    further, and the recovery: what leaves short option books under water."""
    low = S0 * (1 - depth)
    return np.concatenate(
        [np.full(4, S0), np.linspace(low, 0.9 * low, 20), np.linspace(0.9 * low, S0, 24)]
    )


def _option_maintenance(q: np.ndarray, valuation: Valuation, rate: float):
    """A rule of thumb that moves with the market: ``rate`` of the absolute delta notional
    plus the options' value held short."""

    def maintenance(ratio, iv, days):
        value, delta = valuation.values(ratio, iv, days)
        return rate * np.abs(q) @ np.abs(delta) + np.maximum(-(q @ value), 0.0)

    return maintenance


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("steps", [1, 7, 24, 48])
def test_money_is_conserved_at_every_step_for_option_books(seed, steps) -> None:
    accounts, valuation, q = _option_population(seed)
    path = _gap(0.25)[:steps]
    iv = np.linspace(1.0, 1.8, 48)[:steps]  # implied vols up in the crash
    run = simulate_books(
        accounts,
        valuation,
        _option_maintenance(q, valuation, 0.05),
        path,
        iv,
        ImpactModel(ImpactKind.SQUARE_ROOT, daily_volume=5e4),
        0.01,
        fund=10.0,
    )
    money, fund = _ledger_gaps(run)
    assert abs(money) < 1e-7 * max(1.0, run.ledger["collateral"])
    assert abs(fund) < 1e-9
    if steps == 48:
        assert run.liquidated.sum() > 0  # the test bites


def test_nothing_happens_without_impact_above_maintenance() -> None:
    accounts, valuation, q = _option_population(3)
    path = np.full(12, S0)
    run = simulate_books(
        accounts,
        valuation,
        lambda *_: np.zeros(len(accounts.cash)),
        path,
        np.ones(12),
        ImpactModel(ImpactKind.NONE),
        0.01,
    )
    assert run.liquidated.sum() == 0 and run.total_bad_debt == 0
    np.testing.assert_array_equal(run.cash, accounts.cash)
    np.testing.assert_array_equal(run.price, path)


@pytest.mark.parametrize("seed", [4, 5])
def test_more_impact_and_lower_margins_never_leave_less_bad_debt(seed) -> None:
    """Margins as a rule sets them: initial margin ``rate`` of the delta-one notional (plus
    the premium sold), maintenance 0.8 of it, and the same accounts opened at the limit each
    rule allows (a higher rate: more collateral, liquidated earlier)."""
    path, iv = _gap(0.3), np.linspace(1.0, 1.6, 48)
    bad = {}
    for volume in (1e8, 1e5, 1e4):
        for rate in (0.08, 0.03):
            accounts, valuation, q = _option_population(seed, 400, rate)
            run = simulate_books(
                accounts,
                valuation,
                _option_maintenance(q, valuation, 0.8 * rate),
                path,
                iv,
                ImpactModel(ImpactKind.SQUARE_ROOT, daily_volume=volume),
                0.01,
            )
            bad[volume, rate] = run.total_bad_debt
    for rate in (0.08, 0.03):
        assert bad[1e8, rate] <= bad[1e5, rate] + 1e-6 <= bad[1e4, rate] + 2e-6
    for volume in (1e8, 1e5, 1e4):
        assert bad[volume, 0.08] <= bad[volume, 0.03] + 1e-6
    assert bad[1e4, 0.03] > 0


def test_option_values_and_deltas_are_black76_in_usd() -> None:
    _, valuation, _ = _option_population(0)
    value, delta = valuation.values(1.1, 1.2, 5.0)
    years = 30 / 365 - 5 / 365
    g = black76_greeks(110.0, 100.0, years, 0.72, True)
    assert delta[1] == pytest.approx(float(g["delta"]) * 110.0, rel=1e-12)
    assert value[4] == pytest.approx(110.0) and delta[4] == pytest.approx(110.0)
    with pytest.raises(ValueError, match="iv_path"):
        simulate_books(
            _option_population(0)[0], valuation, lambda *_: 0.0, np.ones(3), np.ones(2),
            ImpactModel(), 0.01,
        )  # fmt: skip
