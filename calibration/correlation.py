"""Correlation between underlyings: EWMA, constant conditional correlation (CCC), DCC(1,1)
by two-step quasi-maximum likelihood, positive semi-definiteness checks with a reported
nearest-correlation repair, and stressed correlation over named windows.

All functions take standardized residuals ``z`` (T × N, one column per asset, from the
univariate fits) except :func:`stressed_correlations`, which takes returns.

DCC(1,1) (Engle 2002), with correlation targeting :math:`\\bar Q = \\frac1T\\sum_t z_t z_t'`:

.. math::

    Q_t = (1 - a - b)\\,\\bar Q + a\\, z_{t-1} z_{t-1}' + b\\, Q_{t-1}, \\qquad
    R_t = \\operatorname{diag}(Q_t)^{-1/2} Q_t \\operatorname{diag}(Q_t)^{-1/2}

estimated in the second step by maximising the correlation part of the Gaussian
log-likelihood, :math:`L_c(a, b) = -\\tfrac12\\sum_t (\\ln|R_t| + z_t' R_t^{-1} z_t - z_t'z_t)`,
subject to :math:`a, b \\ge 0,\\ a + b < 1`. Standard errors are from the numerical Hessian of
:math:`L_c` alone (they ignore first-step estimation error, so they are somewhat too small).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import pandas as pd
from scipy import optimize, signal
from statsmodels.stats.correlation_tools import corr_nearest

from calibration.lineage import library_versions
from calibration.stress import STRESS_WINDOWS, StressWindow
from vocabulary import EWMA_LAMBDA

PSD_TOLERANCE = -1e-10  # smallest eigenvalue still accepted as PSD (rounding)
STATIONARITY_MARGIN = 1e-6  # a + b <= 1 - margin
# a + b this close to 1 is the optimizer on the stationarity constraint: the correlation process
# is integrated in all but name (a shock's half-life > 19 years), as for the univariate fits
BOUNDARY_MARGIN = 1e-4


class DccBoundary(StrEnum):
    """What a calibration uses when the DCC estimate is integrated (a + b on its boundary)."""

    EWMA = "ewma"  # the EWMA correlation (RiskMetrics), which is integrated by construction
    CAP = "cap"  # DCC re-estimated with its persistence a + b capped below one


@dataclass(frozen=True)
class PsdReport:
    """Whether a correlation matrix was positive semi-definite and what the repair changed."""

    psd_before: bool
    min_eigenvalue_before: float
    repaired: bool
    min_eigenvalue_after: float
    frobenius_change: float  # ||R_repaired - R||_F


def min_eigenvalue(matrix: np.ndarray) -> float:
    """The smallest eigenvalue of the symmetrised ``matrix``."""
    return float(np.linalg.eigvalsh((matrix + matrix.T) / 2).min())


def is_psd(matrix: np.ndarray, tolerance: float = PSD_TOLERANCE) -> bool:
    """Whether ``matrix`` is positive semi-definite within ``tolerance``."""
    return min_eigenvalue(matrix) >= tolerance


def ensure_psd(matrix: np.ndarray) -> tuple[np.ndarray, PsdReport]:
    """Return ``matrix`` if it is a PSD correlation matrix, else its nearest correlation matrix
    (Higham's alternating projections, ``statsmodels.stats.correlation_tools.corr_nearest``),
    with a report of the repair. Never repairs silently: the report says what changed.
    """
    matrix = (np.asarray(matrix, dtype=float) + np.asarray(matrix, dtype=float).T) / 2
    before = min_eigenvalue(matrix)
    if before >= PSD_TOLERANCE:
        return matrix, PsdReport(True, before, False, before, 0.0)
    with warnings.catch_warnings():
        # statsmodels warns when its (strict) stopping rule is not met within its iteration
        # budget; the result is checked below instead
        warnings.simplefilter("ignore")
        repaired = corr_nearest(matrix, threshold=1e-10, n_fact=1000)
    repaired = (repaired + repaired.T) / 2
    np.fill_diagonal(repaired, 1.0)
    if min_eigenvalue(repaired) < PSD_TOLERANCE:
        raise ArithmeticError(
            f"nearest-correlation repair failed: min eigenvalue {min_eigenvalue(repaired):.3g}"
        )
    return repaired, PsdReport(
        False, before, True, min_eigenvalue(repaired), float(np.linalg.norm(repaired - matrix))
    )


def _to_corr(q: np.ndarray) -> np.ndarray:
    """Normalise covariance-like matrices (…, N, N) to correlations."""
    d = np.sqrt(np.einsum("...ii->...i", q))
    return q / (d[..., :, None] * d[..., None, :])


def _clean(z: pd.DataFrame | np.ndarray) -> tuple[np.ndarray, list[str], pd.Index | None]:
    if isinstance(z, pd.DataFrame):
        frame = z.dropna()
        return frame.to_numpy(dtype=float), [str(c) for c in frame.columns], frame.index
    array = np.asarray(z, dtype=float)
    array = array[np.isfinite(array).all(axis=1)]
    return array, [f"x{i}" for i in range(array.shape[1])], None


@dataclass(frozen=True)
class CorrelationEstimate:
    """A correlation matrix (the latest one for time-varying methods) and its PSD report."""

    method: str
    assets: tuple[str, ...]
    matrix: np.ndarray
    psd: PsdReport
    n_obs: int
    start: str | None
    end: str | None
    details: dict = field(default_factory=dict)

    def as_frame(self) -> pd.DataFrame:
        """The matrix labelled by asset."""
        return pd.DataFrame(self.matrix, index=self.assets, columns=self.assets)

    def to_dict(self) -> dict:
        """The estimate as JSON-safe values."""
        return {
            "method": self.method,
            "assets": list(self.assets),
            "matrix": self.matrix.tolist(),
            "psd": self.psd.__dict__,
            "n_obs": self.n_obs,
            "start": self.start,
            "end": self.end,
            "details": self.details,
        }


def _label(index: pd.Index | None, position: int) -> str | None:
    if index is None or len(index) == 0:
        return None
    value = index[position]
    return (
        value.date().isoformat() if hasattr(value, "date") and callable(value.date) else str(value)
    )


def ccc_correlation(z: pd.DataFrame | np.ndarray) -> CorrelationEstimate:
    """Constant conditional correlation: the sample correlation of standardized residuals."""
    array, names, index = _clean(z)
    matrix, report = ensure_psd(np.corrcoef(array, rowvar=False))
    return CorrelationEstimate(
        "ccc", tuple(names), matrix, report, len(array), _label(index, 0), _label(index, -1)
    )


def ewma_correlation_path(z: np.ndarray, lam: float = EWMA_LAMBDA) -> np.ndarray:
    """EWMA correlations :math:`Q_t = \\lambda Q_{t-1} + (1-\\lambda) z_{t-1}z_{t-1}'`, started at the
    sample second moment; returns R for t = 1..T+1 (the last is the forecast), shape (T+1, N, N).
    """
    outer = np.einsum("ti,tj->tij", z, z)
    start = outer.mean(axis=0)
    flat = outer.reshape(len(z), -1) * (1 - lam)
    q = signal.lfilter([1.0], [1.0, -lam], flat, axis=0, zi=(lam * start.reshape(1, -1)))[0]
    q = np.concatenate([start[None], q.reshape(len(z), *start.shape)], axis=0)
    return _to_corr(q)


def ewma_correlation(z: pd.DataFrame | np.ndarray, lam: float = EWMA_LAMBDA) -> CorrelationEstimate:
    """The EWMA correlation forecast for the day after the sample (RiskMetrics, λ = 0.94)."""
    if not 0 < lam < 1:
        raise ValueError(f"EWMA lambda must be in (0, 1), got {lam}")
    array, names, index = _clean(z)
    matrix, report = ensure_psd(ewma_correlation_path(array, lam)[-1])
    return CorrelationEstimate(
        "ewma",
        tuple(names),
        matrix,
        report,
        len(array),
        _label(index, 0),
        _label(index, -1),
        {"lambda": lam},
    )


def dcc_q_path(z: np.ndarray, a: float, b: float, qbar: np.ndarray) -> np.ndarray:
    """:math:`Q_1 … Q_{T+1}` of DCC(1,1) (the last is the one-step forecast), shape (T+1, N, N)."""
    t_obs, n = z.shape
    outer = np.einsum("ti,tj->tij", z, z).reshape(t_obs, n * n)
    drive = (1 - a - b) * qbar.reshape(1, -1) + a * outer
    q = signal.lfilter([1.0], [1.0, -b], drive, axis=0, zi=b * qbar.reshape(1, -1))[0]
    return np.concatenate([qbar[None], q.reshape(t_obs, n, n)], axis=0)


def dcc_loglik(
    params: tuple[float, float] | np.ndarray, z: np.ndarray, qbar: np.ndarray | None = None
) -> float:
    """Correlation part of the Gaussian log-likelihood of DCC(1,1) at ``(a, b)``."""
    a, b = float(params[0]), float(params[1])
    if qbar is None:
        qbar = z.T @ z / len(z)
    # the optimizer may probe (a, b) outside the admissible region, where Q_t loses its
    # positive diagonal: such points are infeasible, not errors
    with np.errstate(invalid="ignore", divide="ignore"):
        r = _to_corr(dcc_q_path(z, a, b, qbar)[:-1])
        if not np.isfinite(r).all():
            return -math.inf
        sign, logdet = np.linalg.slogdet(r)
    if np.any(sign <= 0):
        return -math.inf
    solved = np.linalg.solve(r, z[..., None])[..., 0]
    quad = np.einsum("ti,ti->t", z, solved)
    return float(-0.5 * np.sum(logdet + quad - np.einsum("ti,ti->t", z, z)))


@dataclass(frozen=True)
class DccFit:
    """DCC(1,1) estimates, diagnostics and the one-step-ahead correlation."""

    assets: tuple[str, ...]
    a: float
    b: float
    se_a: float
    se_b: float
    loglik: float
    converged: bool
    message: str
    qbar: np.ndarray
    forecast: CorrelationEstimate
    n_obs: int
    library_versions: dict[str, str]
    path: np.ndarray = field(repr=False)  # R_1 … R_{T+1}, shape (T+1, N, N)

    max_persistence: float = 1 - STATIONARITY_MARGIN

    @property
    def persistence(self) -> float:
        """Persistence ``a + b`` of the DCC recursion."""
        return self.a + self.b

    @property
    def integrated(self) -> bool:
        """A + b within :data:`BOUNDARY_MARGIN` of one: correlation shocks never decay (the
        estimate sits on its stationarity constraint, its standard errors are undefined).
        """
        return self.persistence >= 1.0 - BOUNDARY_MARGIN

    @property
    def capped(self) -> bool:
        """Estimated under a persistence cap below one that binds."""
        return self.max_persistence < 1 - STATIONARITY_MARGIN and (
            self.persistence >= self.max_persistence - 1e-6
        )

    def to_dict(self) -> dict:
        """The fit as JSON-safe values."""
        return {
            "assets": list(self.assets),
            "a": self.a,
            "b": self.b,
            "se_a": self.se_a,
            "se_b": self.se_b,
            "persistence": self.persistence,
            "integrated": self.integrated,
            "max_persistence": self.max_persistence,
            "loglik": self.loglik,
            "converged": self.converged,
            "message": self.message,
            "qbar": self.qbar.tolist(),
            "forecast": self.forecast.to_dict(),
            "n_obs": self.n_obs,
            "library_versions": self.library_versions,
        }


def _hessian(f: Callable[[np.ndarray], float], x: np.ndarray, step: float = 1e-4) -> np.ndarray:
    n = len(x)
    h = np.zeros((n, n))
    for i in range(n):
        for j in range(i, n):
            ei = np.zeros(n)
            ej = np.zeros(n)
            ei[i] = step
            ej[j] = step
            value = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (
                4 * step * step
            )
            h[i, j] = h[j, i] = value
    return h


def fit_dcc(
    z: pd.DataFrame | np.ndarray,
    *,
    starting_values: tuple[float, float] = (0.03, 0.94),
    max_persistence: float = 1 - STATIONARITY_MARGIN,
) -> DccFit:
    """Second step of DCC(1,1) QML on standardized residuals ``z`` (T × N).

    Maximises :func:`dcc_loglik` with SLSQP under ``a >= 0``, ``b >= 0``,
    ``a + b <= max_persistence`` (default ``1 - 1e-6``); also tries a grid of starting points
    and keeps the best optimum. A result with ``a + b`` on one is flagged :attr:`DccFit.integrated`.
    """
    if not 0 < max_persistence <= 1 - STATIONARITY_MARGIN:
        raise ValueError(
            f"max_persistence must be in (0, {1 - STATIONARITY_MARGIN}], got {max_persistence}"
        )
    array, names, index = _clean(z)
    if array.shape[1] < 2:
        raise ValueError("DCC needs at least two series")
    if len(array) < 100:
        raise ValueError(f"DCC needs at least 100 joint observations, got {len(array)}")
    qbar = array.T @ array / len(array)

    def objective(x: np.ndarray) -> float:
        value = -dcc_loglik(x, array, qbar)
        return value if math.isfinite(value) else 1e12

    constraints = [{"type": "ineq", "fun": lambda x: max_persistence - x[0] - x[1]}]
    bounds = [(0.0, 1.0), (0.0, 1.0)]
    best = None
    for start in (starting_values, (0.01, 0.97), (0.05, 0.90), (0.10, 0.80)):
        if start[0] + start[1] > max_persistence:  # start inside the capped region
            scale = 0.99 * max_persistence / (start[0] + start[1])
            start = (start[0] * scale, start[1] * scale)
        result = optimize.minimize(
            objective,
            np.asarray(start, dtype=float),
            method="SLSQP",
            bounds=bounds,
            constraints=constraints,
            options={"ftol": 1e-10, "maxiter": 500},
        )
        if best is None or result.fun < best.fun:
            best = result
    assert best is not None  # two starting points always run
    a, b = (float(v) for v in best.x)
    interior = a > 1e-6 and b > 1e-6 and a + b < max_persistence - 2 * STATIONARITY_MARGIN
    se_a = se_b = math.nan
    if interior:
        try:
            cov = np.linalg.inv(_hessian(objective, best.x))
            if np.all(np.diag(cov) > 0):
                se_a, se_b = (float(v) for v in np.sqrt(np.diag(cov)))
        except np.linalg.LinAlgError:
            pass
    path = _to_corr(dcc_q_path(array, a, b, qbar))
    matrix, report = ensure_psd(path[-1])
    forecast = CorrelationEstimate(
        "dcc",
        tuple(names),
        matrix,
        report,
        len(array),
        _label(index, 0),
        _label(index, -1),
        {"a": a, "b": b},
    )
    return DccFit(
        assets=tuple(names),
        a=a,
        b=b,
        se_a=se_a,
        se_b=se_b,
        loglik=float(-best.fun),
        converged=bool(best.success) and a + b < 1,
        message=str(best.message),
        qbar=qbar,
        forecast=forecast,
        n_obs=len(array),
        library_versions=library_versions(),
        path=path,
        max_persistence=max_persistence,
    )


@dataclass(frozen=True)
class DccOutcome:
    """The DCC estimate, and what stands in for it when it is integrated.

    ``fallback`` is None for a usable (mean-reverting) DCC; otherwise the rule applied
    (:class:`DccBoundary`), ``fit`` is then the unconstrained (integrated) estimate and
    ``used`` the correlation forecast the calibration uses instead: the EWMA forecast, or the
    DCC re-estimated with its persistence capped (``capped_fit``).
    """

    fit: DccFit
    used: CorrelationEstimate
    fallback: DccBoundary | None = None
    capped_fit: DccFit | None = None
    note: str = ""

    def to_dict(self) -> dict:
        """The outcome as JSON-safe values."""
        return {
            "integrated": self.fit.integrated,
            "fallback": None if self.fallback is None else self.fallback.value,
            "note": self.note,
            "fit": self.fit.to_dict(),
            "capped_fit": None if self.capped_fit is None else self.capped_fit.to_dict(),
            "used": self.used.to_dict(),
        }


def dcc_with_fallback(
    z: pd.DataFrame | np.ndarray,
    *,
    on_boundary: DccBoundary | str = DccBoundary.EWMA,
    persistence_cap: float = 0.99,
    lam: float = EWMA_LAMBDA,
) -> DccOutcome:
    """:func:`fit_dcc`, and the policy's fallback when the estimate is integrated.

    An integrated DCC (a + b = 1) never forgets a correlation shock, so its forecast is not the
    mean-reverting model the recommendations assume; ``on_boundary`` chooses what is used
    instead: ``ewma`` — the EWMA correlation forecast (λ = ``lam``), which is integrated by
    design and says so; ``cap`` — DCC re-estimated under ``a + b <= persistence_cap``.
    """
    rule = DccBoundary(on_boundary)
    fit = fit_dcc(z)
    if not fit.integrated:
        return DccOutcome(fit, fit.forecast)
    head = (
        f"DCC on its boundary: a + b = {fit.persistence:.6f} (integrated: correlation shocks "
        "never decay; standard errors undefined)"
    )
    if rule is DccBoundary.EWMA:
        used = ewma_correlation(z, lam)
        return DccOutcome(
            fit, used, rule, note=f"{head}; the EWMA correlation (lambda {lam}) is used"
        )
    capped = fit_dcc(z, max_persistence=persistence_cap)
    return DccOutcome(
        fit,
        capped.forecast,
        rule,
        capped,
        note=f"{head}; DCC re-estimated with a + b <= {persistence_cap}: a = {capped.a:.4f}, "
        f"b = {capped.b:.4f}",
    )


def simulate_dcc(
    a: float, b: float, qbar: np.ndarray, n_obs: int, rng: np.random.Generator, *, burn: int = 500
) -> np.ndarray:
    """Standardized residuals from a Gaussian DCC(1,1) with known parameters, shape (n_obs, N)."""
    if a < 0 or b < 0 or a + b >= 1:
        raise ValueError(f"need a, b >= 0 and a + b < 1, got a={a}, b={b}")
    n = qbar.shape[0]
    q = qbar.copy()
    out = np.empty((n_obs + burn, n))
    for t in range(n_obs + burn):
        r = _to_corr(q)
        out[t] = np.linalg.cholesky(r) @ rng.standard_normal(n)
        q = (1 - a - b) * qbar + a * np.outer(out[t], out[t]) + b * q
    return out[burn:]


def stressed_correlations(
    returns: pd.DataFrame, windows: tuple[StressWindow, ...] = STRESS_WINDOWS, min_obs: int = 10
) -> dict[str, CorrelationEstimate]:
    """Correlation of returns inside each named stress window.

    Assets with fewer than ``min_obs`` returns in a window are left out of it; the others are
    correlated pairwise over the days both traded, which need not give a PSD matrix — it is
    then repaired and the report says so.
    """
    out = {}
    index = pd.DatetimeIndex(pd.to_datetime(returns.index))
    frame = pd.DataFrame(returns.to_numpy(), index=index, columns=returns.columns)
    for window in windows:
        inside = frame.loc[pd.Timestamp(window.start) : pd.Timestamp(window.end)]
        inside = inside.loc[:, inside.count() >= min_obs]
        if inside.shape[1] < 2:
            continue
        pairwise = inside.corr(min_periods=min_obs)
        keep = pairwise.notna().all()
        pairwise = pairwise.loc[keep, keep]
        if pairwise.shape[1] < 2:
            continue
        matrix, report = ensure_psd(pairwise.to_numpy())
        out[window.name] = CorrelationEstimate(
            "stressed",
            tuple(str(c) for c in pairwise.columns),
            matrix,
            report,
            int(inside.count().min()),
            window.start.isoformat(),
            window.end.isoformat(),
            {"window": window.name, "what": window.what},
        )
    return out
