"""The ``mwb`` command line. Exit codes: 0 done, 2 bad input, 1 internal error."""

from __future__ import annotations

import sys

from pipelines.errors import BadInputError, WarehouseBusyError


def main() -> None:
    from pipelines.cli.app import app  # deferred so `--help` errors still map to exit codes
    from pipelines.cli.output import err

    try:
        app(standalone_mode=True)
    except BadInputError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except WarehouseBusyError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(1)
