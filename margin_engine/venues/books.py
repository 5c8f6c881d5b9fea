"""Venue models over a whole book of accounts, in the shape every margin model returns.

A book's positions are Deribit instruments (quantities in contract units: options and spot in
coin, futures and perpetuals by their coin delta). Another venue margins the same *exposures*:

- **derive-pmrm2** — one Derive PMRM 2 portfolio per (account, underlying), as Derive keeps one
  risk manager per underlying, margined in USDC: options become Derive's USDC-settled options
  of the same strike, expiry and amount (marked at the snapshot's forward and IV, rate 0);
  perpetuals and dated futures become the manager's perpetual position (their coin delta;
  Derive lists no dated futures); long spot is risk-cancelling collateral (no haircut: none is
  published for the base asset), short spot a short perpetual. Oracles are taken as fully
  confident and the stablecoin at par, so those contingencies do not arise. An account's row
  is the sum of its managers' requirements.
- **delta-only** — :math:`|\\Delta| \\times S \\times r` per (account, underlying) with the net
  coin delta :math:`\\Delta` of every position, the index price :math:`S` and the set's
  linear margin rate (``standard.future_initial``; ``future_maintenance`` for maintenance): the
  linear model early DeFi venues used. It is blind to gamma and vega by construction, which is
  what a report shows it for.

:func:`derive_portfolios` builds the scalar :class:`~margin_engine.venues.derive.Portfolio`
objects of the same accounts: :func:`derive_margin` must agree with
:func:`~margin_engine.venues.derive.pmrm2_margin` on them (the reference).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numba
import numpy as np
from scipy import sparse

from margin_engine.book import STABLE, MarginResult, Positions
from margin_engine.instruments import InstrumentTable, Kind
from margin_engine.params import ModelParams
from margin_engine.pricing import black76_price
from margin_engine.venues.derive import (
    PUBLISHED,
    SETTLEMENT_SECONDS,
    YEAR_SECONDS,
    Collateral,
    DeriveParams,
    Expiry,
    Option,
    Portfolio,
    VolShock,
    option_values,
    shocked_vols,
    skew_multipliers,
    static_discounts,
    vol_multipliers,
)
from margin_engine.venues.hyperliquid import GENERIC_TABLE, MarginTable, published_tables
from margin_engine.venues.hyperliquid import initial_margin as hl_initial
from margin_engine.venues.hyperliquid import maintenance_margin as hl_maintenance

__all__ = ["delta_only_margin", "derive_margin", "derive_portfolios", "hyperliquid_margin"]

SETTLEMENT = "USDC"


def _underlyings(positions: Positions) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """The underlyings, each instrument's underlying index and each underlying's index price."""
    table, book = positions.book.table, positions.book
    names = tuple(sorted({u for _, u in table.groups}))
    of_group = np.array([names.index(u) for _, u in table.groups], dtype=np.int64)
    price = np.empty(len(names))
    price[of_group] = book.group_index_price
    return names, of_group[table.group], price


def _linear_delta(positions: Positions) -> np.ndarray:
    """Coin delta per unit of the instruments Derive margins as its perpetual: perpetuals,
    dated futures and (negative quantities only, see the module) spot.
    """
    kind = positions.book.table.kind
    linear = (kind == Kind.PERPETUAL) | (kind == Kind.FUTURE)
    return np.where(linear, positions.book.delta, 0.0)


def _per_account_underlying(
    positions: Positions, n_underlyings: int, of_instrument: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    rows = positions.account * n_underlyings + of_instrument[positions.instrument]
    return np.bincount(rows, weights=weights, minlength=positions.n_accounts * n_underlyings)


def _seconds(years: np.ndarray) -> np.ndarray:
    return np.rint(years * YEAR_SECONDS).astype(np.int64)


def derive_portfolios(positions: Positions) -> dict[tuple[int, str], Portfolio]:
    """One PMRM 2 portfolio per (account index, underlying) held (see the module)."""
    book, table = positions.book, positions.book.table
    names, of_instrument, price = _underlyings(positions)
    linear = _linear_delta(positions)
    seconds = _seconds(table.years)
    out: dict[tuple[int, str], Portfolio] = {}
    for a in range(positions.n_accounts):
        mine = np.flatnonzero(positions.account == a)
        for u, name in enumerate(names):
            held = mine[of_instrument[positions.instrument[mine]] == u]
            if not len(held):
                continue
            by_expiry: dict[int, list[Option]] = {}
            forward: dict[int, float] = {}
            perp = 0.0
            collateral = 0.0
            for k in held:
                i, q = positions.instrument[k], positions.quantity[k]
                if table.kind[i] == Kind.OPTION:
                    option = Option(float(table.strike[i]), bool(table.is_call[i]), q, book.vol[i])
                    by_expiry.setdefault(int(seconds[i]), []).append(option)
                    forward[int(seconds[i])] = float(book.forward[i])
                elif table.kind[i] == Kind.SPOT and q > 0:
                    collateral += q
                elif table.kind[i] == Kind.SPOT:
                    perp += q
                else:
                    perp += q * linear[i]
            expiries = tuple(
                Expiry.from_forward(s, forward[s], 0.0, options)
                for s, options in sorted(by_expiry.items())
            )
            collaterals = (
                (Collateral(name, collateral, float(price[u]), risk_cancelling=True),)
                if collateral
                else ()
            )
            out[(a, name)] = Portfolio(
                spot=float(price[u]),
                expiries=expiries,
                collaterals=collaterals,
                perp_position=perp,
                perp_price=float(price[u]),
            )
    return out


def _expiry_table(positions: Positions, of_instrument: np.ndarray) -> dict[str, np.ndarray]:
    """Derive's expiries among the book's options: (underlying, seconds) pairs."""
    table, book = positions.book.table, positions.book
    option = np.flatnonzero(table.kind == Kind.OPTION)
    seconds = _seconds(table.years[option])
    key = of_instrument[option] * (np.int64(1) << 40) + seconds
    unique, first, expiry_of = np.unique(key, return_index=True, return_inverse=True)
    e_seconds = seconds[first]
    forward = book.forward[option][first]
    near = e_seconds < SETTLEMENT_SECONDS
    fixed = np.where(near, forward * (SETTLEMENT_SECONDS - e_seconds) / SETTLEMENT_SECONDS, 0.0)
    variable = np.where(near, forward * e_seconds / SETTLEMENT_SECONDS, forward)
    return {
        "option": option,
        "expiry_of": expiry_of,
        "underlying": of_instrument[option][first],
        "seconds": e_seconds,
        "variable": variable,
        "fixed": fixed,
        "years": e_seconds / YEAR_SECONDS,
    }


def _option_values(positions: Positions, e: dict[str, np.ndarray], p: DeriveParams) -> np.ndarray:
    """Options × (scenarios, mark, basis up, basis down): each option's Black-76 value (rate 0,
    so undiscounted) in every column; the static discount applies later, per expiry sum.
    """
    table, book = positions.book.table, positions.book
    option, x = e["option"], e["expiry_of"]
    strike, vol, calls = table.strike[option], book.vol[option], table.is_call[option]
    years = e["years"][x]
    variable, fixed = e["variable"][x], e["fixed"][x]
    up, down = (m[x] for m in vol_multipliers(e["seconds"], p.vol_shock))

    def value(forward: np.ndarray, vols: np.ndarray) -> np.ndarray:
        return option_values(forward, strike, years, 1.0, vols, calls)  # rate 0: D = 1

    columns = []
    for s in p.scenarios:
        if s.vol_shock in (VolShock.LINEAR, VolShock.ABS):
            lift = skew_multipliers(strike, variable + fixed, years, s.vol_shock, p.skew)
            columns.append(value(variable + fixed, vol * lift))
            continue
        moved = shocked_vols(vol, up, down, s.vol_shock, p.vol_shock)
        columns.append(value(variable * s.spot_shock + fixed, moved))
    columns.append(value(variable + fixed, vol))
    columns.append(value(variable * p.basis.spot_up + fixed, vol))
    columns.append(value(variable * p.basis.spot_down + fixed, vol))
    return np.column_stack(columns)


def derive_margin(positions: Positions, params: ModelParams | None = None) -> MarginResult:
    """Derive PMRM 2 margin of every account (USDC, see the module); the set's ``derive``
    parameters, else Derive's published ones.

    One compiled pass per account (:func:`_derive_scan`: each expiry's scenario sums in a small
    buffer, discounted and added when the expiry ends, so no (account, expiry) × scenarios
    matrix is built); ``MWB_KERNEL=numpy`` selects the numpy reference
    (:func:`derive_margin_reference`), which materialises it.
    """
    if os.environ.get("MWB_KERNEL", "compiled") == "numpy":
        return derive_margin_reference(positions, params)
    p = (params.derive if params is not None else None) or PUBLISHED
    lp, bp, cp = p.margin, p.basis, p.contingency
    table = positions.book.table
    names, of_instrument, price = _underlyings(positions)
    n_u, n_s = len(names), len(p.scenarios)
    e = _expiry_table(positions, of_instrument)
    n_i = len(table)
    values = np.zeros((n_i, n_s + 3))
    expiry = np.full(n_i, -1, dtype=np.int64)
    if len(e["option"]):
        values[e["option"]] = _option_values(positions, e, p)
        expiry[e["option"]] = e["expiry_of"]
    years = e["years"]
    long_d, short_d = static_discounts(years, 0.0, lp)  # the snapshot's rate: 0
    factor = bp.add_factor + bp.mult_factor * years
    kind = table.kind
    spot = (kind == Kind.SPOT).astype(np.int8)
    # the (account, group) rows every model shares (cached, duplicates summed): an account's
    # positions are its groups' consecutive rows
    matrix = positions.group_matrix
    out = np.zeros((5, positions.n_accounts * n_u))
    _derive_scan(
        matrix.indptr[:: positions.n_groups],
        matrix.indices,
        matrix.data,
        values,
        expiry,
        _partners(table, expiry),
        of_instrument,
        spot,
        _linear_delta(positions),
        e["underlying"],
        long_d,
        short_d,
        factor,
        price,
        np.array([s.dampening for s in p.scenarios]),
        np.array([s.spot_shock for s in p.scenarios]),
        np.array([s.vol_shock in (VolShock.LINEAR, VolShock.ABS) for s in p.scenarios]),
        np.array(
            [cp.mm_perp_percent, cp.im_perp_percent, cp.mm_option_percent, cp.im_option_percent]
        ),
        out,
    )
    worst, marks, collateral_usd, mm_cont, im_cont = out
    return _per_account(
        positions,
        "derive-pmrm2",
        n_u,
        -worst * lp.im_factor + im_cont + mm_cont,
        -worst * lp.mm_factor + mm_cont,
        marks + collateral_usd,
        {"worst_case": -worst * lp.im_factor, "contingency": im_cont + mm_cont},
    )


def _partners(table: InstrumentTable, expiry: np.ndarray) -> np.ndarray:
    """Each option's other type at its expiry and strike (-1 where the book lists none)."""
    partner = np.full(len(table), -1, dtype=np.int64)
    option = np.flatnonzero(expiry >= 0)
    seen: dict[tuple[int, float, bool], int] = {}
    for i in option:
        seen[(int(expiry[i]), float(table.strike[i]), bool(table.is_call[i]))] = int(i)
    for i in option:
        other = seen.get((int(expiry[i]), float(table.strike[i]), not bool(table.is_call[i])))
        if other is not None:
            partner[i] = other
    return partner


@numba.njit(cache=True, nogil=True)
def _derive_scan(
    indptr,
    indices,
    data,
    values,
    expiry,
    partner,
    underlying,
    spot,
    linear,
    expiry_underlying,
    long_d,
    short_d,
    factor,
    price,
    weight,
    shock,
    skew,
    percent,
    out,
):  # pragma: no cover - compiled
    # No sort: each expiry's sums live in its own buffer row, zeroed as the account's expiries
    # are consumed (a stamp per expiry marks the first touch), and a call and a put at one
    # strike are netted through each instrument's partner (its other type at that strike, -1
    # if none) and a per-instrument quantity stamped with the account. The rows are (account,
    # group) rows with duplicates summed, so an instrument appears at most once per account.
    # The bookkeeping is branch-free (flags as 0/1 arithmetic): which position first touches an
    # expiry, or has a partner held, is unpredictable, and mispredicted branches cost more
    # than the arithmetic (a quarter of the pass on the benchmark's books).
    n_s = len(weight)
    n_u = len(price)
    n_e = len(long_d)
    sums = np.zeros((max(n_e, 1), n_s + 3))
    stamp = np.full(max(n_e, 1), -1, dtype=np.int64)
    touched = np.zeros(max(n_e, 1) + 1, dtype=np.int64)  # +1: the unconditional write
    held = np.zeros(len(expiry))
    held_stamp = np.full(len(expiry), -1, dtype=np.int64)
    pnl = np.zeros((n_u, n_s))
    basis = np.zeros(n_u)
    marks = np.zeros(n_u)
    naked = np.zeros(n_u)
    perp = np.zeros(n_u)
    collateral = np.zeros(n_u)
    for a in range(len(indptr) - 1):
        # explicit loops: a slice assignment per account costs more than these few writes
        for u in range(n_u):
            for j in range(n_s):
                pnl[u, j] = 0.0
            basis[u] = 0.0
            marks[u] = 0.0
            naked[u] = 0.0
            perp[u] = 0.0
            collateral[u] = 0.0
        n_touched = 0
        start, stop = indptr[a], indptr[a + 1]
        for k in range(start, stop):
            i = indices[k]
            q = data[k]
            u = underlying[i]
            e = expiry[i]
            if e >= 0:
                touched[n_touched] = e
                n_touched += stamp[e] != a
                stamp[e] = a
                for j in range(n_s + 3):
                    sums[e, j] += q * values[i, j]
                # an instrument is in one group, so once per account: a call and a put at
                # one strike net when the second of them arrives (other = 0 until then)
                held_stamp[i] = a
                held[i] = q
                p = max(partner[i], 0)
                other = held[p] * ((partner[i] >= 0) & (held_stamp[p] == a))
                naked[u] += max(-(q + other), 0.0) - max(-other, 0.0)
            elif spot[i] == 1 and q > 0:
                collateral[u] += q
            elif spot[i] == 1:
                perp[u] += q
            else:
                perp[u] += q * linear[i]
        for t in range(n_touched):
            e = touched[t]
            u = expiry_underlying[e]
            row = sums[e]
            acc = pnl[u]
            mark = row[n_s]
            up, down = long_d[e], short_d[e]
            for j in range(n_s):
                # branch-free: the sign picks the static discount; a skew scenario counts
                # every expiry as a loss, c - (c + |c|) = -|c|
                shocked = row[j] * (up if row[j] >= 0 else down)
                change = (shocked - mark) * weight[j]
                acc[j] += change - skew[j] * (change + abs(change))
            lowest = min(row[n_s + 1] - mark, row[n_s + 2] - mark, 0.0)
            basis[u] += lowest * factor[e]
            marks[u] += mark
            for j in range(n_s + 3):
                row[j] = 0.0
        for u in range(n_u):
            row = a * n_u + u
            linear_usd = (perp[u] + collateral[u]) * price[u]
            worst = basis[u]
            for j in range(n_s):
                worst = min(worst, pnl[u, j] + linear_usd * ((shock[j] - 1.0) * weight[j]))
            perp_notional = abs(perp[u]) * price[u]
            short_notional = naked[u] * price[u]
            out[0, row] = worst
            out[1, row] = marks[u]
            out[2, row] = collateral[u] * price[u]
            out[3, row] = perp_notional * percent[0] + short_notional * percent[2]
            out[4, row] = perp_notional * percent[1] + short_notional * percent[3]


def net_short_per_strike(
    positions: Positions, column: np.ndarray, column_underlying: np.ndarray, n_u: int
) -> np.ndarray:
    """Σ over an account's strikes of the net short units there, per (account, underlying)
    (flattened): ``column`` maps each instrument to its strike (-1: not an option), and the
    instruments of one column — a call and a put at a strike and expiry — net first.
    """
    matrix = positions.group_matrix
    out = np.zeros(positions.n_accounts * n_u)
    _net_short_scan(
        matrix.indptr[:: positions.n_groups],
        matrix.indices,
        matrix.data,
        column,
        column_underlying.astype(np.int64),
        n_u,
        out,
    )
    return out


@numba.njit(cache=True, nogil=True)
def _net_short_scan(
    indptr, indices, data, column, column_underlying, n_u, out
):  # pragma: no cover - compiled
    # one pass per account: each strike's net in a buffer stamped with the account, the
    # strikes touched listed, their short parts summed when the account ends
    n_c = int(column_underlying.shape[0])
    net = np.zeros(max(n_c, 1))
    stamp = np.full(max(n_c, 1), -1, dtype=np.int64)
    touched = np.zeros(max(n_c, 1) + 1, dtype=np.int64)
    for a in range(len(indptr) - 1):
        n_touched = 0
        for k in range(indptr[a], indptr[a + 1]):
            c = column[indices[k]]
            if c < 0:
                continue
            if stamp[c] != a:
                stamp[c] = a
                net[c] = 0.0
                touched[n_touched] = c
                n_touched += 1
            net[c] += data[k]
        for t in range(n_touched):
            c = touched[t]
            out[a * n_u + column_underlying[c]] += max(-net[c], 0.0)


def derive_margin_reference(
    positions: Positions, params: ModelParams | None = None
) -> MarginResult:
    """:func:`derive_margin` with numpy and scipy sparse products (the reference)."""
    p = (params.derive if params is not None else None) or PUBLISHED
    lp, bp, cp = p.margin, p.basis, p.contingency
    table = positions.book.table
    names, of_instrument, price = _underlyings(positions)
    n_u, n_s = len(names), len(p.scenarios)
    n_au = positions.n_accounts * n_u
    e = _expiry_table(positions, of_instrument)

    # (account, expiry) pairs held: the options' sums per pair in every column
    local = np.full(len(table), -1, dtype=np.int64)
    local[e["option"]] = np.arange(len(e["option"]))
    held = local[positions.instrument] >= 0
    n_e = max(len(e["seconds"]), 1)
    pair_key = positions.account[held] * n_e + e["expiry_of"][local[positions.instrument[held]]]
    pairs, pair_row = np.unique(pair_key, return_inverse=True)
    sums = np.zeros((len(pairs), n_s + 3))
    if len(pairs):
        matrix = sparse.csr_matrix(
            (positions.quantity[held], (pair_row, local[positions.instrument[held]])),
            shape=(len(pairs), len(e["option"])),
        )
        sums = np.asarray(matrix @ _option_values(positions, e, p))
    pair_expiry = pairs % n_e
    pair_au = (pairs // n_e) * n_u + (e["underlying"][pair_expiry] if len(pairs) else 0)
    shocked, mark = sums[:, :n_s], sums[:, n_s]
    years = e["years"][pair_expiry] if len(pairs) else np.zeros(0)
    # rate 0: the discount is 1 and the short discount's cap 1/D is 1
    long_d, short_d = static_discounts(years, 0.0, lp)
    weight = np.array([s.dampening for s in p.scenarios])
    skew = np.array([s.vol_shock in (VolShock.LINEAR, VolShock.ABS) for s in p.scenarios])
    discounted = shocked * np.where(shocked >= 0, long_d[:, None], short_d[:, None])
    pnl = (discounted - mark[:, None]) * weight
    pnl = np.where(skew, -np.abs(pnl), pnl)
    basis = np.minimum(np.minimum(sums[:, n_s + 1] - mark, sums[:, n_s + 2] - mark), 0.0)
    basis *= bp.add_factor + bp.mult_factor * years
    to_au = sparse.csr_matrix(
        (np.ones(len(pairs)), (pair_au, np.arange(len(pairs)))), shape=(n_au, len(pairs))
    )
    scenario_pnl = np.asarray(to_au @ pnl).reshape(n_au, n_s)
    basis_au = to_au @ basis
    marks_au = to_au @ mark

    # the perpetual leg and risk-cancelling spot collateral, both linear in spot
    q, inst = positions.quantity, positions.instrument
    spot = table.kind[inst] == Kind.SPOT
    perp = _per_account_underlying(
        positions,
        n_u,
        of_instrument,
        np.where(spot, np.minimum(q, 0.0), q * _linear_delta(positions)[inst]),
    )
    collateral = _per_account_underlying(
        positions, n_u, of_instrument, np.where(spot, np.maximum(q, 0.0), 0.0)
    )
    index = np.tile(price, positions.n_accounts)
    linear_usd = (perp + collateral) * index
    shocks = np.array([s.spot_shock for s in p.scenarios])
    scenario_pnl += linear_usd[:, None] * ((shocks - 1.0) * weight)[None, :]

    # naked shorts: options netted per (account, expiry, strike), calls with puts
    opt = held.nonzero()[0]
    strike_key = np.stack([pair_key, table.strike[inst[opt]].view(np.int64)], axis=1)
    _, strike_row = np.unique(strike_key, axis=0, return_inverse=True)
    net = np.bincount(strike_row.reshape(-1), weights=q[opt])
    first = np.zeros(len(net), dtype=np.int64)
    first[strike_row.reshape(-1)] = np.arange(len(opt))
    au_of_strike = positions.account[opt][first] * n_u + of_instrument[inst[opt]][first]
    naked = np.bincount(au_of_strike, weights=np.maximum(-net, 0.0), minlength=n_au)
    notional_perp = np.abs(perp) * index
    notional_short = naked * index
    mm_cont = notional_perp * cp.mm_perp_percent + notional_short * cp.mm_option_percent
    im_cont = notional_perp * cp.im_perp_percent + notional_short * cp.im_option_percent

    worst = np.minimum(basis_au, scenario_pnl.min(axis=1) if n_s else basis_au)
    initial_au = -worst * lp.im_factor + im_cont + mm_cont
    maintenance_au = -worst * lp.mm_factor + mm_cont
    equity_au = marks_au + collateral * index
    return _per_account(
        positions,
        "derive-pmrm2",
        n_u,
        initial_au,
        maintenance_au,
        equity_au,
        {"worst_case": -worst * lp.im_factor, "contingency": im_cont + mm_cont},
    )


def _per_account(
    positions: Positions,
    model: str,
    n_u: int,
    initial: np.ndarray,
    maintenance: np.ndarray,
    equity: np.ndarray,
    components: dict[str, np.ndarray],
) -> MarginResult:
    """(account, underlying) figures summed into one USDC row per account holding anything."""
    # accounts with a position: nonempty (account, group) rows, as the other models' layout
    present = np.flatnonzero(np.diff(positions.group_matrix.indptr[:: positions.n_groups]) > 0)

    def rows(values: np.ndarray) -> np.ndarray:
        # strided slices summed: with a few underlyings, faster than an axis-1 reduction
        total = values[0::n_u].copy()
        for u in range(1, n_u):
            total += values[u::n_u]
        return total[present]

    currency = np.empty(len(present), dtype=object)
    currency.fill(SETTLEMENT)  # a fill, not np.full: np.full converts element by element
    return MarginResult(
        model=model,
        account=present,
        accounts=positions.accounts,
        currency=currency,
        initial_margin=rows(initial),
        maintenance_margin=rows(maintenance),
        equity=rows(equity),
        components={name: rows(v) for name, v in components.items()},
        errors=positions.errors,
    )


def _per_underlying(
    positions: Positions, n_u: int, per_unit: np.ndarray, *, absolute: bool = False
) -> np.ndarray:
    """Σ quantity × ``per_unit[instrument]`` per (account, underlying), flattened: the shared
    (account, group) product, its groups summed by underlying (of the absolute quantities with
    ``absolute``).
    """
    names, _, _ = _underlyings(positions)
    to_u = np.zeros((positions.n_groups, n_u))
    for g, (_, u) in enumerate(positions.book.table.groups):
        to_u[g, names.index(u)] = 1.0
    matrix = positions.group_matrix
    if absolute:
        matrix = sparse.csr_matrix(
            (np.abs(matrix.data), matrix.indices, matrix.indptr), matrix.shape
        )
    per_group = (matrix @ per_unit).reshape(positions.n_accounts, positions.n_groups)
    return (per_group @ to_u).reshape(-1)


def _linear_book(
    positions: Positions,
) -> tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray]:
    """What the linear models read: underlyings, their prices, each (account, underlying)'s
    USD delta notional and mark value (USD).
    """
    names, _, price = _underlyings(positions)
    n_u = len(names)
    delta = _per_underlying(positions, n_u, _usd_delta(positions))
    notional = (np.abs(delta).reshape(-1, n_u) * price).reshape(-1)
    equity = _per_underlying(positions, n_u, positions.book.value * _usd_per_unit(positions))
    return names, price, notional, equity


def delta_only_margin(positions: Positions, params: ModelParams | None = None) -> MarginResult:
    """:math:`|\\Delta| S r` per (account, underlying), summed per account (USDC)."""
    params = params or ModelParams()
    names, _, notional, equity = _linear_book(positions)
    n_u = len(names)
    im_rate = np.array([params.standard_for(u).future_initial for u in names])
    mm_rate = np.array([params.standard_for(u).future_maintenance for u in names])
    initial = (notional.reshape(-1, n_u) * im_rate).reshape(-1)
    maintenance = (notional.reshape(-1, n_u) * mm_rate).reshape(-1)
    return _per_account(
        positions, "delta-only", n_u, initial, maintenance, equity, {"delta_notional": notional}
    )


def hyperliquid_margin(positions: Positions, params: ModelParams | None = None) -> MarginResult:
    """Hyperliquid cross margin per account (USDC): each underlying's net USD delta as one
    perpetual position, its notional :math:`N = |\\Delta| S`, initial margin at the tier's
    maximum leverage and the tiered maintenance margin (:mod:`~margin_engine.venues.hyperliquid`;
    options, which Hyperliquid does not list, enter by their delta). The set's tables, else
    the published ones; an asset without a table takes the docs' generic one.
    """
    tables = (params.hyperliquid if params is not None else None) or published_tables()
    names, _, notional, equity = _linear_book(positions)
    n_u = len(names)
    by_column = notional.reshape(-1, n_u)
    initial = np.empty_like(by_column)
    maintenance = np.empty_like(by_column)
    for u, name in enumerate(names):
        table = tables.get(name) or MarginTable.of(GENERIC_TABLE)
        initial[:, u] = hl_initial(table, by_column[:, u])
        maintenance[:, u] = hl_maintenance(table, by_column[:, u])
    return _per_account(
        positions,
        "hyperliquid",
        n_u,
        initial.reshape(-1),
        maintenance.reshape(-1),
        equity,
        {"notional": notional},
    )


def scenario_by_underlying(positions: Positions, pnl: np.ndarray) -> np.ndarray:
    """Σ quantity × ``pnl`` (instruments × S) per (account, underlying): rows account-major,
    each underlying's groups (settlement currencies) added together.
    """
    names, _, _ = _underlyings(positions)
    n_u, n_g = len(names), positions.n_groups
    per_group = np.asarray(positions.group_matrix @ pnl).reshape(positions.n_accounts, n_g, -1)
    order = [names.index(u) for _, u in positions.book.table.groups]
    if order == list(range(n_u)):  # one group per underlying, in the same order: no copy
        return per_group.reshape(positions.n_accounts * n_u, -1)
    out = np.zeros((positions.n_accounts, n_u, pnl.shape[1]))
    for g, (_, u) in enumerate(positions.book.table.groups):
        out[:, names.index(u)] += per_group[:, g]
    return out.reshape(positions.n_accounts * n_u, -1)


def usd_scenario_pnl(
    positions: Positions,
    shocks: np.ndarray,
    shocked_vol: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> np.ndarray:
    """USD P&L per unit of every instrument (n × S) at spot × (1 + ``shocks``): linear
    instruments by their coin exposure, options as USD-settled Black-76 options of the same
    strike and expiry, at ``shocked_vol(iv, years)`` ((options × 1) → options × S).
    """
    book, table = positions.book, positions.book.table
    _, of_instrument, price = _underlyings(positions)
    pnl = (_usd_delta(positions) * price[of_instrument])[:, None] * shocks[None, :]
    options = np.flatnonzero(table.kind == Kind.OPTION)
    if len(options):
        forward, strike = book.forward[options, None], table.strike[options, None]
        years, vol = table.years[options, None], book.vol[options, None]
        calls = table.is_call[options, None]
        base = black76_price(forward, strike, years, vol, calls)
        moved = black76_price(
            forward * (1.0 + shocks[None, :]), strike, years, shocked_vol(vol, years), calls
        )
        pnl[options] = moved - base
    return pnl


def _usd_delta(positions: Positions) -> np.ndarray:
    """Each instrument's coin delta per unit as a USD holder sees it: the book's coin-settled
    deltas take out what the settlement coin itself moves (an inverse option's value, a coin
    held in its own account), which a USD margin puts back.
    """
    table, book = positions.book.table, positions.book
    delta = book.delta.copy()
    coin_option = (table.kind == Kind.OPTION) & table.inverse
    delta[coin_option] += book.value[coin_option]  # the Black-76 delta
    delta[table.kind == Kind.SPOT] = 1.0
    return delta


def _usd_per_unit(positions: Positions) -> np.ndarray:
    """USD per unit of each instrument's settlement currency (the index price for a coin)."""
    table, book = positions.book.table, positions.book
    stable = np.array([c in STABLE for c, _ in table.groups])
    return np.where(stable[table.group], 1.0, book.group_index_price[table.group])
