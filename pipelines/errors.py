"""Errors the command line turns into exit codes: bad input exits 2, anything else 1."""


class BadInputError(ValueError):
    """Input the user can fix: unreadable file, unknown format, missing column, bad option.

    The message is one line and names the file (and row and field where there is one).
    """


class WarehouseBusyError(RuntimeError):
    """Another process holds the DuckDB write lock for longer than we were willing to wait."""
