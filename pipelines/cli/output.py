"""Printing results: rich tables for people, JSON for programs (``--json``)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence

from rich.console import Console
from rich.table import Table

from reports.serialize import dumps

# Piped output gets a wide console so that tables are not folded at 80 columns.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 200)


def print_json(payload: object) -> None:
    """Strict JSON (NaN and infinities as null: :mod:`reports.serialize`)."""
    sys.stdout.write(dumps(payload, indent=2) + "\n")


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> Table:
    grid = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        grid.add_row(*("" if v is None else str(v) for v in row))
    return grid
