"""A straightforward Deribit-style PM implementation: one account at a time, one position at
a time, every option repriced in every scenario with scalar Black-76 calls.

It shares nothing with the vectorised engine but the pricing formula and the parameter
objects, which makes it two things: the oracle the tests compare :mod:`portfolio_margin`
against, and the "per-account loop" baseline ``bench/margin.py`` measures the engine's
speed-up over.
"""

from __future__ import annotations

import math
from collections import defaultdict

from margin_engine.instruments import Kind, parse_instrument
from margin_engine.market import MarketSnapshot
from margin_engine.params import ModelParams
from margin_engine.portfolio_margin import EXTENDED_MOVES, MIN_DTE_DAYS, MIN_VOL
from margin_engine.pricing import black76_greeks, black76_price

STABLE = {"USD", "USDC", "USDT"}


def _price(f: float, k: float, t: float, vol: float, call: bool) -> float:
    return float(black76_price(f, k, t, vol, call))


def _unit_pnl(
    kind: Kind,
    inverse: bool,
    f0: float,
    s0: float,
    k: float | None,
    t: float,
    iv: float,
    call: bool,
    move: float,
    vol: float,
) -> float:
    f1 = f0 * (1 + move)
    if kind in (Kind.PERPETUAL, Kind.FUTURE):
        return (1 / f0 - 1 / f1) if inverse else f0 * move
    if kind == Kind.SPOT:
        return 0.0 if inverse else s0 * move
    assert k is not None  # an option has a strike
    v0, v1 = _price(f0, k, t, iv, call), _price(f1, k, t, vol, call)
    return (v1 / f1 - v0 / f0) if inverse else (v1 - v0)


def reference_portfolio_margin(
    positions: list[tuple[str, float]], market: MarketSnapshot, params: ModelParams | None = None
) -> dict[str, dict[str, float]]:
    """PM of one account: ``{currency: {initial_margin, maintenance_margin, worst_case,
    roll_shock, delta_shock}}`` for ``positions`` = [(instrument name, quantity), …].
    """
    params = params or ModelParams()
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for name, quantity in positions:
        instrument = parse_instrument(name)
        groups[(instrument.settlement, instrument.underlying)].append((instrument, float(quantity)))
    out: dict[str, dict[str, float]] = {}
    for (currency, underlying), members in groups.items():
        p = params.pm_for(underlying)
        c = params.currency_for(currency)
        index = market.spot(underlying)
        quote = index if currency in STABLE else 1.0
        standard = [-p.price_range + i * p.price_range / 4 for i in range(9)]
        totals = []
        for move in standard:
            for which in ("up", "same", "down"):
                total = 0.0
                for instrument, q in members:
                    f0, t = market.forward(instrument), instrument.years_to_expiry(market.as_of)
                    iv = market.vol(instrument, f0) if instrument.kind == Kind.OPTION else 0.0
                    vol = iv
                    if instrument.kind == Kind.OPTION:
                        dte = max(t * 365.0, MIN_DTE_DAYS)
                        power = p.short_term_vega_power if dte < 30 else p.long_term_vega_power
                        if which == "up":
                            vol = max(
                                iv * (1 + p.vol_range_up * (30 / dte) ** power),
                                p.min_vol_for_shock_up,
                            )
                        elif which == "down":
                            vol = max(iv * (1 - p.vol_range_down * (30 / dte) ** power), MIN_VOL)
                    total += q * _unit_pnl(
                        instrument.kind,
                        instrument.inverse,
                        f0,
                        index,
                        instrument.strike,
                        t,
                        iv,
                        instrument.is_call,
                        move,
                        vol,
                    )
                totals.append(total)
        damp = c.extended_dampener / (1.0 if currency in STABLE else index)
        for move in EXTENDED_MOVES:
            scale = (
                p.extended_table_factor
                * (p.price_range / abs(move))
                * (1 + move)
                / (1 + math.copysign(p.price_range, move))
            )
            total = 0.0
            for instrument, q in members:
                f0, t = market.forward(instrument), instrument.years_to_expiry(market.as_of)
                iv = market.vol(instrument, f0) if instrument.kind == Kind.OPTION else 0.0
                vol = iv
                if instrument.kind == Kind.OPTION:
                    dte = max(t * 365.0, MIN_DTE_DAYS)
                    power = p.short_term_vega_power if dte < 30 else p.long_term_vega_power
                    vol = max(
                        iv * (1 + p.vol_range_up * (30 / dte) ** power), p.min_vol_for_shock_up
                    )
                total += (
                    q
                    * scale
                    * _unit_pnl(
                        instrument.kind,
                        instrument.inverse,
                        f0,
                        index,
                        instrument.strike,
                        t,
                        iv,
                        instrument.is_call,
                        move,
                        vol,
                    )
                )
            totals.append(math.copysign(max(abs(total) - damp, 0.0), total))
        worst = max(0.0, -min(totals))
        deltas: dict[str, float] = defaultdict(float)
        years: dict[str, float] = {}
        net = 0.0
        for instrument, q in members:
            if instrument.kind == Kind.SPOT:
                if not instrument.inverse:
                    net += q
                continue
            f0, t = market.forward(instrument), instrument.years_to_expiry(market.as_of)
            if instrument.kind == Kind.OPTION:
                iv = market.vol(instrument, f0)
                d = float(black76_greeks(f0, instrument.strike, t, iv, instrument.is_call)["delta"])
                if instrument.inverse:
                    d -= _price(f0, instrument.strike, t, iv, instrument.is_call) / f0
            else:
                d = 1 / f0 if instrument.inverse else 1.0
            label = "PERPETUAL" if instrument.expiry is None else f"{instrument.expiry:%Y-%m-%d}"
            deltas[label] += q * d
            years[label] = t
            net += q * d
        roll = sum(
            max(c.min_annualised_move, math.expm1(c.annualised_move_risk * max(years[k], 0.0)))
            * abs(v)
            * quote
            for k, v in deltas.items()
        )
        excess = max(abs(net) - p.delta_total_liq_shock_threshold / index, 0.0)
        delta_shock = min(p.max_delta_shock, p.m_inc * excess) * abs(net) * quote
        entry = out.setdefault(currency, {"worst_case": 0.0, "roll_shock": 0.0, "delta_shock": 0.0})
        entry["worst_case"] += worst
        entry["roll_shock"] += roll
        entry["delta_shock"] += delta_shock
    for entry in out.values():
        entry["initial_margin"] = entry["worst_case"] + entry["roll_shock"] + entry["delta_shock"]
        entry["maintenance_margin"] = params.mm_factor * entry["initial_margin"]
    return out
