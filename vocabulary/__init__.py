"""The workbench's shared words, one definition each.

Every package says "a margin model", "a traffic-light zone", "an anti-procyclicality tool", "a
VaR method" or "the EWMA decay" with the names defined here, so that a value means the same in
calibration, the margin engine, the backtests, governance and the reports. Members are
:class:`enum.StrEnum`: they compare equal to, and serialise as, the strings stored in the
warehouse and written in parameter documents.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "BACKTEST_MODELS",
    "BOOK_MODELS",
    "DEFAULT_BACKTEST_MODELS",
    "VENUE_MODELS",
    "SIMULATED_MODELS",
    "DAYS_PER_YEAR",
    "SYNTHETIC_SEED",
    "EWMA_LAMBDA",
    "Apc",
    "Innovations",
    "MarginModel",
    "Sampling",
    "VarMeasure",
    "VarMethod",
    "Zone",
]

#: Calendar days per year: crypto trades every day, so returns annualise with 365.
DAYS_PER_YEAR = 365

#: RiskMetrics' daily decay: the one λ of every EWMA variance and correlation in the workbench.
EWMA_LAMBDA = 0.94

#: The synthetic market's seed: chosen among seeds 1-12 because its paths resemble 2019-2024
#: (each coin ends 20-130x up after drawdowns of 40-80 %); any seed gives a valid market.
SYNTHETIC_SEED = 2


class MarginModel(StrEnum):
    """A margin model the engine computes and a backtest replays.

    ``HAIRCUT`` margins collateral-only accounts (the haircut of the holding's value); the
    others margin books of positions.
    """

    STANDARD = "standard"
    SPAN = "span"
    DERIBIT_PM = "deribit-pm"
    VAR = "var"
    ES = "es"
    MC_VAR = "mc-var"
    MC_ES = "mc-es"
    HAIRCUT = "haircut"
    DERIVE_PMRM2 = "derive-pmrm2"
    DELTA_ONLY = "delta-only"
    HYPERLIQUID = "hyperliquid"
    OKX_PM = "okx-pm"
    PARADEX_PM = "paradex-pm"
    AEVO_PM = "aevo-pm"

    @property
    def needs_history(self) -> bool:
        """Whether the model reads price history (scenarios), not only today's market."""
        return self in (MarginModel.VAR, MarginModel.ES)

    @property
    def simulated(self) -> bool:
        """Whether the model margins on Monte Carlo paths from the fitted joint model."""
        return self in (MarginModel.MC_VAR, MarginModel.MC_ES)


#: The models that margin books of positions, in the order commands list them.
BOOK_MODELS: tuple[MarginModel, ...] = (
    MarginModel.STANDARD,
    MarginModel.SPAN,
    MarginModel.DERIBIT_PM,
    MarginModel.VAR,
    MarginModel.ES,
)

#: Other venues' models and the linear baseline (``mwb margin``, the report's margin
#: elsewhere). They margin in USDC per account, so a backtest, which replays each book in its
#: settlement currency, does not replay them yet.
VENUE_MODELS: tuple[MarginModel, ...] = (
    MarginModel.DERIVE_PMRM2,
    MarginModel.HYPERLIQUID,
    MarginModel.OKX_PM,
    MarginModel.PARADEX_PM,
    MarginModel.AEVO_PM,
    MarginModel.DELTA_ONLY,
)

#: The Monte Carlo models (``mwb margin``, backtests, sweeps, a proposal's evidence).
SIMULATED_MODELS: tuple[MarginModel, ...] = (MarginModel.MC_VAR, MarginModel.MC_ES)

#: What a backtest replays: the book models and the Monte Carlo ones (names, as specs hold).
BACKTEST_MODELS: tuple[str, ...] = tuple(m.value for m in (*BOOK_MODELS, *SIMULATED_MODELS))

#: A backtest's models unless it names others (a proposal report's too).
DEFAULT_BACKTEST_MODELS: tuple[str, ...] = ("deribit-pm", "span", "var")


class Zone(StrEnum):
    """A Basel traffic-light zone, ordered ``GREEN < YELLOW < RED``.

    ``NOT_TESTABLE`` marks a loss series that cannot be judged (no variation, e.g. a perfectly
    hedged book); it ranks below every zone, so it is never "worse".
    """

    NOT_TESTABLE = "not testable"
    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"

    @property
    def rank(self) -> int:
        """-1 for not testable, then 0 (green), 1 (yellow), 2 (red)."""
        return _ZONE_RANK[self]

    @classmethod
    def worst(cls, *zones: str) -> Zone:
        """The highest-ranked of ``zones`` (strings or members)."""
        return max((cls(z) for z in zones), key=lambda z: z.rank)


_ZONE_RANK = {Zone.NOT_TESTABLE: -1, Zone.GREEN: 0, Zone.YELLOW: 1, Zone.RED: 2}


class Apc(StrEnum):
    """An anti-procyclicality tool (EMIR RTS 153/2013 art. 28): none, a buffer released in
    stress, a weight on stressed observations, or a floor from a ten-year look-back.
    """

    NONE = "none"
    BUFFER = "buffer"
    STRESSED_WEIGHT = "stressed-weight"
    FLOOR = "floor"


class VarMethod(StrEnum):
    """How VaR/ES scenarios are drawn from history: as they happened, or each return rescaled
    by today's volatility over that day's (filtered historical simulation).
    """

    HISTORICAL = "historical"
    FILTERED_HISTORICAL = "filtered-historical"


class Innovations(StrEnum):
    """What drives Monte Carlo paths: the fitted models' joint standardised residuals drawn
    with replacement, multivariate Student t, or Gaussian innovations under the correlation.
    """

    FILTERED_HISTORICAL = "filtered-historical"
    STUDENT_T = "student-t"
    GAUSSIAN = "gaussian"


class Sampling(StrEnum):
    """How Monte Carlo uniforms are drawn: pseudo-random, antithetic pairs, or a scrambled
    Sobol sequence (quasi-random).
    """

    PSEUDO = "pseudo"
    ANTITHETIC = "antithetic"
    SOBOL = "sobol"


class VarMeasure(StrEnum):
    """The risk measure of the VaR model: value-at-risk or expected shortfall."""

    VAR = "var"
    ES = "es"
