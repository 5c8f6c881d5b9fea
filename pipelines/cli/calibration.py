"""``mwb calibrate``: fit, correlate, study IV and recommend parameters; print the arithmetic."""

from __future__ import annotations

from datetime import date

import typer

from pipelines.cli.market import JSON_HELP, parse_day, settings_from
from pipelines.cli.output import out, print_json, table
from pipelines.errors import BadInputError


def _as_of(text: str | None) -> date | None:
    return parse_day(text, "--as-of")


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def calibrate(
    ctx: typer.Context,
    assets: list[str] = typer.Option(
        [], "--asset", help="Underlying to calibrate (repeatable; default: all)."
    ),
    as_of: str | None = typer.Option(
        None, "--as-of", help="Use data up to this day (default: latest common)."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Fit GARCH-family models, correlations and IV dynamics; recommend margin parameters."""
    from pipelines.calibrate import run_calibration  # numerics: imported when asked for
    from pipelines.stores.market import assets_with_prices
    from pipelines.warehouse import connect

    settings = settings_from(ctx)
    con = connect(settings.warehouse_path)
    try:
        known = set(assets_with_prices(con))
        unknown = [a for a in assets if a not in known]
        if unknown:
            raise BadInputError(
                f"--asset: no prices for {', '.join(unknown)} (have: {', '.join(sorted(known)) or 'none'})"
            )
        run = run_calibration(con, settings, tuple(assets) or None, _as_of(as_of))
    finally:
        con.close()
    if as_json:
        print_json(_payload(run))
        return
    _print(run)


def _payload(run) -> dict:
    ctx = run.context
    fits = {}
    for asset, calibration in run.volatility.items():
        window = calibration.chosen.window
        fits[asset] = {
            "chosen": calibration.chosen.to_dict(),
            "fallback_reason": calibration.fallback_reason,
            "prices": run.sources.get(asset),
            "gap_policy": window.gap_policy,
            "gaps": list(window.gaps),
            "candidates": [
                {
                    "model": o.spec.name,
                    "bic": o.bic,
                    "loglik": o.loglik,
                    "converged": o.converged,
                    "stationary": o.stationary,
                    "error": o.error,
                    "rejected": o.rejected,
                    "note": o.note,
                }
                for o in calibration.candidates
            ],
        }
    correlation = None
    if run.correlation is not None:
        correlation = {
            "dcc": {
                "a": run.correlation.dcc_a,
                "b": run.correlation.dcc_b,
                "se_a": run.correlation.dcc.fit.se_a if run.correlation.dcc else None,
                "se_b": run.correlation.dcc.fit.se_b if run.correlation.dcc else None,
                "converged": run.correlation.dcc_converged,
                "integrated": run.correlation.dcc_integrated,
                "fallback": run.correlation.dcc_fallback,
                "note": run.correlation.dcc.note if run.correlation.dcc else "",
            },
            "all_paths_psd": run.correlation.path_psd,
            "matrices": [
                {"method": m, "window": w, **e.to_dict()}
                for (m, w), e in run.correlation.estimates.items()
            ],
        }
    return {
        "calibration_id": ctx.calibration_id,
        "as_of": ctx.as_of.isoformat(),
        "policy": ctx.policy.to_dict(),
        "policy_sha256": ctx.policy_sha256,
        "fits": fits,
        "correlation": correlation,
        "iv_dynamics": run.iv,
        "recommendations": [i.to_dict() for i in run.recommendations.items],
        "notes": list(run.recommendations.notes),
        "bound_violations": [v.describe() for v in run.violations],
    }


def _print(run) -> None:
    ctx = run.context
    out.print(
        f"calibration {ctx.calibration_id} (data up to {ctx.as_of}; policy {ctx.policy_sha256[:12]})"
    )
    rows = []
    for asset, calibration in run.volatility.items():
        fit = calibration.chosen
        d = fit.to_dict()
        lb = {x["series"]: x["pvalue"] for x in d.get("ljung_box", [])}
        rows.append(
            (
                asset,
                fit.name,
                _fmt(fit.persistence),
                _fmt(d.get("half_life_days"), 1),
                _fmt(d.get("unconditional_vol_annual"), 3),
                _fmt(d["next_vol_annual"], 3),
                _fmt(lb.get("z"), 3),
                _fmt(lb.get("z^2"), 3),
                ", ".join(d.get("on_bounds", [])) or "-",
                calibration.fallback_reason or "-",
            )
        )
    for asset in run.volatility:
        if asset in run.sources:
            out.print(f"prices {run.sources[asset]}", markup=False)
    out.print(
        table(
            "volatility models (chosen by BIC)",
            [
                "asset",
                "model",
                "persistence",
                "half-life d",
                "long-run vol",
                "next-day vol",
                "LB(z) p",
                "LB(z²) p",
                "on bounds",
                "fallback",
            ],
            rows,
        )
    )
    gaps = [
        (asset, g["date"], g["missing_days"], _fmt(g["return"], 4))
        for asset, calibration in run.volatility.items()
        for g in calibration.chosen.window.gaps
    ]
    if gaps:
        policy = next(iter(run.volatility.values())).chosen.window.gap_policy
        out.print(
            table(
                f"gaps in the fit windows (each return across a gap enters as r/sqrt(days): {policy})",
                ["asset", "close after the gap", "missing days", "log return across it"],
                gaps,
            )
        )
    rejected = [
        (asset, o.spec.name, o.rejected or o.note)
        for asset, calibration in run.volatility.items()
        for o in calibration.candidates
        if o.rejected or o.note
    ]
    if rejected:
        out.print(table("nested-model check", ["asset", "candidate", "outcome"], rejected))
    if run.correlation is not None:
        dcc = run.correlation.estimates[("dcc", "")]
        out.print(
            f"DCC(1,1): a = {run.correlation.dcc_a:.4f}, b = {run.correlation.dcc_b:.4f} "
            f"(a + b = {run.correlation.dcc_a + run.correlation.dcc_b:.4f}); "
            f"every matrix PSD: {run.correlation.path_psd}",
            markup=False,
        )
        if run.correlation.dcc_integrated:
            out.print(f"warning: {run.correlation.dcc.note}", markup=False)
        frame = dcc.as_frame()
        title = "DCC correlation forecast"
        if run.correlation.dcc_fallback == "ewma":
            title += " (integrated: not used; the EWMA correlation is)"
        elif run.correlation.dcc_fallback == "cap":
            title += " (re-estimated with the persistence cap)"
        out.print(
            table(
                title,
                ["", *frame.columns],
                [(i, *(_fmt(v, 3) for v in row)) for i, row in frame.iterrows()],
            )
        )
    if run.iv:
        out.print(
            table(
                "implied-vol dynamics",
                ["asset", "IV last", "vol of vol", "spot-vol corr", "IV half-life d"],
                [
                    (
                        a,
                        _fmt(d["iv_last"], 3),
                        _fmt(d["vol_of_vol_current_annual"], 3),
                        _fmt(d["spot_vol_corr"], 3),
                        _fmt(d["mean_reversion"]["half_life_days"], 1),
                    )
                    for a, d in run.iv.items()
                ],
            )
        )
    out.print(
        table(
            "recommended parameters",
            ["parameter", "value", "how"],
            [
                (i.parameter, _fmt(i.value), i.derivation.steps[-1])
                for i in run.recommendations.items
            ],
        )
    )
    for note in run.recommendations.notes:
        out.print(f"note: {note}", markup=False)
    for violation in run.violations:
        out.print(f"outside bounds: {violation.describe()}", markup=False)
