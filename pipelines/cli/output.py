"""Printing results: rich tables for people, JSON for programs (``--json``).

Everything printed for people is plain text: no rich markup (``[red]`` in a title prints as
itself), no emoji codes (``root:x:0`` stays ``root:x:0``), and no terminal escapes, control,
bidirectional-override or zero-width characters (:func:`reports.text.printable`). JSON is
escaped by the encoder."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from reports.text import printable


class PlainConsole(Console):
    """A rich console that prints text as given: no markup, emoji or highlighting, and
    nothing a terminal would interpret."""

    def print(self, *objects, **kwargs) -> None:  # noqa: A003 - rich's name
        kwargs.setdefault("markup", False)
        kwargs.setdefault("highlight", False)
        kwargs.setdefault("emoji", False)
        super().print(*(printable(o) if isinstance(o, str) else o for o in objects), **kwargs)


# Piped output gets a wide console so that tables are not folded at 80 columns.
out = PlainConsole(
    soft_wrap=True, width=None if sys.stdout.isatty() else 200, emoji=False, markup=False
)
err = PlainConsole(
    stderr=True,
    soft_wrap=True,
    width=None if sys.stderr.isatty() else 200,
    emoji=False,
    markup=False,
)


def print_json(payload: object) -> None:
    """Strict JSON (NaN and infinities as null: :mod:`reports.serialize`)."""
    from reports.serialize import dumps  # numpy: imported by the commands that print JSON

    sys.stdout.write(dumps(payload, indent=2) + "\n")


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> Table:
    grid = Table(
        title=None if title is None else Text(printable(title)),
        title_justify="left",
        show_lines=False,
    )
    for column in columns:
        grid.add_column(Text(printable(column)), overflow="fold")
    for row in rows:
        grid.add_row(*(Text("" if v is None else printable(v)) for v in row))
    return grid
