"""The calibration policy: how fitted models become margin parameters.

A policy fixes the confidence level, the margin period of risk (MPOR), the lookback, the method
(filtered historical simulation or parametric) and the anti-procyclicality (APC) option of
EMIR RTS 153/2013 Art. 28:

* ``buffer`` — a 25 % buffer on top of the calibrated value, which may be released in stress;
* ``stressed-weight`` — at least 25 % weight on observations from the named stress windows;
* ``floor`` — never below the value calibrated on a 10-year lookback.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum

from calibration.correlation import DccBoundary
from calibration.stress import STRESS_WINDOWS, StressWindow
from vocabulary import Apc


class MoveMethod(StrEnum):
    """How a price move is calibrated: a quantile of filtered historical simulation, or the
    fitted innovation distribution's quantile scaled by the forecast volatility.
    """

    FILTERED_HISTORICAL = "filtered-historical"
    PARAMETRIC = "parametric"


@dataclass(frozen=True)
class HaircutAddOn:
    """Collateral worth up to ``up_to_usd`` (None = no limit) gets ``base + add_on``."""

    up_to_usd: float | None
    add_on: float


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(f"CalibrationPolicy.{message}")


@dataclass(frozen=True)
class CalibrationPolicy:
    """Everything that turns fits into parameters; see the module docstring.

    Attributes
    ----------
    confidence : float
        One-sided coverage of each tail (a long loses on down moves, a short on up moves).
    mpor_days : int
        Margin period of risk of the price and vol ranges, days.
    haircut_mpor_days : int
        Liquidation horizon of collateral, days.
    lookback_days : int
        Returns the model is fitted on and whose standardized residuals FHS resamples.
    extreme_confidence : float
        Coverage of the SPAN-style extreme move.
    dcc_boundary : DccBoundary
        What replaces an integrated DCC estimate (a + b = 1): ``ewma`` correlation, or DCC
        with its persistence capped at ``dcc_persistence_cap``.
    """

    confidence: float = 0.99
    mpor_days: int = 2
    haircut_mpor_days: int = 2
    lookback_days: int = 1000
    method: MoveMethod = MoveMethod.FILTERED_HISTORICAL
    apc: Apc = Apc.BUFFER
    apc_buffer: float = 0.25
    apc_stress_weight: float = 0.25
    apc_floor_years: float = 10.0
    extreme_confidence: float = 0.999
    dcc_boundary: DccBoundary = DccBoundary.EWMA
    dcc_persistence_cap: float = 0.99
    stress_windows: tuple[StressWindow, ...] = STRESS_WINDOWS
    haircut_tiers: tuple[HaircutAddOn, ...] = (
        HaircutAddOn(1_000_000.0, 0.0),
        HaircutAddOn(10_000_000.0, 0.02),
        HaircutAddOn(None, 0.05),
    )
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", MoveMethod(self.method))
        object.__setattr__(self, "apc", Apc(self.apc))
        object.__setattr__(self, "dcc_boundary", DccBoundary(self.dcc_boundary))
        _check(
            0 < self.dcc_persistence_cap < 1,
            f"dcc_persistence_cap: {self.dcc_persistence_cap} must be in (0, 1)",
        )
        _check(0.5 < self.confidence < 1, f"confidence: {self.confidence} must be in (0.5, 1)")
        _check(
            self.confidence <= self.extreme_confidence < 1,
            f"extreme_confidence: {self.extreme_confidence} must be in [confidence, 1)",
        )
        _check(1 <= self.mpor_days <= 30, f"mpor_days: {self.mpor_days} must be in 1..30")
        _check(
            1 <= self.haircut_mpor_days <= 30,
            f"haircut_mpor_days: {self.haircut_mpor_days} must be in 1..30",
        )
        _check(self.lookback_days >= 250, f"lookback_days: {self.lookback_days} must be >= 250")
        _check(0 <= self.apc_buffer <= 1, f"apc_buffer: {self.apc_buffer} must be in [0, 1]")
        _check(
            0 < self.apc_stress_weight < 1,
            f"apc_stress_weight: {self.apc_stress_weight} must be in (0, 1)",
        )
        _check(self.apc_floor_years >= 1, f"apc_floor_years: {self.apc_floor_years} must be >= 1")
        limits = [t.up_to_usd for t in self.haircut_tiers]
        _check(
            bool(limits) and limits[-1] is None, "haircut_tiers: the last tier must have no limit"
        )
        finite = [x for x in limits if x is not None]
        _check(
            finite == sorted(finite) and len(set(finite)) == len(finite),
            "haircut_tiers: limits must increase",
        )
        _check(
            all(t.add_on >= 0 for t in self.haircut_tiers), "haircut_tiers: add-ons must be >= 0"
        )

    def to_dict(self) -> dict:
        """The policy as JSON-safe values."""
        out = asdict(self)
        out.pop("extra")
        out["method"] = self.method.value
        out["apc"] = self.apc.value
        out["dcc_boundary"] = self.dcc_boundary.value
        out["stress_windows"] = [
            {"name": w.name, "start": w.start.isoformat(), "end": w.end.isoformat()}
            for w in self.stress_windows
        ]
        return out
