"""Data-quality findings over the market tables, as DataFrames (flagged, never
silently filled or dropped). The asset checks and ``mwb status`` are thin views of these."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import pandas as pd

#: (table, value column) of the daily series
DAILY_SERIES = {"prices": ("market.prices", "close"), "iv": ("market.implied_vol", "iv")}


LONG_GAP_DAYS = 3  # a gap longer than this is an error-level finding


def gaps(con: duckdb.DuckDBPyConnection, table: str, longer_than_days: int = 0) -> pd.DataFrame:
    """Stretches of more than ``longer_than_days`` calendar days without a row, per series
    (default: every missing day).

    ``missing_days`` counts the days strictly between two consecutive rows; ``severity`` rises
    with it: ``minor`` (one day), ``moderate`` (up to :data:`LONG_GAP_DAYS`), ``long``.
    """
    return con.execute(
        f"""
        SELECT asset, source, prev_date AS last_before, date AS first_after,
               date - prev_date - 1 AS missing_days,
               CASE WHEN date - prev_date - 1 > {LONG_GAP_DAYS} THEN 'long'
                    WHEN date - prev_date - 1 > 1 THEN 'moderate'
                    ELSE 'minor' END AS severity
        FROM (SELECT asset, source, date,
                     lag(date) OVER (PARTITION BY asset, source ORDER BY date) AS prev_date
              FROM {table})
        WHERE date - prev_date - 1 > ?
        ORDER BY asset, source, last_before
        """,
        [longer_than_days],
    ).df()


def stale_runs(
    con: duckdb.DuckDBPyConnection, table: str, column: str, min_days: int = 5
) -> pd.DataFrame:
    """Runs of at least ``min_days`` consecutive rows with an unchanged value, per series."""
    return con.execute(
        f"""
        WITH marked AS (
            SELECT asset, source, date, {column} AS value,
                   CASE WHEN {column} IS NOT DISTINCT FROM
                        lag({column}) OVER (PARTITION BY asset, source ORDER BY date)
                        THEN 0 ELSE 1 END AS changed
            FROM {table}
        ), runs AS (
            SELECT *, sum(changed) OVER (PARTITION BY asset, source ORDER BY date) AS run
            FROM marked
        )
        SELECT asset, source, min(date) AS first_date, max(date) AS last_date,
               any_value(value) AS value, count(*) AS days
        FROM runs GROUP BY asset, source, run
        HAVING count(*) >= ?
        ORDER BY asset, source, first_date
        """,
        [min_days],
    ).df()


def extreme_moves(
    con: duckdb.DuckDBPyConnection,
    table: str = "market.prices",
    column: str = "close",
    sigmas: float = 8.0,
    window: int = 60,
    min_observations: int = 20,
) -> pd.DataFrame:
    """Daily log changes larger than ``sigmas`` times the standard deviation of the previous
    ``window`` changes (at least ``min_observations`` of them), per series."""
    return con.execute(
        f"""
        WITH r AS (
            SELECT asset, source, date,
                   ln({column} / lag({column}) OVER w) AS log_return
            FROM {table}
            WINDOW w AS (PARTITION BY asset, source ORDER BY date)
        ), s AS (
            SELECT *,
                   stddev_samp(log_return) OVER (PARTITION BY asset, source ORDER BY date
                       ROWS BETWEEN {int(window)} PRECEDING AND 1 PRECEDING) AS rolling_sd,
                   count(log_return) OVER (PARTITION BY asset, source ORDER BY date
                       ROWS BETWEEN {int(window)} PRECEDING AND 1 PRECEDING) AS n_prior
            FROM r
        )
        SELECT asset, source, date, log_return, rolling_sd, abs(log_return) / rolling_sd AS sigmas
        FROM s
        WHERE n_prior >= ? AND rolling_sd > 0 AND abs(log_return) > ? * rolling_sd
        ORDER BY asset, source, date
        """,
        [min_observations, sigmas],
    ).df()


def iv_out_of_range(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Stored implied vols outside (0, 5] — the loader rejects these, so any row is a defect."""
    return con.execute(
        """
        SELECT 'market.implied_vol' AS table_name, asset, source, date::VARCHAR AS at, iv
        FROM market.implied_vol WHERE NOT isfinite(iv) OR iv <= 0 OR iv > 5
        UNION ALL
        SELECT 'market.option_marks', asset, source, snapshot_ts::VARCHAR, implied_volatility
        FROM market.option_marks
        WHERE NOT isfinite(implied_volatility) OR implied_volatility <= 0
           OR implied_volatility > 5
        """
    ).df()


def expected_last_day(
    con: duckdb.DuckDBPyConnection, table: str, expected_through: str | date, today: date
) -> date | None:
    """The last day every configured series should reach.

    ``latest``: the freshest day in the table (all series should be as fresh as the freshest);
    ``yesterday``: the last complete UTC day before ``today``; a date: that date.
    """
    if isinstance(expected_through, date):
        return expected_through
    if expected_through == "yesterday":
        return today - timedelta(days=1)
    return con.execute(f"SELECT max(date) FROM {table}").fetchone()[0]


def coverage(
    con: duckdb.DuckDBPyConnection, table: str, assets: tuple[str, ...], through: date | None
) -> pd.DataFrame:
    """Per configured asset: its last day (any source) and whether it reaches ``through``."""
    last = dict(con.execute(f"SELECT asset, max(date) FROM {table} GROUP BY asset").fetchall())
    rows = []
    for asset in assets:
        last_day = last.get(asset)
        rows.append(
            {
                "asset": asset,
                "last_date": last_day,
                "expected_through": through,
                "ok": last_day is not None and (through is None or last_day >= through),
            }
        )
    return pd.DataFrame(rows, columns=["asset", "last_date", "expected_through", "ok"])


def duplicate_option_keys(con: duckdb.DuckDBPyConnection) -> int:
    """Natural-key duplicates in ``market.option_marks`` (which has no unique index)."""
    return con.execute(
        """
        SELECT count(*) FROM (
            SELECT 1 FROM market.option_marks
            GROUP BY instrument_name, snapshot_ts, source HAVING count(*) > 1)
        """
    ).fetchone()[0]


def series_summary(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """One row per stored series: table, asset, source, first, last, rows, long gaps."""
    frames = []
    for name, (table, _) in DAILY_SERIES.items():
        summary = con.execute(
            f"""
            WITH g AS (
                SELECT asset, source, date,
                       date - lag(date) OVER (PARTITION BY asset, source ORDER BY date) - 1
                           AS missing
                FROM {table})
            SELECT '{name}' AS series, asset, source, min(date)::VARCHAR AS first,
                   max(date)::VARCHAR AS last, count(*) AS rows,
                   count(*) FILTER (WHERE missing > 3) AS gaps_over_3d,
                   coalesce(sum(missing) FILTER (WHERE missing > 0), 0)::BIGINT AS missing_days
            FROM g GROUP BY asset, source ORDER BY asset, source
            """
        ).df()
        frames.append(summary)
    funding = con.execute(
        """
        SELECT 'funding' AS series, asset, source || '/' || venue AS source,
               min(date)::VARCHAR AS first, max(date)::VARCHAR AS last, count(*) AS rows,
               NULL::BIGINT AS gaps_over_3d, NULL::BIGINT AS missing_days
        FROM market.funding GROUP BY asset, source, venue ORDER BY asset, source
        """
    ).df()
    options = con.execute(
        """
        SELECT 'options' AS series, asset, source, min(snapshot_ts)::VARCHAR AS first,
               max(snapshot_ts)::VARCHAR AS last, count(*) AS rows,
               NULL::BIGINT AS gaps_over_3d, NULL::BIGINT AS missing_days
        FROM market.option_marks GROUP BY asset, source ORDER BY asset, source
        """
    ).df()
    frames += [funding, options]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(
            columns=[
                "series",
                "asset",
                "source",
                "first",
                "last",
                "rows",
                "gaps_over_3d",
                "missing_days",
            ]
        )
    return pd.concat(frames, ignore_index=True)


def quarantined_files(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Configured files set aside as unloadable, whose path has not loaded since: file,
    when, why."""
    return con.execute(
        """
        SELECT b.file_path AS file, b.started_at AS quarantined_at, r.reason
        FROM market.ingest_batches b JOIN market.rejected_rows r USING (batch_id)
        WHERE b.format = 'quarantined' AND NOT EXISTS (
            SELECT 1 FROM market.ingest_batches later
            WHERE later.file_path = b.file_path AND later.format <> 'quarantined'
              AND later.started_at > b.started_at)
        ORDER BY b.started_at
        """
    ).df()


def ingest_counts(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """How many ingest batches and rejected rows the warehouse holds."""
    row = con.execute(
        "SELECT (SELECT count(*) FROM market.ingest_batches), "
        "(SELECT count(*) FROM market.rejected_rows)"
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def row_count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """Rows of one of the market tables."""
    if table not in {
        "market.prices",
        "market.implied_vol",
        "market.funding",
        "market.option_marks",
    }:
        raise ValueError(f"{table}: not a market table")
    row = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0
