"""The ``mwb`` command line.

Exit codes: 0 done, 1 internal error (or the warehouse busy), 2 bad input (including a wrong
option), 3 refused by the governance rules, 4 the audit log does not verify. Every failure is
one line on stderr; ``MWB_DEBUG=1`` shows the traceback of an internal error.
"""

from __future__ import annotations

import os
import sys

from pipelines.errors import BadInputError, WarehouseBusyError


def _line(text: str) -> str:
    return " ".join(str(text).split())


def _click_exceptions():
    """Typer vendors its own click (``typer._click``) in recent versions; accept both."""
    import click

    usage, abort = [click.exceptions.UsageError], [click.exceptions.Abort]
    try:
        from typer._click import exceptions as vendored
    except ImportError:  # an older typer on PyPI's click
        return tuple(usage), tuple(abort)
    usage.append(vendored.UsageError)
    if hasattr(vendored, "Abort"):
        abort.append(vendored.Abort)
    return tuple(usage), tuple(abort)


def main() -> None:
    import warnings

    if not os.environ.get("MWB_DEBUG"):
        # library warnings (Dagster beta notices, numeric overflow on absurd data) are not
        # the user's business on a terminal; bad data is rejected and reported by name
        warnings.simplefilter("ignore")
    from pipelines.cli.app import app  # deferred so `--help` errors still map to exit codes
    from pipelines.cli.output import err

    def fail(message: str, code: int) -> None:
        err.print(f"error: {_line(message)}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(code)

    usage_errors, aborts = _click_exceptions()
    try:
        code = app(prog_name="mwb", standalone_mode=False)
    except usage_errors as exc:
        where = exc.ctx.command_path if getattr(exc, "ctx", None) is not None else "mwb"
        fail(f"{where}: {exc.format_message()} (see `{where} --help`)", 2)
    except aborts:
        fail("aborted", 1)
    except BadInputError as exc:
        fail(str(exc), 2)
    except WarehouseBusyError as exc:
        fail(str(exc), 1)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except Exception as exc:  # the last line of defence: one line, not a traceback
        if os.environ.get("MWB_DEBUG"):
            raise
        fail(f"internal error: {type(exc).__name__}: {exc} (set MWB_DEBUG=1 for the traceback)", 1)
    sys.exit(code or 0)
