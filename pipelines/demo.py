"""`mwb demo`: the whole pipeline on the bundled synthetic market.

Stages run through the Dagster definitions in-process, in order: market data (with its
checks), volatility fits (one run per underlying partition), then correlation, IV dynamics
and recommendations. Each stage reports what it produced; later stages (governance,
backtests, reports) join as they are built.
"""

from __future__ import annotations

import dagster as dg
from rich.console import Console

from pipelines.defs.resources import build_resources
from pipelines.runs import check_outcomes, materialize, materialize_group
from pipelines.settings import WorkbenchSettings
from pipelines.warehouse import connect
from pipelines.warehouse.quality import series_summary

FITS = dg.AssetKey(["calib", "volatility_fits"])
CALIBRATION_REST = dg.AssetSelection.assets(
    dg.AssetKey(["calib", "correlations"]),
    dg.AssetKey(["calib", "iv_dynamics"]),
    dg.AssetKey(["calib", "recommendations"]),
)


class _Quiet:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def run_demo(settings: WorkbenchSettings, seed: int, console: Console | None) -> dict:
    say = console.print if console is not None else (lambda *a, **k: None)

    def stage(text: str):
        return console.status(text) if console is not None else _Quiet()

    say(f"[bold]Margin Workbench demo[/bold] — synthetic market, seed {seed}")
    say(f"warehouse: {settings.warehouse_path}")
    resources = build_resources(
        home=str(settings.home),
        config_file=str(settings.config_file or ""),
        synthetic_only=True,
        synthetic_seed=seed,
    )
    results = []
    with stage("1/3 loading the synthetic market and checking it …"):
        results.append(materialize_group("market_data", resources))
    say("1/3 market data loaded and checked")
    with stage("2/3 fitting volatility models per underlying …"):
        for asset in settings.market.assets:
            results.append(
                materialize(dg.AssetSelection.assets(FITS), resources, partition_key=asset)
            )
    say(f"2/3 volatility models fitted for {', '.join(settings.market.assets)}")
    with stage("3/3 correlation, IV dynamics and recommended parameters …"):
        results.append(materialize(CALIBRATION_REST, resources))
    say("3/3 parameters recommended")
    checks = [c for r in results for c in check_outcomes(r)]
    con = connect(settings.warehouse_path)
    try:
        summary = series_summary(con)
        calibration_id, models, recommendations = _calibration_summary(con)
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
                "chosen volatility models",
                ["asset", "model", "persistence", "next-day vol"],
                models,
            )
        )
        say(
            table(
                f"recommended parameters ({calibration_id})",
                ["parameter", "value"],
                [(p, f"{v:.4f}") for p, v in recommendations],
            )
        )
        flagged = [c for c in checks if not c["passed"]]
        say(f"asset checks: {len(checks) - len(flagged)} passed, {len(flagged)} flagged")
        for c in flagged:
            say(
                f"  flagged ({c['severity']}): {c['asset']} {c['check']} — {c['findings']} finding(s)"
            )
        say('query it: mwb sql "SELECT * FROM calib.recommendations LIMIT 5"')
    return {
        "success": all(r.success for r in results),
        "warehouse": str(settings.warehouse_path),
        "calibration_id": calibration_id,
        "series": summary.astype(object).where(summary.notna(), None).to_dict("records"),
        "models": [
            {"asset": a, "model": m, "persistence": p, "next_vol_annual": v}
            for a, m, p, v in models
        ],
        "recommendations": dict(recommendations),
        "checks": checks,
    }


def _calibration_summary(con) -> tuple[str | None, list, list]:
    row = con.execute(
        "SELECT calibration_id FROM calib.runs ORDER BY updated_at DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None, [], []
    calibration_id = row[0]
    models = con.execute(
        "SELECT asset, model, round(persistence, 4), round(next_vol_annual, 3) FROM calib.fits "
        "WHERE calibration_id = ? AND chosen ORDER BY asset",
        [calibration_id],
    ).fetchall()
    recommendations = con.execute(
        "SELECT parameter, value FROM calib.recommendations WHERE calibration_id = ? ORDER BY parameter",
        [calibration_id],
    ).fetchall()
    return calibration_id, models, recommendations
