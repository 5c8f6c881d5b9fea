"""A compiled GARCH / GJR-GARCH likelihood with its analytic gradient, for rolling refits.

``arch`` stays the model of record (the calibration report's fits); this module solves the
same problem faster where thousands of refits are needed. The problem — residual backcast,
variance bounds, parameter bounds, linear constraints, starting values — is taken from the
``arch`` model itself, so only the objective differs: one compiled pass computes the
log-likelihood and its gradient together, where ``arch``'s SLSQP differences the likelihood
numerically (one evaluation per parameter per step).

For percent returns :math:`y_t`, :math:`e_t = y_t - \\mu` and :math:`I_t = 1[e_t < 0]`,

.. math::

    \\sigma^2_t = \\omega + (\\alpha + \\gamma I_{t-1}) e^2_{t-1} + \\beta \\sigma^2_{t-1},
    \\qquad \\sigma^2_0 = \\omega + (\\alpha + \\gamma/2 + \\beta)\\,b,

with :math:`b` ``arch``'s backcast and each :math:`\\sigma^2_t` held to ``arch``'s variance bounds
(below: the bound; above: :math:`u + \\log(\\sigma^2_t/u)`). The derivatives follow the same
recursion, :math:`\\partial\\sigma^2_t = d_t + \\beta\\,\\partial\\sigma^2_{t-1}`. Innovations are
normal or standardised Student-t:

.. math::

    \\ell_t = \\log\\Gamma(\\tfrac{\\nu+1}{2}) - \\log\\Gamma(\\tfrac{\\nu}{2})
    - \\tfrac12\\log(\\pi(\\nu-2)) - \\tfrac12\\log\\sigma^2_t
    - \\tfrac{\\nu+1}{2}\\log\\Big(1 + \\frac{e_t^2}{\\sigma^2_t(\\nu-2)}\\Big).

EGARCH and skew-t are not compiled: :func:`compiled_spec` says which specs are.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import digamma, gammaln

from calibration.univariate import (
    FIT_TOL,
    Innovation,
    MeanModel,
    UnivariateSpec,
    VolProcess,
)

__all__ = [
    "CompiledFit",
    "GarchProblem",
    "compiled_spec",
    "fit_compiled",
    "loglik",
    "next_variance",
    "problem",
]

NORMAL, STUDENT_T = 0, 1
_LOG_2PI = math.log(2.0 * math.pi)


def compiled_spec(spec: UnivariateSpec) -> bool:
    """Whether ``spec`` has a compiled likelihood (GARCH or GJR-GARCH, normal or t)."""
    return spec.vol in (VolProcess.GARCH, VolProcess.GJR_GARCH) and spec.dist in (
        Innovation.NORMAL,
        Innovation.STUDENT_T,
    )


@dataclass(frozen=True)
class GarchProblem:
    """One estimation problem as ``arch`` sets it up (percent returns)."""

    spec: UnivariateSpec
    y: np.ndarray
    backcast: float
    lower: np.ndarray
    upper: np.ndarray
    bounds: tuple[tuple[float, float], ...]
    a: np.ndarray  # linear constraints a @ x - b >= 0
    b: np.ndarray
    starting_values: np.ndarray
    names: tuple[str, ...]

    @property
    def has_mu(self) -> bool:
        """Whether the mean is estimated (constant mean)."""
        return self.spec.mean is MeanModel.CONSTANT

    @property
    def has_gamma(self) -> bool:
        """Whether the asymmetry term is estimated (GJR)."""
        return self.spec.vol is VolProcess.GJR_GARCH

    @property
    def dist(self) -> int:
        """The innovation code of the kernel."""
        return STUDENT_T if self.spec.dist is Innovation.STUDENT_T else NORMAL


def problem(
    returns_pct: np.ndarray, spec: UnivariateSpec, *, starting: bool = True
) -> GarchProblem:
    """The problem ``arch`` would solve for ``spec`` on ``returns_pct``; without ``starting``
    its starting values (``arch``'s grid search, most of the setup's cost) are left out — a
    warm start brings its own — and are NaN.

    Raises
    ------
    ValueError
        If ``spec`` has no compiled likelihood (see :func:`compiled_spec`).
    """
    if not compiled_spec(spec):
        raise ValueError(f"{spec.name}: no compiled likelihood (GARCH/GJR-GARCH × normal/t only)")
    model = spec.build(pd.Series(np.asarray(returns_pct, dtype=float)))
    # what arch's fit does first: select the estimation sample (here the whole window)
    model._adjust_sample(None, None)
    v, d = model.volatility, model.distribution
    resids = model.resids(model.starting_values())
    backcast = float(v.backcast(resids))
    var_bounds = v.variance_bounds(resids)
    if starting:
        sigma2 = np.zeros(len(resids))
        sv_vol = v.starting_values(resids)
        v.compute_variance(sv_vol, resids, sigma2, backcast, var_bounds)
        std = resids / np.sqrt(sigma2)
    else:
        sv_vol = np.full(v.num_params, np.nan)
        std = resids  # the compiled distributions' bounds do not depend on it
    blocks = [model.constraints(), v.constraints(), d.constraints()]
    sizes = [model.num_params, v.num_params, d.num_params]
    rows = sum(c[0].shape[0] for c in blocks)
    a, b = np.zeros((rows, sum(sizes))), np.zeros(rows)
    r = c0 = 0
    for (ca, cb), size in zip(blocks, sizes, strict=True):
        a[r : r + ca.shape[0], c0 : c0 + size] = ca
        b[r : r + ca.shape[0]] = cb
        r, c0 = r + ca.shape[0], c0 + size
    bounds = [*model.bounds(), *v.bounds(resids), *d.bounds(std)]
    start = np.hstack(
        [
            model.starting_values(),
            sv_vol,
            d.starting_values(std) if starting else np.full(d.num_params, np.nan),
        ]
    )
    names = (
        *model.parameter_names(),
        *v.parameter_names(),
        *d.parameter_names(),
    )
    return GarchProblem(
        spec,
        np.ascontiguousarray(np.asarray(returns_pct, dtype=float)),
        backcast,
        np.ascontiguousarray(var_bounds[:, 0]),
        np.ascontiguousarray(var_bounds[:, 1]),
        tuple((float(lo), float(hi)) for lo, hi in bounds),
        a,
        b,
        np.asarray(start, dtype=float),
        tuple(names),
    )


@numba.njit(cache=True)
def _kernel(y, x, has_mu, has_gamma, dist, backcast, lower, upper, grad, state):  # pragma: no cover
    # the parameter vector: [mu], omega, alpha, [gamma], beta, [nu]
    k = 0
    mu = 0.0
    i_mu = -1
    if has_mu:
        mu = x[0]
        i_mu = 0
        k = 1
    i_omega, i_alpha = k, k + 1
    i_gamma = -1
    if has_gamma:
        i_gamma = k + 2
        i_beta = k + 3
    else:
        i_beta = k + 2
    omega, alpha, beta = x[i_omega], x[i_alpha], x[i_beta]
    gamma = x[i_gamma] if has_gamma else 0.0
    nu = x[len(x) - 1] if dist == 1 else 0.0
    n_par = len(x)
    ds = np.zeros(n_par)
    for j in range(n_par):
        grad[j] = 0.0
    total = 0.0
    s2_prev = 0.0
    e_prev = 0.0
    for t in range(len(y)):
        e = y[t] - mu
        if t == 0:
            s2 = omega + (alpha + 0.5 * gamma + beta) * backcast
            for j in range(n_par):
                ds[j] = 0.0
            ds[i_omega] = 1.0
            ds[i_alpha] = backcast
            if has_gamma:
                ds[i_gamma] = 0.5 * backcast
            ds[i_beta] = backcast
        else:
            neg = 1.0 if e_prev < 0.0 else 0.0
            e2 = e_prev * e_prev
            s2 = omega + (alpha + gamma * neg) * e2 + beta * s2_prev
            for j in range(n_par):
                ds[j] *= beta
            ds[i_omega] += 1.0
            ds[i_alpha] += e2
            if has_gamma:
                ds[i_gamma] += e2 * neg
            ds[i_beta] += s2_prev
            if has_mu:
                ds[i_mu] += -2.0 * (alpha + gamma * neg) * e_prev
        if s2 < lower[t]:
            s2 = lower[t]
            for j in range(n_par):
                ds[j] = 0.0
        elif s2 > upper[t]:
            for j in range(n_par):
                ds[j] /= s2
            s2 = upper[t] + math.log(s2 / upper[t])
        if dist == 1:
            z = e * e / (s2 * (nu - 2.0))
            total += -0.5 * math.log(s2) - 0.5 * (nu + 1.0) * math.log1p(z)
            g_s2 = (-0.5 + 0.5 * (nu + 1.0) * z / (1.0 + z)) / s2
            g_e = -(nu + 1.0) * e / (s2 * (nu - 2.0) * (1.0 + z))
            grad[n_par - 1] += -0.5 * math.log1p(z) + 0.5 * (nu + 1.0) * z / (
                (nu - 2.0) * (1.0 + z)
            )
        else:
            total += -0.5 * (math.log(s2) + e * e / s2)
            g_s2 = -0.5 / s2 + 0.5 * e * e / (s2 * s2)
            g_e = -e / s2
        for j in range(n_par):  # ds of nu is zero: nu enters only the density
            grad[j] += g_s2 * ds[j]
        if has_mu:
            grad[i_mu] -= g_e
        s2_prev = s2
        e_prev = e
    # the one-step forecast sigma^2_{T+1}, from the last filtered variance and residual
    neg = 1.0 if e_prev < 0.0 else 0.0
    state[0] = omega + (alpha + gamma * neg) * e_prev * e_prev + beta * s2_prev
    return total


def next_variance(p: GarchProblem, x: np.ndarray) -> float:
    r""":math:`\sigma^2_{T+1}` (percent², as ``arch`` forecasts it) under parameters ``x``."""
    state = np.zeros(1)
    x = np.asarray(x, dtype=float)
    _kernel(
        p.y, x, p.has_mu, p.has_gamma, p.dist, p.backcast, p.lower, p.upper, np.empty(len(x)), state
    )
    return float(state[0])


def loglik(p: GarchProblem, x: np.ndarray) -> tuple[float, np.ndarray]:
    """Log-likelihood of parameters ``x`` (``arch``'s order and scale) and its gradient."""
    x = np.asarray(x, dtype=float)
    grad = np.empty(len(x))
    total = _kernel(
        p.y, x, p.has_mu, p.has_gamma, p.dist, p.backcast, p.lower, p.upper, grad, np.zeros(1)
    )
    n = len(p.y)
    if p.dist == STUDENT_T:
        nu = x[-1]
        total += n * (
            gammaln(0.5 * (nu + 1)) - gammaln(0.5 * nu) - 0.5 * math.log(math.pi * (nu - 2))
        )
        grad[-1] += n * (0.5 * digamma(0.5 * (nu + 1)) - 0.5 * digamma(0.5 * nu) - 0.5 / (nu - 2))
    else:
        total -= 0.5 * n * _LOG_2PI
    return float(total), grad


@dataclass(frozen=True)
class CompiledFit:
    """The optimum of a compiled problem: parameters by name, log-likelihood, convergence."""

    params: dict[str, float]
    loglik: float
    converged: bool
    iterations: int
    message: str


def fit_compiled(p: GarchProblem, starting_values: np.ndarray | None = None) -> CompiledFit:
    """Maximise the likelihood by SLSQP with the analytic gradient, under ``arch``'s bounds and
    constraints; a starting point outside them is replaced by ``arch``'s own, as ``arch`` does.
    """
    start = p.starting_values
    if starting_values is not None:
        sv = np.asarray(starting_values, dtype=float)
        inside = all(lo <= v <= hi for v, (lo, hi) in zip(sv, p.bounds, strict=True))
        if inside and (p.a.shape[0] == 0 or (p.a @ sv - p.b >= 0).all()):
            start = sv
    if not np.isfinite(start).all():  # a problem set up without arch's starting values
        start = problem(p.y, p.spec).starting_values

    def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = loglik(p, x)
        if not math.isfinite(value):
            return 1e300, np.zeros_like(x)
        return -value, -grad

    constraints = {"type": "ineq", "fun": lambda x: p.a @ x - p.b, "jac": lambda x: p.a}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt = minimize(
            objective,
            start,
            jac=True,
            method="SLSQP",
            bounds=p.bounds,
            constraints=constraints,
            tol=FIT_TOL,
        )
    value, _ = loglik(p, opt.x)
    return CompiledFit(
        dict(zip(p.names, (float(v) for v in opt.x), strict=True)),
        value,
        bool(opt.status == 0),
        int(opt.nit),
        str(opt.message),
    )
