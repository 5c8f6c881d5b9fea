"""Backtests over the warehouse (what ``mwb backtest`` and the ``bt`` assets run).

A run replays the warehouse's history through :mod:`backtesting.replay` for one parameter set,
or two ("current" and "proposed") on identical inputs, summarises every (set, portfolio, model)
with the coverage tests, procyclicality, capital efficiency and the stress windows, and stores
runs, daily rows and summaries in the ``bt`` schema.

Inputs as known on each day (no look-ahead):

* market: each underlying's close (preferred source) and 30-day IV index; an underlying without
  one uses its trailing 30-day realised volatility as IV (said so in the run's notes);
* volatility for filtered-historical VaR/ES and for calibrated parameters: GJR-GARCH-t
  re-estimated every ``refit_every`` days on the trailing ``window`` returns and filtered daily
  in between (:mod:`calibration.realtime`), EWMA (λ = 0.94) until the first window is full;
* parameters: a fixed set, the set the governance registry had in force that day
  (``registry``), and optionally paths taken daily from the rolling calibration
  (``calibrate``: price ranges and haircuts at the run's confidence and MPOR, × ``scale``).

Caches (fast what-ifs): rolling volatility per (asset, model, window, data), realised losses per
portfolio, and margins per (model, portfolio, *the parameters that model reads for that
portfolio's underlyings*). Re-running after changing a haircut recomputes only haircut rows;
after changing the BTC price range only the PM margins of BTC books; nothing is refitted.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

import pandas as pd

from backtesting.calibrated import (
    CalibratedPath,
    calibrated_paths,
    calibrated_values,
    held_bounds,
)
from backtesting.inputs import rolling_config, rolling_volatility, var_inputs
from backtesting.memo import Memo, build_days
from backtesting.replay import (
    HAIRCUT_MODEL,
    MIN_RESIDUAL_DAYS,
    DayBook,
    MarketHistory,
    VarInputs,
    end_of_day,
    override,
    realised_losses,
    replay_books,
    replay_collateral,
    trading_days,
)
from backtesting.spec import (
    DAILY_COLUMNS,
    DAILY_KEY,
    LOSS_COLUMNS,
    VOL_SPEC,
    BacktestSpec,
)
from backtesting.summary import summarise
from calibration.filters import realised_vol_as_iv
from calibration.realtime import (
    RealtimeVolatility,
)
from calibration.returns import log_return_frame
from governance.parameters import ParameterSet
from margin_engine.models import parameters_read
from margin_engine.params import ModelParams
from margin_engine.portfolios import Portfolio, select
from pipelines import __version__
from pipelines.errors import BadInputError
from pipelines.settings import WorkbenchSettings
from pipelines.stores import backtest as bt_store
from pipelines.stores import market as stored
from reports.serialize import plain
from vocabulary import MarginModel

if TYPE_CHECKING:
    import duckdb

PACKAGE_VERSION = __version__

CACHE_VERSION = "2"  # bump when the replay's numbers change for the same inputs
#: The models that margin from the return history (and so need the rolling volatility).
HISTORY_MODELS = ("var", "es", "mc-var", "mc-es")


def years_before(
    con: duckdb.DuckDBPyConnection, years: int, end: date | None = None
) -> date | None:
    """The first day of the ``years`` up to ``end`` (default: the last day with prices); the
    default window of the in-force backtest and of a proposal's backtest."""
    if end is None:
        end = stored.last_price_day(con)
    return (pd.Timestamp(end) - pd.DateOffset(years=years)).date() if end else None


# the command-line flag of each BacktestSpec field, for one-line refusals
FLAGS = {
    "models": "--model",
    "portfolios": "--portfolio",
    "calibrate": "--calibrate",
    "scale": "--scale",
    "end": "--to",
    "simulations": "--simulations",
    "paths": "--paths",
}


def backtest_spec(**fields) -> BacktestSpec:
    """A :class:`BacktestSpec` from command-line or run-config values; a refusal names the
    flag (``--model: …``) and exits 2."""
    try:
        return BacktestSpec(**fields)
    except ValueError as exc:
        name, _, message = str(exc).partition(": ")
        raise BadInputError(f"{FLAGS.get(name, name)}: {message}") from None


@dataclass(frozen=True)
class ParamSource:
    """A set to backtest: a fixed ``params``, or the registry's set in force each day."""

    label: str
    params: ParameterSet
    by_day: Callable[[pd.Timestamp], ParameterSet] | None = None
    note: str = ""

    @property
    def fingerprint(self) -> str:
        return self.params.fingerprint if self.by_day is None else "registry:" + self.note


def _sha(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


# --------------------------------------------------------------------------- market history


def load_history(con: duckdb.DuckDBPyConnection, preference: Sequence[str], assets: Sequence[str]):
    """Closes, highs, lows, 30-day IVs and funding of ``assets`` (dates × assets, spliced
    across sources by :mod:`pipelines.stores.market`), notes (which source served which days, the
    gaps), the gaps per asset and the data fingerprint."""
    bars, ivs, funding, notes = {}, {}, {}, []
    for asset in assets:
        frame, provenance = stored.bars(con, asset, preference)
        if provenance is None:
            notes.append(f"{asset}: no prices in the warehouse; its portfolios are skipped")
            continue
        bars[asset] = frame
        iv, iv_provenance = stored.implied_vol(con, asset, preference)
        if iv_provenance is not None:
            ivs[asset] = iv
            notes.append(
                f"prices {provenance.describe()}; 30-day IV index from {iv_provenance.label}"
            )
        else:
            notes.append(
                f"prices {provenance.describe()}; no IV index — trailing 30-day realised vol as IV"
            )
        rates, funding_provenance = stored.funding(con, asset, preference)
        if funding_provenance is not None:
            funding[asset] = rates
            notes.append(
                f"{asset}: funding from {funding_provenance.label} "
                f"({funding_provenance.segments[0].first}..{funding_provenance.segments[-1].last}): "
                "perpetuals accrue it, dated futures carry its basis"
            )
    if not bars:
        raise BadInputError(
            "the warehouse has no prices for the backtest's underlyings; load data first"
        )
    close = pd.DataFrame({a: f["close"] for a, f in bars.items()}).sort_index()
    days = pd.date_range(close.index.min(), close.index.max(), freq="D")
    close = close.reindex(days)
    high = pd.DataFrame({a: f["high"] for a, f in bars.items()}).reindex(days)
    low = pd.DataFrame({a: f["low"] for a, f in bars.items()}).reindex(days)
    returns, series = log_return_frame(close)
    gaps = {a: r.gap_list() for a, r in series.items() if len(r.gaps)}
    for asset, found in gaps.items():
        missing = sum(g["missing_days"] for g in found)
        listed = ", ".join(f"{g['date']} ({g['missing_days']} d)" for g in found[:6])
        more = f" and {len(found) - 6} more" if len(found) > 6 else ""
        notes.append(
            f"{asset}: {len(found)} gap(s), {missing} missing day(s) — closes after a gap: "
            f"{listed}{more}; each return across a gap enters as r/sqrt(days)"
        )
    realised = realised_vol_as_iv(returns)
    iv = pd.DataFrame(
        {a: ivs[a].reindex(close.index) if a in ivs else realised[a] for a in close.columns}
    )
    iv = iv.where((iv > 0) & (iv <= 5))
    rates = pd.DataFrame(funding).reindex(days) if funding else None
    digest = hashlib.sha256()
    frames = [close, iv, high, low] + ([rates] if rates is not None else [])
    for frame in frames:
        digest.update(pd.util.hash_pandas_object(frame.round(12), index=True).to_numpy().tobytes())
        digest.update(",".join(map(str, frame.columns)).encode())
    market = MarketHistory(close, iv, high, low, rates)
    return market, notes, digest.hexdigest(), gaps


# --------------------------------------------------------------------------- rolling volatility


def realtime_inputs(
    con: duckdb.DuckDBPyConnection,
    history: MarketHistory,
    data_sha: str,
    spec: BacktestSpec,
    horizon: int,
    first_day: pd.Timestamp,
    lookback: int,
    mapper: Callable | None = None,
) -> tuple[dict[str, RealtimeVolatility], dict]:
    """Rolling GJR-GARCH-t (EWMA before its first window) per underlying, from the cache or
    computed and cached. Forecast origins start ``lookback`` days before ``first_day`` so that
    the first day's FHS residuals and VaR scenarios are already GARCH-filtered."""
    config = rolling_config(spec, horizon)
    start = first_day - pd.Timedelta(days=lookback + 10)
    key = _sha(
        {
            "v": CACHE_VERSION,
            "data": data_sha,
            "spec": VOL_SPEC.name,
            "config": asdict(config),
            "from": start.date().isoformat(),
        }
    )
    cached = bt_store.cached_volatility(con, key, horizon)
    if cached:
        return cached, {"vol_cache": "hit", "key": key}
    out, refits = rolling_volatility(history, config, start, mapper=mapper)
    bt_store.cache_volatility(con, key, out)
    return out, {"vol_cache": "computed", "key": key, "refits": refits}


def history_inputs(
    con: duckdb.DuckDBPyConnection,
    history: MarketHistory,
    data_sha: str,
    spec: BacktestSpec,
    mpor: int,
    sets: Sequence[ParameterSet],
    first_day: pd.Timestamp,
    mapper: Callable | None = None,
) -> tuple[dict[str, RealtimeVolatility], VarInputs, dict, int]:
    """What the history models of every one of ``sets`` read: the rolling volatility (covering
    each set's MPOR and look-back; :func:`realtime_inputs`) and the VaR/ES and Monte Carlo
    inputs on it (the spec's paths and seed). Returns those two, the volatility's cache
    record, and the horizon.
    """
    horizon = max(mpor, *(s.var.mpor_days for s in sets))
    lookback = max(spec.residual_lookback, *(s.var.lookback_days for s in sets))
    realtime, record = realtime_inputs(
        con, history, data_sha, spec, horizon, first_day, lookback, mapper
    )
    inputs = dataclasses.replace(var_inputs(history, realtime), paths=spec.paths, seed=spec.seed)
    return realtime, inputs, record, horizon


def calibration_bounds(con: duckdb.DuckDBPyConnection, paths: Sequence[str]) -> dict:
    """[low, high] per path: the governance policy in force intersected with the parameter's
    own range (before ``mwb params init`` no policy is in force: the parameter's range alone,
    so a what-if like ``--scale 0.5`` is not bent by a policy nobody adopted)."""
    from governance.registry import Registry

    registry = Registry(con)
    policy = registry.policy() if registry.initialised() else None
    found = {p: policy.bound_for(p) for p in paths} if policy is not None else {}
    return held_bounds(paths, {p: (b[1].min, b[1].max) for p, b in found.items() if b})


# --------------------------------------------------------------------------- cache keys


def _margin_key(
    source: ParamSource, model: str, portfolio: Portfolio, common: dict, spec: BacktestSpec
) -> str | None:
    """The cache key of a (set, model, portfolio) margin series; None when not cacheable."""
    if source.by_day is not None:
        return None  # registry mode: the set changes by day; not cached
    calibrated = [
        c
        for c in spec.calibrate
        if any(
            fnmatchcase(f"underlyings.{u}.{part}", c)
            for u in portfolio.underlying_list
            for part in ("pm.price_range", "span.price_scan_range")
        )
    ]
    uses_vol = model in HISTORY_MODELS or bool(calibrated)
    simulated = MarginModel(model).simulated
    return _sha(
        {
            **common,
            "model": model,
            # the description too: an account snapshot's carries its rows' digest, so a book
            # re-supplied under the same name with other positions is not served stale margins
            "portfolio": [portfolio.name, portfolio.description],
            "params": parameters_read(
                model, source.params.canonical_dict(), portfolio.underlying_list
            ),
            "calibrated": calibrated,
            "scale": spec.scale if calibrated else None,
            "vol": common.get("vol") if uses_vol else None,
            # a Monte Carlo series is its paths' too: how many and from which seed
            "paths": [spec.paths, spec.seed] if simulated else None,
        }
    )


class NothingToReplay(BadInputError):
    """No day of the range has prices an MPOR later: a backtest of it has no struck day."""


# --------------------------------------------------------------------------- the run


@dataclass
class BacktestRun:
    run_id: str
    spec: BacktestSpec
    sets: dict[str, str]
    start: date
    end: date
    mpor_days: int
    confidence: float
    daily: pd.DataFrame
    summaries: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    cache: dict = field(default_factory=dict)
    data_sha: str = ""
    elapsed: float = 0.0
    gaps: dict = field(default_factory=dict)  # asset -> gaps in the history (calibration.returns)
    calibrated: dict = field(default_factory=dict)  # path -> clips, range, procyclicality

    def summary_records(self) -> list[dict]:
        return copy.deepcopy(list(self.summaries["summary"]))


def history_days(
    var_in: VarInputs,
    books: Sequence[Portfolio],
    spec: BacktestSpec,
    horizon: int,
    days: list[pd.Timestamp],
    notes: list[str],
    history_start: pd.Timestamp,
) -> list[pd.Timestamp]:
    """``days`` from the first on which every history model of ``spec`` has its inputs for
    every book (VaR/ES: the MPOR's joint days of returns and filtered vols; Monte Carlo:
    :data:`MIN_RESIDUAL_DAYS` joint residuals). Without ``--from``, or with one before the
    history begins (a proposal's three years on a shorter warehouse), the earlier days are
    left out with a note; a ``--from`` inside the history but before that day is refused,
    naming the first possible day.
    """
    needs = {
        m: MIN_RESIDUAL_DAYS if MarginModel(m).simulated else horizon
        for m in spec.models
        if m in HISTORY_MODELS
    }
    if not needs:
        return days
    firsts = {}
    for model, need in needs.items():
        found = [var_in.first_day(p.underlying_list, need) for p in books]
        if any(f is None for f in found):
            raise BadInputError(
                f"--model {model}: the history never has {need} joint days of returns and "
                "filtered vols for every book; load more history"
            )
        firsts[model] = max(f for f in found if f is not None)
    model, first = max(firsts.items(), key=lambda kv: kv[1])
    if days[0] >= first:
        return days
    if spec.start is not None and pd.Timestamp(spec.start) >= history_start:
        raise BadInputError(
            f"--from {spec.start}: {model} needs {needs[model]} joint days of returns and "
            f"filtered vols before its first day; the first such day is {first:%Y-%m-%d} "
            f"(use --from {first:%Y-%m-%d} or later)"
        )
    kept = [d for d in days if d >= first]
    if not kept:
        raise NothingToReplay(
            f"no day to replay: the range ends {days[-1]:%Y-%m-%d}, before {first:%Y-%m-%d}, the "
            f"first day {model} can margin ({needs[model]} joint days of history)"
        )
    notes.append(
        f"{len(days) - len(kept)} day(s) before {first:%Y-%m-%d}, the first with the "
        f"history {model} needs, are not replayed"
    )
    return kept


def run_backtest(
    con: duckdb.DuckDBPyConnection,
    settings: WorkbenchSettings,
    sources: Sequence[ParamSource],
    spec: BacktestSpec,
    *,
    accounts: Sequence[Portfolio] = (),
    store: bool = True,
    mapper: Callable | None = None,
) -> BacktestRun:
    """Replay ``sources`` (1 or 2) on identical inputs; store and return the run.

    ``accounts`` adds static books (account snapshots, :func:`margin_engine.portfolios.from_positions`)
    to the library's portfolios. ``mapper`` (a Dask client's, :mod:`pipelines.compute`) runs
    the rolling volatility fits as tasks; without it they run in a local process pool.
    """
    started = time.perf_counter()
    if not 1 <= len(sources) <= 2:
        raise BadInputError("a backtest compares one or two parameter sets")
    portfolios = select(spec.portfolios) + tuple(accounts)
    names = [p.name for p in portfolios]
    if len(set(names)) != len(names):
        raise BadInputError(
            f"an account is named like a library portfolio: {sorted({n for n in names if names.count(n) > 1})}"
        )
    books = tuple(p for p in portfolios if p.kind == "book")
    collateral = tuple(p for p in portfolios if p.kind == "collateral")
    first = sources[0].params
    mpor = spec.mpor_days or first.var.mpor_days
    confidence = spec.confidence or first.var.var_confidence
    assets = sorted({u for p in portfolios for u in p.underlying_list})
    history, notes, data_sha, gaps = load_history(con, settings.market.source_preference, assets)
    days = trading_days(history, spec.start, spec.end, mpor)
    if not days:
        raise NothingToReplay(
            f"no day in [{spec.start or 'start'}, {spec.end or 'end'}] has prices {mpor} days later "
            f"(history {history.days.min():%Y-%m-%d}..{history.days.max():%Y-%m-%d})"
        )
    cache: dict = {
        "margins": {"reused": 0, "computed": 0},
        "losses": {"reused": 0, "computed": 0},
        "seconds": {},
    }
    clock = [time.perf_counter()]

    def lap(name: str) -> None:
        now = time.perf_counter()
        cache["seconds"][name] = round(cache["seconds"].get(name, 0.0) + now - clock[0], 3)
        clock[0] = now

    lap("history")
    needs_vol = bool(spec.calibrate) or (
        bool(books) and any(m in HISTORY_MODELS for m in spec.models)
    )
    realtime: dict[str, RealtimeVolatility] = {}
    calibrated = pd.DataFrame(index=pd.DatetimeIndex(days))
    calibrated_path: CalibratedPath | None = None
    var_in = None
    if needs_vol:
        lap("setup")
        realtime, var_in, cache["volatility"], horizon = history_inputs(
            con, history, data_sha, spec, mpor, [s.params for s in sources], days[0], mapper
        )
        lap("volatility")
        if spec.calibrate:
            calibrated_path = calibrated_values(
                realtime,
                spec,
                days,
                confidence,
                mpor,
                bounds=calibration_bounds(con, calibrated_paths(list(realtime), spec.calibrate)),
            )
            calibrated = calibrated_path.values
            clips = calibrated_path.clips
            if len(clips):
                notes.append(
                    f"calibrated values clipped to the policy's bounds on {len(clips)} "
                    f"(day, parameter) pair(s), first {clips['date'].iloc[0]:%Y-%m-%d} "
                    f"({clips['path'].iloc[0]}: {clips['calibrated'].iloc[0]:.4f} -> "
                    f"{clips['clipped_to'].iloc[0]:.4f})"
                )
            usable = calibrated.dropna().index
            dropped = len(days) - len(usable)
            if dropped:
                notes.append(
                    f"{dropped} day(s) before every calibrated series had {250} residuals are not replayed"
                )
            days = [d for d in days if d in usable]
            if not days:
                raise BadInputError("no day has every calibrated parameter; widen the history")
    if var_in is not None and books:
        days = history_days(var_in, books, spec, horizon, days, notes, history.days.min())
    if var_in is not None and books and any(m in ("var", "es") for m in spec.models):
        lookback = max(s.params.var.lookback_days for s in sources)
        notes.append(
            f"VaR/ES: filtered historical simulation on up to {lookback} days of history, "
            f"GJR-GARCH-t refitted every {spec.refit_every} days on {spec.window} returns"
        )
    if var_in is not None and books and any(MarginModel(m).simulated for m in spec.models):
        notes.append(
            f"Monte Carlo: {spec.paths} Sobol paths a day (seed {spec.seed}, one stream per "
            "day) bootstrapping the joint standardised residuals known at the day, each "
            "underlying at its next-day GJR-GARCH-t forecast over the MPOR; full revaluation"
        )
    common = {
        "v": CACHE_VERSION,
        "data": data_sha,
        "mpor": mpor,
        "days": [days[0].date().isoformat(), days[-1].date().isoformat(), len(days)],
        "package": PACKAGE_VERSION,
        "vol": cache.get("volatility", {}).get("key"),
    }
    if calibrated_path is not None:
        common["bounds"] = calibrated_path.bounds
    models = tuple(dict.fromkeys(("standard", *spec.models)))  # standard: the efficiency baseline
    # which (set, model, portfolio) margins and which portfolio losses are missing
    margin_keys: dict[tuple[str, str, str], str | None] = {}
    for source in sources:
        for model in models:
            for p in books:
                margin_keys[(source.label, model, p.name)] = _margin_key(
                    source, model, p, common, spec
                )
    loss_keys = {
        p.name: _sha(
            {**{k: v for k, v in common.items() if k != "vol"}, "loss": [p.name, p.description]}
        )
        for p in books
    }
    have_margins = bt_store.existing_keys(
        con, "bt.margin_cache", [k for k in margin_keys.values() if k]
    )
    have_losses = bt_store.existing_keys(con, "bt.loss_cache", list(loss_keys.values()))
    missing_books = {
        p for (_, _, p), k in margin_keys.items() if k is None or k not in have_margins
    }
    missing_books |= {p for p, k in loss_keys.items() if k not in have_losses}
    day_books: list[DayBook] = []
    if missing_books:
        subset = tuple(p for p in books if p.name in missing_books)
        realised = any(loss_keys[p.name] not in have_losses for p in subset)
        lap("setup")
        day_books = build_days(history, subset, days, mpor, realised=realised, data=data_sha)
        lap("books")
    params_cache: dict = {}

    def params_for(source: ParamSource) -> Callable[[pd.Timestamp], ModelParams]:
        def get(day: pd.Timestamp) -> ModelParams:
            base_set = source.params if source.by_day is None else source.by_day(day)
            base = params_cache.get(id(base_set))
            if base is None:
                base = params_cache[id(base_set)] = base_set.to_model_params()
            if spec.calibrate and day in calibrated.index:
                return override(base, calibrated.loc[day].dropna().to_dict())
            return base

        return get

    # losses
    new_losses = []
    computed_losses = [p.name for p in books if loss_keys[p.name] not in have_losses]
    cache["losses"]["reused"] = len(books) - len(computed_losses)
    cache["losses"]["computed"] = len(computed_losses)
    if computed_losses and day_books:
        realised = realised_losses(day_books)
        realised = realised[realised["portfolio"].isin(computed_losses)]
        realised["cache_key"] = realised["portfolio"].map(loss_keys)
        new_losses.append(realised.drop(columns="portfolio"))
    # margins
    new_margins = []
    uncached: list[tuple[tuple[str, str, str], pd.DataFrame]] = []
    for source in sources:
        get = params_for(source)
        for model in models:
            wanted = [
                p.name
                for p in books
                if (k := margin_keys[(source.label, model, p.name)]) is None
                or k not in have_margins
            ]
            cache["margins"]["reused"] += len(books) - len(wanted)
            if not wanted:
                continue
            cache["margins"]["computed"] += len(wanted)
            try:
                rows = replay_books(day_books, model, get, var_in)
            except ValueError as exc:  # too little history before the first day for the model
                raise BadInputError(f"--from: {model} on {spec.start}: {exc}") from None
            rows = rows[rows["portfolio"].isin(wanted)]
            for name, frame in rows.groupby("portfolio"):
                key = margin_keys[(source.label, model, name)]
                margins = frame[["date", "currency", "margin", "maintenance", "var_es", "es"]]
                if key is None:  # not cacheable: joined to its losses below, in this run only
                    uncached.append(((source.label, model, str(name)), margins))
                    continue
                new_margins.append(margins.assign(cache_key=key))
                have_margins.add(key)  # the other set may share it: computed once
    lap("margins")
    bt_store.store_cache(con, new_losses, new_margins)
    lap("cache writes")
    # assemble: the cached series joined to their books' losses in the warehouse; a series
    # that cannot be cached (its margins only in this run) joined here
    daily = []
    cached = [
        (label, model, name, key, loss_keys[name])
        for (label, model, name), key in margin_keys.items()
        if key
    ]
    if cached:
        series = pd.DataFrame(
            cached, columns=["set_label", "model", "portfolio", "margin_key", "loss_key"]
        )
        daily.append(bt_store.joined_series(con, series, days))
    if uncached:
        losses = bt_store.load_cached(
            con, "bt.loss_cache", list({loss_keys[n] for (_, _, n), _ in uncached}), LOSS_COLUMNS
        )
        loss_by = {k: f.drop(columns="cache_key") for k, f in losses.groupby("cache_key")}
        day_set = pd.DatetimeIndex(days)
        for (label, model, name), margins in uncached:
            lo = loss_by.get(loss_keys[name])
            if lo is None:
                continue
            joined = margins.merge(lo, on=["date", "currency"], how="inner")
            joined = joined[pd.DatetimeIndex(joined["date"]).isin(day_set)]
            daily.append(joined.assign(set_label=label, portfolio=name, model=model))
    for source in sources:
        if collateral:
            rows = replay_collateral(history, collateral, days, mpor, params_for(source))
            daily.append(
                rows.drop(columns="model").assign(set_label=source.label, model=HAIRCUT_MODEL)
            )
    frame = pd.concat(daily, ignore_index=True) if daily else pd.DataFrame()
    if frame.empty:
        raise BadInputError(
            "nothing to backtest: no portfolio had its inputs on any day of the range"
        )
    frame["date"] = pd.to_datetime(frame["date"])
    frame["breach"] = frame["loss"] > frame["margin"]
    frame["breach_path"] = frame["loss_path"] > frame["margin"]
    frame = frame[list(DAILY_COLUMNS)].sort_values(list(DAILY_KEY), ignore_index=True)
    sets = {s.label: s.fingerprint for s in sources}
    run_id = (
        "bt-"
        + _sha(
            {
                "spec": spec.as_dict(),
                "sets": sets,
                "data": data_sha,
                "mpor": mpor,
                "confidence": confidence,
                "package": PACKAGE_VERSION,
            }
        )[:12]
    )
    lap("assemble")
    es_level = max(s.params.var.es_confidence for s in sources)
    frame.attrs["es_level"] = es_level
    calibrated_summary = calibrated_path.summary() if calibrated_path is not None else {}
    summaries = summarise(
        frame,
        confidence,
        spec,
        list(sets),
        mpor=mpor,
        calibrated=calibrated_summary,
        underlyings={p.name: p.underlying_list for p in portfolios},
    )
    summaries["summary"] = summaries["summary"].map(_json_safe)

    lap("summaries")
    run = BacktestRun(
        run_id,
        spec,
        sets,
        days[0].date(),
        days[-1].date(),
        mpor,
        confidence,
        frame,
        summaries,
        notes,
        cache,
        data_sha,
        time.perf_counter() - started,
        gaps,
        calibrated_summary,
    )
    if store:
        bt_store.store_run(con, run)
        lap("store")
    run.elapsed = time.perf_counter() - started
    return run


_PLAIN: Memo[tuple[dict, dict]] = Memo(4_096)  # by the summary memo's object: its JSON-safe twin


def _json_safe(summary: dict) -> dict:
    """``summary`` as JSON-safe Python, converted once per summary the memo holds (a what-if
    re-uses most of its summaries)."""
    found = _PLAIN.get(id(summary))
    if found is not None and found[0] is summary:
        return found[1]
    return _PLAIN.put(id(summary), (summary, plain(summary)))[1]


# --------------------------------------------------------------------------- storage


def registry_source(con: duckdb.DuckDBPyConnection, label: str = "in-force") -> ParamSource:
    """The set the governance registry had in force at the end of each day (no look-ahead).
    Days before the first activation use the genesis set, and the run's note says so."""
    from governance.registry import Registry

    registry = Registry(con)
    activations = registry.activations()
    if not activations:
        raise BadInputError(
            "--params registry: the governance registry is empty (`mwb params init`)"
        )
    sets = {a.parameter_set: registry.parameter_set(a.parameter_set) for a in activations}
    genesis = sets[activations[0].parameter_set]
    history_key = _sha([(a.parameter_set, a.effective_from.isoformat()) for a in activations])

    def by_day(day: pd.Timestamp) -> ParameterSet:
        activation = registry.active_at(end_of_day(day))
        return genesis if activation is None else sets[activation.parameter_set]

    return ParamSource(label, genesis, by_day, note=history_key)


def resolve_source(con: duckdb.DuckDBPyConnection, ref: str, label: str) -> ParamSource:
    """A set named on the command line: ``registry`` (the set in force each day), or what
    :func:`pipelines.params.resolve_parameter_set` resolves."""
    from pipelines.params import resolve_parameter_set

    if ref == "registry":
        return registry_source(con, label)
    resolved = resolve_parameter_set(con, ref, also=("registry",))
    return ParamSource(label, resolved.parameter_set, note=resolved.source)
