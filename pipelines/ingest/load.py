"""Validated, idempotent, all-or-nothing loading of one file into the warehouse.

One call of :func:`load_file` is one transaction and one row of ``market.ingest_batches``:

1. the reader stages the file into ``_stage`` (:mod:`pipelines.ingest.formats`);
2. rows failing a rule of their kind are rejected (category ``invalid``);
3. a key appearing twice in the file with different values rejects all its rows
   (``duplicate``: we cannot tell which is right); exact repeats count as already present;
4. the rest is matched on the natural key against the table: equal rows are *already
   present*, different rows are *conflicts* — rejected (``conflict``) unless ``replace``, which
   overwrites them and keeps the old row in ``market.superseded_rows``;
5. new rows are inserted, stamped with the batch id.

Every record read is accounted for: ``rows_read = inserted + already_present + conflicts +
rejected``. A file that cannot be read at all raises :class:`~pipelines.errors.BadInputError`
before anything is written; any exception rolls the whole load back.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from pipelines import __version__
from pipelines.errors import BadInputError
from pipelines.ingest.formats import ParserReject, ReadOptions, Staged, stage_file
from pipelines.ingest.kinds import SPECS, Kind, KindSpec, Rule
from pipelines.stores.market import EQUITY_SOURCES
from pipelines.warehouse import transaction

SAMPLE = 5  # rejects and conflicts quoted in a report
EQUITY_FIRST_DAY = "1990-01-01"


@dataclass(frozen=True)
class AssetRange:
    asset: str
    first: str
    last: str
    rows: int


@dataclass(frozen=True)
class IngestReport:
    """The outcome of loading one file (or of refusing it)."""

    file: str
    format: str
    kind: str
    sha256: str
    file_bytes: int
    batch_id: int
    replace: bool
    rows_read: int
    inserted: int
    already_present: int
    conflicts: int
    replaced: int
    rejected: int
    rejects_sample: tuple[str, ...] = ()
    conflicts_sample: tuple[str, ...] = ()
    assets: tuple[AssetRange, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "assets"}
        out["rejects_sample"] = list(self.rejects_sample)
        out["conflicts_sample"] = list(self.conflicts_sample)
        out["assets"] = [a.__dict__ for a in self.assets]
        return out


class _FileHasher(threading.Thread):
    """SHA-256 of a file, computed beside the load (hashlib releases the GIL)."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.digest = ""
        self.size = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            sha = hashlib.sha256()
            with open(self.path, "rb") as handle:
                while chunk := handle.read(1 << 22):
                    sha.update(chunk)
                    self.size += len(chunk)
            self.digest = sha.hexdigest()
        except BaseException as exc:  # reported by the loader
            self.error = exc


def file_sha256(path: Path) -> str:
    hasher = _FileHasher(path)
    hasher.run()
    if hasher.error:
        raise hasher.error
    return hasher.digest


def _options_key(options: ReadOptions) -> str:
    """The read options as a canonical string: the same bytes read with the same options by
    the same version stage the same rows."""
    return json.dumps(
        {
            "format": options.format.value if options.format else None,
            "kind": options.kind.value if options.kind else None,
            "source": options.source,
            "asset": options.asset,
            "force": options.force,
            "first_day": options.first_day.isoformat(),
        },
        sort_keys=True,
    )


def _repeat_if_unchanged(
    con: duckdb.DuckDBPyConnection, path: Path, options: ReadOptions, started: datetime
) -> IngestReport | None:
    """Record a re-load of a file already loaded, byte for byte, without staging it again.

    Applies only when an earlier batch read the same bytes (SHA-256) with the same options and
    the same version, had no conflicts, and no later load of that kind replaced stored rows:
    then staging would find every valid row present and reject the same rows for the same
    reasons, which is what the new batch records (its rejected rows copied under its id).
    Otherwise ``None``: the file is loaded normally.
    """
    size, key = path.stat().st_size, _options_key(options)
    if not con.execute(
        "SELECT count(*) FROM market.ingest_batches WHERE file_bytes = ? AND read_options = ?",
        [size, key],
    ).fetchone()[0]:
        return None  # nothing of that size read that way: not worth hashing first
    digest = file_sha256(path)
    found = con.execute(
        """
        SELECT b.batch_id, b.format, b.kind, b.source, b.rows_read, b.inserted,
               b.already_present, b.rejected, b.asset_ranges
        FROM market.ingest_batches b
        WHERE b.file_sha256 = ? AND b.file_bytes = ? AND b.read_options = ?
          AND b.package_version = ? AND NOT b.replace_conflicts AND b.conflicts = 0
          AND b.asset_ranges IS NOT NULL
          AND NOT EXISTS (
              SELECT 1 FROM market.ingest_batches later
              WHERE later.batch_id > b.batch_id AND later.kind = b.kind AND later.replaced > 0)
        ORDER BY b.batch_id DESC LIMIT 1
        """,
        [digest, size, key, __version__],
    ).fetchone()
    if found is None:
        return None
    previous, fmt, kind, source, rows_read, inserted, present, rejected, ranges = found
    with transaction(con):
        batch_id = con.execute("SELECT nextval('market.batch_id_seq')").fetchone()[0]
        con.execute(
            "INSERT INTO market.rejected_rows "
            "(batch_id, file_path, record, column_name, category, reason, raw) "
            "SELECT ?, ?, record, column_name, category, reason, raw "
            "FROM market.rejected_rows WHERE batch_id = ? ORDER BY record",
            [batch_id, str(path), previous],
        )
        con.execute(
            "INSERT INTO market.ingest_batches VALUES "
            "(?, ?, ?, ?, ?, ?, ?, false, ?, 0, ?, 0, 0, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                batch_id, str(path), digest, size, fmt, kind, source, rows_read,
                inserted + present, rejected, started, datetime.now(UTC), __version__,
                duckdb.__version__, key, ranges, previous,
            ],
        )  # fmt: skip
        shown = con.execute(
            "SELECT record, reason FROM market.rejected_rows WHERE batch_id = ? "
            "AND category <> 'conflict' ORDER BY record LIMIT ?",
            [batch_id, SAMPLE],
        ).fetchall()
    return IngestReport(
        file=str(path),
        format=fmt,
        kind=kind,
        sha256=digest,
        file_bytes=size,
        batch_id=int(batch_id),
        replace=False,
        rows_read=int(rows_read),
        inserted=0,
        already_present=int(inserted + present),
        conflicts=0,
        replaced=0,
        rejected=int(rejected),
        rejects_sample=tuple(f"record {r}: {reason}" for r, reason in shown),
        assets=tuple(AssetRange(a, f, last, int(n)) for a, f, last, n in json.loads(ranges)),
    )


def _row_json(spec: KindSpec, alias: str) -> str:
    """A staged or stored row as JSON, canonical columns only (what `raw` keeps)."""
    return "to_json(struct_pack(" + ", ".join(f"{c} := {alias}.{c}" for c in spec.columns) + "))"


def _key_match(spec: KindSpec, left: str, right: str) -> str:
    return " AND ".join(f"{left}.{k} = {right}.{k}" for k in spec.key)


def _records(rids: np.ndarray, staged: Staged) -> np.ndarray:
    """Map ``_stage`` row ids (0-based, parser-accepted order) to 1-based file records."""
    rids = np.asarray(rids, dtype=np.int64)
    if not staged.parser_rejects:
        return rids + 1
    rejected = np.unique([r.record for r in staged.parser_rejects])
    accepted = np.setdiff1d(np.arange(1, staged.records_read + 1), rejected)
    return accepted[rids]


def _validate(con: duckdb.DuckDBPyConnection, spec: KindSpec, first_day: date) -> None:
    """Fill ``_bad(_rid, column_name, reason, raw)`` with the rows failing any rule."""
    # equity-index series (the built-in S&P 500 and VIX, source `arch`) start in 1990
    day = (
        f"CASE WHEN source IN ({', '.join(repr(x) for x in sorted(EQUITY_SOURCES))}) "
        f"THEN least(DATE '{EQUITY_FIRST_DAY}', DATE '{first_day.isoformat()}') "
        f"ELSE DATE '{first_day.isoformat()}' END"
    )
    rules = [
        Rule(r.column, r.bad.replace("{first_day}", day), r.reason.replace("{first_day}", day))
        for r in spec.rules
    ]
    any_bad = " OR ".join(["_problem IS NOT NULL", *(f"coalesce({r.bad}, false)" for r in rules)])
    first_column = (
        "coalesce("
        + ", ".join(
            [
                "CASE WHEN _problem IS NOT NULL THEN NULL END",
                *(f"CASE WHEN coalesce({r.bad}, false) THEN '{r.column}' END" for r in rules),
            ]
        )
        + ")"
    )
    reasons = (
        "concat_ws('; ', "
        + ", ".join(
            [
                "_problem",
                *(f"CASE WHEN coalesce({r.bad}, false) THEN {r.reason} END" for r in rules),
            ]
        )
        + ")"
    )
    rows = "SELECT rowid AS _rid, * FROM _stage"
    if spec.parsed is not None:
        column, parts = spec.parsed
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _parsed AS SELECT {column} AS _key, {parts} "
            f"FROM (SELECT DISTINCT {column} FROM _stage WHERE {column} IS NOT NULL)"
        )
        rows = (
            "SELECT st.rowid AS _rid, st.*, p.* FROM _stage st "
            f"LEFT JOIN _parsed p ON st.{column} = p._key"
        )
    con.execute(
        f"""
        CREATE TEMP TABLE _bad AS
        SELECT _rid, {first_column} AS column_name, {reasons} AS reason,
               {_row_json(spec, "s")} AS raw
        FROM ({rows}) s WHERE {any_bad}
        """
    )


def _find_duplicates(con: duckdb.DuckDBPyConnection, spec: KindSpec, has_bad: bool) -> None:
    """Fill ``_dup(_rid, keep, variants, rids)`` for keys appearing more than once."""
    keys = ", ".join(spec.key)
    values = ", ".join(f"{c} := {c}" for c in spec.value_columns)
    where = "WHERE rowid NOT IN (SELECT _rid FROM _bad)" if has_bad else ""
    # grouping millions of rows on one 64-bit hash of the key is several times cheaper than on
    # the key's strings; the exact grouping then runs on the few rows whose hash repeats (every
    # true duplicate, and any collision, which the exact grouping drops)
    hashed = f"hash({keys})"
    con.execute(
        f"""
        CREATE TEMP TABLE _dupkeys AS
        WITH repeated AS (
            SELECT {hashed} AS h FROM _stage {where} GROUP BY h HAVING count(*) > 1
        )
        SELECT {keys}, count(*) AS n
        FROM _stage
        WHERE {hashed} IN (SELECT h FROM repeated)
          {"AND rowid NOT IN (SELECT _rid FROM _bad)" if has_bad else ""}
        GROUP BY {keys} HAVING count(*) > 1
        """
    )
    con.execute(
        f"""
        CREATE TEMP TABLE _dup AS
        WITH rows AS (
            SELECT s.rowid AS _rid, {", ".join(f"s.{k}" for k in spec.key)},
                   struct_pack({values}) AS v
            FROM _stage s JOIN _dupkeys d ON {_key_match(spec, "s", "d")}
            {"WHERE s.rowid NOT IN (SELECT _rid FROM _bad)" if has_bad else ""}
        ), grouped AS (
            SELECT {keys}, count(DISTINCT v) AS variants, min(_rid) AS first_rid,
                   list(_rid ORDER BY _rid) AS rids
            FROM rows GROUP BY {keys}
        )
        SELECT r._rid, g.variants, r._rid = g.first_rid AS keep, g.rids
        FROM rows r JOIN grouped g ON {_key_match(spec, "r", "g")}
        """
    )


def load_file(
    con: duckdb.DuckDBPyConnection,
    path: str | Path,
    options: ReadOptions | None = None,
    *,
    replace: bool = False,
    now: datetime | None = None,
) -> IngestReport:
    """Load one file in one transaction and record it as a batch.

    Parameters
    ----------
    con
        An open warehouse connection (:func:`pipelines.warehouse.connect`).
    path
        The file. Its format and kind are detected unless ``options`` names them.
    options
        Format, kind, source and asset overrides; ``force`` loads a price file whose closes
        differ from the stored series of the same asset and source on most overlapping days
        (refused otherwise: it is another series, e.g. USD against USDT).
    replace
        Overwrite rows whose key exists with a different value (the old rows are kept in
        ``market.superseded_rows`` and the batch records how many were replaced).
    now
        The batch's start time (UTC); defaults to the wall clock.
    """
    path = Path(path)
    options = options or ReadOptions()
    started = now or datetime.now(UTC)
    if not replace and path.is_file():
        repeated = _repeat_if_unchanged(con, path, options, started)
        if repeated is not None:
            return repeated
    hasher = _FileHasher(path)
    if path.is_file():
        hasher.start()
    try:
        # Staging only touches connection-local temp tables, so it runs before the
        # transaction: committed temp tables number their rows 0..n-1 in file order, which
        # `_records` relies on (rows added inside a transaction get provisional row ids).
        staged = stage_file(con, path, options)
        with transaction(con):
            report = _load_staged(con, path, staged, replace, started, hasher, options)
    finally:
        if hasher.is_alive():
            hasher.join()
        for table in (
            "_stage",
            "_bad",
            "_dupkeys",
            "_dup",
            "_match",
            "_csv_rejects",
            "_csv_reject_scans",
            "_parsed",
        ):
            con.execute(f"DROP TABLE IF EXISTS {table}")
    return report


def _load_staged(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    staged: Staged,
    replace: bool,
    started: datetime,
    hasher: _FileHasher,
    options: ReadOptions,
) -> IngestReport:
    spec = SPECS[staged.kind]
    force, staged_first_day = options.force, options.first_day
    batch_id = con.execute("SELECT nextval('market.batch_id_seq')").fetchone()[0]
    file_path = str(path)

    _validate(con, spec, staged_first_day)
    bad = con.execute("SELECT _rid, column_name, reason, raw FROM _bad ORDER BY _rid").df()
    _find_duplicates(con, spec, has_bad=len(bad) > 0)
    dup = con.execute("SELECT _rid, variants, keep, rids FROM _dup ORDER BY _rid").df()
    if spec.kind is Kind.IV and len(dup):
        _refuse_intraday_iv(con, path)

    excluded_sql = []
    if len(bad):
        excluded_sql.append("SELECT _rid FROM _bad")
    if len(dup):
        excluded_sql.append("SELECT _rid FROM _dup WHERE variants > 1 OR NOT keep")
    not_excluded = (
        f"s.rowid NOT IN ({' UNION ALL '.join(excluded_sql)})" if excluded_sql else "true"
    )
    differs = " OR ".join(f"s.{c} IS DISTINCT FROM t.{c}" for c in spec.value_columns)
    diff_text = (
        "concat_ws('; ', "
        + ", ".join(
            f"CASE WHEN s.{c} IS DISTINCT FROM t.{c} THEN '{c}: existing ' || "
            f"coalesce(t.{c}::VARCHAR, 'NULL') || ', new ' || coalesce(s.{c}::VARCHAR, 'NULL') END"
            for c in spec.value_columns
        )
        + ")"
    )
    con.execute(
        f"""
        CREATE TEMP TABLE _match AS
        SELECT s.rowid AS _rid, ({differs}) AS differs,
               CASE WHEN ({differs}) THEN {diff_text} END AS diff,
               CASE WHEN ({differs}) THEN to_json(t) END AS previous,
               CASE WHEN ({differs}) THEN {_row_json(spec, "s")} END AS incoming
        FROM _stage s JOIN {spec.table} t ON {_key_match(spec, "s", "t")}
        WHERE {not_excluded}
        """
    )
    present, conflicts = con.execute(
        "SELECT count(*) FILTER (WHERE NOT differs), count(*) FILTER (WHERE differs) FROM _match"
    ).fetchone()
    if spec.kind is Kind.PRICES and conflicts and not force:
        _refuse_level_mismatch(con, path, spec)

    columns = ", ".join(spec.columns)
    inserted = con.execute(
        f"""
        INSERT INTO {spec.table} ({columns}, batch_id)
        SELECT {", ".join(f"s.{c}" for c in spec.columns)}, {batch_id}
        FROM _stage s
        WHERE {not_excluded} AND s.rowid NOT IN (SELECT _rid FROM _match)
        """
    ).fetchone()[0]

    conflict_rows = con.execute(
        "SELECT _rid, diff, previous, incoming FROM _match WHERE differs ORDER BY _rid"
    ).df()
    replaced = 0
    if replace and conflicts:
        con.execute(
            f"INSERT INTO market.superseded_rows SELECT {batch_id}, '{spec.table}', previous "
            "FROM _match WHERE differs"
        )
        assignments = ", ".join(f"{c} = s.{c}" for c in spec.value_columns)
        con.execute(
            f"""
            UPDATE {spec.table} AS t SET {assignments}, batch_id = {batch_id}
            FROM _stage s, _match m
            WHERE m.differs AND s.rowid = m._rid AND {_key_match(spec, "s", "t")}
            """
        )
        replaced = int(conflicts)

    rejected_frames = [_parser_frame(staged.parser_rejects)]
    if len(bad):
        rejected_frames.append(
            pd.DataFrame(
                {
                    "record": _records(bad["_rid"].to_numpy(), staged),
                    "column_name": bad["column_name"],
                    "category": "invalid",
                    "reason": bad["reason"],
                    "raw": bad["raw"],
                }
            )
        )
    n_identical = 0
    if len(dup):
        conflicting = dup[dup["variants"] > 1]
        n_identical = int(((dup["variants"] == 1) & ~dup["keep"]).sum())
        if len(conflicting):
            records = _records(conflicting["_rid"].to_numpy(), staged)
            all_records = {rid: rec for rid, rec in zip(conflicting["_rid"], records, strict=True)}
            reasons = [
                "key appears on records "
                + ", ".join(str(all_records.get(r, "?")) for r in rids)
                + " with different values"
                for rids in conflicting["rids"]
            ]
            raws = con.execute(
                f"SELECT {_row_json(spec, 's')} FROM _stage s JOIN _dup d ON s.rowid = d._rid "
                "WHERE d.variants > 1 ORDER BY s.rowid"
            ).fetchall()
            rejected_frames.append(
                pd.DataFrame(
                    {
                        "record": records,
                        "column_name": None,
                        "category": "duplicate",
                        "reason": reasons,
                        "raw": [r[0] for r in raws],
                    }
                )
            )
    if len(conflict_rows) and not replace:
        rejected_frames.append(
            pd.DataFrame(
                {
                    "record": _records(conflict_rows["_rid"].to_numpy(), staged),
                    "column_name": None,
                    "category": "conflict",
                    "reason": "conflict with the stored row: " + conflict_rows["diff"],
                    "raw": conflict_rows["incoming"],
                }
            )
        )
    rejected_all = (
        pd.concat([f for f in rejected_frames if len(f)], ignore_index=True)
        if any(len(f) for f in rejected_frames)
        else None
    )
    n_rejected = 0
    if rejected_all is not None:
        rejected_all = rejected_all.sort_values(["record", "category"], kind="stable")
        rejected_all.insert(0, "file_path", file_path)
        rejected_all.insert(0, "batch_id", batch_id)
        con.register("_rejected_frame", rejected_all)
        try:
            con.execute(
                "INSERT INTO market.rejected_rows "
                "(batch_id, file_path, record, column_name, category, reason, raw) "
                "SELECT batch_id, file_path, record, column_name, category, reason, raw "
                "FROM _rejected_frame"
            )
        finally:
            con.unregister("_rejected_frame")
        n_rejected = int((rejected_all["category"] != "conflict").sum())

    already_present = int(present) + n_identical
    accounted = inserted + already_present + int(conflicts) + n_rejected
    if accounted != staged.records_read:
        raise RuntimeError(
            f"{path}: internal accounting error: read {staged.records_read} records but "
            f"accounted for {accounted}"
        )

    ranges = con.execute(
        f"""
        SELECT asset, min({spec.date_column})::VARCHAR, max({spec.date_column})::VARCHAR,
               count(*)
        FROM _stage s WHERE {not_excluded} GROUP BY asset ORDER BY asset
        """
    ).fetchall()

    hasher.join()
    if hasher.error is not None:
        raise hasher.error
    finished = datetime.now(UTC)
    con.execute(
        """
        INSERT INTO market.ingest_batches VALUES
        (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)
        """,
        [
            batch_id,
            file_path,
            hasher.digest,
            hasher.size,
            staged.format.value,
            staged.kind.value,
            _sources(con, not_excluded),
            replace,
            staged.records_read,
            inserted,
            already_present,
            int(conflicts),
            replaced,
            n_rejected,
            started,
            finished,
            __version__,
            duckdb.__version__,
            _options_key(options),
            json.dumps([list(r) for r in ranges]),
        ],
    )
    samples = []
    if rejected_all is not None:
        shown = rejected_all[rejected_all["category"] != "conflict"].head(SAMPLE)
        samples = [f"record {r.record}: {r.reason}" for r in shown.itertuples()]
    conflict_samples = []
    if len(conflict_rows):
        recs = _records(conflict_rows["_rid"].to_numpy()[:SAMPLE], staged)
        conflict_samples = [
            f"record {rec}: {diff}" for rec, diff in zip(recs, conflict_rows["diff"], strict=False)
        ]
    return IngestReport(
        file=file_path,
        format=staged.format.value,
        kind=staged.kind.value,
        sha256=hasher.digest,
        file_bytes=hasher.size,
        batch_id=int(batch_id),
        replace=replace,
        rows_read=staged.records_read,
        inserted=int(inserted),
        already_present=already_present,
        conflicts=int(conflicts),
        replaced=replaced,
        rejected=n_rejected,
        rejects_sample=tuple(samples),
        conflicts_sample=tuple(conflict_samples),
        assets=tuple(AssetRange(a, f, last, int(n)) for a, f, last, n in ranges),
    )


# A file whose closes differ from the stored series of the same (asset, source) on most
# overlapping days is another series (another quote currency or venue), not a correction: a
# re-download of one series differs, if at all, on a few days.
MISMATCH_MIN_OVERLAP = 5
MISMATCH_SHARE = 0.5
MISMATCH_MEDIAN_LOG = 1e-4  # 0.01 %: far below any USD/USDT basis, far above float rounding


def _refuse_level_mismatch(con: duckdb.DuckDBPyConnection, path: Path, spec: KindSpec) -> None:
    rows = con.execute(
        f"""
        SELECT s.asset, s.source, count(*) AS overlap,
               count(*) FILTER (WHERE abs(ln(s.close / t.close)) > 1e-9) AS differing,
               median(abs(ln(s.close / t.close))) AS median_log
        FROM _stage s JOIN _match m ON s.rowid = m._rid
        JOIN {spec.table} t ON {_key_match(spec, "s", "t")}
        GROUP BY s.asset, s.source ORDER BY s.asset, s.source
        """
    ).fetchall()
    for asset, source, overlap, differing, median_log in rows:
        if (
            overlap >= MISMATCH_MIN_OVERLAP
            and differing > MISMATCH_SHARE * overlap
            and median_log is not None
            and median_log > MISMATCH_MEDIAN_LOG
        ):
            raise BadInputError(
                f"{path}: {asset} closes differ from the stored {asset} series (source "
                f"{source}) on {differing} of {overlap} overlapping days (median "
                f"{100 * (math.exp(median_log) - 1):.3f} %): another series (quote currency or "
                "venue?) — load it under its own --source, or pass --force"
            )


def _refuse_intraday_iv(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Several implied vols for most days of a file are intraday snapshots, not a few bad rows
    (a stray duplicate stays a rejected row):
    refuse the file (row-by-row rejection would load nothing and exit 0)."""
    keys, conflicted, example = con.execute(
        """
        WITH k AS (
            SELECT asset, date, source, tenor_days, count(*) AS n, count(DISTINCT iv) AS values
            FROM _stage GROUP BY ALL
        )
        SELECT count(*), count(*) FILTER (WHERE values > 1),
               arg_max(asset || ' ' || date::VARCHAR || ': ' || n::VARCHAR || ' rows', n)
        FROM k
        """
    ).fetchone()
    if conflicted and conflicted * 2 > keys:
        raise BadInputError(
            f"{path}: {conflicted} of {keys} days hold several implied-vol values (e.g. "
            f"{example}): intraday snapshots; store one daily value per asset and tenor "
            "(the day's close), e.g. DVOL with resolution 1D"
        )


def _sources(con: duckdb.DuckDBPyConnection, not_excluded: str) -> str:
    rows = con.execute(
        f"SELECT DISTINCT source FROM _stage s WHERE {not_excluded} AND source IS NOT NULL "
        "ORDER BY 1"
    ).fetchall()
    return ",".join(r[0] for r in rows) or "-"


def _parser_frame(rejects: list[ParserReject]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "record": [r.record for r in rejects],
            "column_name": [r.column for r in rejects],
            "category": "invalid",
            "reason": [r.reason for r in rejects],
            "raw": [r.raw for r in rejects],
        }
    )
