"""Ingestion speed: 5,000,000 option marks through the validating loader vs a bare DuckDB insert.

Inputs: a CSV in the shape of a Deribit option-chain snapshot, generated from the real snapshot
in ../shared/data/options/ (its 1,706 rows repeated with snapshot times one second apart, so
every row has its own natural key and no option has expired). Figures:

* rows/s of ``pipelines.ingest.load_file`` into a fresh warehouse (validation, duplicate and
  conflict detection, rejected-row bookkeeping, batch record, one transaction);
* rows/s of a bare ``INSERT INTO t SELECT * FROM read_csv(file)`` into a fresh DuckDB file with
  the same columns and no constraints — the floor any loader pays to parse and store the file;
* the idempotent re-load of the same file (everything already present) vs the first load;
* scaling (figures): our load of the file's first 1.25M and 2.5M rows (and all 5M, above) on
  fresh warehouses, the log-log slope of time against rows and the peak resident memory.

Each timing is the best of ``REPEATS`` runs on fresh database files, after the CSV has been
read once so that both paths see a warm page cache.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import WORK, curve, peak_rss_gib, shared_data, write_results  # noqa: E402

from pipelines.ingest import file_sha256, load_file  # noqa: E402
from pipelines.warehouse import connect  # noqa: E402

ROWS = 5_000_000
REPEATS = 2


def generate(path: Path) -> None:
    data = shared_data()
    if data is None:
        raise SystemExit("needs ../shared/data (or MWB_SHARED_DATA) for the option snapshot")
    snapshot = next((data / "options").glob("*.csv"))
    con = duckdb.connect()
    con.execute(f"CREATE TABLE s AS SELECT * FROM read_csv('{snapshot}')")
    n = con.execute("SELECT count(*) FROM s").fetchone()[0]
    reps = ROWS // n + 1
    columns = [r[0] for r in con.execute("DESCRIBE s").fetchall()]
    select = ", ".join(
        "strftime(timestamp + to_seconds(r.range), '%Y-%m-%dT%H:%M:%S.%f+00:00') AS timestamp"
        if c == "timestamp"
        else f"s.{c}"
        for c in columns
    )
    con.execute(
        f"COPY (SELECT {select} FROM range({reps}) r, s ORDER BY r.range LIMIT {ROWS}) "
        f"TO '{path}' (HEADER)"
    )


def head(csv: Path, rows: int) -> Path:
    """The header and first ``rows`` rows of ``csv`` (generated once, kept in bench/work)."""
    path = csv.with_name(f"{csv.stem}_head{rows}.csv")
    if not path.exists():
        with csv.open("rb") as source, path.open("wb") as out:
            for _ in range(rows + 1):
                out.write(source.readline())
    return path


def load_seconds(csv: Path, db: Path) -> float:
    con = connect(fresh(db))
    started = time.perf_counter()
    load_file(con, csv)
    seconds = time.perf_counter() - started
    con.close()
    return seconds


def fresh(path: Path) -> Path:
    for p in (path, path.with_suffix(path.suffix + ".wal")):
        p.unlink(missing_ok=True)
    return path


def bare_insert(csv: Path, db: Path) -> float:
    con = duckdb.connect(str(fresh(db)))
    con.execute(f"CREATE TABLE bare AS SELECT * FROM read_csv('{csv}') LIMIT 0")
    started = time.perf_counter()
    con.execute(f"INSERT INTO bare SELECT * FROM read_csv('{csv}')")
    con.close()  # includes the checkpoint, as our load's commit does
    return time.perf_counter() - started


def ours(csv: Path, db: Path) -> tuple[float, float]:
    con = connect(fresh(db))
    started = time.perf_counter()
    first = load_file(con, csv)
    first_time = time.perf_counter() - started
    assert first.inserted == ROWS and first.rejected == 0, first
    started = time.perf_counter()
    again = load_file(con, csv)
    reload_time = time.perf_counter() - started
    assert again.inserted == 0 and again.already_present == ROWS, again
    con.close()
    return first_time, reload_time


def main() -> None:
    WORK.mkdir(exist_ok=True)
    csv = WORK / "option_marks_5m.csv"
    if not csv.exists():
        print(f"generating {ROWS:,} option marks -> {csv}")
        generate(csv)
    size = csv.stat().st_size
    file_sha256(csv)  # warm the page cache
    # the smaller loads first: the peak memory is the process's high-water mark
    small = {
        n: (load_seconds(head(csv, n), WORK / "scaling.duckdb"), peak_rss_gib())
        for n in (ROWS // 4, ROWS // 2)
    }
    fresh(WORK / "scaling.duckdb").unlink(missing_ok=True)
    bare_times, first_times, reload_times = [], [], []
    for _ in range(REPEATS):
        bare_times.append(bare_insert(csv, WORK / "bare.duckdb"))
        first, again = ours(csv, WORK / "ours.duckdb")
        first_times.append(first)
        reload_times.append(again)
    bare, first, again = min(bare_times), min(first_times), min(reload_times)
    scaling = curve({**small, ROWS: (first, peak_rss_gib())}, "rows")
    figures = {
        "rows": ROWS,
        "file_mb": round(size / 1e6, 1),
        "bare_seconds": round(bare, 3),
        "bare_rows_per_s": round(ROWS / bare),
        "ours_seconds": round(first, 3),
        "ours_rows_per_s": round(ROWS / first),
        "reload_seconds": round(again, 3),
        "runs": {"bare": bare_times, "ours": first_times, "reload": reload_times},
        "scaling": scaling,
    }
    print(f"bare DuckDB insert : {bare:6.2f} s  {ROWS / bare:12,.0f} rows/s")
    print(f"validated load     : {first:6.2f} s  {ROWS / first:12,.0f} rows/s")
    print(f"idempotent re-load : {again:6.2f} s  (inserts 0)")
    write_results(
        "ingest",
        figures,
        {
            "ingest_speed_vs_bare": {"value": round(bare / first, 3), "target": ">= 0.8"},
            "reload_time_vs_first_load": {"value": round(again / first, 3), "target": "<= 0.3"},
        },
    )
    shutil.rmtree(WORK / "tmp", ignore_errors=True)


if __name__ == "__main__":
    main()
