"""Calibration against the warehouse: load series, call the pure ``calibration`` package, store
results in the ``calib`` schema with their lineage. The Dagster assets and ``mwb calibrate``
are thin wrappers of these functions.

A calibration is identified by ``calibration_id = <as-of date>-<policy fingerprint[:10]>``; the
same as-of date and policy always land on the same rows, which a re-run replaces.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

import pandas as pd

from calibration.correlation import (
    CorrelationEstimate,
    DccOutcome,
    ccc_correlation,
    dcc_with_fallback,
    ewma_correlation,
    ewma_correlation_path,
    is_psd,
    stressed_correlations,
)
from calibration.iv_dynamics import IvDynamics, iv_dynamics, rebuild_iv_dynamics
from calibration.lineage import series_fingerprint
from calibration.policy import CalibrationPolicy
from calibration.recommend import BoundViolation, Recommendations, outside_bounds, recommend
from calibration.returns import Calendar, log_returns
from calibration.univariate import (
    EwmaFit,
    UnivariateFit,
    UnivariateSpec,
    VolatilityCalibration,
    apply_parameters,
    calibrate_volatility,
    fit_ewma,
)
from pipelines.errors import BadInputError
from pipelines.settings import WorkbenchSettings
from pipelines.stores import calibration as store
from pipelines.stores import market as history
from pipelines.stores.calibration import to_json
from pipelines.stores.market import Provenance

if TYPE_CHECKING:
    import duckdb

WEEKDAY_SOURCES = history.EQUITY_SOURCES  # equity data (S&P 500) trades on weekdays


@dataclass(frozen=True)
class CalibrationContext:
    calibration_id: str
    as_of: date
    policy: CalibrationPolicy
    policy_sha256: str
    specs: tuple[UnivariateSpec, ...]


def policy_fingerprint(policy: CalibrationPolicy, specs: tuple[UnivariateSpec, ...]) -> str:
    payload = {"policy": policy.to_dict(), "candidates": [s.name for s in specs]}
    return hashlib.sha256(to_json(payload).encode()).hexdigest()


# --------------------------------------------------------------------------- loading


def load_closes(
    con: duckdb.DuckDBPyConnection, asset: str, as_of: date, preference: tuple[str, ...]
) -> tuple[pd.Series, Provenance]:
    """Closes of ``asset`` up to ``as_of``, spliced across sources (:mod:`pipelines.stores.market`)."""
    series, provenance = history.closes(con, asset, preference, end=as_of)
    if provenance is None:
        raise BadInputError(f"{asset}: no prices in the warehouse up to {as_of}")
    return series, provenance


def load_iv(
    con: duckdb.DuckDBPyConnection,
    asset: str,
    as_of: date,
    preference: tuple[str, ...],
    tenor_days: int = 30,
) -> tuple[pd.Series, str] | None:
    series, provenance = history.implied_vol(
        con, asset, preference, end=as_of, tenor_days=tenor_days
    )
    if provenance is None:
        return None
    return series, provenance.label


def returns_for(con, preference: Sequence[str], asset: str, as_of: date):
    """The asset's log returns up to ``as_of`` under the workbench's gap rule, and where its
    closes came from (a :class:`~pipelines.stores.market.Provenance`)."""
    closes, provenance = load_closes(con, asset, as_of, preference)
    weekdays = all(s in WEEKDAY_SOURCES for s in provenance.sources)
    calendar = Calendar.WEEKDAYS if weekdays else Calendar.ALWAYS
    return log_returns(closes, asset=asset, calendar=calendar), provenance


def latest_common_date(con: duckdb.DuckDBPyConnection, assets: tuple[str, ...]) -> date:
    """The last day on which every asset that has prices has one (any source)."""
    last = history.last_days(con, assets)
    if not last:
        raise BadInputError(
            f"no prices for {', '.join(assets)} in the warehouse; load data first (mwb demo)"
        )
    return min(last.values())


def context(
    con: duckdb.DuckDBPyConnection,
    settings: WorkbenchSettings,
    assets: tuple[str, ...],
    as_of: date | None = None,
) -> CalibrationContext:
    policy = settings.calibration.policy()
    specs = settings.calibration.specs()
    as_of = as_of or latest_common_date(con, assets)
    sha = policy_fingerprint(policy, specs)
    return CalibrationContext(f"{as_of.isoformat()}-{sha[:10]}", as_of, policy, sha, specs)


def record_run(con: duckdb.DuckDBPyConnection, ctx: CalibrationContext) -> None:
    """Record the calibration run (its policy and versions)."""
    store.record_run(con, ctx)


def fit_asset(
    con: duckdb.DuckDBPyConnection, settings: WorkbenchSettings, ctx: CalibrationContext, asset: str
) -> VolatilityCalibration:
    """Fit every candidate model to the asset's last ``lookback_days`` returns, keep the BIC
    choice (or the EWMA fallback) and store candidates and the chosen path."""
    returns, provenance = returns_for(con, settings.market.source_preference, asset, ctx.as_of)
    source = provenance.label
    window = returns.tail(ctx.policy.lookback_days)
    if len(window.values) < 100:
        raise BadInputError(
            f"{asset}: only {len(window.values)} returns up to {ctx.as_of}; calibration needs 100"
        )
    calibration = calibrate_volatility(window, ctx.specs, asset=asset)
    chosen = calibration.chosen
    series = pd.DataFrame(
        {
            "calibration_id": ctx.calibration_id,
            "asset": asset,
            "date": window.values.index.date,
            "log_return": window.values.to_numpy(),
            "cond_vol": chosen.conditional_vol.to_numpy(),
            "std_resid": chosen.std_resid.to_numpy(),
        }
    ).dropna()
    store.save_fit(con, ctx, calibration, source, series)
    return calibration


def load_chosen_fit(
    con: duckdb.DuckDBPyConnection, settings: WorkbenchSettings, ctx: CalibrationContext, asset: str
) -> UnivariateFit | EwmaFit:
    """Rebuild the stored chosen model by applying its parameters to the same data (no refit);
    refuse if the data changed since it was fitted."""
    row = store.chosen_fit(con, ctx.calibration_id, asset)
    if row is None:
        raise BadInputError(
            f"{asset}: no volatility fit for calibration {ctx.calibration_id}; fit it first"
        )
    kind, spec, params, start, end, data_sha, reason = row
    returns, _ = returns_for(con, settings.market.source_preference, asset, ctx.as_of)
    window = returns.window(start, end)
    if series_fingerprint(window.values) != data_sha:
        raise BadInputError(
            f"{asset}: the prices behind calibration {ctx.calibration_id} changed since it was fitted; refit"
        )
    if kind == "ewma":
        return fit_ewma(
            window, reason=reason or "EWMA fallback", asset=asset, lam=json.loads(params)["lambda"]
        )
    spec_dict = json.loads(spec)
    return apply_parameters(
        window,
        UnivariateSpec(spec_dict["vol"], spec_dict["dist"], spec_dict["mean"]),
        json.loads(params),
        asset=asset,
    )


# --------------------------------------------------------------------------- correlation


@dataclass(frozen=True)
class CorrelationOutcome:
    estimates: dict[tuple[str, str], CorrelationEstimate]  # (method, window) -> estimate
    dcc_a: float
    dcc_b: float
    dcc_converged: bool
    path_psd: bool  # every DCC and EWMA matrix over the sample was PSD
    dcc: DccOutcome | None = None

    @property
    def dcc_integrated(self) -> bool:
        return self.dcc is not None and self.dcc.fit.integrated

    @property
    def dcc_fallback(self) -> str | None:
        return None if self.dcc is None or self.dcc.fallback is None else self.dcc.fallback.value


def calibrate_correlations(
    con: duckdb.DuckDBPyConnection,
    settings: WorkbenchSettings,
    ctx: CalibrationContext,
    assets: tuple[str, ...],
) -> CorrelationOutcome:
    """EWMA, CCC and DCC on the chosen fits' standardized residuals; stressed correlation of
    returns in each named window; every matrix PSD-checked (and repaired, reported)."""
    z = store.residuals(con, ctx.calibration_id, assets).dropna()
    present = tuple(c for c in assets if c in z.columns)
    if len(present) < 2:
        raise BadInputError(
            f"correlation needs fitted residuals of at least two assets, have {', '.join(present)}"
        )
    z = z[list(present)]
    ewma = ewma_correlation(z)
    ccc = ccc_correlation(z)
    outcome = dcc_with_fallback(
        z,
        on_boundary=ctx.policy.dcc_boundary,
        persistence_cap=ctx.policy.dcc_persistence_cap,
    )
    dcc = outcome.fit
    history = {
        a: returns_for(con, settings.market.source_preference, a, ctx.as_of)[0].values
        for a in present
    }
    stressed = stressed_correlations(pd.DataFrame(history), ctx.policy.stress_windows)
    path_psd = all(is_psd(m) for m in dcc.path) and all(
        is_psd(m) for m in ewma_correlation_path(z.to_numpy())
    )
    # an integrated DCC stays on record, flagged; what the recommendations use instead is the
    # policy's fallback: the EWMA estimate (already stored) or the capped re-estimate
    stored = outcome.capped_fit.forecast if outcome.capped_fit is not None else dcc.forecast
    estimates = {("ewma", ""): ewma, ("ccc", ""): ccc, ("dcc", ""): stored}
    stored.details.update(
        {
            "se_a": dcc.se_a,
            "se_b": dcc.se_b,
            "loglik": dcc.loglik,
            "converged": dcc.converged,
            "path_psd": path_psd,
            "integrated": dcc.integrated,
            "fallback": outcome.fallback.value if outcome.fallback else None,
            "note": outcome.note,
            "in_recommendations": outcome.fallback is None or outcome.capped_fit is not None,
            "unconstrained": {"a": dcc.a, "b": dcc.b} if outcome.capped_fit is not None else None,
        }
    )
    for name, est in stressed.items():
        estimates[("stressed", name)] = est
    store.save_correlations(con, ctx.calibration_id, estimates)
    return CorrelationOutcome(estimates, dcc.a, dcc.b, dcc.converged, path_psd, outcome)


def pair_correlations(
    con: duckdb.DuckDBPyConnection, ctx: CalibrationContext
) -> dict[tuple[str, str], dict[str, float]]:
    rows = store.correlation_matrices(con, ctx.calibration_id)
    pairs: dict[tuple[str, str], dict[str, float]] = {}
    for method, window, assets_json, matrix_json, detail in rows:
        if not json.loads(detail or "{}").get("in_recommendations", True):
            continue  # an integrated DCC replaced by the policy's fallback
        names, matrix = json.loads(assets_json), json.loads(matrix_json)
        label = window or method
        for i, a in enumerate(names):
            for j in range(i + 1, len(names)):
                key = tuple(sorted((a, names[j])))
                pairs.setdefault(key, {})[label] = float(matrix[i][j])
    return pairs


# --------------------------------------------------------------------------- implied vol


def calibrate_iv(
    con: duckdb.DuckDBPyConnection,
    settings: WorkbenchSettings,
    ctx: CalibrationContext,
    assets: tuple[str, ...],
) -> dict[str, IvDynamics]:
    """IV dynamics of every asset that has a 30-day IV index up to the as-of date."""
    out = {}
    rows = []
    for asset in assets:
        loaded = load_iv(con, asset, ctx.as_of, settings.market.source_preference)
        if loaded is None:
            continue
        iv, source = loaded
        if len(iv) < 100:
            continue
        spot = returns_for(con, settings.market.source_preference, asset, ctx.as_of)[0].values
        dynamics = iv_dynamics(iv, spot, asset=asset)
        out[asset] = dynamics
        rows.append((asset, source, dynamics.to_dict()))
    store.save_iv_dynamics(con, ctx.calibration_id, rows)
    return out


def load_iv_dynamics(
    con: duckdb.DuckDBPyConnection,
    settings: WorkbenchSettings,
    ctx: CalibrationContext,
    assets: tuple[str, ...],
) -> dict[str, IvDynamics]:
    """The stored IV dynamics, rebuilt without refitting (estimated first if none is stored)."""
    rows = store.iv_dynamics_rows(con, ctx.calibration_id, assets)
    if not rows:
        return calibrate_iv(con, settings, ctx, assets)
    out = {}
    for asset, _, detail in rows:
        loaded = load_iv(con, asset, ctx.as_of, settings.market.source_preference)
        if loaded is None:
            raise BadInputError(f"{asset}: its IV index left the warehouse; re-run the IV dynamics")
        try:
            out[asset] = rebuild_iv_dynamics(detail, loaded[0])
        except ValueError as exc:
            raise BadInputError(f"{exc}; re-run the IV dynamics for {ctx.calibration_id}") from exc
    return out


# --------------------------------------------------------------------------- recommendations


def recommend_parameters(
    con: duckdb.DuckDBPyConnection,
    settings: WorkbenchSettings,
    ctx: CalibrationContext,
    assets: tuple[str, ...],
) -> Recommendations:
    fitted = store.fitted_assets(con, ctx.calibration_id)
    present = tuple(a for a in assets if a in fitted)
    if not present:
        raise BadInputError(f"no volatility fits for calibration {ctx.calibration_id}; fit first")
    fits = {a: load_chosen_fit(con, settings, ctx, a) for a in present}
    history = {
        a: returns_for(con, settings.market.source_preference, a, ctx.as_of)[0].values
        for a in present
    }
    ivs = load_iv_dynamics(con, settings, ctx, present)
    from pipelines.params import resolve_parameter_set  # the set in force (or the default)

    in_force = resolve_parameter_set(con).parameter_set.to_model_params()
    recommendations = recommend(
        fits,
        history,
        ctx.policy,
        as_of=ctx.as_of.isoformat(),
        iv=ivs,
        iv_history={a: d.log_changes for a, d in ivs.items()},
        pair_correlations=pair_correlations(con, ctx),
        extreme_covered_fraction={
            a: in_force.span_for(a).extreme_covered_fraction for a in present
        },
    )
    store.save_recommendations(con, ctx.calibration_id, recommendations.items)
    return recommendations


def bound_violations(
    settings: WorkbenchSettings, recommendations: Recommendations
) -> list[BoundViolation]:
    """Recommendations outside the configured bounds (patterns like ``underlyings.*.pm.price_range``)."""
    from fnmatch import fnmatchcase

    bounds = {}
    for item in recommendations.items:
        for pattern, bound in settings.calibration.bounds.items():
            if fnmatchcase(item.parameter, pattern):
                bounds[item.parameter] = bound
                break
    return outside_bounds(recommendations, bounds)


# --------------------------------------------------------------------------- everything


@dataclass(frozen=True)
class CalibrationRun:
    context: CalibrationContext
    volatility: dict[str, VolatilityCalibration]
    correlation: CorrelationOutcome | None
    iv: dict[str, IvDynamics]
    recommendations: Recommendations
    violations: list[BoundViolation]
    sources: dict[str, str] = field(default_factory=dict)  # asset -> which source served which days


def run_calibration(
    con: duckdb.DuckDBPyConnection,
    settings: WorkbenchSettings,
    assets: tuple[str, ...] | None = None,
    as_of: date | None = None,
) -> CalibrationRun:
    """Fit, correlate, study IV and recommend for ``assets`` (default: every asset with prices)."""
    if not assets:
        assets = history.assets_with_prices(con)
    if not assets:
        raise BadInputError("the warehouse has no prices; load data first (mwb demo or mwb ingest)")
    ctx = context(con, settings, assets, as_of)
    record_run(con, ctx)
    volatility = {a: fit_asset(con, settings, ctx, a) for a in assets}
    correlation = calibrate_correlations(con, settings, ctx, assets) if len(assets) > 1 else None
    calibrate_iv(con, settings, ctx, assets)
    recommendations = recommend_parameters(con, settings, ctx, assets)
    ivs = {asset: detail for asset, _, detail in store.iv_dynamics_rows(con, ctx.calibration_id)}
    preference = settings.market.source_preference
    sources = {
        a: provenance.describe()
        for a in assets
        if (provenance := history.closes(con, a, preference, end=ctx.as_of)[1]) is not None
    }
    return CalibrationRun(
        ctx,
        volatility,
        correlation,
        ivs,
        recommendations,
        bound_violations(settings, recommendations),
        sources,
    )
