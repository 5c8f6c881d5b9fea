"""Coverage tests of a margin (VaR) model's failures, with MATLAB ``varbacktest`` conventions,
and the Acerbi–Szekely expected-shortfall tests.

Conventions
-----------
* ``failures`` is a boolean array, one entry per day: ``True`` where the loss exceeded the
  margin (a *strict* ``loss > margin``). ``level`` is the model's confidence (0.99), so a
  correct model fails with probability :math:`p = 1 - \\text{level}`.
* :math:`N` observations, :math:`x` failures. Likelihood ratios use :math:`0 \\log 0 = 0`.
* Each test returns a frozen :class:`TestResult` with ``statistic``, ``pvalue``, ``df`` and
  ``reject`` (at ``test_level``, default 0.95: reject when the p-value is at most
  :math:`1 - \\text{test\\_level}`).

Edge cases (documented results, never a crash or a silent NaN)
--------------------------------------------------------------
* No observations, a NaN or a value other than 0/1 in ``failures``, or ``level`` outside
  (0, 1): :class:`ValueError` naming the problem (and the first bad index).
* Zero failures: POF is finite, :math:`-2N\\log(\\text{level})`; CCI is 0; TUFF, TBFI and TBF
  follow MATLAB — if even a failure on day N+1 would be rejected the statistic for n = N+1 is
  reported, otherwise the statistic is *undefined*: ``defined=False``, ``statistic`` and
  ``pvalue`` are NaN, ``reject=False`` and ``note`` says why.
* All failures: POF is finite, :math:`-2N\\log p`; CCI is 0 (no transitions to distinguish).
* One observation: CCI has no transitions and is 0 with a note; the others are defined.

Two nulls
---------
``null="asymptotic"`` (the default) gives MATLAB's χ² / normal p-values and reproduces its
published examples. Those approximations are poor for the duration and independence tests on a
few years of daily data (at 5 % nominal, TBFI rejects 17 % of correct models with N = 1,000,
p = 0.05), so ``null="monte-carlo"`` computes finite-sample p-values by simulating the null of
i.i.d. Bernoulli(p) failures with Dufour's tie-breaking (see :func:`monte_carlo_pvalues`):
every test then has its nominal size. Without a failure, durations are censored at N + 1.
The backtest engine uses the Monte Carlo null, seeded, and records the seed.

Overlapping windows (``mpor`` > 1)
---------------------------------
With a margin period of risk of h days, the breach of day t is judged on the loss over
[t, t + h]: the windows of consecutive days overlap, so even a correct model's breaches cluster
and every test above (and the traffic light) rejects far above its nominal rate. With
``mpor=h`` each test is run on the h *interleaved* sub-series ``failures[j::h]`` (j = 0 … h−1),
whose windows do not overlap — under a correct model each is an i.i.d. Bernoulli(p) sequence,
whatever the return distribution — at level α/h, and rejects when any sub-series does
(Bonferroni: size at most α). The reported p-value is ``min(1, h · min_j p_j)``, the statistic
is the full series' (descriptive), and ``details`` lists every sub-series. The traffic light
does the same: green while every sub-series' :math:`P(X_j \\le x_j)` is at most
:math:`1 - 0.05/h`, red once one exceeds :math:`1 - 0.0001/h`. At h = 1 all of this is the
plain i.i.d. procedure.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
from scipy import special, stats
from scipy.special import xlogy

from backtesting._typing import ArrayLike
from vocabulary import Zone

GREEN_UP_TO = 0.95  # Basel (1996): green while P(X <= x) <= 0.95,
YELLOW_UP_TO = 0.9999  # yellow up to 0.9999, red above
BASEL_BASELINE = 3.0  # the baseline multiplier the yellow-zone increase is relative to


@dataclass(frozen=True)
class TestResult:
    """One test's outcome. ``df`` is None for the normal-approximation binomial test."""

    __test__ = False  # not a pytest class

    name: str
    statistic: float
    pvalue: float
    df: int | None
    reject: bool
    test_level: float
    defined: bool = True
    note: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict:
        """The result as JSON-safe values (non-finite numbers as None)."""

        def finite(v: float) -> float | None:
            return None if v is None or not math.isfinite(v) else float(v)

        return {
            "name": self.name,
            "statistic": finite(self.statistic),
            "pvalue": finite(self.pvalue),
            "df": self.df,
            "reject": self.reject,
            "test_level": self.test_level,
            "defined": self.defined,
            "note": self.note,
            "details": {
                k: finite(v) if isinstance(v, float) else v for k, v in self.details.items()
            },
        }


@dataclass(frozen=True)
class TrafficLight:
    """Basel traffic light: ``probability`` = P(X ≤ x), ``type_i`` = P(X ≥ x) under the model."""

    zone: Zone
    probability: float
    type_i: float
    increase: float
    failures: int
    observations: int
    level: float
    mpor: int = 1
    procedure: str = "binomial"
    green_up_to: float = GREEN_UP_TO
    yellow_up_to: float = YELLOW_UP_TO
    subseries: tuple[dict, ...] = ()

    def as_dict(self) -> dict:
        """The traffic light as JSON-safe values."""
        return {
            "zone": self.zone,
            "probability": self.probability,
            "type_i": self.type_i,
            "increase": self.increase,
            "failures": self.failures,
            "observations": self.observations,
            "level": self.level,
            "mpor": self.mpor,
            "procedure": self.procedure,
            "green_up_to": self.green_up_to,
            "yellow_up_to": self.yellow_up_to,
            "subseries": [dict(x) for x in self.subseries],
        }


# --------------------------------------------------------------------------- inputs


def _as_failures(failures: ArrayLike) -> np.ndarray:
    array = np.asarray(failures)
    if array.ndim != 1:
        raise ValueError(f"failures must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        raise ValueError("failures is empty: a backtest needs at least one observation")
    if array.dtype == bool:
        return array
    values = array.astype(float)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise ValueError(
            f"failures[{bad[0]}] is {values[bad[0]]}: mark each day 0/1 (breach or not)"
        )
    odd = np.flatnonzero((values != 0) & (values != 1))
    if odd.size:
        raise ValueError(f"failures[{odd[0]}] is {values[odd[0]]}: failures must be boolean or 0/1")
    return values.astype(bool)


def _probability(level: float) -> float:
    if not (isinstance(level, int | float) and 0 < level < 1):
        raise ValueError(f"level must be a confidence in (0, 1), e.g. 0.99; got {level!r}")
    return 1.0 - float(level)


def _rejects(pvalue: float, test_level: float) -> bool:
    """Reject at p ≤ 1 − test_level: with Monte Carlo p-values (1 + G)/(B + 1) the test then
    has exactly its nominal size (the tolerance absorbs 1 − 0.95 ≠ 0.05 in binary).
    """
    return pvalue <= (1.0 - test_level) + 1e-12


def _test_level(test_level: float) -> float:
    if not (0 < test_level < 1):
        raise ValueError(f"test_level must be in (0, 1), e.g. 0.95; got {test_level!r}")
    return float(test_level)


# --------------------------------------------------------------------------- statistics
#
# One vectorised implementation serves the observed sequence (one row) and the Monte Carlo
# null (B rows), so that ties between them are exact.

Null = Literal["asymptotic", "monte-carlo"]
STATISTICS = ("pof", "tuff", "binomial", "cci", "cc", "tbfi", "tbf")


def _tuff_of(n: ArrayLike, p: float) -> np.ndarray:
    r"""TUFF ratio of durations ``n`` (≥ 1): :math:`-2(\log p + (n-1)\log(1-p) + n\log n -
    (n-1)\log(n-1))`.
    """
    n = np.asarray(n, dtype=float)
    return -2.0 * (math.log(p) + (n - 1) * math.log(1 - p) + xlogy(n, n) - xlogy(n - 1, n - 1))


def _statistics(rows: np.ndarray, p: float) -> dict[str, np.ndarray]:
    """Every test statistic of each row of ``rows`` (B × N booleans). Durations of a row without
    failure are censored at N + 1 (what MATLAB reports when that already rejects).
    """
    b, n = rows.shape
    x = rows.sum(axis=1).astype(float)
    observed = x / n
    pof = -2.0 * (
        xlogy(n - x, 1 - p) + xlogy(x, p) - xlogy(n - x, 1 - observed) - xlogy(x, observed)
    )
    binomial = (x - n * p) / math.sqrt(n * p * (1 - p))
    prev, nxt = rows[:, :-1], rows[:, 1:]
    n01 = (~prev & nxt).sum(axis=1).astype(float)
    n10 = (prev & ~nxt).sum(axis=1).astype(float)
    n11 = (prev & nxt).sum(axis=1).astype(float)
    n00 = (n - 1) - n01 - n10 - n11
    with np.errstate(invalid="ignore", divide="ignore"):
        total = np.maximum(n - 1, 1)
        pi = (n01 + n11) / total
        pi01 = np.where(n00 + n01 > 0, n01 / np.maximum(n00 + n01, 1), 0.0)
        pi11 = np.where(n10 + n11 > 0, n11 / np.maximum(n10 + n11, 1), 0.0)
    cci = -2.0 * (
        xlogy(n00 + n10, 1 - pi)
        + xlogy(n01 + n11, pi)
        - xlogy(n00, 1 - pi01)
        - xlogy(n01, pi01)
        - xlogy(n10, 1 - pi11)
        - xlogy(n11, pi11)
    )
    cci = np.maximum(cci, 0.0) if n > 1 else np.zeros(b)
    any_failure = x > 0
    first = np.where(any_failure, rows.argmax(axis=1) + 1, n + 1)
    tuff = _tuff_of(first, p)
    row, col = np.nonzero(rows)
    tbfi: np.ndarray = np.zeros(b)
    if row.size:
        position = col + 1
        starts = np.r_[True, row[1:] != row[:-1]]
        previous = np.where(starts, 0, np.r_[0, position[:-1]])
        tbfi = np.bincount(row, weights=_tuff_of(position - previous, p), minlength=b)
    tbfi = np.where(any_failure, tbfi, _tuff_of(np.full(b, n + 1), p))
    return {
        "pof": pof,
        "tuff": tuff,
        "binomial": binomial,
        "cci": cci,
        "cc": pof + cci,
        "tbfi": tbfi,
        "tbf": pof + tbfi,
    }


def _df(name: str, failures: int) -> int | None:
    return {
        "pof": 1,
        "tuff": 1,
        "binomial": None,
        "cci": 1,
        "cc": 2,
        "tbfi": max(failures, 1),
        "tbf": failures + 1,
    }[name]


def _asymptotic_pvalue(name: str, statistic: float, failures: int) -> float:
    # scipy.special's survival functions: the same values as scipy.stats' (which call them)
    # without the per-call argument checks that cost tens of microseconds, called thousands
    # of times for the Monte Carlo nulls of every series
    if name == "binomial":
        return float(2 * special.ndtr(-abs(statistic)))
    return float(special.chdtrc(_df(name, failures), statistic))


class MonteCarloNull:
    """The statistics of ``simulations`` sequences of N i.i.d. Bernoulli(p) failures — a
    correct model's — against which observed sequences of the same length are ranked.

    Simulating once per (N, p) lets a backtest test many portfolios on one null. P-values use
    Dufour's (2006) randomised tie-breaking, so that a test at level α with α(B + 1) an integer
    has size exactly α — the Monte Carlo tests Christoffersen and Pelletier (2004) recommend
    because the χ² approximations of duration tests are poor on a few years of data. Larger
    statistics are more extreme (|z| for the binomial test).

    .. math:: \\hat p = \\frac{1 + \\#\\{j: T_j > T_0\\} + \\#\\{j: T_j = T_0,\\ U_j \\ge U_0\\}}{B + 1}
    """

    def __init__(
        self, n: int, p: float, rng: np.random.Generator, simulations: int = 9_999
    ) -> None:
        if simulations < 99:
            raise ValueError(f"simulations must be at least 99, got {simulations}")
        self.n, self.p, self.simulations = n, p, simulations
        block = max(1, min(simulations, 4_000_000 // max(n, 1)))
        parts: list[dict[str, np.ndarray]] = []
        done = 0
        while done < simulations:
            size = min(block, simulations - done)
            parts.append(_statistics(rng.random((size, n)) < p, p))
            done += size
        self.statistics = {
            name: np.abs(np.concatenate([part[name] for part in parts]))
            if name == "binomial"
            else np.concatenate([part[name] for part in parts])
            for name in STATISTICS
        }
        self.uniforms = rng.random((len(STATISTICS), simulations))
        # the observed sequence's tie-breaking draw depends on the sequence itself, so that the
        # same failures always get the same p-values (two sets with equal breaches agree)
        self._tie_seed = int(rng.integers(2**62))

    def pvalues(self, f: np.ndarray) -> dict[str, float]:
        """Monte Carlo p-value of every statistic of the failure series ``f``."""
        if f.size != self.n:
            raise ValueError(f"this null is for {self.n} observations, got {f.size}")
        observed = _statistics(f[None, :], self.p)
        digest = int.from_bytes(hashlib.sha256(np.packbits(f).tobytes()).digest()[:8], "little")
        u0 = np.random.default_rng([self._tie_seed, digest, f.size]).random(len(STATISTICS))
        out = {}
        for k, name in enumerate(STATISTICS):
            t0 = abs(observed[name][0]) if name == "binomial" else observed[name][0]
            t = self.statistics[name]
            tie = np.abs(t - t0) <= 1e-9 * max(1.0, abs(t0))
            greater = int(np.sum((t > t0) & ~tie) + np.sum(tie & (self.uniforms[k] >= u0[k])))
            out[name] = (1 + greater) / (self.simulations + 1)
        return out


def monte_carlo_pvalues(
    f: np.ndarray, p: float, rng: np.random.Generator, simulations: int = 9_999
) -> dict[str, float]:
    """Finite-sample p-values of every statistic of ``f`` (see :class:`MonteCarloNull`)."""
    return MonteCarloNull(f.size, p, rng, simulations).pvalues(f)


def _run(
    name: str,
    failures: ArrayLike,
    level: float,
    test_level: float,
    null: Null,
    rng: np.random.Generator | None,
    simulations: int,
) -> TestResult:
    f, p, test_level = _as_failures(failures), _probability(level), _test_level(test_level)
    statistic = float(_statistics(f[None, :], p)[name][0])
    x, n = int(f.sum()), f.size
    details: dict = {"observations": n, "failures": x}
    if name in ("tuff", "tbfi") and x:
        gaps = np.diff(np.r_[0, np.flatnonzero(f) + 1])
        details["first_failure"] = int(gaps[0])
        if name == "tbfi":
            q = np.quantile(gaps, [0, 0.25, 0.5, 0.75, 1.0])
            details.update(
                tbf_min=float(q[0]),
                tbf_q1=float(q[1]),
                tbf_median=float(q[2]),
                tbf_q3=float(q[3]),
                tbf_max=float(q[4]),
            )
    asymptotic = _asymptotic_pvalue(name, statistic, x)
    note = "one observation: no transitions, nothing to test" if name == "cci" and n == 1 else ""
    if null == "monte-carlo":
        if rng is None:
            raise ValueError("null='monte-carlo' needs rng (a numpy Generator)")
        result = TestResult(
            name, statistic, asymptotic, _df(name, x), False, test_level, note=note, details=details
        )
        return _monte_carlo(
            result, f, statistic, monte_carlo_pvalues(f, p, rng, simulations)[name], simulations
        )
    if null != "asymptotic":
        raise ValueError(f"null must be 'asymptotic' or 'monte-carlo', got {null!r}")
    if name in ("tuff", "tbfi", "tbf") and not x:
        return _no_failure(name, f, level, test_level, statistic, asymptotic, details)
    return TestResult(
        name,
        statistic,
        asymptotic,
        _df(name, x),
        _rejects(asymptotic, test_level),
        test_level,
        note=note,
        details=details,
    )


def _monte_carlo(
    result: TestResult, f: np.ndarray, statistic: float, pvalue: float, simulations: int
) -> TestResult:
    """``result`` re-decided on a Monte Carlo p-value; ``statistic`` is the always-defined one of
    :func:`_statistics` (a duration without failure censored at N + 1).
    """
    x = int(f.sum())
    note = result.note
    if result.name in ("tuff", "tbfi", "tbf") and not x:
        note = f"no failure: the duration is censored at day {f.size + 1}"
    return replace(
        result,
        statistic=statistic,
        pvalue=pvalue,
        reject=_rejects(pvalue, result.test_level),
        defined=True,
        note=note,
        details={
            **result.details,
            "asymptotic_pvalue": _asymptotic_pvalue(result.name, statistic, x),
            "null": "monte-carlo",
            "simulations": simulations,
        },
    )


def _no_failure(
    name: str,
    f: np.ndarray,
    level: float,
    test_level: float,
    statistic: float,
    pvalue: float,
    details: dict[str, Any],
) -> TestResult:
    """MATLAB's rule without a failure: report n = N + 1 only if that already rejects (and for
    TBF, accept only when POF accepts).
    """
    n, p = f.size, 1.0 - level
    if name == "tbf":
        inner = _no_failure(
            "tbfi",
            f,
            level,
            test_level,
            float(_tuff_of(n + 1, p)),
            float(stats.chi2.sf(_tuff_of(n + 1, p), 1)),
            details,
        )
        pof = _run("pof", f, level, test_level, "asymptotic", None, 0)
        if not inner.defined:
            return TestResult(
                "tbf",
                math.nan,
                math.nan,
                1,
                pof.reject,
                test_level,
                defined=False,
                note="no failure: TBFI undefined; the result follows POF "
                f"({'reject' if pof.reject else 'accept'})",
                details=details,
            )
        return TestResult(
            "tbf",
            statistic,
            pvalue,
            1,
            _rejects(pvalue, test_level),
            test_level,
            note=inner.note,
            details=details,
        )
    if n > 1 / p and _rejects(pvalue, test_level):
        return TestResult(
            name,
            statistic,
            pvalue,
            1,
            True,
            test_level,
            note=f"no failure in {n} days: even a failure on day {n + 1} would be too late",
            details={**details, "first_failure": n + 1},
        )
    return TestResult(
        name,
        math.nan,
        math.nan,
        1,
        False,
        test_level,
        defined=False,
        note=f"no failure in {n} days: undefined, accepted (a later failure could go either way)",
        details=details,
    )


# --------------------------------------------------------------------------- the tests

_NULL_DOC = """
    Parameters
    ----------
    failures : array of bool, shape (N,)
    level : float
        The model's confidence, e.g. 0.99.
    test_level : float
        Reject when the p-value is at most ``1 - test_level``.
    null : {"asymptotic", "monte-carlo"}
        ``asymptotic`` is MATLAB's χ² (normal for the binomial test) p-value;
        ``monte-carlo`` the exact-size finite-sample p-value of :func:`monte_carlo_pvalues`
        (needs ``rng``; the χ² p-value is kept in ``details["asymptotic_pvalue"]``).
"""


def kupiec_pof(
    failures: ArrayLike,
    level: float,
    *,
    test_level: float = 0.95,
    null: Null = "asymptotic",
    rng: np.random.Generator | None = None,
    simulations: int = 9_999,
) -> TestResult:
    """Kupiec's proportion-of-failures likelihood ratio, :math:`\\chi^2_1`.

    .. math::

        LR_{POF} = -2\\log\\frac{(1-p)^{N-x}p^x}{(1-x/N)^{N-x}(x/N)^x}
    """
    return _run("pof", failures, level, test_level, null, rng, simulations)


def binomial_test(
    failures: ArrayLike,
    level: float,
    *,
    test_level: float = 0.95,
    null: Null = "asymptotic",
    rng: np.random.Generator | None = None,
    simulations: int = 9_999,
) -> TestResult:
    r"""Two-sided z-test of the failure count: :math:`z = (x - Np)/\sqrt{Np(1-p)}`,
    p-value :math:`2(1-\Phi(|z|))` (MATLAB ``bin``); ``df`` is None.
    """
    return _run("binomial", failures, level, test_level, null, rng, simulations)


def christoffersen_independence(
    failures: ArrayLike,
    level: float,
    *,
    test_level: float = 0.95,
    null: Null = "asymptotic",
    rng: np.random.Generator | None = None,
    simulations: int = 9_999,
) -> TestResult:
    """Christoffersen's independence test on the N − 1 day-to-day transitions, :math:`\\chi^2_1`.

    .. math::

        LR_{CCI} = -2\\log\\frac{(1-\\pi)^{n_{00}+n_{10}}\\pi^{n_{01}+n_{11}}}
        {(1-\\pi_{01})^{n_{00}}\\pi_{01}^{n_{01}}(1-\\pi_{11})^{n_{10}}\\pi_{11}^{n_{11}}}

    with :math:`\\pi_{01} = n_{01}/(n_{00}+n_{01})`, :math:`\\pi_{11} = n_{11}/(n_{10}+n_{11})`,
    :math:`\\pi = (n_{01}+n_{11})/(N-1)`. 0 without failures (and with one observation).
    """
    result = _run("cci", failures, level, test_level, null, rng, simulations)
    f = _as_failures(failures)
    prev, nxt = f[:-1], f[1:]
    counts = {
        "n00": int(np.sum(~prev & ~nxt)),
        "n01": int(np.sum(~prev & nxt)),
        "n10": int(np.sum(prev & ~nxt)),
        "n11": int(np.sum(prev & nxt)),
    }
    return replace(result, details={**result.details, **counts})


def christoffersen_conditional_coverage(
    failures: ArrayLike,
    level: float,
    *,
    test_level: float = 0.95,
    null: Null = "asymptotic",
    rng: np.random.Generator | None = None,
    simulations: int = 9_999,
) -> TestResult:
    r"""Conditional coverage: :math:`LR_{CC} = LR_{POF} + LR_{CCI}`, :math:`\chi^2_2`."""
    return _run("cc", failures, level, test_level, null, rng, simulations)


def kupiec_tuff(
    failures: ArrayLike,
    level: float,
    *,
    test_level: float = 0.95,
    null: Null = "asymptotic",
    rng: np.random.Generator | None = None,
    simulations: int = 9_999,
) -> TestResult:
    """Kupiec's time-until-first-failure likelihood ratio, :math:`\\chi^2_1`, with ``n`` the day
    (1-based) of the first failure:

    .. math:: LR_{TUFF} = -2\\log\\frac{p(1-p)^{n-1}}{\\frac1n(1-\\frac1n)^{n-1}}
    """
    return _run("tuff", failures, level, test_level, null, rng, simulations)


def haas_tbfi(
    failures: ArrayLike,
    level: float,
    *,
    test_level: float = 0.95,
    null: Null = "asymptotic",
    rng: np.random.Generator | None = None,
    simulations: int = 9_999,
) -> TestResult:
    r"""Haas's time-between-failures independence test: the sum of the TUFF ratios of each time
    between failures (the first measured from the start), :math:`\chi^2_x`.
    """
    return _run("tbfi", failures, level, test_level, null, rng, simulations)


def haas_tbf(
    failures: ArrayLike,
    level: float,
    *,
    test_level: float = 0.95,
    null: Null = "asymptotic",
    rng: np.random.Generator | None = None,
    simulations: int = 9_999,
) -> TestResult:
    r"""Haas's mixed test: :math:`LR_{TBF} = LR_{POF} + LR_{TBFI}`, :math:`\chi^2_{x+1}`."""
    return _run("tbf", failures, level, test_level, null, rng, simulations)


for _test in (
    kupiec_pof,
    binomial_test,
    christoffersen_independence,
    christoffersen_conditional_coverage,
    kupiec_tuff,
    haas_tbfi,
    haas_tbf,
):
    _test.__doc__ = (_test.__doc__ or "") + _NULL_DOC


def _zone_of(
    x: int, n: int, p: float, green_up_to: float, yellow_up_to: float
) -> tuple[Zone, float]:
    probability = float(stats.binom.cdf(x, n, p))
    if probability <= green_up_to:
        return Zone.GREEN, probability
    if probability <= yellow_up_to:
        return Zone.YELLOW, probability
    return Zone.RED, probability


def _basel_increase(zone: Zone, x: int, n: int, p: float) -> float:
    if zone is Zone.GREEN:
        return 0.0
    if zone is Zone.RED:
        return 1.0
    observed = stats.norm.ppf(1 - x / n) if x < n else -math.inf
    if observed <= 0:
        return 1.0
    ratio = stats.norm.ppf(1 - p) / observed
    return float(min(max(BASEL_BASELINE * (ratio - 1.0), 0.0), 1.0))


def interleaved(failures: np.ndarray, mpor: int) -> list[np.ndarray]:
    """The ``mpor`` sub-series ``failures[j::mpor]`` whose MPOR windows do not overlap (empty
    ones left out).
    """
    return [failures[j::mpor] for j in range(min(mpor, failures.size))]


def _mpor(mpor: int) -> int:
    if isinstance(mpor, bool) or not isinstance(mpor, int | np.integer) or mpor < 1:
        raise ValueError(f"mpor must be a whole number of days >= 1, got {mpor!r}")
    return int(mpor)


def traffic_light(failures: ArrayLike, level: float, *, mpor: int = 1) -> TrafficLight:
    """Basel (1996) traffic light with MATLAB ``tl`` conventions.

    Zones by :math:`F(x) = P(X \\le x \\mid N, p)`: green :math:`\\le 0.95`, yellow
    :math:`\\le 0.9999`, red above. The yellow-zone increase of the multiplier is
    :math:`3\\,(z_{\\text{assumed}}/z_{\\text{observed}} - 1)` clipped to [0, 1], with
    :math:`z_{\\text{assumed}} = \\Phi^{-1}(\\text{level})` and
    :math:`z_{\\text{observed}} = \\Phi^{-1}(1 - x/N)`; 0 when green, 1 when red.

    With ``mpor`` = h > 1 the zone is the worst over the h interleaved sub-series, each judged
    against the thresholds :math:`1 - 0.05/h` and :math:`1 - 0.0001/h` (module docstring), so
    that a correct model leaves the green zone no more often than at h = 1;
    ``probability`` and ``type_i`` are then those of the worst sub-series.
    """
    f, p, h = _as_failures(failures), _probability(level), _mpor(mpor)
    n, x = f.size, int(f.sum())
    if h == 1:
        zone, probability = _zone_of(x, n, p, GREEN_UP_TO, YELLOW_UP_TO)
        type_i = float(stats.binom.sf(x - 1, n, p))
        return TrafficLight(
            zone, probability, type_i, _basel_increase(zone, x, n, p), x, n, float(level)
        )
    parts = interleaved(f, h)
    green, yellow = 1 - (1 - GREEN_UP_TO) / len(parts), 1 - (1 - YELLOW_UP_TO) / len(parts)
    rows: list[dict[str, Any]] = []
    for j, part in enumerate(parts):
        xj, nj = int(part.sum()), part.size
        zone_j, prob_j = _zone_of(xj, nj, p, green, yellow)
        rows.append(
            {
                "offset": j,
                "observations": nj,
                "failures": xj,
                "probability": prob_j,
                "type_i": float(stats.binom.sf(xj - 1, nj, p)),
                "zone": zone_j,
            }
        )
    worst = max(rows, key=lambda r: (Zone(str(r["zone"])).rank, float(r["probability"])))
    zone = Zone(str(worst["zone"]))
    return TrafficLight(
        zone,
        float(worst["probability"]),
        float(worst["type_i"]),
        _basel_increase(zone, x, n, p),
        x,
        n,
        float(level),
        mpor=h,
        procedure="interleaved-bonferroni",
        green_up_to=green,
        yellow_up_to=yellow,
        subseries=tuple(rows),
    )


def traffic_light_size(observations: int, level: float, *, mpor: int = 1) -> float:
    """The probability that a correct model leaves the green zone (exact at ``mpor`` = 1; at
    h > 1 the Bonferroni bound: the sum over the sub-series of each one's exact probability).
    Discreteness makes it differ from 5 % — 10.8 % at N = 250, p = 1 % (Basel's own table).
    """
    p, h = _probability(level), _mpor(mpor)
    if observations < 1:
        raise ValueError(f"observations must be >= 1, got {observations}")
    lengths = [len(range(j, observations, h)) for j in range(min(h, observations))]
    green = 1 - (1 - GREEN_UP_TO) / len(lengths)
    total = 0.0
    for n in lengths:
        counts = np.arange(n + 1)
        cdf = stats.binom.cdf(counts, n, p)
        last_green = int(counts[cdf <= green].max()) if (cdf <= green).any() else -1
        total += float(stats.binom.sf(last_green, n, p))
    return min(total, 1.0)


# --------------------------------------------------------------------------- expected shortfall


@dataclass(frozen=True)
class AcerbiSzekely:
    """The Acerbi–Szekely Z1 (conditional) and Z2 (unconditional) ES tests."""

    z1: TestResult  # conditional
    z2: TestResult  # unconditional
    scenarios: int
    distribution: str
    observations: int = 0
    mpor: int = 1
    procedure: str = "iid"

    @property
    def warning(self) -> str:
        """A low-power warning below :data:`ES_MIN_OBSERVATIONS` observations (else empty)."""
        if self.observations < ES_MIN_OBSERVATIONS:
            return (
                f"only {self.observations} observations: the ES tests have little power below "
                f"{ES_MIN_OBSERVATIONS} (a wrong ES is often not rejected)"
            )
        return ""

    @property
    def rejected(self) -> tuple[str, ...]:
        """Names of the tests that reject."""
        return tuple(t.name for t in (self.z1, self.z2) if t.reject)

    def as_dict(self) -> dict:
        """The tests as JSON-safe values."""
        return {
            "z1": self.z1.as_dict(),
            "z2": self.z2.as_dict(),
            "scenarios": self.scenarios,
            "distribution": self.distribution,
            "observations": self.observations,
            "mpor": self.mpor,
            "procedure": self.procedure,
            "rejected": list(self.rejected),
            "warning": self.warning,
        }


ES_MIN_OBSERVATIONS = 250


def _z_statistics(
    pnl: np.ndarray, var: np.ndarray, es: np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """Z1 and Z2 of each row of ``pnl`` (rows × N); a row without failure has Z1 = 0."""
    failed = pnl < -var
    ratio = np.where(failed, pnl / es, 0.0)
    count = failed.sum(axis=-1)
    total = ratio.sum(axis=-1)
    z1 = np.where(count > 0, total / np.maximum(count, 1) + 1.0, 0.0)
    z2 = total / (pnl.shape[-1] * alpha) + 1.0
    return z1, z2


def _tail(
    distribution: str, dof: float | None, alpha: float
) -> tuple[Callable[[np.random.Generator, tuple[int, int]], np.ndarray], float, float]:
    """The standard distribution's sampler, its α-quantile q and tail mean m = E[ε | ε ≤ q]."""
    if distribution == "normal":
        q = stats.norm.ppf(alpha)
        return (lambda rng, size: rng.standard_normal(size)), q, -stats.norm.pdf(q) / alpha
    if distribution == "t":
        if dof is None or dof <= 1:
            raise ValueError("distribution 't' needs dof > 1 (the tail mean must exist)")
        q = stats.t.ppf(alpha, dof)
        m = -(dof + q * q) / (dof - 1) * stats.t.pdf(q, dof) / alpha
        return (lambda rng, size: rng.standard_t(dof, size)), q, m
    raise ValueError(f"distribution must be 'normal' or 't', got {distribution!r}")


def simulate_null_z(
    var: np.ndarray,
    es: np.ndarray,
    level: float,
    *,
    rng: np.random.Generator,
    distribution: Literal["normal", "t"] = "normal",
    dof: float | None = None,
    scenarios: int = 10_000,
) -> tuple[np.ndarray, np.ndarray]:
    """Z1 and Z2 (each shape (scenarios,)) under the model that forecast ``var`` and ``es``.

    Each day's P&L is :math:`\\mu_t + \\sigma_t\\varepsilon` with ε from ``distribution``, where
    :math:`\\sigma_t = (ES_t - VaR_t)/(q - m)` and :math:`\\mu_t = -VaR_t - \\sigma_t q` for the
    standard distribution's α-quantile q and tail mean :math:`m = E[\\varepsilon \\mid \\varepsilon \\le q]`:
    the location-scale member that reproduces that day's VaR and ES exactly.
    """
    p = _probability(level)
    var, es = np.asarray(var, dtype=float), np.asarray(es, dtype=float)
    sample, q, m = _tail(distribution, dof, p)
    sigma = (es - var) / (q - m)
    mu = -var - sigma * q
    z1, z2 = [], []
    block = max(1, min(scenarios, 2_000_000 // var.size))
    for start in range(0, scenarios, block):
        size = min(block, scenarios - start)
        a, b = _z_statistics(mu + sigma * sample(rng, (size, var.size)), var, es, p)
        z1.append(a)
        z2.append(b)
    return np.concatenate(z1), np.concatenate(z2)


def _acerbi_szekely_iid(
    pnl: ArrayLike,
    var: ArrayLike,
    es: ArrayLike,
    level: float,
    *,
    rng: np.random.Generator,
    distribution: Literal["normal", "t"] = "normal",
    dof: float | None = None,
    scenarios: int = 10_000,
    test_level: float = 0.95,
) -> AcerbiSzekely:
    """:func:`acerbi_szekely` on one series whose days are independent under the model."""
    p, test_level = _probability(level), _test_level(test_level)
    arrays = []
    for name, values in (("pnl", pnl), ("var", var), ("es", es)):
        a = np.asarray(values, dtype=float)
        if a.ndim != 1 or a.size == 0:
            raise ValueError(f"{name} must be a non-empty 1-D array")
        bad = np.flatnonzero(~np.isfinite(a))
        if bad.size:
            raise ValueError(f"{name}[{bad[0]}] is {a[bad[0]]}: every day needs a finite value")
        arrays.append(a)
    pnl_a, var_a, es_a = arrays
    if not pnl_a.size == var_a.size == es_a.size:
        raise ValueError(
            f"pnl, var and es differ in length ({pnl_a.size}, {var_a.size}, {es_a.size})"
        )
    below = np.flatnonzero(es_a <= var_a)
    if below.size:
        raise ValueError(
            f"es[{below[0]}] = {es_a[below[0]]} is not above var[{below[0]}] = {var_a[below[0]]}"
        )
    z1_obs, z2_obs = (float(v[0]) for v in _z_statistics(pnl_a[None, :], var_a, es_a, p))
    z1_sim, z2_sim = simulate_null_z(
        var_a, es_a, level, rng=rng, distribution=distribution, dof=dof, scenarios=scenarios
    )
    failures = int(np.sum(pnl_a < -var_a))

    def result(name: str, observed: float, simulated: np.ndarray) -> TestResult:
        pvalue = float(np.mean(simulated <= observed))
        critical = float(np.quantile(simulated, 1 - test_level))
        note = "no failure: Z1 = 0 by convention" if name == "z1" and failures == 0 else ""
        return TestResult(
            name,
            observed,
            pvalue,
            None,
            _rejects(pvalue, test_level),
            test_level,
            note=note,
            details={"critical_value": critical, "failures": failures},
        )

    return AcerbiSzekely(
        result("z1", z1_obs, z1_sim),
        result("z2", z2_obs, z2_sim),
        scenarios,
        distribution if distribution == "normal" else f"t({dof:g})",
        observations=int(pnl_a.size),
    )


def acerbi_szekely(
    pnl: ArrayLike,
    var: ArrayLike,
    es: ArrayLike,
    level: float,
    *,
    rng: np.random.Generator,
    distribution: Literal["normal", "t"] = "normal",
    dof: float | None = None,
    scenarios: int = 10_000,
    test_level: float = 0.95,
    mpor: int = 1,
) -> AcerbiSzekely:
    """Acerbi–Szekely (2014) tests of ES, p-values by simulation (MATLAB ``esbacktestbysim``).

    ``pnl`` is the realised P&L (negative = loss), ``var`` and ``es`` the positive VaR and ES at
    ``level`` forecast for each day. With :math:`I_t = 1\\{pnl_t < -VaR_t\\}`,
    :math:`N_T = \\sum I_t` and :math:`\\alpha = 1 - \\text{level}`:

    .. math::

        Z_1 = \\frac{1}{N_T}\\sum_t \\frac{pnl_t I_t}{ES_t} + 1, \\qquad
        Z_2 = \\sum_t \\frac{pnl_t I_t}{N\\alpha\\,ES_t} + 1

    (:math:`Z_1 = 0` when :math:`N_T = 0`). Both are 0 in expectation under the model and
    negative when ES is underestimated. The null distribution is simulated: each day's P&L is
    :math:`\\mu_t + \\sigma_t\\varepsilon` with ε from ``distribution`` and (μ_t, σ_t) the
    location and scale that reproduce that day's VaR and ES; the p-value is the fraction of
    simulated statistics at or below the observed one.

    With ``mpor`` = h > 1 the days' P&L windows overlap: each statistic is computed on the h
    interleaved sub-series at level α/h and rejects when any does (Bonferroni, as
    :func:`coverage_report`). Below :data:`ES_MIN_OBSERVATIONS` observations the result
    carries a low-power ``warning``.
    """
    h = _mpor(mpor)

    def core(pnl: ArrayLike, var: ArrayLike, es: ArrayLike, test_level: float) -> AcerbiSzekely:
        return _acerbi_szekely_iid(
            pnl,
            var,
            es,
            level,
            rng=rng,
            distribution=distribution,
            dof=dof,
            scenarios=scenarios,
            test_level=test_level,
        )

    if h == 1:
        return core(pnl, var, es, test_level)
    arrays = [np.asarray(a, dtype=float) for a in (pnl, var, es)]
    if not arrays[0].size == arrays[1].size == arrays[2].size:
        raise ValueError(
            f"pnl, var and es differ in length ({arrays[0].size}, {arrays[1].size}, {arrays[2].size})"
        )
    offsets = range(min(h, arrays[0].size))
    adjusted = 1.0 - (1.0 - _test_level(test_level)) / len(offsets)
    parts = [core(arrays[0][j::h], arrays[1][j::h], arrays[2][j::h], adjusted) for j in offsets]

    def combine(name: str) -> TestResult:
        results = [getattr(part, name) for part in parts]
        statistic = float(
            _z_statistics(arrays[0][None, :], arrays[1], arrays[2], _probability(level))[
                0 if name == "z1" else 1
            ][0]
        )
        return TestResult(
            name,
            statistic,
            min(1.0, len(parts) * min(r.pvalue for r in results)),
            None,
            any(r.reject for r in results),
            float(test_level),
            note=f"Bonferroni over {len(parts)} interleaved non-overlapping sub-series (MPOR {h} days)",
            details={
                "procedure": "interleaved-bonferroni",
                "subseries": [
                    {"offset": j, "statistic": r.statistic, "pvalue": r.pvalue, "reject": r.reject}
                    for j, r in enumerate(results)
                ],
            },
        )

    return AcerbiSzekely(
        combine("z1"),
        combine("z2"),
        scenarios,
        parts[0].distribution,
        observations=int(arrays[0].size),
        mpor=h,
        procedure="interleaved-bonferroni",
    )


# --------------------------------------------------------------------------- the suite


@dataclass(frozen=True)
class CoverageReport:
    """Every coverage test of one failure series, and the traffic light."""

    observations: int
    failures: int
    expected: float
    level: float
    test_level: float
    traffic_light: TrafficLight
    tests: Mapping[str, TestResult]
    mpor: int = 1
    procedure: str = "iid"

    @property
    def rejected(self) -> tuple[str, ...]:
        """Names of the tests that reject."""
        return tuple(name for name, t in self.tests.items() if t.reject)

    def as_dict(self) -> dict:
        """The report as JSON-safe values."""
        return {
            "observations": self.observations,
            "failures": self.failures,
            "expected": self.expected,
            "level": self.level,
            "test_level": self.test_level,
            "mpor": self.mpor,
            "procedure": self.procedure,
            "traffic_light": self.traffic_light.as_dict(),
            "tests": {name: t.as_dict() for name, t in self.tests.items()},
            "rejected": list(self.rejected),
        }


PROCEDURES = {
    "iid": "each test on the daily failures as i.i.d. Bernoulli(p) (MPOR of one day)",
    "interleaved-bonferroni": (
        "each test on the MPOR's interleaved non-overlapping sub-series at level alpha/h, "
        "rejecting when any does (Bonferroni); the traffic light likewise"
    ),
}


class MonteCarloNulls:
    """One :class:`MonteCarloNull` per series length, simulated on first use from one generator:
    a backtest tests many portfolios (and their MPOR sub-series) of a few lengths.
    """

    def __init__(self, p: float, rng: np.random.Generator, simulations: int = 9_999) -> None:
        self.p, self.simulations = p, simulations
        # one draw from ``rng`` roots a child stream per length, so that a length's null does
        # not depend on which lengths were asked for before it (a series gets the same
        # p-values whether it is tested alone or beside others)
        self._root = int(rng.integers(2**63))
        self._nulls: dict[int, MonteCarloNull] = {}

    def get(self, n: int) -> MonteCarloNull:
        """The null of sub-series length ``n`` (simulated once, then shared — also with later
        backtests of this process on the same seed: a what-if re-tests on its cold run's).
        """
        if n not in self._nulls:
            key = (self.p, self._root, self.simulations, n)
            null = _SIMULATED.get(key)
            if null is None:
                stream = np.random.default_rng([self._root, n])
                null = MonteCarloNull(n, self.p, stream, self.simulations)
                if len(_SIMULATED) >= NULLS_KEPT:
                    _SIMULATED.pop(next(iter(_SIMULATED)))
                _SIMULATED[key] = null
            self._nulls[n] = null
        return self._nulls[n]


NULLS_KEPT = 32  # simulated nulls kept per process (a few lengths per backtest; about 1 MB each)
_SIMULATED: dict[tuple, MonteCarloNull] = {}  # by (p, root, simulations, n): a pure function


def clear_nulls() -> None:
    """Forget the process's simulated nulls (:func:`backtesting.memo.clear`)."""
    _SIMULATED.clear()


def _iid_report(
    f: np.ndarray,
    level: float,
    test_level: float,
    null: Null,
    rng: np.random.Generator | None,
    simulations: int,
    null_distribution: MonteCarloNull | None,
) -> CoverageReport:
    p = _probability(level)
    tests = {
        "pof": kupiec_pof(f, level, test_level=test_level),
        "tuff": kupiec_tuff(f, level, test_level=test_level),
        "binomial": binomial_test(f, level, test_level=test_level),
        "cci": christoffersen_independence(f, level, test_level=test_level),
        "cc": christoffersen_conditional_coverage(f, level, test_level=test_level),
        "tbfi": haas_tbfi(f, level, test_level=test_level),
        "tbf": haas_tbf(f, level, test_level=test_level),
    }
    if null == "monte-carlo":
        if null_distribution is None:
            if rng is None:
                raise ValueError(
                    "null='monte-carlo' needs rng (a numpy Generator) or a null_distribution"
                )
            null_distribution = MonteCarloNull(f.size, p, rng, simulations)
        elif not math.isclose(null_distribution.p, p, rel_tol=1e-9):
            raise ValueError(f"the null is for p = {null_distribution.p}, not {p}")
        simulations = null_distribution.simulations
        pvalues = null_distribution.pvalues(f)
        observed = _statistics(f[None, :], p)
        for name, result in tests.items():
            tests[name] = _monte_carlo(
                result, f, float(observed[name][0]), pvalues[name], simulations
            )
    elif null != "asymptotic":
        raise ValueError(f"null must be 'asymptotic' or 'monte-carlo', got {null!r}")
    return CoverageReport(
        int(f.size),
        int(f.sum()),
        f.size * p,
        float(level),
        float(test_level),
        traffic_light(f, level),
        tests,
    )


def _bonferroni(
    name: str, f: np.ndarray, p: float, test_level: float, parts: list[CoverageReport]
) -> TestResult:
    """One test over the interleaved sub-series: reject when any sub-series rejects at level
    α/h; p-value ``min(1, h·min p_j)``; the statistic is the whole series' (descriptive).
    """
    h = len(parts)
    results = [part.tests[name] for part in parts]
    finite = [r.pvalue for r in results if math.isfinite(r.pvalue)]
    pvalue = min(1.0, h * min(finite)) if finite else math.nan
    statistic = float(_statistics(f[None, :], p)[name][0])
    return TestResult(
        name,
        statistic,
        pvalue,
        None,
        any(r.reject for r in results),
        test_level,
        defined=bool(finite),
        note=f"Bonferroni over {h} interleaved non-overlapping sub-series (MPOR {h} days)",
        details={
            "procedure": "interleaved-bonferroni",
            "mpor": h,
            "observations": int(f.size),
            "failures": int(f.sum()),
            "subseries": [
                {
                    "offset": j,
                    "observations": part.observations,
                    "failures": part.failures,
                    "statistic": _finite_or_none(r.statistic),
                    "pvalue": _finite_or_none(r.pvalue),
                    "reject": r.reject,
                }
                for j, (part, r) in enumerate(zip(parts, results, strict=True))
            ],
        },
    )


def _finite_or_none(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def coverage_report(
    failures: ArrayLike,
    level: float,
    test_level: float = 0.95,
    *,
    mpor: int = 1,
    null: Null = "asymptotic",
    rng: np.random.Generator | None = None,
    simulations: int = 9_999,
    null_distribution: MonteCarloNull | MonteCarloNulls | None = None,
) -> CoverageReport:
    """Every frequency, independence and duration test, and the traffic light.

    Parameters
    ----------
    failures : array of bool, shape (N,)
        Day t's breach of the margin set on t, judged over the MPOR window [t, t + mpor].
    level, test_level
        The model's confidence and the tests' (reject at p <= 1 - test_level).
    mpor : int
        The margin period of risk in days. At 1 the failures are tested as i.i.d.; above 1 the
        overlapping windows are handled by the interleaved Bonferroni procedure of the module
        docstring, so that every test and the zone keep their size.
    null, rng, simulations, null_distribution
        With ``null="monte-carlo"`` one simulated null per series length serves every test:
        ``simulations`` sequences from ``rng``, or a prepared :class:`MonteCarloNull` (mpor 1)
        or :class:`MonteCarloNulls` shared by many reports.
    """
    f = _as_failures(failures)
    p = _probability(level)
    _test_level(test_level)
    h = _mpor(mpor)
    nulls = null_distribution if isinstance(null_distribution, MonteCarloNulls) else None
    if nulls is not None and not math.isclose(nulls.p, p, rel_tol=1e-9):
        raise ValueError(f"the null is for p = {nulls.p}, not {p}")
    if h == 1:
        single = (
            nulls.get(f.size)
            if nulls is not None
            else null_distribution
            if isinstance(null_distribution, MonteCarloNull)
            else None
        )
        return _iid_report(f, level, test_level, null, rng, simulations, single)
    if null == "monte-carlo" and nulls is None:
        if isinstance(null_distribution, MonteCarloNull):
            raise ValueError(
                "an MPOR above one day needs MonteCarloNulls (one per sub-series length)"
            )
        if rng is None:
            raise ValueError(
                "null='monte-carlo' needs rng (a numpy Generator) or a null_distribution"
            )
        nulls = MonteCarloNulls(p, rng, simulations)
    parts = interleaved(f, h)
    adjusted = 1.0 - (1.0 - test_level) / len(parts)
    reports = [
        _iid_report(
            part,
            level,
            adjusted,
            null,
            rng,
            simulations,
            nulls.get(part.size) if nulls is not None else None,
        )
        for part in parts
    ]
    tests = {name: _bonferroni(name, f, p, test_level, reports) for name in STATISTICS}
    return CoverageReport(
        int(f.size),
        int(f.sum()),
        f.size * p,
        float(level),
        float(test_level),
        traffic_light(f, level, mpor=h),
        tests,
        mpor=h,
        procedure="interleaved-bonferroni",
    )
