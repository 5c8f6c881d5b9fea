"""Sweep values, the knee of the frontier, and what a sweep point reports."""

from __future__ import annotations

import pytest

from backtesting.sweep import SweepPoint, knee, sweep_values
from vocabulary import Zone


def test_ranges_include_both_ends_without_float_drift() -> None:
    values = sweep_values("0.10:0.20:0.01")
    assert len(values) == 11 and values[0] == 0.10 and values[-1] == 0.20
    assert values[3] == 0.13  # not 0.13000000000000003
    assert sweep_values("0.1, 0.15,0.3") == (0.1, 0.15, 0.3)
    assert sweep_values("0.5:0.5:0.1") == (0.5,)


@pytest.mark.parametrize(
    "text",
    ["0.2:0.1:0.01", "0.1:0.2:0", "0.1:0.2", "a,b", "0.1:nan:0.01", "0.1,0.1", "0:1000:1"],
)
def test_bad_values_are_refused(text) -> None:
    with pytest.raises(ValueError, match="STEP|twice|more than"):
        sweep_values(text)


def _point(value: float, capital: float, breaches: int) -> SweepPoint:
    return SweepPoint(value, 1000, breaches, Zone.GREEN, 0.5, capital, capital * 1.5, None)


def test_the_knee_is_where_capital_stops_buying_coverage() -> None:
    # breaches fall fast up to 0.14, then barely: the knee is 0.14
    curve = [(0.10, 100, 40), (0.12, 120, 20), (0.14, 140, 8), (0.16, 160, 6), (0.18, 180, 5)]
    points = [_point(v, c, b) for v, c, b in curve]
    assert knee(points) == 0.14
    assert knee(points[::-1]) == 0.14  # order of the values does not matter
    assert knee(points[:2]) is None  # too few points
    assert knee([_point(v, 100, 3) for v in (0.1, 0.2, 0.3)]) is None  # a flat curve


def test_a_point_is_json_safe() -> None:
    empty = SweepPoint(0.1, 0, 0, Zone.NOT_TESTABLE, None, float("nan"), float("nan"), None)
    assert empty.as_dict()["breach_rate"] is None and empty.as_dict()["zone"] == "not testable"
