"""Command tree of ``mwb``."""

from __future__ import annotations

from pathlib import Path

import typer

from pipelines.cli import (
    backtest,
    calibration,
    cascade,
    explain,
    governance,
    margin,
    market,
    report,
    run,
    sweep,
    venues,
)

app = typer.Typer(
    name="mwb",
    help="Margin Workbench: calibrate, backtest and govern portfolio-margin parameters.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _global(
    ctx: typer.Context,
    home: Path | None = typer.Option(
        None, "--home", envvar="MWB_HOME", help="Workbench home (warehouse, datasets, reports)."
    ),
    config: Path | None = typer.Option(
        None, "--config", envvar="MWB_CONFIG", help="Config YAML (default: HOME/config.yaml)."
    ),
) -> None:
    ctx.obj = {"home": home, "config": config}


app.command("ingest")(market.ingest)
app.command("status")(market.status)
app.command("demo")(market.demo)
app.command("sql")(market.sql)
app.command("calibrate")(calibration.calibrate)
app.command("margin")(margin.margin)
app.command("backtest")(backtest.backtest)
app.command("sweep")(sweep.sweep)
app.command("replicate")(venues.replicate)
app.command("cascade")(cascade.cascade)
app.command("explain")(explain.explain)
app.command("report")(report.report)
app.command("site")(report.site)
app.add_typer(run.run_app, name="run")
app.add_typer(market.datasets_app, name="datasets")
app.add_typer(governance.params_app, name="params")
app.add_typer(governance.policy_app, name="policy")
app.command("propose")(governance.propose)
app.command("proposals")(governance.proposals)
app.command("keygen")(governance.keygen)
app.command("sign")(governance.sign_command)
app.command("approve")(governance.approve)
app.command("reject")(governance.reject)
app.command("enact")(governance.enact_command)
app.command("payload")(governance.payload_command)
app.add_typer(governance.audit_app, name="audit")
app.add_typer(governance.shadow_app, name="shadow")
app.command("triggers")(governance.triggers)
