"""Backtest assets: the set in force replayed over history, and a proposal's current vs
proposed sets side by side, stored in the ``bt`` schema.

The rollback trigger reads its breaches from here; a red traffic light is flagged by the check
(and, for a proposal, blocks its enactment: see ``rpt/proposal_report``).
"""

from datetime import date

import dagster as dg
import pandas as pd

from backtesting.spec import BacktestSpec
from backtesting.summary import comparison
from pipelines.backtest import (
    BacktestRun,
    backtest_spec,
    resolve_source,
    run_backtest,
    years_before,
)
from pipelines.defs.metadata import frontier_metadata, markdown_table
from pipelines.defs.resources import DaskResource, WarehouseResource, WorkbenchResource
from reports.serialize import dumps

GROUP = "backtest"
BACKTEST = dg.AssetKey(["bt", "active_set_backtest"])
PROPOSAL_BACKTEST = dg.AssetKey(["bt", "proposal_backtest"])


class ProposalConfig(dg.Config):
    """Which proposal a run is about: an id (``P-…``, or a fingerprint prefix) or a proposal
    YAML file, which the run's ``gov/submitted_proposal`` step submits if the registry does not
    hold it yet."""

    proposal: str
    actor: str = "mwb-pipeline"


def summary_metadata(run: BacktestRun) -> dict:
    side = comparison(run.summary_records(), list(run.sets))
    columns = ["portfolio", "model"] + [
        c
        for c in side.columns
        if c.split(".", 1)[-1] in ("breaches", "zone", "pof_p", "mean_margin_usd")
    ]
    red = side[[c for c in side.columns if c.endswith(".zone")]].eq("red").any(axis=1)
    return {
        "run_id": run.run_id,
        "parameter_sets": dg.MetadataValue.json(dict(run.sets)),
        "from": str(run.start),
        "to": str(run.end),
        "mpor_days": run.mpor_days,
        "data_sha256": run.data_sha,
        "red": int(red.sum()),
        "summary": markdown_table(side[columns]),
        "seconds": round(run.elapsed, 1),
    }


class BacktestConfig(dg.Config):
    start: str = ""  # YYYY-MM-DD; empty = three years before the last day with data
    end: str = ""  # YYYY-MM-DD; empty = the last day with a full MPOR after it
    params: str = "active"  # active | registry | default | a file | a fingerprint
    models: list[str] = ["deribit-pm", "span", "var"]
    portfolios: list[str] = ["books", "collateral"]


@dg.asset(
    key=BACKTEST,
    group_name=GROUP,
    kinds={"duckdb", "python"},
    deps=[dg.AssetKey(["market", "prices"]), dg.AssetKey(["market", "implied_vol"])],
)
def active_set_backtest(
    config: BacktestConfig, warehouse: WarehouseResource, workbench: WorkbenchResource
) -> dg.MaterializeResult:
    """Margin the test portfolios every day with the set in force and count the breaches,
    with the coverage tests, procyclicality and capital efficiency per portfolio and model."""
    settings = workbench.settings()
    with warehouse.get_connection() as con:
        end = date.fromisoformat(config.end) if config.end else None
        start = date.fromisoformat(config.start) if config.start else years_before(con, 3)
        spec = backtest_spec(
            start=start, end=end, models=tuple(config.models), portfolios=tuple(config.portfolios)
        )
        run = run_backtest(con, settings, [resolve_source(con, config.params, "in-force")], spec)
    return dg.MaterializeResult(metadata=summary_metadata(run))


@dg.asset(
    key=PROPOSAL_BACKTEST,
    group_name=GROUP,
    kinds={"duckdb", "python"},
    deps=[
        dg.AssetKey(["gov", "submitted_proposal"]),
        dg.AssetKey(["market", "prices"]),
        dg.AssetKey(["market", "implied_vol"]),
        dg.AssetKey(["calib", "recommendations"]),
    ],
)
def proposal_backtest(
    config: ProposalConfig, warehouse: WarehouseResource, workbench: WorkbenchResource
) -> dg.MaterializeResult:
    """The proposal's current and proposed sets replayed on identical inputs, over three years
    widened to the proposal's evidence windows (the report's window)."""
    from pipelines.workflows import backtest_proposal, find_proposal

    settings = workbench.settings()
    with warehouse.get_connection() as con:
        proposal_id = find_proposal(con, config.proposal, actor=config.actor)
        run = backtest_proposal(con, settings, proposal_id)
    return dg.MaterializeResult(metadata={"proposal": proposal_id, **summary_metadata(run)})


PARAMETER_SWEEP = dg.AssetKey(["bt", "parameter_sweep"])


class SweepConfig(dg.Config):
    """One parameter through a range of values (as ``mwb sweep``)."""

    parameter: str = "underlyings.ETH.pm.price_range"
    values: str = "0.10:0.26:0.02"  # START:STOP:STEP (both ends included) or a,b,c
    model: str = "deribit-pm"  # standard | span | deribit-pm | var | es | mc-var | mc-es
    paths: int = 2000  # Monte Carlo margin paths a day (mc-var, mc-es)
    portfolios: list[str] = ["books"]
    start: str = ""  # YYYY-MM-DD; empty = three years before the last day with data
    end: str = ""
    params: str = "active"


@dg.asset(
    key=PARAMETER_SWEEP,
    group_name=GROUP,
    kinds={"dask", "python"},
    deps=[dg.AssetKey(["market", "prices"]), dg.AssetKey(["market", "implied_vol"])],
)
def parameter_sweep(
    config: SweepConfig,
    warehouse: WarehouseResource,
    workbench: WorkbenchResource,
    dask: DaskResource,
) -> dg.MaterializeResult:
    """Every value of one parameter backtested on identical inputs, the values fanned out as
    Dask tasks: breaches, zone and capital per value, the knee, and the frontier chart."""
    from backtesting.sweep import sweep_values
    from pipelines.errors import BadInputError
    from pipelines.sweep import run_sweep, sweeps_dir, write_frontier

    try:
        values = sweep_values(config.values)
    except ValueError as exc:
        raise BadInputError(f"values: {exc}") from None
    settings = workbench.settings()
    with warehouse.get_connection() as con:
        start = date.fromisoformat(config.start) if config.start else years_before(con, 3)
        spec = backtest_spec(
            start=start,
            end=date.fromisoformat(config.end) if config.end else None,
            models=(config.model,) if config.model != "standard" else BacktestSpec.models,
            portfolios=tuple(config.portfolios),
            paths=config.paths,
        )
        current = resolve_source(con, config.params, "current").params
        with dask.mapper(settings) as mapper:
            run = run_sweep(
                con, settings, current, config.parameter, values, spec, model=config.model,
                mapper=mapper,
            )  # fmt: skip
    payload = run.payload()
    folder = sweeps_dir(settings, run)
    chart = write_frontier(payload, folder / "frontier.png")
    (folder / "sweep.json").write_text(dumps(payload, indent=1), encoding="utf-8")
    return dg.MaterializeResult(
        metadata={
            **frontier_metadata(payload, str(chart)),
            "current_value": run.current_value if run.current_value is not None else "none",
            "from": payload["days"]["from"],
            "to": payload["days"]["to"],
            "days": payload["days"]["count"],
            "data_sha256": run.data_sha,
            "sweep_json": dg.MetadataValue.path(str(folder / "sweep.json")),
            "seconds": round(run.seconds, 1),
        }
    )


LIQUIDATION_CASCADE = dg.AssetKey(["bt", "liquidation_cascade"])


class CascadeConfig(dg.Config):
    """A liquidation cascade (as ``mwb cascade``): the window by name or dates, the population."""

    asset: str = "ETH"
    window: str = "May 2022"  # a stress window's name; empty to use start and end
    start: str = ""
    end: str = ""
    accounts: int = 10_000
    seed: int = 0
    params: str = "active"
    vs: str = ""  # another set to compare with (empty: none)


@dg.asset(
    key=LIQUIDATION_CASCADE,
    group_name=GROUP,
    kinds={"python"},
    deps=[dg.AssetKey(["market", "prices"])],
)
def liquidation_cascade(
    config: CascadeConfig, warehouse: WarehouseResource, workbench: WorkbenchResource
) -> dg.MaterializeResult:
    """A synthetic population liquidated along a stress window under the set (and ``vs``):
    liquidations, their price impact and the bad debt left, per set."""
    from backtesting.cascade import Mode
    from calibration.stress import STRESS_WINDOWS
    from pipelines.cascade import cascade_inputs, population, rule_of, run_cascade
    from pipelines.errors import BadInputError

    settings = workbench.settings()
    if config.window:
        found = [w for w in STRESS_WINDOWS if w.name.lower() == config.window.lower()]
        if not found:
            raise BadInputError(f"window: {config.window!r} is not a stress window")
        first, last = found[0].start, found[0].end
    else:
        first, last = date.fromisoformat(config.start), date.fromisoformat(config.end)
    with warehouse.get_connection() as con:
        current = resolve_source(con, config.params, "current").params
        sets = [("current", current)]
        if config.vs:
            sets.append(("vs", resolve_source(con, config.vs, "vs").params))
        inputs = cascade_inputs(
            con, settings.market.source_preference, config.asset.upper(), first, last
        )
    rule = rule_of(current, inputs.asset, Mode.FULL)
    people = population("synthetic", config.accounts, config.seed, inputs.path[0], 1 / rule.initial)
    payload = run_cascade(inputs, sets, people)
    folder = settings.home / "cascades" / f"{inputs.asset}-{first}-{last}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cascade.json").write_text(dumps(payload, indent=1), encoding="utf-8")
    rows = [
        {
            "set": s["label"],
            "IM rate": s["rule"]["initial"],
            "liquidations": s["liquidations"],
            "volume USD": round(s["volume_usd"]),
            "largest impact": round(s["largest_impact"], 4),
            "bad debt USD": round(s["bad_debt"], 2),
        }
        for s in payload["sets"]
    ]
    return dg.MaterializeResult(
        metadata={
            "cascade": markdown_table(pd.DataFrame(rows)),
            "bad_debt_usd": payload["sets"][0]["bad_debt"],
            "from": payload["from"],
            "to": payload["to"],
            "accounts": config.accounts,
            "seed": config.seed,
            "impact_daily_vol": payload["impact"]["daily_vol"],
            "impact_daily_volume_usd": payload["impact"]["daily_volume_usd"],
            "cascade_json": dg.MetadataValue.path(str(folder / "cascade.json")),
        }
    )
