"""Opening the warehouse.

DuckDB lets one process write to a database file at a time; a second process gets an
``IOException`` ("Could not set lock") when it opens the file. We retry with exponential
backoff and then fail with :class:`~pipelines.errors.WarehouseBusyError` rather than hang.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb

from pipelines.errors import BadInputError, WarehouseBusyError
from pipelines.warehouse.migrations import migrate


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text or "conflicting" in text


def connect(
    database: str | Path,
    *,
    read_only: bool = False,
    wait_seconds: float = 30.0,
    apply_migrations: bool = True,
) -> duckdb.DuckDBPyConnection:
    """Open the warehouse at ``database``, creating its folder and schema when needed.

    Sessions run in UTC so that timestamps render and truncate to days identically on every
    machine. Migrations are applied unless ``read_only`` (a read-only open of an older file
    fails loudly later rather than writing).
    """
    path = str(database)
    if path != ":memory:":
        folder = Path(path).parent
        if folder.exists() and not folder.is_dir():
            raise BadInputError(f"{folder}: not a folder; the warehouse cannot live there")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BadInputError(
                f"{folder}: cannot create the warehouse folder ({exc.strerror})"
            ) from None
        if Path(path).exists() and not Path(path).is_file():
            raise BadInputError(f"{path}: not a file; the warehouse must be a DuckDB file")
    deadline = time.monotonic() + wait_seconds
    delay = 0.05
    while True:
        try:
            con = duckdb.connect(path, read_only=read_only)
            break
        except duckdb.IOException as exc:
            if not _is_lock_error(exc) or time.monotonic() >= deadline:
                if _is_lock_error(exc):
                    raise WarehouseBusyError(
                        f"{path}: another process is writing to the warehouse "
                        f"(waited {wait_seconds:.0f} s); try again when it has finished"
                    ) from exc
                raise BadInputError(
                    f"{path}: not a usable DuckDB warehouse ({str(exc).splitlines()[0]})"
                ) from None
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 1.0)
        except duckdb.Error as exc:
            raise BadInputError(
                f"{path}: not a usable DuckDB warehouse ({str(exc).splitlines()[0]})"
            ) from None
    con.execute("SET TimeZone = 'UTC'")
    if apply_migrations and not read_only and not (_HELD and _key(path) in _HELD):
        migrate(con)
    return con


_HELD: dict[str, int] = {}  # the warehouses this process holds open (migrated on opening)


def _key(path: str) -> str:
    return path if path == ":memory:" else str(Path(path).resolve())


@contextlib.contextmanager
def held(database: str | Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """Keep the warehouse open in this process for a run of many steps (the demo).

    Connections opened meanwhile share the open database instead of reopening the file and
    checkpointing it when they close (about 25 ms each), and skip the migration check: it was
    done here, and while this process holds the file no other can write to it.
    """
    con = connect(database)
    key = _key(str(database))
    _HELD[key] = _HELD.get(key, 0) + 1
    try:
        yield con
    finally:
        _HELD[key] -= 1
        if not _HELD[key]:
            del _HELD[key]
        con.close()


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """One explicit transaction: committed on success, rolled back on any exception."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
