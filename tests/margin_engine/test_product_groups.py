"""TIMS class-group offsets in PM: an offset never raises margin, a full offset is the netted
scan, and margin falls as the offset grows (random USDC-linear BTC and ETH books)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from books import positions_frame

from margin_engine.book import build_positions
from margin_engine.params import ModelParams, ProductGroup
from margin_engine.portfolio_margin import offset_worst, portfolio_margin, risk_arrays

LINEAR = [
    "BTC_USDC-PERPETUAL",
    "ETH_USDC-PERPETUAL",
    "BTC_USDC-29MAY26-60000-P",
    "BTC_USDC-29MAY26-70000-C",
    "BTC_USDC-26JUN26-80000-C",
    "ETH_USDC-26JUN26-2000-P",
    "ETH_USDC-29MAY26-2400-C",
    "ETH_USDC-25SEP26-1800-P",
]


@pytest.fixture(scope="module")
def linear_market(chain_market):
    # linear USDC options are not in the snapshot: one IV per underlying values them
    return dataclasses.replace(chain_market, default_iv={"BTC": 0.5, "ETH": 0.65})


def _book(seed: int, accounts: int = 60) -> list[tuple]:
    rng = np.random.default_rng(seed)
    rows = []
    for a in range(accounts):
        for name in rng.choice(LINEAR, size=int(rng.integers(2, 7)), replace=False):
            size = 3.0 if "PERPETUAL" in name else 8.0
            rows.append((f"a{a:03d}", str(name), float(rng.normal() * size)))
    return rows


def _with(offset: float | None, dampener: float | None = None) -> ModelParams:
    params = ModelParams()
    if dampener is not None:
        currencies = dict(params.currencies)
        currencies["USDC"] = dataclasses.replace(currencies["USDC"], extended_dampener=dampener)
        params = dataclasses.replace(params, currencies=currencies)
    if offset is None:
        return params
    group = ProductGroup(("BTC", "ETH"), offset)
    return dataclasses.replace(params, product_groups={"majors": group})


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_an_offset_never_raises_margin(linear_market, seed) -> None:
    positions = build_positions(positions_frame(_book(seed)), linear_market)
    apart = portfolio_margin(positions, _with(None)).components["worst_case"]
    previous = apart
    for offset in (0.0, 0.25, 0.5, 0.75, 1.0):
        worst = portfolio_margin(positions, _with(offset)).components["worst_case"]
        assert np.all(worst <= apart * (1 + 1e-12) + 1e-9)
        assert np.all(worst <= previous * (1 + 1e-12) + 1e-9)  # more offset, never more margin
        previous = worst
    assert np.any(previous < apart * (1 - 1e-3))  # and it does offset somewhere


@pytest.mark.parametrize("seed", [21, 22])
def test_a_full_offset_is_the_netted_scan(linear_market, seed) -> None:
    """At 100 % (dampener 0) the group's worst case is that of the summed P&L: computed here
    directly from the risk arrays, every position of an account in one vector."""
    positions = build_positions(positions_frame(_book(seed)), linear_market)
    params = _with(1.0, dampener=0.0)
    worst = portfolio_margin(positions, params).components["worst_case"]
    arrays = risk_arrays(positions, params)
    pnl = np.zeros((positions.n_accounts, arrays.shape[1]))
    np.add.at(pnl, positions.account, positions.quantity[:, None] * arrays[positions.instrument])
    netted = np.maximum(-pnl.min(axis=1), 0.0)
    _, account_of_row, currency = positions.layout
    assert set(currency) == {"USDC"}
    np.testing.assert_allclose(worst, netted[account_of_row], rtol=1e-10, atol=1e-9)


def test_offset_worst_closed_form() -> None:
    # two classes, two scenarios: class 1 loses 10 / gains 4, class 2 gains 6 / loses 3
    pnl = np.array([[[-10.0, 4.0], [6.0, -3.0]]])
    assert offset_worst(pnl, 0.0)[0] == pytest.approx(10.0)  # no gain counts
    assert offset_worst(pnl, 0.5)[0] == pytest.approx(7.0)  # 10 - 0.5 × 6
    assert offset_worst(pnl, 1.0)[0] == pytest.approx(4.0)  # the netted −4 and +1
