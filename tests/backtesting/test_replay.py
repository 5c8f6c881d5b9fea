"""The replay core: realised P&L by closed forms, no look-ahead, the portfolio library,
daily parameter overrides and haircut rows."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from backtesting.replay import (
    MarketHistory,
    build_day,
    override,
    replay_books,
    replay_collateral,
    trading_days,
)
from governance.parameters import default_parameter_set
from margin_engine.instruments import parse_instrument
from margin_engine.market import smile_vol
from margin_engine.portfolios import (
    COLLATERAL,
    LIBRARY,
    SPOT,
    DayMarket,
    expiry_code,
    select,
    strike_grid,
)
from margin_engine.pricing import black76_price

PARAMS = default_parameter_set().to_model_params()


def synthetic_history(days: int = 60, seed: int = 3) -> MarketHistory:
    rng = np.random.default_rng(seed)
    index = pd.date_range("2023-01-01", periods=days, freq="D")
    close = pd.DataFrame(
        {
            "BTC": 20_000 * np.exp(np.cumsum(rng.normal(0, 0.03, days))),
            "ETH": 1_500 * np.exp(np.cumsum(rng.normal(0, 0.04, days))),
            "SOL": 20 * np.exp(np.cumsum(rng.normal(0, 0.05, days))),
        },
        index=index,
    )
    iv = pd.DataFrame(
        {
            "BTC": 0.6 + 0.1 * rng.random(days),
            "ETH": 0.7 + 0.1 * rng.random(days),
            "SOL": 0.9 + 0.1 * rng.random(days),
        },
        index=index,
    )
    return MarketHistory(close, iv)


def rows_of(book, name: str) -> np.ndarray:
    return np.flatnonzero(book.portfolio == name)


def test_linear_and_inverse_delta_one_pnl_is_the_closed_form() -> None:
    h = synthetic_history()
    day = h.days[10]
    later = day + pd.Timedelta(days=2)
    s0, s1 = h.close.loc[day, "BTC"], h.close.loc[later, "BTC"]
    book = build_day(h, select(["btc-long", "btc-basis-trade", "btc-eth-long-short"]), day, 2)
    (k,) = rows_of(book, "btc-long")
    assert book.pnl[k] == pytest.approx(s1 - s0, rel=1e-12)  # 1 coin, USDC-settled
    (k,) = rows_of(book, "btc-basis-trade")  # forwards = index: the hedge is perfect
    assert book.pnl[k] == pytest.approx(0.0, abs=1e-9)
    (k,) = rows_of(book, "btc-eth-long-short")
    e0, e1 = h.close.loc[day, "ETH"], h.close.loc[later, "ETH"]
    expected = 100_000 / s0 * (s1 - s0) - 100_000 / e0 * (e1 - e0)
    assert book.pnl[k] == pytest.approx(expected, rel=1e-10)
    assert book.fx_usd[k] == 1.0 and book.notional_usd[k] == pytest.approx(200_000)


def test_inverse_option_pnl_is_a_full_revaluation() -> None:
    """Short ATM straddle in coin: V(t+h)/F(t+h) − V(t)/F(t) per leg, with the IV of t+h through
    the smile and h days less to expiry."""
    h = synthetic_history()
    day, mpor = h.days[20], 3
    later = day + pd.Timedelta(days=mpor)
    book = build_day(h, select(["btc-short-straddle"]), day, mpor)
    legs = LIBRARY[0].legs(h.day_market(day))
    total = 0.0
    for name, quantity in legs:
        inst = parse_instrument(name)
        values = []
        for d in (day, later):
            as_of = datetime.combine(d.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
            f = h.close.loc[d, "BTC"]
            t = inst.years_to_expiry(as_of)
            vol = smile_vol(
                h.iv.loc[d, "BTC"], np.array([inst.strike]), np.array([f]), np.array([t])
            )[0]
            values.append(float(black76_price(f, inst.strike, t, vol, inst.is_call)) / f)
        total += quantity * (values[1] - values[0])
    (k,) = rows_of(book, "btc-short-straddle")
    assert book.currency[k] == "BTC"
    assert book.pnl[k] == pytest.approx(total, rel=1e-10)
    assert book.fx_usd[k] == pytest.approx(h.close.loc[day, "BTC"])


def test_no_look_ahead_margins_and_losses_use_nothing_after_t_plus_mpor() -> None:
    h = synthetic_history()
    day, mpor = h.days[30], 2
    scrambled = h.close.copy()
    scrambled.loc[scrambled.index > day + pd.Timedelta(days=mpor)] *= 3.7
    h2 = MarketHistory(scrambled, h.iv * 1.0)
    a = replay_books([build_day(h, LIBRARY, day, mpor)], "deribit-pm", lambda d: PARAMS)
    b = replay_books([build_day(h2, LIBRARY, day, mpor)], "deribit-pm", lambda d: PARAMS)
    pd.testing.assert_frame_equal(a, b)
    # and the margin of day t does not depend on t + mpor at all
    later_only = h.close.copy()
    later_only.loc[day + pd.Timedelta(days=mpor)] *= 0.5
    c = replay_books(
        [build_day(MarketHistory(later_only, h.iv), LIBRARY, day, mpor)],
        "deribit-pm",
        lambda d: PARAMS,
    )
    np.testing.assert_array_equal(a["margin"].to_numpy(), c["margin"].to_numpy())
    assert not np.allclose(a["loss"].to_numpy(), c["loss"].to_numpy())


def test_breach_is_strict_and_rows_cover_every_book() -> None:
    h = synthetic_history()
    days = trading_days(h, None, None, 2)
    assert days[-1] == h.days[-3]
    books = [build_day(h, LIBRARY + SPOT, d, 2) for d in days]
    rows = replay_books(books, "span", lambda d: PARAMS)
    assert set(rows["portfolio"]) == {p.name for p in LIBRARY + SPOT}
    assert (rows["breach"] == (rows["loss"] > rows["margin"])).all()
    assert rows.groupby(["date", "portfolio", "currency"]).size().max() == 1


def test_library_books_are_struck_on_the_grid_and_hedged() -> None:
    market = DayMarket(
        pd.Timestamp("2024-03-08").date(),
        {"BTC": 68_123.0, "ETH": 3_912.5, "SOL": 147.3},
        {"BTC": 0.62, "ETH": 0.7, "SOL": 0.9},
    )
    for portfolio in LIBRARY:
        for name, _ in portfolio.legs(market):
            inst = parse_instrument(name)  # every leg is a valid Deribit name
            if inst.strike is not None:
                step = strike_grid(market.spot[inst.underlying])
                assert abs(inst.strike / step - round(inst.strike / step)) < 1e-9
                assert name.split("-")[-3] in (
                    expiry_code(market.day, 30),
                    expiry_code(market.day, 60),
                )
    assert expiry_code(pd.Timestamp("2024-03-01").date(), 30) == "31MAR24"
    assert (
        expiry_code(pd.Timestamp("2024-03-01").date(), 5) == "6MAR24"
    )  # no leading zero, as Deribit
    # the delta hedge leaves no coin delta at the close it was struck on
    h = synthetic_history()
    book = build_day(h, select(["btc-delta-hedged-short-call"]), h.days[5], 2)
    net = float(
        np.sum(book.positions.quantity * book.positions.book.delta[book.positions.instrument])
    )
    assert abs(net) < 1e-3


def test_override_changes_only_the_named_parameters() -> None:
    changed = override(
        PARAMS,
        {
            "underlyings.BTC.pm.price_range": 0.07,
            "underlyings.ETH.span.price_scan_range": 0.3,
            "collateral.ETH.haircut": 0.2,
        },
    )
    assert changed.pm_for("BTC").price_range == 0.07
    assert changed.pm_for("BTC").vol_range_up == PARAMS.pm_for("BTC").vol_range_up
    assert changed.span_for("ETH").price_scan_range == 0.3
    # every tier moves with the base haircut: 10 / 12 / 15 % become 20 / 22 / 25 %
    assert [t.haircut for t in changed.collateral_for("ETH").tiers] == pytest.approx(
        [0.2, 0.22, 0.25]
    )
    assert changed.pm_for("ETH") == PARAMS.pm_for("ETH")
    with pytest.raises(ValueError, match="not a parameter a backtest can vary"):
        override(PARAMS, {"var.mpor_days": 3})


def test_collateral_rows_are_the_haircut_and_the_fall_in_value() -> None:
    h = synthetic_history()
    days = trading_days(h, None, None, 2)
    rows = replay_collateral(h, COLLATERAL, days, 2, lambda d: PARAMS)
    eth = rows[rows["portfolio"] == "eth-collateral"].set_index("date")
    day = days[7]
    value = 500_000.0
    assert eth.loc[day, "margin"] == pytest.approx(0.10 * value)  # below $1M: the base haircut
    drop = 1 - h.close.loc[day + pd.Timedelta(days=2), "ETH"] / h.close.loc[day, "ETH"]
    assert eth.loc[day, "loss"] == pytest.approx(drop * value)
    assert (eth["breach"] == (eth["loss"] > eth["margin"])).all()
    by_day = replay_collateral(
        h,
        COLLATERAL,
        days,
        2,
        lambda d: override(PARAMS, {"collateral.ETH.haircut": 0.08}) if d >= day else PARAMS,
    )
    eth2 = by_day[by_day["portfolio"] == "eth-collateral"].set_index("date")
    assert eth2.loc[day, "margin"] == pytest.approx(0.08 * value)
    assert eth2.loc[days[6], "margin"] == pytest.approx(0.10 * value)


def test_a_book_without_its_inputs_is_left_out() -> None:
    h = synthetic_history()
    iv = h.iv.copy()
    iv.loc[h.days[12], "ETH"] = math.nan
    book = build_day(MarketHistory(h.close, iv), LIBRARY, h.days[12], 2)
    names = set(book.portfolio)
    assert "eth-short-straddle" not in names and "btc-short-straddle" in names
    assert "btc-eth-long-short" in names  # needs no IV


def test_account_snapshots_are_static_books_until_their_first_expiry() -> None:
    from margin_engine.portfolios import from_positions

    frame = pd.DataFrame(
        {
            "account": ["whale", "whale", "basis", "basis"],
            "instrument": [
                "BTC-20JAN23-21000-C",
                "BTC-PERPETUAL",
                "BTC_USDC",
                "BTC_USDC-PERPETUAL",
            ],
            "quantity": ["-2", "30000", "1", "-1"],
        }
    )
    basis, whale = from_positions(frame, "positions.csv")
    assert (whale.name, whale.expires, whale.needs_iv) == (
        "whale",
        pd.Timestamp("2023-01-20").date(),
        True,
    )
    assert basis.expires is None and basis.underlying_list == ("BTC",)
    h = synthetic_history()
    days = [d for d in h.days[:25] if build_day(h, (whale,), d, 2) is not None]
    assert days[-1] == pd.Timestamp("2023-01-17")  # its MPOR must end before the option expires
    book = build_day(h, (whale, basis), h.days[3], 2)
    assert set(book.portfolio) == {"whale", "basis"}
    (k,) = rows_of(book, "basis")
    assert book.pnl[k] == pytest.approx(0.0, abs=1e-9)  # spot against its perpetual
    bad = frame.assign(quantity=["-2", "lots", "1", "-1"])
    with pytest.raises(ValueError, match="positions.csv: account whale, BTC-PERPETUAL"):
        from_positions(bad, "positions.csv")
