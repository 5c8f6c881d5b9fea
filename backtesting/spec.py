"""What a backtest replays: the spec, and the columns of its daily rows."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import date

from calibration.univariate import Innovation, UnivariateSpec, VolProcess
from margin_engine.portfolios import select
from vocabulary import BACKTEST_MODELS, DEFAULT_BACKTEST_MODELS

DEFAULT_MODELS = DEFAULT_BACKTEST_MODELS
DEFAULT_PORTFOLIOS = ("books", "collateral")
VOL_SPEC = UnivariateSpec(VolProcess.GJR_GARCH, Innovation.STUDENT_T)
CALIBRATABLE = (
    "underlyings.*.pm.price_range",
    "underlyings.*.span.price_scan_range",
    "collateral.*.haircut",
)
CALIBRATABLE_PATH = re.compile(
    r"^(underlyings\.(\*|[A-Z0-9]+)\.(pm\.price_range|span\.price_scan_range)|collateral\.(\*|[A-Z0-9]+)\.haircut)$"
)

# One row per (set, portfolio, model, settlement currency, day), in the order summaries expect.
DAILY_COLUMNS = (
    "set_label",
    "date",
    "portfolio",
    "model",
    "currency",
    "margin",
    "maintenance",
    "loss",
    "breach",
    "fx_usd",
    "notional_usd",
    "loss_path",
    "breach_path",
    "var_es",
    "es",
)
LOSS_COLUMNS = "cache_key, date, currency, loss, fx_usd, notional_usd, loss_path"
MARGIN_COLUMNS = "cache_key, date, currency, margin, maintenance, var_es, es"
DAILY_KEY = ("set_label", "portfolio", "model", "currency", "date")


@dataclass(frozen=True)
class BacktestSpec:
    """What to replay. ``confidence`` and ``mpor_days`` default to the first set's
    ``var.var_confidence`` and ``var.mpor_days``. The constructor validates every field and
    raises :class:`ValueError` naming it (``models: …``); the command line says which flag.
    """

    start: date | None = None
    end: date | None = None
    models: tuple[str, ...] = DEFAULT_MODELS
    portfolios: tuple[str, ...] = DEFAULT_PORTFOLIOS
    mpor_days: int | None = None
    confidence: float | None = None
    calibrate: tuple[str, ...] = ()
    scale: float = 1.0
    seed: int = 0
    simulations: int = 999
    window: int = 500
    refit_every: int = 5
    residual_lookback: int = 500
    paths: int = 2000  # Monte Carlo paths per day (mc-var, mc-es)

    def __post_init__(self) -> None:
        unknown = [m for m in self.models if m not in BACKTEST_MODELS]
        if unknown:
            raise ValueError(
                f"models: {', '.join(unknown)} not one of {', '.join(BACKTEST_MODELS)}"
            )
        try:
            select(self.portfolios)
        except ValueError as exc:
            raise ValueError(f"portfolios: {exc}") from None
        for pattern in self.calibrate:
            if not CALIBRATABLE_PATH.match(pattern):
                raise ValueError(
                    f"calibrate: {pattern!r} is not one of {', '.join(CALIBRATABLE)} "
                    "(with * or a symbol)"
                )
        if not self.scale > 0:
            raise ValueError(f"scale: must be positive, got {self.scale}")
        if self.start and self.end and self.end < self.start:
            raise ValueError(f"end: {self.end} is before start {self.start}")
        if not 100 <= self.paths <= 1_000_000:
            raise ValueError(f"paths: must be 100..1000000, got {self.paths}")
        if self.simulations < 99:
            raise ValueError(f"simulations: must be at least 99, got {self.simulations}")

    def as_dict(self) -> dict:
        """The spec as JSON-safe values (dates as ISO text)."""
        data = asdict(self)
        data["start"] = self.start.isoformat() if self.start else None
        data["end"] = self.end.isoformat() if self.end else None
        return data
