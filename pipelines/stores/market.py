"""The one market-history loader: every daily series a command reads from the warehouse.

**Sources are spliced by a documented rule.** An asset may be stored under several sources (a
years-long CSV as ``file``, a month of Binance klines as ``binance``, a live ``deribit``
series). Each day takes the row of the best-ranked source that has that day; sources rank by
``market.source_preference`` (configuration), then unlisted sources by how many days they
hold, then by name. So a short file of a preferred source fills its own days and the long
series fills the rest — a one-month file can no longer shrink years of history to one month —
and the :class:`Provenance` says which source served which days.

Nothing is filled: a day no source has stays missing (the gap rule of
:mod:`calibration.returns` applies downstream).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import duckdb
import pandas as pd

#: the daily tables and their date column
TABLES = {"market.prices", "market.implied_vol", "market.funding"}
#: sources of equity-index data (the built-in S&P 500 and VIX): weekdays only, from 1990
EQUITY_SOURCES = frozenset({"arch"})


@dataclass(frozen=True)
class Segment:
    """A run of consecutive stored days served by one source."""

    source: str
    first: date
    last: date
    days: int


@dataclass(frozen=True)
class Provenance:
    """Which source served which days of one spliced series."""

    asset: str
    table: str
    segments: tuple[Segment, ...]

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.source for s in self.segments))

    @property
    def label(self) -> str:
        """The sources joined by ``+`` in order of first use (what a fit records)."""
        return "+".join(self.sources)

    @property
    def spliced(self) -> bool:
        return len(self.sources) > 1

    def describe(self) -> str:
        parts = [
            f"{s.source} {s.first.isoformat()}..{s.last.isoformat()} ({s.days:,} days)"
            for s in self.segments
        ]
        if len(parts) > 6:
            parts = [*parts[:3], f"… {len(parts) - 5} more …", *parts[-2:]]
        return f"{self.asset}: " + ", then ".join(parts)

    def to_dict(self) -> dict:
        return {
            "asset": self.asset,
            "table": self.table,
            "segments": [
                {
                    "source": s.source,
                    "first": s.first.isoformat(),
                    "last": s.last.isoformat(),
                    "days": s.days,
                }
                for s in self.segments
            ],
        }


def ranked_sources(
    con: duckdb.DuckDBPyConnection, table: str, asset: str, preference: Sequence[str]
) -> list[str]:
    """The sources holding ``asset`` in ``table``, best first (module docstring)."""
    _check_table(table)
    counts = con.execute(
        f"SELECT source, count(*) FROM {table} WHERE asset = ? GROUP BY source", [asset]
    ).fetchall()
    rank = {s: k for k, s in enumerate(preference)}
    return [
        s
        for s, _ in sorted(
            counts,
            key=lambda sc: (rank.get(sc[0], len(rank)), -sc[1] if sc[0] not in rank else 0, sc[0]),
        )
    ]


def _window(asset: str, start: date | None, end: date | None) -> tuple[list[str], list[object]]:
    """SQL conditions (and their parameters) for one asset's days in [start, end]."""
    conditions, values = ["asset = ?"], [asset]
    if start is not None:
        conditions.append("date >= ?")
        values.append(start)
    if end is not None:
        conditions.append("date <= ?")
        values.append(end)
    return conditions, values


def _check_table(table: str) -> None:
    if table not in TABLES:
        raise ValueError(f"not a daily market table: {table!r}")


def load_series(
    con: duckdb.DuckDBPyConnection,
    table: str,
    asset: str,
    columns: Sequence[str],
    preference: Sequence[str],
    *,
    start: date | None = None,
    end: date | None = None,
    where: str = "",
    params: Sequence[object] = (),
) -> tuple[pd.DataFrame, Provenance | None]:
    """``columns`` of ``asset`` per day in [start, end], spliced across sources.

    Returns a frame indexed by day (``DatetimeIndex``) with ``columns`` and ``source``, and the
    provenance (None when nothing is stored). ``where`` is an extra SQL condition on the table
    (with ``params``), e.g. ``tenor_days = ?``.
    """
    _check_table(table)
    order = ranked_sources(con, table, asset, preference)
    if not order:
        return pd.DataFrame(columns=[*columns, "source"]), None
    conditions, values = _window(asset, start, end)
    if where:
        conditions.append(f"({where})")
        values.extend(params)
    selected = ", ".join(columns)
    frame = con.execute(
        f"""
        SELECT date, {selected}, source FROM (
            SELECT *, row_number() OVER (
                PARTITION BY date ORDER BY list_position(?::VARCHAR[], source)) AS pick
            FROM {table} WHERE {" AND ".join(conditions)}
        ) WHERE pick = 1 ORDER BY date
        """,
        [order, *values],
    ).df()
    frame = frame.set_index(pd.DatetimeIndex(frame.pop("date")))
    if frame.empty:
        return frame, None
    return frame, _provenance(asset, table, frame)


def _provenance(asset: str, table: str, frame: pd.DataFrame) -> Provenance:
    source = frame["source"].to_numpy()
    change = [0, *[k for k in range(1, len(source)) if source[k] != source[k - 1]], len(source)]
    segments = tuple(
        Segment(
            str(source[a]),
            frame.index[a].date(),
            frame.index[b - 1].date(),
            b - a,
        )
        for a, b in zip(change[:-1], change[1:], strict=True)
    )
    return Provenance(asset, table, segments)


def closes(
    con: duckdb.DuckDBPyConnection,
    asset: str,
    preference: Sequence[str],
    *,
    start: date | None = None,
    end: date | None = None,
) -> tuple[pd.Series, Provenance | None]:
    """Daily closes of ``asset`` up to ``end`` (spliced)."""
    frame, provenance = load_series(
        con, "market.prices", asset, ["close"], preference, start=start, end=end
    )
    return frame["close"].astype(float).rename(asset), provenance


def bars(
    con: duckdb.DuckDBPyConnection,
    asset: str,
    preference: Sequence[str],
    *,
    start: date | None = None,
    end: date | None = None,
) -> tuple[pd.DataFrame, Provenance | None]:
    """Daily ``open, high, low, close`` of ``asset`` (spliced); a missing high or low is the
    day's close (the path then has no intraday points that day)."""
    frame, provenance = load_series(
        con,
        "market.prices",
        asset,
        ["open", "high", "low", "close"],
        preference,
        start=start,
        end=end,
    )
    out = frame[["open", "high", "low", "close"]].astype(float)
    for column in ("open", "high", "low"):
        out[column] = out[column].fillna(out["close"])
    return out, provenance


def implied_vol(
    con: duckdb.DuckDBPyConnection,
    asset: str,
    preference: Sequence[str],
    *,
    start: date | None = None,
    end: date | None = None,
    tenor_days: int = 30,
) -> tuple[pd.Series, Provenance | None]:
    """The ``tenor_days`` implied-vol index of ``asset`` (spliced), annualised decimal."""
    frame, provenance = load_series(
        con,
        "market.implied_vol",
        asset,
        ["iv"],
        preference,
        start=start,
        end=end,
        where="tenor_days = ?",
        params=[tenor_days],
    )
    return frame["iv"].astype(float).rename(asset), provenance


def funding(
    con: duckdb.DuckDBPyConnection,
    asset: str,
    preference: Sequence[str],
    *,
    start: date | None = None,
    end: date | None = None,
) -> tuple[pd.Series, Provenance | None]:
    """The daily mean 8-hour funding rate of ``asset``'s perpetual (decimal per 8 h), averaged
    over the venues of the source serving each day."""
    _check_table("market.funding")
    order = ranked_sources(con, "market.funding", asset, preference)
    if not order:
        return pd.Series(dtype=float, name=asset), None
    conditions, values = _window(asset, start, end)
    frame = con.execute(
        f"""
        SELECT date, avg(rate_8h_mean) AS rate, any_value(source) AS source FROM (
            SELECT *, dense_rank() OVER (
                PARTITION BY date ORDER BY list_position(?::VARCHAR[], source)) AS pick
            FROM market.funding WHERE {" AND ".join(conditions)}
        ) WHERE pick = 1 GROUP BY date ORDER BY date
        """,
        [order, *values],
    ).df()
    frame = frame.set_index(pd.DatetimeIndex(frame.pop("date")))
    if frame.empty:
        return pd.Series(dtype=float, name=asset), None
    return frame["rate"].astype(float).rename(asset), _provenance(asset, "market.funding", frame)


# --------------------------------------------------------------------------- day-level queries


def assets_with_prices(con: duckdb.DuckDBPyConnection) -> tuple[str, ...]:
    """Every asset with at least one stored price, by name."""
    rows = con.execute("SELECT DISTINCT asset FROM market.prices ORDER BY 1").fetchall()
    return tuple(r[0] for r in rows)


def assets_on(con: duckdb.DuckDBPyConnection, day: date) -> list[str]:
    """The assets with a price on ``day`` (any source)."""
    rows = con.execute("SELECT DISTINCT asset FROM market.prices WHERE date = ?", [day]).fetchall()
    return [r[0] for r in rows]


def last_price_day(con: duckdb.DuckDBPyConnection) -> date | None:
    """The last day any asset has a price."""
    row = con.execute("SELECT max(date) FROM market.prices").fetchone()
    return row[0] if row else None


def last_days(con: duckdb.DuckDBPyConnection, assets: Sequence[str]) -> dict[str, date]:
    """Each asset's last day with a price (any source); assets without prices are absent."""
    rows = con.execute(
        "SELECT asset, max(date) FROM market.prices WHERE asset IN (SELECT unnest(?)) GROUP BY asset",
        [list(assets)],
    ).fetchall()
    return {asset: day for asset, day in rows}


def option_marks_on(con: duckdb.DuckDBPyConnection, day: date) -> pd.DataFrame:
    """The last option-chain snapshot taken on ``day`` (empty when there is none), with the
    columns :meth:`margin_engine.market.MarketSnapshot.from_deribit_chain` reads."""
    return con.execute(
        "SELECT snapshot_ts AS timestamp, instrument_name, underlying_price AS underlying, implied_volatility, "
        "asset AS currency, index_price FROM market.option_marks WHERE CAST(snapshot_ts AS DATE) = ? "
        "AND snapshot_ts = (SELECT max(snapshot_ts) FROM market.option_marks WHERE CAST(snapshot_ts AS DATE) = ?)",
        [day, day],
    ).df()
