"""Backtest assets: the set in force replayed over history, stored in the ``bt`` schema.

The rollback trigger reads its breaches from here; a red traffic light is flagged by the check.
"""

from datetime import date

import dagster as dg
import pandas as pd

from pipelines.backtest import BacktestSpec, comparison, resolve_source, run_backtest
from pipelines.defs.metadata import markdown_table
from pipelines.defs.resources import WarehouseResource, WorkbenchResource

GROUP = "backtest"
BACKTEST = dg.AssetKey(["bt", "active_set_backtest"])


class BacktestConfig(dg.Config):
    start: str = ""  # YYYY-MM-DD; empty = three years before the last day with data
    end: str = ""  # YYYY-MM-DD; empty = the last day with a full MPOR after it
    params: str = "active"  # active | registry | default | a file | a fingerprint
    models: list[str] = ["deribit-pm", "span", "var"]
    portfolios: list[str] = ["books", "collateral"]


@dg.asset(
    key=BACKTEST,
    group_name=GROUP,
    kinds={"duckdb", "python"},
    deps=[dg.AssetKey(["market", "prices"]), dg.AssetKey(["market", "implied_vol"])],
)
def active_set_backtest(
    config: BacktestConfig, warehouse: WarehouseResource, workbench: WorkbenchResource
) -> dg.MaterializeResult:
    """Margin the test portfolios every day with the set in force and count the breaches,
    with the coverage tests, procyclicality and capital efficiency per portfolio and model."""
    settings = workbench.settings()
    with warehouse.get_connection() as con:
        end = date.fromisoformat(config.end) if config.end else None
        if config.start:
            start = date.fromisoformat(config.start)
        else:
            last = con.execute("SELECT max(date) FROM market.prices").fetchone()[0]
            start = (pd.Timestamp(last) - pd.DateOffset(years=3)).date() if last else None
        spec = BacktestSpec(
            start=start, end=end, models=tuple(config.models), portfolios=tuple(config.portfolios)
        )
        run = run_backtest(con, settings, [resolve_source(con, config.params, "in-force")], spec)
    side = comparison(run)
    columns = [
        "portfolio",
        "model",
        "in-force.breaches",
        "in-force.expected",
        "in-force.zone",
        "in-force.pof_p",
        "in-force.mean_margin_usd",
    ]
    red = side[side["in-force.zone"] == "red"]
    return dg.MaterializeResult(
        metadata={
            "run_id": run.run_id,
            "parameter_set": run.sets["in-force"],
            "from": str(run.start),
            "to": str(run.end),
            "mpor_days": run.mpor_days,
            "data_sha256": run.data_sha,
            "red": len(red),
            "summary": markdown_table(side[columns]),
            "seconds": round(run.elapsed, 1),
        }
    )
