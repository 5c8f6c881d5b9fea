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

**Measures.** Losses are positive. With :math:`N` equally likely paths and :math:`k =
\\lceil cN \\rceil`, :math:`\\mathrm{VaR}_c = L_{(k)}` and

.. math::

    \\mathrm{ES}_c = \\frac{1}{1-c}\\Big(\\frac{1}{N}\\sum_{i > k} L_{(i)}
    + \\big(\\tfrac{k}{N} - c\\big) L_{(k)}\\Big)

(Acerbi–Tasche). ES is a weighted sum of path losses, so position :math:`p`'s Euler
contribution is the same weighted sum of its own losses, and contributions add up to ES.
Standard errors, for independent (pseudo-random) paths: ES by Manistre and Hancock (2005),
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
    "simulate",
    "simulate_blocks",
    "tail_measures",
    "tail_measures_at",
]

BLOCK = 1024  # paths per block: the unit of streams, chunks and tasks (a power of 2 for Sobol)
SOBOL_REPLICATES = 8  # independent scrambles of Sobol paths (a divisor of BLOCK)
UNIFORM_EDGE = 1e-12  # uniforms are kept inside (0, 1) so that their normal quantiles are finite
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
    uniform = _uniforms(sim, block, h * (2 * u_count + 1))[: sim.block_paths(block)]
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
    days = np.einsum("dk,nku->ndu", _day_basis(h), special.ndtri(price))
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


def tail_measures_at(losses: np.ndarray, levels: Sequence[float]) -> list[TailMeasures]:
    """:func:`tail_measures` at each of ``levels``, from one partial sort of each row."""
    for level in levels:
        _check(0.5 < level < 1, "level", f"{level!r} must be in (0.5, 1)")
    losses = np.atleast_2d(np.asarray(losses, dtype=float))
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


def _var_es(losses: np.ndarray, levels: Sequence[float]) -> list[tuple[np.ndarray, np.ndarray]]:
    """VaR and ES of each row at each of ``levels`` (as :func:`tail_measures`, values only),
    from one partial sort.
    """
    n = losses.shape[1]
    ranks = [min(max(math.ceil(level * n - 1e-9), 1), n) for level in levels]
    part = np.partition(losses, sorted({k - 1 for k in ranks}), axis=1)
    out = []
    for level, k in zip(levels, ranks, strict=True):
        var = part[:, k - 1]
        out.append((var, (part[:, k:].sum(axis=1) / n + (k / n - level) * var) / (1 - level)))
    return out


def _var_and_es(losses: np.ndarray, p: VarParams) -> tuple[np.ndarray, np.ndarray]:
    """VaR at the VaR level and ES at the ES level of each row (values only)."""
    (var, _), (_, es) = _var_es(losses, (p.var_confidence, p.es_confidence))
    return var, es


def _replicate_errors(
    losses: np.ndarray, pooled: tuple[TailMeasures, TailMeasures], p: VarParams
) -> tuple[TailMeasures, TailMeasures]:
    """Standard errors of quasi-random estimates: the spread of the estimates of the
    :data:`SOBOL_REPLICATES` independent scrambles over √R (the independent-path formulas
    would ignore what the low discrepancy gains).
    """
    root = math.sqrt(SOBOL_REPLICATES)
    levels = (p.var_confidence, p.es_confidence)
    per = [_var_es(losses[:, r::SOBOL_REPLICATES], levels) for r in range(SOBOL_REPLICATES)]
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
    tail_var, tail_es = tail_measures_at(losses, (p.var_confidence, p.es_confidence))
    if sim.sampling is Sampling.SOBOL:
        tail_var, tail_es = _replicate_errors(losses, (tail_var, tail_es), p)
    # Euler: each position's loss on the ES tail paths of its row, with the same weights
    paths = tail_es.tail_paths[row_of_position]
    weights = tail_es.tail_weights[row_of_position]
    contribution = np.sum(
        -positions.quantity[:, None] * pnl[positions.instrument[:, None], paths] * weights, axis=1
    )
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
        floor_var, floor_es = _var_and_es(losses, p)
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
