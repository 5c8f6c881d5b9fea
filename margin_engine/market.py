"""Market snapshots: what the models value instruments against.

A :class:`MarketSnapshot` holds the valuation time, index prices, a futures/forward curve per
underlying and implied vols per option (or a default per underlying with a parametric smile).

Forwards: an explicit forward for the expiry when given; otherwise the basis is interpolated
linearly in time between the known expiries of that underlying (flat beyond them) and applied to
the index; with no futures at all the forward is the index (zero basis). Perpetuals are valued
at the index.

Default-IV smile (when an option has no quoted IV): with
:math:`x = \\ln(K/F)/(\\sigma_{ATM}\\sqrt T)`,

.. math:: \\sigma(K) = \\sigma_{ATM}\\,(1 + s\\,x + c\\,x^2), \\quad s = -0.05,\\ c = 0.02

clipped to :math:`[0.5, 3]\\,\\sigma_{ATM}` — an illustrative crypto smile (puts richer than calls,
wings lifted) used for warehouse-built snapshots, where only a 30-day IV index is stored.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from margin_engine._typing import Values
from margin_engine.instruments import DAYS_PER_YEAR, Instrument, Kind, parse_instrument

STABLECOINS = {"USD", "USDC", "USDT"}
SMILE_SKEW = -0.05
SMILE_CURVATURE = 0.02


class MarketDataError(ValueError):
    """The snapshot cannot value an instrument (no index, no IV)."""


def smile_vol(
    atm: Values, strike: np.ndarray, forward: np.ndarray, years: np.ndarray
) -> np.ndarray:
    """The documented parametric smile around ``atm`` (see the module docstring)."""
    sd = atm * np.sqrt(np.maximum(years, 1e-8))
    x = np.log(strike / forward) / sd
    vol = atm * (1.0 + SMILE_SKEW * x + SMILE_CURVATURE * x * x)
    return np.clip(vol, 0.5 * atm, 3.0 * atm)


@dataclass(frozen=True)
class MarketSnapshot:
    """Prices and vols at one valuation time (UTC)."""

    as_of: datetime
    index: Mapping[str, float]
    forwards: Mapping[str, Mapping[datetime, float]] = field(default_factory=dict)
    iv: Mapping[str, float] = field(default_factory=dict)
    default_iv: Mapping[str, float] = field(default_factory=dict)
    source: str = ""
    notes: tuple[str, ...] = ()  # e.g. rows of a chain left out as unusable

    def __post_init__(self) -> None:
        if self.as_of.tzinfo is None:
            raise ValueError("MarketSnapshot.as_of must be timezone-aware (UTC)")
        for name, price in self.index.items():
            if not (isinstance(price, int | float) and math.isfinite(price) and price > 0):
                raise ValueError(
                    f"MarketSnapshot.index[{name!r}] must be a positive number, got {price!r}"
                )
        for name, vol in {**self.iv, **self.default_iv}.items():
            if not (isinstance(vol, int | float) and 0 < vol <= 5):
                raise ValueError(
                    f"MarketSnapshot implied vol for {name!r} must be in (0, 5], got {vol!r}"
                )

    def spot(self, underlying: str) -> float:
        """The index price of ``underlying``."""
        if underlying in self.index:
            return float(self.index[underlying])
        if underlying in STABLECOINS:
            return 1.0  # dollar stablecoins are valued at par unless the snapshot says otherwise
        raise MarketDataError(f"no index price for {underlying}")

    def forward(self, instrument: Instrument) -> float:
        """The forward of ``instrument``'s expiry (the index when none is quoted)."""
        spot = self.spot(instrument.underlying)
        if instrument.expiry is None:
            return spot
        curve = self.forwards.get(instrument.underlying) or {}
        if instrument.expiry in curve:
            return float(curve[instrument.expiry])
        if not curve:
            return spot
        times = np.array(
            [(e - self.as_of).total_seconds() / (DAYS_PER_YEAR * 86400) for e in curve]
        )
        basis = np.array(
            [math.log(f / spot) / max(t, 1e-8) for f, t in zip(curve.values(), times, strict=True)]
        )
        order = np.argsort(times)
        t = instrument.years_to_expiry(self.as_of)
        rate = float(np.interp(t, times[order], basis[order]))
        return spot * math.exp(rate * t)

    def vol(self, instrument: Instrument, forward: float) -> float:
        """``instrument``'s implied vol: quoted, else the smile around the IV index."""
        if instrument.name in self.iv:
            return float(self.iv[instrument.name])
        if instrument.underlying in self.default_iv:
            atm = float(self.default_iv[instrument.underlying])
            t = instrument.years_to_expiry(self.as_of)
            return float(
                smile_vol(atm, np.array([instrument.strike]), np.array([forward]), np.array([t]))[0]
            )
        raise MarketDataError(
            f"{instrument.name}: no implied vol (and no default IV for {instrument.underlying})"
        )

    # ------------------------------------------------------------------ builders

    @classmethod
    def from_deribit_chain(
        cls, chain: pd.DataFrame | str | Path, *, skip_invalid: bool = False
    ) -> MarketSnapshot:
        """From a Deribit option-chain snapshot (``timestamp,instrument_name,underlying,…``):
        the index per currency, the forward of each expiry (the ``underlying`` column) and every
        option's implied vol.

        A snapshot is taken over some seconds, so rows of one currency (or expiry) can carry
        slightly different index (forward) prices: each is the *median* over its rows, which
        one stale or erroneous row cannot move (the last row could).

        ``skip_invalid`` leaves out rows whose name does not parse or whose IV or forward is
        not usable, and says so in ``notes`` (stored rows: one bad row must not stop the
        margining of the others); otherwise such a row is an error.
        """
        frame = pd.read_csv(chain) if isinstance(chain, str | Path) else chain
        required = {
            "timestamp",
            "instrument_name",
            "underlying",
            "implied_volatility",
            "currency",
            "index_price",
        }
        missing = required - set(frame.columns)
        if missing:
            raise ValueError(f"option chain: missing column(s) {', '.join(sorted(missing))}")
        stamps = pd.to_datetime(frame["timestamp"], utc=True)
        as_of = stamps.max().to_pydatetime()
        index = frame.groupby("currency")["index_price"].median().astype(float).to_dict()
        by_expiry: dict[str, dict[datetime, list[float]]] = {}
        iv = {}
        skipped: list[str] = []
        for row in frame.itertuples(index=False):
            try:
                instrument = parse_instrument(str(row.instrument_name))
                vol, forward = float(row.implied_volatility), float(row.underlying)
                if instrument.kind is not Kind.OPTION:
                    raise ValueError("not an option")
                if not (0 < vol <= 5 and math.isfinite(forward) and forward > 0):
                    raise ValueError(f"IV {vol!r} or forward {forward!r} unusable")
            except (ValueError, TypeError) as exc:
                if not skip_invalid:
                    raise
                skipped.append(f"{str(row.instrument_name)[:64]!r} ({exc})")
                continue
            assert instrument.expiry is not None  # an option always has one
            by_expiry.setdefault(instrument.underlying, {}).setdefault(
                instrument.expiry, []
            ).append(forward)
            iv[instrument.name] = vol
        forwards = {
            u: {expiry: float(np.median(values)) for expiry, values in curve.items()}
            for u, curve in by_expiry.items()
        }
        notes: tuple[str, ...] = ()
        if skipped:
            notes = (
                f"{len(skipped)} unusable option row(s) left out: {', '.join(skipped[:3])}"
                + (" …" if len(skipped) > 3 else ""),
            )
        return cls(as_of, index, forwards, iv, source="deribit-option-chain", notes=notes)

    @classmethod
    def from_json(cls, document: Mapping[str, Any] | str | Path) -> MarketSnapshot:
        """From ``{"as_of": ISO time, "index": {"BTC": 60000}, "futures": {"BTC-27DEC24":
        61000}, "iv": {"BTC-27DEC24-60000-C": 0.55}, "default_iv": {"BTC": 0.6}}``.
        """
        if isinstance(document, str | Path):
            document = cast(Mapping[str, Any], json.loads(Path(document).read_text()))
        if "as_of" not in document or "index" not in document:
            raise ValueError("market JSON needs 'as_of' and 'index'")
        as_of = pd.Timestamp(document["as_of"])
        as_of = (
            as_of.tz_localize(UTC) if as_of.tzinfo is None else as_of.tz_convert(UTC)
        ).to_pydatetime()
        forwards: dict[str, dict[datetime, float]] = {}
        for name, price in (document.get("futures") or {}).items():
            instrument = parse_instrument(name)
            if instrument.kind is not Kind.FUTURE or instrument.expiry is None:
                raise ValueError(f"market JSON futures: {name} is not a dated future")
            forwards.setdefault(instrument.underlying, {})[instrument.expiry] = float(price)
        return cls(
            as_of,
            {k: float(v) for k, v in document["index"].items()},
            forwards,
            {k: float(v) for k, v in (document.get("iv") or {}).items()},
            {k: float(v) for k, v in (document.get("default_iv") or {}).items()},
            source="json",
        )
