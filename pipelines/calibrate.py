"""Calibration against the warehouse: load series, call the pure ``calibration`` package, store
results in the ``calib`` schema with their lineage. The Dagster assets and ``mwb calibrate``
are thin wrappers of these functions.

A calibration is identified by ``calibration_id = <as-of date>-<policy fingerprint[:10]>``; the
same as-of date and policy always land on the same rows, which a re-run replaces.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import duckdb
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
from calibration.lineage import library_versions, series_fingerprint
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
from pipelines import __version__, history
from pipelines.errors import BadInputError
from pipelines.history import Provenance
from pipelines.settings import WorkbenchSettings
from pipelines.warehouse import transaction
from reports.serialize import dumps

WEEKDAY_SOURCES = history.EQUITY_SOURCES  # equity data (S&P 500) trades on weekdays


def to_json(value: object) -> str:
    """Strict JSON for DuckDB (NaN and infinities become null: :mod:`reports.serialize`)."""
    return dumps(value, sort_keys=True)


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


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
    """Closes of ``asset`` up to ``as_of``, spliced across sources (:mod:`pipelines.history`)."""
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


def returns_for(con, settings: WorkbenchSettings, asset: str, as_of: date):
    """The asset's log returns up to ``as_of`` under the workbench's gap rule, and where its
    closes came from (a :class:`~pipelines.history.Provenance`)."""
    closes, provenance = load_closes(con, asset, as_of, settings.market.source_preference)
    weekdays = all(s in WEEKDAY_SOURCES for s in provenance.sources)
    calendar = Calendar.WEEKDAYS if weekdays else Calendar.ALWAYS
    return log_returns(closes, asset=asset, calendar=calendar), provenance


def latest_common_date(con: duckdb.DuckDBPyConnection, assets: tuple[str, ...]) -> date:
    """The last day on which every asset that has prices has one (any source)."""
    rows = con.execute(
        "SELECT asset, max(date) FROM market.prices WHERE asset IN (SELECT unnest(?)) GROUP BY asset",
        [list(assets)],
    ).fetchall()
    if not rows:
        raise BadInputError(
            f"no prices for {', '.join(assets)} in the warehouse; load data first (mwb demo)"
        )
    return min(r[1] for r in rows)


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
    with transaction(con):
        con.execute("DELETE FROM calib.runs WHERE calibration_id = ?", [ctx.calibration_id])
        con.execute(
            "INSERT INTO calib.runs VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                ctx.calibration_id,
                ctx.as_of,
                to_json(ctx.policy.to_dict()),
                ctx.policy_sha256,
                __version__,
                to_json(library_versions()),
                datetime.now(UTC),
            ],
        )


# --------------------------------------------------------------------------- volatility


def _candidate_rows(ctx, calibration: VolatilityCalibration, source: str, window) -> list[list]:
    rows = []
    chosen = calibration.chosen
    versions = to_json(library_versions())
    common = [source, window.start, window.end, window.n_obs, window.fingerprint, versions]
    for outcome in calibration.candidates:
        is_chosen = isinstance(chosen, UnivariateFit) and chosen.spec == outcome.spec
        detail = chosen.to_dict() if is_chosen else {}
        rows.append(
            [
                ctx.calibration_id,
                calibration.asset,
                outcome.spec.name,
                is_chosen,
                "failed" if outcome.error else ("rejected" if outcome.rejected else "garch"),
                to_json(outcome.spec.to_dict()),
                to_json(detail.get("params")) if is_chosen else None,
                to_json(detail.get("std_errors")) if is_chosen else None,
                _finite(outcome.loglik),
                _finite(detail.get("aic")) if is_chosen else None,
                _finite(outcome.bic),
                outcome.converged,
                outcome.stationary,
                _finite(detail.get("persistence")) if is_chosen else None,
                _finite(detail.get("half_life_days")) if is_chosen else None,
                _finite(detail.get("unconditional_vol_annual")) if is_chosen else None,
                _finite(detail.get("next_vol_annual")) if is_chosen else None,
                to_json(detail.get("ljung_box")) if is_chosen else None,
                to_json(detail.get("on_bounds")) if is_chosen else None,
                outcome.error or outcome.rejected,
                None,
                *common,
                outcome.note,
                window.gap_policy,
                to_json(list(window.gaps)),
            ]
        )
    if isinstance(chosen, EwmaFit):
        detail = chosen.to_dict()
        rows.append(
            [
                ctx.calibration_id,
                calibration.asset,
                chosen.name,
                True,
                "ewma",
                to_json(detail["spec"]),
                to_json({"lambda": chosen.lam}),
                None,
                chosen.loglik,
                None,
                None,
                True,
                False,
                1.0,
                None,
                None,
                detail["next_vol_annual"],
                None,
                "[]",
                None,
                calibration.fallback_reason,
                *common,
                None,
                window.gap_policy,
                to_json(list(window.gaps)),
            ]
        )
    return rows


def fit_asset(
    con: duckdb.DuckDBPyConnection, settings: WorkbenchSettings, ctx: CalibrationContext, asset: str
) -> VolatilityCalibration:
    """Fit every candidate model to the asset's last ``lookback_days`` returns, keep the BIC
    choice (or the EWMA fallback) and store candidates and the chosen path."""
    returns, provenance = returns_for(con, settings, asset, ctx.as_of)
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
    with transaction(con):
        for table in ("calib.fits", "calib.fitted_series"):
            con.execute(
                f"DELETE FROM {table} WHERE calibration_id = ? AND asset = ?",
                [ctx.calibration_id, asset],
            )
        rows = _candidate_rows(ctx, calibration, source, chosen.window)
        con.executemany(f"INSERT INTO calib.fits VALUES ({', '.join(['?'] * 30)})", rows)
        con.register("_series", series)
        con.execute("INSERT INTO calib.fitted_series SELECT * FROM _series")
        con.unregister("_series")
    return calibration


def load_chosen_fit(
    con: duckdb.DuckDBPyConnection, settings: WorkbenchSettings, ctx: CalibrationContext, asset: str
) -> UnivariateFit | EwmaFit:
    """Rebuild the stored chosen model by applying its parameters to the same data (no refit);
    refuse if the data changed since it was fitted."""
    row = con.execute(
        "SELECT kind, spec, params, window_start, window_end, data_sha256, fallback_reason FROM calib.fits "
        "WHERE calibration_id = ? AND asset = ? AND chosen",
        [ctx.calibration_id, asset],
    ).fetchone()
    if row is None:
        raise BadInputError(
            f"{asset}: no volatility fit for calibration {ctx.calibration_id}; fit it first"
        )
    kind, spec, params, start, end, data_sha, reason = row
    returns, _ = returns_for(con, settings, asset, ctx.as_of)
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


def _correlation_row(ctx, method: str, window: str, est: CorrelationEstimate) -> list:
    return [
        ctx.calibration_id,
        method,
        window,
        to_json(list(est.assets)),
        to_json(est.matrix.tolist()),
        est.psd.psd_before,
        est.psd.min_eigenvalue_before,
        est.psd.repaired,
        est.psd.min_eigenvalue_after,
        est.n_obs,
        est.start,
        est.end,
        to_json(est.details),
    ]


def calibrate_correlations(
    con: duckdb.DuckDBPyConnection,
    settings: WorkbenchSettings,
    ctx: CalibrationContext,
    assets: tuple[str, ...],
) -> CorrelationOutcome:
    """EWMA, CCC and DCC on the chosen fits' standardized residuals; stressed correlation of
    returns in each named window; every matrix PSD-checked (and repaired, reported)."""
    frame = con.execute(
        "SELECT asset, date, std_resid FROM calib.fitted_series WHERE calibration_id = ? "
        "AND asset IN (SELECT unnest(?)) ORDER BY date",
        [ctx.calibration_id, list(assets)],
    ).df()
    z = frame.pivot(index="date", columns="asset", values="std_resid").dropna()
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
    history = {a: returns_for(con, settings, a, ctx.as_of)[0].values for a in present}
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
    with transaction(con):
        con.execute("DELETE FROM calib.correlations WHERE calibration_id = ?", [ctx.calibration_id])
        con.executemany(
            f"INSERT INTO calib.correlations VALUES ({', '.join(['?'] * 13)})",
            [_correlation_row(ctx, m, w, e) for (m, w), e in estimates.items()],
        )
    return CorrelationOutcome(estimates, dcc.a, dcc.b, dcc.converged, path_psd, outcome)


def pair_correlations(
    con: duckdb.DuckDBPyConnection, ctx: CalibrationContext
) -> dict[tuple[str, str], dict[str, float]]:
    rows = con.execute(
        "SELECT method, window_name, assets, matrix, detail FROM calib.correlations "
        "WHERE calibration_id = ?",
        [ctx.calibration_id],
    ).fetchall()
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
        spot = returns_for(con, settings, asset, ctx.as_of)[0].values
        dynamics = iv_dynamics(iv, spot, asset=asset)
        out[asset] = dynamics
        rows.append([ctx.calibration_id, asset, source, to_json(dynamics.to_dict())])
    with transaction(con):
        con.execute("DELETE FROM calib.iv_dynamics WHERE calibration_id = ?", [ctx.calibration_id])
        if rows:
            con.executemany("INSERT INTO calib.iv_dynamics VALUES (?, ?, ?, ?)", rows)
    return out


def load_iv_dynamics(
    con: duckdb.DuckDBPyConnection,
    settings: WorkbenchSettings,
    ctx: CalibrationContext,
    assets: tuple[str, ...],
) -> dict[str, IvDynamics]:
    """The stored IV dynamics, rebuilt without refitting (estimated first if none is stored)."""
    rows = con.execute(
        "SELECT asset, detail FROM calib.iv_dynamics WHERE calibration_id = ? AND asset IN (SELECT unnest(?))",
        [ctx.calibration_id, list(assets)],
    ).fetchall()
    if not rows:
        return calibrate_iv(con, settings, ctx, assets)
    out = {}
    for asset, detail in rows:
        iv, _ = load_iv(con, asset, ctx.as_of, settings.market.source_preference)
        try:
            out[asset] = rebuild_iv_dynamics(json.loads(detail), iv)
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
    fitted = {
        r[0]
        for r in con.execute(
            "SELECT DISTINCT asset FROM calib.fits WHERE calibration_id = ? AND chosen",
            [ctx.calibration_id],
        ).fetchall()
    }
    present = tuple(a for a in assets if a in fitted)
    if not present:
        raise BadInputError(f"no volatility fits for calibration {ctx.calibration_id}; fit first")
    fits = {a: load_chosen_fit(con, settings, ctx, a) for a in present}
    history = {a: returns_for(con, settings, a, ctx.as_of)[0].values for a in present}
    ivs = load_iv_dynamics(con, settings, ctx, present)
    from pipelines.margin import load_params  # the set in force (or the default)

    in_force = load_params(None, con)[0].to_model_params()
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
    with transaction(con):
        con.execute(
            "DELETE FROM calib.recommendations WHERE calibration_id = ?", [ctx.calibration_id]
        )
        con.executemany(
            "INSERT INTO calib.recommendations VALUES (?, ?, ?, ?, ?)",
            [
                [ctx.calibration_id, i.parameter, i.value, i.unit, to_json(i.derivation.to_dict())]
                for i in recommendations.items
            ],
        )
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
        assets = tuple(
            r[0]
            for r in con.execute("SELECT DISTINCT asset FROM market.prices ORDER BY 1").fetchall()
        )
    if not assets:
        raise BadInputError("the warehouse has no prices; load data first (mwb demo or mwb ingest)")
    ctx = context(con, settings, assets, as_of)
    record_run(con, ctx)
    volatility = {a: fit_asset(con, settings, ctx, a) for a in assets}
    correlation = calibrate_correlations(con, settings, ctx, assets) if len(assets) > 1 else None
    calibrate_iv(con, settings, ctx, assets)
    recommendations = recommend_parameters(con, settings, ctx, assets)
    ivs = {
        r[0]: json.loads(r[1])
        for r in con.execute(
            "SELECT asset, detail FROM calib.iv_dynamics WHERE calibration_id = ?",
            [ctx.calibration_id],
        ).fetchall()
    }
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
