"""Sensors: backtest and report every proposal file dropped in a folder; run the drift and
rollback rules after each calibration.

The proposals folder is HOME/proposals/inbox (``MWB_PROPOSALS_INBOX`` overrides it). The cursor
maps each file to the SHA-256 of the version last run, so each version runs exactly once and an
edited file runs again; the run key repeats that, so a lost cursor cannot start a duplicate.
Only regular files below the document size cap are read; a directory, a dangling symlink, a
symlink out of the inbox (``/dev/zero``), a FIFO or a malformed proposal is skipped and
reported once (the cursor remembers the reason), and never stops the others.
"""

import hashlib
import json
import os
import stat
from pathlib import Path

import dagster as dg

from governance.documents import MAX_DOCUMENT_BYTES, DocumentError, parse_yaml, read_text
from pipelines.defs.calibration.assets import RECOMMENDATIONS
from pipelines.defs.workflows.jobs import backtest_proposal, governance_triggers, proposal_config
from pipelines.settings import load_settings

INBOX_SUFFIXES = (".yaml", ".yml")


def proposals_inbox() -> Path:
    override = os.environ.get("MWB_PROPOSALS_INBOX")
    return Path(override) if override else load_settings().home / "proposals" / "inbox"


def inbox_entry(folder: Path, entry: os.DirEntry) -> tuple[Path | None, str]:
    """A proposal file the sensor may read, or why not. Only regular files count: a symlink
    must resolve to a regular file inside the inbox (never ``/dev/zero`` or a file elsewhere),
    and nothing that is not a regular file is ever opened (a FIFO would hang the tick)."""
    path = Path(entry.path)
    try:
        if entry.is_symlink():
            target = path.resolve(strict=True)
            if folder.resolve() not in target.parents:
                return None, "a symlink to something outside the inbox"
            info = os.stat(target)
        else:
            info = entry.stat(follow_symlinks=False)
    except FileNotFoundError:
        return None, "a dangling symlink"
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        return None, f"cannot be read ({getattr(exc, 'strerror', None) or exc})"
    if stat.S_ISDIR(info.st_mode):
        return None, "a directory"
    if not stat.S_ISREG(info.st_mode):
        return None, "not a regular file (a FIFO, socket or device)"
    if info.st_size > MAX_DOCUMENT_BYTES:
        return None, f"{info.st_size:,} bytes, above the {MAX_DOCUMENT_BYTES:,}-byte cap"
    return path, ""


SKIPPED_KEY = "skipped"  # not a file name: inbox files end in .yaml or .yml


def _cursor(text: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """(seen: name -> SHA-256 last run, skipped: name -> reason last reported)."""
    data = json.loads(text) if text else {}
    skipped = data.pop(SKIPPED_KEY, {}) if isinstance(data, dict) else {}
    return dict(data), dict(skipped)


@dg.sensor(
    job=backtest_proposal,
    minimum_interval_seconds=30,
    description="Backtest and report each new or changed proposal YAML in the proposals inbox "
    "(regular files below the size cap; anything else is reported once and skipped).",
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def proposal_files_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    seen, skipped = _cursor(context.cursor)
    folder = proposals_inbox()
    try:
        entries = sorted(
            (e for e in os.scandir(folder) if Path(e.name).suffix.lower() in INBOX_SUFFIXES),
            key=lambda e: e.name,
        )
    except FileNotFoundError:
        return dg.SensorResult(skip_reason=f"no proposals inbox at {folder}")
    except OSError as exc:
        return dg.SensorResult(skip_reason=f"{folder}: cannot list ({exc.strerror})")
    requests = []
    reasons: dict[str, str] = {}
    for entry in entries:
        path, why = inbox_entry(folder, entry)
        digest = None
        if path is not None:
            try:
                text = read_text(path)
                digest = hashlib.sha256(text.encode()).hexdigest()
                if seen.get(entry.name) != digest:
                    parse_yaml(text, entry.name)  # unreadable YAML is skipped, not run
            except (DocumentError, OSError) as exc:
                why = " ".join(str(exc).split())
        if why:
            reasons[entry.name] = why
            if skipped.get(entry.name) != why:  # report each reason once
                context.log.warning(f"proposals inbox: skipped {entry.name}: {why}")
            continue
        if seen.get(entry.name) == digest:
            continue
        seen[entry.name] = digest
        requests.append(
            dg.RunRequest(
                run_key=f"{entry.name}:{digest[:16]}",
                run_config=proposal_config(str(path.resolve()), actor="proposal-files-sensor"),
                tags={"proposal_file": entry.name, "proposal_sha256": digest},
            )
        )
    cursor = json.dumps({**seen, SKIPPED_KEY: reasons}, sort_keys=True)
    if not entries:
        return dg.SensorResult(skip_reason=f"no proposal files in {folder}", cursor=cursor)
    if not requests:
        return dg.SensorResult(
            skip_reason=f"nothing new in {folder}"
            + (f" ({len(reasons)} file(s) skipped)" if reasons else ""),
            cursor=cursor,
        )
    return dg.SensorResult(run_requests=requests, cursor=cursor)


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
