"""The risk-array core: value each instrument once per scenario, then every
account's scenario P&L is one sparse product, then reduce per account and currency.

Units (per unit of quantity, in the instrument's settlement currency):

=====================  ==============  =====================================================
instrument             quantity unit   P&L for an underlying move m (F -> F(1+m), σ -> σ')
=====================  ==============  =====================================================
inverse fut./perp.     USD notional    :math:`\\frac{1}{F_0}\\frac{m}{1+m}` coin
linear fut./perp.      coin            :math:`F_0\\,m` quote
inverse option         coin            :math:`V(F_0(1+m),σ')/(F_0(1+m)) - V(F_0,σ)/F_0` coin
linear option          coin            :math:`V(F_0(1+m),σ') - V(F_0,σ)` quote
spot coin              coin            0 (it is the coin balance)
linear spot pair       coin            :math:`S_0\\,m` quote
=====================  ==============  =====================================================

so a short inverse perpetual of notional N loses :math:`\\frac{N}{F_0}\\frac{m}{1+m}` coin when the
price rises by m. Deltas are in coin of the underlying; for inverse options it is Deribit's
"net transaction delta" :math:`\\Delta_{BS} - V/F`, since the premium itself is held in coin.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse

from margin_engine.instruments import (
    Instrument,
    InstrumentError,
    InstrumentTable,
    Kind,
    by_bucket,
    parse_instrument,
)
from margin_engine.market import MarketDataError, MarketSnapshot, smile_vol
from margin_engine.pricing import black76_greeks, black76_price, revalued_pnl

STABLE = {"USD", "USDC", "USDT"}  # settlement currencies counted in dollars
# the deepest down move a scenario applies: a price cannot fall by 100 % or more (a range of
# 1.0, or an extreme multiple times a wide range, would otherwise value at a zero price)
DEEPEST_MOVE = -0.99
DERIVED_KEPT = 96  # risk arrays kept per book: per underlying, a sweep's values, say


@dataclass(frozen=True)
class ValuedBook:
    """Instruments with their market inputs, values and deltas (arrays of length n)."""

    table: InstrumentTable
    spot: np.ndarray
    forward: np.ndarray
    vol: np.ndarray  # nan where not an option
    value: np.ndarray  # mark value per unit quantity, settlement currency
    delta: np.ndarray  # coin delta per unit quantity
    group_index_price: np.ndarray  # index price of each group's underlying
    # arrays derived from this book under given parameters (risk arrays), computed once: an
    # exchange margins every account against one set per snapshot and parameter set
    _derived: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def derived(self, key: Hashable, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """``compute()``, once per ``key`` (a few recent keys kept), as a read-only array."""
        found = self._derived.pop(key, None)
        if found is None:
            found = compute()
            found.setflags(write=False)
            while len(self._derived) >= DERIVED_KEPT:
                self._derived.pop(next(iter(self._derived)))
        self._derived[key] = found  # most recent last
        return found

    def scenario_pnl(
        self, moves: np.ndarray, vols: np.ndarray | None = None, rows: np.ndarray | None = None
    ) -> np.ndarray:
        """P&L per unit quantity (n × S) for relative underlying ``moves`` (n × S, each
        instrument's own underlying) and new implied ``vols`` (n × S; default unchanged); with
        ``rows`` (instrument indices), of those instruments only (moves and vols then
        len(rows) × S).
        """
        t = self.table
        pick = slice(None) if rows is None else np.asarray(rows)
        kind, inverse = t.kind[pick], t.inverse[pick]
        moves = np.asarray(moves, dtype=float)
        f0 = self.forward[pick, None]
        pnl = np.zeros_like(moves)
        futures = (kind == Kind.PERPETUAL) | (kind == Kind.FUTURE)
        inv_fut = futures & inverse
        lin_fut = futures & ~inverse
        pnl[inv_fut] = (moves[inv_fut] / (1.0 + moves[inv_fut])) / f0[inv_fut]
        pnl[lin_fut] = f0[lin_fut] * moves[lin_fut]
        lin_spot = (kind == Kind.SPOT) & ~inverse
        pnl[lin_spot] = self.spot[pick][lin_spot, None] * moves[lin_spot]
        options = kind == Kind.OPTION
        if options.any():
            vol0 = self.vol[pick][options, None]
            strike, years = t.strike[pick][options, None], t.years[pick][options, None]
            is_call = t.is_call[pick][options, None]
            f0_options, inverse_options = f0[options], inverse[options, None]
            v0 = black76_price(f0_options, strike, years, vol0, is_call)
            base = np.where(inverse_options, v0 / f0_options, v0)  # today's value, per unit
            pnl[options] = revalued_pnl(
                f0_options,
                moves[options],
                strike,
                years,
                vol0 if vols is None else vols[options],
                is_call,
                inverse_options,
                base,
            )
        return pnl


def _vols(instruments: list[Instrument], forward: np.ndarray, market: MarketSnapshot) -> np.ndarray:
    """Implied vol of each option (NaN elsewhere): quoted, else the default IV through the
    smile — vectorised, since backtests value thousands of options.
    """
    vol = np.full(len(instruments), np.nan)
    smiled = [
        k for k, i in enumerate(instruments) if i.kind is Kind.OPTION and i.name not in market.iv
    ]
    for k, i in enumerate(instruments):
        if i.kind is Kind.OPTION and i.name in market.iv:
            vol[k] = float(market.iv[i.name])
    if smiled:
        idx = np.array(smiled)
        atm = np.array([market.default_iv[instruments[k].underlying] for k in smiled], float)
        strike = np.array([instruments[k].strike for k in smiled], float)
        years = np.array([instruments[k].years_to_expiry(market.as_of) for k in smiled], float)
        vol[idx] = smile_vol(atm, strike, forward[idx], years)
    return vol


def value_book(
    instruments: list[Instrument], market: MarketSnapshot
) -> tuple[ValuedBook, dict[str, str]]:
    """Value ``instruments`` against ``market``; instruments that cannot be valued (expired, no
    index, no IV) are left out and returned as ``{name: reason}``.
    """
    usable, errors = [], {}  # in bucket order: see by_bucket
    spot, forward = [], []
    for instrument in by_bucket(instruments):
        try:
            if instrument.expiry is not None and instrument.expiry <= market.as_of:
                raise InstrumentError(
                    f"{instrument.name}: expired at {instrument.expiry:%Y-%m-%d %H:%M} UTC"
                )
            s = market.spot(instrument.underlying)
            f = market.forward(instrument)
            if (
                instrument.kind is Kind.OPTION
                and instrument.name not in market.iv
                and instrument.underlying not in market.default_iv
            ):
                market.vol(instrument, f)  # raises the snapshot's own error
        except (InstrumentError, MarketDataError) as exc:
            errors[instrument.name] = str(exc)
            continue
        usable.append(instrument)
        spot.append(s)
        forward.append(f)
    vol = _vols(usable, np.array(forward, float), market)
    table = InstrumentTable.build(usable, market.as_of)
    spot_a, fwd_a, vol_a = np.array(spot, float), np.array(forward, float), np.array(vol, float)
    value = np.zeros(len(usable))
    delta = np.zeros(len(usable))
    futures = np.isin(table.kind, (Kind.PERPETUAL, Kind.FUTURE))
    delta[futures & table.inverse] = 1.0 / fwd_a[futures & table.inverse]
    delta[futures & ~table.inverse] = 1.0
    coin = (table.kind == Kind.SPOT) & table.inverse
    value[coin] = 1.0
    pair = (table.kind == Kind.SPOT) & ~table.inverse
    value[pair] = spot_a[pair]
    delta[pair] = 1.0
    options = table.kind == Kind.OPTION
    if options.any():
        price = black76_price(
            fwd_a[options],
            table.strike[options],
            table.years[options],
            vol_a[options],
            table.is_call[options],
        )
        greeks = black76_greeks(
            fwd_a[options],
            table.strike[options],
            table.years[options],
            vol_a[options],
            table.is_call[options],
        )
        inverse = table.inverse[options]
        value[options] = np.where(inverse, price / fwd_a[options], price)
        delta[options] = np.where(
            inverse, greeks["delta"] - price / fwd_a[options], greeks["delta"]
        )
    group_index = np.array([market.spot(u) for _, u in table.groups], float)
    return ValuedBook(table, spot_a, fwd_a, vol_a, value, delta, group_index), errors


@dataclass(frozen=True)
class PositionError:
    """A position that could not be booked, and why."""

    account: str
    instrument: str
    error: str

    def to_dict(self) -> dict:
        """The error as JSON-safe values."""
        return {"account": self.account, "instrument": self.instrument, "error": self.error}


@dataclass(frozen=True)
class Positions:
    """Validated positions: every account listed has only valuable positions.

    ``account`` indexes ``accounts``; ``instrument`` indexes the book's table; quantities are in
    contract units (see the module docstring); duplicates are summed by the sparse products.

    The layout every model shares is computed once per positions object and cached: the sparse
    matrix of positions by (account, group) row, by (account, expiry bucket) row, and the
    (account, settlement currency) rows of the results. Backtests margin the same positions
    under many markets and parameter sets, so only the risk arrays change between calls.
    """

    book: ValuedBook
    accounts: tuple[str, ...]
    account: np.ndarray
    instrument: np.ndarray
    quantity: np.ndarray
    errors: tuple[PositionError, ...] = ()

    @property
    def n_accounts(self) -> int:
        """Number of accounts."""
        return len(self.accounts)

    @property
    def n_groups(self) -> int:
        """Number of (settlement currency, underlying) groups."""
        return len(self.book.table.groups)

    def matrix(self, rows: np.ndarray, n_rows: int) -> sparse.csr_matrix:
        """Sparse positions: ``rows[k]`` is the row of position k, columns are instruments."""
        return sparse.csr_matrix(
            (self.quantity, (rows, self.instrument)), shape=(n_rows, len(self.book.table))
        )

    @functools.cached_property
    def group_matrix(self) -> sparse.csr_matrix:
        """Positions by (account × groups + group) row."""
        rows = self.account * self.n_groups + self.book.table.group[self.instrument]
        return self.matrix(rows, self.n_accounts * self.n_groups)

    @functools.cached_property
    def _bucketed(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Positions in an expiry bucket: their (account × buckets + bucket) row, instrument
        and quantity.
        """
        bucket = self.book.table.bucket[self.instrument]
        keep = np.flatnonzero(bucket >= 0)
        n_buckets = max(len(self.book.table.buckets), 1)
        return (
            self.account[keep] * n_buckets + bucket[keep],
            self.instrument[keep],
            self.quantity[keep],
        )

    def per_bucket(self, per_unit: np.ndarray) -> np.ndarray:
        """Σ quantity × ``per_unit[instrument]`` per (account, expiry bucket): (accounts, buckets).

        A weighted bincount over the positions: with ~20 positions per account over ~25
        expiries this is twice as fast as a sparse product with one row per (account, bucket).
        """
        rows, instrument, quantity = self._bucketed
        n_buckets = max(len(self.book.table.buckets), 1)
        return np.bincount(
            rows, weights=quantity * per_unit[instrument], minlength=self.n_accounts * n_buckets
        ).reshape(self.n_accounts, n_buckets)

    @functools.cached_property
    def currencies(self) -> tuple[str, ...]:
        """The settlement currencies held, by name."""
        return tuple(sorted({c for c, _ in self.book.table.groups}))

    @functools.cached_property
    def group_currency(self) -> np.ndarray:
        """Index into ``currencies`` of each group."""
        return np.array(
            [self.currencies.index(c) for c, _ in self.book.table.groups], dtype=np.int64
        )

    @functools.cached_property
    def layout(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Result rows: ``(present, account_of_row, currency_of_row)``. ``present`` masks the
        account × currencies grid to the (account, currency) pairs holding a position.
        """
        held = (np.diff(self.group_matrix.indptr) > 0).reshape(self.n_accounts, self.n_groups)
        present = np.zeros((self.n_accounts, len(self.currencies)), bool)
        for g, c in enumerate(self.group_currency):
            present[:, c] |= held[:, g]
        flat = present.reshape(-1)
        idx = np.flatnonzero(flat)
        n_cur = len(self.currencies)
        return flat, idx // n_cur, np.asarray(self.currencies, dtype=object)[idx % n_cur]

    @functools.cached_property
    def currency_row(self) -> np.ndarray:
        """(account × currencies + currency) row of each position."""
        return (
            self.account * len(self.currencies)
            + self.group_currency[self.book.table.group[self.instrument]]
        )

    def per_group(self, per_unit: np.ndarray) -> np.ndarray:
        """Σ quantity × ``per_unit[instrument]`` per (account, group): shape (accounts, groups)."""
        return (self.group_matrix @ per_unit).reshape(self.n_accounts, self.n_groups)

    @functools.cached_property
    def _group_to_currency(self) -> np.ndarray:
        """(groups × currencies) 0/1 matrix: which currency each group settles in."""
        out = np.zeros((self.n_groups, len(self.currencies)))
        out[np.arange(self.n_groups), self.group_currency] = 1.0
        return out

    @functools.cached_property
    def row_group(self) -> np.ndarray | None:
        """Where every settlement currency has one group (the usual book: one underlying per
        currency), the (account × groups + group) index of each result row; else None.
        """
        if len(set(self.group_currency.tolist())) < self.n_groups:
            return None
        _, account_of_row, _ = self.layout
        group_of_currency = np.empty(len(self.currencies), dtype=np.int64)
        group_of_currency[self.group_currency] = np.arange(self.n_groups)
        row_currency = np.flatnonzero(self.layout[0]) % len(self.currencies)
        return account_of_row * self.n_groups + group_of_currency[row_currency]

    @functools.cached_property
    def group_of_row(self) -> np.ndarray | None:
        """With :attr:`row_group`, the group of each result row; else None."""
        return None if self.row_group is None else self.row_group % self.n_groups

    def to_currency(self, per_group: np.ndarray) -> np.ndarray:
        """Sum (accounts, groups) values into the result rows (per account and currency)."""
        if self.row_group is not None:
            return per_group.reshape(-1)[self.row_group]  # one group per row: a gather
        return (per_group @ self._group_to_currency).reshape(-1)[self.layout[0]]

    def per_position_to_currency(self, values: np.ndarray) -> np.ndarray:
        """Sum per-position ``values`` into the result rows."""
        n_rows = self.n_accounts * len(self.currencies)
        return np.bincount(self.currency_row, weights=values, minlength=n_rows)[self.layout[0]]

    def per_position_to_currency_many(self, per_unit: np.ndarray) -> np.ndarray:
        """Σ quantity × ``per_unit`` (positions × K, per unit of each position) into the result
        rows, for K columns at once: shape (rows, K).
        """
        n_rows = self.n_accounts * len(self.currencies)
        weights = sparse.csr_matrix(
            (self.quantity, (self.currency_row, np.arange(len(self.quantity)))),
            shape=(n_rows, len(self.quantity)),
        )
        return np.asarray(weights @ per_unit)[self.layout[0]]

    def equity(self) -> np.ndarray:
        """Mark value of positions per result row (settlement currency)."""
        return self.to_currency(self.per_group(self.book.value))


def build_positions(frame: pd.DataFrame, market: MarketSnapshot) -> Positions:
    """Validate ``account,instrument,quantity`` rows against ``market``.

    A row with an unknown, expired or unvaluable instrument, or a quantity that is not a finite
    number, becomes a :class:`PositionError` naming the account and instrument, and its whole
    account is left out (its margin would be wrong); every other account is kept.
    """
    missing = {"account", "instrument", "quantity"} - set(frame.columns)
    if missing:
        raise ValueError(f"positions: missing column(s) {', '.join(sorted(missing))}")
    accounts = frame["account"].astype(str).to_numpy()
    names = frame["instrument"].astype(str).str.strip().to_numpy()
    quantity = pd.to_numeric(frame["quantity"], errors="coerce").to_numpy(dtype=float)
    unique_names = pd.unique(names)
    parsed: dict[str, Instrument] = {}
    bad_names: dict[str, str] = {}
    for name in unique_names:
        try:
            parsed[name] = parse_instrument(name)
        except InstrumentError as exc:
            bad_names[name] = str(exc)
    book, unvalued = value_book(list(parsed.values()), market)
    bad_names.update(unvalued)
    errors: list[PositionError] = []
    bad_quantity = ~np.isfinite(quantity)
    raw_quantity = frame["quantity"].astype(str).to_numpy()
    for k in np.flatnonzero(bad_quantity):
        errors.append(
            PositionError(
                accounts[k], names[k], f"quantity {raw_quantity[k]!r} is not a finite number"
            )
        )
    bad_rows = bad_quantity | np.isin(names, list(bad_names))
    for k in np.flatnonzero(np.isin(names, list(bad_names))):
        errors.append(PositionError(accounts[k], names[k], bad_names[names[k]]))
    bad_accounts = set(accounts[bad_rows])
    keep = ~np.isin(accounts, list(bad_accounts)) if bad_accounts else np.ones(len(accounts), bool)
    account_codes, account_names = pd.factorize(accounts[keep], sort=True)
    position = {name: i for i, name in enumerate(book.table.names)}
    instrument_codes = np.array([position[n] for n in names[keep]], dtype=np.int64)
    errors.sort(key=lambda e: (e.account, e.instrument))
    return Positions(
        book,
        tuple(account_names),
        account_codes.astype(np.int64),
        instrument_codes,
        quantity[keep],
        tuple(errors),
    )


@dataclass(frozen=True)
class MarginResult:
    """Margin per (account, settlement currency), the same shape for every model.

    ``components`` hold the named parts of the initial margin (each an array of the rows).
    Scenario models say which scenario drove each row: ``worst_scenario`` indexes
    ``scenario_catalog`` (one description per group × scenario) and ``worst_loss`` is that
    scenario's loss; descriptions are built only when records are asked for.
    """

    model: str
    account: np.ndarray  # account index per row
    accounts: tuple[str, ...]
    currency: np.ndarray  # currency name per row
    initial_margin: np.ndarray
    maintenance_margin: np.ndarray
    equity: np.ndarray
    components: dict[str, np.ndarray] = field(default_factory=dict)
    worst_scenario: np.ndarray | None = None
    worst_loss: np.ndarray | None = None
    scenario_catalog: tuple[dict, ...] = ()
    errors: tuple[PositionError, ...] = ()

    @property
    def liquidation_threshold(self) -> np.ndarray:
        """Equity at which the account is liquidated: the maintenance margin."""
        return self.maintenance_margin

    def frame(self) -> pd.DataFrame:
        """One row per (account, settlement currency) with margins and components."""
        out = pd.DataFrame(
            {
                "account": np.asarray(self.accounts, dtype=object)[self.account]
                if len(self.account)
                else [],
                "currency": self.currency,
                "initial_margin": self.initial_margin,
                "maintenance_margin": self.maintenance_margin,
                "equity": self.equity,
            }
        )
        for name, values in self.components.items():
            out[name] = values
        return out

    def describe_worst(self, row: int) -> dict | None:
        """The scenario that produced row ``row``'s worst loss, and that loss."""
        if self.worst_scenario is None or self.worst_loss is None:
            return None
        return {
            **self.scenario_catalog[int(self.worst_scenario[row])],
            "loss": float(self.worst_loss[row]),
        }

    def records(self) -> list[dict]:
        """The result rows as JSON-safe records."""
        rows = []
        accounts = np.asarray(self.accounts, dtype=object)
        for k in range(len(self.account)):
            rows.append(
                {
                    "account": accounts[self.account[k]],
                    "currency": str(self.currency[k]),
                    "initial_margin": float(self.initial_margin[k]),
                    "maintenance_margin": float(self.maintenance_margin[k]),
                    "equity": float(self.equity[k]),
                    "liquidation_threshold": float(self.maintenance_margin[k]),
                    "components": {name: float(v[k]) for name, v in self.components.items()},
                    "worst_scenario": self.describe_worst(k),
                }
            )
        return rows


def worst_by_row(
    positions: Positions, worst: np.ndarray, worst_index: np.ndarray, n_scenarios: int
) -> tuple[np.ndarray, np.ndarray]:
    """For each result row: the catalogue index (group × scenarios + scenario) and loss of the
    scenario that drove it — the group with the largest worst case in that row's currency.
    """
    present, account_of_row, _ = positions.layout
    if positions.row_group is not None:
        flat = positions.row_group
        return (flat % positions.n_groups) * n_scenarios + worst_index.reshape(-1)[
            flat
        ], worst.reshape(-1)[flat]
    row_currency = np.flatnonzero(present) % len(positions.currencies)
    group_of_row = np.zeros(len(account_of_row), dtype=np.int64)
    for c in range(len(positions.currencies)):
        groups = np.flatnonzero(positions.group_currency == c)
        rows = row_currency == c
        if len(groups) == 1:
            group_of_row[rows] = groups[0]
        else:
            group_of_row[rows] = groups[worst[account_of_row[rows]][:, groups].argmax(axis=1)]
    return (
        group_of_row * n_scenarios + worst_index[account_of_row, group_of_row],
        worst[account_of_row, group_of_row],
    )
