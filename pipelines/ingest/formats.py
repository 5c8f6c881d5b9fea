"""Reading source files into a staging table.

Each reader turns one file into the temporary table ``_stage`` holding the canonical columns of
its kind (:mod:`pipelines.ingest.kinds`) plus ``_problem``, a reader-specific reason to reject
the row (NULL when the reader has no objection). Rows appear in ``_stage`` in file order, so
the n-th row of ``_stage`` is the n-th record the parser accepted; records the parser itself
could not read are returned as :class:`ParserReject` with their record number.

Supported formats (detected from the extension and the header, or forced with ``--format``):

``tidy-csv`` / ``tidy-parquet``
    ``date,asset,open,high,low,close,volume`` (prices), ``date,asset,iv`` (implied vol, optional
    ``tenor_days``, default 30), ``date,asset,venue,funding_rate_8h_mean,
    funding_rate_8h_abs_mean`` (funding); an optional ``source`` column.
``deribit-options``
    Deribit option-chain snapshot CSV (``timestamp,instrument_name,…,volume_usd``), prices in
    coin per contract, ``implied_volatility`` a decimal.
``deribit-dvol``
    JSON in the shape of ``public/get_volatility_index_data``:
    ``{"result": {"data": [[ts_ms, open, high, low, close], …]}}`` (or the bare ``result``, or a
    list of pages). DVOL is quoted in vol points (65.3 = 65.3 %); stored as a decimal. Bars must
    be daily (resolution ``1D``): a bar's timestamp is midnight UTC of its day.
``binance-klines``
    Binance kline CSV, 12 columns, no header (or the ``open_time,…`` header), millisecond
    (or, for 2025+ spot files, microsecond) timestamps. Daily bars only; the asset comes from
    ``--asset`` or the file name (``BTCUSDT-1d-2024-01.csv``).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from pipelines.errors import BadInputError
from pipelines.files import read_json
from pipelines.ingest.kinds import SPECS, Kind, KindSpec
from pipelines.ingest.options import Format, ReadOptions

DEFAULT_SOURCE = {
    Format.TIDY_CSV: "file",
    Format.TIDY_PARQUET: "file",
    Format.DERIBIT_OPTIONS: "deribit",
    Format.DERIBIT_DVOL: "deribit",
    Format.BINANCE_KLINES: "binance",
}

#: file column -> canonical column, per kind, for the tidy and snapshot layouts
LAYOUTS: dict[Kind, dict[str, str]] = {
    Kind.PRICES: {c: c for c in ("date", "asset", "open", "high", "low", "close", "volume")},
    Kind.IV: {"date": "date", "asset": "asset", "iv": "iv", "tenor_days": "tenor_days"},
    Kind.FUNDING: {
        "date": "date",
        "asset": "asset",
        "venue": "venue",
        "funding_rate_8h_mean": "rate_8h_mean",
        "funding_rate_8h_abs_mean": "rate_8h_abs_mean",
        "rate_8h_mean": "rate_8h_mean",
        "rate_8h_abs_mean": "rate_8h_abs_mean",
    },
    Kind.OPTIONS: {
        "timestamp": "snapshot_ts",
        "instrument_name": "instrument_name",
        "underlying": "underlying_price",
        "underlying_name": "underlying_name",
        "option_type": "option_type",
        "strike": "strike",
        "expiry_datetime": "expiry",
        "time_to_maturity": "time_to_maturity",
        "bid_price": "bid_price",
        "ask_price": "ask_price",
        "mark_price": "mark_price",
        "mid_price": "mid_price",
        "futures_price": "futures_price",
        "futures_instrument_name": "futures_instrument_name",
        "implied_volatility": "implied_volatility",
        "delta": "delta",
        "vega": "vega",
        "open_interest": "open_interest",
        "volume": "volume",
        "bid_ask_spread": "bid_ask_spread",
        "currency": "asset",
        "index_price": "index_price",
        "volume_usd": "volume_usd",
    },
}

#: canonical columns a file must carry (others may be absent and are NULL)
REQUIRED: dict[Kind, set[str]] = {
    Kind.PRICES: {"date", "asset", "close"},
    Kind.IV: {"date", "asset", "iv"},
    Kind.FUNDING: {"date", "asset", "venue", "rate_8h_mean"},
    Kind.OPTIONS: {
        "snapshot_ts",
        "instrument_name",
        "option_type",
        "strike",
        "expiry",
        "mark_price",
        "implied_volatility",
        "asset",
        "index_price",
    },
}

KLINE_COLUMNS = {
    "open_time": "BIGINT",
    "open": "DOUBLE",
    "high": "DOUBLE",
    "low": "DOUBLE",
    "close": "DOUBLE",
    "volume": "DOUBLE",
    "close_time": "BIGINT",
    "quote_volume": "DOUBLE",
    "count": "BIGINT",
    "taker_buy_volume": "DOUBLE",
    "taker_buy_quote_volume": "DOUBLE",
    "ignore": "VARCHAR",
}
_QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "USD")
_DVOL_CURRENCIES = ("BTC", "ETH")


@dataclass(frozen=True)
class ParserReject:
    record: int  # 1-based data record in the file
    column: str | None
    reason: str
    raw: str | None


@dataclass
class Staged:
    """What a reader left in ``_stage``, and what it could not read."""

    format: Format
    kind: Kind
    records_read: int  # accepted by the parser + rejected by the parser
    parser_rejects: list[ParserReject] = field(default_factory=list)


# --------------------------------------------------------------------------- detection


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig")
    return open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115


def read_header(path: Path) -> list[str]:
    """The first CSV line, as fields; a bad-input error if it is not text."""
    try:
        with _open_text(path) as handle:
            line = handle.readline()
    except (UnicodeDecodeError, OSError, EOFError) as exc:
        raise BadInputError(f"{path}: not a readable UTF-8 text file ({exc})") from exc
    if not line.strip():
        raise BadInputError(f"{path}: the file is empty (no header line)")
    return [f.strip() for f in next(csv.reader([line]))]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _tidy_kind(
    path: Path, columns: list[str], wanted: Kind | None, provided: frozenset[str] = frozenset()
) -> Kind:
    """The kind whose required columns the header carries (``provided``: given by options)."""
    names = set(columns)
    candidates = [
        kind
        for kind in (Kind.OPTIONS, Kind.PRICES, Kind.IV, Kind.FUNDING)
        if REQUIRED[kind] <= {LAYOUTS[kind][c] for c in names if c in LAYOUTS[kind]} | provided
    ]
    if wanted is not None:
        if wanted not in candidates:
            missing = REQUIRED[wanted] - {LAYOUTS[wanted].get(c) for c in names} - provided
            raise BadInputError(
                f"{path}: not a {wanted.value} file: missing column(s) "
                f"{', '.join(sorted(missing))} (header: {', '.join(columns)})"
            )
        return wanted
    if not candidates:
        raise BadInputError(
            f"{path}: cannot tell what this file holds from its header "
            f"({', '.join(columns[:12])}); expected date,asset,open,high,low,close,volume "
            "(prices), date,asset,iv (iv), date,asset,venue,funding_rate_8h_mean (funding) "
            "or a Deribit option-chain snapshot; or pass --format/--kind"
        )
    return candidates[0]


def detect(path: Path, options: ReadOptions) -> tuple[Format, Kind]:
    """The file's format and kind, from ``options`` where given, else from the file."""
    if not path.exists():
        raise BadInputError(f"{path}: no such file")
    if path.is_dir():
        raise BadInputError(f"{path}: is a folder; pass the files inside it")
    if not path.is_file():  # a FIFO or a device (/dev/zero) would hang or never end
        raise BadInputError(f"{path}: not a regular file (a FIFO, socket or device)")
    if path.stat().st_size == 0:
        raise BadInputError(f"{path}: the file is empty")
    fmt = options.format
    suffixes = [s.lower() for s in path.suffixes]
    if fmt is None:
        if suffixes[-1:] == [".json"]:
            fmt = Format.DERIBIT_DVOL
        elif suffixes[-1:] in ([".parquet"], [".pq"]):
            fmt = Format.TIDY_PARQUET
        else:
            header = read_header(path)
            lowered = [h.lower() for h in header]
            if len(header) == 12 and (_is_number(header[0]) or lowered[0] == "open_time"):
                fmt = Format.BINANCE_KLINES
            elif {"instrument_name", "implied_volatility", "mark_price"} <= set(lowered):
                fmt = Format.DERIBIT_OPTIONS
            else:
                fmt = Format.TIDY_CSV
    natural = {
        Format.DERIBIT_DVOL: Kind.IV,
        Format.BINANCE_KLINES: Kind.PRICES,
        Format.DERIBIT_OPTIONS: Kind.OPTIONS,
    }.get(fmt)
    if natural is not None:
        if options.kind is not None and options.kind != natural:
            raise BadInputError(
                f"{path}: format {fmt.value} holds {natural.value}, not {options.kind.value}"
            )
        return fmt, natural
    provided = frozenset({"asset"} if options.asset else set())
    if fmt is Format.TIDY_PARQUET:
        return fmt, _tidy_kind(path, _parquet_columns(path), options.kind, provided)
    return fmt, _tidy_kind(path, read_header(path), options.kind, provided)


def _parquet_columns(path: Path) -> list[str]:
    try:
        con = duckdb.connect()
        return [
            row[0]
            for row in con.execute(f"DESCRIBE SELECT * FROM read_parquet({_lit(path)})").fetchall()
        ]
    except duckdb.Error as exc:
        raise BadInputError(f"{path}: not a readable Parquet file ({_first_line(exc)})") from exc


# --------------------------------------------------------------------------- helpers


def _lit(value: object) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _select_canonical(spec: KindSpec, present: dict[str, str], constants: dict[str, str]) -> str:
    """SELECT list producing the canonical columns from file columns and constants."""
    exprs = []
    for column, sql_type in spec.columns.items():
        if column in constants:
            exprs.append(f"CAST({constants[column]} AS {sql_type}) AS {column}")
        elif column in present:
            exprs.append(f"{_ident(present[column])} AS {column}")
        else:
            exprs.append(f"CAST(NULL AS {sql_type}) AS {column}")
    return ", ".join(exprs)


def _source_constant(fmt: Format, options: ReadOptions, file_has_source: bool) -> dict[str, str]:
    if options.source is not None:
        return {"source": _lit(options.source)}
    if file_has_source:
        return {}
    return {"source": _lit(DEFAULT_SOURCE[fmt])}


def _read_csv_staged(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    fmt: Format,
    kind: Kind,
    file_types: dict[str, str],
    select_list: str,
    *,
    header: bool,
) -> Staged:
    """Stage a CSV through DuckDB's reader, collecting the records it could not parse."""
    con.execute("DROP TABLE IF EXISTS _stage")
    con.execute("DROP TABLE IF EXISTS _csv_rejects")
    con.execute("DROP TABLE IF EXISTS _csv_reject_scans")
    try:
        con.execute(
            f"""
            CREATE TEMP TABLE _stage AS
            SELECT {select_list}
            FROM read_csv({_lit(path)}, header = {str(header).lower()}, columns = $types,
                          delim = ',', quote = '"', escape = '"', auto_detect = false,
                          dateformat = '%Y-%m-%d',
                          store_rejects = true, rejects_table = '_csv_rejects',
                          rejects_scan = '_csv_reject_scans')
            """,
            {"types": file_types},
        )
    except duckdb.Error as exc:
        raise BadInputError(f"{path}: cannot parse as {fmt.value}: {_first_line(exc)}") from exc
    offset = 1 if header else 0
    rows = con.execute(
        """
        SELECT line - $offset AS record, arg_min(error_type, column_idx)::VARCHAR,
               arg_min(column_name, column_idx), arg_min(error_message, column_idx),
               any_value(csv_line)
        FROM _csv_rejects GROUP BY line ORDER BY line
        """,
        {"offset": offset},
    ).fetchall()
    rejects = []
    for record, error_type, column, message, raw in rows:
        if error_type in ("MISSING COLUMNS", "TOO MANY COLUMNS"):
            column = None  # the record's shape is wrong, not one field
            message = f"wrong number of fields ({message})"
        rejects.append(
            ParserReject(int(record), None if column in (None, "") else str(column), message, raw)
        )
    accepted = con.execute("SELECT count(*) FROM _stage").fetchone()[0]
    return Staged(fmt, kind, accepted + len(rejects), rejects)


# --------------------------------------------------------------------------- readers


def stage_layout_csv(
    con: duckdb.DuckDBPyConnection, path: Path, fmt: Format, kind: Kind, options: ReadOptions
) -> Staged:
    """Tidy CSV and Deribit option snapshots: named columns mapped onto the canonical ones."""
    spec = SPECS[kind]
    header = read_header(path)
    if len(set(header)) != len(header):
        raise BadInputError(f"{path}: the header repeats a column name ({', '.join(header)})")
    layout = dict(LAYOUTS[kind])
    layout["source"] = "source"
    present: dict[str, str] = {}
    file_types: dict[str, str] = {}
    for name in header:
        canonical = layout.get(name)
        if canonical is not None and canonical not in present:
            present[canonical] = name
            file_types[name] = spec.columns[canonical]
        else:
            file_types[name] = "VARCHAR"  # carried through the reader, not stored
    constants = _source_constant(fmt, options, "source" in present)
    if kind is Kind.IV and "tenor_days" not in present:
        constants["tenor_days"] = "30"
    if options.asset is not None:
        constants["asset"] = _lit(options.asset)
    select = _select_canonical(spec, present, constants) + ", CAST(NULL AS VARCHAR) AS _problem"
    return _read_csv_staged(con, path, fmt, kind, file_types, select, header=True)


def _asset_from_symbol(path: Path) -> str | None:
    match = re.match(r"^([A-Z0-9]+?)(" + "|".join(_QUOTES) + r")[-_.]", path.name.upper())
    return match.group(1) if match else None


def stage_binance_klines(
    con: duckdb.DuckDBPyConnection, path: Path, options: ReadOptions
) -> Staged:
    asset = options.asset or _asset_from_symbol(path)
    if asset is None:
        raise BadInputError(
            f"{path}: cannot tell the asset from the file name (expected e.g. "
            "BTCUSDT-1d-2024-01.csv); pass --asset"
        )
    header = read_header(path)
    has_header = not _is_number(header[0])
    # Binance switched spot files to microseconds in 2025: a millisecond timestamp for any
    # date before 2286 is < 1e13, a microsecond one > 1e14.
    unit = "CASE WHEN open_time > 100000000000000 THEN 1000000 ELSE 1000 END"
    day_ms = "CASE WHEN open_time > 100000000000000 THEN 86400000000 ELSE 86400000 END"
    select = f"""
        {_lit(asset)}::VARCHAR AS asset,
        CAST(to_timestamp(open_time / {unit}) AS DATE) AS date,
        {_lit(options.source or DEFAULT_SOURCE[Format.BINANCE_KLINES])}::VARCHAR AS source,
        open, high, low, close, volume,
        CASE
          WHEN open_time % ({day_ms}) <> 0
            THEN 'open_time: ' || open_time::VARCHAR
                 || ' is not midnight UTC (only daily klines are stored)'
          WHEN close_time - open_time + 1 <> {day_ms}
            THEN 'close_time: bar is not one day long (only daily klines are stored)'
        END AS _problem
    """
    return _read_csv_staged(
        con,
        path,
        Format.BINANCE_KLINES,
        Kind.PRICES,
        dict(KLINE_COLUMNS),
        select,
        header=has_header,
    )


MAX_JSON_BYTES = 200_000_000  # a decade of hourly DVOL is ~10 MB
MAX_JSON_DEPTH = 8  # a reply is at most [page, {result, data: [[...]]}]
# bars outside [2009-01-01, tomorrow] are not market data (no crypto series starts earlier)
FIRST_DAY_MS = 1_230_768_000_000


def _dvol_entries(path: Path) -> tuple[list, str | None]:
    if path.stat().st_size > MAX_JSON_BYTES:
        raise BadInputError(f"{path}: larger than {MAX_JSON_BYTES:,} bytes")
    document = read_json(path, MAX_JSON_DEPTH)
    pages = document if isinstance(document, list) else [document]
    entries: list = []
    currency = None
    for number, page in enumerate(pages, start=1):
        if not isinstance(page, dict):
            raise BadInputError(f"{path}: page {number} is not a JSON object")
        if "error" in page:
            raise BadInputError(f"{path}: page {number} is an error reply: {page['error']}")
        result = page.get("result", page)
        if not isinstance(result, dict) or not isinstance(result.get("data"), list):
            raise BadInputError(
                f"{path}: page {number} has no result.data list "
                "(expected Deribit get_volatility_index_data output)"
            )
        entries.extend(result["data"])
        currency = currency or page.get("currency") or result.get("currency")
    return entries, currency


def _asset_from_name(path: Path) -> str | None:
    tokens = {t.upper() for t in re.split(r"[^A-Za-z0-9]+", path.stem)}
    found = [c for c in _DVOL_CURRENCIES if c in tokens]
    return found[0] if len(found) == 1 else None


def stage_deribit_dvol(con: duckdb.DuckDBPyConnection, path: Path, options: ReadOptions) -> Staged:
    entries, currency = _dvol_entries(path)
    asset = options.asset or currency or _asset_from_name(path)
    if asset is None:
        raise BadInputError(
            f"{path}: cannot tell the currency of this DVOL series (no 'currency' key, no BTC/ETH "
            "in the file name); pass --asset"
        )
    rows, rejects = [], []
    for record, entry in enumerate(entries, start=1):
        ok = (
            isinstance(entry, list)
            and len(entry) == 5
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in entry)
        )
        if not ok:
            rejects.append(
                ParserReject(
                    record,
                    None,
                    "entry must be [timestamp_ms, open, high, low, close]",
                    json.dumps(entry)[:500],
                )
            )
            continue
        ts, opn, high, low, close = entry
        problem = None
        last_ms = (int(time.time()) // 86_400 + 2) * 86_400_000  # the end of tomorrow (UTC)
        if not all(math.isfinite(v) for v in (ts, opn, high, low, close)):
            rejects.append(
                ParserReject(
                    record, None, "entry holds a non-finite number", json.dumps(entry)[:500]
                )
            )
            continue
        if not FIRST_DAY_MS <= ts < last_ms:
            rejects.append(
                ParserReject(
                    record,
                    "timestamp",
                    f"timestamp {ts!r} ms is outside 2009-01-01 .. tomorrow",
                    json.dumps(entry)[:500],
                )
            )
            continue
        if int(ts) % 86_400_000 != 0:
            problem = (
                f"timestamp: {int(ts)} is not midnight UTC "
                "(only daily DVOL bars are stored; request resolution=1D)"
            )
        rows.append((int(ts), opn / 100.0, high / 100.0, low / 100.0, close / 100.0, problem))
    frame = pd.DataFrame(rows, columns=["ts", "o", "h", "l", "c", "_problem"])
    if len(frame):
        per_day = (frame["ts"] // 86_400_000).value_counts()
        # most days with several bars is an intraday series (a stray bar is a bad row)
        if 2 * (per_day > 1).sum() > len(per_day):
            day = pd.Timestamp(int(per_day.index[0]) * 86_400_000, unit="ms").date()
            raise BadInputError(
                f"{path}: {int((per_day > 1).sum())} day(s) hold several DVOL bars (e.g. {day}: "
                f"{int(per_day.iloc[0])}): an intraday series; only daily bars are stored — "
                "request resolution=1D (its close is the day's value)"
            )
    frame["_problem"] = frame["_problem"].astype(object)
    con.execute("DROP TABLE IF EXISTS _stage")
    con.register("_dvol_frame", frame)
    try:
        con.execute(
            f"""
            CREATE TEMP TABLE _stage AS
            SELECT {_lit(asset)}::VARCHAR AS asset,
                   CAST(to_timestamp(ts // 1000) AS DATE) AS date,
                   {_lit(options.source or DEFAULT_SOURCE[Format.DERIBIT_DVOL])}::VARCHAR AS source,
                   30::INTEGER AS tenor_days,
                   c::DOUBLE AS iv, o::DOUBLE AS iv_open, h::DOUBLE AS iv_high, l::DOUBLE AS iv_low,
                   _problem::VARCHAR AS _problem
            FROM _dvol_frame
            """
        )
    finally:
        con.unregister("_dvol_frame")
    return Staged(Format.DERIBIT_DVOL, Kind.IV, len(entries), rejects)


def stage_tidy_parquet(
    con: duckdb.DuckDBPyConnection, path: Path, kind: Kind, options: ReadOptions
) -> Staged:
    spec = SPECS[kind]
    described = con.execute(f"DESCRIBE SELECT * FROM read_parquet({_lit(path)})").fetchall()
    file_types = {row[0]: row[1] for row in described}
    layout = dict(LAYOUTS[kind])
    layout["source"] = "source"
    exprs, problems = [], []
    present = {}
    for name in file_types:
        canonical = layout.get(name)
        if canonical is not None and canonical not in present:
            present[canonical] = name
    constants = _source_constant(Format.TIDY_PARQUET, options, "source" in present)
    if kind is Kind.IV and "tenor_days" not in present:
        constants["tenor_days"] = "30"
    if options.asset is not None:
        constants["asset"] = _lit(options.asset)
    for column, sql_type in spec.columns.items():
        if column in constants:
            exprs.append(f"CAST({constants[column]} AS {sql_type}) AS {column}")
        elif column in present:
            src = _ident(present[column])
            if file_types[present[column]] == sql_type:
                exprs.append(f"{src} AS {column}")
            else:
                # text dates must be ISO, as in CSV files; other types cast leniently
                cast = (
                    f"CAST(try_strptime({src}::VARCHAR, '%Y-%m-%d') AS DATE)"
                    if sql_type == "DATE"
                    else f"TRY_CAST({src} AS {sql_type})"
                )
                exprs.append(f"{cast} AS {column}")
                problems.append(
                    f"CASE WHEN {src} IS NOT NULL AND {cast} IS NULL "
                    f"THEN '{column}: cannot read ''' || {src}::VARCHAR || ''' as {sql_type}' END"
                )
        else:
            exprs.append(f"CAST(NULL AS {sql_type}) AS {column}")
    problem = f"NULLIF(concat_ws('; ', {', '.join(problems)}), '')" if problems else "NULL"
    con.execute("DROP TABLE IF EXISTS _stage")
    try:
        con.execute(
            f"CREATE TEMP TABLE _stage AS SELECT {', '.join(exprs)}, "
            f"CAST({problem} AS VARCHAR) AS _problem FROM read_parquet({_lit(path)})"
        )
    except duckdb.Error as exc:
        raise BadInputError(f"{path}: cannot read Parquet: {_first_line(exc)}") from exc
    count = con.execute("SELECT count(*) FROM _stage").fetchone()[0]
    return Staged(Format.TIDY_PARQUET, kind, count, [])


def stage_file(con: duckdb.DuckDBPyConnection, path: Path, options: ReadOptions) -> Staged:
    """Detect ``path``'s format and kind and stage it into ``_stage``."""
    fmt, kind = detect(path, options)
    if fmt is Format.DERIBIT_DVOL:
        staged = stage_deribit_dvol(con, path, options)
    elif fmt is Format.BINANCE_KLINES:
        staged = stage_binance_klines(con, path, options)
    elif fmt is Format.TIDY_PARQUET:
        staged = stage_tidy_parquet(con, path, kind, options)
    else:
        staged = stage_layout_csv(con, path, fmt, kind, options)
    if staged.records_read > 0 and staged.records_read == len(staged.parser_rejects):
        first = staged.parser_rejects[0]
        raise BadInputError(
            f"{path}: no record could be read as {fmt.value} "
            f"(record {first.record}: {first.reason})"
        )
    return staged
