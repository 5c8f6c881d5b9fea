"""Dagster definitions: what the UI shows, and the market-data assets and checks running."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import REPO

from pipelines.defs.resources import build_resources
from pipelines.runs import check_outcomes, loaded_definitions, materialize_group
from pipelines.warehouse import connect

MARKET_ASSETS = {"market/prices", "market/implied_vol", "market/funding", "market/option_marks"}


def test_definitions_expose_market_assets_checks_and_one_warehouse() -> None:
    repo = loaded_definitions().get_repository_def()
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert MARKET_ASSETS <= keys
    checks = {(c.asset_key.to_user_string(), c.name) for c in repo.asset_graph.asset_check_keys}
    for name in (
        "prices_no_gaps",
        "prices_not_stale",
        "prices_no_extreme_moves",
        "prices_coverage",
    ):
        assert ("market/prices", name) in checks
    assert ("market/implied_vol", "implied_vol_in_range") in checks
    assert ("market/option_marks", "option_marks_unique_key") in checks
    groups = {
        repo.asset_graph.get(k).group_name
        for k in repo.asset_graph.get_all_asset_keys()
        if k.to_user_string() in MARKET_ASSETS
    }
    assert groups == {"market_data"}
    resources = repo.get_top_level_resources()
    assert set(resources) >= {"warehouse", "workbench"}


def test_dagster_can_load_the_workspace_the_ui_uses(home) -> None:
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "definitions",
            "validate",
            "-w",
            "workspace.yaml",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (
        "Validation successful for code location margin_workbench" in result.stdout + result.stderr
    )


def test_materializing_the_synthetic_market(home) -> None:
    resources = build_resources(home=str(home), synthetic_only=True)
    result = materialize_group("market_data", resources)
    assert result.success
    prices = result.asset_materializations_for_node("market__prices")[0]
    assert prices.metadata["dagster/row_count"].value == 3 * 2192
    assert prices.metadata["inserted"].value == 3 * 2192
    assert "BTC" in prices.metadata["series"].value  # the Markdown table of date ranges
    outcomes = {(c["asset"], c["check"]): c for c in check_outcomes(result)}
    crash = outcomes[("market/prices", "prices_no_extreme_moves")]
    assert not crash["passed"] and crash["severity"] == "WARN" and crash["findings"] >= 3
    for key in [
        ("market/prices", "prices_coverage"),
        ("market/prices", "prices_no_gaps"),
        ("market/implied_vol", "implied_vol_in_range"),
        ("market/implied_vol", "implied_vol_coverage"),
    ]:
        assert outcomes[key]["passed"], key
    # a second run is idempotent: nothing new
    again = materialize_group("market_data", resources)
    assert (
        again.asset_materializations_for_node("market__prices")[0].metadata["inserted"].value == 0
    )


def test_checks_flag_gaps_staleness_and_missing_coverage(home, tmp_path) -> None:
    holes = tmp_path / "holes.csv"
    rows = ["date,asset,close"]
    rows += [f"2024-01-{d:02d},XRP,0.6" for d in (1, 2, 3, 4, 5, 6)]  # unchanged 6 days
    rows += ["2024-01-15,XRP,0.7"]  # 8 missing days
    holes.write_text("\n".join(rows) + "\n")
    config = home / "config.yaml"
    home.mkdir(parents=True)
    config.write_text(
        yaml.safe_dump(
            {
                "market": {"assets": ["BTC", "ETH", "SOL", "XRP"]},
                "sources": [{"type": "synthetic"}, {"type": "file", "path": str(holes)}],
            }
        )
    )
    result = materialize_group("market_data", build_resources(home=str(home)))
    assert result.success
    outcomes = {c["check"]: c for c in check_outcomes(result)}
    assert not outcomes["prices_no_gaps"]["passed"]
    assert not outcomes["prices_not_stale"]["passed"]
    assert not outcomes["prices_coverage"]["passed"]  # XRP stops in January 2024
    assert all(
        outcomes[name]["severity"] == "WARN"
        for name in ("prices_no_gaps", "prices_not_stale", "prices_coverage")
    )


def test_a_bad_configured_file_is_quarantined_and_the_others_load(home, tmp_path) -> None:
    """Issue 13: one bad file in a configured folder no longer fails the load (and the daily
    job): it is set aside as a quarantined batch with its reason, the good file loads, and a
    WARN check names it — once, however often the job runs."""
    drops = tmp_path / "drops"
    drops.mkdir()
    (drops / "a_good.csv").write_text("date,asset,iv\n2024-01-01,BTC,0.5\n")
    (drops / "b_bad.csv").write_text("what,is,this\n1,2,3\n")
    home.mkdir(parents=True)
    (home / "config.yaml").write_text(
        yaml.safe_dump({"sources": [{"type": "folder", "path": str(drops)}]})
    )
    for _ in range(2):
        result = materialize_group("market_data", build_resources(home=str(home)))
        assert result.success
    outcomes = {c["check"]: c for c in check_outcomes(result)}
    check = outcomes["configured_files_load"]
    assert not check["passed"] and check["severity"] == "WARN"
    con = connect(home / "warehouse.duckdb")
    try:
        assert con.execute("SELECT count(*) FROM market.implied_vol").fetchone()[0] == 1
        rows = con.execute(
            "SELECT b.file_path, r.category, r.reason FROM market.ingest_batches b "
            "JOIN market.rejected_rows r USING (batch_id) WHERE b.format = 'quarantined'"
        ).fetchall()
    finally:
        con.close()
    assert len(rows) == 1 and rows[0][0].endswith("b_bad.csv") and rows[0][1] == "file"
    assert "b_bad.csv" in rows[0][2]


@pytest.mark.parametrize("blocking_check", ["implied_vol_in_range", "option_marks_unique_key"])
def test_impossible_values_are_blocking_errors(blocking_check) -> None:
    specs = {
        spec.name: spec
        for checks in loaded_definitions().asset_checks
        for spec in checks.check_specs
    }
    assert specs[blocking_check].blocking is True
    assert specs["prices_no_extreme_moves"].blocking is False  # real crashes must not block
