"""Market-data assets: one per warehouse table, each loading the configured sources of its kind.

Assets stay thin: the loading is :func:`pipelines.ingest.configured.load_configured`, the
summaries are :mod:`pipelines.warehouse.quality`.
"""

from datetime import date, timedelta

import dagster as dg
import pandas as pd

from pipelines.defs.metadata import markdown_table
from pipelines.defs.resources import WarehouseResource, WorkbenchResource
from pipelines.ingest.configured import load_configured
from pipelines.ingest.kinds import SPECS, Kind
from pipelines.ingest.load import IngestReport
from pipelines.warehouse.quality import row_count, series_summary

GROUP = "market_data"
MARKET_ASSETS = {
    kind: dg.AssetKey(["market", name])
    for kind, name in (
        (Kind.PRICES, "prices"),
        (Kind.IV, "implied_vol"),
        (Kind.FUNDING, "funding"),
        (Kind.OPTIONS, "option_marks"),
    )
}
_SERIES_NAME = {
    Kind.PRICES: "prices",
    Kind.IV: "iv",
    Kind.FUNDING: "funding",
    Kind.OPTIONS: "options",
}


# One partition per UTC day, up to yesterday. A range runs as one run (backfills of years stay
# one load per file); the live Deribit source fetches exactly the range, files load whole.
market_days = dg.DailyPartitionsDefinition(start_date="2010-01-01", timezone="UTC")
_PARTITIONED = {
    "partitions_def": market_days,
    "backfill_policy": dg.BackfillPolicy.single_run(),
    "group_name": GROUP,
    "kinds": {"duckdb"},
}


def partition_window(context: dg.AssetExecutionContext) -> tuple[date, date] | None:
    """First and last day of the run's partition range (None when run unpartitioned)."""
    if not context.has_partition_key_range:
        return None
    window = context.partition_time_window
    return window.start.date(), (window.end - timedelta(days=1)).date()


def _materialize(
    context: dg.AssetExecutionContext,
    kind: Kind,
    warehouse: WarehouseResource,
    workbench: WorkbenchResource,
):
    settings = workbench.settings()
    window = partition_window(context)
    with warehouse.get_connection() as con:
        outcome = load_configured(con, settings, {kind}, window)
        total = row_count(con, SPECS[kind].table)
        series = series_summary(con)
    if outcome.errors:
        raise dg.Failure(
            description="A configured source could not be reached:\n" + "\n".join(outcome.errors),
            metadata={"loaded_files": len(outcome.reports)},
        )
    for line in outcome.quarantined:
        context.log.warning(f"quarantined: {line}")
    mine = series[series["series"] == _SERIES_NAME[kind]].drop(columns="series")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": int(total),
            **load_metadata(outcome.reports),
            "quarantined": markdown_table(pd.DataFrame({"file": outcome.quarantined})),
            "series": markdown_table(mine),
            "window": f"{window[0]}..{window[1]}" if window else "all",
            "warehouse": dg.MetadataValue.path(warehouse.database),
        }
    )


def load_metadata(reports: list[IngestReport]) -> dict:
    """What a load did, for a materialization: totals and the files with their SHA-256."""
    files = pd.DataFrame(
        [
            {
                "file": r.file,
                "sha256": r.sha256[:16],
                "read": r.rows_read,
                "inserted": r.inserted,
                "already_present": r.already_present,
                "conflicts": r.conflicts,
                "rejected": r.rejected,
            }
            for r in reports
        ]
    )
    return {
        "inserted": sum(r.inserted for r in reports),
        "already_present": sum(r.already_present for r in reports),
        "rejected": sum(r.rejected for r in reports),
        "conflicts": sum(r.conflicts for r in reports),
        "files": markdown_table(files),
        "file_fingerprints": [r.sha256 for r in reports],
    }


@dg.asset(key=MARKET_ASSETS[Kind.PRICES], **_PARTITIONED)
def market_prices(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, workbench: WorkbenchResource
) -> dg.MaterializeResult:
    """Daily OHLCV per asset and source (``market.prices``)."""
    return _materialize(context, Kind.PRICES, warehouse, workbench)


@dg.asset(key=MARKET_ASSETS[Kind.IV], **_PARTITIONED)
def market_implied_vol(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, workbench: WorkbenchResource
) -> dg.MaterializeResult:
    """Daily 30-day implied-volatility indices, annualised decimals (``market.implied_vol``)."""
    return _materialize(context, Kind.IV, warehouse, workbench)


@dg.asset(key=MARKET_ASSETS[Kind.FUNDING], **_PARTITIONED)
def market_funding(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, workbench: WorkbenchResource
) -> dg.MaterializeResult:
    """Daily perpetual funding rates per venue (``market.funding``)."""
    return _materialize(context, Kind.FUNDING, warehouse, workbench)


@dg.asset(key=MARKET_ASSETS[Kind.OPTIONS], **_PARTITIONED)
def market_option_marks(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, workbench: WorkbenchResource
) -> dg.MaterializeResult:
    """Option-chain snapshots: marks, implied vols and greeks (``market.option_marks``)."""
    return _materialize(context, Kind.OPTIONS, warehouse, workbench)
