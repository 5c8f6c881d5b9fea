"""Aevo: the published 15-scenario grid and the scenario and floor margins against closed forms.
(Aevo's worked examples, the short strangle and the bull spread, sit in the part of its page we
could not read; they are not reproduced here.)"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from books import positions_frame

from margin_engine.book import build_positions
from margin_engine.models import margin
from margin_engine.params import ModelParams
from margin_engine.pricing import black76_price
from margin_engine.venues.aevo import IM_FACTOR, PUBLISHED, scenarios


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
