"""Margining accounts from files and the warehouse (what ``mwb margin`` runs).

Market from the warehouse for a date D (``--as-of``): valued at the end of day D (D+1 00:00
UTC). If ``market.option_marks`` holds a snapshot taken on D, it is used as is (index,
forwards, every option's IV). Otherwise: index = each underlying's close on D (preferred
source), forwards = index (zero basis), and options get the 30-day IV index of D through the
documented smile of :mod:`margin_engine.market`; an underlying without an IV index gets its
30-day realised volatility (annualised, close-to-close) — a stand-in, said so in the output.

VaR/ES scenarios come from the warehouse's price (and IV) history *strictly before* the
market's time: a day's close is stamped at 24:00 UTC, so a chain snapshot taken at 05:14 on D
uses closes up to D−1 (and a market built for the end of D, closes up to D). When that history
ends more than :data:`STALE_HISTORY_DAYS` days before the market, the output says so.
Scenarios are historical, or filtered with an EWMA (λ = 0.94) volatility — the RiskMetrics
filter, so that margining needs no fitted model. Daily series are spliced across sources and
gaps follow the workbench's rule (:mod:`pipelines.stores.market`, :mod:`calibration.returns`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from calibration.filters import ewma_volatility, realised_vol_as_iv
from calibration.lineage import library_versions
from calibration.returns import log_return_frame, log_returns
from calibration.stress import STRESS_WINDOWS
from governance.parameters import (
    ParameterSet,
    default_parameter_set,
)
from margin_engine.book import MarginResult, Positions, build_positions
from margin_engine.collateral import collateral_summary
from margin_engine.instruments import InstrumentError
from margin_engine.market import MarketSnapshot
from margin_engine.models import margin
from margin_engine.montecarlo import (
    JointModel,
    Simulation,
    correlation_of,
    dynamics_from_fit,
    long_run_model,
    mc_margin,
    stress_weights,
)
from margin_engine.params import VarParams
from margin_engine.var import JointScenarios, scenarios_for
from pipelines.errors import BadInputError
from pipelines.files import MAX_INPUT_BYTES, regular_file
from pipelines.stores import calibration as calib_store
from pipelines.stores import market as stored
from vocabulary import (
    BOOK_MODELS,
    SIMULATED_MODELS,
    VENUE_MODELS,
    Apc,
    Innovations,
    MarginModel,
    Sampling,
)

if TYPE_CHECKING:
    import duckdb

STALE_HISTORY_DAYS = 3  # a market this many days past its history's last close gets a warning


def read_positions(path: str | Path) -> pd.DataFrame:
    """``account,instrument,quantity`` rows; quantities are validated later, per account."""
    path = regular_file(path, max_bytes=MAX_INPUT_BYTES)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError as exc:
        raise BadInputError(f"{path}: no such file") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise BadInputError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from exc
    frame.columns = [c.strip() for c in frame.columns]
    missing = {"account", "instrument", "quantity"} - set(frame.columns)
    if missing:
        raise BadInputError(
            f"{path}: missing column(s) {', '.join(sorted(missing))} (need account,instrument,quantity)"
        )
    if frame.empty:
        raise BadInputError(f"{path}: no positions")
    return frame[["account", "instrument", "quantity"]]


def read_market(path: str | Path) -> MarketSnapshot:
    """A Deribit option-chain snapshot CSV or a market JSON (see :class:`MarketSnapshot`)."""
    path = regular_file(path, max_bytes=MAX_INPUT_BYTES)
    try:
        if path.suffix.lower() == ".json":
            return MarketSnapshot.from_json(path)
        return MarketSnapshot.from_deribit_chain(path)
    except (ValueError, KeyError, TypeError, OverflowError, InstrumentError) as exc:
        raise BadInputError(f"{path}: not a usable market ({' '.join(str(exc).split())})") from None
    except RecursionError:
        raise BadInputError(f"{path}: not a usable market (nested too deeply)") from None


def end_of_day(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC)


def market_from_warehouse(
    con: duckdb.DuckDBPyConnection, preference: Sequence[str], day: date
) -> tuple[MarketSnapshot, list[str]]:
    """The market at the end of ``day`` from the warehouse (sources in ``preference`` order),
    and notes on how it was built."""
    marks = stored.option_marks_on(con, day)
    if not marks.empty:
        market = MarketSnapshot.from_deribit_chain(marks, skip_invalid=True)
        return market, [
            f"option chain snapshot of {market.as_of:%Y-%m-%d %H:%M} UTC from market.option_marks",
            *market.notes,
        ]
    assets = stored.assets_on(con, day)
    if not assets:
        raise BadInputError(f"--as-of {day}: no prices stored for that day")
    index, default_iv, notes = {}, {}, []
    for asset in sorted(assets):
        closes, provenance = stored.closes(con, asset, preference, end=day)
        closes = closes.iloc[-31:]
        if provenance is None or closes.empty or closes.index[-1] != pd.Timestamp(day):
            continue
        source = provenance.segments[-1].source
        index[asset] = float(closes.iloc[-1])
        iv, iv_provenance = stored.implied_vol(con, asset, preference, start=day, end=day)
        if len(iv):
            default_iv[asset] = float(iv.iloc[-1])
            notes.append(
                f"{asset}: index {index[asset]:.6g} ({source}), 30-day IV index {iv.iloc[-1]:.4f} "
                f"({iv_provenance.label}) with the smile"
            )
        elif len(closes) >= 10:
            returns = log_returns(closes.dropna(), asset=asset).values
            realised = float(realised_vol_as_iv(returns, min_periods=1).iloc[-1])
            default_iv[asset] = min(max(realised, 0.05), 5.0)
            notes.append(
                f"{asset}: index {index[asset]:.6g} ({source}), no IV index: 30-day realised vol {realised:.4f} used as IV"
            )
        else:
            notes.append(
                f"{asset}: index {index[asset]:.6g} ({source}), no IV: options on it cannot be valued"
            )
    market = MarketSnapshot(end_of_day(day), index, {}, {}, default_iv, source="warehouse")
    return market, notes


def last_close_before(at: datetime) -> date:
    """The last day whose close (stamped 24:00 UTC) is not after ``at``."""
    return (pd.Timestamp(at).tz_convert(UTC).normalize() - pd.Timedelta(days=1)).date()


def history(
    con, preference: Sequence[str], underlyings: list[str], day: date
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Daily log returns and log IV changes of ``underlyings`` up to ``day`` (dates × assets),
    under the gap rule (a k-day return enters as r/sqrt(k))."""
    prices, ivs = {}, {}
    for u in underlyings:
        closes, provenance = stored.closes(con, u, preference, end=day)
        if provenance is None:
            raise BadInputError(
                f"VaR/ES need price history of {u} up to {day}; none in the warehouse"
            )
        prices[u] = closes
        iv, iv_provenance = stored.implied_vol(con, u, preference, end=day)
        if iv_provenance is not None:
            ivs[u] = iv
    frame = pd.DataFrame(prices)
    frame = frame.reindex(pd.date_range(frame.index.min(), frame.index.max(), freq="D"))
    returns = log_return_frame(frame)[0].iloc[1:]
    if ivs:
        iv_frame = pd.DataFrame(ivs).reindex(frame.index)
        iv_changes = log_return_frame(iv_frame)[0]
    else:
        iv_changes = pd.DataFrame(index=returns.index)
    return returns, iv_changes


def var_scenarios(
    con, preference: Sequence[str], params: ParameterSet, underlyings: list[str], day: date
) -> tuple[JointScenarios, JointScenarios | None]:
    """The VaR/ES scenarios of ``underlyings`` from the history strictly before ``day``'s end."""
    v = params.var
    returns, iv_changes = history(con, preference, underlyings, day)
    returns = returns.dropna()
    if len(returns) < v.mpor_days + 20:
        raise BadInputError(
            f"VaR/ES need at least {v.mpor_days + 20} days of joint history up to {day}; have {len(returns)}"
        )
    cond, now = ewma_volatility(returns)
    stress = [(w.start, w.end) for w in STRESS_WINDOWS]
    return scenarios_for(params.to_model_params().var, returns, cond, now, iv_changes, stress)


@dataclass(frozen=True)
class MonteCarloOptions:
    """The simulation a Monte Carlo margin runs (the MPOR is the parameter set's)."""

    paths: int = 10_000
    seed: int = 0
    sampling: Sampling = Sampling.SOBOL
    innovations: Innovations = Innovations.FILTERED_HISTORICAL
    dof: float = 5.0
    importance: bool = False

    def simulation(self, horizon: int) -> Simulation:
        try:
            return Simulation(
                self.paths,
                horizon,
                self.seed,
                self.innovations,
                self.sampling,
                self.dof,
                self.importance,
            )
        except ValueError as exc:
            raise BadInputError(
                f"--{str(exc).split(':')[0]}: {str(exc).split(': ', 1)[-1]}"
            ) from None


def joint_model_before(
    con: duckdb.DuckDBPyConnection,
    underlyings: Sequence[str],
    day: date,
    var: VarParams | None = None,
) -> tuple[JointModel, dict]:
    """The joint model of ``underlyings`` from the newest calibration as of ``day`` or earlier
    (each fit's forecast and recursion, the implied vols' dynamics, the DCC correlation — else
    CCC, else EWMA — and the joint standardised residuals, weighted by ``var``'s
    stressed-weight tool when it is the policy's), and where it came from."""
    found = calib_store.latest_through(con, day, underlyings)
    if found is None:
        raise BadInputError(
            f"Monte Carlo margin needs a calibration of {', '.join(underlyings)} as of {day} "
            "or earlier; run `mwb calibrate` first"
        )
    calibration_id, as_of = found
    iv = {
        a: detail for a, _, detail in calib_store.iv_dynamics_rows(con, calibration_id, underlyings)
    }
    dynamics, fingerprints = [], {}
    for asset in underlyings:
        inputs = calib_store.chosen_fit_inputs(con, calibration_id, asset)
        assert inputs is not None  # latest_through found a chosen fit of every asset
        spec, fit_params, next_vol, sha = inputs
        dynamics.append(dynamics_from_fit(spec, fit_params, next_vol, iv.get(asset)))
        fingerprints[asset] = sha
    correlation = _correlation(con, calibration_id, underlyings)
    residuals = calib_store.residuals(con, calibration_id, underlyings)
    residuals = residuals.reindex(columns=list(underlyings)).dropna()
    usable = len(residuals) >= 30
    weights = None
    if usable and var is not None and var.apc is Apc.STRESSED_WEIGHT:
        windows = [(w.start, w.end) for w in STRESS_WINDOWS]
        weights = stress_weights(residuals.index, windows, var.apc_stress_weight)
    try:
        joint = JointModel(
            tuple(underlyings),
            tuple(dynamics),
            correlation,
            residuals.to_numpy(dtype=float) if usable else None,
            weights,
        )
    except ValueError as exc:
        raise BadInputError(f"calibration {calibration_id}: {exc}") from None
    return joint, {
        "calibration_id": calibration_id,
        "as_of": as_of.isoformat(),
        "fit_data_sha256": fingerprints,
        "residual_days": len(residuals),
    }


def _long_run(
    con, preference: Sequence[str], joint: JointModel, underlyings, cutoff: date, var: VarParams
) -> JointModel:
    """The floor tool's model from the daily returns of the last ``floor_lookback_days``
    strictly before the market (:func:`margin_engine.montecarlo.long_run_model`)."""
    returns, _ = history(con, preference, list(underlyings), cutoff)
    returns = returns.reindex(columns=list(underlyings)).dropna().iloc[-var.floor_lookback_days :]
    try:
        return long_run_model(joint, returns.to_numpy(dtype=float))
    except ValueError as exc:
        raise BadInputError(f"the floor's look-back: {exc}") from None


def _correlation(con, calibration_id: str, underlyings: Sequence[str]):
    if len(underlyings) == 1:
        return correlation_of(list(underlyings), [[1.0]], underlyings)
    row = calib_store.headline_correlation(con, calibration_id)
    if row is None:
        raise BadInputError(f"calibration {calibration_id} has no correlation estimate")
    _, assets, matrix = row
    try:
        return correlation_of(json.loads(assets), json.loads(matrix), underlyings)
    except ValueError as exc:
        raise BadInputError(f"calibration {calibration_id}: {exc}") from None


@dataclass(frozen=True)
class MarginRun:
    model: str
    params: ParameterSet
    market: MarketSnapshot
    market_notes: list[str]
    positions: Positions
    result: MarginResult | None
    params_source: str = ""
    monte_carlo: dict | None = None  # what a simulated margin rests on (seed, paths, model)
    addons: dict | None = None  # the add-ons' rule and their calibration, per underlying
    scenarios: dict | None = None  # VaR/ES: the joint scenarios the model read (not in payload)

    def payload(self) -> dict:
        accounts = self.result.records() if self.result is not None else []
        extra = {"monte_carlo": self.monte_carlo} if self.monte_carlo is not None else {}
        if self.addons is not None:
            extra["addons"] = self.addons
        collateral = collateral_summary(self.positions, self.params.to_model_params())
        return {
            "model": self.model,
            "params_fingerprint": self.params.fingerprint,
            "params_source": self.params_source,
            "market": {
                "as_of": self.market.as_of.isoformat(),
                "source": self.market.source,
                "notes": self.market_notes,
            },
            "accounts": accounts,
            "collateral": collateral.to_dict("records"),
            "errors": [e.to_dict() for e in self.positions.errors],
            **extra,
        }


def venue_columns(label: str, params: ParameterSet, models: Sequence[str]) -> list:
    """The columns of a margin-elsewhere table: ``params`` (labelled ``label``) under each of
    ``models``, each venue's published set under its model, and the delta-only baseline."""
    from governance.parameters import VENUE_DATES, VENUE_SETS, venue_parameter_set
    from margin_engine.venues.elsewhere import Column

    engine = params.to_model_params()
    columns = [Column(f"{label} ({m})", m, engine) for m in dict.fromkeys(models)]
    venue_model = {
        "derive": MarginModel.DERIVE_PMRM2.value,
        "hyperliquid": MarginModel.HYPERLIQUID.value,
        "okx": MarginModel.OKX_PM.value,
        "paradex": MarginModel.PARADEX_PM.value,
        "aevo": MarginModel.AEVO_PM.value,
    }
    for name in VENUE_SETS:
        model = venue_model[name]
        title = f"{model} (published {VENUE_DATES[name]})"
        columns.append(Column(title, model, venue_parameter_set(name).to_model_params()))
    columns.append(Column(f"delta-only ({label})", MarginModel.DELTA_ONLY.value, engine))
    return columns


def elsewhere_payload(positions: Positions, columns: list) -> dict:
    """``margin_elsewhere`` as JSON: the columns, then each account's USD initial margins."""
    from margin_engine.venues.elsewhere import margin_elsewhere

    frame = margin_elsewhere(positions, columns)
    return {
        "currency": "USD",
        "columns": [{"label": c.label, "model": c.model} for c in columns],
        "accounts": [
            {"account": account, "initial_margin": {c.label: row[c.label] for c in columns}}
            for account, row in frame.iterrows()
        ],
    }


def run_margin(
    positions_frame: pd.DataFrame,
    model: str,
    market: MarketSnapshot,
    params: ParameterSet | None = None,
    *,
    market_notes: list[str] | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
    preference: Sequence[str] = (),
    params_source: str = "",
    simulation: MonteCarloOptions | None = None,
    chunks: int = 1,
    mapper: Callable = map,
    open_interest: dict[str, float] | None = None,
) -> MarginRun:
    """Margin ``positions_frame`` under ``model`` at ``market``; VaR/ES read their scenarios
    from ``con``'s price history (sources in ``preference`` order) strictly before the market."""
    choices = (*BOOK_MODELS, *VENUE_MODELS, *SIMULATED_MODELS)
    if model not in choices:
        raise BadInputError(f"--model: {model!r} is not one of {', '.join(choices)}")
    params = params or default_parameter_set()
    positions = build_positions(positions_frame, market)
    engine = params.to_model_params()
    result, read = None, None
    if positions.n_accounts and MarginModel(model).simulated:
        if con is None:
            raise BadInputError(f"--model {model} needs the warehouse's calibration")
        options = simulation or MonteCarloOptions()
        underlyings = sorted({u for _, u in positions.book.table.groups})
        cutoff = last_close_before(market.as_of)
        joint, provenance = joint_model_before(con, underlyings, cutoff, engine.var)
        sim = options.simulation(engine.var.mpor_days)
        measure = "es" if MarginModel(model) is MarginModel.MC_ES else "var"
        floor = None
        if engine.var.apc is Apc.FLOOR:
            floor = _long_run(con, preference, joint, underlyings, cutoff, engine.var)
        run = mc_margin(
            positions,
            joint,
            sim,
            engine,
            measure=measure,
            chunks=chunks,
            mapper=mapper,
            floor=floor,
        )
        notes = list(market_notes or [])
        if engine.var.apc is Apc.STRESSED_WEIGHT and joint.residual_weights is None:
            notes.append(
                "stressed-weight: no residuals to weight (student-t or gaussian innovations "
                "draw no historical day); the tool does not apply"
            )
        notes.append(
            f"Monte Carlo paths from calibration {provenance['calibration_id']} as of "
            f"{provenance['as_of']} (strictly before the market's {market.as_of:%Y-%m-%d %H:%M} UTC)"
        )
        contributions = [
            {
                "account": positions.accounts[positions.account[k]],
                "instrument": positions.book.table.names[positions.instrument[k]],
                "quantity": float(positions.quantity[k]),
                "es_contribution": float(run.contribution[k]),
            }
            for k in range(len(positions.quantity))
        ]
        mc = {
            **provenance,
            "paths": sim.paths,
            "horizon_days": sim.horizon,
            "seed": sim.seed,
            "innovations": sim.innovations.value,
            "sampling": sim.sampling.value,
            "importance_sampling": sim.importance,
            "dof": sim.dof if sim.innovations is Innovations.STUDENT_T else None,
            "contributions": contributions,
            "library_versions": library_versions(),
        }
        simulated, addons = run.margin, None
        if engine.addons is not None:
            simulated, addons = apply_addons(
                simulated, positions, engine, con, preference, market, open_interest or {}
            )
        return MarginRun(
            model, params, market, notes, positions, simulated, params_source, mc, addons
        )
    if positions.n_accounts:
        if not MarginModel(model).needs_history:
            result = margin(positions, model, engine)
        else:
            if con is None or not preference:
                raise BadInputError("--model var/es needs the warehouse's price history")
            underlyings = sorted({u for _, u in positions.book.table.groups})
            cutoff = last_close_before(market.as_of)
            scenarios, floor = var_scenarios(con, preference, params, underlyings, cutoff)
            last = pd.Timestamp(scenarios.labels[-1].split("..")[-1]).date()
            market_notes = list(market_notes or [])
            market_notes.append(
                f"VaR/ES scenarios from closes up to {last} (strictly before the market's "
                f"{market.as_of:%Y-%m-%d %H:%M} UTC)"
            )
            if (cutoff - last).days > STALE_HISTORY_DAYS:
                market_notes.append(
                    f"warning: the price history ends {last}, {(market.as_of.date() - last).days} "
                    f"days before the market of {market.as_of:%Y-%m-%d}: the scenarios are stale"
                )
            result = margin(positions, model, engine, scenarios=scenarios, floor_scenarios=floor)
            read = {"scenarios": scenarios, "floor_scenarios": floor}
    addons = None
    if result is not None and engine.addons is not None:
        result, addons = apply_addons(
            result, positions, engine, con, preference, market, open_interest or {}
        )
    return MarginRun(
        model,
        params,
        market,
        market_notes or [],
        positions,
        result,
        params_source,
        None,
        addons,
        read,
    )


def apply_addons(
    result: MarginResult,
    positions: Positions,
    engine,
    con: duckdb.DuckDBPyConnection | None,
    preference: Sequence[str],
    market: MarketSnapshot,
    open_interest: dict[str, float],
) -> tuple[MarginResult, dict]:
    """The set's add-ons on ``result``, calibrated from the warehouse's 30 days strictly before
    the market (σ and the median USD volume per underlying), and their derivation."""
    from margin_engine.addons import addon_charges, with_addons
    from pipelines.cascade import LOOKBACK_DAYS, impact_before

    spec = engine.addons
    if con is None or not preference:
        raise BadInputError(
            "the set's add-ons need daily volumes from the warehouse (--as-of, or a home with "
            "a warehouse)"
        )
    day = last_close_before(market.as_of) + timedelta(days=1)
    impacts, derivation = {}, {}
    for _, underlying in dict.fromkeys(positions.book.table.groups):
        if underlying in impacts:
            continue
        calibrated, notes, _ = impact_before(con, preference, underlying, day)
        impact = spec.impact(calibrated)
        impacts[underlying] = impact
        tier = spec.open_interest.get(underlying)
        derivation[underlying] = {
            "calibrated_on": f"{LOOKBACK_DAYS} days before {day}",
            "daily_vol": impact.daily_vol,
            "daily_volume_usd": impact.daily_volume,
            "liquidity_threshold_usd": spec.liquidity_threshold * impact.daily_volume,
            "impact_y": impact.y,
            "half_spread": impact.half_spread,
            "open_interest_usd": open_interest.get(underlying),
            "open_interest_tier": None if tier is None else dataclasses.asdict(tier),
            "notes": list(notes),
        }
    try:
        charges = addon_charges(result, positions, spec, impacts, open_interest)
    except ValueError as exc:
        raise BadInputError(str(exc)) from None
    about = {
        "rule": (
            "per (account, class group), N = |net delta| × index (USD): liquidity "
            f"(Y·σ·√(N/V) + half spread)·N when N > {spec.liquidity_threshold:g} × V; "
            f"concentration {spec.concentration_rate:g} × (N − {spec.concentration_threshold:,.0f})⁺; "
            "open interest (IMF(O) − base)·N where a tier and O are given; added to IM and MM "
            "in the group's settlement currency"
        ),
        "underlyings": derivation,
    }
    return with_addons(result, charges), about
