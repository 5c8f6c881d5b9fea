"""A load killed with SIGKILL half-way leaves no partial batch (one transaction per load)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import duckdb
import pytest

from pipelines.warehouse import connect

LOADER = """
import sys
from pipelines.warehouse import connect
from pipelines.ingest import load_file
con = connect(sys.argv[1])
print("connected", flush=True)
load_file(con, sys.argv[2])
print("done", flush=True)
"""


def consistent(db) -> tuple[int, int]:
    """Batches and rows agree: every row belongs to a recorded batch and the batches' inserted
    counts add up to the rows stored. Returns (batches, rows)."""
    con = connect(db)
    try:
        orphans = con.execute(
            "SELECT count(*) FROM market.prices "
            "WHERE batch_id NOT IN (SELECT batch_id FROM market.ingest_batches)"
        ).fetchone()[0]
        batches, inserted = con.execute(
            "SELECT count(*), coalesce(sum(inserted), 0) FROM market.ingest_batches"
        ).fetchone()
        rows = con.execute("SELECT count(*) FROM market.prices").fetchone()[0]
    finally:
        con.close()
    assert orphans == 0
    assert inserted == rows
    return batches, rows


@pytest.mark.slow
def test_sigkill_mid_load_leaves_no_partial_batch(tmp_path) -> None:
    csv = tmp_path / "big.csv"
    n_assets, n_days = 1000, 2500
    duckdb.execute(
        f"""COPY (SELECT DATE '2020-01-01' + d.range::INTEGER AS date, 'A' || a.range AS asset,
                         100.0 AS open, 102.0 AS high, 99.0 AS low, 101.0 AS close,
                         5.0 AS volume
                  FROM range({n_assets}) a, range({n_days}) d) TO '{csv}' (HEADER)"""
    )
    db = tmp_path / "w.duckdb"
    connect(db).close()
    killed_mid_load = 0
    for delay in (0.4, 1.2, 2.0, 3.5):
        proc = subprocess.Popen(
            [sys.executable, "-c", LOADER, str(db), str(csv)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout.readline().strip() == "connected"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.returncode == -signal.SIGKILL:
            killed_mid_load += 1
        batches, rows = consistent(db)
        assert rows in (0, n_assets * n_days)  # all or nothing
    assert killed_mid_load >= 2, "the loads finished before they could be killed"
    # the warehouse still works, and a complete load gives every row exactly once
    proc = subprocess.run(
        [sys.executable, "-c", LOADER, str(db), str(csv)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert consistent(db)[1] == n_assets * n_days
