"""The ``calib`` schema: calibration runs, every candidate fit, the chosen fits' series, the
correlations, implied-vol dynamics and recommendations, each keyed by ``calibration_id``.

Writes replace what a calibration id held (a re-run of the same as-of date and policy lands on
the same rows); every JSON column is strict (:mod:`reports.serialize`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import duckdb
import pandas as pd

from calibration.correlation import CorrelationEstimate
from calibration.lineage import library_versions
from calibration.recommend import Recommendation
from calibration.univariate import DataWindow, EwmaFit, UnivariateFit, VolatilityCalibration
from pipelines import __version__
from pipelines.warehouse import transaction
from reports.serialize import dumps

if TYPE_CHECKING:
    from pipelines.calibrate import CalibrationContext


def to_json(value: object) -> str:
    """Strict JSON for DuckDB (NaN and infinities become null: :mod:`reports.serialize`)."""
    return dumps(value, sort_keys=True)


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


# --------------------------------------------------------------------------- runs


def record_run(con: duckdb.DuckDBPyConnection, ctx: CalibrationContext) -> None:
    """The run's row: as-of date, policy and its fingerprint, versions."""
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


def run_as_of(con: duckdb.DuckDBPyConnection, calibration_id: str) -> date | None:
    row = con.execute(
        "SELECT as_of FROM calib.runs WHERE calibration_id = ?", [calibration_id]
    ).fetchone()
    return row[0] if row else None


def latest_through(
    con: duckdb.DuckDBPyConnection, day: date, assets: Sequence[str]
) -> tuple[str, date] | None:
    """(calibration id, as-of) of the newest run as of ``day`` or earlier with a chosen fit for
    every one of ``assets``."""
    return con.execute(
        "SELECT r.calibration_id, r.as_of FROM calib.runs r WHERE r.as_of <= ? AND ("
        "SELECT count(DISTINCT f.asset) FROM calib.fits f WHERE f.calibration_id = "
        "r.calibration_id AND f.chosen AND f.asset IN (SELECT unnest(?))) = ? "
        "ORDER BY r.as_of DESC, r.updated_at DESC LIMIT 1",
        [day, list(assets), len(set(assets))],
    ).fetchone()


def chosen_fit_inputs(
    con: duckdb.DuckDBPyConnection, calibration_id: str, asset: str
) -> tuple[dict, dict, float, str] | None:
    """(spec, params, next-day volatility annualised, data SHA-256) of the asset's chosen fit."""
    row = con.execute(
        "SELECT spec, params, next_vol_annual, data_sha256 FROM calib.fits "
        "WHERE calibration_id = ? AND asset = ? AND chosen",
        [calibration_id, asset],
    ).fetchone()
    if row is None:
        return None
    return json.loads(row[0]), json.loads(row[1]), float(row[2]), row[3]


def latest_with_recommendations(
    con: duckdb.DuckDBPyConnection,
) -> tuple[str, date, str] | None:
    """(calibration id, as-of date, policy JSON) of the newest run with recommendations."""
    return con.execute(
        "SELECT calibration_id, as_of, policy FROM calib.runs r WHERE EXISTS (SELECT 1 FROM "
        "calib.recommendations x WHERE x.calibration_id = r.calibration_id) "
        "ORDER BY as_of DESC, updated_at DESC LIMIT 1"
    ).fetchone()


# --------------------------------------------------------------------------- volatility fits


def _candidate_rows(
    ctx: CalibrationContext, calibration: VolatilityCalibration, source: str, window: DataWindow
) -> list[list]:
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


def save_fit(
    con: duckdb.DuckDBPyConnection,
    ctx: CalibrationContext,
    calibration: VolatilityCalibration,
    source: str,
    series: pd.DataFrame,
) -> None:
    """Every candidate of ``calibration`` (the chosen one with its estimates) and the chosen
    model's daily series, replacing what the run held for the asset."""
    asset = calibration.asset
    with transaction(con):
        for table in ("calib.fits", "calib.fitted_series"):
            con.execute(
                f"DELETE FROM {table} WHERE calibration_id = ? AND asset = ?",
                [ctx.calibration_id, asset],
            )
        rows = _candidate_rows(ctx, calibration, source, calibration.chosen.window)
        con.executemany(f"INSERT INTO calib.fits VALUES ({', '.join(['?'] * 30)})", rows)
        con.register("_series", series)
        con.execute("INSERT INTO calib.fitted_series SELECT * FROM _series")
        con.unregister("_series")


def chosen_fit(con: duckdb.DuckDBPyConnection, calibration_id: str, asset: str) -> tuple | None:
    """kind, spec, params, window start and end, data fingerprint and fallback reason of the
    asset's chosen fit."""
    return con.execute(
        "SELECT kind, spec, params, window_start, window_end, data_sha256, fallback_reason "
        "FROM calib.fits WHERE calibration_id = ? AND asset = ? AND chosen",
        [calibration_id, asset],
    ).fetchone()


def fitted_assets(con: duckdb.DuckDBPyConnection, calibration_id: str) -> set[str]:
    rows = con.execute(
        "SELECT DISTINCT asset FROM calib.fits WHERE calibration_id = ? AND chosen",
        [calibration_id],
    ).fetchall()
    return {r[0] for r in rows}


def chosen_fits(con: duckdb.DuckDBPyConnection, calibration_id: str) -> pd.DataFrame:
    """The chosen fit of each asset: model, persistence, forecast, window and gaps."""
    return con.execute(
        "SELECT asset, model, persistence, next_vol_annual, n_obs, data_sha256, price_source, "
        "window_start, window_end, gaps FROM calib.fits "
        "WHERE calibration_id = ? AND chosen ORDER BY asset",
        [calibration_id],
    ).df()


def fit_notes(con: duckdb.DuckDBPyConnection, calibration_id: str) -> list[tuple]:
    """(asset, model, note or error, kind) of candidates that were rejected or carry a note."""
    return con.execute(
        "SELECT asset, model, coalesce(note, error), kind FROM calib.fits "
        "WHERE calibration_id = ? AND (kind = 'rejected' OR note IS NOT NULL) "
        "ORDER BY asset, model",
        [calibration_id],
    ).fetchall()


def residuals(
    con: duckdb.DuckDBPyConnection, calibration_id: str, assets: Sequence[str]
) -> pd.DataFrame:
    """Standardised residuals of the chosen fits, dates × assets."""
    frame = con.execute(
        "SELECT asset, date, std_resid FROM calib.fitted_series WHERE calibration_id = ? "
        "AND asset IN (SELECT unnest(?)) ORDER BY date",
        [calibration_id, list(assets)],
    ).df()
    return frame.pivot(index="date", columns="asset", values="std_resid")


def conditional_vol(
    con: duckdb.DuckDBPyConnection, calibration_id: str, asset: str
) -> pd.DataFrame:
    """The chosen fit's daily conditional volatility of ``asset`` (date, cond_vol)."""
    return con.execute(
        "SELECT date, cond_vol FROM calib.fitted_series WHERE calibration_id = ? AND asset = ? "
        "ORDER BY date",
        [calibration_id, asset],
    ).df()


# --------------------------------------------------------------------------- correlation


def _correlation_row(
    calibration_id: str, method: str, window: str, est: CorrelationEstimate
) -> list:
    return [
        calibration_id,
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


def save_correlations(
    con: duckdb.DuckDBPyConnection,
    calibration_id: str,
    estimates: dict[tuple[str, str], CorrelationEstimate],
) -> None:
    """Every (method, window) estimate, replacing the run's."""
    with transaction(con):
        con.execute("DELETE FROM calib.correlations WHERE calibration_id = ?", [calibration_id])
        con.executemany(
            f"INSERT INTO calib.correlations VALUES ({', '.join(['?'] * 13)})",
            [_correlation_row(calibration_id, m, w, e) for (m, w), e in estimates.items()],
        )


def correlation_matrices(con: duckdb.DuckDBPyConnection, calibration_id: str) -> list[tuple]:
    """(method, window, assets JSON, matrix JSON, detail JSON) of every stored estimate."""
    return con.execute(
        "SELECT method, window_name, assets, matrix, detail FROM calib.correlations "
        "WHERE calibration_id = ?",
        [calibration_id],
    ).fetchall()


def dcc_detail(con: duckdb.DuckDBPyConnection, calibration_id: str) -> dict | None:
    row = con.execute(
        "SELECT detail FROM calib.correlations WHERE calibration_id = ? AND method = 'dcc' "
        "AND window_name = ''",
        [calibration_id],
    ).fetchone()
    return json.loads(row[0]) if row else None


def headline_correlation(con: duckdb.DuckDBPyConnection, calibration_id: str) -> tuple | None:
    """(method, assets JSON, matrix JSON) of the estimate a report shows: DCC, else CCC, else
    EWMA."""
    return con.execute(
        "SELECT method, assets, matrix FROM calib.correlations WHERE calibration_id = ? AND window_name = '' "
        "ORDER BY CASE method WHEN 'dcc' THEN 0 WHEN 'ccc' THEN 1 ELSE 2 END LIMIT 1",
        [calibration_id],
    ).fetchone()


# --------------------------------------------------------------------------- implied vol


def save_iv_dynamics(
    con: duckdb.DuckDBPyConnection, calibration_id: str, rows: Iterable[tuple[str, str, dict]]
) -> None:
    """(asset, source, detail) per asset, replacing the run's."""
    values = [[calibration_id, asset, source, to_json(detail)] for asset, source, detail in rows]
    with transaction(con):
        con.execute("DELETE FROM calib.iv_dynamics WHERE calibration_id = ?", [calibration_id])
        if values:
            con.executemany("INSERT INTO calib.iv_dynamics VALUES (?, ?, ?, ?)", values)


def iv_dynamics_rows(
    con: duckdb.DuckDBPyConnection, calibration_id: str, assets: Sequence[str] | None = None
) -> list[tuple[str, str, dict[str, Any]]]:
    """(asset, source, detail) of the stored IV dynamics (of ``assets`` when given)."""
    rows = con.execute(
        "SELECT asset, iv_source, detail FROM calib.iv_dynamics WHERE calibration_id = ? "
        "AND (? IS NULL OR asset IN (SELECT unnest(?))) ORDER BY asset",
        [calibration_id, None if assets is None else 1, list(assets or [])],
    ).fetchall()
    return [(asset, source, json.loads(detail)) for asset, source, detail in rows]


# --------------------------------------------------------------------------- recommendations


def save_recommendations(
    con: duckdb.DuckDBPyConnection, calibration_id: str, items: Iterable[Recommendation]
) -> None:
    with transaction(con):
        con.execute("DELETE FROM calib.recommendations WHERE calibration_id = ?", [calibration_id])
        con.executemany(
            "INSERT INTO calib.recommendations VALUES (?, ?, ?, ?, ?)",
            [
                [calibration_id, i.parameter, i.value, i.unit, to_json(i.derivation.to_dict())]
                for i in items
            ],
        )


def recommendation_rows(con: duckdb.DuckDBPyConnection, calibration_id: str) -> list[tuple]:
    """(parameter, value, unit, derivation JSON), by parameter."""
    return con.execute(
        "SELECT parameter, value, unit, derivation FROM calib.recommendations "
        "WHERE calibration_id = ? ORDER BY parameter",
        [calibration_id],
    ).fetchall()


def latest_recommendations(
    con: duckdb.DuckDBPyConnection,
) -> tuple[str, date, dict[str, float]] | None:
    """The newest calibration's recommendations (by as-of date, then time of the run)."""
    row = con.execute(
        "SELECT r.calibration_id, r.as_of FROM calib.runs r "
        "WHERE EXISTS (SELECT 1 FROM calib.recommendations x WHERE x.calibration_id = r.calibration_id) "
        "ORDER BY r.as_of DESC, r.updated_at DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    calibration_id, as_of = row
    values = dict(
        con.execute(
            "SELECT parameter, value FROM calib.recommendations WHERE calibration_id = ?",
            [calibration_id],
        ).fetchall()
    )
    return calibration_id, as_of, values


def latest_run_summary(con: duckdb.DuckDBPyConnection) -> tuple[str | None, list, list]:
    """The newest run's id, its chosen models (asset, model, persistence, next vol) and its
    recommendations (parameter, value)."""
    row = con.execute(
        "SELECT calibration_id FROM calib.runs ORDER BY updated_at DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None, [], []
    calibration_id = row[0]
    models = con.execute(
        "SELECT asset, model, round(persistence, 4), round(next_vol_annual, 3) FROM calib.fits "
        "WHERE calibration_id = ? AND chosen ORDER BY asset",
        [calibration_id],
    ).fetchall()
    recommendations = con.execute(
        "SELECT parameter, value FROM calib.recommendations WHERE calibration_id = ? ORDER BY parameter",
        [calibration_id],
    ).fetchall()
    return calibration_id, models, recommendations


def recommendation_history(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """Every calibration's recommendations: (calibration_id, as_of, parameter, value), by
    parameter then day."""
    return con.execute(
        "SELECT r.calibration_id, c.as_of, r.parameter, r.value FROM calib.recommendations r "
        "JOIN calib.runs c USING (calibration_id) ORDER BY r.parameter, c.as_of"
    ).fetchall()
