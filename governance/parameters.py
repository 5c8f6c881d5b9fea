"""Parameter sets: every model's parameters, validated, fingerprinted and diffable.

A parameter set is a document::

    underlyings:
      BTC:
        pm:       {price_range: 0.16, vol_range_up: 0.5, …}     # Deribit-style portfolio margin
        span:     {price_scan_range: 0.16, …}                   # SPAN-style
        standard: {future_initial: 0.04, …}                     # isolated margin
    currencies:
      BTC: {annualised_move_risk: 0.075, min_annualised_move: 0.01, extended_dampener: 100000}
    collateral:
      ETH: {haircut: 0.10, tiers: [{up_to_usd: 1000000, add_on: 0}, …]}
    spreads:
      BTC-ETH: {credit: 0.5}
    pm:  {mm_factor: 0.8}
    var: {var_confidence: 0.99, es_confidence: 0.975, mpor_days: 2, …}
    product_groups:                                            # optional (TIMS offsets)
      majors: {underlyings: [BTC, ETH], offset: 0.5}
    addons:                                                    # optional (on every model)
      liquidity_threshold: 0.01                                # of the day's volume
      concentration_threshold_usd: 50000000
      concentration_rate: 0.02
      open_interest: {ETH: {base: 0.05, lower_cap_usd: 1.0e9, upper_cap_usd: 5.0e9}}
    impact: {y: 0.7, half_spread: 0.0005}                      # optional (cascades, add-ons)
    venues:                                                    # optional
      derive: {source: …, scenarios: [{spot_shock: 1.18, vol_shock: up, dampening: 1}, …],
               vol_shock: {…}, margin: {…}, basis: {…}, contingency: {…}, skew: {…}}

``addons`` (optional) switches liquidity, concentration and open-interest add-ons on for every
model (:class:`AddOnsBlock`). ``venues`` holds other venues' models' parameters (absent: each venue's published values);
a set without it has the same canonical form, and so the same fingerprint, as before the
section existed.

Every value is addressed by its dotted path (``underlyings.ETH.pm.price_range``); validation
errors name that path. The identity of a set is the SHA-256 of its canonical JSON (sorted keys,
compact separators, floats in their shortest round-trip form), so key order and the way a
number was written (``0.16``, ``0.160``, ``1.6e-1``) do not change it. Sets are never edited: a
change is a new set (:meth:`ParameterSet.with_changes`).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from governance.documents import load_document, validation_message
from margin_engine.addons import AddOns, OpenInterestTier
from margin_engine.params import (
    CollateralParams,
    CurrencyParams,
    HaircutTier,
    ModelParams,
    PortfolioMarginParams,
    ProductGroup,
    SpanParams,
    StandardParams,
    VarParams,
)
from margin_engine.venues import aevo as aevo_model
from margin_engine.venues import derive as derive_model
from margin_engine.venues import hyperliquid as hyperliquid_model
from margin_engine.venues import okx as okx_model
from margin_engine.venues import paradex as paradex_model

SYMBOL = r"^[A-Z0-9]{1,16}$"


class ParameterSetError(ValueError):
    """A parameter set (or a change to one) that does not validate; names the path."""


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PMBlock(_Block):
    price_range: float = Field(gt=0, le=1)
    vol_range_up: float = Field(ge=0, le=5)
    vol_range_down: float = Field(ge=0, le=1)
    min_vol_for_shock_up: float = Field(ge=0, le=5)
    short_term_vega_power: float = Field(ge=0, le=2)
    long_term_vega_power: float = Field(ge=0, le=2)
    extended_table_factor: float = Field(ge=0, le=10)
    max_delta_shock: float = Field(ge=0, le=1)
    delta_total_liq_shock_threshold: float = Field(ge=0)
    m_inc: float = Field(ge=0)


class SpanBlock(_Block):
    price_scan_range: float = Field(gt=0, le=1)
    vol_scan_range: float = Field(ge=0, le=5)
    extreme_move_multiple: float = Field(ge=1, le=10)
    extreme_covered_fraction: float = Field(ge=0, le=1)
    short_option_minimum: float = Field(ge=0, le=1)
    intra_spread_charge: float = Field(ge=0, le=1)


class StandardBlock(_Block):
    future_initial: float = Field(ge=0, le=1)
    future_maintenance: float = Field(ge=0, le=1)
    option_a: float = Field(ge=0, le=1)
    option_b: float = Field(ge=0, le=1)
    option_maintenance: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _maintenance_below_initial(self):
        if self.future_maintenance > self.future_initial:
            raise ValueError("future_maintenance must not exceed future_initial")
        return self


class UnderlyingBlock(_Block):
    pm: PMBlock
    span: SpanBlock
    standard: StandardBlock


class CurrencyBlock(_Block):
    annualised_move_risk: float = Field(ge=0, le=1)
    min_annualised_move: float = Field(ge=0, le=1)
    extended_dampener: float = Field(ge=0)


class TierBlock(_Block):
    up_to_usd: float | None = Field(default=None, gt=0)
    add_on: float = Field(ge=0, le=1)


class CollateralBlock(_Block):
    """Base haircut and size tiers: collateral in the band up to ``up_to_usd`` is cut by
    ``haircut + add_on`` (bands applied like tax bands; the last tier has no limit)."""

    haircut: float = Field(ge=0, le=1)
    tiers: tuple[TierBlock, ...] = (TierBlock(up_to_usd=None, add_on=0.0),)

    @model_validator(mode="after")
    def _tiers(self):
        limits = [t.up_to_usd for t in self.tiers]
        if not limits or limits[-1] is not None:
            raise ValueError("the last tier must have no limit (up_to_usd: null)")
        finite = [x for x in limits[:-1] if x is not None]
        if (
            len(finite) != len(limits) - 1
            or finite != sorted(finite)
            or len(set(finite)) != len(finite)
        ):
            raise ValueError("tier limits must increase")
        if any(self.haircut + t.add_on > 1 for t in self.tiers):
            raise ValueError("haircut + add_on must not exceed 1")
        return self


class SpreadBlock(_Block):
    credit: float = Field(ge=0, le=1)


class PMGlobalBlock(_Block):
    mm_factor: float = Field(gt=0, le=1)


class VarBlock(_Block):
    var_confidence: float = Field(gt=0.5, lt=1)
    es_confidence: float = Field(gt=0.5, lt=1)
    mpor_days: int = Field(ge=1, le=30)
    lookback_days: int = Field(ge=100)
    method: Literal["historical", "filtered-historical"]
    apc: Literal["none", "buffer", "stressed-weight", "floor"]
    apc_buffer: float = Field(ge=0, le=1)
    apc_stress_weight: float = Field(gt=0, le=1)
    floor_lookback_days: int = Field(ge=100)


class DeriveBlock(_Block):
    """Derive PMRM 2 (:mod:`margin_engine.venues.derive`): its scenarios and five parameter
    groups, validated by the model's own constructors (their messages name the field)."""

    source: str = Field(default="", max_length=500)
    scenarios: tuple[derive_model.Scenario, ...] = Field(min_length=1, max_length=1_000)
    vol_shock: derive_model.VolShockParams
    margin: derive_model.LossParams
    basis: derive_model.BasisParams
    contingency: derive_model.ContingencyParams
    skew: derive_model.SkewParams

    def to_params(self) -> derive_model.DeriveParams:
        return derive_model.DeriveParams(
            self.scenarios, self.vol_shock, self.margin, self.basis, self.contingency, self.skew
        )


class HyperliquidBlock(_Block):
    """Hyperliquid margin tables by asset (:mod:`margin_engine.venues.hyperliquid`)."""

    source: str = Field(default="", max_length=500)
    tables: dict[str, tuple[hyperliquid_model.Tier, ...]]

    @field_validator("tables")
    @classmethod
    def _tables(cls, value: dict) -> dict:
        import re

        for asset, tiers in value.items():
            if not re.match(SYMBOL, asset):
                raise ValueError(f"{asset!r} is not an upper-case symbol")
            try:
                hyperliquid_model.MarginTable(tuple(tiers))
            except ValueError as exc:
                raise ValueError(f"{asset}: {exc}") from None
        return value

    def to_tables(self) -> dict[str, hyperliquid_model.MarginTable]:
        return {a: hyperliquid_model.MarginTable(tuple(t)) for a, t in self.tables.items()}


class ProductGroupBlock(_Block):
    """OCC TIMS-style class-group offsets in PM (:func:`margin_engine.portfolio_margin.offset_worst`)."""

    underlyings: tuple[str, ...] = Field(min_length=2, max_length=50)
    offset: float = Field(ge=0, le=1)


class OkxBlock(_Block):
    """OKX portfolio margin parameters by underlying (:mod:`margin_engine.venues.okx`)."""

    source: str = Field(default="", max_length=500)
    underlyings: dict[str, okx_model.OkxParams]


class ParadexBlock(_Block):
    """Paradex portfolio margin parameters (:mod:`margin_engine.venues.paradex`)."""

    source: str = Field(default="", max_length=500)
    params: paradex_model.ParadexParams


class AevoBlock(_Block):
    """Aevo portfolio margin parameters (:mod:`margin_engine.venues.aevo`)."""

    source: str = Field(default="", max_length=500)
    params: aevo_model.AevoParams


class OpenInterestBlock(_Block):
    """dYdX-style liquidity tier for one underlying (:func:`margin_engine.addons.open_interest_imf`)."""

    base: float = Field(ge=0, le=1)
    lower_cap_usd: float = Field(ge=0)
    upper_cap_usd: float = Field(ge=0)

    @model_validator(mode="after")
    def _caps(self):
        if self.upper_cap_usd and self.lower_cap_usd > self.upper_cap_usd:
            raise ValueError("lower_cap_usd is above upper_cap_usd")
        return self


class ImpactBlock(_Block):
    """The square-root impact law's coefficient and half spread (:mod:`margin_engine.impact`;
    σ and the daily volume come from data): the liquidation cascades and the liquidity add-on
    read them."""

    y: float = Field(default=0.7, ge=0, le=5)
    half_spread: float = Field(default=0.0005, ge=0, le=0.1)


class AddOnsBlock(_Block):
    """Add-ons on top of every margin model (:mod:`margin_engine.addons`): liquidity (a
    position above ``liquidity_threshold`` × the day's volume pays its own exit impact under
    the set's ``impact`` law; σ and the volume from the 30 days before the market),
    concentration (``concentration_rate`` on the notional above ``concentration_threshold_usd``)
    and the open-interest IMF (by underlying)."""

    liquidity_threshold: float = Field(default=0.01, ge=0, le=1)
    concentration_threshold_usd: float = Field(default=50_000_000.0, ge=0)
    concentration_rate: float = Field(default=0.0, ge=0, le=1)
    open_interest: dict[str, OpenInterestBlock] = Field(default_factory=dict)

    def to_addons(self, impact: ImpactBlock) -> AddOns:
        return AddOns(
            liquidity_threshold=self.liquidity_threshold,
            concentration_threshold=self.concentration_threshold_usd,
            concentration_rate=self.concentration_rate,
            impact_y=impact.y,
            half_spread=impact.half_spread,
            open_interest={
                u: OpenInterestTier(t.base, t.lower_cap_usd, t.upper_cap_usd)
                for u, t in self.open_interest.items()
            },
        )


class VenuesBlock(_Block):
    aevo: AevoBlock | None = None
    derive: DeriveBlock | None = None
    hyperliquid: HyperliquidBlock | None = None
    okx: OkxBlock | None = None
    paradex: ParadexBlock | None = None


class ParameterSet(_Block):
    """Every model's parameters; see the module docstring."""

    schema_version: Literal[1] = 1
    underlyings: dict[str, UnderlyingBlock]
    currencies: dict[str, CurrencyBlock]
    collateral: dict[str, CollateralBlock]
    spreads: dict[str, SpreadBlock] = {}
    pm: PMGlobalBlock
    var: VarBlock
    venues: VenuesBlock | None = None
    product_groups: dict[str, ProductGroupBlock] | None = None
    addons: AddOnsBlock | None = None
    impact: ImpactBlock | None = None

    @property
    def impact_law(self) -> ImpactBlock:
        """The set's impact law (its ``impact`` block, else the defaults)."""
        return self.impact or ImpactBlock()

    @field_validator("underlyings", "currencies", "collateral")
    @classmethod
    def _symbols(cls, value: dict) -> dict:
        import re

        for key in value:
            if not re.match(SYMBOL, key):
                raise ValueError(f"{key!r} is not an upper-case symbol")
        return value

    @model_validator(mode="after")
    def _product_group_members(self):
        for name, group in (self.product_groups or {}).items():
            unknown = [u for u in group.underlyings if u not in self.underlyings]
            if unknown or len(set(group.underlyings)) < 2:
                raise ValueError(
                    f"product_groups.{name}: needs two or more different underlyings of the set"
                    + (f" ({', '.join(unknown)} not in it)" if unknown else "")
                )
        return self

    @model_validator(mode="after")
    def _spread_legs(self):
        for key in self.spreads:
            legs = key.split("-")
            if (
                len(legs) != 2
                or legs[0] == legs[1]
                or any(leg not in self.underlyings for leg in legs)
            ):
                raise ValueError(
                    f"spreads.{key}: must name two different underlyings of the set, like BTC-ETH"
                )
        return self

    # ------------------------------------------------------------------ identity

    def canonical_dict(self) -> dict:
        document = self.model_dump(mode="json")
        for optional in ("venues", "product_groups", "addons", "impact"):
            if document.get(optional) is None:  # sets from before these keep their identity
                document.pop(optional, None)
        return document

    def canonical_json(self) -> str:
        return json.dumps(
            self.canonical_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False
        )

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    # ------------------------------------------------------------------ paths

    def get(self, path: str) -> Any:
        node: Any = self.canonical_dict()
        for part in path.split("."):
            if isinstance(node, list):
                try:
                    node = node[int(part)]
                    continue
                except (ValueError, IndexError):
                    raise KeyError(f"{path}: no element {part!r}") from None
            if not isinstance(node, dict) or part not in node:
                raise KeyError(f"{path}: no such parameter")
            node = node[part]
        return node

    def paths(self) -> dict[str, Any]:
        """Every leaf value by dotted path."""
        return dict(flatten_paths(self.canonical_dict()))

    def with_changes(self, changes: Mapping[str, Any]) -> ParameterSet:
        """A new, validated set with ``{path: new value}`` applied. A path must already exist,
        except under a new underlying/collateral asset/spread whose block is given whole."""
        document = self.canonical_dict()
        for path, value in changes.items():
            parts = path.split(".")
            node = document
            for i, part in enumerate(parts[:-1]):
                if isinstance(node, list):
                    node = node[int(part)]
                    continue
                if part not in node:
                    raise ParameterSetError(
                        f"{'.'.join(parts[: i + 1])}: no such section (changing {path})"
                    )
                node = node[part]
            last = parts[-1]
            if isinstance(node, list):
                node[int(last)] = copy.deepcopy(value)
            else:
                if last not in node and not isinstance(value, dict):
                    raise ParameterSetError(f"{path}: no such parameter")
                node[last] = copy.deepcopy(value)
        return parse_parameter_set(document)

    # ------------------------------------------------------------------ to the engine

    def to_model_params(self) -> ModelParams:
        def tiers(block: CollateralBlock) -> CollateralParams:
            return CollateralParams(
                tuple(HaircutTier(t.up_to_usd, block.haircut + t.add_on) for t in block.tiers)
            )

        v = self.var
        return ModelParams(
            pm={u: PortfolioMarginParams(**b.pm.model_dump()) for u, b in self.underlyings.items()},
            currencies={c: CurrencyParams(**b.model_dump()) for c, b in self.currencies.items()},
            standard={
                u: StandardParams(**b.standard.model_dump()) for u, b in self.underlyings.items()
            },
            span={u: SpanParams(**b.span.model_dump()) for u, b in self.underlyings.items()},
            spreads={_pair(k): s.credit for k, s in self.spreads.items()},
            collateral={a: tiers(b) for a, b in self.collateral.items()},
            var=VarParams(**v.model_dump()),
            mm_factor=self.pm.mm_factor,
            derive=(
                self.venues.derive.to_params()
                if self.venues is not None and self.venues.derive is not None
                else None
            ),
            product_groups={
                name: ProductGroup(tuple(g.underlyings), g.offset)
                for name, g in (self.product_groups or {}).items()
            },
            addons=self.addons.to_addons(self.impact_law) if self.addons is not None else None,
            hyperliquid=(
                self.venues.hyperliquid.to_tables()
                if self.venues is not None and self.venues.hyperliquid is not None
                else None
            ),
            aevo=(
                self.venues.aevo.params
                if self.venues is not None and self.venues.aevo is not None
                else None
            ),
            paradex=(
                self.venues.paradex.params
                if self.venues is not None and self.venues.paradex is not None
                else None
            ),
            okx=(
                dict(self.venues.okx.underlyings)
                if self.venues is not None and self.venues.okx is not None
                else None
            ),
        )


def _pair(key: str) -> tuple[str, str]:
    """``"BTC-ETH"`` as ``("BTC", "ETH")`` (a spread's key; validated as two symbols)."""
    first, second = key.split("-")
    return first, second


def flatten_paths(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key in sorted(node):
            yield from flatten_paths(node[key], f"{prefix}{key}.")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from flatten_paths(item, f"{prefix}{i}.")
    else:
        yield prefix[:-1], node


def parse_parameter_set(document: Mapping) -> ParameterSet:
    """Validate a parameter-set document; errors name the dotted path of the first problem."""
    try:
        return ParameterSet.model_validate(document)
    except ValidationError as exc:
        raise ParameterSetError(validation_message(exc)) from exc


def load_parameter_set(path: str | Path) -> ParameterSet:
    """A parameter set from a YAML or JSON file."""
    return load_document(path, parse_parameter_set, ParameterSetError)


@dataclass(frozen=True)
class Change:
    path: str
    old: Any
    new: Any

    def describe(self) -> str:
        return f"{self.path}: {_show(self.old)} -> {_show(self.new)}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready; an absent side is ``None``."""
        return {
            "path": self.path,
            "old": None if self.old is ABSENT else self.old,
            "new": None if self.new is ABSENT else self.new,
        }


def _show(value: Any) -> str:
    return "(absent)" if value is ABSENT else json.dumps(value)


ABSENT = object()  # the value of a leaf that one side of a Change does not have


def diff(old: ParameterSet, new: ParameterSet) -> list[Change]:
    """Every leaf that differs, by path (added and removed leaves included)."""
    return diff_paths(old.paths(), new.paths())


def diff_paths(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[Change]:
    """Differences of two flattened documents (``path -> leaf``); :data:`ABSENT` marks a missing side."""
    return [
        Change(path, a.get(path, ABSENT), b.get(path, ABSENT))
        for path in sorted(set(a) | set(b))
        if a.get(path, ABSENT) != b.get(path, ABSENT)
    ]


def apply_diff(changes: list[Change], base: ParameterSet) -> ParameterSet:
    """``apply_diff(diff(a, b), a) == b``: set, add and remove leaves, list items included."""
    document = base.canonical_dict()

    def natural(change: Change) -> list:  # "tiers.10" after "tiers.2"
        return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in change.path.split(".")]

    for change in sorted(changes, key=natural):
        parts = change.path.split(".")
        node: Any = document
        for i, part in enumerate(parts[:-1]):
            child: list[Any] | dict[str, Any] = [] if parts[i + 1].isdigit() else {}
            if isinstance(node, list):
                index = int(part)
                while len(node) <= index:
                    node.append(copy.deepcopy(child))
                node = node[index]
            else:
                node = node.setdefault(part, child)
        last = parts[-1]
        if isinstance(node, list):
            index = int(last)
            while len(node) <= index:
                node.append(_REMOVED)
            node[index] = _REMOVED if change.new is ABSENT else change.new
        elif change.new is ABSENT:
            node.pop(last, None)
        else:
            node[last] = change.new
    _prune(document)
    return parse_parameter_set(document)


_REMOVED = object()  # a list slot whose item the diff removes; dropped by _prune


def _prune(node: Any, top: bool = True) -> Any:
    """Drop removed list slots and the sections and list items that removals emptied."""
    if isinstance(node, dict):
        for key in list(node):
            _prune(node[key], top=False)
            # `spreads` may legitimately be empty: a set without cross-margin credits
            if node[key] in ({}, []) and not (top and key == "spreads"):
                del node[key]
    elif isinstance(node, list):
        for item in node:
            _prune(item, top=False)
        node[:] = [item for item in node if item is not _REMOVED and item not in ({}, [])]
    return node


def _underlying(pm: dict, span: dict | None = None) -> dict:
    return {
        "pm": pm,
        "span": span
        or {
            "price_scan_range": pm["price_range"],
            "vol_scan_range": pm["vol_range_up"],
            "extreme_move_multiple": 2.0,
            "extreme_covered_fraction": 0.35,
            "short_option_minimum": 0.01,
            "intra_spread_charge": 0.01,
        },
        "standard": {
            "future_initial": 0.04,
            "future_maintenance": 0.02,
            "option_a": 0.15,
            "option_b": 0.10,
            "option_maintenance": 0.075,
        },
    }


_BTC_PM = {
    "price_range": 0.16,
    "vol_range_up": 0.50,
    "vol_range_down": 0.25,
    "min_vol_for_shock_up": 0.50,
    "short_term_vega_power": 0.30,
    "long_term_vega_power": 0.13,
    "extended_table_factor": 1.0,
    "max_delta_shock": 0.10,
    "delta_total_liq_shock_threshold": 20_000_000.0,
    "m_inc": 5e-5,
}
_ETH_PM = {
    **_BTC_PM,
    "price_range": 0.18,
    "vol_range_up": 0.40,
    "vol_range_down": 0.25,
    "m_inc": 4e-6,
}
_TIERS = [
    {"up_to_usd": 1_000_000.0, "add_on": 0.0},
    {"up_to_usd": 10_000_000.0, "add_on": 0.02},
    {"up_to_usd": None, "add_on": 0.05},
]

DEFAULT_DOCUMENT: dict = {
    "schema_version": 1,
    "underlyings": {
        # published by Deribit: btc_usd (Jun 2024), eth_usd (Feb 2026)
        "BTC": _underlying(_BTC_PM),
        "ETH": _underlying(_ETH_PM),
        # not published: SOL uses ETH's values, a wider price range for a more volatile coin
        "SOL": _underlying({**_ETH_PM, "price_range": 0.24}),
    },
    "currencies": {
        "BTC": {
            "annualised_move_risk": 0.075,
            "min_annualised_move": 0.01,
            "extended_dampener": 100_000.0,
        },
        "ETH": {
            "annualised_move_risk": 0.05,
            "min_annualised_move": 0.005,
            "extended_dampener": 200_000.0,
        },
        "USDC": {
            "annualised_move_risk": 0.1,
            "min_annualised_move": 0.01,
            "extended_dampener": 25_000.0,
        },
    },
    # illustrative haircuts (Deribit does not publish calibrated ones)
    "collateral": {
        "BTC": {"haircut": 0.08, "tiers": _TIERS},
        "ETH": {"haircut": 0.10, "tiers": _TIERS},
        "SOL": {"haircut": 0.15, "tiers": _TIERS},
        "USDC": {"haircut": 0.0, "tiers": [{"up_to_usd": None, "add_on": 0.0}]},
    },
    "spreads": {
        "BTC-ETH": {"credit": 0.50},
        "BTC-SOL": {"credit": 0.35},
        "ETH-SOL": {"credit": 0.40},
    },
    "pm": {"mm_factor": 0.8},
    "var": {
        "var_confidence": 0.99,
        "es_confidence": 0.975,
        "mpor_days": 2,
        "lookback_days": 750,
        "method": "filtered-historical",
        "apc": "buffer",
        "apc_buffer": 0.25,
        "apc_stress_weight": 0.25,
        "floor_lookback_days": 3650,
    },
}


def _derive_block(params: derive_model.DeriveParams, source: str) -> dict:
    def plain(value: Any) -> Any:
        return value.value if isinstance(value, derive_model.VolShock) else value

    return {
        "source": source,
        "scenarios": [
            {k: plain(v) for k, v in dataclasses.asdict(s).items()} for s in params.scenarios
        ],
        **{
            name: dataclasses.asdict(getattr(params, name))
            for name in ("vol_shock", "margin", "basis", "contingency", "skew")
        },
    }


#: Venues' published parameter sets by name (``--params derive``): the default set with the
#: venue's block, so that a proposal can be compared with what the venue publishes.
VENUE_SETS: dict[str, str] = {
    "derive": f"Derive's published PMRM 2 values ({derive_model.PUBLISHED_DATE})",
    "hyperliquid": "Hyperliquid's published margin tables (2026-11)",
    "okx": "OKX's published portfolio margin parameters (2025-01)",
    "paradex": "Paradex's published portfolio margin scenarios (2026-11)",
    "aevo": "Aevo's published portfolio margin (ETH launch values, unit floor margin 0.01 ETH)",
}
#: When each venue published the values its named set carries.
VENUE_DATES: dict[str, str] = {
    "derive": derive_model.PUBLISHED_DATE,
    "hyperliquid": "2026-11",
    "okx": "2025-01",
    "paradex": "2026-11",
    "aevo": "2026-11",
}


def venue_parameter_set(name: str) -> ParameterSet:
    """The named venue's published set (see :data:`VENUE_SETS`)."""
    if name not in VENUE_SETS:
        raise ParameterSetError(
            f"{name!r}: no published venue set (one of {', '.join(VENUE_SETS)})"
        )
    document = copy.deepcopy(DEFAULT_DOCUMENT)
    if name == "derive":
        block = _derive_block(derive_model.PUBLISHED, derive_model.PUBLISHED_SOURCE)
    elif name == "aevo":
        block = {
            "source": aevo_model.PUBLISHED_SOURCE,
            "params": dataclasses.asdict(aevo_model.PUBLISHED),
        }
    elif name == "paradex":
        block = {
            "source": paradex_model.PUBLISHED_SOURCE,
            "params": dataclasses.asdict(paradex_model.PUBLISHED),
        }
    elif name == "okx":
        block = {
            "source": okx_model.PUBLISHED_SOURCE,
            "underlyings": {u: dataclasses.asdict(p) for u, p in okx_model.PUBLISHED.items()},
        }
    else:
        block = {
            "source": hyperliquid_model.PUBLISHED_SOURCE,
            "tables": {
                asset: [{"lower": lower, "max_leverage": lev} for lower, lev in rows]
                for asset, rows in hyperliquid_model.PUBLISHED_TABLES.items()
            },
        }
    document["venues"] = {name: block}
    return parse_parameter_set(document)


def default_parameter_set() -> ParameterSet:
    """The default set: Deribit's published PM values for BTC and ETH; the rest illustrative."""
    return parse_parameter_set(copy.deepcopy(DEFAULT_DOCUMENT))
