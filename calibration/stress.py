"""Named stress windows, used for stressed correlation, the stressed-weight
anti-procyclicality option and, later, the backtests' stress report.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class StressWindow:
    """A named historical stress period, inclusive of both ends."""

    name: str
    start: date
    end: date
    what: str

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(
                f"stress window {self.name!r}: end {self.end} before start {self.start}"
            )


STRESS_WINDOWS: tuple[StressWindow, ...] = (
    StressWindow(
        "March 2020", date(2020, 3, 5), date(2020, 3, 31), "COVID crash (BTC -50 % log on 12 March)"
    ),
    StressWindow(
        "May 2021", date(2021, 5, 10), date(2021, 5, 31), "China mining ban and leverage flush"
    ),
    StressWindow("May 2022", date(2022, 5, 5), date(2022, 5, 20), "Terra/LUNA collapse"),
    StressWindow("June 2022", date(2022, 6, 10), date(2022, 6, 20), "Celsius and 3AC insolvency"),
    StressWindow("November 2022", date(2022, 11, 6), date(2022, 11, 20), "FTX collapse"),
    StressWindow(
        "October 2025",
        date(2025, 10, 9),
        date(2025, 10, 17),
        "10-11 October liquidation cascade (BTC -16 %, ETH -21 %, SOL -24 % close to intraday low)",
    ),
)
