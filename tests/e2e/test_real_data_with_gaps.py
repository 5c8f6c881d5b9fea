"""The committee's path on real data with missing days (issue 12, "Must show").

The shared Binance prices, Deribit DVOL and Binance funding, copied with days deleted — single
days, a two-day hole and a day inside the last backtest window — are ingested, calibrated (text
and JSON), backtested with every margin model and turned into a proposal report through the
real command line. Every step exits 0 and the report lists the gaps.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import run_mwb

# days deleted from BTC, ETH and SOL prices (a two-day hole and single days) and from DVOL
DELETED = {
    "BTC": ["2023-06-14", "2023-06-15", "2024-03-05", "2024-09-20"],
    "ETH": ["2024-03-05", "2024-05-11"],
    "SOL": ["2024-07-30"],
}
DELETED_IV = {"BTC": ["2024-02-02"], "ETH": ["2023-11-23"]}


def _ok(result) -> str:
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
    assert "Traceback" not in result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory, shared_data):
    work = tmp_path_factory.mktemp("gaps")
    home = work / "home"
    prices = pd.read_csv(shared_data / "prices/binance_spot_daily.csv")
    for asset, days in DELETED.items():
        prices = prices[~((prices["asset"] == asset) & prices["date"].isin(days))]
    prices = prices[prices["asset"].isin(["BTC", "ETH", "SOL"])]
    prices.to_csv(work / "prices.csv", index=False)
    iv = pd.read_csv(shared_data / "iv/deribit_dvol_daily.csv")
    for asset, days in DELETED_IV.items():
        iv = iv[~((iv["asset"] == asset) & iv["date"].isin(days))]
    iv.to_csv(work / "iv.csv", index=False)
    files = [
        work / "prices.csv",
        work / "iv.csv",
        shared_data / "funding/binance_btcusdt_funding_daily.csv",
    ]
    loaded = json.loads(_ok(run_mwb("ingest", *map(str, files), "--json", home=home)))
    assert not loaded["errors"] and all(f["inserted"] > 0 for f in loaded["files"])
    return work, home


@pytest.mark.slow
def test_calibration_counts_and_lists_the_gaps(warehouse) -> None:
    _, home = warehouse
    text = _ok(
        run_mwb(
            "calibrate",
            "--asset",
            "BTC",
            "--asset",
            "ETH",
            "--asset",
            "SOL",
            home=home,
            timeout=900,
        )
    )
    assert "gaps in the fit windows" in text and "2023-06-16" in text
    payload = json.loads(
        _ok(
            run_mwb(
                "calibrate",
                "--asset",
                "BTC",
                "--asset",
                "ETH",
                "--asset",
                "SOL",
                "--json",
                home=home,
                timeout=900,
            )
        )
    )
    btc = payload["fits"]["BTC"]
    assert btc["gap_policy"] == "scale"
    # the two-day hole ends with the close of 16 June: one 3-day return, counted and dated
    dates = {g["date"]: g["missing_days"] for g in btc["gaps"]}
    assert dates == {"2023-06-16": 2, "2024-03-06": 1, "2024-09-21": 1}
    assert btc["chosen"]["window"]["flagged_gaps"] == 3
    assert {g["date"] for g in payload["fits"]["ETH"]["gaps"]} == {"2024-03-06", "2024-05-12"}
    written = json.loads(_ok(run_mwb("report", "--calibration", "--json", home=home, timeout=600)))
    report = Path(written["files"]["markdown"]).read_text()
    assert "## Gaps in the fit windows" in report and "2023-06-16" in report


@pytest.mark.slow
def test_backtest_with_every_model_over_the_gaps(warehouse) -> None:
    _, home = warehouse
    models = [a for m in ("standard", "span", "deribit-pm", "var", "es") for a in ("--model", m)]
    out = json.loads(
        _ok(
            run_mwb(
                "backtest",
                *models,
                "--from",
                "2024-01-01",
                "--to",
                "2024-11-30",
                "--json",
                home=home,
                timeout=900,
            )
        )
    )
    notes = " ".join(out["notes"])
    assert "BTC: 3 gap(s)" in notes and "2024-09-21" in notes
    summaries = out["summaries"]
    assert {s["model"] for s in summaries} >= {
        "standard",
        "span",
        "deribit-pm",
        "var",
        "es",
        "haircut",
    }
    # the day after a gap is margined: the VaR book has a row on 6 March and 21 September 2024
    for summary in summaries:
        if summary["model"] in ("var", "es") and summary["portfolio"].startswith("btc-"):
            assert summary["coverage"]["observations"] > 300
    es = [s for s in summaries if s["model"] == "es"]
    assert es and all("es_tests" in s for s in es)
    assert all(s["coverage"]["mpor"] == 2 for s in summaries)


@pytest.mark.slow
def test_the_proposal_report_lists_the_gaps(warehouse) -> None:
    work, home = warehouse
    keys = {}
    for name in ("alice", "bob"):
        made = json.loads(_ok(run_mwb("keygen", name, "--json", home=home)))
        keys[name] = made["public_key"]
    template = _ok(
        run_mwb("policy", "template", *[f"--member={n}={k}" for n, k in keys.items()], home=home)
    )
    (home / "policy.yaml").write_text(template)
    _ok(run_mwb("params", "init", "--json", home=home))
    proposal = work / "proposal.yaml"
    proposal.write_text(
        yaml.safe_dump(
            {
                "title": "Lower the ETH haircut",
                "author": "risk-team",
                "motivation": "ETH volatility fell",
                "changes": {"collateral.ETH.haircut": 0.09},
            }
        )
    )
    submitted = json.loads(_ok(run_mwb("propose", str(proposal), "--json", home=home)))
    written = json.loads(_ok(run_mwb("report", submitted["id"], "--json", home=home, timeout=1200)))
    markdown = Path(written["files"]["markdown"]).read_text()
    assert "### Data gaps" in markdown
    for day in ("2024-03-06", "2024-09-21", "2024-05-12", "2024-07-31"):
        assert day in markdown
    payload = json.loads(Path(written["files"]["payload"]).read_text())
    gaps = {(g["asset"], g["date"]) for g in payload["data_and_models"]["gaps"]}
    assert ("BTC", "2023-06-16") in gaps and ("SOL", "2024-07-31") in gaps
    assert payload["coverage_procedure"]["procedure"] == "interleaved-bonferroni"
