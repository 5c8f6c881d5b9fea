"""Replaying history through the margin models (design §6): the pure core of a backtest.

On each day ``t``:

1. every book of the library is struck against the close of ``t`` (:mod:`.portfolios`);
2. the market snapshot of ``t`` (index = close, options at the day's 30-day IV through the
   parametric smile of :mod:`.market`, forwards = index) values them;
3. each model computes the margin per (book, settlement currency) with the parameters known on
   ``t`` (``params_for(t)``, which a caller may vary by day: the set in force, or calibrated
   values);
4. the *realised* P&L of holding the same positions over the MPOR is the full revaluation at the
   close of ``t + h`` (spot, the IV of ``t + h`` through the same smile, ``h`` days less to
   expiry): a breach is ``loss > margin``, strictly.

Losses and margins are in the settlement currency of each row (coin for inverse books, USDC for
linear ones); ``fx_usd`` converts both. Collateral-only accounts are replayed separately: the
margin is the haircut (USD) and the loss the fall in value over the MPOR.

Nothing here touches a database or a clock; the caller caches what it wants.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta

import numpy as np
import pandas as pd

from margin_engine.book import STABLE, Positions, value_book
from margin_engine.collateral import haircut_value
from margin_engine.instruments import Kind, parse_instrument
from margin_engine.market import MarketSnapshot
from margin_engine.params import CollateralParams, HaircutTier, ModelParams, VarMeasure
from margin_engine.portfolio_margin import portfolio_margin
from margin_engine.portfolios import DayMarket, Portfolio
from margin_engine.span import span_margin
from margin_engine.standard import standard_margin
from margin_engine.var import historical_scenarios, var_margin

BOOK_MODELS = ("standard", "span", "deribit-pm", "var", "es")
HAIRCUT_MODEL = "haircut"


def end_of_day(day) -> datetime:
    return datetime.combine(pd.Timestamp(day).date() + timedelta(days=1), time(0), tzinfo=UTC)


@dataclass(frozen=True)
class MarketHistory:
    """Daily closes and 30-day ATM IVs (dates × underlyings; NaN where unknown)."""

    close: pd.DataFrame
    iv: pd.DataFrame

    def __post_init__(self) -> None:
        if (
            not isinstance(self.close.index, pd.DatetimeIndex)
            or not self.close.index.is_monotonic_increasing
        ):
            raise ValueError("MarketHistory.close needs an increasing DatetimeIndex of days")

    @property
    def days(self) -> pd.DatetimeIndex:
        return self.close.index

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
        return self._markets[pd.Timestamp(day)]

    def snapshot(self, day: pd.Timestamp) -> MarketSnapshot:
        m = self.day_market(day)
        return MarketSnapshot(end_of_day(day), m.spot, {}, {}, m.iv, source="history")


@dataclass(frozen=True)
class DayBook:
    """The books of one day: positions at ``day`` and each result row's realised P&L over the
    MPOR (settlement currency; negative = loss), USD rate and gross notional (USD)."""

    day: pd.Timestamp
    positions: Positions
    portfolio: np.ndarray
    currency: np.ndarray
    pnl: np.ndarray
    fx_usd: np.ndarray
    notional_usd: np.ndarray


def _unit_pnl(positions: Positions, later: MarketSnapshot) -> np.ndarray:
    """P&L per unit of each instrument from the book's market to ``later`` (full revaluation)."""
    table = positions.book.table
    instruments = [parse_instrument(n) for n in table.names]
    after, errors = value_book(instruments, later)
    if errors:
        raise ValueError(f"cannot revalue at {later.as_of:%Y-%m-%d}: {next(iter(errors.values()))}")
    pnl = after.value - positions.book.value
    futures = np.isin(table.kind, (Kind.PERPETUAL, Kind.FUTURE))
    inv, lin = futures & table.inverse, futures & ~table.inverse
    pnl[inv] = 1.0 / positions.book.forward[inv] - 1.0 / after.forward[inv]
    pnl[lin] = after.forward[lin] - positions.book.forward[lin]
    return pnl


def _unit_notional_usd(positions: Positions) -> np.ndarray:
    table, book = positions.book.table, positions.book
    futures = np.isin(table.kind, (Kind.PERPETUAL, Kind.FUTURE))
    return np.where(futures & table.inverse, 1.0, book.spot)


def _positions(
    chosen: Sequence[Portfolio], market: DayMarket, snapshot: MarketSnapshot
) -> Positions:
    """The books' legs as :class:`Positions` (what :func:`build_positions` gives for a
    positions file, without its per-row validation: the library's legs are valid by
    construction, and a leg the market cannot value is an error here)."""
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
    ``realised=False`` skips the revaluation at ``day + mpor`` (P&L left NaN) when only
    margins are wanted."""
    later_day = day + pd.Timedelta(days=mpor)
    if later_day not in history.days:
        return None
    market, later = history.day_market(day), history.day_market(later_day)
    chosen = [p for p in books if p.kind == "book" and p.available(market) and p.available(later)]
    if not chosen:
        return None
    positions = _positions(chosen, market, history.snapshot(day))
    if realised:
        unit = _unit_pnl(positions, history.snapshot(later_day))
        pnl = positions.per_position_to_currency(positions.quantity * unit[positions.instrument])
    else:
        pnl = np.full(len(positions.layout[1]), np.nan)
    notional = positions.per_position_to_currency(
        np.abs(positions.quantity) * _unit_notional_usd(positions)[positions.instrument]
    )
    _, account_of_row, currency_of_row = positions.layout
    fx = np.array([1.0 if c in STABLE else market.spot[c] for c in currency_of_row])
    portfolio = np.asarray(positions.accounts, dtype=object)[account_of_row]
    return DayBook(day, positions, portfolio, currency_of_row, pnl, fx, notional)


# --------------------------------------------------------------------------- parameters


def override(params: ModelParams, changes: Mapping[str, float]) -> ModelParams:
    """``params`` with parameter-set paths replaced: ``underlyings.X.pm.price_range``,
    ``underlyings.X.span.price_scan_range`` and ``collateral.X.haircut`` (every tier moves with
    the base haircut). Calibrated backtests change these daily; validation is the dataclasses'."""
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
    (origin × underlyings)."""

    returns: pd.DataFrame
    iv_changes: pd.DataFrame
    cond_vol: pd.DataFrame
    vol_next: pd.DataFrame

    def scenarios(
        self,
        day: pd.Timestamp,
        underlyings: Sequence[str],
        horizon: int,
        lookback: int,
        method: str,
    ):
        cols = list(underlyings)
        past = self.returns.loc[:day, cols]
        # a day enters the scenarios once every underlying has a return and a filtered vol for it
        past = past[
            past.notna().all(axis=1)
            & self.cond_vol.reindex(index=past.index, columns=cols).gt(0).all(axis=1)
        ]
        return historical_scenarios(
            past,
            horizon,
            lookback,
            method=method,
            cond_vol=self.cond_vol.loc[:day, cols],
            vol_now=self.vol_next.loc[day, cols],
            iv_log_changes=self.iv_changes.reindex(columns=cols),
        )


def margin_rows(
    book: DayBook, model: str, params: ModelParams, var_inputs: VarInputs | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(initial, maintenance) margin per result row of ``book`` under ``model``."""
    positions = book.positions
    if model in ("var", "es"):
        if var_inputs is None:
            raise ValueError("VaR/ES margins need VarInputs (return history and filtered vols)")
        underlyings = sorted({u for _, u in positions.book.table.groups})
        v = params.var
        scenarios = var_inputs.scenarios(
            book.day, underlyings, v.mpor_days, v.lookback_days, v.method.value
        )
        result = var_margin(positions, scenarios, params, measure=VarMeasure(model))
    else:
        result = _margin(positions, model, params)
    return result.initial_margin, result.maintenance_margin


def replay_books(
    books: Sequence[DayBook],
    model: str,
    params_for: Callable[[pd.Timestamp], ModelParams],
    var_inputs: VarInputs | None = None,
) -> pd.DataFrame:
    """One row per (day, portfolio, currency): margin, realised loss and breach under ``model``.

    Columns: ``date, portfolio, currency, model, margin, maintenance, loss, breach, fx_usd,
    notional_usd``; ``loss`` is positive for a loss; ``breach`` is ``loss > margin``.
    """
    if not books:
        return empty_rows()
    parts: dict[str, list] = {k: [] for k in ("margin", "maintenance")}
    for book in books:
        im, mm = margin_rows(book, model, params_for(book.day), var_inputs)
        parts["margin"].append(im)
        parts["maintenance"].append(mm)
    out = pd.DataFrame(
        {
            "date": np.concatenate(
                [np.full(len(b.portfolio), b.day.to_datetime64()) for b in books]
            ),
            "portfolio": np.concatenate([b.portfolio for b in books]),
            "currency": np.concatenate([b.currency for b in books]),
            "model": model,
            "margin": np.concatenate(parts["margin"]),
            "maintenance": np.concatenate(parts["maintenance"]),
            "loss": -np.concatenate([b.pnl for b in books]),
            "fx_usd": np.concatenate([b.fx_usd for b in books]),
            "notional_usd": np.concatenate([b.notional_usd for b in books]),
        }
    )
    out["breach"] = out["loss"] > out["margin"]
    return out


def _margin(positions: Positions, model: str, params: ModelParams):
    if model == "standard":
        return standard_margin(positions, params)
    if model == "span":
        return span_margin(positions, params)
    if model == "deribit-pm":
        return portfolio_margin(positions, params)
    raise ValueError(f"unknown model {model!r}: choose from {', '.join(BOOK_MODELS)}")


def empty_rows() -> pd.DataFrame:
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
                ("loss", float),
                ("fx_usd", float),
                ("notional_usd", float),
                ("breach", bool),
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
    (tiered), loss = its fall in value over the MPOR; rows as :func:`replay_books` (USD)."""
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
        for members in blocks.values():
            members = np.array(members)
            live = members[ok[members]]
            if live.size:
                block = params[live[0]].collateral_for(asset)
                haircut[live] = value[live] - haircut_value(value[live], block)
        loss = value - quantity * spot_later
        frames.append(
            pd.DataFrame(
                {
                    "date": index[ok],
                    "portfolio": account.name,
                    "currency": "USD",
                    "model": HAIRCUT_MODEL,
                    "margin": haircut[ok],
                    "maintenance": haircut[ok],
                    "loss": loss[ok],
                    "fx_usd": 1.0,
                    "notional_usd": value[ok],
                }
            )
        )
    if not frames:
        return empty_rows()
    out = pd.concat(frames, ignore_index=True)
    out["breach"] = out["loss"] > out["margin"]
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
