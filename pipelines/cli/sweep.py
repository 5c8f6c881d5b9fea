"""``mwb sweep``: one parameter over a range of values, each backtested on identical inputs."""

from __future__ import annotations

from pathlib import Path

import typer

from pipelines.cli.backtest import SET_HELP
from pipelines.cli.market import JSON_HELP, parse_day, settings_from
from pipelines.cli.output import out, print_json, table
from pipelines.errors import BadInputError


def sweep(
    ctx: typer.Context,
    param: str = typer.Option(
        ..., "--param", help="The parameter's path, e.g. underlyings.ETH.pm.price_range."
    ),
    values: str = typer.Option(
        ..., "--values", help="START:STOP:STEP (both ends included) or a,b,c."
    ),
    model: str = typer.Option(
        "deribit-pm",
        "--model",
        help="standard | span | deribit-pm | var | es | mc-var | mc-es (a history model reads "
        "the rolling volatility a backtest fits, fitted once for every value).",
    ),
    portfolios: list[str] = typer.Option(
        [], "--portfolio", help="A portfolio or group (repeatable; default books)."
    ),
    start: str | None = typer.Option(None, "--from", help="First day."),
    end: str | None = typer.Option(None, "--to", help="Last day."),
    params: str = typer.Option("active", "--params", help=SET_HELP),
    chart: Path | None = typer.Option(
        None, "--chart", help="Write the frontier chart here (.svg or .png)."
    ),
    seed: int = typer.Option(
        0, "--seed", help="Seed of the coverage tests' null and of Monte Carlo margin paths."
    ),
    paths: int = typer.Option(
        2000, "--paths", help="Monte Carlo margin paths a day (mc-var, mc-es).", min=100
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Backtest every value of --param on identical inputs: breaches, zone, test p-values,
    mean and peak capital and capital against the set in force, and the frontier's knee. The
    values run as tasks on the `compute` settings' Dask cluster."""
    from backtesting.spec import BacktestSpec
    from backtesting.sweep import sweep_values

    try:
        chosen = sweep_values(values)
    except ValueError as exc:
        raise BadInputError(f"--values: {exc}") from None
    if chart is not None and chart.suffix.lower() not in (".svg", ".png"):
        raise BadInputError(f"--chart: {chart}: give a .svg or .png file")
    if chart is not None and chart.is_dir():
        raise BadInputError(f"--chart: {chart} is a folder")
    from pipelines.backtest import backtest_spec, resolve_source
    from pipelines.compute import dask_client, dask_mapper
    from pipelines.sweep import run_sweep
    from pipelines.warehouse import connect

    settings = settings_from(ctx)
    spec = backtest_spec(
        start=parse_day(start, "--from"),
        end=parse_day(end, "--to"),
        models=(model,) if model != "standard" else BacktestSpec.models,
        portfolios=tuple(portfolios) or ("books",),
        seed=seed,
        paths=paths,
    )
    if not settings.warehouse_path.exists():
        raise BadInputError(f"{settings.warehouse_path}: no warehouse yet; run `mwb demo` first")
    con = connect(settings.warehouse_path)
    try:
        current = resolve_source(con, params, "current").params
        with dask_client(settings.compute) as client:
            run = run_sweep(
                con, settings, current, param, chosen, spec, model=model, mapper=dask_mapper(client)
            )
    finally:
        con.close()
    payload = run.payload()
    if chart is not None:
        from pipelines.sweep import write_frontier

        write_frontier(payload, chart)
        payload["chart"] = str(chart)
    if as_json:
        print_json(payload)
        return
    out.print(
        f"sweep {param} over {len(chosen)} values · model {model} · "
        f"{payload['days']['from']} .. {payload['days']['to']} · data {run.data_sha[:12]}"
    )
    rows = [
        (
            f"{p['value']:g}" + (" (current)" if p["value"] == run.current_value else ""),
            p["breaches"],
            p["zone"],
            "-" if p["min_pvalue"] is None else f"{p['min_pvalue']:.3g}",
            f"{p['mean_capital_usd']:,.0f}",
            f"{p['peak_capital_usd']:,.0f}",
            "-" if p["capital_vs_active"] is None else f"{p['capital_vs_active']:.3f}",
        )
        for p in payload["points"]
    ]
    out.print(
        table(
            None,
            ["value", "breaches", "zone", "min p", "mean capital $", "peak capital $", "vs active"],
            rows,
        )
    )
    if run.knee is not None:
        out.print(f"knee of the frontier: {run.knee:g}")
    if chart is not None:
        out.print(f"chart: {chart}")
