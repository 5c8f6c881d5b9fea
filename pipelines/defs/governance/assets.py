"""Governance assets: the proposals the triggers draft after each calibration, the audit log,
and the enactment of a proposal the committee approved.

The registry (sets, votes, activations, audit log) changes only through the committee's
commands and the rules of :mod:`governance`; the pipeline notices drift and breaches and drafts
proposals with their evidence, and enacts only behind two blocking checks: the audit log
verifies (``gov/audit_log``) and the proposal's report is not red (``rpt/proposal_report``).
"""

from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from governance.registry import Registry
from pipelines.defs.backtest.assets import ProposalConfig
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


SUBMITTED = dg.AssetKey(["gov", "submitted_proposal"])


@dg.asset(key=SUBMITTED, group_name=GROUP, kinds={"duckdb"})
def submitted_proposal(
    config: ProposalConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """The explicit submission step: a proposal file is checked against the schema and the
    policy and recorded as submitted (once per document and sets); an id must name a recorded
    proposal. Backtests and reports read the recorded proposal and submit nothing."""
    from pipelines.workflows import submit_proposal

    with warehouse.get_connection() as con:
        proposal_id = submit_proposal(con, config.proposal, actor=config.actor)
        status = Registry(con).recorded_status(proposal_id)
    return dg.MaterializeResult(
        metadata={"proposal": proposal_id, "status": status.value if status else "unknown"}
    )


AUDIT_LOG = dg.AssetKey(["gov", "audit_log"])
ENACTED = dg.AssetKey(["gov", "enacted_parameters"])


@dg.asset(key=AUDIT_LOG, group_name=GROUP, kinds={"duckdb"})
def audit_log(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """The hash-chained audit log (``gov.audit_log``): its head, for publishing; verified by the
    blocking check ``audit_log_verifies``."""
    with warehouse.get_connection() as con:
        registry = Registry(con)
        if not registry.initialised():
            return dg.MaterializeResult(metadata={"initialised": False, "entries": 0})
        entries = registry.audit_entries()
    return dg.MaterializeResult(
        metadata={
            "initialised": True,
            "entries": len(entries),
            "head_hash": entries[-1].hash if entries else "",
        }
    )


class EnactConfig(dg.Config):
    proposal: str  # the approved proposal's id
    effective_from: str = ""  # ISO timestamp; empty = now
    actor: str = "mwb-pipeline"


@dg.asset(
    key=ENACTED,
    group_name=GROUP,
    kinds={"duckdb"},
    deps=[AUDIT_LOG, dg.AssetKey(["rpt", "proposal_report"])],
)
def enacted_parameters(config: EnactConfig, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Enact an approved proposal (quorum, cool-down and registry rules of ``mwb enact``): the
    new set in force from ``effective_from``. Runs only when the audit log verifies and the
    proposal's report passed its gate in the same run."""
    now = datetime.now(UTC)
    effective = datetime.fromisoformat(config.effective_from) if config.effective_from else None
    with warehouse.get_connection() as con:
        registry = Registry(con)
        state = registry.enact(
            config.proposal, actor=config.actor, now=now, effective_from=effective
        )
        head = registry.head()
    return dg.MaterializeResult(
        metadata={
            "proposal": state.id,
            "status": state.status.value,
            "parameter_set": head.parameter_set,
            "effective_from": head.effective_from.isoformat(),
        }
    )


SHADOWS = dg.AssetKey(["gov", "shadow_runs"])


class ShadowConfig(dg.Config):
    day: str = ""  # YYYY-MM-DD; empty: the last market day the warehouse has


@dg.asset(
    key=SHADOWS,
    group_name=GROUP,
    kinds={"duckdb", "python"},
    deps=[dg.AssetKey(["bt", "active_set_backtest"])],
)
def shadow_runs(
    config: ShadowConfig, warehouse: WarehouseResource, workbench: WorkbenchResource
) -> dg.MaterializeResult:
    """Every proposal in shadow: its set margined beside the set in force on the test
    portfolios, each elapsed market day recorded (audited) and its shadow report written."""
    from datetime import date

    from pipelines.shadow import last_market_day, run_shadows

    settings = workbench.settings()
    with warehouse.get_connection() as con:
        through = date.fromisoformat(config.day) if config.day else last_market_day(con)
        results = run_shadows(con, settings, through=through)
    frame = pd.DataFrame(
        [
            (r["proposal"], r["recorded"], r["days"], r["shadow_only"], r["verdict"])
            for r in results
        ],
        columns=["proposal", "recorded", "days", "shadow_only", "verdict"],
    )
    return dg.MaterializeResult(
        metadata={
            "through": through.isoformat(),
            "shadows": markdown_table(frame),
            "reports": dg.MetadataValue.json([r["report"] for r in results]),
        }
    )
