"""Replaying history through the margin models: the pure core of a backtest.

On each day ``t``:

1. every book of the library is struck against the close of ``t`` (:mod:`.portfolios`);
2. the market snapshot of ``t`` (index = close, options at the day's 30-day IV through the
   parametric smile of :mod:`.market`, forwards = index) values them;
3. each model computes the margin per (book, settlement currency) with the parameters known on
   ``t`` (``params_for(t)``, which a caller may vary by day: the set in force, or calibrated
   values);
4. the *realised* P&L of holding the same positions over the MPOR is the full revaluation at the
   close of ``t + h`` (spot, the IV of ``t + h`` through the same smile, ``h`` days less to
   expiry): a breach is ``loss > margin``, strictly;
5. the *path* loss is the worst revaluation over every OHLC point of the days ``t+1 … t+h`` —
   each day's close and its lows and highs (every low/high combination of the book's
   underlyings, up to three; all-low and all-high beyond), valued at that day's end with that
   day's IV — so a crash that recovers within the day (10 October 2025) is seen. It is never
   below the close-to-close loss.

Linear P&L uses what is loaded: where funding rates are stored, dated futures (and the forwards
of options) carry the funding-implied basis :math:`F = S e^{bT}`, with b = 3 × 365 × the mean
8-hour funding rate of the trailing 7 days (known at the day's close), and perpetual positions
pay or receive the day's funding, 3 × rate × notional per day held (a long pays a positive
rate). Without funding the basis is zero and perpetuals accrue nothing.

Losses and margins are in the settlement currency of each row (coin for inverse books, USDC for
linear ones); ``fx_usd`` converts both. Collateral-only accounts are replayed separately: the
margin is the haircut (USD) and the loss the fall in value over the MPOR.

Nothing here touches a database or a clock; the caller caches what it wants.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta

import numpy as np
import pandas as pd

from backtesting._typing import DayLike
from calibration.stress import STRESS_WINDOWS
from margin_engine.book import STABLE, Positions, value_book
from margin_engine.collateral import haircut_value
from margin_engine.instruments import DAYS_PER_YEAR, Kind, parse_instrument
from margin_engine.market import MarketSnapshot, smile_vol
from margin_engine.models import margin, model_named
from margin_engine.montecarlo import (
    AssetDynamics,
    JointModel,
    Simulation,
    long_run_model,
    mc_margin,
    stress_weights,
)
from margin_engine.params import CollateralParams, HaircutTier, ModelParams
from margin_engine.portfolios import DayMarket, Portfolio
from margin_engine.pricing import black76_price
from margin_engine.var import JointScenarios, overlapping_moves, window_labels
from vocabulary import Apc, Innovations, MarginModel, Sampling, VarMeasure, VarMethod

HAIRCUT_MODEL = MarginModel.HAIRCUT
MIN_RESIDUAL_DAYS = 30  # the fewest joint residual days a Monte Carlo day bootstraps from


def end_of_day(day: DayLike) -> datetime:
    """The end of ``day``: 00:00 UTC of the next day (when a day's close is stamped)."""
    return datetime.combine(pd.Timestamp(day).date() + timedelta(days=1), time(0), tzinfo=UTC)


FUNDING_PERIODS_PER_DAY = 3  # 8-hour funding
BASIS_DAYS = 7  # trailing days of funding averaged into the basis
MAX_PATH_COMBINATIONS = 3  # underlyings whose lows and highs are combined in every way


@dataclass(frozen=True)
class MarketHistory:
    """Daily closes and 30-day ATM IVs (dates × underlyings; NaN where unknown), and optionally
    each day's high and low (default: the close) and mean 8-hour funding rate (default: none).
    """

    close: pd.DataFrame
    iv: pd.DataFrame
    high: pd.DataFrame | None = None
    low: pd.DataFrame | None = None
    funding: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        if (
            not isinstance(self.close.index, pd.DatetimeIndex)
            or not self.close.index.is_monotonic_increasing
        ):
            raise ValueError("MarketHistory.close needs an increasing DatetimeIndex of days")

    @property
    def days(self) -> pd.DatetimeIndex:
        """Every calendar day of the history."""
        return self.close.index

    def _aligned(self, frame: pd.DataFrame | None, fallback: pd.DataFrame) -> pd.DataFrame:
        if frame is None:
            return fallback
        out = frame.reindex(index=self.close.index, columns=self.close.columns)
        return out.where(out.notna(), fallback)

    @functools.cached_property
    def highs(self) -> pd.DataFrame:
        """Daily highs aligned with the closes (a missing high is the close)."""
        return self._aligned(self.high, self.close)

    @functools.cached_property
    def lows(self) -> pd.DataFrame:
        """Daily lows aligned with the closes (a missing low is the close)."""
        return self._aligned(self.low, self.close)

    @functools.cached_property
    def funding_rates(self) -> pd.DataFrame:
        """Mean 8-hour funding rate per day (0 where none is loaded)."""
        zero = pd.DataFrame(0.0, index=self.close.index, columns=self.close.columns)
        if self.funding is None:
            return zero
        return self.funding.reindex(index=self.close.index, columns=self.close.columns).fillna(0.0)

    @functools.cached_property
    def basis(self) -> pd.DataFrame:
        """Annualised funding-implied basis b per day (0 without funding data)."""
        if self.funding is None:
            return pd.DataFrame(0.0, index=self.close.index, columns=self.close.columns)
        rates = self.funding.reindex(index=self.close.index, columns=self.close.columns)
        mean = rates.rolling(BASIS_DAYS, min_periods=1).mean().fillna(0.0)
        return mean * FUNDING_PERIODS_PER_DAY * 365.0

    @functools.cached_property
    def arrays(self) -> dict[str, np.ndarray]:
        """Close, low, high, IV and basis as (days × underlyings) arrays in ``close``'s column
        order, for the per-day path revaluation (pandas lookups per day would dominate it).
        """
        columns = list(self.close.columns)
        return {
            "close": self.close.to_numpy(dtype=float),
            "low": self.lows.to_numpy(dtype=float),
            "high": self.highs.to_numpy(dtype=float),
            "iv": self.iv.reindex(index=self.close.index, columns=columns).to_numpy(dtype=float),
            "basis": self.basis.to_numpy(dtype=float),
        }

    @functools.cached_property
    def positions(self) -> dict[pd.Timestamp, int]:
        """Row position of each day in the history."""
        return {day: k for k, day in enumerate(self.close.index)}

    @functools.cached_property
    def _markets(self) -> dict[pd.Timestamp, DayMarket]:
        iv = self.iv.reindex(index=self.close.index)
        names, close_values, iv_values = (
            list(self.close.columns),
            self.close.to_numpy(),
            iv.to_numpy(),
        )
        iv_names = list(iv.columns)
        out = {}
        for k, day in enumerate(self.close.index):
            spot = {
                u: float(v) for u, v in zip(names, close_values[k], strict=True) if math.isfinite(v)
            }
            vols = {
                u: float(v) for u, v in zip(iv_names, iv_values[k], strict=True) if math.isfinite(v)
            }
            out[day] = DayMarket(day.date(), spot, vols)
        return out

    def day_market(self, day: pd.Timestamp) -> DayMarket:
        """The market of ``day``: spot, IV, funding of each underlying."""
        return self._markets[pd.Timestamp(day)]

    def snapshot(self, day: pd.Timestamp) -> MarketSnapshot:
        """``day``'s market as a :class:`MarketSnapshot` (valued at the end of the day)."""
        m = self.day_market(day)
        at = end_of_day(day)
        forwards = {}
        if self.funding is not None:
            basis = self.basis.loc[pd.Timestamp(day)]
            for u, spot in m.spot.items():
                b = float(basis.get(u, 0.0))
                if b != 0.0:
                    # one point a year out: the snapshot interpolates the basis *rate*, flat
                    forwards[u] = {at + timedelta(days=365): spot * math.exp(b)}
        return MarketSnapshot(at, m.spot, forwards, {}, m.iv, source="history")


@dataclass(frozen=True)
class DayBook:
    """The books of one day: positions at ``day`` and each result row's realised P&L over the
    MPOR (settlement currency; negative = loss) at the close of ``day + mpor`` and at the worst
    point of the OHLC path, the USD rate and the gross notional (USD).
    """

    day: pd.Timestamp
    positions: Positions
    portfolio: np.ndarray
    currency: np.ndarray
    pnl: np.ndarray
    fx_usd: np.ndarray
    notional_usd: np.ndarray
    pnl_path: np.ndarray | None = None


@dataclass(frozen=True)
class PathPoints:
    """Revaluation points of an MPOR window: per point the day it falls on (offset 1..h from
    the margin day), each underlying's price and ATM IV, and whether it is the final close.
    """

    offset: np.ndarray  # (P,) int
    spot: np.ndarray  # (U, P)
    atm: np.ndarray  # (U, P)
    basis: np.ndarray  # (U, P) annualised
    final: int  # index of the close of day + h


def path_points(
    history: MarketHistory, underlyings: Sequence[str], day: pd.Timestamp, mpor: int
) -> PathPoints | None:
    """The close of every day in (day, day + mpor] and, for each, the low/high combinations of
    ``underlyings``. A day inside the window without closes adds no point; None when the last
    day (the close-to-close end) has none.
    """
    offsets: list[int] = []
    spots: list[np.ndarray] = []
    atms: list[np.ndarray] = []
    bases: list[np.ndarray] = []
    final = 0
    columns = list(history.close.columns)
    cols = [columns.index(u) for u in underlyings]
    arrays = history.arrays
    start = history.positions[pd.Timestamp(day)]
    for k in range(1, mpor + 1):
        row = start + k
        inside = row < len(history.days)
        close = arrays["close"][row, cols] if inside else np.full(len(cols), np.nan)
        if not np.isfinite(close).all():
            if k == mpor:
                return None
            continue
        iv, basis = arrays["iv"][row, cols], arrays["basis"][row, cols]
        low, high = arrays["low"][row, cols], arrays["high"][row, cols]
        points = [close]
        if len(cols) <= MAX_PATH_COMBINATIONS:
            for choice in itertools.product((0, 1), repeat=len(cols)):
                points.append(np.where(np.array(choice) == 0, low, high))
        else:
            points += [low, high]
        for j, point in enumerate(points):
            if j > 0 and np.array_equal(point, close):
                continue  # a day without intraday range adds nothing
            if k == mpor and j == 0:
                final = len(offsets)
            offsets.append(k)
            spots.append(point)
            atms.append(iv)
            bases.append(basis)
    return PathPoints(
        np.asarray(offsets),
        np.asarray(spots).T,
        np.asarray(atms).T,
        np.asarray(bases).T,
        final,
    )


def revalue(positions: Positions, points: PathPoints, day: pd.Timestamp) -> np.ndarray:
    """P&L per unit of each instrument (n × P) from the book's market to every path point:
    full revaluation on the point's price and ATM IV (through the smile of
    :mod:`margin_engine.market`), the funding-implied forward, at the end of the point's day.
    """
    book, table = positions.book, positions.book.table
    names = [u for _, u in table.groups]
    u_index = {u: k for k, u in enumerate(dict.fromkeys(names))}
    order = list(u_index)
    if points.spot.shape[0] != len(order):
        raise ValueError("path points must list every underlying of the book, in book order")
    row = np.array([u_index[names[g]] for g in table.group], dtype=np.int64)
    spot = points.spot[row]  # (n, P)
    atm = points.atm[row]
    elapsed = points.offset[None, :] / DAYS_PER_YEAR  # each point is valued at its day's end
    years = np.maximum(table.years[:, None] - elapsed, 0.0)
    forward = spot * np.exp(points.basis[row] * years)
    out = np.zeros(spot.shape)
    futures = np.isin(table.kind, (Kind.PERPETUAL, Kind.FUTURE))
    perpetual = table.kind == Kind.PERPETUAL
    forward = np.where(perpetual[:, None], spot, forward)
    inv, lin = futures & table.inverse, futures & ~table.inverse
    out[inv] = 1.0 / book.forward[inv, None] - 1.0 / forward[inv]
    out[lin] = forward[lin] - book.forward[lin, None]
    pair = (table.kind == Kind.SPOT) & ~table.inverse
    out[pair] = spot[pair] - book.spot[pair, None]
    options = table.kind == Kind.OPTION
    if options.any():
        strike = table.strike[options, None]
        f = forward[options]
        t = years[options]
        vol = smile_vol(atm[options], strike, f, np.maximum(t, 1e-8))
        price = black76_price(f, strike, t, vol, table.is_call[options, None])
        value = np.where(table.inverse[options, None], price / f, price)
        out[options] = value - book.value[options, None]
    return out


def funding_paid(
    positions: Positions, history: MarketHistory, day: pd.Timestamp, offsets: np.ndarray
) -> np.ndarray:
    """Funding per unit of each instrument (n × P) from ``day`` to each point's day: perpetuals
    pay ``3 × rate × notional`` per day held (negative for a long when the rate is positive);
    other instruments nothing.
    """
    table = positions.book.table
    perpetual = table.kind == Kind.PERPETUAL
    out = np.zeros((len(table), len(offsets)))
    if not perpetual.any() or history.funding is None:
        return out
    names = [u for _, u in table.groups]
    horizon = int(offsets.max())
    days = [day + pd.Timedelta(days=k) for k in range(1, horizon + 1)]
    rates = history.funding_rates.reindex(days)
    closes = history.close.reindex(days)
    for i in np.flatnonzero(perpetual):
        u = names[table.group[i]]
        if u not in rates.columns:
            continue
        r = rates[u].to_numpy(dtype=float)
        s = closes[u].to_numpy(dtype=float)
        per_day = FUNDING_PERIODS_PER_DAY * r * (1.0 / s if table.inverse[i] else s)
        cumulative = np.cumsum(np.nan_to_num(per_day))
        out[i] = -cumulative[offsets - 1]
    return out


def _unit_notional_usd(positions: Positions) -> np.ndarray:
    table, book = positions.book.table, positions.book
    futures = np.isin(table.kind, (Kind.PERPETUAL, Kind.FUTURE))
    return np.where(futures & table.inverse, 1.0, book.spot)


def _positions(
    chosen: Sequence[Portfolio], market: DayMarket, snapshot: MarketSnapshot
) -> Positions:
    """The books' legs as :class:`Positions` (what :func:`build_positions` gives for a
    positions file, without its per-row validation: the library's legs are valid by
    construction, and a leg the market cannot value is an error here).
    """
    names, accounts, quantities = [], [], []
    for k, p in enumerate(sorted(chosen, key=lambda p: p.name)):
        for name, quantity in p.legs(market):
            names.append(name)
            accounts.append(k)
            quantities.append(quantity)
    unique = list(dict.fromkeys(names))
    book, errors = value_book([parse_instrument(n) for n in unique], snapshot)
    if errors:
        name, reason = next(iter(errors.items()))
        raise ValueError(f"{snapshot.as_of:%Y-%m-%d}: {name}: {reason}")
    position = {n: i for i, n in enumerate(book.table.names)}
    return Positions(
        book,
        tuple(p.name for p in sorted(chosen, key=lambda p: p.name)),
        np.asarray(accounts, dtype=np.int64),
        np.array([position[n] for n in names], dtype=np.int64),
        np.asarray(quantities, dtype=float),
    )


def build_day(
    history: MarketHistory,
    books: Sequence[Portfolio],
    day: pd.Timestamp,
    mpor: int,
    *,
    realised: bool = True,
) -> DayBook | None:
    """The day's books (those whose inputs exist on ``day`` and ``day + mpor``), or None.
    ``realised=False`` skips the revaluation over the MPOR (P&L left NaN) when only margins
    are wanted.
    """
    later_day = day + pd.Timedelta(days=mpor)
    if later_day not in history.days:
        return None
    market, later = history.day_market(day), history.day_market(later_day)
    chosen = [p for p in books if p.kind == "book" and p.available(market) and p.available(later)]
    if not chosen:
        return None
    positions = _positions(chosen, market, history.snapshot(day))
    rows = len(positions.layout[1])
    pnl, pnl_path = np.full(rows, np.nan), np.full(rows, np.nan)
    if realised:
        underlyings = list(dict.fromkeys(u for _, u in positions.book.table.groups))
        points = path_points(history, underlyings, day, mpor)
        if points is None:
            return None  # a day inside the MPOR has no close: no realised loss to measure
        unit = revalue(positions, points, day) + funding_paid(
            positions, history, day, points.offset
        )
        per_row = positions.per_position_to_currency_many(unit[positions.instrument])
        pnl = per_row[:, points.final]
        # an intraday point without an IV (options unvalued there) is left out of the path
        pnl_path = np.fmin(np.where(np.isfinite(per_row), per_row, np.inf).min(axis=1), pnl)
    notional = positions.per_position_to_currency(
        np.abs(positions.quantity) * _unit_notional_usd(positions)[positions.instrument]
    )
    _, account_of_row, currency_of_row = positions.layout
    fx = np.array([1.0 if c in STABLE else market.spot[c] for c in currency_of_row])
    portfolio = np.asarray(positions.accounts, dtype=object)[account_of_row]
    return DayBook(day, positions, portfolio, currency_of_row, pnl, fx, notional, pnl_path)


# --------------------------------------------------------------------------- parameters


def override(params: ModelParams, changes: Mapping[str, float]) -> ModelParams:
    """``params`` with parameter-set paths replaced: ``underlyings.X.pm.price_range``,
    ``underlyings.X.span.price_scan_range`` and ``collateral.X.haircut`` (every tier moves with
    the base haircut). Calibrated backtests change these daily; validation is the dataclasses'.
    """
    pm, span, collateral = dict(params.pm), dict(params.span), dict(params.collateral)
    for path, value in changes.items():
        parts = path.split(".")
        if len(parts) == 4 and parts[0] == "underlyings" and parts[2:] == ["pm", "price_range"]:
            pm[parts[1]] = replace(params.pm_for(parts[1]), price_range=float(value))
        elif (
            len(parts) == 4
            and parts[0] == "underlyings"
            and parts[2:] == ["span", "price_scan_range"]
        ):
            span[parts[1]] = replace(params.span_for(parts[1]), price_scan_range=float(value))
        elif len(parts) == 3 and parts[0] == "collateral" and parts[2] == "haircut":
            old = params.collateral_for(parts[1])
            base = old.tiers[0].haircut
            tiers = tuple(
                HaircutTier(t.up_to_usd, min(max(t.haircut - base + float(value), 0.0), 1.0))
                for t in old.tiers
            )
            collateral[parts[1]] = CollateralParams(tiers)
        else:
            raise ValueError(f"{path}: not a parameter a backtest can vary by day")
    return replace(params, pm=pm, span=span, collateral=collateral)


# --------------------------------------------------------------------------- margins


@dataclass(frozen=True)
class VarInputs:
    """History for VaR/ES scenarios, each as a daily run knew it: log returns and IV log changes
    (days × underlyings), each day's filtered vol σ_{s|s-1} and the next day's forecast σ_{t+1|t}
    (origin × underlyings).
    """

    returns: pd.DataFrame
    iv_changes: pd.DataFrame
    cond_vol: pd.DataFrame
    vol_next: pd.DataFrame
    paths: int = 2000  # Monte Carlo paths a day (mc-var, mc-es)
    seed: int = 0  # the run's seed; each day draws from its own stream of it

    def scenarios(
        self,
        day: pd.Timestamp,
        underlyings: Sequence[str],
        horizon: int,
        lookback: int,
        method: str,
    ) -> JointScenarios:
        """Joint VaR/ES scenarios of ``underlyings`` from the returns known at ``day``.

        What :func:`margin_engine.var.historical_scenarios` gives on the days up to ``day``
        (a day enters once every underlying has a return and a filtered vol for it), from
        arrays prepared once per set of underlyings: a backtest asks every day for years.
        """
        table = self._table(tuple(underlyings), horizon)
        usable = table.usable(day)
        first = max(0, usable - lookback)
        rows = table.rows[first:usable]
        if len(rows) < horizon:
            raise ValueError(
                f"{len(rows)} joint days of returns; need at least the MPOR ({horizon})"
            )
        daily = table.returns[rows]
        if VarMethod(method) is VarMethod.FILTERED_HISTORICAL:
            sigma = table.cond_vol[rows]
            if not np.isfinite(sigma).all():
                raise ValueError("cond_vol must be positive and cover every scenario day")
            if table.forecasts is not None and table.forecast_days is not None:
                forecast = table.forecasts[table.forecast_days.get_loc(day)]
            else:  # a forecast frame the table could not hold as an array: pandas' own lookup
                forecast = self.vol_next.loc[day, list(underlyings)].to_numpy(float)
            daily = daily * (forecast / sigma)
        moves = overlapping_moves(daily, horizon)
        return JointScenarios(
            tuple(str(u) for u in underlyings),
            moves,
            overlapping_moves(table.iv[rows], horizon),
            np.full(len(moves), 1.0 / len(moves)),
            tuple(table.labels[first : usable - horizon + 1].tolist()),
        )

    def joint_model(
        self,
        day: pd.Timestamp,
        underlyings: Sequence[str],
        lookback: int,
        stress_weight: float | None = None,
    ) -> JointModel:
        """The joint model of ``underlyings`` as known at ``day``, from what the filtered
        historical scenarios use: tomorrow's forecast volatility :math:`\\sigma_{t+1|t}` held
        over the MPOR, the joint standardised residuals :math:`z_s = r_s / \\sigma_{s|s-1}` of
        the last ``lookback`` usable days (bootstrapped, so their correlation travels with
        them), and the implied vols' daily vol of vol and spot–vol correlation over the same
        days (no mean reversion over a few days). With ``stress_weight`` (the ``stressed-
        weight`` tool) the residual rows inside the stress windows are drawn with that total
        weight (:func:`margin_engine.montecarlo.stress_weights`).
        """
        table = self._table(tuple(underlyings), 1)
        usable = table.usable(day)
        rows = table.rows[max(0, usable - lookback) : usable]
        if len(rows) < MIN_RESIDUAL_DAYS:
            raise ValueError(
                f"{len(rows)} joint days of residuals at {pd.Timestamp(day).date()}; "
                f"Monte Carlo margin needs at least {MIN_RESIDUAL_DAYS}"
            )
        z = table.returns[rows] / table.cond_vol[rows]
        iv = table.iv[rows]
        sigma = self.vol_next.loc[day, list(underlyings)].to_numpy(float)
        dynamics = []
        for j in range(len(underlyings)):
            vol_of_vol = float(np.std(iv[:, j], ddof=1))
            spread = float(np.std(z[:, j])) * vol_of_vol
            rho = float(np.corrcoef(z[:, j], iv[:, j])[0, 1]) if spread > 0 else 0.0
            dynamics.append(
                AssetDynamics(
                    float(sigma[j]),
                    vol_of_vol=vol_of_vol,
                    spot_vol_correlation=rho if math.isfinite(rho) else 0.0,
                )
            )
        correlation = np.corrcoef(z.T).reshape(len(underlyings), len(underlyings))
        weights = None
        if stress_weight is not None:
            windows = [(w.start, w.end) for w in STRESS_WINDOWS]
            weights = stress_weights(table.dates[rows], windows, stress_weight)
        return JointModel(tuple(underlyings), tuple(dynamics), correlation, z, weights)

    def floor_model(self, day: pd.Timestamp, joint: JointModel, lookback: int) -> JointModel | None:
        """The ``floor`` tool's model at ``day``: ``joint`` at the volatility and correlation
        of the last ``lookback`` days of joint returns up to ``day``
        (:func:`margin_engine.montecarlo.long_run_model`); None with fewer than 30 such days.
        """
        table = self._table(tuple(joint.underlyings), 1)
        returns = table.returns[: table.end(day)]
        returns = returns[np.isfinite(returns).all(axis=1)][-lookback:]
        if len(returns) < 30:
            return None
        return long_run_model(joint, returns)

    def first_day(self, underlyings: Sequence[str], need: int) -> pd.Timestamp | None:
        """The first day at which ``need`` joint usable days of ``underlyings`` (a return and
        a filtered vol for each, the day's own included) are known: the first day a history
        model can be margined (``need`` = the MPOR for VaR/ES, :data:`MIN_RESIDUAL_DAYS` for
        Monte Carlo); None if no day has them.
        """
        table = self._table(tuple(underlyings), 1)
        need = max(int(need), 1)
        if len(table.rows) < need:
            return None
        return pd.Timestamp(table.dates[table.rows[need - 1]])

    def day_seed(self, day: pd.Timestamp) -> int:
        """The seed of ``day``'s paths: one stream per (run seed, day), so a day's margin does
        not depend on which other days are replayed.
        """
        return int(
            np.random.SeedSequence([self.seed, pd.Timestamp(day).toordinal()]).generate_state(1)[0]
        )

    @functools.cached_property
    def _tables(self) -> dict[tuple[tuple[str, ...], int], _ScenarioTable]:
        return {}

    def _table(self, underlyings: tuple[str, ...], horizon: int) -> _ScenarioTable:
        table = self._tables.get((underlyings, horizon))
        if table is None:
            cols = list(underlyings)
            returns = self.returns[cols].sort_index()
            cond = self.cond_vol.reindex(index=returns.index, columns=cols)
            usable = (returns.notna().all(axis=1) & cond.gt(0).all(axis=1)).to_numpy()
            rows = np.flatnonzero(usable)
            # tomorrow's forecasts as an array, looked up by day: a pandas .loc per day cost
            # 0.7 ms, two thirds of a day's scenarios (kept as a frame where a day or an
            # underlying would be ambiguous or missing, so that pandas raises as before)
            where = self.vol_next.columns.get_indexer(cols)
            whole = (where >= 0).all() and self.vol_next.index.is_unique
            table = self._tables[(underlyings, horizon)] = _ScenarioTable(
                returns.index.to_numpy(),
                rows,
                returns.to_numpy(dtype=float),
                cond.to_numpy(dtype=float),
                self.iv_changes.reindex(index=returns.index, columns=cols)
                .fillna(0.0)
                .to_numpy(dtype=float),
                window_labels(returns.index[rows], horizon)
                if len(rows) >= horizon
                else np.array([], dtype=str),
                self.vol_next.to_numpy(dtype=float)[:, where] if whole else None,
                self.vol_next.index if whole else None,
            )
        return table


@dataclass(frozen=True)
class _ScenarioTable:
    """One set of underlyings' scenario inputs as arrays: ``rows`` are the usable days."""

    dates: np.ndarray
    rows: np.ndarray
    returns: np.ndarray
    cond_vol: np.ndarray
    iv: np.ndarray
    labels: np.ndarray
    forecasts: np.ndarray | None = None  # σ_{t+1|t} by forecast day (rows of forecast_days)
    forecast_days: pd.Index | None = None

    def end(self, day: DayLike) -> int:
        """The number of days up to and including ``day`` (what is known at its close)."""
        return int(np.searchsorted(self.dates, np.datetime64(pd.Timestamp(day)), side="right"))

    def usable(self, day: DayLike) -> int:
        """The number of usable rows up to and including ``day``."""
        return int(np.searchsorted(self.rows, self.end(day)))


def margin_rows(
    book: DayBook, model: str, params: ModelParams, var_inputs: VarInputs | None = None
) -> dict[str, np.ndarray]:
    """Per result row of ``book`` under ``model``: ``margin`` (initial), ``maintenance`` and, for
    the ES model, the unbuffered ``var_es`` (VaR at the ES level) and ``es`` an ES backtest
    judges (NaN for other models).
    """
    positions = book.positions
    nan = np.full(len(positions.layout[1]), np.nan)
    if MarginModel(str(model)).simulated:
        return _monte_carlo_rows(book, MarginModel(str(model)), params, var_inputs)
    model = model_named(str(model))
    if model.needs_history:
        if var_inputs is None:
            raise ValueError("VaR/ES margins need VarInputs (return history and filtered vols)")
        underlyings = sorted({u for _, u in positions.book.table.groups})
        v = params.var
        scenarios = var_inputs.scenarios(
            book.day, underlyings, v.mpor_days, v.lookback_days, v.method.value
        )
        result = margin(positions, model, params, scenarios=scenarios)
        es = model is MarginModel.ES
        return {
            "margin": result.initial_margin,
            "maintenance": result.maintenance_margin,
            "var_es": result.components["var_at_es_level"] if es else nan,
            "es": result.components["es"] if es else nan,
        }
    result = margin(positions, model, params)
    return {
        "margin": result.initial_margin,
        "maintenance": result.maintenance_margin,
        "var_es": nan,
        "es": nan,
    }


MARGIN_COLUMNS = ("margin", "maintenance", "var_es", "es")


def _monte_carlo_rows(
    book: DayBook, model: MarginModel, params: ModelParams, var_inputs: VarInputs | None
) -> dict[str, np.ndarray]:
    """Monte Carlo VaR/ES margins of ``book`` on its day's paths: filtered historical
    innovations (the residuals known at the day), Sobol-drawn, full revaluation.
    """
    if var_inputs is None:
        raise ValueError("Monte Carlo margins need VarInputs (return history and filtered vols)")
    positions = book.positions
    present, account_of_row, currency_of_row = positions.layout
    full_row = {
        (int(a), str(c)): k
        for k, (a, c) in enumerate(zip(account_of_row, currency_of_row, strict=True))
    }
    out = {name: np.full(len(account_of_row), np.nan) for name in MARGIN_COLUMNS}
    v = params.var
    measure = VarMeasure.ES if model is MarginModel.MC_ES else VarMeasure.VAR
    sim = Simulation(
        var_inputs.paths,
        v.mpor_days,
        var_inputs.day_seed(book.day),
        innovations=Innovations.FILTERED_HISTORICAL,
        sampling=Sampling.SOBOL,
    )
    # each account on the paths of its own underlyings only, so that its margin does not
    # depend on which other books are replayed beside it
    table = positions.book.table
    underlying_of = np.array([u for _, u in table.groups])[table.group[positions.instrument]]
    by_set: dict[tuple[str, ...], list[int]] = {}
    for a in range(positions.n_accounts):
        key = tuple(sorted(set(underlying_of[positions.account == a].tolist())))
        by_set.setdefault(key, []).append(a)
    for underlyings, accounts in by_set.items():
        keep = np.isin(positions.account, accounts)
        local = np.searchsorted(accounts, positions.account[keep])
        part = Positions(
            positions.book,
            tuple(positions.accounts[a] for a in accounts),
            local.astype(np.int64),
            positions.instrument[keep],
            positions.quantity[keep],
        )
        # the policy's anti-procyclicality tool, as `mwb margin` applies it (the buffer is
        # mc_margin's own)
        stressed = v.apc_stress_weight if v.apc is Apc.STRESSED_WEIGHT else None
        joint = var_inputs.joint_model(book.day, underlyings, v.lookback_days, stressed)
        floor = None
        if v.apc is Apc.FLOOR:
            floor = var_inputs.floor_model(book.day, joint, v.floor_lookback_days)
        result = mc_margin(part, joint, sim, params, measure=measure, floor=floor)
        rows = [
            full_row[(accounts[int(a)], str(c))]
            for a, c in zip(result.margin.account, result.margin.currency, strict=True)
        ]
        out["margin"][rows] = result.margin.initial_margin
        out["maintenance"][rows] = result.margin.maintenance_margin
        if measure is VarMeasure.ES:
            out["var_es"][rows] = result.margin.components["var_at_es_level"]
            out["es"][rows] = result.es
    return out


def realised_losses(books: Sequence[DayBook]) -> pd.DataFrame:
    """One row per (day, portfolio, currency) of ``books``: the realised ``loss`` over the MPOR
    (close to close) and ``loss_path`` (the worst OHLC point), positive for a loss, with the
    day's ``fx_usd`` and ``notional_usd``.
    """
    return pd.DataFrame(
        {
            "date": np.concatenate([np.full(len(b.portfolio), b.day) for b in books]),
            "portfolio": np.concatenate([b.portfolio for b in books]),
            "currency": np.concatenate([b.currency for b in books]),
            "loss": -np.concatenate([b.pnl for b in books]),
            "fx_usd": np.concatenate([b.fx_usd for b in books]),
            "notional_usd": np.concatenate([b.notional_usd for b in books]),
            "loss_path": -np.concatenate(
                [b.pnl if b.pnl_path is None else b.pnl_path for b in books]
            ),
        }
    )


def replay_books(
    books: Sequence[DayBook],
    model: str,
    params_for: Callable[[pd.Timestamp], ModelParams],
    var_inputs: VarInputs | None = None,
) -> pd.DataFrame:
    """One row per (day, portfolio, currency): margin, realised loss and breach under ``model``.

    Columns: ``date, portfolio, currency, model, margin, maintenance, var_es, es, loss,
    loss_path, fx_usd, notional_usd, breach, breach_path``; losses are positive for a loss
    (``loss`` close to close, ``loss_path`` the worst OHLC point); a breach is ``loss > margin``.
    """
    if not books:
        return empty_rows()
    parts: dict[str, list] = {k: [] for k in MARGIN_COLUMNS}
    for book in books:
        rows = margin_rows(book, model, params_for(book.day), var_inputs)
        for k in MARGIN_COLUMNS:
            parts[k].append(rows[k])
    out = pd.DataFrame(
        {
            "date": np.concatenate(
                [np.full(len(b.portfolio), b.day.to_datetime64()) for b in books]
            ),
            "portfolio": np.concatenate([b.portfolio for b in books]),
            "currency": np.concatenate([b.currency for b in books]),
            "model": model,
            **{k: np.concatenate(parts[k]) for k in MARGIN_COLUMNS},
            "loss": -np.concatenate([b.pnl for b in books]),
            "loss_path": -np.concatenate(
                [b.pnl if b.pnl_path is None else b.pnl_path for b in books]
            ),
            "fx_usd": np.concatenate([b.fx_usd for b in books]),
            "notional_usd": np.concatenate([b.notional_usd for b in books]),
        }
    )
    out["breach"] = out["loss"] > out["margin"]
    out["breach_path"] = out["loss_path"] > out["margin"]
    return out


def empty_rows() -> pd.DataFrame:
    """A replay frame with the replay's columns and no rows."""
    return pd.DataFrame(
        {
            c: pd.Series(dtype=t)
            for c, t in (
                ("date", "datetime64[ns]"),
                ("portfolio", object),
                ("currency", object),
                ("model", object),
                ("margin", float),
                ("maintenance", float),
                ("var_es", float),
                ("es", float),
                ("loss", float),
                ("loss_path", float),
                ("fx_usd", float),
                ("notional_usd", float),
                ("breach", bool),
                ("breach_path", bool),
            )
        }
    )


def replay_collateral(
    history: MarketHistory,
    accounts: Sequence[Portfolio],
    days: Sequence[pd.Timestamp],
    mpor: int,
    params_for: Callable[[pd.Timestamp], ModelParams],
) -> pd.DataFrame:
    """Haircut backtest of collateral-only accounts: margin = haircut of the holding's USD value
    (tiered), loss = its fall in value over the MPOR; rows as :func:`replay_books` (USD).
    """
    days = [d for d in days if d + pd.Timedelta(days=mpor) in history.days]
    if not days:
        return empty_rows()
    index = pd.DatetimeIndex(days)
    later = index + pd.Timedelta(days=mpor)
    params = [params_for(d) for d in days]
    frames = []
    for account in accounts:
        if account.kind != "collateral":
            continue
        (asset,) = account.underlying_list
        if asset not in history.close.columns:
            continue  # no prices for it: nothing to replay (the run's notes say so)
        spot = history.close[asset].reindex(index).to_numpy()
        spot_later = history.close[asset].reindex(later).to_numpy()
        ok = np.isfinite(spot) & np.isfinite(spot_later) & (spot > 0)
        if not ok.any():
            continue
        quantity = np.array(
            [
                account.legs(history.day_market(d))[0][1] if good else np.nan
                for d, good in zip(days, ok, strict=True)
            ]
        )
        value = quantity * spot
        # haircuts by day: one vectorised call per distinct collateral parameter block
        haircut = np.full(len(days), np.nan)
        blocks: dict[int, list[int]] = {}
        for k, p in enumerate(params):
            blocks.setdefault(id(p.collateral_for(asset)), []).append(k)
        for indices in blocks.values():
            members = np.array(indices)
            live = members[ok[members]]
            if live.size:
                block = params[live[0]].collateral_for(asset)
                haircut[live] = value[live] - haircut_value(value[live], block)
        loss = value - quantity * spot_later
        # the lowest low within the MPOR (days without a close add nothing)
        lows = np.column_stack(
            [
                history.lows[asset].reindex(index + pd.Timedelta(days=k)).to_numpy()
                for k in range(1, mpor + 1)
            ]
        )
        lowest = np.fmin(np.where(np.isfinite(lows), lows, np.inf).min(axis=1), spot_later)
        loss_path = np.maximum(value - quantity * lowest, loss)
        frames.append(
            pd.DataFrame(
                {
                    "date": index[ok],
                    "portfolio": account.name,
                    "currency": "USD",
                    "model": HAIRCUT_MODEL,
                    "margin": haircut[ok],
                    "maintenance": haircut[ok],
                    "var_es": np.nan,
                    "es": np.nan,
                    "loss": loss[ok],
                    "loss_path": loss_path[ok],
                    "fx_usd": 1.0,
                    "notional_usd": value[ok],
                }
            )
        )
    if not frames:
        return empty_rows()
    out = pd.concat(frames, ignore_index=True)
    out["breach"] = out["loss"] > out["margin"]
    out["breach_path"] = out["loss_path"] > out["margin"]
    return out


def trading_days(
    history: MarketHistory, start: date | None, end: date | None, mpor: int
) -> list[pd.Timestamp]:
    """Days in [start, end] whose MPOR ends inside the history."""
    days = history.days
    if start is not None:
        days = days[days >= pd.Timestamp(start)]
    if end is not None:
        days = days[days <= pd.Timestamp(end)]
    last = history.days.max() - pd.Timedelta(days=mpor)
    return [d for d in days if d <= last]
