"""Rules that draft proposals automatically, with their evidence attached (design: users 1).

* **Breaches** — more than ``max_breaches`` margin breaches (``loss > margin``, strict) within the
  last ``window_days`` days, counted only on days the active set was in force, draft a rollback
  to the set in force before it.
* **Drift** — a calibrated recommendation further from the active value than the policy's
  relative tolerance drafts a change towards it, clipped to the policy's bounds and largest
  change per proposal so that the draft can be submitted as it stands.

Both return a :class:`TriggerFinding`; the caller records its document as a draft. Nothing here
reads a clock or a database.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal, cast

from governance.parameters import ParameterSet
from governance.policy import Policy, RollbackRule
from governance.proposals import BacktestWindow, Evidence, ProposalDocument

TRIGGER_AUTHOR = "mwb-triggers"


@dataclass(frozen=True)
class Breach:
    """A day whose realised loss exceeded the margin held (both positive, one currency)."""

    day: date
    portfolio: str
    loss: float
    margin: float
    currency: str
    model: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "portfolio": self.portfolio,
            "loss": self.loss,
            "margin": self.margin,
            "currency": self.currency,
            "model": self.model,
        }


@dataclass(frozen=True)
class TriggerFinding:
    rule: Literal["breaches", "drift"]
    fired: bool
    summary: str
    document: ProposalDocument | None = None
    evidence: dict[str, Any] = field(default_factory=dict)


def breach_trigger(
    breaches: Sequence[Breach],
    rule: RollbackRule,
    *,
    active_fingerprint: str,
    active_since: datetime,
    previous_fingerprint: str | None,
    now: datetime,
) -> TriggerFinding:
    """Draft a rollback when breaches under the active set exceed ``rule.max_breaches``."""
    start = max((now - timedelta(days=rule.window_days)).date(), active_since.date())
    counted = sorted(
        (b for b in breaches if start <= b.day <= now.date()), key=lambda b: (b.day, b.portfolio)
    )
    evidence = {
        "rule": {"max_breaches": rule.max_breaches, "window_days": rule.window_days},
        "active_set": active_fingerprint,
        "window": {"start": start.isoformat(), "end": now.date().isoformat()},
        "breaches": [b.as_dict() for b in counted],
    }
    summary = (
        f"{len(counted)} breach(es) between {start} and {now.date()} under set {active_fingerprint[:12]}… "
        f"(rule: more than {rule.max_breaches} in {rule.window_days} days)"
    )
    if len(counted) <= rule.max_breaches:
        return TriggerFinding("breaches", False, summary, evidence=evidence)
    if previous_fingerprint is None:
        return TriggerFinding(
            "breaches",
            True,
            summary + "; no earlier set to roll back to — review the genesis set",
            evidence=evidence,
        )
    worst = max(counted, key=lambda b: b.loss / b.margin if b.margin > 0 else math.inf)
    document = ProposalDocument(
        title=f"Roll back to {previous_fingerprint[:12]}: {len(counted)} margin breaches since {start}",
        author=TRIGGER_AUTHOR,
        motivation=(
            f"{summary}. The worst: {worst.portfolio} on {worst.day}, loss {worst.loss:,.6g} {worst.currency} "
            f"against margin {worst.margin:,.6g}. Drafted automatically; the committee decides."
        ),
        kind="rollback",
        rollback_to=previous_fingerprint,
        evidence=Evidence(
            backtest_windows=(BacktestWindow(name="breach window", start=start, end=now.date()),),
            attachments=evidence,
        ),
    )
    return TriggerFinding("breaches", True, summary, document, evidence)


def _clip(path: str, current: float, target: float, policy: Policy) -> tuple[float, list[str]]:
    """``target`` moved inside the policy's bound for ``path``; notes say what was clipped."""
    found = policy.bound_for(path)
    if found is None:
        return target, []
    _, bound = found
    notes, value = [], target
    if bound.max_change is not None:
        step = bound.max_change * abs(current) if bound.change == "relative" else bound.max_change
        lo, hi = current - step, current + step
        if not lo <= value <= hi:
            value = min(max(value, lo), hi)
            notes.append(
                f"limited to the largest change per proposal ({bound.max_change:g} {bound.change})"
            )
    if bound.min is not None and value < bound.min:
        value = bound.min
        notes.append(f"raised to the minimum {bound.min:g}")
    if bound.max is not None and value > bound.max:
        value = bound.max
        notes.append(f"lowered to the maximum {bound.max:g}")
    return value, notes


def _round_towards(value: float, current: float, decimals: int) -> float:
    """Round to ``decimals`` places towards ``current``, so rounding never crosses a bound."""
    scale = 10.0**decimals
    rounded = (
        math.floor(value * scale + 1e-9) / scale
        if value > current
        else math.ceil(value * scale - 1e-9) / scale
    )
    return round(rounded, decimals)


def drift_trigger(
    recommended: Mapping[str, float],
    active: ParameterSet,
    policy: Policy,
    *,
    calibration_id: str,
    as_of: date,
    backtest_windows: Sequence[BacktestWindow] = (),
    decimals: int = 4,
) -> TriggerFinding:
    """Draft a change for every recommendation that drifted beyond the policy's tolerance.

    Drift is relative, :math:`|r - a| / |a|` for recommendation ``r`` and active value ``a``;
    only parameters with a tolerance in the policy are considered. Proposed values are rounded
    to ``decimals`` places towards the active value (committees vote on readable numbers).
    """
    active_paths = active.paths()
    drifted, changes = [], {}
    for path in sorted(recommended):
        tolerance = policy.tolerance_for(path)
        current = active_paths.get(path)
        if tolerance is None or not isinstance(current, int | float) or isinstance(current, bool):
            continue
        target = float(recommended[path])
        drift = abs(target - current) / abs(current) if current else math.inf
        if drift <= tolerance:
            continue
        value, notes = _clip(path, float(current), target, policy)
        value = _round_towards(value, float(current), decimals)
        entry = {
            "path": path,
            "active": current,
            "recommended": target,
            "drift": drift,
            "tolerance": tolerance,
            "proposed": value,
            "notes": notes,
        }
        drifted.append(entry)
        if value != current:
            changes[path] = value
    evidence = {
        "calibration_id": calibration_id,
        "as_of": as_of.isoformat(),
        "active_set": active.fingerprint,
        "drifted": drifted,
    }
    if not drifted:
        return TriggerFinding(
            "drift",
            False,
            f"no recommendation of {calibration_id} drifted beyond tolerance",
            evidence=evidence,
        )
    summary = f"{len(drifted)} recommendation(s) of {calibration_id} drifted beyond tolerance"
    if not changes:
        return TriggerFinding(
            "drift", True, summary + "; the policy allows no step towards them", evidence=evidence
        )
    lines = [
        f"- {d['path']}: active {d['active']:g}, recommended {d['recommended']:.4g} "
        f"(drift {d['drift']:.0%} > {d['tolerance']:.0%}); proposed {d['proposed']:g}"
        + (f" — {'; '.join(cast(list[str], d['notes']))}" if d["notes"] else "")
        for d in drifted
    ]
    document = ProposalDocument(
        title=f"Recalibrate {len(changes)} parameter(s) from calibration {as_of}",
        author=TRIGGER_AUTHOR,
        motivation=f"{summary}.\n"
        + "\n".join(lines)
        + "\nDrafted automatically; the committee decides.",
        kind="change",
        changes=changes,
        evidence=Evidence(backtest_windows=tuple(backtest_windows), attachments=evidence),
    )
    return TriggerFinding("drift", True, summary, document, evidence)
