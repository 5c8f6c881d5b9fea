"""Attribution: Euler contributions sum to the margin (each part to its component) on the test
portfolios and on random books; the worst scenario's loss split by Greeks sums to it and a
delta-hedged book's is mostly gamma and vega; a hedge's incremental contribution is negative."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from books import positions_frame, random_book

from margin_engine.attribution import GREEK_TERMS, incremental_and_standalone, pm_attribution
from margin_engine.book import build_positions
from margin_engine.market import MarketSnapshot
from margin_engine.params import ModelParams
from margin_engine.portfolio_margin import portfolio_margin
from margin_engine.portfolios import DayMarket, select

DAY = date(2024, 6, 3)
SPOT = {"BTC": 68_000.0, "ETH": 3_800.0, "SOL": 165.0}
IV = {"BTC": 0.55, "ETH": 0.65, "SOL": 0.85}


def _market() -> MarketSnapshot:
    return MarketSnapshot.from_json(
        {"as_of": "2024-06-04T00:00:00+00:00", "index": SPOT, "default_iv": IV}
    )


def _test_portfolios():
    day = DayMarket(DAY, SPOT, IV)
    rows = [
        (p.name, name, quantity)
        for p in select(["books"])
        if p.available(day)
        for name, quantity in p.legs(day)
    ]
    return build_positions(
        pd.DataFrame(rows, columns=["account", "instrument", "quantity"]), _market()
    )


def _sums(attribution, values, n_rows) -> np.ndarray:
    return np.bincount(attribution.row, weights=values, minlength=n_rows)


def _check_sums(positions, params=None) -> None:
    params = params or ModelParams()
    result = portfolio_margin(positions, params)
    att = pm_attribution(positions, params)
    n = len(result.initial_margin)
    scale = np.maximum(np.abs(result.initial_margin), 1.0)
    assert np.all(np.abs(_sums(att, att.euler, n) - result.initial_margin) <= 1e-9 * scale)
    for part, values in att.parts.items():
        assert np.all(np.abs(_sums(att, values, n) - result.components[part]) <= 1e-9 * scale)
    loss = sum(att.greeks[t] for t in GREEK_TERMS)
    assert np.all(np.abs(_sums(att, loss, n) - result.components["worst_case"]) <= 1e-9 * scale)
    # signs: the roll shock's parts of a bucket share its sign; the worst case's are losses
    # at the worst scenario, so they sum to a non-negative number
    assert np.all(_sums(att, att.parts["worst_case"], n) >= -1e-12)


def test_euler_sums_on_the_test_portfolios() -> None:
    positions = _test_portfolios()
    assert not positions.errors and positions.n_accounts >= 5
    _check_sums(positions)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_euler_sums_on_random_books(chain_market, chain_instruments, seed) -> None:
    _check_sums(build_positions(random_book(chain_instruments, 30, seed), chain_market))


def test_a_delta_hedged_straddle_is_explained_by_gamma_and_vega(chain_market) -> None:
    """A short straddle delta-hedged with the perpetual: at its worst scenario the delta term is
    small and gamma and vega explain most of the loss."""
    call, put = "BTC-26JUN26-70000-C", "BTC-26JUN26-70000-P"
    book = build_positions(positions_frame([("a", call, -1.0), ("a", put, -1.0)]), chain_market)
    delta = float(-(book.book.delta[0] + book.book.delta[1]))  # net coin delta of the straddle
    hedge = -delta * chain_market.spot("BTC")  # inverse perpetual: USD notional
    positions = build_positions(
        positions_frame([("a", call, -1.0), ("a", put, -1.0), ("a", "BTC-PERPETUAL", hedge)]),
        chain_market,
    )
    att = pm_attribution(positions, ModelParams())
    total = {t: float(att.greeks[t].sum()) for t in GREEK_TERMS}
    loss = sum(total.values())
    assert loss > 0
    assert total["gamma"] + total["vega"] > 0.7 * loss
    assert abs(total["delta"]) < 0.2 * loss
    assert total["theta"] == 0.0


def test_a_hedge_has_a_negative_incremental_contribution(chain_market) -> None:
    """A long perpetual hedging a short call lowers the account's margin: incremental and
    Euler contributions are negative; alone, it costs margin."""
    market = chain_market
    rows = [
        ("a", "ETH-26JUN26-2000-C", -10.0),
        ("a", "ETH-PERPETUAL", 8_000.0),
        ("b", "ETH-PERPETUAL", 1_000.0),
    ]
    positions = build_positions(positions_frame(rows), market)
    incremental, standalone = incremental_and_standalone(
        positions, market, "deribit-pm", ModelParams()
    )
    att = pm_attribution(positions, ModelParams())
    result = portfolio_margin(positions, ModelParams())
    hedge = 1  # the perpetual of account a
    assert incremental[hedge] < 0 and att.euler[hedge] < 0 and standalone[hedge] > 0
    # a single-position account: every view is its margin
    only = 2
    (row_b,) = [k for k, a in enumerate(result.account) if positions.accounts[a] == "b"]
    for value in (incremental[only], standalone[only], att.euler[only]):
        assert value == pytest.approx(result.initial_margin[row_b], rel=1e-12)
    # the short call alone costs more than the hedged account
    (row_a,) = [k for k, a in enumerate(result.account) if positions.accounts[a] == "a"]
    assert standalone[0] > result.initial_margin[row_a]


def test_numerical_euler_agrees_with_the_analytic_one_on_pm(
    chain_market, chain_instruments
) -> None:
    """Central differences of PM in each quantity, scaled where the dampener makes the margin
    non-homogeneous, equal the structural allocation (the kernel is piecewise linear in each
    quantity between kinks, so the differences are exact up to rounding)."""
    from margin_engine.attribution import numerical_euler

    positions = build_positions(random_book(chain_instruments, 12, 7), chain_market)
    numeric, _ = numerical_euler(positions, chain_market, "deribit-pm", ModelParams())
    analytic = pm_attribution(positions, ModelParams()).euler
    np.testing.assert_allclose(numeric, analytic, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("model", ["span", "standard", "derive-pmrm2", "hyperliquid", "okx-pm"])
def test_numerical_euler_sums_to_every_models_margin(
    chain_market, chain_instruments, model
) -> None:
    from margin_engine.attribution import numerical_euler
    from margin_engine.models import margin

    positions = build_positions(random_book(chain_instruments, 10, 11), chain_market)
    euler, scale = numerical_euler(positions, chain_market, model, ModelParams())
    result = margin(positions, model, ModelParams())
    totals: dict[str, float] = {}
    accounts = np.asarray(positions.accounts, dtype=object)[positions.account]
    for a, e in zip(accounts, euler, strict=True):
        totals[a] = totals.get(a, 0.0) + e
    per_account: dict[str, float] = {}
    for a, im in zip(result.account, result.initial_margin, strict=True):
        per_account[positions.accounts[a]] = per_account.get(positions.accounts[a], 0.0) + im
    for account, im in per_account.items():
        assert totals[account] == pytest.approx(im, rel=1e-9, abs=1e-9), account
    assert np.all(np.isfinite(scale)) and np.all(scale > 0)
