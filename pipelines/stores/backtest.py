"""The ``bt`` schema: backtest runs, their daily rows and summaries, and the caches that make
a what-if fast (rolling volatility per data and model, realised losses per portfolio, margins
per model, portfolio and the parameters that model reads)."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pandas as pd

from backtesting.spec import LOSS_COLUMNS, MARGIN_COLUMNS
from calibration.lineage import library_versions
from calibration.realtime import RealtimeVolatility
from pipelines import __version__
from pipelines.errors import BadInputError
from pipelines.warehouse import transaction
from reports.context import BacktestData
from reports.serialize import dumps

if TYPE_CHECKING:
    from governance.triggers import Breach
    from pipelines.backtest import BacktestRun


# --------------------------------------------------------------------------- volatility cache


def cached_volatility(
    con: duckdb.DuckDBPyConnection, key: str, horizon: int
) -> dict[str, RealtimeVolatility]:
    """The rolling volatility cached under ``key`` per underlying (empty when not cached)."""
    cached = con.execute(
        "SELECT asset, date, cond_vol, std_resid, forecasts FROM bt.vol_cache WHERE cache_key = ? ORDER BY asset, date",
        [key],
    ).df()
    out = {}
    for asset, frame in cached.groupby("asset"):
        index = pd.DatetimeIndex(frame["date"])
        forecasts = pd.DataFrame(
            np.vstack(frame["forecasts"].to_numpy()),
            index=index,
            columns=list(range(1, horizon + 1)),
        )
        forecasts.index.name = "origin"
        out[str(asset)] = RealtimeVolatility(
            str(asset),
            frame.set_index(index)["cond_vol"].dropna(),
            frame.set_index(index)["std_resid"].dropna(),
            forecasts,
        )
    return out


def cache_volatility(
    con: duckdb.DuckDBPyConnection, key: str, volatility: Mapping[str, RealtimeVolatility]
) -> None:
    """Cache ``volatility`` under ``key`` (replacing what the key held)."""
    rows = []
    for asset, combined in volatility.items():
        frame = combined.forecasts.copy()
        rows.append(
            pd.DataFrame(
                {
                    "cache_key": key,
                    "asset": asset,
                    "date": frame.index,
                    "cond_vol": combined.cond_vol.reindex(frame.index).to_numpy(),
                    "std_resid": combined.std_resid.reindex(frame.index).to_numpy(),
                    "forecasts": list(frame.to_numpy()),
                }
            )
        )
    table = pd.concat(rows, ignore_index=True)
    with transaction(con):
        con.execute("DELETE FROM bt.vol_cache WHERE cache_key = ?", [key])
        con.register("vol_rows", table)
        con.execute(
            "INSERT INTO bt.vol_cache SELECT cache_key, asset, date, cond_vol, std_resid, forecasts FROM vol_rows"
        )
        con.unregister("vol_rows")


# --------------------------------------------------------------------------- loss and margin caches


def existing_keys(con: duckdb.DuckDBPyConnection, table: str, keys: list[str]) -> set[str]:
    """Which of ``keys`` the cache ``table`` holds."""
    if not keys:
        return set()
    rows = con.execute(
        f"SELECT DISTINCT cache_key FROM {table} WHERE cache_key IN (SELECT unnest(?))", [keys]
    )
    return {r[0] for r in rows.fetchall()}


def load_cached(
    con: duckdb.DuckDBPyConnection, table: str, keys: list[str], columns: str
) -> pd.DataFrame:
    """The rows of ``keys`` in the cache ``table``."""
    if not keys:
        return pd.DataFrame(columns=[c.strip() for c in columns.split(",")])
    frame = con.execute(
        f"SELECT {columns} FROM {table} WHERE cache_key IN (SELECT unnest(?))", [keys]
    ).df()
    frame["date"] = pd.to_datetime(frame["date"])
    return frame


def joined_series(
    con: duckdb.DuckDBPyConnection, series: pd.DataFrame, days: Sequence[pd.Timestamp]
) -> pd.DataFrame:
    """The cached margins of every row of ``series`` (``set_label``, ``model``, ``portfolio``,
    ``margin_key``, ``loss_key``) joined to its book's cached losses on (date, currency), on
    ``days`` only: the daily rows of a run whose margins are all cached, in one query.
    """
    con.register("series_keys", series)
    con.register("run_days", pd.DataFrame({"date": pd.DatetimeIndex(days).date}))
    try:
        frame = con.execute(
            "SELECT s.set_label, m.date, s.portfolio, s.model, m.currency, m.margin, "
            "m.maintenance, l.loss, l.fx_usd, l.notional_usd, l.loss_path, m.var_es, m.es "
            "FROM series_keys s "
            "JOIN bt.margin_cache m ON m.cache_key = s.margin_key "
            "JOIN bt.loss_cache l ON l.cache_key = s.loss_key "
            "AND l.date = m.date AND l.currency = m.currency "
            "WHERE m.date IN (SELECT date FROM run_days)"
        ).df()
    finally:
        con.unregister("series_keys")
        con.unregister("run_days")
    frame["date"] = pd.to_datetime(frame["date"])
    return frame


def store_cache(
    con: duckdb.DuckDBPyConnection, losses: list[pd.DataFrame], margins: list[pd.DataFrame]
) -> None:
    """Cache new losses and margins (each frame carries its ``cache_key``)."""
    if not losses and not margins:
        return
    with transaction(con):
        _replace_rows(con, "bt.loss_cache", losses, LOSS_COLUMNS)
        _replace_rows(con, "bt.margin_cache", margins, MARGIN_COLUMNS)


def _replace_rows(
    con: duckdb.DuckDBPyConnection, table: str, frames: list[pd.DataFrame], columns: str
) -> None:
    """Replace the cache entries whose keys ``frames`` hold (inside the caller's transaction)."""
    if not frames:
        return
    con.register("cache_rows", pd.concat(frames, ignore_index=True))
    con.execute(
        f"DELETE FROM {table} WHERE cache_key IN (SELECT DISTINCT cache_key FROM cache_rows)"
    )
    con.execute(f"INSERT INTO {table} SELECT {columns} FROM cache_rows")
    con.unregister("cache_rows")


# --------------------------------------------------------------------------- runs


def load_run(con: duckdb.DuckDBPyConnection, run_id: str) -> BacktestData:
    """A stored backtest run, as report input."""
    row = con.execute(
        "SELECT run_id, start_date, end_date, spec, sets, data_sha256 FROM bt.runs WHERE run_id = ?",
        [run_id],
    ).fetchone()
    if row is None:
        known = [
            r[0]
            for r in con.execute(
                "SELECT run_id FROM bt.runs ORDER BY created_at DESC LIMIT 5"
            ).fetchall()
        ]
        raise BadInputError(
            f"--backtest {run_id}: no such run (latest: {', '.join(known) or 'none'})"
        )
    run_id, start, end, spec, sets, data_sha = row
    spec = json.loads(spec)
    daily = con.execute(
        "SELECT set_label, date, portfolio, model, currency, margin, maintenance, loss, breach, fx_usd, "
        "notional_usd, loss_path, breach_path, var_es, es "
        "FROM bt.daily WHERE run_id = ? ORDER BY set_label, portfolio, model, currency, date",
        [run_id],
    ).df()
    daily["date"] = pd.to_datetime(daily["date"])
    summaries = [
        json.loads(s)
        for (s,) in con.execute(
            "SELECT summary FROM bt.summaries WHERE run_id = ? ORDER BY set_label, portfolio, model, currency",
            [run_id],
        ).fetchall()
    ]
    return BacktestData(
        run_id,
        json.loads(sets),
        start,
        end,
        int(spec["mpor_days"]),
        float(spec["confidence"]),
        daily,
        summaries,
        data_sha,
        spec,
        list(spec.get("notes", [])),
    )


def store_run(con: duckdb.DuckDBPyConnection, run: BacktestRun) -> None:
    """Store ``run``: its row in ``bt.runs``, its daily rows and summaries (replacing a run of
    the same id, which the same inputs always produce)."""
    daily = run.daily.assign(run_id=run.run_id)
    # a run's summaries are JSON-safe already (run_backtest): strict encoding, no second pass
    strict = functools.partial(json.dumps, allow_nan=False)
    summaries = run.summaries.assign(
        run_id=run.run_id, summary=run.summaries["summary"].map(strict)
    )
    with transaction(con):
        for table in ("bt.daily", "bt.summaries", "bt.runs"):
            con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run.run_id])
        con.execute(
            "INSERT INTO bt.runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                run.run_id,
                datetime.now(UTC),
                run.start,
                run.end,
                dumps(
                    {
                        **run.spec.as_dict(),
                        "mpor_days": run.mpor_days,
                        "confidence": run.confidence,
                        "notes": run.notes,
                        "gaps": run.gaps,
                        "calibrated": run.calibrated,
                    }
                ),
                json.dumps(run.sets),
                run.data_sha,
                __version__,
                json.dumps(library_versions()),
                run.elapsed,
                dumps(run.cache, default=str),
            ],
        )
        con.register("daily_rows", daily)
        con.execute(
            "INSERT INTO bt.daily SELECT run_id, set_label, date, portfolio, model, currency, margin, "
            "maintenance, loss, breach, fx_usd, notional_usd, loss_path, breach_path, var_es, es "
            "FROM daily_rows"
        )
        con.unregister("daily_rows")
        con.register("summary_rows", summaries)
        con.execute(
            "INSERT INTO bt.summaries SELECT run_id, set_label, portfolio, model, currency, observations, "
            "breaches, zone, summary FROM summary_rows"
        )
        con.unregister("summary_rows")


def latest_breaches(
    con: duckdb.DuckDBPyConnection, fingerprint: str
) -> tuple[list[Breach], date | None]:
    """Breach rows of the newest run that backtested the set ``fingerprint`` (for the rollback
    trigger), and that run's last day."""
    from governance.triggers import Breach

    runs = con.execute(
        "SELECT run_id, end_date, sets FROM bt.runs ORDER BY created_at DESC"
    ).fetchall()
    for run_id, end_date, sets in runs:
        labels = [label for label, fp in json.loads(sets).items() if fp == fingerprint]
        if not labels:
            continue
        rows = con.execute(
            "SELECT date, portfolio, loss * fx_usd, margin * fx_usd, currency, model FROM bt.daily "
            "WHERE run_id = ? AND set_label = ? AND breach AND model <> 'standard' ORDER BY date",
            [run_id, labels[0]],
        ).fetchall()
        return [
            Breach(d, f"{p} ({m})", float(lo), float(ma), "USD", m) for d, p, lo, ma, _, m in rows
        ], end_date
    return [], None


def latest_red(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Portfolio, model, breaches, observations and first breach days of the red pairs of the
    newest run (empty when there is no run or nothing is red)."""
    row = con.execute("SELECT run_id FROM bt.runs ORDER BY created_at DESC LIMIT 1").fetchone()
    frame = pd.DataFrame(columns=["portfolio", "model", "breaches", "observations"])
    if row is None:
        return frame
    frame = con.execute(
        "SELECT portfolio, model, breaches, observations, summary FROM bt.summaries "
        "WHERE run_id = ? AND zone = 'red' ORDER BY portfolio, model",
        [row[0]],
    ).df()
    frame["first breaches"] = [
        ", ".join(json.loads(s)["breach_dates"][:5]) for s in frame["summary"]
    ]
    return frame.drop(columns="summary")
