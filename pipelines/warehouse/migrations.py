"""Ordered, checksummed schema migrations.

Migrations are the files ``migrations/NNNN_name.sql`` of the packages that own a schema — the
warehouse's (``market``, ``calib``, ``bt``, ``rpt``) here, governance's ``gov`` in
``governance/migrations`` — numbered in one sequence and applied in number order, each in its
own transaction together with its row in ``meta.schema_version``. An applied migration whose
file has since changed is an error: schemas move forward by new migrations, never by edits.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import duckdb

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @functools.cached_property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


# the packages whose ``migrations`` folder holds schema files, in no particular order
OWNERS = ("pipelines.warehouse", "governance")


def available_migrations() -> list[Migration]:
    return list(_available())


@functools.cache
def _available() -> tuple[Migration, ...]:
    # the package's files do not change while it runs; every connection asks
    found = []
    for owner in OWNERS:
        for entry in (resources.files(owner) / "migrations").iterdir():
            match = _NAME.match(entry.name)
            if match:
                found.append(Migration(int(match.group(1)), match.group(2), entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..n without gaps, found {versions}")
    return tuple(found)


def applied_versions(con: duckdb.DuckDBPyConnection) -> dict[int, str]:
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_schema = 'meta' AND table_name = 'schema_version'"
    ).fetchone()[0]
    if not exists:
        return {}
    return dict(con.execute("SELECT version, checksum FROM meta.schema_version").fetchall())


def migrate(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply pending migrations; return the versions applied now."""
    if _current(con):
        return []  # the common case, read-only: no DDL, no transaction
    con.execute("CREATE SCHEMA IF NOT EXISTS meta")
    con.execute(
        "CREATE TABLE IF NOT EXISTS meta.schema_version ("
        " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, checksum VARCHAR NOT NULL,"
        " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    applied = applied_versions(con)
    newly = []
    for migration in available_migrations():
        if migration.version in applied:
            if applied[migration.version] != migration.checksum:
                raise RuntimeError(
                    f"migration {migration.version:04d}_{migration.name} was edited after it "
                    "was applied; add a new migration instead"
                )
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(migration.sql)
            con.execute(
                "INSERT INTO meta.schema_version (version, name, checksum) VALUES (?, ?, ?)",
                [migration.version, migration.name, migration.checksum],
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        newly.append(migration.version)
    return newly


def _current(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether every migration is applied, each with its checksum."""
    applied = applied_versions(con)
    available = available_migrations()
    return len(applied) == len(available) > 0 and all(
        applied.get(m.version) == m.checksum for m in available
    )
