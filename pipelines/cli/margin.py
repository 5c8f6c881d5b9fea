"""``mwb margin``: margin requirements of accounts under one model."""

from __future__ import annotations

from pathlib import Path

import typer

from pipelines.cli.calibration import _as_of
from pipelines.cli.market import JSON_HELP, settings_from
from pipelines.cli.output import err, out, print_json, table
from pipelines.errors import BadInputError


def margin(
    ctx: typer.Context,
    positions: Path = typer.Option(..., "--positions", help="CSV: account,instrument,quantity."),
    market: Path | None = typer.Option(
        None, "--market", help="Deribit option-chain CSV or market JSON."
    ),
    as_of: str | None = typer.Option(
        None, "--as-of", help="Build the market from the warehouse for this day."
    ),
    model: str = typer.Option(
        ...,
        "--model",
        help="standard | span | deribit-pm | var | es | mc-var | mc-es | derive-pmrm2 | "
        "hyperliquid | delta-only",
    ),
    params: Path | None = typer.Option(
        None,
        "--params",
        help="Parameter-set file (default: the registry's set in force, else Deribit's published values).",
    ),
    paths: int = typer.Option(10_000, "--paths", help="Monte Carlo paths (mc-var, mc-es)."),
    seed: int = typer.Option(
        0, "--seed", help="Monte Carlo seed: the same seed, the same numbers."
    ),
    sampling: str = typer.Option("sobol", "--sampling", help="pseudo | antithetic | sobol"),
    innovations: str = typer.Option(
        "filtered-historical",
        "--innovations",
        help="filtered-historical | student-t | gaussian",
    ),
    dof: float = typer.Option(5.0, "--dof", help="Degrees of freedom of student-t innovations."),
    importance: bool = typer.Option(
        False,
        "--importance",
        help="Importance sampling of large moves (Sobol draws; student-t or gaussian "
        "innovations): a smaller standard error at the same paths.",
    ),
    compare_venues: bool = typer.Option(
        False,
        "--compare-venues",
        help="Also margin the accounts under each venue's published set and the delta-only "
        "baseline, side by side in USD.",
    ),
    open_interest: list[str] = typer.Option(
        [],
        "--open-interest",
        help="UNDERLYING=USD: the market's open interest, for a set's open-interest add-on.",
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Initial and maintenance margin per account and settlement currency.

    Quantities are in contract units as on Deribit: options and spot in coin, inverse futures and
    perpetuals in USD; negative is short. Accounts with a bad position are listed in errors and
    the others are still margined; exits 2 only when no account could be margined.
    """
    from pipelines.margin import (
        market_from_warehouse,
        read_market,
        read_positions,
        run_margin,
    )
    from pipelines.params import resolve_parameter_set
    from pipelines.warehouse import connect

    if (market is None) == (as_of is None):
        raise BadInputError("give exactly one of --market FILE and --as-of DATE")
    simulated = model in ("mc-var", "mc-es")
    options = (
        _monte_carlo_options(paths, seed, sampling, innovations, dof, importance)
        if simulated
        else None
    )
    settings = settings_from(ctx)
    frame = read_positions(positions)
    needs_warehouse = as_of is not None or model in ("var", "es") or simulated
    # the warehouse also holds the governance registry, whose set in force is the default
    con = (
        connect(settings.warehouse_path, read_only=settings.warehouse_path.exists())
        if needs_warehouse or settings.warehouse_path.exists()
        else None
    )
    try:
        resolved = resolve_parameter_set(con, params)
        parameter_set, params_source = resolved.parameter_set, resolved.source
        if as_of is not None:
            snapshot, notes = market_from_warehouse(
                con, settings.market.source_preference, _as_of(as_of)
            )
        else:
            snapshot, notes = read_market(market), []
        arguments = dict(
            market_notes=notes,
            con=con,
            preference=settings.market.source_preference,
            params_source=params_source,
            simulation=options,
            open_interest=_open_interest(open_interest),
        )
        if simulated:
            from pipelines.compute import dask_client, dask_mapper

            with dask_client(settings.compute) as client:
                run = run_margin(
                    frame,
                    model,
                    snapshot,
                    parameter_set,
                    chunks=settings.compute.chunks,
                    mapper=dask_mapper(client),
                    **arguments,
                )
        else:
            run = run_margin(frame, model, snapshot, parameter_set, **arguments)
    finally:
        if con is not None:
            con.close()
    payload = run.payload()
    if compare_venues and run.result is not None:
        from pipelines.margin import elsewhere_payload, venue_columns

        models = ["deribit-pm"] + ([model] if model in _SCENARIO_MODELS else [])
        label = "this set" if params is None else f"set {parameter_set.fingerprint[:12]}"
        payload["elsewhere"] = elsewhere_payload(
            run.positions, venue_columns(label, parameter_set, models)
        )
    if as_json:
        print_json(payload)
    else:
        _print(payload)
    if not payload["accounts"]:
        raise typer.Exit(2)


_SCENARIO_MODELS = ("standard", "span", "deribit-pm")  # read the set's own blocks


def _open_interest(values: list[str]) -> dict[str, float]:
    """``--open-interest ETH=1.5e9`` options as {underlying: USD}; one line on a bad one."""
    out: dict[str, float] = {}
    for text in values:
        name, _, amount = text.partition("=")
        try:
            usd = float(amount)
        except ValueError:
            usd = -1.0
        # NaN fails both comparisons; infinity is not an amount
        if not name.strip() or not (usd >= 0 and usd != float("inf")):
            raise BadInputError(
                f"--open-interest {text!r}: give UNDERLYING=USD with a finite amount ≥ 0"
            )
        out[name.strip().upper()] = usd
    return out


def _print(payload: dict) -> None:
    out.print(
        f"model {payload['model']} · parameters {payload['params_fingerprint'][:12]} "
        f"({payload['params_source']}) · "
        f"market {payload['market']['as_of']} ({payload['market']['source']})"
    )
    for note in payload["market"]["notes"]:
        out.print(f"market: {note}", markup=False)
    component_names = sorted({k for a in payload["accounts"] for k in a["components"]})
    rows = [
        (
            a["account"],
            a["currency"],
            f"{a['initial_margin']:.6g}",
            f"{a['maintenance_margin']:.6g}",
            f"{a['equity']:.6g}",
            *(f"{a['components'][k]:.6g}" for k in component_names),
        )
        for a in payload["accounts"]
    ]
    out.print(table(None, ["account", "currency", "IM", "MM", "equity", *component_names], rows))
    if "elsewhere" in payload:
        labels = [c["label"] for c in payload["elsewhere"]["columns"]]
        others = [
            (a["account"], *(f"{a['initial_margin'][label]:,.2f}" for label in labels))
            for a in payload["elsewhere"]["accounts"]
        ]
        out.print(table("margin elsewhere (initial margin, USD)", ["account", *labels], others))
    if "addons" in payload:
        out.print(f"add-ons: {payload['addons']['rule']}", markup=False)
        for u, d in payload["addons"]["underlyings"].items():
            oi = d["open_interest_usd"]
            out.print(
                f"add-ons {u}: σ {d['daily_vol']:.4f}/day, V {d['daily_volume_usd']:,.0f} USD/day "
                f"({d['calibrated_on']}), liquidity threshold {d['liquidity_threshold_usd']:,.0f} USD, "
                f"Y {d['impact_y']:g}, half spread {d['half_spread']:g}"
                + ("" if oi is None else f", open interest {oi:,.0f} USD"),
                markup=False,
            )
    for e in payload["errors"]:
        err.print(
            f"error: account {e['account']}, {e['instrument']}: {e['error']}",
            markup=False,
            highlight=False,
        )


def _monte_carlo_options(
    paths: int, seed: int, sampling: str, innovations: str, dof: float, importance: bool = False
):
    from pipelines.margin import MonteCarloOptions
    from vocabulary import Innovations, Sampling

    try:
        chosen_sampling = Sampling(sampling)
    except ValueError:
        raise BadInputError(
            f"--sampling: {sampling!r} is not one of {', '.join(Sampling)}"
        ) from None
    try:
        chosen_innovations = Innovations(innovations)
    except ValueError:
        raise BadInputError(
            f"--innovations: {innovations!r} is not one of {', '.join(Innovations)}"
        ) from None
    options = MonteCarloOptions(paths, seed, chosen_sampling, chosen_innovations, dof, importance)
    options.simulation(1)  # refuses bad values before the cluster starts
    return options
