"""What each market table holds: columns, natural key and validation rules.

A rule is a SQL predicate that is TRUE when a staged row is *bad*, the column it blames and a
reason. Every predicate is written so that it is never NULL (a missing optional value passes),
because a NULL in ``WHERE NOT bad`` would silently drop a row.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """The kinds of market data the warehouse stores, named as on the command line."""

    PRICES = "prices"
    IV = "iv"
    FUNDING = "funding"
    OPTIONS = "options"


@dataclass(frozen=True)
class Rule:
    column: str
    bad: str  # SQL predicate over the staged row, TRUE when the row must be rejected
    reason: str  # SQL string expression explaining the failure (may quote the value)


@dataclass(frozen=True)
class KindSpec:
    kind: Kind
    table: str
    columns: dict[str, str]  # canonical column -> DuckDB type, in table order (no batch_id)
    key: tuple[str, ...]
    rules: tuple[Rule, ...]
    date_column: str  # what `mwb status` and the coverage checks range over
    # columns parsed once per distinct value of one column (e.g. an option name), joined to
    # every row before the rules run: (column, "expr AS alias, ..." over that column)
    parsed: tuple[str, str] | None = None

    @property
    def value_columns(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c not in self.key)


def _q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _required(column: str) -> Rule:
    extra = f" OR trim({column}) = ''" if column in _TEXT else ""
    return Rule(column, f"({column} IS NULL{extra})", _q(f"{column}: missing"))


def _positive(column: str) -> Rule:
    # a missing value is the business of `_required`; this rule judges present values only
    return Rule(
        column,
        f"({column} IS NOT NULL AND (NOT isfinite({column}) OR {column} <= 0))",
        f"'{column}: must be a positive finite number, got ' || {column}::VARCHAR",
    )


def _non_negative(column: str) -> Rule:
    return Rule(
        column,
        f"({column} IS NOT NULL AND (NOT isfinite({column}) OR {column} < 0))",
        f"'{column}: must be a finite number >= 0, got ' || {column}::VARCHAR",
    )


def _vol(column: str) -> Rule:
    return Rule(
        column,
        f"({column} IS NOT NULL AND (NOT isfinite({column}) OR {column} <= 0 OR {column} > 5))",
        f"'{column}: implied vol must be in (0, 5] (annualised decimal), got ' "
        f"|| {column}::VARCHAR",
    )


# The earliest plausible day: 2009-01-01 (no crypto series starts earlier); a load may set
# another (the built-in S&P 500 dataset starts in 1999). Rules carry this token, replaced by
# the load's date when the rules run.
FIRST_DAY = "{first_day}"
MAX_PRICE = 1e9  # USD per unit: far above any coin, far below float trouble
MAX_VOLUME = 1e18


def _plausible_day(column: str, *, timestamp: bool = False) -> Rule:
    """Market data from the load's first plausible day (2009-01-01 unless said otherwise) to
    tomorrow (UTC): earlier or later is a typo or garbage. A ``timestamp`` column (UTC, as the
    warehouse's sessions are) is compared with the days' midnights, not cast row by row (a
    time-zone-aware cast per row costs a third of a second per 5M rows)."""
    if timestamp:
        bad = (
            f"({column} IS NOT NULL AND ({column} < CAST({FIRST_DAY} AS TIMESTAMPTZ) "
            f"OR {column} >= CAST(current_date + INTERVAL 2 DAY AS TIMESTAMPTZ)))"
        )
    else:
        bad = (
            f"({column} IS NOT NULL AND (CAST({column} AS DATE) < {FIRST_DAY} "
            f"OR CAST({column} AS DATE) > current_date + INTERVAL 1 DAY))"
        )
    return Rule(
        column,
        bad,
        f"'{column}: ' || {column}::VARCHAR || ' is outside ' || {FIRST_DAY}::VARCHAR || "
        "' .. tomorrow'",
    )


def _at_most(column: str, limit: float) -> Rule:
    return Rule(
        column,
        f"({column} IS NOT NULL AND NOT isnan({column}) AND {column} > {limit!r})",
        f"'{column}: ' || {column}::VARCHAR || ' is implausibly large (above {limit:g})'",
    )


def _name(column: str) -> Rule:
    """A source or venue name: short, printable, no control characters."""
    pattern = "[A-Za-z0-9_.:/-]{1,64}"
    return Rule(
        column,
        f"({column} IS NOT NULL AND NOT regexp_full_match({column}, '{pattern}'))",
        f"'{column}: must be 1-64 letters, digits or _.:/-, got ' || "
        f"to_json(left({column}, 64))::VARCHAR",
    )


def _symbol(column: str) -> Rule:
    return Rule(
        column,
        f"({column} IS NOT NULL AND NOT regexp_full_match({column}, '[A-Z0-9_]{{1,24}}'))",
        f"'{column}: must be upper-case letters, digits or _, got ''' || {column} || ''''",
    )


_TEXT = {
    "asset",
    "source",
    "venue",
    "instrument_name",
    "option_type",
}

PRICES = KindSpec(
    kind=Kind.PRICES,
    table="market.prices",
    columns={
        "asset": "VARCHAR",
        "date": "DATE",
        "source": "VARCHAR",
        "open": "DOUBLE",
        "high": "DOUBLE",
        "low": "DOUBLE",
        "close": "DOUBLE",
        "volume": "DOUBLE",
    },
    key=("asset", "date", "source"),
    rules=(
        _required("date"),
        _plausible_day("date"),
        _required("asset"),
        _symbol("asset"),
        _required("source"),
        _name("source"),
        _required("close"),
        _positive("close"),
        _at_most("close", MAX_PRICE),
        _at_most("open", MAX_PRICE),
        _at_most("high", MAX_PRICE),
        _at_most("low", MAX_PRICE),
        _at_most("volume", MAX_VOLUME),
        _positive("open"),
        _positive("high"),
        _positive("low"),
        Rule(
            "high",
            "(high IS NOT NULL AND low IS NOT NULL AND high < low)",
            "'high: ' || high::VARCHAR || ' is below low ' || low::VARCHAR",
        ),
        Rule(
            "high",
            "(high IS NOT NULL AND high < greatest(close, coalesce(open, close)))",
            "'high: ' || high::VARCHAR || ' is below open/close'",
        ),
        Rule(
            "low",
            "(low IS NOT NULL AND low > least(close, coalesce(open, close)))",
            "'low: ' || low::VARCHAR || ' is above open/close'",
        ),
        _non_negative("volume"),
    ),
    date_column="date",
)

IMPLIED_VOL = KindSpec(
    kind=Kind.IV,
    table="market.implied_vol",
    columns={
        "asset": "VARCHAR",
        "date": "DATE",
        "source": "VARCHAR",
        "tenor_days": "INTEGER",
        "iv": "DOUBLE",
        "iv_open": "DOUBLE",
        "iv_high": "DOUBLE",
        "iv_low": "DOUBLE",
    },
    key=("asset", "date", "source", "tenor_days"),
    rules=(
        _required("date"),
        _plausible_day("date"),
        _required("asset"),
        _symbol("asset"),
        _required("source"),
        _name("source"),
        _required("tenor_days"),
        Rule(
            "tenor_days",
            "(tenor_days IS NOT NULL AND (tenor_days <= 0 OR tenor_days > 3650))",
            "'tenor_days: must be 1..3650, got ' || tenor_days::VARCHAR",
        ),
        _required("iv"),
        _vol("iv"),
        _vol("iv_open"),
        _vol("iv_high"),
        _vol("iv_low"),
        Rule(
            "iv_high",
            "(iv_high IS NOT NULL AND iv_low IS NOT NULL AND iv_high < iv_low)",
            "'iv_high: ' || iv_high::VARCHAR || ' is below iv_low ' || iv_low::VARCHAR",
        ),
    ),
    date_column="date",
)

FUNDING = KindSpec(
    kind=Kind.FUNDING,
    table="market.funding",
    columns={
        "asset": "VARCHAR",
        "date": "DATE",
        "venue": "VARCHAR",
        "source": "VARCHAR",
        "rate_8h_mean": "DOUBLE",
        "rate_8h_abs_mean": "DOUBLE",
    },
    key=("asset", "date", "venue", "source"),
    rules=(
        _required("date"),
        _plausible_day("date"),
        _required("asset"),
        _symbol("asset"),
        _required("venue"),
        _name("venue"),
        _required("source"),
        _name("source"),
        _required("rate_8h_mean"),
        Rule(
            "rate_8h_mean",
            "(rate_8h_mean IS NOT NULL AND (NOT isfinite(rate_8h_mean) OR abs(rate_8h_mean) >= 1))",
            "'rate_8h_mean: must be a finite decimal rate with |rate| < 1, got ' "
            "|| rate_8h_mean::VARCHAR",
        ),
        _non_negative("rate_8h_abs_mean"),
        Rule(
            "rate_8h_abs_mean",
            # the mean of |r| can never be below |mean of r|; allow float rounding
            "(rate_8h_abs_mean IS NOT NULL AND rate_8h_mean IS NOT NULL"
            " AND rate_8h_abs_mean < abs(rate_8h_mean) - 1e-12)",
            "'rate_8h_abs_mean: ' || rate_8h_abs_mean::VARCHAR || ' is below |rate_8h_mean|'",
        ),
    ),
    date_column="date",
)

OPTION_NAME = r"^([A-Z0-9]+)(_[A-Z0-9]+)?-([0-9]{1,2}[A-Z]{3}[0-9]{2})-([0-9]+(d[0-9]+)?)-([CP])$"


def _option_name_parts() -> tuple[str, str]:
    """The parts of an option's name, parsed once per distinct name (a file of 5M marks holds
    a few thousand names: one regular-expression pass each, not five per row)."""
    name = "instrument_name"
    part = lambda k: f"regexp_extract({name}, '{OPTION_NAME}', {k})"  # noqa: E731
    return name, (
        f"regexp_matches({name}, '{OPTION_NAME}') AS _name_ok, "
        f"{part(1)} AS _name_currency, {part(3)} AS _name_expiry_text, "
        f"{part(4)} AS _name_strike_text, {part(6)} AS _name_cp, "
        f"TRY_CAST(replace({part(4)}, 'd', '.') AS DOUBLE) AS _name_strike, "
        f"CAST(try_strptime({part(3)}, '%d%b%y') AS DATE) AS _name_expiry"
    )


def _option_name_rules() -> tuple[Rule, ...]:
    """An option's name must be a Deribit option name that agrees with its own columns: the
    currency, the strike, the call/put flag and the expiry day (a garbage name would otherwise
    be stored and crash every margin run of its day). The ``_name_*`` columns are the name's
    parts (:func:`_option_name_parts`)."""
    name = "instrument_name"
    match = "_name_ok"
    return (
        Rule(
            name,
            f"({name} IS NOT NULL AND NOT {match})",
            f"'{name}: not a Deribit option name (e.g. BTC-27DEC24-60000-C), got ' || "
            f"to_json(left({name}, 64))::VARCHAR",
        ),
        Rule(
            name,
            f"({name} IS NOT NULL AND asset IS NOT NULL AND {match} AND _name_currency <> asset)",
            f"'{name}: names currency ' || _name_currency || ', the row says ' || asset",
        ),
        Rule(
            name,
            f"({name} IS NOT NULL AND strike IS NOT NULL AND {match} AND "
            f"abs(_name_strike - strike) > 1e-9 * abs(strike))",
            f"'{name}: names strike ' || _name_strike_text || ', the row says ' || strike::VARCHAR",
        ),
        Rule(
            name,
            f"({name} IS NOT NULL AND option_type IN ('call', 'put') AND {match} AND "
            f"((_name_cp = 'C') <> (option_type = 'call')))",
            f"'{name}: names a ' || _name_cp || ', the row says ' || option_type",
        ),
        Rule(
            name,
            f"({name} IS NOT NULL AND expiry IS NOT NULL AND {match} AND "
            f"_name_expiry IS DISTINCT FROM CAST(expiry AS DATE))",
            f"'{name}: names expiry ' || _name_expiry_text || ', the row says ' || expiry::VARCHAR",
        ),
    )


OPTION_MARKS = KindSpec(
    kind=Kind.OPTIONS,
    table="market.option_marks",
    columns={
        "snapshot_ts": "TIMESTAMPTZ",
        "instrument_name": "VARCHAR",
        "source": "VARCHAR",
        "asset": "VARCHAR",
        "option_type": "VARCHAR",
        "strike": "DOUBLE",
        "expiry": "TIMESTAMPTZ",
        "time_to_maturity": "DOUBLE",
        "underlying_price": "DOUBLE",
        "underlying_name": "VARCHAR",
        "index_price": "DOUBLE",
        "futures_price": "DOUBLE",
        "futures_instrument_name": "VARCHAR",
        "bid_price": "DOUBLE",
        "ask_price": "DOUBLE",
        "mark_price": "DOUBLE",
        "mid_price": "DOUBLE",
        "bid_ask_spread": "DOUBLE",
        "implied_volatility": "DOUBLE",
        "delta": "DOUBLE",
        "vega": "DOUBLE",
        "open_interest": "DOUBLE",
        "volume": "DOUBLE",
        "volume_usd": "DOUBLE",
    },
    key=("instrument_name", "snapshot_ts", "source"),
    rules=(
        _required("snapshot_ts"),
        _plausible_day("snapshot_ts", timestamp=True),
        _required("instrument_name"),
        *_option_name_rules(),
        _required("source"),
        _name("source"),
        _required("asset"),
        _symbol("asset"),
        _required("option_type"),
        Rule(
            "option_type",
            "(option_type IS NOT NULL AND option_type NOT IN ('call', 'put'))",
            "'option_type: must be call or put, got ''' || option_type || ''''",
        ),
        _required("strike"),
        _positive("strike"),
        _required("expiry"),
        Rule(
            "expiry",
            "(expiry IS NOT NULL AND snapshot_ts IS NOT NULL AND expiry <= snapshot_ts)",
            "'expiry: ' || expiry::VARCHAR || ' is not after the snapshot time'",
        ),
        _required("index_price"),
        _positive("index_price"),
        _positive("underlying_price"),
        _positive("futures_price"),
        _required("mark_price"),
        _non_negative("mark_price"),
        _non_negative("bid_price"),
        _non_negative("ask_price"),
        Rule(
            "bid_price",
            "(bid_price IS NOT NULL AND ask_price IS NOT NULL AND bid_price > ask_price)",
            "'bid_price: ' || bid_price::VARCHAR || ' is above ask_price ' || ask_price::VARCHAR",
        ),
        _required("implied_volatility"),
        _vol("implied_volatility"),
        _non_negative("open_interest"),
        _non_negative("volume"),
    ),
    date_column="snapshot_ts",
    parsed=_option_name_parts(),
)

SPECS: dict[Kind, KindSpec] = {
    spec.kind: spec for spec in (PRICES, IMPLIED_VOL, FUNDING, OPTION_MARKS)
}
