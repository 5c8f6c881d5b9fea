"""Backtest checks: a red traffic light is a finding the committee must see."""

import json

import dagster as dg
import pandas as pd

from pipelines.defs.backtest.assets import active_set_backtest
from pipelines.defs.metadata import markdown_table
from pipelines.defs.resources import WarehouseResource


@dg.asset_check(
    asset=active_set_backtest,
    description="No portfolio and model is in the red zone of the Basel traffic light.",
)
def no_red_traffic_light(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.get_connection() as con:
        row = con.execute("SELECT run_id FROM bt.runs ORDER BY created_at DESC LIMIT 1").fetchone()
        frame = pd.DataFrame(columns=["portfolio", "model", "breaches", "observations"])
        if row is not None:
            frame = con.execute(
                "SELECT portfolio, model, breaches, observations, summary FROM bt.summaries "
                "WHERE run_id = ? AND zone = 'red' ORDER BY portfolio, model",
                [row[0]],
            ).df()
            frame["first breaches"] = [
                ", ".join(json.loads(s)["breach_dates"][:5]) for s in frame["summary"]
            ]
            frame = frame.drop(columns="summary")
    return dg.AssetCheckResult(
        passed=frame.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"red": len(frame), "details": markdown_table(frame)},
    )
