"""Historical and filtered-historical VaR / ES over an MPOR, with full revaluation.

Scenarios are joint moves of every underlying (and of its implied vol) over the MPOR, taken
from history: the ``h``-day sums of daily log returns over overlapping windows in the
lookback. Filtered historical simulation (as in Eurex Prisma) first rescales each day's return
by the ratio of today's forecast volatility to that day's:
:math:`r^*_t = r_t\\,\\sigma_{T+1}/\\sigma_t`.

Each instrument is revalued in every scenario (its underlying's move, its IV times the IV
index's relative change); an account's P&L per settlement currency is the sparse product; the
loss distribution gives

.. math::

    \\mathrm{VaR}_c = \\min\\{L : P(\\text{loss} \\le L) \\ge c\\}, \\qquad
    \\mathrm{ES}_c = \\frac{1}{1-c}\\Big(\\sum_{\\text{loss} > \\mathrm{VaR}} w\\,\\text{loss}
    + \\big(P(\\text{loss} \\le \\mathrm{VaR}) - c\\big)\\mathrm{VaR}\\Big)

(exact for weighted discrete distributions, Acerbi–Tasche). Anti-procyclicality: ``buffer``
multiplies the margin by 1 + b; ``stressed-weight`` gives the scenarios overlapping the stress
windows a total weight w; ``floor`` takes the larger of the margin and that of the long
(10-year) lookback. Losses are positive; margin = max(measure, 0).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from margin_engine.book import MarginResult, Positions
from margin_engine.params import ModelParams, VarParams
from vocabulary import Apc, VarMeasure, VarMethod


@dataclass(frozen=True)
class JointScenarios:
    """Joint MPOR scenarios: ``price_moves`` and ``vol_moves`` (S × U) are simple relative
    changes of each underlying and its implied vol; ``weights`` (S,) sum to one.
    """

    underlyings: tuple[str, ...]
    price_moves: np.ndarray
    vol_moves: np.ndarray
    weights: np.ndarray
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        s, u = self.price_moves.shape
        if (
            u != len(self.underlyings)
            or self.vol_moves.shape != (s, u)
            or self.weights.shape != (s,)
        ):
            raise ValueError(
                "JointScenarios: price_moves, vol_moves (S × U) and weights (S,) must agree"
            )
        if s == 0:
            raise ValueError("JointScenarios: no scenarios")
        if not (np.isfinite(self.price_moves).all() and np.isfinite(self.vol_moves).all()):
            raise ValueError("JointScenarios: moves must be finite")
        if (self.price_moves <= -1).any() or (self.vol_moves <= -1).any():
            raise ValueError("JointScenarios: a relative move of -100 % or worse is not a price")
        if (self.weights < 0).any() or not np.isclose(self.weights.sum(), 1.0):
            raise ValueError("JointScenarios: weights must be non-negative and sum to 1")

    def __len__(self) -> int:
        return len(self.weights)


def _in_windows(dates: pd.DatetimeIndex, windows: Sequence[tuple]) -> np.ndarray:
    flag = np.zeros(len(dates), bool)
    for start, end in windows:
        flag |= (dates >= pd.Timestamp(start)) & (dates <= pd.Timestamp(end))
    return flag


def historical_scenarios(
    log_returns: pd.DataFrame,
    horizon: int,
    lookback: int,
    *,
    method: VarMethod | str = VarMethod.HISTORICAL,
    cond_vol: pd.DataFrame | None = None,
    vol_now: pd.Series | None = None,
    iv_log_changes: pd.DataFrame | None = None,
    stress_windows: Sequence[tuple] = (),
    stress_weight: float = 0.0,
) -> JointScenarios:
    """Overlapping ``horizon``-day scenarios from the last ``lookback`` days of ``log_returns``.

    Parameters
    ----------
    log_returns : pd.DataFrame
        Daily decimal log returns (dates × underlyings); only days with every underlying used.
    method : {"historical", "filtered-historical"}
        FHS needs ``cond_vol`` (same shape: each day's model volatility) and ``vol_now`` (per
        underlying: the forecast for tomorrow).
    iv_log_changes : pd.DataFrame, optional
        Daily log changes of each underlying's IV index; missing ones mean unchanged vol.
    stress_windows, stress_weight
        Windows overlapping these (start, end) periods share a total weight ``stress_weight``.
    """
    method = VarMethod(method)
    frame = log_returns.dropna().sort_index()
    frame = frame.iloc[-lookback:]
    if len(frame) < horizon:
        raise ValueError(f"{len(frame)} joint days of returns; need at least the MPOR ({horizon})")
    daily = frame.to_numpy(dtype=float)
    if method is VarMethod.FILTERED_HISTORICAL:
        if cond_vol is None or vol_now is None:
            raise ValueError("filtered historical simulation needs cond_vol and vol_now")
        sigma = cond_vol.reindex(index=frame.index, columns=frame.columns).to_numpy(dtype=float)
        if not np.isfinite(sigma).all() or (sigma <= 0).any():
            raise ValueError("cond_vol must be positive and cover every scenario day")
        daily = daily * (vol_now.reindex(frame.columns).to_numpy(dtype=float)[None, :] / sigma)
    moves = overlapping_moves(daily, horizon)
    vol_moves = np.zeros_like(moves)
    if iv_log_changes is not None:
        iv = (
            iv_log_changes.reindex(index=frame.index, columns=frame.columns)
            .fillna(0.0)
            .to_numpy(dtype=float)
        )
        vol_moves = overlapping_moves(iv, horizon)
    starts = frame.index[: len(moves)]
    ends = frame.index[horizon - 1 :]
    weights = np.full(len(moves), 1.0 / len(moves))
    if stress_windows and stress_weight > 0:
        stressed = _in_windows(starts, stress_windows) | _in_windows(ends, stress_windows)
        if stressed.any() and (~stressed).any():
            weights = np.where(
                stressed, stress_weight / stressed.sum(), (1 - stress_weight) / (~stressed).sum()
            )
    labels = tuple(window_labels(frame.index, horizon).tolist())
    return JointScenarios(tuple(str(c) for c in frame.columns), moves, vol_moves, weights, labels)


def overlapping_moves(daily: np.ndarray, horizon: int) -> np.ndarray:
    """Simple moves over every run of ``horizon`` consecutive rows of daily log changes.

    .. math:: m_{t,j} = \\exp\\Big(\\sum_{k=0}^{h-1} x_{t+k,j}\\Big) - 1

    Parameters
    ----------
    daily : np.ndarray
        Daily log changes (days × columns).
    horizon : int
        :math:`h`, the days summed.

    Returns
    -------
    np.ndarray
        (days − h + 1) × columns.
    """
    kernel = np.ones(horizon)
    return np.expm1(
        np.stack(
            [np.convolve(daily[:, j], kernel, mode="valid") for j in range(daily.shape[1])],
            axis=1,
        )
    )


def window_labels(dates: pd.DatetimeIndex, horizon: int) -> np.ndarray:
    """``first..last`` (ISO dates) of every run of ``horizon`` consecutive ``dates``."""
    # vectorised: a backtest builds a thousand scenarios a day for years of days
    days = np.datetime_as_string(dates.to_numpy().astype("datetime64[D]"), unit="D")
    return np.char.add(np.char.add(days[: len(days) - horizon + 1], ".."), days[horizon - 1 :])


def weighted_var_es(
    losses: np.ndarray,
    weights: np.ndarray,
    var_level: float,
    es_level: float,
    *,
    with_es_var: bool = False,
) -> tuple[np.ndarray, ...]:
    """VaR at ``var_level`` and ES at ``es_level`` of each row of ``losses`` (rows × S); with
    ``with_es_var`` also the VaR at ``es_level`` (the pair an ES backtest needs).
    """
    order = np.argsort(losses, axis=1)
    sorted_losses = np.take_along_axis(losses, order, axis=1)
    cum = np.cumsum(weights[order], axis=1)

    def var_at(level: float) -> tuple[np.ndarray, np.ndarray]:
        k = np.minimum((cum < level - 1e-12).sum(axis=1), losses.shape[1] - 1)
        return sorted_losses[np.arange(len(losses)), k], k

    var, _ = var_at(var_level)
    es_var, k = var_at(es_level)
    w_sorted = weights[order]
    tail = np.arange(losses.shape[1])[None, :] > k[:, None]
    tail_sum = np.sum(np.where(tail, w_sorted * sorted_losses, 0.0), axis=1)
    below = cum[np.arange(len(losses)), k]
    es = (tail_sum + (below - es_level) * es_var) / (1.0 - es_level)
    if with_es_var:
        return var, es, es_var
    return var, es


def scenarios_for(
    params: VarParams,
    log_returns: pd.DataFrame,
    cond_vol: pd.DataFrame,
    vol_now: pd.Series,
    iv_log_changes: pd.DataFrame,
    stress_windows: Sequence[tuple] = (),
) -> tuple[JointScenarios, JointScenarios | None]:
    """The scenarios a VaR/ES margin reads under ``params``, and the floor's.

    The anti-procyclicality tool decides: ``stressed-weight`` gives the days overlapping
    ``stress_windows`` a total weight ``apc_stress_weight``; ``floor`` adds scenarios over the
    long ``floor_lookback_days`` (the margin is then never below theirs). ``cond_vol`` and
    ``vol_now`` are the filter's (``filtered-historical``); ``historical`` ignores them.
    """
    stressed = params.apc is Apc.STRESSED_WEIGHT

    def build(lookback: int) -> JointScenarios:
        return historical_scenarios(
            log_returns,
            params.mpor_days,
            lookback,
            method=params.method,
            cond_vol=cond_vol,
            vol_now=vol_now,
            iv_log_changes=iv_log_changes.reindex(columns=log_returns.columns),
            stress_windows=stress_windows if stressed else (),
            stress_weight=params.apc_stress_weight if stressed else 0.0,
        )

    floor = build(params.floor_lookback_days) if params.apc is Apc.FLOOR else None
    return build(params.lookback_days), floor


def anti_procyclical(
    base: np.ndarray, p: VarParams, floor: Callable[[], np.ndarray] | None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The margin from the measure ``base`` (at least zero) under the policy's
    anti-procyclicality tool, and the tool's component: ``buffer`` adds
    :math:`b \\cdot base`; ``floor`` keeps :math:`\\max(base, \\max(f, 0))` with ``f`` the same
    measure under the long look-back (``floor()``, computed only then; None: no floor is
    known); ``stressed-weight`` acts on the scenarios' weights, not here.
    """
    if p.apc is Apc.BUFFER:
        margin = base * (1 + p.apc_buffer)
        return margin, {"apc_buffer": margin - base}
    if p.apc is Apc.FLOOR and floor is not None:
        level = np.maximum(floor(), 0.0)
        return np.maximum(base, level), {"apc_floor": level}
    return base, {}


def var_margin(
    positions: Positions,
    scenarios: JointScenarios,
    params: ModelParams | None = None,
    *,
    measure: VarMeasure | str = VarMeasure.VAR,
    floor_scenarios: JointScenarios | None = None,
) -> MarginResult:
    """VaR or ES margin per (account, settlement currency) from joint ``scenarios``."""
    params = params or ModelParams()
    measure = VarMeasure(measure)
    book, table = positions.book, positions.book.table
    missing = sorted({u for _, u in table.groups} - set(scenarios.underlyings))
    if missing:
        raise ValueError(f"no scenarios for underlying(s) {', '.join(missing)}")
    u_of_instrument = np.array([scenarios.underlyings.index(u) for _, u in table.groups])[
        table.group
    ]

    def risk(s: JointScenarios) -> tuple[np.ndarray, ...]:
        moves = s.price_moves.T[u_of_instrument]  # (n, S)
        vols = book.vol[:, None] * (1.0 + s.vol_moves.T[u_of_instrument])
        pnl = currency_matrix @ book.scenario_pnl(moves, vols)
        return weighted_var_es(-pnl, s.weights, p.var_confidence, p.es_confidence, with_es_var=True)

    p = params.var
    present, account_of_row, currency_of_row = positions.layout
    # VaR/ES diversify across underlyings within a settlement currency: one row per currency
    currency_matrix = positions.matrix(
        positions.currency_row, positions.n_accounts * len(positions.currencies)
    )[present]
    var, es, es_var = risk(scenarios)
    base = np.maximum(var if measure is VarMeasure.VAR else es, 0.0)
    components = {"var": var, "es": es, "var_at_es_level": es_var}

    def floor() -> np.ndarray:
        assert floor_scenarios is not None
        f_var, f_es, _ = risk(floor_scenarios)
        return f_var if measure is VarMeasure.VAR else f_es

    margin, tool = anti_procyclical(base, p, floor if floor_scenarios is not None else None)
    components.update(tool)
    return MarginResult(
        model=measure.value,
        account=account_of_row,
        accounts=positions.accounts,
        currency=currency_of_row,
        initial_margin=margin,
        maintenance_margin=params.mm_factor * margin,
        equity=positions.equity(),
        components=components,
        errors=positions.errors,
    )
