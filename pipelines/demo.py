"""`mwb demo`: the whole pipeline on the bundled synthetic market.

Today it materializes the market-data assets (with their checks) from the synthetic market
into the warehouse and summarises what landed; the calibration, governance, backtest and
report stages join as they are built.
"""

from __future__ import annotations

from rich.console import Console

from pipelines.defs.resources import build_resources
from pipelines.runs import check_outcomes, materialize_group
from pipelines.settings import WorkbenchSettings
from pipelines.warehouse import connect
from pipelines.warehouse.quality import series_summary


def run_demo(settings: WorkbenchSettings, seed: int, console: Console | None) -> dict:
    say = console.print if console is not None else (lambda *a, **k: None)
    say(f"[bold]Margin Workbench demo[/bold] — synthetic market, seed {seed}")
    say(f"warehouse: {settings.warehouse_path}")
    resources = build_resources(
        home=str(settings.home),
        config_file=str(settings.config_file or ""),
        synthetic_only=True,
        synthetic_seed=seed,
    )
    status = console.status("materializing market data …") if console else _Quiet()
    with status:
        result = materialize_group("market_data", resources)
    checks = check_outcomes(result)
    con = connect(settings.warehouse_path)
    try:
        summary = series_summary(con)
    finally:
        con.close()
    if console is not None:
        from pipelines.cli.output import table

        say(
            table(
                "stored series",
                ["series", "asset", "source", "first", "last", "rows"],
                summary[["series", "asset", "source", "first", "last", "rows"]].itertuples(
                    index=False
                ),
            )
        )
        say(
            table(
                "asset checks",
                ["asset", "check", "result", "findings"],
                [
                    (
                        c["asset"],
                        c["check"],
                        "passed" if c["passed"] else f"flagged ({c['severity']})",
                        c["findings"],
                    )
                    for c in checks
                ],
            )
        )
        say('query it: mwb sql "SELECT asset, count(*) FROM market.prices GROUP BY asset"')
    return {
        "success": result.success,
        "warehouse": str(settings.warehouse_path),
        "series": summary.astype(object).where(summary.notna(), None).to_dict("records"),
        "checks": checks,
    }


class _Quiet:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
