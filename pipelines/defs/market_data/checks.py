"""Data-quality checks on the market tables: gaps, stale series and extreme moves
are flagged — never filled or dropped; impossible stored values are blocking errors.

Every missing day is a gap finding, listed with a severity that rises with its length
(minor, moderate, long); the check itself warns (the data are what they are, and the gap rule
of :mod:`calibration.returns` handles them everywhere downstream).
"""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from pipelines.defs.market_data.assets import market_implied_vol, market_option_marks, market_prices
from pipelines.defs.metadata import markdown_table
from pipelines.defs.resources import WarehouseResource, WorkbenchResource
from pipelines.warehouse import quality

WARN = dg.AssetCheckSeverity.WARN
ERROR = dg.AssetCheckSeverity.ERROR
STALE_DAYS = 5
EXTREME_SIGMAS = 8.0


def _result(
    findings: pd.DataFrame, severity: dg.AssetCheckSeverity, **extra
) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=findings.empty,
        severity=severity,
        metadata={"findings": len(findings), "details": markdown_table(findings), **extra},
    )


def _coverage(warehouse, workbench, table: str, assets: tuple[str, ...]) -> dg.AssetCheckResult:
    settings = workbench.settings()
    with warehouse.get_connection() as con:
        through = quality.expected_last_day(
            con, table, settings.market.expected_through, datetime.now(UTC).date()
        )
        frame = quality.coverage(con, table, assets, through)
    missing = frame[~frame["ok"]]
    return _result(missing, WARN, expected_through=str(through), configured=list(assets))


def _gaps(warehouse, table: str) -> dg.AssetCheckResult:
    with warehouse.get_connection() as con:
        found = quality.gaps(con, table)
    longest = int(found["missing_days"].max()) if len(found) else 0
    return _result(
        found,
        WARN,
        long_gaps=int((found["severity"] == "long").sum()) if len(found) else 0,
        missing_days=int(found["missing_days"].sum()) if len(found) else 0,
        longest_gap_days=longest,
    )


GAP_DESCRIPTION = (
    "No series misses a day. Every missing day is listed with its severity (minor: one day; "
    f"moderate: up to {quality.LONG_GAP_DAYS}; long: more)."
)


@dg.asset_check(asset=market_prices, description=GAP_DESCRIPTION)
def prices_no_gaps(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    return _gaps(warehouse, "market.prices")


@dg.asset_check(asset=market_prices, description=f"No close is unchanged for {STALE_DAYS}+ days.")
def prices_not_stale(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.get_connection() as con:
        return _result(quality.stale_runs(con, "market.prices", "close", STALE_DAYS), WARN)


@dg.asset_check(
    asset=market_prices,
    description=f"No daily log return exceeds {EXTREME_SIGMAS:g} rolling standard deviations "
    "(60-day window); real crashes trip this on purpose so that someone looks.",
)
def prices_no_extreme_moves(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.get_connection() as con:
        return _result(quality.extreme_moves(con, sigmas=EXTREME_SIGMAS), WARN)


@dg.asset_check(
    asset=market_prices,
    description="Every configured asset has prices up to the last expected day.",
)
def prices_coverage(
    warehouse: WarehouseResource, workbench: WorkbenchResource
) -> dg.AssetCheckResult:
    return _coverage(warehouse, workbench, "market.prices", workbench.settings().market.assets)


@dg.asset_check(
    asset=market_implied_vol,
    blocking=True,
    description="Every stored implied vol is a finite annualised decimal in (0, 5].",
)
def implied_vol_in_range(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.get_connection() as con:
        return _result(quality.iv_out_of_range(con), ERROR)


@dg.asset_check(asset=market_implied_vol, description=GAP_DESCRIPTION)
def implied_vol_no_gaps(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    return _gaps(warehouse, "market.implied_vol")


@dg.asset_check(asset=market_implied_vol, description=f"No IV is unchanged for {STALE_DAYS}+ days.")
def implied_vol_not_stale(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.get_connection() as con:
        return _result(quality.stale_runs(con, "market.implied_vol", "iv", STALE_DAYS), WARN)


@dg.asset_check(
    asset=market_implied_vol,
    description="Every configured IV asset has data up to the last expected day.",
)
def implied_vol_coverage(
    warehouse: WarehouseResource, workbench: WorkbenchResource
) -> dg.AssetCheckResult:
    return _coverage(
        warehouse, workbench, "market.implied_vol", workbench.settings().market.iv_assets
    )


@dg.asset_check(
    asset=market_option_marks,
    blocking=True,
    description="No (instrument, snapshot, source) key appears twice (the table has no unique "
    "index; the loader enforces the key).",
)
def option_marks_unique_key(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.get_connection() as con:
        duplicates = quality.duplicate_option_keys(con)
    return dg.AssetCheckResult(
        passed=duplicates == 0, severity=ERROR, metadata={"duplicate_keys": duplicates}
    )


@dg.asset_check(
    asset=market_prices,
    description="No configured file is quarantined (a file that could not be loaded at all is "
    "set aside with its reason while the others load).",
)
def configured_files_load(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.get_connection() as con:
        return _result(quality.quarantined_files(con), WARN)
