"""Instrument names, Black-76 against closed forms and finite differences, and Deribit's
real option-chain marks."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from margin_engine.instruments import InstrumentError, InstrumentTable, Kind, parse_instrument
from margin_engine.pricing import black76_greeks, black76_price, implied_vol

SNAPSHOT = "options/deribit_options_snapshot_20260330T051423Z.csv"


@pytest.mark.parametrize(
    ("name", "kind", "underlying", "settlement", "inverse", "strike", "call"),
    [
        ("BTC", Kind.SPOT, "BTC", "BTC", True, None, None),
        ("BTC_USDC", Kind.SPOT, "BTC", "USDC", False, None, None),
        ("BTC-PERPETUAL", Kind.PERPETUAL, "BTC", "BTC", True, None, None),
        ("SOL_USDC-PERPETUAL", Kind.PERPETUAL, "SOL", "USDC", False, None, None),
        ("BTC-27DEC24", Kind.FUTURE, "BTC", "BTC", True, None, None),
        ("BTC-27DEC24-60000-C", Kind.OPTION, "BTC", "BTC", True, 60000.0, True),
        ("ETH-3JAN25-3500-P", Kind.OPTION, "ETH", "ETH", True, 3500.0, False),
        ("XRP_USDC-27DEC24-0d625-P", Kind.OPTION, "XRP", "USDC", False, 0.625, False),
    ],
)
def test_parse_deribit_names(name, kind, underlying, settlement, inverse, strike, call) -> None:
    instrument = parse_instrument(name)
    assert (instrument.kind, instrument.underlying, instrument.settlement, instrument.inverse) == (
        kind,
        underlying,
        settlement,
        inverse,
    )
    assert instrument.strike == strike and instrument.is_call == call
    if kind in (Kind.FUTURE, Kind.OPTION):
        assert instrument.expiry.hour == 8 and instrument.expiry.tzinfo is UTC


def test_quantity_units_follow_deribit() -> None:
    assert parse_instrument("BTC-PERPETUAL").quantity_unit == "USD"
    assert parse_instrument("BTC-27DEC24-60000-C").quantity_unit == "BTC"
    assert parse_instrument("SOL_USDC-PERPETUAL").quantity_unit == "SOL"


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "empty"),
        ("btc-perpetual", "not an instrument name"),
        ("BTC-31FEB25", "not a calendar date"),
        ("BTC-27XYZ24", "not an expiry"),
        ("BTC-27DEC24-abc-C", "strike"),
        ("BTC-27DEC24-60000-Q", "option type"),
        ("BTC-27DEC24-60000", "not an instrument name"),
    ],
)
def test_bad_names_say_why(name, fragment) -> None:
    with pytest.raises(InstrumentError, match=fragment):
        parse_instrument(name)


def test_expired_instruments_are_refused() -> None:
    at = datetime(2025, 1, 1, tzinfo=UTC)
    with pytest.raises(InstrumentError, match="expired at 2024-12-27 08:00 UTC"):
        InstrumentTable.build([parse_instrument("BTC-27DEC24")], at)


@settings(max_examples=200, deadline=None)
@given(
    f=st.floats(1000, 100000),
    k=st.floats(1000, 100000),
    t=st.floats(0.01, 2),
    vol=st.floats(0.1, 2.0),
)
def test_put_call_parity(f, k, t, vol) -> None:
    call = black76_price(f, k, t, vol, True)
    put = black76_price(f, k, t, vol, False)
    assert call - put == pytest.approx(f - k, abs=1e-7 * max(f, k))


@pytest.mark.parametrize("is_call", [True, False])
def test_greeks_against_finite_differences(is_call) -> None:
    f, k, t, vol = 60000.0, 65000.0, 0.25, 0.6
    g = black76_greeks(f, k, t, vol, is_call)
    h = f * 1e-4

    def price(**kw):
        return float(black76_price(kw.get("f", f), k, kw.get("t", t), kw.get("vol", vol), is_call))  # noqa: E731

    assert g["delta"] == pytest.approx((price(f=f + h) - price(f=f - h)) / (2 * h), rel=1e-6)
    assert g["gamma"] == pytest.approx(
        (price(f=f + h) - 2 * price() + price(f=f - h)) / h**2, rel=1e-4
    )
    assert g["vega"] == pytest.approx(
        (price(vol=vol + 1e-5) - price(vol=vol - 1e-5)) / 2e-5, rel=1e-6
    )
    assert g["theta"] == pytest.approx(-(price(t=t + 1e-6) - price(t=t - 1e-6)) / 2e-6, rel=1e-5)


def test_expiry_and_zero_vol_give_intrinsic_value() -> None:
    assert black76_price(100.0, 90.0, 0.0, 0.5, True) == 10.0
    assert black76_price(100.0, 90.0, 1.0, 0.0, False) == 0.0
    assert black76_greeks(100.0, 90.0, 0.0, 0.5, True)["delta"] == 1.0


def test_implied_vol_inverts_the_price() -> None:
    vols = np.array([0.2, 0.6, 1.5])
    prices = black76_price(60000.0, 70000.0, 0.5, vols, True)
    np.testing.assert_allclose(implied_vol(prices, 60000.0, 70000.0, 0.5, True), vols, rtol=1e-8)
    assert np.isnan(implied_vol(np.array([-1.0]), 60000.0, 70000.0, 0.5, True))[0]


def test_marks_of_the_real_deribit_chain(shared_data) -> None:
    """Deribit marks inverse options at Black-76(F)/F, F the forward of the expiry, and quotes
    the plain Black-76 delta. Recomputing all 1,706 marks of the real snapshot from their
    ``implied_volatility`` with T = (expiry − snapshot time)/365 days:

    * median error 3e-6 coin; 99th percentile below 2e-4; largest 4.6e-4 coin, on deep
      in-the-money ETH June puts worth about 5.8 ETH (relative 8e-5); every mark above 0.01
      coin within 0.2 % relative. The residual comes from what the file rounds and when it was
      captured: IVs are given to 1e-4 (an error of vega × 5e-5), and the rows of one expiry carry
      forwards up to 0.74 USD apart (they were read moments apart), which moves deep
      in-the-money values by (K/F²)·ΔF;
    * deltas agree to 4e-4 in the median and within 5e-3 for options more than a week out; the
      largest gap (0.04) is hours from expiry, where delta moves fastest in time.
    """
    chain = pd.read_csv(shared_data / SNAPSHOT)
    at = pd.Timestamp(chain["timestamp"].iloc[0]).to_pydatetime()
    years = np.array([parse_instrument(n).years_to_expiry(at) for n in chain["instrument_name"]])
    f = chain["underlying"].to_numpy()
    k = chain["strike"].to_numpy()
    vol = chain["implied_volatility"].to_numpy()
    call = (chain["option_type"] == "call").to_numpy()
    mark = chain["mark_price"].to_numpy()
    price = black76_price(f, k, years, vol, call)
    greeks = black76_greeks(f, k, years, vol, call)
    error = np.abs(price / f - mark)
    assert np.median(error) < 1e-5
    assert np.quantile(error, 0.99) < 2e-4
    assert error.max() < 5e-4
    priced = mark > 0.01
    assert (error[priced] / mark[priced]).max() < 2e-3
    # the alternative reading, marks as Black-76 / index, is far worse: F is the right divisor
    index_error = np.abs(price / chain["index_price"].to_numpy() - mark)
    assert np.median(index_error) > 10 * np.median(error)
    delta_error = np.abs(greeks["delta"] - chain["delta"].to_numpy())
    assert np.median(delta_error) < 5e-4
    assert delta_error[years > 7 / 365].max() < 5e-3


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("BTC-05JAN24-40000.0-C", "BTC-5JAN24-40000-C"),
        ("ETH-31DEC99-1e5-P", "ETH-31DEC99-100000-P"),
        ("XRP_USDC-5JAN24-0d625-P", "XRP_USDC-5JAN24-0d625-P"),
        ("XRP_USDC-5JAN24-0.6250-P", "XRP_USDC-5JAN24-0d625-P"),
        ("ETH-1JAN30-0d00001-C", "ETH-1JAN30-0d00001-C"),  # no exponent: '-' splits names
        ("BTC-01MAR25", "BTC-1MAR25"),
        ("ETH_USDC-PERPETUAL", "ETH_USDC-PERPETUAL"),
        ("BTC_USDC", "BTC_USDC"),
    ],
)
def test_one_spelling_per_instrument(spelling: str, canonical: str) -> None:
    parsed = parse_instrument(spelling)
    assert parsed.canonical == canonical
    again = parse_instrument(canonical)  # the canonical name parses to the same contract
    assert (again.kind, again.expiry, again.strike, again.is_call, again.inverse) == (
        parsed.kind,
        parsed.expiry,
        parsed.strike,
        parsed.is_call,
        parsed.inverse,
    )
