"""The ``rpt`` schema: which report was written where, with the SHA-256 of each file."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from pipelines.warehouse import transaction


def record(
    con: duckdb.DuckDBPyConnection,
    report_id: str,
    kind: str,
    title: str,
    folder: Path,
    files: Mapping[str, str],
) -> None:
    """Record a written report (replacing an earlier one of the same id and kind)."""
    with transaction(con):
        con.execute("DELETE FROM rpt.reports WHERE report_id = ? AND kind = ?", [report_id, kind])
        con.execute(
            "INSERT INTO rpt.reports VALUES (?, ?, ?, ?, ?, ?)",
            [report_id, kind, title, datetime.now(UTC), str(folder), json.dumps(dict(files))],
        )


def report_rows(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """Every written report: (report_id, kind, title, out_dir, files JSON), oldest first."""
    return con.execute(
        "SELECT report_id, kind, title, out_dir, files FROM rpt.reports ORDER BY written_at"
    ).fetchall()
