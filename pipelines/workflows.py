"""The steps the jobs chain (``pipelines/defs/workflows``), as plain functions over a warehouse
connection so that the Dagster ops and assets stay thin and the steps can be tested alone.

- :func:`submit_proposal` — the explicit submission step: a proposal file is submitted (once),
  an id is checked to name a recorded proposal;
- :func:`find_proposal` — the recorded proposal a reference names, submitting nothing;
- :func:`backtest_proposal` — the current and the proposed set on identical inputs, over the
  window the report uses (cached, so the report that follows recomputes nothing);
- :func:`daily_day` — which market day a daily run ingests.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from governance.proposals import PROPOSAL_SUFFIXES, ProposalError, load_proposal
from governance.registry import Registry
from governance.workflow import Refusal, Status
from pipelines.backtest import BacktestRun, ParamSource, run_backtest
from pipelines.errors import BadInputError
from pipelines.report import proposal_window
from pipelines.settings import WorkbenchSettings

if TYPE_CHECKING:
    import duckdb


def find_proposal(con: duckdb.DuckDBPyConnection, ref: str, *, actor: str) -> str:
    """The recorded proposal ``ref`` names — an id, a fingerprint prefix, or a proposal file
    whose document (against the set in force) is recorded. Submits nothing: a file that was
    never submitted is refused, naming the step that submits it."""
    registry = Registry(con)
    path = Path(ref)
    if path.suffix.lower() not in PROPOSAL_SUFFIXES:
        return registry.resolve(ref)
    try:
        document = load_proposal(path)
        proposal_id = registry.prepare(document, actor=actor, now=datetime.now(UTC)).id
    except ProposalError as exc:
        raise BadInputError(str(exc)) from exc
    except Refusal as refusal:
        raise BadInputError(f"{path}: {refusal}") from None
    if registry.recorded_status(proposal_id) in (None, Status.DRAFT):
        raise BadInputError(
            f"{path}: not submitted yet (mwb propose {path}, or the gov/submitted_proposal step)"
        )
    return proposal_id


def submit_proposal(
    con: duckdb.DuckDBPyConnection, ref: str, *, actor: str, now: datetime | None = None
) -> str:
    """The explicit submission step. A proposal file is submitted unless the same document
    against the same sets is already recorded (a file is submitted once however often it is
    backtested); an id (or fingerprint prefix) must name a recorded proposal."""
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


def daily_day(requested: str = "", *, today: date | None = None) -> date:
    """The market day a daily run ingests: ``requested`` (YYYY-MM-DD) or yesterday (UTC)."""
    if requested:
        try:
            return date.fromisoformat(requested)
        except ValueError as exc:
            raise BadInputError(f"day: {requested!r} is not a date (YYYY-MM-DD)") from exc
    return (today or datetime.now(UTC).date()) - timedelta(days=1)
