"""``mwb run``: the Dagster jobs from the command line, in-process (what the schedule and the
sensors launch in ``dagster dev``)."""

from __future__ import annotations

import typer

from pipelines.cli.market import JSON_HELP, parse_day, settings_from
from pipelines.cli.output import err, out, print_json
from pipelines.errors import BadInputError

run_app = typer.Typer(help="Run the jobs: daily calibration, a proposal's backtest, enactment.")


def _resources(ctx: typer.Context):
    from pipelines.defs.resources import build_resources

    settings = settings_from(ctx)
    return build_resources(home=str(settings.home), config_file=str(settings.config_file or ""))


def _known_proposal(ctx: typer.Context, ref: str) -> None:
    """Check a proposal reference before a job starts: a file must read as a proposal, an id
    must name one; bad input is then one line and exit 2, not a failed run's step stack."""
    from pathlib import Path

    from governance.proposals import PROPOSAL_SUFFIXES, ProposalError, load_proposal
    from governance.registry import GovernanceError, Registry
    from pipelines.warehouse import connect

    if Path(ref).suffix.lower() in PROPOSAL_SUFFIXES:
        try:
            load_proposal(ref)
        except ProposalError as exc:
            raise BadInputError(str(exc)) from None
        return
    con = connect(settings_from(ctx).warehouse_path)
    try:
        Registry(con).resolve(ref)
    except GovernanceError as exc:
        raise BadInputError(str(exc)) from None
    finally:
        con.close()


def _finish(result, what: str, as_json: bool, extra: dict) -> None:
    from pipelines.runs import check_outcomes, failures

    problems = failures(result)
    bad_input = [p for p in problems if "BadInputError: " in p or "GovernanceError: " in p]
    if not result.success and bad_input and not as_json:
        # input the job could not use: one line and exit 2, as every command does
        raise BadInputError(bad_input[0].split("Error: ", 1)[1])
    if as_json:
        print_json(
            {
                "job": what,
                "success": result.success,
                "run_id": result.run_id,
                "failures": problems,
                "checks": check_outcomes(result),
                **extra,
            }
        )
    else:
        out.print(f"{what}: {'succeeded' if result.success else 'FAILED'} (run {result.run_id})")
        for key, value in extra.items():
            out.print(f"  {key}: {value}", markup=False)
        for line in problems:
            err.print(f"  {line}", markup=False)
    if not result.success:
        raise typer.Exit(1)


def _materialized(result, node: str, field: str) -> list:
    found = []
    for event in result.get_asset_materialization_events():
        metadata = event.materialization.metadata
        if event.step_key == node and field in metadata:
            found.append(metadata[field].value)
    return found


@run_app.command("daily")
def daily(
    ctx: typer.Context,
    day: str = typer.Option("", "--day", help="Market day to ingest (default: yesterday UTC)."),
    as_of: str = typer.Option("", "--as-of", help="Calibrate as of (default: latest common day)."),
    no_draft_reports: bool = typer.Option(
        False, "--no-draft-reports", help="Draft proposals but do not backtest or report them."
    ),
    processes: int = typer.Option(
        1, "--processes", min=1, help="Run steps in this many processes (fits in parallel)."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """daily_calibration: ingest → fit → recommend → backtest → draft → report."""
    import os

    parse_day(day or None, "--day")  # before the definitions load: bad input fails fast
    parse_day(as_of or None, "--as-of")
    from pipelines.defs.workflows.jobs import daily_run
    from pipelines.runs import run_job
    from pipelines.workflows import daily_day

    resources = _resources(ctx)
    if processes > 1:  # the step processes read their settings from the environment
        settings = settings_from(ctx)
        os.environ["MWB_HOME"] = str(settings.home)
        if settings.config_file:
            os.environ["MWB_CONFIG"] = str(settings.config_file)
    settings = settings_from(ctx)
    partition, config = daily_run(
        daily_day(day),
        list(settings.market.assets),
        as_of=as_of,
        draft_reports=not no_draft_reports,
    )
    result = run_job(
        "daily_calibration", resources, config, processes=processes, partition_key=partition
    )
    reports = _materialized(result, "rpt__calibration_report", "html")
    for found in _materialized(result, "rpt__draft_reports", "html"):
        reports.extend(found)
    _finish(result, "daily_calibration", as_json, {"reports": reports})


@run_app.command("backtest")
def backtest(
    ctx: typer.Context,
    proposal: str = typer.Argument(..., help="A proposal id, or a proposal YAML to submit."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """backtest_proposal: backtest current vs proposed and write the report."""
    _known_proposal(ctx, proposal)  # before the definitions load: bad input fails fast
    from pipelines.defs.workflows.jobs import proposal_config
    from pipelines.runs import run_job

    result = run_job("backtest_proposal", _resources(ctx), proposal_config(proposal))
    html = _materialized(result, "rpt__proposal_report", "html")
    verdict = _materialized(result, "rpt__proposal_report", "verdict")
    _finish(
        result,
        "backtest_proposal",
        as_json,
        {"report": html[0] if html else None, "verdict": verdict[0] if verdict else None},
    )


@run_app.command("enact")
def enact(
    ctx: typer.Context,
    proposal: str = typer.Argument(..., help="The approved proposal's id."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """enact_proposal: audit log verified, backtest, report; enacted only if both pass."""
    _known_proposal(ctx, proposal)  # before the definitions load: bad input fails fast
    from pipelines.defs.workflows.jobs import proposal_config
    from pipelines.runs import run_job

    result = run_job("enact_proposal", _resources(ctx), proposal_config(proposal, enact=True))
    enacted = _materialized(result, "gov__enacted_parameters", "parameter_set")
    _finish(result, "enact_proposal", as_json, {"enacted_set": enacted[0] if enacted else None})


@run_app.command("backfill")
def backfill(
    ctx: typer.Context,
    start: str = typer.Option(..., "--from", help="First market day (YYYY-MM-DD)."),
    end: str = typer.Option(..., "--to", help="Last market day (YYYY-MM-DD)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Load the market-data partitions of a day range in one run (a single-run backfill)."""
    from pipelines.runs import materialize_group

    if parse_day(end, "--to") < parse_day(start, "--from"):
        raise BadInputError(f"--to {end} is before --from {start}")
    result = materialize_group("market_data", _resources(ctx), partition_range=(start, end))
    partitions = {
        (e.asset_key.to_user_string(), e.partition)
        for e in result.get_asset_materialization_events()
    }
    _finish(
        result,
        f"market_data backfill {start}...{end}",
        as_json,
        {"partitions_materialized": len(partitions)},
    )
