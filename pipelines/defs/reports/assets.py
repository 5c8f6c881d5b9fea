"""Report assets: the proposal report the committee votes on and the calibration report, written
under HOME/reports and recorded in ``rpt.reports``.

The proposal report records the enactment gate (``gate_passed``); the blocking check
``proposed_set_not_red`` (checks.py) turns it into a stop for ``gov/enacted_parameters``.
"""

import dagster as dg
import pandas as pd

from pipelines.defs.backtest.assets import PROPOSAL_BACKTEST, ProposalConfig
from pipelines.defs.metadata import frontier_metadata, markdown_table
from pipelines.defs.resources import WarehouseResource, WorkbenchResource

GROUP = "reports"
PROPOSAL_REPORT = dg.AssetKey(["rpt", "proposal_report"])
CALIBRATION_REPORT = dg.AssetKey(["rpt", "calibration_report"])


def _files_metadata(written) -> dict:
    return {
        "html": dg.MetadataValue.path(str(written.paths["html"])),
        "markdown": dg.MetadataValue.path(str(written.paths["markdown"])),
        "payload": dg.MetadataValue.path(str(written.paths["payload"])),
        "sha256": dg.MetadataValue.json(written.rendered.fingerprints()),
    }


@dg.asset(
    key=PROPOSAL_REPORT,
    group_name=GROUP,
    kinds={"html", "markdown"},
    deps=[PROPOSAL_BACKTEST],
)
def proposal_report(
    config: ProposalConfig, warehouse: WarehouseResource, workbench: WorkbenchResource
) -> dg.MaterializeResult:
    """report.html, report.md and payload.json for one proposal."""
    from pipelines.report import proposal_report as write_report
    from pipelines.workflows import find_proposal

    settings = workbench.settings()
    with warehouse.get_connection() as con:
        proposal_id = find_proposal(con, config.proposal, actor=config.actor)
        written = write_report(con, settings, proposal_id)
    return dg.MaterializeResult(metadata=proposal_report_metadata(written))


def proposal_report_metadata(written) -> dict:
    """A written proposal report for a materialization: verdict, the enactment gate, files."""
    from backtesting.records import PairCoverage
    from governance.gate import enactment_gate

    payload = written.context.data
    section = payload.get("bad_debt") or {}
    gate_rule = section.get("gate") or {}
    more_bad_debt = gate_rule.get("worse", []) if gate_rule.get("required") else []
    gate = enactment_gate(
        [PairCoverage.from_dict(row) for row in payload["coverage"]], more_bad_debt
    )
    return {
        "proposal": written.context.id,
        "fingerprint": payload["header"]["fingerprint"],
        "verdict": payload["tldr"]["verdict"],
        "reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in payload["tldr"]["reasons"])),
        "gate_passed": gate.passed,
        "gate_reasons": "; ".join(gate.reasons) or "none",
        "red_where_changed": markdown_table_of(gate.red_where_changed),
        "worse": markdown_table_of(gate.worse),
        "more_bad_debt": markdown_table_of(gate.bad_debt_worse),
        **_files_metadata(written),
        **_frontier(written),
    }


def _frontier(written) -> dict:
    """The report's frontier (its sweep's points, knee and chart), when it has one."""
    section = written.context.data.get("frontier") or {}
    if not section.get("available"):
        return {"frontier": section.get("reason", "none")}
    payload = {
        "parameter": section["parameter"],
        "model": section["model"],
        "knee": section["knee"],
        "points": section["rows"],
    }
    chart = written.paths.get("frontier")
    return frontier_metadata(payload, str(chart) if chart is not None else None)


def calibration_report_metadata(written) -> dict:
    return {"calibration_id": written.context.id, **_files_metadata(written)}


def markdown_table_of(lines: tuple[str, ...]) -> dg.MetadataValue:
    return markdown_table(pd.DataFrame({"where": list(lines)}))


@dg.asset(
    key=CALIBRATION_REPORT,
    group_name=GROUP,
    kinds={"html", "markdown"},
    deps=[dg.AssetKey(["calib", "recommendations"])],
)
def calibration_report(
    warehouse: WarehouseResource, workbench: WorkbenchResource
) -> dg.MaterializeResult:
    """The latest calibration's report: fits, correlations and each recommendation's derivation."""
    from pipelines.report import calibration_report as write_report

    with warehouse.get_connection() as con:
        written = write_report(con, workbench.settings())
    return dg.MaterializeResult(metadata=calibration_report_metadata(written))


DRAFT_REPORTS = dg.AssetKey(["rpt", "draft_reports"])


class DraftReportsConfig(dg.Config):
    write: bool = True  # False: draft only (the demo reports its own proposal)


@dg.asset(
    key=DRAFT_REPORTS,
    group_name=GROUP,
    kinds={"html", "markdown"},
    deps=[dg.AssetKey(["gov", "drafted_proposals"])],
)
def draft_reports(
    context: dg.AssetExecutionContext,
    config: DraftReportsConfig,
    warehouse: WarehouseResource,
    workbench: WorkbenchResource,
) -> dg.MaterializeResult:
    """Each proposal the triggers just drafted, backtested current vs proposed on identical
    inputs and written up as the report the committee votes on."""
    from pipelines.report import proposal_report as write_report
    from pipelines.workflows import backtest_proposal

    event = context.instance.get_latest_materialization_event(
        dg.AssetKey(["gov", "drafted_proposals"])
    )
    found = event.asset_materialization.metadata.get("drafts") if event else None
    drafts = list(found.value) if found is not None and config.write else []
    settings = workbench.settings()
    rows = []
    with warehouse.get_connection() as con:
        for proposal_id in drafts:
            run = backtest_proposal(con, settings, proposal_id)
            written = write_report(con, settings, proposal_id)
            rows.append(
                {
                    "proposal": proposal_id,
                    "backtest": run.run_id,
                    "verdict": written.context.data["tldr"]["verdict"],
                    "html": str(written.paths["html"]),
                }
            )
    return dg.MaterializeResult(
        metadata={
            "drafts": [r["proposal"] for r in rows],
            "html": [r["html"] for r in rows],
            "reports": markdown_table(
                pd.DataFrame(rows, columns=["proposal", "backtest", "verdict", "html"])
            ),
        }
    )
