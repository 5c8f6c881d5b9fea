"""Rolling variance forecasts for backtests, without look-ahead.

On each origin day ``t`` the forecasts for days ``t+1 … t+H`` use only returns up to and
including ``t``. Parameters are re-estimated every ``refit_every`` origins on the trailing
``window`` returns; on the origins in between, the last estimate is kept and the variance is
filtered forward with the new returns (arch's ``fix``), exactly as a daily run would.

Warm starts: a refit starts from the previous estimate, which usually saves half the optimizer
iterations. It is checked against a cold start (arch's own starting values) whenever the warm
fit shows trouble (no convergence, persistence on the stationarity constraint, or parameters
newly on their bounds) and on every ``verify_every``-th refit; the better optimum is kept and
the check is recorded, so a warm start can never silently end at a worse optimum on those
refits. (GARCH likelihoods on a
few hundred days can be multi-modal: a warm path sometimes finds a *better* optimum than a
cold start, which is why the comparison keeps the better of the two.)

Reproducibility: refit days and warm-start chains are laid out on absolute positions of the
series — refit ``k`` falls on the ``k·refit_every``-th eligible day and every
``restart_every``-th refit starts cold — so the forecast for a given day does not depend on the
requested date range or on how the work is split between processes. Refits of different
underlyings, and of separate chains of one underlying, run in parallel processes
(:func:`rolling_forecasts_many`) and give exactly the serial result.
"""

from __future__ import annotations

import hashlib
import math
import multiprocessing
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import pandas as pd

from calibration._typing import DayLike
from calibration.likelihood import (
    CompiledFit,
    GarchProblem,
    compiled_spec,
    fit_compiled,
    next_variance,
    problem,
)
from calibration.univariate import (
    SCALE,
    STATIONARITY_MARGIN,
    FitStart,
    UnivariateFit,
    UnivariateSpec,
    VolProcess,
    _on_bounds,
    _persistence,
    fit_ewma,
    fit_univariate,
    variance_path,
)


class FitEngine(StrEnum):
    """Who maximises the likelihood of a rolling refit: ``arch``, or the compiled likelihood
    with its analytic gradient (:mod:`calibration.likelihood`; GARCH and GJR-GARCH with normal
    or t innovations, the others fall back to ``arch``). Both solve ``arch``'s problem.
    """

    ARCH = "arch"
    COMPILED = "compiled"


@dataclass(frozen=True)
class Estimate:
    """What a rolling refit keeps of a fit: the estimate, its quality, the next variance."""

    spec: UnivariateSpec
    params: dict[str, float]
    loglik: float
    converged: bool
    persistence: float
    on_bounds: tuple[str, ...]
    start: FitStart
    next_variance: float  # decimal

    @property
    def stationary(self) -> bool:
        """Persistence below ``1 - STATIONARITY_MARGIN``."""
        return math.isfinite(self.persistence) and self.persistence < 1.0 - STATIONARITY_MARGIN

    def forecast_variance(self, horizon: int) -> np.ndarray:
        """Decimal daily variances for the next ``horizon`` days."""
        return variance_path(self.spec, self.params, self.next_variance, horizon)

    @classmethod
    def of(cls, fit: UnivariateFit) -> Estimate:
        """The estimate of an ``arch`` fit."""
        return cls(
            fit.spec,
            fit.params,
            fit.loglik,
            fit.converged,
            fit.persistence,
            fit.on_bounds,
            fit.start,
            fit.next_variance,
        )


def estimate(
    window: pd.Series,
    spec: UnivariateSpec,
    engine: FitEngine,
    *,
    asset: str = "",
    starting_values: dict[str, float] | None = None,
) -> Estimate:
    """One refit on ``window`` (decimal returns) by ``engine``, warm from ``starting_values``."""
    if engine is FitEngine.ARCH or not compiled_spec(spec):
        return Estimate.of(
            fit_univariate(
                window, spec, asset=asset, starting_values=starting_values, diagnostics=False
            )
        )
    p = _problem(window, spec, starting=starting_values is None)
    start = None if starting_values is None else np.array([starting_values[k] for k in p.names])
    fit = fit_compiled(p, start)
    return _compiled_estimate(p, fit, FitStart.COLD if starting_values is None else FitStart.WARM)


_PROBLEMS: dict[tuple, GarchProblem] = {}  # the last windows' problems: a refit and its
# verification share one window


def _problem(window: pd.Series, spec: UnivariateSpec, *, starting: bool) -> GarchProblem:
    y = window.to_numpy(dtype=float) * SCALE
    key = (spec, starting, len(y), hashlib.sha256(y.tobytes()).hexdigest())
    found = _PROBLEMS.get(key) or (
        _PROBLEMS.get((*key[:1], True, *key[2:])) if not starting else None
    )
    if found is None:
        found = _PROBLEMS[key] = problem(y, spec, starting=starting)
        while len(_PROBLEMS) > 8:
            _PROBLEMS.pop(next(iter(_PROBLEMS)))
    return found


def _compiled_estimate(p: GarchProblem, fit: CompiledFit, start: FitStart) -> Estimate:
    values = np.array([fit.params[k] for k in p.names])
    return Estimate(
        p.spec,
        fit.params,
        fit.loglik,
        fit.converged,
        float(_persistence(p.spec, fit.params)),
        _on_bounds(list(p.names), values, list(p.bounds)),
        start,
        next_variance(p, values) / SCALE**2,
    )


@dataclass(frozen=True)
class RollingConfig:
    """How often and on how much data to refit.

    Attributes
    ----------
    window : int
        Returns per estimation window (the trailing ``window`` returns up to the origin).
    refit_every : int
        Re-estimate on every ``refit_every``-th origin (1 = daily re-estimation).
    horizon : int
        Days ahead to forecast (the MPOR).
    warm_start : bool
        Start each refit from the previous estimate (checked, see the module docstring).
    verify_every : int
        Also fit from a cold start on every ``verify_every``-th refit (0 = only on trouble).
    restart_every : int
        Start a fresh (cold) warm-start chain every ``restart_every`` refits.
    engine : FitEngine
        Who maximises each refit's likelihood (the compiled likelihood by default).
    """

    window: int = 1000
    refit_every: int = 1
    horizon: int = 1
    warm_start: bool = True
    verify_every: int = 10
    restart_every: int = 50
    engine: FitEngine = FitEngine.COMPILED

    def __post_init__(self) -> None:
        if self.window < 100:
            raise ValueError(
                f"RollingConfig.window: {self.window} returns is too few for a GARCH fit (>= 100)"
            )
        if self.refit_every < 1:
            raise ValueError(f"RollingConfig.refit_every must be >= 1, got {self.refit_every}")
        if self.horizon < 1:
            raise ValueError(f"RollingConfig.horizon must be >= 1 day, got {self.horizon}")
        if self.verify_every < 0:
            raise ValueError(f"RollingConfig.verify_every must be >= 0, got {self.verify_every}")
        if self.restart_every < 1:
            raise ValueError(f"RollingConfig.restart_every must be >= 1, got {self.restart_every}")


@dataclass(frozen=True)
class RollingForecasts:
    """Forecasts of one underlying.

    ``variances``: index = origin day t, columns ``1 … horizon``; entry (t, h) is the decimal
    variance of day t+h's return forecast at t. ``refits``: one row per re-estimation (date,
    start used, log-likelihoods of the warm and cold fits when both ran, parameters, fallback).
    """

    asset: str
    spec: UnivariateSpec
    config: RollingConfig
    variances: pd.DataFrame
    refits: pd.DataFrame = field(repr=False)

    def cumulative_variance(self, days: int | None = None) -> pd.Series:
        """Variance of the ``days``-day return (sum of daily variances) from each origin."""
        days = days or self.config.horizon
        if not 1 <= days <= self.config.horizon:
            raise ValueError(f"days must be in 1..{self.config.horizon}, got {days}")
        return self.variances[list(range(1, days + 1))].sum(axis=1)

    @property
    def fallback_refits(self) -> int:
        """How many refits fell back to EWMA."""
        return int(self.refits["fallback"].sum()) if len(self.refits) else 0


def _usable(fit: Estimate) -> bool:
    return fit.converged and fit.stationary


def _better(a: Estimate, b: Estimate) -> Estimate:
    """The usable fit with the higher log-likelihood (a usable fit beats an unusable one)."""
    if _usable(a) != _usable(b):
        return a if _usable(a) else b
    return a if a.loglik >= b.loglik else b


def _forecast_block(
    returns: pd.Series,
    spec: UnivariateSpec,
    params: dict[str, float],
    window_start: int,
    origins: list[int],
    horizon: int,
) -> np.ndarray:
    """Variance forecasts (decimal) for ``origins`` (positions in ``returns``) with fixed params,
    filtering from ``window_start`` so the recursion starts where the estimation window did.
    """
    last = origins[-1]
    segment = returns.iloc[window_start : last + 1] * SCALE
    model = spec.build(segment)
    names = (
        list(model.parameter_names())
        + list(model.volatility.parameter_names())
        + list(model.distribution.parameter_names())
    )
    fixed = model.fix(np.array([params[k] for k in names]))
    first = origins[0] - window_start
    if spec.vol is VolProcess.EGARCH and horizon > 1:
        # one step from arch, then the model's own multi-step path (see UnivariateFit.forecast_variance)
        next_day = (
            fixed.forecast(horizon=1, start=first, reindex=False).variance.to_numpy()[:, 0]
            / SCALE**2
        )
        return np.vstack([variance_path(spec, params, v, horizon) for v in next_day])
    forecast = fixed.forecast(horizon=horizon, start=first, reindex=False)
    return forecast.variance.to_numpy() / SCALE**2


def _ewma_block(
    returns: pd.Series, window_start: int, origins: list[int], horizon: int, reason: str
) -> np.ndarray:
    segment = returns.iloc[window_start : origins[-1] + 1]
    fit = fit_ewma(segment, reason=reason)
    # EWMA's forecast from origin t is its sigma^2_{t+1}: the next day's filtered variance
    cond = fit.conditional_vol.to_numpy() ** 2
    out = []
    for origin in origins:
        k = origin - window_start
        nxt = cond[k + 1] if k + 1 < len(cond) else fit.next_variance
        out.append(np.full(horizon, nxt))
    return np.array(out)


def _origins(
    index: pd.DatetimeIndex, config: RollingConfig, start: DayLike | None, end: DayLike | None
) -> np.ndarray:
    """Positions of the origins in ``[start, end]`` that have a full window before them."""
    positions = np.arange(config.window - 1, len(index))
    if start is not None:
        positions = positions[index[positions] >= pd.Timestamp(start)]
    if end is not None:
        positions = positions[index[positions] <= pd.Timestamp(end)]
    return positions


def rolling_forecasts(
    returns: pd.Series,
    spec: UnivariateSpec = UnivariateSpec(),
    config: RollingConfig = RollingConfig(),
    *,
    start: DayLike | None = None,
    end: DayLike | None = None,
    asset: str = "",
) -> RollingForecasts:
    """Rolling forecasts of one series for origins in ``[start, end]`` (see the module doc).

    Parameters
    ----------
    returns : pd.Series
        Decimal log returns indexed by date, shape (n,).
    start, end : date-like, optional
        First and last origin; origins need ``config.window`` returns up to and including them.
        Refits of the warm-start chain that precede ``start`` are run (not reported) so that
        each forecast is the same whatever range is requested.
    """
    returns = returns.sort_index()
    index = pd.DatetimeIndex(pd.to_datetime(returns.index))
    returns = pd.Series(returns.to_numpy(dtype=float), index=index, name=asset or returns.name)
    eligible = _origins(index, config, start, end)
    if len(eligible) == 0:
        raise ValueError(
            f"{asset or 'series'}: no origin in [{start}, {end}] has {config.window} returns before it"
        )
    first_origin = config.window - 1
    first_k = (eligible[0] - first_origin) // config.refit_every
    last_k = (eligible[-1] - first_origin) // config.refit_every
    chain_k = (first_k // config.restart_every) * config.restart_every
    wanted = set(eligible.tolist())
    rows: list[np.ndarray] = []
    reported: list[int] = []
    refits: list[dict] = []
    previous: dict[str, float] | None = None
    previous_bounds: tuple[str, ...] = ()
    for k in range(chain_k, last_k + 1):
        t = first_origin + k * config.refit_every
        block = [p for p in range(t, min(t + config.refit_every, len(index))) if p in wanted]
        window_start = t - config.window + 1
        window = returns.iloc[window_start : t + 1]
        record = {
            "date": index[t],
            "warm_loglik": math.nan,
            "cold_loglik": math.nan,
            "verified": False,
        }
        restart = k % config.restart_every == 0
        if config.warm_start and previous is not None and not restart:
            warm = estimate(window, spec, config.engine, asset=asset, starting_values=previous)
            record["warm_loglik"] = warm.loglik
            # trouble: no convergence; an estimate on the stationarity constraint, where SLSQP
            # stops at slightly different points depending on where it started (up to 5e-3 in
            # log-likelihood on BTC 2022-2024); or parameters newly on their bounds
            trouble = not warm.converged or not warm.stationary or warm.on_bounds != previous_bounds
            scheduled = config.verify_every > 0 and k % config.verify_every == 0
            if trouble or scheduled:
                cold = estimate(window, spec, config.engine, asset=asset)
                record["cold_loglik"] = cold.loglik
                record["verified"] = True
                chosen = _better(warm, cold)
            else:
                chosen = warm
        else:
            chosen = estimate(window, spec, config.engine, asset=asset)
            record["cold_loglik"] = chosen.loglik
        if not _usable(chosen) and config.engine is FitEngine.COMPILED and compiled_spec(spec):
            # On the stationarity constraint the compiled and arch's optimisers stop at
            # different points (up to 5e-3 in log-likelihood on BTC 2024), whatever the start
            # — arch by stepping over the constraint by about 1e-5, where the likelihood is
            # steep: there arch's own cold fit is run as well and the better fit kept.
            other = Estimate.of(fit_univariate(window, spec, asset=asset, diagnostics=False))
            record["cold_loglik"] = float(np.fmax(record["cold_loglik"], other.loglik))
            record["verified"] = True
            chosen = _better(chosen, other)
        record["start"] = chosen.start.value
        record["loglik"] = chosen.loglik
        record["params"] = chosen.params
        record["converged"] = chosen.converged
        record["persistence"] = chosen.persistence
        record["fallback"] = not _usable(chosen)
        record["reported"] = bool(block)
        if chosen.converged:
            # warm-start from any converged estimate, even one too persistent to forecast with:
            # a start is only a start, and the comparison with cold starts still applies
            previous = chosen.params
            previous_bounds = chosen.on_bounds
        refits.append(record)
        if not block:
            continue  # a warm-up refit before the requested range
        if _usable(chosen):
            if block == [t]:
                rows.append(chosen.forecast_variance(config.horizon)[None, :])
            else:
                rows.append(
                    _forecast_block(
                        returns, spec, chosen.params, window_start, block, config.horizon
                    )
                )
        else:
            reason = (
                "not converged" if not chosen.converged else f"persistence {chosen.persistence:.4f}"
            )
            rows.append(
                _ewma_block(
                    returns, window_start, block, config.horizon, f"EWMA fallback: {reason}"
                )
            )
        reported.extend(block)
    variances = pd.DataFrame(
        np.vstack(rows), index=index[reported], columns=list(range(1, config.horizon + 1))
    )
    variances.index.name = "origin"
    return RollingForecasts(asset, spec, config, variances, pd.DataFrame(refits))


def _task(args):
    returns, spec, config, start, end, asset = args
    return asset, rolling_forecasts(returns, spec, config, start=start, end=end, asset=asset)


def _chains(
    returns: pd.Series, config: RollingConfig, start: DayLike | None, end: DayLike | None
) -> list[tuple]:
    """The requested origins split at warm-start-chain boundaries: independent pieces of work."""
    index = pd.DatetimeIndex(pd.to_datetime(returns.sort_index().index))
    eligible = _origins(index, config, start, end)
    if len(eligible) == 0:
        return []
    chain = (eligible - (config.window - 1)) // config.refit_every // config.restart_every
    pieces = []
    for value in np.unique(chain):
        members = eligible[chain == value]
        pieces.append((index[members[0]], index[members[-1]]))
    return pieces


def rolling_forecasts_many(
    returns: dict[str, pd.Series],
    spec: UnivariateSpec = UnivariateSpec(),
    config: RollingConfig = RollingConfig(),
    *,
    start: DayLike | None = None,
    end: DayLike | None = None,
    max_workers: int | None = None,
    mapper: Callable[[Callable, Iterable], Iterable] | None = None,
) -> dict[str, RollingForecasts]:
    """:func:`rolling_forecasts` for several underlyings in parallel processes.

    The work is split into warm-start chains (``restart_every`` refits each), which are
    independent, so three series on two cores keep both cores busy and the result equals the
    serial one exactly. Workers are started with ``forkserver`` (no fork of a process holding
    database threads). A ``mapper`` (``map(fn, items)``, e.g. a Dask client's) runs the
    chains instead, each as one task.
    """
    workers = max_workers or os.cpu_count() or 1
    tasks = []
    for asset, series in returns.items():
        for chain_start, chain_end in _chains(series, config, start, end):
            tasks.append((series, spec, config, chain_start, chain_end, asset))
    if mapper is not None:
        parts = list(mapper(_task, tasks))
    elif workers == 1 or len(tasks) <= 1:
        parts = [_task(t) for t in tasks]
    else:
        context = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=context) as pool:
            parts = list(pool.map(_task, tasks))
    merged: dict[str, RollingForecasts] = {}
    for asset in returns:
        pieces = [p for a, p in parts if a == asset]
        if not pieces:  # not enough history for any origin in the range
            empty = pd.DataFrame(columns=list(range(1, config.horizon + 1)), dtype=float)
            merged[asset] = RollingForecasts(asset, spec, config, empty, pd.DataFrame())
            continue
        merged[asset] = RollingForecasts(
            asset,
            spec,
            config,
            pd.concat([p.variances for p in pieces]).sort_index(),
            pd.concat([p.refits for p in pieces], ignore_index=True),
        )
    return merged


__all__ = [
    "FitStart",
    "RollingConfig",
    "RollingForecasts",
    "rolling_forecasts",
    "rolling_forecasts_many",
]
