"""Realised losses on the OHLC path and the P&L of linear books (issue 12): closed forms on
constructed histories."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from backtesting.replay import (
    FUNDING_PERIODS_PER_DAY,
    MarketHistory,
    build_day,
    replay_books,
    replay_collateral,
)
from governance.parameters import default_parameter_set
from margin_engine.portfolios import select

PARAMS = default_parameter_set().to_model_params()
DAYS = pd.date_range("2025-10-01", periods=20, freq="D")


def flat_history(**overrides) -> MarketHistory:
    close = pd.DataFrame({"BTC": 100_000.0, "ETH": 4_000.0}, index=DAYS)
    iv = pd.DataFrame({"BTC": 0.5, "ETH": 0.6}, index=DAYS)
    return MarketHistory(close, iv, **overrides)


def _row(book, portfolio: str) -> int:
    (k,) = np.flatnonzero(book.portfolio == portfolio)
    return int(k)


def test_an_intraday_crash_that_recovers_is_a_path_loss_not_a_close_loss() -> None:
    """10 October 2025 in miniature: BTC falls 20 % from the previous close to the day's low
    and closes unchanged. A long coin loses nothing close to close, 20 % of spot on the path,
    more than its 16 % portfolio margin: a breach only the path sees."""
    low = pd.DataFrame({"BTC": 100_000.0, "ETH": 4_000.0}, index=DAYS)
    high = low.copy()
    crash = DAYS[10]
    low.loc[crash, "BTC"] = 80_000.0
    high.loc[crash, "ETH"] = 4_400.0
    history = flat_history(high=high, low=low)
    books = select(["btc-long", "btc-eth-long-short"])
    day = DAYS[9]
    book = build_day(history, books, day, 1)
    assert book.pnl[_row(book, "btc-long")] == pytest.approx(0.0, abs=1e-9)
    assert book.pnl_path[_row(book, "btc-long")] == pytest.approx(-20_000.0, rel=1e-12)
    # long BTC against short ETH: the worst point combines BTC's low with ETH's high
    pair = _row(book, "btc-eth-long-short")
    expected = 100_000 * (80_000 / 100_000 - 1) - 100_000 * (4_400 / 4_000 - 1)
    assert book.pnl_path[pair] == pytest.approx(expected, rel=1e-12)
    rows = replay_books([book], "deribit-pm", lambda d: PARAMS)
    btc = rows[rows["portfolio"] == "btc-long"].iloc[0]
    assert btc["margin"] < 20_000 and not btc["breach"] and btc["breach_path"]
    assert btc["loss_path"] >= btc["loss"]


def test_the_path_loss_is_never_below_the_close_to_close_loss() -> None:
    rng = np.random.default_rng(4)
    close = pd.DataFrame(
        {"BTC": 100_000 * np.exp(np.cumsum(rng.normal(0, 0.03, 20))), "ETH": 4_000.0}, index=DAYS
    )
    spread = np.abs(rng.normal(0, 0.02, (20, 2)))
    history = MarketHistory(
        close,
        pd.DataFrame({"BTC": 0.5, "ETH": 0.6}, index=DAYS),
        high=close * (1 + spread),
        low=close * (1 - spread),
    )
    books = select(["books"])
    for day in DAYS[:15]:
        book = build_day(history, books, day, 2)
        assert (book.pnl_path <= book.pnl + 1e-9).all()


def test_collateral_path_loss_uses_the_lowest_low() -> None:
    low = pd.DataFrame({"BTC": 100_000.0, "ETH": 4_000.0}, index=DAYS)
    low.loc[DAYS[6], "ETH"] = 3_000.0
    history = flat_history(low=low)
    rows = replay_collateral(history, select(["eth-collateral"]), [DAYS[5]], 2, lambda d: PARAMS)
    row = rows.iloc[0]
    assert row["loss"] == pytest.approx(0.0, abs=1e-6)
    assert row["loss_path"] == pytest.approx(500_000 * 0.25, rel=1e-12)


def test_perpetuals_pay_funding_and_dated_futures_carry_its_basis() -> None:
    """With a constant 8-hour funding rate r and flat prices, a long linear perpetual of one
    coin pays 3 r S a day; the 90-day future of the basis trade is valued at S e^(bT) with
    b = 3 · 365 · r, so the trade moves when the funding does."""
    rate = 0.0001
    funding = pd.DataFrame({"BTC": rate, "ETH": 0.0}, index=DAYS)
    history = flat_history(funding=funding)
    book = build_day(history, select(["btc-eth-long-short"]), DAYS[12], 2)
    # long $100k of BTC perpetual = 1 coin at 100,000; short $100k of ETH pays nothing
    paid = FUNDING_PERIODS_PER_DAY * rate * 100_000.0 * 2
    assert book.pnl[0] == pytest.approx(-paid, rel=1e-12)
    # a funding change moves the basis trade: on the last day of the MPOR the rate is 8 r, so
    # the trailing 7-day mean doubles, (6 r + 8 r) / 7 = 2 r
    moving = funding.copy()
    moving.loc[DAYS[14], "BTC"] = 8 * rate
    history = flat_history(funding=moving)
    day = DAYS[12]
    basis_book = build_day(history, select(["btc-basis-trade"]), day, 2)
    b0 = FUNDING_PERIODS_PER_DAY * 365 * rate
    b1 = FUNDING_PERIODS_PER_DAY * 365 * 2 * rate
    years0 = basis_book.positions.book.table.years[1]
    f0 = 100_000 * math.exp(b0 * years0)
    f1 = 100_000 * math.exp(b1 * (years0 - 2 / 365))
    assert basis_book.pnl[0] == pytest.approx(-(f1 - f0), rel=1e-9)
    assert abs(basis_book.pnl[0]) > 1.0
    # without funding data the basis trade never moves: zero P&L (reported as not testable)
    plain = build_day(flat_history(), select(["btc-basis-trade"]), day, 2)
    assert plain.pnl[0] == pytest.approx(0.0, abs=1e-9)
