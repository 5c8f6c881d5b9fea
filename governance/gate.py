"""The committee's rule on a backtested proposal, as pure functions over the report's rows.

One rule serves both places that judge a proposal: the verdict the report states
(:func:`judge`) and the enactment gate that may block it (:func:`enactment_gate`); both call
:func:`coverage_worse`. The rows are the report's coverage rows — per (portfolio, model,
currency), each set's zone (the stricter of close-to-close and OHLC-path losses), breaches,
mean margin and expected-shortfall test — and the totals per set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from backtesting.records import PairCoverage, SetCoverage, SetTotals
from vocabulary import Zone

__all__ = [
    "Gate",
    "Judgement",
    "bad_debt_worse",
    "coverage_worse",
    "enactment_gate",
    "judge",
]


def coverage_worse(current: SetCoverage | None, proposed: SetCoverage | None) -> bool:
    """Whether the proposed set's coverage of one (portfolio, model) is worse.

    Worse is a worse zone (the stricter of close and path), more breaches where the current
    set is already red, or an expected-shortfall test that rejects the proposed set and not
    the current one. A pair that cannot be tested (no loss variation) is never worse.
    """
    if current is None or proposed is None:
        return False
    before, after = current.zone, proposed.zone
    if Zone.NOT_TESTABLE in (before, after):
        return False
    if after.rank != before.rank:
        return after.rank > before.rank
    if after is Zone.RED and proposed.breaches > current.breaches:
        return True
    rejected_now = bool(current.es and current.es.rejected)
    rejected_then = bool(proposed.es and proposed.es.rejected)
    return rejected_then and not rejected_now


@dataclass(frozen=True)
class Judgement:
    """What the report tells the committee: the verdict, its reasons, the pairs made worse."""

    verdict: str
    reasons: tuple[str, ...]
    worse: tuple[PairCoverage, ...]


def judge(
    coverage: Sequence[PairCoverage], current: SetTotals, proposed: SetTotals, freed: float | None
) -> Judgement:
    """The verdict on a proposal from its coverage rows and each set's totals.

    "do not approve" when any pair's coverage gets worse; "approve with care" when breaches
    rise well above both the current set's and the expected count (more than 1.25 times the
    larger, plus 2), or when pairs are red under both sets; "approve" otherwise. ``freed`` is
    the mean margin freed (positive) or added over the test portfolios, in USD.
    """
    worse = tuple(
        r for r in coverage if coverage_worse(r.sets.get("current"), r.sets.get("proposed"))
    )
    reasons = []
    if worse:
        names = ", ".join(f"{r.portfolio} ({r.model})" for r in worse[:5])
        reasons.append(
            f"coverage gets worse for {len(worse)} portfolio/model pair(s) — a worse traffic-light "
            f"zone, or more breaches in the red: {names}"
        )
        verdict = "do not approve"
    elif proposed.breaches > max(current.breaches, proposed.expected or 0) * 1.25 + 2:
        reasons.append(
            f"breaches rise from {current.breaches} to {proposed.breaches} "
            f"against {proposed.expected or 0:.1f} expected"
        )
        verdict = "approve with care"
    else:
        verdict = "approve with care" if proposed.red else "approve"
        reasons.append(
            f"coverage holds: worst zone {proposed.worst_zone} (current {current.worst_zone}), "
            f"{proposed.breaches} breaches against {current.breaches} under the current set"
        )
        if proposed.red:
            reasons.append(
                f"{proposed.red} portfolio/model pair(s) are red under both sets: the change does not "
                "cause it, but does not cure it either"
            )
    if freed is not None:
        reasons.append(
            f"{'frees' if freed >= 0 else 'adds'} ${abs(freed):,.0f} of margin on average over the test portfolios"
        )
    return Judgement(verdict, tuple(reasons), worse)


@dataclass(frozen=True)
class Gate:
    """Whether a proposal may be enacted, and why not."""

    passed: bool
    reasons: tuple[str, ...]
    red_where_changed: tuple[str, ...]
    worse: tuple[str, ...]
    bad_debt_worse: tuple[str, ...] = ()


#: Bad debt within this of the current set's is not "worse" (USD): the cascades are
#: deterministic, so only rounding separates equal figures.
BAD_DEBT_TOLERANCE_USD = 1.0


def bad_debt_worse(bad_debt: Mapping[str, Any]) -> tuple[str, ...]:
    """Where the proposed set leaves more bad debt than the current one: each stress window's
    cascade (``rows``: ``bad_debt_usd`` = [current, proposed]) and each asset's 99 % bad-debt VaR
    over simulated paths (``risk``: ``var_99`` = [current, proposed]); more by over
    :data:`BAD_DEBT_TOLERANCE_USD`.
    """
    worse = []
    for row in bad_debt.get("rows", ()):
        current, proposed = row["bad_debt_usd"]
        if proposed > current + BAD_DEBT_TOLERANCE_USD:
            worse.append(
                f"{row['window']} {row['asset']}: bad debt {current:,.0f} → {proposed:,.0f} USD"
            )
    for row in bad_debt.get("risk", ()):
        current, proposed = row["var_99"]
        if proposed > current + BAD_DEBT_TOLERANCE_USD:
            worse.append(
                f"{row['asset']} paths: bad-debt VaR 99 % {current:,.0f} → {proposed:,.0f} USD"
            )
    return tuple(worse)


def enactment_gate(coverage: Sequence[PairCoverage], more_bad_debt: Sequence[str] = ()) -> Gate:
    """Whether the proposed set may be enacted, from the report's coverage rows.

    Blocks when the proposed set is in the red zone for a portfolio and model whose margin the
    change moves (a red light the change owns), or when a pair's coverage gets worse
    (:func:`coverage_worse`). Pairs red under both sets and untouched by the change are the
    current set's problem and are reported, not blocking; pairs without loss variation cannot
    be judged. ``more_bad_debt`` (:func:`bad_debt_worse`, passed where the policy's
    ``gate.bad_debt_not_worse`` asks for it) blocks too.
    """
    red, worse = [], []
    for row in coverage:
        current, proposed = row.sets.get("current"), row.sets.get("proposed")
        if current is None or proposed is None:
            continue
        moved = proposed.mean_margin_usd != current.mean_margin_usd
        if proposed.zone is Zone.RED and moved:
            red.append(f"{row.name}: red with {proposed.breaches} breaches")
        if coverage_worse(current, proposed):
            worse.append(
                f"{row.name}: {current.zone.value} → {proposed.zone.value}, "
                f"{current.breaches} → {proposed.breaches} breaches"
            )
    reasons = []
    if more_bad_debt:
        reasons.append(
            f"the policy requires bad debt not to get worse; it does in {len(more_bad_debt)} "
            "case(s)"
        )
    if red:
        reasons.append(f"{len(red)} pair(s) the change moves are red under the proposed set")
    if worse:
        reasons.append(f"{len(worse)} pair(s) get worse coverage")
    return Gate(
        not red and not worse and not more_bad_debt,
        tuple(reasons),
        tuple(red),
        tuple(worse),
        tuple(more_bad_debt),
    )
