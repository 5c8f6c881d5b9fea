"""The command line (exit codes, --json) and the settings file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers import run_mwb

from pipelines.errors import BadInputError
from pipelines.settings import FileSource, SyntheticSource, load_settings


def test_status_on_an_empty_and_a_loaded_warehouse(home, tmp_path) -> None:
    empty = run_mwb("status", "--json", home=home)
    assert empty.returncode == 0, empty.stderr
    payload = json.loads(empty.stdout)
    assert payload["series"] == [] and payload["batches"] == 0 and payload["schema_version"] >= 1

    path = tmp_path / "p.csv"
    path.write_text("date,asset,close\n2024-01-01,BTC,1\n2024-01-02,BTC,2\n2024-01-09,BTC,3\n")
    assert run_mwb("ingest", str(path), home=home).returncode == 0
    payload = json.loads(run_mwb("status", "--json", home=home).stdout)
    (series,) = payload["series"]
    assert series == {
        "series": "prices",
        "asset": "BTC",
        "source": "file",
        "first": "2024-01-01",
        "last": "2024-01-09",
        "rows": 3,
        "gaps_over_3d": 1,
        "missing_days": 6,
    }
    text = run_mwb("status", home=home).stdout
    assert "2024-01-09" in text and str(home / "warehouse.duckdb") in text
    query = "SELECT close FROM market.prices ORDER BY date"
    rows = json.loads(run_mwb("sql", query, "--json", home=home).stdout)
    assert [r["close"] for r in rows] == [1.0, 2.0, 3.0]
    bad = run_mwb("sql", "SELECT nope FROM market.prices", home=home)
    assert bad.returncode == 2 and "query failed" in bad.stderr
    write = run_mwb("sql", "DELETE FROM market.prices", home=home)
    assert write.returncode == 2  # read-only


def test_datasets_load_and_list(home) -> None:
    listed = json.loads(run_mwb("datasets", "list", "--json", home=home).stdout)
    assert {d["name"] for d in listed} == {"synthetic", "sp500-vix"}
    loaded = run_mwb("datasets", "load", "sp500-vix", "--json", home=home)
    assert loaded.returncode == 0, loaded.stderr
    assert [f["inserted"] for f in json.loads(loaded.stdout)["files"]] == [5031, 1259]
    unknown = run_mwb("datasets", "load", "nasdaq", home=home)
    assert unknown.returncode == 2 and "unknown dataset 'nasdaq'" in unknown.stderr


def test_usage_errors_exit_2(home) -> None:
    assert run_mwb("ingest", home=home).returncode == 2  # missing PATH
    assert run_mwb("ingest", "--kind", "bogus", "x.csv", home=home).returncode == 2


def test_demo_prints_the_warehouse_and_checks(home) -> None:
    result = run_mwb("demo", "--json", home=home, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    payload = json.loads(result.stdout)
    assert payload["success"] and payload["warehouse"] == str(home / "warehouse.duckdb")
    assert {(s["series"], s["asset"]) for s in payload["series"]} == {
        ("prices", "BTC"),
        ("prices", "ETH"),
        ("prices", "SOL"),
        ("iv", "BTC"),
        ("iv", "ETH"),
    }
    # governance: a demo committee adopted, a drift draft recorded, and the audit chain checked
    (draft,) = payload["drafts"]
    assert (home / "proposals" / "drafts" / f"{draft['id']}.yaml").exists()
    assert sorted(p.name for p in (home / "keys").iterdir()) == [
        "demo-alice.pem",
        "demo-bob.pem",
        "demo-carol.pem",
    ]
    (audit_check,) = [c for c in payload["checks"] if c["check"] == "audit_log_verifies"]
    assert audit_check["passed"]
    # the story ends with the ETH haircut proposal's report, which names its fingerprint
    report = payload["report"]
    html = Path(report["html"])
    assert html.exists() and report["fingerprint"] in html.read_text(encoding="utf-8")
    assert report["fingerprint"] in Path(report["markdown"]).read_text(encoding="utf-8")
    assert html.parent == home / "reports" / report["proposal"]
    assert len(report["summary"]) == 3 and report["verdict"] in report["summary"][0]
    human = run_mwb("demo", home=home, timeout=300)
    assert human.returncode == 0 and "warehouse.duckdb" in human.stdout
    assert "prices_no_extreme_moves" in human.stdout
    assert f"drafted {draft['id']}" in human.stdout  # the same draft, not a second one
    assert f"report: {html}" in human.stdout  # the same proposal, found again


def test_settings_defaults_and_file(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("MWB_CONFIG", raising=False)
    monkeypatch.setenv("MWB_HOME", str(tmp_path / "h"))
    settings = load_settings()
    assert settings.warehouse_path == tmp_path / "h" / "warehouse.duckdb"
    assert settings.sources == (SyntheticSource(),)

    config = tmp_path / "conf" / "mwb.yaml"
    config.parent.mkdir()
    config.write_text(
        yaml.safe_dump(
            {
                "market": {"assets": ["BTC"], "expected_through": "2024-12-31"},
                "sources": [{"type": "file", "path": "data/prices.csv", "source": "binance"}],
            }
        )
    )
    monkeypatch.setenv("MWB_CONFIG", str(config))
    settings = load_settings()
    (source,) = settings.sources
    assert isinstance(source, FileSource)
    assert source.path == config.parent / "data" / "prices.csv"  # relative to the file
    assert str(settings.market.expected_through) == "2024-12-31"


def test_bad_settings_name_the_field(tmp_path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"sources": [{"type": "ftp", "path": "x"}]}))
    with pytest.raises(BadInputError, match=r"c.yaml: sources.0"):
        load_settings(tmp_path, config)
    config.write_text(yaml.safe_dump({"market": {"expected_through": "someday"}}))
    with pytest.raises(BadInputError, match="market.expected_through"):
        load_settings(tmp_path, config)
