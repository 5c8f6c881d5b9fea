"""``mwb report``: the proposal report, the calibration report or a backtest report."""

from __future__ import annotations

from pathlib import Path

import typer

from pipelines.cli.market import JSON_HELP, settings_from
from pipelines.cli.output import out, print_json
from pipelines.errors import BadInputError
from pipelines.files import output_folder


def report(
    ctx: typer.Context,
    proposal_id: str | None = typer.Argument(
        None, help="The proposal (P-… or a fingerprint prefix)."
    ),
    calibration: bool = typer.Option(
        False, "--calibration", help="The latest calibration's report instead."
    ),
    backtest: str | None = typer.Option(
        None, "--backtest", help="A backtest run's report instead (bt-…)."
    ),
    out_dir: Path | None = typer.Option(
        None, "--out", help="Folder to write into (default: HOME/reports/ID)."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Write report.html (self-contained), report.md (for a governance forum), payload.json (every
    figure) and the chart PNGs; print their paths."""
    chosen = [x for x in (proposal_id, calibration or None, backtest) if x]
    if len(chosen) != 1:
        raise BadInputError("give exactly one of PROPOSAL_ID, --calibration and --backtest RUN_ID")
    settings = settings_from(ctx)
    if out_dir is not None:
        output_folder(out_dir)  # before any work: an unwritable --out is one line, at once
    # after the checks above: the report modules bring the numeric packages and matplotlib
    from governance.registry import GovernanceError
    from pipelines.report import backtest_report, calibration_report, proposal_report
    from pipelines.warehouse import connect

    con = connect(settings.warehouse_path)
    try:
        if calibration:
            written = calibration_report(con, settings, out_dir)
        elif backtest:
            written = backtest_report(con, settings, backtest, out_dir)
        else:
            written = proposal_report(con, settings, proposal_id, out_dir)
    except GovernanceError as exc:
        raise BadInputError(str(exc)) from exc
    finally:
        con.close()
    paths = {name: str(path) for name, path in written.paths.items()}
    if as_json:
        print_json(
            {
                "kind": written.context.kind,
                "id": written.context.id,
                "files": paths,
                "sha256": written.rendered.fingerprints(),
            }
        )
        return
    out.print(
        f"{written.context.kind} report {written.context.id}: {written.context.title}", markup=False
    )
    for name in ("html", "markdown", "payload"):
        out.print(f"  {name}: {paths[name]}", markup=False)
    charts = [p for k, p in paths.items() if k not in ("html", "markdown", "payload")]
    out.print(f"  charts: {len(charts)} PNG(s) in {Path(paths['html']).parent}", markup=False)


def site(
    ctx: typer.Context,
    out_dir: Path | None = typer.Option(
        None, "--out", help="Folder for the site (default HOME/site)."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Render the committee portal: a static, self-contained site of the proposals (status,
    votes, quorum, reports, shadow reports), the calibration history and the audit head."""
    from pipelines.site import build_site
    from pipelines.warehouse import connect

    settings = settings_from(ctx)
    if not settings.warehouse_path.exists():
        raise BadInputError(f"{settings.warehouse_path}: no warehouse; run mwb demo or ingest")
    con = connect(settings.warehouse_path, read_only=True)
    try:
        payload = build_site(con, settings, out_dir or settings.home / "site")
    finally:
        con.close()
    if as_json:
        print_json(payload)
        return
    out.print(
        f"site: {Path(payload['out']) / 'index.html'} ({len(payload['pages'])} pages, "
        f"{len(payload['proposals'])} proposal(s))",
        markup=False,
    )
