"""SPAN-style margin, per (account, settlement currency, underlying).

16 scenarios: price moves 0, ±1/3, ±2/3, ±1 of the price scan range, each with vol up and
down by the vol scan range (relative: σ(1 ± r), floored at 1 %), plus two extreme moves
±k·range with vol unchanged whose P&L counts only the covered fraction f. Then

* scan risk = the largest loss over the 16 (0 if none loses);
* intra-commodity spread charge = rate × price × the calendar-spread delta: the smaller of the
  summed long and summed short net deltas across expiries (the scan treats expiries as
  perfectly correlated, so a calendar spread would otherwise look riskless);
* inter-commodity spread credit between two underlyings of the same currency whose net deltas
  have opposite signs: ``credit × 2 × matched``, matched = the smaller of the two scan risks
  still unused, pairs taken by decreasing credit; each leg's margin is reduced by half;
* short option minimum = rate × price × the greater of the units of short calls and of short
  puts in the combined commodity (the underlying), after netting each instrument's positions —
  CME's rule since Clearing House Advisory 99-65 (July 1999): a short strangle or an iron condor
  pays one minimum per unit, not one per short leg.

margin = max(scan + intra − credit, short option minimum) per underlying, summed per currency;
MM = ``mm_factor`` × IM as in the PM model.
"""

from __future__ import annotations

import numba
import numpy as np

from margin_engine.book import DEEPEST_MOVE, STABLE, MarginResult, Positions, worst_by_row
from margin_engine.instruments import Kind
from margin_engine.kernels import Extra, scan_rows
from margin_engine.params import ModelParams

MOVES = np.array([0.0, 1 / 3, -1 / 3, 2 / 3, -2 / 3, 1.0, -1.0])
N_SCAN = 2 * len(MOVES)
N_SCENARIOS = N_SCAN + 2
MIN_VOL = 0.01


def scenario_grid(
    price_scan_range: float, extreme_multiple: float
) -> tuple[np.ndarray, np.ndarray]:
    """Price moves and vol directions (+1 up, −1 down, 0 unchanged) of the 16 scenarios; down
    moves stop at :data:`DEEPEST_MOVE`.
    """
    moves = np.concatenate(
        [
            np.repeat(MOVES, 2) * price_scan_range,
            [extreme_multiple * price_scan_range, -extreme_multiple * price_scan_range],
        ]
    )
    moves = np.maximum(moves, DEEPEST_MOVE)
    vol_dir = np.concatenate([np.tile([1.0, -1.0], len(MOVES)), [0.0, 0.0]])
    return moves, vol_dir


def risk_arrays(positions: Positions, params: ModelParams) -> np.ndarray:
    """P&L per unit quantity in the 16 scenarios (n × 16), extremes already × covered fraction;
    read-only, computed once per book and parameters.
    """
    book = positions.book
    underlyings = dict.fromkeys(u for _, u in book.table.groups)
    key = ("span", tuple((u, params.span_for(u)) for u in underlyings))
    return book.derived(key, lambda: _risk_arrays(positions, params))


def _risk_arrays(positions: Positions, params: ModelParams) -> np.ndarray:
    book, table = positions.book, positions.book.table
    n = len(table)
    moves = np.empty((n, N_SCENARIOS))
    vols = np.tile(book.vol[:, None], (1, N_SCENARIOS))
    scale = np.ones((n, N_SCENARIOS))
    underlying_of = np.array([u for _, u in table.groups], dtype=object)[table.group]
    for underlying in dict.fromkeys(u for _, u in table.groups):
        members = underlying_of == underlying
        p = params.span_for(underlying)
        m, direction = scenario_grid(p.price_scan_range, p.extreme_move_multiple)
        moves[members] = m
        scale[members, N_SCAN:] = p.extreme_covered_fraction
        options = members & (table.kind == Kind.OPTION)
        if options.any():
            vols[options] = np.maximum(
                book.vol[options, None] * (1 + direction * p.vol_scan_range), MIN_VOL
            )
    return book.scenario_pnl(moves, vols) * scale


@numba.njit(cache=True, nogil=True)
def _result_rows(
    row_group, group_of_row, n_scenarios, scan_index, scan_pnl, bucket_long, bucket_short,
    short_calls, short_puts, value, intra_rate, som_rate,
    scan_c, intra_c, som_c, total, equity, scenario,
):  # fmt: skip  # pragma: no cover - compiled (the model's tests run it)
    # numpy's own minimum and maximum, so that a NaN goes where the vectorised formulas took it
    for k in range(len(row_group)):
        r, g = row_group[k], group_of_row[k]
        scan = np.maximum(-scan_pnl[r, 0], 0.0)
        intra = np.minimum(bucket_long[r], bucket_short[r]) * intra_rate[g]
        som = np.maximum(short_calls[r], short_puts[r]) * som_rate[g]
        scan_c[k] = scan
        intra_c[k] = intra
        som_c[k] = som
        total[k] = np.maximum(scan + intra, som)  # no credit: one group per currency
        equity[k] = value[r]
        scenario[k] = g * n_scenarios + scan_index[r, 0]


def _by_group(positions, params, scan_result, intra_rate, som_rate, price_units):
    """The margin rows where a currency settles several groups (the credits between them)."""
    table = positions.book.table
    n_groups, accounts = len(table.groups), positions.n_accounts
    group_currency = [c for c, _ in table.groups]
    group_underlying = [u for _, u in table.groups]
    worst_index = scan_result.worst_index[:, 0].reshape(accounts, n_groups)
    scan = np.maximum(-scan_result.worst_pnl[:, 0], 0.0).reshape(accounts, n_groups)

    # intra-commodity (calendar) spread charge: one bucket alone is never a spread, and then
    # one of the long and short sums is zero
    matched = np.minimum(scan_result.bucket_long, scan_result.bucket_short).reshape(
        accounts, n_groups
    )
    intra = matched * (intra_rate * price_units)[None, :]

    # short option minimum: rate × price × max(short calls, short puts) per combined commodity,
    # each instrument netted within the account first
    som = (
        np.maximum(scan_result.short_calls, scan_result.short_puts).reshape(accounts, n_groups)
        * (som_rate * price_units)[None, :]
    )

    # inter-commodity credits between underlyings of one currency with opposite net deltas
    g_delta = scan_result.net_delta.reshape(accounts, n_groups)
    credit = np.zeros((accounts, n_groups))
    remaining = scan.copy()
    pairs = []
    for a in range(n_groups):
        for b in range(a + 1, n_groups):
            if group_currency[a] == group_currency[b]:
                rate = params.credit_for(group_underlying[a], group_underlying[b])
                if rate > 0:
                    pairs.append((rate, a, b))
    for rate, a, b in sorted(pairs, reverse=True):
        opposite = np.sign(g_delta[:, a]) * np.sign(g_delta[:, b]) < 0
        matched = np.where(opposite, np.minimum(remaining[:, a], remaining[:, b]), 0.0)
        credit[:, a] += rate * matched
        credit[:, b] += rate * matched
        remaining[:, a] -= matched
        remaining[:, b] -= matched

    margin = np.maximum(scan + intra - credit, som)
    scenario_of_row, loss_of_row = worst_by_row(positions, scan, worst_index, N_SCENARIOS)
    components = {
        "scan_risk": positions.to_currency(scan),
        "intra_spread_charge": positions.to_currency(intra),
        "inter_spread_credit": positions.to_currency(credit),
        "short_option_minimum": positions.to_currency(som),
    }
    equity = positions.to_currency(scan_result.value.reshape(accounts, n_groups))
    return positions.to_currency(margin), equity, components, scenario_of_row, loss_of_row


def span_margin(positions: Positions, params: ModelParams | None = None) -> MarginResult:
    """SPAN-style margin for every account and settlement currency (see the module doc)."""
    params = params or ModelParams()
    book, table = positions.book, positions.book.table
    group_currency = [c for c, _ in table.groups]
    group_underlying = [u for _, u in table.groups]
    # one coin of the underlying in the settlement currency (1 coin in a coin-settled book)
    price_units = np.array(
        [book.group_index_price[g] if c in STABLE else 1.0 for g, c in enumerate(group_currency)]
    )

    scan_result = scan_rows(
        positions,
        risk_arrays(positions, params),
        (0, N_SCENARIOS),
        extras=frozenset({Extra.SPREAD, Extra.SHORT_OPTIONS}),
    )
    intra_rate = np.array([params.span_for(u).intra_spread_charge for u in group_underlying])
    som_rate = np.array([params.span_for(u).short_option_minimum for u in group_underlying])
    _, account_of_row, currency_of_row = positions.layout
    row_group, group_of_row = positions.row_group, positions.group_of_row
    if row_group is not None and group_of_row is not None:
        # one group per currency (the usual book), so no inter-commodity credit: each result
        # row from its scan row in one compiled pass (a dozen numpy passes and the page
        # faults of their arrays were half of the model's time on 100,000 accounts)
        n_out = len(row_group)
        scan_c, intra_c, som_c, total, equity = (np.empty(n_out) for _ in range(5))
        scenario_of_row = np.empty(n_out, np.int64)
        _result_rows(
            row_group, group_of_row, N_SCENARIOS, scan_result.worst_index, scan_result.worst_pnl,
            scan_result.bucket_long, scan_result.bucket_short, scan_result.short_calls,
            scan_result.short_puts, scan_result.value, intra_rate * price_units,
            som_rate * price_units, scan_c, intra_c, som_c, total, equity, scenario_of_row,
        )  # fmt: skip
        components = {
            "scan_risk": scan_c,
            "intra_spread_charge": intra_c,
            "inter_spread_credit": np.zeros(n_out),
            "short_option_minimum": som_c,
        }
        loss_of_row = scan_c
    else:
        total, equity, components, scenario_of_row, loss_of_row = _by_group(
            positions, params, scan_result, intra_rate, som_rate, price_units
        )
    vol_names = ["up", "down"] * len(MOVES) + ["unchanged", "unchanged"]
    catalog = []
    per_underlying: dict[str, list[dict]] = {}
    for u in group_underlying:
        if u not in per_underlying:
            p = params.span_for(u)
            moves, _ = scenario_grid(p.price_scan_range, p.extreme_move_multiple)
            per_underlying[u] = [
                {"underlying": u, "scenario": j, "price_move": float(m), "vol": vol_names[j]}
                for j, m in enumerate(moves)
            ]
        catalog += per_underlying[u]
    return MarginResult(
        model="span",
        account=account_of_row,
        accounts=positions.accounts,
        currency=currency_of_row,
        initial_margin=total,
        maintenance_margin=params.mm_factor * total,
        equity=equity,
        components=components,
        worst_scenario=scenario_of_row,
        worst_loss=loss_of_row,
        scenario_catalog=tuple(catalog),
        errors=positions.errors,
    )
