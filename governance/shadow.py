"""Shadow runs as pure functions: a proposal's set margined beside the set in force, day by
day, before enactment — CME ran SPAN 2 in parallel with SPAN for months, publishing both.

A shadow day's record holds, for each set, the test portfolios' breaches recorded that day and
their mean margin (USD); a breach is a (portfolio, model) whose loss over the MPOR ending that
day exceeded the margin struck at its start. The enactment gate (a policy's
``gate.shadow_days``) asks for that many recorded days and no day on which the shadow set
breached where the set in force did not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

__all__ = ["ShadowDay", "shadow_verdict"]


@dataclass(frozen=True)
class ShadowDay:
    """One recorded day: each set's breaches (``portfolio/model`` names) and mean margin."""

    day: date
    active_breaches: tuple[str, ...]
    shadow_breaches: tuple[str, ...]
    active_margin_usd: float
    shadow_margin_usd: float

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
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ShadowDay:
        return cls(
            date.fromisoformat(record["day"]),
            tuple(record["active_breaches"]),
            tuple(record["shadow_breaches"]),
            float(record["active_margin_usd"]),
            float(record["shadow_margin_usd"]),
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
