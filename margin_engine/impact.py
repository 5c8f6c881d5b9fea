"""Market impact: the relative price move caused by trading a notional within a step.

The square-root law (Tóth et al., 2011; Bouchaud et al., *Trades, Quotes and Prices*, 2018)
gives the move of executing :math:`Q` (USD) against a daily volume :math:`V` (USD) with daily
volatility :math:`\\sigma`:

.. math::

    \\frac{\\Delta p}{p} = Y \\sigma \\sqrt{Q / V} + \\frac{s}{2},

with :math:`Y` of order one (empirical estimates across markets fall between about 0.5 and 1)
and :math:`s` the relative bid–ask spread, half of which any market order pays. The linear model
:math:`\\Delta p / p = \\lambda Q` is kept for closed forms (a Kyle-type price impact).

Sign convention: the move is a non-negative fraction; selling moves the price down by it,
buying up. A notional of zero moves nothing (no half spread is paid without a trade).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np

__all__ = ["ImpactKind", "ImpactModel"]


class ImpactKind(enum.Enum):
    """The functional form of the impact."""

    SQUARE_ROOT = "square-root"
    LINEAR = "linear"
    NONE = "none"


@dataclass(frozen=True)
class ImpactModel:
    """An impact model: the square-root law's :math:`Y`, :math:`\\sigma` (daily), :math:`V` (USD
    a day) and half spread, or the linear :math:`\\lambda` (per USD); ``NONE`` moves nothing.
    """

    kind: ImpactKind = ImpactKind.SQUARE_ROOT
    y: float = 0.7
    daily_vol: float = 0.03
    daily_volume: float = 1e9
    half_spread: float = 0.0
    linear: float = 0.0
    cap: float = 0.9  # no single step's liquidations move the price by more than this

    def __post_init__(self) -> None:
        for name in ("y", "daily_vol", "half_spread", "linear"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"impact.{name} must be a finite number ≥ 0, got {value!r}")
        if not (math.isfinite(self.daily_volume) and self.daily_volume > 0):
            raise ValueError(f"impact.daily_volume must be > 0, got {self.daily_volume!r}")
        if not (0 < self.cap < 1):
            raise ValueError(f"impact.cap must be in (0, 1), got {self.cap!r}")

    def move(self, notional: np.ndarray | float) -> np.ndarray:
        """The relative move (≥ 0) of trading ``notional`` USD (its absolute value)."""
        q = np.abs(np.asarray(notional, dtype=float))
        if self.kind is ImpactKind.NONE:
            return np.zeros_like(q)
        if self.kind is ImpactKind.LINEAR:
            raw = self.linear * q
        else:
            raw = self.y * self.daily_vol * np.sqrt(q / self.daily_volume) + self.half_spread
        return np.where(q > 0, np.minimum(raw, self.cap), 0.0)
