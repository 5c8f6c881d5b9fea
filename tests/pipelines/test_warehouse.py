"""Warehouse: ordered migrations, schema, and the single-writer lock."""

from __future__ import annotations

import subprocess
import sys
import time

import duckdb
import pytest

from pipelines.errors import WarehouseBusyError
from pipelines.warehouse import applied_versions, connect, migrate
from pipelines.warehouse.migrations import Migration, available_migrations

MARKET_TABLES = {
    "prices",
    "implied_vol",
    "option_marks",
    "funding",
    "ingest_batches",
    "rejected_rows",
    "superseded_rows",
}


def test_fresh_warehouse_has_every_market_table_and_a_schema_version(con) -> None:
    tables = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'market'"
        ).fetchall()
    }
    assert MARKET_TABLES <= tables
    versions = applied_versions(con)
    assert sorted(versions) == [m.version for m in available_migrations()]


def test_migrations_are_idempotent_and_recorded_once(con) -> None:
    assert migrate(con) == []
    assert migrate(con) == []
    count = con.execute("SELECT count(*) FROM meta.schema_version").fetchone()[0]
    assert count == len(available_migrations())


def test_natural_keys_are_enforced_by_the_database_on_daily_tables(con) -> None:
    con.execute(
        "INSERT INTO market.prices (asset, date, source, close, batch_id) "
        "VALUES ('BTC', DATE '2024-01-01', 'x', 1.0, 1)"
    )
    with pytest.raises(duckdb.ConstraintException):
        con.execute(
            "INSERT INTO market.prices (asset, date, source, close, batch_id) "
            "VALUES ('BTC', DATE '2024-01-01', 'x', 2.0, 2)"
        )


def test_an_edited_migration_is_refused(con, monkeypatch) -> None:
    original = available_migrations()
    edited = [Migration(m.version, m.name, m.sql + "\n-- edited") for m in original]
    monkeypatch.setattr("pipelines.warehouse.migrations.available_migrations", lambda: edited)
    with pytest.raises(RuntimeError, match="was edited after it was applied"):
        migrate(con)


def test_sessions_run_in_utc(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    connection = connect(tmp_path / "w.duckdb")
    try:
        assert connection.execute("SELECT current_setting('TimeZone')").fetchone()[0] == "UTC"
        day = connection.execute(
            "SELECT CAST(TIMESTAMPTZ '2024-01-01 23:30:00-05:00' AS DATE)"
        ).fetchone()[0]
        assert str(day) == "2024-01-02"
    finally:
        connection.close()


def test_a_second_writer_waits_then_fails_clearly(tmp_path) -> None:
    path = tmp_path / "w.duckdb"
    connect(path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time\n"
            f"c = duckdb.connect({str(path)!r})\n"
            "print('locked', flush=True)\n"
            "time.sleep(30)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with pytest.raises(WarehouseBusyError, match="another process is writing"):
            connect(path, wait_seconds=1.0)
        assert time.monotonic() - started >= 0.9  # it did retry for the time it was given
    finally:
        holder.kill()
        holder.wait()
    connect(path, wait_seconds=5.0).close()  # free again once the holder is gone


def test_a_held_warehouse_is_shared_and_locked_against_others(tmp_path, monkeypatch) -> None:
    """``held`` (the demo's many steps in one process): connections opened meanwhile share the
    open database and skip the migration check; another process cannot write; afterwards the
    check runs again on every connection."""
    from pipelines.warehouse import connection

    path = tmp_path / "held.duckdb"
    checks = []
    real = connection.migrate
    monkeypatch.setattr(connection, "migrate", lambda con: checks.append(1) or real(con))
    with connection.held(path) as anchor:
        assert len(checks) == 1  # the holder migrates the file once
        for _ in range(3):
            inner = connect(path)
            inner.execute("CREATE TABLE IF NOT EXISTS t AS SELECT 1 AS x")
            inner.close()  # its close does not close the database: the holder keeps it open
        assert len(checks) == 1
        assert anchor.execute("SELECT x FROM t").fetchone() == (1,)
        other = subprocess.run(
            [sys.executable, "-c",
             "import sys; from pipelines.warehouse import connect\n"
             "from pipelines.errors import WarehouseBusyError\n"
             "try:\n    connect(sys.argv[1], wait_seconds=0.5)\n"
             "except WarehouseBusyError:\n    print('busy')", str(path)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert other.stdout.strip() == "busy", other.stderr[-2000:]
    connect(path).close()
    assert len(checks) == 2  # released: the next connection checks again
    assert not connection._HELD
