"""The jobs users run: the daily calibration, a proposal's backtest and report, and enactment.

``daily_calibration`` is an op job because its steps span three partitionings (a market day,
one fit per underlying, unpartitioned calibration and governance), which one asset job cannot
hold; each op records the materializations of the assets it updates (with their partitions),
so the asset catalogue shows what a daily run changed. Its fits fan out per underlying and run
in parallel under the multiprocess executor.

``backtest_proposal`` and ``enact_proposal`` are asset jobs: the latter carries the blocking
checks (audit log verifies; proposal not red) that stop ``gov/enacted_parameters``.
"""

from datetime import UTC, date, datetime

import dagster as dg
import pandas as pd

from pipelines.defs.backtest.assets import BACKTEST, PROPOSAL_BACKTEST, summary_metadata
from pipelines.defs.calibration.assets import (
    CORRELATIONS,
    FITS,
    IV_DYNAMICS,
    RECOMMENDATIONS,
    fit_metadata,
    recommendations_metadata,
)
from pipelines.defs.governance.assets import AUDIT_LOG, DRAFTS, ENACTED
from pipelines.defs.market_data.assets import MARKET_ASSETS, load_metadata
from pipelines.defs.metadata import markdown_table
from pipelines.defs.reports.assets import (
    CALIBRATION_REPORT,
    PROPOSAL_REPORT,
    calibration_report_metadata,
    proposal_report_metadata,
)
from pipelines.defs.resources import WarehouseResource, WorkbenchResource
from pipelines.ingest.kinds import Kind


class DailyConfig(dg.Config):
    day: str = ""  # market day to ingest, YYYY-MM-DD; empty = yesterday (UTC)
    as_of: str = ""  # calibrate as of this day; empty = the last day every underlying has a price


class InForceBacktestConfig(dg.Config):
    years: int = 3  # the window before the calibration's as-of day


@dg.op(description="Load the configured sources for the market day (the live source fetches it).")
def ingest_market_day(
    context: dg.OpExecutionContext,
    config: DailyConfig,
    warehouse: WarehouseResource,
    workbench: WorkbenchResource,
) -> str:
    from pipelines.calibrate import latest_common_date
    from pipelines.ingest.configured import load_configured
    from pipelines.workflows import daily_day

    settings = workbench.settings()
    day = daily_day(config.day)
    with warehouse.get_connection() as con:
        outcome = load_configured(con, settings, None, (day, day))
        as_of = (
            date.fromisoformat(config.as_of)
            if config.as_of
            else latest_common_date(con, settings.market.assets)
        )
    if outcome.errors:
        raise dg.Failure(
            description="Some configured sources could not be loaded:\n" + "\n".join(outcome.errors)
        )
    by_kind: dict[Kind, list] = {}
    for report in outcome.reports:
        by_kind.setdefault(Kind(report.kind), []).append(report)
    for kind, reports in by_kind.items():
        context.log_event(
            dg.AssetMaterialization(
                asset_key=MARKET_ASSETS[kind],
                partition=day.isoformat(),
                metadata=load_metadata(reports),
            )
        )
    return as_of.isoformat()


@dg.op(out=dg.DynamicOut(str), description="Start a calibration; one output per underlying.")
def plan_calibration(
    as_of: str, warehouse: WarehouseResource, workbench: WorkbenchResource
) -> object:
    from pipelines.calibrate import context, record_run

    settings = workbench.settings()
    with warehouse.get_connection() as con:
        record_run(con, context(con, settings, settings.market.assets, date.fromisoformat(as_of)))
    for asset in settings.market.assets:
        yield dg.DynamicOutput(f"{as_of}|{asset}", mapping_key=asset.replace("-", "_"))


@dg.op(description="Fit and choose the volatility model of one underlying (by BIC).")
def fit_underlying(
    context: dg.OpExecutionContext,
    item: str,
    warehouse: WarehouseResource,
    workbench: WorkbenchResource,
) -> str:
    from pipelines.calibrate import context as calibration_context
    from pipelines.calibrate import fit_asset

    as_of, asset = item.split("|")
    settings = workbench.settings()
    with warehouse.get_connection() as con:
        ctx = calibration_context(con, settings, settings.market.assets, date.fromisoformat(as_of))
        calibration = fit_asset(con, settings, ctx, asset)
    context.log_event(
        dg.AssetMaterialization(
            asset_key=FITS, partition=asset, metadata=fit_metadata(ctx, calibration)
        )
    )
    return as_of


@dg.op(description="Correlations, IV dynamics and the recommended parameters.")
def recommend(
    context: dg.OpExecutionContext,
    fitted: list[str],
    warehouse: WarehouseResource,
    workbench: WorkbenchResource,
) -> str:
    from pipelines.calibrate import (
        calibrate_correlations,
        calibrate_iv,
        recommend_parameters,
    )
    from pipelines.calibrate import context as calibration_context

    settings = workbench.settings()
    assets = settings.market.assets
    with warehouse.get_connection() as con:
        ctx = calibration_context(con, settings, assets, date.fromisoformat(fitted[0]))
        if len(assets) > 1:
            calibrate_correlations(con, settings, ctx, assets)
            context.log_event(dg.AssetMaterialization(CORRELATIONS, metadata=_id(ctx)))
        calibrate_iv(con, settings, ctx, assets)
        context.log_event(dg.AssetMaterialization(IV_DYNAMICS, metadata=_id(ctx)))
        result = recommend_parameters(con, settings, ctx, assets)
    context.log_event(
        dg.AssetMaterialization(RECOMMENDATIONS, metadata=recommendations_metadata(ctx, result))
    )
    return ctx.calibration_id


def _id(ctx) -> dict:
    return {"calibration_id": ctx.calibration_id, "as_of": ctx.as_of.isoformat()}


@dg.op(description="Backtest the set in force (the breach rule reads it).")
def backtest_in_force(
    context: dg.OpExecutionContext,
    config: InForceBacktestConfig,
    calibration_id: str,
    warehouse: WarehouseResource,
    workbench: WorkbenchResource,
) -> str:
    from backtesting.spec import BacktestSpec
    from pipelines.backtest import resolve_source, run_backtest, years_before

    settings = workbench.settings()
    with warehouse.get_connection() as con:
        as_of = con.execute(
            "SELECT as_of FROM calib.runs WHERE calibration_id = ?", [calibration_id]
        ).fetchone()[0]
        start = years_before(con, config.years, as_of)
        run = run_backtest(
            con, settings, [resolve_source(con, "active", "in-force")], BacktestSpec(start=start)
        )
    context.log_event(dg.AssetMaterialization(BACKTEST, metadata=summary_metadata(run)))
    return run.run_id


class DraftConfig(dg.Config):
    backtest_and_report: bool = True  # False: draft only (the demo reports its own proposal)


@dg.op(description="Run the drift and breach rules; draft a proposal for each that fires.")
def draft_proposals(
    context: dg.OpExecutionContext,
    config: DraftConfig,
    backtest_run: str,
    warehouse: WarehouseResource,
    workbench: WorkbenchResource,
) -> list[str]:
    from governance.registry import Registry
    from pipelines.governance import run_triggers

    settings = workbench.settings()
    with warehouse.get_connection() as con:
        if not Registry(con).initialised():
            context.log.warning("no governance registry yet (`mwb params init`): nothing drafted")
            return []
        outcomes = run_triggers(con, settings, now=datetime.now(UTC))
    drafts = [o.draft.id for o in outcomes if o.draft]
    context.log_event(
        dg.AssetMaterialization(
            DRAFTS,
            metadata={
                "backtest_run": backtest_run,
                "drafts": drafts,
                "findings": markdown_table(
                    pd.DataFrame(
                        [(o.finding.rule, o.finding.fired, o.finding.summary) for o in outcomes],
                        columns=["rule", "fired", "summary"],
                    )
                ),
            },
        )
    )
    return drafts if config.backtest_and_report else []


@dg.op(description="Backtest each drafted proposal: current vs proposed on identical inputs.")
def backtest_drafts(
    context: dg.OpExecutionContext,
    drafts: list[str],
    warehouse: WarehouseResource,
    workbench: WorkbenchResource,
) -> list[str]:
    from pipelines.workflows import backtest_proposal

    settings = workbench.settings()
    for proposal_id in drafts:
        with warehouse.get_connection() as con:
            run = backtest_proposal(con, settings, proposal_id)
        context.log_event(
            dg.AssetMaterialization(
                PROPOSAL_BACKTEST, metadata={"proposal": proposal_id, **summary_metadata(run)}
            )
        )
    return drafts


@dg.op(description="The calibration report and a report per drafted proposal.")
def write_reports(
    context: dg.OpExecutionContext,
    drafts: list[str],
    warehouse: WarehouseResource,
    workbench: WorkbenchResource,
) -> list[str]:
    from pipelines.report import calibration_report, proposal_report

    settings = workbench.settings()
    written = []
    with warehouse.get_connection() as con:
        calibration = calibration_report(con, settings)
        written.append(str(calibration.paths["html"]))
        context.log_event(
            dg.AssetMaterialization(
                CALIBRATION_REPORT, metadata=calibration_report_metadata(calibration)
            )
        )
        for proposal_id in drafts:
            report = proposal_report(con, settings, proposal_id)
            written.append(str(report.paths["html"]))
            context.log_event(
                dg.AssetMaterialization(PROPOSAL_REPORT, metadata=proposal_report_metadata(report))
            )
    return written


@dg.job(
    description="Ingest the new market day → fit per underlying → correlations, IV dynamics, "
    "recommendations → backtest the set in force → draft proposals where drift or breaches "
    "call for one → backtest each draft → reports. Scheduled 00:30 UTC.",
    tags={"domain": "calibration"},
)
def daily_calibration() -> None:
    as_of = ingest_market_day()
    fitted = plan_calibration(as_of).map(fit_underlying)
    calibration_id = recommend(fitted.collect())
    drafts = draft_proposals(backtest_in_force(calibration_id))
    write_reports(backtest_drafts(drafts))


backtest_proposal = dg.define_asset_job(
    "backtest_proposal",
    selection=dg.AssetSelection.assets(PROPOSAL_BACKTEST, PROPOSAL_REPORT).without_checks(),
    description="A proposal (file or id) → backtest current vs proposed → report. The proposal "
    "files sensor runs it for every new or changed file.",
    tags={"domain": "governance"},
)

enact_proposal = dg.define_asset_job(
    "enact_proposal",
    selection=dg.AssetSelection.assets(AUDIT_LOG, PROPOSAL_BACKTEST, PROPOSAL_REPORT, ENACTED),
    description="Re-check an approved proposal and enact it: the audit log must verify and the "
    "report must not be red (blocking checks), else the enactment step is skipped.",
    tags={"domain": "governance"},
)

governance_triggers = dg.define_asset_job(
    "governance_triggers",
    selection=dg.AssetSelection.assets(DRAFTS),
    description="The drift and breach (rollback) rules against the set in force.",
    tags={"domain": "governance"},
)


def proposal_config(proposal: str, *, enact: bool = False, actor: str = "mwb-pipeline") -> dict:
    """Run config for ``backtest_proposal`` (or ``enact_proposal``) about ``proposal``."""
    ops = {
        "__".join(k.path): {"config": {"proposal": proposal, "actor": actor}}
        for k in (PROPOSAL_BACKTEST, PROPOSAL_REPORT)
    }
    if enact:
        ops["__".join(ENACTED.path)] = {"config": {"proposal": proposal, "actor": actor}}
    return {"ops": ops}
