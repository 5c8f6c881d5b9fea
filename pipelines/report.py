"""Reports from the warehouse (what ``mwb report`` runs): gather a proposal, its backtests and
the latest calibration, build the context (:mod:`reports.context`), render and write it, and
record the files in ``rpt.reports``.

Reports are reproducible: the same warehouse state gives the same bytes. The "generated" line
names the state it was made from (the proposal's last change, the data's last day), not the
wall clock.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from backtesting.spec import BacktestSpec
from calibration.lineage import library_versions
from calibration.returns import annualised, daily
from governance.gate import bad_debt_worse, judge
from governance.parameters import ParameterSet, ParameterSetError
from governance.registry import Registry
from pipelines import __version__
from pipelines.backtest import ParamSource, run_backtest, years_before
from pipelines.errors import BadInputError
from pipelines.settings import MarketSettings, WorkbenchSettings
from pipelines.stores import backtest as backtest_store
from pipelines.stores import calibration as calibration_store
from pipelines.stores import market as stored
from pipelines.stores import reports as report_store
from reports.context import (
    BacktestData,
    CalibrationData,
    ProposalData,
    ReportContext,
    backtest_context,
    calibration_context,
    proposal_context,
)
from reports.render import RenderedReport, render, write
from reports.serialize import plain
from vocabulary import MarginModel

if TYPE_CHECKING:
    import duckdb

DEFAULT_PREFERENCE = MarketSettings().source_preference


@dataclass(frozen=True)
class WrittenReport:
    context: ReportContext
    rendered: RenderedReport
    paths: dict[str, Path]


def reports_dir(settings: WorkbenchSettings) -> Path:
    return settings.home / "reports"


def versions() -> dict[str, str]:
    from importlib import metadata

    out = dict(library_versions())
    for package in ("duckdb", "jinja2", "matplotlib", "cryptography", "pydantic"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return dict(sorted(out.items()))


# --------------------------------------------------------------------------- calibration


def latest_calibration(
    con: duckdb.DuckDBPyConnection, preference: tuple[str, ...] = DEFAULT_PREFERENCE
) -> CalibrationData | None:
    """The newest calibration with recommendations, as report input (None when there is none);
    closes are read as the calibration read them (spliced by ``preference``)."""
    row = calibration_store.latest_with_recommendations(con)
    if row is None:
        return None
    calibration_id, as_of, policy = row
    fits = calibration_store.chosen_fits(con, calibration_id)
    gaps = [
        {"asset": asset, **g}
        for asset, found in zip(fits["asset"], fits["gaps"], strict=True)
        for g in json.loads(found or "[]")
    ]
    checks = [
        {"asset": a, "model": m, "outcome": o, "rejected": k == "rejected"}
        for a, m, o, k in calibration_store.fit_notes(con, calibration_id)
    ]
    recommendations = [
        {"parameter": p, "value": float(v), "unit": u, "derivation": json.loads(d)}
        for p, v, u, d in calibration_store.recommendation_rows(con, calibration_id)
    ]
    dcc = None
    detail = calibration_store.dcc_detail(con, calibration_id)
    if detail is not None:
        dcc = {
            k: detail.get(k)
            for k in ("a", "b", "integrated", "fallback", "note", "converged", "unconstrained")
        }
    correlation = None
    corr = calibration_store.headline_correlation(con, calibration_id)
    if corr is not None:
        correlation = {
            "method": corr[0],
            "assets": json.loads(corr[1]),
            "matrix": json.loads(corr[2]),
        }
    series = {}
    for asset in fits["asset"]:
        frame = calibration_store.conditional_vol(con, calibration_id, asset)
        if frame.empty:
            continue
        index = pd.DatetimeIndex(frame["date"])
        closes, _ = stored.closes(
            con, asset, preference, start=index[0].date(), end=index[-1].date()
        )
        series[asset] = pd.DataFrame(
            {
                "close": closes.reindex(index).to_numpy(),
                "cond_vol_annual": annualised(frame["cond_vol"].to_numpy()),
            },
            index=index,
        )
    iv = []
    for asset, source, d in calibration_store.iv_dynamics_rows(con, calibration_id):
        iv.append(
            {
                "asset": asset,
                "source": source,
                "vol_of_vol": daily(d.get("vol_of_vol_current_annual") or 0.0) or None,
                "spot_vol_corr": d.get("spot_vol_corr"),
                "half_life_days": (d.get("mean_reversion") or {}).get("half_life_days"),
            }
        )
    return CalibrationData(
        calibration_id,
        as_of.isoformat(),
        json.loads(policy),
        [
            {
                **r,
                "persistence": _num(r["persistence"]),
                "next_vol_annual": _num(r["next_vol_annual"]),
                "n_obs": int(r["n_obs"]),
            }
            for r in fits.drop(
                columns=["price_source", "window_start", "window_end", "gaps"]
            ).to_dict("records")
        ],
        recommendations,
        correlation,
        series,
        iv,
        [],
        {r["asset"]: r["data_sha256"] for r in fits.to_dict("records")},
        gaps,
        dcc,
        checks,
    )


def _num(x) -> float | None:
    value = plain(x)  # a stored NaN is a missing number
    return None if value is None else float(value)


# --------------------------------------------------------------------------- backtests


def proposal_window(con: duckdb.DuckDBPyConnection, evidence: dict) -> BacktestSpec:
    """Three years up to the data's end, widened to cover the evidence windows asked for,
    under the evidence's models (default: PM, SPAN, VaR) and Monte Carlo paths."""
    start = years_before(con, 3)
    if start is None:
        raise BadInputError("the warehouse has no prices to backtest the proposal on")
    for window in evidence.get("backtest_windows", []):
        start = min(start, date.fromisoformat(str(window["start"])))
    chosen: dict = {}
    if evidence.get("models"):
        chosen["models"] = tuple(evidence["models"])
    if evidence.get("paths"):
        chosen["paths"] = int(evidence["paths"])
    return BacktestSpec(start=start, **chosen)


# --------------------------------------------------------------------------- proposal


@dataclass(frozen=True)
class ProposalEvidence:
    """The backtests a proposal report shows: current vs proposed, the sensitivity one step
    either side, the alternatives (keep the current set, the calibration's values), and the
    calibration the values came from."""

    spec: BacktestSpec
    backtest: BacktestData
    sensitivity: list[tuple[str, dict[str, float], BacktestData]]
    alternatives: list[tuple[str, str, BacktestData, str]]
    calibration: CalibrationData | None
    frontier: dict | None = None
    elsewhere: dict | None = None
    bad_debt: dict | None = None


def proposal_evidence(
    con: duckdb.DuckDBPyConnection, settings: WorkbenchSettings, proposal_id: str
) -> ProposalEvidence:
    """The explicit step before a proposal report: run (or reuse from the caches) every
    backtest the report will show. The report then only reads these results."""
    registry = Registry(con)
    state = registry.state(proposal_id)
    proposal = state.proposal
    base = registry.parameter_set(proposal.base_fingerprint)
    proposed = proposal.proposed
    spec = proposal_window(con, proposal.document.evidence.model_dump(mode="json"))
    main = run_backtest(
        con, settings, [ParamSource("current", base), ParamSource("proposed", proposed)], spec
    )
    backtest = BacktestData.from_run(main)
    sensitivity = [
        ("current (one step back)", _values(state.changes, "old"), _relabel(backtest, "current")),
        ("proposed", _values(state.changes, "new"), _relabel(backtest, "proposed")),
    ]
    further = _one_step_further(base, proposed, state.changes)
    if further is not None:
        run = run_backtest(con, settings, [ParamSource("set", further[0])], spec)
        sensitivity.append(("one step further", further[1], BacktestData.from_run(run)))
    calibration = latest_calibration(con, settings.market.source_preference)
    alternatives = [
        ("keep the current set", "no change", backtest, "current"),
        (
            "the proposal",
            ", ".join(f"{c.path} = {c.new}" for c in state.changes),
            backtest,
            "proposed",
        ),
    ]
    recommended = _recommended_alternative(base, state.changes, calibration)
    if recommended is not None:
        run = run_backtest(con, settings, [ParamSource("set", recommended[0])], spec)
        alternatives.append(
            ("the calibration's values", recommended[1], BacktestData.from_run(run), "set")
        )
    frontier = proposal_frontier(con, settings, base, state.changes, spec)
    elsewhere = proposal_elsewhere(con, settings, base, proposed, spec)
    bad_debt = proposal_bad_debt(con, settings, base, proposed, spec, end=main.end)
    return ProposalEvidence(
        spec, backtest, sensitivity, alternatives, calibration, frontier, elsewhere, bad_debt
    )


#: The cascade population of a proposal report: synthetic, seeded, the same for both sets.
CASCADE_ACCOUNTS = 10_000
CASCADE_SEED = 0
#: Bad-debt VaR and ES over simulated paths from the window's last close: paths, their days,
#: and the population (smaller than the windows': every path runs the whole population).
RISK_PATHS = 500
RISK_DAYS = 2
RISK_ACCOUNTS = 2_000


def proposal_bad_debt(
    con: duckdb.DuckDBPyConnection,
    settings: WorkbenchSettings,
    base: ParameterSet,
    proposed: ParameterSet,
    spec: BacktestSpec,
    *,
    end: date | None = None,
) -> dict:
    """Liquidation cascades in every stress window the warehouse covers, for each underlying
    of the books: one synthetic population (built at the current set's leverage limit) under
    the current and the proposed set; ``{"reason": …}`` when no window has data."""
    from backtesting.cascade import Mode
    from calibration.stress import STRESS_WINDOWS
    from margin_engine.portfolios import select
    from pipelines.cascade import cascade_inputs, population, rule_of, run_cascade

    books = tuple(p for p in select(spec.portfolios) if p.kind == "book")
    assets = sorted({u for p in books for u in p.underlying_list})
    rows = []
    for window in STRESS_WINDOWS:
        for asset in assets:
            try:
                inputs = cascade_inputs(
                    con, settings.market.source_preference, asset, window.start, window.end
                )
            except BadInputError:
                continue  # the warehouse does not cover this window (or its 30 days before)
            rule = rule_of(base, asset, Mode.FULL)
            people = population(
                "synthetic", CASCADE_ACCOUNTS, CASCADE_SEED, inputs.path[0], 1.0 / rule.initial
            )
            run = run_cascade(inputs, [("current", base), ("proposed", proposed)], people)
            current, new = run["sets"]
            rows.append(
                {
                    "window": window.name,
                    "asset": asset,
                    "bad_debt_usd": [current["bad_debt"], new["bad_debt"]],
                    "liquidations": [current["liquidations"], new["liquidations"]],
                    "largest_impact": [current["largest_impact"], new["largest_impact"]],
                    "steps": {
                        "path": [s["path"] for s in current["steps"]],
                        "price": [[s["price"] for s in x["steps"]] for x in (current, new)],
                        "liquidated": [
                            [s["liquidated"] for s in x["steps"]] for x in (current, new)
                        ],
                    },
                }
            )
    risk = _bad_debt_risk(con, settings, base, proposed, end or spec.end, assets)
    if not rows:
        reason = "the warehouse covers no stress window (with the 30 days before it)"
        return {"reason": reason, "risk": risk, "rows": [], "total_usd": [0.0, 0.0]}
    # the chart shows the cascade with the most bad debt under either set
    shown = max(rows, key=lambda r: (max(r["bad_debt_usd"]), max(r["liquidations"])))
    for row in rows:
        steps = row.pop("steps")
        if row is shown:
            chart = {"window": row["window"], "asset": row["asset"], **steps}
    return {
        "accounts": CASCADE_ACCOUNTS,
        "seed": CASCADE_SEED,
        "chart": chart,
        "rows": rows,
        "total_usd": [sum(r["bad_debt_usd"][k] for r in rows) for k in (0, 1)],
        "risk": risk,
    }


def _bad_debt_risk(
    con: duckdb.DuckDBPyConnection,
    settings: WorkbenchSettings,
    base: ParameterSet,
    proposed: ParameterSet,
    end: date | None,
    assets: list[str],
) -> list[dict]:
    """Per asset: bad-debt VaR and ES (95 %, 99 %) over :data:`RISK_PATHS` seeded paths of
    :data:`RISK_DAYS` days from the warehouse's latest close (the risk the sets would run from
    today's market; never earlier than the window's end), drawn from the fitted joint model of
    the newest calibration through that close where there is one, under both sets (one
    population, built at the current set's leverage limit)."""
    from backtesting.cascade import Mode
    from pipelines.cascade import paths_inputs, population, rule_of, run_paths
    from pipelines.stores import market as stored

    if end is None:
        return []
    latest = stored.last_price_day(con)
    day = max(end, latest or end) + timedelta(days=1)  # paths start from that day's open
    out = []
    for asset in assets:
        try:
            drawing = paths_inputs(con, settings.market.source_preference, asset, day)
        except BadInputError:
            continue
        rule = rule_of(base, asset, Mode.FULL)
        people = population(
            "synthetic", RISK_ACCOUNTS, CASCADE_SEED, drawing.price, 1.0 / rule.initial
        )
        run = run_paths(
            asset,
            day,
            drawing,
            [("current", base), ("proposed", proposed)],
            people,
            paths=RISK_PATHS,
            days=RISK_DAYS,
            seed=CASCADE_SEED,
        )
        current, new = run["sets"]
        out.append(
            {
                "asset": asset,
                "close": (day - timedelta(days=1)).isoformat(),
                "drawn": run["innovations"],
                "paths": RISK_PATHS,
                "days": RISK_DAYS,
                "accounts": RISK_ACCOUNTS,
                **{
                    key: [current[key], new[key]]
                    for key in ("var_95", "es_95", "var_99", "es_99", "paths_with_bad_debt")
                },
            }
        )
    return out


def proposal_elsewhere(
    con: duckdb.DuckDBPyConnection,
    settings: WorkbenchSettings,
    base: ParameterSet,
    proposed: ParameterSet,
    spec: BacktestSpec,
) -> dict:
    """Margin elsewhere: the test books as struck on the window's last day with data, margined
    under the current and the proposed set (the window's scenario models), each venue's
    published set and the delta-only baseline, in USD. ``{"reason": …}`` when no day has
    the books' data."""
    from backtesting.replay import build_day
    from margin_engine.portfolios import select
    from margin_engine.venues.elsewhere import Column, margin_elsewhere
    from pipelines.backtest import load_history
    from pipelines.margin import venue_columns

    books = tuple(p for p in select(spec.portfolios) if p.kind == "book")
    if not books:
        return {"reason": "the window has no books of positions"}
    assets = sorted({u for p in books for u in p.underlying_list})
    history, _, data_sha, _ = load_history(con, settings.market.source_preference, assets)
    end = history.days[-1] if spec.end is None else min(pd.Timestamp(spec.end), history.days[-1])
    day_book = None
    for back in range(0, 15):  # the last day whose closes and IVs strike every book
        day = end - pd.Timedelta(days=back)
        if day < history.days[0]:
            break
        day_book = build_day(history, books, day, 0, realised=False)
        if day_book is not None:
            break
    if day_book is None:
        return {"reason": f"no day up to {end:%Y-%m-%d} has the books' market data"}
    models = [m for m in spec.models if m in ("standard", "span", "deribit-pm")] or ["deribit-pm"]
    columns = venue_columns("current", base, models)
    proposed_engine = proposed.to_model_params()
    at = len(models)
    columns[at:at] = [Column(f"proposed ({m})", m, proposed_engine) for m in models]
    frame = margin_elsewhere(day_book.positions, columns)
    labels = [c.label for c in columns]
    return {
        "day": f"{day_book.day:%Y-%m-%d}",
        "data_sha256": data_sha,
        "columns": [{"label": c.label, "model": c.model} for c in columns],
        "rows": [
            {"book": str(book), "initial_margin_usd": [row[label] for label in labels]}
            for book, row in frame.iterrows()
        ],
        "total_usd": [frame[label].sum(min_count=1) for label in labels],
    }


#: Where a sweep for the frontier goes, in steps of half the change: one whole change back,
#: the current and proposed values, one whole change further (the sensitivity's case).
FRONTIER_STEPS = (-2, -1, 0, 1, 2, 3, 4)
_SWEPT_MODEL = {"pm": "deribit-pm", "span": "span", "standard": "standard"}
#: VaR/ES parameters a frontier sweeps under the filtered historical models (a Monte Carlo
#: frontier would replay every value on paths: minutes per report); the MPOR is not among them,
#: as the realised losses are measured over the set in force's
_SWEPT_VAR = {"var_confidence", "es_confidence", "lookback_days", "apc_buffer", "apc_stress_weight"}


def _swept_model(path: str, spec: BacktestSpec) -> str | None:
    """The model a frontier of ``path`` replays; None when no swept model reads it."""
    parts = path.split(".")
    if len(parts) == 2 and parts[0] == "var" and parts[1] in _SWEPT_VAR:
        chosen = [m for m in spec.models if m in ("var", "es")]
        return chosen[0] if chosen else ("es" if parts[1] == "es_confidence" else "var")
    if len(parts) >= 3 and parts[0] == "underlyings":
        return _SWEPT_MODEL.get(parts[2])
    return None


def proposal_frontier(
    con: duckdb.DuckDBPyConnection,
    settings: WorkbenchSettings,
    base: ParameterSet,
    changes,
    spec: BacktestSpec,
    mapper=map,
) -> dict:
    """The sweep behind the report's frontier: the changed parameter taken from one whole
    change below its current value to one whole change beyond the proposed one, each value
    backtested on the books with the model that reads it. Several numeric changes move
    together: the swept value is then the fraction of the change (0 current, 1 proposed).
    Returns the sweep's payload with ``proposed_value``, or ``{"reason": …}`` when the
    changes cannot be swept (not numeric, or read by a model that is not swept yet).
    """
    from pipelines.sweep import sweep_sets

    numeric = [
        c
        for c in changes
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in (c.old, c.new))
        and c.new != c.old
    ]
    if not numeric or len(numeric) != len(changes):
        return {"reason": "the proposal changes a value that is not a number"}
    models = {_swept_model(c.path, spec) for c in numeric}
    if len(models) != 1 or None in models:
        return {
            "reason": "the changed parameters are not all read by one of the swept models "
            "(deribit-pm, span, standard; var and es for the VaR/ES confidences, look-back and "
            "anti-procyclicality weights); collateral sweeps are not built yet"
        }
    (model,) = models
    single = len(numeric) == 1
    sets = []
    for k in FRONTIER_STEPS:
        t = k / 2
        values = {c.path: round(c.old + t * (c.new - c.old), 10) for c in numeric}
        try:
            sets.append((values[numeric[0].path] if single else t, base.with_changes(values)))
        except ParameterSetError:
            continue  # a step outside the schema's range (a negative range, say): no such point
    sets.sort(key=lambda item: item[0])
    label = numeric[0].path if single else "fraction of the change (0 current, 1 proposed)"
    current = float(numeric[0].old) if single else 0.0
    proposed = float(numeric[0].new) if single else 1.0
    sweep_spec = dataclasses.replace(spec, portfolios=("books",))
    run = sweep_sets(
        con, settings, base, label, current, sets, sweep_spec, model=model, mapper=mapper
    )
    return {**run.payload(), "proposed_value": proposed}


def proposal_report(
    con: duckdb.DuckDBPyConnection,
    settings: WorkbenchSettings,
    proposal_id: str,
    out_dir: Path | None = None,
    evidence: ProposalEvidence | None = None,
) -> WrittenReport:
    """Render a proposal's report from its ``evidence`` (gathered now when not given)."""
    registry = Registry(con)
    state = registry.state(proposal_id)
    proposal = state.proposal
    policy = registry.policy(proposal.policy_fingerprint)
    record = next(r for r in registry.proposals() if r.proposal_id == state.id)
    evidence = evidence or proposal_evidence(con, settings, state.id)
    spec, backtest, calibration = evidence.spec, evidence.backtest, evidence.calibration
    sensitivity, alternatives = evidence.sensitivity, evidence.alternatives
    bad_debt = evidence.bad_debt
    if bad_debt is not None:
        bad_debt = {
            **bad_debt,
            "required": policy.gate.bad_debt_not_worse,
            "worse": list(bad_debt_worse(bad_debt)),
        }
    bounds = {}
    for change in state.changes:
        found = policy.bound_for(change.path)
        if found is not None:
            pattern, bound = found
            bounds[change.path] = {"pattern": pattern, **bound.model_dump()}
    data = ProposalData(
        id=state.id,
        fingerprint=proposal.fingerprint,
        status=state.status.value,
        kind=proposal.document.kind,
        title=proposal.document.title,
        author=proposal.document.author,
        motivation=proposal.document.motivation,
        created_at=record.created_at.astimezone(UTC).isoformat(timespec="seconds"),
        base_fingerprint=proposal.base_fingerprint,
        proposed_fingerprint=proposal.proposed_fingerprint,
        policy_fingerprint=proposal.policy_fingerprint,
        changes=[c.as_dict() for c in state.changes],
        votes=[
            {
                "member": v.member,
                "decision": v.decision,
                "at": v.at.astimezone(UTC).isoformat(timespec="seconds"),
                "reason": v.reason,
            }
            for v in state.votes
        ],
        quorum=policy.quorum,
        committee=[m.name for m in policy.committee],
        bounds=bounds,
        rollback_rule=policy.rollback.model_dump(),
        drift_tolerance={
            c.path: t for c in state.changes if (t := policy.tolerance_for(c.path)) is not None
        },
        cooldown_days=policy.cooldown_days,
        evidence=proposal.document.evidence.model_dump(mode="json"),
        effective_from=state.effective_from.astimezone(UTC).isoformat(timespec="seconds")
        if state.effective_from
        else None,
    )
    state_time = record.updated_at.astimezone(UTC).isoformat(timespec="seconds")
    reproducibility = {
        "proposal fingerprint": proposal.fingerprint,
        "current set": proposal.base_fingerprint,
        "proposed set": proposal.proposed_fingerprint,
        "policy": proposal.policy_fingerprint,
        "calibration": calibration.calibration_id if calibration else "none",
        "calibration data sha256": json.dumps(calibration.data_fingerprints, sort_keys=True)
        if calibration
        else "none",
        "Monte Carlo seed, simulations": f"{spec.seed}, {spec.simulations}",
        **(
            {"Monte Carlo margin paths a day (Sobol)": str(spec.paths)}
            if any(MarginModel(m).simulated for m in spec.models)
            else {}
        ),
        "package": f"margin-workbench {__version__}",
        "libraries": json.dumps(versions(), sort_keys=True),
    }
    # executable payloads written for the proposal (their batches' hashes, as audited), and
    # the typed data a wallet member signs
    for entry in registry.audit_entries():
        if entry.action == "payload" and entry.subject == state.id:
            key = f"payload {entry.details['target']} (audit entry {entry.seq})"
            reproducibility[key] = entry.details["sha256"]
    if policy.ethereum is not None:
        from governance.ethereum import typed_vote

        reproducibility["EIP-712 vote to sign (approve)"] = json.dumps(
            typed_vote(
                proposal.fingerprint, "approve", policy.ethereum.chain_id, policy.ethereum.committee
            ),
            sort_keys=True,
        )
    context = proposal_context(
        data,
        backtest,
        calibration=calibration,
        sensitivity=sensitivity,
        alternatives=alternatives,
        frontier=evidence.frontier,
        elsewhere=evidence.elsewhere,
        bad_debt=bad_debt,
        reproducibility=reproducibility,
        generated_at=f"from the registry as of {state_time} and data through {backtest.end}",
        command=f"mwb report {state.id}",
        judge=judge,
    )
    return _finish(con, context, out_dir or reports_dir(settings) / state.id)


def _values(changes, side: str) -> dict[str, float]:
    out = {}
    for c in changes:
        value = getattr(c, side)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[c.path] = float(value)
    return out


def _relabel(backtest: BacktestData, label: str) -> BacktestData:
    """The part of a two-set run that is ``label``'s, labelled ``set`` (a sensitivity row)."""
    return BacktestData(
        backtest.run_id,
        {"set": backtest.sets[label]},
        backtest.start,
        backtest.end,
        backtest.mpor_days,
        backtest.confidence,
        backtest.daily[backtest.daily["set_label"] == label].assign(set_label="set"),
        [{**s, "set": "set"} for s in backtest.summaries if s["set"] == label],
        backtest.data_sha,
        backtest.spec,
        backtest.notes,
    )


def _one_step_further(
    base: ParameterSet, proposed: ParameterSet, changes
) -> tuple[ParameterSet, dict] | None:
    """The proposed set moved once more by the same step (every numeric change doubled)."""
    step = {}
    for c in changes:
        if (
            isinstance(c.old, int | float)
            and isinstance(c.new, int | float)
            and not isinstance(c.new, bool)
        ):
            step[c.path] = round(c.new + (c.new - c.old), 10)
    if not step:
        return None
    try:
        return proposed.with_changes(step), step
    except ParameterSetError:
        return None  # a step further leaves the schema's range: no such case


def _recommended_alternative(base: ParameterSet, changes, calibration: CalibrationData | None):
    if calibration is None:
        return None
    recommended = {r["parameter"]: r["value"] for r in calibration.recommendations}
    values = {c.path: round(recommended[c.path], 6) for c in changes if c.path in recommended}
    if not values:
        return None
    try:
        return base.with_changes(values), ", ".join(f"{k} = {v:g}" for k, v in values.items())
    except ParameterSetError:
        return None


# --------------------------------------------------------------------------- the other two


def calibration_report(
    con: duckdb.DuckDBPyConnection, settings: WorkbenchSettings, out_dir: Path | None = None
) -> WrittenReport:
    calibration = latest_calibration(con, settings.market.source_preference)
    if calibration is None:
        raise BadInputError(
            "no calibration in the warehouse: run `mwb calibrate` (or `mwb demo`) first"
        )
    context = calibration_context(
        calibration,
        reproducibility={
            "calibration": calibration.calibration_id,
            "data sha256": json.dumps(calibration.data_fingerprints, sort_keys=True),
            "policy": json.dumps(calibration.policy, sort_keys=True),
            "package": f"margin-workbench {__version__}",
            "libraries": json.dumps(versions(), sort_keys=True),
        },
        generated_at=f"from calibration {calibration.calibration_id}",
        command="mwb report --calibration",
    )
    return _finish(con, context, out_dir or reports_dir(settings) / calibration.calibration_id)


def backtest_report(
    con: duckdb.DuckDBPyConnection,
    settings: WorkbenchSettings,
    run_id: str,
    out_dir: Path | None = None,
) -> WrittenReport:
    backtest = backtest_store.load_run(con, run_id)
    context = backtest_context(
        backtest,
        reproducibility={
            "package": f"margin-workbench {__version__}",
            "libraries": json.dumps(versions(), sort_keys=True),
        },
        generated_at=f"from backtest {backtest.run_id}, data through {backtest.end}",
        command=f"mwb report --backtest {backtest.run_id}",
    )
    return _finish(con, context, out_dir or reports_dir(settings) / backtest.run_id)


def _finish(con: duckdb.DuckDBPyConnection, context: ReportContext, out_dir: Path) -> WrittenReport:
    rendered = render(context)
    paths = write(rendered, out_dir)
    files = {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in paths.items()}
    report_store.record(con, context.id, context.kind, context.title, out_dir, files)
    return WrittenReport(context, rendered, paths)
