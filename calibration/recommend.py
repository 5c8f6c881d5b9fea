"""From fitted models to margin parameters under a :class:`~calibration.policy.CalibrationPolicy`,
with the arithmetic shown.

Moves over an MPOR of ``h`` days (decimal log returns, drift excluded: margin covers moves, not
expected returns):

**Filtered historical simulation.** The model's standardized residuals :math:`z_1 … z_n` from
the lookback are re-scaled by today's forecast volatility path :math:`\\sigma_{T+1} …
\\sigma_{T+h}`. For every start ``s`` a path :math:`S_{s,j} = \\sum_{i \\le j} \\sigma_{T+i}
z_{(s+i-1) \\bmod n}` is formed (circular blocks, so every start has ``h`` steps and the sample
is the same for every ``h``), and its worst point within the MPOR is kept:
:math:`D_s = \\min(0, \\min_{j\\le h} S_{s,j})`, :math:`U_s = \\max(0, \\max_{j \\le h} S_{s,j})`.
A position can be liquidated at any point of the MPOR, so the path's worst point — not its end —
is the loss to cover; it also makes every recommendation non-decreasing in ``h``.

**Parametric.** :math:`q = F^{-1}(\\cdot)\\sqrt{\\sum_{j \\le h}\\sigma^2_{T+j}}` with ``F`` the fitted
innovation distribution (normal for EWMA) — the usual √(cumulative variance) approximation.

Then :math:`\\text{down} = 1 - e^{q_{1-c}(D)}`, :math:`\\text{up} = e^{q_c(U)} - 1`, and the APC
option of the policy is applied (buffer ×(1+b); stressed weight :math:`(1-w)\\,x + w\\,x_{stress}`
with :math:`x_{stress}` from the raw paths starting in the stress windows; floor
:math:`\\max(x, x_{10y})` with :math:`x_{10y}` from raw paths over the last ten years).

Parameters recommended (paths as in the parameter set):

* ``underlyings.A.pm.price_range`` and ``underlyings.A.span.price_scan_range`` =
  max(down, up) at (confidence, MPOR);
* ``underlyings.A.span.extreme_move_multiple`` = :math:`M / (f R)` with M the move at
  ``extreme_confidence``, R the price range and f the SPAN covered fraction of the extreme
  scenario: SPAN charges f times the loss of a move k·R, so a linear position's extreme charge
  f·k·R equals M exactly (clipped to the parameter's range [1, 10], said so when it is);
* ``underlyings.A.pm.vol_range_up``, ``…vol_range_down`` (relative IV moves of the 30-day
  index over the MPOR) and ``underlyings.A.span.vol_scan_range`` = the larger;
* ``collateral.A.haircut`` = down move at (confidence, haircut MPOR);
* ``spreads.A-B.credit`` = :math:`1 - \\sqrt{(1-\\rho)/2}` with ρ the lowest of the DCC, CCC
  and stress-window correlations: the saving of a spread whose legs carry equal margin.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from calibration import DAYS_PER_YEAR
from calibration.iv_dynamics import IvDynamics
from calibration.policy import CalibrationPolicy, MoveMethod
from calibration.univariate import EwmaFit, Innovation, UnivariateFit
from vocabulary import Apc

FORECAST_HORIZON = 30  # forecast paths are computed this long and sliced, for a stable prefix


@dataclass(frozen=True)
class Derivation:
    """How a value was obtained, in enough detail to print and to recompute."""

    method: str
    inputs: dict
    quantiles: dict
    scaling: str
    steps: tuple[str, ...]
    apc: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The derivation as JSON-safe values."""
        return {
            "method": self.method,
            "inputs": self.inputs,
            "quantiles": self.quantiles,
            "scaling": self.scaling,
            "steps": list(self.steps),
            "apc": self.apc,
        }


@dataclass(frozen=True)
class Recommendation:
    """One recommended parameter value with its unit and derivation."""

    parameter: str
    value: float
    unit: str
    derivation: Derivation

    def to_dict(self) -> dict:
        """The recommendation as JSON-safe values."""
        return {
            "parameter": self.parameter,
            "value": self.value,
            "unit": self.unit,
            "derivation": self.derivation.to_dict(),
        }


@dataclass(frozen=True)
class Recommendations:
    """Every recommended parameter of one calibration, with notes."""

    as_of: str
    policy: CalibrationPolicy
    items: tuple[Recommendation, ...]
    notes: tuple[str, ...] = ()

    def value(self, parameter: str) -> float:
        """The recommended value of ``parameter``."""
        for item in self.items:
            if item.parameter == parameter:
                return item.value
        raise KeyError(f"no recommendation for {parameter!r}")

    def as_dict(self) -> dict[str, float]:
        """Parameter path → recommended value."""
        return {item.parameter: item.value for item in self.items}

    def to_dict(self) -> dict:
        """The recommendations as JSON-safe values."""
        return {
            "as_of": self.as_of,
            "policy": self.policy.to_dict(),
            "items": [i.to_dict() for i in self.items],
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class Move:
    """Down and up moves (simple-return fractions, positive) over one horizon, with the story."""

    down: float
    up: float
    base_down: float
    base_up: float
    derivation: Derivation


# --------------------------------------------------------------------------- building blocks


def path_extremes(z: np.ndarray, sigma: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Worst down (≤ 0) and up (≥ 0) point of the circular-block FHS paths, each shape (n,)."""
    n = len(z)
    index = (np.arange(n)[:, None] + np.arange(horizon)[None, :]) % n
    paths = np.cumsum(z[index] * sigma[None, :horizon], axis=1)
    return np.minimum(paths.min(axis=1), 0.0), np.maximum(paths.max(axis=1), 0.0)


def raw_path_extremes(
    returns: np.ndarray, starts: np.ndarray, horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """Worst down/up point of the *historical* paths starting at ``starts`` (no rescaling; a
    path that runs past the data's end is cut there).
    """
    downs, ups = [], []
    for s in starts:
        path = np.cumsum(returns[s : s + horizon])
        if len(path) == 0:
            continue
        downs.append(min(path.min(), 0.0))
        ups.append(max(path.max(), 0.0))
    return np.asarray(downs), np.asarray(ups)


def _innovation_ppf(fit: UnivariateFit | EwmaFit, probabilities: np.ndarray) -> np.ndarray:
    if isinstance(fit, EwmaFit):
        from scipy.stats import norm

        return norm.ppf(probabilities)
    model = fit.result.model if fit.result is not None else fit.spec.build(pd.Series(np.zeros(200)))
    shape: list[float] | None = [fit.params[k] for k in model.distribution.parameter_names()]
    if fit.spec.dist is Innovation.NORMAL:
        shape = None
    return np.asarray(model.distribution.ppf(probabilities, shape), dtype=float)


def _standardized_residuals(fit: UnivariateFit | EwmaFit, lookback: int) -> np.ndarray:
    z = fit.std_resid.to_numpy(dtype=float)
    z = z[np.isfinite(z)]
    return z[-lookback:]


def _pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def estimate_move(
    fit: UnivariateFit | EwmaFit,
    history: pd.Series,
    policy: CalibrationPolicy,
    horizon: int,
    confidence: float,
    *,
    cap_down_at_one: bool = True,
) -> Move:
    """Down and up moves of one series over ``horizon`` days at ``confidence`` (module doc).

    Parameters
    ----------
    fit : UnivariateFit or EwmaFit
        The model of the series, fitted on its last ``policy.lookback_days`` observations.
    history : pd.Series
        Every decimal log change of the series up to the as-of date (for the stress windows
        and the 10-year floor), shape (n,).
    """
    sigma_path = np.sqrt(fit.forecast_variance(FORECAST_HORIZON))[:horizon]
    cumulative_vol = float(np.sqrt(np.sum(sigma_path**2)))
    inputs = {
        "model": fit.name,
        "horizon_days": horizon,
        "confidence": confidence,
        "forecast_vol_day1_annual": float(sigma_path[0] * math.sqrt(DAYS_PER_YEAR)),
        "forecast_vol_horizon": cumulative_vol,
        "window": f"{fit.window.start}..{fit.window.end}",
        "data_fingerprint": fit.window.fingerprint,
    }
    steps = []
    if policy.method is MoveMethod.FILTERED_HISTORICAL:
        z = _standardized_residuals(fit, policy.lookback_days)
        worst_down, worst_up = path_extremes(z, sigma_path, horizon)
        q_down = float(np.quantile(worst_down, 1 - confidence))
        q_up = float(np.quantile(worst_up, confidence))
        inputs["samples"] = len(z)
        scaling = (
            f"{len(z)} standardized residuals re-scaled by the {horizon}-day forecast vol path; "
            "circular blocks; worst point of each path within the MPOR"
        )
        steps.append(
            f"q_{1 - confidence:.4g} of path-worst down moves = {q_down:.5f} (log); "
            f"q_{confidence:.4g} of path-worst up moves = {q_up:.5f} (log)"
        )
        method = "filtered historical simulation"
    else:
        lo, hi = _innovation_ppf(fit, np.array([1 - confidence, confidence]))
        q_down, q_up = min(float(lo) * cumulative_vol, 0.0), max(float(hi) * cumulative_vol, 0.0)
        scaling = f"innovation quantiles x sqrt(cumulative {horizon}-day forecast variance)"
        steps.append(
            f"F^-1({1 - confidence:.4g}) = {lo:.4f}, F^-1({confidence:.4g}) = {hi:.4f}; x {cumulative_vol:.5f} "
            f"-> {q_down:.5f} / {q_up:.5f} (log)"
        )
        method = f"parametric ({fit.name})"
    base_down, base_up = 1 - math.exp(q_down), math.exp(q_up) - 1
    steps.append(
        f"down = 1 - exp({q_down:.5f}) = {_pct(base_down)}; up = exp({q_up:.5f}) - 1 = {_pct(base_up)}"
    )
    down, up = base_down, base_up
    apc: dict = {"option": policy.apc.value}
    values = history.to_numpy(dtype=float)
    dates = pd.DatetimeIndex(pd.to_datetime(history.index))
    if policy.apc is Apc.BUFFER:
        down, up = base_down * (1 + policy.apc_buffer), base_up * (1 + policy.apc_buffer)
        apc.update(buffer=policy.apc_buffer, released_down=base_down, released_up=base_up)
        steps.append(
            f"APC buffer +{policy.apc_buffer:.0%}: down {_pct(base_down)} -> {_pct(down)}, "
            f"up {_pct(base_up)} -> {_pct(up)} (releasable in stress)"
        )
    elif policy.apc is Apc.STRESSED_WEIGHT:
        starts = np.flatnonzero(
            np.any(
                [
                    (dates >= pd.Timestamp(w.start)) & (dates <= pd.Timestamp(w.end))
                    for w in policy.stress_windows
                ],
                axis=0,
            )
        )
        if len(starts) == 0:
            apc["note"] = "no stress-window data for this series; no stressed weight applied"
            steps.append(
                "APC stressed weight: no stress-window observations in the history — not applied"
            )
        else:
            s_down, s_up = raw_path_extremes(values, starts, horizon)
            stress_down = 1 - math.exp(float(np.quantile(s_down, 1 - confidence)))
            stress_up = math.exp(float(np.quantile(s_up, confidence))) - 1
            w = policy.apc_stress_weight
            down = (1 - w) * base_down + w * stress_down
            up = (1 - w) * base_up + w * stress_up
            apc.update(
                weight=w,
                stressed_down=stress_down,
                stressed_up=stress_up,
                stressed_paths=len(starts),
            )
            steps.append(
                f"APC stressed weight {w:.0%} ({len(starts)} paths from the stress windows): "
                f"down {1 - w:.2f} x {_pct(base_down)} + {w:.2f} x {_pct(stress_down)} = {_pct(down)}; "
                f"up {1 - w:.2f} x {_pct(base_up)} + {w:.2f} x {_pct(stress_up)} = {_pct(up)}"
            )
    elif policy.apc is Apc.FLOOR:
        floor_days = int(round(policy.apc_floor_years * DAYS_PER_YEAR))
        available = min(floor_days, len(values))
        starts = np.arange(len(values) - available, len(values))
        f_down, f_up = raw_path_extremes(values, starts, horizon)
        floor_down = 1 - math.exp(float(np.quantile(f_down, 1 - confidence)))
        floor_up = math.exp(float(np.quantile(f_up, confidence))) - 1
        down, up = max(base_down, floor_down), max(base_up, floor_up)
        apc.update(
            floor_down=floor_down,
            floor_up=floor_up,
            floor_days_wanted=floor_days,
            floor_days_used=available,
        )
        short = (
            ""
            if available >= floor_days
            else f" (only {available} days of history, not {floor_days})"
        )
        steps.append(
            f"APC floor on {available} days of unfiltered history{short}: "
            f"down max({_pct(base_down)}, {_pct(floor_down)}) = {_pct(down)}; "
            f"up max({_pct(base_up)}, {_pct(floor_up)}) = {_pct(up)}"
        )
    if cap_down_at_one and down > 1:
        steps.append(f"down capped at 100 % (was {_pct(down)})")
        down = 1.0
    derivation = Derivation(
        method=method,
        inputs=inputs,
        quantiles={"level": confidence, "down_log": q_down, "up_log": q_up},
        scaling=scaling,
        steps=tuple(steps),
        apc=apc,
    )
    return Move(down, up, base_down, base_up, derivation)


DEFAULT_COVERED_FRACTION = 0.35  # SPAN-style default of the parameter set (CME-like)
EXTREME_MULTIPLE_RANGE = (1.0, 10.0)  # the parameter set's bounds of the multiple


def extreme_multiple(
    extreme_move: float, price_range: float, covered_fraction: float
) -> tuple[float, tuple[str, ...]]:
    """The SPAN extreme-move multiple k whose *charged* extreme equals ``extreme_move``.

    SPAN's extreme scenarios move the price by :math:`k R` and count a fraction f of the loss,
    so a linear position is charged :math:`f k R`: :math:`k = M / (f R)` covers the move M.
    Clipped to :data:`EXTREME_MULTIPLE_RANGE` (the schema's bounds); the steps say so.
    """
    if not (price_range > 0 and 0 < covered_fraction <= 1):
        return math.nan, (
            f"no multiple: price range {price_range!r}, covered fraction {covered_fraction!r}",
        )
    raw = extreme_move / (covered_fraction * price_range)
    low, high = EXTREME_MULTIPLE_RANGE
    value = min(max(raw, low), high)
    steps = [
        f"multiple = move / (covered fraction x price range) = {_pct(extreme_move)} / "
        f"({covered_fraction:.3g} x {_pct(price_range)}) = {raw:.3f}"
    ]
    if value != raw:
        steps.append(f"clipped to [{low:g}, {high:g}]: {value:.3f}")
    return value, tuple(steps)


def spread_credit(rho: float) -> float:
    """Margin saving of a two-leg spread whose legs carry equal margin, at correlation ρ:
    :math:`1 - \\sqrt{2 - 2\\rho}/2`, zero for ρ ≤ 0.
    """
    if rho <= 0:
        return 0.0
    return 1.0 - math.sqrt((1.0 - min(rho, 1.0)) / 2.0)


# --------------------------------------------------------------------------- the recommendation


def _with(derivation: Derivation, *steps: str) -> Derivation:
    return Derivation(
        derivation.method,
        derivation.inputs,
        derivation.quantiles,
        derivation.scaling,
        derivation.steps + tuple(steps),
        derivation.apc,
    )


def recommend(
    fits: Mapping[str, UnivariateFit | EwmaFit],
    history: Mapping[str, pd.Series],
    policy: CalibrationPolicy,
    *,
    as_of: str,
    iv: Mapping[str, IvDynamics] | None = None,
    iv_history: Mapping[str, pd.Series] | None = None,
    pair_correlations: Mapping[tuple[str, str], Mapping[str, float]] | None = None,
    collateral: Sequence[str] | None = None,
    extreme_covered_fraction: Mapping[str, float] | float = DEFAULT_COVERED_FRACTION,
) -> Recommendations:
    """Recommend every parameter the policy covers; see the module docstring.

    Parameters
    ----------
    fits
        The chosen volatility model per underlying.
    history
        All decimal log returns per underlying up to ``as_of``.
    iv, iv_history
        IV dynamics and all log IV changes per underlying that has an IV index (vol ranges).
    pair_correlations
        ``{("BTC", "ETH"): {"dcc": 0.81, "ccc": 0.80, "March 2020": 0.93, …}}``.
    collateral
        Assets to recommend haircuts for (default: every fitted underlying).
    extreme_covered_fraction
        SPAN's covered fraction f of the extreme scenario per underlying (or one for all), as
        the parameter set in force has it: the extreme multiple is derived for it.
    """
    items: list[Recommendation] = []
    notes: list[str] = []
    for asset in sorted(fits):
        fit = fits[asset]
        if isinstance(fit, EwmaFit):
            notes.append(f"{asset}: volatility from the EWMA fallback ({fit.reason})")
        move = estimate_move(fit, history[asset], policy, policy.mpor_days, policy.confidence)
        price_range = max(move.down, move.up)
        side = "down" if move.down >= move.up else "up"
        derivation = _with(
            move.derivation, f"price range = max(down, up) = {side} move = {_pct(price_range)}"
        )
        items.append(
            Recommendation(
                f"underlyings.{asset}.pm.price_range",
                price_range,
                "fraction of index price",
                derivation,
            )
        )
        items.append(
            Recommendation(
                f"underlyings.{asset}.span.price_scan_range",
                price_range,
                "fraction of index price",
                _with(derivation, "SPAN price scan range = the same move as the PM price range"),
            )
        )
        extreme = estimate_move(
            fit, history[asset], policy, policy.mpor_days, policy.extreme_confidence
        )
        extreme_move = max(extreme.down, extreme.up)
        covered = (
            extreme_covered_fraction
            if isinstance(extreme_covered_fraction, int | float)
            else extreme_covered_fraction.get(asset, DEFAULT_COVERED_FRACTION)
        )
        multiple, steps = extreme_multiple(extreme_move, price_range, covered)
        items.append(
            Recommendation(
                f"underlyings.{asset}.span.extreme_move_multiple",
                multiple,
                "multiple of the price scan range",
                _with(
                    extreme.derivation,
                    f"extreme move at {policy.extreme_confidence:.4g} = {_pct(extreme_move)}",
                    *steps,
                ),
            )
        )
        vol_fit = iv[asset].vol_fit if iv and asset in iv else None
        if iv and vol_fit is not None:
            dynamics = iv[asset]
            changes = (iv_history or {}).get(asset, dynamics.log_changes)
            vol_move = estimate_move(
                vol_fit,
                changes,
                policy,
                policy.mpor_days,
                policy.confidence,
                cap_down_at_one=True,
            )
            vol_derivation = _with(
                vol_move.derivation,
                f"IV index {dynamics.asset}: last {dynamics.iv_last:.4f}, vol of vol "
                f"{dynamics.vol_of_vol_current_annual:.3f}, spot-vol corr {dynamics.spot_vol_corr:.3f}",
            )
            items.append(
                Recommendation(
                    f"underlyings.{asset}.pm.vol_range_up",
                    vol_move.up,
                    "fraction of IV",
                    vol_derivation,
                )
            )
            items.append(
                Recommendation(
                    f"underlyings.{asset}.pm.vol_range_down",
                    vol_move.down,
                    "fraction of IV",
                    vol_derivation,
                )
            )
            items.append(
                Recommendation(
                    f"underlyings.{asset}.span.vol_scan_range",
                    max(vol_move.up, vol_move.down),
                    "fraction of IV",
                    _with(
                        vol_derivation, "SPAN vol scan range = max(vol range up, vol range down)"
                    ),
                )
            )
    for asset in sorted(collateral if collateral is not None else fits):
        if asset not in fits:
            notes.append(f"{asset}: no volatility model, no haircut recommended")
            continue
        move = estimate_move(
            fits[asset], history[asset], policy, policy.haircut_mpor_days, policy.confidence
        )
        tiers = ", ".join(
            f"{'above' if t.up_to_usd is None else 'up to'} "
            f"{'the last limit' if t.up_to_usd is None else f'{t.up_to_usd:,.0f} USD'}: {_pct(min(1.0, move.down + t.add_on))}"
            for t in policy.haircut_tiers
        )
        items.append(
            Recommendation(
                f"collateral.{asset}.haircut",
                move.down,
                "fraction of collateral value",
                _with(
                    move.derivation,
                    f"haircut = down move over {policy.haircut_mpor_days} days = {_pct(move.down)}",
                    f"size tiers (policy add-ons): {tiers}",
                ),
            )
        )
    for (a, b), rhos in sorted((pair_correlations or {}).items()):
        if not rhos:
            continue
        finite = {k: v for k, v in rhos.items() if math.isfinite(v)}
        source, rho = min(finite.items(), key=lambda kv: kv[1])
        credit = spread_credit(rho)
        listed = ", ".join(f"{k} {v:.3f}" for k, v in sorted(finite.items()))
        items.append(
            Recommendation(
                f"spreads.{a}-{b}.credit",
                credit,
                "fraction of the two legs' margins",
                Derivation(
                    method="lowest correlation of the available estimates",
                    inputs={"correlations": finite},
                    quantiles={},
                    scaling="equal-margin legs",
                    steps=(
                        f"correlations: {listed}",
                        f"lowest: {source} rho = {rho:.4f}",
                        f"credit = 1 - sqrt((1 - {rho:.4f}) / 2) = {credit:.4f}"
                        if rho > 0
                        else "rho <= 0: no credit",
                    ),
                ),
            )
        )
    return Recommendations(as_of, policy, tuple(items), tuple(notes))


@dataclass(frozen=True)
class BoundViolation:
    """A recommendation outside its configured bounds."""

    parameter: str
    value: float
    low: float | None
    high: float | None

    def describe(self) -> str:
        """One line naming the parameter, its value and the bounds."""
        return f"{self.parameter} = {self.value:.6g} outside [{self.low}, {self.high}]"


def outside_bounds(
    recommendations: Recommendations, bounds: Mapping[str, tuple[float | None, float | None]]
) -> list[BoundViolation]:
    """Recommendations outside ``bounds`` (parameter path -> (min, max), either may be None)."""
    out = []
    for item in recommendations.items:
        if item.parameter not in bounds:
            continue
        low, high = bounds[item.parameter]
        if (
            (low is not None and item.value < low)
            or (high is not None and item.value > high)
            or not math.isfinite(item.value)
        ):
            out.append(BoundViolation(item.parameter, item.value, low, high))
    return out
