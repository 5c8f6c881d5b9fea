"""Paradex: the published minimum-delta example, the scenario table, and the book model
against closed forms."""

from __future__ import annotations

import numpy as np
import pytest
from books import positions_frame

from governance.parameters import venue_parameter_set
from margin_engine.book import build_positions
from margin_engine.models import margin
from margin_engine.venues.paradex import PUBLISHED, min_delta_requirement


def test_paradex_published_minimum_delta_example() -> None:
    """Paradex's example: long 1 BTC perpetual, short 5 BTC 70k calls of delta 0.3: net
    delta 1 − 1.5 = −0.5, gross 2.5, hedged (2.5 − 0.5) / 2 = 1.0; at 70,000 USD the
    requirement is (2 % × 0.5 + 1 % × 1.0) × 70,000 = 1,400 USD."""
    deltas = np.array([1.0] + [-0.3] * 5)
    net, gross = deltas.sum(), np.abs(deltas).sum()
    assert net == pytest.approx(-0.5) and gross == pytest.approx(2.5)
    assert float(min_delta_requirement(net, gross, 70_000.0, PUBLISHED)) == pytest.approx(1_400.0)


def test_the_published_scenario_table() -> None:
    table = PUBLISHED.scenarios
    assert len(table) == 24
    regular = [s for s in table if s[2] == 1.0]
    assert len(regular) == 16 and {v for _, v, _ in regular} == {0.40, -0.22}
    assert max(s for s, _, _ in regular) == pytest.approx(0.16)
    tails = {s: w for s, v, w in table if w < 1.0}
    assert tails == pytest.approx(
        {
            -0.66: 0.24,
            -0.33: 0.48,
            0.5: 0.32,
            1.0: 0.16,
            2.0: 0.08,
            3.0: 0.0533,
            4.0: 0.04,
            5.0: 0.032,
        }
    )


def test_a_long_perpetual_needs_its_worst_weighted_move(chain_market) -> None:
    """A long linear perpetual of q coins loses q·S·|m| at a move m: the weighted worst is the
    −16 % scenario (0.16 at weight 1 beats 0.66 × 0.24 and 0.33 × 0.48), above the minimum
    delta requirement (2 % of q·S); MMR is half."""
    positions = build_positions(positions_frame([("a", "ETH_USDC-PERPETUAL", 4.0)]), chain_market)
    result = margin(positions, "paradex-pm", venue_parameter_set("paradex").to_model_params())
    notional = 4.0 * chain_market.spot("ETH")
    assert result.components["scan"][0] == pytest.approx(0.16 * notional, rel=1e-12)
    assert result.components["min_delta"][0] == pytest.approx(0.02 * notional, rel=1e-12)
    assert result.initial_margin[0] == pytest.approx(0.16 * notional, rel=1e-12)
    assert result.maintenance_margin[0] == pytest.approx(0.08 * notional, rel=1e-12)


def test_a_delta_hedged_option_falls_back_to_its_gamma_and_vega(chain_market) -> None:
    """A short call hedged to delta zero with the perpetual: the MDR charges only the hedged
    delta (1 % of it), and the scenarios see the option's gamma and vega."""
    call = "BTC-26JUN26-70000-C"
    positions = build_positions(positions_frame([("h", call, -2.0)]), chain_market)
    unit_delta = positions.book.delta[0] + positions.book.value[0]  # Black delta of the call
    hedge = 2.0 * unit_delta
    both = build_positions(
        positions_frame([("h", call, -2.0), ("h", "BTC_USDC-PERPETUAL", hedge)]), chain_market
    )
    result = margin(both, "paradex-pm", venue_parameter_set("paradex").to_model_params())
    spot = chain_market.spot("BTC")
    assert result.components["min_delta"][0] == pytest.approx(0.01 * hedge * spot, rel=1e-9)
    assert result.components["scan"][0] > result.components["min_delta"][0]
