"""Univariate volatility: GARCH, GJR-GARCH and EGARCH with normal, Student-t or skew-t
innovations, fitted with ``arch``; selection by BIC; an EWMA fallback that is never silent.

The spec, the fit and the result are separate (the ``arch`` way): a frozen
:class:`UnivariateSpec`, the pure function :func:`fit_univariate`, and a frozen
:class:`UnivariateFit` carrying everything needed to reproduce it.

Scale: ``arch`` is given percent returns (``100 r``); parameters are reported on that scale
(``omega`` in percent², ``mu`` in percent) and every variance or volatility the results return
is decimal. The GJR-GARCH(1,1) variance is

.. math::

    \\sigma^2_t = \\omega + (\\alpha + \\gamma\\,1\\{\\varepsilon_{t-1} < 0\\})\\,\\varepsilon^2_{t-1}
                 + \\beta\\,\\sigma^2_{t-1},
    \\qquad \\varepsilon_t = 100\\,r_t - \\mu = \\sigma_t z_t

with persistence :math:`\\alpha + \\kappa\\gamma + \\beta`, :math:`\\kappa = E[z^2 1\\{z<0\\}]`
(1/2 for symmetric innovations). EGARCH(1,1), as in ``arch``:
:math:`\\ln\\sigma^2_t = \\omega + \\alpha(|z_{t-1}| - \\sqrt{2/\\pi}) + \\gamma z_{t-1}
+ \\beta\\ln\\sigma^2_{t-1}`, persistence :math:`\\beta`.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

import numpy as np
import pandas as pd
from arch import arch_model
from arch.univariate import EWMAVariance, ZeroMean
from arch.univariate.base import ARCHModel, ARCHModelFixedResult, ARCHModelResult
from scipy import integrate
from statsmodels.stats.diagnostic import acorr_ljungbox

from calibration import DAYS_PER_YEAR
from calibration.lineage import library_versions, series_fingerprint
from calibration.returns import ReturnSeries
from vocabulary import EWMA_LAMBDA

SCALE = 100.0  # arch sees percent returns
LJUNG_BOX_LAGS = 10
BOUND_TOLERANCE = 1e-4  # relative distance to a bound that counts as "on the bound"
# SLSQP's stopping tolerance. arch's default (1e-6) can stop up to ~1e-4 log-likelihood short of
# the optimum, enough for a warm and a cold start to end at visibly different points; 1e-8
# costs about 10 % more iterations and makes both land on the same optimum.
FIT_TOL = 1e-8
# A persistence this close to 1 is the optimizer sitting on arch's stationarity constraint: the
# fit is integrated in all but name (half-life > 19 years) and is treated as non-stationary.
STATIONARITY_MARGIN = 1e-4


class VolProcess(StrEnum):
    """The volatility recursion of a GARCH-family model."""

    GARCH = "garch"
    GJR_GARCH = "gjr-garch"
    EGARCH = "egarch"


class Innovation(StrEnum):
    """The distribution of the standardised innovations."""

    NORMAL = "normal"
    STUDENT_T = "t"
    SKEW_T = "skew-t"


class MeanModel(StrEnum):
    """The mean of the returns: a constant, or zero."""

    CONSTANT = "constant"
    ZERO = "zero"


class FitStart(StrEnum):
    """Where an estimation started: arch's values, a warm start, or fixed parameters."""

    COLD = "cold"  # arch's own starting values
    WARM = "warm"  # a previous estimate
    FIXED = "fixed"  # approved parameters applied without estimation


_ARCH_VOL: dict[VolProcess, tuple[Literal["GARCH", "EGARCH"], int]] = {
    VolProcess.GARCH: ("GARCH", 0),
    VolProcess.GJR_GARCH: ("GARCH", 1),
    VolProcess.EGARCH: ("EGARCH", 1),
}
_ARCH_DIST: dict[Innovation, Literal["normal", "t", "skewt"]] = {
    Innovation.NORMAL: "normal",
    Innovation.STUDENT_T: "t",
    Innovation.SKEW_T: "skewt",
}
_LABEL = {VolProcess.GARCH: "GARCH", VolProcess.GJR_GARCH: "GJR-GARCH", VolProcess.EGARCH: "EGARCH"}


@contextlib.contextmanager
def _linear_constraint_jacobians():
    """Hand SLSQP the (constant) Jacobian of arch's linear parameter constraints.

    arch passes each row of its constraints ``A x - b >= 0`` to SciPy as a separate function
    without a Jacobian, so SciPy differentiates every row numerically at every iteration —
    more than half the cost of a GJR-GARCH-t fit. One vector constraint with Jacobian ``A``
    describes the same feasible set exactly; fits land on bit-identical optima (see the tests)
    in less than half the time. Applied only around our own ``fit`` calls; if arch ever drops
    the hook, fits simply run unchanged.
    """
    import arch.univariate.base as arch_base

    original = getattr(arch_base, "constraint", None)
    if original is None:  # pragma: no cover - a future arch without the hook
        yield
        return

    def vectorised(a, b):
        a = np.asarray(a, dtype=float)
        b = np.asarray(b, dtype=float)
        if a.shape[0] == 0:
            return []
        return [{"type": "ineq", "fun": lambda x, *args: a @ x - b, "jac": lambda x, *args: a}]

    arch_base.constraint = vectorised
    try:
        yield
    finally:
        arch_base.constraint = original


def _coerce(enum: type[StrEnum], value: object, field_name: str) -> StrEnum:
    try:
        return enum(str(value.value if isinstance(value, StrEnum) else value))
    except ValueError:
        choices = ", ".join(repr(m.value) for m in enum)
        raise ValueError(
            f"UnivariateSpec.{field_name}: {value!r} is not one of {choices}"
        ) from None


@dataclass(frozen=True)
class UnivariateSpec:
    """A GARCH-family model: volatility process × innovation distribution × mean, order (1,1)."""

    vol: VolProcess = VolProcess.GJR_GARCH
    dist: Innovation = Innovation.STUDENT_T
    mean: MeanModel = MeanModel.CONSTANT

    def __post_init__(self) -> None:
        object.__setattr__(self, "vol", _coerce(VolProcess, self.vol, "vol"))
        object.__setattr__(self, "dist", _coerce(Innovation, self.dist, "dist"))
        object.__setattr__(self, "mean", _coerce(MeanModel, self.mean, "mean"))

    @property
    def name(self) -> str:
        """The model's label, e.g. ``GJR-GARCH(1,1)-t``."""
        return f"{_LABEL[self.vol]}(1,1)-{self.dist.value}"

    def build(self, returns_pct: pd.Series) -> ARCHModel:
        """The ``arch`` model of this spec on percent returns."""
        vol, o = _ARCH_VOL[self.vol]
        return arch_model(
            returns_pct,
            mean="Constant" if self.mean is MeanModel.CONSTANT else "Zero",
            vol=vol,
            p=1,
            o=o,
            q=1,
            dist=_ARCH_DIST[self.dist],
            rescale=False,
        )

    def to_dict(self) -> dict:
        """The spec as JSON-safe values."""
        return {
            "vol": self.vol.value,
            "dist": self.dist.value,
            "mean": self.mean.value,
            "name": self.name,
        }


#: every combination, the candidates of :func:`select_by_bic`
ALL_SPECS: tuple[UnivariateSpec, ...] = tuple(
    UnivariateSpec(v, d) for v in VolProcess for d in Innovation
)
ALL_SPECS_ORDER = {spec: k for k, spec in enumerate(ALL_SPECS)}


@dataclass(frozen=True)
class DataWindow:
    """The exact data a result was computed from."""

    asset: str
    start: str
    end: str
    n_obs: int
    fingerprint: str
    gap_policy: str | None = None
    flagged_gaps: int = 0
    gaps: tuple[dict, ...] = ()  # each flagged multi-day return: date, span_days, return, action


@dataclass(frozen=True)
class LjungBox:
    """A Ljung–Box test of standardised residuals (or their squares)."""

    series: str  # "z" or "z^2"
    lags: int
    statistic: float
    pvalue: float


@dataclass(frozen=True)
class UnivariateFit:
    """A fitted (or fixed) GARCH-family model and its diagnostics.

    ``params`` and ``std_errors`` are on arch's percent scale; ``conditional_vol`` and every
    variance are decimal, daily.
    """

    asset: str
    spec: UnivariateSpec
    params: dict[str, float]
    std_errors: dict[str, float]
    loglik: float  # of the percent-scaled returns, as arch reports it
    aic: float
    bic: float
    converged: bool
    optimizer_message: str
    iterations: int | None
    persistence: float
    half_life_days: float | None
    unconditional_vol_annual: float | None
    ljung_box: tuple[LjungBox, ...]
    on_bounds: tuple[str, ...]
    window: DataWindow
    start: FitStart
    library_versions: dict[str, str]
    conditional_vol: pd.Series = field(repr=False, compare=False)
    std_resid: pd.Series = field(repr=False, compare=False)
    next_variance: float = 0.0  # sigma^2_{T+1 | T}, decimal
    result: ARCHModelResult | ARCHModelFixedResult | None = field(
        default=None, repr=False, compare=False
    )

    kind = "garch"

    @property
    def stationary(self) -> bool:
        """Persistence below ``1 - STATIONARITY_MARGIN`` (see there)."""
        return math.isfinite(self.persistence) and self.persistence < 1.0 - STATIONARITY_MARGIN

    @property
    def name(self) -> str:
        """The model's label."""
        return self.spec.name

    def forecast_variance(self, horizon: int) -> np.ndarray:
        """Decimal daily variances for days ``T+1 … T+horizon`` made at ``T``, shape (horizon,).

        GARCH/GJR-GARCH: the closed form
        :math:`\\sigma^2_{T+h} = \\bar\\sigma^2 + p^{h-1}(\\sigma^2_{T+1} - \\bar\\sigma^2)`.
        EGARCH: the log-variance forecast
        :math:`m_h = \\omega + \\alpha(E|z| - \\sqrt{2/\\pi}) + \\beta m_{h-1}`, reported as
        :math:`e^{m_h}` — a median-type forecast, because with Student-t innovations the mean
        :math:`E[\\sigma^2_{T+h}]` of EGARCH does not exist for h > 1 (it involves
        :math:`E[e^{\\alpha|z|}] = \\infty`) and simulated means never settle.
        """
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1 day, got {horizon}")
        return variance_path(self.spec, self.params, self.next_variance, horizon)

    @property
    def long_run_variance(self) -> float:
        """Unconditional daily variance (decimal); ``nan`` when not stationary."""
        if self.unconditional_vol_annual is None:
            return math.nan
        return self.unconditional_vol_annual**2 / DAYS_PER_YEAR

    def to_dict(self) -> dict:
        """The fit as JSON-safe values (parameters, errors, diagnostics, window)."""
        return {
            "asset": self.asset,
            "model": "garch",
            "spec": self.spec.to_dict(),
            "params": self.params,
            "std_errors": self.std_errors,
            "loglik": self.loglik,
            "aic": self.aic,
            "bic": self.bic,
            "converged": self.converged,
            "optimizer_message": self.optimizer_message,
            "iterations": self.iterations,
            "persistence": self.persistence,
            "half_life_days": self.half_life_days,
            "unconditional_vol_annual": self.unconditional_vol_annual,
            "next_vol_annual": math.sqrt(self.next_variance * DAYS_PER_YEAR),
            "ljung_box": [lb.__dict__ for lb in self.ljung_box],
            "on_bounds": list(self.on_bounds),
            "window": {**self.window.__dict__, "gaps": list(self.window.gaps)},
            "start": self.start.value,
            "library_versions": self.library_versions,
        }


def absolute_moment(spec: UnivariateSpec, params: dict[str, float]) -> float:
    """:math:`E|z|` of the standardized innovation (``sqrt(2/pi)`` for the normal)."""
    if spec.dist is Innovation.NORMAL:
        return math.sqrt(2 / math.pi)
    if spec.dist is Innovation.STUDENT_T:
        nu = params["nu"]
        return (
            2
            * math.sqrt(nu - 2)
            * math.exp(math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2))
            / (math.sqrt(math.pi) * (nu - 1))
        )
    from arch.univariate import SkewStudent

    shape = np.array([params["eta"], params["lambda"]])
    dist = SkewStudent()
    value, _ = integrate.quad(
        lambda u: abs(float(np.asarray(dist.ppf(np.array([u]), shape))[0])), 0.0, 1.0, limit=200
    )
    return value


def variance_path(
    spec: UnivariateSpec, params: dict[str, float], next_variance: float, horizon: int
) -> np.ndarray:
    """Decimal daily variance forecasts for h = 1..horizon from the one-step forecast."""
    if spec.vol is VolProcess.EGARCH:
        drift = params["omega"] + params["alpha[1]"] * (
            absolute_moment(spec, params) - math.sqrt(2 / math.pi)
        )
        logs = np.empty(horizon)
        logs[0] = math.log(next_variance * SCALE**2)
        for h in range(1, horizon):
            logs[h] = drift + params["beta[1]"] * logs[h - 1]
        return np.exp(logs) / SCALE**2
    persistence = _persistence(spec, params)
    long_run = params["omega"] / (1.0 - persistence) / SCALE**2 if persistence < 1 else math.nan
    return garch_variance_path(next_variance, persistence, long_run, horizon)


def garch_variance_path(
    next_variance: float, persistence: float, long_run: float, horizon: int
) -> np.ndarray:
    """:math:`\\bar\\sigma^2 + p^{h-1}(\\sigma^2_{T+1} - \\bar\\sigma^2)` for h = 1..horizon."""
    if not math.isfinite(long_run):
        return np.full(horizon, next_variance)
    powers = persistence ** np.arange(horizon)
    return long_run + powers * (next_variance - long_run)


@dataclass(frozen=True)
class EwmaFit:
    """RiskMetrics EWMA variance (zero mean, λ = 0.94), the fallback when no GARCH fit is usable.

    .. math:: \\sigma^2_t = \\lambda\\sigma^2_{t-1} + (1-\\lambda) r^2_{t-1}

    Its forecasts are flat: EWMA has no mean reversion.
    """

    asset: str
    lam: float
    loglik: float  # normal log-likelihood of the percent-scaled returns
    window: DataWindow
    reason: str
    library_versions: dict[str, str]
    conditional_vol: pd.Series = field(repr=False, compare=False)
    std_resid: pd.Series = field(repr=False, compare=False)
    next_variance: float = 0.0

    kind = "ewma"
    persistence = 1.0
    half_life_days = None
    unconditional_vol_annual = None
    converged = True
    on_bounds: tuple[str, ...] = ()

    @property
    def stationary(self) -> bool:
        """Never: EWMA is integrated (persistence one)."""
        return False  # an integrated process: reported as such, never mistaken for GARCH

    @property
    def name(self) -> str:
        """The model's label, e.g. ``EWMA(lambda=0.94)``."""
        return f"EWMA(lambda={self.lam})"

    def forecast_variance(self, horizon: int) -> np.ndarray:
        """Flat variance forecasts for days 1..``horizon``."""
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1 day, got {horizon}")
        return np.full(horizon, self.next_variance)

    def to_dict(self) -> dict:
        """The fit as JSON-safe values."""
        return {
            "asset": self.asset,
            "model": "ewma",
            "spec": {"name": self.name, "lambda": self.lam},
            "loglik": self.loglik,
            "reason": self.reason,
            "next_vol_annual": math.sqrt(self.next_variance * DAYS_PER_YEAR),
            "window": {**self.window.__dict__, "gaps": list(self.window.gaps)},
            "library_versions": self.library_versions,
        }


@dataclass(frozen=True)
class CandidateOutcome:
    """How one candidate model fared: its fit statistics, or why it was not used."""

    spec: UnivariateSpec
    bic: float | None
    loglik: float | None
    converged: bool
    stationary: bool
    error: str | None
    rejected: str | None = None  # the nested-model check's reason, when it refused the fit
    note: str | None = None  # e.g. "refit from the nested model's solution"

    @property
    def usable(self) -> bool:
        """Whether the candidate may be chosen (fitted, converged, stationary, not rejected)."""
        return self.error is None and self.rejected is None and self.converged and self.stationary


# A richer model reaches every value of the model it nests (γ = 0; ν → ∞ up to arch's bound of
# 500, where the t is within ~1e-5 per observation of the normal; λ = 0), so its maximum
# likelihood can be below the nested one's only by this much — more is a failed optimisation.
NESTED_TOLERANCE = 0.05


def nested_in(spec: UnivariateSpec) -> tuple[UnivariateSpec, ...]:
    """The candidates ``spec`` nests directly: GJR-GARCH nests GARCH (γ = 0), the Student t
    nests the normal (ν → ∞), the skew-t nests the t (λ = 0).
    """
    out = []
    if spec.vol is VolProcess.GJR_GARCH:
        out.append(UnivariateSpec(VolProcess.GARCH, spec.dist, spec.mean))
    if spec.dist is Innovation.STUDENT_T:
        out.append(UnivariateSpec(spec.vol, Innovation.NORMAL, spec.mean))
    if spec.dist is Innovation.SKEW_T:
        out.append(UnivariateSpec(spec.vol, Innovation.STUDENT_T, spec.mean))
    return tuple(out)


def _nesting_chain(spec: UnivariateSpec) -> tuple[UnivariateSpec, ...]:
    """Every model ``spec`` nests, directly or not (fitted before it)."""
    out: list[UnivariateSpec] = []
    for inner in nested_in(spec):
        out += [inner, *_nesting_chain(inner)]
    return tuple(dict.fromkeys(out))


def nested_start(spec: UnivariateSpec, nested: UnivariateFit) -> dict[str, float]:
    """Starting values for ``spec`` at (or next to) the nested model's optimum."""
    params = dict(nested.params)
    if spec.vol is VolProcess.GJR_GARCH and nested.spec.vol is VolProcess.GARCH:
        params["gamma[1]"] = 0.0
    if spec.dist is Innovation.STUDENT_T and nested.spec.dist is Innovation.NORMAL:
        params["nu"] = 100.0  # inside arch's bounds, near the normal
    if spec.dist is Innovation.SKEW_T and nested.spec.dist is Innovation.STUDENT_T:
        params["eta"] = params.pop("nu")
        params["lambda"] = 0.0
    return params


def _nested_check(
    spec: UnivariateSpec,
    fit: UnivariateFit,
    returns: ReturnSeries | pd.Series,
    name: str,
    fitted: dict[UnivariateSpec, UnivariateFit],
) -> tuple[UnivariateFit, str | None, str | None]:
    """Hold ``fit`` against the fitted models it nests: refit a worse one from the nested
    solution; return (the fit to use, a rejection reason or None, a note or None).
    """
    for inner in nested_in(spec):
        base = fitted.get(inner)
        if base is None or not math.isfinite(base.loglik):
            continue
        if fit.loglik >= base.loglik - NESTED_TOLERANCE:
            continue
        shortfall = base.loglik - fit.loglik
        try:
            refit = fit_univariate(
                returns, spec, asset=name, starting_values=nested_start(spec, base)
            )
        except (ArithmeticError, ValueError, np.linalg.LinAlgError, RuntimeError, KeyError):
            refit = None
        if refit is not None and refit.loglik >= base.loglik - NESTED_TOLERANCE:
            note = (
                f"log-likelihood {fit.loglik:.2f} was {shortfall:.2f} below the nested "
                f"{inner.name} ({base.loglik:.2f}); refit from its solution: {refit.loglik:.2f}"
            )
            return refit, None, note
        reason = (
            f"log-likelihood {fit.loglik:.2f} is {shortfall:.2f} below the nested {inner.name} "
            f"({base.loglik:.2f}), also when refitted from its solution: a failed optimisation"
        )
        return fit, reason, None
    return fit, None, None


@dataclass(frozen=True)
class VolatilityCalibration:
    """The model chosen for one asset, every candidate considered, and why if it fell back."""

    asset: str
    chosen: UnivariateFit | EwmaFit
    candidates: tuple[CandidateOutcome, ...]
    fallback_reason: str | None

    @property
    def fell_back(self) -> bool:
        """Whether no GARCH fit was usable and EWMA served instead."""
        return self.fallback_reason is not None


# --------------------------------------------------------------------------- helpers


def _as_series(
    returns: ReturnSeries | pd.Series, asset: str | None
) -> tuple[pd.Series, str, str | None, tuple[dict, ...]]:
    """The values, name, gap policy and flagged gaps of ``returns`` (a plain Series has none:
    pass a :class:`ReturnSeries` to have its gaps counted and listed).
    """
    if isinstance(returns, ReturnSeries):
        return (
            returns.values,
            asset or returns.asset,
            returns.policy.value,
            tuple(returns.gap_list()),
        )
    series = pd.Series(returns, dtype=float)
    return series, asset or str(series.name or ""), None, ()


def _window(
    series: pd.Series, asset: str, policy: str | None, gaps: tuple[dict, ...]
) -> DataWindow:
    def label(x: object) -> str:
        return x.date().isoformat() if hasattr(x, "date") and callable(x.date) else str(x)

    return DataWindow(
        asset=asset,
        start=label(series.index[0]),
        end=label(series.index[-1]),
        n_obs=len(series),
        fingerprint=series_fingerprint(series),
        gap_policy=policy,
        flagged_gaps=len(gaps),
        gaps=gaps,
    )


def _validate_returns(series: pd.Series, asset: str) -> None:
    if len(series) < 100:
        raise ValueError(f"{asset}: {len(series)} returns; a GARCH fit needs at least 100")
    if not np.isfinite(series.to_numpy()).all():
        raise ValueError(f"{asset}: returns contain NaN or infinite values")


def negative_half_moment(spec: UnivariateSpec, params: dict[str, float]) -> float:
    """:math:`\\kappa = E[z^2 1\\{z<0\\}]` of the standardized innovation (1/2 if symmetric)."""
    if spec.dist is not Innovation.SKEW_T:
        return 0.5
    from arch.univariate import SkewStudent

    shape = np.array([params["eta"], params["lambda"]])
    dist = SkewStudent()
    split = float(np.asarray(dist.cdf(np.array([0.0]), shape))[0])
    value, _ = integrate.quad(
        lambda u: float(np.asarray(dist.ppf(np.array([u]), shape))[0]) ** 2, 0.0, split, limit=200
    )
    return value


def _persistence(spec: UnivariateSpec, params: dict[str, float]) -> float:
    if spec.vol is VolProcess.EGARCH:
        return params["beta[1]"]
    value = params["alpha[1]"] + params["beta[1]"]
    if spec.vol is VolProcess.GJR_GARCH:
        value += negative_half_moment(spec, params) * params["gamma[1]"]
    return value


def _unconditional_vol(
    spec: UnivariateSpec, params: dict[str, float], persistence: float
) -> float | None:
    if not 0 < persistence < 1.0 - STATIONARITY_MARGIN:
        return None
    if spec.vol is VolProcess.EGARCH:
        # exp of the long-run log variance, (omega + alpha (E|z| - sqrt(2/pi))) / (1 - beta): the
        # level the EGARCH forecast path tends to (E[sigma^2] need not exist with t innovations)
        drift = params["omega"] + params["alpha[1]"] * (
            absolute_moment(spec, params) - math.sqrt(2 / math.pi)
        )
        exponent = drift / (1.0 - persistence)
        if exponent > 700:  # beyond float range: no meaningful long-run level
            return None
        variance_pct = math.exp(exponent)
    else:
        variance_pct = params["omega"] / (1.0 - persistence)
    return math.sqrt(variance_pct / SCALE**2 * DAYS_PER_YEAR)


def _parameter_names(model: ARCHModel) -> list[str]:
    """Mean, volatility and distribution parameter names, in arch's order."""
    return (
        list(model.parameter_names())
        + list(model.volatility.parameter_names())
        + list(model.distribution.parameter_names())
    )


def _bounds(model: ARCHModel, y: np.ndarray) -> list[tuple[float, float]]:
    resids = y - (y.mean() if model.num_params else 0.0)
    bounds = list(model.bounds())
    bounds += model.volatility.bounds(resids)
    bounds += model.distribution.bounds(resids)
    return bounds


def _on_bounds(
    names: list[str], values: np.ndarray, bounds: list[tuple[float, float]]
) -> tuple[str, ...]:
    hits = []
    for name, value, (lo, hi) in zip(names, values, bounds, strict=True):
        width = (hi - lo) if math.isfinite(hi - lo) else max(1.0, abs(value))
        for bound in (lo, hi):
            if math.isfinite(bound) and abs(value - bound) <= BOUND_TOLERANCE * width:
                hits.append(name)
                break
    return tuple(hits)


def _ljung_box(std_resid: np.ndarray) -> tuple[LjungBox, ...]:
    out = []
    for label, values in (("z", std_resid), ("z^2", std_resid**2)):
        table = acorr_ljungbox(values, lags=[LJUNG_BOX_LAGS], return_df=True)
        out.append(
            LjungBox(
                label,
                LJUNG_BOX_LAGS,
                float(table["lb_stat"].iloc[0]),
                float(table["lb_pvalue"].iloc[0]),
            )
        )
    return tuple(out)


def _next_variance(result: ARCHModelResult | ARCHModelFixedResult) -> float:
    forecast = result.forecast(horizon=1, reindex=False)
    return float(forecast.variance.iloc[-1, 0]) / SCALE**2


def _build_fit(
    result: ARCHModelResult | ARCHModelFixedResult,
    spec: UnivariateSpec,
    series: pd.Series,
    window: DataWindow,
    start: FitStart,
    *,
    estimated: bool,
    diagnostics: bool = True,
) -> UnivariateFit:
    model = result.model
    names = list(result.params.index)
    params = {k: float(v) for k, v in result.params.items()}
    if estimated:
        assert isinstance(result, ARCHModelResult)  # an estimate carries its optimizer's record
        std_errors = (
            {k: float(v) for k, v in result.std_err.items()}
            if diagnostics
            else {k: math.nan for k in names}
        )
        opt = result.optimization_result
        message = str(getattr(opt, "message", ""))
        iterations = int(getattr(opt, "nit", 0)) if opt is not None else None
        converged = (
            result.convergence_flag == 0
            and math.isfinite(result.loglikelihood)
            and (not diagnostics or all(math.isfinite(v) for v in std_errors.values()))
        )
    else:
        std_errors = {k: math.nan for k in names}
        message, iterations, converged = "parameters applied without estimation", None, True
    persistence = _persistence(spec, params)
    half_life = (
        math.log(0.5) / math.log(persistence)
        if 0 < persistence < 1.0 - STATIONARITY_MARGIN
        else None
    )
    cond_vol = pd.Series(np.asarray(result.conditional_volatility) / SCALE, index=series.index)
    std_resid = pd.Series(np.asarray(result.std_resid), index=series.index)
    finite = std_resid.to_numpy()
    finite = finite[np.isfinite(finite)]
    return UnivariateFit(
        asset=window.asset,
        spec=spec,
        params=params,
        std_errors=std_errors,
        loglik=float(result.loglikelihood),
        aic=float(result.aic),
        bic=float(result.bic),
        converged=bool(converged),
        optimizer_message=message,
        iterations=iterations,
        persistence=float(persistence),
        half_life_days=half_life,
        unconditional_vol_annual=_unconditional_vol(spec, params, persistence),
        ljung_box=_ljung_box(finite) if diagnostics else (),
        on_bounds=_on_bounds(
            names, result.params.to_numpy(), _bounds(model, np.asarray(model.y, dtype=float))
        )
        if estimated
        else (),
        window=window,
        start=start,
        library_versions=library_versions(),
        conditional_vol=cond_vol,
        std_resid=std_resid,
        next_variance=_next_variance(result),
        result=result,
    )


# --------------------------------------------------------------------------- public API


def fit_univariate(
    returns: ReturnSeries | pd.Series,
    spec: UnivariateSpec = UnivariateSpec(),
    *,
    asset: str | None = None,
    starting_values: dict[str, float] | np.ndarray | None = None,
    diagnostics: bool = True,
) -> UnivariateFit:
    """Fit ``spec`` to decimal log ``returns`` by maximum likelihood (arch, SLSQP).

    Parameters
    ----------
    returns : ReturnSeries or pd.Series
        Decimal log returns, shape (n,), n >= 100.
    spec : UnivariateSpec
        The model.
    starting_values : dict or ndarray, optional
        A previous estimate to start from (a *warm* start); default: arch's own.
    diagnostics : bool
        Compute standard errors and Ljung–Box (default). Rolling re-estimation, which only
        needs the estimates and forecasts, turns them off: they cost a third of a fit.

    Returns
    -------
    UnivariateFit
        Estimates, standard errors (robust), log-likelihood, AIC/BIC, convergence,
        persistence, half-life, unconditional volatility, Ljung–Box on z and z², parameters
        on bounds, the data window and library versions.
    """
    series, name, policy, gaps = _as_series(returns, asset)
    _validate_returns(series, name)
    model = spec.build(series * SCALE)
    start = FitStart.COLD
    start_array = None
    if starting_values is not None:
        start = FitStart.WARM
        if isinstance(starting_values, dict):
            start_array = np.array([starting_values[k] for k in _parameter_names(model)])
        else:
            start_array = np.asarray(starting_values, dtype=float)
    with warnings.catch_warnings(), _linear_constraint_jacobians():
        warnings.simplefilter("ignore")
        result = model.fit(disp="off", show_warning=False, starting_values=start_array, tol=FIT_TOL)
    return _build_fit(
        result,
        spec,
        series,
        _window(series, name, policy, gaps),
        start,
        estimated=True,
        diagnostics=diagnostics,
    )


def apply_parameters(
    returns: ReturnSeries | pd.Series,
    spec: UnivariateSpec,
    params: dict[str, float],
    *,
    asset: str | None = None,
) -> UnivariateFit:
    """Filter ``returns`` through ``spec`` with approved ``params`` (arch's ``fix``), no refit.

    ``params`` are on arch's percent scale, as :class:`UnivariateFit` reports them.
    """
    series, name, policy, gaps = _as_series(returns, asset)
    _validate_returns(series, name)
    model = spec.build(series * SCALE)
    names = _parameter_names(model)
    missing = [k for k in names if k not in params]
    if missing:
        raise ValueError(f"{spec.name}: missing parameter(s) {', '.join(missing)}")
    values = np.array([params[k] for k in names])
    result = model.fix(values)
    return _build_fit(
        result, spec, series, _window(series, name, policy, gaps), FitStart.FIXED, estimated=False
    )


def fit_ewma(
    returns: ReturnSeries | pd.Series,
    *,
    reason: str,
    asset: str | None = None,
    lam: float = EWMA_LAMBDA,
) -> EwmaFit:
    """RiskMetrics EWMA through arch (``ZeroMean`` with ``EWMAVariance``)."""
    series, name, policy, gaps = _as_series(returns, asset)
    if len(series) < 2:
        raise ValueError(f"{name}: EWMA needs at least 2 returns")
    model = ZeroMean(series * SCALE, volatility=EWMAVariance(lam=lam), rescale=False)
    result = model.fit(disp="off", show_warning=False)
    return EwmaFit(
        asset=name,
        lam=lam,
        loglik=float(result.loglikelihood),
        window=_window(series, name, policy, gaps),
        reason=reason,
        library_versions=library_versions(),
        conditional_vol=pd.Series(
            np.asarray(result.conditional_volatility) / SCALE, index=series.index
        ),
        std_resid=pd.Series(np.asarray(result.std_resid), index=series.index),
        next_variance=_next_variance(result),
    )


def calibrate_volatility(
    returns: ReturnSeries | pd.Series,
    candidates: tuple[UnivariateSpec, ...] = ALL_SPECS,
    *,
    asset: str | None = None,
) -> VolatilityCalibration:
    """Fit every candidate and keep the lowest BIC among the converged, stationary fits.

    Candidates that fail, do not converge or are not stationary are reported, not used. When
    none is usable the asset falls back to EWMA (λ = 0.94) with the reason stated.
    """
    series, name, _, _ = _as_series(returns, asset)
    _validate_returns(series, name)
    outcomes: list[CandidateOutcome] = []
    fits: list[UnivariateFit] = []
    fitted: dict[UnivariateSpec, UnivariateFit] = {}
    # nested models first, so that every richer candidate can be held against them
    ordered = sorted(candidates, key=lambda c: (len(_nesting_chain(c)), ALL_SPECS_ORDER.get(c, 99)))
    for spec in ordered:
        try:
            fit = fit_univariate(returns, spec, asset=name)
        except (ArithmeticError, ValueError, np.linalg.LinAlgError, RuntimeError) as exc:
            # degenerate data makes arch fail in several ways; each failure is reported in the
            # candidate list and none is fatal (bad input was rejected before the loop)
            outcomes.append(
                CandidateOutcome(spec, None, None, False, False, f"{type(exc).__name__}: {exc}")
            )
            continue
        fit, rejected, note = _nested_check(spec, fit, returns, name, fitted)
        fitted[spec] = fit
        outcomes.append(
            CandidateOutcome(
                spec, fit.bic, fit.loglik, fit.converged, fit.stationary, None, rejected, note
            )
        )
        if fit.converged and fit.stationary and rejected is None:
            fits.append(fit)
    order = {spec: k for k, spec in enumerate(candidates)}
    outcomes.sort(key=lambda o: order[o.spec])
    if fits:
        best = min(fits, key=lambda f: f.bic)
        return VolatilityCalibration(name, best, tuple(outcomes), None)
    problems = "; ".join(
        f"{o.spec.name}: "
        + (o.error or o.rejected or ("did not converge" if not o.converged else "not stationary"))
        for o in outcomes
    )
    reason = f"no usable GARCH fit ({problems}); EWMA lambda={EWMA_LAMBDA} used instead"
    return VolatilityCalibration(
        name, fit_ewma(returns, reason=reason, asset=name), tuple(outcomes), reason
    )


def select_by_bic(
    returns: ReturnSeries | pd.Series,
    candidates: tuple[UnivariateSpec, ...] = ALL_SPECS,
    *,
    asset: str | None = None,
) -> VolatilityCalibration:
    """Alias of :func:`calibrate_volatility`, named for what it does to the candidates."""
    return calibrate_volatility(returns, candidates, asset=asset)
