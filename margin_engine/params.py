"""Frozen parameter objects of the margin models.

Each maps one-to-one onto a section of the governance parameter set
(``underlyings.<U>.<model>.<field>``, ``currencies.<C>.<field>``, ``collateral.<A>``,
``spreads.<A>-<B>.credit``, ``pm.mm_factor``, ``var.<field>``). Defaults are the published
Deribit portfolio-margin values (btc_usd June 2024, eth_usd February 2026); values
Deribit does not publish (standard and SPAN-style rates, SOL) are illustrative and say so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from margin_engine.addons import AddOns
from margin_engine.venues.aevo import AevoParams
from margin_engine.venues.derive import DeriveParams
from margin_engine.venues.hyperliquid import MarginTable
from margin_engine.venues.okx import OkxParams
from margin_engine.venues.paradex import ParadexParams
from vocabulary import Apc, VarMethod


def _check(ok: bool, where: str, message: str) -> None:
    if not ok:
        raise ValueError(f"{where}: {message}")


def _fraction(
    where: str, value: float, *, low: float = 0.0, high: float = 1.0, open_low: bool = False
) -> None:
    ok = math.isfinite(value) and (value > low if open_low else value >= low) and value <= high
    bracket = "(" if open_low else "["
    _check(ok, where, f"{value!r} must be in {bracket}{low}, {high}]")


@dataclass(frozen=True)
class PortfolioMarginParams:
    """Deribit-style PM parameters of one underlying (Deribit's ``currency_pair`` block)."""

    price_range: float = 0.16
    vol_range_up: float = 0.50
    vol_range_down: float = 0.25
    min_vol_for_shock_up: float = 0.50
    short_term_vega_power: float = 0.30
    long_term_vega_power: float = 0.13
    extended_table_factor: float = 1.0
    max_delta_shock: float = 0.10
    delta_total_liq_shock_threshold: float = 20_000_000.0
    m_inc: float = 5e-5

    def __post_init__(self) -> None:
        _fraction("pm.price_range", self.price_range, open_low=True)
        _fraction("pm.vol_range_up", self.vol_range_up, high=5.0)
        _fraction("pm.vol_range_down", self.vol_range_down)
        _fraction("pm.min_vol_for_shock_up", self.min_vol_for_shock_up, high=5.0)
        _fraction("pm.short_term_vega_power", self.short_term_vega_power, high=2.0)
        _fraction("pm.long_term_vega_power", self.long_term_vega_power, high=2.0)
        _fraction("pm.extended_table_factor", self.extended_table_factor, high=10.0)
        _fraction("pm.max_delta_shock", self.max_delta_shock)
        _check(
            self.delta_total_liq_shock_threshold >= 0,
            "pm.delta_total_liq_shock_threshold",
            "must be >= 0",
        )
        _check(self.m_inc >= 0, "pm.m_inc", "must be >= 0")


@dataclass(frozen=True)
class ProductGroup:
    """A TIMS-style product group: the class groups (one per underlying, settled in one
    currency) whose scenario P&L offset each other, gains at ``offset`` of their value.
    """

    underlyings: tuple[str, ...]
    offset: float

    def __post_init__(self) -> None:
        if len(set(self.underlyings)) < 2:
            raise ValueError("product group: name at least two different underlyings")
        _fraction("product_group.offset", self.offset)


@dataclass(frozen=True)
class CurrencyParams:
    """Deribit-style PM parameters of one settlement currency (roll shock and dampener)."""

    annualised_move_risk: float = 0.075
    min_annualised_move: float = 0.01
    extended_dampener: float = 100_000.0  # USD

    def __post_init__(self) -> None:
        _fraction("currency.annualised_move_risk", self.annualised_move_risk)
        _fraction("currency.min_annualised_move", self.min_annualised_move)
        _check(self.extended_dampener >= 0, "currency.extended_dampener", "must be >= 0")


@dataclass(frozen=True)
class StandardParams:
    """Standard (isolated) margin of one underlying.

    Futures/perpetuals: IM and MM are fixed fractions of notional (Deribit adds a size-based
    increment, omitted here: illustrative rates). Short options (Deribit's formulas):
    IM = (max(a - OTM/F, b) + mark) per unit, MM = (mm + mark) per unit, in units of the
    underlying; long options need none (the premium is paid).
    """

    future_initial: float = 0.04
    future_maintenance: float = 0.02
    option_a: float = 0.15
    option_b: float = 0.10
    option_maintenance: float = 0.075

    def __post_init__(self) -> None:
        for f in fields(self):
            _fraction(f"standard.{f.name}", getattr(self, f.name))
        _check(
            self.future_maintenance <= self.future_initial,
            "standard.future_maintenance",
            "must not exceed future_initial",
        )


@dataclass(frozen=True)
class SpanParams:
    """SPAN-style parameters of one underlying (illustrative defaults: ranges from Deribit's
    PM, CME-like extreme move 2 × range at 35 % covered).
    """

    price_scan_range: float = 0.16
    vol_scan_range: float = 0.50
    extreme_move_multiple: float = 2.0
    extreme_covered_fraction: float = 0.35
    short_option_minimum: float = 0.01  # per unit of underlying, as a fraction of its price
    intra_spread_charge: float = 0.01  # per unit of matched calendar delta, fraction of price

    def __post_init__(self) -> None:
        _fraction("span.price_scan_range", self.price_scan_range, open_low=True)
        _fraction("span.vol_scan_range", self.vol_scan_range, high=5.0)
        _check(
            1.0 <= self.extreme_move_multiple <= 10.0,
            "span.extreme_move_multiple",
            f"{self.extreme_move_multiple!r} must be in [1, 10]",
        )
        _fraction("span.extreme_covered_fraction", self.extreme_covered_fraction)
        _fraction("span.short_option_minimum", self.short_option_minimum)
        _fraction("span.intra_spread_charge", self.intra_spread_charge)


@dataclass(frozen=True)
class VarParams:
    """Historical / filtered-historical VaR and ES over an MPOR, full revaluation."""

    var_confidence: float = 0.99
    es_confidence: float = 0.975
    mpor_days: int = 2
    lookback_days: int = 750
    method: VarMethod = VarMethod.FILTERED_HISTORICAL
    apc: Apc = Apc.BUFFER
    apc_buffer: float = 0.25
    apc_stress_weight: float = 0.25
    floor_lookback_days: int = 3650

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", VarMethod(self.method))
        object.__setattr__(self, "apc", Apc(self.apc))
        _check(
            0.5 < self.var_confidence < 1,
            "var.var_confidence",
            f"{self.var_confidence!r} must be in (0.5, 1)",
        )
        _check(
            0.5 < self.es_confidence < 1,
            "var.es_confidence",
            f"{self.es_confidence!r} must be in (0.5, 1)",
        )
        _check(1 <= self.mpor_days <= 30, "var.mpor_days", f"{self.mpor_days!r} must be in 1..30")
        _check(self.lookback_days >= 100, "var.lookback_days", "must be >= 100")
        _fraction("var.apc_buffer", self.apc_buffer)
        _fraction("var.apc_stress_weight", self.apc_stress_weight, open_low=True)


@dataclass(frozen=True)
class HaircutTier:
    """Collateral worth up to ``up_to_usd`` (None: no limit) is cut by ``haircut``."""

    up_to_usd: float | None  # None: no upper limit
    haircut: float

    def __post_init__(self) -> None:
        _fraction("collateral.haircut", self.haircut)


@dataclass(frozen=True)
class CollateralParams:
    """Haircut tiers of one collateral asset, applied bracket by bracket (like tax bands)."""

    tiers: tuple[HaircutTier, ...] = (HaircutTier(None, 0.10),)

    def __post_init__(self) -> None:
        limits = [t.up_to_usd for t in self.tiers]
        _check(
            bool(limits) and limits[-1] is None,
            "collateral.tiers",
            "the last tier must have no limit",
        )
        finite = [x for x in limits[:-1] if x is not None]
        _check(
            len(finite) == len(limits) - 1 and finite == sorted(finite),
            "collateral.tiers",
            "limits must increase",
        )


DEFAULT_PM: dict[str, PortfolioMarginParams] = {
    "BTC": PortfolioMarginParams(),
    "ETH": PortfolioMarginParams(
        price_range=0.18, vol_range_up=0.40, vol_range_down=0.25, m_inc=4e-6
    ),
}
DEFAULT_CURRENCIES: dict[str, CurrencyParams] = {
    "BTC": CurrencyParams(0.075, 0.01, 100_000.0),
    "ETH": CurrencyParams(0.05, 0.005, 200_000.0),
    "USDC": CurrencyParams(0.1, 0.01, 25_000.0),  # Deribit's "usd" currency block
}


@dataclass(frozen=True)
class ModelParams:
    """Everything the models need, per underlying / currency / collateral asset / pair.

    Underlyings without their own entry fall back to ``fallback_underlying``'s (reported by
    :meth:`source_of`), so that an unpublished market is margined, visibly, like a known one.
    """

    pm: Mapping[str, PortfolioMarginParams] = field(default_factory=lambda: dict(DEFAULT_PM))
    currencies: Mapping[str, CurrencyParams] = field(
        default_factory=lambda: dict(DEFAULT_CURRENCIES)
    )
    standard: Mapping[str, StandardParams] = field(default_factory=dict)
    span: Mapping[str, SpanParams] = field(default_factory=dict)
    spreads: Mapping[tuple[str, str], float] = field(default_factory=dict)
    collateral: Mapping[str, CollateralParams] = field(default_factory=dict)
    var: VarParams = VarParams()
    mm_factor: float = 0.8
    fallback_underlying: str = "ETH"
    # Derive PMRM 2 (``derive-pmrm2``); None: Derive's published values
    derive: DeriveParams | None = None
    # Hyperliquid margin tables by asset (``hyperliquid``); None: the published tables
    hyperliquid: Mapping[str, MarginTable] | None = None
    # Aevo's moves, shifts and floor rate (``aevo-pm``); None: the published ones
    aevo: AevoParams | None = None
    # Paradex's scenarios and delta rates (``paradex-pm``); None: the published ones
    paradex: ParadexParams | None = None
    # OKX parameters by underlying (``okx-pm``); None: the published ones
    okx: Mapping[str, OkxParams] | None = None
    # TIMS-style offsets between class groups in PM (none: each group margined alone)
    product_groups: Mapping[str, ProductGroup] = field(default_factory=dict)
    # liquidity, concentration and open-interest add-ons on every model (None: off)
    addons: AddOns | None = None

    def __post_init__(self) -> None:
        _fraction("pm.mm_factor", self.mm_factor, open_low=True)
        for pair, credit in self.spreads.items():
            _fraction(f"spreads.{pair[0]}-{pair[1]}.credit", credit)

    def _lookup(self, table: Mapping[str, Any], key: str, default: Callable[[], Any]) -> Any:
        """``table[key]``, else the fallback underlying's entry, else ``default()`` (built only
        when needed: models ask for parameters per group many times per call).
        """
        if key in table:
            return table[key]
        if self.fallback_underlying in table:
            return table[self.fallback_underlying]
        return default()

    def pm_for(self, underlying: str) -> PortfolioMarginParams:
        """The PM parameters of ``underlying`` (the fallback underlying's when absent)."""
        return self._lookup(self.pm, underlying, PortfolioMarginParams)

    def currency_for(self, currency: str) -> CurrencyParams:
        """The parameters of settlement ``currency``."""
        if currency in self.currencies:
            return self.currencies[currency]
        if currency in {"USD", "USDT"} and "USDC" in self.currencies:
            return self.currencies["USDC"]
        return self._lookup(self.currencies, currency, CurrencyParams)

    def standard_for(self, underlying: str) -> StandardParams:
        """The standard-margin parameters of ``underlying``."""
        return self._lookup(self.standard, underlying, StandardParams)

    def span_for(self, underlying: str) -> SpanParams:
        """The SPAN parameters of ``underlying``."""
        if underlying in self.span:
            return self.span[underlying]
        pm = self.pm_for(underlying)
        return SpanParams(price_scan_range=pm.price_range, vol_scan_range=pm.vol_range_up)

    def credit_for(self, a: str, b: str) -> float:
        """The spread credit between underlyings ``a`` and ``b`` (0 without one)."""
        return self.spreads.get((a, b), self.spreads.get((b, a), 0.0))

    def collateral_for(self, asset: str) -> CollateralParams:
        """The haircut tiers of collateral ``asset``."""
        return self.collateral.get(asset, CollateralParams())

    def source_of(self, underlying: str) -> str:
        """Whose parameters ``underlying`` uses: its own, or the fallback's."""
        return underlying if underlying in self.pm else f"{self.fallback_underlying} (fallback)"
