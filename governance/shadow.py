"""Shadow runs as pure functions: a proposal's set margined beside the set in force, day by
day, before enactment — CME ran SPAN 2 in parallel with SPAN for months, publishing both.

A shadow day's record holds, for each set, the test portfolios' breaches recorded that day and
their mean margin (USD); a breach is a (portfolio, model) whose loss over the MPOR ending that
day exceeded the margin struck at its start. The enactment gate (a policy's
``gate.shadow_days``) asks for that many recorded days and no day on which the shadow set
breached where the set in force did not.

Supplied account snapshots (:class:`AccountSnapshot`) are margined beside the test portfolios:
each holds ``(account, instrument, quantity)`` rows in canonical form and is in force from its
``from_day`` until the next snapshot's. Its SHA-256 is over that canonical form, so two files
that spell the same book differently are the same snapshot, and the audit entry that records it
pins its content.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

__all__ = ["AccountSnapshot", "ShadowDay", "segments", "shadow_verdict"]

Row = tuple[str, str, float]  # account, instrument (canonical name), quantity


@dataclass(frozen=True)
class AccountSnapshot:
    """Account positions in force from ``from_day``: rows sorted by account and instrument, one
    row per (account, instrument) — duplicates summed by whoever builds it."""

    from_day: date
    rows: tuple[Row, ...]

    def __post_init__(self) -> None:
        keys = [(a, i) for a, i, _ in self.rows]
        if not self.rows:
            raise ValueError("an account snapshot holds at least one position")
        if keys != sorted(set(keys)):
            raise ValueError("rows: one per (account, instrument), sorted")

    @property
    def canonical(self) -> str:
        """The rows as compact JSON (the form the SHA-256 is over and the registry stores)."""
        return json.dumps([list(r) for r in self.rows], separators=(",", ":"), allow_nan=False)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.canonical.encode()).hexdigest()

    @property
    def accounts(self) -> tuple[str, ...]:
        return tuple(sorted({a for a, _, _ in self.rows}))

    def facts(self) -> dict[str, Any]:
        """What the audit entry recording the snapshot says."""
        return {
            "from_day": self.from_day.isoformat(),
            "sha256": self.sha256,
            "accounts": len(self.accounts),
            "positions": len(self.rows),
        }

    @classmethod
    def from_canonical(cls, from_day: date, text: str) -> AccountSnapshot:
        return cls(from_day, tuple((str(a), str(i), float(q)) for a, i, q in json.loads(text)))


def segments(
    snapshots: Sequence[AccountSnapshot], start: date, end: date
) -> list[tuple[date, date, AccountSnapshot]]:
    """The days ``start..end`` cut where a snapshot comes into force: ``(first, last, snapshot)``
    for every snapshot in force on some of those days (none before the first snapshot)."""
    ordered = sorted(snapshots, key=lambda s: s.from_day)
    out = []
    for k, snap in enumerate(ordered):
        until = ordered[k + 1].from_day - timedelta(days=1) if k + 1 < len(ordered) else end
        first, last = max(snap.from_day, start), min(until, end)
        if first <= last:
            out.append((first, last, snap))
    return out


@dataclass(frozen=True)
class ShadowDay:
    """One recorded day: each set's breaches (``portfolio/model/currency`` names), mean margin
    and capital (the sum of the margins, USD) over the books margined that day, and the SHA-256
    of the account snapshot in force (``None`` when only the test portfolios were margined)."""

    day: date
    active_breaches: tuple[str, ...]
    shadow_breaches: tuple[str, ...]
    active_margin_usd: float
    shadow_margin_usd: float
    active_capital_usd: float | None = None
    shadow_capital_usd: float | None = None
    accounts_sha256: str | None = None

    @property
    def shadow_only(self) -> tuple[str, ...]:
        """Breaches of the shadow set the set in force did not have that day."""
        return tuple(b for b in self.shadow_breaches if b not in self.active_breaches)

    def record(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "active_breaches": list(self.active_breaches),
            "shadow_breaches": list(self.shadow_breaches),
            "active_margin_usd": self.active_margin_usd,
            "shadow_margin_usd": self.shadow_margin_usd,
            "active_capital_usd": self.active_capital_usd,
            "shadow_capital_usd": self.shadow_capital_usd,
            "accounts_sha256": self.accounts_sha256,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ShadowDay:
        return cls(
            date.fromisoformat(record["day"]),
            tuple(record["active_breaches"]),
            tuple(record["shadow_breaches"]),
            float(record["active_margin_usd"]),
            float(record["shadow_margin_usd"]),
            record.get("active_capital_usd"),
            record.get("shadow_capital_usd"),
            record.get("accounts_sha256"),
        )


def shadow_verdict(days: Sequence[ShadowDay], required: int) -> tuple[bool, str]:
    """Whether a shadow period allows enactment: ``required`` days recorded (0: no shadow is
    required) and no breach of the shadow set the set in force did not have."""
    if required <= 0:
        return True, "the policy requires no shadow period"
    if len(days) < required:
        return False, f"{len(days)} shadow day(s) recorded, the policy requires {required}"
    worse = [(d.day, b) for d in days for b in d.shadow_only]
    if worse:
        first_day, first = worse[0]
        return False, (
            f"the shadow set breached where the set in force did not on {len(worse)} occasion(s) "
            f"(first {first} on {first_day})"
        )
    return True, f"{len(days)} shadow day(s) without a breach the set in force did not have"
