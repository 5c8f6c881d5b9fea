"""Liquidation cascades of option books: accounts holding the test portfolios' books (options,
futures, perpetuals on one underlying), margined by a margin model at every step, liquidated in
full when their equity falls below maintenance, their delta sold through the impact model.

The linear cascade (:mod:`backtesting.cascade`) knows each account's liquidation price in
closed form; a book's equity is not linear in the price, so here every step revalues every
instrument and asks the margin model for each open account's maintenance margin:

* Accounting is in USD: collateral is USD; an instrument's value per unit is its Black-76 value
  in USD (an inverse option's coin price times the forward is that), a linear future's the
  forward, an inverse future's (quantity in USD of notional) the forward over its start. Time
  passes: an option's years to expiry shrink by the step's elapsed time.
* At a step with price :math:`p` an account is under when :math:`E_i(p) < MM_i(p)`. The
  accounts under are closed in full; the flow is their USD delta, :math:`Q = \\sum_i \\sum_k
  q_{ik}\\,\\Delta_k(p)` (> 0: longs sold), executed at :math:`x = p(1 - \\mathrm{sign}(Q)\\,
  \\mathrm{impact}(|Q|))`, as the linear cascade's full mode does. A penalty of the closed delta
  notional (capped at what is left) goes to the insurance fund; equity below zero is bad debt,
  drawn from the fund, then auto-deleveraged. The price with impact may put others under: the
  step repeats until no one is.

Money is conserved at every step: collateral + realised + unrealised P&L = equity + penalties
− bad debt.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
from scipy import sparse

from backtesting.cascade import CascadeRun, Tally, checked_path
from margin_engine.book import Positions, ValuedBook, build_positions
from margin_engine.impact import ImpactModel
from margin_engine.instruments import Kind
from margin_engine.market import MarketSnapshot
from margin_engine.params import ModelParams
from margin_engine.portfolio_margin import portfolio_margin
from margin_engine.portfolios import DayMarket, Portfolio
from margin_engine.pricing import black76_greeks, black76_price
from vocabulary import DAYS_PER_YEAR

__all__ = [
    "BookAccounts",
    "BookMarket",
    "Valuation",
    "book_bad_debt_distribution",
    "simulate_books",
    "synthetic_books",
]

#: maintenance margin (USD, one per account) at (price ratio, IV ratio, elapsed days)
Maintenance = Callable[[float, float, float], np.ndarray]


@dataclass(frozen=True)
class Valuation:
    """Each instrument's inputs at the start, to value it at any later price and IV."""

    option: np.ndarray  # bool
    inverse: np.ndarray  # bool
    forward: np.ndarray
    strike: np.ndarray
    years: np.ndarray
    vol: np.ndarray
    is_call: np.ndarray

    @classmethod
    def of(cls, book: ValuedBook) -> Valuation:
        """The valuation inputs of every instrument of ``book``."""
        t = book.table
        option = t.kind == Kind.OPTION
        return cls(
            option,
            np.asarray(t.inverse, bool),
            np.asarray(book.forward, float),
            np.where(option, t.strike, np.nan),
            np.where(option, t.years, 0.0),
            np.where(option, book.vol, np.nan),
            np.asarray(t.is_call, bool),
        )

    def values(
        self, ratio: float, iv_ratio: float, elapsed_days: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per unit, in USD: each instrument's value and delta exposure (∂V/∂F · F) when the
        underlying is at ``ratio`` times its start, implied vols at ``iv_ratio`` times theirs,
        ``elapsed_days`` later.
        """
        f = self.forward * ratio
        value = np.where(self.inverse, ratio, f)  # delta-one; options overwritten below
        delta = value.copy()
        if self.option.any():
            o = self.option
            years = np.maximum(self.years[o] - elapsed_days / DAYS_PER_YEAR, 0.0)
            vol = self.vol[o] * iv_ratio
            value[o] = black76_price(f[o], self.strike[o], years, vol, self.is_call[o])
            delta[o] = (
                black76_greeks(f[o], self.strike[o], years, vol, self.is_call[o])["delta"] * f[o]
            )
        return value, delta


@dataclass(frozen=True)
class BookAccounts:
    """USD collateral per account and its positions (accounts × instruments, units of each
    instrument's quantity).
    """

    cash: np.ndarray
    quantity: sparse.csr_matrix

    def __post_init__(self) -> None:
        if self.quantity.shape[0] != len(self.cash):
            raise ValueError("accounts: one row of positions per account")
        if np.any(~np.isfinite(self.cash)) or np.any(self.cash < 0):
            raise ValueError("accounts: collateral must be finite and ≥ 0")


def simulate_books(
    accounts: BookAccounts,
    valuation: Valuation,
    maintenance: Maintenance,
    path: np.ndarray,
    iv_path: np.ndarray,
    impact: ImpactModel,
    penalty: float,
    *,
    steps_per_day: int = 4,
    fund: float = 0.0,
    max_rounds: int = 100,
) -> CascadeRun:
    """Step ``accounts`` along ``path`` (prices, its first the start) with implied vols at
    ``iv_path`` times the start's (see the module).
    """
    path = checked_path(path, fund)
    iv_path = np.asarray(iv_path, dtype=float)
    if iv_path.shape != path.shape or path.ndim != 1 or np.any(~(iv_path > 0)):
        raise ValueError("iv_path: one positive ratio per step")
    if not 0 <= penalty < 1:
        raise ValueError("penalty must be in [0, 1)")
    cash = np.array(accounts.cash, dtype=float)
    q = sparse.csr_matrix(accounts.quantity, dtype=float, copy=True)
    live = np.ones(len(cash), bool)
    start = path[0]
    base, _ = valuation.values(1.0, 1.0, 0.0)
    tally = Tally(path, fund)
    multiplier = 1.0
    value = base
    for t in range(len(path)):
        p = path[t] * multiplier
        elapsed = t / steps_per_day
        for r in range(max_rounds):
            value, delta = valuation.values(p / start, iv_path[t], elapsed)
            equity = cash + q @ (value - base)
            under = live & (equity < maintenance(p / start, iv_path[t], elapsed))
            if not under.any():
                break
            tally.rounds[t] = r + 1
            idx = np.flatnonzero(under)
            rows = q[idx]
            flow = float(np.sum(rows @ delta))  # > 0: long delta sold
            move = float(impact.move(flow))
            x = p * (1.0 - math.copysign(move, flow)) if flow != 0 else p
            value_x, delta_x = valuation.values(x / start, iv_path[t], elapsed)
            gain = rows @ (value_x - base)
            tally.realised += float(gain.sum())
            left = cash[idx] + gain
            notional = np.abs(rows) @ np.abs(delta_x)
            charge = np.minimum(penalty * notional, np.maximum(left, 0.0))
            left -= charge
            tally.charge(float(charge.sum()))
            total = float(np.maximum(-left, 0.0).sum())
            if total > 0:
                tally.bad_debt(t, total)
            cash[idx] = np.maximum(left, 0.0)
            live[idx] = False
            q = sparse.diags(live.astype(float)) @ q  # closed accounts hold nothing
            tally.out["volume"][t] += float(notional.sum())
            tally.liquidated[t] += len(idx)
            multiplier *= x / p
            p = x
        tally.step(t, p)
    unrealised = float(np.sum(q @ (value - base)))
    gross = np.asarray(np.abs(q).sum(axis=1)).ravel()
    collateral = float(np.sum(accounts.cash))
    return tally.run(cash, gross, collateral, unrealised, float(cash.sum()) + unrealised)


def book_bad_debt_distribution(
    accounts: BookAccounts,
    valuation: Valuation,
    maintenance: Maintenance,
    paths: np.ndarray,
    iv_paths: np.ndarray | None,
    impact: ImpactModel,
    penalty: float,
    fund: float = 0.0,
) -> np.ndarray:
    """Bad debt of the books along each path (one cascade per path; implied vols held where
    ``iv_paths`` is None).
    """
    ivs = np.ones_like(paths) if iv_paths is None else iv_paths
    return np.array(
        [
            simulate_books(
                accounts, valuation, maintenance, path, iv, impact, penalty, fund=fund
            ).total_bad_debt
            for path, iv in zip(paths, ivs, strict=True)
        ]
    )


# --------------------------------------------------------------------------- populations


def synthetic_books(
    portfolios: Sequence[Portfolio],
    asset: str,
    day: date,
    price: float,
    iv: float,
    n: int,
    seed: int,
    *,
    size_usd: float = 20_000.0,
) -> pd.DataFrame:
    """``n`` accounts, each holding one of the test portfolios' books on ``asset`` as struck on
    ``day`` at ``price`` and ``iv`` (chosen at even odds), scaled to a heavy-tailed size
    (lognormal, median ``size_usd`` of the underlying's notional per unit of the book, a few a
    hundred times larger): ``account,instrument,quantity`` rows. The same seed gives the same
    population.
    """
    if n < 1 or not (math.isfinite(price) and price > 0) or not (math.isfinite(iv) and iv > 0):
        raise ValueError("population: need n ≥ 1, a positive price and implied vol")
    market = DayMarket(day, {asset: price}, {asset: iv})
    books = [
        p
        for p in portfolios
        if p.kind == "book" and p.underlying_list == (asset,) and p.available(market)
    ]
    if not books:
        raise ValueError(f"population: no test portfolio holds only {asset}")
    legs = [p.legs(market) for p in books]
    rng = np.random.default_rng([seed, 19])
    pick = rng.integers(0, len(books), n)
    size = size_usd / price * rng.lognormal(0.0, 1.5, n)
    width = len(str(n - 1))
    rows = [
        (f"a{k:0{width}d}", instrument, quantity * size[k])
        for k in range(n)
        for instrument, quantity in legs[pick[k]]
    ]
    frame = pd.DataFrame(rows, columns=["account", "instrument", "quantity"])
    frame.attrs["books"] = [books[j].name for j in pick]
    return frame


@dataclass(frozen=True)
class BookMarket:
    """Margins of a fixed book at any point of a path: the engine re-margins every account
    under a market snapshot at ``price × ratio`` and ``iv × iv_ratio``, ``elapsed_days`` after
    ``start`` (a position expired by then holds nothing).
    """

    frame: pd.DataFrame
    asset: str
    start: datetime
    price: float
    iv: float

    def snapshot(self, ratio: float, iv_ratio: float, elapsed_days: float) -> MarketSnapshot:
        """The market at that point (IVs kept inside the engine's (0, 5] range)."""
        return MarketSnapshot(
            self.start + timedelta(days=elapsed_days),
            {self.asset: self.price * ratio},
            default_iv={self.asset: min(max(self.iv * iv_ratio, 1e-3), 5.0)},
            source="cascade",
        )

    @functools.cached_property
    def positions(self) -> Positions:
        """The population's positions at the start (every row must be valuable)."""
        positions = build_positions(self.frame, self.snapshot(1.0, 1.0, 0.0))
        if positions.errors:
            first = positions.errors[0]
            raise ValueError(f"population: {first.account}, {first.instrument}: {first.error}")
        return positions

    @property
    def accounts(self) -> tuple[str, ...]:
        """Account names, in the order of every array here."""
        return self.positions.accounts

    @functools.cached_property
    def _row(self) -> dict[str, int]:
        # a later snapshot's positions may drop accounts whose options expired: results are
        # placed by name
        return {name: k for k, name in enumerate(self.accounts)}

    def margins(
        self, params: ModelParams, ratio: float = 1.0, iv_ratio: float = 1.0, days: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Initial and maintenance margin per account (USD; a coin row at the price)."""
        snapshot = self.snapshot(ratio, iv_ratio, days)
        positions = build_positions(self.frame, snapshot)
        result = portfolio_margin(positions, params)
        fx = np.array(
            [snapshot.index[self.asset] if c == self.asset else 1.0 for c in result.currency]
        )
        rows = np.array([self._row[positions.accounts[a]] for a in result.account], dtype=np.int64)
        initial = np.zeros(len(self.accounts))
        maintenance = np.zeros(len(self.accounts))
        np.add.at(initial, rows, result.initial_margin * fx)
        np.add.at(maintenance, rows, result.maintenance_margin * fx)
        return initial, maintenance

    def maintenance(self, params: ModelParams) -> Maintenance:
        """The maintenance margins ``params`` ask, as :func:`simulate_books` reads them."""
        return lambda ratio, iv_ratio, days: self.margins(params, ratio, iv_ratio, days)[1]

    def accounts_at_the_limit(
        self, params: ModelParams, seed: int, headroom: tuple[float, float] = (1.02, 1.5)
    ) -> BookAccounts:
        """USD collateral of each account just above the initial margin ``params`` asks
        (uniformly ``headroom`` times it: leverage near the limit), and its positions.
        """
        initial, _ = self.margins(params)
        rng = np.random.default_rng([seed, 20])
        cash = initial * rng.uniform(*headroom, len(initial))
        p = self.positions
        quantity = sparse.csr_matrix(
            (p.quantity, (p.account, p.instrument)),
            shape=(p.n_accounts, len(p.book.table.names)),
        )
        return BookAccounts(cash, quantity)

    @property
    def valuation(self) -> Valuation:
        """The instruments' valuation inputs at the start."""
        return Valuation.of(self.positions.book)
