"""Parameter paths taken from the rolling calibration each day (``--calibrate``), held to
bounds: the values a daily run would have recommended, without look-ahead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

import pandas as pd

from backtesting.procyclicality import procyclicality_summary
from backtesting.spec import BacktestSpec
from calibration.realtime import RealtimeVolatility, fhs_moves


def _finite(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


# the parameter set's own range of each calibratable path (an open lower bound as 1e-6)
SCHEMA_RANGE = {
    "pm.price_range": (1e-6, 1.0),
    "span.price_scan_range": (1e-6, 1.0),
    "haircut": (0.0, 1.0),
}


def schema_range(path: str) -> tuple[float, float]:
    """The parameter set's own [low, high] of a calibratable ``path``."""
    return SCHEMA_RANGE["haircut" if path.startswith("collateral") else path.split(".", 2)[2]]


def held_bounds(
    paths: Sequence[str], limits: Mapping[str, tuple[float | None, float | None]]
) -> dict[str, tuple[float, float]]:
    """[low, high] per path: ``limits`` (a governance policy's min and max, either None for no
    limit) intersected with the parameter's own range (:func:`schema_range`).
    """
    out = {}
    for path in paths:
        low, high = schema_range(path)
        floor, ceiling = limits.get(path, (None, None))
        out[path] = (
            max(low, floor) if floor is not None else low,
            min(high, ceiling) if ceiling is not None else high,
        )
    return out


@dataclass(frozen=True)
class CalibratedPath:
    """Daily calibrated parameter values (days × paths), clipped to the policy's bounds.

    ``raw`` holds the values before clipping; ``bounds`` the [low, high] each path was held to
    (the governance policy's bound intersected with the parameter's own range); ``clips`` one
    row per clipped (day, path).
    """

    values: pd.DataFrame
    raw: pd.DataFrame
    bounds: dict[str, tuple[float, float]]

    @property
    def clips(self) -> pd.DataFrame:
        """One row per clipped (day, path): the calibrated value and the bound it was held to."""
        rows = []
        for path in self.values.columns:
            moved = self.raw[path].notna() & (self.raw[path] != self.values[path])
            for day in self.values.index[moved]:
                rows.append(
                    (day, path, float(self.raw.at[day, path]), float(self.values.at[day, path]))
                )
        return pd.DataFrame(rows, columns=["date", "path", "calibrated", "clipped_to"])

    def summary(self) -> dict:
        """Per path: bounds, days clipped (first dates), range and procyclicality of the path."""
        out = {}
        clips = self.clips
        for path in self.values.columns:
            series = self.values[path].dropna()
            mine = clips[clips["path"] == path]
            entry = {
                "bounds": list(self.bounds[path]),
                "days": int(len(series)),
                "clipped_days": int(len(mine)),
                "clipped_first": [d.date().isoformat() for d in mine["date"][:5]],
                "raw_min": _finite(self.raw[path].min()),
                "raw_max": _finite(self.raw[path].max()),
                "min": _finite(series.min()) if len(series) else None,
                "max": _finite(series.max()) if len(series) else None,
                "procyclicality": None,
            }
            if len(series) and (series > 0).all():
                p = procyclicality_summary(series.to_numpy()).as_dict()
                entry["procyclicality"] = {
                    "peak_to_trough": p["peak_to_trough"]["ratio"],
                    "max_increase_1d": p["max_increase"]["1"]["value"],
                    "max_increase_5d": p["max_increase"]["5"]["value"],
                    "max_increase_30d": p["max_increase"]["30"]["value"],
                }
            out[path] = entry
        return out


def calibrated_paths(assets: Sequence[str], patterns: Sequence[str]) -> list[str]:
    """The concrete parameter paths of ``assets`` that the ``--calibrate`` ``patterns`` name."""
    return [
        p
        for asset in assets
        for p in (
            f"underlyings.{asset}.pm.price_range",
            f"underlyings.{asset}.span.price_scan_range",
            f"collateral.{asset}.haircut",
        )
        if any(fnmatchcase(p, c) for c in patterns)
    ]


def calibrated_values(
    realtime: Mapping[str, RealtimeVolatility],
    spec: BacktestSpec,
    days: Sequence[pd.Timestamp],
    confidence: float,
    mpor: int,
    bounds: Mapping[str, tuple[float, float]] | None = None,
) -> CalibratedPath:
    """Daily values of the ``calibrate`` paths (days × paths): FHS moves at ``confidence`` over
    the MPOR from the residuals known that day, × ``scale``; price ranges take the larger tail,
    haircuts the down move; then clipped to ``bounds`` per path (default: the parameter's own
    range, :func:`schema_range`) — a clip is recorded, never an error.
    """
    out = {}
    index = pd.DatetimeIndex(days)
    for asset, rt in realtime.items():
        paths = calibrated_paths([asset], spec.calibrate)
        if not paths:
            continue
        moves = fhs_moves(rt, index, mpor, confidence, spec.residual_lookback)
        for path in paths:
            column = "down" if path.startswith("collateral") else "price_range"
            out[path] = (moves[column] * spec.scale).reindex(index)
    raw = pd.DataFrame(out, index=index)
    limits = {p: (bounds or {}).get(p, schema_range(p)) for p in raw.columns}
    clipped = raw.copy()
    for path, (low, high) in limits.items():
        clipped[path] = raw[path].clip(lower=low, upper=high)
    return CalibratedPath(clipped, raw, limits)
