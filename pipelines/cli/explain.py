"""``mwb explain``: each position's contribution to its account's margin, and the day-on-day
change split into market, positions and parameters."""

from __future__ import annotations

from pathlib import Path

import typer

from pipelines.cli.calibration import _as_of
from pipelines.cli.market import JSON_HELP, parse_day, settings_from
from pipelines.cli.output import err, out, print_json, table
from pipelines.errors import BadInputError


def explain(
    ctx: typer.Context,
    positions: Path = typer.Option(..., "--positions", help="CSV: account,instrument,quantity."),
    market: Path | None = typer.Option(
        None, "--market", help="Deribit option-chain CSV or market JSON."
    ),
    as_of: str | None = typer.Option(
        None, "--as-of", help="A day: the market from the warehouse at its end."
    ),
    model: str = typer.Option("deribit-pm", "--model", help="The margin model."),
    params: str | None = typer.Option(None, "--params", help="The set (default: in force)."),
    vs: str | None = typer.Option(None, "--vs", help="An earlier day to explain the change from."),
    vs_positions: Path | None = typer.Option(
        None, "--vs-positions", help="The positions on the --vs day (default: the same file)."
    ),
    vs_params: str | None = typer.Option(
        None, "--vs-params", help="The set on the --vs day (default: the one in force then)."
    ),
    out_dir: Path | None = typer.Option(
        None, "--out", help="Folder for the waterfall charts (default HOME/reports/explain)."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Each position's Euler, incremental and standalone contribution to its account's margin
    (and, for Deribit-style PM, its worst-scenario loss by Greek); with --vs DAY, the change
    since that day split into market, positions and parameters, in that order, with a
    waterfall chart per account."""
    from datetime import UTC, datetime, time, timedelta

    from pipelines.explain import State, contributions, explain_change, waterfall_chart
    from pipelines.margin import market_from_warehouse, read_market, read_positions, run_margin
    from pipelines.params import resolve_parameter_set
    from pipelines.warehouse import connect

    if (market is None) == (as_of is None):
        raise BadInputError("give exactly one of --market FILE and --as-of DATE")
    if vs is None and (vs_positions is not None or vs_params is not None):
        raise BadInputError("--vs-positions and --vs-params need --vs DAY")
    if model in ("mc-var", "mc-es"):
        raise BadInputError(f"--model {model}: use mwb margin (its JSON has the contributions)")
    settings = settings_from(ctx)
    frame = read_positions(positions)
    then_frame = read_positions(vs_positions) if vs_positions is not None else frame
    needs = as_of is not None or vs is not None or model in ("var", "es")
    if needs and not settings.warehouse_path.exists():
        raise BadInputError(f"{settings.warehouse_path}: no warehouse; run mwb demo or ingest")
    con = (
        connect(settings.warehouse_path, read_only=True)
        if settings.warehouse_path.exists()
        else None
    )
    preference = settings.market.source_preference
    try:
        resolved = resolve_parameter_set(con, params)
        now_market, notes = (
            market_from_warehouse(con, preference, _as_of(as_of))
            if as_of is not None
            else (read_market(market), [])
        )

        def margin_run(state: State):
            return run_margin(
                state.frame,
                model,
                state.market,
                state.params,
                con=con,
                preference=preference,
                params_source=state.label,
            )

        now_day = as_of if as_of is not None else now_market.as_of.date().isoformat()
        now = State(frame, now_market, resolved.parameter_set, resolved.source, now_day)
        run = margin_run(now)
        payload: dict = {
            "model": model,
            "params_fingerprint": resolved.parameter_set.fingerprint,
            "params_source": resolved.source,
            "market": {"as_of": now_market.as_of.isoformat(), "notes": notes},
            "accounts": contributions(run),
            "explain": None,
            "charts": [],
            "errors": [e.to_dict() for e in run.positions.errors],
        }
        if run.addons is not None:
            payload["note"] = "the set's add-ons are in the margins, not in the contributions"
        if vs is not None:
            then_day = parse_day(vs, "--vs")
            assert then_day is not None
            try:
                then_market, _ = market_from_warehouse(con, preference, then_day)
            except BadInputError as exc:  # the warehouse names the day, not the option
                raise BadInputError(f"--vs {vs}: {str(exc).split(': ', 1)[-1]}") from None
            if then_market.as_of >= now_market.as_of:
                raise BadInputError(
                    f"--vs {vs}: not before the market of {now_market.as_of:%Y-%m-%d}"
                )
            at = datetime.combine(then_day + timedelta(days=1), time(0), tzinfo=UTC)
            then_set = resolve_parameter_set(con, vs_params, at=at)
            then = State(
                then_frame,
                then_market,
                then_set.parameter_set,
                then_set.source,
                then_day.isoformat(),
            )

            def margin_of(state: State) -> dict:
                result = margin_run(state).result
                if result is None:
                    return {}
                return {
                    (result.accounts[a], str(c)): float(v)
                    for a, c, v in zip(
                        result.account, result.currency, result.initial_margin, strict=True
                    )
                }

            payload["explain"] = explain_change(margin_of, then, now)
            folder = out_dir or settings.home / "reports" / "explain"
            payload["charts"] = [
                str(waterfall_chart(payload["explain"], r["account"], r["currency"], folder))
                for r in payload["explain"]["rows"]
            ]
    finally:
        if con is not None:
            con.close()
    if as_json:
        print_json(payload)
    else:
        _print(payload)
    for e in payload["errors"]:  # as mwb margin: the others are still explained
        err.print(
            f"error: account {e['account']}, {e['instrument']}: {e['error']}",
            markup=False,
            highlight=False,
        )
    if not payload["accounts"]:
        raise typer.Exit(2)


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.6g}"


def _print(payload: dict) -> None:
    out.print(
        f"model {payload['model']} · parameters {payload['params_fingerprint'][:12]} "
        f"({payload['params_source']}) · market {payload['market']['as_of']}"
    )
    for account in payload["accounts"]:
        rows = [
            (
                c["instrument"],
                f"{c['quantity']:g}",
                _number(c["euler"]),
                _number(c["incremental"]),
                _number(c["standalone"]),
                *(
                    [
                        _number(c["worst_scenario_loss"][t])
                        for t in ("delta", "gamma", "vega", "unexplained")
                    ]
                    if "worst_scenario_loss" in c
                    else []
                ),
            )
            for c in account["contributions"]
        ]
        greek = "worst_scenario_loss" in (account["contributions"] or [{}])[0]
        columns = ["instrument", "quantity", "Euler", "incremental", "standalone"]
        columns += ["Δ loss", "Γ loss", "vega loss", "rest"] if greek else []
        title = (
            f"{account['account']} ({account['currency']}): initial margin "
            f"{account['initial_margin']:.6g}"
        )
        out.print(table(title, columns, rows))
    explained = payload["explain"]
    if explained is not None:
        rows = [
            (
                r["account"],
                r["currency"],
                *(f"{r[k]:.6g}" for k in ("from", "market", "positions", "parameters", "to")),
            )
            for r in explained["rows"]
        ]
        out.print(
            table(
                f"change {explained['from']['day']} → {explained['to']['day']} "
                "(market, then positions, then parameters)",
                ["account", "currency", "from", "market", "positions", "parameters", "to"],
                rows,
            )
        )
        for chart in payload["charts"]:
            out.print(f"waterfall: {chart}", markup=False)
    if "note" in payload:
        out.print(f"note: {payload['note']}", markup=False)
