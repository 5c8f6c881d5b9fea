"""Coverage tests against published references, their size under simulation, and edge cases.

References
----------
[M] MathWorks, Risk Management Toolbox documentation, ``varbacktest`` examples on
    ``VaRBacktestData`` (EquityIndex, Normal95: N = 1043, x = 57, first failure on day 58,
    transitions N00 = 932, N10 = 53, N01 = 53, N11 = 4):
    pof LR 0.46147 p 0.49694 · bin z 0.68905 p 0.49079 · tl green, Probability 0.77913,
    TypeI 0.26396 · tuff LR 1.7354 p 0.18773 · cci LR 0.25866 p 0.61104 ·
    tbfi LR 88.491 p 0.0047475 (57 df) · tbf LR 88.952 p 0.0055565 (58 df).
[E] MathWorks, ``esbacktest/unconditionalT`` example: 1966 days, VaR level 0.975, returns
    t(3): Z2 = −0.38265, p-value 0.018566, critical value −0.42986 at test level 0.99.
[B] Basel Committee on Banking Supervision (1996), "Supervisory framework for the use of
    backtesting in conjunction with the internal models approach to market risk capital
    requirements", Table 2: 250 days at 99 %.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from backtesting.coverage import (
    STATISTICS,
    acerbi_szekely,
    binomial_test,
    christoffersen_conditional_coverage,
    christoffersen_independence,
    coverage_report,
    haas_tbf,
    haas_tbfi,
    kupiec_pof,
    kupiec_tuff,
    monte_carlo_pvalues,
    simulate_null_z,
    traffic_light,
)
from backtesting.procyclicality import max_increase, peak_to_trough, procyclicality_summary


def matlab_like_failures() -> np.ndarray:
    """A sequence with the published example's counts: 1043 days, 57 failures, the first on day
    58, and transitions N00 = 932, N01 = 53, N10 = 53, N11 = 4 (four runs of two failures)."""
    f = np.zeros(1043, bool)
    starts = 57 + 18 * np.arange(53)  # 53 runs start on days 58, 76, …; runs 0-3 last two days
    for k, s in enumerate(starts):
        f[s] = True
        if k < 4:
            f[s + 1] = True
    return f


def test_the_sequence_has_the_published_counts() -> None:
    f = matlab_like_failures()
    result = christoffersen_independence(f, 0.95)
    assert (f.size, f.sum(), np.argmax(f) + 1) == (1043, 57, 58)
    assert {k: result.details[k] for k in ("n00", "n10", "n01", "n11")} == {
        "n00": 932,
        "n10": 53,
        "n01": 53,
        "n11": 4,
    }


def test_frequency_and_duration_tests_match_matlab() -> None:
    f = matlab_like_failures()
    pof = kupiec_pof(f, 0.95, test_level=0.99)
    assert (pof.statistic, pof.pvalue) == pytest.approx((0.46147, 0.49694), abs=5e-6)
    assert not pof.reject and pof.df == 1
    binomial = binomial_test(f, 0.95)
    assert (binomial.statistic, binomial.pvalue) == pytest.approx((0.68905, 0.49079), abs=5e-6)
    tuff = kupiec_tuff(f, 0.95)
    assert (tuff.statistic, tuff.pvalue) == pytest.approx((1.7354, 0.18773), abs=5e-5)
    cci = christoffersen_independence(f, 0.95)
    assert (cci.statistic, cci.pvalue) == pytest.approx((0.25866, 0.61104), abs=5e-6)
    cc = christoffersen_conditional_coverage(f, 0.95)
    assert cc.statistic == pytest.approx(0.46147 + 0.25866, abs=1e-5) and cc.df == 2
    assert cc.pvalue == pytest.approx(stats.chi2.sf(0.46147 + 0.25866, 2), abs=1e-5)


def test_traffic_light_matches_matlab() -> None:
    light = traffic_light(matlab_like_failures(), 0.95)
    assert light.zone == "green" and light.increase == 0
    assert (light.probability, light.type_i) == pytest.approx((0.77913, 0.26396), abs=5e-6)
    # Probability and TypeI exceed 1 by exactly P(X = x) [M]
    assert light.probability + light.type_i - 1 == pytest.approx(stats.binom.pmf(57, 1043, 0.05))


def test_haas_degrees_of_freedom_and_mixing_match_matlab() -> None:
    """[M]'s TBFI/TBF depend on the whole sequence, which is not published; its statistics are.
    Our TBF is POF + TBFI with x + 1 df and TBFI has x df: the published p-values follow."""
    assert stats.chi2.sf(88.491, 57) == pytest.approx(0.0047475, abs=5e-7)
    assert stats.chi2.sf(88.952, 58) == pytest.approx(0.0055565, abs=1e-6)
    f = matlab_like_failures()
    tbfi, tbf, pof = haas_tbfi(f, 0.95), haas_tbf(f, 0.95), kupiec_pof(f, 0.95)
    assert (tbfi.df, tbf.df) == (57, 58)
    assert tbf.statistic == pytest.approx(pof.statistic + tbfi.statistic)
    assert tbfi.pvalue == pytest.approx(stats.chi2.sf(tbfi.statistic, 57))
    # with one failure TBFI is exactly TUFF
    one = np.zeros(400, bool)
    one[123] = True
    assert haas_tbfi(one, 0.99).statistic == pytest.approx(kupiec_tuff(one, 0.99).statistic)


def test_haas_tbfi_sums_the_tuff_ratio_of_each_gap() -> None:
    """Independent reference: LR_i = -2 log(p (1-p)^(n-1) / ((1/n)(1-1/n)^(n-1)))."""
    f = np.zeros(300, bool)
    f[[9, 10, 99, 250]] = True  # gaps 10, 1, 89, 151
    p = 0.01

    def lr(n: int) -> float:
        numerator = p * (1 - p) ** (n - 1)
        denominator = (1 / n) * (1 - 1 / n) ** (n - 1)
        return -2 * math.log(numerator / denominator)

    assert haas_tbfi(f, 0.99).statistic == pytest.approx(
        sum(lr(n) for n in (10, 1, 89, 151)), rel=1e-12
    )


@pytest.mark.parametrize(
    ("x", "zone", "cumulative", "type_i", "plus"),
    [
        (0, "green", 8.11, 100.0, 0.00),
        (1, "green", 28.58, 91.89, 0.00),
        (2, "green", 54.32, 71.42, 0.00),
        (3, "green", 75.81, 45.68, 0.00),
        (4, "green", 89.22, 24.19, 0.00),
        (5, "yellow", 95.88, 10.78, 0.40),
        (6, "yellow", 98.63, 4.12, 0.50),
        (7, "yellow", 99.60, 1.37, 0.65),
        (8, "yellow", 99.89, 0.40, 0.75),
        (9, "yellow", 99.97, 0.11, 0.85),
        (10, "red", 99.99, 0.03, 1.00),
    ],
)
def test_traffic_light_reproduces_basel_1996_table_2(x, zone, cumulative, type_i, plus) -> None:
    f = np.zeros(250, bool)
    f[:x] = True
    light = traffic_light(f, 0.99)
    assert light.zone == zone
    assert 100 * light.probability == pytest.approx(cumulative, abs=0.005)
    assert 100 * light.type_i == pytest.approx(type_i, abs=0.005)
    # Basel's plus factors were rounded by judgement; MATLAB's formula (no ad-hoc adjustment)
    # stays within 0.03 of them and is increasing
    assert light.increase == pytest.approx(plus, abs=0.03)


def test_es_null_distribution_matches_matlab_unconditional_t() -> None:
    """[E]: under t(3) returns, 1966 days at 97.5 %, P(Z2 <= -0.38265) = 0.018566 and the 1 %
    critical value is -0.42986; both are simulated, so each side carries Monte Carlo error
    (ours with 40,000 scenarios: 0.0007 on the probability, ~0.004 on the quantile)."""
    n, level = 1966, 0.975
    q, m = stats.t.ppf(0.025, 3), None
    m = -(3 + q * q) / 2 * stats.t.pdf(q, 3) / 0.025
    _, z2 = simulate_null_z(
        np.full(n, -q),
        np.full(n, -m),
        level,
        rng=np.random.default_rng(7),
        distribution="t",
        dof=3,
        scenarios=40_000,
    )
    assert np.mean(z2 <= -0.38265) == pytest.approx(0.018566, abs=0.004)
    assert np.quantile(z2, 0.01) == pytest.approx(-0.42986, abs=0.012)


def test_acerbi_szekely_under_and_over_estimated_es() -> None:
    """Simulated from the model: Z near 0 and not rejected; ES too small by a third: Z2 < 0,
    rejected."""
    rng = np.random.default_rng(11)
    n, level = 1000, 0.975
    z = stats.norm.ppf(0.025)
    var = np.full(n, -z)
    es = np.full(n, stats.norm.pdf(z) / 0.025)
    pnl = rng.standard_normal(n)
    good = acerbi_szekely(pnl, var, es, level, rng=rng, scenarios=4000)
    assert abs(good.z2.statistic) < 0.3 and not good.z2.reject and not good.z1.reject
    bad = acerbi_szekely(1.5 * pnl, var, es, level, rng=rng, scenarios=4000)
    assert bad.z2.statistic < -0.4 and bad.z2.reject
    assert bad.z2.details["critical_value"] < 0


def test_acerbi_szekely_errors_name_the_day() -> None:
    rng = np.random.default_rng(0)
    ones = np.ones(5)
    with pytest.raises(ValueError, match=r"pnl\[2\] is nan"):
        acerbi_szekely([0, 0, math.nan, 0, 0], ones, 2 * ones, 0.99, rng=rng)
    with pytest.raises(ValueError, match=r"es\[0\] = 1.0 is not above var\[0\]"):
        acerbi_szekely(np.zeros(5), ones, ones, 0.99, rng=rng)
    no_failure = acerbi_szekely(np.zeros(5), ones, 2 * ones, 0.99, rng=rng, scenarios=200)
    assert no_failure.z1.statistic == 0 and "Z1 = 0" in no_failure.z1.note
    assert no_failure.z2.statistic == 1.0


# --------------------------------------------------------------------------- size


def _rate_bound(rate: float, n: int) -> float:
    return 3.5 * math.sqrt(rate * (1 - rate) / n)


@pytest.mark.parametrize(("level", "n_days"), [(0.99, 250), (0.95, 500)])
def test_monte_carlo_null_has_nominal_size_for_every_test(level, n_days) -> None:
    """Correct models (i.i.d. Bernoulli(1-level) failures): each test rejects 5 % of them,
    within 3.5 Monte Carlo standard errors — the asymptotic χ² does not (TBFI: ~17 %)."""
    rng = np.random.default_rng(2024)
    repetitions = 1200
    rejections = dict.fromkeys(STATISTICS, 0)
    for _ in range(repetitions):
        f = rng.random(n_days) < 1 - level
        for name, pvalue in monte_carlo_pvalues(f, 1 - level, rng, simulations=99).items():
            rejections[name] += pvalue <= 0.05 + 1e-12
    for name, count in rejections.items():
        assert abs(count / repetitions - 0.05) <= _rate_bound(0.05, repetitions), (
            name,
            count / repetitions,
        )


def test_asymptotic_frequency_tests_have_their_exact_size_under_simulation() -> None:
    """For POF, the binomial test and the traffic light the finite-sample size is a binomial
    sum; the simulated rejection rate agrees within Monte Carlo error, and it is near 5 %."""
    n_days, level = 1000, 0.95
    p = 1 - level
    xs = np.arange(n_days + 1)
    pmf = stats.binom.pmf(xs, n_days, p)

    def rejects(test, x: int) -> bool:
        f = np.zeros(n_days, bool)
        f[:x] = True
        return test(f, level).reject

    support = xs[pmf > 1e-12]
    exact = {
        t.__name__: sum(pmf[x] for x in support if rejects(t, x))
        for t in (kupiec_pof, binomial_test)
    }
    exact["traffic_light"] = pmf[stats.binom.cdf(xs, n_days, p) > 0.95].sum()  # not green
    rng = np.random.default_rng(5)
    counts = rng.binomial(n_days, p, size=20_000)
    for name, size in exact.items():
        if name == "traffic_light":
            simulated = np.mean(stats.binom.cdf(counts, n_days, p) > 0.95)
        else:
            test = {"kupiec_pof": kupiec_pof, "binomial_test": binomial_test}[name]
            verdict = {x: rejects(test, x) for x in np.unique(counts)}
            simulated = np.mean([verdict[c] for c in counts])
        assert abs(simulated - size) <= _rate_bound(size, counts.size), name
        assert 0.03 <= size <= 0.06, name


def test_es_test_has_nominal_size() -> None:
    rng = np.random.default_rng(99)
    n, level, repetitions = 250, 0.975, 400
    z = stats.norm.ppf(0.025)
    var, es = np.full(n, -z), np.full(n, stats.norm.pdf(z) / 0.025)
    rejected = sum(
        acerbi_szekely(rng.standard_normal(n), var, es, level, rng=rng, scenarios=500).z2.reject
        for _ in range(repetitions)
    )
    assert abs(rejected / repetitions - 0.05) <= _rate_bound(0.05, repetitions)


# --------------------------------------------------------------------------- edge cases


def test_zero_failures() -> None:
    report = coverage_report(np.zeros(300, bool), 0.99)
    pof = report.tests["pof"]
    assert pof.statistic == pytest.approx(-2 * 300 * math.log(0.99))
    assert report.tests["cci"].statistic == 0 and not report.tests["cci"].reject
    # 300 < 1/p … no: 300 > 100, but a failure on day 301 would still pass: undefined, accepted
    tuff = report.tests["tuff"]
    assert (
        not tuff.defined
        and math.isnan(tuff.statistic)
        and not tuff.reject
        and "undefined" in tuff.note
    )
    assert report.traffic_light.zone == "green"
    long = coverage_report(np.zeros(1000, bool), 0.99)
    assert long.tests["tuff"].defined and long.tests["tuff"].reject  # day 1001 is too late
    assert long.tests["tuff"].details["first_failure"] == 1001
    assert long.tests["pof"].reject


def test_all_failures_and_one_observation() -> None:
    everything = coverage_report(np.ones(50, bool), 0.99)
    assert everything.tests["pof"].statistic == pytest.approx(-2 * 50 * math.log(0.01))
    assert everything.tests["cci"].statistic == 0
    assert everything.traffic_light.zone == "red" and everything.traffic_light.increase == 1
    single = coverage_report([True], 0.99)
    assert single.tests["cci"].statistic == 0 and "no transitions" in single.tests["cci"].note
    assert single.tests["tuff"].statistic == pytest.approx(-2 * math.log(0.01))
    assert all(math.isfinite(t.statistic) for t in single.tests.values())


def test_monte_carlo_report_is_always_defined_and_reproducible() -> None:
    f = np.zeros(300, bool)
    a = coverage_report(f, 0.99, null="monte-carlo", rng=np.random.default_rng(3), simulations=199)
    b = coverage_report(f, 0.99, null="monte-carlo", rng=np.random.default_rng(3), simulations=199)
    assert a == b
    assert all(t.defined and math.isfinite(t.pvalue) for t in a.tests.values())
    assert "censored at day 301" in a.tests["tuff"].note


@pytest.mark.parametrize(
    ("failures", "level", "message"),
    [
        ([], 0.99, "empty"),
        ([0, 1, math.nan], 0.99, r"failures\[2\] is nan"),
        ([0, 2], 0.99, r"failures\[1\] is 2.0"),
        ([[0, 1]], 0.99, "one-dimensional"),
        ([0, 1], 1.5, "level must be a confidence"),
    ],
)
def test_bad_input_is_a_clear_error(failures, level, message) -> None:
    with pytest.raises(ValueError, match=message):
        coverage_report(failures, level)
    with pytest.raises(ValueError, match="needs rng"):
        kupiec_pof([0, 1, 0], 0.99, null="monte-carlo")


# --------------------------------------------------------------------------- procyclicality


def test_peak_to_trough_both_ways() -> None:
    m = np.array([10.0, 4.0, 8.0, 2.0, 6.0])
    plain = peak_to_trough(m)
    assert (plain.ratio, plain.peak, plain.trough) == (5.0, 0, 3)
    first = peak_to_trough(m, trough_first=True)
    assert (first.ratio, first.trough, first.peak) == (3.0, 3, 4)  # 2 -> 6 beats 4 -> 8
    assert peak_to_trough([7.0]).ratio == 1.0


def test_max_increase_end_point_and_pathwise() -> None:
    m = np.array([100.0, 150.0, 90.0, 120.0, 130.0, 100.0])
    assert max_increase(m, 1).value == pytest.approx(0.5)
    two = max_increase(m, 2)
    assert two.value == pytest.approx(130 / 90 - 1) and (two.start, two.end) == (2, 4)
    # within two days from day 0 the margin reached +50 % (day 1), though it ended at -10 %
    path = max_increase(m, 2, pathwise=True)
    assert path.value == pytest.approx(0.5) and (path.start, path.end) == (0, 1)
    short = max_increase(m[:2], 5)
    assert not short.defined and "no 5-day window" in short.note
    summary = procyclicality_summary(m)
    assert set(summary.increases) == {1, 5, 30} and not summary.increases[30].defined
    with pytest.raises(ValueError, match=r"margins\[1\] = 0.0"):
        peak_to_trough([1.0, 0.0])


def test_pathwise_increase_is_brute_force_maximum() -> None:
    rng = np.random.default_rng(1)
    m = np.exp(np.cumsum(rng.normal(0, 0.05, 200))) * 100
    brute = max(m[t + k] / m[t] - 1 for t in range(200) for k in range(1, 6) if t + k < 200)
    assert max_increase(m, 5, pathwise=True).value == pytest.approx(brute)
    end_point = max(m[t + 5] / m[t] - 1 for t in range(195))
    assert max_increase(m, 5).value == pytest.approx(end_point)
