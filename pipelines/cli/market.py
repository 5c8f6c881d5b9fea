"""``mwb ingest``, ``mwb status``, ``mwb datasets`` and ``mwb demo``."""

from __future__ import annotations

import re
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from pipelines.cli.output import err, out, print_json, table
from pipelines.errors import BadInputError
from pipelines.ingest.kinds import Kind
from pipelines.ingest.options import Format, ReadOptions
from pipelines.settings import WorkbenchSettings, load_settings
from pipelines.sources import DATASETS

# the readers, the warehouse and the datasets are imported by the commands that use them: a
# command's start (every `mwb` call, every refusal) then pays only for what it runs
if TYPE_CHECKING:
    from pipelines.ingest.load import IngestReport

JSON_HELP = "Print the results as JSON."
datasets_app = typer.Typer(help="Built-in datasets (synthetic market, S&P 500 and VIX).")


def parse_day(text: str | None, option: str) -> date | None:
    """An ISO date from an option, or a bad-input error naming the option."""
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise BadInputError(f"{option}: {text!r} is not a date (YYYY-MM-DD)") from exc


def settings_from(ctx: typer.Context) -> WorkbenchSettings:
    obj = ctx.obj or {}
    return load_settings(obj.get("home"), obj.get("config"))


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


def _print_reports(reports: list[IngestReport], errors: list[str]) -> None:
    rows = []
    for r in reports:
        rows.append(
            (
                Path(r.file).name,
                f"{r.format} ({r.kind})",
                r.rows_read,
                r.inserted,
                r.already_present,
                r.conflicts if not r.replace else f"{r.replaced} replaced",
                r.rejected,
            )
        )
    if rows:
        out.print(
            table(
                None,
                ["file", "format", "read", "inserted", "already present", "conflicts", "rejected"],
                rows,
            )
        )
    for r in reports:
        name = Path(r.file).name
        if r.inserted == 0 and r.already_present == r.rows_read and r.rows_read:
            out.print(f"{name}: already loaded — nothing new (batch {r.batch_id})")
        for line in r.rejects_sample:
            out.print(f"{name}: rejected {line}", markup=False)
        for line in r.conflicts_sample:
            out.print(f"{name}: conflict {line}", markup=False)
        if r.rejected > len(r.rejects_sample) or r.conflicts > len(r.conflicts_sample):
            out.print(
                f"{name}: all rejected rows are in market.rejected_rows (batch_id = {r.batch_id})"
            )
    for line in errors:
        err.print(f"error: {line}", markup=False, highlight=False)


def ingest_paths(
    settings: WorkbenchSettings,
    paths: list[Path],
    options: ReadOptions,
    replace: bool,
    show_progress: bool,
) -> tuple[list[IngestReport], list[str]]:
    from pipelines.ingest.load import load_file
    from pipelines.warehouse import connect

    reports, errors = [], []
    con = connect(settings.warehouse_path)
    try:
        with _progress() if show_progress else _Null() as progress:
            task = progress.add_task("loading", total=len(paths)) if show_progress else None
            for path in paths:
                if show_progress:
                    progress.update(task, description=f"loading {path.name}")
                try:
                    reports.append(load_file(con, path, options, replace=replace))
                except BadInputError as exc:
                    errors.append(str(exc))
                if show_progress:
                    progress.advance(task)
    finally:
        con.close()
    return reports, errors


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def ingest(
    ctx: typer.Context,
    paths: list[Path] = typer.Argument(..., help="Files to load (CSV, CSV.gz, Parquet, JSON)."),
    kind: Kind | None = typer.Option(None, "--kind", help="What the files hold."),
    fmt: Format | None = typer.Option(None, "--format", help="Force a format (default: detect)."),
    source: str | None = typer.Option(None, "--source", help="Source name stored with each row."),
    asset: str | None = typer.Option(
        None, "--asset", help="Asset for formats whose rows do not name it (DVOL, klines)."
    ),
    replace: bool = typer.Option(
        False, "--replace", help="Overwrite conflicting rows (old rows kept as superseded)."
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="Load prices whose levels differ from the stored series of the same asset and "
        "source on most overlapping days (refused otherwise: another quote currency or venue).",
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Load market-data files into the warehouse, one transaction per file.

    Prints, per file: records read, inserted, already present, conflicts and rejected.
    Exits 2 if any file could not be read at all (the others are still loaded).
    """
    settings = settings_from(ctx)
    if source is not None and not re.fullmatch(r"[A-Za-z0-9_.:/-]{1,64}", source):
        raise BadInputError("--source: 1-64 letters, digits or _.:/- (it is stored with each row)")
    if asset is not None and not re.fullmatch(r"[A-Z0-9_]{1,24}", asset):
        raise BadInputError("--asset: 1-24 upper-case letters, digits or _ (e.g. BTC)")
    options = ReadOptions(format=fmt, kind=kind, source=source, asset=asset, force=force)
    reports, errors = ingest_paths(
        settings, paths, options, replace, show_progress=not as_json and err.is_terminal
    )
    if as_json:
        print_json(
            {
                "warehouse": str(settings.warehouse_path),
                "files": [r.to_dict() for r in reports],
                "errors": errors,
            }
        )
        if errors:
            raise typer.Exit(2)
        return
    _print_reports(reports, errors)
    if errors:
        raise typer.Exit(2)


def status(
    ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help=JSON_HELP)
) -> None:
    """Per stored series: first and last date, rows, gaps longer than 3 days."""
    from pipelines.warehouse import connect
    from pipelines.warehouse.migrations import applied_versions
    from pipelines.warehouse.quality import ingest_counts, series_summary

    settings = settings_from(ctx)
    con = connect(settings.warehouse_path)
    try:
        summary = series_summary(con)
        versions = sorted(applied_versions(con))
        batches, rejected = ingest_counts(con)
    finally:
        con.close()
    if as_json:
        print_json(
            {
                "warehouse": str(settings.warehouse_path),
                "schema_version": versions[-1] if versions else 0,
                "batches": batches,
                "rejected_rows": rejected,
                "series": summary.astype(object).where(summary.notna(), None).to_dict("records"),
            }
        )
        return
    out.print(f"warehouse: {settings.warehouse_path} (schema version {versions[-1]})")
    out.print(f"batches loaded: {batches}; rejected rows kept: {rejected}")
    if summary.empty:
        out.print("no market data yet — try `mwb demo` or `mwb ingest FILE`")
        return
    out.print(
        table(
            None,
            ["series", "asset", "source", "first", "last", "rows", "gaps > 3d", "missing days"],
            summary.astype(object).where(summary.notna(), None).itertuples(index=False),
        )
    )


@datasets_app.command("list")
def datasets_list(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """The built-in datasets."""
    described = {
        "synthetic": "seeded synthetic BTC/ETH/SOL OHLCV 2019-2024 + BTC/ETH 30-day IV "
        "(source 'synthetic')",
        "sp500-vix": "real S&P 500 OHLCV 1999-2018 and VIX 2014-2019 shipped with arch "
        "(asset SPX, source 'arch')",
    }
    if as_json:
        print_json([{"name": n, "description": described[n]} for n in DATASETS])
        return
    out.print(table(None, ["dataset", "what"], [(n, described[n]) for n in DATASETS]))


@datasets_app.command("load")
def datasets_load(
    ctx: typer.Context,
    name: str = typer.Argument(..., help=f"One of: {', '.join(DATASETS)}."),
    seed: int | None = typer.Option(
        None, "--seed", help="Seed of the synthetic market (default: its own)."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Write a built-in dataset as CSV files under HOME/datasets and load them."""
    if name not in DATASETS:
        raise BadInputError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    from pipelines.ingest.configured import write_builtin
    from pipelines.sources.synthetic import DEFAULT_SEED

    settings = settings_from(ctx)
    seed = DEFAULT_SEED if seed is None else seed
    paths = write_builtin(settings, name, seed)  # type: ignore[arg-type]
    reports, errors = ingest_paths(settings, paths, ReadOptions(), False, show_progress=False)
    if as_json:
        print_json({"dataset": name, "files": [r.to_dict() for r in reports], "errors": errors})
    else:
        _print_reports(reports, errors)
    if errors:
        raise typer.Exit(2)


def demo(
    ctx: typer.Context,
    seed: int | None = typer.Option(
        None, "--seed", help="Seed of the synthetic market (default: its own)."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Run the pipeline on the bundled synthetic market and say where everything landed."""
    from pipelines.demo import run_demo  # imports Dagster: only when asked for
    from pipelines.sources.synthetic import DEFAULT_SEED

    settings = settings_from(ctx)
    seed = DEFAULT_SEED if seed is None else seed
    started = time.perf_counter()
    outcome = run_demo(settings, seed=seed, console=None if as_json else out)
    elapsed = time.perf_counter() - started
    if as_json:
        print_json({**outcome, "seconds": round(elapsed, 2)})
    else:
        out.print(f"done in {elapsed:.1f} s")
    if not outcome["success"]:
        raise typer.Exit(1)


def sql(
    ctx: typer.Context,
    query: str = typer.Argument(..., help="A SQL query (the warehouse is opened read-only)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Query the warehouse, read-only: `mwb sql "SELECT * FROM market.prices LIMIT 5"`.

    One read statement (SELECT or EXPLAIN), on a read-only connection without file or network
    access; anything else exits 2 before it runs."""
    from pipelines.warehouse.readonly import query_read_only

    settings = settings_from(ctx)
    if not settings.warehouse_path.exists():
        raise BadInputError(f"{settings.warehouse_path}: no warehouse yet; run `mwb demo` first")
    frame = query_read_only(settings.warehouse_path, query)
    frame = frame.astype(object).where(frame.notna(), None)
    if as_json:
        print_json(frame.to_dict("records"))
        return
    out.print(table(None, [str(c) for c in frame.columns], frame.itertuples(index=False)))
