"""Parameter sweeps: one parameter taken through a range of values, every value backtested on
identical inputs, and the frontier of coverage against capital.

A sweep point is the replay of the day books under one parameter value
(:func:`point_margins`). The replay is cut into chunks of days (:func:`chunk_margins`: one
chunk under every value, a pure function of the history and the values, so that chunks can be
tasks on any worker; each process builds only the day books of its days, once, and replays
every value on them). The chunks put back in order (:func:`joined`) are each value's series,
which
:func:`summarise_point` tests with the backtest's own coverage tests; the driver reads the
frontier.

Capital is the portfolios' total margin in USD on a day, :math:`C_t = \\sum_p m_{p,t}\\,
x_{p,t}` (:math:`x` the settlement currency's USD rate); a point reports its mean and peak over
the days and its mean over the active set's. The knee of the frontier is the value whose
(capital, breaches) point lies farthest from the chord joining the two ends of the curve
(both axes scaled to [0, 1]): past it, extra capital buys little coverage.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from backtesting.memo import build_days
from backtesting.replay import MarketHistory, VarInputs, replay_books
from backtesting.spec import BacktestSpec
from backtesting.summary import summarise
from margin_engine.params import ModelParams
from margin_engine.portfolios import Portfolio
from vocabulary import Zone

__all__ = [
    "MAX_VALUES",
    "ChunkMargins",
    "SweepPoint",
    "capital",
    "chunk_margins",
    "day_chunks",
    "joined",
    "knee",
    "point_margins",
    "summarise_point",
    "sweep_values",
]

MAX_VALUES = 200  # a sweep is a curve, not a search


def sweep_values(text: str) -> tuple[float, ...]:
    """The values of ``START:STOP:STEP`` (both ends included, to within a millionth of a
    step) or of a comma-separated list; :class:`ValueError` naming what is wrong.
    """
    text = text.strip()
    try:
        if ":" in text:
            parts = [float(p) for p in text.split(":")]
            if len(parts) != 3:
                raise ValueError
            start, stop, step = parts
            if not all(math.isfinite(x) for x in parts) or step <= 0 or stop < start:
                raise ValueError
            count = math.floor((stop - start) / step + 1e-6) + 1
            if count > MAX_VALUES:
                raise OverflowError
            values = tuple(round(start + k * step, 12) for k in range(count))
        else:
            values = tuple(float(p) for p in text.split(","))
            if not all(math.isfinite(x) for x in values):
                raise ValueError
    except OverflowError:
        raise ValueError(f"{text!r}: more than {MAX_VALUES} values") from None
    except ValueError:
        raise ValueError(
            f"{text!r}: give START:STOP:STEP (STEP > 0, STOP >= START) or values a,b,c"
        ) from None
    if len(values) > MAX_VALUES:
        raise ValueError(f"{text!r}: more than {MAX_VALUES} values")
    if len(set(values)) != len(values):
        raise ValueError(f"{text!r}: a value is listed twice")
    return values


def point_margins(
    history: MarketHistory,
    books: Sequence[Portfolio],
    days: Sequence[pd.Timestamp],
    mpor: int,
    data: str,
    model: str,
    params: ModelParams,
    var_inputs: VarInputs | None = None,
) -> pd.DataFrame:
    """The replay rows of ``books`` under ``model`` and ``params`` (one value of a sweep);
    the day books are built once per process for the data fingerprint ``data``.
    """
    day_books = build_days(history, books, days, mpor, realised=True, data=data)
    names = {p.name for p in books}
    rows = replay_books(day_books, model, lambda _: params, var_inputs)
    return rows[rows["portfolio"].isin(names)].reset_index(drop=True)


def day_chunks(days: Sequence[pd.Timestamp], count: int) -> list[list[pd.Timestamp]]:
    """``days`` cut into ``count`` contiguous chunks of near-equal length (fewer when there are
    fewer days), in order: concatenated, they are ``days`` again.
    """
    days = list(days)
    count = max(1, min(int(count), len(days)))
    edges = [k * len(days) // count for k in range(count + 1)]
    return [days[a:b] for a, b in zip(edges, edges[1:], strict=False)]


@dataclass(frozen=True)
class ChunkMargins:
    """The replay rows of one chunk of days: the standard baseline's and one frame per set."""

    standard: pd.DataFrame
    sets: tuple[pd.DataFrame, ...]


def chunk_margins(
    history: MarketHistory,
    books: Sequence[Portfolio],
    days: Sequence[pd.Timestamp],
    mpor: int,
    data: str,
    model: str,
    baseline: ModelParams,
    sets: Sequence[ModelParams],
    var_inputs: VarInputs | None = None,
) -> ChunkMargins:
    """The replay of ``days`` (one chunk of a sweep's days) under the standard baseline of the
    set in force (``baseline``) and under ``model`` with every one of ``sets``.

    A day's margins read that day's books and inputs only, so a sweep cut by days and put
    back in order gives the rows of one replay, byte for byte; and a process builds only
    the day books of the days it is given (building them is most of a point's fixed cost).
    Pure in its arguments, so a worker can run it.
    """
    return ChunkMargins(
        point_margins(history, books, days, mpor, data, "standard", baseline),
        tuple(point_margins(history, books, days, mpor, data, model, p, var_inputs) for p in sets),
    )


def joined(chunks: Sequence[ChunkMargins]) -> ChunkMargins:
    """The chunks of one sweep put back in day order."""

    def concat(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
        # a chunk without books (days missing from the data) adds no rows, and its empty
        # frame's generic column types must not change the others'
        full = [f for f in frames if len(f)] or list(frames[:1])
        return full[0] if len(full) == 1 else pd.concat(full, ignore_index=True)

    return ChunkMargins(
        concat([c.standard for c in chunks]),
        tuple(concat(frames) for frames in zip(*(c.sets for c in chunks), strict=True)),
    )


def capital(rows: pd.DataFrame) -> pd.Series:
    """:math:`C_t`: the total margin in USD per day of ``rows`` (replay rows of one model)."""
    usd = rows["margin"] * rows["fx_usd"]
    return usd.groupby(rows["date"]).sum().sort_index()


@dataclass(frozen=True)
class SweepPoint:
    """One value of a sweep: breaches, the worst zone over the series, the smallest coverage
    test p-value, and capital (mean and peak USD, and the mean over the active set's).
    """

    value: float
    observations: int
    breaches: int
    zone: Zone
    min_pvalue: float | None
    mean_capital_usd: float
    peak_capital_usd: float
    capital_vs_active: float | None

    @property
    def breach_rate(self) -> float:
        """Breaches per observation (NaN without observations)."""
        return self.breaches / self.observations if self.observations else math.nan

    def as_dict(self) -> dict:
        """JSON-safe values."""
        return {
            "value": self.value,
            "observations": self.observations,
            "breaches": self.breaches,
            "breach_rate": None if not self.observations else self.breach_rate,
            "zone": str(self.zone),
            "min_pvalue": self.min_pvalue,
            "mean_capital_usd": self.mean_capital_usd,
            "peak_capital_usd": self.peak_capital_usd,
            "capital_vs_active": self.capital_vs_active,
        }


def summarise_point(
    value: float,
    rows: pd.DataFrame,
    standard: pd.DataFrame,
    confidence: float,
    spec: BacktestSpec,
    mpor: int,
    active_capital: float | None,
    es_level: float | None = None,
) -> SweepPoint:
    """The coverage tests of every series of ``rows`` (as a backtest summarises them, against
    the ``standard`` baseline rows; an ES model's also at ``es_level``), and the capital they
    tie up.
    """
    label = f"{value:g}"
    frame = rows.assign(set_label=label)
    models = set(rows["model"])
    if "standard" not in models:  # the baseline of the others' efficiency, not summarised
        frame = pd.concat([frame, standard.assign(set_label=label)], ignore_index=True)
    frame.attrs["es_level"] = es_level
    table = summarise(frame, confidence, spec, [label], mpor=mpor, tested=models)
    zone = Zone.NOT_TESTABLE
    pvalues = []
    for record, series_zone in zip(table["summary"], table["zone"], strict=True):
        zone = Zone.worst(zone, series_zone)
        for test in record["coverage"]["tests"].values():
            if test.get("pvalue") is not None:
                pvalues.append(test["pvalue"])
    c = capital(rows)
    mean = float(c.mean()) if len(c) else math.nan
    return SweepPoint(
        value=value,
        observations=int(table["observations"].sum()),
        breaches=int(table["breaches"].sum()),
        zone=Zone(zone),
        min_pvalue=min(pvalues) if pvalues else None,
        mean_capital_usd=mean,
        peak_capital_usd=float(c.max()) if len(c) else math.nan,
        capital_vs_active=mean / active_capital if active_capital else None,
    )


def knee(points: Sequence[SweepPoint]) -> float | None:
    """The value at the knee of the (capital, breaches) curve (see the module doc); None
    with fewer than three points or a flat curve.
    """
    if len(points) < 3:
        return None
    x = np.array([p.mean_capital_usd for p in points], dtype=float)
    y = np.array([p.breaches for p in points], dtype=float)
    if np.ptp(x) == 0 or np.ptp(y) == 0 or not np.isfinite(x).all():
        return None
    order = np.argsort(x)
    x, y = (x[order] - x.min()) / np.ptp(x), (y[order] - y.min()) / np.ptp(y)
    dx, dy = x[-1] - x[0], y[-1] - y[0]
    distance = np.abs(dy * x - dx * y + x[-1] * y[0] - y[-1] * x[0]) / math.hypot(dx, dy)
    return float(np.asarray([p.value for p in points])[order][int(np.argmax(distance))])
