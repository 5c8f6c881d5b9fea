"""Derive's portfolio margin, version 2 (PMRM 2), implemented from its published method.

The method is the one Derive publishes in its open-source v2 contracts (``derivexyz/v2-core``,
the PMRM 2 risk manager and its library); this module is our own implementation of those
formulas in floating point, not a translation of the contracts. One underlying (its spot,
perpetual, options by expiry) plus cash and collateral assets form a portfolio.

Per expiry :math:`e` with :math:`\\tau_e` years to expiry, rate :math:`r_e \\ge 0` and discount
:math:`D_e = e^{-r_e \\tau_e}`, the forward is split into a fixed and a variable portion (the
fixed part grows over the last 30 minutes, as the settlement average is struck), and a spot
shock :math:`s` moves only the variable part: :math:`F_e(s) = s F^{var}_e + F^{fix}_e`. The
expiry's value in a scenario is the Black-76 value of its options at the shocked forward and
shocked vols, scaled by a static discount that dampens time value (a long value by
:math:`d^+_e`, a short value by :math:`d^-_e`):

.. math::

    d^+_e = b^+ e^{-\\tau_e (r_e m^+ + a^+)}, \\qquad
    d^-_e = \\min\\left(\\frac{b^-}{e^{-\\tau_e (r_e m^- + a^-)}}, \\frac{1}{D_e}\\right).

A scenario's P&L is the sum over expiries of :math:`w (V_e(s, v) d^\\pm_e - V_e)` (with the
dampening weight :math:`w`), the perpetual's :math:`w\\,q_p (s - 1) P_p` and, for collateral that
cancels risk, :math:`w\\,C (s - 1)`. Vol shocks scale each vol by
:math:`1 \\pm R_{up/down} (30\\text{d} / \\max(T, T_{floor}))^{p}` (the short-term power for
expiries within 30 days, the long-term one beyond; an up-shocked vol is at least the floor
vol). Skew scenarios lift the wings: with :math:`k = \\ln(K/F)` (its absolute value for the
*abs* scenario), a cap :math:`c = c_0 \\sqrt\\tau + c_1` and :math:`k^* = \\max(k^*_{min},
\\sqrt\\tau\\,W (v_0 + v_1 \\sqrt\\tau))`, each vol is multiplied by
:math:`\\max(0, 1 + \\operatorname{clip}(k c / k^*, -c, c))`, and every expiry counts with
the sign of a loss (:math:`-|P_e|`), approximating the skew rotating the other way.

The basis contingency starts the minimum: per expiry
:math:`\\min(V_e(s_{up}) - V_e, V_e(s_{down}) - V_e, 0)\\,(a_b + m_b \\tau_e)`, summed. With
:math:`L = \\min(\\text{basis}, \\min_j P_j)` and the loss factor :math:`f` (IM or MM; for IM
raised by :math:`(\\theta_{peg} - p_{stable}) f_{peg}` when the stablecoin trades below the
threshold), the margin balance Derive reports is

.. math::

    M = E + f L - C_{MM} - [\\text{IM}]\\, C_{IM},

where :math:`E` is cash plus the marked value of options, perpetual P&L and collateral, and the
contingencies :math:`C` charge a percentage of perpetual and naked short option notional,
collateral haircuts, and, where an oracle's confidence falls below the threshold,
:math:`(1 - \\text{confidence}) \\times \\text{margin} \\times \\text{notional}`. ``M < 0`` is
a shortfall; the *requirement* this module reports beside it is :math:`E - M \\ge 0`.

Collateral is valued in the stablecoin (price over the stablecoin's price); negative rates are
taken as zero, as Derive does.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.special import ndtr

__all__ = [
    "BasisParams",
    "Collateral",
    "ContingencyParams",
    "DeriveParams",
    "Expiry",
    "LossParams",
    "Option",
    "PMRM2Result",
    "Portfolio",
    "Scenario",
    "SkewParams",
    "VolShock",
    "VolShockParams",
    "pmrm2_margin",
]

YEAR_SECONDS = 365 * 86_400
MONTH_SECONDS = 30 * 86_400
SETTLEMENT_SECONDS = 30 * 60  # the forward's fixed portion grows over the last 30 minutes
MAX_TOTAL_VOL = 24.0  # σ√τ beyond which a standard call is worth the discounted forward


class VolShock(enum.Enum):
    """How a scenario moves implied vols."""

    NONE = "none"
    UP = "up"
    DOWN = "down"
    LINEAR = "linear"  # the skew scenario lifting one wing, lowering the other
    ABS = "abs"  # the skew scenario lifting both wings


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _finite(owner: str, **values: float) -> None:
    for name, value in values.items():
        _check(math.isfinite(value), f"{owner}.{name} must be finite, got {value!r}")


@dataclass(frozen=True)
class Scenario:
    """One margin scenario: a spot multiplier, a vol shock and the dampening weight of its P&L.

    Skew scenarios do not move spot (Derive evaluates them at the unshocked forward), so a
    skew scenario with a spot shock other than 1 is refused rather than silently ignored.
    """

    spot_shock: float
    vol_shock: VolShock
    dampening: float = 1.0

    def __post_init__(self) -> None:
        _finite("scenario", spot_shock=self.spot_shock, dampening=self.dampening)
        _check(self.spot_shock >= 0, f"scenario.spot_shock must be ≥ 0, got {self.spot_shock}")
        _check(self.dampening >= 0, f"scenario.dampening must be ≥ 0, got {self.dampening}")
        if self.vol_shock in (VolShock.LINEAR, VolShock.ABS):
            _check(
                self.spot_shock == 1.0,
                f"scenario: a {self.vol_shock.value} skew scenario does not move spot "
                f"(spot_shock must be 1, got {self.spot_shock})",
            )


@dataclass(frozen=True)
class VolShockParams:
    """Vol shock sizes: ranges up and down, term powers, the days floor and the floor vol."""

    range_up: float
    range_down: float
    short_term_power: float
    long_term_power: float
    floor_seconds: float
    min_vol_up: float

    def __post_init__(self) -> None:
        _finite("vol_shock", **vars(self))
        _check(
            0 <= self.range_up <= 10, f"vol_shock.range_up must be in [0, 10], got {self.range_up}"
        )
        _check(
            0 <= self.range_down <= 10,
            f"vol_shock.range_down must be in [0, 10], got {self.range_down}",
        )
        _check(
            0 <= self.short_term_power <= 10 and 0 <= self.long_term_power <= 10,
            "vol_shock: the term powers must be in [0, 10]",
        )
        _check(
            0 <= self.floor_seconds <= 400 * 86_400,
            f"vol_shock.floor_seconds must be in [0, 400 days], got {self.floor_seconds}",
        )
        _check(
            0 <= self.min_vol_up <= 20,
            f"vol_shock.min_vol_up must be in [0, 20], got {self.min_vol_up}",
        )


@dataclass(frozen=True)
class LossParams:
    """Loss factors and the static discounts' base and rate scaling (long ``+``, short ``-``)."""

    im_factor: float
    mm_factor: float
    short_rate_mult: float
    long_rate_mult: float
    short_rate_add: float
    long_rate_add: float
    short_static_discount: float
    long_static_discount: float

    def __post_init__(self) -> None:
        _finite("margin", **vars(self))
        _check(
            0.5 <= self.im_factor <= 10,
            f"margin.im_factor must be in [0.5, 10], got {self.im_factor}",
        )
        _check(
            0.1 <= self.mm_factor <= 10,
            f"margin.mm_factor must be in [0.1, 10], got {self.mm_factor}",
        )
        for name in ("short_rate_mult", "long_rate_mult", "short_rate_add", "long_rate_add"):
            value = getattr(self, name)
            _check(0 <= value <= 10, f"margin.{name} must be in [0, 10], got {value}")
        for name in ("short_static_discount", "long_static_discount"):
            value = getattr(self, name)
            _check(0 <= value <= 4, f"margin.{name} must be in [0, 4], got {value}")


@dataclass(frozen=True)
class BasisParams:
    """The basis contingency: its spot moves and the charge's constant and per-year factors."""

    spot_up: float
    spot_down: float
    add_factor: float
    mult_factor: float

    def __post_init__(self) -> None:
        _finite("basis", **vars(self))
        _check(1 < self.spot_up < 3, f"basis.spot_up must be in (1, 3), got {self.spot_up}")
        _check(0 <= self.spot_down < 1, f"basis.spot_down must be in [0, 1), got {self.spot_down}")
        _check(
            0 <= self.add_factor <= 20,
            f"basis.add_factor must be in [0, 20], got {self.add_factor}",
        )
        _check(
            0 <= self.mult_factor <= 20,
            f"basis.mult_factor must be in [0, 20], got {self.mult_factor}",
        )


@dataclass(frozen=True)
class ContingencyParams:
    """Stablecoin peg, oracle confidence, perpetual and short option contingencies."""

    peg_loss_threshold: float
    peg_loss_factor: float
    confidence_threshold: float
    confidence_margin: float
    mm_perp_percent: float
    im_perp_percent: float
    mm_option_percent: float
    im_option_percent: float

    def __post_init__(self) -> None:
        _finite("contingency", **vars(self))
        bounds = {
            "peg_loss_threshold": 100,
            "peg_loss_factor": 10,
            "confidence_threshold": 1,
            "confidence_margin": 20,
            "mm_perp_percent": 3,
            "im_perp_percent": 3,
            "mm_option_percent": 2,
            "im_option_percent": 2,
        }
        for name, upper in bounds.items():
            value = getattr(self, name)
            _check(0 <= value <= upper, f"contingency.{name} must be in [0, {upper}], got {value}")


@dataclass(frozen=True)
class SkewParams:
    """Skew scenarios: the linear and abs multiplier caps (constant and per √year) and k*."""

    linear_base_cap: float
    abs_base_cap: float
    linear_c_base: float
    abs_c_base: float
    min_k_star: float
    width_scale: float
    vol_param_static: float
    vol_param_scale: float

    def __post_init__(self) -> None:
        _finite("skew", **vars(self))
        _check(0 <= self.linear_base_cap <= 10, "skew.linear_base_cap must be in [0, 10]")
        _check(0 <= self.abs_base_cap <= 10, "skew.abs_base_cap must be in [0, 10]")
        _check(-10 <= self.linear_c_base <= 10, "skew.linear_c_base must be in [-10, 10]")
        _check(-10 <= self.abs_c_base <= 10, "skew.abs_c_base must be in [-10, 10]")
        _check(
            0 <= self.min_k_star <= 10, f"skew.min_k_star must be in [0, 10], got {self.min_k_star}"
        )
        _check(0 <= self.width_scale <= 10, "skew.width_scale must be in [0, 10]")
        _check(0 <= self.vol_param_static <= 10, "skew.vol_param_static must be in [0, 10]")
        _check(-20 <= self.vol_param_scale <= 20, "skew.vol_param_scale must be in [-20, 20]")


@dataclass(frozen=True)
class DeriveParams:
    """A PMRM 2 parameter set: the scenarios and the five parameter groups."""

    scenarios: tuple[Scenario, ...]
    vol_shock: VolShockParams
    margin: LossParams
    basis: BasisParams
    contingency: ContingencyParams
    skew: SkewParams

    def __post_init__(self) -> None:
        _check(len(self.scenarios) > 0, "derive params: at least one scenario is needed")


@dataclass(frozen=True)
class Option:
    """An option position: strike, type, signed amount (negative: short) and its vol."""

    strike: float
    is_call: bool
    amount: float
    vol: float
    vol_confidence: float = 1.0

    def __post_init__(self) -> None:
        _finite("option", strike=self.strike, amount=self.amount, vol=self.vol)
        _check(self.strike >= 0, f"option.strike must be ≥ 0, got {self.strike}")
        _check(self.vol >= 0, f"option.vol must be ≥ 0, got {self.vol}")


@dataclass(frozen=True)
class Expiry:
    """The options of one expiry with its forward (fixed and variable portions) and rate."""

    seconds: int
    forward_variable: float
    forward_fixed: float
    rate: float
    options: tuple[Option, ...]
    confidence: float = 1.0  # the lowest of the forward's and the rate's

    def __post_init__(self) -> None:
        _finite(
            "expiry",
            forward_variable=self.forward_variable,
            forward_fixed=self.forward_fixed,
            rate=self.rate,
        )
        _check(self.seconds >= 0, f"expiry.seconds must be ≥ 0, got {self.seconds}")
        _check(
            self.forward_variable >= 0 and self.forward_fixed >= 0,
            "expiry: the forward's portions must be ≥ 0",
        )

    @classmethod
    def from_forward(
        cls,
        seconds: int,
        forward: float,
        rate: float,
        options: Sequence[Option],
        confidence: float = 1.0,
    ) -> Expiry:
        """An expiry whose forward is split as Derive's feed splits it: all variable until
        the last 30 minutes, then fixed in proportion to the time elapsed in them.
        """
        if seconds < SETTLEMENT_SECONDS:
            fixed = forward * (SETTLEMENT_SECONDS - seconds) / SETTLEMENT_SECONDS
            variable = forward * seconds / SETTLEMENT_SECONDS
        else:
            fixed, variable = 0.0, forward
        return cls(int(seconds), variable, fixed, rate, tuple(options), confidence)

    @property
    def years(self) -> float:
        """Time to expiry in years of 365 days."""
        return self.seconds / YEAR_SECONDS

    @property
    def discount(self) -> float:
        """The discount factor :math:`e^{-\\max(r, 0) \\tau}`."""
        return math.exp(-max(self.rate, 0.0) * self.years)


@dataclass(frozen=True)
class Collateral:
    """A collateral asset: amount, price, oracle confidence, haircuts, and whether it moves
    with the underlying (risk cancelling) in the scenarios.
    """

    name: str
    amount: float
    price: float
    confidence: float = 1.0
    risk_cancelling: bool = False
    im_haircut: float = 0.0
    mm_haircut: float = 0.0

    def __post_init__(self) -> None:
        _finite("collateral", amount=self.amount, price=self.price)
        _check(self.amount >= 0, f"collateral {self.name}: amount must be ≥ 0, got {self.amount}")
        _check(self.price >= 0, f"collateral {self.name}: price must be ≥ 0, got {self.price}")
        _check(
            0 <= self.mm_haircut <= 1
            and 0 <= self.im_haircut
            and self.im_haircut + self.mm_haircut <= 1,
            f"collateral {self.name}: haircuts must be ≥ 0 with mm ≤ 1 and im + mm ≤ 1",
        )


@dataclass(frozen=True)
class Portfolio:
    """One PMRM 2 portfolio: spot and stablecoin prices, cash, a perpetual, options and
    collateral. ``perp_value`` is the perpetual's unsettled P&L and funding.
    """

    spot: float
    expiries: tuple[Expiry, ...] = ()
    collaterals: tuple[Collateral, ...] = ()
    cash: float = 0.0
    perp_position: float = 0.0
    perp_price: float = 0.0
    perp_value: float = 0.0
    stable_price: float = 1.0
    spot_confidence: float = 1.0
    perp_confidence: float = 1.0

    def __post_init__(self) -> None:
        _finite("portfolio", spot=self.spot, cash=self.cash, perp_position=self.perp_position)
        _check(self.spot > 0, f"portfolio.spot must be > 0, got {self.spot}")
        _check(
            self.stable_price > 0, f"portfolio.stable_price must be > 0, got {self.stable_price}"
        )


@dataclass(frozen=True)
class PMRM2Result:
    """Margins of one portfolio. ``*_margin`` are requirements (≥ 0, in the stablecoin);
    ``*_balance`` are Derive's reported figures (equity less requirement; < 0 is a
    shortfall). ``scenario_pnl[j]`` is scenario ``j``'s P&L against the mark; ``worst`` is
    the index of the worst scenario, ``len(scenarios)`` when the basis contingency binds.
    """

    initial_margin: float
    maintenance_margin: float
    initial_balance: float
    maintenance_balance: float
    equity: float
    option_value: float
    collateral_value: float
    scenario_pnl: np.ndarray
    basis_contingency: float
    worst: int
    im_contingency: float
    mm_contingency: float
    expiry_value: np.ndarray = field(repr=False)


def _standard_prices(moneyness: np.ndarray, total_vol: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Call and put per unit of discounted forward (forward = discount = 1): the call from
    Black-76, the put by parity, both floored at zero; intrinsic value at zero vol.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.log(moneyness)
        d1 = (0.5 * total_vol * total_vol - k) / total_vol
        call = ndtr(d1) - moneyness * ndtr(d1 - total_vol)
    intrinsic = np.maximum(1.0 - moneyness, 0.0)
    call = np.where(total_vol > 0, call, intrinsic)
    call = np.where(total_vol >= MAX_TOTAL_VOL, 1.0, np.maximum(call, 0.0))
    put = np.maximum(call + moneyness - 1.0, 0.0)
    return call, put


def option_values(
    forward: np.ndarray | float,
    strikes: np.ndarray,
    years: np.ndarray | float,
    discount: np.ndarray | float,
    vols: np.ndarray,
    calls: np.ndarray,
) -> np.ndarray:
    """Each option's Black-76 value at ``forward`` (Derive's rules: the put by parity, capped
    at the discounted forward and strike; a zero strike is the forward; a zero forward leaves
    the put its strike). Arrays broadcast.
    """
    forward = np.asarray(forward, dtype=float)
    forward_discounted = forward * discount
    strike_discounted = strikes * discount
    safe = np.where(forward > 0, forward, 1.0)
    with np.errstate(divide="ignore"):
        standard_call, standard_put = _standard_prices(strikes / safe, vols * np.sqrt(years))
    call = np.minimum(standard_call * forward_discounted, forward_discounted)
    put = np.minimum(standard_put * forward_discounted, strike_discounted)
    call, put = np.where(forward > 0, call, 0.0), np.where(forward > 0, put, strike_discounted)
    call = np.where(strikes == 0, forward_discounted, call)
    put = np.where(strikes == 0, 0.0, put)
    return np.where(calls, call, put)


def _value(expiry: Expiry, forward: float, vols: np.ndarray) -> float:
    """The expiry's options at ``forward`` and ``vols`` (Black-76, discounted)."""
    if not expiry.options:
        return 0.0
    strikes = np.array([o.strike for o in expiry.options])
    amounts = np.array([o.amount for o in expiry.options])
    calls = np.array([o.is_call for o in expiry.options])
    values = option_values(forward, strikes, expiry.years, expiry.discount, vols, calls)
    return float(np.sum(values * amounts))


def vol_multipliers(
    seconds: np.ndarray | float, p: VolShockParams
) -> tuple[np.ndarray, np.ndarray]:
    """The up and down vol multipliers of expiries ``seconds`` away (see the module)."""
    seconds = np.asarray(seconds, dtype=float)
    floor = np.maximum(seconds, p.floor_seconds)
    _check(
        bool(np.all(floor > 0)),
        "vol_shock: an expired option with a zero days floor has no vol shock (Derive reverts)",
    )
    power = np.where(seconds <= MONTH_SECONDS, p.short_term_power, p.long_term_power)
    scale = (MONTH_SECONDS / floor) ** power
    return 1.0 + p.range_up * scale, np.maximum(0.0, 1.0 - p.range_down * scale)


def shocked_vols(
    vols: np.ndarray, up: np.ndarray | float, down: np.ndarray | float, shock: VolShock,
    p: VolShockParams,
) -> np.ndarray:  # fmt: skip
    """Vols under a regular scenario's shock (an up-shocked vol is at least the floor vol)."""
    if shock is VolShock.UP:
        return np.maximum(p.min_vol_up, vols * up)
    if shock is VolShock.DOWN:
        return vols * down
    return vols


def skew_multipliers(
    strikes: np.ndarray,
    forward: np.ndarray | float,
    years: np.ndarray | float,
    shock: VolShock,
    p: SkewParams,
) -> np.ndarray:
    """Each option's vol multiplier in a skew scenario (see the module). Arrays broadcast."""
    root = np.sqrt(years)
    linear = shock is VolShock.LINEAR
    cap = (p.linear_c_base if linear else p.abs_c_base) * root + (
        p.linear_base_cap if linear else p.abs_base_cap
    )
    k_star = np.maximum(
        p.min_k_star, root * p.width_scale * (p.vol_param_static + root * p.vol_param_scale)
    )
    _check(
        bool(np.all(k_star > 0)),
        "skew: k* is zero at this expiry (min_k_star 0), the skew is undefined",
    )
    with np.errstate(divide="ignore"):
        k = np.log(strikes / forward)
    k = k if linear else np.abs(k)
    lift = np.where(k >= 0, np.minimum(cap, k * cap / k_star), np.maximum(-cap, k * cap / k_star))
    return np.maximum(1.0 + lift, 0.0)


def static_discounts(
    years: np.ndarray | float, rate: np.ndarray | float, p: LossParams
) -> tuple[np.ndarray, np.ndarray]:
    """The long and short static discounts (the short one capped at 1 / D)."""
    rate = np.maximum(rate, 0.0)
    long_discount = p.long_static_discount * np.exp(
        -years * (rate * p.long_rate_mult + p.long_rate_add)
    )
    short_discount = np.minimum(
        1.0 / np.exp(-rate * years),
        p.short_static_discount / np.exp(-years * (rate * p.short_rate_mult + p.short_rate_add)),
    )
    return long_discount, short_discount


def _confidence_charge(confidence: float, notional: float, p: ContingencyParams) -> float:
    if confidence < p.confidence_threshold:
        return (1.0 - confidence) * p.confidence_margin * notional
    return 0.0


def _naked_shorts(expiry: Expiry) -> float:
    """Short option units left after netting calls and puts at the same strike."""
    net: dict[float, float] = {}
    for o in expiry.options:
        net[o.strike] = net.get(o.strike, 0.0) + o.amount
    return sum(max(-amount, 0.0) for amount in net.values())


def pmrm2_margin(portfolio: Portfolio, params: DeriveParams) -> PMRM2Result:
    """Derive PMRM 2 initial and maintenance margin of ``portfolio`` (see the module)."""
    pf, vp, lp, bp, cp = (
        portfolio,
        params.vol_shock,
        params.margin,
        params.basis,
        params.contingency,
    )
    confidence = pf.spot_confidence
    if pf.perp_position != 0:
        confidence = min(confidence, pf.perp_confidence)

    perp_notional = abs(pf.perp_position) * pf.spot
    mm_cont = perp_notional * cp.mm_perp_percent
    im_cont = perp_notional * cp.im_perp_percent + _confidence_charge(confidence, perp_notional, cp)

    marks, basis, expiry_parts = [], 0.0, []
    for e in pf.expiries:
        vols = np.array([o.vol for o in e.options])
        mark = _value(e, e.forward_variable + e.forward_fixed, vols)
        up = _value(e, e.forward_variable * bp.spot_up + e.forward_fixed, vols)
        down = _value(e, e.forward_variable * bp.spot_down + e.forward_fixed, vols)
        basis += min(up - mark, down - mark, 0.0) * (bp.add_factor + bp.mult_factor * e.years)
        long_discount, short_discount = (float(d) for d in static_discounts(e.years, e.rate, lp))
        shorts = _naked_shorts(e) * pf.spot
        mm_cont += shorts * cp.mm_option_percent
        im_cont += shorts * cp.im_option_percent
        expiry_confidence = min([confidence, e.confidence] + [o.vol_confidence for o in e.options])
        net_options = sum(abs(o.amount) for o in e.options)
        im_cont += _confidence_charge(expiry_confidence, net_options * pf.spot, cp)
        marks.append(mark)
        vol_up, vol_down = vol_multipliers(e.seconds, vp)
        expiry_parts.append((vols, (float(vol_up), float(vol_down)), long_discount, short_discount))

    collateral_value = 0.0
    cancelling = 0.0
    for c in pf.collaterals:
        value = c.amount * c.price / pf.stable_price
        collateral_value += value
        if c.risk_cancelling:
            cancelling += value
        mm_cont += value * c.mm_haircut
        im_cont += value * c.im_haircut
        im_cont += _confidence_charge(min(c.confidence, pf.spot_confidence), value, cp)

    pnl = np.empty(len(params.scenarios))
    for j, s in enumerate(params.scenarios):
        total = pf.perp_position * (s.spot_shock - 1.0) * pf.perp_price * s.dampening
        skew = s.vol_shock in (VolShock.LINEAR, VolShock.ABS)
        for e, mark, (vols, (up, down), long_d, short_d) in zip(
            pf.expiries, marks, expiry_parts, strict=True
        ):
            if skew:
                forward = e.forward_variable + e.forward_fixed
                strikes = np.array([o.strike for o in e.options])
                lift = skew_multipliers(strikes, forward, e.years, s.vol_shock, params.skew)
                shocked = _value(e, forward, vols * lift)
            else:
                moved = shocked_vols(vols, up, down, s.vol_shock, vp)
                shocked = _value(e, e.forward_variable * s.spot_shock + e.forward_fixed, moved)
            shocked *= long_d if shocked >= 0 else short_d
            expiry_pnl = (shocked - mark) * s.dampening
            total += -abs(expiry_pnl) if skew else expiry_pnl
        total += cancelling * (s.spot_shock - 1.0) * s.dampening
        pnl[j] = total

    worst_loss, worst = basis, len(pnl)
    for j, value in enumerate(pnl):
        if value < worst_loss:
            worst_loss, worst = float(value), j
    equity = pf.cash + sum(marks) + pf.perp_value + collateral_value
    im_factor = lp.im_factor
    if pf.stable_price < cp.peg_loss_threshold:
        im_factor += (cp.peg_loss_threshold - pf.stable_price) * cp.peg_loss_factor
    initial = -worst_loss * im_factor + im_cont + mm_cont
    maintenance = -worst_loss * lp.mm_factor + mm_cont
    return PMRM2Result(
        initial_margin=initial,
        maintenance_margin=maintenance,
        initial_balance=equity - initial,
        maintenance_balance=equity - maintenance,
        equity=equity,
        option_value=float(sum(marks)),
        collateral_value=collateral_value,
        scenario_pnl=pnl,
        basis_contingency=basis,
        worst=worst,
        im_contingency=im_cont,
        mm_contingency=mm_cont,
        expiry_value=np.array(marks),
    )


# ---------------------------------------------------------------------------------------------
# Derive's published parameter set, and the model over a whole book of accounts
# ---------------------------------------------------------------------------------------------


def _scenario_grid() -> tuple[Scenario, ...]:
    regular = []
    for spot in (1.18, 1.135, 1.09, 1.045, 1.0, 0.955, 0.91, 0.865):
        shocks = (VolShock.UP,) if spot == 1.18 else (VolShock.UP, VolShock.NONE, VolShock.DOWN)
        regular += [Scenario(spot, v) for v in shocks]
    regular.append(Scenario(0.82, VolShock.UP))
    tails = [
        (0.34, 0.21),
        (0.67, 0.42),
        (1.5, 0.2772),
        (2.0, 0.1386),
        (3.0, 0.0693),
        (4.0, 0.0462),
        (5.0, 0.03465),
        (6.0, 0.02772),
    ]
    regular += [Scenario(s, VolShock.UP, w) for s, w in tails]
    return (*regular, Scenario(1.0, VolShock.LINEAR), Scenario(1.0, VolShock.ABS))


#: Derive's PMRM 2 values as its v2-core repository publishes them for mainnet
#: (``scripts/config-mainnet.sol``, ``getDefaultPM2Scenarios`` and ``getPMRM2Params``, last
#: changed 2025-06-10; read at commit 7736900d). The long and short static discount bases are
#: as published there (long 1.05, short 0.95).
PUBLISHED = DeriveParams(
    scenarios=_scenario_grid(),
    vol_shock=VolShockParams(0.5, 0.3, 0.3, 0.13, 86_400.0, 0.4),
    margin=LossParams(1.0, 0.8, 0.0, 0.0, 0.16, 0.16, 0.95, 1.05),
    basis=BasisParams(1.045, 0.955, 0.5, 2.0),
    contingency=ContingencyParams(0.99, 4.0, 0.55, 1.0, 0.03, 0.01, 0.003, 0.002),
    skew=SkewParams(0.25, 0.25, -0.1, -0.1, 0.01, 4.0, 0.6, 0.0),
)
PUBLISHED_DATE = "2025-06-10"
PUBLISHED_SOURCE = (
    "derivexyz/v2-core scripts/config-mainnet.sol (getDefaultPM2Scenarios, getPMRM2Params), "
    "changed 2025-06-10, read at commit 7736900d395703c4f675376caa4c315402943831"
)
