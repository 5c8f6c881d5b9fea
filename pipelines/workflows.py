"""The steps the jobs chain (``pipelines/defs/workflows``), as plain functions over a warehouse
connection so that the Dagster ops and assets stay thin and the steps can be tested alone.

- :func:`resolve_proposal` — a proposal id, or a YAML file that is submitted if it is new;
- :func:`backtest_proposal` — the current and the proposed set on identical inputs, over the
  window the report uses (cached, so the report that follows recomputes nothing);
- :func:`enactment_gate` — what must hold before a proposal may be enacted: no red traffic
  light where the change has effect and no coverage made worse;
- :func:`daily_day` — which market day a daily run ingests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb

from governance.proposals import ProposalError, load_proposal
from governance.registry import Registry
from governance.workflow import Refusal, Status
from pipelines.backtest import BacktestRun, ParamSource, run_backtest
from pipelines.errors import BadInputError
from pipelines.report import proposal_window
from pipelines.settings import WorkbenchSettings
from reports.context import coverage_worse

PROPOSAL_SUFFIXES = (".yaml", ".yml", ".json")


def resolve_proposal(
    con: duckdb.DuckDBPyConnection, ref: str, *, actor: str, now: datetime | None = None
) -> str:
    """The proposal id ``ref`` names: an id (or fingerprint prefix) in the registry, or a
    proposal file — submitted now unless the same document against the same sets is already
    recorded (a file is submitted once however often it is backtested)."""
    registry = Registry(con)
    path = Path(ref)
    if path.suffix.lower() not in PROPOSAL_SUFFIXES:
        return registry.resolve(ref)
    try:
        document = load_proposal(path)
    except ProposalError as exc:
        raise BadInputError(str(exc)) from exc
    when = now or datetime.now(UTC)
    try:
        proposal_id = registry.prepare(document, actor=actor, now=when).id
    except Refusal:
        proposal_id = None  # submit refuses it again, and records the refusal in the audit log
    if proposal_id is not None and registry.recorded_status(proposal_id) not in (
        None,
        Status.DRAFT,
    ):
        return proposal_id
    return registry.submit(document, actor=actor, now=when).id


def backtest_proposal(
    con: duckdb.DuckDBPyConnection, settings: WorkbenchSettings, proposal_id: str
) -> BacktestRun:
    """Current vs proposed over the report's window (three years, widened to the evidence)."""
    registry = Registry(con)
    state = registry.state(proposal_id)
    proposal = state.proposal
    spec = proposal_window(con, proposal.document.evidence.model_dump(mode="json"))
    base = registry.parameter_set(proposal.base_fingerprint)
    return run_backtest(
        con,
        settings,
        [ParamSource("current", base), ParamSource("proposed", proposal.proposed)],
        spec,
    )


@dataclass(frozen=True)
class Gate:
    passed: bool
    reasons: tuple[str, ...]
    red_where_changed: tuple[str, ...]
    worse: tuple[str, ...]


def enactment_gate(coverage: list[dict]) -> Gate:
    """Whether the proposed set may be enacted, from the report's coverage rows.

    Blocks when the proposed set is in the red zone for a portfolio and model whose margin the
    change moves (a red light the change owns), or when a pair's coverage gets worse
    (:func:`reports.context.coverage_worse`: a worse zone — the stricter of close-to-close and
    OHLC-path losses —, more breaches in the red, or an expected-shortfall test newly
    rejecting). Pairs red under both sets and untouched by the change are the current set's
    problem and are reported, not blocking; pairs without loss variation cannot be judged.
    """
    red, worse = [], []
    for row in coverage:
        current, proposed = row["sets"].get("current"), row["sets"].get("proposed")
        if not current or not proposed:
            continue
        name = f"{row['portfolio']} ({row['model']}, {row['currency']})"
        moved = proposed["mean_margin_usd"] != current["mean_margin_usd"]
        if proposed["zone"] == "red" and moved:
            red.append(f"{name}: red with {proposed['breaches']} breaches")
        if coverage_worse(current, proposed):
            worse.append(
                f"{name}: {current['zone']} → {proposed['zone']}, "
                f"{current['breaches']} → {proposed['breaches']} breaches"
            )
    reasons = []
    if red:
        reasons.append(f"{len(red)} pair(s) the change moves are red under the proposed set")
    if worse:
        reasons.append(f"{len(worse)} pair(s) get worse coverage")
    return Gate(not red and not worse, tuple(reasons), tuple(red), tuple(worse))


def daily_day(requested: str = "", *, today: date | None = None) -> date:
    """The market day a daily run ingests: ``requested`` (YYYY-MM-DD) or yesterday (UTC)."""
    if requested:
        try:
            return date.fromisoformat(requested)
        except ValueError as exc:
            raise BadInputError(f"day: {requested!r} is not a date (YYYY-MM-DD)") from exc
    return (today or datetime.now(UTC).date()) - timedelta(days=1)
