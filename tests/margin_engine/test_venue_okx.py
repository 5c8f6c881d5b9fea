"""OKX: the published MR7 scaling example, and the MR1/MR6/MR4 book model against closed forms."""

from __future__ import annotations

import numpy as np
import pytest
from books import positions_frame

from governance.parameters import venue_parameter_set
from margin_engine.book import build_positions
from margin_engine.models import margin
from margin_engine.venues.okx import (
    IM_FACTOR,
    PUBLISHED,
    TIERS_2021,
    risk_unit_mmr,
    scaled_minimum_charge,
)


def test_okx_published_scaling_example() -> None:
    """OKX's scaling-factor notice: a BTC-USD risk unit with MR = 40,000 USD and a raw MR7
    of 30,000 USD. Only the raw margin above the first tier (10,000) is scaled, by 2:
    MR7_adj = 10,000 + 20,000 × 2 = 50,000, and the unit's MMR is max(40,000, 50,000)."""
    adjusted = float(scaled_minimum_charge(30_000.0, TIERS_2021))
    assert adjusted == pytest.approx(50_000.0, rel=1e-15)
    assert risk_unit_mmr(40_000.0, 0.0, 0.0, adjusted) == pytest.approx(50_000.0)
    # across three tiers: 10,000 + 60,000 × 2 + 30,000 × 4
    assert float(scaled_minimum_charge(100_000.0, TIERS_2021)) == pytest.approx(250_000.0)


def test_scaling_is_continuous_and_never_below_the_raw_charge() -> None:
    raw = np.linspace(0.0, 6e6, 6001)
    for tiers in (TIERS_2021, PUBLISHED["BTC"].mr7_tiers):
        scaled = scaled_minimum_charge(raw, tiers)
        assert np.all(scaled >= raw - 1e-9)
        assert np.all(np.diff(scaled) > 0)
        for low, _ in tiers[1:]:  # no jump at a tier boundary
            left, right = scaled_minimum_charge(np.array([low - 1e-6, low]), tiers)
            assert right - left < 1e-3


def test_a_linear_perpetual_needs_the_extreme_move(chain_market) -> None:
    """A long USDC-linear perpetual loses q·F·m at a move m: MR1 at −12 %, MR6 at −24 %, no
    basis (a perpetual has no expiry), so MMR = 0.24·q·F and IMR = 1.3 × MMR."""
    positions = build_positions(positions_frame([("a", "BTC_USDC-PERPETUAL", 2.0)]), chain_market)
    result = margin(positions, "okx-pm", venue_parameter_set("okx").to_model_params())
    forward = positions.book.forward[0]
    assert result.components["mr1"][0] == pytest.approx(0.12 * 2.0 * forward, rel=1e-12)
    assert result.components["mr6"][0] == pytest.approx(0.24 * 2.0 * forward, rel=1e-12)
    assert result.maintenance_margin[0] == pytest.approx(0.24 * 2.0 * forward, rel=1e-12)
    assert result.initial_margin[0] == pytest.approx(IM_FACTOR * 0.24 * 2.0 * forward)


def test_a_long_option_never_needs_more_than_its_value(chain_market) -> None:
    positions = build_positions(positions_frame([("a", "BTC-26JUN26-70000-C", 3.0)]), chain_market)
    result = margin(positions, "okx-pm", venue_parameter_set("okx").to_model_params())
    value = result.equity[0]
    assert 0 < result.components["mr1"][0] <= value
    assert 0 < result.components["mr6"][0] <= value
