"""Calibration assets: a volatility fit per underlying, correlation, implied-vol dynamics and the
recommended parameters, stored in the ``calib`` schema.

The underlyings come from the settings when the definitions load (:func:`calibration_defs`,
not at import): each gets its own asset ``calib/volatility_fits/<UNDERLYING>``, so a run fits
them side by side under the multiprocess executor and each fit carries its own blocking check.

Quality gates travel with each materialization as asset-check results: a fit that did not
converge (and fell back to EWMA) warns; persistence ≥ 1 and a non-PSD correlation matrix are
blocking errors; parameters on a bound and recommendations outside the bounds warn.
"""

import dagster as dg
import pandas as pd

from pipelines.calibrate import (
    bound_violations,
    calibrate_correlations,
    calibrate_iv,
    context,
    recommend_parameters,
    record_run,
)
from pipelines.calibrate import (
    fit_asset as fit_asset_of,
)
from pipelines.defs.metadata import markdown_table
from pipelines.defs.resources import WarehouseResource, WorkbenchResource
from pipelines.settings import load_settings

GROUP = "calibration"
FITS_PREFIX = ["calib", "volatility_fits"]
CORRELATIONS = dg.AssetKey(["calib", "correlations"])
IV_DYNAMICS = dg.AssetKey(["calib", "iv_dynamics"])
RECOMMENDATIONS = dg.AssetKey(["calib", "recommendations"])


def fit_key(underlying: str) -> dg.AssetKey:
    """The asset of ``underlying``'s volatility fit."""
    return dg.AssetKey([*FITS_PREFIX, underlying])


class CalibrationConfig(dg.Config):
    as_of: str = ""  # YYYY-MM-DD; empty = the last day every configured asset has a price


def _context(con, workbench: WorkbenchResource, config: CalibrationConfig):
    settings = workbench.settings()
    as_of = pd.Timestamp(config.as_of).date() if config.as_of else None
    return settings, context(con, settings, settings.market.assets, as_of)


def fit_metadata(ctx, calibration) -> dict:
    """A volatility fit for a materialization: the chosen model, its window and the candidates."""
    chosen = calibration.chosen
    candidates = pd.DataFrame(
        [
            {
                "model": o.spec.name,
                "bic": o.bic,
                "converged": o.converged,
                "stationary": o.stationary,
                "error": o.error or "",
            }
            for o in calibration.candidates
        ]
    ).sort_values("bic")
    detail = chosen.to_dict()
    return {
        "calibration_id": ctx.calibration_id,
        "as_of": ctx.as_of.isoformat(),
        "model": chosen.name,
        "persistence": float(chosen.persistence),
        "half_life_days": detail.get("half_life_days"),
        "next_vol_annual": detail["next_vol_annual"],
        "fallback_reason": calibration.fallback_reason or "",
        "data_sha256": chosen.window.fingerprint,
        "window": f"{chosen.window.start}..{chosen.window.end} ({chosen.window.n_obs} returns)",
        "candidates": markdown_table(candidates),
    }


def recommendations_metadata(ctx, result) -> dict:
    """The recommended parameters for a materialization, with the policy they follow."""
    table = pd.DataFrame(
        [{"parameter": i.parameter, "value": i.value, "unit": i.unit} for i in result.items]
    )
    return {
        "calibration_id": ctx.calibration_id,
        "policy_sha256": ctx.policy_sha256,
        "recommendations": markdown_table(table, max_rows=100),
        "notes": "\n".join(result.notes) or "",
    }


def fit_asset(underlying: str) -> dg.AssetsDefinition:
    """The volatility-fit asset of one underlying, with its checks."""
    key = fit_key(underlying)

    @dg.asset(
        key=key,
        group_name=GROUP,
        kinds={"duckdb", "python"},
        # a fit reads the whole price history of its underlying: every day's partition
        deps=[
            dg.AssetDep(
                dg.AssetKey(["market", "prices"]), partition_mapping=dg.AllPartitionMapping()
            )
        ],
        check_specs=[
            dg.AssetCheckSpec(
                "fit_converged",
                asset=key,
                description="The chosen model converged (no EWMA fallback).",
            ),
            dg.AssetCheckSpec(
                "persistence_below_one",
                asset=key,
                blocking=True,
                description="The chosen GARCH model is covariance-stationary.",
            ),
            dg.AssetCheckSpec(
                "no_parameter_on_bound",
                asset=key,
                description="No estimate sits on its optimizer bound.",
            ),
        ],
    )
    def volatility_fit(
        config: CalibrationConfig, warehouse: WarehouseResource, workbench: WorkbenchResource
    ) -> dg.MaterializeResult:
        """GARCH / GJR-GARCH / EGARCH × normal / t / skew-t for one underlying, chosen by BIC."""
        with warehouse.get_connection() as con:
            settings, ctx = _context(con, workbench, config)
            record_run(con, ctx)
            calibration = fit_asset_of(con, settings, ctx, underlying)
        return dg.MaterializeResult(
            metadata=fit_metadata(ctx, calibration), check_results=fit_checks(calibration)
        )

    return volatility_fit


def fit_checks(calibration) -> list[dg.AssetCheckResult]:
    """The three checks of a fit: converged (warn), stationary (blocking), off its bounds (warn)."""
    chosen = calibration.chosen
    on_bounds = list(getattr(chosen, "on_bounds", ()))
    return [
        dg.AssetCheckResult(
            check_name="fit_converged",
            passed=not calibration.fell_back,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"fallback_reason": calibration.fallback_reason or ""},
        ),
        dg.AssetCheckResult(
            check_name="persistence_below_one",
            passed=bool(calibration.fell_back or chosen.persistence < 1),
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"persistence": float(chosen.persistence)},
        ),
        dg.AssetCheckResult(
            check_name="no_parameter_on_bound",
            passed=not on_bounds,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"on_bounds": ", ".join(on_bounds)},
        ),
    ]


def correlations_asset(fits: list[dg.AssetKey]) -> dg.AssetsDefinition:
    """The correlation asset, downstream of every fit in ``fits``."""

    @dg.asset(
        key=CORRELATIONS,
        group_name=GROUP,
        kinds={"duckdb", "python"},
        deps=list(fits),
        check_specs=[
            dg.AssetCheckSpec(
                "correlations_psd",
                asset=CORRELATIONS,
                blocking=True,
                description="Every correlation matrix produced is positive semi-definite.",
            ),
            dg.AssetCheckSpec(
                "dcc_stationary",
                asset=CORRELATIONS,
                blocking=True,
                description="The DCC(1,1) the recommendations use converged with a + b < 1 "
                "(an integrated fit passes only when the policy's fallback replaced it).",
            ),
        ],
    )
    def correlations(
        config: CalibrationConfig, warehouse: WarehouseResource, workbench: WorkbenchResource
    ) -> dg.MaterializeResult:
        """EWMA, CCC and DCC(1,1) correlation of the underlyings, and stressed correlation per window."""
        with warehouse.get_connection() as con:
            settings, ctx = _context(con, workbench, config)
            outcome = calibrate_correlations(con, settings, ctx, settings.market.assets)
        table = pd.DataFrame(
            [
                {
                    "method": m,
                    "window": w,
                    "n_obs": e.n_obs,
                    "psd_before": e.psd.psd_before,
                    "repaired": e.psd.repaired,
                    "min_eig_after": e.psd.min_eigenvalue_after,
                }
                for (m, w), e in outcome.estimates.items()
            ]
        )
        dcc = outcome.estimates[("dcc", "")].as_frame()
        return dg.MaterializeResult(
            metadata={
                "calibration_id": ctx.calibration_id,
                "dcc_a": outcome.dcc_a,
                "dcc_b": outcome.dcc_b,
                "dcc_forecast": markdown_table(dcc.reset_index(names="asset")),
                "matrices": markdown_table(table),
            },
            check_results=correlation_checks(outcome),
        )

    return correlations


@dg.asset(
    key=IV_DYNAMICS,
    group_name=GROUP,
    kinds={"duckdb", "python"},
    deps=[dg.AssetKey(["market", "implied_vol"]), dg.AssetKey(["market", "prices"])],
)
def iv_dynamics(
    config: CalibrationConfig, warehouse: WarehouseResource, workbench: WorkbenchResource
) -> dg.MaterializeResult:
    """Vol of vol, spot-vol correlation and IV mean reversion per implied-vol index."""
    with warehouse.get_connection() as con:
        settings, ctx = _context(con, workbench, config)
        found = calibrate_iv(con, settings, ctx, settings.market.assets)
    table = pd.DataFrame(
        [
            {
                "asset": a,
                "iv_last": d.iv_last,
                "vol_of_vol": d.vol_of_vol_current_annual,
                "spot_vol_corr": d.spot_vol_corr,
                "half_life_days": d.mean_reversion.half_life_days,
                "model": d.vol_of_vol_model,
            }
            for a, d in found.items()
        ]
    )
    return dg.MaterializeResult(
        metadata={"calibration_id": ctx.calibration_id, "iv_dynamics": markdown_table(table)}
    )


def recommendations_asset(fits: list[dg.AssetKey]) -> dg.AssetsDefinition:
    """The recommendations asset, downstream of every fit in ``fits``."""

    @dg.asset(
        key=RECOMMENDATIONS,
        group_name=GROUP,
        kinds={"duckdb", "python"},
        deps=[*fits, CORRELATIONS, IV_DYNAMICS],
        check_specs=[
            dg.AssetCheckSpec(
                "recommendations_within_bounds",
                asset=RECOMMENDATIONS,
                description="Every recommended value lies inside the configured bounds.",
            ),
        ],
    )
    def recommendations(
        config: CalibrationConfig, warehouse: WarehouseResource, workbench: WorkbenchResource
    ) -> dg.MaterializeResult:
        """Price ranges, vol ranges, extreme moves, haircuts and spread credits under the policy,
        each with its derivation (stored in ``calib.recommendations``)."""
        with warehouse.get_connection() as con:
            settings, ctx = _context(con, workbench, config)
            result = recommend_parameters(con, settings, ctx, settings.market.assets)
        violations = bound_violations(settings, result)
        return dg.MaterializeResult(
            metadata=recommendations_metadata(ctx, result),
            check_results=[
                dg.AssetCheckResult(
                    check_name="recommendations_within_bounds",
                    passed=not violations,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={"violations": "\n".join(v.describe() for v in violations) or ""},
                )
            ],
        )

    return recommendations


def correlation_checks(outcome) -> list[dg.AssetCheckResult]:
    """PSD of every matrix and path (blocking); a stationary DCC where it is used (blocking)."""
    repaired = sum(int(e.psd.repaired) for e in outcome.estimates.values())
    stationary = outcome.dcc_converged and outcome.dcc_a + outcome.dcc_b < 1
    return [
        dg.AssetCheckResult(
            check_name="correlations_psd",
            passed=bool(
                outcome.path_psd
                and all(e.psd.min_eigenvalue_after >= -1e-10 for e in outcome.estimates.values())
            ),
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"repaired": repaired, "dcc_and_ewma_paths_psd": outcome.path_psd},
        ),
        dg.AssetCheckResult(
            check_name="dcc_stationary",
            passed=bool(stationary or outcome.dcc_fallback is not None),
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "a_plus_b": outcome.dcc_a + outcome.dcc_b,
                "fallback": outcome.dcc_fallback or "none",
            },
        ),
    ]


def calibration_assets(underlyings: list[str]) -> list[dg.AssetsDefinition]:
    """The fits of ``underlyings``, the IV dynamics, and the assets that read every fit (a
    module with a ``@dg.definitions`` function contributes only what that function returns)."""
    fits = [fit_asset(u) for u in underlyings]
    keys = [fit_key(u) for u in underlyings]
    return [*fits, correlations_asset(keys), iv_dynamics, recommendations_asset(keys)]


@dg.definitions
def calibration_defs() -> dg.Definitions:
    """Built when the definitions load, from the configured underlyings."""
    return dg.Definitions(assets=calibration_assets(list(load_settings().market.assets)))
