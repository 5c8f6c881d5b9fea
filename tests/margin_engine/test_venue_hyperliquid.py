"""Hyperliquid: the tier deduction rule on its published tables, the liquidation price, and the
book model against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from books import positions_frame

from governance.parameters import venue_parameter_set
from margin_engine.book import build_positions
from margin_engine.models import margin
from margin_engine.venues.hyperliquid import (
    PUBLISHED_TABLES,
    TESTNET_TABLES,
    MarginTable,
    initial_margin,
    liquidation_price,
    maintenance_margin,
)

TABLES = {f"mainnet {a}": t for a, t in PUBLISHED_TABLES.items()} | {
    f"testnet {a}": t for a, t in TESTNET_TABLES.items()
}


def _marginal(rows, notional: float) -> float:
    """The maintenance margin summed tier by tier: each dollar at its own tier's rate (what
    the deduction rule makes of the one-rate formula)."""
    total = 0.0
    bounds = [lower for lower, _ in rows[1:]] + [math.inf]
    for (lower, leverage), upper in zip(rows, bounds, strict=True):
        if notional > lower:
            total += (min(notional, upper) - lower) * 0.5 / leverage
    return total


@pytest.mark.parametrize("name", sorted(TABLES))
def test_deductions_make_the_margin_the_tier_by_tier_sum(name) -> None:
    rows = TABLES[name]
    table = MarginTable.of(rows)
    top = rows[-1][0]
    for notional in np.linspace(0.0, 3 * max(top, 1.0), 301):
        assert maintenance_margin(table, notional) == pytest.approx(
            _marginal(rows, notional), rel=1e-12, abs=1e-9
        )
    for lower, _ in rows[1:]:  # continuous at every tier boundary
        below, above = maintenance_margin(table, [lower * (1 - 1e-12), lower])
        assert above == pytest.approx(below, rel=1e-9)


def test_btc_mainnet_closed_form() -> None:
    table = MarginTable.of(PUBLISHED_TABLES["BTC"])
    # 40x below 150M (1.25 %), 20x above (2.5 %), deduction 150M × 1.25 % = 1.875M
    np.testing.assert_allclose(table.rates, [0.0125, 0.025])
    np.testing.assert_allclose(table.deductions, [0.0, 1.875e6])
    assert maintenance_margin(table, 200e6) == pytest.approx(3.125e6, rel=1e-15)
    assert initial_margin(table, 200e6) == pytest.approx(10e6, rel=1e-15)  # at 20x
    assert initial_margin(table, 1e6, leverage=5) == pytest.approx(2e5, rel=1e-15)


@pytest.mark.parametrize(("size", "equity"), [(2.0, 800.0), (-3.0, 900.0), (0.5, 100.0)])
def test_at_the_liquidation_price_equity_meets_maintenance(size, equity) -> None:
    table = MarginTable.of(PUBLISHED_TABLES["ETH"])
    price = 2_000.0
    liq = liquidation_price(table, price, size, equity)
    assert (liq < price) if size > 0 else (liq > price)
    equity_there = equity + size * (liq - price)
    assert equity_there == pytest.approx(
        float(maintenance_margin(table, abs(size) * liq)), rel=1e-12
    )


def test_tables_are_validated() -> None:
    with pytest.raises(ValueError, match="start at 0"):
        MarginTable.of([(10.0, 20.0)])
    with pytest.raises(ValueError, match="cannot allow more leverage"):
        MarginTable.of([(0.0, 10.0), (1e6, 20.0)])
    with pytest.raises(ValueError, match="max_leverage must be in"):
        MarginTable.of([(0.0, 0.5)])


def test_book_model_is_the_tiered_closed_form(chain_market) -> None:
    frame = positions_frame([("a", "ETH_USDC-PERPETUAL", 30_000.0)])  # 30,000 ETH: 61M USD
    positions = build_positions(frame, chain_market)
    params = venue_parameter_set("hyperliquid").to_model_params()
    result = margin(positions, "hyperliquid", params)
    notional = 30_000.0 * chain_market.spot("ETH")
    table = MarginTable.of(PUBLISHED_TABLES["ETH"])
    assert result.initial_margin[0] == pytest.approx(notional / 25.0, rel=1e-12)
    assert result.maintenance_margin[0] == pytest.approx(
        float(maintenance_margin(table, notional)), rel=1e-12
    )
    bigger = build_positions(positions_frame([("a", "ETH_USDC-PERPETUAL", 60_000.0)]), chain_market)
    big = margin(bigger, "hyperliquid", params)
    # past 100M the tier's 15x applies to the whole notional (initial margin at max leverage)
    assert big.initial_margin[0] == pytest.approx(2 * notional / 15.0, rel=1e-12)
