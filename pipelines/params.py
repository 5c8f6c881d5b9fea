"""The one parameter-set resolver: what ``active``, ``default``, a file or a fingerprint names.

Every command and asset that takes a parameter set by name (``mwb margin --params``,
``mwb backtest --params/--vs``, ``mwb params show/diff``, ``mwb params init``, the backtest
assets) resolves it here, with one rule:

- nothing, or ``active`` — the set the governance registry has in force (at ``at`` when given:
  no look-ahead), or, with no registry yet, the default set;
- ``default`` — Deribit's published values;
- a venue's name (``derive``) — the default set with that venue's published parameters;
- an existing file — that parameter set document (validated);
- six or more hex digits, any case — the registry's set whose fingerprint starts so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from governance.parameters import (
    VENUE_SETS,
    ParameterSet,
    ParameterSetError,
    default_parameter_set,
    load_parameter_set,
    venue_parameter_set,
)
from governance.registry import GovernanceError, Registry
from governance.store import registry_present
from pipelines.errors import BadInputError

if TYPE_CHECKING:
    import duckdb

_FINGERPRINT = re.compile(r"[0-9a-f]{6,64}")
DEFAULT_SOURCE = "default (Deribit's published values)"


@dataclass(frozen=True)
class ResolvedSet:
    """A parameter set, a short label for tables, and where it came from, in words."""

    parameter_set: ParameterSet
    label: str
    source: str


def resolve_parameter_set(
    con: duckdb.DuckDBPyConnection | None,
    ref: str | Path | None = None,
    *,
    at: datetime | None = None,
    also: tuple[str, ...] = (),
) -> ResolvedSet:
    """The parameter set ``ref`` names (see the module docstring). ``also`` lists further
    words the caller handles itself, for the refusal's message. Refusals exit 2."""
    text = "active" if ref is None else str(ref)
    if text == "default":
        return ResolvedSet(default_parameter_set(), "default", DEFAULT_SOURCE)
    if text in VENUE_SETS:
        return ResolvedSet(venue_parameter_set(text), text, VENUE_SETS[text])
    if text == "active":
        if con is not None and registry_present(con):
            registry = Registry(con)
            activation = registry.active_at(at) if at is not None else registry.head()
            if activation is not None:
                when = "in force" if at is None else f"in force at {at.isoformat()}"
                return ResolvedSet(
                    registry.parameter_set(activation.parameter_set), "active", f"registry ({when})"
                )
        return ResolvedSet(default_parameter_set(), "active", DEFAULT_SOURCE)
    if Path(text).exists():
        try:
            return ResolvedSet(load_parameter_set(text), text, f"file {text}")
        except ParameterSetError as exc:
            raise BadInputError(str(exc)) from exc
    if _FINGERPRINT.fullmatch(text.lower()) and con is not None:
        try:
            found = Registry(con).parameter_set(text.lower())
        except GovernanceError as exc:
            raise BadInputError(str(exc)) from exc
        return ResolvedSet(found, found.fingerprint[:12], f"registry set {found.fingerprint[:12]}")
    words = ", ".join(f"'{w}'" for w in (*also, "active", "default", *VENUE_SETS))
    raise BadInputError(f"{text!r}: not {words}, an existing file or a parameter-set fingerprint")
