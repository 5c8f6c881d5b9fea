"""Shadow runs: a proposal's set margined beside the set in force, every market day, before
enactment (what ``mwb shadow run`` and the daily job's ``gov/shadow_runs`` do).

Each run backtests the test portfolios from the shadow's first day under both sets (the
backtest's caches make a day's run reuse the days before) and records, for every struck day
whose MPOR has elapsed by ``through`` and is not recorded yet, both sets' breaches (close to
close or along the day's range: the stricter) and mean margin — at most the shadow's period.
Each day is an audited governance event; a shadow report (HTML and Markdown twins) is written
under ``HOME/reports/shadow/<proposal>``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from backtesting.spec import BacktestSpec
from governance.registry import Registry, ShadowRun
from governance.shadow import ShadowDay, shadow_verdict
from pipelines.backtest import ParamSource, run_backtest

if TYPE_CHECKING:
    import duckdb

    from pipelines.settings import WorkbenchSettings

ACTOR = "shadow-run"


def last_market_day(con: duckdb.DuckDBPyConnection) -> date:
    """The last day the warehouse has a price for (what a shadow run records through)."""
    from pipelines.errors import BadInputError
    from pipelines.stores import market as stored

    last = stored.last_price_day(con)
    if last is None:
        raise BadInputError("the warehouse holds no prices: nothing to run a shadow on")
    return last


def shadow_days_of(daily, recorded_through: date | None, limit: int) -> list[ShadowDay]:
    """The backtest's struck days after ``recorded_through`` as shadow days (at most ``limit``)."""
    import pandas as pd

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
        out.append(
            ShadowDay(
                day,
                tuple(sorted(by_set["active"].loc[by_set["active"]["breached"], "name"])),
                tuple(sorted(by_set["shadow"].loc[by_set["shadow"]["breached"], "name"])),
                float(by_set["active"]["margin_usd"].mean()),
                float(by_set["shadow"]["margin_usd"].mean()),
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
        backtest = run_backtest(
            con,
            settings,
            [ParamSource("active", active), ParamSource("shadow", shadow)],
            BacktestSpec(start=run.first_day, end=end),
        )
        last = recorded[-1].day if recorded else None
        for day in shadow_days_of(backtest.daily, last, run.days - len(recorded)):
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
            }
            for d in days
        ],
        "generated_at": f"from the registry through {days[-1].day if days else run.first_day}",
    }
    context = ReportContext("shadow", run.proposal_id, f"Shadow run of {run.proposal_id}", data)
    paths = write(render(context), settings.home / "reports" / "shadow" / run.proposal_id)
    return paths["html"]
