"""End to end: the jobs on a temporary DuckDB (what lands in every schema), the enactment gates,
the multiprocess executor, and the schedule and sensors."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import dagster as dg
import pytest
import yaml

from governance.registry import Registry
from governance.signing import read_private_key, sign
from pipelines.defs.calibration.assets import FITS_PREFIX
from pipelines.defs.resources import build_resources
from pipelines.defs.workflows.jobs import daily_run, proposal_config
from pipelines.demo import DEMO_COMMITTEE, SYNTHETIC_LAST_DAY, ensure_demo_registry
from pipelines.governance import keys_dir
from pipelines.runs import check_outcomes, loaded_definitions, run_job
from pipelines.settings import load_settings
from pipelines.warehouse import connect

UNDERLYINGS = ["BTC", "ETH", "SOL"]
DAILY_PARTITION, DAILY_CONFIG = daily_run(date.fromisoformat(SYNTHETIC_LAST_DAY), UNDERLYINGS)


@pytest.fixture(scope="module")
def daily(tmp_path_factory):
    """A workbench with the demo committee, after one daily_calibration run (drafts backtested
    and reported) on the synthetic market."""
    home = tmp_path_factory.mktemp("workflow-home")
    settings = load_settings(home)
    ensure_demo_registry(settings)
    resources = build_resources(home=str(home), synthetic_only=True)
    result = run_job("daily_calibration", resources, DAILY_CONFIG, partition_key=DAILY_PARTITION)
    return home, settings, resources, result


def _count(con, table: str, where: str = "true") -> int:
    return con.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0]


def test_daily_calibration_lands_in_every_schema(daily) -> None:
    home, settings, _, result = daily
    assert result.success
    events = result.get_asset_materialization_events()
    by_key: dict[str, set] = {}
    for e in events:
        by_key.setdefault(e.asset_key.to_user_string(), set()).add(e.partition)
    assert by_key["market/prices"] == {SYNTHETIC_LAST_DAY}
    assert {k for k in by_key if k.startswith("calib/volatility_fits/")} == {
        f"calib/volatility_fits/{u}" for u in UNDERLYINGS
    }
    for key in (
        "calib/correlations",
        "calib/iv_dynamics",
        "calib/recommendations",
        "bt/active_set_backtest",
        "gov/drafted_proposals",
        "rpt/calibration_report",
        "rpt/draft_reports",
    ):
        assert key in by_key, key
    con = connect(settings.warehouse_path)
    try:
        assert _count(con, "market.prices") == 3 * 2192
        assert _count(con, "market.implied_vol") == 2 * 2192
        assert _count(con, "market.ingest_batches") >= 2
        (calibration_id,) = con.execute("SELECT calibration_id FROM calib.runs").fetchone()
        assert calibration_id.startswith(SYNTHETIC_LAST_DAY)
        assert _count(con, "calib.fits", "chosen") == 3
        assert _count(con, "calib.correlations") > 0 and _count(con, "calib.iv_dynamics") == 2
        assert _count(con, "calib.recommendations") > 0
        drafts = con.execute(
            "SELECT proposal_id FROM gov.proposals WHERE status = 'draft'"
        ).fetchall()
        assert len(drafts) == 1  # the drift rule fires on the synthetic market
        assert _count(con, "gov.audit_log") >= 2 and Registry(con).verify().ok
        # the in-force backtest, the draft's current vs proposed, and the report's sensitivity
        # and alternative runs (one step further; the calibration's own values)
        assert _count(con, "bt.runs") == 4 and _count(con, "bt.summaries") > 0
        reports = dict(con.execute("SELECT report_id, kind FROM rpt.reports").fetchall())
        assert reports == {calibration_id: "calibration", drafts[0][0]: "proposal"}
    finally:
        con.close()
    assert (home / "reports" / drafts[0][0] / "report.html").exists()
    written = {
        e.asset_key.to_user_string(): e.materialization.metadata["html"].value
        for e in events
        if e.asset_key.path[0] == "rpt"
    }
    assert written == {
        "rpt/calibration_report": str(home / "reports" / calibration_id / "report.html"),
        "rpt/draft_reports": [str(home / "reports" / drafts[0][0] / "report.html")],
    }


def _proposal_file(path, title: str, parameter: str, value: float):
    document = {
        "title": title,
        "author": "test",
        "motivation": "test",
        "changes": {parameter: value},
    }
    path.write_text(yaml.safe_dump(document))
    return path


def _approve(settings, proposal_id: str) -> None:
    con = connect(settings.warehouse_path)
    try:
        registry = Registry(con)
        fingerprint = registry.state(proposal_id).proposal.fingerprint
        for name in DEMO_COMMITTEE[:2]:
            key = read_private_key(keys_dir(settings) / f"{name}.pem")
            registry.vote(
                proposal_id,
                member=name,
                decision="approve",
                signature=sign(key, "approve", fingerprint),
                now=datetime.now(UTC),
            )
    finally:
        con.close()


def _head(settings) -> str:
    con = connect(settings.warehouse_path)
    try:
        return Registry(con).head().parameter_set
    finally:
        con.close()


def test_backtest_proposal_job_and_the_enactment_gates(daily, tmp_path) -> None:
    _, settings, resources, _ = daily
    # A proposal file: submitted, backtested current vs proposed, reported.
    eth = _proposal_file(
        tmp_path / "eth.yaml", "Lower the ETH haircut", "collateral.ETH.haircut", 0.08
    )
    result = run_job("backtest_proposal", resources, proposal_config(str(eth)))
    assert result.success
    (report,) = result.asset_materializations_for_node("rpt__proposal_report")
    eth_id = report.metadata["proposal"].value
    assert check_outcomes(result) == []  # the gate is not part of backtesting
    con = connect(settings.warehouse_path)
    try:
        status = con.execute(
            "SELECT status FROM gov.proposals WHERE proposal_id = ?", [eth_id]
        ).fetchone()[0]
        assert status == "submitted"
        assert _count(con, "rpt.reports", f"report_id = '{eth_id}'") == 1
    finally:
        con.close()
    # Running the same file again finds the proposal instead of submitting it twice.
    again = run_job("backtest_proposal", resources, proposal_config(str(eth)))
    assert again.success
    (report2,) = again.asset_materializations_for_node("rpt__proposal_report")
    assert report2.metadata["proposal"].value == eth_id

    # 8 % does not cover ETH's two-day moves: red where the change has effect → blocked, even
    # with the quorum's approvals.
    assert report.metadata["gate_passed"].value is False
    _approve(settings, eth_id)
    before = _head(settings)
    blocked = run_job("enact_proposal", resources, proposal_config(eth_id, enact=True))
    assert not blocked.success
    outcomes = {c["check"]: c["passed"] for c in check_outcomes(blocked)}
    assert outcomes == {"audit_log_verifies": True, "proposed_set_not_red": False}
    assert blocked.asset_materializations_for_node("gov__enacted_parameters") == []
    assert _head(settings) == before

    # A change that moves no test portfolio into the red passes both gates and is enacted.
    sol = _proposal_file(
        tmp_path / "sol.yaml", "Raise the SOL haircut", "collateral.SOL.haircut", 0.2
    )
    submitted = run_job("backtest_proposal", resources, proposal_config(str(sol)))
    (sol_report,) = submitted.asset_materializations_for_node("rpt__proposal_report")
    sol_id = sol_report.metadata["proposal"].value
    assert sol_report.metadata["gate_passed"].value is True
    _approve(settings, sol_id)
    enacted = run_job("enact_proposal", resources, proposal_config(sol_id, enact=True))
    assert enacted.success, [
        e.message for e in enacted.all_events if "FAILURE" in e.event_type_value
    ]
    (event,) = enacted.asset_materializations_for_node("gov__enacted_parameters")
    assert _head(settings) == event.metadata["parameter_set"].value != before

    # A tampered audit log blocks enactment whatever the report says.
    con = connect(settings.warehouse_path)
    try:
        con.execute(
            "UPDATE gov.audit_log SET actor = 'mallory' WHERE seq = (SELECT min(seq) FROM gov.audit_log)"
        )
    finally:
        con.close()
    tampered = run_job("enact_proposal", resources, proposal_config(eth_id, enact=True))
    assert not tampered.success
    assert {c["check"]: c["passed"] for c in check_outcomes(tampered)}[
        "audit_log_verifies"
    ] is False
    assert tampered.asset_materializations_for_node("gov__enacted_parameters") == []


def test_proposal_files_sensor_runs_each_file_version_once(tmp_path, monkeypatch) -> None:
    from pipelines.defs.workflows.sensors import proposal_files_sensor

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    monkeypatch.setenv("MWB_PROPOSALS_INBOX", str(inbox))
    instance = dg.DagsterInstance.ephemeral()

    first = proposal_files_sensor(dg.build_sensor_context(instance=instance))
    assert first.run_requests == [] and "no proposal files" in first.skip_reason.skip_message

    proposal = inbox / "eth.yaml"
    proposal.write_text("title: a\nchanges:\n  collateral.ETH.haircut: 0.09\n")
    (inbox / "notes.txt").write_text("not a proposal")
    result = proposal_files_sensor(dg.build_sensor_context(instance=instance))
    (request,) = result.run_requests
    config = request.run_config["ops"]
    assert config["bt__proposal_backtest"]["config"]["proposal"] == str(proposal.resolve())
    assert config["rpt__proposal_report"]["config"]["proposal"] == str(proposal.resolve())

    again = proposal_files_sensor(dg.build_sensor_context(instance=instance, cursor=result.cursor))
    assert again.run_requests == []  # the same version is not run twice

    proposal.write_text("title: b\nchanges:\n  collateral.ETH.haircut: 0.085\n")
    changed = proposal_files_sensor(dg.build_sensor_context(instance=instance, cursor=again.cursor))
    (new_request,) = changed.run_requests
    assert new_request.run_key != request.run_key
    assert json.loads(changed.cursor)["eth.yaml"] != json.loads(result.cursor)["eth.yaml"]


def test_triggers_sensor_fires_once_per_new_calibration() -> None:
    from pipelines.defs.workflows.sensors import triggers_after_calibration

    defs = loaded_definitions()
    instance = dg.DagsterInstance.ephemeral()
    key = dg.AssetKey(["calib", "recommendations"])

    def evaluate(cursor=None):
        context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
        found = triggers_after_calibration(context)
        found = [found] if isinstance(found, dg.RunRequest | dg.SkipReason) else list(found or [])
        return [r for r in found if isinstance(r, dg.RunRequest)], context.cursor

    assert evaluate()[0] == []
    instance.report_runless_asset_event(dg.AssetMaterialization(key))
    requests, cursor = evaluate()
    assert len(requests) == 1 and requests[0].job_name in (None, "governance_triggers")
    assert evaluate(cursor)[0] == []
    instance.report_runless_asset_event(dg.AssetMaterialization(key))
    assert len(evaluate(cursor)[0]) == 1


def test_schedule_runs_daily_at_00_30_utc_on_the_day_just_closed() -> None:
    from pipelines.defs.workflows.schedules import daily_calibration_schedule

    assert daily_calibration_schedule.cron_schedule == "30 0 * * *"
    assert daily_calibration_schedule.execution_timezone == "UTC"
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 21, 0, 30, tzinfo=UTC)
    )
    request = daily_calibration_schedule(context)
    assert request.partition_key == "2026-11-20"
    assert request.run_key == "daily-2026-11-20"


def test_definitions_show_every_job_schedule_sensor_and_group() -> None:
    defs = loaded_definitions()
    jobs = {j.name for j in defs.jobs}
    assert {
        "daily_calibration",
        "backtest_proposal",
        "enact_proposal",
        "governance_triggers",
    } <= jobs
    assert {s.name for s in defs.schedules} == {"daily_calibration_schedule"}
    assert {s.name for s in defs.sensors} == {
        "proposal_files_sensor",
        "triggers_after_calibration",
    }
    graph = defs.resolve_asset_graph()
    groups = {graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert groups == {"market_data", "calibration", "backtest", "governance", "reports"}
    prices = graph.get(dg.AssetKey(["market", "prices"]))
    assert isinstance(prices.partitions_def, dg.DailyPartitionsDefinition)
    fits = {k.path[-1] for k in graph.get_all_asset_keys() if k.path[:2] == FITS_PREFIX}
    assert fits == set(UNDERLYINGS)
    blocking = {key.name for key in graph.asset_check_keys if graph.get_check_spec(key).blocking}
    assert {
        "audit_log_verifies",
        "proposed_set_not_red",
        "persistence_below_one",
        "correlations_psd",
        "dcc_stationary",
    } <= blocking


def test_market_data_backfill_runs_a_partition_range_in_one_run(tmp_path) -> None:
    from pipelines.runs import materialize_group

    resources = build_resources(home=str(tmp_path / "bf-home"), synthetic_only=True)
    result = materialize_group(
        "market_data", resources, partition_range=("2024-12-29", "2024-12-31")
    )
    assert result.success
    partitions: dict[str, set] = {}
    for event in result.get_asset_materialization_events():
        partitions.setdefault(event.asset_key.to_user_string(), set()).add(event.partition)
    days = {"2024-12-29", "2024-12-30", "2024-12-31"}
    assert partitions == {
        "market/prices": days,
        "market/implied_vol": days,
        "market/funding": days,
        "market/option_marks": days,
    }
    (prices,) = {
        e.materialization.metadata["window"].value
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(["market", "prices"])
    }
    assert prices == "2024-12-29..2024-12-31"  # one run saw the whole range
