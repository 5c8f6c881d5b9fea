"""Typed views of a backtest's summaries: each set's coverage of one (portfolio, model,
currency), the pairs side by side, and each set's totals.

The summaries are stored as JSON documents (:func:`backtesting.summary.summarise`); these
frozen records are what the verdict, the enactment gate and the reports read, so that the
rule reads attributes with fixed meanings rather than string keys. They serialise back with
``as_dict`` only where a payload is written.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from vocabulary import Zone

__all__ = ["EsCoverage", "PairCoverage", "SetCoverage", "SetTotals", "coverage_pairs", "set_totals"]

Summary = Mapping[str, Any]


def _finite(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


@dataclass(frozen=True)
class EsCoverage:
    """The Acerbi–Szekely tests of an expected-shortfall model: p-values and rejections."""

    z1: float | None
    z2: float | None
    rejected: tuple[str, ...]
    warning: str

    def as_dict(self) -> dict[str, Any]:
        """The payload form (JSON-safe), keys in the report's order."""
        return {
            "z1": self.z1,
            "z2": self.z2,
            "rejected": list(self.rejected),
            "warning": self.warning,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EsCoverage:
        """Inverse of :meth:`as_dict`."""
        return cls(d["z1"], d["z2"], tuple(d["rejected"]), d["warning"])


@dataclass(frozen=True)
class SetCoverage:
    """One parameter set's coverage of one (portfolio, model, currency).

    ``zone`` is the stricter of the close-to-close zone (``zone_close``) and the zone of the
    worst OHLC point within the MPOR (``zone_path``); a series without loss variation is
    :attr:`Zone.NOT_TESTABLE`. p-values are ``None`` where a test is undefined.
    """

    days: int
    breaches: int
    breaches_path: int
    expected: float | None
    zone: Zone
    zone_close: Zone
    zone_path: Zone
    testable: bool
    pof: float | None
    cc: float | None
    tbf: float | None
    rejected: tuple[str, ...]
    rejected_path: tuple[str, ...]
    es: EsCoverage | None
    mean_margin_usd: float | None
    worst_shortfall_usd: float | None
    first_breaches: tuple[str, ...]

    @classmethod
    def from_summary(cls, s: Summary) -> SetCoverage:
        """The coverage view of one stored summary."""
        cov, tests = s["coverage"], s["coverage"]["tests"]
        path = s.get("coverage_path") or cov
        es = s.get("es_tests") or {}
        return cls(
            days=cov["observations"],
            breaches=cov["failures"],
            breaches_path=path["failures"],
            expected=_finite(cov["expected"]),
            zone=Zone(s.get("zone", cov["traffic_light"]["zone"])),
            zone_close=Zone(cov["traffic_light"]["zone"]),
            zone_path=Zone(path["traffic_light"]["zone"]),
            testable=s.get("testable", True),
            pof=_finite(tests["pof"]["pvalue"]),
            cc=_finite(tests["cc"]["pvalue"]),
            tbf=_finite(tests["tbf"]["pvalue"]),
            rejected=tuple(cov["rejected"]),
            rejected_path=tuple(path["rejected"]),
            es=(
                EsCoverage(
                    _finite(es["z1"]["pvalue"]),
                    _finite(es["z2"]["pvalue"]),
                    tuple(es.get("rejected", [])),
                    es.get("warning", ""),
                )
                if es.get("computed")
                else None
            ),
            mean_margin_usd=_finite(s["efficiency"]["mean_margin_usd"]),
            worst_shortfall_usd=_finite((s["worst_shortfall"] or {}).get("usd")),
            first_breaches=tuple(s["breach_dates"][:5]),
        )

    def as_dict(self) -> dict[str, Any]:
        """The payload form (JSON-safe), keys in the report's order."""
        return {
            "days": self.days,
            "breaches": self.breaches,
            "breaches_path": self.breaches_path,
            "expected": self.expected,
            "zone": self.zone.value,
            "zone_close": self.zone_close.value,
            "zone_path": self.zone_path.value,
            "testable": self.testable,
            "pof": self.pof,
            "cc": self.cc,
            "tbf": self.tbf,
            "rejected": list(self.rejected),
            "rejected_path": list(self.rejected_path),
            "es": None if self.es is None else self.es.as_dict(),
            "mean_margin_usd": self.mean_margin_usd,
            "worst_shortfall_usd": self.worst_shortfall_usd,
            "first_breaches": list(self.first_breaches),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SetCoverage:
        """Inverse of :meth:`as_dict` (a written payload read back)."""
        return cls(
            **{
                **d,
                "zone": Zone(d["zone"]),
                "zone_close": Zone(d["zone_close"]),
                "zone_path": Zone(d["zone_path"]),
                "rejected": tuple(d["rejected"]),
                "rejected_path": tuple(d["rejected_path"]),
                "es": None if d["es"] is None else EsCoverage.from_dict(d["es"]),
                "first_breaches": tuple(d["first_breaches"]),
            }
        )


@dataclass(frozen=True)
class PairCoverage:
    """Every set's coverage of one (portfolio, model, currency), keyed by set label."""

    portfolio: str
    model: str
    currency: str
    sets: Mapping[str, SetCoverage]

    @property
    def name(self) -> str:
        """How reasons name the pair: ``portfolio (model, currency)``."""
        return f"{self.portfolio} ({self.model}, {self.currency})"

    def as_dict(self) -> dict[str, Any]:
        """The payload form (JSON-safe), keys in the report's order."""
        return {
            "portfolio": self.portfolio,
            "model": self.model,
            "currency": self.currency,
            "sets": {label: c.as_dict() for label, c in self.sets.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PairCoverage:
        """Inverse of :meth:`as_dict` (a written payload read back)."""
        sets = {label: SetCoverage.from_dict(c) for label, c in d["sets"].items()}
        return cls(d["portfolio"], d["model"], d["currency"], sets)


@dataclass(frozen=True)
class SetTotals:
    """One set's breaches and zones over every (portfolio, model) pair, and the mean margin
    held under the primary model (and the haircut for collateral accounts), in USD.
    """

    breaches: int
    breaches_path: int
    expected: float | None
    worst_zone: str
    red: int
    mean_margin_usd: float | None

    def as_dict(self) -> dict[str, Any]:
        """The payload form (JSON-safe), keys in the report's order."""
        return {
            "breaches": self.breaches,
            "breaches_path": self.breaches_path,
            "expected": self.expected,
            "worst_zone": self.worst_zone,
            "red": self.red,
            "mean_margin_usd": self.mean_margin_usd,
        }


def coverage_pairs(summaries: Iterable[Summary]) -> list[PairCoverage]:
    """The coverage of every (portfolio, model, currency) under every set, sorted by the key.

    The ``standard`` reference model is left out: it is the yardstick, not a candidate.
    """
    sets: dict[tuple[str, str, str], dict[str, SetCoverage]] = {}
    for s in summaries:
        if s["model"] == "standard":
            continue
        key = (s["portfolio"], s["model"], s["currency"])
        sets.setdefault(key, {})[s["set"]] = SetCoverage.from_summary(s)
    return [PairCoverage(*key, sets[key]) for key in sorted(sets)]


def set_totals(summaries: Iterable[Summary], label: str, held_models: Iterable[str]) -> SetTotals:
    """One set's totals over its non-reference summaries; ``held_models`` are the models whose
    mean margin is summed (the primary model and the haircut).
    """
    held_models = set(held_models)
    mine = [s for s in summaries if s["set"] == label and s["model"] != "standard"]
    held = [s for s in mine if s["model"] in held_models]
    zones = [s.get("zone", s["coverage"]["traffic_light"]["zone"]) for s in mine]
    return SetTotals(
        breaches=int(sum(s["coverage"]["failures"] for s in mine)),
        breaches_path=int(sum((s.get("coverage_path") or s["coverage"])["failures"] for s in mine)),
        expected=_finite(sum(s["coverage"]["expected"] for s in mine)),
        worst_zone=Zone.worst(*zones).value if zones else "-",
        red=sum(z == "red" for z in zones),
        mean_margin_usd=_finite(sum(s["efficiency"]["mean_margin_usd"] or 0.0 for s in held)),
    )
