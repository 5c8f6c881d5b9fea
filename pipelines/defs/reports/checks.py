"""Report checks: the enactment gate. A red traffic light where the change has effect, a
portfolio whose coverage gets worse, or — where the policy's ``gate.bad_debt_not_worse`` asks —
more bad debt in a cascade, stops ``gov/enacted_parameters`` in the same run.

Jobs that only backtest and report (``backtest_proposal``) leave this check out: a red
proposal still gets its report, which says why it should not be approved.
"""

import dagster as dg

from pipelines.defs.reports.assets import PROPOSAL_REPORT


@dg.asset_check(
    asset=PROPOSAL_REPORT,
    blocking=True,
    description="The proposed set is not red where the change has effect and no portfolio's "
    "coverage gets worse (from the report just written). Blocks enactment.",
)
def proposed_set_not_red(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    event = context.instance.get_latest_materialization_event(PROPOSAL_REPORT)
    if event is None or event.asset_materialization is None:
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"reason": "no proposal report has been written"},
        )
    meta = event.asset_materialization.metadata
    return dg.AssetCheckResult(
        passed=bool(meta["gate_passed"].value),
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "proposal": meta["proposal"].value,
            "verdict": meta["verdict"].value,
            "reasons": meta["gate_reasons"].value,
            "red_where_changed": meta["red_where_changed"],
            "worse": meta["worse"],
            **({"more_bad_debt": meta["more_bad_debt"]} if "more_bad_debt" in meta else {}),
        },
    )
