"""Format-neutral report contexts: proposal, calibration and backtest results
turned into plain data — dicts, lists, numbers, strings — plus charts. The HTML and Markdown
twins render the same context, and ``payload.json`` is the context itself (charts by file
name), so every number a reader sees is one number in three places.

Inputs are plain dataclasses (:class:`ProposalData`, :class:`CalibrationData`,
:class:`BacktestData`); :mod:`pipelines.report` fills them from the warehouse. Nothing here
reads a database or a clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from backtesting.records import PairCoverage, SetTotals, coverage_pairs, set_totals
from reports import charts
from reports.charts import Chart

# "not testable": a loss series without variation — never red, never "worse"
PROCEDURES = {
    "iid": "each day's breach tested as i.i.d. (MPOR of one day)",
    "interleaved-bonferroni": (
        "the MPOR windows of consecutive days overlap, so each test and the traffic light run on "
        "the MPOR's interleaved non-overlapping sub-series at level alpha/MPOR and reject when "
        "any does (Bonferroni): a correct model keeps the nominal rejection rate"
    ),
}
COHORTS = (
    (
        "option books",
        lambda name: any(
            k in name
            for k in (
                "straddle",
                "strangle",
                "butterfly",
                "condor",
                "calendar",
                "reversal",
                "covered",
                "delta-hedged",
            )
        ),
    ),
    (
        "delta-one books",
        lambda name: any(k in name for k in ("basis", "long-short", "-long", "-short")),
    ),
    ("collateral-only accounts", lambda name: name.endswith("-collateral")),
)


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class BacktestData:
    """What a report needs of a backtest run (``pipelines.backtest.BacktestRun`` has it all)."""

    run_id: str
    sets: dict[str, str]
    start: Any
    end: Any
    mpor_days: int
    confidence: float
    daily: pd.DataFrame
    summaries: list[dict]
    data_sha: str
    spec: dict
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_run(cls, run: Any) -> BacktestData:
        return cls(
            run.run_id,
            dict(run.sets),
            run.start,
            run.end,
            run.mpor_days,
            run.confidence,
            run.daily,
            run.summary_records(),
            run.data_sha,
            run.spec.as_dict(),
            list(run.notes),
        )


@dataclass(frozen=True)
class CalibrationData:
    calibration_id: str
    as_of: str
    policy: dict
    fits: list[dict]
    recommendations: list[dict]  # parameter, value, unit, derivation
    correlation: dict | None = None  # {"method", "assets", "matrix"}
    series: Mapping[str, pd.DataFrame] = field(
        default_factory=dict
    )  # asset -> close, cond_vol_annual
    iv: list[dict] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    data_fingerprints: dict[str, str] = field(default_factory=dict)
    gaps: list[dict] = field(default_factory=list)  # asset, date, missing_days, return, action
    dcc: dict | None = None  # a, b, persistence, integrated, fallback, note
    checks: list[dict] = field(default_factory=list)  # nested-model check outcomes


@dataclass(frozen=True)
class ProposalData:
    id: str
    fingerprint: str
    status: str
    kind: str
    title: str
    author: str
    motivation: str
    created_at: str
    base_fingerprint: str
    proposed_fingerprint: str
    policy_fingerprint: str
    changes: list[dict]  # path, old, new
    votes: list[dict]
    quorum: int
    committee: list[str]
    bounds: dict[str, dict]  # path -> {pattern, min, max, max_change, change}
    rollback_rule: dict
    drift_tolerance: dict[str, float]
    cooldown_days: float
    evidence: dict = field(default_factory=dict)
    effective_from: str | None = None


@dataclass(frozen=True)
class ReportContext:
    kind: str  # proposal | calibration | backtest
    id: str
    title: str
    data: dict
    charts: tuple[Chart, ...] = ()

    def payload(self) -> dict:
        """The context as JSON: every figure of the report, charts by their PNG file name."""
        return {
            "kind": self.kind,
            "id": self.id,
            "title": self.title,
            **self.data,
            "charts": [
                {"id": c.id, "title": c.title, "file": c.filename, "alt": c.alt}
                for c in self.charts
            ],
        }


# --------------------------------------------------------------------------- helpers


def _finite(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def cohort_of(portfolio: str) -> str:
    for name, test in COHORTS:
        if test(portfolio):
            return name
    return "accounts from files"


def coverage_rows(backtest: BacktestData) -> list[dict]:
    """One row per (portfolio, model, currency) with every set's coverage figures side by side,
    as the payload holds them (:class:`backtesting.records.PairCoverage`)."""
    return [pair.as_dict() for pair in coverage_pairs(backtest.summaries)]


def coverage_procedure(backtest: BacktestData) -> dict:
    """How the coverage tests were run: the MPOR and the procedure that keeps their size."""
    procedures = {s["coverage"].get("procedure", "iid") for s in backtest.summaries}
    procedure = "interleaved-bonferroni" if "interleaved-bonferroni" in procedures else "iid"
    return {
        "mpor_days": backtest.mpor_days,
        "procedure": procedure,
        "text": PROCEDURES[procedure],
        "zone_rule": (
            "the zone is the stricter of the close-to-close losses and the losses at the worst "
            "OHLC point (intraday lows and highs) within the MPOR"
        ),
    }


def primary_model(backtest: BacktestData) -> str:
    """The model an account is margined under: the run's first (capital figures use it; haircut
    rows are the collateral accounts' model)."""
    models = [m for m in backtest.spec.get("models", ()) if m != "standard"]
    if models:
        return models[0]
    found = sorted({s["model"] for s in backtest.summaries} - {"standard", "haircut"})
    return found[0] if found else "haircut"


def _held_models(backtest: BacktestData) -> tuple[str, str]:
    return (primary_model(backtest), "haircut")


def _totals(backtest: BacktestData, label: str) -> dict:
    """One set's totals as the payload holds them (:class:`backtesting.records.SetTotals`)."""
    return set_totals(backtest.summaries, label, _held_models(backtest)).as_dict()


def _usd_daily(backtest: BacktestData) -> pd.DataFrame:
    d = backtest.daily[backtest.daily["model"] != "standard"].copy()
    d["margin_usd"] = d["margin"] * d["fx_usd"]
    d["loss_usd"] = d["loss"] * d["fx_usd"]
    return d


def _reproducibility(items: Mapping[str, Any]) -> list[dict]:
    return [{"name": k, "value": str(v)} for k, v in items.items()]


# --------------------------------------------------------------------------- proposal


class Verdict(Protocol):
    """What a judge returns: the verdict, its reasons and the pairs made worse."""

    verdict: str
    reasons: Sequence[str]
    worse: Sequence[PairCoverage]


#: The committee's rule, given by the caller (governance owns it; the report only states it).
Judge = Callable[[Sequence[PairCoverage], SetTotals, SetTotals, "float | None"], Verdict]


def proposal_context(
    proposal: ProposalData,
    backtest: BacktestData,
    *,
    calibration: CalibrationData | None,
    sensitivity: Sequence[tuple[str, dict[str, float], BacktestData]] = (),
    alternatives: Sequence[tuple[str, str, BacktestData, str]] = (),
    frontier: Mapping[str, Any] | None = None,
    elsewhere: Mapping[str, Any] | None = None,
    bad_debt: Mapping[str, Any] | None = None,
    reproducibility: Mapping[str, Any],
    generated_at: str,
    command: str,
    judge: Judge,
) -> ReportContext:
    """The proposal report, sections in order. ``backtest`` replays the current and
    proposed sets (labels ``current`` and ``proposed``); ``sensitivity`` are (name, values,
    run) one step either side; ``alternatives`` (name, description, run, label-in-run);
    ``frontier`` a sweep's payload (``SweepRun.payload`` plus the proposed value), or None
    when the proposal's changes cannot be swept (the section then says why); ``elsewhere``
    the books margined under the current and proposed sets and other venues' published sets
    (``pipelines.report.proposal_elsewhere``), or None; ``bad_debt`` the stress windows'
    liquidation cascades under both sets (``pipelines.report.proposal_bad_debt``), or None.
    ``judge`` is the committee's rule (:func:`governance.gate.judge`): from the coverage rows,
    each set's totals and the margin freed, the verdict, its reasons and the pairs made worse.
    The report states it; it does not make it."""
    pairs = coverage_pairs(backtest.summaries)
    totals = {
        label: set_totals(backtest.summaries, label, _held_models(backtest))
        for label in ("current", "proposed")
    }
    daily = _usd_daily(backtest)
    impact = _impact(daily, primary_model(backtest))
    freed = _finite(sum(row["freed_usd"] or 0.0 for row in impact))
    judgement = judge(pairs, totals["current"], totals["proposed"], freed)
    coverage = [pair.as_dict() for pair in pairs]
    current, proposed = totals["current"].as_dict(), totals["proposed"].as_dict()
    verdict, reasons = judgement.verdict, list(judgement.reasons)
    changes = [_change_row(c, proposal.bounds.get(c["path"])) for c in proposal.changes]
    affected = _most_affected(daily)
    chart_list = _proposal_charts(backtest, daily, calibration, affected, proposal)
    if bad_debt is not None and bad_debt.get("chart"):
        shown = bad_debt["chart"]
        chart_list.append(
            charts.cascade(
                "cascade",
                f"{shown['asset']} cascade, {shown['window']}",
                shown["path"],
                {"current": shown["price"][0], "proposed": shown["price"][1]},
                {"current": shown["liquidated"][0], "proposed": shown["liquidated"][1]},
            )
        )
    if frontier is not None and frontier.get("points"):
        chart_list.append(
            charts.sweep_frontier(
                "frontier",
                frontier["parameter"],
                frontier["points"],
                frontier["current_value"],
                frontier.get("proposed_value"),
            )
        )
    data = {
        "generated_at": generated_at,
        "header": {
            "id": proposal.id,
            "title": proposal.title,
            "author": proposal.author,
            "status": proposal.status,
            "kind": proposal.kind,
            "created_at": proposal.created_at,
            "fingerprint": proposal.fingerprint,
            "current_set": proposal.base_fingerprint,
            "proposed_set": proposal.proposed_fingerprint,
            "policy": proposal.policy_fingerprint,
            "quorum": proposal.quorum,
            "committee": proposal.committee,
            "votes": proposal.votes,
            "approve": f"mwb approve {proposal.id} --key YOUR_KEY.pem",
            "reject": f'mwb reject {proposal.id} --key YOUR_KEY.pem --reason "..."',
        },
        "tldr": {
            "verdict": verdict,
            "reasons": reasons,
            "current": current,
            "proposed": proposed,
            "freed_usd": freed,
            "window": f"{backtest.start} .. {backtest.end}",
            "mpor_days": backtest.mpor_days,
            "confidence": backtest.confidence,
            "model": primary_model(backtest),
        },
        "changes": changes,
        "motivation": proposal.motivation,
        "evidence_windows": proposal.evidence.get("backtest_windows", []),
        "data_and_models": _data_and_models(
            calibration, backtest, [c["path"] for c in proposal.changes]
        ),
        "coverage": coverage,
        "coverage_procedure": coverage_procedure(backtest),
        "impact": impact,
        "stress": _stress_rows(backtest),
        "procyclicality": _procyclicality_rows(backtest),
        "sensitivity": [
            _alternative_row(name, describe_values(values), run, "set")
            for name, values, run in sensitivity
        ],
        "frontier": _frontier_section(frontier),
        "elsewhere": _elsewhere_section(elsewhere),
        "bad_debt": _bad_debt_section(bad_debt),
        "alternatives": [
            _alternative_row(name, description, run, label)
            for name, description, run, label in alternatives
        ],
        "implementation": {
            "effective_from": proposal.effective_from or "on enactment (mwb enact)",
            "enact": f"mwb enact {proposal.id}",
            "cooldown_days": proposal.cooldown_days,
            "rollback_rule": proposal.rollback_rule,
            "drift": [
                {"path": c["path"], "tolerance": _finite(proposal.drift_tolerance.get(c["path"]))}
                for c in proposal.changes
            ],
            "rollback_to": proposal.base_fingerprint,
        },
        "appendix": {
            "diff": [f"{c['path']}: {c['old']} -> {c['new']}" for c in proposal.changes],
            "reproducibility": _reproducibility(
                {
                    **reproducibility,
                    "backtest run": backtest.run_id,
                    "backtest data sha256": backtest.data_sha,
                    "backtest window": f"{backtest.start} .. {backtest.end}",
                    "command": command,
                }
            ),
        },
    }
    return ReportContext("proposal", proposal.id, proposal.title, data, tuple(chart_list))


def describe_values(values: Mapping[str, float]) -> str:
    return ", ".join(f"{k} = {v:g}" for k, v in values.items())


def _change_row(change: dict, bound: dict | None) -> dict:
    old, new = change["old"], change["new"]
    numeric = (
        isinstance(old, int | float) and isinstance(new, int | float) and not isinstance(old, bool)
    )
    delta = (new - old) if numeric else None
    relative = (delta / old) if numeric and old else None
    within = True
    if bound and numeric:
        if bound.get("min") is not None and new < bound["min"]:
            within = False
        if bound.get("max") is not None and new > bound["max"]:
            within = False
    return {
        "path": change["path"],
        "current": old,
        "proposed": new,
        "delta": _finite(delta) if numeric else None,
        "relative": _finite(relative),
        "bound": bound or {},
        "within_bounds": within,
    }


def _impact(daily: pd.DataFrame, model: str) -> list[dict]:
    """Mean margin per cohort under the primary ``model`` (haircuts for collateral accounts)."""
    held = daily[daily["model"].isin((model, "haircut"))]
    means = (
        held.groupby(["set_label", "portfolio", "currency"])["margin_usd"]
        .mean()
        .groupby(level=[0, 1])
        .sum()
    )
    means = means.unstack(0)
    if "proposed" not in means or "current" not in means:
        return []
    rows = []
    for cohort in sorted({cohort_of(p) for p in means.index}):
        members = [p for p in means.index if cohort_of(p) == cohort]
        cur, prop = (
            float(means.loc[members, "current"].sum()),
            float(means.loc[members, "proposed"].sum()),
        )
        rows.append(
            {
                "cohort": cohort,
                "accounts": len(members),
                "current_usd": _finite(cur),
                "proposed_usd": _finite(prop),
                "change": _finite(prop / cur - 1) if cur else None,
                "freed_usd": _finite(cur - prop),
            }
        )
    return rows


def _most_affected(daily: pd.DataFrame) -> tuple[str, str] | None:
    means = daily.groupby(["set_label", "portfolio", "model"])["margin_usd"].mean().unstack(0)
    if "proposed" not in means or "current" not in means:
        return None
    change = (means["proposed"] - means["current"]).abs()
    if change.empty:
        return None
    return tuple(change.idxmax())


def _stress_rows(backtest: BacktestData) -> list[dict]:
    rows = []
    for s in backtest.summaries:
        if s["model"] == "standard":
            continue
        for w in s["stress"]:
            rows.append(
                {
                    "window": w["window"],
                    "portfolio": s["portfolio"],
                    "model": s["model"],
                    "set": s["set"],
                    "days": w["days"],
                    "breaches": w["breaches"],
                    "worst_shortfall_usd": w["worst_shortfall_usd"],
                    "max_margin_usd": w["max_margin_usd"],
                    "max_5d_increase": w["max_5d_increase"],
                }
            )
    return sorted(rows, key=lambda r: (r["window"], r["portfolio"], r["model"], r["set"]))


def _procyclicality_rows(backtest: BacktestData) -> list[dict]:
    rows = []
    for s in backtest.summaries:
        p = s["procyclicality"]
        if s["model"] == "standard" or not p:
            continue
        increases = p["max_increase"]
        rows.append(
            {
                "portfolio": s["portfolio"],
                "model": s["model"],
                "set": s["set"],
                "peak_trough": _finite(p["peak_to_trough"]["ratio"]),
                "trough_first": _finite(p["peak_to_trough_trough_first"]["ratio"]),
                "increase_1d": _finite(increases["1"]["value"]),
                "increase_5d": _finite(increases["5"]["value"]),
                "increase_30d": _finite(increases["30"]["value"]),
            }
        )
    return sorted(rows, key=lambda r: (r["portfolio"], r["model"], r["set"]))


def _alternative_row(name: str, description: str, run: BacktestData, label: str) -> dict:
    totals = _totals(run, label)
    return {
        "name": name,
        "description": description,
        "breaches": totals["breaches"],
        "expected": totals["expected"],
        "worst_zone": totals["worst_zone"],
        "red": totals["red"],
        "mean_margin_usd": totals["mean_margin_usd"],
        "run": run.run_id,
    }


def _calibration_section(calibration: CalibrationData, focus: Sequence[str] | None = None) -> dict:
    """Fits and recommendations; with ``focus`` (a proposal's changed paths) the derivations of
    those come first and the rest are listed by value only."""
    rows = [
        {
            "parameter": r["parameter"],
            "value": _finite(r["value"]),
            "unit": r["unit"],
            "method": r["derivation"].get("method", ""),
            "steps": list(r["derivation"].get("steps", ())),
        }
        for r in calibration.recommendations
    ]
    if focus is None:
        derived, others = rows, []
    else:
        derived = [r for r in rows if r["parameter"] in focus]
        others = [
            {k: r[k] for k in ("parameter", "value", "unit")}
            for r in rows
            if r["parameter"] not in focus
        ]
    return {
        "id": calibration.calibration_id,
        "as_of": calibration.as_of,
        "policy": calibration.policy,
        "fits": calibration.fits,
        "recommendations": derived,
        "other_recommendations": others,
        "violations": calibration.violations,
        "gaps": data_gaps(None, calibration),
        "gap_rule": GAP_RULE,
        "dcc": calibration.dcc,
        "checks": calibration.checks,
    }


def data_gaps(backtest: BacktestData | None, calibration: CalibrationData | None) -> list[dict]:
    """Every gap the backtest's history and the calibration's fit windows saw: one row per
    return across missing days (the close after the gap), with where it was seen."""
    rows = {}
    if backtest is not None:
        for asset, found in (backtest.spec.get("gaps") or {}).items():
            for g in found:
                rows[(asset, g["date"])] = {**g, "asset": asset, "seen_in": "backtest history"}
    if calibration is not None:
        for g in calibration.gaps:
            key = (g["asset"], g["date"])
            seen = rows[key]["seen_in"] + ", fit window" if key in rows else "fit window"
            rows[key] = {**g, "seen_in": seen}
    return [
        {
            "asset": r["asset"],
            "date": r["date"],
            "missing_days": r["missing_days"],
            "return": _finite(r.get("return")),
            "seen_in": r["seen_in"],
        }
        for _, r in sorted(rows.items())
    ]


GAP_RULE = (
    "a return across k missing days is a k-day return: it enters the fits, forecasts and "
    "scenarios as r/sqrt(k), and the day after the gap is margined with the forecast for its "
    "horizon"
)


def _data_and_models(
    calibration: CalibrationData | None, backtest: BacktestData, focus: Sequence[str]
) -> dict:
    return {
        "calibration": _calibration_section(calibration, focus) if calibration else None,
        "notes": backtest.notes,
        "gaps": data_gaps(backtest, calibration),
        "gap_rule": GAP_RULE,
        "calibrated": backtest.spec.get("calibrated") or {},
    }


def _bad_debt_section(bad_debt: Mapping[str, Any] | None) -> dict:
    """The cascades' rows (window, asset, bad debt and liquidations under each set), the
    bad-debt VaR and ES over simulated paths per asset, and the policy's gate rule (whether it
    requires bad debt not to get worse, and where it does); or the reason there are none."""
    bad_debt = bad_debt or {}
    risk = [
        {
            "asset": r["asset"],
            "close": r["close"],
            "drawn": r.get("drawn") or "an unrecorded source",
            "paths": r["paths"],
            "days": r["days"],
            "accounts": r["accounts"],
            **{k: [_finite(v) for v in r[k]] for k in ("var_95", "es_95", "var_99", "es_99")},
            "paths_with_bad_debt": list(r["paths_with_bad_debt"]),
        }
        for r in bad_debt.get("risk", ())
    ]
    gate = {"required": bool(bad_debt.get("required")), "worse": list(bad_debt.get("worse", ()))}
    if not bad_debt.get("rows"):
        reason = bad_debt.get("reason", "not computed for this report")
        return {"available": False, "reason": reason, "risk": risk, "gate": gate}
    return {
        "available": True,
        "accounts": bad_debt["accounts"],
        "seed": bad_debt["seed"],
        "rows": [
            {
                "window": r["window"],
                "asset": r["asset"],
                "bad_debt": [_finite(v) for v in r["bad_debt_usd"]],
                "liquidations": list(r["liquidations"]),
                "impact": [_finite(v) for v in r["largest_impact"]],
            }
            for r in bad_debt["rows"]
        ],
        "total": [_finite(v) for v in bad_debt["total_usd"]],
        "risk": risk,
        "gate": gate,
    }


def _elsewhere_section(elsewhere: Mapping[str, Any] | None) -> dict:
    """Margin elsewhere: each book's USD initial margin per column (current, proposed, each
    venue's published set, delta-only), or the reason there is none."""
    if elsewhere is None or not elsewhere.get("rows"):
        reason = (elsewhere or {}).get("reason", "not computed for this report")
        return {"available": False, "reason": reason}
    return {
        "available": True,
        "day": elsewhere["day"],
        "columns": [c["label"] for c in elsewhere["columns"]],
        "rows": [
            {"book": r["book"], "usd": [_finite(v) for v in r["initial_margin_usd"]]}
            for r in elsewhere["rows"]
        ],
        "total": [_finite(v) for v in elsewhere["total_usd"]],
    }


def _frontier_section(frontier: Mapping[str, Any] | None) -> dict:
    """The frontier's rows (value, breaches, zone, capital) and what it swept, or the reason
    there is none."""
    if frontier is None or not frontier.get("points"):
        reason = (frontier or {}).get(
            "reason", "the proposal changes nothing a sweep can take through a range"
        )
        return {"available": False, "reason": reason}
    marks = {frontier.get("current_value"): "current", frontier.get("proposed_value"): "proposed"}
    return {
        "available": True,
        "parameter": frontier["parameter"],
        "model": frontier["model"],
        "knee": _finite(frontier.get("knee")),
        "days": frontier["days"],
        "rows": [
            {
                "value": p["value"],
                "mark": marks.get(p["value"], ""),
                "breaches": p["breaches"],
                "zone": p["zone"],
                "min_pvalue": _finite(p["min_pvalue"]),
                "mean_capital_usd": _finite(p["mean_capital_usd"]),
                "capital_vs_active": _finite(p["capital_vs_active"]),
            }
            for p in frontier["points"]
        ],
    }


def _proposal_charts(
    backtest: BacktestData,
    daily: pd.DataFrame,
    calibration: CalibrationData | None,
    affected: tuple[str, str] | None,
    proposal: ProposalData,
) -> list[Chart]:
    out = []
    asset = _changed_asset(proposal)
    if calibration is not None and asset not in calibration.series:
        asset = next(iter(sorted(calibration.series)), None)
    if calibration is not None and asset is not None and asset in calibration.series:
        breach_days = daily[
            (daily["set_label"] == "proposed")
            & daily["breach"]
            & daily["portfolio"].str.startswith(asset.lower())
        ]["date"]
        frame = calibration.series[asset]
        out.append(
            charts.price_and_volatility(
                "price-volatility", asset, frame["close"], frame["cond_vol_annual"], breach_days
            )
        )
    if affected is not None:
        portfolio, model = affected
        series = {}
        for label in ("current", "proposed"):
            f = daily[
                (daily["set_label"] == label)
                & (daily["portfolio"] == portfolio)
                & (daily["model"] == model)
            ]
            series[label] = f.set_index("date")[["margin_usd", "loss_usd", "breach"]].rename(
                columns={"margin_usd": "margin", "loss_usd": "loss"}
            )
        out.append(
            charts.margin_vs_loss(
                "margin-vs-loss", f"{portfolio} ({model}): margin against realised loss", series
            )
        )
        out.append(
            charts.margin_path(
                "procyclicality",
                f"{portfolio} ({model}): margin path",
                {k: v["margin"] for k, v in series.items()},
                "USD",
            )
        )
    rows = [
        (f"{r['portfolio']} · {r['model']}", {k: v["zone"] for k, v in r["sets"].items()})
        for r in coverage_rows(backtest)
    ]
    out.append(charts.traffic_light_strip("traffic-lights", rows, list(backtest.sets)))
    wide = daily.pivot_table(
        index=["date", "portfolio", "model", "currency"], columns="set_label", values="margin_usd"
    )
    if {"current", "proposed"} <= set(wide.columns):
        with np.errstate(divide="ignore", invalid="ignore"):
            change = (wide["proposed"] / wide["current"] - 1.0).to_numpy()
        out.append(
            charts.margin_change_distribution("margin-change", change, "proposed vs current")
        )
    if calibration is not None and calibration.correlation:
        out.append(_correlation_chart(calibration.correlation))
    return out


def _correlation_chart(correlation: Mapping[str, Any]) -> charts.Chart:
    return charts.correlation_heatmap(
        "correlation",
        correlation["assets"],
        np.asarray(correlation["matrix"]),
        f"{correlation['method'].upper()} correlation",
    )


def _changed_asset(proposal: ProposalData) -> str | None:
    for change in proposal.changes:
        parts = change["path"].split(".")
        if parts[0] in ("underlyings", "collateral") and len(parts) > 1:
            return parts[1]
    return None


# --------------------------------------------------------------------------- calibration


def calibration_context(
    calibration: CalibrationData,
    *,
    reproducibility: Mapping[str, Any],
    generated_at: str,
    command: str,
) -> ReportContext:
    chart_list = [
        charts.price_and_volatility(
            f"price-volatility-{a.lower()}", a, f["close"], f["cond_vol_annual"]
        )
        for a, f in sorted(calibration.series.items())
    ]
    if calibration.correlation:
        chart_list.append(_correlation_chart(calibration.correlation))
    data = {
        "generated_at": generated_at,
        "calibration": _calibration_section(calibration),
        "iv": calibration.iv,
        "appendix": {"reproducibility": _reproducibility({**reproducibility, "command": command})},
    }
    return ReportContext(
        "calibration",
        calibration.calibration_id,
        f"Calibration {calibration.calibration_id}",
        data,
        tuple(chart_list),
    )


# --------------------------------------------------------------------------- backtest


def backtest_context(
    backtest: BacktestData, *, reproducibility: Mapping[str, Any], generated_at: str, command: str
) -> ReportContext:
    coverage = coverage_rows(backtest)
    daily = _usd_daily(backtest)
    labels = list(backtest.sets)
    chart_list = [
        charts.traffic_light_strip(
            "traffic-lights",
            [
                (f"{r['portfolio']} · {r['model']}", {k: v["zone"] for k, v in r["sets"].items()})
                for r in coverage
            ],
            labels,
        )
    ]
    red = [r for r in coverage if any(v["zone"] == "red" for v in r["sets"].values())]
    focus = red[0] if red else (coverage[0] if coverage else None)
    if focus is not None:
        series = {}
        for label in labels:
            f = daily[
                (daily["set_label"] == label)
                & (daily["portfolio"] == focus["portfolio"])
                & (daily["model"] == focus["model"])
            ]
            series[label] = f.set_index("date")[["margin_usd", "loss_usd", "breach"]].rename(
                columns={"margin_usd": "margin", "loss_usd": "loss"}
            )
        title = f"{focus['portfolio']} ({focus['model']}): margin against realised loss"
        chart_list.append(charts.margin_vs_loss("margin-vs-loss", title, series))
        chart_list.append(
            charts.margin_path(
                "procyclicality",
                f"{focus['portfolio']} ({focus['model']}): margin path",
                {k: v["margin"] for k, v in series.items()},
                "USD",
            )
        )
    data = {
        "generated_at": generated_at,
        "run": {
            "id": backtest.run_id,
            "sets": backtest.sets,
            "from": str(backtest.start),
            "to": str(backtest.end),
            "mpor_days": backtest.mpor_days,
            "confidence": backtest.confidence,
            "notes": backtest.notes,
            "totals": {label: _totals(backtest, label) for label in labels},
        },
        "coverage": coverage,
        "coverage_procedure": coverage_procedure(backtest),
        "gaps": data_gaps(backtest, None),
        "gap_rule": GAP_RULE,
        "stress": _stress_rows(backtest),
        "procyclicality": _procyclicality_rows(backtest),
        "appendix": {
            "reproducibility": _reproducibility(
                {
                    **reproducibility,
                    "backtest run": backtest.run_id,
                    "data sha256": backtest.data_sha,
                    "spec": backtest.spec,
                    "command": command,
                }
            )
        },
    }
    return ReportContext(
        "backtest", backtest.run_id, f"Backtest {backtest.run_id}", data, tuple(chart_list)
    )
