"""``mwb cascade``: liquidations, their price impact and the bad debt left, current set
against another, along a stress window."""

from __future__ import annotations

from pathlib import Path

import typer

from pipelines.cli.market import JSON_HELP, parse_day, settings_from
from pipelines.cli.output import out, print_json, table
from pipelines.errors import BadInputError


def describe(about: dict) -> str:
    """The population in a few words: how many accounts, and their seed or file."""
    if about["kind"] == "positions":
        return (
            f"{about['accounts']:,} accounts from {about['file']} (sha256 {about['sha256'][:12]})"
        )
    return f"{about['accounts']:,} accounts (seed {about['seed']})"


def cascade(
    ctx: typer.Context,
    positions: Path | None = typer.Option(
        None,
        "--positions",
        help="A population CSV: account,collateral,quantity[,entry_price] (USD, coins of --asset).",
    ),
    population: str = typer.Option(
        "synthetic",
        "--population",
        help="synthetic (one linear position each) | books (the test portfolios' option "
        "books, re-margined by Deribit-style PM every step; with --window or --from/--to).",
    ),
    accounts: int = typer.Option(10_000, "--accounts", help="Accounts in the population."),
    seed: int = typer.Option(0, "--seed", help="The population's seed."),
    asset: str = typer.Option("ETH", "--asset", help="The underlying."),
    window: str | None = typer.Option(
        None, "--window", help="A stress window by name, e.g. 'October 2025'."
    ),
    start: str | None = typer.Option(None, "--from", help="First day (with --to)."),
    end: str | None = typer.Option(None, "--to", help="Last day."),
    paths: int | None = typer.Option(
        None, "--paths", help="Random paths from --from's opening price: bad-debt VaR/ES."
    ),
    days: int = typer.Option(2, "--days", help="Days each random path runs (with --paths)."),
    params: str = typer.Option("active", "--params", help="The set (default: in force)."),
    vs: str | None = typer.Option(None, "--vs", help="A set to compare with."),
    mode: str = typer.Option("full", "--mode", help="full | partial liquidation."),
    fund: float = typer.Option(0.0, "--fund", help="Insurance fund at the start (USD)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Step a population through a stress window four times a day: accounts under
    maintenance are liquidated, their sales move the price (square-root impact calibrated on
    the 30 days before), which can push more under; equity below zero is bad debt, drawn
    from the insurance fund, then auto-deleveraged."""
    from backtesting.cascade import Mode
    from calibration.stress import STRESS_WINDOWS
    from pipelines.cascade import (
        book_people,
        cascade_inputs,
        paths_inputs,
        read_population,
        rule_of,
        run_book_cascade,
        run_cascade,
        run_paths,
    )
    from pipelines.cascade import population as build
    from pipelines.params import resolve_parameter_set
    from pipelines.warehouse import connect

    if not (fund >= 0 and fund != float("inf")):  # NaN fails both
        raise BadInputError(f"--fund: {fund} is not a finite number of USD ≥ 0")
    try:
        chosen_mode = Mode(mode)
    except ValueError:
        raise BadInputError(f"--mode: {mode!r} is not full or partial") from None
    if window is not None:
        if start or end:
            raise BadInputError("give --window or --from/--to, not both")
        found = [w for w in STRESS_WINDOWS if w.name.lower() == window.lower()]
        if not found:
            names = ", ".join(w.name for w in STRESS_WINDOWS)
            raise BadInputError(f"--window: {window!r} is not one of {names}")
        first, last = found[0].start, found[0].end
    elif paths is not None:
        if not start or end or not 100 <= paths <= 100_000 or not 1 <= days <= 30:
            raise BadInputError(
                "--paths N (100..100,000) takes --from DAY (and --days 1..30), not --to"
            )
        first = last = parse_day(start, "--from")
    elif start and end:
        first, last = parse_day(start, "--from"), parse_day(end, "--to")
    else:
        raise BadInputError("give --window NAME, --from DAY --to DAY or --paths N --from DAY")
    if population not in ("synthetic", "books"):
        raise BadInputError(f"--population: {population!r} is not synthetic or books")
    books = population == "books"
    if books and positions is not None:
        raise BadInputError("--population books draws its own accounts: not with --positions")
    if books and paths is not None and accounts * paths > 1_000_000:
        raise BadInputError(
            f"--population books re-margins every account at every step of every path: "
            f"--accounts × --paths = {accounts * paths:,} is above 1,000,000"
        )
    if books and chosen_mode is not Mode.FULL:
        raise BadInputError("--population books: accounts are closed in full (--mode full)")
    if books and not 1 <= accounts <= 100_000:
        raise BadInputError(f"--accounts: {accounts} is not between 1 and 100,000 for books")
    settings = settings_from(ctx)
    if not settings.warehouse_path.exists():
        raise BadInputError(f"{settings.warehouse_path}: no warehouse; run mwb demo or ingest")
    con = connect(settings.warehouse_path, read_only=True)
    try:
        current = resolve_parameter_set(con, params)
        sets = [(current.label, current.parameter_set)]
        if vs is not None:
            other = resolve_parameter_set(con, vs)
            sets.append((f"vs {other.label}", other.parameter_set))
        if paths is not None:
            drawing = paths_inputs(con, settings.market.source_preference, asset.upper(), first)
            if books:
                book_population = book_people(
                    con,
                    settings.market.source_preference,
                    asset.upper(),
                    first,
                    drawing.price,
                    sets[0][1],
                    accounts=accounts,
                    seed=seed,
                )
        else:
            inputs = cascade_inputs(
                con, settings.market.source_preference, asset.upper(), first, last
            )
            if books:
                book_payload = run_book_cascade(
                    con,
                    settings.market.source_preference,
                    inputs,
                    sets,
                    accounts=accounts,
                    seed=seed,
                    fund=fund,
                )
    finally:
        con.close()
    if books and paths is None:
        _print_books(book_payload, as_json)
        return

    def people_at(price: float, max_leverage: float):
        if positions is not None:
            return read_population(positions, price)
        about = {"kind": population, "accounts": accounts, "seed": seed}
        return build(population, accounts, seed, price, max_leverage), about

    if paths is not None:
        if books:
            people, about = book_population, book_population.about
        else:
            rule = rule_of(current.parameter_set, asset.upper(), chosen_mode)
            people, about = people_at(drawing.price, 1.0 / rule.initial)
        payload = run_paths(
            asset.upper(),
            first,
            drawing,
            sets,
            people,
            paths=paths,
            days=days,
            seed=seed,
            mode=chosen_mode,
            fund=fund,
        )
        payload["population"] = about
        if as_json:
            print_json(payload)
            return
        rows = [
            (
                s["label"],
                f"{s['rule']['initial']:.4f}" if "initial" in s["rule"] else s["rule"]["model"],
                f"{s['paths_with_bad_debt']:,} / {paths:,}",
                *(f"{s[k]:,.0f}" for k in ("var_95", "es_95", "var_99", "es_99")),
            )
            for s in payload["sets"]
        ]
        out.print(
            table(
                f"bad debt over {paths:,} paths of {days} days from {first} (USD)",
                [
                    "set",
                    "margined by" if books else "IM rate",
                    "paths with bad debt",
                    "VaR 95",
                    "ES 95",
                    "VaR 99",
                    "ES 99",
                ],
                rows,
            )
        )
        out.print(f"paths: {payload['innovations']}", markup=False, soft_wrap=True)
        return
    rule = rule_of(current.parameter_set, inputs.asset, chosen_mode)
    people, about = people_at(inputs.path[0], 1.0 / rule.initial)
    payload = run_cascade(inputs, sets, people, mode=chosen_mode, fund=fund)
    payload["population"] = about
    if as_json:
        print_json(payload)
        return
    out.print(
        f"{payload['asset']} {payload['from']} .. {payload['to']}, {describe(about)}, impact Y={payload['impact']['y']} σ={payload['impact']['daily_vol']:.4f} "
        f"V={payload['impact']['daily_volume_usd']:,.0f} USD/day"
    )
    _print_sets(
        payload,
        "cascade",
        ["IM rate", "MM rate"],
        lambda rule: (f"{rule['initial']:.4f}", f"{rule['maintenance']:.4f}"),
        "volume USD",
    )


def _print_sets(payload: dict, title: str, rule_headers, rule_cells, volume: str) -> None:
    """Each set's liquidations, volume, largest impact and bad debt along the window, and the
    payload's notes."""
    rows = [
        (
            s["label"],
            *rule_cells(s["rule"]),
            f"{s['liquidations']:,}",
            f"{s['volume_usd']:,.0f}",
            f"{s['largest_impact']:.2%}",
            f"{s['bad_debt']:,.2f}",
        )
        for s in payload["sets"]
    ]
    headers = ["set", *rule_headers, "liquidations", volume, "largest impact", "bad debt USD"]
    out.print(table(title, headers, rows))
    for note in payload["notes"]:
        out.print(f"note: {note}", markup=False)


def _print_books(payload: dict, as_json: bool) -> None:
    if as_json:
        print_json(payload)
        return
    people = payload["population"]
    mix = ", ".join(f"{name} {count:,}" for name, count in people["books"].items())
    out.print(
        f"{payload['asset']} {payload['from']} .. {payload['to']}, {people['accounts']:,} accounts "
        f"holding the test portfolios' books (seed {people['seed']}: {mix}), struck at "
        f"{people['struck']['price']:,.2f} and IV {people['struck']['iv']:.4f}; collateral "
        f"{people['collateral_usd']:,.0f} USD",
        markup=False,
        soft_wrap=True,
    )
    _print_sets(
        payload,
        "cascade of option books",
        ["margined by"],
        lambda rule: (rule["model"],),
        "delta sold USD",
    )
