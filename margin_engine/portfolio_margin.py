"""Deribit-style portfolio margin (segregated: per settlement currency).

Per (account, settlement currency, underlying):

* **standard table** — 9 price moves evenly spaced over ±``price_range`` (0 included) × 3 vol
  scenarios (up, unchanged, down), in that order (scenario ``3p + v``);
* vol shocks per option by days to expiry ``DTE`` (floored at one day), with
  ``p = short_term_vega_power`` when DTE < 30 else ``long_term_vega_power``:
  :math:`\\sigma_{up} = \\max(\\sigma(1 + r_{up}(30/DTE)^p),\\ \\sigma_{min\\,up})`,
  :math:`\\sigma_{down} = \\sigma(1 - r_{down}(30/DTE)^p)` (floored at 1 % vol);
* **extended table** — moves −66 %, −33 %, +50 %, +100 %, +200 %, +300 %, +400 %, +500 % under
  vol up, P&L scaled by :math:`f_{ext}\\cdot\\frac{r}{|m|}\\cdot\\frac{1+m}{1+\\mathrm{sign}(m)\\,r}` and
  then shrunk towards zero by the extended dampener (USD, converted at the index for coin
  currencies). Deribit does not publish the dampener's formula; this reading keeps every
  extended loss within the dampener at zero, as Deribit's published risk vectors show;
* **worst case** = the largest loss over the 35 scenarios (0 if none loses);
* **roll shock** = :math:`\\sum_{expiries}\\max(m_{min}, e^{a T} - 1)\\,|\\Delta_{expiry}|` with
  a = ``annualised_move_risk``, perpetuals at T = 0 (so at ``min_annualised_move``);
* **delta shock** — above the liquidity threshold, on the account's net delta Δ (coin):
  rate :math:`\\min(\\delta_{max},\\ m_{inc}\\max(0, |\\Delta| - \\text{threshold}/S))`, shock =
  rate·|Δ| (our reading of Deribit's ``m_inc``: a margin increment per coin beyond the threshold,
  continuous at it).

risk matrix margin = worst case + roll shock + delta shock, summed over the currency's
underlyings; IM = risk matrix margin; MM = ``mm_factor`` × IM.

**Product groups** (an option, OCC TIMS's class-group offsets): the underlyings of a product
group settled in one currency are margined together, scenario by scenario, a class group's
gain offsetting another's loss at the group's ``offset`` percentage (:func:`offset_worst`).
An offset never raises margin, and at 100 % the worst case is that of the netted books. Amounts are in the settlement
currency (coin for inverse books, USDC for linear ones).

Reproduces Deribit's published ``private/pme/simulate`` examples (see the tests).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from functools import partial

import numba
import numpy as np

from margin_engine.book import (
    DEEPEST_MOVE,
    STABLE,
    MarginResult,
    Positions,
    ValuedBook,
    worst_by_row,
)
from margin_engine.instruments import Kind
from margin_engine.kernels import Extra, scan_rows
from margin_engine.params import ModelParams, PortfolioMarginParams

PRICE_BUCKETS = 9
VOL_SCENARIOS = ("up", "unchanged", "down")
EXTENDED_MOVES = np.array([-0.66, -0.33, 0.50, 1.00, 2.00, 3.00, 4.00, 5.00])
N_STANDARD = PRICE_BUCKETS * len(VOL_SCENARIOS)
N_SCENARIOS = N_STANDARD + len(EXTENDED_MOVES)
SCENARIO_RANGES = (0, N_STANDARD, N_SCENARIOS)  # the standard and extended tables' worst cases
MIN_DTE_DAYS = 1.0
MIN_VOL = 0.01


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)  # shared by every call with the same parameters
    return array


ROLL_ONLY = frozenset({Extra.ROLL})  # what PM reads of the scan besides the sums


# a backtest margins thousands of days under a handful of parameter values: the tables are
# built once per value (read-only arrays)
@functools.lru_cache(maxsize=1024)
def scenario_moves(price_range: float) -> np.ndarray:
    """The 35 price moves: 9 × 3 standard then 8 extended (down moves stop at
    :data:`~margin_engine.book.DEEPEST_MOVE`, which only a range above 0.99 reaches).
    """
    standard = np.repeat(np.linspace(-price_range, price_range, PRICE_BUCKETS), len(VOL_SCENARIOS))
    return _frozen(np.maximum(np.concatenate([standard, EXTENDED_MOVES]), DEEPEST_MOVE))


@functools.lru_cache(maxsize=1024)
def extended_scale(price_range: float, factor: float) -> np.ndarray:
    """Multipliers of the extended price moves for ``price_range`` and ``factor``."""
    m = EXTENDED_MOVES
    # 1 - r vanishes at a range of 1: held at 1 + DEEPEST_MOVE, as the standard moves are
    denominator = np.maximum(1 + np.sign(m) * price_range, 1 + DEEPEST_MOVE)
    return _frozen(factor * (price_range / np.abs(m)) * (1 + m) / denominator)


def vol_shocks(
    iv: np.ndarray, years: np.ndarray, p: PortfolioMarginParams
) -> tuple[np.ndarray, np.ndarray]:
    """Vol-up and vol-down IVs of options with implied vol ``iv`` and ``years`` to expiry."""
    dte = np.maximum(np.asarray(years) * 365.0, MIN_DTE_DAYS)
    power = np.where(dte < 30, p.short_term_vega_power, p.long_term_vega_power)
    tenor = (30.0 / dte) ** power
    up = np.maximum(iv * (1 + p.vol_range_up * tenor), p.min_vol_for_shock_up)
    down = np.maximum(iv * (1 - p.vol_range_down * tenor), MIN_VOL)
    return up, down


def risk_arrays(positions: Positions, params: ModelParams) -> np.ndarray:
    """P&L per unit quantity of every instrument in its 35 scenarios (n × 35), extended
    columns already scaled (the dampener acts on account totals); read-only.

    Each underlying's block is computed once per book and that underlying's parameters, so a
    change to one underlying's parameters revalues only its instruments.
    """
    book = positions.book
    table = book.table
    underlying_of = np.array([u for _, u in table.groups], dtype=object)[table.group]
    arrays = np.empty((len(table), N_SCENARIOS))
    for underlying in dict.fromkeys(u for _, u in table.groups):
        rows = np.flatnonzero(underlying_of == underlying)
        p = params.pm_for(underlying)
        arrays[rows] = book.derived(("deribit-pm", underlying, p), partial(_block, book, rows, p))
    arrays.setflags(write=False)
    return arrays


def _block(book: ValuedBook, rows: np.ndarray, p: PortfolioMarginParams) -> np.ndarray:
    """The risk arrays of the instruments ``rows`` (one underlying's) under ``p``."""
    table = book.table
    k = len(rows)
    moves = np.broadcast_to(scenario_moves(p.price_range), (k, N_SCENARIOS))
    vols = np.tile(book.vol[rows, None], (1, N_SCENARIOS))
    options = table.kind[rows] == Kind.OPTION
    if options.any():
        iv = book.vol[rows][options]
        up, down = vol_shocks(iv, table.years[rows][options], p)
        per_vol = np.stack([up, iv, down], axis=1)  # (k, 3)
        vols[options, :N_STANDARD] = np.tile(per_vol, (1, PRICE_BUCKETS))
        vols[options, N_STANDARD:] = up[:, None]
    pnl = book.scenario_pnl(moves, vols, rows)
    pnl[:, N_STANDARD:] *= extended_scale(p.price_range, p.extended_table_factor)
    return pnl


def scenario_catalog(params: ModelParams, groups: Sequence[tuple[str, str]]) -> tuple[dict, ...]:
    """One description per (group, scenario), in group-major order (shared: read only)."""
    return _catalog(
        tuple((underlying, params.pm_for(underlying).price_range) for _, underlying in groups)
    )


@functools.lru_cache(maxsize=1024)
def _catalog(ranges: tuple[tuple[str, float], ...]) -> tuple[dict, ...]:
    catalog = []
    for underlying, price_range in ranges:
        catalog += [
            {
                "underlying": underlying,
                "scenario": j,
                "table": "standard" if j < N_STANDARD else "extended",
                "price_move": float(move),
                "vol": VOL_SCENARIOS[j % 3] if j < N_STANDARD else "up",
            }
            for j, move in enumerate(scenario_moves(price_range))
        ]
    return tuple(catalog)


def _roll_weights(book: ValuedBook, currency_params: tuple, to_quote: np.ndarray) -> np.ndarray:
    """Each expiry bucket's roll-shock rate, in its group's settlement currency."""
    table = book.table
    rates = np.array(
        [
            max(
                currency_params[g].min_annualised_move,
                np.expm1(currency_params[g].annualised_move_risk * max(t, 0.0)),
            )
            for (g, _), t in zip(table.buckets, table.bucket_years, strict=True)
        ]
    )
    bucket_group = np.array([g for g, _ in table.buckets], dtype=np.int64)
    return rates * to_quote[bucket_group]


def offset_worst(pnl: np.ndarray, offset: float) -> np.ndarray:
    """TIMS's class-group offset: the worst loss over scenarios of class P&L ``pnl``
    (rows × classes × scenarios), a class's gain counting at ``offset`` of its value:

    .. math::

        W_r = \\max\\Big(0,\\ \\max_s -\\sum_c \\big(\\min(P_{rcs}, 0)
              + f \\max(P_{rcs}, 0)\\big)\\Big).

    With :math:`f = 0` no class offsets another (still no more than the classes' own worst
    cases summed); with :math:`f = 1` it is the worst case of the summed P&L.
    """
    combined = np.minimum(pnl, 0.0).sum(axis=1) + offset * np.maximum(pnl, 0.0).sum(axis=1)
    return np.maximum(-combined.min(axis=1), 0.0)


def _product_groups(
    positions: Positions,
    arrays: np.ndarray,
    worst: np.ndarray,
    damp: np.ndarray,
    params: ModelParams,
) -> np.ndarray:
    """``worst`` (accounts × groups) with each product group's classes margined together
    where an account holds two or more of them: the group's TIMS worst case on its first
    class, zero on the others. The extended table's P&L is dampened per class first (a
    class's loss within the dampener is none), so combining never costs more than apart.
    """
    table = positions.book.table
    held = (np.diff(positions.group_matrix.indptr) > 0).reshape(positions.n_accounts, -1)
    worst = worst.copy()
    for group in params.product_groups.values():
        by_currency: dict[str, list[int]] = {}
        for g, (currency, underlying) in enumerate(table.groups):
            if underlying in group.underlyings:
                by_currency.setdefault(currency, []).append(g)
        for classes in by_currency.values():
            if len(classes) < 2:
                continue
            accounts = np.flatnonzero(held[:, classes].sum(axis=1) >= 2)
            if not len(accounts):
                continue
            rows = (accounts[:, None] * positions.n_groups + np.array(classes)[None, :]).ravel()
            pnl = np.asarray(positions.group_matrix[rows] @ arrays).reshape(
                len(accounts), len(classes), -1
            )
            standard = pnl[:, :, :N_STANDARD]
            extended = pnl[:, :, N_STANDARD:]
            cut = damp[np.array(classes)][None, :, None]
            extended = np.where(extended < 0, np.minimum(extended + cut, 0.0), extended)
            combined = np.maximum(
                offset_worst(standard, group.offset), offset_worst(extended, group.offset)
            )
            worst[accounts, classes[0]] = combined
            worst[np.ix_(accounts, np.array(classes[1:], dtype=np.int64))] = 0.0
    return worst


@numba.njit(cache=True, nogil=True, inline="always")
def _group_row(
    r, g, scan_index, scan_pnl, net_delta, damp, threshold, increment, ceiling, to_quote
):
    # numpy's own minimum and maximum, so that a NaN goes where the vectorised formulas took it
    standard = scan_pnl[r, 0]
    extended = np.minimum(scan_pnl[r, 1] + damp[g], 0.0)
    if extended < standard:
        index = N_STANDARD + scan_index[r, 1]
        worst = np.maximum(-extended, 0.0)
    else:
        index = scan_index[r, 0]
        worst = np.maximum(-standard, 0.0)
    size = np.abs(net_delta[r])
    rate = np.minimum(ceiling[g], increment[g] * np.maximum(size - threshold[g], 0.0))
    return worst, index, rate * size * to_quote[g]


@numba.njit(cache=True, nogil=True)
def _group_rows(
    scan_index,
    scan_pnl,
    net_delta,
    n_groups,
    damp,
    threshold,
    increment,
    ceiling,
    to_quote,
    worst,
    worst_index,
    delta_shock,
):  # pragma: no cover - compiled (the model's tests run it)
    for first in range(0, len(net_delta), n_groups):
        for g in range(n_groups):
            r = first + g
            worst[r], worst_index[r], delta_shock[r] = _group_row(
                r,
                g,
                scan_index,
                scan_pnl,
                net_delta,
                damp,
                threshold,
                increment,
                ceiling,
                to_quote,
            )


@numba.njit(cache=True, nogil=True)
def _result_rows(
    row_group,
    group_of_row,
    n_scenarios,
    scan_index,
    scan_pnl,
    net_delta,
    roll,
    value,
    damp,
    threshold,
    increment,
    ceiling,
    to_quote,
    worst_c,
    roll_c,
    delta_c,
    equity,
    risk_matrix,
    scenario,
):  # pragma: no cover - compiled (the model's tests run it)
    # each result row from its (account, group) row of the scan: nothing in between is kept
    # (each array materialised costs its page faults: on 100,000 accounts, as much as the
    # arithmetic)
    for k in range(len(row_group)):
        r, g = row_group[k], group_of_row[k]
        worst, index, delta_shock = _group_row(
            r, g, scan_index, scan_pnl, net_delta, damp, threshold, increment, ceiling, to_quote
        )
        worst_c[k] = worst
        roll_c[k] = roll[r]
        delta_c[k] = delta_shock
        risk_matrix[k] = worst + roll[r] + delta_shock
        equity[k] = value[r]
        scenario[k] = g * n_scenarios + index


def portfolio_margin(positions: Positions, params: ModelParams | None = None) -> MarginResult:
    """Deribit-style PM for every account and settlement currency (see the module doc)."""
    params = params or ModelParams()
    book, table = positions.book, positions.book.table
    n_groups, accounts = positions.n_groups, positions.n_accounts
    group_currency = [c for c, _ in table.groups]
    group_underlying = [u for _, u in table.groups]
    index = book.group_index_price
    # one coin of the underlying in the settlement currency (1 in a coin-settled book)
    to_quote = np.array([index[g] if c in STABLE else 1.0 for g, c in enumerate(group_currency)])

    # roll shock weights: each expiry bucket's rate, in the settlement currency
    currency_params = tuple(params.currency_for(c) for c in group_currency)
    weights = book.derived(
        ("roll-weights", currency_params), lambda: _roll_weights(book, currency_params, to_quote)
    )
    arrays = risk_arrays(positions, params)
    scan = scan_rows(positions, arrays, SCENARIO_RANGES, weights, ROLL_ONLY)
    # Extended losses shrink by the dampener (USD; in coin for a coin-settled book); gains
    # cannot set the worst case. Shrinking is monotone, so the extended table's worst
    # scenario is its raw worst.
    damp = np.array(
        [
            params.currency_for(c).extended_dampener / (1.0 if c in STABLE else index[g])
            for g, c in enumerate(group_currency)
        ]
    )
    pm = [params.pm_for(u) for u in group_underlying]
    threshold = np.array([p.delta_total_liq_shock_threshold / index[g] for g, p in enumerate(pm)])
    increment = np.array([p.m_inc for p in pm])
    ceiling = np.array([p.max_delta_shock for p in pm])
    # roll shock: |net delta| per expiry bucket at each bucket's rate, summed per group
    roll = np.ascontiguousarray(scan.bucket_abs)
    _, account_of_row, currency_of_row = positions.layout
    row_group, group_of_row = positions.row_group, positions.group_of_row
    if row_group is not None and group_of_row is not None and not params.product_groups:
        # one group per currency (the usual book): each result row in one compiled pass
        n_out = len(row_group)
        worst_c, roll_c, delta_c, equity, risk_matrix = (np.empty(n_out) for _ in range(5))
        scenario_of_row = np.empty(n_out, np.int64)
        _result_rows(
            row_group, group_of_row, N_SCENARIOS, scan.worst_index, scan.worst_pnl,
            scan.net_delta, roll, scan.value, damp, threshold, increment, ceiling, to_quote,
            worst_c, roll_c, delta_c, equity, risk_matrix, scenario_of_row,
        )  # fmt: skip
        loss_of_row = worst_c
    else:
        worst = np.empty((accounts, n_groups))
        worst_index = np.empty((accounts, n_groups), np.int64)
        delta_shock = np.empty((accounts, n_groups))
        _group_rows(
            scan.worst_index, scan.worst_pnl, scan.net_delta, n_groups, damp, threshold,
            increment, ceiling, to_quote, worst.reshape(-1), worst_index.reshape(-1),
            delta_shock.reshape(-1),
        )  # fmt: skip
        if params.product_groups:
            worst = _product_groups(positions, arrays, worst, damp, params)
        worst_c = positions.to_currency(worst)
        roll_c = positions.to_currency(roll.reshape(accounts, n_groups))
        delta_c = positions.to_currency(delta_shock)
        equity = positions.to_currency(scan.value.reshape(accounts, n_groups))
        risk_matrix = worst_c + roll_c + delta_c
        scenario_of_row, loss_of_row = worst_by_row(positions, worst, worst_index, N_SCENARIOS)
    return MarginResult(
        model="deribit-pm",
        account=account_of_row,
        accounts=positions.accounts,
        currency=currency_of_row,
        initial_margin=risk_matrix,
        maintenance_margin=params.mm_factor * risk_matrix,
        equity=equity,
        components={"worst_case": worst_c, "roll_shock": roll_c, "delta_shock": delta_c},
        worst_scenario=scenario_of_row,
        worst_loss=loss_of_row,
        scenario_catalog=scenario_catalog(params, table.groups),
        errors=positions.errors,
    )
