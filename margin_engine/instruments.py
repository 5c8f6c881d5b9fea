"""Instruments named as on Deribit, and their vectorised table.

Names:

=========================  ======================================================
``BTC``                    spot coin (quantity in coin)
``BTC_USDC``               spot pair, valued in USDC (quantity in coin)
``BTC-PERPETUAL``          inverse perpetual, settles in BTC (quantity in USD)
``SOL_USDC-PERPETUAL``     linear perpetual, settles in USDC (quantity in coin)
``BTC-27DEC24``            inverse future, expires 27 Dec 2024 08:00 UTC (USD)
``BTC-27DEC24-60000-C``    inverse European call, settles in BTC (coin)
``XRP_USDC-27DEC24-0d625-P``  linear option; ``d`` is the decimal point in a strike
=========================  ======================================================

Inverse contracts settle in their underlying coin, so their P&L is in coin; linear ones in the
quote currency. Spot coin held in its own currency has no P&L in that currency: it is the
collateral, valued with haircuts by :mod:`margin_engine.collateral`.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum

import numpy as np

EXPIRY_HOUR_UTC = 8  # Deribit expiries settle at 08:00 UTC
DAYS_PER_YEAR = 365.0
MONTHS = {
    m: i
    for i, m in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
        start=1,
    )
}
_NAME = re.compile(r"^(?P<base>[A-Z0-9]+)(?:_(?P<quote>[A-Z0-9]+))?(?:-(?P<rest>.+))?$")
_EXPIRY = re.compile(r"^(?P<day>\d{1,2})(?P<month>[A-Z]{3})(?P<year>\d{2})$")


class Kind(IntEnum):
    """What an instrument is: spot, perpetual, dated future or option."""

    SPOT = 0
    PERPETUAL = 1
    FUTURE = 2
    OPTION = 3


class InstrumentError(ValueError):
    """A name that is not a valid instrument, or one that cannot be valued now."""


@dataclass(frozen=True)
class Instrument:
    """One contract.

    Attributes
    ----------
    underlying : str
        The index it refers to (``BTC``).
    settlement : str
        The currency its P&L is paid in: the coin for inverse contracts, the quote for linear.
    inverse : bool
        Coin-settled (quantity in USD for futures/perpetuals, in coin for options).
    """

    name: str
    kind: Kind
    underlying: str
    settlement: str
    inverse: bool
    expiry: datetime | None = None
    strike: float | None = None
    is_call: bool | None = None

    def years_to_expiry(self, at: datetime) -> float:
        """ACT/365 years from ``at`` to expiry (0 for spot and perpetuals)."""
        if self.expiry is None:
            return 0.0
        return (self.expiry - at).total_seconds() / (DAYS_PER_YEAR * 86400.0)

    @property
    def canonical(self) -> str:
        """The name in one spelling (Deribit's): expiry day without a leading zero, an integral
        strike without decimals, a fractional one with ``d`` for the point — so ``BTC-05JAN24-
        40000.0-C`` and ``BTC-5JAN24-40000-C`` are one instrument.
        """
        name = self.underlying if self.inverse else f"{self.underlying}_{self.settlement}"
        if self.kind is Kind.SPOT:
            return name
        if self.expiry is None:
            return f"{name}-PERPETUAL"
        month = next(k for k, v in MONTHS.items() if v == self.expiry.month)
        expiry = f"{self.expiry.day}{month}{self.expiry.year % 100:02d}"
        if self.strike is None:
            return f"{name}-{expiry}"
        strike = f"{self.strike:.12f}".rstrip("0").rstrip(".")  # never an exponent: '-' splits
        return f"{name}-{expiry}-{strike.replace('.', 'd')}-{'C' if self.is_call else 'P'}"

    @property
    def quantity_unit(self) -> str:
        """What a quantity counts: USD of notional (inverse futures) or coins."""
        if self.inverse and self.kind in (Kind.PERPETUAL, Kind.FUTURE):
            return "USD"
        return self.underlying


def _parse_expiry(text: str, name: str) -> datetime:
    match = _EXPIRY.match(text)
    if not match or match.group("month") not in MONTHS:
        raise InstrumentError(f"{name}: {text!r} is not an expiry like 27DEC24")
    try:
        return datetime(
            2000 + int(match.group("year")),
            MONTHS[match.group("month")],
            int(match.group("day")),
            EXPIRY_HOUR_UTC,
            tzinfo=UTC,
        )
    except ValueError as exc:
        raise InstrumentError(f"{name}: {text!r} is not a calendar date") from exc


@functools.lru_cache(maxsize=65_536)
def parse_instrument(name: str) -> Instrument:
    """Parse a Deribit-style instrument name (see the module docstring). Instruments are
    immutable, so parses are cached: backtests value the same names on many days.
    """
    if not isinstance(name, str) or not name.strip():
        raise InstrumentError(f"{name!r}: empty instrument name")
    name = name.strip()
    match = _NAME.match(name)
    if not match:
        raise InstrumentError(
            f"{name}: not an instrument name (e.g. BTC-PERPETUAL, BTC-27DEC24-60000-C)"
        )
    base, quote, rest = match.group("base"), match.group("quote"), match.group("rest")
    inverse = quote is None
    settlement = base if inverse else quote
    if rest is None:
        return Instrument(name, Kind.SPOT, base, settlement, inverse)
    parts = rest.split("-")
    if parts == ["PERPETUAL"]:
        return Instrument(name, Kind.PERPETUAL, base, settlement, inverse)
    if len(parts) == 1:
        return Instrument(
            name, Kind.FUTURE, base, settlement, inverse, _parse_expiry(parts[0], name)
        )
    if len(parts) == 3:
        expiry = _parse_expiry(parts[0], name)
        try:
            strike = float(parts[1].replace("d", "."))
        except ValueError as exc:
            raise InstrumentError(f"{name}: strike {parts[1]!r} is not a number") from exc
        if not strike > 0:
            raise InstrumentError(f"{name}: strike must be positive")
        if parts[2] not in ("C", "P"):
            raise InstrumentError(f"{name}: option type must be C or P, got {parts[2]!r}")
        return Instrument(
            name, Kind.OPTION, base, settlement, inverse, expiry, strike, parts[2] == "C"
        )
    raise InstrumentError(
        f"{name}: not an instrument name (e.g. BTC-PERPETUAL, BTC-27DEC24-60000-C)"
    )


def bucket_label(instrument: Instrument) -> str | None:
    """The expiry bucket of ``instrument`` (None for spot)."""
    if instrument.kind is Kind.SPOT:
        return None
    return "PERPETUAL" if instrument.expiry is None else f"{instrument.expiry:%Y-%m-%d}"


def by_bucket(instruments: list[Instrument]) -> list[Instrument]:
    """``instruments`` grouped by (group, expiry bucket), groups and buckets in order of first
    appearance: a row's positions, in instrument order, then meet each bucket in one run (the
    margin kernel sums a bucket's delta without a per-bucket table).
    """
    first: dict[tuple, int] = {}
    keys = []
    for instrument in instruments:
        group = (instrument.settlement, instrument.underlying)
        g = first.setdefault(group, len(first))
        b = first.setdefault((group, bucket_label(instrument)), len(first))
        keys.append((g, b))
    order = sorted(range(len(instruments)), key=keys.__getitem__)
    return [instruments[k] for k in order]


@dataclass(frozen=True)
class InstrumentTable:
    """Instruments as parallel arrays (length n), the form every model computes on.

    ``group`` numbers the (settlement currency, underlying) pairs: risk is aggregated per
    group and margin per currency. ``bucket`` numbers the (group, expiry) pairs used by the
    roll shock; perpetuals form their own bucket, spot has none (-1).
    """

    instruments: tuple[Instrument, ...]
    kind: np.ndarray  # int8, Kind
    inverse: np.ndarray  # bool
    is_call: np.ndarray  # bool (False where not an option)
    strike: np.ndarray  # float (nan where not an option)
    years: np.ndarray  # float, years to expiry (0 for spot/perpetual)
    group: np.ndarray  # int, index into groups
    groups: tuple[tuple[str, str], ...]  # (currency, underlying)
    bucket: np.ndarray  # int, index into buckets or -1
    buckets: tuple[tuple[int, str], ...]  # (group, expiry label)
    bucket_years: np.ndarray  # float per bucket

    @property
    def names(self) -> tuple[str, ...]:
        """The instruments' names, in order."""
        return tuple(i.name for i in self.instruments)

    def __len__(self) -> int:
        return len(self.instruments)

    @classmethod
    def build(cls, instruments: list[Instrument], at: datetime) -> InstrumentTable:
        """Arrays for ``instruments`` valued at ``at``; an expired instrument is an error."""
        for instrument in instruments:
            if instrument.expiry is not None and instrument.expiry <= at:
                raise InstrumentError(
                    f"{instrument.name}: expired at {instrument.expiry:%Y-%m-%d %H:%M} UTC"
                )
        groups: dict[tuple[str, str], int] = {}
        buckets: dict[tuple[int, str], int] = {}
        bucket_years: list[float] = []
        group, bucket = [], []
        for instrument in instruments:
            g = groups.setdefault((instrument.settlement, instrument.underlying), len(groups))
            group.append(g)
            label = bucket_label(instrument)
            if label is None:
                bucket.append(-1)
                continue
            if (g, label) not in buckets:
                buckets[(g, label)] = len(buckets)
                bucket_years.append(instrument.years_to_expiry(at))
            bucket.append(buckets[(g, label)])
        return cls(
            instruments=tuple(instruments),
            kind=np.array([i.kind for i in instruments], dtype=np.int8),
            inverse=np.array([i.inverse for i in instruments], dtype=bool),
            is_call=np.array([bool(i.is_call) for i in instruments], dtype=bool),
            strike=np.array([np.nan if i.strike is None else i.strike for i in instruments]),
            years=np.array([i.years_to_expiry(at) for i in instruments]),
            group=np.array(group, dtype=np.int64),
            groups=tuple(groups),
            bucket=np.array(bucket, dtype=np.int64),
            buckets=tuple(buckets),
            bucket_years=np.array(bucket_years),
        )
