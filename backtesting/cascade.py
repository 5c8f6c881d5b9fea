"""Liquidation cascades: accounts liquidated along a price path, their liquidations moving the
price through an impact model, which can push more accounts under.

Each account holds cash :math:`c_i` (USD) and a linear position :math:`q_i` (coin, signed)
entered at :math:`e_i`; at price :math:`p` its equity is :math:`E_i = c_i + q_i (p - e_i)` and
its maintenance and initial margins :math:`m |q_i| p` and :math:`\\iota |q_i| p`. The path gives
the exogenous price of each step; the price an account sees is that price times the cumulative
impact of the liquidations so far (impact is permanent within the window: the conservative
reading for a committee).

**A step.** In rounds, until no account is under maintenance: the accounts with
:math:`E_i < m |q_i| p` are liquidated at one execution price :math:`x`, the fixed point of

.. math::

    x = p \\big(1 - \\operatorname{sign}(Q)\\, \\text{impact}(|Q|)\\big), \\qquad
    Q = \\sum_i f_i(x)\\, q_i\\, p,

where :math:`f_i(x)` is the fraction the rule closes: all of it (``full``), or the least that
restores initial margin after the penalty (``partial``),

.. math::

    f_i(x) = \\operatorname{clip}\\Big(\\frac{\\iota N_i - E_i(x)}{(\\iota - \\pi) N_i}, 0, 1\\Big),
    \\qquad N_i = |q_i| x,

(:math:`\\pi` the penalty rate; the whole position when even that cannot restore it). A
liquidation realises :math:`f_i q_i (x - e_i)`, pays the penalty :math:`\\pi f_i N_i` (from what
equity is left) to the insurance fund, and an account left with negative cash has bad debt:
the fund covers it while it can, the rest is auto-deleveraged (socialised) — recorded, not
lost. The price then stays at :math:`x` for the rest of the step.

**Ledger.** At every step,
:math:`\\sum c^0 + \\text{P\\&L} = \\sum E + \\text{penalties} - \\text{bad debt}` and
:math:`\\text{fund} = \\text{fund}^0 + \\text{penalties} - \\text{draws}`; the tests hold both.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

import numba
import numpy as np

from margin_engine.impact import ImpactKind, ImpactModel
from margin_engine.montecarlo import JointModel, Simulation, intraday_paths, tail_measures_at
from vocabulary import Innovations, Sampling

__all__ = [
    "Accounts",
    "CascadeRun",
    "LiquidationRule",
    "Mode",
    "bad_debt_distribution",
    "calibrate_impact",
    "intraday_path",
    "random_paths",
    "run_summary",
    "simulate",
    "synthetic_population",
    "bad_debt_risk",
]


class Mode(enum.Enum):
    """How much of an account under maintenance the venue liquidates."""

    FULL = "full"
    PARTIAL = "partial"


@dataclass(frozen=True)
class LiquidationRule:
    """Maintenance and initial margin rates on notional, the penalty rate, and the mode."""

    maintenance: float
    initial: float
    penalty: float = 0.0
    mode: Mode = Mode.FULL

    def __post_init__(self) -> None:
        if not (0 < self.maintenance <= self.initial <= 1):
            raise ValueError("rule: need 0 < maintenance ≤ initial ≤ 1")
        if not (0 <= self.penalty < self.initial):
            raise ValueError("rule: the penalty must be ≥ 0 and below the initial rate")


@dataclass(frozen=True)
class Accounts:
    """A population: cash (USD), signed linear positions (coin) and their entry prices."""

    cash: np.ndarray
    quantity: np.ndarray
    entry: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.cash)
        if len(self.quantity) != n or len(self.entry) != n:
            raise ValueError("accounts: cash, quantity and entry need one value per account")
        for name in ("cash", "quantity", "entry"):
            if not np.all(np.isfinite(getattr(self, name))):
                raise ValueError(f"accounts.{name} must be finite")
        if np.any(self.cash < 0):
            raise ValueError("accounts.cash must be ≥ 0 (collateral, not debt)")
        if np.any(self.entry <= 0):
            raise ValueError("accounts.entry must be > 0")


@dataclass(frozen=True)
class CascadeRun:
    """Per step: the exogenous price, the price with impact, liquidations (an account partly
    liquidated in two rounds of a step counts twice), volume
    liquidated (USD), the step's impact, bad debt, fund balance and auto-deleveraging; the
    final cash and positions; and the ledger's totals.
    """

    path: np.ndarray
    price: np.ndarray
    liquidated: np.ndarray
    volume: np.ndarray
    impact: np.ndarray
    bad_debt: np.ndarray
    fund: np.ndarray
    adl: np.ndarray
    rounds: np.ndarray
    cash: np.ndarray
    quantity: np.ndarray
    ledger: dict[str, float] = field(default_factory=dict)

    @property
    def total_bad_debt(self) -> float:
        """Bad debt over the whole path (USD)."""
        return float(self.bad_debt.sum())


class Tally:
    """A cascade's running totals and per-step records, shared by the simulators: what is
    realised, charged to the insurance fund, drawn from it and auto-deleveraged, so that every
    simulator keeps the same ledger.
    """

    def __init__(self, path: np.ndarray, fund: float) -> None:
        n = len(path)
        self.path = path
        self.fund = self.fund_start = fund
        self.realised = self.penalties = self.bad = self.draws = self.adl = 0.0
        self.out = {k: np.zeros(n) for k in ("price", "volume", "impact", "bad", "fund", "adl")}
        self.liquidated = np.zeros(n, dtype=np.int64)
        self.rounds = np.zeros(n, dtype=np.int64)

    def charge(self, amount: float) -> None:
        """A liquidation penalty paid into the insurance fund."""
        self.penalties += amount
        self.fund += amount

    def bad_debt(self, t: int, total: float) -> None:
        """Bad debt at step ``t``: drawn from the fund, the rest auto-deleveraged."""
        draw = min(total, self.fund)
        self.fund -= draw
        self.draws += draw
        self.bad += total
        self.adl += total - draw
        self.out["bad"][t] += total
        self.out["adl"][t] += total - draw

    def step(self, t: int, price: float) -> None:
        """Close step ``t`` at ``price`` (with impact)."""
        self.out["price"][t] = price
        self.out["impact"][t] = price / self.path[t] - 1.0
        self.out["fund"][t] = self.fund

    def run(
        self,
        cash: np.ndarray,
        quantity: np.ndarray,
        collateral: float,
        unrealised: float,
        equity: float,
    ) -> CascadeRun:
        """The finished run, its ledger balancing collateral + P&L against equity, penalties
        and bad debt.
        """
        return CascadeRun(
            path=self.path,
            price=self.out["price"],
            liquidated=self.liquidated,
            volume=self.out["volume"],
            impact=self.out["impact"],
            bad_debt=self.out["bad"],
            fund=self.out["fund"],
            adl=self.out["adl"],
            rounds=self.rounds,
            cash=cash,
            quantity=quantity,
            ledger={
                "collateral": collateral,
                "realised_pnl": self.realised,
                "unrealised_pnl": unrealised,
                "equity": equity,
                "penalties": self.penalties,
                "bad_debt": self.bad,
                "fund_start": self.fund_start,
                "fund_draws": self.draws,
                "fund_end": self.fund,
                "adl": self.adl,
            },
        )


def checked_path(path: np.ndarray, fund: float) -> np.ndarray:
    """``path`` as floats, refused unless it is a non-empty series (or rows of series) of
    positive prices; and the fund refused unless finite and ≥ 0 — what every simulator
    asks of its inputs.
    """
    path = np.asarray(path, dtype=float)
    if not 1 <= path.ndim <= 2 or not path.shape[-1] or not np.all(np.isfinite(path) & (path > 0)):
        raise ValueError("path: a non-empty series of positive prices")
    if not (math.isfinite(fund) and fund >= 0):
        raise ValueError("fund must be a finite number ≥ 0")
    return path


def _fractions(equity: np.ndarray, notional: np.ndarray, rule: LiquidationRule) -> np.ndarray:
    if rule.mode is Mode.FULL:
        return np.ones_like(equity)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = (rule.initial * notional - equity) / ((rule.initial - rule.penalty) * notional)
    return np.where(notional > 0, np.clip(f, 0.0, 1.0), 0.0)


def _execution_price(
    p: float,
    cash: np.ndarray,
    q: np.ndarray,
    entry: np.ndarray,
    rule: LiquidationRule,
    impact: ImpactModel,
    tol: float,
) -> tuple[float, np.ndarray]:
    """The fixed point x = p(1 − sign(Q) impact(|Q|)) with Q = Σ f_i(x) q_i p, by iteration
    from x = p (a contraction for any impact below the cap), and the fractions at it.
    """
    if rule.mode is Mode.FULL:  # every fraction is 1: the flow does not depend on x
        flow = float(q.sum()) * p
        move = float(impact.move(flow))
        x = p * (1.0 - math.copysign(move, flow)) if flow != 0 else p
        return x, np.ones_like(q)
    x = p
    for _ in range(200):
        equity = cash + q * (x - entry)
        f = _fractions(equity, np.abs(q) * x, rule)
        flow = float(np.sum(f * q)) * p  # > 0: longs sold
        move = float(impact.move(flow))
        nxt = p * (1.0 - math.copysign(move, flow)) if flow != 0 else p
        if abs(nxt - x) <= tol * p:
            x = nxt
            break
        x = nxt
    equity = cash + q * (x - entry)
    return x, _fractions(equity, np.abs(q) * x, rule)


def _thresholds(cash: np.ndarray, q: np.ndarray, entry: np.ndarray, m: float) -> np.ndarray:
    """Each account's liquidation price: where c + q(p − e) = m|q|p (NaN when flat)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(q != 0, (q * entry - cash) / (q - m * np.abs(q)), np.nan)


def _extremes(threshold: np.ndarray, q: np.ndarray) -> tuple[float, float]:
    longs, shorts = threshold[q > 0], threshold[q < 0]
    return (
        float(longs.max()) if len(longs) else -math.inf,
        float(shorts.min()) if len(shorts) else math.inf,
    )


def simulate(
    accounts: Accounts,
    path: np.ndarray,
    rule: LiquidationRule,
    impact: ImpactModel,
    fund: float = 0.0,
    *,
    max_rounds: int = 100,
    tol: float = 1e-13,
) -> CascadeRun:
    """Step ``accounts`` through the exogenous ``path`` of prices (see the module)."""
    path = checked_path(path, fund)
    if path.ndim != 1:
        raise ValueError("path: a non-empty series of positive prices")
    cash = np.array(accounts.cash, dtype=float)  # copies: the caller's population is kept
    q = np.array(accounts.quantity, dtype=float)
    entry = np.array(accounts.entry, dtype=float)
    tally = Tally(path, fund)
    multiplier = 1.0  # the cumulative impact on the exogenous path
    # A linear account is under maintenance exactly when the price crosses its liquidation
    # price: a long below L, a short above it. The highest long and lowest short L tell in
    # O(1) whether a step liquidates anyone; the exact equity test then decides on the
    # candidates, and only a step with liquidations recomputes the extremes.
    threshold = _thresholds(cash, q, entry, rule.maintenance)
    long_max, short_min = _extremes(threshold, q)
    for t in range(len(path)):
        p = path[t] * multiplier
        # skip the step when safely clear of every threshold (rounding cannot hide anyone)
        if long_max + 1e-12 * abs(long_max) <= p <= short_min - 1e-12 * abs(short_min):
            tally.step(t, p)
            continue
        for r in range(max_rounds):
            near = np.flatnonzero(
                ((q > 0) & (threshold >= p * (1 - 1e-12)))
                | ((q < 0) & (threshold <= p * (1 + 1e-12)))
            )
            # a flat account has equity = cash ≥ 0 against a margin of 0: never under
            exact = cash[near] + q[near] * (p - entry[near]) < (
                rule.maintenance * p * np.abs(q[near])
            )
            idx = near[exact]
            if not len(idx):
                break
            tally.rounds[t] = r + 1
            c_i, q_i, e_i = cash[idx], q[idx], entry[idx]  # gathered once, scattered once
            x, f = _execution_price(p, c_i, q_i, e_i, rule, impact, tol)
            closed = f * q_i
            move = x - e_i
            gain = closed * move
            c_i = c_i + gain
            tally.realised += float(gain.sum())
            q_i = q_i - closed
            penalty = np.minimum(
                rule.penalty * np.abs(closed) * x, np.maximum(c_i + q_i * move, 0.0)
            )
            c_i -= penalty
            tally.charge(float(penalty.sum()))
            # what is left below zero once the position is gone (or marked at x) is bad debt;
            # a partly liquidated account under water is closed out entirely
            under_water = c_i + q_i * move < 0
            if under_water.any():
                rest_gain = q_i[under_water] * move[under_water]
                c_i[under_water] += rest_gain
                tally.realised += float(rest_gain.sum())
                q_i[under_water] = 0.0
                tally.bad_debt(t, float(np.maximum(-c_i, 0.0).sum()))
                c_i = np.maximum(c_i, 0.0)
            cash[idx], q[idx] = c_i, q_i
            tally.out["volume"][t] += float(np.abs(closed).sum()) * x
            tally.liquidated[t] += int(np.count_nonzero(closed))
            multiplier *= x / p
            p = x
            threshold[idx] = _thresholds(c_i, q_i, e_i, rule.maintenance)
        if tally.rounds[t]:
            long_max, short_min = _extremes(threshold, q)
        tally.step(t, p)
    unrealised = float(np.sum(q * (p - entry)))
    equity = float(np.sum(cash + q * (p - entry)))
    return tally.run(cash, q, float(accounts.cash.sum()), unrealised, equity)


def synthetic_population(
    n: int, seed: int, price: float, max_leverage: float, *, size_usd: float = 20_000.0
) -> Accounts:
    """``n`` accounts a committee can run without private data: notionals heavy-tailed
    (lognormal, median ``size_usd``, a few a hundred times larger), leverage near the limit
    (uniform between half and 98 % of ``max_leverage``), long or short at even odds, entered at
    ``price``. The same seed gives the same population.
    """
    if n < 1 or not (math.isfinite(price) and price > 0) or not max_leverage >= 1:
        raise ValueError("population: need n ≥ 1, a positive price and max leverage ≥ 1")
    rng = np.random.default_rng([seed, 18])
    notional = size_usd * rng.lognormal(0.0, 1.5, n)
    leverage = rng.uniform(0.5, 0.98, n) * max_leverage
    side = rng.choice([-1.0, 1.0], n)
    return Accounts(notional / leverage, side * notional / price, np.full(n, float(price)))


def intraday_path(
    opens: np.ndarray, highs: np.ndarray, lows: np.ndarray, closes: np.ndarray
) -> np.ndarray:
    """Four points a day from daily bars: the open, then the extreme the day's close moved
    away from, then the other, then the close (a day that closed down is taken to have
    seen its high first), so each day's range is crossed once in its direction.
    """
    points = []
    for o, h, lo, c in zip(opens, highs, lows, closes, strict=True):
        first, second = (h, lo) if c < o else (lo, h)
        points += [o, first, second, c]
    return np.asarray(points, dtype=float)


def calibrate_impact(
    closes: np.ndarray,
    volumes_usd: np.ndarray,
    *,
    y: float = 0.7,
    half_spread: float = 0.0005,
    fallback_volume: float = 1e9,
) -> tuple[ImpactModel, list[str]]:
    """The square-root model from the days before a window: σ the standard deviation of their
    daily log returns, V the median of their USD volumes (``fallback_volume`` when none is
    known, said in the notes). ``y`` and the half spread are given (see
    :mod:`margin_engine.impact`).
    """
    closes = np.asarray(closes, dtype=float)
    closes = closes[np.isfinite(closes) & (closes > 0)]
    if len(closes) < 10:
        raise ValueError("fewer than 10 closes to calibrate the impact model on")
    daily_vol = float(np.diff(np.log(closes)).std(ddof=1))
    volumes = np.asarray(volumes_usd, dtype=float)
    volumes = volumes[np.isfinite(volumes) & (volumes > 0)]
    notes = []
    if len(volumes):
        volume = float(np.median(volumes))
    else:
        volume = fallback_volume
        notes.append(f"no volume before the window: {fallback_volume:,.0f} USD a day assumed")
    model = ImpactModel(
        ImpactKind.SQUARE_ROOT,
        y=y,
        daily_vol=daily_vol,
        daily_volume=volume,
        half_spread=half_spread,
    )
    return model, notes


def run_summary(run: CascadeRun) -> dict:
    """A run as plain values: the totals and one record per step."""
    return {
        "bad_debt": run.total_bad_debt,
        "liquidations": int(run.liquidated.sum()),
        "volume_usd": float(run.volume.sum()),
        "largest_impact": float(np.abs(run.impact).max()) if len(run.impact) else 0.0,
        "ledger": dict(run.ledger),
        "steps": [
            {
                "step": t,
                "path": float(run.path[t]),
                "price": float(run.price[t]),
                "liquidated": int(run.liquidated[t]),
                "volume_usd": float(run.volume[t]),
                "bad_debt": float(run.bad_debt[t]),
                "fund": float(run.fund[t]),
                "adl": float(run.adl[t]),
            }
            for t in range(len(run.path))
        ],
    }


def random_paths(
    price: float,
    daily_vol: float,
    days: int,
    steps_per_day: int,
    n: int,
    seed: int,
    dof: float = 4.0,
) -> np.ndarray:
    """``n`` price paths (n × days·steps) from ``price``: Student-t log returns (``dof``,
    scaled to ``daily_vol`` a day, split evenly over the steps). A simple, seeded stand-in for
    a fitted model's paths; the same seed gives the same paths.
    """
    if not (n >= 1 and days >= 1 and steps_per_day >= 1 and dof > 2 and daily_vol >= 0):
        raise ValueError("paths: need n, days, steps ≥ 1, dof > 2 and a volatility ≥ 0")
    rng = np.random.default_rng([seed, 1018])
    steps = days * steps_per_day
    scale = daily_vol / math.sqrt(steps_per_day) / math.sqrt(dof / (dof - 2.0))
    returns = rng.standard_t(dof, size=(n, steps)) * scale
    return price * np.exp(np.cumsum(returns, axis=1))


def model_paths(
    model: JointModel, price: float, days: int, steps_per_day: int, n: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` price paths (n × days·steps) of ``model``'s first underlying from ``price``, and
    its implied vol's ratios to the start at the same points: the
    fitted joint model's simulation (bootstrapped joint standardised residuals when the model
    holds them, else Student-t), intraday points on a Brownian bridge with each day's
    conditional volatility (:func:`margin_engine.montecarlo.intraday_paths`). Seeded.
    """
    innovations = (
        Innovations.FILTERED_HISTORICAL if model.residuals is not None else Innovations.STUDENT_T
    )
    sim = Simulation(max(n, 100), days, seed, innovations=innovations, sampling=Sampling.PSEUDO)
    prices, vols = intraday_paths(model, sim, steps_per_day, with_vols=True)
    return price * prices[:n, 0, :], vols[:n, 0, :]


def bad_debt_risk(losses: np.ndarray, levels: tuple[float, ...] = (0.95, 0.99)) -> dict:
    """Bad-debt VaR and ES of the equally likely ``losses`` at each level (the Monte Carlo
    engine's tail measures), keyed ``var_95``, ``es_95``, …
    """
    out = {}
    for level, measures in zip(
        levels, tail_measures_at(np.asarray(losses)[None, :], levels), strict=True
    ):
        tag = f"{round(level * 100):d}"
        out[f"var_{tag}"], out[f"es_{tag}"] = float(measures.var[0]), float(measures.es[0])
    return out


def bad_debt_distribution(
    accounts: Accounts,
    paths: np.ndarray,
    rule: LiquidationRule,
    impact: ImpactModel,
    fund: float = 0.0,
) -> np.ndarray:
    """Bad debt of the population along each path (one cascade per path). Full liquidation
    runs every path of a block at once (:func:`_full_bad_debt`: the same cascades as
    :func:`simulate`, to rounding); partial liquidation, path by path.
    """
    paths = np.atleast_2d(checked_path(paths, fund))
    if rule.mode is not Mode.FULL:
        return np.array(
            [simulate(accounts, path, rule, impact, fund).total_bad_debt for path in paths]
        )
    return _full_bad_debt(accounts, paths, rule, impact, fund)


def _full_bad_debt(
    accounts: Accounts,
    paths: np.ndarray,
    rule: LiquidationRule,
    impact: ImpactModel,
    fund: float,
    max_rounds: int = 100,
) -> np.ndarray:
    """:func:`simulate`'s full-liquidation cascade along every row of ``paths``, compiled:
    each account's liquidation price sorts the longs (highest first) and the shorts (lowest
    first), so a round only visits the accounts near the price and each path costs its
    liquidations, not its accounts. Returns each path's bad debt.
    """
    cash = np.asarray(accounts.cash, dtype=float)
    q = np.asarray(accounts.quantity, dtype=float)
    entry = np.asarray(accounts.entry, dtype=float)
    threshold = _thresholds(cash, q, entry, rule.maintenance)
    longs = np.flatnonzero(q > 0)
    longs = longs[np.argsort(-threshold[longs], kind="stable")]
    shorts = np.flatnonzero(q < 0)
    shorts = shorts[np.argsort(threshold[shorts], kind="stable")]
    out = np.zeros(len(paths))
    _full_kernel(
        cash, q, entry, threshold, longs, shorts, np.ascontiguousarray(paths, dtype=float),
        rule.maintenance, rule.penalty, _IMPACT_CODE[impact.kind], impact.y, impact.daily_vol,
        impact.daily_volume, impact.half_spread, impact.linear, impact.cap, float(fund),
        max_rounds, out,
    )  # fmt: skip
    return out


_IMPACT_CODE = {ImpactKind.NONE: 0, ImpactKind.LINEAR: 1, ImpactKind.SQUARE_ROOT: 2}


@numba.njit(cache=True, nogil=True)
def _gather(
    order, first, side, p, cash, q, entry, threshold, m, alive, chosen, count
):  # pragma: no cover
    # one side's accounts under maintenance at p, appended to chosen[count:]: longs (side 1)
    # by liquidation price from the highest down while it is at or above p, shorts (side -1)
    # from the lowest up while at or below it; the exact equity test decides each, as in
    # simulate; returns the new count and the quantity they hold
    held = 0.0
    j = first
    while j < len(order) and side * threshold[order[j]] >= side * p * (1 - side * 1e-12):
        i = order[j]
        if alive[i] and cash[i] + q[i] * (p - entry[i]) < m * p * abs(q[i]):
            chosen[count] = i
            count += 1
            held += q[i]
        j += 1
    return count, held


@numba.njit(cache=True, nogil=True)
def _full_kernel(  # pragma: no cover - compiled; checked against simulate
    cash0, q, entry, threshold, longs, shorts, paths, m, penalty,
    kind, y, vol, volume, half, linear, cap, fund0, max_rounds, out,
):  # fmt: skip
    n = len(cash0)
    cash = np.empty(n)
    alive = np.empty(n, np.bool_)
    chosen = np.empty(n, np.int64)
    for k in range(paths.shape[0]):
        for i in range(n):
            cash[i] = cash0[i]
            alive[i] = q[i] != 0.0
        first_long = 0
        first_short = 0
        fund = fund0
        bad_total = 0.0
        multiplier = 1.0
        for t in range(paths.shape[1]):
            p = paths[k, t] * multiplier
            for _ in range(max_rounds):
                while first_long < len(longs) and not alive[longs[first_long]]:
                    first_long += 1
                while first_short < len(shorts) and not alive[shorts[first_short]]:
                    first_short += 1
                count, held = _gather(
                    longs, first_long, 1.0, p, cash, q, entry, threshold, m, alive, chosen, 0
                )
                count, more = _gather(
                    shorts, first_short, -1.0, p, cash, q, entry, threshold, m, alive, chosen, count
                )
                held += more
                if count == 0:
                    break
                flow = held * p
                size = abs(flow)
                if size == 0.0 or kind == 0:
                    move = 0.0
                elif kind == 1:
                    move = min(linear * size, cap)
                else:
                    move = min(y * vol * math.sqrt(size / volume) + half, cap)
                x = p * (1.0 - math.copysign(move, flow)) if flow != 0 else p
                charged = 0.0
                bad = 0.0
                for c in range(count):
                    i = chosen[c]
                    left = cash[i] + q[i] * (x - entry[i])
                    fee = min(penalty * abs(q[i]) * x, max(left, 0.0))
                    left -= fee
                    charged += fee
                    if left < 0.0:
                        bad += -left
                        left = 0.0
                    cash[i] = left
                    alive[i] = False
                fund += charged
                fund -= min(bad, fund)
                bad_total += bad
                multiplier *= x / p
                p = x
        out[k] = bad_total
