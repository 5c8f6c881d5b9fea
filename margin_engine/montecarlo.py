"""Monte Carlo margin (in the manner of OCC's STANS): joint paths of every underlying and its
implied vol over the MPOR, drawn from the fitted models; every instrument revalued on every
path; VaR and ES of each account's loss with their standard errors; each position's Euler
contribution to ES.

**Paths.** Over the MPOR of :math:`h` days, underlying :math:`j` on day :math:`d` returns

.. math::

    r_{d,j} = \\sigma_{d,j}\\, z_{d,j}, \\qquad
    \\sigma^2_{d+1,j} = \\omega_j + (\\alpha_j + \\gamma_j 1[r_{d,j} < 0])\\, r_{d,j}^2
    + \\beta_j \\sigma^2_{d,j}

(the GJR-GARCH recursion of the fitted model; with no recursion given, :math:`\\sigma` stays at
today's forecast), and the price move over the MPOR is :math:`\\exp(\\sum_d r_{d,j}) - 1`. The
unit-variance innovation vectors :math:`z_d` are, as the policy chooses,

* ``filtered-historical``: whole rows of the fitted models' joint standardised residuals,
  drawn with replacement (they keep the residuals' own dependence and tails);
* ``student-t``: :math:`z = L g \\sqrt{(\\nu - 2)/W}` with :math:`LL^T = R` the (DCC or
  stressed) correlation, :math:`g` standard normal and :math:`W \\sim \\chi^2_\\nu` shared by the
  underlyings (a t copula with t margins of :math:`\\nu` degrees of freedom);
* ``gaussian``: :math:`z = L g`.

The log of each implied vol relative to today's follows a discrete Ornstein–Uhlenbeck step

.. math::

    x_{d+1} = x_d + \\kappa(\\log\\theta - x_d)
    + \\eta\\,\\big(\\rho\\, z_{d,j} + \\sqrt{1-\\rho^2}\\, n_{d,j}\\big)

(vol of vol :math:`\\eta`, spot–vol correlation :math:`\\rho`, mean reversion :math:`\\kappa`
towards :math:`\\theta` times today's IV); the vol move is :math:`e^{x_h} - 1`.

**Streams.** Paths come in blocks of :data:`BLOCK`; block :math:`b` is drawn from its own
stream (``numpy.random.default_rng([seed, b])``, or for quasi-random draws its own stretch of
points of :data:`SOBOL_REPLICATES` independently scrambled Sobol sequences, path :math:`i`
being point :math:`\\lfloor i/R \\rfloor` of scramble :math:`i \\bmod R`), so the same seed gives
the same paths however the blocks are shared among chunks or workers. ``antithetic`` pairs
each uniform :math:`u` with :math:`1 - u` (a normal with its negative).

**Importance sampling** (``Simulation.importance``, with Sobol draws and Gaussian or Student-t
innovations): each underlying's whole-MPOR normal is drawn with standard deviation
:math:`s` = :data:`IMPORTANCE_SCALE` and each day's :math:`W` as :math:`qW` with :math:`q` =
:data:`IMPORTANCE_CHI2`, so that large moves in either direction — every account's tail,
long or short — are drawn more often; path :math:`i` then weighs its likelihood ratio

.. math::

    w_i = \\prod_j s\\, e^{-x_{ij}^2 (1 - s^{-2})/2}
    \\prod_d q^{\\nu/2} e^{W'_{id} (1/q - 1)/2}

(:math:`x` and :math:`W'` as drawn), whose mean is one. Both factors have finite variance
(the normal's is bounded by :math:`s`; the :math:`\\chi^2`'s needs :math:`q > 1/2`). Only
price moves are widened: a book whose loss comes from implied-vol moves gains nothing and
pays the weights' spread, hence an option and not the default.

**Measures.** Losses are positive. With :math:`N` equally likely paths and :math:`k =
\\lceil cN \\rceil`, :math:`\\mathrm{VaR}_c = L_{(k)}` and

.. math::

    \\mathrm{ES}_c = \\frac{1}{1-c}\\Big(\\frac{1}{N}\\sum_{i > k} L_{(i)}
    + \\big(\\tfrac{k}{N} - c\\big) L_{(k)}\\Big)

(Acerbi–Tasche). ES is a weighted sum of path losses, so position :math:`p`'s Euler
contribution is the same weighted sum of its own losses, and contributions add up to ES.
With importance weights the path masses are :math:`w_i/N` instead of :math:`1/N`: VaR is
the loss of the path at which the mass of it and the larger losses first exceeds
:math:`1 - c`, and ES the mass-weighted mean of the losses above it (the VaR path taking the
rest of :math:`1 - c`) — with equal weights, the formula above — so that the weights stay
those of the Euler contributions. Standard errors, for independent (pseudo-random) paths: ES
by Manistre and Hancock (2005),
:math:`\\sqrt{(V + c(\\mathrm{ES}-\\mathrm{VaR})^2)/(N(1-c))}` with :math:`V` the variance of
the losses beyond VaR; VaR by the distribution-free order-statistic interval
:math:`(L_{(k+m)} - L_{(k-m)})/2`, :math:`m = \\lceil\\sqrt{Nc(1-c)}\\rceil`; for Sobol paths
the spread of the :math:`R` scrambles' own estimates over :math:`\\sqrt R` (randomised
quasi-Monte Carlo), which shows the accuracy the low discrepancy buys.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import special, stats
from scipy.stats import qmc

from margin_engine.book import MarginResult, Positions
from margin_engine.params import ModelParams, VarParams, _check
from margin_engine.var import anti_procyclical
from vocabulary import DAYS_PER_YEAR, Innovations, Sampling, VarMeasure

__all__ = [
    "BLOCK",
    "AssetDynamics",
    "JointModel",
    "MonteCarloResult",
    "Simulation",
    "TailMeasures",
    "correlation_of",
    "dynamics_from_fit",
    "intraday_paths",
    "mc_margin",
    "path_weights",
    "simulate",
    "simulate_blocks",
    "tail_measures",
    "tail_measures_at",
]

BLOCK = 1024  # paths per block: the unit of streams, chunks and tasks (a power of 2 for Sobol)
SOBOL_REPLICATES = 8  # independent scrambles of Sobol paths (a divisor of BLOCK)
UNIFORM_EDGE = 1e-12  # uniforms are kept inside (0, 1) so that their normal quantiles are finite
IMPORTANCE_SCALE = 1.3  # standard deviation of the whole-MPOR normals under importance sampling
IMPORTANCE_CHI2 = 0.8  # scale of the χ² draws under importance sampling (must exceed 1/2)
SCALE = 100.0  # arch's fits are on percent returns (calibration.univariate.SCALE)

Mapper = Callable[[Callable, Iterable], Iterable]  # map(fn, items), e.g. a Dask client's


@dataclass(frozen=True)
class AssetDynamics:
    """One underlying's fitted dynamics, in daily decimal units.

    ``sigma`` is the forecast volatility of tomorrow's return; ``omega``, ``alpha``, ``gamma``
    and ``beta`` the GJR-GARCH variance recursion (all zero: volatility stays at ``sigma``);
    ``vol_of_vol``, ``spot_vol_correlation``, ``iv_mean_reversion`` and ``iv_level_ratio`` (the
    long-run IV over today's) drive the implied vol.
    """

    sigma: float
    omega: float = 0.0
    alpha: float = 0.0
    gamma: float = 0.0
    beta: float = 0.0
    vol_of_vol: float = 0.0
    spot_vol_correlation: float = 0.0
    iv_mean_reversion: float = 0.0
    iv_level_ratio: float = 1.0

    def __post_init__(self) -> None:
        _check(math.isfinite(self.sigma) and 0 < self.sigma < 1, "sigma", "must be in (0, 1) a day")
        for name in ("omega", "alpha", "gamma", "beta", "vol_of_vol", "iv_mean_reversion"):
            value = getattr(self, name)
            _check(math.isfinite(value) and value >= 0, name, f"{value!r} must be >= 0")
        _check(
            self.alpha + self.gamma / 2 + self.beta < 1,
            "alpha + gamma/2 + beta",
            "must be below 1 (a stationary variance)",
        )
        _check(-1 <= self.spot_vol_correlation <= 1, "spot_vol_correlation", "must be in [-1, 1]")
        _check(self.iv_mean_reversion <= 1, "iv_mean_reversion", "must be at most 1 a day")
        _check(
            math.isfinite(self.iv_level_ratio) and self.iv_level_ratio > 0,
            "iv_level_ratio",
            "must be > 0",
        )

    @property
    def recursive(self) -> bool:
        """Whether the variance follows the GARCH recursion over the MPOR."""
        return self.omega > 0 or self.alpha > 0 or self.gamma > 0 or self.beta > 0


def dynamics_from_fit(
    spec: Mapping[str, Any],
    params: Mapping[str, float],
    next_vol_annual: float,
    iv: Mapping[str, Any] | None = None,
) -> AssetDynamics:
    """An underlying's dynamics from its stored calibration: the chosen univariate fit
    (``spec`` and ``params`` on arch's percent scale, its next-day volatility, annualised
    over 365 days) and the implied vol's dynamics (``iv``: vol of vol annualised, spot–vol
    correlation, AR(1) coefficient of log IV and its long-run level).

    GARCH and GJR-GARCH fits keep their variance recursion over the MPOR (``omega`` from
    percent² to decimal); other volatility processes (EGARCH, EWMA) hold the forecast
    constant. The AR(1) coefficient :math:`\\phi` of log IV gives the daily reversion
    :math:`1 - \\phi`.
    """
    sigma = float(next_vol_annual) / math.sqrt(DAYS_PER_YEAR)
    recursion = {}
    if spec.get("vol") in ("garch", "gjr-garch"):
        recursion = {
            "omega": float(params.get("omega", 0.0)) / SCALE**2,
            "alpha": float(params.get("alpha[1]", 0.0)),
            "gamma": float(params.get("gamma[1]", 0.0)),
            "beta": float(params.get("beta[1]", 0.0)),
        }
    implied = {}
    if iv:
        reversion = iv.get("mean_reversion") or {}
        phi = reversion.get("phi")
        long_run, last = reversion.get("long_run_iv"), iv.get("iv_last")
        correlation = iv.get("spot_vol_corr_ewma")
        implied = {
            "vol_of_vol": float(iv.get("vol_of_vol_current_annual") or 0.0)
            / math.sqrt(DAYS_PER_YEAR),
            "spot_vol_correlation": float(correlation)
            if correlation is not None and math.isfinite(correlation)
            else 0.0,
            "iv_mean_reversion": 1.0 - phi if phi is not None and 0 < phi < 1 else 0.0,
            "iv_level_ratio": long_run / last if long_run and last else 1.0,
        }
    return AssetDynamics(sigma, **recursion, **implied)


def correlation_of(
    assets: Sequence[str], matrix: Sequence[Sequence[float]], underlyings: Sequence[str]
) -> np.ndarray:
    """The correlation of ``underlyings`` (in their order) from an estimate over ``assets``;
    :class:`ValueError` naming those it lacks.
    """
    missing = [u for u in underlyings if u not in assets]
    if missing:
        raise ValueError(f"no correlation of {', '.join(missing)}")
    index = [list(assets).index(u) for u in underlyings]
    return np.asarray(matrix, dtype=float)[np.ix_(index, index)]


@dataclass(frozen=True)
class JointModel:
    """The fitted joint model: one :class:`AssetDynamics` per underlying, the correlation of
    the innovations (``student-t``, ``gaussian``) and the joint standardised residuals
    (``filtered-historical``: days × underlyings, unit variance per column).
    """

    underlyings: tuple[str, ...]
    dynamics: tuple[AssetDynamics, ...]
    correlation: np.ndarray
    residuals: np.ndarray | None = None
    residual_weights: np.ndarray | None = None  # per residual row (stressed-weight); equal if None
    cholesky: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        u = len(self.underlyings)
        _check(u > 0, "underlyings", "at least one")
        _check(len(set(self.underlyings)) == u, "underlyings", "each once")
        _check(len(self.dynamics) == u, "dynamics", f"one per underlying ({u})")
        r = np.asarray(self.correlation, dtype=float)
        _check(r.shape == (u, u), "correlation", f"must be {u} × {u}")
        _check(bool(np.isfinite(r).all()), "correlation", "must be finite")
        _check(bool(np.allclose(r, r.T)), "correlation", "must be symmetric")
        _check(bool(np.allclose(np.diag(r), 1.0)), "correlation", "must have a unit diagonal")
        try:
            chol = np.linalg.cholesky(r)
        except np.linalg.LinAlgError:
            raise ValueError("correlation: must be positive definite") from None
        object.__setattr__(self, "correlation", r)
        object.__setattr__(self, "cholesky", chol)
        if self.residuals is not None:
            z = np.asarray(self.residuals, dtype=float)
            _check(z.ndim == 2 and z.shape[1] == u, "residuals", f"must be days × {u}")
            _check(len(z) >= 30, "residuals", f"{len(z)} days; need at least 30")
            _check(bool(np.isfinite(z).all()), "residuals", "must be finite")
            object.__setattr__(self, "residuals", z)
        if self.residual_weights is not None:
            w = np.asarray(self.residual_weights, dtype=float)
            rows = 0 if self.residuals is None else len(self.residuals)
            _check(w.shape == (rows,), "residual_weights", f"must be one per residual row ({rows})")
            _check(bool(np.isfinite(w).all() and (w >= 0).all()), "residual_weights", ">= 0")
            _check(float(w.sum()) > 0, "residual_weights", "must not all be zero")
            object.__setattr__(self, "residual_weights", w / w.sum())


def stress_weights(dates: Sequence, windows: Sequence[tuple], weight: float) -> np.ndarray:
    """Bootstrap weights of residual rows dated ``dates`` under the ``stressed-weight`` tool:
    the rows inside the stress ``windows`` (start, end) share a total ``weight``, the others
    the rest; equal weights when either group is empty.
    """
    _check(0 <= weight <= 1, "weight", f"{weight!r} must be in [0, 1]")
    days = np.asarray(dates, dtype="datetime64[ns]")
    stressed = np.zeros(len(days), bool)
    for start, end in windows:
        stressed |= (days >= np.datetime64(start, "ns")) & (days <= np.datetime64(end, "ns"))
    if not stressed.any() or stressed.all():
        return np.full(len(days), 1.0 / max(len(days), 1))
    return np.where(stressed, weight / stressed.sum(), (1 - weight) / (~stressed).sum())


def long_run_model(model: JointModel, returns: np.ndarray) -> JointModel:
    """The ``floor`` tool's model: each underlying at the volatility of its daily log
    ``returns`` over the long look-back (days × underlyings, NaN-free), held over the MPOR,
    their correlation, and those returns standardised as the residuals; the implied vols'
    dynamics are the model's.

    .. math::

        \\sigma^{LR}_j = \\sqrt{\\tfrac{1}{n}\\textstyle\\sum_s r_{s,j}^2}, \\qquad
        z_{s,j} = r_{s,j} / \\sigma^{LR}_j
    """
    r = np.asarray(returns, dtype=float)
    u = len(model.underlyings)
    _check(r.ndim == 2 and r.shape[1] == u, "returns", f"must be days × {u}")
    _check(len(r) >= 30 and bool(np.isfinite(r).all()), "returns", "at least 30 finite days")
    sigma = np.sqrt(np.mean(r * r, axis=0))
    _check(bool((sigma > 0).all()), "returns", "every underlying must move")
    dynamics = tuple(
        dataclasses.replace(d, sigma=float(s), omega=0.0, alpha=0.0, gamma=0.0, beta=0.0)
        for d, s in zip(model.dynamics, sigma, strict=True)
    )
    z = r / sigma
    correlation = np.corrcoef(z.T).reshape(u, u) if u > 1 else np.eye(1)
    return JointModel(model.underlyings, dynamics, correlation, z)


@dataclass(frozen=True)
class Simulation:
    """How many paths over how many days, drawn how, from which seed."""

    paths: int
    horizon: int
    seed: int
    innovations: Innovations = Innovations.STUDENT_T
    sampling: Sampling = Sampling.PSEUDO
    dof: float = 5.0
    importance: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "innovations", Innovations(self.innovations))
        object.__setattr__(self, "sampling", Sampling(self.sampling))
        _check(self.paths >= 100, "paths", f"{self.paths!r} must be at least 100")
        _check(1 <= self.horizon <= 30, "horizon", f"{self.horizon!r} must be 1..30 days")
        _check(self.seed >= 0, "seed", "must be >= 0")
        _check(math.isfinite(self.dof) and self.dof > 2, "dof", "must be > 2 (a finite variance)")
        _check(
            self.sampling is not Sampling.ANTITHETIC or self.paths % 2 == 0,
            "paths",
            "must be even for antithetic draws",
        )
        _check(isinstance(self.importance, bool), "importance", "must be true or false")
        if self.importance:
            _check(
                self.sampling is Sampling.SOBOL,
                "importance",
                "needs Sobol draws (the spread of their scrambles is its standard error)",
            )
            _check(
                self.innovations is not Innovations.FILTERED_HISTORICAL,
                "importance",
                "needs Gaussian or Student-t innovations (filtered-historical rows are drawn "
                "as they are)",
            )

    @property
    def blocks(self) -> int:
        """Number of blocks of :data:`BLOCK` paths (the last may be partial)."""
        return -(-self.paths // BLOCK)

    def block_paths(self, block: int) -> int:
        """Number of paths in ``block``."""
        return min(BLOCK, self.paths - block * BLOCK)


def _uniforms(sim: Simulation, block: int, dimension: int) -> np.ndarray:
    """(BLOCK × dimension) uniforms in (0, 1) of ``block``: its own stream."""
    if sim.sampling is Sampling.SOBOL:
        # path i is point i // R of scramble i % R: R independent scrambled sequences (the
        # spread of their estimates is the standard error), each a prefix of its own sequence
        per = BLOCK // SOBOL_REPLICATES
        u = np.empty((BLOCK, dimension))
        for r in range(SOBOL_REPLICATES):
            engine = qmc.Sobol(dimension, scramble=True, seed=np.random.default_rng([sim.seed, r]))
            if block:
                engine.fast_forward(block * per)
            u[r::SOBOL_REPLICATES] = engine.random(per)
    else:
        rng = np.random.default_rng([sim.seed, block])
        if sim.sampling is Sampling.ANTITHETIC:
            half = rng.random((BLOCK // 2, dimension))
            u = np.empty((BLOCK, dimension))
            u[0::2], u[1::2] = half, 1.0 - half  # pairs side by side: a partial block keeps both
        else:
            u = rng.random((BLOCK, dimension))
    return np.clip(u, UNIFORM_EDGE, 1.0 - UNIFORM_EDGE)


def _dimension(sim: Simulation, u_count: int) -> int:
    """Uniforms per path: per underlying a whole-MPOR normal, h - 1 normals splitting it into
    days and h implied-vol noises; per day one χ² draw (or residual row).
    """
    return sim.horizon * (2 * u_count + 1)


def _log_weights(uniform: np.ndarray, sim: Simulation, u_count: int) -> np.ndarray:
    """Log likelihood ratio of each path drawn from ``uniform`` under importance sampling
    (the module doc's :math:`\\log w_i`; the same draws as :func:`_block` makes of them).
    """
    s, c = IMPORTANCE_SCALE, IMPORTANCE_CHI2
    x = s * special.ndtri(uniform[:, :u_count])
    out = (math.log(s) - 0.5 * (1.0 - s**-2) * x * x).sum(axis=1)
    if sim.innovations is Innovations.STUDENT_T:
        w = c * stats.chi2.ppf(uniform[:, u_count : u_count + sim.horizon], sim.dof)
        out += (0.5 * sim.dof * math.log(c) + 0.5 * (1.0 / c - 1.0) * w).sum(axis=1)
    return out


def path_weights(
    model: JointModel, sim: Simulation, blocks: Sequence[int] | None = None
) -> np.ndarray | None:
    """Importance weights of the paths in ``blocks`` (default every block), in block order;
    None without importance sampling (every path weighs one).
    """
    if not sim.importance:
        return None
    u_count = len(model.underlyings)
    chosen = range(sim.blocks) if blocks is None else blocks
    return np.exp(
        np.concatenate(
            [
                _log_weights(
                    _uniforms(sim, b, _dimension(sim, u_count))[: sim.block_paths(b)], sim, u_count
                )
                for b in chosen
            ]
        )
    )


def simulate_blocks(
    model: JointModel, sim: Simulation, blocks: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Price and implied-vol moves (paths × underlyings, simple relative changes) of the paths
    in ``blocks``, in block order (see the module doc).
    """
    moves, vols = zip(*(_block(model, sim, b) for b in blocks), strict=True)
    return np.concatenate(moves), np.concatenate(vols)


def simulate(model: JointModel, sim: Simulation) -> tuple[np.ndarray, np.ndarray]:
    """Every path of ``sim``: (paths × underlyings) price and implied-vol moves."""
    return simulate_blocks(model, sim, range(sim.blocks))


@functools.lru_cache(maxsize=32)
def _day_basis(h: int) -> np.ndarray:
    """An orthonormal h × h basis whose first column is the equal-weight sum (1/√h each)."""
    q, _ = np.linalg.qr(np.column_stack([np.ones(h), np.eye(h)[:, 1:]]))
    return q * np.sign(q[0, 0])


def _block(
    model: JointModel, sim: Simulation, block: int, record: list | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Price and implied-vol moves over the MPOR of ``block``'s paths; with ``record`` (a list)
    also each day's log return, conditional volatility and log implied-vol ratio at its close
    appended to it, as (n × h × U) arrays — what an intraday path needs.
    """
    _check(0 <= block < sim.blocks, "block", f"{block} not in 0..{sim.blocks - 1}")
    u_count, h = len(model.underlyings), sim.horizon
    # the coordinates that move the MPOR's loss most come first (Sobol's first dimensions
    # are its most even): each underlying's whole-MPOR normal, then the χ² draw (or the
    # residual row) of every day — what makes a tail heavy — then the normals that split
    # the MPOR into days, then the implied vols' own noise
    uniform = _uniforms(sim, block, _dimension(sim, u_count))[: sim.block_paths(block)]
    n = len(uniform)
    split = u_count + h
    price = np.concatenate(
        [
            uniform[:, None, :u_count],
            uniform[:, split : split + (h - 1) * u_count].reshape(n, h - 1, u_count),
        ],
        axis=1,
    )
    extra = uniform[:, u_count:split]
    # the first coordinate of each underlying is its whole-MPOR normal, the others split it
    # into days (an orthonormal basis: the days' normals stay independent standard normals)
    standard = special.ndtri(price)
    if sim.importance:  # the whole-MPOR normals widened (their weights: path_weights)
        standard[:, 0, :] *= IMPORTANCE_SCALE
    days = np.einsum("dk,nku->ndu", _day_basis(h), standard)
    normal = np.concatenate(
        [days, special.ndtri(uniform[:, h * (u_count + 1) :].reshape(n, h, u_count))], axis=2
    )
    if sim.innovations is Innovations.FILTERED_HISTORICAL:
        if model.residuals is None:
            raise ValueError("filtered-historical paths need the joint standardised residuals")
        last = len(model.residuals) - 1
        if model.residual_weights is None:
            rows = np.minimum((extra * len(model.residuals)).astype(np.int64), last)
        else:  # the inverse of the weights' distribution function
            cdf = np.cumsum(model.residual_weights)
            rows = np.minimum(np.searchsorted(cdf, extra * cdf[-1], side="right"), last)
        z = model.residuals[rows]  # (n, h, U)
    else:
        z = normal[:, :, :u_count] @ model.cholesky.T
        if sim.innovations is Innovations.STUDENT_T:
            w = stats.chi2.ppf(extra, sim.dof)
            if sim.importance:
                w = IMPORTANCE_CHI2 * w
            z = z * np.sqrt((sim.dof - 2.0) / w)[:, :, None]
    noise = normal[:, :, u_count:]
    moves = np.empty((n, u_count))
    vols = np.empty((n, u_count))
    daily = np.empty((3, n, h, u_count)) if record is not None else None
    for j, d in enumerate(model.dynamics):
        variance = np.full(n, d.sigma**2)
        total = np.zeros(n)
        x = np.zeros(n)
        kick = math.sqrt(max(1.0 - d.spot_vol_correlation**2, 0.0))
        target = math.log(d.iv_level_ratio)
        for day in range(h):
            r = np.sqrt(variance) * z[:, day, j]
            if daily is not None:
                daily[0, :, day, j], daily[1, :, day, j] = r, np.sqrt(variance)
            total += r
            if d.recursive:
                variance = d.omega + (d.alpha + d.gamma * (r < 0)) * r * r + d.beta * variance
            x = (
                x
                + d.iv_mean_reversion * (target - x)
                + d.vol_of_vol * (d.spot_vol_correlation * z[:, day, j] + kick * noise[:, day, j])
            )
            if daily is not None:
                daily[2, :, day, j] = x
        moves[:, j] = np.expm1(total)
        vols[:, j] = np.expm1(x)
    if record is not None:
        record.append(daily)
    return moves, vols


def intraday_paths(
    model: JointModel, sim: Simulation, steps_per_day: int, *, with_vols: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Price paths of every underlying, ``steps_per_day`` points a day over the horizon, as
    ratios to the starting price: (paths × underlyings × horizon·steps_per_day); with
    ``with_vols`` also the implied vols' ratios to the start at the same points.

    The daily log returns are the joint simulation's (the same draws as :func:`simulate`);
    within a day the log price follows a Brownian bridge from the day's start to its close
    with that day's conditional volatility,

    .. math::

        \\log S_{d,k} = \\log S_{d-1} + \\tfrac{k}{m} r_d
            + \\sigma_d \\left(W_k - \\tfrac{k}{m} W_m\\right) / \\sqrt{m},
        \\quad k = 1..m,

    with :math:`W` a standard random walk of its own stream per block (so intraday lows and
    highs exist, and the close is exactly the daily path's). The implied vol's log ratio moves
    in a straight line from one close's to the next (the model is daily). Deterministic in
    ``sim.seed`` whatever the chunking, like every block.
    """
    _check(1 <= steps_per_day <= 96, "steps_per_day", f"{steps_per_day!r} must be 1..96")
    _check(not sim.importance, "importance", "intraday paths are drawn as the model draws them")
    m, h, u_count = steps_per_day, sim.horizon, len(model.underlyings)
    parts, vol_parts = [], []
    k = np.arange(1, m + 1) / m
    for block in range(sim.blocks):
        record: list = []
        _block(model, sim, block, record)
        r, sigma, x = record[0]
        n = r.shape[0]
        walk = np.cumsum(
            np.random.default_rng([sim.seed, block, 7]).standard_normal((n, h, u_count, m)), axis=3
        )
        bridge = walk - k * walk[..., -1:]
        start = np.concatenate([np.zeros((n, 1, u_count)), np.cumsum(r, axis=1)[:, :-1]], axis=1)
        log_path = start[..., None] + k * r[..., None] + sigma[..., None] * bridge / math.sqrt(m)
        parts.append(np.exp(log_path.transpose(0, 2, 1, 3).reshape(n, u_count, h * m)))
        if with_vols:
            before = np.concatenate([np.zeros((n, 1, u_count)), x[:, :-1]], axis=1)
            log_vol = before[..., None] + k * (x - before)[..., None]
            vol_parts.append(np.exp(log_vol.transpose(0, 2, 1, 3).reshape(n, u_count, h * m)))
    if with_vols:
        return np.concatenate(parts), np.concatenate(vol_parts)
    return np.concatenate(parts)


# --------------------------------------------------------------------------- measures


@dataclass(frozen=True)
class TailMeasures:
    """VaR and ES of each row of losses, their standard errors, and the path weights whose
    sum against the losses is ES (``tail_paths[r]`` with ``tail_weights[r]``).
    """

    var: np.ndarray
    es: np.ndarray
    var_standard_error: np.ndarray
    es_standard_error: np.ndarray
    tail_paths: np.ndarray  # rows × m path indices
    tail_weights: np.ndarray  # rows × m weights


def tail_measures(losses: np.ndarray, level: float) -> TailMeasures:
    """VaR and ES at ``level`` of each row of ``losses`` (rows × N equally likely paths)."""
    return tail_measures_at(losses, (level,))[0]


def tail_measures_at(
    losses: np.ndarray, levels: Sequence[float], weights: np.ndarray | None = None
) -> list[TailMeasures]:
    """:func:`tail_measures` at each of ``levels``, from one partial sort of each row. With
    importance ``weights`` (one per path, mean one) the paths' masses are ``weights / N`` (see
    the module doc) and the standard errors are left NaN: the scrambles' spread gives them
    (:func:`mc_margin`).
    """
    for level in levels:
        _check(0.5 < level < 1, "level", f"{level!r} must be in (0.5, 1)")
    losses = np.atleast_2d(np.asarray(losses, dtype=float))
    if weights is not None:
        weights = np.asarray(weights, dtype=float)
        _check(
            weights.shape == (losses.shape[1],),
            "weights",
            f"one per path: {losses.shape[1]} expected, got shape {weights.shape}",
        )
        _check(
            bool(np.isfinite(weights).all() and (weights >= 0).all() and weights.sum() > 0),
            "weights",
            "must be finite, non-negative and not all zero",
        )
        nan = np.full(len(losses), np.nan)
        return [
            TailMeasures(var, es, nan, nan, paths, tail_weights)
            for var, es, paths, tail_weights in _weighted_tails(losses, weights, levels)
        ]
    rows, n = losses.shape
    ranks = []
    for level in levels:
        k = min(max(math.ceil(level * n - 1e-9), 1), n)  # 1-based rank of VaR
        m = max(math.ceil(math.sqrt(n * level * (1 - level))), 1)
        ranks.append((k, max(k - m, 1), min(k + m, n)))
    # the ranks needed and everything above them, without sorting every row
    kth = sorted({r - 1 for rank in ranks for r in rank})
    order = np.argpartition(losses, kth, axis=1)
    part = np.take_along_axis(losses, order, axis=1)
    out = []
    for level, (k, low, high) in zip(levels, ranks, strict=True):
        var = part[:, k - 1]
        tail = part[:, k:]
        es = (tail.sum(axis=1) / n + (k / n - level) * var) / (1 - level)
        weights = np.full((rows, n - k + 1), 1.0 / (n * (1 - level)))
        weights[:, 0] = (k / n - level) / (1 - level)
        spread = tail.var(axis=1, ddof=1) if tail.shape[1] > 1 else np.zeros(rows)
        es_se = np.sqrt((spread + level * (es - var) ** 2) / (n * (1 - level)))
        var_se = (part[:, high - 1] - part[:, low - 1]) / 2.0
        # the VaR path, then the paths beyond it
        out.append(TailMeasures(var, es, var_se, es_se, order[:, k - 1 :], weights))
    return out


def _largest(losses: np.ndarray, mass: np.ndarray, widest: float) -> tuple[np.ndarray, np.ndarray]:
    """Each row's largest losses, largest first, and their paths: as many as hold more than
    ``widest`` of the paths' ``mass`` (only those are sorted).
    """
    rows, n = losses.shape
    k = min(n, max(64, math.ceil(4 * widest * n)))
    while True:
        if k < n:
            top = np.argpartition(losses, n - k, axis=1)[:, n - k :]
        else:
            top = np.broadcast_to(np.arange(n), (rows, n))
        part = np.take_along_axis(losses, top, axis=1)
        order = np.argsort(-part, axis=1, kind="stable")
        paths = np.take_along_axis(top, order, axis=1)
        if k == n or bool((mass[paths].sum(axis=1) > widest).all()):
            return paths, np.take_along_axis(part, order, axis=1)
        k = min(n, 2 * k)  # some row's widest tail is not inside its k largest losses yet


def _tail(
    ordered: np.ndarray, masses: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """VaR, ES and the ES weights (rows × width, zero past the VaR path) of rows of losses in
    decreasing order whose paths have ``masses``.
    """
    a = 1.0 - level
    cum = np.cumsum(masses, axis=1)
    r = np.arange(len(ordered))
    # the VaR path: the first whose mass, with the larger losses', exceeds 1 - level
    j = np.minimum((cum <= a).sum(axis=1), ordered.shape[1] - 1)
    width = int(j.max()) + 1
    before = np.where(j > 0, cum[r, np.maximum(j - 1, 0)], 0.0)
    weights = np.where(np.arange(width)[None, :] < j[:, None], masses[:, :width] / a, 0.0)
    weights[r, j] = (a - before) / a
    return ordered[r, j], (weights * ordered[:, :width]).sum(axis=1), weights


def _weighted_tails(
    losses: np.ndarray,
    weights: np.ndarray,
    levels: Sequence[float],
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per level: VaR and ES of each row of ``losses`` whose paths have masses ``weights / N``,
    the paths of the tail (largest loss first) and their weights in ES (zero past the VaR
    path).
    """
    mass = np.asarray(weights, dtype=float) / losses.shape[1]
    paths, ordered = _largest(losses, mass, max(1.0 - level for level in levels))
    out = []
    for level in levels:
        var, es, tail_weights = _tail(ordered, mass[paths], level)
        out.append((var, es, np.ascontiguousarray(paths[:, : tail_weights.shape[1]]), tail_weights))
    return out


# --------------------------------------------------------------------------- the margin


@dataclass(frozen=True)
class MonteCarloResult:
    """The margin, with what the estimate rests on: per result row the VaR, ES and their
    standard errors; per position its Euler contribution to ES (summing to each row's ES).
    """

    margin: MarginResult
    var: np.ndarray
    es: np.ndarray
    var_standard_error: np.ndarray
    es_standard_error: np.ndarray
    contribution: np.ndarray  # per position (positions' order), to its row's ES
    row_of_position: np.ndarray
    paths: int
    seed: int


def _revalue(
    positions: Positions, model: JointModel, sim: Simulation, blocks: Sequence[int]
) -> np.ndarray:
    """P&L per unit of every instrument on the paths of ``blocks`` (instruments × paths;
    only the instruments held are revalued, the others' rows are zero).
    """
    book, table = positions.book, positions.book.table
    held = np.unique(positions.instrument)
    held_groups = np.unique(table.group[held])
    missing = sorted({table.groups[g][1] for g in held_groups} - set(model.underlyings))
    if missing:
        raise ValueError(f"no dynamics for underlying(s) {', '.join(missing)}")
    column = np.array(
        [model.underlyings.index(u) if u in model.underlyings else -1 for _, u in table.groups],
        dtype=np.int64,
    )
    u_of = column[table.group[held]]
    moves, vols = simulate_blocks(model, sim, blocks)
    out = np.zeros((len(table.names), len(moves)))
    out[held] = book.scenario_pnl(
        moves.T[u_of], book.vol[held, None] * (1.0 + vols.T[u_of]), rows=held
    )
    return out


def _var_es(
    losses: np.ndarray, levels: Sequence[float], weights: np.ndarray | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """VaR and ES of each row at each of ``levels`` (as :func:`tail_measures`, values only),
    from one partial sort.
    """
    if weights is not None:
        return [(var, es) for var, es, _, _ in _weighted_tails(losses, weights, levels)]
    n = losses.shape[1]
    ranks = [min(max(math.ceil(level * n - 1e-9), 1), n) for level in levels]
    part = np.partition(losses, sorted({k - 1 for k in ranks}), axis=1)
    out = []
    for level, k in zip(levels, ranks, strict=True):
        var = part[:, k - 1]
        out.append((var, (part[:, k:].sum(axis=1) / n + (k / n - level) * var) / (1 - level)))
    return out


def _var_and_es(
    losses: np.ndarray, p: VarParams, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """VaR at the VaR level and ES at the ES level of each row (values only)."""
    (var, _), (_, es) = _var_es(losses, (p.var_confidence, p.es_confidence), weights)
    return var, es


def _replicate_errors(
    losses: np.ndarray,
    pooled: tuple[TailMeasures, TailMeasures],
    p: VarParams,
    weights: np.ndarray | None = None,
) -> tuple[TailMeasures, TailMeasures]:
    """Standard errors of quasi-random estimates: the spread of the estimates of the
    :data:`SOBOL_REPLICATES` independent scrambles over √R (the independent-path formulas
    would ignore what the low discrepancy gains).
    """
    root = math.sqrt(SOBOL_REPLICATES)
    levels = (p.var_confidence, p.es_confidence)
    per = [
        _var_es(
            losses[:, r::SOBOL_REPLICATES],
            levels,
            None if weights is None else weights[r::SOBOL_REPLICATES],
        )
        for r in range(SOBOL_REPLICATES)
    ]
    out = []
    for j, measures in enumerate(pooled):
        var_r = np.stack([replicate[j][0] for replicate in per])
        es_r = np.stack([replicate[j][1] for replicate in per])
        out.append(
            dataclasses.replace(
                measures,
                var_standard_error=var_r.std(axis=0, ddof=1) / root,
                es_standard_error=es_r.std(axis=0, ddof=1) / root,
            )
        )
    return out[0], out[1]


def _euler(
    positions: Positions, pnl: np.ndarray, row_of_position: np.ndarray, tail: TailMeasures
) -> np.ndarray:
    """Each position's Euler contribution to its row's ES: its own loss on the row's tail
    paths with the same weights (a row at a time: its positions × its tail, no larger).
    """
    out = np.zeros(len(row_of_position))
    order = np.argsort(row_of_position, kind="stable")
    bounds = np.searchsorted(row_of_position[order], np.arange(len(tail.es) + 1))
    for r in range(len(tail.es)):
        members = order[bounds[r] : bounds[r + 1]]
        if not len(members):
            continue
        weights = tail.tail_weights[r]
        counted = weights != 0
        own = pnl[np.ix_(positions.instrument[members], tail.tail_paths[r][counted])]
        out[members] = -positions.quantity[members] * (own @ weights[counted])
    return out


def _chunks(sim: Simulation, chunks: int) -> list[list[int]]:
    chunks = max(1, min(chunks, sim.blocks))
    return [list(range(sim.blocks))[c::chunks] for c in range(chunks)]


def _paths_pnl(
    positions: Positions, model: JointModel, sim: Simulation, plan: list[list[int]], mapper: Mapper
) -> np.ndarray:
    """Instruments × paths P&L, the blocks revalued as ``plan``'s tasks and put back in
    block order whatever the chunking.
    """
    parts = list(mapper(lambda blocks: _revalue(positions, model, sim, blocks), plan))
    by_block = {}
    for blocks, part in zip(plan, parts, strict=True):
        start = 0
        for b in blocks:
            size = sim.block_paths(b)
            by_block[b] = part[:, start : start + size]
            start += size
    return np.concatenate([by_block[b] for b in sorted(by_block)], axis=1)


def mc_margin(
    positions: Positions,
    model: JointModel,
    sim: Simulation,
    params: ModelParams | None = None,
    *,
    measure: VarMeasure | str = VarMeasure.ES,
    chunks: int = 1,
    mapper: Mapper = map,
    floor: JointModel | None = None,
) -> MonteCarloResult:
    """Monte Carlo VaR or ES margin per (account, settlement currency).

    The paths are revalued in ``chunks`` tasks through ``mapper`` (the built-in ``map``, or a
    Dask client's); the result does not depend on either. The margin is the measure at the
    policy's confidence (``var.var_confidence`` / ``var.es_confidence``), at least zero, under
    the anti-procyclicality tool: ``buffer`` adds its buffer; ``floor`` keeps the margin at
    least the same measure under ``floor`` (the long look-back's model, on the same draws:
    common random numbers, so the floor binds by the model and not by noise); ``stressed-
    weight`` is the model's (its residual rows' weights, :class:`JointModel`).
    """
    params = params or ModelParams()
    measure = VarMeasure(measure)
    p = params.var
    plan = _chunks(sim, chunks)
    pnl = _paths_pnl(positions, model, sim, plan, mapper)  # instruments × N
    present, account_of_row, currency_of_row = positions.layout
    n_rows_all = positions.n_accounts * len(positions.currencies)
    row_index = np.full(n_rows_all, -1, dtype=np.int64)
    row_index[np.flatnonzero(present)] = np.arange(int(present.sum()))
    row_of_position = row_index[positions.currency_row]
    currency_matrix = positions.matrix(positions.currency_row, n_rows_all)[present]
    losses = -np.asarray(currency_matrix @ pnl)  # rows × N
    ratio = path_weights(model, sim)  # importance weights (None: every path weighs one)
    tail_var, tail_es = tail_measures_at(losses, (p.var_confidence, p.es_confidence), ratio)
    if sim.sampling is Sampling.SOBOL:
        tail_var, tail_es = _replicate_errors(losses, (tail_var, tail_es), p, ratio)
    contribution = _euler(positions, pnl, row_of_position, tail_es)
    base = np.maximum(tail_var.var if measure is VarMeasure.VAR else tail_es.es, 0.0)
    components = {
        "var": tail_var.var,
        "es": tail_es.es,
        "var_at_es_level": tail_es.var,
        "var_standard_error": tail_var.var_standard_error,
        "es_standard_error": tail_es.es_standard_error,
    }

    def floor_measure() -> np.ndarray:
        assert floor is not None
        losses = -np.asarray(currency_matrix @ _paths_pnl(positions, floor, sim, plan, mapper))
        floor_var, floor_es = _var_and_es(losses, p, ratio)
        return floor_var if measure is VarMeasure.VAR else floor_es

    margin, tool = anti_procyclical(base, p, floor_measure if floor is not None else None)
    components.update(tool)
    result = MarginResult(
        model=f"mc-{measure.value}",
        account=account_of_row,
        accounts=positions.accounts,
        currency=currency_of_row,
        initial_margin=margin,
        maintenance_margin=params.mm_factor * margin,
        equity=positions.equity(),
        components=components,
        errors=positions.errors,
    )
    return MonteCarloResult(
        result,
        tail_var.var,
        tail_es.es,
        tail_var.var_standard_error,
        tail_es.es_standard_error,
        contribution,
        row_of_position,
        sim.paths,
        sim.seed,
    )
