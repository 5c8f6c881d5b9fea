"""The test-portfolio library: standard books re-struck every day relative to spot,
and collateral-only accounts for haircut backtests.

Every book is rebuilt on each day ``t`` from that day's close (and IV, for the delta hedge):
strikes are fractions of spot rounded to a strike grid of about 0.1-0.2 % of spot, expiries are
a fixed number of calendar days after ``t`` (08:00 UTC, as on Deribit), so each day's book has
the same shape and the backtest measures the model, not the drift of an ageing position.
Quantities follow Deribit's units (:mod:`margin_engine.instruments`): options in coin, inverse
futures and perpetuals in USD, linear contracts in coin.

Books on BTC and ETH use inverse (coin-settled) options as on Deribit; SOL, whose options are
USDC-settled there, uses linear ones; the covered call and the dollar-neutral BTC–ETH pair use
USDC-linear contracts so that each sits in one settlement currency.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import pandas as pd

from margin_engine.pricing import black76_greeks, black76_price

Legs = list[tuple[str, float]]
LegsOf = Callable[["DayMarket"], Legs]  # a book's legs on a day's market


@dataclass(frozen=True)
class DayMarket:
    """What a book is struck against on its day: closes and 30-day ATM IVs by underlying."""

    day: date
    spot: Mapping[str, float]
    iv: Mapping[str, float]


@dataclass(frozen=True)
class Portfolio:
    """A named book: ``legs(market)`` gives ``(instrument, quantity)`` for the day."""

    name: str
    description: str
    underlyings: tuple[str, ...]
    legs: Callable[[DayMarket], Legs]
    kind: str = "book"  # book | collateral
    needs_iv: bool = False
    expires: date | None = None  # a static book is replayed only while its first expiry is ahead

    def available(self, market: DayMarket) -> bool:
        """Whether every input of the book exists on the day (prices, and IVs for options)."""
        if self.expires is not None and market.day >= self.expires:
            return False
        if any(
            u not in market.spot or not math.isfinite(market.spot[u]) for u in self.underlying_list
        ):
            return False
        return not self.needs_iv or all(
            u in market.iv and math.isfinite(market.iv[u]) for u in self.underlying_list
        )

    @property
    def underlying_list(self) -> tuple[str, ...]:
        """The underlyings whose prices the portfolio reads (cash excluded)."""
        return tuple(u for u in self.underlyings if u not in ("USD", "USDC", "USDT"))


# --------------------------------------------------------------------------- naming


def expiry_code(day: date, tenor_days: int) -> str:
    """Deribit's ``DDMMMYY`` for ``tenor_days`` after ``day``."""
    return (day + timedelta(days=tenor_days)).strftime("%d%b%y").upper().lstrip("0")


def strike_grid(spot: float) -> float:
    """A strike step of 10^(⌊log10 spot⌋ − 3)·{1, 2, 5}: about 0.1-0.2 % of spot."""
    base = 10.0 ** (math.floor(math.log10(spot)) - 3)
    for multiple in (1, 2, 5, 10):
        if base * multiple >= spot * 1e-3:
            return base * multiple
    return base * 10


def strike_text(strike: float) -> str:
    """Deribit strike formatting: integers plain, decimals with ``d`` for the point."""
    if abs(strike - round(strike)) < 1e-9:
        return str(int(round(strike)))
    return f"{strike:.10f}".rstrip("0").replace(".", "d")


def strike(spot: float, moneyness: float) -> float:
    """The listed strike nearest ``moneyness`` × ``spot`` on the venue's grid."""
    step = strike_grid(spot)
    return round(round(spot * moneyness / step) * step, 10)


def option(
    underlying: str,
    day: date,
    tenor: int,
    spot: float,
    moneyness: float,
    kind: str,
    linear: bool = False,
) -> str:
    """The name of the option ``tenor`` days out at ``moneyness``."""
    prefix = f"{underlying}_USDC" if linear else underlying
    return f"{prefix}-{expiry_code(day, tenor)}-{strike_text(strike(spot, moneyness))}-{kind}"


# --------------------------------------------------------------------------- the books


def _options(
    underlying: str, specs: list[tuple[int, float, str, float]], linear: bool = False
) -> LegsOf:
    """``specs``: (tenor days, moneyness, C/P, quantity)."""

    def legs(m: DayMarket) -> Legs:
        s = m.spot[underlying]
        return [(option(underlying, m.day, t, s, k, c, linear), q) for t, k, c, q in specs]

    return legs


def _delta_hedged_short_call(underlying: str, tenor: int = 30) -> LegsOf:
    """Short 1 ATM call, hedged to zero coin delta at the day's close with the inverse perpetual.

    An inverse option's coin delta is :math:`\\Delta_{BS} - V/F` (the premium is held in coin);
    a perpetual of notional N has coin delta N/F, so N = −F·delta of the short call.
    """

    def legs(m: DayMarket) -> Legs:
        s, iv = m.spot[underlying], m.iv[underlying]
        k = strike(s, 1.0)
        expiry = datetime.combine(m.day + timedelta(days=tenor), time(8), tzinfo=UTC)
        years = (
            expiry - datetime.combine(m.day + timedelta(days=1), time(0), tzinfo=UTC)
        ).total_seconds()
        years /= 365.0 * 86400
        price = float(black76_price(s, k, years, iv, True))
        delta = float(black76_greeks(s, k, years, iv, True)["delta"]) - price / s
        name = f"{underlying}-{expiry_code(m.day, tenor)}-{strike_text(k)}-C"
        return [(name, -1.0), (f"{underlying}-PERPETUAL", round(s * delta, 2))]

    return legs


def _long_short(long: str, short: str, usd: float) -> LegsOf:
    def legs(m: DayMarket) -> Legs:
        return [
            (f"{long}_USDC-PERPETUAL", usd / m.spot[long]),
            (f"{short}_USDC-PERPETUAL", -usd / m.spot[short]),
        ]

    return legs


def _basis(underlying: str, tenor: int = 90) -> LegsOf:
    def legs(m: DayMarket) -> Legs:
        return [
            (f"{underlying}_USDC", 1.0),
            (f"{underlying}_USDC-{expiry_code(m.day, tenor)}", -1.0),
        ]

    return legs


def _spot(underlying: str, quantity: float) -> LegsOf:
    def legs(m: DayMarket) -> Legs:
        return [(f"{underlying}_USDC", quantity)]

    return legs


def _collateral(underlying: str, usd: float) -> LegsOf:
    def legs(m: DayMarket) -> Legs:
        return [(underlying, usd / m.spot[underlying])]

    return legs


def _book(
    name: str,
    description: str,
    underlyings: Sequence[str],
    legs: LegsOf,
    needs_iv: bool = True,
) -> Portfolio:
    return Portfolio(name, description, tuple(underlyings), legs, "book", needs_iv)


LIBRARY: tuple[Portfolio, ...] = (
    _book(
        "btc-short-straddle",
        "short 1 ATM call and put, 30 days (inverse)",
        ["BTC"],
        _options("BTC", [(30, 1.0, "C", -1), (30, 1.0, "P", -1)]),
    ),
    _book(
        "btc-short-strangle",
        "short 1 call at 110 % and 1 put at 90 %, 30 days",
        ["BTC"],
        _options("BTC", [(30, 1.1, "C", -1), (30, 0.9, "P", -1)]),
    ),
    _book(
        "btc-butterfly",
        "long 90/110 % calls, short 2 ATM calls, 30 days",
        ["BTC"],
        _options("BTC", [(30, 0.9, "C", 1), (30, 1.0, "C", -2), (30, 1.1, "C", 1)]),
    ),
    _book(
        "btc-risk-reversal",
        "long 110 % call, short 90 % put, 30 days",
        ["BTC"],
        _options("BTC", [(30, 1.1, "C", 1), (30, 0.9, "P", -1)]),
    ),
    _book(
        "btc-delta-hedged-short-call",
        "short ATM call, 30 days, delta-hedged with the perpetual",
        ["BTC"],
        _delta_hedged_short_call("BTC"),
    ),
    _book(
        "btc-basis-trade",
        "long 1 BTC spot (USDC), short 1 BTC 90-day future (linear)",
        ["BTC"],
        _basis("BTC"),
        needs_iv=False,
    ),
    _book(
        "eth-short-straddle",
        "short 1 ATM call and put, 30 days (inverse)",
        ["ETH"],
        _options("ETH", [(30, 1.0, "C", -1), (30, 1.0, "P", -1)]),
    ),
    _book(
        "eth-iron-condor",
        "long 80/120 %, short 90/110 % wings, 30 days",
        ["ETH"],
        _options(
            "ETH", [(30, 0.8, "P", 1), (30, 0.9, "P", -1), (30, 1.1, "C", -1), (30, 1.2, "C", 1)]
        ),
    ),
    _book(
        "eth-calendar",
        "short ATM call 30 days, long ATM call 60 days",
        ["ETH"],
        _options("ETH", [(30, 1.0, "C", -1), (60, 1.0, "C", 1)]),
    ),
    _book(
        "eth-covered-call",
        "long 1 ETH spot, short 1 110 % call, 30 days (USDC-linear)",
        ["ETH"],
        lambda m: [("ETH_USDC", 1.0), *_options("ETH", [(30, 1.1, "C", -1)], linear=True)(m)],
    ),
    _book(
        "sol-short-straddle",
        "short 100 SOL ATM call and put, 30 days (USDC-linear)",
        ["SOL"],
        _options("SOL", [(30, 1.0, "C", -100), (30, 1.0, "P", -100)], linear=True),
    ),
    _book(
        "btc-eth-long-short",
        "long $100k BTC, short $100k ETH (USDC-linear perpetuals)",
        ["BTC", "ETH"],
        _long_short("BTC", "ETH", 100_000.0),
        needs_iv=False,
    ),
)

SPOT: tuple[Portfolio, ...] = (
    _book("btc-long", "long 1 BTC spot (USDC)", ["BTC"], _spot("BTC", 1.0), needs_iv=False),
    _book("btc-short", "short 1 BTC spot (USDC)", ["BTC"], _spot("BTC", -1.0), needs_iv=False),
)

COLLATERAL: tuple[Portfolio, ...] = tuple(
    Portfolio(
        f"{u.lower()}-collateral",
        f"$500k of {u} held as collateral",
        (u,),
        _collateral(u, 500_000.0),
        "collateral",
    )
    for u in ("BTC", "ETH", "SOL")
)

GROUPS: dict[str, tuple[Portfolio, ...]] = {
    "books": LIBRARY,
    "spot": SPOT,
    "collateral": COLLATERAL,
}


def _static(legs: tuple[tuple[str, float], ...]) -> LegsOf:
    """The same legs whatever the day's market (an account snapshot)."""

    def same(m: DayMarket) -> Legs:
        return list(legs)

    return same


def from_positions(frame: pd.DataFrame, source: str) -> tuple[Portfolio, ...]:
    """Account snapshots (``account,instrument,quantity`` rows, e.g. a positions file) as static
    books: the same positions on every day, replayed while every instrument is alive at the end
    of the MPOR. The description carries a fingerprint of the rows, so cached results follow
    the file's content.
    """
    import hashlib

    from margin_engine.instruments import InstrumentError, Kind, parse_instrument

    books = []
    for account, rows in frame.groupby("account", sort=True):
        legs: Legs = []
        underlyings: set[str] = set()
        expiries: list[date] = []
        options = False
        for name, quantity in zip(rows["instrument"], rows["quantity"], strict=True):
            try:
                inst = parse_instrument(str(name).strip())
                q = float(quantity)
            except (InstrumentError, ValueError) as exc:
                raise ValueError(f"{source}: account {account}, {name}: {exc}") from exc
            if not math.isfinite(q):
                raise ValueError(
                    f"{source}: account {account}, {name}: quantity {quantity!r} is not a number"
                )
            legs.append((inst.name, q))
            underlyings.add(inst.underlying)
            options |= inst.kind is Kind.OPTION
            if inst.expiry is not None:
                expiries.append(inst.expiry.date())
        digest = hashlib.sha256(repr(sorted(legs)).encode()).hexdigest()[:12]
        books.append(
            Portfolio(
                f"{account}",
                f"account {account} from {source} (rows {digest})",
                tuple(sorted(underlyings)),
                _static(tuple(legs)),
                "book",
                options,
                min(expiries) if expiries else None,
            )
        )
    return tuple(books)


def canonical_positions(frame: pd.DataFrame, source: str) -> tuple[tuple[str, str, float], ...]:
    """``account,instrument,quantity`` rows in canonical form: accounts in Unicode NFC, stripped, instruments
    in their canonical spelling (:attr:`Instrument.canonical`), one row per (account, instrument) with its quantities summed,
    sorted — so two files that spell the same book differently give the same rows. A bad row
    raises :class:`ValueError` naming ``source``, the row (the header is row 1) and the field.
    """
    import unicodedata

    from margin_engine.instruments import InstrumentError, parse_instrument

    summed: dict[tuple[str, str], list[float]] = {}
    for k, (account, name, quantity) in enumerate(
        zip(frame["account"], frame["instrument"], frame["quantity"], strict=True), start=2
    ):
        where = f"{source}: row {k}"
        account = unicodedata.normalize("NFC", str(account)).strip()
        if not account:
            raise ValueError(f"{where}: account is empty")
        try:
            instrument = parse_instrument(str(name).strip()).canonical
        except InstrumentError as exc:
            raise ValueError(f"{where}: instrument {name!r}: {exc}") from None
        try:
            q = float(quantity)
        except (TypeError, ValueError):
            q = math.nan
        if not math.isfinite(q):
            raise ValueError(f"{where}: quantity {quantity!r} is not a finite number")
        summed.setdefault((account, instrument), []).append(q)
    return tuple((a, i, math.fsum(qs)) for (a, i), qs in sorted(summed.items()))


def select(names: list[str] | tuple[str, ...]) -> tuple[Portfolio, ...]:
    """Portfolios by name or group (``books``, ``spot``, ``collateral``, ``all``)."""
    everything = {p.name: p for group in GROUPS.values() for p in group}
    chosen: dict[str, Portfolio] = {}
    for name in names:
        if name == "all":
            chosen.update(everything)
        elif name in GROUPS:
            chosen.update({p.name: p for p in GROUPS[name]})
        elif name in everything:
            chosen[name] = everything[name]
        else:
            raise ValueError(
                f"unknown portfolio {name!r}: choose from {', '.join(['all', *GROUPS, *everything])}"
            )
    return tuple(chosen.values())
