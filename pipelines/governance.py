"""Governance over the warehouse: where policy, keys and drafts live, and the triggers run.

Files under the workbench home::

    policy.yaml              the policy adopted by `mwb params init` (later changes: kind: policy proposals)
    keys/NAME.pem            private keys made by `mwb keygen` (mode 0600; members keep their own)
    proposals/drafts/*.yaml  proposals drafted by the triggers, ready for `mwb propose`
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from calibration.stress import STRESS_WINDOWS
from governance.policy import Policy, PolicyError, default_policy, load_policy
from governance.proposals import BacktestWindow, ProposalDocument
from governance.registry import GovernanceError, Registry
from governance.triggers import Breach, TriggerFinding, breach_trigger, drift_trigger
from governance.workflow import ProposalState, Refusal
from pipelines.errors import BadInputError
from pipelines.settings import WorkbenchSettings

if TYPE_CHECKING:
    import duckdb


def policy_path(settings: WorkbenchSettings) -> Path:
    return settings.home / "policy.yaml"


def keys_dir(settings: WorkbenchSettings) -> Path:
    return settings.home / "keys"


def drafts_dir(settings: WorkbenchSettings) -> Path:
    return settings.home / "proposals" / "drafts"


def read_policy(path: Path | None, settings: WorkbenchSettings) -> Policy:
    """The policy file given, else ``HOME/policy.yaml``, else the default bounds (no committee)."""
    path = path or (policy_path(settings) if policy_path(settings).exists() else None)
    if path is None:
        return default_policy()
    try:
        return load_policy(path)
    except PolicyError as exc:
        raise BadInputError(str(exc)) from exc


class _ProposalDumper(yaml.SafeDumper):
    """Multi-line text (the motivation) as a literal block, as a person would write it."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_ProposalDumper.add_representer(str, _text)


def write_document(document: ProposalDocument, path: Path) -> Path:
    """A proposal as the YAML a person would have written (block style, keys in schema order)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(document.model_dump_json(exclude_defaults=True))
    path.write_text(
        yaml.dump(data, Dumper=_ProposalDumper, sort_keys=False, allow_unicode=True, width=100)
    )
    return path


def latest_recommendations(
    con: duckdb.DuckDBPyConnection,
) -> tuple[str, date, dict[str, float]] | None:
    """The newest calibration's recommendations (by as-of date, then time of the run)."""
    # imported here: the calibration store brings the numeric packages, which keys, votes
    # and proposals never need
    from pipelines.stores import calibration as calibration_store

    return calibration_store.latest_recommendations(con)


@dataclass(frozen=True)
class TriggerOutcome:
    finding: TriggerFinding
    draft: ProposalState | None = None
    path: Path | None = None
    refused: str | None = None

    def as_dict(self) -> dict:
        return {
            "rule": self.finding.rule,
            "fired": self.finding.fired,
            "summary": self.finding.summary,
            "draft": self.draft.id if self.draft else None,
            "file": str(self.path) if self.path else None,
            "refused": self.refused,
            "evidence": self.finding.evidence,
        }


def run_triggers(
    con: duckdb.DuckDBPyConnection,
    settings: WorkbenchSettings,
    *,
    now: datetime,
    breaches: Sequence[Breach] | None = None,
    actor: str = "mwb-triggers",
) -> list[TriggerOutcome]:
    """Evaluate the drift and breach rules against the head set; record fired rules' drafts.

    Breaches default to those of the newest backtest of the head set (``bt`` schema), counted up
    to that backtest's last day — the rule looks at the history the backtest saw, not at days
    it has not replayed yet.
    """
    registry = Registry(con)
    head = registry.head()
    active = registry.parameter_set(head.parameter_set)
    policy = registry.policy(head.policy)
    findings: list[TriggerFinding] = []
    latest = latest_recommendations(con)
    if latest is not None:
        calibration_id, as_of, values = latest
        windows = [BacktestWindow(name=w.name, start=w.start, end=w.end) for w in STRESS_WINDOWS]
        findings.append(
            drift_trigger(
                values,
                active,
                policy,
                calibration_id=calibration_id,
                as_of=as_of,
                backtest_windows=windows,
            )
        )
    activations = registry.activations()
    earlier = [a.parameter_set for a in activations if a.parameter_set != head.parameter_set]
    as_of = now
    if breaches is None:
        from pipelines.stores.backtest import latest_breaches

        breaches, last_day = latest_breaches(con, head.parameter_set)
        if last_day is not None:
            as_of = min(now, datetime.combine(last_day, datetime.min.time(), tzinfo=now.tzinfo))
    findings.append(
        breach_trigger(
            breaches,
            policy.rollback,
            active_fingerprint=head.parameter_set,
            active_since=_first_effective(activations, head.parameter_set),
            previous_fingerprint=earlier[-1] if earlier else None,
            now=as_of,
        )
    )
    outcomes = []
    for finding in findings:
        if finding.document is None:
            outcomes.append(TriggerOutcome(finding))
            continue
        try:
            state = registry.submit(finding.document, actor=actor, now=now, draft=True)
        except Refusal as refusal:
            outcomes.append(TriggerOutcome(finding, refused=str(refusal)))
            continue
        path = write_document(finding.document, drafts_dir(settings) / f"{state.id}.yaml")
        outcomes.append(TriggerOutcome(finding, state, path))
    return outcomes


def _first_effective(activations, fingerprint: str) -> datetime:
    """When the current run of ``fingerprint`` began (consecutive activations of the same set)."""
    since = activations[-1].effective_from
    for activation in reversed(activations):
        if activation.parameter_set != fingerprint:
            break
        since = activation.effective_from
    return since


__all__ = [
    "GovernanceError",
    "Registry",
    "TriggerOutcome",
    "drafts_dir",
    "keys_dir",
    "latest_recommendations",
    "policy_path",
    "read_policy",
    "run_triggers",
    "write_document",
]
