"""Backtest checks: a red traffic light is a finding the committee must see."""

import dagster as dg

from pipelines.defs.backtest.assets import active_set_backtest
from pipelines.defs.metadata import markdown_table
from pipelines.defs.resources import WarehouseResource
from pipelines.stores.backtest import latest_red


@dg.asset_check(
    asset=active_set_backtest,
    description="No portfolio and model is in the red zone of the Basel traffic light.",
)
def no_red_traffic_light(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.get_connection() as con:
        frame = latest_red(con)
    return dg.AssetCheckResult(
        passed=frame.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"red": len(frame), "findings": len(frame), "details": markdown_table(frame)},
    )
