"""``mwb replicate``: a venue's margin on a portfolio in the venue's own published format, beside
the venue's own published result where the file carries one.

Deribit answers ``private/pme/simulate`` with the portfolio (``portfolio.position``, coins per
instrument), the prices (``index_price``, ``ticker``), the model's parameters (``model_params``)
and the result (``margins``, ``pre_aggregated_risk_vectors``): the file is that JSON-RPC reply
(or its ``result``). The parameters become a parameter set (the default with Deribit's values
over it, validated like any set), the positions a book in the workbench's units, and the
published margins and risk vectors are printed beside ours.

Derive publishes its PMRM 2 test portfolios as JSON (``Scenario``: the portfolio and feeds;
``Parameters``: the parameter set; ``Result``: IM, MM and every scenario's loss). The file is
read bounded (size, nesting), validated by a schema that names the field at fault, and turned
into :mod:`margin_engine.venues.derive` objects; the numbers come from there.

Where a venue publishes no file format (and for Derive too), a YAML describes the case::

    as_of: 2026-03-30T08:00:00Z
    spot: {ETH: 2000}
    futures: {ETH-26JUN26: 2010}            # optional forwards of dated futures
    positions:
      - {instrument: ETH-26JUN26-2000-C, quantity: -1, iv: 0.55}
      - {instrument: ETH_USDC-PERPETUAL, quantity: 0.5}
    params: paradex                          # a venue's published set, or its block inline
    published: {initial_margin: 123.4, maintenance_margin: 61.7}   # optional

Instruments are Deribit names and units (an option's ``iv`` is required); the venue's model
margins the same exposures (see :mod:`margin_engine.venues.books`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from margin_engine.venues import derive
from pipelines.errors import BadInputError
from pipelines.files import read_json, regular_file

if TYPE_CHECKING:
    from governance.parameters import ParameterSet

MAX_CASE_BYTES = 20_000_000  # Derive's largest published case is ~60 kB
MAX_CASE_DEPTH = 8  # {Scenario: {Options: [{…}]}} and {Result: {reg_losses: [[…]]}}


class Venue(StrEnum):
    """Venues ``mwb replicate`` margins (Derive and Deribit also in their own JSON formats)."""

    DERIBIT = "deribit"
    DERIVE = "derive"
    OKX = "okx"
    PARADEX = "paradex"
    AEVO = "aevo"
    HYPERLIQUID = "hyperliquid"


VENUE_MODEL = {
    Venue.DERIBIT: "deribit-pm",
    Venue.DERIVE: "derive-pmrm2",
    Venue.OKX: "okx-pm",
    Venue.PARADEX: "paradex-pm",
    Venue.AEVO: "aevo-pm",
    Venue.HYPERLIQUID: "hyperliquid",
}


class _Schema(BaseModel):
    # NaN and infinities name their field here rather than failing deeper in
    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)


class _Scenario(_Schema):
    SpotShock: float = Field(ge=0)
    VolShockDirection: str
    DampeningFactor: float = Field(ge=0)


class _VolShock(_Schema):
    VOLRANGEUP: float
    VOLRANGEDOWN: float
    SHORTTERMPOWER: float
    LONGTERMPOWER: float
    DTE_FLOOR: float
    MIN_VOL_EVAL_SHOCKED: float


class _Margin(_Schema):
    IM_LOSS_FACTOR: float
    MM_LOSS_FACTOR: float
    SHORT_RATE_MULTSCALE: float
    LONG_RATE_MULTSCALE: float
    SHORT_RATE_ADDSCALE: float
    LONG_RATE_ADDSCALE: float
    BASE_STATIC_DISCOUNT: float
    BASE_STATIC_DISCOUNT_NEG: float


class _Basis(_Schema):
    SCENARIO_SPOT_UP: float
    SCENARIO_SPOT_DOWN: float
    BASIS_CONT_ADD_FACTOR: float
    BASIS_CONT_MULT_FACTOR: float


class _Other(_Schema):
    PEG_LOSS_THRESHOLD: float
    PEG_LOSS_FACTOR: float
    CONF_THRESHOLD: float
    CONF_MARGIN: float
    MM_PERP_PERCENT: float
    IM_PERP_PERCENT: float
    MM_OPTION_PERCENT: float
    IM_OPTION_PERCENT: float


class _Skew(_Schema):
    LINEAR_SCALE_CAP: float
    ABS_SCALE_CAP: float
    LINEAR_CBASE: float
    ABS_CBASE: float
    MIN_K_STAR: float
    MIN_WIDTH_SCALE: float
    VOL_PARAM_STATIC: float
    VOL_PARAM_SCALE: float


class _Parameters(_Schema):
    Scenarios: list[_Scenario] = Field(min_length=1, max_length=1_000)
    VolShock: _VolShock
    Margin: _Margin
    BasisContingency: _Basis
    OtherContingency: _Other
    SkewShock: _Skew


class _Collateral(_Schema):
    Name: str = Field(max_length=100)
    Amount: float
    Price: float
    Confidence: float = 1.0
    IsRiskCancelling: bool
    IMHaircut: float
    MMHaircut: float


class _Option(_Schema):
    Expiry: int = Field(ge=0)
    Strike: float
    IsCall: bool
    Amount: float
    MarkVol: float


class _Feed(_Schema):
    FeedExpiry: int = Field(ge=0)
    Forward: float = Field(ge=0)
    ForwardConfidence: float = 1.0
    Rate: float
    RateConfidence: float = 1.0
    OptionVolConfidences: float = 1.0


class _Portfolio(_Schema):
    Cash: float = 0.0
    Collaterals: list[_Collateral] = Field(default_factory=list, max_length=1_000)
    SpotPrice: float
    SpotConfidence: float = 1.0
    NumPerps: float = 0.0
    PerpPrice: float = 0.0
    PerpConfidence: float = 1.0
    UnrealisedPerpPNL: float = 0.0
    UnrealisedFunding: float = 0.0
    StablePrice: float = 1.0
    Options: list[_Option] = Field(default_factory=list, max_length=10_000)
    OptionFeeds: list[_Feed] = Field(default_factory=list, max_length=1_000)


class _Result(_Schema):
    IM: float
    MM: float
    PortfolioMTM: float
    reg_losses: list[list[float | int | str]] = Field(default_factory=list)
    tail_losses: list[list[float | int | str]] = Field(default_factory=list)
    skew_losses: list[list[float | int | str]] = Field(default_factory=list)


class _Case(_Schema):
    Scenario: _Portfolio
    Parameters: _Parameters
    Result: _Result | None = None


@dataclass(frozen=True)
class Published:
    """A venue's own result for the file's portfolio: requirements (equity less the venue's
    reported balance) and scenario P&L."""

    initial_margin: float
    maintenance_margin: float
    scenario_pnl: tuple[float, ...]


@dataclass(frozen=True)
class DeriveCase:
    """A Derive portfolio case: the portfolio, the parameter set and, where given, Derive's
    own result."""

    portfolio: derive.Portfolio
    params: derive.DeriveParams
    published: Published | None


def _document(path: Path) -> object:
    regular_file(path, max_bytes=MAX_CASE_BYTES)
    return read_json(path, MAX_CASE_DEPTH)


def _field(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


_SHOCKS = {
    "up": derive.VolShock.UP,
    "down": derive.VolShock.DOWN,
    "none": derive.VolShock.NONE,
    "linear": derive.VolShock.LINEAR,
    "abs": derive.VolShock.ABS,
}


def _params(p: _Parameters) -> derive.DeriveParams:
    scenarios = []
    for i, s in enumerate(p.Scenarios):
        direction = s.VolShockDirection.lower()
        if direction not in _SHOCKS:
            raise ValueError(
                f"Parameters.Scenarios[{i}].VolShockDirection: {s.VolShockDirection!r} is not "
                "one of Up, Down, None, LINEAR, ABS"
            )
        try:
            scenarios.append(derive.Scenario(s.SpotShock, _SHOCKS[direction], s.DampeningFactor))
        except ValueError as exc:
            raise ValueError(f"Parameters.Scenarios[{i}]: {exc}") from None
    v, m, b, o, k = p.VolShock, p.Margin, p.BasisContingency, p.OtherContingency, p.SkewShock
    return derive.DeriveParams(
        scenarios=tuple(scenarios),
        vol_shock=derive.VolShockParams(
            v.VOLRANGEUP,
            v.VOLRANGEDOWN,
            v.SHORTTERMPOWER,
            v.LONGTERMPOWER,
            v.DTE_FLOOR * 86_400,
            v.MIN_VOL_EVAL_SHOCKED,
        ),
        margin=derive.LossParams(
            m.IM_LOSS_FACTOR,
            m.MM_LOSS_FACTOR,
            m.SHORT_RATE_MULTSCALE,
            m.LONG_RATE_MULTSCALE,
            m.SHORT_RATE_ADDSCALE,
            m.LONG_RATE_ADDSCALE,
            m.BASE_STATIC_DISCOUNT_NEG,
            m.BASE_STATIC_DISCOUNT,
        ),
        basis=derive.BasisParams(
            b.SCENARIO_SPOT_UP,
            b.SCENARIO_SPOT_DOWN,
            b.BASIS_CONT_ADD_FACTOR,
            b.BASIS_CONT_MULT_FACTOR,
        ),
        contingency=derive.ContingencyParams(
            o.PEG_LOSS_THRESHOLD,
            o.PEG_LOSS_FACTOR,
            o.CONF_THRESHOLD,
            o.CONF_MARGIN,
            o.MM_PERP_PERCENT,
            o.IM_PERP_PERCENT,
            o.MM_OPTION_PERCENT,
            o.IM_OPTION_PERCENT,
        ),
        skew=derive.SkewParams(
            k.LINEAR_SCALE_CAP,
            k.ABS_SCALE_CAP,
            k.LINEAR_CBASE,
            k.ABS_CBASE,
            k.MIN_K_STAR,
            k.MIN_WIDTH_SCALE,
            k.VOL_PARAM_STATIC,
            k.VOL_PARAM_SCALE,
        ),
    )


def _portfolio(s: _Portfolio) -> derive.Portfolio:
    feeds = {f.FeedExpiry: f for f in s.OptionFeeds}
    by_expiry: dict[int, list[derive.Option]] = {}
    for i, o in enumerate(s.Options):
        if o.Expiry not in feeds:
            raise ValueError(f"Scenario.Options[{i}].Expiry: no OptionFeeds entry for {o.Expiry}")
        option = derive.Option(
            o.Strike, o.IsCall, o.Amount, o.MarkVol, feeds[o.Expiry].OptionVolConfidences
        )
        by_expiry.setdefault(o.Expiry, []).append(option)
    expiries = tuple(
        derive.Expiry.from_forward(
            seconds,
            feeds[seconds].Forward,
            feeds[seconds].Rate,
            options,
            min(feeds[seconds].ForwardConfidence, feeds[seconds].RateConfidence),
        )
        for seconds, options in by_expiry.items()
    )
    collaterals = tuple(
        derive.Collateral(
            c.Name, c.Amount, c.Price, c.Confidence, c.IsRiskCancelling, c.IMHaircut, c.MMHaircut
        )
        for c in s.Collaterals
    )
    return derive.Portfolio(
        spot=s.SpotPrice,
        expiries=expiries,
        collaterals=collaterals,
        cash=s.Cash,
        perp_position=s.NumPerps,
        perp_price=s.PerpPrice,
        perp_value=s.UnrealisedPerpPNL + s.UnrealisedFunding,
        stable_price=s.StablePrice,
        spot_confidence=s.SpotConfidence,
        perp_confidence=s.PerpConfidence,
    )


def _published(r: _Result, n_scenarios: int) -> Published:
    # Derive lists regular, then tail, then skew losses, in the scenarios' order
    losses = [float(x[2]) for x in r.reg_losses] + [float(x[2]) for x in r.tail_losses]
    losses += [float(x[1]) for x in r.skew_losses]
    if len(losses) != n_scenarios:
        raise ValueError(
            f"Result: {len(losses)} scenario losses for {n_scenarios} scenarios in Parameters"
        )
    return Published(r.PortfolioMTM - r.IM, r.PortfolioMTM - r.MM, tuple(losses))


def read_derive_case(path: str | Path) -> DeriveCase:
    """A Derive PMRM 2 portfolio case (v2-core's ``portfolio_cases`` layout); bad input is
    one line naming the file and the field."""
    path = Path(path)
    document = _document(path)
    try:
        case = _Case.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise BadInputError(f"{path}: {_field(first['loc'])}: {first['msg']}") from None
    try:
        params = _params(case.Parameters)
        portfolio = _portfolio(case.Scenario)
        published = None if case.Result is None else _published(case.Result, len(params.scenarios))
    except (ValueError, IndexError) as exc:
        raise BadInputError(f"{path}: {exc}") from None
    return DeriveCase(portfolio, params, published)


# Deribit's model_params names → the parameter set's
_DERIBIT_PAIR = {
    "price_range": "price_range",
    "volatility_range_up": "vol_range_up",
    "volatility_range_down": "vol_range_down",
    "min_volatility_for_shock_up": "min_vol_for_shock_up",
    "short_term_vega_power": "short_term_vega_power",
    "long_term_vega_power": "long_term_vega_power",
    "extended_table_factor": "extended_table_factor",
    "max_delta_shock": "max_delta_shock",
    "delta_total_liq_shock_threshold": "delta_total_liq_shock_threshold",
    "m_inc": "m_inc",
}
_DERIBIT_CURRENCY = ("annualised_move_risk", "min_annualised_move", "extended_dampener")


class _Ticker(_Schema):
    mark_price: float | None = Field(default=None, gt=0)
    mark_iv: float | None = Field(default=None, gt=0, le=500)  # percent, as Deribit quotes it


class _RiskDetails(_Schema):
    worst_case: float
    roll_shock: float = 0.0
    delta_shock: float = 0.0


class _InitialDetails(_Schema):
    risk_matrix_margin: float | None = None
    risk_matrix_margin_details: _RiskDetails | None = None


class _CurrencyMargin(_Schema):
    initial_margin: float
    maintenance_margin: float
    initial_margin_details: _InitialDetails | None = None


class _General(_Schema):
    timestamp: int = Field(gt=0)
    mm_factor: float = Field(gt=0, le=1)


class _ModelParams(_Schema):
    general: _General
    currency_pair: dict[str, dict[str, float | bool | str]] = Field(max_length=100)
    currency: dict[str, dict[str, float | bool | str]] = Field(default_factory=dict, max_length=100)


class _DeribitPortfolio(_Schema):
    position: dict[str, float] = Field(max_length=10_000)


class _Vectors(_Schema):
    standard: list[float] = Field(max_length=27)
    extended: list[float] = Field(default_factory=list, max_length=8)


class _Simulate(_Schema):
    model_params: _ModelParams
    index_price: dict[str, float] = Field(min_length=1, max_length=100)
    ticker: dict[str, _Ticker] = Field(default_factory=dict, max_length=10_000)
    portfolio: _DeribitPortfolio
    margins: dict[str, _CurrencyMargin] = Field(default_factory=dict, max_length=100)
    pre_aggregated_risk_vectors: dict[str, _Vectors] = Field(default_factory=dict, max_length=100)


def _deribit_reply(path: Path) -> _Simulate:
    document = _document(path)
    if isinstance(document, dict) and "result" in document:
        document = document["result"]
    try:
        return _Simulate.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise BadInputError(f"{path}: result.{_field(first['loc'])}: {first['msg']}") from None


def _deribit_set(reply: _Simulate, path: Path) -> ParameterSet:
    """The default set with the reply's ``model_params`` over it, validated like any set."""
    import copy

    from governance.parameters import ParameterSetError, default_parameter_set, parse_parameter_set

    document = default_parameter_set().canonical_dict()
    underlyings = document["underlyings"]
    for pair, values in reply.model_params.currency_pair.items():
        underlying = pair.split("_")[0].upper()
        # an underlying the default set lacks starts from ETH's block (only its PM values are
        # Deribit's: the SPAN and standard blocks are the default's)
        block = underlyings.setdefault(underlying, copy.deepcopy(underlyings["ETH"]))
        for theirs, ours in _DERIBIT_PAIR.items():
            if theirs in values:
                block["pm"][ours] = values[theirs]
    for name, values in reply.model_params.currency.items():
        currency = "USDC" if name.lower() == "usd" else name.upper()
        if currency in document["currencies"]:
            for key in _DERIBIT_CURRENCY:
                if key in values:
                    document["currencies"][currency][key] = values[key]
    document["pm"]["mm_factor"] = reply.model_params.general.mm_factor
    try:
        return parse_parameter_set(document)
    except ParameterSetError as exc:
        raise BadInputError(f"{path}: result.model_params: {exc}") from None


def replicate_deribit(path: Path) -> dict:
    """``mwb replicate deribit`` on a ``private/pme/simulate`` reply (see the module): per
    margin currency, our initial and maintenance margin (coins) and the 35 scenario P&Ls beside
    Deribit's."""
    from datetime import UTC

    import pandas as pd

    from margin_engine.book import build_positions
    from margin_engine.instruments import Kind, parse_instrument
    from margin_engine.market import MarketSnapshot
    from margin_engine.models import margin
    from margin_engine.portfolio_margin import (
        N_STANDARD,
        VOL_SCENARIOS,
        risk_arrays,
        scenario_moves,
    )

    reply = _deribit_reply(path)
    as_of = datetime.fromtimestamp(reply.model_params.general.timestamp / 1000, tz=UTC)
    index = {pair.split("_")[0].upper(): price for pair, price in reply.index_price.items()}
    futures, iv, rows = {}, {}, []
    for name, coins in reply.portfolio.position.items():
        where = f"{path}: result.portfolio.position.{name}"
        try:
            instrument = parse_instrument(name)
        except ValueError as exc:
            raise BadInputError(f"{where}: {exc}") from None
        if instrument.underlying not in index:
            raise BadInputError(f"{where}: no index_price for {instrument.underlying}")
        ticker = reply.ticker.get(name)
        price = index[instrument.underlying]
        if instrument.kind is Kind.FUTURE:
            if ticker is None or ticker.mark_price is None:
                raise BadInputError(f"{path}: result.ticker.{name}.mark_price: needed for a future")
            futures[name] = price = ticker.mark_price
        if instrument.kind is Kind.OPTION:
            if ticker is None or ticker.mark_iv is None:
                raise BadInputError(f"{path}: result.ticker.{name}.mark_iv: needed for an option")
            iv[name] = ticker.mark_iv / 100.0
        # Deribit counts coins; an inverse future's or perpetual's quantity here is USD notional
        quantity = coins * price if instrument.quantity_unit == "USD" else coins
        rows.append((name, quantity))
    try:
        market = MarketSnapshot.from_json(
            {"as_of": as_of.isoformat(), "index": index, "futures": futures, "iv": iv}
        )
    except ValueError as exc:
        raise BadInputError(f"{path}: {' '.join(str(exc).split())}") from None
    frame = pd.DataFrame(
        {"account": "reply", "instrument": [n for n, _ in rows], "quantity": [q for _, q in rows]}
    )
    positions = build_positions(frame, market)
    if positions.errors:
        bad = positions.errors[0]
        raise BadInputError(f"{path}: result.portfolio.position.{bad.instrument}: {bad.error}")
    parameter_set = _deribit_set(reply, path)
    engine = parameter_set.to_model_params()
    result = margin(positions, "deribit-pm", engine)
    # each currency's scenario P&L: the instruments' unit P&L × quantity, summed per currency
    unit = risk_arrays(positions, engine)
    table = positions.book.table
    per_currency: dict[str, list[float]] = {}
    for k, i in enumerate(positions.instrument):
        currency = table.groups[table.group[i]][0]
        row = unit[i] * positions.quantity[k]
        current = per_currency.setdefault(currency, [0.0] * len(row))
        per_currency[currency] = [a + float(b) for a, b in zip(current, row, strict=True)]
    currencies = []
    for record in result.records():
        currency = record["currency"]
        pnl = per_currency.get(currency, [])
        moves = scenario_moves(engine.pm_for(currency).price_range)
        labels = [
            f"spot {m:+.1%}, vol {VOL_SCENARIOS[j % 3]}" if j < N_STANDARD else f"extended {m:+.0%}"
            for j, m in enumerate(moves)
        ]
        entry: dict = {
            "currency": currency,
            "initial_margin": record["initial_margin"],
            "maintenance_margin": record["maintenance_margin"],
            "components": record["components"],
            "scenarios": [
                {"index": j, "label": label, "pnl": v}
                for j, (label, v) in enumerate(zip(labels, pnl, strict=False))
            ],
            "published": None,
        }
        theirs = reply.margins.get(currency.lower())
        if theirs is not None:
            details = theirs.initial_margin_details
            risk = details.risk_matrix_margin_details if details is not None else None
            vectors = reply.pre_aggregated_risk_vectors.get(
                f"{currency.lower()}_{currency.lower()}"
            )
            published_pnl = [] if vectors is None else [*vectors.standard, *vectors.extended]
            entry["published"] = {
                "initial_margin": theirs.initial_margin,
                "maintenance_margin": theirs.maintenance_margin,
                "risk_matrix_margin": None if details is None else details.risk_matrix_margin,
                "components": None if risk is None else risk.model_dump(),
                "scenarios": [{"index": j, "pnl": v} for j, v in enumerate(published_pnl)],
            }
            entry["difference"] = {
                "initial_margin": record["initial_margin"] - theirs.initial_margin,
                "maintenance_margin": record["maintenance_margin"] - theirs.maintenance_margin,
                "largest_scenario": max(
                    (abs(a - b) for a, b in zip(pnl, published_pnl, strict=False)), default=0.0
                ),
            }
        currencies.append(entry)
    first = currencies[0] if currencies else None
    return {
        "venue": Venue.DERIBIT.value,
        "model": "deribit-pm",
        "file": str(path),
        "params_fingerprint": parameter_set.fingerprint,
        "currencies": currencies,
        # the first currency's figures at the top level, as for the other venues
        "initial_margin": None if first is None else first["initial_margin"],
        "maintenance_margin": None if first is None else first["maintenance_margin"],
        "components": {} if first is None else first["components"],
        "worst_scenario": None,
        "scenarios": [] if first is None else first["scenarios"],
        "published": None if first is None else first["published"],
        **({"difference": first["difference"]} if first and first["published"] else {}),
    }


def _scenario_label(s: derive.Scenario) -> str:
    return f"spot ×{s.spot_shock:g}, vol {s.vol_shock.value}, weight {s.dampening:g}"


class _YamlPosition(_Schema):
    instrument: str = Field(min_length=1, max_length=64)
    quantity: float
    iv: float | None = Field(default=None, gt=0, le=5)


class _YamlPublished(_Schema):
    initial_margin: float
    maintenance_margin: float


class _YamlCase(_Schema):
    as_of: datetime  # YAML reads an ISO time as one; a quoted string parses the same
    spot: dict[str, float] = Field(min_length=1, max_length=100)
    futures: dict[str, float] = Field(default_factory=dict, max_length=1_000)
    positions: list[_YamlPosition] = Field(min_length=1, max_length=10_000)
    params: str | dict = "published"
    published: _YamlPublished | None = None


def _yaml_case(path: Path) -> _YamlCase:
    from governance.documents import DocumentError, load_mapping

    try:
        document = load_mapping(path)
    except DocumentError as exc:
        raise BadInputError(str(exc)) from None
    try:
        return _YamlCase.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise BadInputError(f"{path}: {_field(first['loc'])}: {first['msg']}") from None


def _venue_set(venue: Venue, params: str | dict, path: Path):
    from governance.parameters import (
        VENUE_SETS,
        ParameterSetError,
        default_parameter_set,
        parse_parameter_set,
        venue_parameter_set,
    )

    try:
        if isinstance(params, dict):
            document = default_parameter_set().canonical_dict()
            document["venues"] = {venue.value: params}
            return parse_parameter_set(document)
        if params == "published":
            return venue_parameter_set(venue.value)
        if params in VENUE_SETS:
            return venue_parameter_set(params)
        raise BadInputError(
            f"{path}: params: {params!r} is not 'published', a venue's set "
            f"({', '.join(VENUE_SETS)}) or an inline block"
        )
    except ParameterSetError as exc:
        raise BadInputError(f"{path}: params: {exc}") from None


def _scenario_rows(venue: Venue, positions, engine) -> list[dict]:
    """Each scenario's P&L (USD, the book's underlyings summed) where the model has scenarios."""
    from margin_engine.venues import aevo, paradex
    from margin_engine.venues.books import derive_portfolios

    if venue is Venue.PARADEX:
        p = engine.paradex or paradex.PUBLISHED
        pnl = paradex.paradex_scenarios(positions, p).sum(axis=0)
        labels = [f"spot {s:+.0%}, vol {v:+.0%}, weight {w:g}" for s, v, w in p.scenarios]
    elif venue is Venue.AEVO:
        p = engine.aevo or aevo.PUBLISHED
        pnl = aevo.aevo_scenarios(positions, p).sum(axis=0)
        spots, shifts = aevo.scenarios(p)
        labels = [f"spot {s:+.0%}, IV {v:+.2f}" for s, v in zip(spots, shifts, strict=True)]
    elif venue is Venue.DERIVE:
        p = engine.derive or derive.PUBLISHED
        results = [derive.pmrm2_margin(pf, p) for pf in derive_portfolios(positions).values()]
        pnl = sum(r.scenario_pnl for r in results)
        labels = [_scenario_label(s) for s in p.scenarios]
    else:
        return []
    return [
        {"index": j, "label": label, "pnl": float(v)}
        for j, (label, v) in enumerate(zip(labels, pnl, strict=True))
    ]


def replicate_yaml(venue: Venue, path: Path) -> dict:
    """``mwb replicate`` on the YAML case format (see the module)."""
    import pandas as pd

    from margin_engine.book import build_positions
    from margin_engine.market import MarketSnapshot
    from margin_engine.models import margin
    from margin_engine.venues.elsewhere import usd_margins

    case = _yaml_case(path)
    iv = {p.instrument: p.iv for p in case.positions if p.iv is not None}
    try:
        market = MarketSnapshot.from_json(
            {
                "as_of": case.as_of.isoformat(),
                "index": case.spot,
                "futures": case.futures,
                "iv": iv,
            }
        )
    except ValueError as exc:
        raise BadInputError(f"{path}: {' '.join(str(exc).split())}") from None
    frame = pd.DataFrame(
        {
            "account": "case",
            "instrument": [p.instrument for p in case.positions],
            "quantity": [p.quantity for p in case.positions],
        }
    )
    positions = build_positions(frame, market)
    if positions.errors:
        bad = positions.errors[0]
        index = next(i for i, p in enumerate(case.positions) if p.instrument == bad.instrument)
        raise BadInputError(f"{path}: positions[{index}].instrument: {bad.error}")
    engine = _venue_set(venue, case.params, path).to_model_params()
    try:
        result = margin(positions, VENUE_MODEL[venue], engine)
        scenarios = _scenario_rows(venue, positions, engine)
    except ValueError as exc:
        raise BadInputError(f"{path}: {exc}") from None
    usd = usd_margins(result, positions)
    payload: dict = {
        "venue": venue.value,
        "model": VENUE_MODEL[venue],
        "file": str(path),
        "initial_margin": float(usd["initial_margin"].sum()),
        "maintenance_margin": float(usd["maintenance_margin"].sum()),
        "components": {k: float(v.sum()) for k, v in result.components.items()},
        "worst_scenario": None,
        "scenarios": scenarios,
        "published": None,
    }
    if case.published is not None:
        published = case.published.model_dump()
        payload["published"] = {**published, "scenarios": []}
        payload["difference"] = {
            k: payload[k] - published[k] for k in ("initial_margin", "maintenance_margin")
        }
    return payload


def replicate(venue: Venue, path: str | Path) -> dict:
    """The JSON payload of ``mwb replicate``: our margins and scenario P&L, the venue's
    published ones where the file has them, and the differences."""
    path = Path(path)
    yaml = path.suffix.lower() in (".yaml", ".yml")
    if venue is Venue.DERIBIT and not yaml:
        return replicate_deribit(path)
    if yaml or venue is not Venue.DERIVE:
        return replicate_yaml(venue, path)
    case = read_derive_case(path)
    try:
        result = derive.pmrm2_margin(case.portfolio, case.params)
    except ValueError as exc:
        raise BadInputError(f"{path}: {exc}") from None
    scenarios = [
        {
            "index": j,
            "spot_shock": s.spot_shock,
            "vol_shock": s.vol_shock.value,
            "dampening": s.dampening,
            "pnl": float(result.scenario_pnl[j]),
        }
        for j, s in enumerate(case.params.scenarios)
    ]
    payload: dict = {
        "venue": venue.value,
        "model": "derive-pmrm2",
        "file": str(path),
        "initial_margin": result.initial_margin,
        "maintenance_margin": result.maintenance_margin,
        "equity": result.equity,
        "worst_scenario": None if result.worst == len(scenarios) else result.worst,
        "basis_contingency": result.basis_contingency,
        "scenarios": scenarios,
        "published": None,
    }
    if case.published is not None:
        p = case.published
        payload["published"] = {
            "initial_margin": p.initial_margin,
            "maintenance_margin": p.maintenance_margin,
            "scenarios": [{"index": j, "pnl": v} for j, v in enumerate(p.scenario_pnl)],
        }
        payload["difference"] = {
            "initial_margin": result.initial_margin - p.initial_margin,
            "maintenance_margin": result.maintenance_margin - p.maintenance_margin,
            "largest_scenario": max(
                (
                    abs(float(a) - b)
                    for a, b in zip(result.scenario_pnl, p.scenario_pnl, strict=True)
                ),
                default=0.0,
            ),
        }
    for s, row in zip(case.params.scenarios, scenarios, strict=True):
        row["label"] = _scenario_label(s)
    return payload
