"""Deribit-style portfolio margin: Deribit's published examples, hand-computed cases and the
per-account reference implementation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from books import positions_frame, random_book

from margin_engine.book import build_positions
from margin_engine.market import MarketSnapshot
from margin_engine.params import ModelParams, PortfolioMarginParams
from margin_engine.portfolio_margin import portfolio_margin, risk_arrays, scenario_moves, vol_shocks
from margin_engine.reference import reference_portfolio_margin


def margin_of(rows, market, params=None):
    result = portfolio_margin(build_positions(positions_frame(rows), market), params)
    return {(r["account"], r["currency"]): r for r in result.records()}


def test_deribit_openapi_pme_simulate_example() -> None:
    """Deribit's API reference, ``private/pme/simulate`` response example (docs.deribit.com,
    OpenAPI spec 2.1.1; parameters of btc_usd as of 2024-06-17): a long BTC-PERPETUAL of
    0.314538364 BTC and a short BTC-28JUN24 of 0.001187534 BTC, index 65,666.19, future mark
    67,371.75. Published: worst_case 0.05968587238095239 (the −16 % bucket), roll_shock
    0.00315725898, delta_shock 0, risk_matrix_margin 0.06284313098, maintenance_margin
    0.050274504784 (= 0.8 × risk matrix). Quantities of inverse contracts are USD notionals."""
    at = pd.Timestamp(1718619740501, unit="ms", tz="UTC").isoformat()
    market = MarketSnapshot.from_json(
        {"as_of": at, "index": {"BTC": 65666.19}, "futures": {"BTC-28JUN24": 67371.75}}
    )
    rows = [
        ("a", "BTC-PERPETUAL", 0.314538364 * 65666.19),
        ("a", "BTC-28JUN24", -0.001187534 * 67371.75),
    ]
    result = margin_of(rows, market)[("a", "BTC")]
    assert result["components"]["worst_case"] == pytest.approx(0.05968587238095239, abs=1e-15)
    assert result["components"]["roll_shock"] == pytest.approx(0.00315725898, abs=1e-12)
    assert result["components"]["delta_shock"] == 0
    assert result["initial_margin"] == pytest.approx(0.06284313098, abs=1e-9)
    assert result["maintenance_margin"] == pytest.approx(0.050274504784, abs=1e-9)
    assert result["worst_scenario"]["price_move"] == pytest.approx(-0.16)


def test_deribit_eth_short_perpetual_reply() -> None:
    """A captured ``private/pme/simulate`` reply (ETH, 2026-02-15, eth_usd price_range 0.18,
    currency eth annualised_move_risk 0.05, min_annualised_move 0.005): short 0.999487053 ETH
    of ETH-PERPETUAL at index 1,949.34. Published: worst_case 0.15246412672881357 (+18 %),
    roll_shock 0.004997435265, risk_matrix_margin 0.157461562265, maintenance 0.125969249812;
    its standard risk vector at −18 % is +0.21939959699999997."""
    at = pd.Timestamp(1771197609587, unit="ms", tz="UTC").isoformat()
    market = MarketSnapshot.from_json({"as_of": at, "index": {"ETH": 1949.34}})
    positions = build_positions(
        positions_frame([("e", "ETH-PERPETUAL", -0.999487053 * 1949.34)]), market
    )
    arrays = risk_arrays(positions, ModelParams()) * positions.quantity[0]
    assert arrays[0, 0] == pytest.approx(0.21939959699999997, abs=1e-15)
    assert arrays[0, 26] == pytest.approx(-0.15246412672881357, abs=1e-15)
    # extended table of a perpetual is the edge of the standard one (the published vector)
    assert arrays[0, 27] == pytest.approx(arrays[0, 0]) and arrays[0, 34] == pytest.approx(
        arrays[0, 26]
    )
    result = portfolio_margin(positions).records()[0]
    assert result["components"]["worst_case"] == pytest.approx(0.15246412672881357, abs=1e-15)
    assert result["components"]["roll_shock"] == pytest.approx(0.004997435265, abs=1e-12)
    assert result["initial_margin"] == pytest.approx(0.157461562265, abs=1e-9)
    assert result["maintenance_margin"] == pytest.approx(0.125969249812, abs=1e-9)


def test_short_inverse_perpetual_by_hand() -> None:
    market = MarketSnapshot.from_json({"as_of": "2024-01-01T00:00:00Z", "index": {"BTC": 40000.0}})
    notional = 100_000.0
    positions = build_positions(positions_frame([("a", "BTC-PERPETUAL", -notional)]), market)
    pnl = risk_arrays(positions, ModelParams())[0] * -notional
    for m, value in zip(scenario_moves(0.16)[:27], pnl[:27], strict=True):
        assert value == pytest.approx(-m / (1 + m) * notional / 40000.0, rel=1e-12)
    result = portfolio_margin(positions).records()[0]
    worst = 0.16 / 1.16 * notional / 40000.0
    assert result["components"]["worst_case"] == pytest.approx(worst)
    assert result["components"]["roll_shock"] == pytest.approx(0.01 * notional / 40000.0)


def test_long_dated_future_roll_shock_uses_the_annualised_move() -> None:
    market = MarketSnapshot.from_json(
        {
            "as_of": "2024-01-01T08:00:00Z",
            "index": {"BTC": 40000.0},
            "futures": {"BTC-27DEC24": 42000.0},
        }
    )
    result = margin_of([("a", "BTC-27DEC24", 84_000.0)], market)[("a", "BTC")]
    years = 361 / 365
    rate = max(0.01, math.exp(0.075 * years) - 1)
    assert rate > 0.01
    assert result["components"]["roll_shock"] == pytest.approx(rate * 84_000.0 / 42000.0, rel=1e-12)
    worst = 0.16 / 0.84 * 2.0  # long 2 BTC notional at F: loss at -16 % is 2 * 0.16/0.84
    assert result["components"]["worst_case"] == pytest.approx(worst)


def test_short_call_by_hand() -> None:
    """A short inverse call: P&L in coin = -(V(F', σ')/F' − V(F, σ)/F) with the tenor-scaled
    vol shocks, computed here from the Black-76 formula written out."""
    from scipy.stats import norm

    market = MarketSnapshot.from_json(
        {
            "as_of": "2024-01-01T08:00:00Z",
            "index": {"BTC": 40000.0},
            "futures": {"BTC-16FEB24": 40400.0},
            "iv": {"BTC-16FEB24-44000-C": 0.55},
        }
    )
    positions = build_positions(positions_frame([("a", "BTC-16FEB24-44000-C", -2.0)]), market)
    arrays = risk_arrays(positions, ModelParams())[0] * -2.0
    f, k, t, iv = 40400.0, 44000.0, 46 / 365, 0.55

    def call(fwd, vol):
        d1 = (math.log(fwd / k) + 0.5 * vol * vol * t) / (vol * math.sqrt(t))
        return fwd * norm.cdf(d1) - k * norm.cdf(d1 - vol * math.sqrt(t))

    tenor = (30 / 46) ** 0.13  # DTE 46 >= 30: long-term vega power
    up = max(iv * (1 + 0.5 * tenor), 0.5)
    down = iv * (1 - 0.25 * tenor)
    for j, (m, vol) in enumerate([(-0.16, up), (-0.16, iv), (-0.16, down)]):
        expected = -2.0 * (call(f * (1 + m), vol) / (f * (1 + m)) - call(f, iv) / f)
        assert arrays[j] == pytest.approx(expected, rel=1e-10)
    m = 0.16
    expected = -2.0 * (call(f * 1.16, up) / (f * 1.16) - call(f, iv) / f)
    assert arrays[24] == pytest.approx(expected, rel=1e-10)


def test_vol_shocks_scale_with_tenor_and_respect_the_floor() -> None:
    p = PortfolioMarginParams()
    iv = np.array([0.20, 0.80, 0.80, 0.80])
    years = np.array([5, 5, 60, 0.01]) / 365
    up, down = vol_shocks(iv, years, p)
    # 5 days, short-term power 0.3: 0.2 (1 + 0.5 * 6^0.3) = 0.371 is below the 0.5 floor
    assert up[0] == 0.5
    assert up[1] == pytest.approx(0.8 * (1 + 0.5 * 6**0.3))
    assert down[1] == pytest.approx(0.8 * (1 - 0.25 * 6**0.3))
    # 60 days, long-term power 0.13: the shock shrinks below the 30-day one
    assert up[2] == pytest.approx(0.8 * (1 + 0.5 * 0.5**0.13)) and up[2] < 0.8 * 1.5
    # minutes from expiry: DTE floored at one day, vol down floored at 1 %
    assert up[3] == pytest.approx(0.8 * (1 + 0.5 * 30**0.3))
    assert down[3] == pytest.approx(max(0.8 * (1 - 0.25 * 30**0.3), 0.01))


def test_extended_dampener_hides_small_extended_losses_only() -> None:
    """A deep OTM short call barely loses in ±16 % but a lot at +500 %: the extended table
    catches it, less the dampener (100,000 USD = 2.5 BTC at 40,000)."""
    market = MarketSnapshot.from_json(
        {
            "as_of": "2024-01-01T08:00:00Z",
            "index": {"BTC": 40000.0},
            "iv": {"BTC-29MAR24-120000-C": 0.9},
        }
    )
    small = margin_of([("a", "BTC-29MAR24-120000-C", -1.0)], market)[("a", "BTC")]
    big = margin_of([("a", "BTC-29MAR24-120000-C", -100.0)], market)[("a", "BTC")]
    assert small["worst_scenario"]["table"] == "standard"
    assert big["worst_scenario"]["table"] == "extended"
    positions = build_positions(positions_frame([("a", "BTC-29MAR24-120000-C", -100.0)]), market)
    raw = (risk_arrays(positions, ModelParams())[0] * -100.0)[27:].min()
    assert big["components"]["worst_case"] == pytest.approx(-raw - 100_000 / 40000.0)
    no_damp = ModelParams(
        currencies={"BTC": ModelParams().currencies["BTC"].__class__(0.075, 0.01, 0.0)}
    )
    assert margin_of([("a", "BTC-29MAR24-120000-C", -100.0)], market, no_damp)[("a", "BTC")][
        "components"
    ]["worst_case"] == pytest.approx(-raw)


def test_delta_shock_above_the_liquidity_threshold() -> None:
    market = MarketSnapshot.from_json({"as_of": "2024-01-01T00:00:00Z", "index": {"BTC": 40000.0}})
    params = ModelParams(
        pm={"BTC": PortfolioMarginParams(delta_total_liq_shock_threshold=20_000_000.0, m_inc=5e-5)}
    )
    below = margin_of([("a", "BTC-PERPETUAL", 19_000_000.0)], market, params)[("a", "BTC")]
    above = margin_of([("a", "BTC-PERPETUAL", 40_000_000.0)], market, params)[("a", "BTC")]
    assert below["components"]["delta_shock"] == 0
    delta = 40_000_000.0 / 40000.0  # 1,000 BTC, threshold 500 BTC
    rate = min(0.10, 5e-5 * (delta - 500.0))
    assert above["components"]["delta_shock"] == pytest.approx(rate * delta)


def test_linear_usdc_book_is_margined_in_usdc() -> None:
    market = MarketSnapshot.from_json({"as_of": "2024-01-01T00:00:00Z", "index": {"SOL": 100.0}})
    result = margin_of([("a", "SOL_USDC-PERPETUAL", 50.0)], market)[("a", "USDC")]
    # falls back to ETH's published PM values (price range 0.18): loss 50 SOL × 100 × 0.18
    assert result["components"]["worst_case"] == pytest.approx(50 * 100 * 0.18)
    assert result["components"]["roll_shock"] == pytest.approx(0.01 * 50 * 100)


def test_agrees_with_the_per_account_reference(chain_market, chain_instruments) -> None:
    frame = random_book(chain_instruments, 60, seed=5)
    ours = portfolio_margin(build_positions(frame, chain_market)).frame()
    assert len(ours) >= 60
    for account, group in frame.groupby("account"):
        reference = reference_portfolio_margin(
            list(zip(group["instrument"], group["quantity"], strict=True)), chain_market
        )
        for currency, expected in reference.items():
            row = ours[(ours["account"] == account) & (ours["currency"] == currency)].iloc[0]
            for key in (
                "initial_margin",
                "worst_case",
                "roll_shock",
                "delta_shock",
                "maintenance_margin",
            ):
                assert row[key] == pytest.approx(expected[key], rel=1e-10, abs=1e-12), (
                    account,
                    currency,
                    key,
                )
