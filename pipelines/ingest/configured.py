"""Loading the sources named in the settings (what the market-data assets and the demo do)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import httpx

from pipelines.errors import BadInputError
from pipelines.ingest.formats import Format, ReadOptions, detect
from pipelines.ingest.kinds import Kind
from pipelines.ingest.load import IngestReport, load_file
from pipelines.settings import (
    DeribitSource,
    FileSource,
    FolderSource,
    SyntheticSource,
    WorkbenchSettings,
)
from pipelines.sources.builtin import DatasetName, write_dataset

FOLDER_PATTERNS = ("*.csv", "*.csv.gz", "*.parquet", "*.json")


@dataclass
class ConfiguredLoad:
    reports: list[IngestReport] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # a source that could not be reached
    quarantined: list[str] = field(default_factory=list)  # one line per file set aside


def dataset_folder(settings: WorkbenchSettings, name: DatasetName, seed: int) -> Path:
    suffix = f"-seed{seed}" if name == "synthetic" else ""
    return settings.datasets_dir / f"{name}{suffix}"


def write_builtin(settings: WorkbenchSettings, name: DatasetName, seed: int) -> list[Path]:
    return write_dataset(name, dataset_folder(settings, name, seed), seed=seed)


def planned_files(settings: WorkbenchSettings) -> list[tuple[Path, ReadOptions]]:
    """Every file the configured sources name, with its read options, in config order."""
    planned: list[tuple[Path, ReadOptions]] = []
    for source in settings.sources:
        if isinstance(source, SyntheticSource):
            for path in write_builtin(settings, "synthetic", source.seed):
                planned.append((path, ReadOptions()))
        elif isinstance(source, FileSource):
            planned.append(
                (
                    source.path,
                    ReadOptions(
                        format=Format(source.format) if source.format else None,
                        kind=Kind(source.kind) if source.kind else None,
                        source=source.source,
                        asset=source.asset,
                    ),
                )
            )
        elif isinstance(source, FolderSource):
            if not source.path.is_dir():
                raise BadInputError(f"{source.path}: configured folder does not exist")
            files = sorted({p for pattern in FOLDER_PATTERNS for p in source.path.glob(pattern)})
            planned.extend((p, ReadOptions(source=source.source)) for p in files)
    return planned


def fetch_deribit(
    settings: WorkbenchSettings,
    source: DeribitSource,
    kinds: set[Kind] | None,
    window: tuple[date, date] | None,
    *,
    transport: httpx.BaseTransport | None = None,
    today: date | None = None,
) -> list[Path]:
    """Fetch what ``source`` offers of ``kinds`` over ``window`` (default: its last
    ``history_days`` full days) and write it under HOME/datasets/deribit. A failure raises
    before any file is written."""
    from pipelines.sources.deribit import ClientOptions, DeribitClient, fetch, write_files

    wanted = kinds if kinds is not None else set(Kind)
    if window is None:
        last = (today or datetime.now(UTC).date()) - timedelta(days=1)
        window = (last - timedelta(days=source.history_days - 1), last)
    # the source's settings are named as the client's options
    options = ClientOptions(**source.model_dump(include={f.name for f in fields(ClientOptions)}))
    with DeribitClient(options, transport=transport) as client:
        fetched = fetch(
            client,
            source.currencies,
            window[0],
            window[1],
            prices=Kind.PRICES in wanted,
            dvol=Kind.IV in wanted,
            option_chain=source.option_chain and Kind.OPTIONS in wanted,
        )
    return write_files(fetched, settings.datasets_dir / "deribit", source=source.source)


def load_configured(
    con: duckdb.DuckDBPyConnection,
    settings: WorkbenchSettings,
    kinds: set[Kind] | None = None,
    window: tuple[date, date] | None = None,
) -> ConfiguredLoad:
    """Load the configured sources of the given kinds; each file is its own transaction.

    A file that cannot be loaded at all is *quarantined* — recorded as a batch of format
    ``quarantined`` with its reason in ``market.rejected_rows`` (once per file version) — and
    the others load: one bad file in a folder does not stop the daily job. A live source that
    cannot be reached is an ``error``.

    ``window`` (first and last day) is what a daily-partitioned run asks for: the live Deribit
    source fetches exactly those days; files are loaded whole (loading is idempotent, rows
    already present insert nothing)."""
    from pipelines.sources.deribit import DeribitError

    outcome = ConfiguredLoad()
    planned = planned_files(settings)
    for source in settings.sources:
        if isinstance(source, DeribitSource):
            try:
                paths = fetch_deribit(settings, source, kinds, window)
            except DeribitError as exc:
                outcome.errors.append(f"deribit: {exc}")
                continue
            planned.extend((p, ReadOptions(source=source.source)) for p in paths)
    for path, options in planned:
        try:
            _, kind = detect(path, options)
            if kinds is not None and kind not in kinds:
                continue
            outcome.reports.append(load_file(con, path, options))
        except BadInputError as exc:
            quarantine(con, path, str(exc))
            outcome.quarantined.append(str(exc))
    return outcome


def quarantine(con: duckdb.DuckDBPyConnection, path: Path, reason: str) -> bool:
    """Record that ``path`` was set aside, with why; once per version of the file (its SHA-256,
    or its path when it cannot be read). Returns whether this version is newly recorded."""
    from pipelines import __version__
    from pipelines.ingest.load import file_sha256
    from pipelines.warehouse import transaction

    try:
        digest = file_sha256(path) if Path(path).is_file() else "-"
        size = Path(path).stat().st_size if Path(path).is_file() else 0
    except OSError:
        digest, size = "-", 0
    seen = con.execute(
        "SELECT count(*) FROM market.ingest_batches WHERE format = 'quarantined' "
        "AND file_path = ? AND file_sha256 = ?",
        [str(path), digest],
    ).fetchone()[0]
    if seen:
        return False
    now = datetime.now(UTC)
    with transaction(con):
        batch = con.execute("SELECT nextval('market.batch_id_seq')").fetchone()[0]
        con.execute(
            "INSERT INTO market.ingest_batches VALUES "
            "(?, ?, ?, ?, 'quarantined', '-', '-', false, 0, 0, 0, 0, 0, 0, ?, ?, ?, ?, "
            "NULL, NULL, NULL)",
            [batch, str(path), digest, size, now, now, __version__, duckdb.__version__],
        )
        con.execute(
            "INSERT INTO market.rejected_rows (batch_id, file_path, record, column_name, category, "
            "reason, raw) VALUES (?, ?, 0, NULL, 'file', ?, NULL)",
            [batch, str(path), reason[:2000]],
        )
    return True
