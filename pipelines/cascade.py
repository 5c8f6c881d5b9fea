"""``mwb cascade``: a population of accounts liquidated along a stress window, under the current
set and another, and the bad debt each leaves.

The path is the window's daily bars of one underlying, four points a day
(:func:`backtesting.cascade.intraday_path`). The impact model's volatility and daily volume
are those of the 30 days strictly before the window (no look-ahead: nothing the window itself
reveals). A set's liquidation rule is what Deribit-style PM asks of a linear position: initial
margin the price range times the notional, maintenance ``pm.mm_factor`` of it (a perpetual's
roll shock is its minimum move, and the population stays below the delta-shock threshold).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

from backtesting.book_cascade import (
    BookAccounts,
    BookMarket,
    book_bad_debt_distribution,
    simulate_books,
    synthetic_books,
)
from backtesting.cascade import (
    Accounts,
    LiquidationRule,
    Mode,
    bad_debt_distribution,
    bad_debt_risk,
    calibrate_impact,
    intraday_path,
    model_paths,
    random_paths,
    run_summary,
    simulate,
    synthetic_population,
)
from governance.parameters import ParameterSet
from margin_engine.impact import ImpactModel
from margin_engine.montecarlo import JointModel
from pipelines.errors import BadInputError
from pipelines.files import MAX_INPUT_BYTES, regular_file
from pipelines.stores import market as stored

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    import duckdb

LOOKBACK_DAYS = 30
PENALTY = 0.01  # of the liquidated notional, to the insurance fund
IMPACT_Y = 0.7  # the square-root law's coefficient (empirical range about 0.5 to 1)
HALF_SPREAD = 0.0005  # both the calibration's defaults: each set's ``impact`` block rules


@dataclass(frozen=True)
class CascadeInputs:
    """The window's path and the impact model calibrated before it."""

    asset: str
    start: date
    end: date
    path: list[float]
    impact: ImpactModel
    notes: tuple[str, ...]


def rule_of(parameter_set: ParameterSet, asset: str, mode: Mode) -> LiquidationRule:
    """What Deribit-style PM asks of a linear position (see the module)."""
    engine = parameter_set.to_model_params()
    initial = engine.pm_for(asset).price_range
    return LiquidationRule(engine.mm_factor * initial, initial, PENALTY, mode)


def cascade_inputs(
    con: duckdb.DuckDBPyConnection, preference: Sequence[str], asset: str, start: date, end: date
) -> CascadeInputs:
    """The window's four-points-a-day path, and the impact model from the 30 days before."""
    if end < start:
        raise BadInputError(f"--to {end} is before --from {start}")
    window, provenance = stored.bars(con, asset, preference, start=start, end=end)
    if provenance is None or window.empty:
        raise BadInputError(f"{asset}: no prices in the warehouse between {start} and {end}")
    impact, impact_notes, _ = impact_before(con, preference, asset, start)
    path = intraday_path(
        window["open"].to_numpy(),
        window["high"].to_numpy(),
        window["low"].to_numpy(),
        window["close"].to_numpy(),
    )
    notes = (f"prices {provenance.describe()}", *impact_notes[1:])
    return CascadeInputs(asset, start, end, path.tolist(), impact, notes)


def set_impact(parameter_set: ParameterSet, calibrated: ImpactModel) -> ImpactModel:
    """``calibrated`` (σ and the daily volume from data) under the set's impact law (its
    ``impact`` block's Y and half spread)."""
    law = parameter_set.impact_law
    return dataclasses.replace(calibrated, y=law.y, half_spread=law.half_spread)


def impact_before(
    con: duckdb.DuckDBPyConnection, preference: Sequence[str], asset: str, day: date
) -> tuple[ImpactModel, tuple[str, ...], float]:
    """The impact model from the 30 days strictly before ``day``, its notes (the prices'
    provenance first) and the last close before ``day``."""
    history, provenance = stored.load_series(
        con,
        "market.prices",
        asset,
        ["close", "volume"],
        preference,
        start=day - timedelta(days=LOOKBACK_DAYS),
        end=day - timedelta(days=1),
    )
    if provenance is None or history.empty:
        raise BadInputError(f"{asset}: no prices in the {LOOKBACK_DAYS} days before {day}")
    closes = history["close"].astype(float)
    volumes = history["volume"].astype(float) * closes
    try:
        impact, notes = calibrate_impact(
            list(closes), list(volumes), y=IMPACT_Y, half_spread=HALF_SPREAD
        )
    except ValueError as exc:
        raise BadInputError(f"{asset}: {exc} ({LOOKBACK_DAYS} days before {day})") from None
    last = float(closes.dropna().iloc[-1])
    return impact, (f"prices {provenance.describe()}", *notes), last


@dataclass(frozen=True)
class PathsInputs:
    """What random paths from ``day`` start from: the last close strictly before it, the impact
    model of the 30 days before, and the fitted joint model of the newest calibration as of
    the day before (``None`` when there is none: a Student-t stand-in is drawn instead)."""

    price: float
    impact: ImpactModel
    notes: tuple[str, ...]
    model: JointModel | None
    model_about: dict | None


def paths_inputs(
    con: duckdb.DuckDBPyConnection, preference: Sequence[str], asset: str, day: date
) -> PathsInputs:
    """See :class:`PathsInputs` (nothing the paths' own days reveal is used)."""
    from pipelines.margin import joint_model_before

    impact, notes, last = impact_before(con, preference, asset, day)
    try:
        model, about = joint_model_before(con, [asset], day - timedelta(days=1))
    except BadInputError:
        model, about = None, None
    return PathsInputs(last, impact, notes, model, about)


def run_paths(
    asset: str,
    day: date,
    inputs: PathsInputs,
    sets: list[tuple[str, ParameterSet]],
    accounts: Accounts | BookPeople,
    *,
    paths: int,
    days: int,
    seed: int,
    mode: Mode = Mode.FULL,
    fund: float = 0.0,
) -> dict:
    """Bad-debt VaR and ES (95 %, 99 %) of each set over ``paths`` seeded random paths of
    ``days`` days from ``day``'s opening price (four steps a day): the fitted joint model's
    (:func:`backtesting.cascade.model_paths`, implied vols with it) when a calibration precedes
    the day, else a Student-t stand-in at the 30 days' volatility (implied vols held) — the
    payload says which. ``accounts`` is a linear population or option books
    (:class:`BookPeople`)."""
    price, impact, notes = inputs.price, inputs.impact, inputs.notes
    vols = None
    if inputs.model is not None:
        drawn, vols = model_paths(inputs.model, price, days, 4, paths, seed)
        about = inputs.model_about or {}
        innovations = (
            f"the fitted joint model of calibration {about.get('calibration_id')} as of "
            f"{about.get('as_of')} ("
            + (
                "bootstrapped standardised residuals"
                if inputs.model.residuals is not None
                else "Student-t innovations"
            )
            + "), a Brownian bridge within each day at its conditional volatility"
        )
    else:
        drawn = random_paths(price, impact.daily_vol, days, 4, paths, seed)
        innovations = (
            "a Student-t stand-in (dof 4) at the 30 days' volatility: no calibration precedes "
            "the day"
        )
    results = []
    for label, parameter_set in sets:
        law = set_impact(parameter_set, impact)
        if isinstance(accounts, BookPeople):
            losses = book_bad_debt_distribution(
                accounts.accounts,
                accounts.market.valuation,
                accounts.market.maintenance(parameter_set.to_model_params()),
                drawn,
                vols,
                law,
                PENALTY,
                fund,
            )
            described = {"model": BOOK_MODEL, "penalty": PENALTY, "mode": "full"}
        else:
            rule = rule_of(parameter_set, asset, mode)
            losses = bad_debt_distribution(accounts, drawn, rule, law, fund)
            described = {"maintenance": rule.maintenance, "initial": rule.initial}
        results.append(
            {
                "label": label,
                "params_fingerprint": parameter_set.fingerprint,
                "impact": {"y": law.y, "half_spread": law.half_spread},
                "rule": described,
                "paths_with_bad_debt": int(sum(1 for x in losses if x > 0)),
                "mean_bad_debt": float(sum(losses) / len(losses)),
                **bad_debt_risk(losses),
            }
        )
    return {
        "asset": asset,
        "from": day.isoformat(),
        "paths": paths,
        "days": days,
        "seed": seed,
        "steps_per_day": 4,
        "accounts": len(accounts.accounts.cash)
        if isinstance(accounts, BookPeople)
        else len(accounts.cash),
        "innovations": innovations,
        "model": inputs.model_about,
        "impact": {  # the first set's law; each set's is in its entry
            "y": set_impact(sets[0][1], impact).y,
            "daily_vol": impact.daily_vol,
            "daily_volume_usd": impact.daily_volume,
            "half_spread": set_impact(sets[0][1], impact).half_spread,
        },
        "notes": list(notes),
        "sets": results,
    }


POPULATION_COLUMNS = ("account", "collateral", "quantity")


def read_population(path: str | Path, price: float) -> tuple[Accounts, dict]:
    """A population from a CSV of ``account,collateral,quantity[,entry_price]``: each account's
    collateral (USD, ≥ 0) and signed position in coins of the cascade's underlying, entered at
    ``entry_price`` (USD, > 0; the path's first price where the column is absent or the cell
    empty). One row per account: accounts are compared in canonical form (NFC, surrounding
    blanks dropped), so two spellings of one name are one account, refused as a duplicate.
    Returns the accounts and what the payload says of the file (its SHA-256, for the record).
    """
    import hashlib
    import unicodedata

    import pandas as pd

    path = regular_file(path, max_bytes=MAX_INPUT_BYTES, what="--positions")
    raw = path.read_bytes()
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise BadInputError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    frame.columns = [c.strip() for c in frame.columns]
    missing = [c for c in POPULATION_COLUMNS if c not in frame.columns]
    if missing:
        raise BadInputError(
            f"{path}: missing column(s) {', '.join(missing)} "
            "(need account,collateral,quantity[,entry_price])"
        )
    if frame.empty:
        raise BadInputError(f"{path}: no accounts")
    seen: dict[str, int] = {}
    cash, quantity, entry = [], [], []
    for k, row in enumerate(frame.itertuples(index=False)):
        line = k + 2  # the header is line 1
        record = row._asdict()
        name = unicodedata.normalize("NFC", str(record["account"])).strip()
        if not name:
            raise BadInputError(f"{path}: row {line}: account: empty")
        if name in seen:
            raise BadInputError(
                f"{path}: row {line}: account: {name!r} already on row {seen[name]} "
                "(one row per account)"
            )
        seen[name] = line
        values = {}
        for field in ("collateral", "quantity", "entry_price"):
            text = str(record.get(field, "") or "").strip()
            if field == "entry_price" and not text:
                values[field] = price
                continue
            try:
                value = float(text)
            except ValueError:
                raise BadInputError(
                    f"{path}: row {line}: {field}: {text!r} is not a number"
                ) from None
            if value != value or value in (float("inf"), float("-inf")):
                raise BadInputError(f"{path}: row {line}: {field}: {text!r} is not finite")
            values[field] = value
        if values["collateral"] < 0:
            raise BadInputError(f"{path}: row {line}: collateral: must be ≥ 0 USD")
        if values["entry_price"] <= 0:
            raise BadInputError(f"{path}: row {line}: entry_price: must be > 0")
        cash.append(values["collateral"])
        quantity.append(values["quantity"])
        entry.append(values["entry_price"])
    series = pd.Series
    accounts = Accounts(
        series(cash, dtype=float).to_numpy(),
        series(quantity, dtype=float).to_numpy(),
        series(entry, dtype=float).to_numpy(),
    )
    about = {
        "kind": "positions",
        "file": str(path),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "accounts": len(cash),
    }
    return accounts, about


def population(kind: str, n: int, seed: int, price: float, max_leverage: float) -> Accounts:
    """The population ``kind`` names (``synthetic`` today)."""
    if kind != "synthetic":
        raise BadInputError(f"--population: {kind!r} is not 'synthetic'")
    if not 1 <= n <= 10_000_000:
        raise BadInputError(f"--accounts: {n} is not between 1 and 10,000,000")
    return synthetic_population(n, seed, price, max_leverage)


def _impact_about(impact: ImpactModel, start: date) -> dict:
    """The impact law a window's payload reports (the first set's; each set's is in its
    entry)."""
    return {
        "kind": impact.kind.value,
        "y": impact.y,
        "daily_vol": impact.daily_vol,
        "daily_volume_usd": impact.daily_volume,
        "half_spread": impact.half_spread,
        "calibrated_on": f"{LOOKBACK_DAYS} days before {start}",
    }


def run_cascade(
    inputs: CascadeInputs,
    sets: list[tuple[str, ParameterSet]],
    accounts: Accounts,
    *,
    mode: Mode = Mode.FULL,
    fund: float = 0.0,
) -> dict:
    """Each set's cascade on the same population and path, as a JSON-ready payload."""
    results = []
    for label, parameter_set in sets:
        rule = rule_of(parameter_set, inputs.asset, mode)
        impact = set_impact(parameter_set, inputs.impact)
        run = simulate(accounts, inputs.path, rule, impact, fund=fund)
        results.append(
            {
                "label": label,
                "params_fingerprint": parameter_set.fingerprint,
                "impact": {"y": impact.y, "half_spread": impact.half_spread},
                "rule": {
                    "maintenance": rule.maintenance,
                    "initial": rule.initial,
                    "penalty": rule.penalty,
                    "mode": rule.mode.value,
                },
                **run_summary(run),
            }
        )
    impact = set_impact(sets[0][1], inputs.impact)
    return {
        "asset": inputs.asset,
        "from": inputs.start.isoformat(),
        "to": inputs.end.isoformat(),
        "steps_per_day": 4,
        "accounts": len(accounts.cash),
        "fund_start": fund,
        "impact": _impact_about(impact, inputs.start),
        "notes": list(inputs.notes),
        "sets": results,
    }


#: The margin model a book population is margined by (its MM is the liquidation line).
BOOK_MODEL = "deribit-pm"


@dataclass(frozen=True)
class BookPeople:
    """A population holding the test portfolios' books: the books and the engine that margins
    them (``market``), each account's collateral and positions, the IV they were struck at,
    and what the payload says of them."""

    market: BookMarket
    accounts: BookAccounts
    iv: float
    about: dict
    notes: tuple[str, ...]


def book_people(
    con: duckdb.DuckDBPyConnection,
    preference: Sequence[str],
    asset: str,
    day: date,
    price: float,
    first: ParameterSet,
    *,
    accounts: int,
    seed: int,
) -> BookPeople:
    """``accounts`` accounts holding the test portfolios' books on ``asset``
    (:func:`backtesting.book_cascade.synthetic_books`), struck on ``day`` at ``price`` and the
    implied vol of the day before (no look-ahead), with collateral 1.02–1.5 times each
    account's initial margin under ``first``."""
    from datetime import UTC, datetime

    from margin_engine.portfolios import LIBRARY
    from pipelines.margin import market_from_warehouse

    before = day - timedelta(days=1)
    market, market_notes = market_from_warehouse(con, preference, before)
    iv = market.default_iv.get(asset)
    if iv is None:
        raise BadInputError(f"{asset}: no implied vol or price history on {before} to strike books")
    start = datetime.combine(day, datetime.min.time(), UTC)
    try:
        frame = synthetic_books(LIBRARY, asset, day, price, iv, accounts, seed)
        books = BookMarket(frame, asset, start, price, iv)
        people = books.accounts_at_the_limit(first.to_model_params(), seed)
    except ValueError as exc:
        raise BadInputError(f"--population books: {exc}") from None
    picked = frame.attrs["books"]
    about = {
        "kind": "books",
        "seed": seed,
        "accounts": accounts,
        "books": {name: picked.count(name) for name in sorted(set(picked))},
        "struck": {"price": price, "iv": iv, "iv_from": before.isoformat()},
        "collateral_usd": float(sum(people.cash)),
    }
    notes = tuple(n for n in market_notes if n.startswith(f"{asset}:"))
    return BookPeople(books, people, iv, about, notes)


def run_book_cascade(
    con: duckdb.DuckDBPyConnection,
    preference: Sequence[str],
    inputs: CascadeInputs,
    sets: list[tuple[str, ParameterSet]],
    *,
    accounts: int,
    seed: int,
    fund: float = 0.0,
) -> dict:
    """Each set's cascade of a population holding the test portfolios' books (options,
    futures, perpetuals on the asset; :func:`backtesting.book_cascade.synthetic_books`) along
    the window, every account re-margined by Deribit-style PM at every step and closed in full
    under its maintenance margin. The books are struck at the window's first price and the
    implied vol of the day before (no look-ahead); the window's daily IV index moves every
    option's vol by its ratio to that start. Collateral is each account's initial margin
    under the first set times 1.02–1.5 (one population for every set)."""
    people = book_people(
        con, preference, inputs.asset, inputs.start, inputs.path[0], sets[0][1],
        accounts=accounts, seed=seed,
    )  # fmt: skip
    asset, iv, books = inputs.asset, people.iv, people.market
    daily, _ = stored.implied_vol(con, asset, preference, start=inputs.start, end=inputs.end)
    by_day = {d.date(): float(v) for d, v in daily.items() if v == v}
    iv_path, level = [], iv
    for k in range(len(inputs.path)):
        level = by_day.get(inputs.start + timedelta(days=k // 4), level)
        iv_path.append(level / iv)
    results = []
    for label, parameter_set in sets:
        params = parameter_set.to_model_params()
        impact = set_impact(parameter_set, inputs.impact)
        run = simulate_books(
            people.accounts,
            books.valuation,
            books.maintenance(params),
            inputs.path,
            iv_path,
            impact,
            PENALTY,
            fund=fund,
        )
        results.append(
            {
                "label": label,
                "params_fingerprint": parameter_set.fingerprint,
                "impact": {"y": impact.y, "half_spread": impact.half_spread},
                "rule": {"model": BOOK_MODEL, "penalty": PENALTY, "mode": "full"},
                **run_summary(run),
            }
        )
    impact = set_impact(sets[0][1], inputs.impact)
    return {
        "asset": asset,
        "from": inputs.start.isoformat(),
        "to": inputs.end.isoformat(),
        "steps_per_day": 4,
        "accounts": accounts,
        "fund_start": fund,
        "population": people.about,
        "impact": _impact_about(impact, inputs.start),
        "notes": [*inputs.notes, *people.notes],
        "sets": results,
    }
