"""Margin attribution: why an account's margin is what it is, position by position.

Three views of each position's part in its account's margin (in the row's settlement currency):

* **Euler** — an allocation that sums to the margin exactly. Deribit-style PM's initial margin is
  worst case + roll shock + delta shock per (account, class group), and each part is allocated
  through its own structure:

  - worst case, at the worst scenario :math:`s^*`: :math:`e_k = -q_k\\,a_{i_k}(s^*)` (the loss is
    linear in the quantities at a fixed scenario — the Euler allocation of the max); an
    extended-table worst case, shrunk by the dampener :math:`D`, keeps each share,
    :math:`e_k = -q_k a_{i_k}(s^*)\\,(L - D)/L` with :math:`L` the undamped loss;
  - roll shock :math:`\\sum_b w_b\\,|X_b|`, :math:`X_b = \\sum_{k \\in b} q_k \\delta_{i_k}`:
    :math:`e_k = w_b\\,\\mathrm{sign}(X_b)\\,q_k\\delta_{i_k}` (homogeneous of degree one);
  - delta shock :math:`S(|\\Delta|)` on the net delta: shared in proportion to each position's
    signed delta, :math:`e_k = S\\,\\mathrm{sign}(\\Delta)\\,q_k\\delta_{i_k}/|\\Delta|` (the shock's
    rate rises with :math:`|\\Delta|`, so it is not homogeneous: the proportional share is the
    documented choice).

  A hedge gets a negative contribution. For a model whose margin is a sum over positions (the
  standard model) the Euler part is each position's own margin.
* **Incremental** — the margin with the position less the margin without it.
* **Standalone** — the position margined alone.

And the worst scenario's loss per position split by a second-order Taylor expansion in the
relative price move :math:`m` and the vol change :math:`\\Delta\\sigma`, derivatives by central
differences of the engine's own revaluation: delta :math:`-q\\,P_m m`, gamma
:math:`-\\tfrac12 q\\,P_{mm} m^2`, vega :math:`-q\\,P_\\sigma \\Delta\\sigma`, theta (0: the scenarios
move no time) and the unexplained rest (cross and higher-order terms). Signs: as losses, so the
parts of a loss are positive when they lose.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from margin_engine.book import STABLE
from margin_engine.instruments import Kind
from margin_engine.portfolio_margin import (
    N_SCENARIOS,
    N_STANDARD,
    _roll_weights,
    extended_scale,
    risk_arrays,
    scenario_moves,
    vol_shocks,
)

if TYPE_CHECKING:
    from margin_engine.book import Positions
    from margin_engine.market import MarketSnapshot
    from margin_engine.params import ModelParams

__all__ = [
    "GREEK_TERMS",
    "Attribution",
    "incremental_and_standalone",
    "numerical_euler",
    "pm_attribution",
]

GREEK_TERMS = ("delta", "gamma", "vega", "theta", "unexplained")
MOVE_STEP = 1e-4  # relative price step of the central differences
VOL_STEP = 1e-4  # vol step (absolute)


@dataclass(frozen=True)
class Attribution:
    """Per position (the book's position rows): its result row, its Euler contribution and
    its parts (``worst_case``, ``roll_shock``, ``delta_shock``), and its worst-scenario loss
    split into :data:`GREEK_TERMS`.
    """

    row: np.ndarray  # index into the MarginResult's rows
    euler: np.ndarray
    parts: dict[str, np.ndarray] = field(default_factory=dict)
    greeks: dict[str, np.ndarray] = field(default_factory=dict)


def pm_attribution(positions: Positions, params: ModelParams) -> Attribution:
    """Euler contributions and the Greek split of Deribit-style PM (see the module)."""
    if params.product_groups:
        raise ValueError("attribution: Deribit-style PM with product groups is not attributed")
    book, table = positions.book, positions.book.table
    n_groups = positions.n_groups
    group_currency = [c for c, _ in table.groups]
    index = book.group_index_price
    to_quote = np.array([index[g] if c in STABLE else 1.0 for g, c in enumerate(group_currency)])
    arrays = risk_arrays(positions, params)
    q, inst = positions.quantity, positions.instrument
    group = table.group[inst]
    pair = positions.account * n_groups + group  # (account, group) of each position
    n_pairs = positions.n_accounts * n_groups

    # worst case: each pair's P&L per scenario, its worst scenario as the engine picks it
    pnl = np.zeros((n_pairs, N_SCENARIOS))
    np.add.at(pnl, pair, q[:, None] * arrays[inst])
    damp = np.array(
        [
            params.currency_for(c).extended_dampener / (1.0 if c in STABLE else index[g])
            for g, c in enumerate(group_currency)
        ]
    )[np.arange(n_pairs) % n_groups]
    s_std = np.argmin(pnl[:, :N_STANDARD], axis=1)
    s_ext = N_STANDARD + np.argmin(pnl[:, N_STANDARD:], axis=1)
    std = pnl[np.arange(n_pairs), s_std]
    raw_ext = pnl[np.arange(n_pairs), s_ext]
    ext = np.minimum(raw_ext + damp, 0.0)
    use_ext = ext < std
    worst_s = np.where(use_ext, s_ext, s_std)
    worst = np.maximum(-np.where(use_ext, ext, std), 0.0)
    # the share of the undamped loss the dampener leaves (1 on the standard table)
    keep = np.where(
        use_ext, np.divide(-ext, -raw_ext, out=np.ones(n_pairs), where=raw_ext < 0), 1.0
    )
    keep = np.where(worst > 0, keep, 0.0)
    own = q * arrays[inst, worst_s[pair]]  # each position's P&L at its pair's worst scenario
    worst_part = -own * keep[pair]

    # roll shock: |net delta| per expiry bucket at the bucket's rate
    currency_params = tuple(params.currency_for(c) for c in group_currency)
    weights = np.append(_roll_weights(book, currency_params, to_quote), 0.0)
    n_buckets = len(table.buckets)
    bucket = np.where(table.bucket[inst] >= 0, table.bucket[inst], n_buckets)
    delta = q * book.delta[inst]
    exposure = np.zeros(positions.n_accounts * (n_buckets + 1))
    key = positions.account * (n_buckets + 1) + bucket
    np.add.at(exposure, key, delta)
    roll_part = weights[bucket] * np.sign(exposure[key]) * delta

    # delta shock on each pair's net delta, shared by signed delta
    net = np.zeros(n_pairs)
    np.add.at(net, pair, delta)
    shock = np.zeros(n_pairs)
    for g, (_, underlying) in enumerate(table.groups):
        p = params.pm_for(underlying)
        rows = np.arange(g, n_pairs, n_groups)
        excess = np.maximum(np.abs(net[rows]) - p.delta_total_liq_shock_threshold / index[g], 0.0)
        rate = np.minimum(p.max_delta_shock, p.m_inc * excess)
        shock[rows] = rate * np.abs(net[rows]) * to_quote[g]
    share = np.divide(delta, np.abs(net[pair]), out=np.zeros(len(q)), where=net[pair] != 0)
    delta_part = shock[pair] * np.sign(net[pair]) * share

    greeks = _greek_split(positions, params, arrays, worst_s[pair], keep[pair], own)
    flat = positions.layout[0]  # the (account, currency) grid's cells that are result rows
    return Attribution(
        row=(np.cumsum(flat) - 1)[positions.currency_row],
        euler=worst_part + roll_part + delta_part,
        parts={"worst_case": worst_part, "roll_shock": roll_part, "delta_shock": delta_part},
        greeks=greeks,
    )


def _greek_split(
    positions: Positions,
    params: ModelParams,
    arrays: np.ndarray,
    scenario: np.ndarray,
    keep: np.ndarray,
    own: np.ndarray,
) -> dict[str, np.ndarray]:
    """Each position's share of its pair's worst-scenario loss, split by Taylor terms."""
    book, table = positions.book, positions.book.table
    n = len(table)
    h, eps = MOVE_STEP, VOL_STEP
    moves = np.tile(np.array([h, -h, 0.0, 0.0]), (n, 1))
    vols = np.tile(book.vol[:, None], (1, 4))
    vols[:, 2] += eps
    vols[:, 3] = np.maximum(vols[:, 3] - eps, 1e-6)
    fd = book.scenario_pnl(moves, vols)
    d1 = (fd[:, 0] - fd[:, 1]) / (2 * h)
    d2 = (fd[:, 0] + fd[:, 1]) / (h * h)
    options = table.kind == Kind.OPTION
    vega = np.zeros(n)  # only options have a vol
    vega[options] = (fd[options, 2] - fd[options, 3]) / (vols[options, 2] - vols[options, 3])
    # each instrument's move and vol change in every scenario (its underlying's parameters)
    move_of = np.zeros((n, N_SCENARIOS))
    dvol_of = np.zeros((n, N_SCENARIOS))
    scale_of = np.ones((n, N_SCENARIOS))

    for g, (_, underlying) in enumerate(table.groups):
        rows = np.flatnonzero(table.group == g)
        p = params.pm_for(underlying)
        move_of[rows] = scenario_moves(p.price_range)
        scale_of[rows, N_STANDARD:] = extended_scale(p.price_range, p.extended_table_factor)
        options = rows[table.kind[rows] == Kind.OPTION]
        if len(options):
            iv = book.vol[options]
            up, down = vol_shocks(iv, table.years[options], p)
            per_vol = np.stack([up - iv, np.zeros_like(iv), down - iv], axis=1)
            dvol_of[options, :N_STANDARD] = np.tile(per_vol, (1, N_STANDARD // 3))
            dvol_of[options, N_STANDARD:] = (up - iv)[:, None]
    inst, q = positions.instrument, positions.quantity
    m = move_of[inst, scenario]
    dv = dvol_of[inst, scenario]
    factor = scale_of[inst, scenario] * keep * q
    terms = {
        "delta": -factor * d1[inst] * m,
        "gamma": -factor * 0.5 * d2[inst] * m * m,
        "vega": -factor * vega[inst] * dv,
        "theta": np.zeros(len(q)),
    }
    loss = -own * keep
    terms["unexplained"] = loss - sum(terms.values())
    return terms


SEP = "\x1f"  # joins an account and a position's index into a synthetic account's name


def incremental_and_standalone(
    positions: Positions, market: MarketSnapshot, model: str, params: ModelParams, **kwargs: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Per position: the account's margin with it less without it (in its row's currency),
    and its margin alone. Two margin calls: every (account, left-out position) as one synthetic
    account, and every position as an account of its own (``kwargs`` go to the model).
    """
    from margin_engine.models import margin

    names = np.asarray(positions.book.table.names, dtype=object)[positions.instrument]
    accounts = np.asarray(positions.accounts, dtype=object)[positions.account]
    full = margin(positions, model, params, **kwargs)
    im = {
        (full.accounts[a], str(c)): float(v)
        for a, c, v in zip(full.account, full.currency, full.initial_margin, strict=True)
    }
    n = len(names)
    # every position's own settlement currency: the currency of its group
    groups = positions.book.table.groups
    currency = np.array(
        [groups[g][0] for g in positions.book.table.group[positions.instrument]], dtype=object
    )
    base = np.array([_lookup(im, a, c) for a, c in zip(accounts, currency, strict=True)])

    # without: account a's positions but k, for each k of a
    by_account: dict[str, list[int]] = {}
    for k, a in enumerate(accounts):
        by_account.setdefault(a, []).append(k)
    rows = [
        (f"{accounts[k]}{SEP}{k}", names[j], float(positions.quantity[j]))
        for a, ks in by_account.items()
        for k in ks
        for j in ks
        if j != k
    ]
    without = _margins(market, rows, model, params, kwargs)
    # alone: each position its own account
    alone_rows = [
        (f"{accounts[k]}{SEP}{k}", names[k], float(positions.quantity[k])) for k in range(n)
    ]
    alone = _margins(market, alone_rows, model, params, kwargs)
    keys = [f"{accounts[k]}{SEP}{k}" for k in range(n)]
    incremental = base - np.array(
        [_lookup(without, key, c) for key, c in zip(keys, currency, strict=True)]
    )
    standalone = np.array([_lookup(alone, key, c) for key, c in zip(keys, currency, strict=True)])
    return incremental, standalone


def _margins(
    market: MarketSnapshot,
    rows: list[tuple[str, str, float]],
    model: str,
    params: ModelParams,
    kwargs: dict[str, Any],
) -> dict[tuple[str, str], float]:
    """Initial margin per (account, currency) of the ``rows`` (account, instrument, quantity)."""
    import pandas as pd

    from margin_engine.book import build_positions
    from margin_engine.models import margin

    if not rows:
        return {}
    frame = pd.DataFrame(rows, columns=["account", "instrument", "quantity"])
    result = margin(build_positions(frame, market), model, params, **kwargs)
    return {
        (result.accounts[a], str(c)): float(v)
        for a, c, v in zip(result.account, result.currency, result.initial_margin, strict=True)
    }


EULER_STEP = 1e-4  # relative bump of a position's quantity for the numerical Euler allocation


def numerical_euler(
    positions: Positions, market: MarketSnapshot, model: str, params: ModelParams, **kwargs: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Euler contributions of any model by central differences,
    :math:`e_k = q_k\\,\\partial M/\\partial q_k \\approx (M(q_k(1+h)) - M(q_k(1-h)))/(2h)`,
    every bump a synthetic account of one margin call. A model homogeneous of degree one has
    contributions that sum to its margin; one that is not (tiers, thresholds, floors) has them
    scaled so that they do: returns the contributions and, per position, the scale applied.
    """
    from margin_engine.models import margin

    names = np.asarray(positions.book.table.names, dtype=object)[positions.instrument]
    accounts = np.asarray(positions.accounts, dtype=object)[positions.account]
    groups = positions.book.table.groups
    currency = np.array(
        [groups[g][0] for g in positions.book.table.group[positions.instrument]], dtype=object
    )
    full = margin(positions, model, params, **kwargs)
    base: dict[tuple[str, str], float] = {}
    for a, c, v in zip(full.account, full.currency, full.initial_margin, strict=True):
        base[(full.accounts[a], str(c))] = float(v)
    members: dict[str, list[int]] = {}
    for k, a in enumerate(accounts):
        members.setdefault(a, []).append(k)
    rows = []
    for ks in members.values():
        for k in ks:
            for sign in (1, -1):
                key = f"{accounts[k]}{SEP}{k}{SEP}{sign}"
                for j in ks:
                    factor = 1.0 + sign * EULER_STEP if j == k else 1.0
                    rows.append((key, names[j], float(positions.quantity[j]) * factor))
    bumped = _margins(market, rows, model, params, kwargs)

    def row_of(key: str, k: int) -> float:
        return _lookup(bumped, key, str(currency[k]))

    raw = np.array(
        [
            (row_of(f"{accounts[k]}{SEP}{k}{SEP}1", k) - row_of(f"{accounts[k]}{SEP}{k}{SEP}-1", k))
            / (2 * EULER_STEP)
            for k in range(len(names))
        ]
    )
    # each result row's positions (a model margining every currency in one row has one)
    row_of_position: dict[tuple[str, str], list[int]] = {}
    for k in range(len(names)):
        row: tuple[str, str] = (str(accounts[k]), str(currency[k]))
        if row not in base:
            sole = [r for r in base if r[0] == row[0]]
            row = sole[0] if len(sole) == 1 else row
        row_of_position.setdefault(row, []).append(k)
    scale = np.ones(len(names))
    for row, mine in row_of_position.items():
        total = float(raw[mine].sum())
        target = base.get(row, 0.0)
        if total != 0.0 and abs(total - target) > 1e-9 * max(abs(target), 1.0):
            scale[mine] = target / total
    return raw * scale, scale


def _lookup(margins: dict[tuple[str, str], float], account: str, currency: str) -> float:
    """An account's margin in ``currency``, or its only row when the model margins every
    currency in one (the venues' USDC).
    """
    if (account, currency) in margins:
        return margins[(account, currency)]
    mine = [v for (a, _), v in margins.items() if a == account]
    return mine[0] if len(mine) == 1 else 0.0
