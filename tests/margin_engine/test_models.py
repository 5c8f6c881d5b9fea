"""Standard and SPAN-style margin, VaR/ES, collateral haircuts, capital efficiency, and bad
input that must not stop the other accounts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from books import positions_frame

from margin_engine.book import build_positions
from margin_engine.collateral import collateral_summary, effective_haircut, haircut_value
from margin_engine.market import MarketSnapshot
from margin_engine.params import CollateralParams, HaircutTier, ModelParams, SpanParams, VarParams
from margin_engine.portfolio_margin import portfolio_margin
from margin_engine.span import span_margin
from margin_engine.standard import standard_margin
from margin_engine.var import JointScenarios, historical_scenarios, var_margin, weighted_var_es

MARKET = {
    "as_of": "2024-01-01T08:00:00Z",
    "index": {"BTC": 40000.0, "ETH": 2000.0},
    "futures": {"BTC-29MAR24": 40800.0},
    "default_iv": {"BTC": 0.6, "ETH": 0.7},
}


def market() -> MarketSnapshot:
    return MarketSnapshot.from_json(MARKET)


def records(result) -> dict:
    return {(r["account"], r["currency"]): r for r in result.records()}


def test_standard_margin_by_hand() -> None:
    m = market()
    rows = [
        ("a", "BTC-29MAR24", 81_600.0),
        ("b", "BTC-29MAR24-48000-C", -3.0),
        ("c", "BTC-29MAR24-48000-C", 3.0),
    ]
    positions = build_positions(positions_frame(rows), m)
    result = records(standard_margin(positions))
    assert result[("a", "BTC")]["initial_margin"] == pytest.approx(0.04 * 81_600 / 40800)
    assert result[("a", "BTC")]["maintenance_margin"] == pytest.approx(0.02 * 81_600 / 40800)
    mark = (
        positions.book.value[0]
        if positions.book.table.names[0].endswith("C")
        else positions.book.value[1]
    )
    otm = (48000 - 40800) / 40800
    assert result[("b", "BTC")]["initial_margin"] == pytest.approx(
        3 * (max(0.15 - otm, 0.10) + mark)
    )
    assert result[("b", "BTC")]["maintenance_margin"] == pytest.approx(3 * (0.075 + mark))
    assert result[("c", "BTC")]["initial_margin"] == 0.0  # long options: the premium is paid


def test_span_grid_covered_fraction_and_short_option_minimum() -> None:
    m = market()
    params = ModelParams(
        span={
            "BTC": SpanParams(
                price_scan_range=0.10,
                extreme_move_multiple=3.0,
                extreme_covered_fraction=0.35,
                short_option_minimum=0.02,
            )
        }
    )
    long_perp = records(
        span_margin(build_positions(positions_frame([("a", "BTC-PERPETUAL", 40000.0)]), m), params)
    )
    # scan: -10 % gives 1/0.9 - 1 = 0.1111 coin on 1 BTC; extreme -30 % × 0.35 gives 0.35 × 0.4286 = 0.15
    assert long_perp[("a", "BTC")]["components"]["scan_risk"] == pytest.approx(0.35 * (1 / 0.7 - 1))
    far_otm = records(
        span_margin(
            build_positions(positions_frame([("b", "BTC-29MAR24-200000-C", -1.0)]), m), params
        )
    )
    assert far_otm[("b", "BTC")]["initial_margin"] == pytest.approx(0.02)  # the minimum binds


def test_span_inter_commodity_credit_needs_opposite_deltas() -> None:
    m = market()
    params = ModelParams(spreads={("BTC", "ETH"): 0.6})
    spread = [("s", "BTC_USDC-PERPETUAL", 1.0), ("s", "ETH_USDC-PERPETUAL", -20.0)]
    same_side = [("l", "BTC_USDC-PERPETUAL", 1.0), ("l", "ETH_USDC-PERPETUAL", 20.0)]
    result = records(span_margin(build_positions(positions_frame(spread + same_side), m), params))
    s, lo = result[("s", "USDC")], result[("l", "USDC")]
    assert lo["components"]["inter_spread_credit"] == 0
    # scan risks: BTC leg 1 × 40,000 × 0.16 = 6,400; ETH leg 20 × 2,000 × 0.18 = 7,200 (the
    # extremes, 2 × range at 35 %, are smaller); matched 6,400, credit 0.6 × 2 × 6,400
    assert s["components"]["scan_risk"] == pytest.approx(6400 + 7200)
    assert s["components"]["inter_spread_credit"] == pytest.approx(0.6 * 2 * 6400)
    assert s["initial_margin"] == pytest.approx(6400 + 7200 - 7680)


def test_span_intra_commodity_charge_on_a_calendar_spread() -> None:
    m = market()
    rows = [("c", "BTC-PERPETUAL", 40_000.0), ("c", "BTC-29MAR24", -40_800.0)]
    result = records(span_margin(build_positions(positions_frame(rows), m)))[("c", "BTC")]
    # one coin long perpetual against one coin short future: matched calendar delta = 1 coin
    assert result["components"]["intra_spread_charge"] == pytest.approx(0.01 * 1.0)
    assert result["components"]["scan_risk"] < 1e-3


def test_weighted_var_and_es_on_a_known_distribution() -> None:
    losses = np.arange(1.0, 101.0)[None, :]  # 1..100, equally likely
    weights = np.full(100, 0.01)
    var, es = weighted_var_es(losses, weights, 0.99, 0.975)
    assert var[0] == 99.0
    # ES 97.5 %: the worst 2.5 % = losses 100, 99 and half of 98
    assert es[0] == pytest.approx((100 + 99 + 0.5 * 98) / 2.5)


def test_var_full_revaluation_and_buffer() -> None:
    m = market()
    moves = np.linspace(-0.2, 0.2, 101)[:, None]
    scenarios = JointScenarios(("BTC",), moves, np.zeros_like(moves), np.full(101, 1 / 101))
    positions = build_positions(positions_frame([("a", "BTC-PERPETUAL", -40_000.0)]), m)
    plain = ModelParams(var=VarParams(apc="none"))
    result = records(var_margin(positions, scenarios, plain))[("a", "BTC")]
    losses = np.sort(moves[:, 0] / (1 + moves[:, 0]))  # short 1 BTC notional: loses m/(1+m)
    assert result["initial_margin"] == pytest.approx(losses[int(np.ceil(0.99 * 101)) - 1])
    buffered = records(var_margin(positions, scenarios, ModelParams()))[("a", "BTC")]
    assert buffered["initial_margin"] == pytest.approx(1.25 * result["initial_margin"])


def test_filtered_historical_scenarios_rescale_by_volatility() -> None:
    dates = pd.date_range("2023-01-01", periods=300, freq="D")
    returns = pd.DataFrame({"BTC": np.full(300, 0.01)}, index=dates)
    vol = pd.DataFrame({"BTC": np.full(300, 0.02)}, index=dates)
    hs = historical_scenarios(returns, 2, 250)
    fhs = historical_scenarios(
        returns,
        2,
        250,
        method="filtered-historical",
        cond_vol=vol,
        vol_now=pd.Series({"BTC": 0.04}),
    )
    assert len(hs) == 249 and hs.price_moves[0, 0] == pytest.approx(np.expm1(0.02))
    assert fhs.price_moves[0, 0] == pytest.approx(np.expm1(0.04))  # doubled: today's vol is twice


def test_tiered_haircuts_are_applied_band_by_band() -> None:
    params = CollateralParams(
        (HaircutTier(1e6, 0.10), HaircutTier(1e7, 0.12), HaircutTier(None, 0.15))
    )
    values = np.array([0.0, 5e5, 3e6, 2e7])
    expected = np.array(
        [0.0, 5e5 * 0.9, 1e6 * 0.9 + 2e6 * 0.88, 1e6 * 0.9 + 9e6 * 0.88 + 1e7 * 0.85]
    )
    np.testing.assert_allclose(haircut_value(values, params), expected)
    average = effective_haircut(np.linspace(1, 5e7, 200), params)
    assert np.all(np.diff(average) >= -1e-12)  # bigger holdings never get a smaller haircut
    m = market()
    positions = build_positions(
        positions_frame([("a", "ETH", 10.0), ("a", "BTC-PERPETUAL", 1000.0)]), m
    )
    summary = collateral_summary(positions, ModelParams(collateral={"ETH": params}))
    assert summary.loc[0, "collateral_value_usd"] == pytest.approx(20_000 * 0.9)


def test_far_less_portfolio_margin_than_standard_for_hedged_books(chain_market, capsys) -> None:
    rows = [
        ("iron_condor", "BTC-29MAY26-60000-P", 1),
        ("iron_condor", "BTC-29MAY26-64000-P", -1),
        ("iron_condor", "BTC-29MAY26-72000-C", -1),
        ("iron_condor", "BTC-29MAY26-76000-C", 1),
        ("butterfly", "BTC-29MAY26-64000-C", 1),
        ("butterfly", "BTC-29MAY26-68000-C", -2),
        ("butterfly", "BTC-29MAY26-72000-C", 1),
        ("hedged_straddle", "BTC-29MAY26-68000-C", -1),
        ("hedged_straddle", "BTC-29MAY26-68000-P", -1),
    ]
    positions = build_positions(positions_frame(rows), chain_market)
    # delta-hedge the straddle with the perpetual (USD notional = -delta × index)
    straddle = [
        i
        for i, n in enumerate(positions.book.table.names)
        if n in ("BTC-29MAY26-68000-C", "BTC-29MAY26-68000-P")
    ]
    delta = -sum(positions.book.delta[i] for i in straddle)
    rows.append(("hedged_straddle", "BTC-PERPETUAL", -delta * chain_market.index["BTC"]))
    positions = build_positions(positions_frame(rows), chain_market)
    pm = records(portfolio_margin(positions))
    std = records(standard_margin(positions))
    for account in ("iron_condor", "butterfly", "hedged_straddle"):
        ratio = pm[(account, "BTC")]["initial_margin"] / std[(account, "BTC")]["initial_margin"]
        print(f"{account}: portfolio / standard margin = {ratio:.3f}")
        assert ratio < 0.5
    assert "iron_condor" in capsys.readouterr().out


def test_bad_positions_are_reported_and_the_rest_is_margined(chain_market) -> None:
    rows = [
        ("good", "BTC-29MAY26-68000-C", -1),
        ("unknown", "BTC-29MAY26-68000-X", 1),
        ("expired", "BTC-27DEC24-60000-C", 1),
        ("no_iv", "BTC-29MAY26-68123-C", 1),
        ("not_a_number", "BTC-PERPETUAL", "ten"),
        ("mixed", "BTC-PERPETUAL", 1000),
        ("mixed", "DOGE-PERPETUAL", 5),
    ]
    positions = build_positions(
        pd.DataFrame(rows, columns=["account", "instrument", "quantity"]), chain_market
    )
    errors = {(e.account, e.instrument): e.error for e in positions.errors}
    assert "option type must be C or P" in errors[("unknown", "BTC-29MAY26-68000-X")]
    assert "expired at 2024-12-27" in errors[("expired", "BTC-27DEC24-60000-C")]
    assert "no implied vol" in errors[("no_iv", "BTC-29MAY26-68123-C")]
    assert "'ten' is not a finite number" in errors[("not_a_number", "BTC-PERPETUAL")]
    assert "no index price for DOGE" in errors[("mixed", "DOGE-PERPETUAL")]
    assert positions.accounts == ("good",)
    for model in (portfolio_margin, span_margin, standard_margin):
        assert [r["account"] for r in model(positions).records()] == ["good"]


def test_stressed_weight_and_floor_anti_procyclicality() -> None:
    dates = pd.date_range("2021-01-01", periods=500, freq="D")
    rng = np.random.default_rng(3)
    daily = rng.normal(0, 0.01, 500)
    daily[430:433] = -0.08  # a short stressed spell inside the stress window below
    returns = pd.DataFrame({"BTC": daily}, index=dates)
    window = (dates[428].date(), dates[442].date())
    plain = historical_scenarios(returns, 1, 500)
    weighted = historical_scenarios(returns, 1, 500, stress_windows=[window], stress_weight=0.25)
    stressed = (
        np.array([pd.Timestamp(x.split("..")[0]) for x in weighted.labels])
        >= pd.Timestamp(window[0])
    ) & (
        np.array([pd.Timestamp(x.split("..")[0]) for x in weighted.labels])
        <= pd.Timestamp(window[1])
    )
    assert weighted.weights[stressed].sum() == pytest.approx(0.25)
    assert weighted.weights[~stressed].sum() == pytest.approx(0.75)
    positions = build_positions(positions_frame([("a", "BTC-PERPETUAL", 40_000.0)]), market())
    none = ModelParams(var=VarParams(apc="none"))
    base = var_margin(positions, plain, none).initial_margin[0]
    heavier = var_margin(positions, weighted, none).initial_margin[0]
    assert heavier > base  # stressed days weigh more than their share
    recent = historical_scenarios(returns.iloc[-100:], 1, 100)
    floor = ModelParams(var=VarParams(apc="floor", lookback_days=100))
    floored = var_margin(positions, recent, floor, floor_scenarios=plain)
    calm = var_margin(positions, recent, none).initial_margin[0]
    assert floored.initial_margin[0] == pytest.approx(max(calm, base))
    assert floored.components["apc_floor"][0] == pytest.approx(base)


def test_scenario_validation() -> None:
    with pytest.raises(ValueError, match="-100 %"):
        JointScenarios(("BTC",), np.array([[-1.0]]), np.zeros((1, 1)), np.ones(1))
    with pytest.raises(ValueError, match="sum to 1"):
        JointScenarios(("BTC",), np.zeros((2, 1)), np.zeros((2, 1)), np.ones(2))
    positions = build_positions(positions_frame([("a", "ETH-PERPETUAL", 100.0)]), market())
    only_btc = JointScenarios(("BTC",), np.zeros((2, 1)), np.zeros((2, 1)), np.full(2, 0.5))
    with pytest.raises(ValueError, match="no scenarios for underlying"):
        var_margin(positions, only_btc)
