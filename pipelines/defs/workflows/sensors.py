"""Sensors: backtest and report every proposal file dropped in a folder; run the drift and
rollback rules after each calibration.

The proposals folder is HOME/proposals/inbox (``MWB_PROPOSALS_INBOX`` overrides it). The cursor
maps each file to the SHA-256 of the version last run, so each version runs exactly once and an
edited file runs again; the run key repeats that, so a lost cursor cannot start a duplicate.
"""

import hashlib
import json
import os
from pathlib import Path

import dagster as dg

from pipelines.defs.calibration.assets import RECOMMENDATIONS
from pipelines.defs.workflows.jobs import backtest_proposal, governance_triggers, proposal_config
from pipelines.settings import load_settings

PROPOSAL_PATTERNS = ("*.yaml", "*.yml")


def proposals_inbox() -> Path:
    override = os.environ.get("MWB_PROPOSALS_INBOX")
    return Path(override) if override else load_settings().home / "proposals" / "inbox"


@dg.sensor(
    job=backtest_proposal,
    minimum_interval_seconds=30,
    description="Backtest and report each new or changed proposal YAML in the proposals inbox.",
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def proposal_files_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    folder = proposals_inbox()
    files = sorted({p for pattern in PROPOSAL_PATTERNS for p in folder.glob(pattern)})
    requests = []
    for path in files:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if seen.get(path.name) == digest:
            continue
        seen[path.name] = digest
        requests.append(
            dg.RunRequest(
                run_key=f"{path.name}:{digest[:16]}",
                run_config=proposal_config(str(path.resolve()), actor="proposal-files-sensor"),
                tags={"proposal_file": path.name, "proposal_sha256": digest},
            )
        )
    if not files:
        return dg.SensorResult(skip_reason=f"no proposal files in {folder}")
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(seen, sort_keys=True))


@dg.asset_sensor(
    asset_key=RECOMMENDATIONS,
    job=governance_triggers,
    description="After each calibration, run the drift and rollback rules against the set in "
    "force (drafts go to HOME/proposals/drafts).",
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def triggers_after_calibration(
    context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry
) -> dg.RunRequest:
    return dg.RunRequest(run_key=f"triggers-{asset_event.run_id}-{asset_event.timestamp}")
