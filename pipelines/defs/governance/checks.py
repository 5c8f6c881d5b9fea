"""Governance checks: nothing is enacted on top of a history that does not verify."""

import dagster as dg

from governance.registry import Registry
from pipelines.defs.governance.assets import audit_log
from pipelines.defs.resources import WarehouseResource


@dg.asset_check(
    asset=audit_log,
    blocking=True,
    description="The audit log's hash chain verifies and the state tables agree with it.",
)
def audit_log_verifies(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.get_connection() as con:
        report = Registry(con).verify()
    return dg.AssetCheckResult(
        passed=report.ok,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "entries": report.chain.entries,
            "head_hash": report.chain.head_hash,
            "first_bad": report.chain.first_bad if report.chain.first_bad is not None else -1,
            "problem": report.chain.problem or "; ".join(report.problems[:3]),
        },
    )
