"""Decimal log returns with an explicit gap policy — one rule for the whole workbench.

A return is always taken between two *observed* closes. When observations are missing, the
return that spans the gap covers k > 1 trading days: it is a k-day return. It is *flagged* —
counted and dated in :attr:`ReturnSeries.gaps` — and then kept, dropped or rescaled as the
policy says. Nothing is forward-filled.

**The workbench's rule** (:data:`DEFAULT_GAP_POLICY`, ``scale``): wherever a daily return is
expected — GARCH fits, rolling forecasts, FHS residuals, VaR scenarios, IV dynamics — a k-day
return enters as its one-day-variance equivalent :math:`r/\\sqrt{k}`, so the series keeps
every observed move (a crash across a missing day is not lost) without counting k days of
variance as one. The day after a gap is then an ordinary forecast origin: it is margined with
the model's forecast for its horizon. Every result lists the gaps it saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd

from calibration._typing import DayLike
from vocabulary import DAYS_PER_YEAR


class GapPolicy(StrEnum):
    """What to do with a return that spans more than one trading day."""

    KEEP = "keep"  # keep it as one (multi-day) observation
    DROP = "drop"  # leave it out of the series
    SCALE = "scale"  # divide by sqrt(days spanned): a one-day-variance equivalent


class Calendar(StrEnum):
    """Which days a market trades: crypto every UTC day, equities on weekdays."""

    ALWAYS = "24/7"
    WEEKDAYS = "weekdays"


@dataclass(frozen=True)
class ReturnSeries:
    """Decimal log returns of one asset.

    Attributes
    ----------
    values : pd.Series
        Returns indexed by the date of the closing price, shape (n,).
    span_days : pd.Series
        Trading days each return spans (1 for a normal day), shape (n,).
    gaps : pd.DataFrame
        The flagged multi-day returns: ``date``, ``span_days``, ``return`` (as observed) and
        ``action`` (what the policy did).
    policy, calendar
        How gaps were treated and which calendar defines a trading day.
    """

    asset: str
    values: pd.Series
    span_days: pd.Series
    gaps: pd.DataFrame
    policy: GapPolicy
    calendar: Calendar

    @property
    def start(self):
        """The first return's date (None when empty)."""
        return self.values.index[0] if len(self.values) else None

    @property
    def end(self):
        """The last return's date (None when empty)."""
        return self.values.index[-1] if len(self.values) else None

    def window(self, start: DayLike | None = None, end: DayLike | None = None) -> ReturnSeries:
        """The returns dated in [start, end] (either open), with their gaps."""
        index = self.values.index
        keep = np.ones(len(index), bool)
        if start is not None:
            keep &= index >= pd.Timestamp(start)
        if end is not None:
            keep &= index <= pd.Timestamp(end)
        return self._subset(keep)

    def tail(self, n: int) -> ReturnSeries:
        """The last ``n`` returns, with their gaps."""
        keep = np.zeros(len(self.values), bool)
        if n > 0:
            keep[-n:] = True
        return self._subset(keep)

    def _subset(self, keep: np.ndarray) -> ReturnSeries:
        values, spans = self.values[keep], self.span_days[keep]
        if len(values):
            inside = (self.gaps["date"] >= values.index[0]) & (
                self.gaps["date"] <= values.index[-1]
            )
        else:
            inside = np.zeros(len(self.gaps), bool)
        gaps = self.gaps[inside].reset_index(drop=True)
        return ReturnSeries(self.asset, values, spans, gaps, self.policy, self.calendar)

    def gap_list(self) -> list[dict]:
        """The flagged multi-day returns as ``{"date", "span_days", "missing_days", "return",
        "action"}`` records (date = the close after the gap).
        """
        return [
            {
                "date": pd.Timestamp(row["date"]).date().isoformat(),
                "span_days": int(row["span_days"]),
                "missing_days": int(row["span_days"]) - 1,
                "return": float(row["return"]),
                "action": str(row["action"]),
            }
            for row in self.gaps.to_dict("records")
        ]


def _trading_days_between(
    previous: pd.DatetimeIndex, current: pd.DatetimeIndex, calendar: Calendar
) -> np.ndarray:
    if calendar is Calendar.ALWAYS:
        return (current - previous).days.to_numpy()
    return np.busday_count(
        previous.values.astype("datetime64[D]"), current.values.astype("datetime64[D]")
    )


DEFAULT_GAP_POLICY = GapPolicy.SCALE  # the workbench's one rule (module docstring)


def log_returns(
    closes: pd.Series,
    *,
    asset: str = "",
    policy: GapPolicy = DEFAULT_GAP_POLICY,
    calendar: Calendar = Calendar.ALWAYS,
) -> ReturnSeries:
    """Decimal log returns ``r_t = ln(P_t / P_prev)`` between consecutive observed closes.

    .. math::

        r_t = \\ln P_t - \\ln P_{t^-}, \\qquad
        \\text{span}_t = \\text{trading days in } (t^-, t]

    Parameters
    ----------
    closes : pd.Series
        Positive closing prices indexed by date, shape (n,); unsorted input is sorted,
        duplicate dates are an error.
    policy : GapPolicy
        Treatment of returns with ``span > 1``: kept, dropped, or divided by ``sqrt(span)``
        (the default, :data:`DEFAULT_GAP_POLICY`).
    calendar : Calendar
        ``24/7`` counts calendar days; ``weekdays`` counts Monday-Friday (a Friday-to-Monday
        return spans one trading day).

    Returns
    -------
    ReturnSeries
        ``n - 1`` returns (fewer if gaps are dropped) with the gaps reported.
    """
    series = closes.dropna()
    if len(series) != len(closes):
        raise ValueError(
            f"{asset or 'closes'}: {len(closes) - len(series)} missing closes; "
            "pass only observed prices (gaps are handled by the policy)"
        )
    index = pd.DatetimeIndex(pd.to_datetime(series.index))
    if index.has_duplicates:
        raise ValueError(
            f"{asset or 'closes'}: duplicate dates {list(index[index.duplicated()][:3])}"
        )
    series = pd.Series(np.asarray(series, dtype=float), index=index).sort_index()
    if (series <= 0).any() or not np.isfinite(series).all():
        raise ValueError(f"{asset or 'closes'}: prices must be positive and finite")
    logs = np.log(series.to_numpy())
    values = pd.Series(np.diff(logs), index=series.index[1:], name=asset or None)
    spans = pd.Series(
        _trading_days_between(series.index[:-1], series.index[1:], calendar), index=values.index
    )
    multi = spans > 1
    gaps = pd.DataFrame(
        {
            "date": values.index[multi],
            "span_days": spans[multi].to_numpy(),
            "return": values[multi].to_numpy(),
        }
    )
    gaps["action"] = policy.value
    if policy is GapPolicy.DROP:
        values, spans = values[~multi], spans[~multi]
    elif policy is GapPolicy.SCALE:
        values = values / np.sqrt(spans.clip(lower=1))
    return ReturnSeries(asset, values, spans, gaps.reset_index(drop=True), policy, calendar)


def log_return_frame(
    closes: pd.DataFrame,
    *,
    policy: GapPolicy = DEFAULT_GAP_POLICY,
    calendar: Calendar = Calendar.ALWAYS,
) -> tuple[pd.DataFrame, dict[str, ReturnSeries]]:
    """:func:`log_returns` of every column of ``closes`` (days × assets, NaN where a day has no
    close), on the frame's index: NaN on the missing days themselves, the policy's value on the
    day after each gap. Also returns each column's :class:`ReturnSeries` (with its gaps).
    """
    out, series = {}, {}
    for column in closes.columns:
        observed = closes[column].dropna()
        if len(observed) < 2:
            out[column] = pd.Series(np.nan, index=closes.index)
            continue
        found = log_returns(observed, asset=str(column), policy=policy, calendar=calendar)
        series[str(column)] = found
        out[column] = found.values.reindex(closes.index)
    return pd.DataFrame(out, index=closes.index), series


def annualised(daily_vol):
    """A daily volatility (number or array) in annual terms: :math:`\\sigma\\sqrt{365}`."""
    return daily_vol * np.sqrt(float(DAYS_PER_YEAR))


def daily(annual_vol):
    """An annual volatility (number or array) in daily terms: :math:`\\sigma/\\sqrt{365}`."""
    return annual_vol / np.sqrt(float(DAYS_PER_YEAR))
