"""Backtests over the warehouse (what ``mwb backtest`` and the ``bt`` assets run).

A run replays the warehouse's history through :mod:`margin_engine.replay` for one parameter set,
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

import hashlib
import json
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from fnmatch import fnmatchcase

import duckdb
import numpy as np
import pandas as pd

from calibration.lineage import library_versions
from calibration.realtime import (
    RealtimeVolatility,
    combine,
    ewma_realtime,
    fhs_moves,
    realtime_volatility,
)
from calibration.returns import log_return_frame
from calibration.rolling import RollingConfig, rolling_forecasts_many
from calibration.stress import STRESS_WINDOWS
from calibration.univariate import UnivariateSpec
from governance.parameters import ParameterSet
from margin_engine.backtest import (
    CoverageReport,
    MonteCarloNulls,
    acerbi_szekely,
    coverage_report,
)
from margin_engine.params import ModelParams
from margin_engine.portfolios import Portfolio, select
from margin_engine.procyclicality import max_increase, procyclicality_summary
from margin_engine.replay import (
    BOOK_MODELS,
    HAIRCUT_MODEL,
    DayBook,
    MarketHistory,
    VarInputs,
    build_day,
    end_of_day,
    override,
    replay_books,
    replay_collateral,
    trading_days,
)
from pipelines import __version__
from pipelines import history as stored
from pipelines.errors import BadInputError
from pipelines.settings import WorkbenchSettings
from pipelines.warehouse import transaction
from reports.serialize import dumps

PACKAGE_VERSION = __version__

DEFAULT_MODELS = ("deribit-pm", "span", "var")
DEFAULT_PORTFOLIOS = ("books", "collateral")
VOL_SPEC = UnivariateSpec("gjr-garch", "t")
CALIBRATABLE = (
    "underlyings.*.pm.price_range",
    "underlyings.*.span.price_scan_range",
    "collateral.*.haircut",
)
CALIBRATABLE_PATH = re.compile(
    r"^(underlyings\.(\*|[A-Z0-9]+)\.(pm\.price_range|span\.price_scan_range)|collateral\.(\*|[A-Z0-9]+)\.haircut)$"
)
CACHE_VERSION = "2"  # bump when the replay's numbers change for the same inputs

# One row per (set, portfolio, model, settlement currency, day), in the order summaries expect.
DAILY_COLUMNS = (
    "set_label",
    "date",
    "portfolio",
    "model",
    "currency",
    "margin",
    "maintenance",
    "loss",
    "breach",
    "fx_usd",
    "notional_usd",
    "loss_path",
    "breach_path",
    "var_es",
    "es",
)
LOSS_COLUMNS = "cache_key, date, currency, loss, fx_usd, notional_usd, loss_path"
MARGIN_COLUMNS = "cache_key, date, currency, margin, maintenance, var_es, es"
DAILY_KEY = ("set_label", "portfolio", "model", "currency", "date")


def years_before(
    con: duckdb.DuckDBPyConnection, years: int, end: date | None = None
) -> date | None:
    """The first day of the ``years`` up to ``end`` (default: the last day with prices); the
    default window of the in-force backtest and of a proposal's backtest."""
    if end is None:
        end = con.execute("SELECT max(date) FROM market.prices").fetchone()[0]
    return (pd.Timestamp(end) - pd.DateOffset(years=years)).date() if end else None


@dataclass(frozen=True)
class BacktestSpec:
    """What to replay; see the module docstring. ``confidence`` and ``mpor_days`` default to the
    first set's ``var.var_confidence`` and ``var.mpor_days``."""

    start: date | None = None
    end: date | None = None
    models: tuple[str, ...] = DEFAULT_MODELS
    portfolios: tuple[str, ...] = DEFAULT_PORTFOLIOS
    mpor_days: int | None = None
    confidence: float | None = None
    calibrate: tuple[str, ...] = ()
    scale: float = 1.0
    seed: int = 0
    simulations: int = 999
    window: int = 500
    refit_every: int = 5
    residual_lookback: int = 500

    def __post_init__(self) -> None:
        unknown = [m for m in self.models if m not in BOOK_MODELS]
        if unknown:
            raise BadInputError(
                f"--model: {', '.join(unknown)} not one of {', '.join(BOOK_MODELS)}"
            )
        try:
            select(self.portfolios)
        except ValueError as exc:
            raise BadInputError(f"--portfolio: {exc}") from exc
        for pattern in self.calibrate:
            if not CALIBRATABLE_PATH.match(pattern):
                raise BadInputError(
                    f"--calibrate: {pattern!r} is not one of {', '.join(CALIBRATABLE)} (with * or a symbol)"
                )
        if not self.scale > 0:
            raise BadInputError(f"--scale must be positive, got {self.scale}")
        if self.start and self.end and self.end < self.start:
            raise BadInputError(f"--to {self.end} is before --from {self.start}")
        if self.simulations < 99:
            raise BadInputError(f"simulations must be at least 99, got {self.simulations}")

    def as_dict(self) -> dict:
        data = asdict(self)
        data["start"] = self.start.isoformat() if self.start else None
        data["end"] = self.end.isoformat() if self.end else None
        return data


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


def load_history(
    con: duckdb.DuckDBPyConnection, settings: WorkbenchSettings, assets: Sequence[str]
):
    """Closes, highs, lows, 30-day IVs and funding of ``assets`` (dates × assets, spliced
    across sources by :mod:`pipelines.history`), notes (which source served which days, the
    gaps), the gaps per asset and the data fingerprint."""
    preference = settings.market.source_preference
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
    realised = returns.rolling(30, min_periods=25).std() * math.sqrt(365.0)
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
) -> tuple[dict[str, RealtimeVolatility], dict]:
    """Rolling GJR-GARCH-t (EWMA before its first window) per underlying, from the cache or
    computed and cached. Forecast origins start ``lookback`` days before ``first_day`` so that
    the first day's FHS residuals and VaR scenarios are already GARCH-filtered."""
    config = RollingConfig(window=spec.window, refit_every=spec.refit_every, horizon=horizon)
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
    returns = {
        a: r.values for a, r in log_return_frame(history.close)[1].items()
    }  # the gap rule: a k-day return enters as r/sqrt(k)
    cached = con.execute(
        "SELECT asset, date, cond_vol, std_resid, forecasts FROM bt.vol_cache WHERE cache_key = ? ORDER BY asset, date",
        [key],
    ).df()
    if not cached.empty:
        out = {}
        for asset, frame in cached.groupby("asset"):
            index = pd.DatetimeIndex(frame["date"])
            forecasts = pd.DataFrame(
                np.vstack(frame["forecasts"].to_numpy()),
                index=index,
                columns=list(range(1, horizon + 1)),
            )
            forecasts.index.name = "origin"
            out[asset] = RealtimeVolatility(
                asset,
                frame.set_index(index)["cond_vol"].dropna(),
                frame.set_index(index)["std_resid"].dropna(),
                forecasts,
            )
        return out, {"vol_cache": "hit", "key": key}
    rolling = rolling_forecasts_many(
        returns, VOL_SPEC, config, start=start, end=history.days.max(), max_workers=2
    )
    out = {}
    rows = []
    for asset, series in returns.items():
        fallback = ewma_realtime(series, horizon, asset=asset)
        combined = (
            combine(realtime_volatility(rolling[asset], series), fallback)
            if len(rolling[asset].variances)
            else fallback
        )
        out[asset] = combined
        frame = combined.forecasts.copy()
        rows.append(
            pd.DataFrame(
                {
                    "cache_key": key,
                    "asset": asset,
                    "date": frame.index,
                    "cond_vol": combined.cond_vol.reindex(frame.index).to_numpy(),
                    "std_resid": combined.std_resid.reindex(frame.index).to_numpy(),
                    "forecasts": list(frame.to_numpy()),
                }
            )
        )
    table = pd.concat(rows, ignore_index=True)
    with transaction(con):
        con.execute("DELETE FROM bt.vol_cache WHERE cache_key = ?", [key])
        con.register("vol_rows", table)
        con.execute(
            "INSERT INTO bt.vol_cache SELECT cache_key, asset, date, cond_vol, std_resid, forecasts FROM vol_rows"
        )
        con.unregister("vol_rows")
    refits = {a: int(len(r.refits)) for a, r in rolling.items()}
    return out, {"vol_cache": "computed", "key": key, "refits": refits}


def var_inputs(history: MarketHistory, realtime: Mapping[str, RealtimeVolatility]) -> VarInputs:
    """Scenario inputs under the gap rule: the day after a gap has its (scaled) return."""
    returns = log_return_frame(history.close)[0]
    iv_changes = log_return_frame(history.iv)[0]
    cond = pd.DataFrame({a: r.cond_vol for a, r in realtime.items()}).reindex(returns.index)
    nxt = pd.DataFrame({a: np.sqrt(r.forecasts[1]) for a, r in realtime.items()}).reindex(
        returns.index
    )
    return VarInputs(returns, iv_changes, cond, nxt)


# the parameter set's own range of each calibratable path (an open lower bound as 1e-6)
SCHEMA_RANGE = {
    "pm.price_range": (1e-6, 1.0),
    "span.price_scan_range": (1e-6, 1.0),
    "haircut": (0.0, 1.0),
}


@dataclass(frozen=True)
class CalibratedPath:
    """Daily calibrated parameter values (days × paths), clipped to the policy's bounds.

    ``raw`` holds the values before clipping; ``bounds`` the [low, high] each path was held to
    (the governance policy's bound intersected with the parameter's own range); ``clips`` one
    row per clipped (day, path).
    """

    values: pd.DataFrame
    raw: pd.DataFrame
    bounds: dict[str, tuple[float, float]]

    @property
    def clips(self) -> pd.DataFrame:
        rows = []
        for path in self.values.columns:
            moved = self.raw[path].notna() & (self.raw[path] != self.values[path])
            for day in self.values.index[moved]:
                rows.append(
                    (day, path, float(self.raw.at[day, path]), float(self.values.at[day, path]))
                )
        return pd.DataFrame(rows, columns=["date", "path", "calibrated", "clipped_to"])

    def summary(self) -> dict:
        """Per path: bounds, days clipped (first dates), range and procyclicality of the path."""
        out = {}
        clips = self.clips
        for path in self.values.columns:
            series = self.values[path].dropna()
            mine = clips[clips["path"] == path]
            entry = {
                "bounds": list(self.bounds[path]),
                "days": int(len(series)),
                "clipped_days": int(len(mine)),
                "clipped_first": [d.date().isoformat() for d in mine["date"][:5]],
                "raw_min": _finite(self.raw[path].min()),
                "raw_max": _finite(self.raw[path].max()),
                "min": _finite(series.min()) if len(series) else None,
                "max": _finite(series.max()) if len(series) else None,
                "procyclicality": None,
            }
            if len(series) and (series > 0).all():
                p = procyclicality_summary(series.to_numpy()).as_dict()
                entry["procyclicality"] = {
                    "peak_to_trough": p["peak_to_trough"]["ratio"],
                    "max_increase_1d": p["max_increase"]["1"]["value"],
                    "max_increase_5d": p["max_increase"]["5"]["value"],
                    "max_increase_30d": p["max_increase"]["30"]["value"],
                }
            out[path] = entry
        return out


def calibration_bounds(con: duckdb.DuckDBPyConnection, paths: Sequence[str]) -> dict:
    """[low, high] per path: the governance policy in force intersected with the parameter's
    own range (before ``mwb params init`` no policy is in force: the parameter's range alone,
    so a what-if like ``--scale 0.5`` is not bent by a policy nobody adopted)."""
    from governance.registry import Registry

    registry = Registry(con)
    policy = registry.policy() if registry.initialised() else None
    out = {}
    for path in paths:
        key = "haircut" if path.startswith("collateral") else path.split(".", 2)[2]
        low, high = SCHEMA_RANGE[key]
        found = policy.bound_for(path) if policy is not None else None
        if found is not None:
            bound = found[1]
            low = max(low, bound.min) if bound.min is not None else low
            high = min(high, bound.max) if bound.max is not None else high
        out[path] = (low, high)
    return out


def calibrated_values(
    realtime: Mapping[str, RealtimeVolatility],
    spec: BacktestSpec,
    days: Sequence[pd.Timestamp],
    confidence: float,
    mpor: int,
    bounds: Callable[[Sequence[str]], dict] | None = None,
) -> CalibratedPath:
    """Daily values of the ``calibrate`` paths (days × paths): FHS moves at ``confidence`` over
    the MPOR from the residuals known that day, × ``scale``; price ranges take the larger tail,
    haircuts the down move; then clipped to ``bounds(paths)`` (default: the parameter's own
    range) — a clip is recorded, never an error."""
    out = {}
    index = pd.DatetimeIndex(days)
    for asset, rt in realtime.items():
        paths = [
            p
            for p in (
                f"underlyings.{asset}.pm.price_range",
                f"underlyings.{asset}.span.price_scan_range",
                f"collateral.{asset}.haircut",
            )
            if any(fnmatchcase(p, c) for c in spec.calibrate)
        ]
        if not paths:
            continue
        moves = fhs_moves(rt, index, mpor, confidence, spec.residual_lookback)
        for path in paths:
            column = "down" if path.startswith("collateral") else "price_range"
            out[path] = (moves[column] * spec.scale).reindex(index)
    raw = pd.DataFrame(out, index=index)
    limits = (
        bounds(list(raw.columns))
        if bounds is not None
        else {
            p: SCHEMA_RANGE["haircut" if p.startswith("collateral") else p.split(".", 2)[2]]
            for p in raw.columns
        }
    )
    clipped = raw.copy()
    for path, (low, high) in limits.items():
        clipped[path] = raw[path].clip(lower=low, upper=high)
    return CalibratedPath(clipped, raw, limits)


# --------------------------------------------------------------------------- cache keys


def _relevant(params: ParameterSet, model: str, portfolio: Portfolio) -> dict:
    """The parameters ``model`` reads for ``portfolio`` (what its cached margins depend on)."""
    doc = params.canonical_dict()
    under = {u: doc["underlyings"].get(u) for u in portfolio.underlying_list}
    if model == HAIRCUT_MODEL:
        return {"collateral": {u: doc["collateral"].get(u) for u in portfolio.underlying_list}}
    if model == "standard":
        return {u: (v or {}).get("standard") for u, v in under.items()}
    if model == "span":
        spreads = {
            k: v for k, v in doc.get("spreads", {}).items() if any(u in k.split("-") for u in under)
        }
        # SPAN falls back to the PM ranges only for an underlying without a span block
        fallback = {u: (v or {}).get("pm") for u, v in under.items() if not (v or {}).get("span")}
        return {
            "span": {u: (v or {}).get("span") for u, v in under.items()},
            "spreads": spreads,
            "pm_fallback": fallback,
            "mm": doc["pm"],
        }
    if model == "deribit-pm":
        return {
            "pm": {u: (v or {}).get("pm") for u, v in under.items()},
            "currencies": doc["currencies"],
            "mm": doc["pm"],
        }
    return {"var": doc["var"], "mm": doc["pm"]}


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
    uses_vol = model in ("var", "es") or bool(calibrated)
    return _sha(
        {
            **common,
            "model": model,
            "portfolio": portfolio.name,
            "params": _relevant(source.params, model, portfolio),
            "calibrated": calibrated,
            "scale": spec.scale if calibrated else None,
            "vol": common.get("vol") if uses_vol else None,
        }
    )


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
        return [json.loads(s) for s in self.summaries["summary"]]


def run_backtest(
    con: duckdb.DuckDBPyConnection,
    settings: WorkbenchSettings,
    sources: Sequence[ParamSource],
    spec: BacktestSpec,
    *,
    accounts: Sequence[Portfolio] = (),
    store: bool = True,
) -> BacktestRun:
    """Replay ``sources`` (1 or 2) on identical inputs; store and return the run.

    ``accounts`` adds static books (account snapshots, :func:`margin_engine.portfolios.from_positions`)
    to the library's portfolios.
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
    history, notes, data_sha, gaps = load_history(con, settings, assets)
    days = trading_days(history, spec.start, spec.end, mpor)
    if not days:
        raise BadInputError(
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
        bool(books) and any(m in ("var", "es") for m in spec.models)
    )
    realtime: dict[str, RealtimeVolatility] = {}
    calibrated = pd.DataFrame(index=pd.DatetimeIndex(days))
    calibrated_path: CalibratedPath | None = None
    var_in = None
    if needs_vol:
        horizon = max(mpor, max(s.params.var.mpor_days for s in sources))
        lookback = max([spec.residual_lookback, *(s.params.var.lookback_days for s in sources)])
        lap("setup")
        realtime, cache["volatility"] = realtime_inputs(
            con, history, data_sha, spec, horizon, days[0], lookback
        )
        lap("volatility")
        var_in = var_inputs(history, realtime)
        if spec.calibrate:
            calibrated_path = calibrated_values(
                realtime,
                spec,
                days,
                confidence,
                mpor,
                bounds=lambda paths: calibration_bounds(con, paths),
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
    if var_in is not None and books and any(m in ("var", "es") for m in spec.models):
        lookback = max(s.params.var.lookback_days for s in sources)
        notes.append(
            f"VaR/ES: filtered historical simulation on up to {lookback} days of history, "
            f"GJR-GARCH-t refitted every {spec.refit_every} days on {spec.window} returns"
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
        p.name: _sha({**{k: v for k, v in common.items() if k != "vol"}, "loss": p.name})
        for p in books
    }
    have_margins = _existing(con, "bt.margin_cache", [k for k in margin_keys.values() if k])
    have_losses = _existing(con, "bt.loss_cache", list(loss_keys.values()))
    missing_books = {
        p for (_, _, p), k in margin_keys.items() if k is None or k not in have_margins
    }
    missing_books |= {p for p, k in loss_keys.items() if k not in have_losses}
    day_books: list[DayBook] = []
    if missing_books:
        subset = tuple(p for p in books if p.name in missing_books)
        realised = any(loss_keys[p.name] not in have_losses for p in subset)
        lap("setup")
        day_books = [
            b
            for d in days
            if (b := build_day(history, subset, d, mpor, realised=realised)) is not None
        ]
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
        realised = pd.DataFrame(
            {
                "date": np.concatenate([np.full(len(b.portfolio), b.day) for b in day_books]),
                "portfolio": np.concatenate([b.portfolio for b in day_books]),
                "currency": np.concatenate([b.currency for b in day_books]),
                "loss": -np.concatenate([b.pnl for b in day_books]),
                "fx_usd": np.concatenate([b.fx_usd for b in day_books]),
                "notional_usd": np.concatenate([b.notional_usd for b in day_books]),
                "loss_path": -np.concatenate([b.pnl_path for b in day_books]),
            }
        )
        realised = realised[realised["portfolio"].isin(computed_losses)]
        realised["cache_key"] = realised["portfolio"].map(loss_keys)
        new_losses.append(realised.drop(columns="portfolio"))
    # margins
    new_margins = []
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
            rows = replay_books(day_books, model, get, var_in)
            rows = rows[rows["portfolio"].isin(wanted)]
            for name, frame in rows.groupby("portfolio"):
                key = margin_keys[(source.label, model, name)]
                new_margins.append(
                    frame[["date", "currency", "margin", "maintenance", "var_es", "es"]].assign(
                        cache_key=key or f"nocache:{source.label}:{model}:{name}"
                    )
                )
                if key is not None:
                    have_margins.add(key)  # the other set may share it: computed once
    lap("margins")
    _store_cache(con, new_losses, new_margins)
    lap("cache writes")
    # assemble
    daily = []
    all_keys = {k: v for k, v in margin_keys.items()}
    margins = _load(con, "bt.margin_cache", [k for k in all_keys.values() if k], MARGIN_COLUMNS)
    uncached = (
        [m for m in new_margins if str(m["cache_key"].iloc[0]).startswith("nocache:")]
        if new_margins
        else []
    )
    if uncached:
        margins = pd.concat([margins, *uncached], ignore_index=True)
    losses = _load(con, "bt.loss_cache", list(loss_keys.values()), LOSS_COLUMNS)
    loss_by = {k: f for k, f in losses.groupby("cache_key")} if not losses.empty else {}
    margin_by = {k: f for k, f in margins.groupby("cache_key")} if not margins.empty else {}
    day_set = pd.DatetimeIndex(days)
    for (label, model, name), key in all_keys.items():
        key = key or f"nocache:{label}:{model}:{name}"
        m = margin_by.get(key)
        lo = loss_by.get(loss_keys[name])
        if m is None or lo is None:
            continue
        joined = m.merge(lo.drop(columns="cache_key"), on=["date", "currency"], how="inner")
        joined = joined[pd.DatetimeIndex(joined["date"]).isin(day_set)]
        daily.append(
            joined.drop(columns="cache_key").assign(set_label=label, portfolio=name, model=model)
        )
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
        store_run(con, run)
        lap("store")
    run.elapsed = time.perf_counter() - started
    return run


def _existing(con, table: str, keys: list[str]) -> set[str]:
    if not keys:
        return set()
    rows = con.execute(
        f"SELECT DISTINCT cache_key FROM {table} WHERE cache_key IN (SELECT unnest(?))", [keys]
    )
    return {r[0] for r in rows.fetchall()}


def _load(con, table: str, keys: list[str], columns: str) -> pd.DataFrame:
    if not keys:
        return pd.DataFrame(columns=[c.strip() for c in columns.split(",")])
    frame = con.execute(
        f"SELECT {columns} FROM {table} WHERE cache_key IN (SELECT unnest(?))", [keys]
    ).df()
    frame["date"] = pd.to_datetime(frame["date"])
    return frame


def _store_cache(con, losses: list[pd.DataFrame], margins: list[pd.DataFrame]) -> None:
    margins = [m for m in margins if not str(m["cache_key"].iloc[0]).startswith("nocache:")]
    if not losses and not margins:
        return
    with transaction(con):
        _replace_rows(con, "bt.loss_cache", losses, LOSS_COLUMNS)
        _replace_rows(con, "bt.margin_cache", margins, MARGIN_COLUMNS)


def _replace_rows(con, table: str, frames: list[pd.DataFrame], columns: str) -> None:
    """Replace the cache entries whose keys ``frames`` hold (inside the caller's transaction)."""
    if not frames:
        return
    con.register("cache_rows", pd.concat(frames, ignore_index=True))
    con.execute(
        f"DELETE FROM {table} WHERE cache_key IN (SELECT DISTINCT cache_key FROM cache_rows)"
    )
    con.execute(f"INSERT INTO {table} SELECT {columns} FROM cache_rows")
    con.unregister("cache_rows")


# --------------------------------------------------------------------------- summaries


ZONE_ORDER = ("green", "yellow", "red")
NOT_TESTABLE = "not testable"
ES_SCENARIOS = 2_000  # simulated null of the Acerbi–Szekely tests per series


def _stable_seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little")


def summarise(
    frame: pd.DataFrame,
    confidence: float,
    spec: BacktestSpec,
    labels: list[str],
    *,
    mpor: int = 1,
    calibrated: Mapping[str, dict] | None = None,
    underlyings: Mapping[str, Sequence[str]] | None = None,
) -> pd.DataFrame:
    """One row per (set, portfolio, model, currency): coverage tests of the close-to-close and
    the OHLC-path breaches on the Monte Carlo null (seeded; overlapping MPOR windows handled by
    the interleaved procedure of :func:`margin_engine.backtest.coverage_report`), the
    Acerbi–Szekely tests for ES models, breaches, procyclicality, efficiency, stress windows.

    The row's ``zone`` is the stricter of the two coverage zones (what the enactment gate
    reads); a loss series without variation (e.g. a perfectly hedged book) is ``not testable``.
    """
    nulls = MonteCarloNulls(1 - confidence, np.random.default_rng(spec.seed), spec.simulations)
    standard = frame[frame["model"] == "standard"].set_index(
        ["set_label", "date", "portfolio", "currency"]
    )["margin"]
    rows = []
    for (label, portfolio, model, currency), g in frame.groupby(
        ["set_label", "portfolio", "model", "currency"], sort=True
    ):
        g = g.sort_values("date")
        n = len(g)
        kwargs = dict(mpor=mpor, null="monte-carlo", null_distribution=nulls)
        report = coverage_report(g["breach"].to_numpy(), confidence, **kwargs)
        path = coverage_report(g["breach_path"].to_numpy(), confidence, **kwargs)
        summary = _summary(label, portfolio, model, currency, g, report, standard)
        summary["coverage_path"] = path.as_dict()
        summary["breach_dates_path"] = [
            d.date().isoformat() for d in pd.DatetimeIndex(g.loc[g["breach_path"], "date"])
        ]
        losses = g["loss"].to_numpy(dtype=float)
        testable = bool(np.nanstd(losses) > 1e-12 * max(1.0, float(np.nanmax(np.abs(losses)))))
        zone = max(report.traffic_light.zone, path.traffic_light.zone, key=ZONE_ORDER.index)
        summary["testable"] = testable
        summary["zone"] = zone if testable else NOT_TESTABLE
        summary["zone_basis"] = (
            "ohlc path" if path.traffic_light.zone != report.traffic_light.zone else "both"
        )
        if not testable:
            summary["note"] = (
                "the realised loss never varies (e.g. a fully hedged book without a basis or "
                "funding series): the coverage tests cannot tell a good margin from a bad one"
            )
        if model == "es":
            summary["es_tests"] = _es_tests(g, spec, mpor, (label, portfolio, model, currency))
        if calibrated:
            mine = {
                path_name: info["clipped_days"]
                for path_name, info in calibrated.items()
                if path_name.split(".")[1] in (underlyings or {}).get(portfolio, ())
            }
            if mine:
                summary["calibrated_clipped_days"] = mine
        rows.append(
            (
                label,
                portfolio,
                model,
                currency,
                n,
                int(g["breach"].sum()),
                summary["zone"],
                dumps(summary),
            )
        )
    out = pd.DataFrame(
        rows,
        columns=[
            "set_label",
            "portfolio",
            "model",
            "currency",
            "observations",
            "breaches",
            "zone",
            "summary",
        ],
    )
    return out


def _es_tests(g: pd.DataFrame, spec: BacktestSpec, mpor: int, key: tuple) -> dict:
    """Acerbi–Szekely Z1/Z2 of an ES model's unbuffered forecasts against the realised P&L."""
    level = None
    usable = g[(g["es"] > g["var_es"]) & np.isfinite(g["es"]) & np.isfinite(g["var_es"])]
    if len(usable) < 2 * mpor:
        return {
            "computed": False,
            "note": f"{len(usable)} days with ES above VaR: too few to test",
        }
    level = float(g.attrs.get("es_level", 0.975))
    result = acerbi_szekely(
        -usable["loss"].to_numpy(dtype=float),
        usable["var_es"].to_numpy(dtype=float),
        usable["es"].to_numpy(dtype=float),
        level,
        rng=np.random.default_rng(_stable_seed(spec.seed, *key)),
        scenarios=ES_SCENARIOS,
        mpor=mpor,
    )
    out = {"computed": True, "level": level, "days": int(len(usable)), **result.as_dict()}
    if len(usable) < len(g):
        out["note"] = f"{len(g) - len(usable)} day(s) without an ES above VaR left out"
    return out


def _finite(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _summary(
    label, portfolio, model, currency, g: pd.DataFrame, report: CoverageReport, standard
) -> dict:
    dates = pd.DatetimeIndex(g["date"])
    margin_usd = (g["margin"] * g["fx_usd"]).to_numpy()
    loss_usd = (g["loss"] * g["fx_usd"]).to_numpy()
    breaches = g[g["breach"]]
    shortfall = ((breaches["loss"] - breaches["margin"]) * breaches["fx_usd"]).to_numpy()
    worst = int(np.argmax(shortfall)) if len(shortfall) else None
    # procyclicality in the settlement currency: a coin-margined book's USD margin also moves
    # with the coin's price, which is not the model's doing
    margin_own = g["margin"].to_numpy()
    procyclicality = None
    if len(margin_own) and (margin_own > 0).all():
        procyclicality = procyclicality_summary(margin_own).as_dict()
        for part in ("peak_to_trough", "peak_to_trough_trough_first"):
            for end in ("peak", "trough"):
                procyclicality[part][end] = dates[procyclicality[part][end]].date().isoformat()
        for part in ("max_increase", "max_increase_pathwise"):
            for item in procyclicality[part].values():
                if item["defined"]:
                    item["start"] = dates[item["start"]].date().isoformat()
                    item["end"] = dates[item["end"]].date().isoformat()
    efficiency = {
        "mean_margin_usd": _finite(margin_usd.mean()),
        "mean_margin_over_notional": _finite(np.mean(margin_usd / g["notional_usd"].to_numpy()))
        if (g["notional_usd"] > 0).all()
        else None,
    }
    if model not in ("standard", HAIRCUT_MODEL):
        base = standard.reindex(
            pd.MultiIndex.from_arrays(
                [[label] * len(g), dates, [portfolio] * len(g), g["currency"]]
            )
        ).to_numpy()
        valid = np.isfinite(base) & (base > 0)
        if valid.any():
            efficiency["margin_over_standard"] = _finite(
                np.mean(g["margin"].to_numpy()[valid] / base[valid])
            )
    stress = []
    for window in STRESS_WINDOWS:
        inside = (dates >= pd.Timestamp(window.start)) & (dates <= pd.Timestamp(window.end))
        if not inside.any():
            continue
        w = g[inside]
        w_margin = margin_usd[inside]
        w_own = margin_own[inside]
        increase = (
            max_increase(w_own, min(5, max(1, len(w_own) - 1))) if (w_own > 0).all() else None
        )
        stress.append(
            {
                "window": window.name,
                "days": int(inside.sum()),
                "breaches": int(w["breach"].sum()),
                "worst_shortfall_usd": _finite(
                    max(((w["loss"] - w["margin"]) * w["fx_usd"]).max(), 0.0)
                ),
                "max_margin_usd": _finite(w_margin.max()),
                "max_5d_increase": _finite(increase.value)
                if increase is not None and increase.defined
                else None,
            }
        )
    return {
        "set": label,
        "portfolio": portfolio,
        "model": model,
        "currency": currency,
        "from": dates.min().date().isoformat(),
        "to": dates.max().date().isoformat(),
        "coverage": report.as_dict(),
        "breach_dates": [d.date().isoformat() for d in pd.DatetimeIndex(breaches["date"])],
        "worst_shortfall": None
        if worst is None
        else {
            "date": pd.Timestamp(breaches["date"].iloc[worst]).date().isoformat(),
            "usd": _finite(shortfall[worst]),
            "loss_usd": _finite(breaches["loss"].iloc[worst] * breaches["fx_usd"].iloc[worst]),
            "margin_usd": _finite(breaches["margin"].iloc[worst] * breaches["fx_usd"].iloc[worst]),
        },
        "mean_loss_usd": _finite(loss_usd.mean()),
        "procyclicality": procyclicality,
        "efficiency": efficiency,
        "stress": stress,
    }


def comparison(run: BacktestRun) -> pd.DataFrame:
    """Side by side per (portfolio, model, currency): breaches, zone, test p-values, peak/trough,
    largest 5-day increase, mean margin (USD) for each set, and the margin freed."""
    records = run.summary_records()
    rows: dict[tuple, dict] = {}
    for r in records:
        key = (r["portfolio"], r["model"], r["currency"])
        row = rows.setdefault(key, {"portfolio": key[0], "model": key[1], "currency": key[2]})
        tests = r["coverage"]["tests"]
        proc = r["procyclicality"] or {}
        prefix = r["set"]
        path = r.get("coverage_path") or r["coverage"]
        es = r.get("es_tests") or {}
        row.update(
            {
                f"{prefix}.days": r["coverage"]["observations"],
                f"{prefix}.breaches": r["coverage"]["failures"],
                f"{prefix}.breaches_path": path["failures"],
                f"{prefix}.expected": r["coverage"]["expected"],
                f"{prefix}.zone": r.get("zone", r["coverage"]["traffic_light"]["zone"]),
                f"{prefix}.zone_close": r["coverage"]["traffic_light"]["zone"],
                f"{prefix}.zone_path": path["traffic_light"]["zone"],
                f"{prefix}.es_z2_p": (es.get("z2") or {}).get("pvalue"),
                f"{prefix}.pof_p": tests["pof"]["pvalue"],
                f"{prefix}.cc_p": tests["cc"]["pvalue"],
                f"{prefix}.tbf_p": tests["tbf"]["pvalue"],
                f"{prefix}.rejected": ",".join(r["coverage"]["rejected"]),
                f"{prefix}.peak_trough": (proc.get("peak_to_trough") or {}).get("ratio"),
                f"{prefix}.max_5d_increase": ((proc.get("max_increase") or {}).get("5") or {}).get(
                    "value"
                ),
                f"{prefix}.mean_margin_usd": r["efficiency"]["mean_margin_usd"],
                f"{prefix}.worst_shortfall_usd": (r["worst_shortfall"] or {}).get("usd"),
            }
        )
    frame = pd.DataFrame(list(rows.values()))
    labels = list(run.sets)
    if len(labels) == 2 and not frame.empty:
        a, b = labels
        frame["margin_freed_usd"] = frame[f"{a}.mean_margin_usd"] - frame[f"{b}.mean_margin_usd"]
    return frame


# --------------------------------------------------------------------------- storage


def store_run(con: duckdb.DuckDBPyConnection, run: BacktestRun) -> None:
    daily = run.daily.assign(run_id=run.run_id)
    summaries = run.summaries.assign(run_id=run.run_id)
    with transaction(con):
        for table in ("bt.daily", "bt.summaries", "bt.runs"):
            con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run.run_id])
        con.execute(
            "INSERT INTO bt.runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                run.run_id,
                datetime.now(UTC),
                run.start,
                run.end,
                dumps(
                    {
                        **run.spec.as_dict(),
                        "mpor_days": run.mpor_days,
                        "confidence": run.confidence,
                        "notes": run.notes,
                        "gaps": run.gaps,
                        "calibrated": run.calibrated,
                    }
                ),
                json.dumps(run.sets),
                run.data_sha,
                PACKAGE_VERSION,
                json.dumps(library_versions()),
                run.elapsed,
                dumps(run.cache, default=str),
            ],
        )
        con.register("daily_rows", daily)
        con.execute(
            "INSERT INTO bt.daily SELECT run_id, set_label, date, portfolio, model, currency, margin, "
            "maintenance, loss, breach, fx_usd, notional_usd, loss_path, breach_path, var_es, es "
            "FROM daily_rows"
        )
        con.unregister("daily_rows")
        con.register("summary_rows", summaries)
        con.execute(
            "INSERT INTO bt.summaries SELECT run_id, set_label, portfolio, model, currency, observations, "
            "breaches, zone, summary FROM summary_rows"
        )
        con.unregister("summary_rows")


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
    """A set named on the command line: ``registry``, ``active``, ``default``, a file or a
    fingerprint (prefix) in the registry."""
    from pathlib import Path

    from governance.parameters import ParameterSetError, default_parameter_set, load_parameter_set
    from governance.registry import GovernanceError, Registry

    if ref == "registry":
        return registry_source(con, label)
    registry = Registry(con)
    if ref == "active":
        if registry.initialised():
            return ParamSource(label, registry.parameter_set(registry.head().parameter_set))
        return ParamSource(label, default_parameter_set(), note="default set (no registry)")
    if ref == "default":
        return ParamSource(label, default_parameter_set())
    if Path(ref).exists():
        try:
            return ParamSource(label, load_parameter_set(ref))
        except ParameterSetError as exc:
            raise BadInputError(str(exc)) from exc
    if re.fullmatch(r"[0-9a-f]{6,64}", ref):
        try:
            return ParamSource(label, registry.parameter_set(ref))
        except GovernanceError as exc:
            raise BadInputError(str(exc)) from exc
    raise BadInputError(
        f"{ref!r}: not 'registry', 'active', 'default', an existing file or a fingerprint"
    )


def latest_breaches(con: duckdb.DuckDBPyConnection, fingerprint: str):
    """Breach rows of the newest run that backtested the set ``fingerprint`` (for the rollback
    trigger), and that run's last day."""
    from governance.triggers import Breach

    runs = con.execute(
        "SELECT run_id, end_date, sets FROM bt.runs ORDER BY created_at DESC"
    ).fetchall()
    for run_id, end_date, sets in runs:
        labels = [label for label, fp in json.loads(sets).items() if fp == fingerprint]
        if not labels:
            continue
        rows = con.execute(
            "SELECT date, portfolio, loss * fx_usd, margin * fx_usd, currency, model FROM bt.daily "
            "WHERE run_id = ? AND set_label = ? AND breach AND model <> 'standard' ORDER BY date",
            [run_id, labels[0]],
        ).fetchall()
        return [
            Breach(d, f"{p} ({m})", float(lo), float(ma), "USD", m) for d, p, lo, ma, _, m in rows
        ], end_date
    return [], None
