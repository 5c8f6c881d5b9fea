"""Coverage tests keep their size when MPOR windows overlap (issue 12, "Must show").

A *correct* h-day VaR is simulated: i.i.d. daily returns, the loss over the overlapping window
[t, t + h] of every day t, and the exact h-day quantile as the margin. Its breaches cluster
(one bad day breaches h windows), so the plain tests reject far above 5 % at h > 1; with
``mpor=h`` every test and the traffic light reject at no more than their nominal rate plus
three Monte Carlo standard errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from backtesting.coverage import (
    STATISTICS,
    MonteCarloNulls,
    coverage_report,
    traffic_light_size,
)

N, LEVEL, REPETITIONS = 1000, 0.99, 300


def _bound(rate: float, repetitions: int = REPETITIONS) -> float:
    return rate + 3 * math.sqrt(rate * (1 - rate) / repetitions)


def _correct_var_failures(rng: np.random.Generator, h: int, dist: str) -> np.ndarray:
    if dist == "normal":
        daily = rng.standard_normal(N + h)
        var = stats.norm.ppf(LEVEL) * math.sqrt(h)  # the h-day sum is N(0, h): exact
    else:
        daily = rng.standard_t(4, N + h)
        var = T4_QUANTILE[h]
    window = np.convolve(daily, np.ones(h), mode="valid")[:N]  # loss of a short position
    return window > var


# the h-day sum of t(4) returns has no closed-form quantile: 4 million draws pin it to well
# under a tenth of a basis point of probability
_quantile_rng = np.random.default_rng(20261124)
T4_QUANTILE = {
    h: float(np.quantile(_quantile_rng.standard_t(4, (4_000_000, h)).sum(axis=1), LEVEL))
    for h in (1, 2, 5)
}


@pytest.mark.slow
@pytest.mark.parametrize("dist", ["normal", "t4"])
@pytest.mark.parametrize("h", [1, 2, 5])
def test_every_test_and_the_zone_keep_their_size(h: int, dist: str) -> None:
    rng = np.random.default_rng(1000 * h + len(dist))
    # one null serves every repetition, so its own sampling error moves the size of all of
    # them together: 9,999 draws keep that well inside the bound's three standard errors
    nulls = MonteCarloNulls(1 - LEVEL, np.random.default_rng(7), simulations=9_999)
    rejected = dict.fromkeys(STATISTICS, 0)
    non_green = 0
    for _ in range(REPETITIONS):
        f = _correct_var_failures(rng, h, dist)
        report = coverage_report(f, LEVEL, mpor=h, null="monte-carlo", null_distribution=nulls)
        for name in report.rejected:
            rejected[name] += 1
        non_green += report.traffic_light.zone != "green"
        assert report.mpor == h
        assert report.procedure == ("iid" if h == 1 else "interleaved-bonferroni")
    rates = {k: v / REPETITIONS for k, v in rejected.items()}
    assert all(rate <= _bound(0.05) for rate in rates.values()), rates
    size = traffic_light_size(N, LEVEL, mpor=h)
    assert non_green / REPETITIONS <= _bound(size), (non_green, size)


@pytest.mark.slow
def test_ignoring_the_overlap_rejects_a_correct_model_far_too_often() -> None:
    """The defect this fixes: the i.i.d. procedure on 2-day windows (mpor left at 1)."""
    rng = np.random.default_rng(5)
    nulls = MonteCarloNulls(1 - LEVEL, np.random.default_rng(7), simulations=999)
    cci = 0
    for _ in range(200):
        f = _correct_var_failures(rng, 2, "normal")
        cci += (
            "cci" in coverage_report(f, LEVEL, null="monte-carlo", null_distribution=nulls).rejected
        )
    assert cci / 200 > 0.3


def test_one_day_mpor_is_the_plain_procedure_and_sub_series_are_listed() -> None:
    f = np.zeros(500, bool)
    f[[10, 11, 200, 201, 202, 400]] = True
    plain = coverage_report(f, LEVEL)
    assert coverage_report(f, LEVEL, mpor=1) == plain
    two = coverage_report(f, LEVEL, mpor=2)
    assert two.observations == 500 and two.failures == 6
    subseries = two.tests["pof"].details["subseries"]
    assert [s["failures"] for s in subseries] == [4, 2]  # 10, 200, 202, 400 even; 11, 201 odd
    # the p-value is the Bonferroni combination of the sub-series'
    assert two.tests["pof"].pvalue == pytest.approx(
        min(1.0, 2 * min(s["pvalue"] for s in subseries))
    )
    assert two.traffic_light.procedure == "interleaved-bonferroni"
    assert two.traffic_light.green_up_to == pytest.approx(1 - 0.05 / 2)
    with pytest.raises(ValueError, match="mpor"):
        coverage_report(f, LEVEL, mpor=0)


def test_traffic_light_size_matches_basel_at_one_day() -> None:
    # Basel (1996) table 2: 250 days at 99 %: green up to 4 breaches, P(X >= 5) = 10.78 %
    assert traffic_light_size(250, 0.99) == pytest.approx(0.1078, abs=5e-5)
