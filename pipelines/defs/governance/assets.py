"""Governance assets: the proposals the triggers draft after each calibration.

The registry itself (sets, votes, activations, audit log) changes only through the committee's
commands (`mwb propose`, `approve`, `enact`); the pipeline's part is to notice drift (and, with
backtests, breaches) and draft a proposal with its evidence for the committee to consider.
"""

from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from governance.registry import Registry
from pipelines.defs.metadata import markdown_table
from pipelines.defs.resources import WarehouseResource, WorkbenchResource
from pipelines.governance import run_triggers

GROUP = "governance"
DRAFTS = dg.AssetKey(["gov", "drafted_proposals"])


@dg.asset(
    key=DRAFTS,
    group_name=GROUP,
    kinds={"duckdb", "python"},
    deps=[dg.AssetKey(["calib", "recommendations"]), dg.AssetKey(["bt", "active_set_backtest"])],
)
def drafted_proposals(
    warehouse: WarehouseResource, workbench: WorkbenchResource
) -> dg.MaterializeResult:
    """Run the drift and breach rules against the set in force; draft a proposal for each that fires
    (``gov.proposals`` with status ``draft``, and a YAML file under ``HOME/proposals/drafts``)."""
    settings = workbench.settings()
    with warehouse.get_connection() as con:
        registry = Registry(con)
        if not registry.initialised():
            return dg.MaterializeResult(
                metadata={
                    "initialised": False,
                    "note": "no registry yet: `mwb params init` adopts a policy",
                }
            )
        outcomes = run_triggers(con, settings, now=datetime.now(UTC))
        head = registry.head()
    frame = pd.DataFrame(
        [
            (
                o.finding.rule,
                o.finding.fired,
                o.finding.summary,
                o.draft.id if o.draft else "",
                str(o.path or ""),
            )
            for o in outcomes
        ],
        columns=["rule", "fired", "summary", "draft", "file"],
    )
    return dg.MaterializeResult(
        metadata={
            "initialised": True,
            "active_set": head.parameter_set,
            "policy": head.policy,
            "drafts": [o.draft.id for o in outcomes if o.draft],
            "findings": markdown_table(frame),
        }
    )
