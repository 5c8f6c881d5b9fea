"""Rolling variance forecasts for backtests, without look-ahead.

On each origin day ``t`` the forecasts for days ``t+1 … t+H`` use only returns up to and
including ``t``. Parameters are re-estimated every ``refit_every`` origins on the trailing
``window`` returns; on the origins in between, the last estimate is kept and the variance is
filtered forward with the new returns (arch's ``fix``), exactly as a daily run would.

Warm starts: a refit starts from the previous estimate, which usually saves half the optimizer
iterations. It is checked against a cold start (arch's own starting values) whenever the warm
fit shows trouble (no convergence, a parameter on a bound, persistence ≥ 1) and on every
``verify_every``-th refit; the better optimum is kept and the check is recorded, so a warm
start can never silently end at a worse optimum on those refits.

Refits of different underlyings — and of separate date chunks of one underlying — run in
parallel processes (:func:`rolling_forecasts_many`).
"""

from __future__ import annotations

import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from calibration.univariate import (
    SCALE,
    FitStart,
    UnivariateFit,
    UnivariateSpec,
    VolProcess,
    fit_ewma,
    fit_univariate,
    variance_path,
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
    """

    window: int = 1000
    refit_every: int = 1
    horizon: int = 1
    warm_start: bool = True
    verify_every: int = 10

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
        return int(self.refits["fallback"].sum()) if len(self.refits) else 0


def _usable(fit: UnivariateFit) -> bool:
    return fit.converged and fit.stationary


def _better(a: UnivariateFit, b: UnivariateFit) -> UnivariateFit:
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
    filtering from ``window_start`` so the recursion starts where the estimation window did."""
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


def rolling_forecasts(
    returns: pd.Series,
    spec: UnivariateSpec = UnivariateSpec(),
    config: RollingConfig = RollingConfig(),
    *,
    start=None,
    end=None,
    asset: str = "",
) -> RollingForecasts:
    """Rolling forecasts of one series for origins in ``[start, end]`` (see the module doc).

    Parameters
    ----------
    returns : pd.Series
        Decimal log returns indexed by date, shape (n,).
    start, end : date-like, optional
        First and last origin; origins need ``config.window`` returns up to and including them.
    """
    returns = returns.sort_index()
    index = pd.DatetimeIndex(pd.to_datetime(returns.index))
    returns = pd.Series(returns.to_numpy(dtype=float), index=index, name=asset or returns.name)
    positions = np.arange(len(returns))
    eligible = positions[positions >= config.window - 1]
    if start is not None:
        eligible = eligible[index[eligible] >= pd.Timestamp(start)]
    if end is not None:
        eligible = eligible[index[eligible] <= pd.Timestamp(end)]
    if len(eligible) == 0:
        raise ValueError(
            f"{asset or 'series'}: no origin in [{start}, {end}] has {config.window} returns before it"
        )
    rows: list[np.ndarray] = []
    refits: list[dict] = []
    previous: dict[str, float] | None = None
    for block_start in range(0, len(eligible), config.refit_every):
        origins = list(eligible[block_start : block_start + config.refit_every])
        t = origins[0]
        window_start = t - config.window + 1
        window = returns.iloc[window_start : t + 1]
        refit_number = block_start // config.refit_every
        record = {
            "date": index[t],
            "warm_loglik": math.nan,
            "cold_loglik": math.nan,
            "verified": False,
        }
        if config.warm_start and previous is not None:
            warm = fit_univariate(window, spec, asset=asset, starting_values=previous)
            record["warm_loglik"] = warm.loglik
            trouble = not _usable(warm) or bool(warm.on_bounds)
            scheduled = config.verify_every > 0 and refit_number % config.verify_every == 0
            if trouble or scheduled:
                cold = fit_univariate(window, spec, asset=asset)
                record["cold_loglik"] = cold.loglik
                record["verified"] = True
                chosen = _better(warm, cold)
            else:
                chosen = warm
        else:
            chosen = fit_univariate(window, spec, asset=asset)
            record["cold_loglik"] = chosen.loglik
        record["start"] = chosen.start.value
        record["loglik"] = chosen.loglik
        record["params"] = chosen.params
        record["converged"] = chosen.converged
        record["persistence"] = chosen.persistence
        if _usable(chosen):
            previous = chosen.params
            record["fallback"] = False
            if len(origins) == 1:
                rows.append(chosen.forecast_variance(config.horizon)[None, :])
            else:
                rows.append(
                    _forecast_block(
                        returns, spec, chosen.params, window_start, origins, config.horizon
                    )
                )
        else:
            reason = (
                "not converged"
                if not chosen.converged
                else f"persistence {chosen.persistence:.4f} >= 1"
            )
            record["fallback"] = True
            rows.append(
                _ewma_block(
                    returns, window_start, origins, config.horizon, f"EWMA fallback: {reason}"
                )
            )
        refits.append(record)
    variances = pd.DataFrame(
        np.vstack(rows), index=index[eligible], columns=list(range(1, config.horizon + 1))
    )
    variances.index.name = "origin"
    return RollingForecasts(asset, spec, config, variances, pd.DataFrame(refits))


def _task(args):
    returns, spec, config, start, end, asset = args
    return asset, rolling_forecasts(returns, spec, config, start=start, end=end, asset=asset)


def _chunks(returns: pd.Series, config: RollingConfig, start, end, n: int) -> list[tuple]:
    """Split one series' origins into ``n`` contiguous date ranges, aligned to refit blocks."""
    index = pd.DatetimeIndex(pd.to_datetime(returns.sort_index().index))
    origins = index[config.window - 1 :]
    if start is not None:
        origins = origins[origins >= pd.Timestamp(start)]
    if end is not None:
        origins = origins[origins <= pd.Timestamp(end)]
    if len(origins) == 0:
        return []
    if n <= 1:
        return [(origins[0], origins[-1])]
    size = math.ceil(len(origins) / n / config.refit_every) * config.refit_every
    return [
        (origins[i], origins[min(i + size, len(origins)) - 1]) for i in range(0, len(origins), size)
    ]


def rolling_forecasts_many(
    returns: dict[str, pd.Series],
    spec: UnivariateSpec = UnivariateSpec(),
    config: RollingConfig = RollingConfig(),
    *,
    start=None,
    end=None,
    max_workers: int | None = None,
    chunks_per_asset: int | None = None,
) -> dict[str, RollingForecasts]:
    """:func:`rolling_forecasts` for several underlyings in parallel processes.

    Each underlying's origins are split into ``chunks_per_asset`` date ranges (default: enough
    to keep every worker busy) so that three series on two cores do not leave one core idle.
    Each chunk starts with a cold fit. Workers are started with ``forkserver`` (no fork of a
    process holding database threads).
    """
    workers = max_workers or os.cpu_count() or 1
    if chunks_per_asset is None:
        chunks_per_asset = max(1, math.ceil(2 * workers / max(1, len(returns))))
    tasks = []
    for asset, series in returns.items():
        for chunk_start, chunk_end in _chunks(series, config, start, end, chunks_per_asset):
            tasks.append((series, spec, config, chunk_start, chunk_end, asset))
    if workers == 1 or len(tasks) == 1:
        parts = [_task(t) for t in tasks]
    else:
        context = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
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
