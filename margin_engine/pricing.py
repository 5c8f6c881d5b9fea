"""Black-76 prices and Greeks on the forward, vectorised.

.. math::

    C = F N(d_1) - K N(d_2), \\qquad P = K N(-d_2) - F N(-d_1), \\qquad
    d_{1,2} = \\frac{\\ln(F/K) \\pm \\sigma^2 T / 2}{\\sigma\\sqrt T}

undiscounted (Deribit options are on futures and margined daily, so there is no financing of
the premium to discount). Prices are in quote currency (USD) per unit of underlying; an inverse
option's value in coin is :math:`V/F` — what Deribit's marks are (checked against the real
option-chain snapshot in the tests).

Greeks, per unit of underlying, with respect to the forward: delta :math:`\\partial V/\\partial F`,
gamma :math:`\\partial^2 V/\\partial F^2`, vega :math:`\\partial V/\\partial\\sigma` (per 1.00 of
vol, i.e. divide by 100 for "per vol point"), theta :math:`-\\partial V/\\partial T` per year.
At expiry or zero vol the price is the intrinsic value.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from scipy.special import ndtr

from margin_engine._typing import Values

_SQRT_2PI = np.sqrt(2.0 * np.pi)
_SQRT2 = math.sqrt(2.0)


def _pdf(x: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * x * x) / _SQRT_2PI


def _d1_d2(forward, strike, years, vol, is_call):
    forward, strike, years, vol, is_call = np.broadcast_arrays(
        np.asarray(forward, float),
        np.asarray(strike, float),
        np.asarray(years, float),
        np.asarray(vol, float),
        np.asarray(is_call, bool),
    )
    sd = vol * np.sqrt(np.maximum(years, 0.0))
    live = sd > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        d1 = np.where(
            live, (np.log(forward / strike) + 0.5 * sd * sd) / np.where(live, sd, 1.0), 0.0
        )
    return forward, strike, years, vol, is_call, sd, live, d1, d1 - sd


@numba.njit(cache=True, inline="always")
def _ndtr(x):  # pragma: no cover - compiled
    # Φ(x) through erfc, as scipy.special.ndtr computes it (accurate in both tails)
    return 0.5 * math.erfc(-x / _SQRT2)


@numba.vectorize(
    ["float64(float64, float64, float64, float64, boolean)"], nopython=True, cache=True
)
def _price(forward, strike, years, vol, is_call):  # pragma: no cover - compiled
    # one pass per element: full revaluation prices millions of (instrument, path) pairs
    sd = vol * math.sqrt(max(years, 0.0))
    if not sd > 0:  # at expiry or zero vol: the intrinsic value
        return max(forward - strike, 0.0) if is_call else max(strike - forward, 0.0)
    d1 = (math.log(forward / strike) + 0.5 * sd * sd) / sd
    d2 = d1 - sd
    if is_call:
        return forward * _ndtr(d1) - strike * _ndtr(d2)
    return strike * _ndtr(-d2) - forward * _ndtr(-d1)


@numba.vectorize(
    ["float64(float64, float64, float64, float64, float64, boolean, boolean, float64)"],
    nopython=True,
    cache=True,
)
def _revalued(forward, move, strike, years, vol, is_call, inverse, base):  # pragma: no cover
    # P&L of one unit after the forward moves by ``move`` and the vol becomes ``vol``: the
    # price at the new forward (in coin for an inverse option: V / F) less ``base``, the
    # price now in the same unit — what numpy computes in five passes, in one
    shocked = forward * (1.0 + move)
    value = _price(shocked, strike, years, vol, is_call)
    return value / shocked - base if inverse else value - base


def revalued_pnl(
    forward: Values,
    move: Values,
    strike: Values,
    years: Values,
    vol: Values,
    is_call: Values,
    inverse: Values,
    base: Values,
) -> np.ndarray:
    """P&L per unit of options when the forward moves by ``move`` (relative) and the implied
    vol becomes ``vol``: the Black-76 value at :math:`F(1 + m)` (over that forward for an
    ``inverse`` option) less ``base`` (today's value in the same unit); arrays broadcast.
    """
    return np.asarray(
        _revalued(
            np.asarray(forward, float),
            np.asarray(move, float),
            np.asarray(strike, float),
            np.asarray(years, float),
            np.asarray(vol, float),
            np.asarray(is_call, bool),
            np.asarray(inverse, bool),
            np.asarray(base, float),
        )
    )


def black76_price(
    forward: Values, strike: Values, years: Values, vol: Values, is_call: Values
) -> np.ndarray:
    """Undiscounted Black-76 price in quote currency per unit of underlying (arrays broadcast)."""
    return np.asarray(
        _price(
            np.asarray(forward, float),
            np.asarray(strike, float),
            np.asarray(years, float),
            np.asarray(vol, float),
            np.asarray(is_call, bool),
        )
    )


def black76_greeks(
    forward: Values, strike: Values, years: Values, vol: Values, is_call: Values
) -> dict[str, np.ndarray]:
    """``delta``, ``gamma``, ``vega`` (per 1.00 vol) and ``theta`` (per year), same shape as F."""
    forward, strike, years, vol, is_call, sd, live, d1, d2 = _d1_d2(
        forward, strike, years, vol, is_call
    )
    pdf = _pdf(d1)
    sqrt_t = np.sqrt(np.maximum(years, 0.0))
    intrinsic_delta = np.where(
        is_call, np.greater(forward, strike).astype(float), -np.less(forward, strike).astype(float)
    )
    delta = np.where(live, np.where(is_call, ndtr(d1), ndtr(d1) - 1.0), intrinsic_delta)
    with np.errstate(divide="ignore", invalid="ignore"):
        gamma = np.where(live, pdf / (forward * np.where(live, sd, 1.0)), 0.0)
        theta = np.where(
            live, -forward * pdf * vol / (2.0 * np.where(sqrt_t > 0, sqrt_t, 1.0)), 0.0
        )
    vega = np.where(live, forward * pdf * sqrt_t, 0.0)
    return {"delta": delta, "gamma": gamma, "vega": vega, "theta": theta}


def implied_vol(
    price: Values,
    forward: Values,
    strike: Values,
    years: Values,
    is_call: Values,
    *,
    lo: float = 1e-4,
    hi: float = 10.0,
) -> np.ndarray:
    """The Black-76 vol that reproduces ``price`` (bisection, vectorised); ``nan`` when the price
    is outside the no-arbitrage bounds.
    """
    price, forward, strike, years, is_call = np.broadcast_arrays(
        np.asarray(price, float),
        np.asarray(forward, float),
        np.asarray(strike, float),
        np.asarray(years, float),
        np.asarray(is_call, bool),
    )
    low, high = np.full(price.shape, lo), np.full(price.shape, hi)
    for _ in range(200):
        mid = 0.5 * (low + high)
        too_high = black76_price(forward, strike, years, mid, is_call) > price
        high = np.where(too_high, mid, high)
        low = np.where(too_high, low, mid)
    result = 0.5 * (low + high)
    lower = black76_price(forward, strike, years, lo, is_call)
    upper = black76_price(forward, strike, years, hi, is_call)
    return np.where((price >= lower) & (price <= upper), result, np.nan)
