"""The daily run's executors and its blocking checks: fits side by side in their own
processes, and a failing calibration check that stops everything downstream of it."""

from __future__ import annotations

from datetime import date

import pytest

from pipelines.defs.resources import build_resources
from pipelines.defs.workflows.jobs import daily_run
from pipelines.demo import SYNTHETIC_LAST_DAY, ensure_demo_registry
from pipelines.runs import check_outcomes, run_job
from pipelines.settings import load_settings
from pipelines.warehouse import connect

UNDERLYINGS = ["BTC", "ETH", "SOL"]
DAILY_PARTITION, DAILY_CONFIG = daily_run(date.fromisoformat(SYNTHETIC_LAST_DAY), UNDERLYINGS)


def _count(con, table: str, where: str = "true") -> int:
    return con.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0]


def test_daily_calibration_under_the_multiprocess_executor(tmp_path, monkeypatch) -> None:
    home = tmp_path / "mp-home"
    monkeypatch.setenv("MWB_HOME", str(home))
    monkeypatch.delenv("MWB_CONFIG", raising=False)
    settings = load_settings(home)
    partition, config = daily_run(
        date.fromisoformat(SYNTHETIC_LAST_DAY), UNDERLYINGS, draft_reports=False
    )
    # the executor is under test, not the in-force backtest: a short standard-margin one
    config["ops"]["bt__active_set_backtest"] = {
        "config": {"start": "2024-10-01", "models": ["standard"]}
    }
    result = run_job(
        "daily_calibration", build_resources(), config, processes=2, partition_key=partition
    )
    assert result.success
    starts = [e for e in result.all_events if e.event_type_value == "STEP_WORKER_STARTED"]
    assert len({e.pid for e in starts}) >= 3  # steps ran in their own processes
    fits = {
        e.asset_key.path[-1]
        for e in result.get_asset_materialization_events()
        if e.asset_key.path[:2] == ["calib", "volatility_fits"]
    }
    assert fits == set(UNDERLYINGS)
    fit_steps = [e for e in starts if e.step_key.startswith("calib__volatility_fits__")]
    assert len({e.pid for e in fit_steps}) == 3  # one process per underlying's fit
    con = connect(settings.warehouse_path)
    try:
        assert _count(con, "calib.fits", "chosen") == 3
        assert _count(con, "calib.recommendations") > 0
        assert _count(con, "rpt.reports", "kind = 'calibration'") == 1
        assert _count(con, "gov.proposals") == 0  # no registry: nothing to draft against
    finally:
        con.close()


@pytest.mark.parametrize("broken", ["persistence", "dcc"])
def test_a_failing_blocking_calibration_check_stops_the_daily_run(
    tmp_path, monkeypatch, broken: str
) -> None:
    """A non-stationary fit, or an integrated DCC the policy did not replace, fails its blocking
    check: nothing downstream of it (recommendations, drafts, reports) runs or is stored. The
    in-force backtest does not read the calibration and still runs."""
    import pipelines.defs.calibration.assets as calibration_assets

    if broken == "persistence":
        real_fit = calibration_assets.fit_asset_of

        def integrated_fit(con, settings, ctx, asset):
            calibration = real_fit(con, settings, ctx, asset)
            if asset != "ETH":
                return calibration

            class Integrated:  # the stored fit, reported as persistence 1.02 by the check
                def __getattr__(self, name):
                    return getattr(calibration.chosen, name)

                persistence = 1.02

            chosen = Integrated()
            return type(
                "Fit",
                (),
                {
                    "chosen": chosen,
                    "fell_back": False,
                    "fallback_reason": None,
                    "candidates": calibration.candidates,
                },
            )()

        monkeypatch.setattr(calibration_assets, "fit_asset_of", integrated_fit)
        failed = ("calib/volatility_fits/ETH", "persistence_below_one")
    else:
        real_correlations = calibration_assets.calibrate_correlations

        def integrated_dcc(*args, **kwargs):
            import dataclasses

            outcome = real_correlations(*args, **kwargs)
            return dataclasses.replace(outcome, dcc_a=0.05, dcc_b=0.96, dcc=None)

        monkeypatch.setattr(calibration_assets, "calibrate_correlations", integrated_dcc)
        failed = ("calib/correlations", "dcc_stationary")
    home = tmp_path / "home"
    settings = load_settings(home)
    ensure_demo_registry(settings)
    resources = build_resources(home=str(home), synthetic_only=True)
    result = run_job("daily_calibration", resources, DAILY_CONFIG, partition_key=DAILY_PARTITION)
    assert not result.success
    checks = {(c["asset"], c["check"]): c for c in check_outcomes(result)}
    assert checks[failed]["passed"] is False and checks[failed]["severity"] == "ERROR"
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "market/prices" in materialized and failed[0] in materialized
    stopped = {
        "calib/recommendations",
        "gov/drafted_proposals",
        "rpt/calibration_report",
        "rpt/draft_reports",
    }
    assert not stopped & materialized
    started = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    assert "bt/active_set_backtest" in materialized
    assert not {"calib__recommendations", "gov__drafted_proposals", "rpt__draft_reports"} & started
    con = connect(settings.warehouse_path)
    try:
        assert _count(con, "calib.recommendations") == 0
        assert _count(con, "rpt.reports") == 0
        assert _count(con, "gov.proposals") == 0
    finally:
        con.close()


def test_a_step_process_takes_the_callers_home_not_the_servers(tmp_path, monkeypatch) -> None:
    """Steps are forked from a long-lived server whose environment is the one it started
    with: the job a step rebuilds sets the caller's home and config itself."""
    import os

    from pipelines.runs import job_named

    monkeypatch.setenv("MWB_HOME", "/somewhere/else")
    monkeypatch.setenv("MWB_CONFIG", "/somewhere/else/config.yaml")
    job = job_named("daily_calibration", str(tmp_path / "home"), "")
    assert job.name == "daily_calibration"
    assert os.environ["MWB_HOME"] == str(tmp_path / "home")
    assert "MWB_CONFIG" not in os.environ
