"""SPAN-style rules of issue 12: CME's short option minimum (Clearing House Advisory 99-65) and
scan risk bounded by a defined-risk spread's maximum loss; the recommended extreme-move multiple
derived the way the engine charges the extreme scenario."""

from __future__ import annotations

import math

import numpy as np
import pytest
from books import positions_frame
from hypothesis import given, settings
from hypothesis import strategies as st

from calibration.recommend import extreme_multiple
from margin_engine.book import build_positions
from margin_engine.market import MarketSnapshot
from margin_engine.params import ModelParams, SpanParams
from margin_engine.span import span_margin

SPOT = 2000.0
IV = 0.7


def _market(names: list[str]) -> MarketSnapshot:
    # one flat implied vol for every option: each value is then the expectation of its payoff
    # under one lognormal law, the premise of "a spread never loses more than its maximum"
    return MarketSnapshot.from_json(
        {
            "as_of": "2024-01-01T08:00:00Z",
            "index": {"ETH": SPOT},
            "iv": {n: IV for n in names if n.count("-") == 3},
        }
    )


def _span(rows, params: ModelParams | None = None) -> dict:
    names = [r[1] for r in rows]
    result = span_margin(build_positions(positions_frame(rows), _market(names)), params)
    return {(r["account"], r["currency"]): r for r in result.records()}


def _option(strike: float, kind: str) -> str:
    return f"ETH_USDC-29MAR24-{int(strike)}-{kind}"


def test_an_iron_condor_pays_one_minimum_per_unit_not_two() -> None:
    """Short 1 put and 1 call (wings long): max(short calls, short puts) = 1 unit, × rate ×
    price — a per-leg count would charge two."""
    rate = 0.15  # high enough that the minimum binds over the scan
    params = ModelParams(span={"ETH": SpanParams(price_scan_range=0.01, short_option_minimum=rate)})
    condor = [
        ("condor", _option(1600, "P"), 1.0),
        ("condor", _option(1800, "P"), -1.0),
        ("condor", _option(2200, "C"), -1.0),
        ("condor", _option(2400, "C"), 1.0),
    ]
    strangle = [("strangle", _option(1800, "P"), -3.0), ("strangle", _option(2200, "C"), -2.0)]
    netted = [("netted", _option(2200, "C"), -2.0), ("netted", _option(2200, "C"), 2.0)]
    result = _span(condor + strangle + netted, params)
    som = {k[0]: v["components"]["short_option_minimum"] for k, v in result.items()}
    assert som["condor"] == pytest.approx(rate * SPOT * 1)
    assert som["strangle"] == pytest.approx(rate * SPOT * 3)  # 3 puts beat 2 calls
    assert som["netted"] == 0  # a long and a short of one option cancel
    assert result[("condor", "USDC")]["initial_margin"] == pytest.approx(rate * SPOT)


STRIKES = [1400, 1600, 1800, 1900, 2000, 2100, 2200, 2400, 2600]


@st.composite
def defined_risk_spreads(draw):
    """Vertical spreads, butterflies and condors (long or short), in whole units."""
    shape = draw(st.sampled_from(["vertical", "butterfly", "condor"]))
    kind = draw(st.sampled_from(["C", "P"]))
    side = draw(st.sampled_from([1.0, -1.0]))
    units = draw(st.integers(1, 5))
    k = sorted(draw(st.lists(st.sampled_from(STRIKES), min_size=4, max_size=4, unique=True)))
    if shape == "vertical":
        legs = [(k[0], kind, 1.0), (k[1], kind, -1.0)]
    elif shape == "butterfly":
        low, mid = k[0], k[1]
        high = mid + (mid - low)
        legs = [(low, kind, 1.0), (mid, kind, -2.0), (high, kind, 1.0)]
    else:
        legs = [(k[0], "P", 1.0), (k[1], "P", -1.0), (k[2], "C", -1.0), (k[3], "C", 1.0)]
    return [(strike, c, side * units * q) for strike, c, q in legs]


def _payoff(legs, terminal: np.ndarray) -> np.ndarray:
    total = np.zeros_like(terminal)
    for strike, kind, q in legs:
        total += q * (
            np.maximum(terminal - strike, 0) if kind == "C" else np.maximum(strike - terminal, 0)
        )
    return total


@settings(max_examples=60, deadline=None)
@given(legs=defined_risk_spreads(), scan=st.floats(0.05, 0.6), extreme=st.floats(1.0, 5.0))
def test_scan_risk_never_exceeds_a_defined_risk_spreads_maximum_loss(legs, scan, extreme) -> None:
    rows = [("x", _option(strike, kind), q) for strike, kind, q in legs]
    params = ModelParams(
        span={
            "ETH": SpanParams(
                price_scan_range=scan,
                vol_scan_range=0.5,
                extreme_move_multiple=extreme,
                extreme_covered_fraction=1.0,  # the whole extreme loss counts: the hardest case
            )
        }
    )
    result = _span(rows, params)[("x", "USDC")]
    names = [r[1] for r in rows]
    positions = build_positions(positions_frame(rows), _market(names))
    value = float(
        sum(
            q * positions.book.value[i]
            for i, q in zip(positions.instrument, positions.quantity, strict=True)
        )
    )
    # the payoff is piecewise linear with kinks at the strikes: its minimum is at a strike or
    # at the ends (0 and far above)
    grid = np.array([0.0, *STRIKES, 3000.0, 10 * SPOT])
    max_loss = value - float(_payoff(legs, grid).min())
    assert result["components"]["scan_risk"] <= max_loss * (1 + 1e-9) + 1e-9


def test_recommended_extreme_multiple_charges_the_extreme_move() -> None:
    """With k = M / (f R) a linear long position's SPAN margin is exactly the extreme move M
    (the 99.9 % move) where M exceeds the range; the old derivation k = M / R left SPAN at the
    range — the recommended value had no effect."""
    price_range, covered, move = 0.12, 0.35, 0.21
    k, steps = extreme_multiple(move, price_range, covered)
    assert k == pytest.approx(move / (covered * price_range)) and "covered fraction" in steps[0]

    def margin(multiple: float) -> float:
        params = ModelParams(
            span={
                "ETH": SpanParams(
                    price_scan_range=price_range,
                    extreme_move_multiple=multiple,
                    extreme_covered_fraction=covered,
                )
            }
        )
        rows = [("a", "ETH_USDC-PERPETUAL", 10.0)]
        return _span(rows, params)[("a", "USDC")]["initial_margin"]

    assert margin(k) == pytest.approx(10 * SPOT * move, rel=1e-12)
    old = move / price_range
    assert margin(old) == pytest.approx(10 * SPOT * price_range, rel=1e-12)  # no effect
    # clipped to the schema's [1, 10] and said so
    big, steps = extreme_multiple(0.9, 0.05, 0.35)
    assert big == 10.0 and any("clipped" in s for s in steps)
    assert math.isnan(extreme_multiple(0.2, 0.0, 0.35)[0])


def test_scenario_grids_never_value_at_a_zero_price() -> None:
    """A calibrated range can reach its bound of 1.0 (SOL, November 2022): the down moves stop
    at -99 % and every margin stays finite, for PM and SPAN alike."""
    from margin_engine.params import PortfolioMarginParams
    from margin_engine.portfolio_margin import portfolio_margin

    rows = [("a", _option(1800, "P"), -1.0), ("a", "ETH-PERPETUAL", 2000.0)]
    market = _market([r[1] for r in rows])
    positions = build_positions(positions_frame(rows), market)
    wide = ModelParams(
        pm={"ETH": PortfolioMarginParams(price_range=1.0)},
        span={"ETH": SpanParams(price_scan_range=1.0, extreme_move_multiple=3.0)},
    )
    for model in (portfolio_margin, span_margin):
        with np.errstate(all="raise"):
            result = model(positions, wide)
        assert np.isfinite(result.initial_margin).all() and (result.initial_margin > 0).all()
