"""Procyclicality of a margin path: how far and how fast margin rises.

Pure functions over a positive margin series ``margins`` (shape (T,), one value per day, in one
currency). Results are frozen dataclasses carrying the indices of the days involved, so a
caller can name the dates.

* :func:`peak_to_trough` — :math:`\\max_t m_t / \\min_t m_t`; with ``trough_first`` the largest
  rise actually experienced, :math:`\\max_{s<t} m_t / m_s` (the trough comes first).
* :func:`max_increase` — the largest relative increase over ``n`` days,
  :math:`\\max_t m_{t+n}/m_t - 1`; with ``pathwise`` the largest reached at any point within
  the ``n`` days, :math:`\\max_t \\max_{1\\le k\\le n} m_{t+k}/m_t - 1`.

A series shorter than the window has no increase to measure: the result says so
(``defined=False``, value NaN, a note) rather than inventing one. Margins must be finite and
strictly positive — ratios of a zero margin are meaningless — and a violation raises
:class:`ValueError` naming the first bad index.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from backtesting._typing import ArrayLike

HORIZONS = (1, 5, 30)


def _margins(margins: ArrayLike) -> np.ndarray:
    m = np.asarray(margins, dtype=float)
    if m.ndim != 1 or m.size == 0:
        raise ValueError(f"margins must be a non-empty 1-D array, got shape {m.shape}")
    bad = np.flatnonzero(~np.isfinite(m) | (m <= 0))
    if bad.size:
        raise ValueError(f"margins[{bad[0]}] = {m[bad[0]]}: margins must be finite and positive")
    return m


@dataclass(frozen=True)
class PeakToTrough:
    """Largest fall from a peak to a later trough (or trough to later peak), as a ratio."""

    ratio: float
    peak: int
    trough: int
    trough_first: bool

    def as_dict(self) -> dict:
        """The measure as JSON-safe values."""
        return {
            "ratio": self.ratio,
            "peak": self.peak,
            "trough": self.trough,
            "trough_first": self.trough_first,
        }


@dataclass(frozen=True)
class MarginIncrease:
    """Relative increase ``value`` (0.35 = +35 %) from day ``start`` to day ``end``."""

    value: float
    start: int
    end: int
    days: int
    pathwise: bool
    defined: bool = True
    note: str = ""

    def as_dict(self) -> dict:
        """The measure as JSON-safe values."""
        return {
            "value": self.value if self.defined else None,
            "start": self.start,
            "end": self.end,
            "days": self.days,
            "pathwise": self.pathwise,
            "defined": self.defined,
            "note": self.note,
        }


def peak_to_trough(margins: ArrayLike, trough_first: bool = False) -> PeakToTrough:
    """Peak over trough of ``margins`` (see the module docstring); 1 for a single day."""
    m = _margins(margins)
    if not trough_first:
        peak, trough = int(np.argmax(m)), int(np.argmin(m))
        return PeakToTrough(float(m[peak] / m[trough]), peak, trough, False)
    running_min = np.minimum.accumulate(m)
    where_min = np.maximum.accumulate(np.where(m == running_min, np.arange(m.size), 0))
    ratios = m / running_min
    peak = int(np.argmax(ratios))
    return PeakToTrough(float(ratios[peak]), peak, int(where_min[peak]), True)


def max_increase(margins: ArrayLike, n: int, pathwise: bool = False) -> MarginIncrease:
    """The largest ``n``-day relative margin increase (see the module docstring)."""
    if not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n must be a positive number of days, got {n!r}")
    m = _margins(margins)
    if m.size <= n:
        return MarginIncrease(
            math.nan,
            0,
            0,
            int(n),
            pathwise,
            defined=False,
            note=f"{m.size} day(s) of margins: no {n}-day window to measure",
        )
    if not pathwise:
        ratios = m[n:] / m[:-n]
        start = int(np.argmax(ratios))
        return MarginIncrease(float(ratios[start] - 1.0), start, start + int(n), int(n), False)
    best, best_start, best_end = -math.inf, 0, 0
    for k in range(1, int(n) + 1):
        ratios = m[k:] / m[:-k]
        start = int(np.argmax(ratios))
        if ratios[start] > best:
            best, best_start, best_end = float(ratios[start]), start, start + k
    return MarginIncrease(best - 1.0, best_start, best_end, int(n), True)


@dataclass(frozen=True)
class ProcyclicalitySummary:
    """Peak-to-trough ratios and the largest increases over each horizon."""

    peak_to_trough: PeakToTrough
    peak_to_trough_trough_first: PeakToTrough
    increases: dict[int, MarginIncrease]
    pathwise_increases: dict[int, MarginIncrease]

    def as_dict(self) -> dict:
        """The summary as JSON-safe values."""
        return {
            "peak_to_trough": self.peak_to_trough.as_dict(),
            "peak_to_trough_trough_first": self.peak_to_trough_trough_first.as_dict(),
            "max_increase": {str(n): v.as_dict() for n, v in self.increases.items()},
            "max_increase_pathwise": {
                str(n): v.as_dict() for n, v in self.pathwise_increases.items()
            },
        }


def procyclicality_summary(
    margins: ArrayLike, horizons: Sequence[int] = HORIZONS
) -> ProcyclicalitySummary:
    """Peak-to-trough both ways and the largest 1-, 5- and 30-day increases (end-point and
    pathwise).
    """
    m = _margins(margins)
    return ProcyclicalitySummary(
        peak_to_trough(m),
        peak_to_trough(m, trough_first=True),
        {n: max_increase(m, n) for n in horizons},
        {n: max_increase(m, n, pathwise=True) for n in horizons},
    )
