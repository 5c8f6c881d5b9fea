"""Add-ons: dYdX's open-interest IMF on the values of its own tests, the liquidity add-on on
the real option chain (a large position pays, a small one does not), concentration."""

from __future__ import annotations

import math

import numpy as np
import pytest

from margin_engine.addons import (
    AddOns,
    concentration_addon,
    liquidity_addon,
    open_interest_imf,
)
from margin_engine.impact import ImpactModel

QUOTE = 500_000  # the quote quantums of dYdX's examples


@pytest.mark.parametrize(
    ("base", "open_notional", "lower", "upper", "initial_margin"),
    [
        # dydxprotocol/v4-chain, x/perpetuals/types/liquidity_tier_test.go, TestGetInitialMargin…
        (0.2, 1.5e12, 0, 0, 100_000),  # no OIMF: the caps are zero
        (0.2, 1.5e12, 1e12, 2e12, 300_000),  # scaling 0.5: 20 % + 0.5 × 80 % = 60 %
        (0.2, 80e12, 25e12, 50e12, 500_000),  # above the upper cap: 100 %
        (0.2, 25e12, 25e12, 50e12, 100_000),  # at the lower cap: the base
        (0.2, 28_123_456_789_123, 25e12, 60e12, 135_697),  # ≈ 27.1392 %, rounded up
    ],
)
def test_dydx_open_interest_imf_examples(base, open_notional, lower, upper, initial_margin) -> None:
    imf = float(open_interest_imf(base, open_notional, lower, upper))
    assert math.ceil(imf * QUOTE - 1e-9) == initial_margin  # dYdX rounds the margin up


def test_dydx_adjusted_ppm_examples() -> None:
    """TestGetAdjustedInitialMarginPpm: caps 1,000,000 and 2,000,000 at a 20 % base."""
    cases = {0: 200_000, 1_500_000: 600_000, 1_234_567: 387_653, 1_000_000: 200_000}
    cases |= {2_000_000: 1_000_000, 2_500_000: 1_000_000}
    for open_notional, ppm in cases.items():
        imf = float(open_interest_imf(0.2, open_notional, 1_000_000, 2_000_000))
        assert math.floor(imf * 1e6 + 1e-6) == ppm  # ppm rounded down


def test_the_imf_rises_monotonically_between_the_caps() -> None:
    o = np.linspace(0, 3e6, 301)
    imf = open_interest_imf(0.1, o, 1e6, 2e6)
    assert np.all(np.diff(imf) >= 0) and imf[0] == 0.1 and imf[-1] == 1.0


def test_liquidity_addon_large_positions_pay_small_ones_do_not(chain_market) -> None:
    """On the real chain's ETH index: 1 ETH is far below 1 % of a 1bn USD day and pays
    nothing; 100,000 ETH (about 200M USD, a fifth of the day) pays its own impact on exit."""
    impact = ImpactModel(daily_vol=0.035, daily_volume=1e9, half_spread=0.0002)
    spot = chain_market.spot("ETH")
    small, large = 1.0 * spot, 100_000.0 * spot
    addons = AddOns(liquidity_threshold=0.01).per_position(np.array([small, large]), impact)
    assert addons["liquidity"][0] == 0.0
    expected = (0.7 * 0.035 * math.sqrt(large / 1e9) + 0.0002) * large
    assert addons["liquidity"][1] == pytest.approx(expected, rel=1e-12)
    np.testing.assert_array_equal(addons["concentration"], [0.0, 0.0])  # off by default


def test_concentration_addon_above_its_threshold() -> None:
    np.testing.assert_allclose(
        concentration_addon([5e6, 20e6, -30e6], 10e6, 0.02), [0.0, 0.2e6, 0.4e6]
    )
    assert liquidity_addon(0.0, ImpactModel(), 0.0) == 0.0
    with pytest.raises(ValueError, match="lower cap is above"):
        open_interest_imf(0.2, 1.0, 3.0, 2.0)
