"""``mwb backtest``: replay history with one parameter set, or two side by side."""

from __future__ import annotations

import contextlib
from pathlib import Path

import typer

from pipelines.cli.market import JSON_HELP, parse_day, settings_from
from pipelines.cli.output import err, out, print_json, table
from pipelines.errors import BadInputError

SET_HELP = "'active' (the registry's set in force now, or the default), 'default', 'registry' (the set in force each day), a file, or a fingerprint."


def backtest(
    ctx: typer.Context,
    params: str = typer.Option("active", "--params", help=SET_HELP),
    vs: str | None = typer.Option(
        None, "--vs", help="A second set to compare on identical inputs (same forms)."
    ),
    start: str | None = typer.Option(
        None, "--from", help="First day (default: the first with inputs)."
    ),
    end: str | None = typer.Option(
        None, "--to", help="Last day (default: the last with a full MPOR after it)."
    ),
    models: list[str] = typer.Option(
        [],
        "--model",
        help="standard | span | deribit-pm | var | es | mc-var | mc-es (repeatable; default deribit-pm, span, var).",
    ),
    portfolios: list[str] = typer.Option(
        [],
        "--portfolio",
        help="A portfolio or group: books, spot, collateral, all (repeatable; default books, collateral).",
    ),
    mpor: int | None = typer.Option(
        None, "--mpor", help="Days of the margin period of risk (default: the set's var.mpor_days)."
    ),
    confidence: float | None = typer.Option(
        None, "--confidence", help="Coverage level tested (default: the set's var.var_confidence)."
    ),
    calibrate: list[str] = typer.Option(
        [],
        "--calibrate",
        help="Take this parameter from the rolling calibration each day, e.g. 'underlyings.BTC.pm.price_range' (repeatable).",
    ),
    scale: float = typer.Option(
        1.0, "--scale", help="Multiply calibrated parameters by this (what-if: 0.5 halves them)."
    ),
    positions: Path | None = typer.Option(
        None,
        "--positions",
        help="Also replay these accounts (account,instrument,quantity), held unchanged.",
    ),
    seed: int = typer.Option(
        0, "--seed", help="Seed of the coverage tests' Monte Carlo null and of mc-var/mc-es paths."
    ),
    paths: int = typer.Option(
        2000, "--paths", help="Monte Carlo paths a day for mc-var and mc-es (100..1000000)."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Margin each test portfolio every day with the parameters known that day, compare with the
    loss realised over the MPOR, and run the coverage tests, procyclicality, capital efficiency
    and stress windows — for one set, or two side by side (``--vs``)."""
    from backtesting.spec import BacktestSpec
    from backtesting.summary import comparison
    from pipelines.backtest import backtest_spec, resolve_source, run_backtest
    from pipelines.warehouse import connect

    settings = settings_from(ctx)
    accounts = ()
    if positions is not None:
        from margin_engine.portfolios import from_positions
        from pipelines.margin import read_positions

        try:
            accounts = from_positions(read_positions(positions), positions.name)
        except ValueError as exc:
            raise BadInputError(str(exc)) from exc
    spec = backtest_spec(
        start=parse_day(start, "--from"),
        end=parse_day(end, "--to"),
        models=tuple(models) or BacktestSpec.models,
        portfolios=tuple(portfolios) or BacktestSpec.portfolios,
        mpor_days=mpor,
        confidence=confidence,
        calibrate=tuple(calibrate),
        scale=scale,
        seed=seed,
        paths=paths,
    )
    con = connect(settings.warehouse_path)
    try:
        sources = [resolve_source(con, params, "current" if vs else "set")]
        if vs is not None:
            sources.append(resolve_source(con, vs, "proposed"))
        with _mapper(settings) as mapper:
            run = run_backtest(con, settings, sources, spec, accounts=accounts, mapper=mapper)
    finally:
        con.close()
    side = comparison(run.summary_records(), list(run.sets))
    if as_json:
        print_json(
            {
                "run_id": run.run_id,
                "sets": run.sets,
                "from": run.start,
                "to": run.end,
                "mpor_days": run.mpor_days,
                "confidence": run.confidence,
                "data_sha256": run.data_sha,
                "spec": spec.as_dict(),
                "notes": run.notes,
                "cache": run.cache,
                "comparison": side.astype(object).where(side.notna(), None).to_dict("records"),
                "summaries": run.summary_records(),
            }
        )
        return
    _print(run, side)


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, float):
        if abs(value) < 1e-9:
            return "0"
        return f"{value:,.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def _print(run, side) -> None:
    out.print(
        f"backtest {run.run_id} · {run.start} .. {run.end} · MPOR {run.mpor_days} day(s) · "
        f"coverage level {run.confidence:g} · data {run.data_sha[:12]}"
    )
    for label, fingerprint in run.sets.items():
        out.print(f"  {label}: parameter set {fingerprint[:20]}")
    for note in run.notes:
        out.print(f"  note: {note}", markup=False)
    labels = list(run.sets)
    columns = ["portfolio", "model"]
    for label in labels:
        columns += [
            f"{label}: breaches",
            "on OHLC path",
            "zone",
            "p POF/CC/TBF",
            "peak/trough",
            "max 5d +",
            "margin $",
        ]
    if len(labels) == 2:
        columns.append("freed $")
    rows = []
    for r in side.to_dict("records"):
        row = [
            r["portfolio"],
            r["model"] + ("" if r["currency"] in ("USD", "USDC") else f" ({r['currency']})"),
        ]
        for label in labels:
            p_values = "/".join(_fmt(r.get(f"{label}.{t}_p"), 2) for t in ("pof", "cc", "tbf"))
            row += [
                f"{_fmt(r.get(f'{label}.breaches'))}/{_fmt(r.get(f'{label}.days'))} ({r.get(f'{label}.expected', 0):.0f})",
                _fmt(r.get(f"{label}.breaches_path")),
                r.get(f"{label}.zone") or "-",
                p_values,
                _fmt(r.get(f"{label}.peak_trough")),
                _fmt(r.get(f"{label}.max_5d_increase"), 2),
                _fmt(r.get(f"{label}.mean_margin_usd")),
            ]
        if len(labels) == 2:
            row.append(_fmt(r.get("margin_freed_usd")))
        rows.append(row)
    out.print(table(None, columns, rows))
    procedure = {r["coverage"].get("procedure") for r in run.summary_records()}
    if "interleaved-bonferroni" in procedure:
        out.print(
            f"MPOR {run.mpor_days} days: consecutive windows overlap, so each test and the zone run "
            "on the interleaved non-overlapping sub-series (Bonferroni); the zone is the stricter of "
            "close-to-close and OHLC-path losses",
            markup=False,
        )
    for record in run.summary_records():
        es = record.get("es_tests") or {}
        if es.get("computed"):
            out.print(
                f"ES tests {record['set']} {record['portfolio']}: p(Z1) {_fmt(es['z1']['pvalue'], 2)}, "
                f"p(Z2) {_fmt(es['z2']['pvalue'], 2)}"
                + (f"; rejected: {', '.join(es['rejected'])}" if es["rejected"] else "")
                + (f"; {es['warning']}" if es.get("warning") else ""),
                markup=False,
            )
        if record.get("zone") == "not testable":
            out.print(
                f"not testable: {record['set']} {record['portfolio']} {record['model']}: "
                f"{record.get('note', '')}",
                markup=False,
            )
    for record in run.summary_records():
        if record.get("zone", record["coverage"]["traffic_light"]["zone"]) == "red":
            dates = record["breach_dates"]
            worst = record["worst_shortfall"] or {}
            out.print(
                f"red: {record['set']} {record['portfolio']} {record['model']}: {len(dates)} breaches, e.g. "
                f"{', '.join(dates[:8])}{' …' if len(dates) > 8 else ''}; worst {worst.get('date')} "
                f"(short by ${_fmt(worst.get('usd'))})",
                markup=False,
            )
    out.print(f"details: mwb sql \"SELECT * FROM bt.summaries WHERE run_id = '{run.run_id}'\"")
    if run.cache:
        reused = run.cache["margins"]["reused"]
        computed = run.cache["margins"]["computed"]
        err.print(f"margins reused {reused}, computed {computed}; {run.elapsed:.1f} s")


@contextlib.contextmanager
def _mapper(settings):
    """The rolling fits' tasks on the configured scheduler when it is a running one; with
    ``scheduler: local`` the backtest's own process pool does them (a local cluster would
    cost seconds to start for the same two cores)."""
    if settings.compute.scheduler == "local":
        yield None
        return
    from pipelines.compute import dask_client, dask_mapper

    with dask_client(settings.compute) as client:
        yield dask_mapper(client)
