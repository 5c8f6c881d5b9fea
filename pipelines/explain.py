"""``mwb explain``: why each account's margin is what it is, and why it moved.

**Contributions** (:mod:`margin_engine.attribution`), per position, in its row's currency:
Euler (Deribit-style PM: the worst case at its scenario, the roll shock and the delta shock,
each allocated so that they sum to the margin; ``mc-es``: the Euler contributions to expected
shortfall; every other model: numerically, see below), incremental (with it less without it) and standalone
(alone), and for PM the worst scenario's loss split into delta, gamma, vega, theta and the rest.
Other models' Euler contributions are central differences of their margin in each position's
quantity (VaR and ES: the scenarios' tail, as the model reads it), scaled to sum to the margin
where the model is not homogeneous of degree one (``euler_scale``).

**Day-on-day explain** (``--vs``): the change from the earlier state (its market, positions and
parameter set) to the later one in a fixed order — first the market (the earlier positions and
set at the later market), then the positions (the later positions), then the parameters (the
later set) — so that the three parts sum to the change exactly (each is the difference of two
margins). Add-ons of a set are in its margins, and so in the parts, but not in the contributions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipelines.errors import BadInputError

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

    from governance.parameters import ParameterSet
    from margin_engine.market import MarketSnapshot
    from pipelines.margin import MarginRun

ORDER = ("market", "positions", "parameters")


@dataclass(frozen=True)
class State:
    """What a margin is computed from: positions, market and parameter set."""

    frame: pd.DataFrame
    market: MarketSnapshot
    params: ParameterSet
    label: str
    day: str = ""  # the day the state describes (a warehouse market is at its end)


def contributions(run: MarginRun) -> list[dict]:
    """Each account row's positions with their contributions (see the module)."""
    from margin_engine.attribution import (
        GREEK_TERMS,
        incremental_and_standalone,
        numerical_euler,
        pm_attribution,
    )
    from vocabulary import MarginModel

    result, positions = run.result, run.positions
    if result is None:
        return []
    engine = run.params.to_model_params()
    model = MarginModel(run.model)
    kwargs = run.scenarios or {}
    euler = parts = greeks = scale = None
    if model is MarginModel.DERIBIT_PM and not engine.product_groups:
        attribution = pm_attribution(positions, engine)
        euler, parts, greeks = attribution.euler, attribution.parts, attribution.greeks
    elif model is MarginModel.MC_ES and run.monte_carlo is not None:
        euler = [c["es_contribution"] for c in run.monte_carlo["contributions"]]
    elif not model.simulated:
        euler, scale = numerical_euler(positions, run.market, run.model, engine, **kwargs)
    incremental = standalone = None
    if not model.simulated:
        incremental, standalone = incremental_and_standalone(
            positions, run.market, run.model, engine, **kwargs
        )
    names = positions.book.table.names
    rows: dict[tuple[str, str], dict] = {}
    for a, c, im in zip(result.account, result.currency, result.initial_margin, strict=True):
        rows[(positions.accounts[a], str(c))] = {
            "account": positions.accounts[a],
            "currency": str(c),
            "initial_margin": float(im),
            "contributions": [],
        }
    groups = positions.book.table.groups
    for k in range(len(positions.quantity)):
        account = positions.accounts[positions.account[k]]
        currency = groups[positions.book.table.group[positions.instrument[k]]][0]
        row = rows.get((account, currency))
        if row is None:  # a model margining every currency in one row (the venues': USDC)
            mine = [r for (a, _), r in rows.items() if a == account]
            if len(mine) != 1:
                continue
            row = mine[0]
        entry = {
            "instrument": names[positions.instrument[k]],
            "quantity": float(positions.quantity[k]),
            "euler": None if euler is None else float(euler[k]),
            # 1 where the model is homogeneous: the derivatives sum to the margin unscaled
            "euler_scale": None if scale is None else float(scale[k]),
            "incremental": None if incremental is None else float(incremental[k]),
            "standalone": None if standalone is None else float(standalone[k]),
        }
        if parts is not None and greeks is not None:
            entry["parts"] = {name: float(v[k]) for name, v in parts.items()}
            # + 0.0: a zero term is 0, not -0
            entry["worst_scenario_loss"] = {t: float(greeks[t][k]) + 0.0 for t in GREEK_TERMS}
        row["contributions"].append(entry)
    return list(rows.values())


def explain_change(margin_of, then: State, now: State) -> dict:
    """The change between two states split in :data:`ORDER`; ``margin_of(state)`` gives
    ``{(account, currency): initial margin}``."""
    steps = [
        then,
        State(then.frame, now.market, then.params, "market", now.day),
        State(now.frame, now.market, then.params, "positions", now.day),
        now,
    ]
    margins = [margin_of(s) for s in steps]
    keys = sorted(set().union(*margins))
    rows = []
    for key in keys:
        values = [m.get(key, 0.0) for m in margins]
        parts = {name: values[i + 1] - values[i] for i, name in enumerate(ORDER)}
        rows.append(
            {
                "account": key[0],
                "currency": key[1],
                "from": values[0],
                **parts,
                "to": values[-1],
                "change": values[-1] - values[0],
            }
        )
    return {
        "order": list(ORDER),
        "from": _describe(then),
        "to": _describe(now),
        "rows": rows,
    }


def _describe(state: State) -> dict:
    return {
        "label": state.label,
        "day": state.day or state.market.as_of.date().isoformat(),
        "market": state.market.as_of.isoformat(),
        "params_fingerprint": state.params.fingerprint,
        "positions": int(len(state.frame)),
    }


def waterfall_chart(explain: dict, account: str, currency: str, out_dir: Path) -> Path:
    """The waterfall of one account row's change, written as PNG under ``out_dir``."""
    from pipelines.files import output_folder
    from reports.charts import waterfall

    row = next(r for r in explain["rows"] if (r["account"], r["currency"]) == (account, currency))
    chart = waterfall(
        "explain",
        f"{account} ({currency}): {explain['from']['day']} → {explain['to']['day']}",
        row["from"],
        [(name, row[name]) for name in ORDER],
        currency,
    )
    folder = output_folder(out_dir)
    path = folder / f"explain-{_safe(account)}-{_safe(currency)}.png"
    path.write_bytes(chart.png)
    return path


def _safe(text: str) -> str:
    import re

    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._")[:64]
    if not cleaned:
        raise BadInputError(f"account {text!r}: no characters usable in a file name")
    return cleaned
