"""Aevo: the published 15-scenario grid, the scenario and floor margins against closed forms, and
Aevo's two worked examples (docs.aevo.xyz, Options Specifications › Portfolio Margin, examples 1.1
and 1.2: ETH at $1,300 on 29 July 2022, options expiring 26 August 2022) line by line."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from books import positions_frame

from margin_engine.book import build_positions
from margin_engine.market import MarketSnapshot
from margin_engine.models import margin
from margin_engine.params import ModelParams
from margin_engine.pricing import black76_price
from margin_engine.venues.aevo import IM_FACTOR, PUBLISHED, scenarios
from margin_engine.venues.books import usd_scenario_pnl


def test_the_published_grid_in_aevos_order() -> None:
    spots, shifts = scenarios(PUBLISHED)
    assert len(spots) == 15
    np.testing.assert_allclose(spots[::3], [0.20, 0.10, 0.0, -0.10, -0.20])
    np.testing.assert_allclose(shifts[:3], [0.50, 0.0, -0.25])  # up, unchanged, down
    assert (spots[7], shifts[7]) == (0.0, 0.0)  # scenario 8: nothing moves


def test_a_long_perpetual_needs_the_full_down_move(chain_market) -> None:
    positions = build_positions(positions_frame([("a", "ETH_USDC-PERPETUAL", 5.0)]), chain_market)
    result = margin(positions, "aevo-pm", ModelParams())
    notional = 5.0 * chain_market.spot("ETH")
    assert result.maintenance_margin[0] == pytest.approx(0.20 * notional, rel=1e-12)
    assert result.initial_margin[0] == pytest.approx(IM_FACTOR * 0.20 * notional, rel=1e-12)


def test_iv_shifts_are_parallel_vol_points(chain_market) -> None:
    """A long call loses most with spot down 20 % and IV down 25 points: its value there,
    Black-76 at the shifted IV, less its value now."""
    name = "ETH-26JUN26-2000-C"
    positions = build_positions(positions_frame([("a", name, 1.0)]), chain_market)
    result = margin(positions, "aevo-pm", ModelParams())
    book, table = positions.book, positions.book.table
    f, k, t, v = book.forward[0], table.strike[0], table.years[0], book.vol[0]
    now = black76_price(f, k, t, v, True)
    worst = black76_price(f * 0.8, k, t, max(v - 0.25, 0.01), True)
    assert result.components["scenario"][0] == pytest.approx(now - worst, rel=1e-10)


def test_floor_margin_nets_calls_and_puts_at_a_strike(chain_market) -> None:
    params = dataclasses.replace(
        ModelParams(), aevo=dataclasses.replace(PUBLISHED, floor_rate=0.01)
    )
    rows = [("a", "ETH-26JUN26-2000-C", -2.0), ("a", "ETH-26JUN26-2000-P", 1.0)]
    positions = build_positions(positions_frame(rows), chain_market)
    result = margin(positions, "aevo-pm", params)
    assert result.components["floor"][0] == pytest.approx(0.01 * chain_market.spot("ETH"))


# Aevo's published tables: per scenario (Aevo's order), each leg's P&L in USD for the position held.
STRANGLE = {  # 1x ETH-26AUG22-1500-C short, 1x ETH-26AUG22-1100-P short, both IV 50 %
    "ETH-26AUG22-1500-C": [-182.79, -100.42, -61.46, -111.34, -33.23, 2.67, -56.76, 2.31,
                           16.71, -19.43, 14.75, 17.40, 2.48, 17.18, 17.40],
    "ETH-26AUG22-1100-P": [-7.26, 10.20, 10.54, -21.24, 8.60, 10.54, -44.75, 1.38, 10.32,
                           -82.54, -23.22, 2.52, -139.71, -83.30, -58.20],
}  # fmt: skip
BULL_SPREAD = {  # 1x ETH-26AUG22-1500-C long (IV 50 %), 1x ETH-26AUG22-1700-C short (IV 70 %)
    "ETH-26AUG22-1500-C": [185.10, 102.73, 63.76, 113.65, 35.54, -0.36, 59.07, 0.00, -14.41,
                           21.74, -12.44, -15.09, -0.17, -14.87, -15.09],
    "ETH-26AUG22-1700-C": [-141.30, -57.08, -18.57, -87.66, -19.80, 3.61, -47.25, 0.00, 9.88,
                           -19.46, 8.11, 10.85, -2.55, 10.46, 10.92],
}  # fmt: skip
#: The tables are printed to the cent, and the marks they measure from are rounded to the cent
#: too: two half-cents.
CENT = 0.0101


def _example(quantities: dict[str, float], ivs: dict[str, float]):
    market = MarketSnapshot.from_json(
        {"as_of": "2022-07-29T08:00:00+00:00", "index": {"ETH": 1300.0}, "iv": ivs}
    )
    frame = pd.DataFrame(
        {"account": "a", "instrument": list(quantities), "quantity": list(quantities.values())}
    )
    positions = build_positions(frame, market)
    assert not positions.errors
    return positions


def _legs(positions, quantities: dict[str, float]) -> dict[str, np.ndarray]:
    """Each leg's P&L per scenario from the engine (scenario value less value now)."""
    spots, shifts = scenarios(PUBLISHED)
    per_unit = usd_scenario_pnl(
        positions, spots, lambda v, y: np.maximum(v + shifts[None, :], 0.01)
    )
    names = [i.name for i in positions.book.table.instruments]
    return {name: q * per_unit[names.index(name)] for name, q in quantities.items()}


def test_aevos_bull_spread_line_by_line() -> None:
    """Example 1.2: every leg in every scenario, the scenario margin $4.52 (scenario 9), the
    floor 1 × 0.01 ETH = $13 (one net short at the 1,700 strike), MM $17.52, IM $21.90."""
    quantities = {"ETH-26AUG22-1500-C": 1.0, "ETH-26AUG22-1700-C": -1.0}
    positions = _example(quantities, {"ETH-26AUG22-1500-C": 0.5, "ETH-26AUG22-1700-C": 0.7})
    for name, pnl in _legs(positions, quantities).items():
        np.testing.assert_allclose(pnl, BULL_SPREAD[name], atol=CENT, err_msg=name)
    result = margin(positions, "aevo-pm", ModelParams())
    assert result.components["scenario"][0] == pytest.approx(4.52, abs=CENT)
    assert result.components["floor"][0] == pytest.approx(13.0, rel=1e-12)
    assert result.maintenance_margin[0] == pytest.approx(17.52, abs=CENT)
    assert result.initial_margin[0] == pytest.approx(21.90, abs=1.25 * CENT)


def test_aevos_short_strangle_line_by_line_from_its_marks() -> None:
    """Example 1.1. Its marks are not the model's values at the stated IVs: $17.04 and $10.54 are
    Black-76 prices for one month (1/12 year) while the table revalues at the 28 days to expiry,
    and the call's column is measured from $17.40 (17.04 with two digits transposed). Measured
    from those marks, each leg's P&L is the engine's P&L plus q × (value now − mark), and every
    line matches; the scenario margin is $190.06 and MM = 190.06 + 2 × $13 floor = $216.06, as
    published. The engine, measuring from its own values, charges 3.69 more."""
    quantities = {"ETH-26AUG22-1500-C": -1.0, "ETH-26AUG22-1100-P": -1.0}
    positions = _example(quantities, {"ETH-26AUG22-1500-C": 0.5, "ETH-26AUG22-1100-P": 0.5})
    assert black76_price(1300.0, 1500.0, 1 / 12, 0.5, True) == pytest.approx(17.04, abs=0.005)
    assert black76_price(1300.0, 1100.0, 1 / 12, 0.5, False) == pytest.approx(10.54, abs=0.005)
    marks = {"ETH-26AUG22-1500-C": 17.40, "ETH-26AUG22-1100-P": 10.54}  # as the table uses them
    names = [i.name for i in positions.book.table.instruments]
    now = {n: float(positions.book.value[names.index(n)] * 1300.0) for n in quantities}
    shift = 0.0
    for name, pnl in _legs(positions, quantities).items():
        q = quantities[name]
        np.testing.assert_allclose(
            pnl + q * (now[name] - marks[name]), STRANGLE[name], atol=CENT, err_msg=name
        )
        shift += q * (now[name] - marks[name])
    result = margin(positions, "aevo-pm", ModelParams())
    published_total = np.add(*STRANGLE.values())
    assert -published_total.min() == pytest.approx(190.06, abs=CENT)  # scenario 1
    assert result.components["scenario"][0] - shift == pytest.approx(190.06, abs=CENT)
    assert result.components["floor"][0] == pytest.approx(26.0, rel=1e-12)
    mm = result.maintenance_margin[0] - shift
    assert mm == pytest.approx(216.06, abs=CENT)
    assert IM_FACTOR * mm == pytest.approx(270.07, abs=1.25 * CENT)
    assert math.isclose(shift, 3.69, abs_tol=CENT)  # what the engine charges more


def test_floor_on_random_books_equals_a_groupby(chain_market, chain_instruments) -> None:
    """The compiled per-account pass against pandas: net units per (account, underlying,
    expiry, strike), their short parts × 0.01 × spot, summed per account."""
    options = [n for n in chain_instruments if n.count("-") == 3 and n.endswith("-C")]
    paired = [n for n in options if n[:-1] + "P" in chain_instruments][:12]
    names = paired + [n[:-1] + "P" for n in paired] + ["ETH_USDC-PERPETUAL"]
    rng = np.random.default_rng(7)
    rows = [
        (f"a{int(a)}", names[int(i)], float(q))
        for a, i, q in zip(
            rng.integers(0, 60, 600),
            rng.integers(0, len(names), 600),
            rng.normal(0, 2, 600),
            strict=True,
        )
    ]
    frame = positions_frame(rows)
    positions = build_positions(frame, chain_market)
    assert not positions.errors
    result = margin(positions, "aevo-pm", ModelParams())
    options_only = frame[frame["instrument"].str.count("-") == 3].copy()
    parts = options_only["instrument"].str.split("-", expand=True)
    options_only["underlying"] = parts[0].str.split("_").str[0]
    options_only["key"] = parts[1] + "-" + parts[2]
    net = options_only.groupby(["account", "underlying", "key"])["quantity"].sum()
    short = (-net).clip(lower=0.0).reset_index()
    short["usd"] = short["quantity"] * 0.01 * short["underlying"].map(chain_market.spot)
    expected = short.groupby("account")["usd"].sum()
    ours = dict(
        zip(np.asarray(positions.accounts)[result.account], result.components["floor"], strict=True)
    )
    assert expected.size > 20 and (expected > 0).sum() > 20
    for account, value in expected.items():
        assert ours[account] == pytest.approx(value, rel=1e-12, abs=1e-9)
