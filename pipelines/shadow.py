"""Shadow runs: a proposal's set margined beside the set in force, every market day, before
enactment (what ``mwb shadow run`` and the daily job's ``gov/shadow_runs`` do).

Each run backtests the test portfolios from the shadow's first day under both sets (the
backtest's caches make a day's run reuse the days before), and each supplied account snapshot
over the days it is in force, and records, for every struck day whose MPOR has elapsed by
``through`` and is not recorded yet, both sets' breaches (close to close or along the day's
range: the stricter), mean margin and capital — at most the shadow's period. Accounts are named
``account:<name>`` in the record, apart from the test portfolios.
Each day is an audited governance event; a shadow report (HTML and Markdown twins) is written
under ``HOME/reports/shadow/<proposal>``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import pandas as pd

from backtesting.spec import BacktestSpec
from governance.registry import Registry, ShadowRun
from governance.shadow import AccountSnapshot, ShadowDay, segments, shadow_verdict
from pipelines.backtest import NothingToReplay, ParamSource, run_backtest
from pipelines.errors import BadInputError

if TYPE_CHECKING:
    import duckdb

    from pipelines.settings import WorkbenchSettings

ACTOR = "shadow-run"
ACCOUNT_PREFIX = "account:"


def read_snapshot(path, from_day: date) -> AccountSnapshot:
    """An ``account,instrument,quantity`` positions file as an account snapshot in canonical
    form (:func:`margin_engine.portfolios.canonical_positions`); a bad row raises
    :class:`BadInputError` naming the file, row and field."""
    from pathlib import Path

    from margin_engine.portfolios import canonical_positions
    from pipelines.margin import read_positions

    try:
        return AccountSnapshot(from_day, canonical_positions(read_positions(path), Path(path).name))
    except ValueError as exc:
        raise BadInputError(str(exc)) from None


def snapshot_books(snapshot: AccountSnapshot):
    """The snapshot's accounts as static books named ``account:<name>``."""
    from margin_engine.portfolios import from_positions

    frame = pd.DataFrame(
        [(ACCOUNT_PREFIX + a, i, q) for a, i, q in snapshot.rows],
        columns=["account", "instrument", "quantity"],
    )
    return from_positions(frame, f"snapshot {snapshot.sha256[:12]}")


def last_market_day(con: duckdb.DuckDBPyConnection) -> date:
    """The last day the warehouse has a price for (what a shadow run records through)."""
    from pipelines.stores import market as stored

    last = stored.last_price_day(con)
    if last is None:
        raise BadInputError("the warehouse holds no prices: nothing to run a shadow on")
    return last


def shadow_days_of(
    daily, recorded_through: date | None, limit: int, snapshots: Sequence[AccountSnapshot] = ()
) -> list[ShadowDay]:
    """The backtest's struck days after ``recorded_through`` as shadow days (at most ``limit``),
    each naming the snapshot in force that day."""
    frame = daily.copy()
    frame["day"] = pd.to_datetime(frame["date"]).dt.date
    frame["breached"] = frame["breach"] | frame["breach_path"]
    frame["name"] = frame["portfolio"] + "/" + frame["model"] + "/" + frame["currency"]
    frame["margin_usd"] = frame["margin"] * frame["fx_usd"]
    days = sorted(
        d for d in frame["day"].unique() if recorded_through is None or d > recorded_through
    )
    out = []
    for day in days[: max(limit, 0)]:
        rows = frame[frame["day"] == day]
        by_set = {label: rows[rows["set_label"] == label] for label in ("active", "shadow")}
        in_force = [s for s in snapshots if s.from_day <= day]
        out.append(
            ShadowDay(
                day,
                tuple(sorted(by_set["active"].loc[by_set["active"]["breached"], "name"])),
                tuple(sorted(by_set["shadow"].loc[by_set["shadow"]["breached"], "name"])),
                float(by_set["active"]["margin_usd"].mean()),
                float(by_set["shadow"]["margin_usd"].mean()),
                float(by_set["active"]["margin_usd"].sum()),
                float(by_set["shadow"]["margin_usd"].sum()),
                max(in_force, key=lambda s: s.from_day).sha256 if in_force else None,
            )
        )
    return out


def run_shadows(
    con: duckdb.DuckDBPyConnection,
    settings: WorkbenchSettings,
    *,
    through: date,
    now: datetime | None = None,
) -> list[dict]:
    """Record every open shadow run's new days through ``through`` (see the module)."""
    now = now or datetime.now(UTC)
    registry = Registry(con)
    if not registry.initialised():
        return []
    out = []
    for run in registry.shadows():
        recorded = registry.shadow_days(run.proposal_id)
        if len(recorded) >= run.days:
            out.append(_summary(registry, run, settings, written=False))
            continue
        active = registry.parameter_set(registry.head().parameter_set)
        shadow = registry.parameter_set(run.shadow_set)
        mpor = active.var.mpor_days
        end = through - timedelta(days=mpor)  # the last struck day whose MPOR has elapsed
        if end < run.first_day:
            out.append(_summary(registry, run, settings, written=False))
            continue
        sets = [ParamSource("active", active), ParamSource("shadow", shadow)]
        last = recorded[-1].day if recorded else None
        start = max(run.first_day, last + timedelta(days=1)) if last else run.first_day
        daily = [
            run_backtest(con, settings, sets, BacktestSpec(start=run.first_day, end=end)).daily
        ]
        snapshots = registry.shadow_accounts(run.proposal_id)
        for first, until, snapshot in segments(snapshots, start, end):
            spec = BacktestSpec(start=first, end=until, portfolios=())
            with contextlib.suppress(NothingToReplay):  # no struck day in it: nothing to add
                daily.append(
                    run_backtest(con, settings, sets, spec, accounts=snapshot_books(snapshot)).daily
                )
        frame = pd.concat(daily, ignore_index=True)
        for day in shadow_days_of(frame, last, run.days - len(recorded), snapshots):
            registry.record_shadow_day(run.proposal_id, day, actor=ACTOR, now=now)
        out.append(_summary(registry, run, settings, written=True))
    return out


def _summary(
    registry: Registry, run: ShadowRun, settings: WorkbenchSettings, *, written: bool
) -> dict:
    days = registry.shadow_days(run.proposal_id)
    required = registry.policy().gate.shadow_days
    allowed, why = shadow_verdict(days, required or run.days)
    summary = {
        "proposal": run.proposal_id,
        "shadow_set": run.shadow_set,
        "first_day": run.first_day.isoformat(),
        "days": run.days,
        "recorded": len(days),
        "active_breaches": sum(len(d.active_breaches) for d in days),
        "shadow_breaches": sum(len(d.shadow_breaches) for d in days),
        "shadow_only": sum(len(d.shadow_only) for d in days),
        "clean": allowed,
        "verdict": why,
        "report": None,
    }
    if written or days:
        summary["report"] = str(write_shadow_report(registry, run, days, why, settings))
    return summary


def write_shadow_report(
    registry: Registry,
    run: ShadowRun,
    days: list[ShadowDay],
    verdict: str,
    settings: WorkbenchSettings,
):
    """The shadow report's HTML and Markdown twins and payload under HOME/reports/shadow/ID."""
    from reports.context import ReportContext
    from reports.render import render, write

    data = {
        "proposal": run.proposal_id,
        "first_day": run.first_day.isoformat(),
        "days": run.days,
        "shadow_set": run.shadow_set,
        "active_set": registry.head().parameter_set,
        "recorded": len(days),
        "active_total": sum(len(d.active_breaches) for d in days),
        "shadow_total": sum(len(d.shadow_breaches) for d in days),
        "shadow_only_total": sum(len(d.shadow_only) for d in days),
        "verdict": verdict,
        "rows": [
            {
                "day": d.day.isoformat(),
                "active": len(d.active_breaches),
                "shadow": len(d.shadow_breaches),
                "shadow_only": list(d.shadow_only),
                "active_margin_usd": d.active_margin_usd,
                "shadow_margin_usd": d.shadow_margin_usd,
                "active_capital_usd": d.active_capital_usd,
                "shadow_capital_usd": d.shadow_capital_usd,
            }
            for d in days
        ],
        "snapshots": [s.facts() for s in registry.shadow_accounts(run.proposal_id)],
        "generated_at": f"from the registry through {days[-1].day if days else run.first_day}",
    }
    context = ReportContext("shadow", run.proposal_id, f"Shadow run of {run.proposal_id}", data)
    paths = write(render(context), settings.home / "reports" / "shadow" / run.proposal_id)
    return paths["html"]
