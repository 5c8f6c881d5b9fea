"""Read-only queries of the warehouse (``mwb sql``).

Two locks, each enough on its own: the statement must be one read (DuckDB's own parser gives its
type: ``SELECT`` — which covers ``WITH``, ``FROM``, ``DESCRIBE``, ``SHOW`` and ``SUMMARIZE`` — or
``EXPLAIN``), and it runs on a connection opened read-only with external access disabled (no
file or network reads or writes: ``read_csv('/etc/passwd')`` and ``COPY … TO`` both fail) and
its configuration locked. ``COPY``, ``ATTACH``, ``INSTALL``/``LOAD``, ``EXPORT``, ``SET``,
``PRAGMA``, ``CALL`` and every write are refused before anything runs.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from pipelines.errors import BadInputError

READ_STATEMENTS = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})
MAX_QUERY_CHARS = 100_000


def read_statement(query: str) -> str:
    """``query`` if it is exactly one read statement; else :class:`BadInputError` naming why."""
    if len(query) > MAX_QUERY_CHARS:
        raise BadInputError(f"query: {len(query):,} characters; at most {MAX_QUERY_CHARS:,}")
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        raise BadInputError(f"query failed: {str(exc).splitlines()[0]}") from exc
    if len(statements) != 1:
        raise BadInputError(
            f"query: {len(statements)} statements; mwb sql runs exactly one read statement"
        )
    kind = statements[0].type
    if kind not in READ_STATEMENTS:
        name = str(kind).rsplit(".", 1)[-1]
        raise BadInputError(
            f"query: a {name} statement is not allowed; mwb sql only reads (SELECT, EXPLAIN)"
        )
    return query


def query_read_only(database: str | Path, query: str) -> pd.DataFrame:
    """Run one read statement against ``database``, which it cannot change (module docstring)."""
    read_statement(query)
    try:
        con = duckdb.connect(
            str(database), read_only=True, config={"enable_external_access": False}
        )
    except duckdb.Error as exc:
        raise BadInputError(
            f"{database}: cannot open the warehouse ({str(exc).splitlines()[0]})"
        ) from exc
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET lock_configuration = true")
        return con.execute(query).df()
    except duckdb.Error as exc:
        raise BadInputError(f"query failed: {str(exc).splitlines()[0]}") from exc
    finally:
        con.close()
