"""Summaries of a backtest: per (set, portfolio, model, currency) the coverage tests of the
close-to-close and OHLC-path breaches, the ES tests, procyclicality, capital efficiency and the
stress windows; and the side-by-side comparison of two sets.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from backtesting.coverage import CoverageReport, MonteCarloNulls, acerbi_szekely, coverage_report
from backtesting.memo import SUMMARIES
from backtesting.procyclicality import max_increase, procyclicality_summary
from backtesting.replay import HAIRCUT_MODEL
from backtesting.spec import BacktestSpec
from calibration.stress import STRESS_WINDOWS
from vocabulary import Zone

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
    tested: Collection[str] | None = None,
) -> pd.DataFrame:
    """One row per (set, portfolio, model, currency): coverage tests of the close-to-close and
    the OHLC-path breaches on the Monte Carlo null (seeded; overlapping MPOR windows handled by
    the interleaved procedure of :func:`backtesting.coverage.coverage_report`), the
    Acerbi–Szekely tests for ES models, breaches, procyclicality, efficiency, stress windows.

    Summaries are shared with the process's memo (a what-if re-tests only the series it
    changed): read them, or :func:`reports.serialize.plain` them, never change them in place.

    ``tested`` names the models whose series are summarised (default: every model); the
    others' rows only serve as the standard-margin baseline.

    The row's ``zone`` is the stricter of the two coverage zones (what the enactment gate
    reads); a loss series without variation (e.g. a perfectly hedged book) is ``not testable``.
    """
    nulls = MonteCarloNulls(1 - confidence, np.random.default_rng(spec.seed), spec.simulations)
    standard = frame[frame["model"] == "standard"].set_index(
        ["set_label", "date", "portfolio", "currency"]
    )["margin"]
    baselines = {
        key: _content(g[["date", "margin"]])
        for key, g in frame[frame["model"] == "standard"].groupby(
            ["set_label", "portfolio", "currency"], sort=False
        )
    }
    rows = []
    es_level = frame.attrs.get("es_level")
    for (label, portfolio, model, currency), g in frame.groupby(
        ["set_label", "portfolio", "model", "currency"], sort=True
    ):
        if tested is not None and model not in tested:
            continue
        g = g.sort_values("date")
        n = len(g)
        mine = {
            path_name: info["clipped_days"]
            for path_name, info in (calibrated or {}).items()
            if path_name.split(".")[1] in (underlyings or {}).get(portfolio, ())
        }
        key = _fingerprint(
            g,
            baselines.get((label, portfolio, currency), b""),
            (label, portfolio, model, currency),
            (confidence, mpor, spec.seed, spec.simulations, es_level, ES_SCENARIOS, mine),
        )
        summary = SUMMARIES.get(key)
        if summary is None:
            summary = SUMMARIES.put(
                key, _series_summary(g, label, portfolio, model, currency, confidence, spec,
                                     mpor, nulls, standard, mine)
            )  # fmt: skip
        rows.append(
            (
                label,
                portfolio,
                model,
                currency,
                n,
                int(g["breach"].sum()),
                summary["zone"],
                summary,
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


SERIES_KEY = ("set_label", "portfolio", "model", "currency")  # constant within a series


def _content(g: pd.DataFrame) -> bytes:
    """The bytes of ``g``'s columns (its series-key columns aside: they are in its name)."""
    parts = [repr([(c, str(t)) for c, t in g.dtypes.items()] + [len(g)]).encode()]
    for column in g.columns:
        if column in SERIES_KEY:
            continue
        values = g[column].to_numpy()
        if values.dtype == object:
            values = pd.util.hash_pandas_object(g[column], index=False).to_numpy()
        parts.append(np.ascontiguousarray(values).tobytes())
    return b"".join(parts)


def _fingerprint(g: pd.DataFrame, baseline: bytes, names: tuple, settings: tuple) -> str:
    """SHA-256 of a series' rows, its standard-margin baseline and what the tests are set to."""
    digest = hashlib.sha256(repr((names, settings)).encode())
    digest.update(_content(g))
    digest.update(baseline)
    return digest.hexdigest()


def _series_summary(
    g: pd.DataFrame,
    label: str,
    portfolio: str,
    model: str,
    currency: str,
    confidence: float,
    spec: BacktestSpec,
    mpor: int,
    nulls: MonteCarloNulls,
    standard: pd.Series,
    mine: Mapping[str, Any],
) -> dict[str, Any]:
    """The summary of one (set, portfolio, model, currency) series."""
    report, path = (
        coverage_report(
            g[column].to_numpy(),
            confidence,
            mpor=mpor,
            null="monte-carlo",
            null_distribution=nulls,
        )
        for column in ("breach", "breach_path")
    )
    summary = _summary(label, portfolio, model, currency, g, report, standard)
    summary["coverage_path"] = path.as_dict()
    summary["breach_dates_path"] = [
        d.date().isoformat() for d in pd.DatetimeIndex(g.loc[g["breach_path"], "date"])
    ]
    losses = g["loss"].to_numpy(dtype=float)
    testable = bool(np.nanstd(losses) > 1e-12 * max(1.0, float(np.nanmax(np.abs(losses)))))
    zone = Zone.worst(report.traffic_light.zone, path.traffic_light.zone)
    summary["testable"] = testable
    summary["zone"] = zone if testable else Zone.NOT_TESTABLE
    summary["zone_basis"] = (
        "ohlc path" if path.traffic_light.zone != report.traffic_light.zone else "both"
    )
    if not testable:
        summary["note"] = (
            "the realised loss never varies (e.g. a fully hedged book without a basis or "
            "funding series): the coverage tests cannot tell a good margin from a bad one"
        )
    if model in ("es", "mc-es"):
        summary["es_tests"] = _es_tests(g, spec, mpor, (label, portfolio, model, currency))
    if mine:
        summary["calibrated_clipped_days"] = dict(mine)
    return summary


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


def _finite(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _summary(
    label: str,
    portfolio: str,
    model: str,
    currency: str,
    g: pd.DataFrame,
    report: CoverageReport,
    standard: pd.Series,
) -> dict[str, Any]:
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


def comparison(records: Sequence[Mapping], labels: Sequence[str]) -> pd.DataFrame:
    """Side by side per (portfolio, model, currency): breaches, zone, test p-values, peak/trough,
    largest 5-day increase, mean margin (USD) for each set, and the margin freed.
    """
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
    labels = list(labels)
    if len(labels) == 2 and not frame.empty:
        a, b = labels
        frame["margin_freed_usd"] = frame[f"{a}.mean_margin_usd"] - frame[f"{b}.mean_margin_usd"]
    return frame
