"""The jobs users run: the daily calibration, a proposal's backtest and report, and enactment.

Every job executes the asset graph with its checks, so a blocking check stops what depends on
the checked asset — on the schedule as in a manual run:

- ``daily_calibration``: the market day's partition of the market-data assets → a volatility
  fit per underlying (in parallel under the multiprocess executor; ``persistence_below_one``
  blocks) → correlations (``correlations_psd`` and ``dcc_stationary`` block), IV dynamics →
  recommendations → the in-force backtest → drafted proposals and the shadow runs' days → the
  calibration report and a report per draft. The unpartitioned assets run in the same run as the day's partition.
- ``backtest_proposal`` and ``enact_proposal``: the latter carries the blocking checks (audit
  log verifies; proposal not red) that stop ``gov/enacted_parameters``.
"""

from datetime import date

import dagster as dg

from pipelines.defs.backtest.assets import BACKTEST, PROPOSAL_BACKTEST
from pipelines.defs.calibration.assets import (
    CORRELATIONS,
    FITS_PREFIX,
    IV_DYNAMICS,
    RECOMMENDATIONS,
)
from pipelines.defs.governance.assets import AUDIT_LOG, DRAFTS, ENACTED, SHADOWS, SUBMITTED
from pipelines.defs.market_data.assets import MARKET_ASSETS
from pipelines.defs.reports.assets import CALIBRATION_REPORT, DRAFT_REPORTS, PROPOSAL_REPORT

DAILY_SELECTION = (
    dg.AssetSelection.assets(*MARKET_ASSETS.values())
    | dg.AssetSelection.key_prefixes(FITS_PREFIX)
    | dg.AssetSelection.assets(
        CORRELATIONS,
        IV_DYNAMICS,
        RECOMMENDATIONS,
        BACKTEST,
        DRAFTS,
        SHADOWS,
        CALIBRATION_REPORT,
        DRAFT_REPORTS,
    )
)

daily_calibration = dg.define_asset_job(
    "daily_calibration",
    selection=DAILY_SELECTION,
    description="Ingest the market day → fit per underlying → correlations, IV dynamics, "
    "recommendations → backtest the set in force → draft proposals where drift or breaches "
    "call for one → the calibration report and each draft's backtest and report. Blocking "
    "checks stop what depends on a failed asset. Scheduled 00:30 UTC.",
    tags={"domain": "calibration"},
)

# the calibration assets that read ``as_of`` (the fits' step names carry their underlying)
_AS_OF_STEPS = ("calib__correlations", "calib__iv_dynamics", "calib__recommendations")


def daily_run(
    day: date, underlyings: list[str], *, as_of: str = "", draft_reports: bool = True
) -> tuple[str, dict]:
    """The partition key and run config of a daily run ingesting ``day``.

    ``as_of`` (YYYY-MM-DD, empty: the last day every underlying has a price) is the
    calibration's day; ``draft_reports`` False drafts proposals without backtesting or
    reporting them (the demo reports its own proposal).
    """
    calibration = {"config": {"as_of": as_of}}
    steps = [*_AS_OF_STEPS, *("__".join([*FITS_PREFIX, u]) for u in underlyings)]
    ops: dict = {step: calibration for step in steps}
    ops["__".join(DRAFT_REPORTS.path)] = {"config": {"write": draft_reports}}
    return day.isoformat(), {"ops": ops}


backtest_proposal = dg.define_asset_job(
    "backtest_proposal",
    selection=dg.AssetSelection.assets(
        SUBMITTED, PROPOSAL_BACKTEST, PROPOSAL_REPORT
    ).without_checks(),
    description="A proposal (file or id) → submitted (once) → backtest current vs proposed → "
    "report. The proposal files sensor runs it for every new or changed file.",
    tags={"domain": "governance"},
)

enact_proposal = dg.define_asset_job(
    "enact_proposal",
    selection=dg.AssetSelection.assets(
        SUBMITTED, AUDIT_LOG, PROPOSAL_BACKTEST, PROPOSAL_REPORT, ENACTED
    ),
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
        for k in (SUBMITTED, PROPOSAL_BACKTEST, PROPOSAL_REPORT)
    }
    if enact:
        ops["__".join(ENACTED.path)] = {"config": {"proposal": proposal, "actor": actor}}
    return {"ops": ops}
